"""Integration test for failover (issue 17, point 4): Debian's haproxy runs
deploy/ha/haproxy.cfg on loopback (addresses, ports and the check interval
substituted) in front of two hl7qd, each with its own journal, delivering
to one sink.  Senders that re-send what was not ACKed keep going when the
active node is SIGKILLed mid-stream; nothing ACKed is lost; the dead
node's backlog is delivered once it is started again.  The figures
(messages sent, ACKed, delivered, duplicates, seconds without service) are
printed, not asserted on."""

import os
import re
import shutil
import socket
import subprocess
import tempfile
import threading
import time

from hl7qtest import (ROOT, SB, EB, CR, DaemonTest, free_port, message, msa, target, wait_until)
from test_service import http_get

HAPROXY_CFG = os.path.join(ROOT, "deploy/ha/haproxy.cfg")


def loopback_haproxy_cfg(front, a, b):
    """deploy/ha/haproxy.cfg for loopback: front port, and (mllp, admin)
    ports of nodes a and b; no chroot/user/daemon/socket/syslog; checks
    every 200 ms instead of 2 s."""
    text = open(HAPROXY_CFG).read()
    text = re.sub(r"^[ \t]*#.*\n", "", text, flags=re.M)
    text = re.sub(r"^[ \t]*(log /dev/log|chroot|user|group|daemon|stats socket)\b.*\n", "", text, flags=re.M)
    text = text.replace("bind 192.0.2.10:6661", "bind 127.0.0.1:%d" % front)
    text = text.replace("192.0.2.11:6661 check port 9575", "127.0.0.1:%d check port %d" % a)
    text = text.replace("192.0.2.12:6661 check port 9575", "127.0.0.1:%d check port %d" % b)
    text = text.replace("inter 2s", "inter 200ms")
    assert "192.0.2." not in text, text
    return text


class Sender(threading.Thread):
    """Sends its messages one at a time through HAProxy; whatever gets no
    ACK (connection refused, closed, reset, timed out) is sent again on a
    new connection until it gets AA."""

    def __init__(self, port, name, count, pace):
        super().__init__(daemon=True)
        self.port, self.name, self.count, self.pace = port, name, count, pace
        self.sent = 0       # frames written, re-sends included
        self.acked = []     # (control id, time of its AA)
        self.resends = 0

    def connect(self):
        while True:
            try:
                s = socket.create_connection(("127.0.0.1", self.port), timeout=2)
                s.settimeout(2)
                return s
            except OSError:
                time.sleep(0.05)

    def run(self):
        s, buf = self.connect(), b""
        for n in range(self.count):
            ctrl = "%s-%d" % (self.name, n)
            first = True
            while True:
                if not first:
                    self.resends += 1
                first = False
                try:
                    s.sendall(SB + message(ctrl) + EB + CR)
                    self.sent += 1
                    while EB + CR not in buf:
                        data = s.recv(65536)
                        if not data:
                            raise ConnectionError("closed")
                        buf += data
                    frame, buf = buf.split(EB + CR, 1)
                    if msa(frame[frame.find(SB) + 1:]) == ("AA", ctrl):
                        self.acked.append((ctrl, time.time()))
                        break
                except OSError:
                    pass
                s.close()  # no ACK: a new connection, the same message again
                s, buf = self.connect(), b""
                time.sleep(0.05)
            time.sleep(self.pace)
        s.close()


