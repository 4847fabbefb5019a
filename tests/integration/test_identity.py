"""Issue 11, points 3 and 4: a message's identity.

Point 3: duplicate detection never swallows a distinct message -- the key is
the whole listener + MSH-3 + MSH-4 + MSH-10 (hashed, never cut), and under
`duplicates = ack | reject` a hit is a duplicate only when the content matches
apart from MSH-7; a control id reused with other content is stored, delivered,
logged and counted.

Point 4: one journal, one daemon; compacting, restoring, replaying or purging
can neither lose a message nor make a receiver that dedupes on the
Idempotency-Key drop one."""

import os
import re
import shutil
import struct
import subprocess
import tempfile
import unittest

from hl7qtest import (DaemonTest, BIN, Mllp, err_code, free_port, message, msa, target,
                      wait_until)
from test_service import admin_port, metrics, value

HL7Q = os.path.join(BIN, "hl7q")


def hl7q(*args, umask=None):
    return subprocess.run([HL7Q] + list(args), capture_output=True, timeout=60,
                          preexec_fn=(lambda: os.umask(umask)) if umask is not None else None)


def with_msh3(msg, app):
    return msg.replace(b"|TESTAPP|", b"|" + app + b"|", 1)


def with_msh7(msg, ts):
    return msg.replace(b"|20261126120000||ADT", b"|" + ts + b"||ADT", 1)


class Point3Duplicates(DaemonTest):
    def test_point3_long_sending_fields_keep_control_ids_apart(self):
        """MSH-3 and MSH-4 of 300 bytes each used to push MSH-10 out of the
        480-byte key: every later message of that sender was a 'duplicate'."""
        d = self.daemon({"main": "duplicates = reject"}).start()
        c = Mllp(d.port)
        app = b"A" * 300
        for ctrl in ("LONG1", "LONG2", "LONG3"):
            m = with_msh3(message(ctrl), app).replace(b"|TESTFAC|", b"|" + b"F" * 300 + b"|", 1)
            self.assertEqual(msa(c.request(m)), ("AA", ctrl))
        again = c.request(with_msh3(message("LONG2"), app).replace(b"|TESTFAC|", b"|" + b"F" * 300 + b"|", 1))
        self.assertEqual((msa(again)[0], err_code(again)), ("AR", 205))  # a true repeat still is one
        c.close()
        self.assertEqual(sorted(r["state"] for r in d.records().values()), [3, 4, 4, 4])  # the repeat is a duplicate record

    def test_point3_duplicates_are_per_listener(self):
        """The same message on two listeners is two messages (two feeds, two
        senders that happen to share a control id)."""
        d = self.daemon({"a": "duplicates = reject", "b": "duplicates = reject"}).start()
        for name in ("a", "b"):
            c = Mllp(d.ports[name])
            self.assertEqual(msa(c.request(message("SHARED1")))[0], "AA")
            c.close()
        self.assertEqual(sorted(r["state"] for r in d.records().values()), [4, 4])

    def test_point3_reused_control_id_with_other_content_is_stored_and_delivered(self):
        """duplicates = ack: a resend (same bytes but MSH-7) is a duplicate; the
        same MSH-10 with other content is a new message, delivered, logged
        without patient data and counted in hl7q_control_id_reused_total."""
        s = self.sink()
        d = self.daemon({"main": "duplicates = ack"},
                        extra=target("t", s.url) + "[admin]\nlisten = 127.0.0.1:0\n").start()
        c = Mllp(d.port)
        first = message("RE1")
        other = message("RE1").replace(b"T-RE1^^^TEST^MR||SYNTHETIC^PATIENT", b"T-OTHER9^^^TEST^MR||OTHERNAME^ZED")
        self.assertEqual(msa(c.request(first))[0], "AA")
        self.assertEqual(msa(c.request(with_msh7(first, b"20261126120501")))[0], "AA")  # resend
        self.assertEqual(msa(c.request(other))[0], "AA")
        self.assertEqual(msa(c.request(with_msh7(other, b"20261126121000")))[0], "AA")  # its resend
        c.close()
        reqs = s.wait_for(2)
        self.assertTrue(wait_until(lambda: len(s.requests()) >= 2))
        self.assertEqual(sorted(b for h, b in s.requests()), sorted([first, other]))
        recs = d.records()
        self.assertEqual([recs[i]["state"] for i in sorted(recs)], [1, 3, 1, 3])
        _, m = metrics(admin_port(d))
        self.assertEqual(value(m, "hl7q_control_id_reused_total", listener="main"), 1)
        log = d.read_log()
        self.assertRegex(log, r"control id reused with other content: id=3 ctrl=RE1 .*earlier id=1")
        for phi in ("T-OTHER9", "OTHERNAME", "SYNTHETIC"):
            self.assertNotIn(phi, log)
        self.assertEqual(len({h["idempotency-key"] for h, b in reqs}), 2)

    def test_point3_tls_client_subject_is_part_of_the_key(self):
        """Two TLS clients (two certificates) of one listener sending the same
        control id are two senders; one client sending it again is a repeat."""
        from pki import CA
        from test_security import TlsMllp
        tmp = tempfile.mkdtemp(prefix="hl7q-id-tls-")
        self.cleanups.append(lambda: shutil.rmtree(tmp, True))
        ca = CA(tmp, "hospital")
        cert, key = ca.issue("hl7q.example.org", server=True)
        d = self.daemon({"tls": "tls_cert = %s\ntls_key = %s\ntls_client_ca = %s\nduplicates = reject"
                                % (cert, key, ca.pem)}).start()
        lis01 = TlsMllp(d.port, ca.pem, *ca.issue("lis01"))
        lis02 = TlsMllp(d.port, ca.pem, *ca.issue("lis02"))
        self.assertEqual(msa(lis01.request(message("TLS1")))[0], "AA")
        self.assertEqual(msa(lis02.request(message("TLS1")))[0], "AA")
        a = lis01.request(message("TLS1"))
        self.assertEqual((msa(a)[0], err_code(a)), ("AR", 205))
        lis01.close()
        lis02.close()

    def test_point3_existing_journal_opens(self):
        """A journal whose duplicate index is of format 1 (keys cut at 480
        bytes, 17-byte values) still opens; its old entries are dropped once,
        and detection works afresh."""
        import lmdb
        d = self.daemon({"main": "duplicates = reject"}).start()
        c = Mllp(d.port)
        self.assertEqual(msa(c.request(message("OLD1")))[0], "AA")
        c.close()
        d.stop()
        env = lmdb.open(d.journal, max_dbs=16, subdir=True)
        with env.begin(write=True) as txn:
            meta = env.open_db(b"meta", txn=txn, create=False)
            dedup = env.open_db(b"dedup", txn=txn, create=False)
            txn.delete(b"dedup_v2", db=meta)
            txn.drop(dedup, delete=False)
            txn.put(b"TESTAPP\x1fTESTFAC\x1fOLD2", b"\x01" + struct.pack(">QQ", 1, 1 << 62), db=dedup)
        env.close()
        d.start()
        c = Mllp(d.port)
        self.assertEqual(msa(c.request(message("OLD2")))[0], "AA")  # the old entry no longer counts
        a = c.request(message("OLD2"))
        self.assertEqual((msa(a)[0], err_code(a)), ("AR", 205))
        c.close()


