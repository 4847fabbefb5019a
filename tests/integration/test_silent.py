"""Integration tests for silent-feed detection (issue 17, point 1): the
listener keys expect_within / expect_hours, the silent listener named in
/healthz (still 200), hl7q_listener_last_message_timestamp_seconds and
hl7q_listener_silent in /metrics, one log line when a feed goes silent and
one when it recovers, `hl7q check --silent` as a Nagios state, and the
last-message time read back from the journal after a restart."""

import json
import os
import signal
import subprocess
import time

from hl7qtest import BIN, DaemonTest, Mllp, free_port, message, msa, wait_until
from test_service import http_get, metrics, value

HL7Q = os.path.join(BIN, "hl7q")


def check_silent(d, *extra):
    p = subprocess.run([HL7Q, "-c", d.conf, "check", "--silent"] + list(extra),
                       capture_output=True, text=True, timeout=30)
    return p.returncode, p.stdout


class SilentFeed(DaemonTest):
    def start(self, adt_opts, **kw):
        self.aport = free_port()
        d = self.daemon(listeners={"adt": adt_opts, "lab": ""},
                        extra="[admin]\nlisten = 127.0.0.1:%d\n" % self.aport, **kw)
        return d.start()

    def silent(self, name):
        return value(metrics(self.aport)[1], "hl7q_listener_silent", listener=name)

    def test_silent_then_recovers(self):
        """A feed quiet for expect_within is named everywhere once; a message
        clears it; a listener without expect_within is never silent."""
        d = self.start("expect_within = 3s")
        c = Mllp(d.ports["adt"])
        t0 = time.time()
        self.assertEqual(msa(c.request(message("S1")))[0], "AA")
        _, m = metrics(self.aport)
        last = value(m, "hl7q_listener_last_message_timestamp_seconds", listener="adt")
        self.assertLessEqual(abs(last - t0), 2)
        self.assertEqual(value(m, "hl7q_listener_expect_within_seconds", listener="adt"), 3)
        self.assertEqual(value(m, "hl7q_listener_silent", listener="adt"), 0)
        self.assertEqual(http_get(self.aport, "/healthz"), (200, '{"status":"ok"}\n'))
        self.assertEqual(check_silent(d)[0], 0)

        self.assertTrue(wait_until(lambda: self.silent("adt") == 1, timeout=10))
        status, body = http_get(self.aport, "/healthz")
        self.assertEqual(status, 200)  # a quiet sender does not take the node out of service
        h = json.loads(body)
        self.assertEqual(h["status"], "ok")
        self.assertEqual(h["silent"], ["adt"])
        self.assertIn("listener adt: silent", h["warnings"][0])
        rc, out = check_silent(d)
        self.assertEqual(rc, 2, out)
        self.assertTrue(out.startswith("HL7Q CRITICAL - "), out)
        self.assertIn("silent: adt", out)
        self.assertIn("silent=1;;1;0;", out)
        rc, out = check_silent(d, "--json")
        self.assertEqual((rc, json.loads(out)["silent"]), (2, ["adt"]))
        # the quiet listener without expect_within never is
        self.assertEqual(self.silent("lab"), 0)
        self.assertTrue(wait_until(lambda: "listener adt: silent" in d.read_log(), timeout=5))
        time.sleep(3.5)  # still silent: no second line
        self.assertEqual(d.read_log().count("listener adt: silent"), 1)

        self.assertEqual(msa(c.request(message("S2")))[0], "AA")
        self.assertEqual(self.silent("adt"), 0)
        self.assertEqual(check_silent(d)[0], 0)
        self.assertTrue(wait_until(lambda: "listener adt: messages again" in d.read_log(), timeout=5))
        self.assertEqual(d.read_log().count("messages again"), 1)
        self.assertNotIn("listener lab: silent", d.read_log())
        # a refused frame is not a message: silence comes back
        self.assertIn(msa(c.request(b"MSH|^~\\&|X\rPID|1\r"))[0], ("AE", "AR"))
        self.assertTrue(wait_until(lambda: self.silent("adt") == 1, timeout=10))
        self.assertTrue(wait_until(lambda: d.read_log().count("listener adt: silent") == 2, timeout=5))
        c.close()
        self.assertEqual(d.stop(), 0)

    def test_last_message_survives_restart(self):
        """After a restart the last-message time is the journal's, so a feed
        that was already quiet is silent at once; a listener that never had a
        message (the whole journal read) counts from the start."""
        d = self.start("expect_within = 3s")
        c = Mllp(d.ports["adt"])
        self.assertEqual(msa(c.request(message("R1")))[0], "AA")
        c.close()
        rec = [r for r in d.records().values() if r["control_id"] == b"R1"][0]
        d.kill()
        time.sleep(3.5)
        d.start()
        t_start = time.time()
        _, m = metrics(self.aport)
        self.assertAlmostEqual(value(m, "hl7q_listener_last_message_timestamp_seconds", listener="adt"),
                               rec["received_us"] / 1e6, delta=0.002)
        self.assertEqual(value(m, "hl7q_listener_silent", listener="adt"), 1)
        lab = value(m, "hl7q_listener_last_message_timestamp_seconds", listener="lab")
        self.assertLessEqual(abs(lab - t_start), 3)
        self.assertEqual(check_silent(d)[0], 2)
        self.assertTrue(wait_until(lambda: "listener adt: silent" in d.read_log(), timeout=5))
        # with the daemon stopped, the check reads the journal the same way
        self.assertEqual(d.stop(), 0)
        rc, out = check_silent(d)
        self.assertEqual(rc, 2, out)
        self.assertIn("silent: adt", out)

    def test_reload_adds_and_removes_expect_within(self):
        """SIGHUP: a listener that gets expect_within keeps its last-message
        time (silent at once when that is old enough); a listener the reload
        adds counts from the reload; taking the key away clears the alarm."""
        d = self.start("")
        c = Mllp(d.ports["adt"])
        self.assertEqual(msa(c.request(message("H1")))[0], "AA")
        c.close()
        t_msg = time.time()
        time.sleep(2.5)
        text = open(d.conf).read()
        with open(d.conf, "w") as f:
            f.write(text.replace("[listener adt]\n", "[listener adt]\nexpect_within = 2s\n") +
                    "[listener new]\nlisten = 127.0.0.1:%d\nexpect_within = 2s\n" % free_port())
        t_hup = time.time()
        d.proc.send_signal(signal.SIGHUP)
        self.assertTrue(wait_until(lambda: "reloaded" in d.read_log(), timeout=10), d.read_log())
        _, m = metrics(self.aport)
        self.assertEqual(value(m, "hl7q_listener_expect_within_seconds", listener="adt"), 2)
        self.assertLess(value(m, "hl7q_listener_last_message_timestamp_seconds", listener="adt"), t_msg + 0.01)
        self.assertEqual(value(m, "hl7q_listener_silent", listener="adt"), 1)
        self.assertGreaterEqual(value(m, "hl7q_listener_last_message_timestamp_seconds", listener="new"), t_hup - 0.002)
        self.assertTrue(wait_until(lambda: self.silent("new") == 1, timeout=10))
        self.assertEqual(self.silent("lab"), 0)  # no expect_within: never
        with open(d.conf, "w") as f:
            f.write(text)
        d.proc.send_signal(signal.SIGHUP)
        self.assertTrue(wait_until(lambda: d.read_log().count("reloaded") == 2, timeout=10))
        self.assertEqual(self.silent("adt"), 0)
        self.assertTrue(wait_until(lambda: "listener adt: no longer silent" in d.read_log(), timeout=5))
        self.assertEqual(d.stop(), 0)

    def test_outside_expect_hours_never_silent(self):
        """Outside the daily window a quiet feed is not silent (the window is
        in the daemon's local time: TZ=UTC here)."""
        now = time.gmtime()
        start = (now.tm_hour + 2) % 24
        window = "%02d:00-%02d:00" % (start, (start + 1) % 24)
        d = self.start("expect_within = 1s\nexpect_hours = %s" % window, env={"TZ": "UTC"})
        time.sleep(2.5)
        self.assertEqual(self.silent("adt"), 0)
        self.assertEqual(http_get(self.aport, "/healthz"), (200, '{"status":"ok"}\n'))
        self.assertEqual(subprocess.run([HL7Q, "-c", d.conf, "check", "--silent"], capture_output=True,
                                        env=dict(os.environ, TZ="UTC")).returncode, 0)
        self.assertNotIn("silent", d.read_log())

    def test_config_errors(self):
        """Bad values answer FILE:LINE: reason."""
        for opts, want in [("expect_within = soon", "expect_within: 'soon' is not a duration"),
                           ("expect_within = 500ms", "at least 1s"),
                           ("expect_within = 15m\nexpect_hours = 6-22", "expect_hours: '6-22' is not a daily window"),
                           ("expect_hours = 06:00-22:00", "expect_hours needs expect_within")]:
            d = self.daemon(listeners={"adt": opts})
            p = subprocess.run([os.path.join(BIN, "hl7qd"), "-c", d.conf, "--check"],
                               capture_output=True, text=True)
            self.assertEqual(p.returncode, 1)
            self.assertTrue(p.stderr.startswith(d.conf + ":"), p.stderr)
            self.assertIn(want, p.stderr)
        d = self.daemon(listeners={"adt": "expect_within = 15m\nexpect_hours = 22:00-06:00"})
        p = subprocess.run([os.path.join(BIN, "hl7qd"), "-c", d.conf, "--check"], capture_output=True)
        self.assertEqual(p.returncode, 0, p.stderr)

    def test_check_silent_needs_config(self):
        """With -j there is no expect_within to check: UNKNOWN."""
        d = self.start("expect_within = 1m")
        p = subprocess.run([HL7Q, "-j", d.journal, "check", "--silent"], capture_output=True, text=True)
        self.assertEqual(p.returncode, 3, p.stdout)
        self.assertIn("UNKNOWN", p.stdout)
        self.assertIn("--silent needs -c FILE", p.stdout)
