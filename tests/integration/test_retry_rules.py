"""Issue 11 point 7: Retry-After and redirects cannot stall a target.  A
Retry-After of a day is clamped to retry_max (seconds or HTTP-date); a
retry that would fall past the max_age deadline dead-letters at once; 307/308 are
retried; other 3xx are dead-lettered with the Location in the attempt."""

import email.utils
import http.server
import json
import os
import subprocess
import threading
import time
import unittest

from hl7qtest import (BIN, DLV_DEAD, DLV_DELIVERED, DaemonTest, Mllp, message, msa,
                      read_deliveries, wait_until)


class Scripted:
    """Answers each control id with its script of (status, headers), then 200."""

    def __init__(self, scripts):
        self.scripts = {k: list(v) for k, v in scripts.items()}
        self.seen = []
        outer = self

        class H(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self):
                self.rfile.read(int(self.headers.get("Content-Length", "0")))
                ctrl = self.headers.get("X-HL7-Control-Id")
                outer.seen.append((time.time(), ctrl))
                script = outer.scripts.get(ctrl) or []
                status, hdrs = script.pop(0) if script else (200, {})
                self.send_response(status)
                for k, v in hdrs.items():
                    self.send_header(k, v)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *a):
                pass

        self.srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
        self.srv.daemon_threads = True
        threading.Thread(target=self.srv.serve_forever, daemon=True).start()
        self.url = "http://127.0.0.1:%d/hl7" % self.srv.server_address[1]

    def cleanup(self):
        self.srv.shutdown()
        self.srv.server_close()


class RetryRules(DaemonTest):
    def test_point7_retry_after_and_redirects(self):
        day_date = email.utils.formatdate(time.time() + 86400, usegmt=True)
        srv = Scripted({
            "RA-SECONDS": [(503, {"Retry-After": "86400"})],
            "RA-DATE": [(429, {"Retry-After": day_date})],
            "T307": [(307, {"Location": "http://127.0.0.1:1/elsewhere"})],
            "T308": [(308, {"Location": "http://127.0.0.1:1/elsewhere"})],
            "T302": [(302, {"Location": "http://127.0.0.1:1/moved-here"})],
        })
        # u: Retry-After 5 s, retry_max 10 s, max_age 2 s: the retry would fall past the deadline
        srv2 = Scripted({"RA-PAST-MAXAGE": [(503, {"Retry-After": "5"})]})
        self.cleanups += [srv, srv2]
        d = self.daemon(
            extra="[target t]\nurl = %s\nordering = none\nconcurrency = 4\nretry_initial = 100ms\n"
                  "retry_max = 1s\nmax_age = 1h\n" % srv.url +
                  "[target u]\nurl = %s\nretry_initial = 100ms\nretry_max = 10s\nmax_age = 2s\n"
                  "types = ADT^A01\n" % srv2.url).start()
        c = Mllp(d.port)
        ids = {}
        for ctrl in ("RA-SECONDS", "RA-DATE", "T307", "T308", "T302", "RA-PAST-MAXAGE"):
            a = c.request(message(ctrl))
            self.assertEqual(msa(a)[0], "AA")
        c.close()

        def states():
            out = {}
            p = subprocess.run([os.path.join(BIN, "hl7q"), "-c", d.conf, "ls", "--json"],
                               capture_output=True, timeout=30)
            for l in p.stdout.decode().splitlines():
                r = json.loads(l)
                out[r["control_id"]] = r
            return out

        want = {"RA-SECONDS": DLV_DELIVERED, "RA-DATE": DLV_DELIVERED, "T307": DLV_DELIVERED,
                "T308": DLV_DELIVERED, "T302": DLV_DEAD, "RA-PAST-MAXAGE": DLV_DELIVERED}
        ok = wait_until(lambda: len([v for v in read_deliveries(d.journal).values()
                                     if v[0] in (DLV_DELIVERED, DLV_DEAD)]) == 12, timeout=15)
        self.assertTrue(ok, "a day's Retry-After is clamped to retry_max")
        ls = states()
        dl = read_deliveries(d.journal)
        for ctrl, st in want.items():
            self.assertEqual(dl[(ls[ctrl]["id"], "t")][0], st, ctrl)
        self.assertEqual(dl[(ls["RA-PAST-MAXAGE"]["id"], "u")][0], DLV_DEAD)
        self.assertEqual(dl[(ls["RA-PAST-MAXAGE"]["id"], "u")][1], 1)  # one attempt, not held
        p = subprocess.run([os.path.join(BIN, "hl7q"), "-c", d.conf, "show", str(ls["T302"]["id"])],
                           capture_output=True, timeout=30)
        self.assertIn("http://127.0.0.1:1/moved-here", p.stdout.decode())


if __name__ == "__main__":
    unittest.main()
