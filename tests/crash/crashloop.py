"""crashloop.py [KILLS] - the crash loop (issue 7): several MLLP senders push
numbered messages while hl7qd is SIGKILLed at random moments and restarted,
KILLS times, and the HTTP target (hl7sink) goes down and comes back now and
then.  Senders behave like real MLLP senders: a message whose ACK did not
arrive is sent again until it is ACKed (the listener has duplicates = ack,
so a re-send of a stored message is answered AA without a second copy).

At the end, checked against the journal (read with python3-lmdb) and what
the target stored:
  - every message that got AA is in the journal, byte-identical, and was
    delivered at least once, byte-identical;
  - nothing was delivered that was never ACKed;
  - a message delivered more than once carries the same Idempotency-Key
    every time (a re-send of what was in flight at a kill).
Prints one summary line and exits 1 on any violation.  `make crashtest`
runs 50 kills; `make check` runs a short loop through tests/integration."""

import os
import random
import shutil
import signal
import socket
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "integration"))
from hl7qtest import Daemon, EB, CR, SB, Sink, msa, message, read_journal  # noqa: E402


class Sender(threading.Thread):
    """Sends S<k>-<n> messages one at a time, each until it is ACKed."""

    def __init__(self, k, port, stop):
        super().__init__(daemon=True)
        self.k, self.port, self.stop = k, port, stop
        self.sent = {}    # control id -> bytes
        self.acked = set()
        self.attempts = 0

    def run(self):
        n, sock, buf = 0, None, b""
        while not self.stop.is_set():
            n += 1
            ctrl = "S%d-%d" % (self.k, n)
            m = message(ctrl, size=random.choice((300, 1200, 5000)))
            self.sent[ctrl] = m
            while True:  # until AA, like a real sender
                if self.stop.is_set() and self.stop.hard:
                    return
                try:
                    if sock is None:
                        sock = socket.create_connection(("127.0.0.1", self.port), timeout=3)
                        buf = b""
                    self.attempts += 1
                    sock.sendall(SB + m + EB + CR)
                    while EB + CR not in buf:
                        chunk = sock.recv(65536)
                        if not chunk:
                            raise ConnectionError("closed")
                        buf += chunk
                    frame, _, buf = buf.partition(EB + CR)
                    code, ack_ctrl = msa(frame[frame.find(SB) + 1:])
                    if code == "AA" and ack_ctrl == ctrl:
                        self.acked.add(ctrl)
                        break
                except (OSError, ConnectionError):
                    if sock:
                        sock.close()
                    sock = None
                    time.sleep(0.05)
        if sock:
            sock.close()


class Stop(threading.Event):
    hard = False


def sink_requests(dirs):
    """Every request all sink incarnations stored: (headers, body)."""
    out = []
    for d in dirs:
        for name in sorted(os.listdir(d)):
            if name.endswith(".head"):
                head = open(os.path.join(d, name), "rb").read().decode().splitlines()
                hdrs = {}
                for line in head[1:]:
                    k, _, v = line.partition(": ")
                    hdrs[k.lower()] = v
                out.append((hdrs, open(os.path.join(d, name[:-5] + ".body"), "rb").read()))
    return out


def run(kills=50, senders=4, seed=None, log=print):
    rnd = random.Random(seed)
    port = None
    sinks, sink_dirs = [], []
    work = tempfile.mkdtemp(prefix="hl7q-crash-")

    def sink_up():
        s = Sink(port=port or 0).start()
        sinks.append(s)
        sink_dirs.append(s.dir)
        return s

    first = sink_up()
    port = first.port
    d = Daemon({"main": "duplicates = ack\nduplicate_window = 1h"},
               extra="[target t]\nurl = %s\nordering = none\nconcurrency = 4\n"
                     "retry_initial = 50ms\nretry_max = 300ms\ntimeout = 5s\n" % first.url)
    d.start()
    stop = Stop()
    threads = [Sender(k, d.port, stop) for k in range(senders)]
    for t in threads:
        t.start()
    sink_alive = [True]

    def flapper():
        while not stop.is_set():
            time.sleep(rnd.uniform(0.5, 2.0))
            if stop.is_set():
                break
            sinks[-1].stop()
            sink_alive[0] = False
            time.sleep(rnd.uniform(0.2, 1.0))
            sink_up()
            sink_alive[0] = True

    fl = threading.Thread(target=flapper, daemon=True)
    fl.start()
    try:
        for i in range(kills):
            time.sleep(rnd.uniform(0.15, 0.9))
            d.proc.send_signal(signal.SIGKILL)
            d.proc.wait()
            d.logf.close()
            d.start()
        time.sleep(0.5)
        stop.set()
        for t in threads:
            t.join(30)
        fl.join(10)
        if not sink_alive[0]:
            sink_up()
        # let delivery finish
        deadline = time.time() + 120
        while time.time() < deadline:
            acked = set().union(*(t.acked for t in threads))
            got = {b for h, b in sink_requests(sink_dirs)}
            sent = {}
            for t in threads:
                sent.update(t.sent)
            if all(sent[c] in got for c in acked):
                break
            time.sleep(0.2)
        d.stop()
        sent = {}
        for t in threads:
            sent.update(t.sent)
        acked = set().union(*(t.acked for t in threads))
        records = read_journal(d.journal)
        stored = {}
        for r in records.values():
            if r["state"] == 1:
                stored.setdefault(r["control_id"].decode(), []).append(r)
        reqs = sink_requests(sink_dirs)
        by_ctrl = {}
        for h, body in reqs:
            by_ctrl.setdefault(h.get("x-hl7-control-id"), []).append((h, body))
        problems = []
        lost = 0
        for c in acked:
            recs = stored.get(c, [])
            if len(recs) != 1 or recs[0]["raw"] != sent[c]:
                problems.append("%s: ACKed but %d journal record(s)%s" %
                                (c, len(recs), "" if not recs else " with other bytes"))
                lost += 1
                continue
            got = by_ctrl.get(c, [])
            if not any(b == sent[c] for h, b in got):
                problems.append("%s: ACKed, never delivered byte-identical" % c)
                lost += 1
        for c, got in by_ctrl.items():
            if c not in acked:
                problems.append("%s: delivered, never ACKed" % c)
            keys = {h.get("idempotency-key") for h, b in got}
            if len(keys) != 1:
                problems.append("%s: delivered %d times with %d Idempotency-Keys" % (c, len(got), len(keys)))
        duplicates = sum(len(g) - 1 for g in by_ctrl.values())
        attempts = sum(t.attempts for t in threads)
        log("crashtest: %d kills, sent %d (%d sends with re-sends), ACKed %d, delivered %d, "
            "duplicates %d (same Idempotency-Key), lost %d" %
            (kills, len(sent), attempts, len(acked), len([c for c in by_ctrl if c in acked]), duplicates, lost))
        for p in problems[:20]:
            log("  " + p)
        return {"sent": len(sent), "acked": len(acked), "delivered": len(by_ctrl), "duplicates": duplicates,
                "lost": lost, "problems": problems}
    finally:
        stop.hard = True
        stop.set()
        d.cleanup()
        for s in sinks:
            s.cleanup()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    kills = int(sys.argv[1]) if len(sys.argv) > 1 else 50
    result = run(kills)
    sys.exit(1 if result["problems"] or result["lost"] else 0)
