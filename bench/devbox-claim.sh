#!/bin/sh
# Warm devbox claims vs a cold `cordon run` of the same probe (issue 15, step 1), and the memory of
# an idle pooled devbox. Root. Usage: bench/devbox-claim.sh [CORDON] [CLAIMS] [COLD]
# (default: target/release/cordon, 200 claims, 100 cold runs). Everything it makes is under one
# temporary directory, removed at the end; the daemon it starts is stopped by its pid.
set -eu
C=${1:-target/release/cordon}
C=$(realpath "$C")
CLAIMS=${2:-200}
COLD=${3:-100}
T=$(mktemp -d /var/tmp/cordon-devbox-bench.XXXXXX)
DPID=
cleanup() {
    [ -n "$DPID" ] && kill -TERM "$DPID" 2>/dev/null && wait "$DPID" 2>/dev/null || true
    rm -rf "$T"
}
trap cleanup EXIT INT TERM
mkdir "$T/repo"
printf "print('hello')\n" > "$T/repo/app.py"
git -C "$T/repo" init -q -b main
git -C "$T/repo" add .
git -C "$T/repo" -c user.name=b -c user.email=b@example.org commit -qm bench
printf 'code = { repo = "repo", ref = "main" }\nready = ["test", "-f", "app.py"]\n' > "$T/devbox.toml"
H=$(CORDON_AUDIT="$T/audit.db" "$C" devbox build "$T/devbox.toml" --store "$T/store" --json | sed 's/.*"hash":"\([0-9a-f]*\)".*/\1/')
"$C" daemon --foreground --socket "$T/d.sock" --store "$T/store" 2>"$T/daemon.log" &
DPID=$!
while [ ! -S "$T/d.sock" ]; do sleep 0.05; done
# Memory: 8 idle devboxes, the proportional set size of each holder and its init (kB).
"$C" devbox pool "$H" --size 8 --socket "$T/d.sock" >/dev/null
PIDS=$("$C" devbox ls --json --socket "$T/d.sock" | tr ',' '\n' | sed -n 's/.*"pid":\([0-9]*\).*/\1/p')
TOTAL=0
for p in $PIDS; do
    HOLDER=$(awk '/^PPid:/ {print $2}' "/proc/$p/status")
    for q in "$p" "$HOLDER"; do
        K=$(awk '/^Pss:/ {print $2}' "/proc/$q/smaps_rollup")
        TOTAL=$((TOTAL + K))
    done
done
echo "idle devbox memory (Pss of holder + init, mean of 8): $((TOTAL / 8)) kB"
"$C" devbox pool "$H" --size 0 --socket "$T/d.sock" >/dev/null
"$C" devbox bench "$H" --claims "$CLAIMS" --cold "$COLD" --pool 4 --store "$T/store" --socket "$T/d.sock"
