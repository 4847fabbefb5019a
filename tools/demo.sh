#!/bin/sh
# demo.sh BINDIR - `make demo`: starts hl7qd on deploy/demo.conf (journal in
# ./demo-journal, a listener on 127.0.0.1), sends the sample messages with
# hl7send, prints each ACK and where the journal is, then stops the daemon.
set -e
bin=$1
cd "$(dirname "$0")/.."
conf=deploy/demo.conf
corpus=${HL7Q_CORPUS:-../shared/corpus}/hl7v2
log=$(mktemp /tmp/hl7qd-demo.XXXXXX)
port=$(sed -n 's/^listen *= *127.0.0.1:\([0-9]*\).*/\1/p' $conf | head -1)

"$bin/hl7qd" -c $conf --check
"$bin/hl7qd" -c $conf 2>"$log" &
pid=$!
trap 'kill $pid 2>/dev/null; rm -f "$log"' EXIT
for i in $(seq 50); do grep -q "ready" "$log" && break; sleep 0.1; done
grep -q "ready" "$log" || { cat "$log"; exit 1; }
echo "== hl7qd is up (pid $pid), listening on 127.0.0.1:$port"

echo "== sending sample messages with hl7send, one ACK each:"
set -- "$corpus/hitgeek-simple-hl7/adt.hl7" "$corpus/hitgeek-simple-hl7/orm.hl7" \
	"$corpus/hitgeek-simple-hl7/oru.hl7" "$corpus/Efferent-Health-HL7-V2/"*.hl7
if [ -f "$1" ]; then
	"$bin/hl7send" -p "$port" -v "$@" || true
else
	echo "(corpus not found at $corpus; sending a built-in message)"
	printf 'MSH|^~\\&|DEMO|HOSP|HL7Q|LOCAL|20261126120000||ADT^A01^ADT_A01|DEMO1|P|2.5.1\rPID|1||12345^^^HOSP^MR||DEMO^PATIENT\r' > "$log.msg"
	"$bin/hl7send" -p "$port" -v "$log.msg" || true
	rm -f "$log.msg"
fi

echo "== a refused message (no MSH-10) gets a negative ACK with an ERR segment:"
printf 'MSH|^~\\&|DEMO|HOSP|HL7Q|LOCAL|20261126120000||ADT^A01|||2.5\rPID|1\r' > "$log.bad"
"$bin/hl7send" -p "$port" -v "$log.bad" || true
rm -f "$log.bad"

echo "== 2,000 generated 1 KB ADT messages over 8 connections:"
"$bin/hl7send" -p "$port" -g -c 8 -n 2000 | head -1

kill -TERM $pid
wait $pid || true
trap - EXIT
echo "== daemon log (no patient data in it):"
cat "$log"
rm -f "$log"
echo "== journal: $(pwd)/demo-journal ($(du -sh demo-journal | cut -f1)); every message, accepted or refused, is in it"
command -v mdb_stat >/dev/null && mdb_stat -s msgs demo-journal | sed -n 's/^ *Entries: /   messages stored: /p' || true
