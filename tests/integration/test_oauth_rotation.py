"""Issue 11 point 8: OAuth2 token rotation never dead-letters.  With
concurrency = 8, a revoked token makes several requests fail with 401 at
once: each is sent again with the new token (one refresh per token
generation per worker); only a 401 for a freshly fetched token counts
against the message."""

import http.server
import json
import os
import threading
import time
import unittest

from hl7qtest import (DLV_DEAD, DLV_DELIVERED, DaemonTest, Mllp, message, msa, read_deliveries,
                      wait_until)


class TokenAndTarget:
    """One HTTP server: /token hands out tok-1, tok-2, ...; /hl7 answers 200
    for a live token and 401 otherwise.  revoke() kills every token issued
    so far; refuse_all makes every token fail."""

    def __init__(self):
        self.lock = threading.Lock()
        self.issued = 0
        self.live = set()
        self.fetches = 0
        self.ok = {}  # control id -> count of 200s
        self.unauthorized = 0
        self.refuse_all = False
        outer = self

        class H(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                if self.path == "/token":
                    with outer.lock:
                        outer.issued += 1
                        outer.fetches += 1
                        tok = "tok-%d" % outer.issued
                        outer.live.add(tok)
                    out = json.dumps({"access_token": tok, "expires_in": 3600}).encode()
                    code = 200
                else:
                    time.sleep(0.02)  # keep several requests in flight
                    tok = self.headers.get("Authorization", "").replace("Bearer ", "")
                    with outer.lock:
                        good = tok in outer.live and not outer.refuse_all
                        if good:
                            ctrl = self.headers.get("X-HL7-Control-Id")
                            outer.ok[ctrl] = outer.ok.get(ctrl, 0) + 1
                        else:
                            outer.unauthorized += 1
                    code, out = (200, b"ok") if good else (401, b"no")
                self.send_response(code)
                self.send_header("Content-Length", str(len(out)))
                self.end_headers()
                self.wfile.write(out)

            def log_message(self, *a):
                pass

        self.srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
        self.srv.daemon_threads = True
        self.port = self.srv.server_address[1]
        threading.Thread(target=self.srv.serve_forever, daemon=True).start()

    def revoke(self):
        with self.lock:
            self.live.clear()

    def cleanup(self):
        self.srv.shutdown()
        self.srv.server_close()


class OAuthRotation(DaemonTest):
    def start(self, srv):
        d = self.daemon()
        secret = d.dir + "/secret"
        with open(secret, "w") as f:
            f.write("s3cret\n")
        os.chmod(secret, 0o600)
        with open(d.conf, "a") as f:
            f.write("[target az]\nurl = http://127.0.0.1:%d/hl7\nordering = none\nconcurrency = 8\n"
                    "retry_initial = 100ms\nretry_max = 500ms\nauth = oauth2\n"
                    "token_url = http://127.0.0.1:%d/token\nclient_id = app\nclient_secret_file = %s\n"
                    % (srv.port, srv.port, secret))
        return d.start()

    def send(self, d, ctrls):
        c = Mllp(d.port)
        for x in ctrls:
            self.assertEqual(msa(c.request(message(x)))[0], "AA")
        c.close()

    def test_point8_revoked_token_never_dead_letters(self):
        srv = TokenAndTarget()
        self.cleanups.append(srv)
        d = self.start(srv)
        self.send(d, ["R%03d" % i for i in range(40)])
        self.assertTrue(wait_until(lambda: len(srv.ok) == 40, timeout=30))
        fetches = srv.fetches
        for rnd in range(3):  # revoke while 8 are in flight, three times
            srv.revoke()
            ctrls = ["S%d-%03d" % (rnd, i) for i in range(120)]
            threading.Thread(target=self.send, args=(d, ctrls)).start()
            self.assertTrue(wait_until(lambda: all(c in srv.ok for c in ctrls), timeout=60),
                            "every message delivered with the new token")
        delivered = lambda: sum(1 for v in read_deliveries(d.journal).values() if v[0] == DLV_DELIVERED)
        wait_until(lambda: delivered() == 400, timeout=10)
        dl = read_deliveries(d.journal)
        self.assertGreater(srv.unauthorized, 1)
        self.assertEqual([k for k, v in dl.items() if v[0] == DLV_DEAD], [])
        self.assertEqual(sum(1 for v in dl.values() if v[0] == DLV_DELIVERED), 40 + 360)
        # one refresh per revocation and worker (an unordered target has two)
        self.assertLessEqual(srv.fetches - fetches, 3 * 2)

    def test_point8_fresh_token_refused_counts(self):
        """A token refused right after it was fetched is the message's
        problem: dead-lettered, not resent for ever."""
        srv = TokenAndTarget()
        srv.refuse_all = True
        self.cleanups.append(srv)
        d = self.start(srv)
        self.send(d, ["F%d" % i for i in range(4)])
        self.assertTrue(wait_until(
            lambda: sum(1 for v in read_deliveries(d.journal).values() if v[0] == DLV_DEAD) == 4,
            timeout=30))
        self.assertLessEqual(srv.fetches, 4)


if __name__ == "__main__":
    unittest.main()
