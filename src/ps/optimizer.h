// Server-side optimizers: one update rule over a run of weights and their state.
#pragma once

#include <cstddef>

#include "ps/table_spec.h"

namespace overcast::ps {

// Applies gradient g[0..n) to weights w[0..n). `state` holds StateFloats(kind, n) floats laid
// out as [first n | second n] (adagrad: sum of squares; ftrl: z, n; adam: m, v); `step` is adam's
// step counter (one per sparse row, one per dense table). Callers switch on nothing: the kind
// is read once per call, not per element.
void ApplyUpdate(const OptimizerConfig& o, float* w, float* state, const float* g, size_t n,
                 float* step);

}  // namespace overcast::ps
