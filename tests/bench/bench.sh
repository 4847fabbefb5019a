#!/bin/bash
# bench.sh BINDIR - `make bench`: the machine's limits and hl7qd's figures,
# measured in one run, and their ratios.  A report, not a test: nothing
# here fails the build.
#   1. fdatasync/s and one-message-per-transaction journal commits/s (syncrate)
#   2. a fresh hl7qd driven by hl7send with 1 KB ADT messages: 64 connections, then 1
#   3. daemon RSS with 1,000 idle connections
set -e
bin=$1
cd "$(dirname "$0")/../.."
. tests/bench/lib.sh
out=build/bench
rm -rf $out && mkdir -p $out
sync; sleep 2 # let the filesystem settle (discard of what was removed)
ulimit -n 8192 2>/dev/null || true
N64=${HL7Q_BENCH_N64:-200000}
SECS1=${HL7Q_BENCH_SECS1:-5}

field() { sed -n "s/.*$1=\([0-9.]*\).*/\1/p" | head -1; }

echo "== machine limits (filesystem of $out)"
limits=$(build/plain/tests/bench/syncrate $out 3)
fsyncs=$(echo "$limits" | field fdatasync_per_s)
commits=$(echo "$limits" | field commits_per_s)
echo "fdatasync: $fsyncs/s; journal commits, one 1 KB message each: $commits/s"

port=$(free_port)
bench_conf $out/bench.conf $PWD/$out/journal $port 2000
$bin/hl7qd -c $out/bench.conf 2>$out/hl7qd.log &
pid=$!
trap 'kill $pid 2>/dev/null || true' EXIT
wait_ready $out/hl7qd.log

echo "== 1 connection, ${SECS1}s"
$bin/hl7send -p $port -g -c 1 -d $SECS1 -s 1024 > $out/r1.txt
head -1 $out/r1.txt
r1=$(grep '^result' $out/r1.txt)
echo "== 64 connections, $N64 messages of 1 KB"
$bin/hl7send -p $port -g -c 64 -n $N64 -s 1024 > $out/r64.txt
head -1 $out/r64.txt
r64=$(grep '^result' $out/r64.txt)

kill -TERM $pid; wait $pid || true
grep -E "stopped|commits:" $out/hl7qd.log

# A fresh daemon on a fresh journal: what 1,000 connections cost, without
# the journal pages (file-backed, shared page cache) the load above mapped.
echo "== 1,000 idle connections (fresh daemon, fresh journal)"
sed -i "s|^path = .*|path = $PWD/$out/journal-idle|" $out/bench.conf
$bin/hl7qd -c $out/bench.conf 2>>$out/hl7qd.log &
pid=$!
wait_ready $out/hl7qd.log 2
rss0_kb=$(awk '/VmRSS/ {print $2}' /proc/$pid/status)
$bin/hl7send -p $port --idle 1000 -d 4 > $out/idle.txt &
ipid=$!
sleep 3
rss_kb=$(awk '/VmRSS/ {print $2}' /proc/$pid/status)
anon_kb=$(awk '/RssAnon/ {print $2}' /proc/$pid/status)
open=$(ls /proc/$pid/fd | wc -l)
wait $ipid
kill -TERM $pid; wait $pid || true; trap - EXIT
echo "RSS before: $((rss0_kb / 1024)) MB; with 1,000 connections: $((rss_kb / 1024)) MB (anonymous $((anon_kb / 1024)) MB), $open fds"

rate64=$(echo "$r64" | field rate); p99=$(echo "$r64" | field p99_ms)
p50=$(echo "$r64" | field p50_ms); p999=$(echo "$r64" | field p999_ms)
rate1=$(echo "$r1" | field rate)
echo
echo "== summary (hl7qd $(git rev-parse --short HEAD 2>/dev/null), $(nproc) cores)"
/usr/bin/python3 - "$fsyncs" "$commits" "$rate64" "$p50" "$p99" "$p999" "$rate1" "$rss_kb" "$open" <<'PY'
import sys
fs, cm, r64, p50, p99, p999, r1, rss, fds = map(float, sys.argv[1:])
rows = [
    ("machine: fdatasync/s", "%.0f" % fs, "", True),
    ("machine: journal commits/s, 1 msg each", "%.0f" % cm, "", True),
    ("64 connections: ACKed msg/s", "%.0f" % r64, ">= 20000", r64 >= 20000),
    ("64 connections: p50 / p99 / p99.9 ACK ms", "%.2f / %.2f / %.2f" % (p50, p99, p999), "p99 < 10", p99 < 10),
    ("1 connection: msg/s", "%.0f" % r1, "", True),
    ("1 connection / one-msg-per-txn commits", "%.2f" % (r1 / cm), ">= 0.70", r1 / cm >= 0.7),
    ("64 connections / fdatasync rate", "%.2f" % (r64 / fs), "", True),
    ("1,000 idle connections: RSS MB", "%.1f (fds %d)" % (rss / 1024, fds), "< 64", rss / 1024 < 64),
]
for name, val, target, ok in rows:
    print("%-44s %-26s %-10s %s" % (name, val, target, ("ok" if ok else "MISSED") if target else ""))
PY
