// The explicit list of built-in algorithms (STYLE.md: no registration by static initialisers).
#include "algo/algorithm.h"
#include "algo/linear.h"

namespace overcast::algo {

std::vector<AlgorithmInfo> BuiltinAlgorithms() {
  return {SoftmaxInfo(), LogregInfo(), LinregInfo()};
}

}  // namespace overcast::algo
