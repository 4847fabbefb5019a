"""Integration tests for security (issue 6): MLLP over TLS driven by
Python's ssl module (server-only and mutual authentication, allowed
subjects, a client with the wrong certificate, a TLS 1.0/1.1 client and a
plaintext client refused while other connections flow), allow lists,
outbound certificate checks (wrong host name, expired certificate: kept for
retry, never delivered), the encrypted journal (no patient data in the
file, SIGKILL and restart, byte-identical delivery, replay, key rotation, a
missing key), file modes, and secret files readable by others refused."""

import os
import re
import shutil
import signal
import socket
import ssl
import stat
import subprocess
import tempfile
import time
import unittest
import warnings

from pki import CA
from test_intake import expected_positive
from hl7qtest import (DaemonTest, target, wait_until, BIN, DLV_DELIVERED, Mllp, SB, EB, CR,
                      corpus_files, message, msa, read_deliveries)


class TlsMllp:
    """An MLLP client inside TLS (Python's ssl module)."""

    def __init__(self, port, ca, cert=None, key=None, min_version=None, max_version=None):
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.load_verify_locations(ca)
        if cert:
            ctx.load_cert_chain(cert, key)
        if min_version or max_version:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", DeprecationWarning)
                ctx.minimum_version = min_version
                ctx.maximum_version = max_version
                ctx.set_ciphers("DEFAULT:@SECLEVEL=0")
        raw = socket.create_connection(("127.0.0.1", port), timeout=10)
        self.s = ctx.wrap_socket(raw, server_hostname="127.0.0.1")
        self.buf = b""

    def request(self, payload, timeout=10):
        """Sends one frame; returns the ACK payload, or None when the server
        closes the connection instead."""
        self.s.settimeout(timeout)
        try:
            self.s.sendall(SB + payload + EB + CR)
            while EB + CR not in self.buf:
                data = self.s.recv(65536)
                if not data:
                    return None
                self.buf += data
        except (ssl.SSLError, ConnectionResetError, BrokenPipeError, socket.timeout):
            return None
        frame, _, self.buf = self.buf.partition(EB + CR)
        return frame[frame.find(SB) + 1:]

    def close(self):
        self.s.close()


