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


if __name__ == "__main__":
    unittest.main()
