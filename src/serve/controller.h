// CPU quota controllers for one replica (Captain, HPA-style, static) and the per-deployment Tower.
#pragma once

#include <cstdint>
#include <deque>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "common/status.h"
#include "serve/cgroup.h"

namespace overcast::serve {

// One reading of a replica's cgroup, taken every sample interval (100 ms).
struct CpuSample {
  double t = 0;  // seconds, monotonic
  CpuStat stat;
};

// Decides one replica's CPU limit (cores) from its samples. Not thread-safe: the control thread
// owns it. OnSample returns the limit to apply now (the same value when nothing changes).
class QuotaController {
 public:
  virtual ~QuotaController() = default;
  virtual double OnSample(const CpuSample& s) = 0;
  virtual double limit() const = 0;
  virtual std::string name() const = 0;
  // Throttle-ratio target, for controllers that have one (the Captain); -1 otherwise.
  virtual double target() const { return -1; }
  virtual void set_target(double) {}
  // Scale events so far, for metrics.
  uint64_t scale_ups = 0, scale_downs = 0, rollbacks = 0;
};

struct CaptainOptions {
  double initial_cores = 1.0;
  double min_cores = 0.01;  // Autothrottle's floor
  double max_cores = 2.0;
  double target = 0.05;             // throttle-ratio target (the Tower moves it)
  int decide_every = 10;            // samples per decision (10 x 100 ms = 1 s)
  int usage_window = 50;            // samples of usage history (5 s)
  double initial_margin = 3.0;      // stdev multiplier in the safety margin
  double margin_gain = 1.0;         // margin += gain x (r - target) each decision, floored at 0
  double up_trigger = 3.0;          // scale up when r > up_trigger x target
  double down_headroom = 0.9;       // scale down only when u <= headroom x limit
  double max_down_step = 0.5;       // never below this fraction of the limit in one step
  bool fast_rollback = true;        // undo a scale-down followed by throttling, within 100 ms
  // Beyond the paper: on a scale-up, also raise the limit to at least the usage plus the time
  // the group spent throttled over the last interval (in cores), an estimate of the demand the
  // quota cut off; the multiplicative rule alone needs several seconds to climb from a low limit.
  bool demand_estimate = true;
  // Where a scale-down starts from: the window's peak 100-ms usage (the paper's rule), or its
  // mean (with trend_guard: its fitted value now), leaving the bursts above it to the adaptive
  // margin (x stdev), which the throttle ratio's feedback grows and shrinks. The mean is the
  // default: on `bench serve` it allocated 15-19 core-s a run where the peak took 20.7
  // (src/serve/README.md).
  bool from_peak = false;
  // Beyond the paper: when scaling down from the mean, fit a line through the usage window and
  // start from its value at the newest sample (never below the last decision interval's mean),
  // with the margin on the residuals' stdev. The window's plain mean lags a ramp by half the
  // window: up, it scales down into throttling; down, it holds seconds of unused quota.
  bool trend_guard = true;
  // Beyond the paper: a 100 ms sample in which at least this share of the CFS periods was
  // throttled (and above the scale-up trigger) raises the limit at once, by the paper's
  // multiplicative step, instead of waiting for the end of the decision interval; a load ramp
  // otherwise queues up to a second of requests behind the old quota. 0 turns it off.
  double fast_up_ratio = 0.5;
  // Beyond the paper: a fast scale-up answers a burst, and bursts pass within a sample or two.
  // Once a later sample is unthrottled, the limit goes back towards where it was before the
  // scale-up: to the larger of that limit and the usage since the scale-up over down_headroom.
  // A decision that moves the limit first cancels this; one that holds it does not. Without it
  // the burst's extra quota is held until a decision steps it down from a window that includes
  // the burst.
  bool fast_up_repay = true;
};

// Seconds a Captain sampled every `sample_interval_s` may take to come down from
// initial_cores to min_cores, at most max_down_step a decision: the start-up descent, whose
// allocation says nothing of the throttle target (the Tower learns nothing from it).
double CaptainDescentSeconds(const CaptainOptions& o, double sample_interval_s);

// Autothrottle's Captain (NSDI'24 section 4): holds a throttle-ratio target.
class Captain final : public QuotaController {
 public:
  explicit Captain(CaptainOptions o);
  double OnSample(const CpuSample& s) override;
  double limit() const override { return limit_; }
  std::string name() const override { return "captain"; }
  double target() const override { return o_.target; }
  void set_target(double t) override { o_.target = t; }
  double margin() const { return margin_; }
  // Throttle ratio over the last decision interval (for metrics).
  double last_ratio() const { return last_ratio_; }