class Security(DaemonTest):
    def setUp(self):
        super().setUp()
        self.tmp = tempfile.mkdtemp(prefix="hl7q-sec-")
        self.addCleanup(shutil.rmtree, self.tmp, True)

    def pki(self):
        ca, other = CA(self.tmp, "hospital"), CA(self.tmp, "other")
        server = ca.issue("hl7q.example.org", server=True)
        lab = ca.issue("lis01")
        stranger = other.issue("lis01")  # same name, wrong CA
        intruder = ca.issue("printer42")  # right CA, not an allowed subject
        return ca, server, lab, stranger, intruder

    def test_mllp_over_tls(self):
        """Server-only TLS: a TLS 1.2 client gets its ACK, a TLS 1.0/1.1 client
        and a plaintext client are refused, another connection keeps flowing;
        sessions resume."""
        ca, (cert, key), *_ = self.pki()
        d = self.daemon({"tls": "tls_cert = %s\ntls_key = %s" % (cert, key)}).start()
        good = TlsMllp(d.port, ca.pem)
        self.assertEqual(good.s.version(), "TLSv1.2")
        cipher = good.s.cipher()[0]
        self.assertTrue(cipher.startswith("ECDHE-") and ("GCM" in cipher or "CHACHA20" in cipher), cipher)
        self.assertEqual(msa(good.request(message("T1")))[0], "AA")
        for ver in (ssl.TLSVersion.TLSv1, ssl.TLSVersion.TLSv1_1):
            with self.assertRaises((ssl.SSLError, ConnectionResetError)):
                TlsMllp(d.port, ca.pem, min_version=ver, max_version=ver)
            self.assertEqual(msa(good.request(message("T-%s" % ver.name)))[0], "AA")
        plain = Mllp(d.port)
        plain.send(message("CLEAR"))
        self.assertIsNone(plain.recv_frame(timeout=3))  # no ACK in clear: the handshake fails
        self.assertEqual(msa(good.request(message("T2")))[0], "AA")
        log = d.read_log()
        self.assertIn("TLS handshake failed", log)
        self.assertIn("TLSv1.2", log)
        # the plaintext message was never stored
        ctrls = [r["control_id"] for r in d.records().values()]
        self.assertNotIn(b"CLEAR", ctrls)
        self.assertIn(b"T2", ctrls)
        # resumption: a second connection reuses the session
        again = good.s.context.wrap_socket(socket.create_connection(("127.0.0.1", d.port)),
                                           server_hostname="127.0.0.1", session=good.s.session)
        self.assertTrue(again.session_reused)
        again.close()
        good.close()

    def test_issue11_point2_tls_never_drops_ack_bytes(self):
        """MLLP over TLS, a client with a small receive buffer pipelines
        40,000 messages, reads nothing for 2 s, then shuts its side without
        close_notify and reads: every ACK arrives, whole and in order."""
        import select
        ca, (cert, key), *_ = self.pki()
        d = self.daemon({"tls": "tls_cert = %s\ntls_key = %s" % (cert, key)}).start()
        n = 40000
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.load_verify_locations(ca.pem)
        raw = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.cleanups.append(raw.close)
        raw.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        # A small MSS too: loopback's 64K one would give the server a socket
        # buffer of megabytes, and its writes would never block.
        raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_MAXSEG, 536)
        raw.settimeout(10)
        raw.connect(("127.0.0.1", d.port))
        inc, out = ssl.MemoryBIO(), ssl.MemoryBIO()
        tls = ctx.wrap_bio(inc, out, server_hostname="127.0.0.1")
        while True:  # the handshake, blocking
            try:
                tls.do_handshake()
                break
            except ssl.SSLWantReadError:
                raw.sendall(out.read())
                data = raw.recv(65536)
                self.assertTrue(data, "closed during the handshake")
                inc.write(data)
        raw.sendall(out.read())
        raw.setblocking(False)
        # One thread: write all the time (ten messages at a time, so that the
        # server's socket fills while little is owed and more ACKs are
        # appended behind a blocked write), read only after 2 s.
        tosend, plain, acks, shut, queued = bytearray(), bytearray(), [], False, 0
        start = time.time()
        while len(acks) < n and time.time() - start < 300:
            reading = time.time() - start >= 2
            if queued < n and len(tosend) < 65536:
                if not reading:
                    time.sleep(0.0005)  # small turns on the server while it cannot write
                k = min(10, n - queued)
                tls.write(b"".join(SB + message("P%d" % i) + EB + CR for i in range(queued, queued + k)))
                queued += k
                tosend += out.read()
            r, w, _ = select.select([raw] if reading else [], [raw] if tosend else [], [],
                                    0.001 if queued < n else 0.1)
            if w:
                try:
                    k = raw.send(tosend[:262144])
                    del tosend[:k]
                except BlockingIOError:
                    pass
            if queued == n and not tosend and not shut:
                raw.shutdown(socket.SHUT_WR)  # no close_notify: what Python's SSLSocket does
                shut = True
            if r:
                data = raw.recv(65536)
                if not data:
                    break
                inc.write(data)
                while True:
                    try:
                        chunk = tls.read(65536)
                    except (ssl.SSLWantReadError, ssl.SSLZeroReturnError):
                        break
                    if not chunk:
                        break
                    plain += chunk
                while True:
                    end = plain.find(EB + CR)
                    if end < 0:
                        break
                    frame, plain = bytes(plain[:end]), plain[end + 2:]
                    self.assertTrue(frame.startswith(SB), "ACK %d not whole: %r" % (len(acks), frame[:80]))
                    acks.append(msa(frame[1:]))
        self.assertEqual(len(acks), n, "ACKs received")
        self.assertEqual(acks, [("AA", "P%d" % i) for i in range(n)])
        self.assertEqual(bytes(plain), b"")

    def test_reload_rereads_tls_material(self):
        """SIGHUP reads the certificate again: new connections get the new
        one, an open connection keeps working on the old session."""
        ca = CA(self.tmp, "hospital")
        cert_a, key_a = ca.issue("hl7q-old", server=True)
        cert_b, key_b = ca.issue("hl7q-new", server=True)
        live_cert, live_key = os.path.join(self.tmp, "live.pem"), os.path.join(self.tmp, "live.key")
        shutil.copy(cert_a, live_cert)
        shutil.copy(key_a, live_key)
        os.chmod(live_key, 0o600)
        d = self.daemon({"tls": "tls_cert = %s\ntls_key = %s" % (live_cert, live_key)}).start()
        old = TlsMllp(d.port, ca.pem)
        cn = lambda c: dict(x[0] for x in c.s.getpeercert()["subject"])["commonName"]
        self.assertEqual(cn(old), "hl7q-old")
        shutil.copy(cert_b, live_cert)
        shutil.copy(key_b, live_key)
        d.proc.send_signal(signal.SIGHUP)
        self.assertTrue(wait_until(lambda: "reloaded" in d.read_log()))
        new = TlsMllp(d.port, ca.pem)
        self.assertEqual(cn(new), "hl7q-new")
        self.assertEqual(msa(new.request(message("NEWCERT")))[0], "AA")
        self.assertEqual(msa(old.request(message("OLDCERT")))[0], "AA")
        # a certificate that does not load: the reload is refused, TLS goes on
        with open(live_cert, "w") as f:
            f.write("not a certificate\n")
        d.proc.send_signal(signal.SIGHUP)
        self.assertTrue(wait_until(lambda: "reload refused" in d.read_log()))
        self.assertIn("tls_cert", d.read_log().split("reload refused")[1])
        again = TlsMllp(d.port, ca.pem)
        self.assertEqual(cn(again), "hl7q-new")
        for c in (old, new, again):
            c.close()

    def test_mutual_tls_and_allowed_subjects(self):
        """With tls_client_ca a client certificate is required and verified;
        tls_allowed_subjects narrows it; the others are refused while an
        accepted connection keeps flowing."""
        ca, (cert, key), lab, stranger, intruder = self.pki()
        d = self.daemon({"tls": "tls_cert = %s\ntls_key = %s\ntls_client_ca = %s\ntls_allowed_subjects = lis01 | CN=unused"
                                % (cert, key, ca.pem)}).start()
        good = TlsMllp(d.port, ca.pem, *lab)
        self.assertEqual(msa(good.request(message("M1")))[0], "AA")
        for who in (None, stranger, intruder):
            try:
                c = TlsMllp(d.port, ca.pem, *(who or (None, None)))
                # TLS 1.2: the client learns of the refusal on its first read
                self.assertIsNone(c.request(message("NO")))
            except (ssl.SSLError, ConnectionResetError, BrokenPipeError):
                pass
            self.assertEqual(msa(good.request(message("M-ok")))[0], "AA")
        log = d.read_log()
        self.assertIn("client certificate refused", log)
        self.assertIn("is not in tls_allowed_subjects", log)
        self.assertNotIn(b"NO", [r["control_id"] for r in d.records().values()])
        good.close()

    def test_allow_list(self):
        """allow: a peer outside the list is closed at once and logged (address only)."""
        d = self.daemon({"in": "allow = 10.9.9.0/24", "local": "allow = 10.0.0.0/8, 127.0.0.0/8"}).start()
        blocked = Mllp(d.ports["in"])
        self.assertTrue(blocked.closed())
        ok = Mllp(d.ports["local"])
        self.assertEqual(msa(ok.request(message("A1")))[0], "AA")
        self.assertRegex(d.read_log(), r"listener in: refused 127\.0\.0\.1:\d+: not in the allow list")
        bad = subprocess.run([os.path.join(BIN, "hl7qd"), "-c", d.conf, "--check"], capture_output=True, text=True)
        self.assertEqual(bad.returncode, 0)
        with open(d.conf, "a") as f:
            f.write("[listener x]\nlisten = 127.0.0.1:1\nallow = 10.0.0.0/33\n")
        bad = subprocess.run([os.path.join(BIN, "hl7qd"), "-c", d.conf, "--check"], capture_output=True, text=True)
        self.assertEqual(bad.returncode, 1)
        self.assertIn("allow: '10.0.0.0/33' is not an address or CIDR", bad.stderr)

    def test_outbound_wrong_host_and_expired_certificate(self):
        """HTTPS to a target whose certificate names another host, or has
        expired: refused, kept for retry, never delivered in clear."""
        ca = CA(self.tmp, "web")
        wrong = ca.issue("elsewhere", server=True, ip="127.0.0.2", dns="elsewhere.example")
        expired = ca.issue("expired", server=True, expired=True)
        good = ca.issue("good", server=True)
        ports = {}
        sinks = {}
        for name, (cert, key) in (("wrong", wrong), ("expired", expired), ("good", good)):
            s = self.sink("--cert", cert, "--key", key)
            sinks[name] = s
            ports[name] = s.port
        extra = "".join(target(n, "https://127.0.0.1:%d/hl7" % ports[n], "ca_file = %s" % ca.pem)
                        for n in ("wrong", "expired", "good"))
        d = self.daemon(extra=extra).start()
        c = Mllp(d.port)
        self.assertEqual(msa(c.request(message("H1")))[0], "AA")
        self.assertEqual(len(sinks["good"].wait_for(1)), 1)
        time.sleep(1.0)  # several retries of the other two
        self.assertEqual(sinks["wrong"].requests(), [])
        self.assertEqual(sinks["expired"].requests(), [])
        dl = read_deliveries(d.journal)
        (rid,) = {k[0] for k in dl}
        self.assertEqual(dl[(rid, "good")][0], DLV_DELIVERED)
        for n in ("wrong", "expired"):
            state, attempts, status = dl[(rid, n)]
            self.assertIn(state, (1, 2))  # pending or retrying: never delivered, not dead
            self.assertGreaterEqual(attempts, 2)
            self.assertEqual(status, 0)  # no HTTP answer: TLS refused first
        out = subprocess.run([os.path.join(BIN, "hl7q"), "-c", d.conf, "show", "--json", str(rid)],
                             capture_output=True, text=True).stdout
        self.assertIn("certificate", out.lower())

    def encrypted(self, keyfile, extra="", **kw):
        d = self.daemon(journal_extra="encryption_key_file = %s" % keyfile, extra=extra, **kw)
        return d

    def keyfile(self, name, *keys):
        path = os.path.join(self.tmp, name)
        with open(path, "w") as f:
            f.write("# hl7q journal keys: the first seals, the others still open\n")
            for k in keys:
                f.write(k + "\n")
        os.chmod(path, 0o600)
        return path

    def test_encrypted_journal(self):
        """The journal file holds no message text, patient id or name; SIGKILL
        and restart lose nothing; delivery is byte-identical; replay works;
        a rotated key reads old and new records; a missing key refuses."""
        k1, k2 = os.urandom(32).hex(), os.urandom(32).hex()
        key1 = self.keyfile("k1", k1)
        sink = self.sink("--status", "503", "--for", "3")
        d = self.encrypted(key1, extra=target("t", sink.url, "ordering = none\nconcurrency = 4")).start()
        files = corpus_files()
        sent, secrets, public = {}, set(), set()
        c = Mllp(d.port)
        for f in files:
            m = open(f, "rb").read()
            c.send(m)
            if expected_positive(m):
                self.assertIsNotNone(c.recv_frame(timeout=10))
                sent[m] = True
            for seg in m.replace(b"\n", b"\r").split(b"\r"):
                if seg.startswith(b"PID") and len(seg) > 4:
                    fields = seg.split(seg[3:4])
                    # PID-3.1 of each repetition (the MRN), PID-5.1 and 5.2 (names)
                    for rep in (fields[3].split(b"~") if len(fields) > 3 else []):
                        secrets.add(rep.split(b"^")[0])
                    for rep in (fields[5].split(b"~") if len(fields) > 5 else []):
                        secrets.update(rep.split(b"^")[:2])
                elif seg.startswith(b"MSH") and len(seg) > 8:
                    fields = seg.split(seg[3:4])
                    public.update(p for i in (2, 3, 4, 5, 6, 8, 9) if i < len(fields)
                                  for p in fields[i].replace(b"&", b"^").split(b"^"))
        # Audit metadata stays readable by design (sender, receiver, time,
        # type, control id): a value that is also one of those in some corpus
        # message (e.g. "12345" as an MRN and as a control id) cannot count.
        # So is the peer address and every port of the run (the sender's own
        # port is in each record): the corpus MRN "19348" once was one.
        public.add(b"127.0.0.1:%d" % c.s.getsockname()[1])
        with open(d.conf, "rb") as f:
            public.update(re.findall(rb"\d+", f.read()))
        public.add(str(sink.port).encode())
        secrets = {x for x in secrets if len(x) >= 5 and not any(x in p for p in public)}
        self.assertGreater(len(secrets), len(files) // 2)
        d.kill()  # SIGKILL with deliveries outstanding
        raw = open(os.path.join(d.journal, "data.mdb"), "rb").read()
        found = sorted(s for s in secrets if s in raw)
        self.assertEqual(found, [], "patient data in the encrypted journal file")
        self.assertNotIn(b"MSH|^~\\&", raw)
        self.assertEqual(stat.S_IMODE(os.stat(d.journal).st_mode), 0o700)
        for name in ("data.mdb", "lock.mdb"):
            self.assertEqual(stat.S_IMODE(os.stat(os.path.join(d.journal, name)).st_mode), 0o600)

        # rotate: the new key first, the old one kept below it
        key2 = self.keyfile("k2", k2, k1)
        with open(d.conf) as f:
            conf = f.read().replace(key1, key2)
        with open(d.conf, "w") as f:
            f.write(conf)
        d.start()
        c = Mllp(d.port)
        self.assertEqual(msa(c.request(message("AFTER-ROTATION")))[0], "AA")
        want = set(sent) | {message("AFTER-ROTATION")}
        wait_until(lambda: want <= {b for h, b in sink.requests()}, timeout=60)
        bodies = {b for h, b in sink.requests()}
        for m in sent:
            self.assertIn(m, bodies)  # byte-identical, old key's records
        self.assertIn(message("AFTER-ROTATION"), bodies)  # new key's record
        # hl7q with the key: lookups by patient and --raw work across both keys
        hl7q = lambda *a: subprocess.run([os.path.join(BIN, "hl7q"), "-c", d.conf] + list(a),
                                         capture_output=True, timeout=60)
        out = hl7q("--json", "ls", "--patient", "T-AFTER-ROTATION").stdout
        self.assertIn(b'"control_id":"AFTER-ROTATION"', out)
        first = min(d.records())
        self.assertIn(hl7q("show", "--raw", str(first)).stdout, sent)
        # replay decrypts again
        n = len(sink.requests())
        self.assertEqual(hl7q("replay", str(first)).returncode, 0)
        self.assertTrue(wait_until(lambda: len(sink.requests()) == n + 1))
        # without the key: metadata only
        locked = subprocess.run([os.path.join(BIN, "hl7q"), "-j", d.journal, "show", "--raw", str(first)],
                                capture_output=True, text=True)
        self.assertEqual(locked.returncode, 1)
        self.assertIn("encrypted", locked.stderr)
        self.assertEqual(d.stop(), 0)

        # only the new key: records sealed with the old one cannot open: refused
        key3 = self.keyfile("k3", k2)
        with open(d.conf, "w") as f:
            f.write(conf.replace(key2, key3))
        p = subprocess.run([os.path.join(BIN, "hl7qd"), "-c", d.conf], capture_output=True, text=True, timeout=30)
        self.assertEqual(p.returncode, 1)
        self.assertIn("sealed with key id", p.stderr)
        # no key at all: refused, with the reason
        with open(d.conf, "w") as f:
            f.write(conf.replace("encryption_key_file = %s" % key2, ""))
        p = subprocess.run([os.path.join(BIN, "hl7qd"), "-c", d.conf], capture_output=True, text=True, timeout=30)
        self.assertEqual(p.returncode, 1)
        self.assertIn("is encrypted", p.stderr)
        # a key file that is missing
        with open(d.conf, "w") as f:
            f.write(conf.replace(key2, os.path.join(self.tmp, "no-such-key")))
        p = subprocess.run([os.path.join(BIN, "hl7qd"), "-c", d.conf], capture_output=True, text=True, timeout=30)
        self.assertEqual(p.returncode, 1)
        self.assertIn("no-such-key", p.stderr)

    def test_issue15_point4_reseal_turns_encryption_on_and_retires_a_key(self):
        """Encryption turned on for a journal with plaintext records: hl7q
        reseal seals them (a compacted copy holds no patient id); after a
        rotation and a reseal, the old key leaves the key file and hl7qd
        starts (today it refuses for ever); the records still open."""
        k1, k2 = os.urandom(32).hex(), os.urandom(32).hex()
        sink = self.sink()
        d = self.daemon(extra=target("t", sink.url)).start()
        c = Mllp(d.port)
        sent = [message("PLAIN-%d" % i) for i in range(5)]
        for m in sent:
            self.assertEqual(msa(c.request(m))[0], "AA")
        sink.wait_for(5)
        self.assertEqual(d.stop(), 0)
        hl7q = lambda *a: subprocess.run([os.path.join(BIN, "hl7q"), "-c", d.conf] + list(a),
                                         capture_output=True, timeout=60)
        # encryption on: new records sealed, the old ones by hl7q reseal
        key1 = self.keyfile("k1", k1)
        with open(d.conf) as f:
            plain_conf = f.read()
        conf1 = plain_conf.replace("[journal]\n", "[journal]\nencryption_key_file = %s\n" % key1)
        with open(d.conf, "w") as f:
            f.write(conf1)
        d.start()
        r = hl7q("reseal")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertRegex(r.stdout, rb"^resealed (\d\d+) ")  # 5 records and their answer excerpts
        copy = os.path.join(self.tmp, "copy")
        self.assertEqual(d.stop(), 0)  # compact refuses while hl7qd holds the journal
        self.assertEqual(hl7q("compact", copy).returncode, 0)
        raw = open(os.path.join(copy, "data.mdb"), "rb").read()
        for i in range(5):
            self.assertNotIn(b"T-PLAIN-%d" % i, raw)
        self.assertNotIn(b"MSH|^~\\&", raw)
        # rotate: k2 first, k1 below; reseal moves everything to k2
        key2 = self.keyfile("k2", k2, k1)
        with open(d.conf, "w") as f:
            f.write(conf1.replace(key1, key2))
        d.start()
        self.assertEqual(msa(Mllp(d.port).request(message("AFTER")))[0], "AA")
        r = hl7q("--json", "reseal")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn(b'"done":true', r.stdout)
        self.assertEqual(d.stop(), 0)
        # k1 no longer used: the key file without it is accepted
        key3 = self.keyfile("k3", k2)
        with open(d.conf, "w") as f:
            f.write(conf1.replace(key1, key3))
        d.start()
        first = min(d.records())
        self.assertEqual(hl7q("show", "--raw", str(first)).stdout, sent[0])
        out = hl7q("--json", "ls", "--patient", "T-PLAIN-3").stdout
        self.assertIn(b'"control_id":"PLAIN-3"', out)
        self.assertEqual(d.stop(), 0)

    def test_reseal_covers_audit_patient_ids(self):
        """Review: an audit event's sealed patient id (hl7q ls --patient) is
        resealed by hl7q reseal, so after a rotation the old key can leave
        the key file and the trail still names the patient (before, the old
        key was forgotten as unused and the id read "(sealed)" for ever)."""
        k1, k2 = os.urandom(32).hex(), os.urandom(32).hex()
        key1 = self.keyfile("k1", k1)
        d = self.encrypted(key1).start()
        self.assertEqual(msa(Mllp(d.port).request(message("AUD-1")))[0], "AA")
        hl7q = lambda *a: subprocess.run([os.path.join(BIN, "hl7q"), "-c", d.conf] + list(a),
                                         capture_output=True, timeout=60)
        self.assertEqual(hl7q("ls", "--patient", "T-AUD-1").returncode, 0)
        self.assertEqual(d.stop(), 0)
        with open(d.conf) as f:
            conf1 = f.read()
        key2 = self.keyfile("k2", k2, k1)
        with open(d.conf, "w") as f:
            f.write(conf1.replace(key1, key2))
        r = hl7q("reseal")
        self.assertEqual(r.returncode, 0, r.stderr)
        key3 = self.keyfile("k3", k2)
        with open(d.conf, "w") as f:
            f.write(conf1.replace(key1, key3))
        d.start()
        out = hl7q("--json", "audit").stdout
        self.assertIn(b'"patient":"T-AUD-1"', out)
        self.assertNotIn(b"(sealed)", out)
        self.assertEqual(d.stop(), 0)

    def test_secret_files_readable_by_others_are_refused(self):
        """A key or secret file readable by other users: the daemon does not
        start and names the file; a literal password works but warns."""
        key = self.keyfile("k", os.urandom(32).hex())
        os.chmod(key, 0o644)
        d = self.encrypted(key)
        p = subprocess.run([os.path.join(BIN, "hl7qd"), "-c", d.conf], capture_output=True, text=True, timeout=30)
        self.assertEqual(p.returncode, 1)
        self.assertIn("%s is readable by other users (mode 0644)" % key, p.stderr)
        os.chmod(key, 0o600)
        pw = os.path.join(self.tmp, "pw")
        with open(pw, "w") as f:
            f.write("hunter2-secret\n")
        os.chmod(pw, 0o640)
        with open(d.conf, "a") as f:
            f.write(target("t", "http://127.0.0.1:1/", "auth = basic\nusername = u\npassword_file = " + pw))
        p = subprocess.run([os.path.join(BIN, "hl7qd"), "-c", d.conf], capture_output=True, text=True, timeout=30)
        self.assertEqual(p.returncode, 1)
        self.assertIn("password_file %s is readable by other users" % pw, p.stderr)
        os.chmod(pw, 0o600)
        d.start()
        self.assertEqual(d.stop(), 0)
        # a literal password: works, warned about, never printed
        lit = self.daemon(extra=target("t", "http://127.0.0.1:1/", "auth = basic\nusername = u\npassword = hunter2-literal"))
        lit.start()
        lit.stop()
        log = lit.read_log()
        self.assertIn("password is written in the config", log)
        self.assertNotIn("hunter2", log)
        self.assertNotIn("hunter2", d.read_log())


if __name__ == "__main__":
    unittest.main()
