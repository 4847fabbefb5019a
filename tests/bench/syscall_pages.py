#!/usr/bin/python3
"""syscall_pages.py STRACE_OUT N - what N commits (or messages) wrote to LMDB's
data.mdb, read from `strace -e trace=pwrite64,pwritev,writev,fdatasync,fsync -y`
output: prints "pages=P syncs=S" per N, and "commit_pages=M commits=C": the
median pages of one commit (a commit ends with its meta update) and how many
there were.  For hl7qd the median is its single-message intake commit; the
per-N figure also carries the deferred index runs (a few large commits).

Pages are the 4 KB pages LMDB wrote (its page writes and meta updates: a meta
update is a short write through its O_DSYNC descriptor, so it is counted as a
sync as well as a page).  /proc/PID/io write_bytes would be the natural
source, but on this kernel ext4 accounts whole large folios there (a 4 KB
pwrite plus fdatasync in a 256 KB file counted as 64 pages), so the figure
depends on the file's folio sizes, not on what the commit wrote."""
import re
import sys

text = open(sys.argv[1]).read().splitlines()
n = float(sys.argv[2])
pages = syncs = 0
commits, this = [], 0
for line in text:
    if "data.mdb" not in line:
        continue
    m = re.search(r"\b(pwrite64|pwritev|writev|fdatasync|fsync)\(.*\)\s+=\s+(-?\d+)", line)
    if not m:
        continue
    call, ret = m.group(1), int(m.group(2))
    if call in ("fdatasync", "fsync"):
        syncs += 1
    elif ret > 0:
        if ret < 4096:  # the meta page's fields, through the O_DSYNC descriptor
            pages += 1
            syncs += 1
            commits.append(this + 1)
            this = 0
        else:
            pages += ret // 4096
            this += ret // 4096
commits.sort()
median = commits[len(commits) // 2] if commits else 0
print("pages=%.2f syncs=%.2f commit_pages=%d commits=%d" % (pages / n, syncs / n, median, len(commits)))
