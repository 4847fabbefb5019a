#!/usr/bin/env python3
"""layers.py - fails when an #include points against the layer rule (issue 12).

The floors, and what each may include (includes point only down):

  ground       the files directly in core/      ground
  hl7          hl7/ (pure)                      ground, hl7
  queue        queue/ (journal, retry decision) ground, queue
  net          net/ (the wire)                  ground, hl7, queue, net
  core/daemon  hl7qd's wiring (the roof)        ground, hl7, queue, net, core/daemon
  tools        tools/                           ground, hl7, queue, net

Nothing includes core/daemon/ (tests excepted: tests/ is not checked).
An include "x.h" is looked up beside the including file first, then from
the top of the tree (the compiler's -I.); system headers (<...>) and
headers not in the tree are not ours and not checked.

Usage: tests/layers.py [--arrows] [ROOT]
  prints every violation as file:line: include "x" (floor -> floor): the rule,
  and with --arrows the folder arrows (folder -> folders it includes, with
  counts of include lines).  Exit 1 when there is a violation.
"""
import os
import re
import sys

SOURCES = ("core", "hl7", "queue", "net", "tools")
ALLOWED = {
    "ground": {"ground"},
    "hl7": {"ground", "hl7"},
    "queue": {"ground", "queue"},
    "net": {"ground", "hl7", "queue", "net"},
    "core/daemon": {"ground", "hl7", "queue", "net", "core/daemon"},
    "tools": {"ground", "hl7", "queue", "net", "tools"},
}
RULE = {
    "ground": "ground (core/*) includes only ground",
    "hl7": "hl7/ is pure: ground and hl7/ only",
    "queue": "queue/ includes ground and queue/ only",
    "net": "net/ includes ground, hl7/, queue/, net/ only",
    "core/daemon": "core/daemon/ includes anything below it, never tools/",
    "tools": "tools/ never includes core/daemon/",
}
INCLUDE = re.compile(r'^\s*#\s*include\s*"([^"]+)"')


def floor(rel):
    """The floor of a path relative to the root, or None when not ours."""
    parts = rel.split("/")
    if parts[0] == "core":
        if len(parts) == 2:
            return "ground"
        if parts[1] == "daemon":
            return "core/daemon"
        return None
    if parts[0] in ("hl7", "queue", "net", "tools") and len(parts) >= 2:
        return parts[0]
    return None


def main(argv):
    arrows = "--arrows" in argv
    args = [a for a in argv if not a.startswith("--")]
    root = os.path.abspath(args[0] if args else os.path.join(os.path.dirname(__file__), ".."))
    bad = 0
    counts = {}
    for top in SOURCES:
        for dirpath, dirs, files in os.walk(os.path.join(root, top)):
            dirs.sort()
            for name in sorted(files):
                if not name.endswith((".c", ".h")):
                    continue
                path = os.path.join(dirpath, name)
                rel = os.path.relpath(path, root)
                src = floor(rel)
                if src is None:
                    continue
                with open(path, encoding="utf-8", errors="replace") as f:
                    for lineno, line in enumerate(f, 1):
                        m = INCLUDE.match(line)
                        if not m:
                            continue
                        inc = m.group(1)
                        beside = os.path.normpath(os.path.join(dirpath, inc))
                        if os.path.exists(beside):
                            target = os.path.relpath(beside, root)
                        elif os.path.exists(os.path.join(root, inc)):
                            target = os.path.normpath(inc)
                        else:
                            continue
                        dst = floor(target)
                        if dst is None:
                            continue
                        if dst != src:
                            counts[(src, dst)] = counts.get((src, dst), 0) + 1
                        if dst not in ALLOWED[src]:
                            print(f'{rel}:{lineno}: include "{inc}" ({src} -> {dst}) '
                                  f'goes against the layer rule: {RULE[src]}', file=sys.stderr)
                            bad += 1
    if arrows:
        order = ["ground", "hl7", "queue", "net", "core/daemon", "tools"]
        for s in order:
            outs = [(d, counts[(s, d)]) for d in order if (s, d) in counts]
            print(f"{s:12} -> " + (", ".join(f"{d} ({n})" for d, n in outs) if outs else "(nothing)"))
    if bad:
        print(f"layers: {bad} include(s) against the rule (tests/layers.py)", file=sys.stderr)
        return 1
    print("layers: every include points down")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
