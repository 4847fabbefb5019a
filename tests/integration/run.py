"""Runs every integration test module (test_*.py) beside this file and
prints one closing line: 'integration: N passed, N failed'."""

import os
import sys
import unittest

here = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, here)
pattern = os.environ.get("HL7Q_IT_PATTERN", "test_*.py")
suite = unittest.defaultTestLoader.discover(here, pattern=pattern)
result = unittest.TextTestRunner(verbosity=2).run(suite)
failed = len(result.failures) + len(result.errors) + len(result.unexpectedSuccesses)
skipped = len(result.skipped)
passed = result.testsRun - failed - skipped
print("integration: %d passed, %d failed, %d skipped" % (passed, failed, skipped))
sys.exit(1 if failed or result.testsRun == 0 else 0)
