"""Integration tests for delivery (issue 3, first part): the real hl7qd
draining its journal to hl7sink over HTTP -- routing, fan-out, raw and
google-hl7v2 payloads, retries, dead-letter, basic and bearer auth, and
SIGKILL during delivery."""

import base64
import json
import os
import threading
import time
import unittest
import urllib.parse

from test_intake import expected_positive
import hl7qtest
from hl7qtest import (DaemonTest, DLV_DEAD, DLV_DELIVERED, Daemon, Mllp, Sink, corpus_files,
                      message, msa, read_deliveries)


def target(name, url, extra=""):
    return hl7qtest.target(name, url, extra, retry_max="500ms")


class Delivery(DaemonTest):
    def send(self, d, msgs, port=None):
        c = Mllp(port or d.port)
        for m in msgs:
            self.assertIn(msa(c.request(m))[0], ("AA", "CA"))
        c.close()

    def test_corpus_raw_byte_identical_and_fanout(self):
        """Every corpus message arrives byte-identical at both targets, with
        the headers the issue names."""
        a, b = self.sink(), self.sink()
        d = self.daemon(extra=target("a", a.url, "ordering = none\nconcurrency = 4") +
                        target("b", b.url, "headers = X-Env: test; X-Site: demo")).start()
        files = corpus_files()
        data = {}
        c = Mllp(d.port)
        for f in files:
            m = open(f, "rb").read()
            c.send(m)
            if expected_positive(m):  # NE/ER messages get no ACK
                self.assertIsNotNone(c.recv_frame(timeout=10))
            data[m] = True
        c.close()
        for s in (a, b):
            reqs = s.wait_for(len(files), timeout=60)
            self.assertEqual(len(reqs), len(files))
            self.assertEqual(sorted(body for _, body in reqs), sorted(data))
            for h, body in reqs:
                self.assertTrue(h["content-type"].startswith("x-application/hl7-v2+er7"))
                self.assertIn("idempotency-key", h)
                self.assertIn("x-hl7-message-id", h)
                self.assertIn("x-hl7-control-id", h)
                self.assertIn("x-hl7-message-type", h)
        self.assertEqual(b.requests()[0][0]["x-env"], "test")
        self.assertEqual(b.requests()[0][0]["x-site"], "demo")
        dl = read_deliveries(d.journal)
        self.assertEqual(len(dl), 2 * len(files))
        self.assertTrue(all(v[0] == DLV_DELIVERED for v in dl.values()))

    def test_routing_and_unrouted(self):
        adt, oru = self.sink(), self.sink()
        d = self.daemon({"in1": "", "in2": ""},
                        extra=target("adt", adt.url, "types = ADT^*\nfrom = in1") +
                        target("oru", oru.url, "types = ORU^R01")).start()
        self.send(d, [message("R1")], d.ports["in1"])  # ADT^A01 via in1: adt
        self.send(d, [message("R2")], d.ports["in2"])  # ADT via in2: nobody
        o = message("R3").replace(b"ADT^A01^ADT_A01", b"ORU^R01^ORU_R01")
        self.send(d, [o], d.ports["in2"])
        self.assertEqual(len(adt.wait_for(1)), 1)
        self.assertEqual(len(oru.wait_for(1)), 1)
        time.sleep(0.5)
        self.assertEqual([h["x-hl7-control-id"] for h, _ in adt.requests()], ["R1"])
        self.assertEqual([h["x-hl7-control-id"] for h, _ in oru.requests()], ["R3"])
        states = {r["control_id"]: r["state"] for r in d.records().values()}
        self.assertEqual(states, {b"R1": 1, b"R2": 4, b"R3": 1})

    def test_outage_503_then_all_in_order(self):
        s = self.sink("--status", "503", "--for", "2")
        d = self.daemon(extra=target("t", s.url)).start()
        self.send(d, [message("O%02d" % i) for i in range(20)])
        reqs = s.wait_for(20, timeout=30)
        self.assertEqual([h["x-hl7-control-id"] for h, _ in reqs], ["O%02d" % i for i in range(20)])
        self.assertIn(503, s.statuses())
        self.assertIn("target t: down", d.read_log())
        self.assertIn("target t: back", d.read_log())

    def test_target_down_then_up(self):
        s = Sink()
        port = __import__("hl7qtest").free_port()
        s.port = port
        self.cleanups.append(s)
        d = self.daemon(extra=target("t", "http://127.0.0.1:%d/x" % port)).start()
        self.send(d, [message("U%d" % i) for i in range(5)])
        time.sleep(1.0)
        s.start()
        reqs = s.wait_for(5, timeout=20)
        self.assertEqual([h["x-hl7-control-id"] for h, _ in reqs], ["U%d" % i for i in range(5)])

    def test_400_dead_letters_at_once(self):
        s = self.sink("--status", "400")
        d = self.daemon(extra=target("t", s.url)).start()
        self.send(d, [message("X1"), message("X2")])
        deadline = time.time() + 10
        while time.time() < deadline:
            dl = read_deliveries(d.journal)
            if all(v[0] == DLV_DEAD for v in dl.values()) and len(dl) == 2:
                break
            time.sleep(0.1)
        self.assertEqual(sorted(dl.values()), [(DLV_DEAD, 1, 400), (DLV_DEAD, 1, 400)])
        self.assertIn("dead-lettered after 1 attempt (HTTP 400)", d.read_log())

    def test_max_attempts_dead_letters(self):
        s = self.sink("--status", "500")
        d = self.daemon(extra=target("t", s.url, "max_attempts = 3")).start()
        self.send(d, [message("M1")])
        deadline = time.time() + 10
        while time.time() < deadline and list(read_deliveries(d.journal).values())[0][0] != DLV_DEAD:
            time.sleep(0.1)
        self.assertEqual(list(read_deliveries(d.journal).values()), [(DLV_DEAD, 3, 500)])

    def test_auth_basic_and_bearer(self):
        a, b = self.sink(), self.sink()
        d = self.daemon()
        pw = os.path.join(d.dir, "pw")
        tok = os.path.join(d.dir, "tok")
        with open(pw, "w") as f:
            f.write("s3cret pass\n")
        with open(tok, "w") as f:
            f.write("tok-123\n")
        os.chmod(pw, 0o600)  # secrets readable by others are refused
        os.chmod(tok, 0o600)
        with open(d.conf, "a") as f:
            f.write(target("a", a.url, "auth = basic\nusername = bridge\npassword_file = " + pw))
            f.write(target("b", b.url, "auth = bearer\ntoken_file = " + tok))
        d.start()
        self.send(d, [message("A1")])
        ha = a.wait_for(1)[0][0]
        hb = b.wait_for(1)[0][0]
        self.assertEqual(ha["authorization"], "Basic " + base64.b64encode(b"bridge:s3cret pass").decode())
        self.assertEqual(hb["authorization"], "Bearer tok-123")
        self.assertNotIn("s3cret", d.read_log())
        self.assertNotIn("tok-123", d.read_log())

    def test_google_hl7v2_format(self):
        s = self.sink()
        d = self.daemon(extra=target("g", s.url, "format = google-hl7v2")).start()
        m = message("G1")
        self.send(d, [m])
        h, body = s.wait_for(1)[0]
        self.assertEqual(h["content-type"], "application/json")
        self.assertEqual(base64.b64decode(json.loads(body)["message"]["data"]), m)

    def test_sigkill_during_delivery_loses_nothing(self):
        """SIGKILL while delivering; after restart every message arrives, and
        a message arriving twice carries the same Idempotency-Key."""
        s = self.sink("--delay", "20")
        d = self.daemon(extra=target("t", s.url)).start()
        msgs = [message("S%03d" % i) for i in range(120)]
        self.send(d, msgs)
        time.sleep(0.7)
        d.kill()
        before = len(s.requests())
        self.assertLess(before, 120)
        d.start()
        deadline = time.time() + 60
        while time.time() < deadline:
            reqs = s.requests()
            if len({h["x-hl7-control-id"] for h, _ in reqs}) == 120:
                break
            time.sleep(0.1)
        time.sleep(0.3)
        reqs = s.requests()
        got = [h["x-hl7-control-id"] for h, _ in reqs]
        self.assertEqual(sorted(set(got)), sorted("S%03d" % i for i in range(120)))
        dups = len(got) - len(set(got))
        self.assertLessEqual(dups, 1)  # fifo: at most the one in flight
        keys = {}
        for h, body in reqs:
            keys.setdefault(h["x-hl7-control-id"], set()).add(h["idempotency-key"])
        self.assertTrue(all(len(k) == 1 for k in keys.values()))
        self.assertEqual({b for _, b in reqs}, set(msgs))

    def test_target_config_errors(self):
        d = self.daemon(extra="[target t]\nformat = raw\n")
        import subprocess
        from hl7qtest import BIN
        out = subprocess.run([os.path.join(BIN, "hl7qd"), "-c", d.conf, "--check"],
                             capture_output=True, text=True)
        self.assertEqual(out.returncode, 1)
        self.assertRegex(out.stderr, r":\d+: \[target t\] needs url")
        d2 = self.daemon(extra=target("t", "http://127.0.0.1:1/", "from = nosuch"))
        out = subprocess.run([os.path.join(BIN, "hl7qd"), "-c", d2.conf, "--check"],
                             capture_output=True, text=True)
        self.assertIn("from names a listener that is not configured", out.stderr)


