// Search spaces: a grid or random draws over hyper-parameters, as KEY=VALUE assignments.
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "common/status.h"

namespace overcast::tune {

// One trial's hyper-parameters, in the order the space named them: {"lr", "0.1"}, ...
using Assignment = std::vector<std::pair<std::string, std::string>>;

std::string ToString(const Assignment& a);  // "lr=0.1 batch=64"

// "lr=0.01,0.1,1;batch=64,256": the cross product, in row-major order. Names must be unique
// and non-empty, each with at least one value. Errors say what was expected and where.
Result<std::vector<Assignment>> ParseGrid(const std::string& spec);

// "lr=log(1e-4,1);l2=log(1e-8,1e-2);batch=int(32,512);optimizer=choice(sgd,adam);
//  momentum=uniform(0,1)": `trials` draws with a seeded generator. log(a,b) is log-uniform
// (0 < a < b), int(a,b) uniform over integers a..b, uniform(a,b) uniform, choice(...) one of
// the listed values; a bare value is a constant.
Result<std::vector<Assignment>> ParseRandom(const std::string& spec, uint32_t trials,
                                            uint64_t seed);

}  // namespace overcast::tune