class Failover(DaemonTest):
    def test_configs_are_valid(self):
        """deploy/ha/haproxy.cfg and keepalived.conf pass their programs' checks as shipped."""
        p = subprocess.run(["haproxy", "-c", "-f", HAPROXY_CFG], capture_output=True, text=True)
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        keepalived = os.path.join(ROOT, "deploy/ha/keepalived.conf")
        p = subprocess.run(["keepalived", "-t", "-f", keepalived], capture_output=True, text=True)
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        self.assertNotIn("Truncating", p.stdout + p.stderr)


    def test_sigkill_active_node_behind_haproxy(self):
        sink = self.sink("--delay", "50")  # slower than intake: each node keeps a backlog
        nodes = []
        for name in ("a", "b"):
            aport = free_port()
            d = self.daemon(extra=target("portal", sink.url) + "[admin]\nlisten = 127.0.0.1:%d\n" % aport)
            d.aport = aport
            nodes.append(d.start())
        a, b = nodes
        front = free_port()
        hdir = tempfile.mkdtemp(prefix="hl7q-haproxy-")
        self.cleanups.append(lambda: shutil.rmtree(hdir, ignore_errors=True))
        cfg = os.path.join(hdir, "haproxy.cfg")
        with open(cfg, "w") as f:
            f.write(loopback_haproxy_cfg(front, (a.port, a.aport), (b.port, b.aport)))
        hlog = open(os.path.join(hdir, "haproxy.log"), "wb")
        hap = subprocess.Popen(["haproxy", "-db", "-f", cfg], stdout=hlog, stderr=hlog)

        def stop_haproxy():
            if hap.poll() is None:
                hap.terminate()
                hap.wait(10)
            hlog.close()
        self.cleanups.append(stop_haproxy)
        self.assertTrue(wait_until(lambda: hap.poll() is None and
                                   socket.socket().connect_ex(("127.0.0.1", front)) == 0, timeout=10),
                        open(hlog.name).read())
        time.sleep(1)  # both checks green (rise 3 x 200 ms)

        senders = [Sender(front, "S%d" % i, 150, 0.02) for i in range(3)]
        for s in senders:
            s.start()
        acked = lambda: sum(len(s.acked) for s in senders)
        self.assertTrue(wait_until(lambda: acked() >= 150, timeout=60))
        t_kill = time.time()
        a.kill()  # SIGKILL, mid-stream
        for s in senders:
            s.join(180)
            self.assertFalse(s.is_alive(), "a sender is stuck")
        acks = sorted(t for s in senders for _, t in s.acked)
        after = [t for t in acks if t > t_kill]
        outage = after[0] - t_kill if after else float("nan")
        acked_ids = {c for s in senders for c, _ in s.acked}
        self.assertEqual(len(acked_ids), 450)  # every message got its AA in the end

        # b delivers what it took; a's backlog waits for a
        def delivered():
            ids = []
            for _, body in sink.requests():
                m = re.search(rb"\|ADT\^A01\^ADT_A01\|([^|]+)\|", body)
                ids.append(m.group(1).decode())
            return ids
        b_taken = {r["control_id"].decode() for r in b.records().values()}
        wait_until(lambda: b_taken <= set(delivered()), timeout=120, step=0.5)
        waiting = acked_ids - set(delivered())
        print("\n  failover: a's backlog, waiting for it while it is down: %d" % len(waiting))
        self.assertGreater(len(waiting), 0)  # the sink is slow: a had a backlog
        a_taken = {r["control_id"].decode() for r in a.records().values()}
        self.assertLessEqual(waiting, a_taken)  # and it is in a's journal, not lost

        a.start()  # the dead node's backlog goes out when it is back
        self.assertTrue(wait_until(lambda: acked_ids <= set(delivered()), timeout=120, step=0.5),
                        "ACKed but never delivered: %d" % len(acked_ids - set(delivered())))
        ids = delivered()
        sent = sum(s.sent for s in senders)
        print("  failover: messages %d, frames sent %d (re-sent %d), ACKed %d, delivered %d "
              "(distinct %d), duplicates %d, seconds without service %.2f"
              % (450, sent, sum(s.resends for s in senders), len(acked_ids), len(ids), len(set(ids)),
                 len(ids) - len(set(ids)), outage))
        self.assertEqual(set(ids), acked_ids)
        self.assertEqual(http_get(a.aport, "/healthz")[0], 200)
        for d in (a, b):
            self.assertEqual(d.stop(), 0)
