"""Integration tests for issue 14 points 1-5: the access audit trail (each
command leaves exactly its event; events survive purge and retention; the
RFC 5424 echo carries no patient id; an encrypted journal seals the patient
filter; a user who cannot write the event is refused), the CLI's GNU-style
options and help, one vocabulary for ls, replay --missing, and status and
check knowing whether hl7qd runs (also through --admin)."""

import hashlib
import json
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
import unittest

from hl7qtest import DaemonTest, target, wait_until, BIN, Mllp, message, msa, free_port

HL7Q = os.path.join(BIN, "hl7q")
ME = pwd.getpwuid(os.getuid()).pw_name


def run(*args, env=None, user=None):
    kw = {"user": user} if user else {}
    return subprocess.run([HL7Q] + list(args), capture_output=True, timeout=60,
                          env=dict(os.environ, **(env or {})), **kw)


def jlines(p):
    return [json.loads(l) for l in p.stdout.decode().splitlines() if l.strip()]


def adt(ctrl, patient, trigger="A01", app="LAB"):
    return ("MSH|^~\\&|%s|FAC|RCV|RFAC|20260101120000||ADT^%s^ADT_%s|%s|P|2.5\r"
            "EVN|%s|20260101120000\r"
            "PID|1||%s^^^HOSP^MR||Doe^John||19800101|M\r" % (app, trigger, trigger, ctrl, trigger, patient)).encode()


def oru(ctrl, patient):
    return ("MSH|^~\\&|LIS|FAC|RCV|RFAC|20260101120000||ORU^R01^ORU_R01|%s|P|2.5\r"
            "PID|1||%s^^^HOSP^MR||Doe^Jane\r"
            "OBR|1||X|GLU\rOBX|1|NM|GLU||5.5|mmol/L\r" % (ctrl, patient)).encode()


