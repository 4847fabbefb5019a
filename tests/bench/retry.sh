#!/bin/bash
# retry.sh BINDIR FILL - the not-due-retry part of `make bench` (issue 11
# point 9): what 100,000 retries that are not due cost intake.  hl7qd with
# an encrypted journal (encryption_key_file) and one target, a local nginx
# HTTPS location that answers 200, is driven by hl7send with 64 connections
# for a fixed time; every message it takes is routed to the target, so
# intake wakes the target's workers.  Two journals written by FILL: 100,000
# messages whose deliveries are retries due in an hour, and the same
# 100,000 messages delivered.  The runs alternate between the two, three
# times, for each ordering; the load average goes with each (the machine
# may be shared).  The retries should cost intake under 10 %: the median
# rate ratio should be >= 0.90.  With ordering fifo the head of the queue is
# a retry, so nothing new is delivered in the retry runs (they do less
# work than the delivered runs).  A report, not a test.
set -e
bin=$1
fill=$2
cd "$(dirname "$0")/../.."
. tests/bench/lib.sh
out=build/bench-retry
rm -rf $out && mkdir -p $out/nginx
ulimit -n 8192 2>/dev/null || true
N=${HL7Q_BENCH_RETRY_N:-100000}
SECS=${HL7Q_BENCH_RETRY_SECS:-10}
REPS=${HL7Q_BENCH_RETRY_REPS:-3}
ORDERINGS=${HL7Q_BENCH_RETRY_ORDERINGS:-none patient fifo}

bench_nginx $out

(umask 077 && openssl rand -hex 32 > $out/journal.key)
echo "== writing two encrypted journals of $N messages: retries due in an hour, and delivered"
$fill $out/retry $N --retry 3600 --target nginx --key $out/journal.key
$fill $out/delivered $N --target nginx --key $out/journal.key

# run ORDERING KIND: intake for SECS s on a copy of journal KIND; prints
# "rate rate_per_cpu_s load": messages ACKed per second, and per second of
# hl7qd's CPU time while hl7send ran (that one holds on a busy machine)
cpu_s() { awk -v hz="$(getconf CLK_TCK)" '{ print ($14 + $15) / hz }' /proc/$1/stat; }
run() {
	local ordering=$1 kind=$2 port load res c0 c1
	port=$(free_port)
	rm -rf $out/journal && cp -r $out/$kind $out/journal
	bench_conf $out/hl7q.conf $PWD/$out/journal $port 256
	sed -i "/^max_size/a encryption_key_file = $PWD/$out/journal.key" $out/hl7q.conf
	echo "max_connections_per_peer = 256" >> $out/hl7q.conf # hl7send's 64 come from one peer
	bench_target $out/hl7q.conf $out $ordering 16
	: > $out/hl7qd.log
	$bin/hl7qd -c $out/hl7q.conf 2>>$out/hl7qd.log &
	pid=$!
	for _ in $(seq 300); do grep -q ready $out/hl7qd.log && break; sleep 0.1; done
	sleep 1 # the workers' first look at the queue
	load=$(cut -d' ' -f1 /proc/loadavg)
	# HL7Q_BENCH_PERF="retry delivered": a perf profile of those runs (its
	# own cost then counts in hl7qd's CPU time); HL7Q_BENCH_PERF_ARGS: perf's options
	if [[ " $HL7Q_BENCH_PERF " == *" $kind "* ]]; then
		perf record ${HL7Q_BENCH_PERF_ARGS:--g} -p $pid -o $out/perf-$ordering-$kind.data \
			-- sleep $((SECS - 1)) >/dev/null 2>&1 &
	fi
	c0=$(cpu_s $pid)
	res=$($bin/hl7send -p $port -g -c 64 -d $SECS -s 1024 -P 13 | grep '^result')
	c1=$(cpu_s $pid)
	kill -TERM $pid; wait $pid || true
	pid=
	wait # perf, if any
	cp $out/hl7qd.log $out/hl7qd-$ordering-$kind.log
	/usr/bin/python3 - "$res" "$c0" "$c1" "$load" <<'PY'
import re, sys
res, c0, c1, load = sys.argv[1], float(sys.argv[2]), float(sys.argv[3]), sys.argv[4]
n = int(re.search(r"messages=(\d+)", res).group(1))
print("%s %.0f %s" % (re.search(r"rate=(\d+)", res).group(1), n / max(c1 - c0, 0.01), load))
PY
}

echo "== intake, 64 connections, ${SECS}s a run, 1 KB ADT messages, encrypted journal holding $N messages"
rows=()
for ordering in $ORDERINGS; do
	for rep in $(seq $REPS); do
		read -r drate dcpu dload <<<"$(run $ordering delivered)"
		read -r rrate rcpu rload <<<"$(run $ordering retry)"
		echo "$ordering #$rep: delivered $drate/s ($dcpu/CPU-s, load $dload)," \
			"$N not-due retries $rrate/s ($rcpu/CPU-s, load $rload):" \
			"ratio $(/usr/bin/python3 -c "print('%.2f (%.2f per CPU-s)' % ($rrate / $drate, $rcpu / $dcpu))")"
		rows+=("$ordering $drate $rrate $dcpu $rcpu")
	done
done
kill $ngpid 2>/dev/null || true
trap - EXIT
echo
echo "== retry summary (median of $REPS alternating pairs)"
/usr/bin/python3 - "${rows[@]}" <<'PY'
import statistics, sys
by = {}
for row in sys.argv[1:]:
    name, d, r, dc, rc = row.split()
    by.setdefault(name, []).append(tuple(map(float, (d, r, dc, rc))))
for name, runs in by.items():
    for what, ratio in (("rate", statistics.median(r / d for d, r, _, _ in runs)),
                        ("rate per CPU-s", statistics.median(rc / dc for _, _, dc, rc in runs))):
        print("%-64s %-6s %-8s %s" % ("%s: intake with 100k not-due retries / without, %s" % (name, what),
                                      "%.2f" % ratio, ">= 0.90", "ok" if ratio >= 0.9 else "MISSED"))
PY
