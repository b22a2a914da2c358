#!/usr/bin/env bash
# The peer benchmark suite, whole or in parts: installs the peers it is missing from Debian
# (idempotent apt-get, like scripts/setup.sh), builds overcast if needed, then runs
# bench/suite/suite.py, which writes OUT/results.json and OUT/results.md.
# Usage: bench/suite/run.sh [--quick] [--parts fmnist,ctr,ps,movielens] [--out DIR] [--repeats N]
#                           [any other suite.py option; suite.py --help lists them]
set -euo pipefail
cd "$(dirname "$0")/../.."

# Peers and what they are for:
#   liblinear-tools (liblinear-train/-predict), python3-sklearn (LogisticRegression, SGDClassifier,
#   NMF), python3-xgboost, redis-server (bench ps), r-cran-dslabs (MovieLens ml-latest-small,
#   exported with Rscript), dataset-fashion-mnist, and libopenblas0-pthread: Debian's default
#   reference BLAS would slow numpy and scikit-learn several times over, a handicap no user of
#   them would accept.
PACKAGES=(
  liblinear-tools python3-sklearn python3-xgboost redis-server r-cran-dslabs
  dataset-fashion-mnist libopenblas0-pthread python3-numpy python3-scipy time
)
bash scripts/ensure_packages.sh suite "${PACKAGES[@]}"

if [ ! -x build/tools/overcast/overcast ]; then
  bash scripts/setup.sh
fi
exec /usr/bin/python3 bench/suite/suite.py "$@"
