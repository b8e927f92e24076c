#!/usr/bin/env bash
# make bench: measures this machine's limits and the broker against them in
# one run, prints the summary, and saves it with a CPU profile of the
# broker's produce path under bench/out/.
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p bench/out
bin/tiercel bench suite --binary bin/tiercel --dir bench/out --profile-dir bench/out "$@" | tee bench/out/summary.txt
if [ -s bench/out/produce.cpu.prof ]; then
	echo
	echo "top of the broker's CPU profile during produce (bench/out/produce.cpu.prof):"
	go tool pprof -top -nodecount=25 bin/tiercel bench/out/produce.cpu.prof 2>/dev/null | head -35
fi
