#!/usr/bin/env bash
# Exports MovieLens ml-latest-small (100004 ratings of 671 users), as Debian's r-cran-dslabs
# ships it in its `movielens` data frame, to a ratings CSV for `overcast load --format ratings`:
# header "userId,movieId,rating,timestamp", rows in a seeded random order (so that any split or
# partition of the file mixes users).
# Usage: scripts/movielens_to_csv.sh OUT.csv [SEED]   (needs Rscript and r-cran-dslabs)
set -euo pipefail
[ $# -ge 1 ] || { echo "usage: $0 OUT.csv [SEED]" >&2; exit 2; }
command -v Rscript > /dev/null || { echo "movielens: Rscript is missing; apt-get install r-cran-dslabs" >&2; exit 1; }
Rscript --vanilla -e '
args <- commandArgs(trailingOnly = TRUE)
data(movielens, package = "dslabs")
m <- movielens[, c("userId", "movieId", "rating", "timestamp")]
set.seed(as.integer(args[2]))
m <- m[sample.int(nrow(m)), ]
write.csv(m, args[1], row.names = FALSE, quote = FALSE)
' "$1" "${2:-1}"
