"""Integration tests for running hl7qd in production (issue 5): systemd
readiness and watchdog through a notify socket the test reads, SIGHUP
reloads (targets and listeners added and removed, a broken config refused),
/healthz and /metrics (checked with Debian's promtool and parsed with
python3-prometheus-client, the counters compared with what was sent), the
example configs and the unit file, and no patient data in the log through
the whole corpus, an outage and dead-letters."""

import glob
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import unittest
import urllib.error
import urllib.request

from prometheus_client.parser import text_string_to_metric_families

from test_intake import expected_positive
from hl7qtest import (DaemonTest, target, wait_until, BIN, ROOT, Mllp, corpus_files, free_port,
                      message, msa)


def http_get(port, path):
    try:
        with urllib.request.urlopen("http://127.0.0.1:%d%s" % (port, path), timeout=10) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def admin_port(d):
    m = re.search(r"admin: serving /healthz and /metrics on \S+ \(port (\d+)\)", d.read_log())
    return int(m.group(1))


def metrics(port):
    status, text = http_get(port, "/metrics")
    assert status == 200, status
    out = {}
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return text, out


def value(m, name, **labels):
    return m.get((name, tuple(sorted(labels.items()))), 0)


class Service(DaemonTest):
    def test_notify_ready_after_bind_and_watchdog(self):
        """READY=1 only once the listeners are bound (a connect at that moment
        succeeds, the log already says so); WATCHDOG=1 keeps arriving from the
        loop; RELOADING/READY around SIGHUP; STOPPING at SIGTERM."""
        tmp = tempfile.mkdtemp(prefix="hl7q-notify-")
        self.addCleanup(shutil.rmtree, tmp, True)
        path = os.path.join(tmp, "notify")
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        sock.bind(path)
        sock.settimeout(10)
        self.addCleanup(sock.close)
        d = self.daemon(env={"NOTIFY_SOCKET": path, "WATCHDOG_USEC": "1000000"})
        d.start(wait=False)
        msg = sock.recv(4096).decode()
        self.assertIn("READY=1", msg)
        # at this moment the listener accepts and the journal is open
        c = Mllp(d.port)
        self.assertEqual(msa(c.request(message("N1")))[0], "AA")
        self.assertIn("listening on", d.read_log())
        pings, t0 = 0, time.time()
        while time.time() - t0 < 3:
            if "WATCHDOG=1" in sock.recv(4096).decode():
                pings += 1
        self.assertGreaterEqual(pings, 4)  # every half interval (0.5 s)
        d.proc.send_signal(signal.SIGHUP)
        seen = []
        while "READY=1" not in "".join(seen):
            seen.append(sock.recv(4096).decode())
        self.assertTrue(any("RELOADING=1" in s for s in seen), seen)
        self.assertEqual(msa(c.request(message("N2")))[0], "AA")  # same connection
        d.proc.send_signal(signal.SIGTERM)
        while "STOPPING=1" not in sock.recv(4096).decode():
            pass
        self.assertEqual(d.proc.wait(15), 0)

    def test_unit_file_and_example_configs(self):
        """The unit passes systemd-analyze verify; every example config passes
        hl7qd --check."""
        unit = open(os.path.join(ROOT, "deploy/systemd/hl7qd.service")).read()
        for key in ("Type=notify", "WatchdogSec=", "Restart=on-failure", "User=hl7q",
                    "StateDirectory=hl7q", "ConfigurationDirectory=hl7q", "ProtectSystem=strict",
                    "ProtectHome=yes", "PrivateTmp=yes", "NoNewPrivileges=yes",
                    "CapabilityBoundingSet=\n", "ReadWritePaths=/var/lib/hl7q"):
            self.assertIn(key, unit)
        tmp = tempfile.mkdtemp(prefix="hl7q-unit-")
        self.addCleanup(shutil.rmtree, tmp, True)
        with open(os.path.join(tmp, "hl7qd.service"), "w") as f:
            f.write(unit.replace("/usr/local/sbin/hl7qd", os.path.join(BIN, "hl7qd")))
        if shutil.which("systemd-analyze"):
            v = subprocess.run(["systemd-analyze", "verify", "--man=no",
                                os.path.join(tmp, "hl7qd.service")], capture_output=True, text=True)
            self.assertEqual(v.returncode, 0, v.stderr)
        confs = sorted(glob.glob(os.path.join(ROOT, "deploy/*.conf")))
        names = [os.path.basename(c) for c in confs]
        for want in ("epic-adt-portal.conf", "epic-clinical-warehouse.conf", "cerner-lab-fanout.conf",
                     "aws-healthlake.conf", "azure-health-data-services.conf", "hl7q.conf"):
            self.assertIn(want, names)
        ports = {"epic-adt-portal.conf": "6661", "epic-clinical-warehouse.conf": "6662",
                 "cerner-lab-fanout.conf": "6663"}
        for conf in confs:
            # --check reads every file a config names: give each example its
            # files (mode 0600) under a scratch root, with /etc/hl7q and
            # /var/lib/hl7q moved there and relative paths kept relative.
            root = os.path.join(tmp, os.path.basename(conf))
            os.makedirs(os.path.join(root, "deploy"))
            with open(conf) as f:
                text = f.read().replace("/etc/hl7q/", root + "/etc/").replace("/var/lib/hl7q", root + "/var/hl7q")
            copy = os.path.join(root, "deploy", os.path.basename(conf))
            with open(copy, "w") as f:
                f.write(text)
            for line in text.splitlines():
                m = re.match(r"\s*(path|\w+_file|tls_cert|tls_key|tls_client_ca|client_cert|client_key)\s*=\s*([^;\s]+)", line)
                if not m:
                    continue
                path = os.path.normpath(os.path.join(root, "deploy", m.group(2)))
                os.makedirs(os.path.dirname(path), exist_ok=True)
                if m.group(1) != "path":
                    with open(path, "w") as f:
                        f.write("x\n")
                    os.chmod(path, 0o600)
            p = subprocess.run([os.path.join(BIN, "hl7qd"), "-c", copy, "--check"],
                               capture_output=True, text=True)
            self.assertEqual(p.returncode, 0, (conf, p.stdout, p.stderr))
            port = ports.get(os.path.basename(conf))
            if port:
                self.assertIn("0.0.0.0:%s" % port, open(conf).read())
        self.assertIn("auth = aws-sigv4", open(os.path.join(ROOT, "deploy/aws-healthlake.conf")).read())
        self.assertIn("auth = oauth2",
                      open(os.path.join(ROOT, "deploy/azure-health-data-services.conf")).read())

    def test_make_install_keeps_an_existing_config(self):
        """make install puts binaries, man pages, the unit, the sysusers file
        the documentation pages
        and /etc/hl7q/hl7q.conf under DESTDIR -- and never overwrites a
        config that is there."""
        dest = tempfile.mkdtemp(prefix="hl7q-install-")
        self.addCleanup(shutil.rmtree, dest, True)
        run = lambda: subprocess.run(["make", "-s", "-C", ROOT, "install", "DESTDIR=" + dest, "PREFIX=/usr"],
                                     capture_output=True, text=True, timeout=600)
        p = run()
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        for f in ("usr/sbin/hl7qd", "usr/bin/hl7q", "usr/bin/hl7send", "usr/bin/hl7sink",
                  "usr/share/man/man1/hl7q.1", "usr/share/man/man5/hl7q.conf.5",
                  "usr/share/man/man8/hl7qd.8", "usr/lib/systemd/system/hl7qd.service",
                  "usr/lib/sysusers.d/hl7q.conf", "etc/hl7q/hl7q.conf",
                  "usr/share/doc/hl7q/examples/epic-adt-portal.conf",
                  "usr/share/doc/hl7q/README.md", "usr/share/doc/hl7q/operations.md"):
            self.assertTrue(os.path.exists(os.path.join(dest, f)), f)
        unit = open(os.path.join(dest, "usr/lib/systemd/system/hl7qd.service")).read()
        self.assertIn("ExecStart=/usr/sbin/hl7qd -c /etc/hl7q/hl7q.conf", unit)
        conf = os.path.join(dest, "etc/hl7q/hl7q.conf")
        self.assertEqual(oct(os.stat(conf).st_mode & 0o777), "0o640")
        with open(conf, "a") as f:
            f.write("; edited by the operator\n")
        p = run()
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertIn("kept", p.stdout)
        self.assertTrue(open(conf).read().endswith("; edited by the operator\n"))

    def test_sighup_reload(self):
        """A reload that adds a target delivers the next messages to it; one
        that adds a listener opens it, one that removes a listener closes it
        while its open connection keeps working; a broken config, or a secret
        file that cannot be read, is refused with the reason logged and the
        old config keeps running."""
        a, b = self.sink(), self.sink()
        d = self.daemon(extra=target("a", a.url)).start()
        held = Mllp(d.port)  # stays open across every reload
        self.assertEqual(msa(held.request(message("H1")))[0], "AA")
        a.wait_for(1)
        with open(d.conf) as f:
            base = f.read()
        port2 = free_port()
        with open(d.conf, "w") as f:
            f.write(base + target("b", b.url) + "[listener second]\nlisten = 127.0.0.1:%d\n" % port2)
        d.proc.send_signal(signal.SIGHUP)
        self.assertTrue(wait_until(lambda: "reloaded" in d.read_log()), d.read_log())
        self.assertEqual(msa(held.request(message("H2")))[0], "AA")
        c2 = Mllp(port2)
        self.assertEqual(msa(c2.request(message("S1")))[0], "AA")
        got_b = [x for h, x in b.wait_for(2)]
        self.assertEqual(sorted(got_b), sorted([message("H2"), message("S1")]))
        self.assertEqual(len(a.wait_for(3)), 3)  # a still gets everything

        # a broken config: refused, named file:line, the old one runs on
        with open(d.conf, "w") as f:
            f.write(base + target("b", b.url) + "[listener second]\nlisten = 127.0.0.1:%d\n" % port2 +
                    "[target c]\nurl = http://127.0.0.1:1/\nordering = sideways\n")
        d.proc.send_signal(signal.SIGHUP)
        self.assertTrue(wait_until(lambda: "reload refused" in d.read_log()))
        self.assertRegex(d.read_log(), r"reload refused: %s:\d+: .*ordering" % re.escape(d.conf))
        self.assertEqual(msa(held.request(message("H3")))[0], "AA")
        self.assertEqual(len(b.wait_for(3)), 3)
        # a secret that cannot be read: refused too
        with open(d.conf, "w") as f:
            f.write(base + target("b", b.url, "auth = bearer\ntoken_file = /nonexistent/token") +
                    "[listener second]\nlisten = 127.0.0.1:%d\n" % port2)
        d.proc.send_signal(signal.SIGHUP)
        self.assertTrue(wait_until(lambda: d.read_log().count("reload refused") == 2))
        self.assertIn("/nonexistent/token", d.read_log())
        self.assertEqual(msa(held.request(message("H4")))[0], "AA")
        self.assertEqual(len(b.wait_for(4)), 4)

        # remove the second listener and target b: the port closes, the
        # connection on it goes on, b gets nothing more
        with open(d.conf, "w") as f:
            f.write(base)
        d.proc.send_signal(signal.SIGHUP)
        self.assertTrue(wait_until(lambda: d.read_log().count("reloaded") == 2))
        with self.assertRaises(OSError):
            socket.create_connection(("127.0.0.1", port2), timeout=2).close()
        self.assertEqual(msa(c2.request(message("S2")))[0], "AA")
        self.assertEqual(msa(held.request(message("H5")))[0], "AA")
        self.assertEqual(len(a.wait_for(7)), 7)
        time.sleep(0.5)
        self.assertEqual(len(b.requests()), 4)
        recs = d.records()
        self.assertEqual(len(recs), 7)  # nothing lost on the way
        held.close()
        c2.close()
        self.assertEqual(d.stop(), 0)

    def test_metrics_and_health(self):
        """/metrics passes promtool and its counters match what was sent;
        /healthz is 200, and 503 with a reason once the journal is full."""
        ok, down, bad = self.sink(), self.sink("--status", "503"), self.sink("--status", "400")
        aport = free_port()
        d = self.daemon(extra=target("ok", ok.url, "ordering = none\nconcurrency = 4") +
                        target("down", down.url, "types = ORU") +
                        target("bad", bad.url, "types = ADT^A01") +
                        "[admin]\nlisten = 127.0.0.1:%d\n" % aport,
                        journal_extra="max_size = 8M").start()
        self.assertEqual(admin_port(d), aport)
        self.assertEqual(http_get(aport, "/healthz"), (200, '{"status":"ok"}\n'))
        files = corpus_files()[:120]
        c = Mllp(d.port)
        want = {"AA": 0, "CA": 0, "none": 0}
        for f in files:
            m = open(f, "rb").read()
            c.send(m)
            code = expected_positive(m)
            if code:
                self.assertEqual(msa(c.recv_frame(timeout=10))[0], code)
                want[code] += 1
            else:
                want["none"] += 1
        refused = b"MSH|^~\\&|A|B|C|D|1||ADT^A01||P|2.5\rPID|1\r"
        for i in range(3):  # refused: no MSH-10
            self.assertEqual(msa(c.request(refused))[0], "AE")
        c.close()
        recs = wait_until(lambda: d.records() if len(d.records()) == len(files) + 3 else None)
        accepted = [r for r in recs.values() if r["state"] == 1]
        oru = [r for r in accepted if r["type"].startswith(b"ORU")]
        a01 = [r for r in accepted if r["type"].split(b"^")[:2] == [b"ADT", b"A01"]]
        self.assertTrue(wait_until(lambda: len(ok.requests()) == len(accepted)))
        _, m = metrics(aport)
        self.assertTrue(wait_until(lambda: value(metrics(aport)[1], "hl7q_target_dead", target="bad") == len(a01)))
        # The sink has every request, but a worker writes its outcomes in
        # batches (up to 20 ms after the answers): the journal's count follows.
        self.assertTrue(wait_until(lambda: value(metrics(aport)[1], "hl7q_target_delivered", target="ok") ==
                                   len(accepted)))
        text, m = metrics(aport)
        prom = subprocess.run(["promtool", "check", "metrics"], input=text, capture_output=True, text=True)
        self.assertEqual(prom.returncode, 0, prom.stdout + prom.stderr)
        L = {"listener": "main"}
        self.assertEqual(value(m, "hl7q_messages_received_total", **L), len(files) + 3)
        self.assertEqual(value(m, "hl7q_messages_acked_total", code="AA", **L), want["AA"])
        self.assertEqual(value(m, "hl7q_messages_acked_total", code="CA", **L), want["CA"])
        self.assertEqual(value(m, "hl7q_messages_acked_total", code="none", **L), want["none"])
        self.assertEqual(value(m, "hl7q_messages_acked_total", code="AE", **L), 3)
        self.assertEqual(value(m, "hl7q_messages_refused_total", **L), 3)
        self.assertEqual(value(m, "hl7q_received_bytes_total", **L),
                         sum(len(open(f, "rb").read()) for f in files) + 3 * len(refused))
        self.assertEqual(value(m, "hl7q_connections_open", **L), 0)
        self.assertEqual(value(m, "hl7q_listener_up", **L), 1)
        self.assertEqual(value(m, "hl7q_commit_batch_size_sum"), len(files) + 3)
        self.assertGreater(value(m, "hl7q_commit_duration_seconds_count"), 0)
        self.assertEqual(value(m, "hl7q_delivered_total", target="ok"), len(accepted))
        self.assertEqual(value(m, "hl7q_target_delivered", target="ok"), len(accepted))
        self.assertEqual(value(m, "hl7q_delivery_responses_total", target="ok", **{"class": "2xx"}), len(accepted))
        self.assertEqual(value(m, "hl7q_target_dead", target="bad"), len(a01))
        self.assertEqual(value(m, "hl7q_dead_lettered_total", target="bad"), len(a01))
        self.assertEqual(value(m, "hl7q_delivery_responses_total", target="bad", **{"class": "4xx"}), len(a01))
        # the down target: everything ORU waits (fifo: one in flight at a time)
        waiting = (value(m, "hl7q_target_pending", target="down") + value(m, "hl7q_target_retrying", target="down") +
                   value(m, "hl7q_target_inflight", target="down"))
        self.assertEqual(waiting, len(oru))
        self.assertGreater(value(m, "hl7q_delivery_responses_total", target="down", **{"class": "5xx"}), 0)
        self.assertGreater(value(m, "hl7q_target_oldest_pending_age_seconds", target="down"), 0)
        self.assertEqual(value(m, "hl7q_delivery_duration_seconds_count", target="ok"), len(accepted))
        self.assertGreater(value(m, "hl7q_journal_used_bytes"), 0)
        self.assertEqual(value(m, "hl7q_journal_max_bytes"), 8 << 20)
        self.assertEqual(value(m, "hl7q_journal_writable"), 1)
        # labels: only listener, target, code, class and le -- never message content
        for (name, labels) in m:
            self.assertTrue({k for k, v in labels} <= {"listener", "target", "code", "class", "le"},
                            (name, labels))
        self.assertEqual(http_get(aport, "/nothing")[0], 404)
        # fill the journal: intake refuses, health says why
        c = Mllp(d.port)
        for i in range(200):
            if msa(c.request(message("F%d" % i, size=60000)))[0] == "AR":
                break
        status, body = http_get(aport, "/healthz")
        self.assertEqual(status, 503)
        self.assertIn('"status":"unhealthy"', body)
        self.assertIn("journal", body)
        _, m = metrics(aport)
        self.assertEqual(value(m, "hl7q_journal_writable"), 0)

    def test_no_patient_data_in_log(self):
        """The whole corpus (valid and malformed) through, a target outage and
        dead-letters, debug logging: no patient id, name or date of birth of
        the corpus appears anywhere in the log."""
        down, bad = self.sink("--status", "503", "--for", "2"), self.sink("--status", "400")
        d = self.daemon(extra=target("down", down.url, "ordering = none\nconcurrency = 8") +
                        target("bad", bad.url, "types = ADT") +
                        "[daemon]\nlog_level = debug\n").start()
        c = Mllp(d.port)
        secrets = set()
        for f in corpus_files() + corpus_files(malformed=True):
            m = open(f, "rb").read()
            if "/malformed" in f:  # each on its own connection: its framing may be broken
                mc = Mllp(d.port)
                mc.send(m)
                mc.recv_frame(timeout=0.3)
                mc.close()
            else:
                c.send(m)
                if expected_positive(m):
                    self.assertIsNotNone(c.recv_frame(timeout=10), f)
            for seg in re.split(rb"[\r\n]+", m):
                if not seg.startswith(b"PID") or len(seg) < 4:
                    continue
                fs = seg[3:4]
                fields = seg.split(fs)
                for idx in (3, 5, 7):  # PID-3 ids, PID-5 name, PID-7 date of birth
                    if idx < len(fields):
                        for part in re.split(rb"[\^~&]", fields[idx]):
                            part = part.strip()
                            if len(part) >= 5:
                                secrets.add(part.decode("latin-1"))
        c.close()
        self.assertTrue(wait_until(lambda: len(down.requests()) > 0, timeout=30))
        time.sleep(1)
        log = d.read_log()
        self.assertIn("dead-lettered", log)
        self.assertIn("down (HTTP 503)", log)
        self.assertGreater(len(secrets), len(corpus_files()) // 2)
        # The log names control ids (MSH-10) by design, and some corpus
        # control ids contain digits that are also a patient id elsewhere
        # (ctrl=Q123456789T...): take them out, then nothing may remain.
        scrubbed = re.sub(r"ctrl=\S*", "ctrl=", log)
        # and the numbers hl7qd itself writes (ids, ports, latencies, counts),
        # which can equal a numeric MRN by chance ("12345 us")
        for pat in (r"\bid=\d+", r"(127\.0\.0\.1|\[::1\]):\d+", r"\(port \d+\)", r"HTTP \d{3}",
                    r"\d+(\.\d+)? (us|ms|s|bytes|frames|batches|attempts?|connections?|messages|"
                    r"deliveries|refusals|dead-letter lines|connection events)\b", r"largest \d+",
                    r"next id \d+", r"runs: \d+", r"\(\d+ unrouted\)"):
            scrubbed = re.sub(pat, "#", scrubbed)
        leaked = sorted(s for s in secrets if s in scrubbed)
        self.assertEqual(leaked, [], [line for line in scrubbed.splitlines() if any(x in line for x in leaked)][:20])


if __name__ == "__main__":
    unittest.main()
