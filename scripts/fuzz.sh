#!/usr/bin/env bash
# Runs every Go fuzz target in the repository for a fixed number of
# executions each (default 50000x). Targets are discovered, so a new FuzzXxx
# is included without editing this file.
#
# A count, not a duration: with a duration Go's fuzz coordinator (go1.26)
# can report a bare "context deadline exceeded" failure at the deadline when
# a worker is still mid-execution on a loaded machine (golang/go#75804), with
# no failing input. A count has no deadline to race; a slow machine just
# takes longer.
set -euo pipefail
cd "$(dirname "$0")/.."
fuzztime=${1:-50000x}
n=0
while IFS= read -r file; do
	pkg=./$(dirname "$file")
	for target in $(grep -oE '^func (Fuzz[A-Za-z0-9_]+)\(' "$file" | sed -E 's/^func (Fuzz[A-Za-z0-9_]+)\(/\1/'); do
		echo "fuzz: $pkg $target ($fuzztime)"
		go test -run='^$' -fuzz="^${target}\$" -fuzztime="$fuzztime" "$pkg"
		n=$((n + 1))
	done
done < <(git ls-files --cached --others --exclude-standard '*_test.go' | xargs grep -l '^func Fuzz' || true)
echo "fuzz: $n targets run"
