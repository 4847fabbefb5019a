"""Integration tests for monitoring (issue 17, points 2 and 3): the alert
rules of deploy/prometheus/hl7q-alerts.yml pass `promtool test rules` and
name only series a real hl7qd exports; Debian's prometheus, scraping a
running hl7qd under load (paced MLLP senders, a good, a flaky and a
refusing target), loads the rules and answers every panel query of
deploy/grafana/hl7q.json with data; render.py draws them into a PNG.

HL7Q_DASHBOARD_PNG=path (with HL7Q_DASHBOARD_SECONDS, default 20) also
writes the picture there: `make dashboard-picture` uses it to refresh
deploy/grafana/hl7q-dashboard.png."""

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
import urllib.request

from hl7qtest import ROOT, DaemonTest, Mllp, free_port, message, target, wait_until
from test_service import http_get

RULES = os.path.join(ROOT, "deploy/prometheus/hl7q-alerts.yml")
RULE_TESTS = os.path.join(ROOT, "deploy/prometheus/hl7q-alerts.test.yml")
DASHBOARD = os.path.join(ROOT, "deploy/grafana/hl7q.json")
sys.path.insert(0, os.path.join(ROOT, "deploy/grafana"))
import render  # noqa: E402


class Feeder:
    """Paced MLLP senders (threads): ADT to every listener, now and then an
    ORU (routed to a refusing target) and a malformed frame (refused)."""

    def __init__(self, ports, per_second=40):
        self.ports, self.per_second = ports, per_second
        self.stop_ev = threading.Event()
        self.sent = 0
        self.threads = [threading.Thread(target=self.run, args=(name, port), daemon=True)
                        for name, port in ports.items()]
        for t in self.threads:
            t.start()

    def run(self, name, port):
        c = Mllp(port)
        n = 0
        while not self.stop_ev.is_set():
            n += 1
            if n % 25 == 0:
                m = b"MSH|^~\\&|X\rPID|1\r"  # refused: no MSH-9 / MSH-10
            else:
                m = message("%s-%d" % (name, n))
                if n % 10 == 0:
                    m = m.replace(b"ADT^A01^ADT_A01", b"ORU^R01^ORU_R01")
            c.request(m)
            self.sent += 1
            time.sleep(1.0 / self.per_second)
        c.close()

    def stop(self):
        self.stop_ev.set()
        for t in self.threads:
            t.join(10)


