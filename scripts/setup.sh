#!/usr/bin/env bash
# Installs the Debian packages overcast needs, only those missing (idempotent), then configures
# and builds into build/ (or $OVERCAST_BUILD_DIR). Usage: scripts/setup.sh [extra cmake args]
set -euo pipefail
cd "$(dirname "$0")/.."

PACKAGES=(
  build-essential cmake ninja-build pkg-config clang libclang-rt-14-dev
  libasio-dev libcli11-dev nlohmann-json3-dev libspdlog-dev libfmt-dev
  libzstd-dev liblz4-dev libxxhash-dev libssl-dev libhiredis-dev zlib1g-dev
  libgtest-dev libgmock-dev libbenchmark-dev libeigen3-dev
  redis-server dataset-fashion-mnist liblinear-tools
  libcpp-httplib-dev wrk python3 time openssl
  r-cran-dslabs python3-sklearn
)
bash scripts/ensure_packages.sh setup "${PACKAGES[@]}"

BUILD_DIR="${OVERCAST_BUILD_DIR:-build}"
cmake -S . -B "$BUILD_DIR" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo "$@" >&2
cmake --build "$BUILD_DIR" -j"$(nproc)" >&2
