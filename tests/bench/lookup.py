"""lookup.py BINDIR FILL JOURNAL N - the audit-query part of `make bench`:
fills a journal with N messages (tests/bench/fill.c), then times bin/hl7q
as an operator runs it -- whole commands, process start included -- for
lookups by control id and by patient, a time range streamed to a pipe, and
status.  Each figure is the median of 7 runs (3 for the whole journal).
Memory is hl7q's peak anonymous RSS (heap and stack, sampled from
/proc/PID/status while it prints): the journal's pages are mapped from the
file (LMDB) and live in the page cache, shared and reclaimable, so they are
not counted.  A report, not a test."""

import os
import subprocess
import sys
import time

binary, fill, journal, n = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
hl7q = os.path.join(binary, "hl7q")


def anon_kb(pid):
    try:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                if line.startswith("RssAnon:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def timed(args, runs=7):
    """(median seconds, peak anonymous RSS KB, stdout lines of the last run)."""
    times, rss, lines = [], 0, 0
    for _ in range(runs):
        t0 = time.perf_counter()
        p = subprocess.Popen([hl7q, "-j", journal] + args, stdout=subprocess.PIPE)
        lines = 0
        for _ in p.stdout:
            lines += 1
            if lines % 5000 == 0:
                rss = max(rss, anon_kb(p.pid))
        _, status, ru = os.wait4(p.pid, 0)
        times.append(time.perf_counter() - t0)
        if os.waitstatus_to_exitcode(status) != 0:
            sys.exit("hl7q %s failed" % " ".join(args))
    times.sort()
    return times[len(times) // 2], rss, lines


t0 = time.perf_counter()
subprocess.run([fill, journal, str(n)], check=True)
fill_s = time.perf_counter() - t0
size = os.path.getsize(os.path.join(journal, "data.mdb"))
print("filled %d messages in %.1f s (%.0f msg/s), journal file %.0f MB" %
      (n, fill_s, n / fill_s, size / 1e6))

mid = n // 2
hour = 3600 / 0.864  # messages per hour of received time
rows = [
    ("ls --control-id (one message)", ["ls", "--control-id", "CTRL%07d" % mid], 50),
    ("ls --patient (10 messages)", ["ls", "--patient", "P%06d" % (mid % (n // 10 + 1))], 50),
    ("ls --control-id --json", ["--json", "ls", "--control-id", "CTRL%07d" % (n - 3)], 50),
    ("show ID", ["show", str(mid)], 50),
    ("status (1 target)", ["status"], None),
    ("ls --since 24h --until 23h (~%d rows)" % hour, ["ls", "--since", "24h", "--until", "23h"], None),
    ("ls whole journal (%d rows, streamed)" % n, ["--json", "ls"], None),
]
print("\n%-44s %10s %10s %8s %s" % ("query (whole hl7q command)", "median ms", "rows", "heap MB", "target"))
for name, args, target in rows:
    runs = 3 if "whole" in name else 7
    med, rss, lines = timed(args, runs)
    ok = "" if target is None else ("< %d ms %s" % (target, "ok" if med * 1000 < target else "MISSED"))
    print("%-44s %10.1f %10d %8s %s" % (name, med * 1000, lines,
                                        "%.1f" % (rss / 1024) if rss else "-", ok))
