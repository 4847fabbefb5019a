"""The short crash loop in `make check` (issue 7): tests/crash/crashloop.py
with 5 kills; `make crashtest` runs 50.  Zero acknowledged messages lost,
nothing delivered that was never ACKed, repeats only with the same
Idempotency-Key."""

import os
import sys
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "crash"))
import crashloop  # noqa: E402


class CrashLoop(unittest.TestCase):
    def test_short_crash_loop(self):
        lines = []
        r = crashloop.run(kills=5, log=lines.append)
        print("\n".join(lines))
        self.assertEqual(r["problems"], [], "\n".join(lines))
        self.assertEqual(r["lost"], 0)
        self.assertGreater(r["acked"], 100)
        self.assertEqual(r["acked"], r["delivered"])


if __name__ == "__main__":
    unittest.main()
