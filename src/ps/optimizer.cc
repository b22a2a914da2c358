#include "ps/optimizer.h"

#include <cmath>

namespace overcast::ps {

void ApplyUpdate(const OptimizerConfig& o, float* w, float* state, const float* g, size_t n,
                 float* step) {
  const float lr = o.lr, l1 = o.l1, l2 = o.l2;
  switch (o.kind) {
    case OptimizerKind::kAdd:
      for (size_t i = 0; i < n; ++i) w[i] += g[i];
      return;
    case OptimizerKind::kSgd:
      for (size_t i = 0; i < n; ++i) {
        float gi = g[i] + l2 * w[i];
        if (l1 > 0) gi += l1 * ((w[i] > 0) - (w[i] < 0));
        w[i] -= lr * gi;
      }
      return;
    case OptimizerKind::kAdagrad: {
      float* acc = state;
      for (size_t i = 0; i < n; ++i) {
        float gi = g[i] + l2 * w[i];
        acc[i] += gi * gi;
        w[i] -= lr * gi / (std::sqrt(acc[i]) + o.eps);
      }
      return;
    }
    case OptimizerKind::kFtrl: {
      // FTRL-Proximal (McMahan et al., KDD'13, Algorithm 1), lr is alpha.
      float* z = state;
      float* nn = state + n;
      for (size_t i = 0; i < n; ++i) {
        float gi = g[i];
        float sigma = (std::sqrt(nn[i] + gi * gi) - std::sqrt(nn[i])) / lr;
        z[i] += gi - sigma * w[i];
        nn[i] += gi * gi;
        if (std::fabs(z[i]) <= l1) {
          w[i] = 0.0f;
        } else {
          float sign = z[i] < 0 ? -1.0f : 1.0f;
          w[i] = -(z[i] - sign * l1) / ((o.ftrl_beta + std::sqrt(nn[i])) / lr + l2);
        }
      }
      return;
    }
    case OptimizerKind::kAdam: {
      float* m = state;
      float* v = state + n;
      float t = *step + 1.0f;
      *step = t;
      const float c1 = 1.0f - std::pow(o.beta1, t), c2 = 1.0f - std::pow(o.beta2, t);
      for (size_t i = 0; i < n; ++i) {
        float gi = g[i] + l2 * w[i];
        m[i] = o.beta1 * m[i] + (1 - o.beta1) * gi;
        v[i] = o.beta2 * v[i] + (1 - o.beta2) * gi * gi;
        w[i] -= lr * (m[i] / c1) / (std::sqrt(v[i] / c2) + o.eps);
      }
      return;
    }
  }
}

}  // namespace overcast::ps
