// Early stopping for concurrent trials: divergence, learning-curve extrapolation, ASHA.
#pragma once

#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "common/status.h"

namespace overcast::tune {

// progress: fraction of the trial's budget used (epochs or seconds), in (0, 1].
// loss: the objective, lower is better (test log-loss or RMSE).
struct Observation {
  double progress = 0;
  double loss = 0;
};

// A power law in progress, L(t) = a + b * t^(-c), fitted by least squares: for each c on a grid
// the best (a, b) is closed-form, and the c with the smallest error wins. Power laws are the
// most reliable single family for SGD learning curves (Domhan et al., IJCAI'15, "pow3"), and a
// grid over the exponent cannot diverge the way a nonlinear solver can on three noisy points.
struct CurveFit {
  double a = 0, b = 0, c = 1;
  double sse = 0;
  double At(double t) const;
};
// Needs at least three points with distinct progress; otherwise nullopt.
std::optional<CurveFit> FitCurve(const std::vector<Observation>& points);

struct EarlyStopOptions {
  std::string policy = "none";  // none | curve | asha
  // Divergence (always on): a non-finite loss, or a loss above divergence_factor times the
  // reference (the loss of an untrained model, e.g. ln(classes) for log-loss; when 0, the
  // trial's first observation).
  double divergence_factor = 2.0;
  double reference_loss = 0;
  // curve: after `warmup` of the budget and `min_points` evaluations, stop a trial whose
  // predicted final loss is worse than the best loss seen so far by more than `margin`.
  double warmup = 0.1;
  size_t min_points = 3;
  double margin = 0.01;
  // asha: rungs at min_progress * eta^k (< 1); at each rung a trial goes on only if it is in
  // the top 1/eta of the trials recorded there so far.
  double eta = 3;
  double min_progress = 1.0 / 9;
};

// Not thread-safe: one tuner thread reports and asks.
class EarlyStopper {
 public:
  explicit EarlyStopper(EarlyStopOptions options);
  static Status Validate(const EarlyStopOptions& options);

  // Records an evaluation of `trial`; returns the reason to stop it now, if any.
  std::optional<std::string> Report(int trial, const Observation& o);
  // A trial ended on its own (budget reached) with this final loss.
  void Complete(int trial, double final_loss);
  double best_loss() const { return best_; }

 private:
  EarlyStopOptions o_;
  std::map<int, std::vector<Observation>> curves_;
  std::vector<double> rungs_;
  std::vector<std::vector<double>> rung_losses_;
  std::map<int, size_t> next_rung_;
  double best_;
};

}  // namespace overcast::tune