class DeliveryNginx(unittest.TestCase):
    """Delivery over HTTPS to Debian's nginx with a self-signed certificate."""

    def test_https_via_nginx_and_certificate_checks(self):
        from hl7qtest import Nginx
        sink = Sink().start()
        ng = Nginx(sink.port)
        try:
            d = Daemon(extra=target("good", "https://127.0.0.1:%d/hl7" % ng.port,
                                    "ca_file = %s\nordering = none" % ng.cert) +
                       target("noca", "https://127.0.0.1:%d/hl7" % ng.port) +
                       target("wrongname", "https://127.0.0.1:%d/" % ng.wrong_port,
                              "ca_file = %s" % ng.wrong_cert) +
                       target("mtls", "https://127.0.0.1:%d/hl7" % ng.mtls_port,
                              "ca_file = %s\nclient_cert = %s\nclient_key = %s"
                              % (ng.cert, ng.client_cert, ng.client_key)) +
                       target("nocert", "https://127.0.0.1:%d/hl7" % ng.mtls_port,
                              "ca_file = %s" % ng.cert))
            d.start()
            msgs = [message("N%02d" % i, size=800) for i in range(30)]
            c = Mllp(d.port)
            for m in msgs:
                self.assertEqual(msa(c.request(m))[0], "AA")
            reqs = sink.wait_for(60, timeout=30)  # via "good" and via "mtls"
            self.assertEqual(sorted(b for _, b in reqs), sorted(msgs + msgs))
            time.sleep(1.0)
            dl = read_deliveries(d.journal)
            good = [v for (i, t), v in dl.items() if t == "good"]
            self.assertTrue(all(v[0] == DLV_DELIVERED for v in good) and len(good) == 30)
            # Unknown CA and wrong host name: refused, waiting for retry, never sent in clear.
            for name in ("noca", "wrongname"):
                rows = [v for (i, t), v in dl.items() if t == name]
                self.assertEqual(len(rows), 30)
                self.assertTrue(all(v[0] != DLV_DELIVERED for v in rows), name)
            # mutual TLS: with the client certificate delivered, without it refused by nginx
            self.assertTrue(all(v[0] == DLV_DELIVERED for (i, t), v in dl.items() if t == "mtls"))
            self.assertTrue(all(v[0] != DLV_DELIVERED and v[2] == 400
                                for (i, t), v in dl.items() if t == "nocert"))
            self.assertEqual(len(sink.requests()), 60)
            log = d.read_log()
            self.assertRegex(log, r"target noca: down \(TLS: self-signed certificate: set ca_file")
            self.assertRegex(log, r"target wrongname: down \(TLS: host name not in the certificate")
            d.cleanup()
        finally:
            ng.cleanup()
            sink.cleanup()