class Point4OneJournal(DaemonTest):
    def second_conf(self, d):
        """A config for a second daemon on d's journal, with its own port."""
        port = free_port()
        path = os.path.join(d.dir, "second.conf")
        with open(path, "w") as f:
            f.write("[journal]\npath = %s\n[listener other]\nlisten = 127.0.0.1:%d\n" % (d.journal, port))
        return path

    def test_point4_second_daemon_on_one_journal_refuses(self):
        """A second hl7qd on the same journal refuses to start, naming the pid
        that holds it; the first goes on, and the CLI still reads."""
        s = self.sink()
        d = self.daemon(extra=target("t", s.url)).start()
        c = Mllp(d.port)
        self.assertEqual(msa(c.request(message("TWO1")))[0], "AA")
        p = subprocess.run([os.path.join(BIN, "hl7qd"), "-c", self.second_conf(d)],
                           capture_output=True, timeout=20)
        self.assertEqual(p.returncode, 2, p.stderr)
        self.assertIn(b"pid %d" % d.proc.pid, p.stderr)
        self.assertNotIn(b"ready", p.stderr)
        self.assertEqual(msa(c.request(message("TWO2")))[0], "AA")
        c.close()
        self.assertEqual(len(s.wait_for(2)), 2)
        for args in (["ls"], ["status"], ["show", "1"]):
            self.assertEqual(hl7q("-c", d.conf, *args).returncode, 0, args)
        d.stop()
        self.assertEqual(len(s.requests()), 2)

    def test_point4_compact_refused_while_running_and_copy_is_0600(self):
        d = self.daemon().start()
        c = Mllp(d.port)
        self.assertEqual(msa(c.request(message("CP1")))[0], "AA")
        c.close()
        out = tempfile.mkdtemp(prefix="hl7q-compact-")
        self.cleanups.append(lambda: shutil.rmtree(out, True))
        p = hl7q("-c", d.conf, "compact", os.path.join(out, "c1"))
        self.assertEqual(p.returncode, 1)
        self.assertIn(b"pid %d" % d.proc.pid, p.stderr)
        self.assertFalse(os.path.exists(os.path.join(out, "c1", "data.mdb")))
        d.stop()
        p = hl7q("-c", d.conf, "compact", os.path.join(out, "c2"), umask=0)
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertEqual(os.stat(os.path.join(out, "c2", "data.mdb")).st_mode & 0o777, 0o600)

    def test_point4_no_idempotency_key_repeats_across_copy_and_restore(self):
        """Stop, copy; deliver more; restore the copy, deliver more: the
        restored journal hands out the same ids again, never the same keys."""
        s = self.sink()
        d = self.daemon(extra=target("t", s.url)).start()
        out = tempfile.mkdtemp(prefix="hl7q-restore-")
        self.cleanups.append(lambda: shutil.rmtree(out, True))

        def send(prefix, n, total):
            c = Mllp(d.port)
            for i in range(n):
                self.assertEqual(msa(c.request(message("%s%d" % (prefix, i))))[0], "AA")
            c.close()
            self.assertEqual(len(s.wait_for(total)), total)

        send("A", 3, 3)
        d.stop()
        self.assertEqual(hl7q("-c", d.conf, "compact", os.path.join(out, "copy")).returncode, 0)
        d.start()
        send("B", 3, 6)
        d.stop()
        shutil.copy(os.path.join(out, "copy", "data.mdb"), os.path.join(d.journal, "data.mdb"))
        os.unlink(os.path.join(d.journal, "lock.mdb"))
        d.start()
        send("C", 3, 9)
        d.stop()
        reqs = s.requests()
        ids = [h["x-hl7-message-id"] for h, b in reqs]
        self.assertEqual(ids[3:6], ids[6:9])  # the restored copy gave the ids out again
        keys = [h["idempotency-key"] for h, b in reqs]
        self.assertEqual(len(set(keys)), 9, keys)

    def test_point4_replay_of_delivered_message_reaches_a_deduping_receiver(self):
        """Each deliberate replay carries a key of its own (a receiver that
        drops repeated keys takes it), and keeps it across its retries."""
        s = self.sink()
        d = self.daemon(extra=target("t", s.url)).start()
        c = Mllp(d.port)
        self.assertEqual(msa(c.request(message("RP1")))[0], "AA")
        c.close()
        s.wait_for(1)
        for n in (2, 3):
            self.assertEqual(hl7q("-c", d.conf, "replay", "1").returncode, 0)
            self.assertEqual(len(s.wait_for(n)), n)
        keys = [h["idempotency-key"] for h, b in s.requests()]
        self.assertEqual(len(set(keys)), 3, keys)  # a deduping receiver takes all three
        # the key is stable for the retries of one replay
        s.stop()
        self.assertEqual(hl7q("-c", d.conf, "replay", "1").returncode, 0)
        wait_until(lambda: "retry" in hl7q("-c", d.conf, "show", "1").stdout.decode(), timeout=10)
        d.stop()
        s2 = self.sink()
        with open(d.conf) as f:
            conf = f.read().replace(s.url, s2.url)
        with open(d.conf, "w") as f:
            f.write(conf)
        d.start()
        s2.wait_for(1)
        d.stop()
        k4 = s2.requests()[0][0]["idempotency-key"]
        self.assertNotIn(k4, keys)
        self.assertEqual(len({h["idempotency-key"] for h, b in s2.requests()}), 1)

    def test_point4_purge_of_undelivered_message_needs_force(self):
        d = self.daemon(extra=target("t", "http://127.0.0.1:1/x", retry_max="10m")).start()
        c = Mllp(d.port)
        self.assertEqual(msa(c.request(message("PG1")))[0], "AA")
        c.close()
        p = hl7q("-c", d.conf, "purge", "1")
        self.assertEqual(p.returncode, 1)
        self.assertRegex(p.stderr.decode(), r"message 1 has not been delivered to target t .*--force")
        self.assertIn(1, d.records())
        p = hl7q("-c", d.conf, "purge", "--force", "1")
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertNotIn(1, d.records())


if __name__ == "__main__":
    unittest.main()
