#!/bin/sh
# What one kind of placeholder costs to make and remove on a filesystem (issue 12): cordon makes
# one per absent protected path (`.envrc`, `.vscode`, ... ten in the default profile) before each
# session and removes them after. An empty directory holds one block; freeing it at the end waits
# for the device's trim where the filesystem is mounted with `discard`. A socket inode (what cordon
# makes now) and an empty file hold none. ROUNDS rounds of 10 of each kind, interleaved, in DIR
# (default: a new directory under /var/tmp, the filesystem workspaces usually live on).
# Usage: bench/placeholder-removal.sh [ROUNDS] [DIR]
set -eu
ROUNDS=${1:-20}
DIR=${2:-/var/tmp}
W=$(mktemp -d "$DIR/cordon-bench-placeholders-XXXXXX")
trap 'rm -rf "$W"' EXIT INT TERM
echo "filesystem of $W: $(findmnt -n -o FSTYPE,OPTIONS -T "$W")"
python3 - "$W" "$ROUNDS" <<'PY'
import os, stat, statistics, sys, time
w, rounds = sys.argv[1], int(sys.argv[2])
make = {
    "directory 01555": lambda p: os.mkdir(p, 0o1555),
    "socket 01444": lambda p: os.mknod(p, stat.S_IFSOCK | 0o1444),
    "empty file": lambda p: open(p, "x").close(),
}
gone = {"directory 01555": os.rmdir, "socket 01444": os.unlink, "empty file": os.unlink}
made, removed = {k: [] for k in make}, {k: [] for k in make}
for r in range(rounds):
    for k in (list(make) if r % 2 == 0 else list(reversed(list(make)))):
        names = [os.path.join(w, f"p{r}-{i}") for i in range(10)]
        t = time.perf_counter()
        for n in names:
            make[k](n)
        made[k].append((time.perf_counter() - t) * 1000)
        t = time.perf_counter()
        for n in names:
            gone[k](n)
        removed[k].append((time.perf_counter() - t) * 1000)
print(f"{rounds} rounds of 10 placeholders each, ms per 10 (median [min-max])")
for k in make:
    m, g = made[k], removed[k]
    print(f"{k:18} make {statistics.median(m):7.3f} [{min(m):.3f}-{max(m):.3f}]   "
          f"remove {statistics.median(g):7.3f} [{min(g):.3f}-{max(g):.3f}]")
PY
