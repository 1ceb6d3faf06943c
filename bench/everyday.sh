#!/bin/sh
# An agent's everyday tasks (issue 17), bare vs under `cordon run` with the flags the README
# documents for each; ROUNDS rounds, the two variants interleaved (order alternating), each task
# timed on its own in a fresh copy of the same workspace; medians, ranges and ratios printed.
#   shell:  ls -la, grep -r, wc                                     (no flag)
#   git:    git add, commit, push to a local bare remote            (--allow-write REMOTE)
#   python: python3 -m venv, pip install of a local source dir
#           (--no-index --no-build-isolation), python -m unittest   (--profile build)
#           (pytest is not installed on this machine, and nothing is downloaded)
#   cargo:  cargo build --offline of a new crate without deps      (--profile build)
#   npm:    npm install --offline of a local tarball                (--profile build)
#   server: python3 -m http.server on loopback, curl it, stop it    (no flag)
# No network beyond loopback. Needs root (the Rust toolchain is root's, under /root/.rustup: the
# fake HOME links it, as a user's own HOME has it).
# Usage: bench/everyday.sh [ROUNDS] [CORDON]   (release build: cargo build --release -p cordon-cli)
set -eu
ROUNDS=${1:-5}
CORDON=${2:-$(dirname "$0")/../target/release/cordon}
CORDON=$(readlink -f "$CORDON")
ROOT=/var/tmp/cordon-bench-everyday-$$
trap 'rm -rf "$ROOT"' EXIT INT TERM
TC=$(rustup toolchain list | awk '/default/ {print $1}')
TCBIN=/root/.rustup/toolchains/$TC/bin
[ -x "$TCBIN/cargo" ] || { echo "no cargo in $TCBIN" >&2; exit 1; }
PY=/usr/bin/python3

# The template workspace, made once, bare.
T=$ROOT/template
mkdir -p "$ROOT/home" "$T/pkg/hello" "$T/tests" "$T/npm/package"
ln -s /root/.rustup "$ROOT/home/.rustup"
echo 'X = 1' >"$T/pkg/hello/__init__.py"
printf 'from setuptools import setup\nsetup(name="hello-cordon", version="1.0", packages=["hello"])\n' >"$T/pkg/setup.py"
printf 'import unittest, hello\nclass T(unittest.TestCase):\n    def test_x(self):\n        self.assertEqual(hello.X, 1)\n' >"$T/tests/test_hello.py"
touch "$T/tests/__init__.py"
echo '{"name":"hello-cordon","version":"1.0.0","main":"index.js"}' >"$T/npm/package/package.json"
echo 'module.exports = 1' >"$T/npm/package/index.js"
tar -C "$T/npm" -czf "$T/hello-cordon-1.0.0.tgz" package && rm -r "$T/npm"
echo '{"name":"ws","version":"1.0.0","private":true}' >"$T/package.json"
(cd "$T" && PATH=$TCBIN:$PATH cargo new -q --vcs none tiny)
echo hello >"$T/README.md"

export HOME="$ROOT/home" CORDON_AUDIT="$ROOT/audit.db" PATH="$TCBIN:$PATH"
export npm_config_update_notifier=false PIP_DISABLE_PIP_VERSION_CHECK=1
PORT=18765

task() {
	case $1 in
	shell) echo 'ls -la >/dev/null && grep -rl hello . | wc -l >/dev/null' ;;
	git) echo 'git add -A && git -c user.name=b -c user.email=b@example.org commit -qm bench && git push -q origin HEAD:refs/heads/main' ;;
	python) echo "$PY -m venv .venv && .venv/bin/pip install -q --no-index --no-build-isolation ./pkg 2>/dev/null && .venv/bin/python -m unittest -q 2>/dev/null" ;;
	cargo) echo 'cd tiny && cargo build -q --offline' ;;
	npm) echo 'npm install -q --offline --no-audit --no-fund ./hello-cordon-1.0.0.tgz >/dev/null' ;;
	server) echo "$PY -m http.server $PORT --bind 127.0.0.1 >/dev/null 2>&1 & s=\$!; i=0; until curl -sf http://127.0.0.1:$PORT/README.md >/dev/null; do i=\$((i+1)); [ \$i -lt 200 ] || exit 1; sleep 0.02; done; kill \$s" ;;
	esac
}
flags() {
	case $1 in
	git) echo "--allow-write $2" ;;
	python | cargo | npm) echo "--profile build" ;;
	*) echo "" ;;
	esac
}
ms() { echo $(($(date +%s%N) / 1000000)); }
TASKS="shell git python cargo npm server"

: >"$ROOT/results"
i=0
while [ "$i" -lt "$ROUNDS" ]; do
	if [ $((i % 2)) = 0 ]; then order="bare cordon"; else order="cordon bare"; fi
	for v in $order; do
		ws=$ROOT/ws-$v-$i remote=$ROOT/remote-$v-$i.git
		cp -a "$T" "$ws"
		git init -q --bare "$remote"
		(cd "$ws" && git init -q && git remote add origin "$remote")
		# Caches start empty each time (a first install, not a cached one), the same for both.
		rm -rf "$HOME/.cache" "$HOME/.npm" "$HOME/.cargo"
		for t in $TASKS; do
			cmd=$(task $t)
			t0=$(ms)
			if [ $v = bare ]; then
				(cd "$ws" && sh -c "$cmd") || { echo "$t failed bare" >&2; exit 1; }
			else
				# shellcheck disable=SC2046
				(cd "$ws" && "$CORDON" run -q $(flags $t "$remote") -- sh -c "$cmd") || { echo "$t failed under cordon" >&2; exit 1; }
			fi
			echo "$t $v $(($(ms) - t0))" >>"$ROOT/results"
		done
		rm -rf "$ws" "$remote"
	done
	i=$((i + 1))
done

echo "everyday tasks, $ROUNDS rounds interleaved; medians in ms (range)"
printf '%-8s %-20s %-20s %s\n' task bare cordon ratio
for t in $TASKS; do
	b=$(awk -v t=$t '$1==t && $2=="bare" {print $3}' "$ROOT/results" | sort -n)
	c=$(awk -v t=$t '$1==t && $2=="cordon" {print $3}' "$ROOT/results" | sort -n)
	med() { echo "$1" | awk '{a[NR]=$1} END {print (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }
	rng() { echo "$1" | awk 'NR==1 {lo=$1} {hi=$1} END {print lo "-" hi}'; }
	mb=$(med "$b") mc=$(med "$c")
	printf '%-8s %-20s %-20s %s\n' $t "$mb ($(rng "$b"))" "$mc ($(rng "$c"))" "$(awk -v b="$mb" -v c="$mc" 'BEGIN {printf "%.2f", c/b}')"
done
