#include "tune/early_stop.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

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
    : o_(std::move(options)), best_(std::numeric_limits<double>::infinity()) {}

std::optional<std::string> EarlyStopper::Report(int trial, const Observation& o) {
  auto& curve = curves_[trial];
  curve.push_back(o);
  if (!std::isfinite(o.loss)) return std::string("diverged: the loss is not finite");
  double ref = o_.reference_loss > 0 ? o_.reference_loss : curve.front().loss;
  size_t& above = above_[trial];
  above = o.loss > o_.divergence_factor * ref ? above + 1 : 0;
  if (above >= std::max<size_t>(1, o_.divergence_patience)) {
    return fmt::format("diverged: loss {:.4g} is over {}x the starting {:.4g} in {} evaluations "
                       "in a row", o.loss, o_.divergence_factor, ref, above);
  }
  if (above > 0) {  // a spike: neither a best nor a point of the curve
    curve.pop_back();
    return std::nullopt;
  }
  best_ = std::min(best_, o.loss);

  if (o_.policy == "curve" && spdlog::should_log(spdlog::level::debug)) {
    auto predicted = Predict(trial);
    spdlog::debug("curve: trial {} at {:.3f}: loss {:.4f}, predicted {}, best {:.4f}", trial,
                  o.progress, o.loss, predicted ? fmt::format("{:.4f}", *predicted) : "-", best_);
  }
  if (o_.policy == "curve" && o.progress >= o_.warmup) return Judge(trial);
  return std::nullopt;
}

std::optional<double> EarlyStopper::Predict(int trial) const {
  auto it = curves_.find(trial);
  if (it == curves_.end()) return std::nullopt;
  // The evaluation before any training (the untrained model's loss at progress ~0) says
  // nothing about the curve's shape, and a power law through it bends every fit toward it.
  std::vector<Observation> raw;
  for (const Observation& o : it->second) {
    if (o.progress >= kFirstProgress) raw.push_back(o);
  }
  if (raw.size() < o_.min_points) return std::nullopt;
  // Fitted to the lower envelope (the best loss so far at each point): a large step size makes
  // the raw iterate's loss jump from one evaluation to the next, and a power law through the
  // jumps extrapolates them, while the run's final model (tail-averaged) lands near the
  // envelope. On a smooth curve the envelope is the curve itself.
  std::vector<Observation> envelope = raw;
  for (size_t i = 1; i < envelope.size(); ++i)
    envelope[i].loss = std::min(envelope[i].loss, envelope[i - 1].loss);
  // Once there are enough of them, the later half of the run alone: its shape is the one that
  // goes on to the end, while early points fit the fast initial drop.
  const double half = envelope.back().progress / 2;
  std::vector<Observation> recent;
  for (const Observation& o : envelope) {
    if (o.progress >= half) recent.push_back(o);
  }
  const auto& used = recent.size() >= kRecentPoints ? recent : envelope;
  auto fit = FitCurve(used);
  if (!fit) return std::nullopt;
  // A fit cannot promise worse than what the trial already reached.
  return std::min(fit->At(1.0), envelope.back().loss);
}

std::optional<std::string> EarlyStopper::Judge(int trial) const {
  if (o_.policy != "curve") return std::nullopt;
  auto predicted = Predict(trial);
  if (!predicted || !(*predicted > best_ * (1 + o_.margin))) return std::nullopt;
  return fmt::format("curve: predicted final loss {:.4f} > best {:.4f} + {:.0f}%", *predicted,
                     best_, o_.margin * 100);
}

void EarlyStopper::Complete(int trial, double final_loss) {
  if (std::isfinite(final_loss)) best_ = std::min(best_, final_loss);
  (void)trial;
}

void NewTrials::Skip(int trial) {
  skip_.insert(static_cast<size_t>(trial));
  PassSkipped();
}

int NewTrials::Take() {
  const int t = static_cast<int>(next_++);
  PassSkipped();
  return t;
}

void NewTrials::PassSkipped() {
  while (next_ < trials_ && skip_.count(next_)) ++next_;
}

CurveScheduler::CurveScheduler(double warmup, size_t trials) : warmup_(warmup), new_(trials) {}

std::optional<TrialWork> CurveScheduler::Next() {
  if (!new_.empty()) {
    ++running_;
    return TrialWork{new_.Take(), warmup_ > 0 ? warmup_ : 1.0, false};
  }
  if (paused_.empty()) return std::nullopt;
  // The best prediction first; a trial without one after every trial that has one.
  auto best = std::min_element(paused_.begin(), paused_.end(), [](auto& a, auto& b) {
    if (a.second.has_value() != b.second.has_value()) return a.second.has_value();
    return a.second.has_value() && *a.second < *b.second;
  });
  TrialWork w{best->first, 1.0, true};
  paused_.erase(best);
  ++running_;
  return w;
}

void CurveScheduler::Paused(int trial, std::optional<double> predicted) {
  --running_;
  paused_[trial] = predicted;
}

void CurveScheduler::Ended(int trial) {
  if (paused_.erase(trial) == 0) --running_;
}

AshaScheduler::AshaScheduler(double min_progress, double eta, size_t trials)
    : eta_(eta), new_(trials) {
  for (double r = min_progress; r < 1.0 - 1e-9; r *= eta) rungs_.push_back(r);
  recorded_.resize(rungs_.size());
  promoted_.resize(rungs_.size());
}

int AshaScheduler::RungOf(int trial) const {
  auto it = paused_at_.find(trial);
  return it == paused_at_.end() ? -1 : it->second;
}

std::optional<AshaScheduler::Work> AshaScheduler::Promote(bool force) {
  for (int k = static_cast<int>(rungs_.size()) - 1; k >= 0; --k) {
    auto rec = recorded_[k];
    std::sort(rec.begin(), rec.end());
    size_t allowed = static_cast<size_t>(static_cast<double>(rec.size()) / eta_);
    if (force && promoted_[k].empty()) allowed = std::max<size_t>(allowed, 1);
    for (size_t i = 0; i < std::min(allowed, rec.size()); ++i) {
      const int t = rec[i].second;
      if (promoted_[k].count(t) || ended_.count(t)) continue;
      promoted_[k][t] = true;
      const int next = k + 1;
      target_[t] = next;
      ++running_;
      return Work{t, next < static_cast<int>(rungs_.size()) ? rungs_[next] : 1.0, true};
    }
  }
  return std::nullopt;
}

std::optional<AshaScheduler::Work> AshaScheduler::Next() {
  if (auto w = Promote(false)) return w;
  if (!new_.empty()) {
    const int t = new_.Take();
    target_[t] = 0;
    ++running_;
    return Work{t, rungs_.empty() ? 1.0 : rungs_[0], false};
  }
  if (running_ > 0) return std::nullopt;
  auto w = Promote(true);
  promotable_ = w.has_value();
  return w;
}

void AshaScheduler::Paused(int trial, double loss) {
  --running_;
  const int k = target_[trial];
  if (k >= static_cast<int>(rungs_.size())) {  // it was running to the end
    ended_[trial] = true;
    return;
  }
  paused_at_[trial] = k;
  recorded_[k].push_back({std::isfinite(loss) ? loss : std::numeric_limits<double>::infinity(),
                          trial});
  promotable_ = true;
}

void AshaScheduler::Ended(int trial) {
  --running_;
  ended_[trial] = true;
}

}  // namespace overcast::tune
