"""The bad-input catalogue (tests/bad-inputs/, issue 7): every case is sent
to the real hl7qd on a fresh connection and must get exactly its expected
outcome -- the ACK codes in order (negative ones with an ERR segment), no
ACK, or the connection closed -- and after every case the daemon still
serves everyone else.  expected.tsv lists each case and why; the big ones
are generated here, and a few are behaviours rather than bytes."""

import os
import socket
import threading
import time
import unittest

from hl7qtest import ROOT, Daemon, Mllp, SB, EB, CR, err_code, message, msa

HERE = os.path.join(ROOT, "tests", "bad-inputs")


def cases():
    out = []
    for line in open(os.path.join(HERE, "expected.tsv")):
        if line.startswith("#") or not line.strip():
            continue
        name, expect, why = line.rstrip("\n").split("\t")
        out.append((name, expect, why))
    return out


def generated(name):
    msh = b"MSH|^~\\&|SND|FAC|RCV|FAC|20261126120000||ADT^A01|%s|P|2.5.1\r"
    if name == "gen-10mb-frame":
        return SB + msh % b"BIG" + b"NTE|1||" + b"x" * (10 << 20) + b"\r" + EB + CR
    if name == "gen-100k-segments":
        return SB + msh % b"SEGS" + b"ZZZ|1\r" * 100000 + EB + CR
    if name == "gen-repeated-fields":
        return SB + msh % b"REPS" + b"PID|1||" + b"1^^^H~" * 150000 + b"\r" + EB + CR
    if name == "gen-deep-components":
        return SB + msh % b"DEEP" + b"OBX|1|ST|X||" + b"a&b^" * 100000 + b"\r" + EB + CR
    raise KeyError(name)


class BadInputs(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.d = Daemon({"main": "frame_timeout = 2s\nidle_timeout = 10s\nmax_connections = 300"}).start()

    @classmethod
    def tearDownClass(cls):
        cls.d.cleanup()

    def outcome(self, data, wait=1.5):
        """(ACK payloads, closed) for data sent on a fresh connection."""
        c = Mllp(self.d.port, timeout=30)
        c.send_raw(data)
        acks, closed = [], False
        deadline = time.time() + wait
        while time.time() < deadline:
            c.s.settimeout(max(0.05, deadline - time.time()))
            try:
                chunk = c.s.recv(65536)
            except socket.timeout:
                break
            except ConnectionResetError:
                closed = True
                break
            if not chunk:
                closed = True
                break
            c.buf += chunk
            while EB + CR in c.buf:
                frame, _, c.buf = c.buf.partition(EB + CR)
                acks.append(frame[frame.find(SB) + 1:])
                deadline = time.time() + 0.3  # a little longer for the next
        c.close()
        return acks, closed

    def still_serving(self, tag):
        c = Mllp(self.d.port)
        self.assertEqual(msa(c.request(message("alive-" + tag)))[0], "AA", "not serving after " + tag)
        c.close()
        self.assertIsNone(self.d.proc.poll(), "hl7qd exited after " + tag)

    def check(self, name, expect, acks, closed, why):
        codes = [msa(a)[0] for a in acks]
        msg = "%s (%s): got %s%s" % (name, why, codes, " and a close" if closed else "")
        if expect == "none":
            self.assertEqual(codes, [], msg)
        elif expect == "close":
            self.assertEqual(codes, [], msg)
            self.assertTrue(closed, msg)
        else:
            self.assertEqual(codes, expect.split(","), msg)
            for a, code in zip(acks, codes):
                if code in ("AE", "AR", "CE", "CR"):
                    self.assertIsNotNone(err_code(a), msg + ": no ERR segment")

    def test_catalogue(self):
        all_cases = cases()
        self.assertGreaterEqual(len(all_cases), 40)
        for name, expect, why in all_cases:
            with self.subTest(case=name):
                if name.startswith("behaviour-"):
                    getattr(self, name.replace("behaviour-", "behaviour_").replace("-", "_"))(expect, why)
                else:
                    data = generated(name) if name.startswith("gen-") else \
                        open(os.path.join(HERE, name + ".bin"), "rb").read()
                    wait = 4.5 if expect == "close" else (8 if name.startswith("gen-") else 1.5)
                    acks, closed = self.outcome(data, wait)
                    self.check(name, expect, acks, closed, why)
                self.still_serving(name)
        log = self.d.read_log()
        self.assertNotIn("BADNAME", log)
        self.assertNotIn("BAD-MRN", log)

    def behaviour_slowloris(self, expect, why):
        c = Mllp(self.d.port)
        closed = False
        for ch in SB + message("SLOW"):
            try:
                c.send_raw(bytes([ch]) if ch != 0 else b"")
            except (BrokenPipeError, ConnectionResetError):
                closed = True
                break
            if c.closed(timeout=0.5):
                closed = True
                break
        self.assertTrue(closed, why)
        c.close()

    def behaviour_5000_connections(self, expect, why):
        socks, refused = [], 0
        for i in range(5000):
            try:
                socks.append(socket.create_connection(("127.0.0.1", self.d.port), timeout=5))
            except OSError:
                refused += 1
        time.sleep(0.5)
        open_ones = 0
        for s in socks:
            s.setblocking(False)
            try:
                if s.recv(1) == b"":
                    continue  # closed by the server
            except BlockingIOError:
                pass
            except ConnectionResetError:
                continue
            open_ones += 1
        self.assertLessEqual(open_ones, 300, why)
        self.assertGreater(open_ones, 0, why)
        for s in socks:
            s.close()
        time.sleep(0.3)

    def behaviour_never_reads_acks(self, expect, why):
        hog = socket.create_connection(("127.0.0.1", self.d.port))
        hog.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        data = b"".join(SB + message("HOG%d" % i) + EB + CR for i in range(20000))
        hog.settimeout(20)
        sent = 0

        def pump():
            nonlocal sent
            try:
                while sent < len(data):
                    sent += hog.send(data[sent:sent + 65536])
            except OSError:
                pass

        t = threading.Thread(target=pump, daemon=True)
        t.start()
        time.sleep(2)
        self.still_serving("while a client hogs")
        hog.close()
        t.join(5)

    def behaviour_half_close(self, expect, why):
        s = socket.create_connection(("127.0.0.1", self.d.port), timeout=10)
        s.sendall(SB + message("HALF") + EB + CR)
        s.shutdown(socket.SHUT_WR)
        buf = b""
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            buf += chunk
        s.close()
        self.assertEqual(msa(buf[1:buf.find(EB)])[0], expect, why)


if __name__ == "__main__":
    unittest.main()
