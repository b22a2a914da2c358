#!/usr/bin/env bash
# Builds the fuzz targets with clang and runs each for a few seconds from the committed seeds.
# Usage: tests/fuzz/run.sh BUILD_DIR [SECONDS]
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
build=${1:?build dir}
seconds=${2:-10}
CC=clang CXX=clang++ cmake -S "$here" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build "$build" >/dev/null
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cp "$here"/corpus/frame/* "$work"/
# New inputs go to the scratch copy; the committed corpus is only read.
"$build"/frame_fuzz -max_total_time="$seconds" -max_len=4096 -print_final_stats=1 "$work" 2>&1 | tail -12