 private:
  CaptainOptions o_;
  double limit_, margin_;
  double last_ratio_ = 0;
  bool have_prev_ = false;
  CpuSample prev_;
  std::deque<double> usage_;  // cores, one per sample
  int since_decision_ = 0;
  uint64_t periods_acc_ = 0, throttled_acc_ = 0;  // since the last decision
  uint64_t prev_throttled_usec_ = 0;
  double used_acc_ = 0, throttled_s_acc_ = 0, span_acc_ = 0;  // seconds, since the last decision
  // Fast roll-back state: the limit before the last scale-down and counters since then.
  double before_down_ = -1;
  uint64_t down_periods_ = 0, down_throttled_ = 0;
  int down_age_ = 0;
  bool fast_up_in_interval_ = false;
  // Fast scale-up not yet repaid: the limit before it (-1: none), and usage since it.
  double before_up_ = -1;
  double up_used_ = 0, up_span_ = 0;
};

struct HpaOptions {
  double initial_cores = 1.0, min_cores = 0.01, max_cores = 2.0;
  double utilization_target = 0.5;  // usage / limit to aim for
  double interval_s = 15;           // how often to decide (the fast variant: 1)
  double window_s = 300;            // stabilisation window: max usage over it (fast: 20)
};

// Kubernetes-HPA-style rule applied to the CPU limit: every interval,
// limit = max(per-second usage over the window) / utilization_target.
class HpaController final : public QuotaController {
 public:
  explicit HpaController(HpaOptions o);
  double OnSample(const CpuSample& s) override;
  double limit() const override { return limit_; }
  std::string name() const override { return "hpa"; }

 private:
  HpaOptions o_;
  double limit_;
  bool have_prev_ = false;
  CpuSample prev_, sec_start_;
  std::deque<std::pair<double, double>> per_second_;  // (t, cores)
  double last_decision_ = -1;
};

// A fixed limit.
class StaticController final : public QuotaController {
 public:
  explicit StaticController(double cores) : limit_(cores) {}
  double OnSample(const CpuSample&) override { return limit_; }
  double limit() const override { return limit_; }
  std::string name() const override { return "static"; }

