#!/bin/bash
# delivery.sh BINDIR - the delivery part of `make bench`: 100,000 queued
# 1 KB messages drained to a local nginx HTTPS location that answers 200
# (ordering none), wrk's POST rate against the same URL in the same run,
# and intake + delivery together end to end.  A report, not a test.
set -e
bin=$1
cd "$(dirname "$0")/../.."
. tests/bench/lib.sh
out=build/bench-delivery
rm -rf $out && mkdir -p $out/nginx
N=${HL7Q_BENCH_DELIVERY_N:-100000}
N2=${HL7Q_BENCH_E2E_N:-50000}
# pending JOURNAL: the entries of the pending queue (mdb_stat, a process of its own:
# polled every 0.1 s, so that polling costs the 2 cores little).
pending() { mdb_stat -s pending "$1" 2>/dev/null | sed -n 's/^ *Entries: //p'; }

bench_nginx $out

echo "== wrk: POST 1 KB to https://127.0.0.1:$ngport/ok, 64 connections, 5 s"
cat > $out/post.lua <<'LUA'
wrk.method = "POST"
wrk.body = string.rep("x", 1024)
wrk.headers["Content-Type"] = "x-application/hl7-v2+er7"
LUA
wrk -t2 -c64 -d5s -s $out/post.lua https://127.0.0.1:$ngport/ok > $out/wrk.txt
wrk_rate=$(sed -n 's/^Requests\/sec: *\([0-9.]*\).*/\1/p' $out/wrk.txt)
echo "wrk: $wrk_rate requests/s"

port=$(free_port)
bench_conf $out/hl7q.conf $PWD/$out/journal $port 256
# 256 requests in flight (the most a target allows): over HTTP/2 the
# responses of many streams then arrive in one read, and the CPU per
# delivery falls (c=64 is drained too, for comparison).
C=${HL7Q_BENCH_CONCURRENCY:-256}
bench_target $out/hl7q.conf $out none $C
echo "http_version = auto" >> $out/hl7q.conf

echo "== queue $N messages with delivery held"
HL7Q_TEST_HOLD_DELIVERY=1 $bin/hl7qd -c $out/hl7q.conf 2>$out/hl7qd.log &
pid=$!
wait_ready $out/hl7qd.log
$bin/hl7send -p $port -g -c 64 -n $N -s 1024 | head -1
kill -TERM $pid; wait $pid || true
echo "pending: $(pending $out/journal)"
cp -a $out/journal $out/journal-held

# drain VERSION: the held queue drained with http_version = VERSION; sets drain.
drain_with() {
	rm -rf $out/journal && cp -a $out/journal-held $out/journal
	sed -i "s/^http_version = .*/http_version = $1/" $out/hl7q.conf
	echo "== drain, http_version = $1"
	: > $out/hl7qd.log
	t0=$(date +%s.%N)
	$bin/hl7qd -c $out/hl7q.conf 2>>$out/hl7qd.log &
	pid=$!
	[ -n "$HL7Q_BENCH_PERF" ] && perf record -g -p $pid -o $out/perf-$1.data -- sleep 1.5 >/dev/null 2>&1 &
	while [ "$(pending $out/journal)" != "0" ]; do sleep 0.1; done
	t1=$(date +%s.%N)
	kill -TERM $pid; wait $pid || true
	drain=$(/usr/bin/python3 -c "print('%.0f' % ($N / ($t1 - $t0)))")
	echo "drained $N in $(/usr/bin/python3 -c "print('%.2f' % ($t1 - $t0))") s: $drain deliveries/s"
}
# HTTP/2 at concurrency 64 for comparison; then, at $C, HTTP/1.1 and HTTP/2
# against the same nginx, and auto (what hl7q picks)
sed -i "s/^concurrency = .*/concurrency = 64/" $out/hl7q.conf
drain_with 2; drain64=$drain
sed -i "s/^concurrency = .*/concurrency = $C/" $out/hl7q.conf
drain_with 1.1; drain11=$drain
drain_with 2; drain2=$drain
drain_with auto
sed -i "s/^http_version = .*/http_version = auto/" $out/hl7q.conf

echo "== intake and delivery together: $N2 messages, 64 connections"
rm -rf $out/journal
t0=$(date +%s.%N)
$bin/hl7qd -c $out/hl7q.conf 2>>$out/hl7qd.log &
pid=$!
wait_ready $out/hl7qd.log 2
t0=$(date +%s.%N)
$bin/hl7send -p $port -g -c 64 -n $N2 -s 1024 | head -1
while [ "$(pending $out/journal)" != "0" ]; do sleep 0.1; done
t1=$(date +%s.%N)
kill -TERM $pid; wait $pid || true
trap - EXIT
kill $ngpid 2>/dev/null || true
e2e=$(/usr/bin/python3 -c "print('%.0f' % ($N2 / ($t1 - $t0)))")
echo
echo "== delivery summary"
/usr/bin/python3 - "$wrk_rate" "$drain" "$e2e" "$drain11" "$drain2" "$drain64" "$C" <<'PY'
import json, os, sys
wrk, drain, e2e, d11, d2, d64, conc = map(float, sys.argv[1:])
rows = [("wrk POST requests/s (same URL)", "%.0f" % wrk, "", True),
        ("drain deliveries/s, concurrency 64, HTTP/2", "%.0f" % d64, "", True),
        ("drain deliveries/s, conc. %d, http 1.1 / 2" % conc, "%.0f / %.0f" % (d11, d2), "", True),
        ("drain: deliveries/s (http_version auto)", "%.0f" % drain, ">= 10000", drain >= 10000),
        ("drain / wrk (issue 16)", "%.2f" % (drain / wrk), ">= 0.50", drain / wrk >= 0.5),
        ("auto no slower than the faster version", "%.2f" % (drain / max(d11, d2)), ">= 0.90",
         drain >= 0.9 * max(d11, d2)),
        ("intake + delivery end to end msg/s (issue 16)", "%.0f" % e2e, ">= 15000", e2e >= 15000)]
for name, val, target, ok in rows:
    print("%-44s %-12s %-10s %s" % (name, val, target, ("ok" if ok else "MISSED") if target else ""))
# The same figures join build/bench/summary.json (written by bench.sh) under "delivery".
path = "build/bench/summary.json"
summary = json.load(open(path)) if os.path.exists(path) else {}
summary["delivery"] = {"wrk_post_per_s": wrk, "concurrency": conc, "drain_per_s_concurrency_64_http2": d64,
                       "drain_per_s": {"1.1": d11, "2": d2, "auto": drain},
                       "drain_to_wrk": drain / wrk if wrk else 0, "end_to_end_per_s": e2e}
os.makedirs(os.path.dirname(path), exist_ok=True)
json.dump(summary, open(path, "w"), indent=2)
print("(JSON: %s, \"delivery\")" % path)
PY
