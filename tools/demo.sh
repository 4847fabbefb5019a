#!/bin/sh
# demo.sh BINDIR - `make demo`: starts hl7qd on deploy/demo.conf (journal in
# ./demo-journal, a listener on 127.0.0.1), sends sample messages of the
# project's own tests/data/hl7v2 with hl7send, prints each ACK, waits for
# their delivery over HTTPS to a local hl7sink, shows where the journal is,
# then stops both.
set -e
bin=$1
cd "$(dirname "$0")/.."
conf=deploy/demo.conf
samples=tests/data/hl7v2
log=$(mktemp /tmp/hl7qd-demo.XXXXXX)
port=$(sed -n 's/^listen *= *127.0.0.1:\([0-9]*\).*/\1/p' $conf | head -1)

# The HTTPS receiver: hl7sink with a self-signed certificate for 127.0.0.1.
mkdir -p demo-tls demo-sink
if [ ! -f demo-tls/cert.pem ]; then
	openssl req -x509 -newkey rsa:2048 -nodes -days 30 -subj "/CN=127.0.0.1" \
		-addext "subjectAltName=IP:127.0.0.1" -keyout demo-tls/key.pem \
		-out demo-tls/cert.pem 2>/dev/null
fi
# --check reads every file the config names: the certificate exists by now.
"$bin/hl7qd" -c $conf --check
rm -f demo-sink/*
"$bin/hl7sink" -p 2576 -d demo-sink --cert demo-tls/cert.pem --key demo-tls/key.pem > "$log.sink" &
spid=$!
"$bin/hl7qd" -c $conf 2>"$log" &
pid=$!
trap 'kill $pid $spid 2>/dev/null; rm -f "$log" "$log.sink"' EXIT
for i in $(seq 50); do grep -q "ready" "$log" && break; sleep 0.1; done
grep -q "ready" "$log" || { cat "$log"; exit 1; }
echo "== hl7qd is up (pid $pid), listening on 127.0.0.1:$port"

start=$(date -u +%Y-%m-%dT%H:%M:%SZ)
echo "== sending sample messages with hl7send, one ACK each:"
set -- "$samples/adt-a01-admit-v251.hl7" "$samples/adt-a08-update-v26.hl7" \
	"$samples/orm-o01-order-v23.hl7" "$samples/oml-o21-lab-order-v251.hl7" \
	"$samples/oru-r01-nm-panel-v251.hl7" "$samples/oru-r01-text-types-v251.hl7" \
	"$samples/vxu-v04-immunisation-v251-original.hl7" "$samples/siu-s12-new-appointment-v24.hl7" \
	"$samples/mdm-t02-document-v25.hl7" "$samples/batch-fhs-bhs-two-oru-v251.hl7"
"$bin/hl7send" -p "$port" -v "$@" || true

echo "== a refused message (no MSH-10) gets a negative ACK with an ERR segment:"
printf 'MSH|^~\\&|DEMO|HOSP|HL7Q|LOCAL|20261126120000||ADT^A01|||2.5\rPID|1\r' > "$log.bad"
"$bin/hl7send" -p "$port" -v "$log.bad" || true
rm -f "$log.bad"

echo "== 2,000 generated 1 KB ADT messages over 8 connections:"
"$bin/hl7send" -p "$port" -g -c 8 -n 2000 | head -1

echo "== waiting for delivery to hl7sink over HTTPS"
for i in $(seq 100); do
	[ "$(ls demo-sink/*.head 2>/dev/null | wc -l)" -ge 2000 ] && break
	sleep 0.1
done
echo "hl7sink stored $(ls demo-sink/*.head 2>/dev/null | wc -l) requests in $(pwd)/demo-sink; the first one:"
sed 's/^/   /' "$(ls demo-sink/*.head | head -1)"
echo "== health and metrics: curl http://127.0.0.1:2577/healthz and /metrics (a few of them)"
curl -s http://127.0.0.1:2577/healthz | sed 's/^/   /'
curl -s http://127.0.0.1:2577/metrics |
	grep -E '^hl7q_(messages_acked_total|delivered_total|target_pending|target_oldest_pending_age_seconds|commit_batch_size_(sum|count))[ {]' |
	grep -v 'code="\(AR\|CE\|CR\|none\)"' | sed 's/^/   /'
echo "== the operator's view while hl7qd runs: bin/hl7q -c deploy/demo.conf status"
"$bin/hl7q" -c deploy/demo.conf status | sed 's/^/   /'
echo "== bin/hl7q -c deploy/demo.conf ls --since $start --limit 12   (the audit query; --json for JSON lines)"
"$bin/hl7q" -c deploy/demo.conf ls --since "$start" --limit 12 | sed 's/^/   /'
echo "== the refused one: bin/hl7q -c deploy/demo.conf ls --since $start --state rejected"
"$bin/hl7q" -c deploy/demo.conf ls --since "$start" --state rejected | sed 's/^/   /'
first=$("$bin/hl7q" -c deploy/demo.conf --json ls --since "$start" --limit 1 | sed -n 's/^{"id":\([0-9]*\).*/\1/p')
echo "== one message's story: bin/hl7q -c deploy/demo.conf show $first   (--raw prints its bytes)"
"$bin/hl7q" -c deploy/demo.conf show "$first" | sed 's/^/   /'
kill -TERM $pid
wait $pid || true
kill $spid 2>/dev/null || true
trap - EXIT
echo "== daemon log (no patient data in it):"
cat "$log"
rm -f "$log" "$log.sink"
echo "== journal: $(pwd)/demo-journal ($(du -sh demo-journal | cut -f1)); every message, accepted or refused, is in it."
echo "   Try: bin/hl7q -c deploy/demo.conf ls --type ORU; bin/hl7q -c deploy/demo.conf check --max-dead 0"
