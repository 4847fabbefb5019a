#!/bin/bash
# backlog.sh BINDIR - the backlog part of `make bench` (issue 11 point 9):
# for ordering fifo, patient (13 patients) and none, a backlog of 10,000
# and one of 100,000 messages is queued with delivery held, then drained to
# a local nginx HTTPS location; the rate of the first 10,000 deliveries of
# each is measured.  Finding due messages must not cost more with a longer
# queue: the 100,000 backlog should drain at >= 0.8 x the 10,000 rate.
# A report, not a test.
set -e
bin=$1
cd "$(dirname "$0")/../.."
. tests/bench/lib.sh
out=build/bench-backlog
rm -rf $out && mkdir -p $out/nginx
SMALL=${HL7Q_BENCH_BACKLOG_SMALL:-10000}
BIG=${HL7Q_BENCH_BACKLOG_BIG:-100000}
MEASURE=${HL7Q_BENCH_BACKLOG_MEASURE:-10000}
pending() { mdb_stat -s pending "$1" 2>/dev/null | sed -n 's/^ *Entries: //p'; }
# records not yet in the deferred indexes (their writer would compete with the drain)
unindexed() {
	/usr/bin/python3 - "$1" <<'PY'
import lmdb, struct, sys
env = lmdb.open(sys.argv[1], readonly=True, lock=False, max_dbs=16)
with env.begin() as txn:
    meta = env.open_db(b"meta", txn=txn, create=False)
    msgs = env.open_db(b"msgs", txn=txn, create=False)
    v = txn.get(b"indexed_upto", db=meta)
    upto = struct.unpack(">Q", v[1:9])[0] if v else 0
    c = txn.cursor(db=msgs)
    last = struct.unpack(">Q", c.key())[0] if c.last() else 0
print(max(0, last - upto))
PY
}

bench_nginx $out

# run ORDERING N: queue N, drain MEASURE of them; prints the rate
run() {
	local ordering=$1 n=$2 port
	port=$(free_port)
	rm -rf $out/journal
	bench_conf $out/hl7q.conf $PWD/$out/journal $port 256
	bench_target $out/hl7q.conf $out $ordering 16
	: > $out/hl7qd.log
	HL7Q_TEST_HOLD_DELIVERY=1 $bin/hl7qd -c $out/hl7q.conf 2>>$out/hl7qd.log &
	pid=$!
	wait_ready $out/hl7qd.log
	$bin/hl7send -p $port -g -c 32 -n $n -s 512 -P 13 > /dev/null
	for _ in $(seq 600); do [ "$(unindexed $out/journal)" = 0 ] && break; sleep 0.1; done
	kill -TERM $pid; wait $pid || true
	local before stop t0 t1
	before=$(pending $out/journal)
	stop=$((before - MEASURE))
	t0=$(date +%s.%N)
	$bin/hl7qd -c $out/hl7q.conf 2>>$out/hl7qd.log &
	pid=$!
	while [ "$(pending $out/journal)" -gt "$stop" ]; do sleep 0.02; done
	t1=$(date +%s.%N)
	local cpu
	cpu=$(awk -v hz="$(getconf CLK_TCK)" '{ print ($14 + $15) / hz }' /proc/$pid/stat)
	kill -TERM $pid; wait $pid || true
	pid=
	/usr/bin/python3 -c "print('%.0f %.0f' % ($MEASURE / ($t1 - $t0), $MEASURE / max($cpu, 0.01)))"
}

echo "== backlog drain: the first $MEASURE deliveries of a $SMALL and a $BIG backlog (nginx, concurrency 16, 13 patients)"
echo "   (per wall-clock second, and per second of hl7qd's CPU time: the latter holds on a busy machine)"
rows=()
for ordering in fifo patient none; do
	read -r small small_cpu <<<"$(run $ordering $SMALL)"
	read -r big big_cpu <<<"$(run $ordering $BIG)"
	echo "$ordering: $SMALL backlog $small/s ($small_cpu/CPU-s), $BIG backlog $big/s ($big_cpu/CPU-s)"
	rows+=("$ordering $small $big $small_cpu $big_cpu")
done
echo
echo "== backlog summary"
/usr/bin/python3 - "${rows[@]}" <<'PY'
import sys
for row in sys.argv[1:]:
    name, small, big, small_cpu, big_cpu = row.split()
    for what, a, b in (("rate", small, big), ("rate per CPU-s", small_cpu, big_cpu)):
        ratio = float(b) / float(a)
        print("%-52s %-8s %-8s %s" % ("%s: 100k / 10k backlog, %s" % (name, what),
                                      "%.2f" % ratio, ">= 0.80", "ok" if ratio >= 0.8 else "MISSED"))
PY
