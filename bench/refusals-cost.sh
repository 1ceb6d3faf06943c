#!/bin/sh
# The write watch's cost (issue 17 #1), as nobody: a file-heavy workload bare, under cordon with
# the watch off (CORDON_REFUSAL_WATCH=off) and on (the default), interleaved; medians and ranges.
#   compile: python3 -m compileall -f of a copy of /usr/lib/python3.11 (without tests and
#            site-packages) in the workspace: reads every .py, writes every .pyc (an O_CREAT|O_EXCL
#            open, a rename, the __pycache__ mkdirs: the calls the watch shows)
#   writes:  N write-intent opens (O_WRONLY|O_CREAT) of one workspace file, per-open cost
#   reads:   N read-only opens of the same file (the filter keeps them in the kernel)
# Usage: bench/refusals-cost.sh [ROUNDS] [CORDON]   (root; release build: cargo build --release -p cordon-cli)
set -eu
ROUNDS=${1:-5}
CORDON=${2:-$(dirname "$0")/../target/release/cordon}
CORDON=$(readlink -f "$CORDON")
N=20000
ROOT=/var/tmp/cordon-bench-refusals-$$
trap 'rm -rf "$ROOT"' EXIT INT TERM
mkdir -p "$ROOT/home/ws"
(cd /usr/lib/python3.11 && find . -name '*.py' -not -path './test/*' -not -path '*-packages/*' -not -path './idlelib/idle_test/*' |
	cpio -pdm --quiet "$ROOT/home/ws/py")
chown -R 65534:65534 "$ROOT"
PY=/usr/bin/python3
LOOP="import os,sys,time
n=int(sys.argv[2]); f=os.O_WRONLY|os.O_CREAT if sys.argv[1]=='w' else os.O_RDONLY
t=time.perf_counter()
for _ in range(n): os.close(os.open('loop.txt', f, 0o644))
print('%.2f' % ((time.perf_counter()-t)/n*1e6))"

as_nobody() {
	(cd "$ROOT/home/ws" && setpriv --reuid=65534 --regid=65534 --clear-groups -- \
		env HOME="$ROOT/home" CORDON_AUDIT="$ROOT/audit.db" "$@")
}
# run VARIANT CMD...: the command bare, or under cordon with the watch off or on.
run() {
	v=$1
	shift
	case $v in
	bare) as_nobody "$@" ;;
	off) as_nobody env CORDON_REFUSAL_WATCH=off "$CORDON" run -q --allow-degraded -- "$@" ;;
	on) as_nobody "$CORDON" run -q --allow-degraded -- "$@" ;;
	esac
}
ms() { echo $(($(date +%s%N) / 1000000)); }

: >"$ROOT/results"
touch "$ROOT/home/ws/loop.txt" && chown 65534:65534 "$ROOT/home/ws/loop.txt"
i=0
while [ $i -lt "$ROUNDS" ]; do
	# Rotate the order each round so that no variant always runs first (cold caches).
	case $((i % 3)) in
	0) order="bare off on" ;;
	1) order="off on bare" ;;
	*) order="on bare off" ;;
	esac
	for v in $order; do
		t0=$(ms)
		run $v $PY -m compileall -q -f -j1 py >/dev/null
		echo "compile $v $(($(ms) - t0))" >>"$ROOT/results"
		echo "writes $v $(run $v $PY -c "$LOOP" w $N)" >>"$ROOT/results"
		echo "reads $v $(run $v $PY -c "$LOOP" r $N)" >>"$ROOT/results"
	done
	i=$((i + 1))
done
echo "files: $(find "$ROOT/home/ws/py" -name '*.py' | wc -l) .py; rounds: $ROUNDS; kernel $(uname -r); $(nproc) CPUs"
echo "workload  variant  median (min..max)            [compile: ms, writes/reads: us per open]"
for w in compile writes reads; do
	for v in bare off on; do
		grep "^$w $v " "$ROOT/results" | awk '{print $3}' | sort -n | awk -v w=$w -v v=$v '
			{ a[NR] = $1 }
			END { m = (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2;
			      printf "%-9s %-8s %-10s (%s..%s)\n", w, v, m, a[1], a[NR] }'
	done
done
