#!/usr/bin/env bash
# The whole test suite built with AddressSanitizer and UBSan (OVERCAST_SANITIZE) into
# build-asan/: the first error in a test (a child process's too) fails it. A check to run before
# a release, not part of scripts/test.sh: the build alone takes about half an hour on 2 cores.
# Usage: scripts/sanitize.sh [ctest args, e.g. -R serve]
set -euo pipefail
cd "$(dirname "$0")/.."
OVERCAST_BUILD_DIR=build-asan scripts/setup.sh -DOVERCAST_SANITIZE=ON
cd build-asan
export ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1
ctest --output-on-failure -j"$(nproc)" --timeout 1800 "$@"
