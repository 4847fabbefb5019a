"""Hardening (issues 14 and 15): --check catches what start would, durations
in range, secrets and core dumps, well-formed ACKs and headers whatever the
sender's delimiters, reloads that free what they retire, /metrics at any
backlog, TLS failures that name their reason, foreground log timestamps.
Each test is named after its issue point."""

import os
import re
import socket
import stat
import subprocess
import tempfile
import shutil
import time
import unittest
import urllib.request

from hl7qtest import (BIN, ROOT, DaemonTest, Mllp, message, msa, target, wait_until)


def check(conf, cwd=None):
    return subprocess.run([os.path.join(BIN, "hl7qd"), "-c", conf, "--check"],
                          capture_output=True, text=True, cwd=cwd)


class Issue14_6Check(DaemonTest):
    """hl7qd --check, the ExecStartPre/ExecReload gate, refuses what start would."""

    def conf(self, d, extra):
        with open(d.conf, "a") as f:
            f.write(extra)

    def test_issue14_6_check_catches_missing_and_unreadable_files(self):
        d = self.daemon()
        self.assertEqual(check(d.conf).returncode, 0)
        base = open(d.conf).read()  # noqa
        missing = os.path.join(d.dir, "no-such-ca.pem")
        with open(d.conf, "w") as f:
            f.write(base + target("t", "https://127.0.0.1:1/", "ca_file = %s" % missing))
        p = check(d.conf)
        self.assertEqual(p.returncode, 1, p.stdout)
        self.assertRegex(p.stderr, r"^%s:\d+: \[target t\] ca_file %s cannot be read .*No such file"
                         % (re.escape(d.conf), re.escape(missing)))
        # a directory where a secret file should be
        os.mkdir(os.path.join(d.dir, "tokdir"), 0o700)
        with open(d.conf, "w") as f:
            f.write(base + target("t", "https://127.0.0.1:1/", "auth = bearer\ntoken_file = %s/tokdir" % d.dir))
        p = check(d.conf)
        self.assertEqual(p.returncode, 1)
        self.assertIn("token_file %s/tokdir cannot be read" % d.dir, p.stderr)
        # start refuses the same thing, with the same words
        p = subprocess.run([os.path.join(BIN, "hl7qd"), "-c", d.conf], capture_output=True, text=True, timeout=30)
        self.assertEqual(p.returncode, 1)
        self.assertIn("token_file %s/tokdir cannot be read" % d.dir, p.stderr)

    def test_issue14_6_check_catches_secret_modes(self):
        d = self.daemon()
        tok = os.path.join(d.dir, "token")
        with open(tok, "w") as f:
            f.write("t0ken\n")
        os.chmod(tok, 0o644)
        self.conf(d, target("t", "https://127.0.0.1:1/", "auth = bearer\ntoken_file = %s" % tok))
        p = check(d.conf)
        self.assertEqual(p.returncode, 1, p.stdout)
        self.assertIn("readable by other users (mode 0644)", p.stderr)
        os.chmod(tok, 0o600)
        self.assertEqual(check(d.conf).returncode, 0)

    def test_issue14_6_check_catches_unwritable_journal(self):
        d = self.daemon()
        blocker = os.path.join(d.dir, "a-file")
        open(blocker, "w").close()
        text = open(d.conf).read().replace("path = %s" % d.journal, "path = %s/journal" % blocker)
        with open(d.conf, "w") as f:
            f.write(text)
        p = check(d.conf)
        self.assertEqual(p.returncode, 1, p.stdout)
        self.assertRegex(p.stderr, r"^%s:2: \[journal\] path %s/journal: uid \d+ cannot write"
                         % (re.escape(d.conf), re.escape(blocker)))

    def test_issue14_6_relative_paths_resolve_against_the_config(self):
        d = self.daemon()
        with open(os.path.join(d.dir, "ca.pem"), "w") as f:
            f.write("not checked here\n")
        text = open(d.conf).read().replace("path = %s" % d.journal, "path = journal")
        with open(d.conf, "w") as f:
            f.write(text + target("t", "https://127.0.0.1:1/", "ca_file = ca.pem"))
        elsewhere = tempfile.mkdtemp(prefix="hl7q-cwd-")
        self.cleanups.append(lambda: shutil.rmtree(elsewhere, True))
        p = check(d.conf, cwd=elsewhere)
        self.assertEqual(p.returncode, 0, p.stderr)
        # the daemon, started elsewhere, makes its journal beside the config
        proc = subprocess.Popen([os.path.join(BIN, "hl7qd"), "-c", d.conf], cwd=elsewhere,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.cleanups.append(lambda: (proc.poll() is None and proc.kill(), proc.wait()))
        self.assertTrue(wait_until(lambda: os.path.exists(os.path.join(d.journal, "data.mdb")), 10))
        self.assertFalse(os.path.exists(os.path.join(elsewhere, "journal")))

    def test_issue14_6_section_written_twice(self):
        d = self.daemon()
        self.conf(d, target("t", "http://127.0.0.1:1/") + "[listener main]\nmax_connections = 3\n")
        p = check(d.conf)
        self.assertEqual(p.returncode, 1)
        self.assertRegex(p.stderr, r":\d+: \[listener main\] is written twice \(first at line \d+\)")


class Issue14_8Operators(DaemonTest):
    """Foreground timestamps, the status file's mode, man pages for the tools."""

    def test_issue14_8_foreground_logs_carry_timestamps(self):
        env = {k: v for k, v in os.environ.items() if k != "JOURNAL_STREAM"}
        d = self.daemon()
        d.env = env
        d.start()
        lines = [l for l in d.read_log().splitlines() if l]
        self.assertTrue(lines)
        for l in lines:
            self.assertRegex(l, r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z <\d>")
        d.stop()
        # under journald (JOURNAL_STREAM set), journald stamps: "<N>text" as before
        d2 = self.daemon()
        d2.env = dict(env, JOURNAL_STREAM="8:12345")
        d2.start()
        for l in [l for l in d2.read_log().splitlines() if l]:
            self.assertRegex(l, r"^<\d>\S")

    def test_issue14_8_status_file_is_0600(self):
        old = os.umask(0o022)
        try:
            d = self.daemon().start()
        finally:
            os.umask(old)
        status = os.path.join(d.journal, "hl7qd.status")
        self.assertTrue(wait_until(lambda: os.path.exists(status), 5))
        self.assertEqual(oct(os.stat(status).st_mode & 0o777), "0o600")

    def test_issue14_8_man_pages_for_hl7send_and_hl7sink(self):
        dest = tempfile.mkdtemp(prefix="hl7q-install-")
        self.cleanups.append(lambda: shutil.rmtree(dest, True))
        p = subprocess.run(["make", "-s", "-C", ROOT, "install", "DESTDIR=" + dest, "PREFIX=/usr"],
                           capture_output=True, text=True, timeout=600)
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        for tool in ("hl7send", "hl7sink"):
            page = os.path.join(dest, "usr/share/man/man1/%s.1" % tool)
            self.assertTrue(os.path.exists(page), page)
            text = open(page).read()
            # every long option the tool's getopt table knows is documented
            src = open(os.path.join(ROOT, "tools/%s.c" % tool)).read()
            for opt in re.findall(r'\{"([a-z-]+)", (?:required|no)_argument', src):
                self.assertIn("\\-\\-" + opt.replace("-", "\\-"), text, (tool, opt))
            if shutil.which("groff"):
                g = subprocess.run(["groff", "-man", "-Tutf8", "-ww", "-z", page], capture_output=True, text=True)
                self.assertEqual(g.stderr, "", (tool, g.stderr))


class Issue15_5Secrets(DaemonTest):
    """No core dumps of a process that holds keys and decrypted messages."""

    @unittest.skipUnless(os.geteuid() == 0 and shutil.which("setpriv"), "needs root and setpriv")
    def test_issue15_5_hl7qd_is_not_dumpable_and_the_unit_sets_limitcore(self):
        unit = open(os.path.join(ROOT, "deploy/systemd/hl7qd.service")).read()
        self.assertRegex(unit, r"(?m)^LimitCORE=0$")
        # As an unprivileged user, /proc/PID/status belongs to that user -- unless the
        # process made itself non-dumpable, when the kernel hands it to root.
        d = self.daemon()
        os.chmod(d.dir, 0o755)
        os.makedirs(d.journal, 0o700)
        os.chown(d.journal, 65534, 65534)
        os.chown(d.dir, 65534, 65534)
        log = open(d.log, "ab")
        self.cleanups.append(log.close)
        proc = subprocess.Popen(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
                                 os.path.join(BIN, "hl7qd"), "-c", d.conf], stdout=log, stderr=log)
        self.cleanups.append(lambda: (proc.poll() is None and proc.kill(), proc.wait()))
        self.assertTrue(wait_until(lambda: "ready" in d.read_log(), 10), d.read_log())
        st = os.stat("/proc/%d/status" % proc.pid)
        self.assertEqual(open("/proc/%d/status" % proc.pid).read().split("Uid:")[1].split()[0], "65534")
        self.assertEqual(st.st_uid, 0, "hl7qd is dumpable: a crash would write its memory to a core file")


class Issue15_6Delimiters(DaemonTest):
    """ACKs and headers well-formed whatever the sender's delimiters."""

    def test_issue15_6_ack_msh7_escaped_when_dot_is_a_delimiter(self):
        d = self.daemon().start()
        c = Mllp(d.port)
        self.cleanups.append(c.close)
        msg = (b"MSH|.~\\&|SA|SF|RA|RF|20261126120000||ADT.A01|DOT1|P|2.5.1\r"
               b"PID|1||P1...MR||SYNTHETIC.PATIENT\r")
        ack = c.request(msg)
        self.assertIsNotNone(ack)
        msh = ack.split(b"\r")[0].split(b"|")
        # MSH-7 is one component: its '.' written as \S\
        self.assertRegex(msh[6].decode(), r"^\d{14}\\S\\\d{3}[+-]\d{4}$")
        self.assertEqual(len(msh[6].split(b".")), 1)

    def test_issue15_6_x_hl7_headers_percent_encoded(self):
        sink = self.sink()
        d = self.daemon(extra=target("t", sink.url)).start()
        c = Mllp(d.port)
        self.cleanups.append(c.close)
        m = message("X").replace(b"|X|P|", b"|A B\xc3\xa9|P|")
        self.assertEqual(msa(c.request(m))[0], "AA")
        reqs = sink.wait_for(1)
        self.assertEqual(len(reqs), 1)
        self.assertEqual(reqs[0][0]["x-hl7-control-id"], "A%20B%C3%A9")
        self.assertEqual(reqs[0][0]["x-hl7-message-type"], "ADT^A01^ADT_A01")


class Issue14_7TlsReasons(DaemonTest):
    """A TLS failure to a target names its reason and the fix."""

    def test_issue14_7_tls_failure_names_reason_and_fix(self):
        import json
        from pki import CA
        from hl7qtest import make_cert
        tmp = tempfile.mkdtemp(prefix="hl7q-tls-")
        self.cleanups.append(lambda: shutil.rmtree(tmp, True))
        ca = CA(tmp, "web")
        signed = ca.issue("signed", server=True)
        expired = ca.issue("expired", server=True, expired=True)
        wrong = ca.issue("elsewhere", server=True, ip="127.0.0.2", dns="elsewhere.example")
        selfsigned = make_cert(tmp, "self", "IP:127.0.0.1")
        cases = {  # target: (certificate, ca_file or "", words the reason must hold)
            "unknownca": (signed, "", ["unknown issuer", "ca_file"]),
            "selfsigned": (selfsigned, "", ["self-signed", "ca_file"]),
            "expired": (expired, ca.pem, ["expired"]),
            "wronghost": (wrong, ca.pem, ["host name"]),
        }
        extra = ""
        for name, (cert, cafile, _) in cases.items():
            s = self.sink("--cert", cert[0], "--key", cert[1])
            extra += target(name, "https://127.0.0.1:%d/hl7" % s.port,
                            "ca_file = %s" % cafile if cafile else "", retry_max="1s")
        d = self.daemon(extra=extra).start()
        c = Mllp(d.port)
        self.cleanups.append(c.close)
        self.assertEqual(msa(c.request(message("T1")))[0], "AA")

        def attempts():
            p = subprocess.run([os.path.join(BIN, "hl7q"), "-c", d.conf, "show", "--json", "1"],
                               capture_output=True, text=True)
            if p.returncode != 0:
                return None
            got = {}
            for a in json.loads(p.stdout.splitlines()[0]).get("attempts", []):
                got.setdefault(a.get("target"), a.get("error", ""))
            return got if len(got) == len(cases) else None

        got = wait_until(attempts, 20)
        self.assertTrue(got, "no attempt per target")
        log = d.read_log()
        for name, (_, _, words) in cases.items():
            for w in words:
                self.assertIn(w, got[name].lower(), (name, got[name]))
            self.assertRegex(log, r"target %s: down \(TLS: [^)]*%s" % (name, re.escape(words[0])))


def stored_counts(journal):
    """{target: (pending, retrying, dead, delivered)} as the journal keeps them
    in its targets records (queue/journal.c tstat), or None where absent."""
    import lmdb
    import struct
    env = lmdb.open(journal, readonly=True, lock=True, max_dbs=16, subdir=True)
    out = {}
    with env.begin() as txn:
        db = env.open_db(b"targets", txn=txn, create=False)
        for k, v in txn.cursor(db=db):
            v = bytes(v)
            n = v[25]
            delivered = struct.unpack(">Q", v[1:9])[0]
            if len(v) >= 26 + n + 24:
                out[bytes(k).decode()] = struct.unpack(">QQQ", v[26 + n:26 + n + 24]) + (delivered,)
            else:
                out[bytes(k).decode()] = None
    env.close()
    return out


def recount(journal):
    """{target: (pending, retrying, dead, delivered)} counted from every delivery record."""
    from hl7qtest import read_deliveries
    out = {}
    for (rid, t), (state, _, _) in read_deliveries(journal).items():
        c = out.setdefault(t, [0, 0, 0, 0])
        c[{1: 0, 2: 1, 4: 2, 3: 3}[state]] += 1
    return {t: tuple(c) for t, c in out.items()}


class Issue15_8Metrics(DaemonTest):
    """/metrics reads counts kept as messages move, whatever the backlog."""

    def test_issue15_8_counts_kept_as_messages_move(self):
        from hl7qtest import free_port
        ok, dead, down = self.sink(), self.sink("--status", "400"), self.sink("--status", "503")
        aport = free_port()
        extra = (target("ok", ok.url) + target("dead", dead.url) + target("down", down.url) +
                 "[admin]\nlisten = 127.0.0.1:%d\n" % aport)
        d = self.daemon(extra=extra).start()
        c = Mllp(d.port)
        self.cleanups.append(c.close)
        for i in range(8):
            self.assertEqual(msa(c.request(message("M%d" % i)))[0], "AA")
        self.assertEqual(len(ok.wait_for(8)), 8)
        self.assertTrue(wait_until(lambda: recount(d.journal).get("dead", (0, 0, 0))[2] == 8))
        hl7q = lambda *a: subprocess.run([os.path.join(BIN, "hl7q"), "-c", d.conf] + list(a),
                                         capture_output=True, text=True)
        self.assertEqual(hl7q("replay", "--dead", "--target", "dead").returncode, 0)
        self.assertEqual(hl7q("purge", "1", "2", "--force").returncode, 0)  # replayed: not delivered
        self.assertTrue(wait_until(lambda: recount(d.journal).get("dead", (0, 0, 0))[2] == 6))
        self.assertEqual(d.stop(), 0)
        # every move (queued, retried, dead, delivered, replayed, purged) kept the counts
        want = recount(d.journal)
        self.assertEqual(want["ok"], (0, 0, 0, 6))
        self.assertEqual(want["dead"][2], 6)
        got = stored_counts(d.journal)
        for t in ("ok", "dead", "down"):
            self.assertEqual(got.get(t), want[t], t)
        # and /metrics shows them (delivery held: nothing moves meanwhile)
        d.env = dict(d.env, HL7Q_TEST_HOLD_DELIVERY="1")
        d.start()
        body = urllib.request.urlopen("http://127.0.0.1:%d/metrics" % aport, timeout=10).read().decode()
        for t in ("ok", "dead", "down"):
            for i, name in enumerate(("pending", "retrying", "dead", "delivered")):
                self.assertIn('hl7q_target_%s{target="%s"} %d\n' % (name, t, want[t][i]), body)

    def test_issue15_8_healthz_answers_while_a_scrape_is_open(self):
        """A scrape whose client has not finished sending its request holds
        one connection; /healthz on another still answers at once."""
        from hl7qtest import free_port
        aport = free_port()
        d = self.daemon(extra="[admin]\nlisten = 127.0.0.1:%d\n" % aport).start()
        slow = socket.create_connection(("127.0.0.1", aport), timeout=5)
        self.cleanups.append(slow.close)
        slow.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\n")  # headers not finished
        time.sleep(0.2)
        r = urllib.request.urlopen("http://127.0.0.1:%d/healthz" % aport, timeout=5)
        self.assertEqual(r.status, 200)


def asan():
    """Whether the hl7qd under test is built with AddressSanitizer."""
    with open(os.path.join(BIN, "hl7qd"), "rb") as f:
        return b"__asan_init" in f.read()


def rss_anon_kb(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("RssAnon:"):
                return int(line.split()[1])
    return 0


class Issue15_7Reloads(DaemonTest):
    """Reloads free what they retire: workers, configs, TLS contexts."""

    RELOADS = int(os.environ.get("HL7Q_RELOADS", "200"))

    def test_issue15_7_reloads_that_change_a_target_do_not_grow_rss(self):
        import signal
        sink = self.sink()
        d = self.daemon()
        base = open(d.conf).read()
        with open(d.conf, "a") as f:
            f.write(target("t", sink.url))
        d.start()
        c = Mllp(d.port)
        self.cleanups.append(c.close)

        def reload(i):
            with open(d.conf, "w") as f:  # a target whose settings change every time
                f.write(base + target("t", sink.url, "timeout = %ds" % (10 + i % 50)) +
                        target("u%d" % (i % 2), sink.url))
            before = d.read_log().count("reloaded ")
            d.proc.send_signal(signal.SIGHUP)
            self.assertTrue(wait_until(lambda: d.read_log().count("reloaded ") > before, 10), i)

        for i in range(10):  # warm up: allocator arenas, libcurl, the log
            reload(i)
        self.assertEqual(msa(c.request(message("R0")))[0], "AA")
        time.sleep(0.5)
        start = rss_anon_kb(d.proc.pid)
        for i in range(10, 10 + self.RELOADS):
            reload(i)
        self.assertEqual(msa(c.request(message("R1")))[0], "AA")
        self.assertEqual(len(sink.wait_for(4)), 4)  # R0, R1 to t and to u*
        time.sleep(1.0)  # retired workers finish and are reaped between turns
        grown = rss_anon_kb(d.proc.pid) - start
        print("\n15.7: RssAnon %d kB -> %+d kB after %d reloads" % (start, grown, self.RELOADS))
        if not asan():  # ASan's quarantine keeps freed memory resident on purpose
            self.assertLess(grown, 1024, "anonymous RSS grew %d kB over %d reloads" % (grown, self.RELOADS))
        self.assertEqual(d.stop(), 0)  # under ASan, LeakSanitizer fails the exit on a leak

    def test_issue15_7_tls_config_lives_while_its_connections_do(self):
        """A reload re-reads a TLS listener's certificate: a connection made
        before it goes on with the old context, which is freed when it closes."""
        import signal
        import ssl
        from hl7qtest import make_cert
        tmp = tempfile.mkdtemp(prefix="hl7q-tlsr-")
        self.cleanups.append(lambda: shutil.rmtree(tmp, True))
        cert, key = make_cert(tmp, "srv", "IP:127.0.0.1")
        d = self.daemon({"tls": "tls_cert = %s\ntls_key = %s" % (cert, key)}).start()
        ctx = ssl.create_default_context(cafile=cert)

        def connect():
            raw = socket.create_connection(("127.0.0.1", d.port), timeout=10)
            return ctx.wrap_socket(raw, server_hostname="127.0.0.1")

        def request(s, ctrl):
            s.sendall(b"\x0b" + message(ctrl) + b"\x1c\r")
            buf = b""
            while b"\x1c\r" not in buf:
                chunk = s.recv(65536)
                if not chunk:
                    return None
                buf += chunk
            return buf[1:buf.index(b"\x1c\r")]

        old = connect()
        self.assertEqual(msa(request(old, "T0"))[0], "AA")
        for i in range(20):
            before = d.read_log().count("reloaded ")
            d.proc.send_signal(signal.SIGHUP)
            self.assertTrue(wait_until(lambda: d.read_log().count("reloaded ") > before, 10), i)
        self.assertEqual(msa(request(old, "T1"))[0], "AA")  # the retired context still serves it
        old.close()
        time.sleep(0.3)
        new = connect()
        self.assertEqual(msa(request(new, "T2"))[0], "AA")
        new.close()
        self.assertEqual(d.stop(), 0)


if __name__ == "__main__":
    unittest.main()
