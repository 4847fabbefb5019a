"""Integration tests for the operator CLI (issue 4): bin/hl7q against a
journal filled by the real hl7qd, while it runs and delivers -- status, the
audit query and its filters, show and --raw, replay, purge, retention,
compact, the monitoring plugin, and one-line errors on bad input.  What
hl7q prints is checked against the journal read independently with
python3-lmdb."""

import json
import os
import re
import shutil
import subprocess
import tempfile
import time
import unittest

from test_intake import expected_positive
from hl7qtest import (DaemonTest, target, wait_until, BIN, Mllp, corpus_files, message, msa,
                      read_deliveries)

HL7Q = os.path.join(BIN, "hl7q")


def run(*args, check=None):
    p = subprocess.run([HL7Q] + list(args), capture_output=True, timeout=60)
    if check is not None and p.returncode != check:
        raise AssertionError("hl7q %s: exit %d (wanted %d)\nstdout: %s\nstderr: %s" %
                             (" ".join(args), p.returncode, check, p.stdout.decode("utf-8", "replace"),
                              p.stderr.decode("utf-8", "replace")))
    return p


def jlines(p):
    return [json.loads(l) for l in p.stdout.decode().splitlines() if l.strip()]


class Cli(DaemonTest):
    def q(self, d, *args, check=0):
        return run("-c", d.conf, *args, check=check)

    def status(self, d):
        rows = jlines(self.q(d, "status", "--json"))
        return {r["target"]: r for r in rows if "target" in r}, [r for r in rows if "journal" in r][0]["journal"]

    def send_corpus(self, d, files):
        """Sends files; returns {id: bytes} of those stored (accepted or refused)."""
        c = Mllp(d.port)
        for f in files:
            m = open(f, "rb").read()
            c.send(m)
            if expected_positive(m):
                self.assertIsNotNone(c.recv_frame(timeout=10), f)
        c.close()
        return wait_until(lambda: d.records() if len(d.records()) >= len(files) else None)

    def test_status_ls_show_while_delivering(self):
        """With the daemon running and delivering the corpus to one good and one
        down target: status, ls with every filter, and show agree with the
        journal itself."""
        good, down = self.sink("--delay", "5"), self.sink("--status", "503")
        d = self.daemon(extra=target("good", good.url, "ordering = none\nconcurrency = 4") +
                        target("down", down.url, "types = ORU")).start()
        files = corpus_files()[:80]
        recs = self.send_corpus(d, files)
        bad = Mllp(d.port)
        refused = msa(bad.request(b"MSH|^~\\&|A|B|C|D|20261126||ADT^A01|BAD1|P|2.5.1\rZZZ\xff|x\r"))[0]
        bad.close()
        self.assertIn(refused, ("AE", "AR"))
        recs = wait_until(lambda: d.records() if len(d.records()) > len(recs) else None)

        # status while it runs: every accepted message is pending, in flight or delivered
        accepted = [r for r in recs.values() if r["state"] == 1]
        oru = [r for r in accepted if r["type"].startswith(b"ORU")]
        self.assertTrue(oru)
        st, journal = self.status(d)
        self.assertEqual(set(st), {"good", "down"})
        g = st["good"]
        self.assertEqual(g["pending"] + g["retrying"] + g["inflight"] + g["dead"] + g["delivered"],
                         len(accepted), g)
        self.assertGreater(journal["size_bytes"], 0)
        self.assertGreater(journal["free_bytes"], 0)
        # once drained: good has all of them delivered, down holds every ORU
        wait_until(lambda: self.status(d)[0]["good"]["delivered"] == len(accepted))
        st, _ = self.status(d)
        self.assertEqual(st["good"]["delivered"], len(accepted))
        self.assertEqual(st["good"]["pending"] + st["good"]["retrying"] + st["good"]["dead"], 0)
        dn = st["down"]
        self.assertEqual(dn["pending"] + dn["retrying"] + dn["inflight"], len(oru))
        self.assertEqual(dn["delivered"], 0)
        self.assertIsNotNone(dn["last_error"])
        self.assertIsNotNone(st["good"]["last_success"])
        self.assertGreaterEqual(dn["oldest_pending_age_s"], 0)
        table = self.q(d, "status").stdout.decode()
        self.assertIn("TARGET", table.splitlines()[0])
        self.assertIn("journal", table)

        # ls: all, and each filter against the journal read independently
        every = jlines(self.q(d, "--json", "ls"))
        self.assertEqual([o["id"] for o in every], sorted(recs))
        by_id = {o["id"]: o for o in every}
        for rid, r in recs.items():
            o = by_id[rid]
            self.assertEqual(o["control_id"], r["control_id"].decode("utf-8", "replace"))
            self.assertEqual(o["ack"], r["ack"])
        some = accepted[len(accepted) // 2]
        ctrl = some["control_id"].decode()
        want = sorted(i for i, r in recs.items() if r["control_id"] == some["control_id"])
        self.assertEqual([o["id"] for o in jlines(self.q(d, "ls", "--json", "--control-id", ctrl))], want)
        pat = some["patient_id"].decode()
        want = sorted(i for i, r in recs.items() if r["patient_id"] == some["patient_id"])
        self.assertEqual([o["id"] for o in jlines(self.q(d, "ls", "--json", "--patient", pat))], want)
        want = sorted(i for i, r in recs.items() if r["type"].split(b"^")[0] == b"ADT")
        self.assertEqual([o["id"] for o in jlines(self.q(d, "ls", "--json", "--type", "ADT"))], want)
        want = sorted(i for i, r in recs.items() if r["type"].split(b"^")[:2] == [b"ADT", b"A01"])
        self.assertEqual([o["id"] for o in jlines(self.q(d, "ls", "--json", "--type", "ADT^A01"))], want)
        rej = jlines(self.q(d, "ls", "--json", "--state", "rejected"))
        self.assertEqual([o["id"] for o in rej], sorted(i for i, r in recs.items() if r["state"] == 2))
        self.assertTrue(rej)
        # pending is what status and check count as pending: retrying included
        retrying = jlines(self.q(d, "ls", "--json", "--state", "retry", "--target", "down"))
        pend = jlines(self.q(d, "ls", "--json", "--state", "pending", "--target", "down"))
        self.assertEqual(sorted(o["id"] for o in pend), sorted(r["id"] for r in oru))
        self.assertTrue(set(o["id"] for o in retrying) <= set(o["id"] for o in pend))
        dl = jlines(self.q(d, "ls", "--json", "--state", "delivered", "--target", "good", "--type", "ORU"))
        self.assertEqual([o["id"] for o in dl], sorted(r["id"] for r in oru))
        self.assertTrue(all(o["targets"]["good"] == "delivered" for o in dl))
        # time range: the middle third by received time
        times = sorted(r["received_us"] for r in recs.values())
        lo, hi = times[len(times) // 3], times[2 * len(times) // 3]
        iso = lambda us: time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(us // 1000000)) + \
            ".%06dZ" % (us % 1000000)
        want = sorted(i for i, r in recs.items() if lo <= r["received_us"] < hi)
        got = jlines(self.q(d, "ls", "--json", "--since", iso(lo), "--until", iso(hi)))
        self.assertEqual([o["id"] for o in got], want)
        self.assertEqual(len(jlines(self.q(d, "ls", "--json", "--since", "1h", "--limit", "7"))), 7)
        self.assertEqual(jlines(self.q(d, "ls", "--json", "--until", "1h")), [])
        # the table: a header and one aligned row per message
        lines = self.q(d, "ls", "--type", "ORU").stdout.decode().splitlines()
        self.assertTrue(lines[0].startswith("ID"))
        self.assertEqual(len(lines), len(oru) + 1)
        col = lines[0].index("RECEIVED")
        self.assertTrue(all(re.match(r"\d{4}-\d\d-\d\dT", l[col:]) for l in lines[1:]), lines)

        # show: metadata, ACK, attempts per target; --raw the bytes exactly
        rid = oru[0]["id"]
        sj = jlines(self.q(d, "show", "--json", str(rid)))[0]
        self.assertEqual(sj["id"], rid)
        self.assertEqual(sj["ack"], "AA")
        self.assertEqual(sj["targets"], {"good": "delivered", "down": sj["targets"]["down"]})
        self.assertIn(sj["targets"]["down"], ("pending", "retry"))
        codes = {(a["target"], a["http_status"]) for a in sj["attempts"]}
        self.assertIn(("good", 200), codes)
        self.assertIn(("down", 503), codes)
        text = self.q(d, "show", str(rid)).stdout.decode()
        for word in ("received", "listener", "ack sent", "AA", "attempts", "HTTP", "down", "good"):
            self.assertIn(word, text)
        for rid, r in list(recs.items())[:20]:
            self.assertEqual(self.q(d, "show", "--raw", str(rid)).stdout, r["raw"])

    def test_status_counts_add_up_with_a_stale_inflight_count(self):
        """hl7qd writes its in-flight counts to hl7qd.status once a second, so
        status can read one older than the journal: the requests in flight are
        among the journal's pending deliveries, never more, and a target's
        counts add up to its messages."""
        sink = self.sink()
        d = self.daemon(extra=target("t", sink.url, "ordering = none")).start()
        c = Mllp(d.port)
        for i in range(5):
            self.assertEqual(msa(c.request(message("S%d" % i)))[0], "AA")
        c.close()
        self.assertTrue(wait_until(lambda: self.status(d)[0]["t"]["delivered"] == 5))
        d.stop()
        # what the daemon wrote just before its last deliveries were recorded
        # (the pid of a live process: this one)
        with open(os.path.join(d.journal, "hl7qd.status"), "w") as f:
            f.write("pid %d\nupdated_us 0\ninflight t 3\n" % os.getpid())
        t = self.status(d)[0]["t"]
        self.assertEqual(t["pending"] + t["retrying"] + t["inflight"] + t["dead"] + t["delivered"], 5, t)
        self.assertEqual(t["inflight"], 0, t)

    def test_replay_dead_after_recovery_and_purge_frees_space(self):
        """A target answers 400 (dead at once) and then recovers: `replay --dead`
        delivers every one, history kept; purging dead messages frees journal
        space (status shows more free bytes)."""
        sink = self.sink("--status", "400", "--for", "4")
        t0 = time.time()
        d = self.daemon(extra=target("t", sink.url, "ordering = none\nconcurrency = 8")).start()
        n = 60
        c = Mllp(d.port)
        for i in range(n):
            self.assertEqual(msa(c.request(message("R%03d" % i, size=20000)))[0], "AA")
        c.close()
        self.assertTrue(wait_until(lambda: self.status(d)[0]["t"]["dead"] == n), self.status(d))
        dead = jlines(self.q(d, "ls", "--json", "--state", "dead"))
        self.assertEqual(len(dead), n)
        time.sleep(max(0, t0 + 4.5 - time.time()))  # the sink answers 200 from now on
        self.assertEqual(self.q(d, "replay", "--dead", "--target", "t").stdout.decode().strip(),
                         "queued %d deliveries of %d messages" % (n, n))
        self.assertTrue(wait_until(lambda: self.status(d)[0]["t"]["delivered"] == n), self.status(d))
        st, _ = self.status(d)
        self.assertEqual(st["t"]["dead"], 0)
        bodies = [b for h, b in sink.requests()]
        for i in range(n):
            self.assertIn(message("R%03d" % i, size=20000), bodies)
        sj = jlines(self.q(d, "show", "--json", str(dead[0]["id"])))[0]
        self.assertEqual([a["http_status"] for a in sj["attempts"]], [400, 200])
        self.assertEqual([a["n"] for a in sj["attempts"]], [1, 2])

        # dead again (a second outage, 400), then purge them: space is freed
        sink.stop()
        sink2 = self.sink("--status", "400")
        d.stop()
        with open(d.conf) as f:
            conf = f.read().replace(sink.url, sink2.url)
        with open(d.conf, "w") as f:
            f.write(conf)
        d.start()
        c = Mllp(d.port)
        for i in range(n):
            self.assertEqual(msa(c.request(message("P%03d" % i, size=20000)))[0], "AA")
        c.close()
        self.assertTrue(wait_until(lambda: self.status(d)[0]["t"]["dead"] == n), self.status(d))
        _, before = self.status(d)
        self.assertEqual(self.q(d, "purge", "--dead", "--dry-run").stdout.decode().strip(),
                         "would purge %d messages" % n)
        self.assertEqual(self.status(d)[0]["t"]["dead"], n)  # a dry run changes nothing
        out = self.q(d, "purge", "--dead").stdout.decode()
        self.assertTrue(out.startswith("purged %d messages" % n), out)
        st, after = self.status(d)
        self.assertEqual(st["t"]["dead"], 0)
        self.assertGreater(after["free_bytes"], before["free_bytes"] + n * 15000)
        self.assertEqual(len(d.records()), n)  # the delivered first round stays
        self.assertEqual(run("-c", d.conf, "show", str(n + 1)).returncode, 1)
        # and the space is reused: 600 KB more messages grow the file by far less
        size = after["size_bytes"]
        c = Mllp(d.port)
        for i in range(n // 2):
            self.assertEqual(msa(c.request(message("Q%03d" % i, size=20000)))[0], "AA")
        c.close()
        self.assertLess(self.status(d)[1]["size_bytes"] - size, 150000)

    def test_purge_delivered_before_ids_and_retention(self):
        """purge --delivered-before takes only delivered messages; purge ID
        takes those; the daemon's own retention purges delivered messages."""
        sink = self.sink()
        d = self.daemon(extra=target("t", sink.url) + target("never", "http://127.0.0.1:1/x",
                                                                  "types = ORU")).start()
        c = Mllp(d.port)
        adt = [message("D%02d" % i) for i in range(10)]
        oru = [message("O%02d" % i).replace(b"ADT^A01^ADT_A01", b"ORU^R01^ORU_R01") for i in range(3)]
        for m in adt + oru:
            self.assertEqual(msa(c.request(m))[0], "AA")
        c.close()
        self.assertTrue(wait_until(lambda: self.status(d)[0]["t"]["delivered"] == 13))
        self.assertEqual(self.q(d, "purge", "--delivered-before", "0s", "--dry-run").stdout.decode().strip(),
                         "would purge 10 messages")
        self.assertTrue(self.q(d, "purge", "--delivered-before", "0s").stdout.decode().startswith("purged 10 messages"))
        left = jlines(self.q(d, "ls", "--json"))
        self.assertEqual(len(left), 3)
        self.assertTrue(all(o["type"].startswith("ORU") for o in left))
        self.assertEqual(self.status(d)[0]["t"]["delivered"], 3)
        # not yet delivered to "never": only with --force
        self.assertIn("--force", self.q(d, "purge", str(left[0]["id"]), check=1).stderr.decode())
        self.assertTrue(self.q(d, "purge", "--force", str(left[0]["id"])).stdout.decode().startswith("purged 1 message"))
        self.assertEqual(len(jlines(self.q(d, "ls", "--json"))), 2)
        # the journal's own view agrees
        self.assertEqual(sorted(d.records()), sorted(o["id"] for o in left[1:]))
        self.assertEqual({k for k in read_deliveries(d.journal)},
                         {(o["id"], t) for o in left[1:] for t in ("t", "never")})
        d.stop()

        # retention: the daemon purges delivered messages older than it by itself
        sink2 = self.sink()
        r = self.daemon(journal_extra="retention = 1s", extra=target("t", sink2.url)).start()
        c = Mllp(r.port)
        for i in range(5):
            self.assertEqual(msa(c.request(message("K%02d" % i)))[0], "AA")
        c.close()
        self.assertTrue(wait_until(lambda: len(sink2.requests()) == 5))
        self.assertTrue(wait_until(lambda: len(r.records()) == 0, timeout=20), r.read_log())
        self.assertIn("retention: purged 5", r.read_log())

    def test_replay_ids_and_range_for_a_new_target(self):
        """replay ID re-sends a delivered message (with an Idempotency-Key of
        its own, so that receivers that dedupe take it); a target added later
        gets a time range replayed to it."""
        a = self.sink()
        d = self.daemon(extra=target("a", a.url)).start()
        c = Mllp(d.port)
        for i in range(6):
            self.assertEqual(msa(c.request(message("N%02d" % i)))[0], "AA")
        c.close()
        a.wait_for(6)
        self.assertEqual(self.q(d, "replay", "2", "3").stdout.decode().strip(),
                         "queued 2 deliveries of 2 messages")
        reqs = a.wait_for(8)
        self.assertEqual(len(reqs), 8)
        keys = [h["idempotency-key"] for h, b in reqs]
        self.assertEqual(len(set(keys)), 8)
        self.assertEqual(sorted(b for h, b in reqs[6:]), sorted([message("N01"), message("N02")]))
        d.stop()
        b = self.sink()
        with open(d.conf, "a") as f:
            f.write(target("b", b.url))
        d.start()
        time.sleep(0.5)
        self.assertEqual(b.requests(), [])  # old messages do not go to a new target by themselves
        out = self.q(d, "replay", "--target", "b", "--since", "1h").stdout.decode().strip()
        self.assertEqual(out, "queued 6 deliveries of 6 messages\n6 of them b never had: 1 2 3 4 5 6")
        self.assertEqual(sorted(x for h, x in b.wait_for(6)), sorted(message("N%02d" % i) for i in range(6)))

    def test_check_plugin_and_compact(self):
        """The monitoring plugin's exit codes and perfdata; compact writes a
        smaller copy that hl7q can read."""
        d = self.daemon(extra=target("t", "http://127.0.0.1:1/x", "max_attempts = 1")).start()
        ok = self.q(d, "check")
        self.assertTrue(ok.stdout.decode().startswith("HL7Q OK - 0 pending, 0 dead"), ok.stdout)
        c = Mllp(d.port)
        for i in range(4):
            self.assertEqual(msa(c.request(message("C%02d" % i, size=5000)))[0], "AA")
        c.close()
        self.assertTrue(wait_until(lambda: self.status(d)[0]["t"]["dead"] == 4))
        crit = self.q(d, "check", "--max-dead", "0", check=2).stdout.decode()
        self.assertTrue(crit.startswith("HL7Q CRITICAL - 0 pending, 4 dead"), crit)
        self.assertIn("| pending=0;10000;100000;0; dead=4;;0;0;", crit)  # pending keeps its defaults
        self.assertEqual(len(crit.splitlines()), 1)
        j = jlines(self.q(d, "check", "--json", "--max-dead", "0", check=2))[0]
        self.assertEqual((j["status"], j["dead"], j["pending"]), ("CRITICAL", 4, 0))
        warn = self.q(d, "check", "--warn-dead", "3", "--max-dead", "10", check=1).stdout.decode()
        self.assertTrue(warn.startswith("HL7Q WARNING"), warn)
        self.q(d, "check", "--max-dead", "4", "--max-age", "1h", "--max-pending", "0", check=0)
        self.assertEqual(run("-j", "/nonexistent/journal", "check").returncode, 3)
        self.assertEqual(self.q(d, "check", "--max-age", "soon", check=3).stdout.decode().split(" -")[0],
                         "HL7Q UNKNOWN")

        d.stop()  # compact refuses while hl7qd holds the journal (test_identity)
        out = tempfile.mkdtemp(prefix="hl7q-compact-")
        self.addCleanup(shutil.rmtree, out, True)
        copy = os.path.join(out, "copy")
        msg = self.q(d, "compact", copy).stdout.decode()
        self.assertIn("data.mdb", msg)
        self.assertLessEqual(os.path.getsize(os.path.join(copy, "data.mdb")),
                             os.path.getsize(os.path.join(d.journal, "data.mdb")))
        self.assertEqual(len(jlines(run("-j", copy, "ls", "--json", check=0))), 4)
        self.assertEqual(run("-c", d.conf, "compact", copy).returncode, 1)  # not over a journal
        j = jlines(self.q(d, "compact", "--json", os.path.join(out, "copy2")))[0]
        self.assertEqual(j["copy_bytes"], os.path.getsize(os.path.join(out, "copy2", "data.mdb")))

    def test_bad_input_one_line_and_exit_1(self):
        """Unknown command or option, a missing id, a malformed time,
        conflicting filters: one line on stderr and exit 1; no journal: 2."""
        d = self.daemon(extra=target("t", "http://127.0.0.1:1/x")).start()
        c = Mllp(d.port)
        self.assertEqual(msa(c.request(message("E01")))[0], "AA")
        c.close()
        cases = [
            ["frobnicate"], ["ls", "--frob"], ["--frob", "ls"], ["show", "424242"], ["show", "abc"],
            ["show"], ["replay", "424242"], ["purge", "424242"], ["ls", "--since", "yesterday"],
            ["ls", "--until", "2026-13-45T00:00:00Z"], ["ls", "--since", "1h", "--until", "2h"],
            ["ls", "--state", "rejected", "--target", "t"], ["ls", "--state", "lost"],
            ["ls", "--limit", "x"], ["replay"], ["replay", "--dead", "1"],
            ["replay", "--since", "1h"], ["purge"], ["purge", "--dead", "--delivered-before", "1d"],
            ["purge", "--delivered-before", "noon"], ["show", "1", "--raw", "--json"], ["compact"],
        ]
        for args in cases:
            p = run("-c", d.conf, *args)
            self.assertEqual(p.returncode, 1, (args, p.stdout, p.stderr))
            err = p.stderr.decode()
            self.assertEqual(len(err.strip().splitlines()), 1, (args, err))
            self.assertTrue(err.startswith("hl7q"), (args, err))
        self.assertEqual(run("ls").returncode, 1)  # neither -c nor -j
        p = run("-j", os.path.join(d.dir, "nothing-here"), "ls")
        self.assertEqual(p.returncode, 2)
        self.assertIn("cannot open journal", p.stderr.decode())
        # nothing was changed by all that
        self.assertEqual(len(d.records()), 1)
        self.assertEqual(run("-c", d.conf, "show", "--raw", "1", check=0).stdout, message("E01"))


if __name__ == "__main__":
    unittest.main()
