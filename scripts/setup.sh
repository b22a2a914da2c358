#!/usr/bin/env bash
# Installs the Debian packages overcast needs, only those missing (idempotent), then configures
# and builds into build/. Usage: scripts/setup.sh [extra cmake args]
set -euo pipefail
cd "$(dirname "$0")/.."

PACKAGES=(
  build-essential cmake ninja-build pkg-config clang libclang-rt-14-dev
  libasio-dev libcli11-dev nlohmann-json3-dev libspdlog-dev libfmt-dev
  libzstd-dev liblz4-dev libxxhash-dev libssl-dev libhiredis-dev zlib1g-dev
  libgtest-dev libgmock-dev libbenchmark-dev libeigen3-dev
  redis-server dataset-fashion-mnist liblinear-tools
  libcpp-httplib-dev wrk python3
  r-cran-dslabs python3-sklearn
)
missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing ${missing[*]}" >&2
  SUDO=""
  [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq || true
  $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
fi

cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo "$@" >&2
cmake --build build -j"$(nproc)" >&2