def json_to_hl7(j):
    """The JSON schema of deploy/doc/json.md decoded independently of the C code."""
    seps = j["separators"].encode()
    fs, cs, rs, es = seps[0:1], seps[1:2], seps[2:3], seps[3:4]
    ss = seps[4:5] or None
    ts = seps[5:6] or None
    codes = [(fs, b"F"), (cs, b"S"), (rs, b"R"), (es, b"E")]
    if ss:
        codes.append((ss, b"T"))
    if ts:
        codes.append((ts, b"P"))

    def leaf(x):
        if isinstance(x, str):
            out = b""
            for ch in x.encode():
                c = bytes([ch])
                for d, code in codes:
                    if c == d:
                        c = es + code + es
                        break
                out += c
            return out
        if "raw" in x:
            return x["raw"].encode()
        return base64.b64decode(x["base64"])

    def level(x, depth):
        if isinstance(x, list):
            sep = [rs, cs, ss][depth]
            return sep.join(level(e, depth + 1) for e in x)
        return leaf(x)

    out = b""
    for seg in j["segments"]:
        out += leaf(seg["name"])
        if "encoding" in seg:
            out += fs + seg["encoding"].encode()
        for f in seg["fields"]:
            out += fs + level(f, 0)
        out += seg.get("end", "\r").encode()
    return out


