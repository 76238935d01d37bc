#!/usr/bin/env bash
# fuzz.sh DURATION: run every Fuzz* target in the module for DURATION each.
set -euo pipefail
dur=${1:-5s}
cd "$(dirname "$0")/.."
for dir in $(grep -rl --include='*_test.go' '^func Fuzz' . | xargs -r -n1 dirname | sort -u); do
	for fn in $(grep -h '^func Fuzz' "$dir"/*_test.go | sed 's/^func \(Fuzz[A-Za-z0-9_]*\).*/\1/'); do
		echo "fuzz: $dir $fn ($dur)"
		go test -run '^$' -fuzz "^${fn}\$" -fuzztime "$dur" "$dir"
	done
done
