"""Integration tests for format = fhir (issue 13): hl7qd converting each
message into one FHIR R4 Bundle and delivering it over HTTPS to a FHIR
endpoint (tests/fhir/server.js: Medplum's FHIR router on its in-memory
repository); a replay of everything changes nothing there; types without a
mapping are dead-lettered or skipped with the reason; hl7q show --fhir; the
config keys and their --check errors."""

import json
import os
import re
import shutil
import ssl
import subprocess
import tempfile
import time
import unittest
import urllib.parse
import urllib.request

import hl7qtest
from hl7qtest import (BIN, DLV_DEAD, DLV_DELIVERED, DaemonTest, Mllp, corpus_files, msa,
                      read_deliveries, wait_until)
from test_intake import expected_positive

HERE = os.path.dirname(os.path.abspath(__file__))
FHIR_DIR = os.path.join(HERE, "..", "fhir")
FIXTURES = os.path.join(HERE, "..", "data", "fhir")
SUPPORTED = {"ADT^A01", "ADT^A02", "ADT^A03", "ADT^A04", "ADT^A08", "ADT^A11", "ADT^A28", "ADT^A31",
             "ADT^A40", "ORU^R01", "VXU^V04", "ORM^O01", "OML^O21", "SIU^S12", "MDM^T02"}
KEY = "4f1c0d3e9b8a7f6e5d4c3b2a190817263544536271809a8b7c6d5e4f3a2b1c0d"


def msg_type(data):
    """MSH-9.1^MSH-9.2 of the first MSH in data."""
    i = data.find(b"MSH")
    if i < 0:
        return ""
    fs = data[i + 3:i + 4]
    f = data[i:].split(b"\r")[0].split(b"\n")[0].split(fs)
    if len(f) < 9:
        return ""
    p = f[8].split(data[i + 4:i + 5])
    return (p[0] + b"^" + (p[1] if len(p) > 1 else b"")).decode("latin-1")