class DeliveryJson(unittest.TestCase):
    def test_json_format_lossless_over_corpus(self):
        s = Sink().start()
        d = Daemon(extra=target("j", s.url, "format = json\nordering = none")).start()
        try:
            files = corpus_files()
            sent = {}
            c = Mllp(d.port)
            for f in files:
                m = open(f, "rb").read()
                c.send(m)
                if expected_positive(m):
                    self.assertIsNotNone(c.recv_frame(timeout=10))
                sent[m] = f
            c.close()
            reqs = s.wait_for(len(files), timeout=60)
            self.assertEqual(len(reqs), len(files))
            for h, body in reqs:
                self.assertEqual(h["content-type"], "application/json")
                j = json.loads(body)
                for key in ("id", "received_at", "listener", "peer", "type", "control_id",
                            "version", "sender", "receiver"):
                    self.assertIn(key, j)
                self.assertIsNotNone(j["message"])
                raw = json_to_hl7(j["message"])
                self.assertIn(raw, sent, "JSON does not give back a sent message")
                # the header percent-encodes bytes outside visible ASCII (issue 15.6)
                self.assertEqual(j["control_id"], urllib.parse.unquote(h["x-hl7-control-id"]))
        finally:
            d.cleanup()
            s.cleanup()


class DeliveryPatientOrder(unittest.TestCase):
    def test_patient_ordering_keeps_each_patients_order(self):
        """ordering = patient: FIFO per PID-3 through an outage, several in flight."""
        s = Sink("--status", "503", "--for", "1", "--delay", "10").start()
        d = Daemon(extra=target("p", s.url, "ordering = patient\nconcurrency = 4")).start()
        try:
            c = Mllp(d.port)
            for i in range(30):
                m = message("P%02d" % i).replace(b"T-P%02d^^^TEST" % i, b"PAT%d^^^TEST" % (i % 3))
                self.assertEqual(msa(c.request(m))[0], "AA")
            c.close()
            reqs = s.wait_for(30, timeout=30)
            self.assertEqual(len(reqs), 30)
            order = [int(h["x-hl7-control-id"][1:]) for h, _ in reqs]
            for p in range(3):
                mine = [i for i in order if i % 3 == p]
                self.assertEqual(mine, sorted(mine), "patient %d out of order: %s" % (p, order))
        finally:
            d.cleanup()
            s.cleanup()


