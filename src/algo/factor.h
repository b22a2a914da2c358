// Built-ins beyond linear models: factorization machines (fm), matrix factorization (mf) and
// mini-batch k-means (kmeans), all on the same streaming API.
#pragma once

#include "algo/algorithm.h"

namespace overcast::algo {

AlgorithmInfo FmInfo();
AlgorithmInfo MfInfo();
AlgorithmInfo KmeansInfo();

}  // namespace overcast::algo
