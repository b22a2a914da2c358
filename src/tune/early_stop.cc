#include "tune/early_stop.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include <fmt/format.h>

namespace overcast::tune {

double CurveFit::At(double t) const { return a + b * std::pow(t, -c); }

std::optional<CurveFit> FitCurve(const std::vector<Observation>& points) {
  std::vector<Observation> p;
  for (auto& o : points) {
    if (o.progress > 0 && std::isfinite(o.loss)) p.push_back(o);
  }
  if (p.size() < 3) return std::nullopt;
  std::optional<CurveFit> best;
  for (double c = 0.05; c <= 3.0001; c += 0.05) {
    // Least squares of loss on x = t^-c.
    double n = static_cast<double>(p.size()), sx = 0, sy = 0, sxx = 0, sxy = 0;
    for (auto& o : p) {
      double x = std::pow(o.progress, -c);
      sx += x;
      sy += o.loss;
      sxx += x * x;
      sxy += x * o.loss;
    }
    double den = n * sxx - sx * sx;
    if (std::fabs(den) < 1e-12) continue;
    CurveFit f;
    f.c = c;
    f.b = (n * sxy - sx * sy) / den;
    f.a = (sy - f.b * sx) / n;
    for (auto& o : p) f.sse += (f.At(o.progress) - o.loss) * (f.At(o.progress) - o.loss);
    if (!best || f.sse < best->sse) best = f;
  }
  return best;
}

Status EarlyStopper::Validate(const EarlyStopOptions& o) {
  if (o.policy != "none" && o.policy != "curve" && o.policy != "asha") {
    return InvalidArgument("--early-stop must be none, curve or asha, not '" + o.policy + "'");
  }
  if (!(o.eta > 1)) return InvalidArgument("asha eta must be greater than 1");
  if (!(o.min_progress > 0 && o.min_progress < 1)) {
    return InvalidArgument("asha min progress must be in (0, 1)");
  }
  if (!(o.warmup >= 0 && o.warmup < 1)) return InvalidArgument("curve warm-up must be in [0, 1)");
  return Status::Ok();
}

EarlyStopper::EarlyStopper(EarlyStopOptions options)
    : o_(std::move(options)), best_(std::numeric_limits<double>::infinity()) {
  if (o_.policy == "asha") {
    for (double r = o_.min_progress; r < 1.0 - 1e-9; r *= o_.eta) rungs_.push_back(r);
    rung_losses_.resize(rungs_.size());
  }
}

std::optional<std::string> EarlyStopper::Report(int trial, const Observation& o) {
  auto& curve = curves_[trial];
  curve.push_back(o);
  if (!std::isfinite(o.loss)) return std::string("diverged: the loss is not finite");
  double ref = o_.reference_loss > 0 ? o_.reference_loss : curve.front().loss;
  if (o.loss > o_.divergence_factor * ref) {
    return fmt::format("diverged: loss {:.4g} is over {}x the starting {:.4g}", o.loss,
                       o_.divergence_factor, ref);
  }
  best_ = std::min(best_, o.loss);

  if (o_.policy == "curve") {
    if (o.progress < o_.warmup || curve.size() < o_.min_points) return std::nullopt;
    auto fit = FitCurve(curve);
    if (!fit) return std::nullopt;
    // A fit cannot promise worse than what the trial already reached.
    double predicted = std::min(fit->At(1.0), o.loss);
    if (predicted > best_ * (1 + o_.margin)) {
      return fmt::format("curve: predicted final loss {:.4f} > best {:.4f} + {:.0f}%", predicted,
                         best_, o_.margin * 100);
    }
    return std::nullopt;
  }
  if (o_.policy == "asha") {
    size_t& k = next_rung_[trial];
    std::optional<std::string> stop;
    while (k < rungs_.size() && o.progress >= rungs_[k]) {
      auto& losses = rung_losses_[k];
      losses.push_back(o.loss);
      if (losses.size() >= static_cast<size_t>(std::ceil(o_.eta)) && !stop) {
        // Goes on only when in the top 1/eta of what this rung has seen.
        std::vector<double> sorted = losses;
        std::sort(sorted.begin(), sorted.end());
        size_t keep = std::max<size_t>(1, static_cast<size_t>(sorted.size() / o_.eta));
        double cutoff = sorted[keep - 1];
        if (o.loss > cutoff) {
          stop = fmt::format("asha: rung {} (at {:.0f}% of budget): loss {:.4f} not in the top "
                             "1/{} ({:.4f})",
                             k, rungs_[k] * 100, o.loss, o_.eta, cutoff);
        }
      }
      ++k;
    }
    return stop;
  }
  return std::nullopt;
}

void EarlyStopper::Complete(int trial, double final_loss) {
  if (std::isfinite(final_loss)) best_ = std::min(best_, final_loss);
  (void)trial;
}

}  // namespace overcast::tune