class Syslog5424:
    """A TCP listener on 127.0.0.1 that keeps octet-counted RFC 5424 messages."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.messages = []
        self.stopped = False
        self.thread = threading.Thread(target=self.serve, daemon=True)
        self.thread.start()

    def serve(self):
        while not self.stopped:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            data = b""
            conn.settimeout(5)
            try:
                while True:
                    chunk = conn.recv(65536)
                    if not chunk:
                        break
                    data += chunk
            except OSError:
                pass
            conn.close()
            while data:
                n, rest = data.split(b" ", 1)
                self.messages.append(rest[:int(n)].decode())
                data = rest[int(n):]

    def cleanup(self):
        self.stopped = True
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.sock.close()


class Operators(DaemonTest):
    def q(self, d, *args, check=0, **kw):
        p = run("-c", d.conf, *args, **kw)
        if check is not None and p.returncode != check:
            raise AssertionError("hl7q %s: exit %d (wanted %d)\nstdout: %s\nstderr: %s" %
                                 (" ".join(args), p.returncode, check, p.stdout.decode("utf-8", "replace"),
                                  p.stderr.decode("utf-8", "replace")))
        return p

    def events(self, d, *args):
        """The audit trail (without the listings' own events)."""
        ev = jlines(self.q(d, "audit", "--json", *args))
        if not args:
            self.assertEqual((ev[-1]["command"], ev[-1]["program"]), ("audit", "hl7q"))
        return [e for e in ev if e["command"] != "audit"]

    def send(self, d, *msgs):
        c = Mllp(d.port)
        for m in msgs:
            self.assertEqual(msa(c.request(m))[0], "AA")
        c.close()

    def test_each_command_leaves_exactly_its_event(self):
        """ls, show, show --raw, replay, purge, compact and audit each commit one
        event naming the user, the command, the filter and the ids, before
        printing; SUDO_USER is kept; hl7qd's start names the config's SHA-256."""
        sink = self.sink()
        d = self.daemon(extra=target("t", sink.url)).start()
        self.send(d, adt("A1", "P-111"), adt("A2", "P-222"), oru("O1", "P-111"))
        sink.wait_for(3)
        start = [e for e in self.events(d) if e["program"] == "hl7qd"]
        self.assertEqual([e["command"] for e in start], ["start"])
        sha = hashlib.sha256(open(d.conf, "rb").read()).hexdigest()
        self.assertIn("sha256=" + sha, start[0]["detail"])

        before = len(self.events(d))
        self.q(d, "ls", "--type", "ADT^*")
        self.q(d, "show", "2")
        self.assertEqual(self.q(d, "show", "1", "--raw").stdout, adt("A1", "P-111"))
        self.q(d, "ls", "--patient", "P-111", "--json")
        self.q(d, "replay", "3", env={"SUDO_USER": "alice"})
        self.q(d, "purge", "2")
        out = tempfile.mkdtemp(prefix="hl7q-compact-")
        self.addCleanup(shutil.rmtree, out, True)
        self.assertEqual(d.stop(), 0)  # compact refuses while hl7qd holds the journal
        self.q(d, "compact", os.path.join(out, "c"))
        d.start()  # running again, for status and check below
        ev = [e for e in self.events(d) if e["program"] == "hl7q"][before - 1:]
        got = [(e["command"], e["filter"], e["ids"], e["count"]) for e in ev]
        self.assertEqual(got[-7:], [
            ("ls", "--type=ADT^*", [1, 2], 2),
            ("show", "2", [2], 1),
            ("show", "--raw 1", [1], 1),
            ("ls", "--patient=(patient)", [1, 3], 2),
            ("replay", "3", [3], 1),
            ("purge", "2", [2], 1),
            ("compact", os.path.join(out, "c"), [], 2),
        ])
        for e in ev[-7:]:
            self.assertEqual((e["user"], e["uid"], e["host"]), (ME, os.getuid(), socket.gethostname()))
        self.assertEqual(ev[-4]["patient"], "P-111")  # not encrypted: as the journal keeps it
        self.assertEqual([e["sudo_user"] for e in ev[-7:]], ["", "", "", "", "alice", "", ""])
        # status and check read counts only: no event
        n = len(self.events(d))
        self.q(d, "status")
        self.q(d, "check")
        self.assertEqual(len(self.events(d)), n)
        # a failed command (no such id) shows nothing and records nothing
        self.assertEqual(self.q(d, "show", "99", check=1).stdout, b"")
        self.assertEqual(len(self.events(d)), n)
        # --user (login or sudo user) and --id
        self.assertEqual([e["command"] for e in self.events(d, "--user", "alice")], ["replay"])
        self.assertEqual([e["command"] for e in self.events(d, "--id", "2")], ["ls", "show", "purge"])
        d.stop()
        self.assertEqual([e["command"] for e in self.events(d) if e["program"] == "hl7qd"],
                         ["start", "stop", "start", "stop"])  # stopped for compact, started again

    def test_events_survive_purge_dead_and_retention(self):
        """purge --dead and retention remove messages, never audit events;
        only audit purge --before does, and it leaves its own event."""
        sink = self.sink()
        d = self.daemon(extra=target("good", sink.url, "types = ADT^*") +
                        target("down", "http://127.0.0.1:1/x", "types = ORU^*\nmax_attempts = 1"),
                        journal_extra="retention = 1s").start()
        self.send(d, adt("R1", "P-1"), oru("R2", "P-2"))
        sink.wait_for(1)
        self.assertTrue(wait_until(lambda: jlines(self.q(d, "ls", "--json", "--state", "dead"))))
        self.q(d, "show", "1")
        self.q(d, "show", "2")
        self.assertIn(b"purged 1 message", self.q(d, "purge", "--dead").stdout)
        # retention's first pass runs 5 s after start: message 1 (delivered) goes
        self.assertTrue(wait_until(lambda: run("-c", d.conf, "show", "1").returncode == 1, timeout=20))
        self.assertEqual(jlines(self.q(d, "ls", "--json")), [])
        shows = [e["ids"] for e in self.events(d) if e["command"] == "show"]
        self.assertEqual(shows[:2], [[1], [2]])
        cmds = [e["command"] for e in self.events(d, "--id", "2")]
        self.assertIn("ls", cmds)  # the wait for the dead message listed it
        self.assertEqual([c for c in cmds if c != "ls"], ["show", "purge"])
        # audit purge: the events before TIME go, its own event stays
        time.sleep(0.05)
        cut = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(time.time() + 1)) + "Z"
        time.sleep(1.1)
        self.q(d, "show", "--help")  # help reads nothing: no event
        p = self.q(d, "audit", "purge", "--before", cut)
        self.assertIn(b"purged", p.stdout)
        left = self.events(d)
        self.assertEqual([e["command"] for e in left], ["audit purge"])
        self.assertIn("before=", left[0]["detail"])

    def test_rfc5424_echo_carries_ids_not_patients(self):
        """[audit] syslog_rfc5424: each event also goes to the collector as one
        octet-counted RFC 5424 message with ids and counts, no patient id."""
        col = Syslog5424()
        self.cleanups.append(col)
        d = self.daemon(extra=target("t", "http://127.0.0.1:1/x") +
                        "[audit]\nsyslog_rfc5424 = 127.0.0.1:%d\n" % col.port).start()
        self.send(d, adt("S1", "SECRET-PID-77"))
        self.q(d, "show", "1")
        self.q(d, "ls", "--patient", "SECRET-PID-77")
        msgs = wait_until(lambda: col.messages if len(col.messages) >= 3 else None)
        self.assertEqual(len(msgs), 3, msgs)
        start, show, ls = msgs
        self.assertRegex(start, r"^<85>1 \S+Z \S+ hl7q-audit \d+ start - user=\S+ .*program=hl7qd")
        self.assertIn(" show - user=%s(%d) sudo_user=- " % (ME, os.getuid()), show)
        self.assertIn("command=show filter=\"1\" ids=1 count=1", show)
        self.assertIn("patient=yes", ls)
        for m in msgs:
            self.assertNotIn("SECRET-PID-77", m)
        # a key that is not host:port: FILE:LINE from --check
        bad = os.path.join(d.dir, "bad.conf")
        with open(bad, "w") as f:
            f.write(open(d.conf).read().replace("127.0.0.1:%d" % col.port, "siem.example.org"))
        p = subprocess.run([os.path.join(BIN, "hl7qd"), "-c", bad, "--check"], capture_output=True)
        self.assertEqual(p.returncode, 1)
        self.assertRegex(p.stderr.decode(), r"bad.conf:\d+: syslog_rfc5424: 'siem.example.org' is not host:port")
        # a collector that is down: a warning, the command still runs (its event is in the journal)
        col.cleanup()
        p = self.q(d, "show", "1")
        self.assertIn(b"syslog_rfc5424", p.stderr)
        self.assertEqual(self.events(d)[-1]["command"], "show")

    def test_reload_echo_to_a_hung_collector_does_not_hold_intake(self):
        """A reload's audit event goes to the RFC 5424 collector from a thread
        of its own: with a collector whose accept queue is full (its SYNs are
        dropped, so hl7qd's connect hangs), a message sent after the SIGHUP is
        ACKed while that connect is still pending."""
        hung = socket.socket()
        self.cleanups.append(hung.close)
        hung.bind(("127.0.0.1", 0))
        hung.listen(0)
        port = hung.getsockname()[1]
        fillers = []
        for _ in range(4):  # fill the accept queue; later SYNs are dropped
            f = socket.socket()
            f.setblocking(False)
            f.connect_ex(("127.0.0.1", port))
            fillers.append(f)
            self.cleanups.append(f.close)
        time.sleep(0.2)

        def syn_sent():  # connections to the collector still being opened (state 02)
            with open("/proc/net/tcp") as f:
                return sum(1 for l in f.readlines()[1:]
                           if l.split()[3] == "02" and l.split()[2].endswith(":%04X" % port))

        col = Syslog5424()  # the collector hl7qd starts with, so start's echo goes through
        self.cleanups.append(col)
        d = self.daemon(extra=target("t", "http://127.0.0.1:1/x") +
                        "[audit]\nsyslog_rfc5424 = 127.0.0.1:%d\n" % col.port).start()
        c = Mllp(d.port)
        self.cleanups.append(c.close)
        self.assertEqual(msa(c.request(adt("H0", "P-H")))[0], "AA")
        with open(d.conf) as f:
            conf = f.read()
        with open(d.conf, "w") as f:
            f.write(conf.replace("127.0.0.1:%d" % col.port, "127.0.0.1:%d" % port))
        fill = syn_sent()  # the fillers' own connects, dropped too
        os.kill(d.proc.pid, signal.SIGHUP)
        self.assertTrue(wait_until(lambda: syn_sent() > fill, timeout=10, step=0.01),
                        "no connect to the hung collector")
        self.assertEqual(msa(c.request(adt("H1", "P-H"), timeout=30))[0], "AA")
        self.assertGreater(syn_sent(), fill, "the ACK waited for the collector's connect")

    def test_encrypted_journal_seals_the_patient_filter(self):
        """With encryption at rest the patient id of an ls --patient event is
        sealed: the key's holder reads it, -j without the key does not, and the
        stored bytes do not hold it."""
        key = os.path.join(tempfile.mkdtemp(prefix="hl7q-key-"), "k")
        self.addCleanup(shutil.rmtree, os.path.dirname(key), True)
        with open(key, "w") as f:
            f.write("11" * 32 + "\n")
        os.chmod(key, 0o600)
        d = self.daemon(extra=target("t", "http://127.0.0.1:1/x"),
                        journal_extra="encryption_key_file = %s" % key).start()
        self.assertEqual([e["command"] for e in self.events(d) if e["program"] == "hl7qd"],
                         ["key-rotation", "start"])
        self.send(d, adt("E1", "SEALED-PID-5"))
        self.q(d, "ls", "--patient", "SEALED-PID-5")
        ev = [e for e in self.events(d) if e["command"] == "ls"]
        self.assertEqual((ev[0]["patient"], ev[0]["ids"]), ("SEALED-PID-5", [1]))
        nokey = [e for e in jlines(run("-j", d.journal, "audit", "--json")) if e["command"] == "ls"]
        self.assertEqual(nokey[0]["patient"], "(sealed)")
        d.stop()
        raw = open(os.path.join(d.journal, "data.mdb"), "rb").read()
        self.assertNotIn(b"SEALED-PID-5", raw)
        self.assertIn(b"--patient=(patient)", raw)
        # a start without the key fails, and says so in the trail
        conf = open(d.conf).read()
        with open(d.conf, "w") as f:
            f.write(conf.replace("encryption_key_file = %s" % key, ""))
        d.start(wait=False)
        self.assertEqual(d.proc.wait(10), 1)
        d.logf.close()
        with open(d.conf, "w") as f:
            f.write(conf)
        d.start()
        daemon = [(e["command"], e["detail"]) for e in self.events(d) if e["program"] == "hl7qd"]
        self.assertEqual([c for c, _ in daemon], ["key-rotation", "start", "stop", "open-failed", "start"])
        self.assertIn("no encryption_key_file", daemon[3][1])

    def test_refuses_when_the_event_cannot_be_written(self):
        """A user who can read but not write the journal gets exit 2 and a
        clear message from ls/show; nothing is printed and no event appears."""
        d = self.daemon(extra=target("t", "http://127.0.0.1:1/x")).start()
        self.send(d, adt("W1", "P-W"))
        n = len(jlines(self.q(d, "audit", "--json")))
        if os.getuid() == 0:
            os.chmod(d.dir, 0o755)
            os.chmod(d.journal, 0o755)
            for f in os.listdir(d.journal):
                os.chmod(os.path.join(d.journal, f), 0o644)
            os.chmod(d.conf, 0o644)
            p = run("-c", d.conf, "show", "1", user="nobody")
        else:
            os.chmod(os.path.join(d.journal, "data.mdb"), 0o444)
            self.addCleanup(os.chmod, os.path.join(d.journal, "data.mdb"), 0o600)
            p = run("-c", d.conf, "show", "1")
        self.assertEqual(p.returncode, 2, p.stderr)
        self.assertEqual(p.stdout, b"")
        err = p.stderr.decode()
        self.assertIn("audit", err)
        self.assertIn("hl7q(1) ACCESS", err)
        self.assertEqual(len(err.strip().splitlines()), 1)
        if os.getuid() != 0:
            os.chmod(os.path.join(d.journal, "data.mdb"), 0o600)
        self.assertEqual(len(jlines(self.q(d, "audit", "--json"))), n + 1)  # just this listing's

    def test_options_anywhere_and_help(self):
        """GNU style: options after operands, -c after the command; help COMMAND
        and COMMAND --help print the command's usage."""
        d = self.daemon(extra=target("t", "http://127.0.0.1:1/x")).start()
        self.send(d, adt("G1", "P-G"))
        self.assertEqual(run("show", "1", "--raw", "-c", d.conf).stdout, adt("G1", "P-G"))
        self.assertEqual(jlines(run("show", "1", "--json", "-c", d.conf))[0]["control_id"], "G1")
        self.assertEqual(run("purge", "1", "--dry-run", "--force", "-c", d.conf).stdout.decode().strip(),
                         "would purge 1 message")
        p = run("status", "-c", d.conf)
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertIn("hl7qd: running (pid %d)" % d.proc.pid, p.stdout.decode())
        self.assertEqual(jlines(run("status", "--json", "--config", d.conf))[-1]["hl7qd"],
                         {"running": True, "state": "running", "pid": d.proc.pid})
        self.assertEqual(run("ls", "--json", "-c", d.conf, "--state", "pending").returncode, 0)
        for args in (["help", "show"], ["show", "--help"], ["-c", d.conf, "show", "--help"]):
            p = run(*args)
            self.assertEqual(p.returncode, 0, args)
            self.assertTrue(p.stdout.decode().startswith("usage: hl7q show ID [--raw | --json | --fhir [--target T]]"), p.stdout)
        p = run("help", "replay")
        self.assertIn("--missing", p.stdout.decode())
        self.assertTrue(run("--help").stdout.decode().startswith("usage: hl7q COMMAND"))
        for args in (["help", "nope"], ["show", "1", "--frob", "-c", d.conf]):
            p = run(*args)
            self.assertEqual(p.returncode, 1, args)
            self.assertEqual(len(p.stderr.decode().strip().splitlines()), 1)
        self.assertIn(b"see hl7q help show", run("show", "1", "--frob", "-c", d.conf).stderr)

    def test_one_vocabulary(self):
        """ls --type takes the router's patterns; --state pending counts as check
        and status do; duplicate, unrouted, --listener, --sender; a target or
        listener that does not exist is an error; replay --since says which
        messages a target never had and --missing sends only those."""
        a = self.sink()
        d = self.daemon(listeners={"main": "duplicates = ack\n", "lab": ""},
                        extra=target("a", a.url, "types = ADT^A01 ORU^*") +
                        target("down", "http://127.0.0.1:1/x", "types = ORU^*", retry_max="1h")).start()
        self.send(d, adt("V1", "P1"), adt("V2", "P2", trigger="A08", app="HIS"), oru("V3", "P3"))
        self.send(d, adt("V1", "P1"))  # a duplicate, acked
        c = Mllp(d.ports["lab"])
        self.assertEqual(msa(c.request(oru("V5", "P5")))[0], "AA")
        c.close()
        a.wait_for(3)
        ids = lambda *args: [o["id"] for o in jlines(self.q(d, "ls", "--json", *args))]
        self.assertEqual(ids("--type", "ADT^*"), [1, 2, 4])
        self.assertEqual(ids("--type", "ADT"), [1, 2, 4])
        self.assertEqual(ids("--type", "ADT^A08"), [2])
        self.assertEqual(ids("--type", "*"), [1, 2, 3, 4, 5])
        self.assertEqual(ids("--state", "duplicate"), [4])
        self.assertEqual(ids("--state", "unrouted"), [2])
        self.assertEqual(ids("--listener", "lab"), [5])
        self.assertEqual(ids("--sender", "HIS"), [2])
        # pending = waiting, retrying or in flight, as check counts it
        # (fifo: 3 is retrying, 5 waits behind it; both are pending)
        self.assertTrue(wait_until(lambda: ids("--state", "retry", "--target", "down") == [3]))
        self.assertEqual(ids("--state", "pending", "--target", "down"), [3, 5])
        chk = jlines(self.q(d, "check", "--json", "--target", "down", check=None))[0]
        self.assertEqual(chk["pending"], 2)
        for args in (["--target", "nope"], ["--listener", "nope"], ["--state", "lost"],
                     ["--type", "AD*"]):
            p = self.q(d, "ls", *args, check=1)
            self.assertEqual(p.stdout, b"")
            self.assertEqual(len(p.stderr.decode().strip().splitlines()), 1, args)
        self.assertIn(b"no target 'nope' (the config has: a, down)", self.q(d, "ls", "--target", "nope", check=1).stderr)
        self.q(d, "replay", "--dead", "--target", "nope", check=1)
        self.q(d, "purge", "--dead", "--target", "nope", check=1)
        self.q(d, "status", "--target", "nope", check=1)
        # a new target: which messages it never had; --missing sends only those
        d.stop()
        b = self.sink()
        with open(d.conf, "a") as f:
            f.write(target("b", b.url, "types = ADT^*"))
        d.start()
        self.q(d, "replay", "1", "--target", "b")
        b.wait_for(1)
        out = self.q(d, "replay", "--target", "b", "--since", "1h", "--dry-run").stdout.decode()
        # (the duplicate, 4, is no message of its own: a range replay skips it)
        self.assertEqual(out, "would replay 2 messages\n1 of them b never had: 2\n")
        j = jlines(self.q(d, "replay", "--target", "b", "--since", "1h", "--missing", "--json"))[0]
        self.assertEqual((j["messages"], j["never_had"], j["never_had_ids"]), (1, 1, [2]))
        self.assertEqual(sorted(x for h, x in b.wait_for(2)), sorted([adt("V1", "P1"), adt("V2", "P2", "A08", "HIS")]))
        time.sleep(0.3)
        self.assertEqual(len(b.requests()), 2)  # message 1 was not sent again

    def test_status_and_check_know_whether_hl7qd_runs(self):
        """check uses its defaults without thresholds and goes CRITICAL when
        hl7qd is down; --admin reads /healthz and /metrics without the
        journal; UNKNOWN says why on stdout."""
        admin = free_port()
        d = self.daemon(extra=target("t", "http://127.0.0.1:1/x", "max_attempts = 1") +
                        "[admin]\nlisten = 127.0.0.1:%d\n" % admin).start()
        ok = self.q(d, "check").stdout.decode()
        self.assertTrue(ok.startswith("HL7Q OK - 0 pending, 0 dead"), ok)
        self.assertIn("pending=0;10000;100000;0; dead=0;0;;0; oldest_pending_age=0s;600;3600;0;", ok)
        self.send(d, adt("K1", "P"))
        self.assertTrue(wait_until(lambda: jlines(self.q(d, "ls", "--json", "--state", "dead"))))
        warn = self.q(d, "check", check=1).stdout.decode()
        self.assertTrue(warn.startswith("HL7Q WARNING - 0 pending, 1 dead"), warn)
        # --admin: no config, no journal
        a = run("check", "--admin", "127.0.0.1:%d" % admin)
        self.assertEqual(a.returncode, 1, a.stdout)
        self.assertTrue(a.stdout.decode().startswith("HL7Q WARNING - 0 pending, 1 dead"), a.stdout)
        self.assertEqual(run("check", "--admin", "127.0.0.1:%d" % admin, "--max-dead", "5").returncode, 0)
        d.stop()
        down = self.q(d, "check", "--max-dead", "5", check=2).stdout.decode()
        self.assertTrue(down.startswith("HL7Q CRITICAL - hl7qd not running; "), down)
        self.assertIn("hl7qd: not running", self.q(d, "status").stdout.decode())
        a = run("check", "--admin", "127.0.0.1:%d" % admin)
        self.assertEqual(a.returncode, 2)
        self.assertTrue(a.stdout.decode().startswith("HL7Q CRITICAL - hl7qd not answering on 127.0.0.1:%d" % admin),
                        a.stdout)
        # UNKNOWN: the reason on stdout
        for args, why in ((["-j", "/nonexistent/j", "check"], "cannot open journal /nonexistent/j"),
                          (["-c", d.conf, "check", "--max-age", "soon"], "bad threshold 'soon'"),
                          (["-c", "/nonexistent.conf", "check"], "/nonexistent.conf"),
                          (["check"], "no journal")):
            p = run(*args)
            self.assertEqual(p.returncode, 3, args)
            self.assertTrue(p.stdout.decode().startswith("HL7Q UNKNOWN - "), p.stdout)
            self.assertIn(why, p.stdout.decode())
            self.assertEqual(len(p.stdout.decode().splitlines()), 1)


if __name__ == "__main__":
    unittest.main()