class FhirServer:
    """tests/fhir/server.js over HTTPS with a self-signed certificate."""

    def __init__(self):
        if not os.path.isdir(os.path.join(FHIR_DIR, "node_modules", "@medplum", "fhir-router")):
            raise RuntimeError("tests/fhir/node_modules missing: run make deps-fhir")
        self.dir = tempfile.mkdtemp(prefix="hl7q-fhir-")
        self.cert, self.key = hl7qtest.make_cert(self.dir, "fhir", "IP:127.0.0.1")
        self.proc = subprocess.Popen(["node", os.path.join(FHIR_DIR, "server.js"), self.cert, self.key],
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        line = self.proc.stdout.readline().decode()
        if "listening on" not in line:
            raise RuntimeError("server.js: " + line + self.proc.stderr.read().decode())
        self.port = int(line.rsplit(":", 1)[1])
        self.ctx = ssl.create_default_context(cafile=self.cert)

    @property
    def url(self):
        return "https://127.0.0.1:%d/fhir/" % self.port

    def get(self, path):
        with urllib.request.urlopen("https://127.0.0.1:%d%s" % (self.port, path), context=self.ctx, timeout=30) as r:
            return json.loads(r.read())

    def search(self, query):
        return [e["resource"] for e in self.get("/fhir/" + query).get("entry", [])]

    def cleanup(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait()
        shutil.rmtree(self.dir, ignore_errors=True)


class Fhir(DaemonTest):
    def key_file(self, d, text=KEY + "\n", mode=0o600):
        path = os.path.join(d.dir, "fhir-id.key")
        with open(path, "w") as f:
            f.write(text)
        os.chmod(path, mode)
        return path

    def fhir_daemon(self, url, extra="", ca=None):
        d = self.daemon()
        key = self.key_file(d)
        with open(d.conf, "a") as f:
            f.write(hl7qtest.target("fhir", url, "format = fhir\nfhir_id_key_file = %s\nfhir_timezone = America/Chicago\n"
                                    "ordering = none\nconcurrency = 4\n%s%s" % (key, "ca_file = %s\n" % ca if ca else "", extra)))
        return d

    def q(self, d, *args):
        return subprocess.run([os.path.join(BIN, "hl7q"), "-c", d.conf] + list(args), capture_output=True, timeout=60)

    def send_all(self, d, blobs):
        c = Mllp(d.port)
        for m in blobs:
            c.send(m)
            if expected_positive(m):
                self.assertIn(msa(c.recv_frame(timeout=10))[0], ("AA", "CA"))
        c.close()

    def settled(self, d, n):
        def done():
            dl = read_deliveries(d.journal)
            return len(dl) >= n and all(v[0] in (DLV_DELIVERED, DLV_DEAD) for v in dl.values()) and dl
        return wait_until(done, timeout=180, step=0.2)

    def test_end_to_end_replay_and_search(self):
        """Fixtures and the corpus delivered as Bundles over HTTPS; a replay of
        everything adds no resource; one Patient per identifier, with its
        Encounters, Observations and Immunizations."""
        srv = FhirServer()
        self.cleanups.append(srv)
        d = self.fhir_daemon(srv.url, ca=srv.cert).start()
        blobs = [open(os.path.join(FIXTURES, f), "rb").read() for f in sorted(os.listdir(FIXTURES))]
        blobs += [open(f, "rb").read() for f in corpus_files() if msg_type(open(f, "rb").read()) in SUPPORTED]
        self.send_all(d, blobs)
        dl = self.settled(d, len(blobs))
        self.assertTrue(dl, "deliveries did not settle")
        delivered = [k for k, v in dl.items() if v[0] == DLV_DELIVERED]
        dead = [k for k, v in dl.items() if v[0] == DLV_DEAD]
        # every fixture is delivered; a corpus message may be dead only with a segment-field reason
        for rid, _ in dead:
            out = self.q(d, "show", "--json", str(rid)).stdout.decode()
            errors = [a["error"] for a in json.loads(out)["attempts"]]
            self.assertTrue(any(re.match(r"fhir: [A-Z][A-Z0-9]{2}(\[\d+\])?-\d+: ", e) for e in errors), errors)
        posts = srv.get("/_posts")
        self.assertEqual(posts["bundles"], len(delivered))
        self.assertEqual(posts["content_types"], ["application/fhir+json"])
        counts = srv.get("/_counts")
        # replay everything: the same resources, updated in place
        ids = [str(i) for i in sorted(d.records())]
        out = self.q(d, "replay", *ids)
        self.assertEqual(out.returncode, 0, out.stderr)
        wait_until(lambda: srv.get("/_posts")["bundles"] >= 2 * len(delivered), timeout=180, step=0.2)
        self.assertTrue(self.settled(d, len(blobs)))
        self.assertEqual(srv.get("/_posts")["bundles"], 2 * len(delivered))
        self.assertEqual(srv.get("/_counts"), counts)
        # one Patient per identifier, with what belongs to it
        expect = {"MRN1001": ("Encounter", "Observation"), "MRN2002": ("Observation",),
                  "MRN3003": ("Immunization", "Observation"), "MRN4004": (), "MRN5005": (), "MRN6006": ("Encounter",)}
        for mrn, kinds in expect.items():
            pats = [p for p in srv.search("Patient?identifier=" + mrn) if p.get("active", True)]
            self.assertEqual(len(pats), 1, mrn)
            for kind in kinds:
                key = "patient" if kind == "Immunization" else "subject"
                found = srv.search("%s?%s=Patient/%s" % (kind, key, pats[0]["id"]))
                self.assertTrue(found, "%s of %s" % (kind, mrn))
        # A40: the merged record is inactive and replaced by the survivor
        old = srv.search("Patient?identifier=MRN0999")
        self.assertEqual(len(old), 1)
        self.assertFalse(old[0]["active"])
        self.assertEqual(old[0]["link"][0]["type"], "replaced-by")

    def test_unsupported_dead_or_skipped_with_reason(self):
        """A type without a mapping: dead with the reason (default), or
        skipped when fhir_unsupported = skip; never a silent success."""
        sink = self.sink()
        d = self.fhir_daemon(sink.url)
        with open(d.conf, "a") as f:
            f.write(hl7qtest.target("skipper", sink.url, "format = fhir\nfhir_id_key_file = %s\nfhir_unsupported = skip\n"
                                    % os.path.join(d.dir, "fhir-id.key")))
        d.start()
        self.send_all(d, [hl7qtest.message("Z1").replace(b"ADT^A01^ADT_A01", b"ADT^A05^ADT_A05")])
        dl = self.settled(d, 2)
        self.assertEqual(dl[(1, "fhir")][0], DLV_DEAD)
        self.assertEqual(dl[(1, "skipper")][0], DLV_DELIVERED)
        att = json.loads(self.q(d, "show", "--json", "1").stdout)["attempts"]
        errors = sorted(a["error"] for a in att)
        self.assertEqual(errors, ["fhir: MSH-9: no FHIR mapping for message type ADT^A05",
                                  "fhir: skipped: MSH-9: no FHIR mapping for message type ADT^A05"])
        self.assertEqual(sink.requests(), [])
        self.assertNotIn("SYNTHETIC", d.read_log())

    def test_unconvertible_and_too_big_are_dead(self):
        sink = self.sink()
        d = self.fhir_daemon(sink.url, "fhir_max_entries = 3\n").start()
        bad = hl7qtest.message("B1", extra=b"OBR|1|||\r")
        bad = bad.replace(b"ADT^A01^ADT_A01", b"ORU^R01^ORU_R01")
        oru = open(os.path.join(FIXTURES, "oru_r01.hl7"), "rb").read()
        self.send_all(d, [bad, oru])
        dl = self.settled(d, 2)
        self.assertEqual(dl[(1, "fhir")][0], DLV_DEAD)
        self.assertEqual(dl[(2, "fhir")][0], DLV_DEAD)
        e1 = json.loads(self.q(d, "show", "--json", "1").stdout)["attempts"][0]["error"]
        e2 = json.loads(self.q(d, "show", "--json", "2").stdout)["attempts"][0]["error"]
        self.assertEqual(e1, "fhir: OBR[1]-4: empty: DiagnosticReport.code is required")
        self.assertRegex(e2, r"^fhir: Bundle of \d+ entries exceeds fhir_max_entries 3")
        self.assertEqual(sink.requests(), [])

    def test_show_fhir_prints_what_the_target_gets(self):
        sink = self.sink()
        d = self.fhir_daemon(sink.url).start()
        self.send_all(d, [open(os.path.join(FIXTURES, "adt_a01.hl7"), "rb").read()])
        reqs = sink.wait_for(1)
        self.assertEqual(len(reqs), 1)
        self.assertEqual(reqs[0][0]["content-type"], "application/fhir+json")
        out = self.q(d, "show", "--fhir", "1")
        self.assertEqual(out.returncode, 0, out.stderr)
        self.assertEqual(out.stdout.rstrip(b"\n"), reqs[0][1])
        b = json.loads(out.stdout)
        self.assertEqual(b["type"], "transaction")
        self.assertTrue(all(e["request"]["method"] == "PUT" for e in b["entry"]))
        bad = self.q(d, "show", "--fhir", "--target", "nope", "1")
        self.assertEqual(bad.returncode, 1)
        self.assertIn("no format = fhir target 'nope'", bad.stderr.decode())

    def test_check_errors_name_file_and_line(self):
        d = self.daemon()
        key = self.key_file(d)
        cases = [
            ("format = fhir\n", "format = fhir needs fhir_id_key_file"),
            ("format = fhir\nfhir_id_key_file = %s\nfhir_timezone = Mars/Olympus\n" % key, "fhir_timezone: 'Mars/Olympus'"),
            ("format = fhir\nfhir_id_key_file = %s\nfhir_bundle = single\n" % key, "fhir_bundle: 'single'"),
            ("format = fhir\nfhir_id_key_file = %s\nfhir_unsupported = ignore\n" % key, "fhir_unsupported: 'ignore'"),
            ("format = fhir\nfhir_id_key_file = %s\nfhir_max_entries = -1\n" % key, "fhir_max_entries: '-1'"),
            ("format = fhir\nfhir_id_key_file = %s\nfhir_bundle = batch\nfhir_patient_match = identifier\n" % key,
             "fhir_patient_match = identifier needs fhir_bundle = transaction"),
        ]
        base = open(d.conf).read()
        for extra, want in cases:
            with open(d.conf, "w") as f:
                f.write(base + "[target t]\nurl = https://127.0.0.1:1/fhir/\n" + extra)
            out = subprocess.run([os.path.join(BIN, "hl7qd"), "-c", d.conf, "--check"], capture_output=True)
            self.assertEqual(out.returncode, 1, extra)
            self.assertRegex(out.stderr.decode(), re.escape(d.conf) + r":\d+: .*" + re.escape(want))
        # the key is a secret: readable by others, the daemon does not start
        os.chmod(key, 0o644)
        with open(d.conf, "w") as f:
            f.write(base + "[target t]\nurl = https://127.0.0.1:1/fhir/\nformat = fhir\nfhir_id_key_file = %s\n" % key)
        with self.assertRaises(RuntimeError) as cm:
            d.start()
        self.assertIn("fhir_id_key_file %s is readable by other users" % key, str(cm.exception))

    def test_bad_key_file_refuses_start(self):
        d = self.daemon()
        key = self.key_file(d, text="not-a-key\n")
        with open(d.conf, "a") as f:
            f.write(hl7qtest.target("t", "https://127.0.0.1:1/fhir/", "format = fhir\nfhir_id_key_file = %s\n" % key))
        with self.assertRaises(RuntimeError) as cm:
            d.start()
        self.assertIn("64 hex digits expected", str(cm.exception))

    def test_deploy_configs_pass_check(self):
        root = os.path.join(HERE, "..", "..", "deploy")
        for name in ("aws-healthlake.conf", "azure-health-data-services.conf"):
            text = open(os.path.join(root, name)).read()
            self.assertRegex(text, r"(?m)^format = fhir$")
            # --check reads every file the config names: give them (0600)
            # under a scratch root in place of /etc/hl7q and /var/lib/hl7q
            scratch = tempfile.mkdtemp(prefix="hl7q-fhirconf-")
            self.addCleanup(shutil.rmtree, scratch, True)
            text = text.replace("/etc/hl7q/", scratch + "/etc/").replace("/var/lib/hl7q", scratch + "/var/hl7q")
            for m in re.finditer(r"(?m)^\s*(\w+_file|client_cert|client_key|ca_file)\s*=\s*([^;\s]+)", text):
                os.makedirs(os.path.dirname(m.group(2)), exist_ok=True)
                with open(m.group(2), "w") as f:
                    f.write("00" * 32 + "\n")
                os.chmod(m.group(2), 0o600)
            os.makedirs(os.path.join(scratch, "var"))
            conf = os.path.join(scratch, name)
            with open(conf, "w") as f:
                f.write(text)
            out = subprocess.run([os.path.join(BIN, "hl7qd"), "-c", conf, "--check"], capture_output=True)
            self.assertEqual(out.returncode, 0, out.stderr)


if __name__ == "__main__":
    unittest.main()
