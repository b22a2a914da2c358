#include "serve/controller.h"

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <utility>

#include <nlohmann/json.hpp>

#include "common/fs.h"

namespace overcast::serve {

// ---------------------------------------------------------------------------------------------
// Captain

Captain::Captain(CaptainOptions o) : o_(o), limit_(o.initial_cores), margin_(o.initial_margin) {}

double Captain::OnSample(const CpuSample& s) {
  if (!have_prev_) {
    have_prev_ = true;
    prev_ = s;
    prev_throttled_usec_ = s.stat.throttled_usec;
    return limit_;
  }
  const double dt = std::max(1e-6, s.t - prev_.t);
  const double cores = CounterDelta(s.stat.usage_usec, prev_.stat.usage_usec) / 1e6 / dt;
  const uint64_t dp = CounterDelta(s.stat.nr_periods, prev_.stat.nr_periods);
  const uint64_t dth = CounterDelta(s.stat.nr_throttled, prev_.stat.nr_throttled);
  prev_ = s;
  usage_.push_back(cores);
  while (static_cast<int>(usage_.size()) > o_.usage_window) usage_.pop_front();
  periods_acc_ += dp;
  throttled_acc_ += dth;
  used_acc_ += cores * dt;
  throttled_s_acc_ += CounterDelta(s.stat.throttled_usec, prev_throttled_usec_) / 1e6;
  prev_throttled_usec_ = s.stat.throttled_usec;
  span_acc_ += dt;

  const double trigger = o_.up_trigger * o_.target;
  // Fast path: a scale-down in the last decision interval that is followed by throttling above
  // the trigger is undone at once, without waiting for the next decision.
  bool rolled_back = false;
  if (before_down_ > 0) {
    down_periods_ += dp;
    down_throttled_ += dth;
    ++down_age_;
    const double r = down_periods_ ? double(down_throttled_) / down_periods_ : 0.0;
    if (o_.fast_rollback && down_throttled_ > 0 && r > trigger) {
      limit_ = before_down_;
      before_down_ = -1;
      rolled_back = true;
      ++rollbacks;
    } else if (down_age_ >= o_.decide_every) {
      before_down_ = -1;
    }
  }

  // Fast scale-up: this sample alone was throttled in most of its periods.
  const double sample_r = dp ? double(dth) / dp : 0.0;
  if (!rolled_back && o_.fast_up_ratio > 0 && dth > 0 &&
      sample_r >= std::max(o_.fast_up_ratio, trigger)) {
    if (o_.fast_up_repay && before_up_ < 0) before_up_ = limit_;
    up_used_ = up_span_ = 0;
    limit_ = std::min(o_.max_cores, limit_ * (1.0 + (sample_r - trigger)));
    before_down_ = -1;
    fast_up_in_interval_ = true;
    ++scale_ups;
  } else if (before_up_ > 0) {
    // The burst a fast scale-up answered has passed once a sample goes unthrottled.
    up_used_ += cores * dt;
    up_span_ += dt;
    if (dth == 0) {
      const double next = std::max(before_up_, up_used_ / up_span_ / o_.down_headroom);
      if (next < limit_) {
        limit_ = next;
        ++scale_downs;
      }
      before_up_ = -1;
    }
  }

  if (++since_decision_ < o_.decide_every) return limit_;
  since_decision_ = 0;
  const double r = periods_acc_ ? double(throttled_acc_) / periods_acc_ : 0.0;
  last_ratio_ = r;
  const double demand = span_acc_ > 0 ? (used_acc_ + throttled_s_acc_) / span_acc_ : 0;
  periods_acc_ = throttled_acc_ = 0;
  used_acc_ = throttled_s_acc_ = span_acc_ = 0;
  margin_ = std::max(0.0, margin_ + o_.margin_gain * (r - o_.target));
  const bool fast_upped = std::exchange(fast_up_in_interval_, false);
  const double decided_from = limit_;
  if (r > trigger) {
    // A fast scale-up in this interval already answered its throttling.
    if (!fast_upped) {
      limit_ *= 1.0 + (r - trigger);
      if (o_.demand_estimate) limit_ = std::max(limit_, demand);
      ++scale_ups;
    }
  } else {
    double mx = 0, sum = 0, sq = 0, sxy = 0;
    const double n = static_cast<double>(usage_.size());
    for (size_t i = 0; i < usage_.size(); ++i) {
      const double u = usage_[i];
      mx = std::max(mx, u);
      sum += u;
      sq += u * u;
      sxy += (static_cast<double>(i) - (n - 1) / 2) * u;
    }
    const double mean = sum / n;
    double sd = std::sqrt(std::max(0.0, sq / n - mean * mean));
    double base = o_.from_peak ? mx : mean;
    const bool trend = !o_.from_peak && o_.trend_guard && usage_.size() >= 3;
    bool rising = false;
    if (trend) {
      // A least-squares line through the window: its value at the newest sample follows a ramp
      // in either direction (the window's mean lags it by half the window), and the residuals'
      // stdev is the noise alone, not the ramp. A rising line is followed one interval ahead,
      // where the load will be before the next decision. Never below the last interval's mean.
      const double sxx = n * (n * n - 1) / 12;  // sum of (i - centre)^2
      const double slope = sxy / sxx;
      rising = slope > 0;
      const double ahead = rising ? o_.decide_every : 0;  // samples past the newest one
      base = mean + slope * ((n - 1) / 2 + ahead);
      sd = std::sqrt(std::max(0.0, sq / n - mean * mean - slope * slope * sxx / n));
      const size_t k = std::min(usage_.size(), static_cast<size_t>(o_.decide_every));
      double recent = 0;
      for (size_t i = usage_.size() - k; i < usage_.size(); ++i) recent += usage_[i];
      base = std::max(base, recent / k);
    }
    const double u = base + margin_ * sd;
    if (rising && u > limit_) {
      // The load is heading above the limit: raise it before the throttling does.
      limit_ = u;
      ++scale_ups;
    } else if (u <= o_.down_headroom * limit_) {
      const double next = std::max(o_.max_down_step * limit_, u);
      if (next < limit_) {
        before_down_ = limit_;
        down_periods_ = down_throttled_ = 0;
        down_age_ = 0;
        limit_ = next;
        ++scale_downs;
      }
    }
  }
  limit_ = std::clamp(limit_, o_.min_cores, o_.max_cores);
  // A decision that moved the limit takes over from an unrepaid fast scale-up; one that held it
  // leaves the repayment to the next unthrottled sample.
  if (limit_ != decided_from) before_up_ = -1;
  return limit_;
}

// ---------------------------------------------------------------------------------------------
// HPA-style

HpaController::HpaController(HpaOptions o) : o_(o), limit_(o.initial_cores) {}

double HpaController::OnSample(const CpuSample& s) {
  if (!have_prev_) {
    have_prev_ = true;
    prev_ = sec_start_ = s;
    last_decision_ = s.t;
    return limit_;
  }
  prev_ = s;
  if (s.t - sec_start_.t >= 1.0) {
    const double cores =
        CounterDelta(s.stat.usage_usec, sec_start_.stat.usage_usec) / 1e6 / (s.t - sec_start_.t);
    per_second_.emplace_back(s.t, cores);
    sec_start_ = s;
  }
  while (!per_second_.empty() && per_second_.front().first < s.t - o_.window_s) {
    per_second_.pop_front();
  }
  if (s.t - last_decision_ >= o_.interval_s && !per_second_.empty()) {
    last_decision_ = s.t;
    double mx = 0;
    for (auto& [t, c] : per_second_) mx = std::max(mx, c);
    const double next = std::clamp(mx / o_.utilization_target, o_.min_cores, o_.max_cores);
    if (next > limit_) ++scale_ups;
    if (next < limit_) ++scale_downs;
    limit_ = next;
  }
  return limit_;
}

double CaptainDescentSeconds(const CaptainOptions& o, double sample_interval_s) {
  if (!(o.initial_cores > o.min_cores && o.min_cores > 0 && o.max_down_step > 0 &&
        o.max_down_step < 1)) {
    return 0;
  }
  const double steps =
      std::ceil(std::log(o.min_cores / o.initial_cores) / std::log(o.max_down_step) - 1e-9);
  return steps * o.decide_every * sample_interval_s;
}

// ---------------------------------------------------------------------------------------------
// Tower

Tower::Tower(TowerOptions o)
    : o_(std::move(o)), cells_(o_.rate_buckets * o_.targets.size()), rng_(o_.seed) {
  for (size_t a = 1; a < o_.targets.size(); ++a) {
    if (std::abs(o_.targets[a] - o_.initial_target) <
        std::abs(o_.targets[initial_] - o_.initial_target)) {
      initial_ = a;
    }
  }
}

size_t Tower::Bucket(double rate) const {
  if (!(rate >= o_.rate_base)) return 0;
  const double b = 1 + std::floor(std::log2(rate / o_.rate_base));
  return std::min<size_t>(static_cast<size_t>(b), o_.rate_buckets - 1);
}

double Tower::AtBucketRate(double alloc_fraction, double rate) const {
  const size_t b = Bucket(rate);
  if (!o_.rate_scaled_cost || b == 0 || !(rate > 0)) return alloc_fraction;
  const double middle = o_.rate_base * std::exp2(static_cast<double>(b) - 0.5);
  return alloc_fraction * std::clamp(middle / rate, 0.5, 2.0);
}

double Tower::Estimate(size_t bucket, size_t action) const {
  const size_t A = o_.targets.size();
  const Cell& c = cells_[bucket * A + action];
  if (c.n > 0) return c.cost;
  const double e = Prior(bucket, action);
  // While every target tried here missed the SLO or came close to it (cost >= 1: the guard's
  // term), the one just below the lowest tried is the next to try: a lower target never needs
  // less CPU, so it is the way back to headroom.
  size_t lowest = A;
  const double best = BestSeen(bucket, &lowest);
  if (lowest < A && action + 1 == lowest && best >= 1.0) return std::min(e, best - 1e-6);
  return e;
}

double Tower::BestSeen(size_t bucket, size_t* lowest) const {
  const size_t A = o_.targets.size();
  double best = -1;
  for (size_t a = A; a-- > 0;) {
    const Cell& o = cells_[bucket * A + a];
    if (o.n == 0) continue;
    if (best < 0 || o.cost < best) best = o.cost;
    if (lowest) *lowest = a;
  }
  return best;
}

double Tower::Prior(size_t bucket, size_t action) const {
  const size_t A = o_.targets.size();
  if (o_.probe_up && action > 0) {
    // The next target above the highest one tried here, when that one met the SLO.
    const Cell& below = cells_[bucket * A + action - 1];
    bool higher_seen = false;
    for (size_t a = action + 1; a < A; ++a) higher_seen |= cells_[bucket * A + a].n > 0;
    if (below.n > 0 && below.cost < 2.0 && !higher_seen) return BestSeen(bucket) - 1e-6;
  }
  // Nearest seen bucket for this action.
  for (size_t d = 1; d < static_cast<size_t>(o_.rate_buckets); ++d) {
    for (long b : {long(bucket) - long(d), long(bucket) + long(d)}) {
      if (b < 0 || b >= o_.rate_buckets) continue;
      const Cell& o = cells_[b * A + action];
      if (o.n > 0) return o.cost;
    }
  }
  // Never seen anywhere: worse than the best seen in this bucket, so only exploration tries it;
  // in a bucket with nothing seen, the initial target first, then the nearer to it the better.
  const double best = BestSeen(bucket);
  const double from_initial = std::abs(double(action) - double(initial_)) * 1e-3;
  return (best < 0 ? 1.0 : best + 1.0) + from_initial;
}

size_t Tower::Greedy(size_t bucket) const {
  size_t best = 0;
  double bc = Estimate(bucket, 0);
  for (size_t a = 1; a < o_.targets.size(); ++a) {
    const double c = Estimate(bucket, a);
    if (c < bc) {
      bc = c;
      best = a;
    }
  }
  return best;
}

size_t Tower::Choose(double rate) {
  ++decisions_;
  const size_t b = Bucket(rate);
  const size_t g = Greedy(b);
  // Exploration tries a neighbour of what was learned. A greedy choice with nothing learned
  // behind it (a new load level's initial target, or the step down past a miss) is taken as it
  // is: a neighbour tried first would take the bucket's only learned cell, and greedy would
  // stay there, so where a load level settles would be decided by one random draw.
  if (cells_[b * o_.targets.size() + g].n == 0) return g;
  std::uniform_real_distribution<double> u(0, 1);
  if (u(rng_) >= o_.explore) return g;
  ++explorations_;
  const bool can_down = g > 0, can_up = g + 1 < o_.targets.size();
  if (can_down && can_up) return u(rng_) < 0.5 ? g - 1 : g + 1;
  return can_up ? g + 1 : (can_down ? g - 1 : g);
}

void Tower::Observe(double rate, size_t action, double cost) {
  if (action >= o_.targets.size()) return;
  Cell& c = cells_[Bucket(rate) * o_.targets.size() + action];
  c.cost = c.n == 0 ? cost : (1 - o_.learning) * c.cost + o_.learning * cost;
  ++c.n;
}

double Tower::Cost(double alloc_fraction, double p99_ms, double slo_ms, double slo_guard) {
  if (p99_ms <= slo_ms) {
    const double a = std::clamp(alloc_fraction, 0.0, 1.0);
    const double g = slo_ms * slo_guard;
    return p99_ms > g && slo_guard < 1 ? a + (p99_ms - g) / (slo_ms - g) : a;
  }
  return 2.0 + std::min(1.0, p99_ms / slo_ms - 1.0);
}

Status Tower::Save() const {
  if (o_.state_path.empty()) return Status::Ok();
  nlohmann::json j;
  j["format"] = "overcast-tower-1";
  j["targets"] = o_.targets;
  j["rate_base"] = o_.rate_base;
  j["rate_buckets"] = o_.rate_buckets;
  j["decisions"] = decisions_;
  auto& cells = j["cells"] = nlohmann::json::array();
  for (const Cell& c : cells_) cells.push_back({c.cost, c.n});
  const std::string dir = DirName(o_.state_path);
  if (!dir.empty()) OC_RETURN_IF_ERROR(MakeDirs(dir));
  return WriteFileAtomic(o_.state_path, j.dump());
}

Status Tower::Load() {
  if (o_.state_path.empty() || !std::filesystem::exists(o_.state_path)) return Status::Ok();
  std::string text;
  OC_RETURN_IF_ERROR(ReadFile(o_.state_path, &text));
  auto bad = [&](const std::string& w) {
    return InvalidArgument("tower state " + o_.state_path + ": " + w);
  };
  auto j = nlohmann::json::parse(text, nullptr, false);
  if (j.is_discarded() || !j.is_object()) return bad("not JSON");
  try {
    if (j.at("format") != "overcast-tower-1") return bad("unknown format");
    if (j.at("targets").get<std::vector<double>>() != o_.targets ||
        j.at("rate_buckets").get<int>() != o_.rate_buckets ||
        j.at("rate_base").get<double>() != o_.rate_base) {
      return bad("saved with other targets or buckets; delete it to start afresh");
    }
    const auto& cells = j.at("cells");
    if (cells.size() != cells_.size()) return bad("wrong number of cells");
    for (size_t i = 0; i < cells_.size(); ++i) {
      cells_[i].cost = cells[i].at(0).get<double>();
      cells_[i].n = cells[i].at(1).get<uint64_t>();
    }
    decisions_ = j.value("decisions", uint64_t{0});
    // A restarted Tower goes on with fresh draws instead of replaying the exploration of the
    // run that saved the table, decision for decision.
    rng_.seed(o_.seed ^ (decisions_ * 0x9e3779b97f4a7c15ULL));
  } catch (const std::exception& e) {
    return bad(e.what());
  }
  return Status::Ok();
}

}  // namespace overcast::serve