 private:
  double limit_;
};

struct TowerOptions {
  // Throttle-ratio targets to choose from (Autothrottle's nine levels).
  std::vector<double> targets{0, 0.02, 0.04, 0.06, 0.10, 0.15, 0.20, 0.25, 0.30};
  double explore = 0.1;     // probability of trying a neighbouring target
  double learning = 0.3;    // weight of a new cost in a cell's running estimate
  double rate_base = 10;    // context buckets: [0, base), [base, 2 base), [2 base, 4 base) ...
  int rate_buckets = 12;
  std::string state_path;   // where the table persists ("" = in memory only)
  uint64_t seed = 1;         // exploration's draws; a restored table re-seeds from it and its
                             // decisions
  // Beyond the paper: a higher target never needs more CPU, so in a rate bucket whose highest
  // tried target met the SLO, the next higher untried one is estimated just below the best
  // seen cost, and greedy tries it next. The search climbs until a target misses the SLO.
  // Off by default: on `bench serve` (2 replicas near the CFS quota floor) the probes cost SLO
  // windows (warm runs met 90-97.5% of windows with it, 97.5-100% without; src/serve/README.md).
  bool probe_up = false;
  // Beyond the paper: an interval whose p99 met the SLO but came above this fraction of it
  // costs more, rising linearly from its allocation to allocation + 1 at the SLO (still below
  // any miss). One 2 s p99 is a small sample of the tail: a target whose intervals run close to
  // the SLO misses it now and then, and a cost that sees only misses learns that late. 1 turns
  // it off (the paper's cost).
  double slo_guard = 0.5;
  // Where a rate bucket with nothing learned (and no neighbour to borrow from) starts: the
  // nearest of `targets` to this. Beyond the paper: starting at the most conservative target
  // left the climb to exploration alone, and on `bench serve` one cold pass of the trace (20
  // decisions) often never got above 0.04, after which the warm table held 0-0.04 at 1.4x the
  // replicas' usage (src/serve/README.md). A start that misses the SLO, or comes close enough
  // that the guard's term lifts its cost to 1 or more, is left downwards (see Tower).
  double initial_target = 0.10;
  // Beyond the paper: the allocation in the cost is scaled to the middle rate of its bucket
  // (allocation x middle / rate; see Tower::AtBucketRate). A bucket spans 2x in load and the
  // allocation follows the load, so without it a target tried while the load was falling looks
  // cheaper than one tried while it rose, whatever either costs. Off by default: on `bench
  // serve` the warm Tower then climbed to 0.15-0.20 and met the SLO in 0.925 of windows in one
  // of two runs (src/serve/README.md).
  bool rate_scaled_cost = false;
};

// Autothrottle's Tower: a contextual bandit over throttle targets. Context: the request rate
// (log-spaced buckets). Cost of an action in a context: allocation / max allocation (in [0,1])
// when p99 <= SLO, plus the near-miss term of `slo_guard`, else 2 + min(1, p99 / SLO - 1)
// (above every feasible allocation). Greedy on per-cell running estimates; an unseen cell is,
// with probe_up, optimistic when it is the next target above the bucket's highest feasible one;
// else it borrows from the nearest seen bucket of that action, else from the bucket's best seen
// action plus one (so it is tried only by exploration), or, in a bucket with nothing seen,
// prefers `initial_target`. While every target tried in a bucket costs 1 or more (missed the
// SLO, or came close to it), the untried one just below the lowest tried is estimated under
// them (a lower target never needs less CPU, so it is the way back to headroom). With
// probability `explore` a neighbouring target is tried, once the greedy target has been learned
// in that bucket (a choice with nothing learned behind it is taken as it is). Not thread-safe.
class Tower {
 public:
  explicit Tower(TowerOptions o);
  // Restores the table from state_path when the file exists.
  Status Load();
  Status Save() const;
  // The target to use for the next interval at request rate `rate` (requests/s).
  size_t Choose(double rate);
  // Feeds back what the action chosen for `rate` cost.
  void Observe(double rate, size_t action, double cost);
  static double Cost(double alloc_fraction, double p99_ms, double slo_ms, double slo_guard = 1.0);
  // `alloc_fraction` measured at `rate`, scaled to the middle (geometric) rate of rate's bucket
  // when rate_scaled_cost is on; the scale stays within [1/2, 2] and bucket 0 is left alone.
  double AtBucketRate(double alloc_fraction, double rate) const;
  size_t Bucket(double rate) const;
  double Estimate(size_t bucket, size_t action) const;
  size_t Greedy(size_t bucket) const;
  const TowerOptions& options() const { return o_; }
  uint64_t decisions() const { return decisions_; }
  uint64_t explorations() const { return explorations_; }

 private:
  struct Cell {
    double cost = 0;
    uint64_t n = 0;
  };
  double Prior(size_t bucket, size_t action) const;  // Estimate of an unseen cell, before the miss rule
  // The lowest cost seen in `bucket` (-1: none), and in *lowest the lowest target tried there.
  double BestSeen(size_t bucket, size_t* lowest = nullptr) const;
  TowerOptions o_;
  size_t initial_ = 0;       // index of the target nearest o_.initial_target
  std::vector<Cell> cells_;  // rate_buckets x targets
  std::mt19937_64 rng_;
  uint64_t decisions_ = 0, explorations_ = 0;
};

}  // namespace overcast::serve
