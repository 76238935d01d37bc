#!/usr/bin/env bash
# bench-compare.sh: one Go benchmark of this checkout against the same
# benchmark at an older revision, the two test binaries run alternately on
# the same machine (a shared box drifts; alternating rounds and per-round
# ratios cancel most of it). Prints each round and the median ratio new/old.
#
#   scripts/bench-compare.sh 6d9bc3a ./internal/scoring/payload 'BenchmarkInspect/^(get|json_8k)$'
#   ROUNDS=14 BENCHTIME=2s scripts/bench-compare.sh REV PKG PATTERN
set -euo pipefail
rev=${1:?usage: bench-compare.sh REV PKG PATTERN}
pkg=${2:?package, e.g. ./internal/scoring/payload}
pattern=${3:?benchmark pattern}
ROUNDS=${ROUNDS:-8}
BENCHTIME=${BENCHTIME:-2s}

root=$(git rev-parse --show-toplevel)
work=$(mktemp -d -t smartlayer-bench-compare.XXXXXX)
trap 'rm -rf "$work"' EXIT
git -C "$root" archive "$rev" | tar -x -C "$work"
(cd "$work" && go test -c -o "$work/old.test" "$pkg")
(cd "$root" && go test -c -o "$work/new.test" "$pkg")

run() { # binary dir label
	(cd "$2" && "$1" -test.run '^$' -test.bench "$pattern" -test.benchmem -test.benchtime "$BENCHTIME") |
		awk -v l="$3" '/^Benchmark/ {sub(/-[0-9]+$/, "", $1); print l, $1, $3}'
}
for r in $(seq "$ROUNDS"); do
	# Alternate which binary goes first.
	if ((r % 2)); then
		run "$work/old.test" "$work/$pkg" old
		run "$work/new.test" "$root/$pkg" new
	else
		run "$work/new.test" "$root/$pkg" new
		run "$work/old.test" "$work/$pkg" old
	fi
done | tee "$work/rounds"
echo "uptime: $(uptime)"
# Per-round ratio new/old for each benchmark, then the median per benchmark.
awk '{ v[$1, $2, ++n[$1, $2]] = $3; names[$2] = 1 }
	END {
		for (b in names) {
			k = n["old", b] < n["new", b] ? n["old", b] : n["new", b]
			for (i = 1; i <= k; i++) print b, v["new", b, i] / v["old", b, i]
		}
	}' "$work/rounds" | sort -k1,1 -k2,2g |
	awk -v rev="$rev" '
		function out() {
			if (k == 0) return
			m = (k % 2) ? r[(k + 1) / 2] : (r[k / 2] + r[k / 2 + 1]) / 2
			printf "%s: new/%s median ratio %.2f over %d rounds (lowest %.2f, highest %.2f)\n", b, rev, m, k, r[1], r[k]
		}
		$1 != b { out(); b = $1; k = 0 }
		{ r[++k] = $2 }
		END { out() }'