def sigv4_check(h, body, method, path, key_id, secret, region, service):
    """Verifies an AWS Signature Version 4 Authorization header, computed here
    independently of libcurl."""
    import hashlib
    import hmac
    auth = h["authorization"]
    algo, _, rest = auth.partition(" ")
    parts = dict(p.strip().split("=", 1) for p in rest.split(","))
    cred = parts["Credential"].split("/")
    signed = parts["SignedHeaders"].split(";")
    amzdate = h["x-amz-date"]
    date = amzdate[:8]
    assert algo == "AWS4-HMAC-SHA256", algo
    assert cred == [key_id, date, region, service, "aws4_request"], cred
    canon = "\n".join([method, path, "",
                       "".join("%s:%s\n" % (n, " ".join(h[n].split())) for n in signed),
                       ";".join(signed), hashlib.sha256(body).hexdigest()])
    scope = "/".join([date, region, service, "aws4_request"])
    sts = "\n".join(["AWS4-HMAC-SHA256", amzdate, scope,
                     hashlib.sha256(canon.encode()).hexdigest()])

    def hm(k, m):
        return hmac.new(k, m.encode(), hashlib.sha256).digest()
    k = hm(hm(hm(hm(("AWS4" + secret).encode(), date), region), service), "aws4_request")
    return hmac.new(k, sts.encode(), hashlib.sha256).hexdigest() == parts["Signature"]


class DeliveryCloudAuth(unittest.TestCase):
    def test_aws_sigv4(self):
        s = Sink().start()
        d = Daemon(env={"AWS_ACCESS_KEY_ID": "AKIDEXAMPLE",
                        "AWS_SECRET_ACCESS_KEY": "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"})
        try:
            with open(d.conf, "a") as f:
                f.write(target("aws", s.url, "auth = aws-sigv4\naws_region = us-east-1\n"
                               "aws_service = healthlake"))
            d.start()
            m = message("AWS1")
            c = Mllp(d.port)
            self.assertEqual(msa(c.request(m))[0], "AA")
            h, body = s.wait_for(1)[0]
            self.assertEqual(body, m)
            self.assertTrue(sigv4_check(h, body, "POST", "/hl7", "AKIDEXAMPLE",
                                        "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
                                        "us-east-1", "healthlake"))
            # a wrong secret does not verify: the check can fail
            self.assertFalse(sigv4_check(h, body, "POST", "/hl7", "AKIDEXAMPLE", "nope",
                                         "us-east-1", "healthlake"))
            self.assertNotIn("wJalrXUtnFEMI", d.read_log())
        finally:
            d.cleanup()
            s.cleanup()

    def test_oauth2_client_credentials(self):
        import http.server
        import urllib.parse
        calls = []

        class Token(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                form = urllib.parse.parse_qs(self.rfile.read(int(self.headers["Content-Length"])).decode())
                calls.append(form)
                ok = form.get("client_secret") == ["sh-secret"] and \
                    form.get("grant_type") == ["client_credentials"]
                body = json.dumps({"access_token": "tok-%d" % len(calls), "expires_in": 3600}) \
                    if ok else '{"error":"invalid_client"}'
                self.send_response(200 if ok else 401)
                self.send_header("Content-Type", "application/json")
                self.end_headers()
                self.wfile.write(body.encode())

            def log_message(self, *a):
                pass

        srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Token)
        threading.Thread(target=srv.serve_forever, daemon=True).start()
        s = Sink().start()
        d = Daemon()
        try:
            secret = os.path.join(d.dir, "secret")
            with open(secret, "w") as f:
                f.write("sh-secret\n")
            os.chmod(secret, 0o600)
            with open(d.conf, "a") as f:
                f.write(target("az", s.url, "auth = oauth2\ntoken_url = http://127.0.0.1:%d/token\n"
                               "client_id = hl7q-app\nclient_secret_file = %s\n"
                               "scope = https://example.azurehealthcareapis.com/.default"
                               % (srv.server_address[1], secret)))
            d.start()
            self.send_all(d, ["Z%d" % i for i in range(5)])
            reqs = s.wait_for(5)
            self.assertEqual(len(reqs), 5)
            self.assertTrue(all(h["authorization"] == "Bearer tok-1" for h, _ in reqs))
            self.assertEqual(len(calls), 1)  # cached
            self.assertEqual(calls[0]["client_id"], ["hl7q-app"])
            self.assertEqual(calls[0]["scope"], ["https://example.azurehealthcareapis.com/.default"])
            self.assertNotIn("sh-secret", d.read_log())
        finally:
            d.cleanup()
            s.cleanup()
            srv.shutdown()

    def send_all(self, d, ctrls):
        c = Mllp(d.port)
        for x in ctrls:
            self.assertEqual(msa(c.request(message(x)))[0], "AA")
        c.close()
