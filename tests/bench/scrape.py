"""scrape.py BINDIR FILL JOURNAL N - the /metrics part of `make bench`: fills
a journal with a backlog of N pending deliveries (tests/bench/fill.c
--pending), starts hl7qd on it with delivery held (HL7Q_TEST_HOLD_DELIVERY,
so the backlog stays), and times GET /metrics: the median of 21 scrapes,
and how long /healthz takes while scrapes run back to back on another
connection.  Issue 15.8's target: under 50 ms at 1,000,000 pending.
A report, not a test."""

import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

binary, fill, journal, n = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


t0 = time.perf_counter()
subprocess.run([fill, journal, str(n), "--pending"], check=True)
print("filled %d pending messages in %.1f s" % (n, time.perf_counter() - t0))

port, aport = free_port(), free_port()
conf = os.path.join(os.path.dirname(os.path.abspath(journal)), "scrape.conf")
with open(conf, "w") as f:
    f.write("[daemon]\nlog_level = notice\n[journal]\npath = %s\nmax_size = 8G\n"
            "[listener bench]\nlisten = 127.0.0.1:%d\n"
            "[target warehouse]\nurl = http://127.0.0.1:1/\n"
            "[admin]\nlisten = 127.0.0.1:%d\n" % (os.path.abspath(journal), port, aport))
log = open(conf + ".log", "wb")
env = dict(os.environ, HL7Q_TEST_HOLD_DELIVERY="1")
t0 = time.perf_counter()
d = subprocess.Popen([os.path.join(binary, "hl7qd"), "-c", conf], stderr=log, env=env)
try:
    url = "http://127.0.0.1:%d" % aport
    for _ in range(600):
        try:
            urllib.request.urlopen(url + "/healthz", timeout=1).read()
            break
        except OSError:
            time.sleep(0.1)
    print("hl7qd ready in %.1f s (a journal without kept counts gets them once, here)" %
          (time.perf_counter() - t0))

    def scrape():
        t = time.perf_counter()
        body = urllib.request.urlopen(url + "/metrics", timeout=60).read().decode()
        return time.perf_counter() - t, body

    _, body = scrape()  # warm the page cache
    line = [l for l in body.splitlines() if l.startswith('hl7q_target_pending{target="warehouse"}')]
    times = sorted(scrape()[0] for _ in range(21))
    print("GET /metrics at %d pending: median %.1f ms, max %.1f ms (%s)" %
          (n, times[10] * 1e3, times[-1] * 1e3, line[0] if line else "no pending line"))

    stop = []

    def scrapes():
        while not stop:
            scrape()

    th = threading.Thread(target=scrapes)
    th.start()
    time.sleep(0.05)
    h = []
    for _ in range(21):
        t = time.perf_counter()
        urllib.request.urlopen(url + "/healthz", timeout=60).read()
        h.append(time.perf_counter() - t)
    stop.append(1)
    th.join()
    h.sort()
    print("GET /healthz while scrapes run: median %.1f ms, max %.1f ms" % (h[10] * 1e3, h[-1] * 1e3))
finally:
    d.send_signal(signal.SIGTERM)
    d.wait(60)
    log.close()