class Prometheus:
    """Debian's prometheus on 127.0.0.1, a free port, its own directory,
    scraping the given admin endpoints every second, with the alert rules."""

    def __init__(self, admin_ports):
        self.dir = tempfile.mkdtemp(prefix="hl7q-prom-")
        self.port = free_port()
        shutil.copy(RULES, self.dir)
        conf = os.path.join(self.dir, "prometheus.yml")
        with open(conf, "w") as f:
            f.write("global: {scrape_interval: 1s, evaluation_interval: 1s}\n"
                    "rule_files: [hl7q-alerts.yml]\n"
                    "scrape_configs:\n"
                    "  - job_name: hl7q\n"
                    "    static_configs: [{targets: [%s]}]\n"
                    % ", ".join('"127.0.0.1:%d"' % p for p in admin_ports))
        self.log = open(os.path.join(self.dir, "prometheus.log"), "wb")
        self.proc = subprocess.Popen(
            ["prometheus", "--config.file=" + conf, "--storage.tsdb.path=" + os.path.join(self.dir, "data"),
             "--web.listen-address=127.0.0.1:%d" % self.port, "--log.level=warn"],
            stdout=self.log, stderr=self.log)
        ok = wait_until(lambda: self.proc.poll() is not None or self.ready(), timeout=60)
        if not ok or self.proc.poll() is not None:
            raise RuntimeError("prometheus did not start:\n" + read_text(self.log.name))

    @property
    def url(self):
        return "http://127.0.0.1:%d" % self.port

    def ready(self):
        try:
            return http_get(self.port, "/-/ready")[0] == 200
        except OSError:
            return False

    def query(self, expr):
        return render.api(self.url, "/api/v1/query", query=expr)["result"]

    def cleanup(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(30)
        self.log.close()
        shutil.rmtree(self.dir, ignore_errors=True)


def read_text(path):
    with open(path) as f:
        return f.read()


def metric_names(text):
    """hl7q_* series names in text, without histogram suffixes."""
    return {re.sub(r"_(bucket|sum|count)$", "", n) for n in re.findall(r"\bhl7q_[a-z0-9_]+", text)}


class Monitoring(DaemonTest):
    def loaded_daemon(self):
        """hl7qd with two listeners, three targets and an admin endpoint."""
        good = self.sink()
        flaky = self.sink("--status", "503", "--for", "6")
        bad = self.sink("--status", "400")
        self.aport = free_port()
        return self.daemon(
            listeners={"adt": "expect_within = 1m", "lab": ""},
            extra=target("portal", good.url, "types = ADT^*") +
            target("warehouse", flaky.url, "ordering = none\nconcurrency = 2") +
            target("registry", bad.url, "types = ORU^*\nmax_attempts = 1") +
            "[admin]\nlisten = 127.0.0.1:%d\n" % self.aport).start()

    def test_alert_rules(self):
        """promtool checks the rules and runs their tests (one or more per
        alert: it fires on its failure, not before its `for`, not on a
        healthy series), and every series the rules and the dashboard read
        is one hl7qd exports."""
        p = subprocess.run(["promtool", "check", "rules", RULES], capture_output=True, text=True)
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        p = subprocess.run(["promtool", "test", "rules", RULE_TESTS], capture_output=True, text=True,
                           cwd=os.path.dirname(RULE_TESTS))
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        self.assertIn("SUCCESS", p.stdout)
        rules = read_text(RULES)
        alerts = set(re.findall(r"- alert: (\w+)", rules))
        tested = set(re.findall(r"alertname: (\w+)", read_text(RULE_TESTS)))
        self.assertEqual(alerts - tested, set())  # every alert has a test
        for want in ["HL7QDown", "HL7QTargetDown", "HL7QOldestPendingAge", "HL7QDeadLettersRising",
                     "HL7QIntakeRefusals", "HL7QAckLatencyHigh", "HL7QJournalSpaceLow", "HL7QFeedSilent"]:
            self.assertIn(want, alerts)

        d = self.loaded_daemon()
        c = Mllp(d.ports["adt"])
        c.request(message("M1"))
        c.close()
        wait_until(lambda: "hl7q_delivery_duration_seconds_bucket" in http_get(self.aport, "/metrics")[1])
        exported = metric_names(http_get(self.aport, "/metrics")[1])
        used = metric_names(rules) | metric_names(read_text(DASHBOARD))
        self.assertEqual(used - exported, set())
        self.assertGreater(len(used), 15)

    def test_dashboard_against_prometheus(self):
        """Every panel query of the dashboard returns data from a real
        Prometheus scraping a loaded hl7qd; the rules load there; render.py
        draws the panels into a PNG."""
        with open(DASHBOARD) as f:
            dash = json.load(f)
        self.assertEqual(dash["templating"]["list"][0]["type"], "datasource")
        for p in dash["panels"]:
            self.assertEqual(p["datasource"]["type"], "prometheus")
        d = self.loaded_daemon()
        prom = Prometheus([self.aport])
        self.cleanups.append(prom)
        feeder = Feeder(d.ports)
        self.cleanups.append(feeder.stop)
        seconds = float(os.environ.get("HL7Q_DASHBOARD_SECONDS", "20"))
        time.sleep(seconds)

        queries = [(title, expr) for title, unit, qs in render.panel_queries(dash) for expr, _ in qs]
        self.assertGreaterEqual(len(queries), 12)
        empty = lambda: [(t, e) for t, e in queries if not prom.query(e)]
        wait_until(lambda: not empty(), timeout=60, step=1)
        self.assertEqual(empty(), [])
        for title, expr in queries:  # and the titles say what the queries give
            self.assertTrue(title)
        rules = render.api(prom.url, "/api/v1/rules")["groups"][0]["rules"]
        self.assertEqual(len(rules), len(re.findall(r"- alert:", read_text(RULES))))
        self.assertTrue(all(r["health"] == "ok" for r in rules), rules)
        # the registry target refuses (400): a dead letter, seen by the rule
        self.assertTrue(wait_until(lambda: any(r["name"] == "HL7QDeadLettersRising" and r["state"] == "firing"
                                               for r in render.api(prom.url, "/api/v1/rules")["groups"][0]["rules"]),
                                   timeout=30, step=1))
        feeder.stop()

        out = os.path.join(prom.dir, "hl7q-dashboard.png")
        render.render(prom.url, dash, out, minutes=max(1.0, seconds / 60 + 0.2))
        with open(out, "rb") as f:
            self.assertEqual(f.read(8), b"\x89PNG\r\n\x1a\n")
        self.assertGreater(os.path.getsize(out), 20000)
        if os.environ.get("HL7Q_DASHBOARD_PNG"):
            shutil.copy(out, os.environ["HL7Q_DASHBOARD_PNG"])
