#!/usr/bin/python3
"""syscall_pages.py STRACE_OUT N - what N commits (or messages) wrote to LMDB's
data.mdb, read from `strace -e trace=pwrite64,pwritev,writev,fdatasync,fsync -y`
output: prints "pages=P syncs=S" per N.

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
        else:
            pages += ret // 4096
print("pages=%.2f syncs=%.2f" % (pages / n, syncs / n))
