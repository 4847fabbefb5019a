"""Issue 11 point 5: an outage cannot fill the journal.  A 2,000-message
backlog against a target that refuses every request for 60 s: the journal
grows by a bounded amount, the target sees a few requests a second at most
(one probe at a time), and everything is delivered once it is back."""

import os
import socket
import threading
import time
import unittest

from hl7qtest import (DLV_DELIVERED, DaemonTest, Mllp, Sink, free_port, message, msa,
                      read_deliveries, wait_until)
from test_retry_rules import Scripted

OUTAGE_S = 60
N = 2000


class Refuser:
    """A listening socket that accepts and closes at once, counting connections."""

    def __init__(self, port):
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", port))
        self.sock.listen(128)
        self.sock.settimeout(0.2)
        self.count = 0
        self.stopped = False
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def run(self):
        while not self.stopped:
            try:
                c, _ = self.sock.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            self.count += 1
            c.close()

    def cleanup(self):
        self.stopped = True
        self.thread.join()
        self.sock.close()


class Outage(DaemonTest):
    def test_point5_outage_bounded_journal_and_probe_rate(self):
        port = free_port()
        refuser = Refuser(port)
        self.cleanups.append(refuser)
        d = self.daemon(extra="[target down]\nurl = http://127.0.0.1:%d/hl7\nordering = none\n"
                              "concurrency = 8\nretry_initial = 100ms\nretry_max = 1s\n" % port).start()
        c = Mllp(d.port)
        for i in range(N):
            self.assertIn(msa(c.request(message("OUT%05d" % i)))[0], ("AA", "CA"))
        c.close()
        data = os.path.join(d.journal, "data.mdb")
        size0, count0, t0 = os.path.getsize(data), refuser.count, time.time()
        time.sleep(OUTAGE_S)
        size1, count1, t1 = os.path.getsize(data), refuser.count, time.time()
        refuser.cleanup()
        rate = (count1 - count0) / (t1 - t0)
        growth = size1 - size0
        print("\npoint 5: %d requests in %.0f s of outage (%.2f/s); journal %d -> %d bytes (+%d)"
              % (count1 - count0, t1 - t0, rate, size0, size1, growth))
        self.assertLessEqual(rate, 5.0, "one probe at a time while the target is down")
        self.assertLess(growth, 2 << 20, "the journal grows by a bounded amount")
        sink = Sink(port=port).start()
        self.cleanups.append(sink)
        got = wait_until(lambda: len(sink.requests()) >= N and sink.requests(), timeout=120, step=1)
        ids = set(h["x-hl7-control-id"] for h, _ in (got or sink.requests()))
        self.assertEqual(len(ids), N, "every message delivered once the target is back")

    def test_point5_unwritable_outcomes_back_off(self):
        """A worker that cannot write its outcomes (HL7Q_TEST_FAIL_OUTCOMES:
        the next 5 writes fail) sends the message again only after backing
        off in memory, never in a tight loop; then it is recorded."""
        srv = Scripted({})
        self.cleanups.append(srv)
        d = self.daemon(extra="[target t]\nurl = %s\nretry_initial = 100ms\nretry_max = 1s\n" % srv.url,
                        env={"HL7Q_TEST_FAIL_OUTCOMES": "5"}).start()
        c = Mllp(d.port)
        self.assertEqual(msa(c.request(message("W1")))[0], "AA")
        c.close()
        self.assertTrue(wait_until(lambda: [v for v in read_deliveries(d.journal).values()
                                            if v[0] == DLV_DELIVERED], timeout=20))
        times = [t for t, ctrl in srv.seen if ctrl == "W1"]
        self.assertEqual(len(times), 6, "sent again once per failed write, then recorded")
        gaps = [b - a for a, b in zip(times, times[1:])]
        # the pause is at least half of retry_initial, doubling: never a tight loop
        self.assertGreaterEqual(min(gaps), 0.045, gaps)
        self.assertIn("cannot record 1 outcomes", d.read_log())


if __name__ == "__main__":
    unittest.main()
