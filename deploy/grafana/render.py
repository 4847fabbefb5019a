#!/usr/bin/python3
"""render.py - a picture of the hl7q dashboard's data: runs every panel's
query of hl7q.json against a Prometheus (its HTTP API, query_range) and
draws the results with gnuplot (Debian's gnuplot-nox) into one PNG, one
plot per panel, titled as in Grafana.  Not a screenshot of Grafana: the
same queries, drawn by gnuplot.

    render.py --prometheus http://127.0.0.1:9090 [--dashboard hl7q.json]
              [--minutes 5] [--instance REGEX] [--rate-interval 15s] --out hl7q-dashboard.png

tests/integration/test_monitoring.py runs it against a Prometheus scraping
a loaded hl7qd; `make dashboard-picture` refreshes deploy/grafana/hl7q-dashboard.png.
"""

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))


def panel_queries(dashboard, instance=".*", rate_interval="15s"):
    """[(panel title, unit, [(expr, legendFormat)])] with the dashboard's
    variables filled in as Grafana would: $instance the regex given,
    $__rate_interval a window of several scrapes."""
    out = []
    for p in dashboard["panels"]:
        qs = [(t["expr"].replace("$instance", instance).replace("$__rate_interval", rate_interval),
               t.get("legendFormat", "")) for t in p.get("targets", [])]
        out.append((p["title"], p.get("fieldConfig", {}).get("defaults", {}).get("unit", ""), qs))
    return out


def api(base, path, **params):
    url = base.rstrip("/") + path + "?" + urllib.parse.urlencode(params)
    with urllib.request.urlopen(url, timeout=30) as r:
        body = json.loads(r.read().decode())
    if body.get("status") != "success":
        raise RuntimeError("%s: %s" % (url, body))
    return body["data"]


def legend(fmt, labels):
    return re.sub(r"\{\{\s*(\w+)\s*\}\}", lambda m: labels.get(m.group(1), ""), fmt).strip() or "value"


def render(base, dashboard, out, minutes=5.0, instance=".*", rate_interval="15s"):
    end = time.time()
    start = end - minutes * 60
    step = max(1, int(minutes * 60 / 200))
    tmp = tempfile.mkdtemp(prefix="hl7q-render-")
    panels = panel_queries(dashboard, instance, rate_interval)
    cols = 3
    rows = (len(panels) + cols - 1) // cols
    gp = ['set terminal pngcairo noenhanced size %d,%d font "DejaVu Sans,9"' % (cols * 520, rows * 300),
          "set output '%s'" % out,
          "set multiplot layout %d,%d title 'hl7q dashboard: its queries, from Prometheus (last %g min)' font ',12'"
          % (rows, cols, minutes),
          "set key top left font ',7' samplen 1 spacing 0.9 noopaque",
          "set grid", "set xlabel 'minutes ago' offset 0,0.5", "set xrange [-%g:0]" % minutes,
          "set style data lines"]
    for i, (title, unit, queries) in enumerate(panels):
        plots = []
        for expr, fmt in queries:
            data = api(base, "/api/v1/query_range", query=expr, start=start, end=end, step=step)
            for k, series in enumerate(data["result"]):
                path = os.path.join(tmp, "p%d_%d_%d.dat" % (i, len(plots), k))
                with open(path, "w") as f:
                    for t, v in series["values"]:
                        if v not in ("NaN", "+Inf", "-Inf"):
                            f.write("%.3f %s\n" % ((float(t) - end) / 60, v))
                name = legend(fmt, series["metric"]).replace("'", "")
                plots.append("'%s' using 1:2 title '%s' lw 1.5" % (path, name))
        gp.append("set title '%s' font ',10'" % title.replace("'", ""))
        gp.append("set ylabel '%s'" % {"percentunit": "fraction", "short": "count"}.get(unit, unit))
        gp.append("set yrange [0:*]")
        if plots:
            gp.append("plot " + ", ".join(plots))
        else:  # keeps the grid in place
            gp.append("set label 1 'no data' at graph 0.45,0.5")
            gp.append("plot NaN notitle")
            gp.append("unset label 1")
    gp.append("unset multiplot")
    script = os.path.join(tmp, "plot.gp")
    with open(script, "w") as f:
        f.write("\n".join(gp) + "\n")
    subprocess.run(["gnuplot", script], check=True)
    for name in os.listdir(tmp):
        os.unlink(os.path.join(tmp, name))
    os.rmdir(tmp)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--prometheus", required=True)
    ap.add_argument("--dashboard", default=os.path.join(HERE, "hl7q.json"))
    ap.add_argument("--minutes", type=float, default=5.0)
    ap.add_argument("--instance", default=".*")
    ap.add_argument("--rate-interval", default="15s", help="for $__rate_interval (4 scrapes or more)")
    ap.add_argument("--out", required=True)
    a = ap.parse_args()
    with open(a.dashboard) as f:
        dashboard = json.load(f)
    render(a.prometheus, dashboard, a.out, a.minutes, a.instance, a.rate_interval)
    return 0


if __name__ == "__main__":
    sys.exit(main())
