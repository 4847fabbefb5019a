"""Issue 11 point 7: a FIFO head that cannot be read or opened stops its
target, with a reason in the log, /healthz and `hl7q status`; the messages
behind it are not delivered past it (today it is skipped without a word)."""

import json
import os
import struct
import subprocess
import time
import unittest

from hl7qtest import BIN, DaemonTest, Mllp, free_port, message, msa, target, wait_until
from test_service import http_get


class FifoStuck(DaemonTest):
    def test_point7_unreadable_fifo_head_stops_target(self):
        sink = self.sink()
        aport = free_port()
        d = self.daemon(extra=target("t", sink.url) + "[admin]\nlisten = 127.0.0.1:%d\n" % aport,
                        env={"HL7Q_TEST_HOLD_DELIVERY": "1"}).start()
        c = Mllp(d.port)
        for i in range(3):
            self.assertEqual(msa(c.request(message("H%d" % i)))[0], "AA")
        c.close()
        self.assertEqual(d.stop(), 0)
        import lmdb
        env = lmdb.open(d.journal, max_dbs=16, subdir=True)
        with env.begin(write=True) as txn:
            db = env.open_db(b"msgs", txn=txn, create=False)
            first, _ = next(iter(txn.cursor(db=db)))
            first = bytes(first)
            txn.put(first, b"\x09damaged", db=db)  # a format no reader knows
        env.close()
        head = struct.unpack(">Q", first)[0]
        del d.env["HL7Q_TEST_HOLD_DELIVERY"]
        d.start()
        wait_until(lambda: "stopped" in d.read_log(), timeout=5)
        time.sleep(1.5)
        self.assertEqual(sink.requests(), [], "nothing delivered past the head")
        self.assertIn("target t: stopped: the head of its queue, id=%d" % head, d.read_log())
        status, body = http_get(aport, "/healthz")
        self.assertEqual(status, 503)
        self.assertIn("target t: stopped", json.loads(body)["reasons"][0])
        time.sleep(1.2)  # hl7qd.status is written every second
        p = subprocess.run([os.path.join(BIN, "hl7q"), "-c", d.conf, "status", "--json"],
                           capture_output=True, timeout=30)
        rows = [json.loads(l) for l in p.stdout.decode().splitlines() if l.strip()]
        self.assertEqual(rows[0]["stopped_at_id"], head)


if __name__ == "__main__":
    unittest.main()
