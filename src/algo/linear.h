// Sparse linear models on the parameter server: softmax (multiclass), logreg (binary), linreg.
#pragma once

#include "algo/algorithm.h"

namespace overcast::algo {

AlgorithmInfo SoftmaxInfo();
AlgorithmInfo LogregInfo();
AlgorithmInfo LinregInfo();

}  // namespace overcast::algo
