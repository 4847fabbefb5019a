"""Fault injection (issue 7): commit failures at chosen points through the
test seam, a journal that fills up and recovers after a purge, a target that
hangs, resets connections or answers garbage (then recovers), and a disk
that fills up -- a tmpfs the test mounts -- and is freed again.  In every
case: no positive ACK for what was not stored, nothing ACKed lost, no crash."""

import os
import shutil
import socket
import subprocess
import tempfile
import threading
import time
import unittest

from hl7qtest import (DaemonTest, wait_until, BIN, DLV_DELIVERED, Mllp, Sink, err_code, free_port,
                      message, msa, read_deliveries, read_journal)


class BadServer:
    """A TCP server on port that hangs, resets, or answers garbage."""

    def __init__(self, port, mode):
        self.port, self.mode, self.conns = port, mode, 0
        self.s = socket.socket()
        self.s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.s.bind(("127.0.0.1", port))
        self.s.listen(64)
        self.stopped = False
        self.held = []
        self.t = threading.Thread(target=self.loop, daemon=True)
        self.t.start()

    def loop(self):
        while not self.stopped:
            try:
                c, _ = self.s.accept()
            except OSError:
                return
            self.conns += 1
            if self.mode == "hang":
                self.held.append(c)  # read nothing, answer nothing
            elif self.mode == "reset":
                c.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
                c.close()
            else:
                try:
                    c.settimeout(2)
                    c.recv(65536)
                    c.sendall(b"\x00\x01garbage that is not HTTP\r\n\r\n")
                except OSError:
                    pass
                c.close()

    def stop(self):
        self.stopped = True
        self.s.close()
        for c in self.held:
            c.close()
        self.t.join(3)


class Faults(DaemonTest):
    def test_commit_failures_at_chosen_points(self):
        """The N-th commit fails (for N = 1, 2, 5): that frame gets AR with ERR
        207 and is not stored; the ones around it are AA and stored."""
        for n in (1, 2, 5):
            d = self.daemon(env={"HL7Q_TEST_FAIL_COMMIT": str(n)}).start()
            c = Mllp(d.port)
            codes = []
            for i in range(7):
                a = c.request(message("F%d-%d" % (n, i)))
                codes.append(msa(a)[0])
                if codes[-1] == "AR":
                    self.assertEqual(err_code(a), 207)
            c.close()
            self.assertEqual(codes, ["AR" if i == n - 1 else "AA" for i in range(7)], n)
            stored = sorted(r["control_id"].decode() for r in d.records().values())
            self.assertEqual(stored, sorted("F%d-%d" % (n, i) for i in range(7) if i != n - 1))
            self.assertEqual(d.stop(), 0)

    def test_journal_full_then_purge_recovers(self):
        """A 2 MB journal fills: negative ACKs, no crash; `hl7q purge` frees
        space and intake accepts again."""
        d = self.daemon(journal_extra="max_size = 2M").start()
        c = Mllp(d.port)
        codes = [msa(c.request(message("J%d" % i, size=60000)))[0] for i in range(40)]
        self.assertIn("AR", codes)
        acked = ["J%d" % i for i, x in enumerate(codes) if x == "AA"]
        self.assertIsNone(d.proc.poll())
        p = subprocess.run([os.path.join(BIN, "hl7q"), "-c", d.conf, "purge", "--delivered-before", "0s"],
                           capture_output=True, text=True)
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertIn("purged %d messages" % len(acked), p.stdout)
        self.assertEqual(wait_until(lambda: msa(c.request(message("AGAIN", size=60000)))[0] == "AA", timeout=5), True)
        c.close()
        self.assertEqual(d.stop(), 0)

    def bad_target(self, mode):
        port = free_port()
        bad = BadServer(port, mode)
        self.cleanups.append(bad.stop)
        d = self.daemon(extra="[target t]\nurl = http://127.0.0.1:%d/hl7\ntimeout = 1s\n"
                              "retry_initial = 100ms\nretry_max = 300ms\n" % port).start()
        c = Mllp(d.port)
        for i in range(3):
            self.assertEqual(msa(c.request(message("%s%d" % (mode, i))))[0], "AA")  # intake does not wait
        c.close()
        self.assertTrue(wait_until(lambda: bad.conns >= 3, timeout=10), "no retries")
        time.sleep(0.5)
        dl = read_deliveries(d.journal)
        self.assertTrue(all(v[0] in (1, 2) for v in dl.values()), dl)  # waiting, not delivered, not dead
        bad.stop()
        sink = Sink(port=port).start()
        self.cleanups.append(sink.cleanup)
        got = sink.wait_for(3)
        self.assertEqual(sorted(b for h, b in got), sorted(message("%s%d" % (mode, i)) for i in range(3)))
        self.assertTrue(wait_until(lambda: all(v[0] == DLV_DELIVERED for v in read_deliveries(d.journal).values())))
        self.assertIn("target t: down", d.read_log())
        self.assertIn("target t: back", d.read_log())
        self.assertEqual(d.stop(), 0)

    def test_target_hangs(self):
        self.bad_target("hang")

    def test_target_resets_connections(self):
        self.bad_target("reset")

    def test_target_answers_garbage(self):
        self.bad_target("garbage")

    def test_disk_full(self):
        """The journal's filesystem (a 16 MB tmpfs this test mounts) fills:
        negative ACKs, nothing ACKed lost, no crash; freeing space brings
        intake back."""
        mnt = tempfile.mkdtemp(prefix="hl7q-diskfull-")
        p = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=16m", "tmpfs", mnt], capture_output=True, text=True)
        self.assertEqual(p.returncode, 0, "this test mounts a tmpfs (needs root): " + p.stderr)
        self.cleanups.append(lambda: (subprocess.run(["umount", "-l", mnt]), shutil.rmtree(mnt, True)))
        with open(os.path.join(mnt, "ballast"), "wb") as f:
            f.write(b"\0" * (6 << 20))
        journal = os.path.join(mnt, "journal")
        d = self.daemon(journal_extra="max_size = 256M")
        with open(d.conf) as f:
            conf = f.read().replace(d.journal, journal)
        with open(d.conf, "w") as f:
            f.write(conf)
        d.journal = journal
        d.start()
        c = Mllp(d.port)
        acked, codes = [], []
        for i in range(400):
            a = c.request(message("D%d" % i, size=40000))
            code = msa(a)[0] if a else None
            codes.append(code)
            if code == "AA":
                acked.append(message("D%d" % i, size=40000))
            elif code is not None:
                self.assertEqual(err_code(a), 207)
            if codes[-5:] == ["AR"] * 5:
                break
        self.assertIn("AR", codes)
        self.assertIsNone(d.proc.poll(), "hl7qd stopped on a full disk:\n" + d.read_log()[-2000:])
        stored = {r["raw"] for r in read_journal(journal).values() if r["state"] in (1, 4)}  # accepted or unrouted
        self.assertTrue(all(m in stored for m in acked), "an ACKed message is missing")
        os.unlink(os.path.join(mnt, "ballast"))
        self.assertTrue(wait_until(lambda: msa(c.request(message("FREED", size=40000)))[0] == "AA", timeout=10),
                        d.read_log()[-2000:])
        c.close()
        self.assertEqual(d.stop(), 0)
        stored = {r["raw"] for r in read_journal(journal).values() if r["state"] in (1, 4)}  # accepted or unrouted
        self.assertTrue(all(m in stored for m in acked))
        self.assertIn(message("FREED", size=40000), stored)


if __name__ == "__main__":
    unittest.main()
