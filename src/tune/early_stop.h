// Early stopping for concurrent trials: divergence, learning-curve extrapolation, ASHA.
#pragma once

#include <map>
#include <memory>
#include <optional>
#include <set>
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
  // trial's first observation) in `divergence_patience` evaluations in a row. A large step
  // size often spikes once early and recovers (it may be the best point of a grid); a
  // diverging one stays up.
  double divergence_factor = 2.0;
  double reference_loss = 0;
  size_t divergence_patience = 3;
  // curve: after `warmup` of the budget and `min_points` evaluations, stop a trial whose
  // predicted final loss is worse than the best loss seen so far by more than `margin`. With an
  // epochs budget the tuner first runs every trial to its warm-up and pauses it there
  // (CurveScheduler), so that each is judged before it costs more than its warm-up.
  double warmup = 0.1;
  size_t min_points = 3;
  double margin = 0.01;
  // asha (AshaScheduler): rungs at min_progress * eta^k (< 1); a trial pauses at each rung and
  // is promoted to the next only when it is in the top 1/eta of the trials recorded there.
  // Measured with `overcast tune` on bench tune's 16-point grid (grid best 0.198, ~105
  // worker-s): eta 3 from 1/9: 0.43 of the grid's worker-seconds at 1.004 of its best; eta 4
  // from 1/16 (the ASHA paper's eta): 0.29-0.35 but 1.002-1.013 (the first rung, 0.6 epochs,
  // misranks the noisy high-lr trials); eta 4 from 1/8: 0.39 at 1.013. Quality first: eta 3.
  double eta = 3;
  double min_progress = 1.0 / 9;
};

// Stops diverging trials (every policy) and, with `curve`, hopeless ones. Not thread-safe.
class EarlyStopper {
 public:
  explicit EarlyStopper(EarlyStopOptions options);
  static Status Validate(const EarlyStopOptions& options);

  // Records an evaluation of `trial`; returns the reason to stop it now, if any.
  std::optional<std::string> Report(int trial, const Observation& o);
  // The trial's predicted final loss from its curve so far (never above its best loss): the
  // power law fitted to the curve's lower envelope from kFirstProgress on, and to its later
  // half alone once that holds kRecentPoints evaluations. nullopt with fewer than `min_points`
  // evaluations or no fit. Chosen on the 16 full curves of bench tune's grid (mean absolute
  // error of the prediction against the final tail-averaged log-loss, at 10% / 20% / 50% of
  // the budget): fitting every point from progress 0 0.036 / 0.018 / 0.007 (optimistic by
  // 0.02-0.04 on the near-best trials, which kept too many running); without the untrained
  // point 0.024 / 0.010 / 0.008; with the later half too 0.024 / 0.008 / 0.003.
  std::optional<double> Predict(int trial) const;
  static constexpr double kFirstProgress = 0.005;
  static constexpr size_t kRecentPoints = 6;
  // curve: the reason to stop `trial` on its curve so far, if its prediction is worse than the
  // best by more than the margin (a paused trial is judged so before it resumes).
  std::optional<std::string> Judge(int trial) const;
  // A trial ended on its own (budget reached) with this final loss.
  void Complete(int trial, double final_loss);
  double best_loss() const { return best_; }

 private:
  EarlyStopOptions o_;
  std::map<int, std::vector<Observation>> curves_;
  std::map<int, size_t> above_;  // consecutive evaluations above the divergence threshold
  double best_;
};

// What a scheduler hands a free slot: run `trial` to `until` of its budget.
struct TrialWork {
  int trial = 0;
  double until = 1;     // run to this fraction of the budget (1: the end)
  bool resume = false;  // the trial paused before: resume it
};

// The trials not started yet, in order, less those an earlier run of the search finished.
class NewTrials {
 public:
  explicit NewTrials(size_t trials) : trials_(trials) {}
  void Skip(int trial);  // never start it
  bool empty() const { return next_ >= trials_; }
  int Take();  // the next one to start; only when !empty()

 private:
  void PassSkipped();
  size_t trials_, next_ = 0;
  std::set<size_t> skip_;
};

// The curve policy's order, after SpotTune's EarlyCurve, which samples every configuration's
// curve before it spends more on any: each new trial runs to the warm-up and pauses; once no
// new trial is left, the paused trial with the best predicted final loss resumes and runs to
// the end (those without a prediction go after the rest). The tuner judges each one on its
// curve before it resumes (EarlyStopper::Judge) and keeps judging it while it runs, so a trial
// predicted worse than the best that the earlier ones reached never resumes. Not thread-safe.
class CurveScheduler {
 public:
  CurveScheduler(double warmup, size_t trials);
  void Skip(int trial) { new_.Skip(trial); }  // finished by an earlier run of the search
  std::optional<TrialWork> Next();
  // The trial reached its warm-up and paused; its prediction then (nullopt: none).
  void Paused(int trial, std::optional<double> predicted);
  // The trial ended (its budget, stopped, failed) or was judged before resuming: it is done.
  void Ended(int trial);
  bool Done() const { return running_ == 0 && new_.empty() && paused_.empty(); }

 private:
  double warmup_;
  NewTrials new_;
  size_t running_ = 0;
  std::map<int, std::optional<double>> paused_;
};

// Asynchronous successive halving with paused trials (Li et al., "A System for Massively
// Parallel Hyperparameter Tuning", MLSys'20). A trial runs to its rung (a fraction of the
// budget) and pauses there, its state kept in the parameter server. A free slot goes to the
// best paused trial that is in the top 1/eta of its rung (promoted: it resumes and runs to the
// next rung, or to the end past the last), looking from the highest rung down; else to a new
// trial, which runs to the first rung. Once no new trial is left and nothing runs, the best
// unpromoted trial of the highest rung that has none promoted goes on, so that a small search
// still trains one trial to the end. Not thread-safe.
class AshaScheduler {
 public:
  AshaScheduler(double min_progress, double eta, size_t trials);
  void Skip(int trial) { new_.Skip(trial); }  // finished by an earlier run of the search

  using Work = TrialWork;
  // What to run next; nullopt when nothing can start now (wait for a running trial) or ever
  // (Done()).
  std::optional<Work> Next();
  // The trial reached the `until` of its work (< 1) with this loss, and paused.
  void Paused(int trial, double loss);
  // The trial ended: at the end of the budget, diverged or failed. It is not promoted.
  void Ended(int trial);
  bool Done() const { return running_ == 0 && new_.empty() && !promotable_; }
  const std::vector<double>& rungs() const { return rungs_; }
  // The rung index a trial paused at last (-1: none).
  int RungOf(int trial) const;

 private:
  std::optional<Work> Promote(bool force);
  double eta_;
  std::vector<double> rungs_;
  std::vector<std::vector<std::pair<double, int>>> recorded_;  // per rung: (loss, trial)
  std::vector<std::map<int, bool>> promoted_;                    // per rung
  std::map<int, int> target_, paused_at_;                       // trial -> rung index
  std::map<int, bool> ended_;
  NewTrials new_;
  size_t running_ = 0;
  bool promotable_ = false;  // a forced promotion may still be possible
};

}  // namespace overcast::tune
