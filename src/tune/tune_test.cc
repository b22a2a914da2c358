#include <gtest/gtest.h>

#include <map>

#include <cmath>

#include "tune/early_stop.h"
#include "tune/space.h"

namespace overcast::tune {
namespace {

TEST(Space, GridIsTheCrossProduct) {
  auto g = ParseGrid("lr=0.01,0.1,1; batch=64,256");
  ASSERT_TRUE(g.ok());
  ASSERT_EQ(g->size(), 6u);
  EXPECT_EQ(ToString((*g)[0]), "lr=0.01 batch=64");
  EXPECT_EQ(ToString((*g)[5]), "lr=1 batch=256");
}

TEST(Space, BadGridsAreOneLineErrors) {
  for (const char* bad : {"", "lr", "lr=", "=1,2", "lr=1;lr=2", "lr=1,,2", ";"}) {
    auto g = ParseGrid(bad);
    EXPECT_EQ(g.status().code(), Code::kInvalidArgument) << bad;
    EXPECT_EQ(g.status().message().find('\n'), std::string::npos);
  }
}

TEST(Space, RandomDrawsStayInRangeAndRepeatWithTheSeed) {
  auto r = ParseRandom("lr=log(1e-4,1);batch=int(32,64);opt=choice(sgd,adam);m=uniform(0,1);k=7",
                       200, 5);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  ASSERT_EQ(r->size(), 200u);
  int small_lr = 0;
  for (auto& a : *r) {
    double lr = std::stod(a[0].second);
    EXPECT_GE(lr, 1e-4 * 0.999);
    EXPECT_LE(lr, 1.0);
    small_lr += lr < 1e-2;
    int batch = std::stoi(a[1].second);
    EXPECT_GE(batch, 32);
    EXPECT_LE(batch, 64);
    EXPECT_TRUE(a[2].second == "sgd" || a[2].second == "adam");
    EXPECT_EQ(a[4].second, "7");
  }
  // Log-uniform: half the draws below 1e-2 (the geometric middle).
  EXPECT_NEAR(small_lr, 100, 25);
  EXPECT_EQ(ToString((*ParseRandom("x=uniform(0,1)", 3, 5))[2]),
            ToString((*ParseRandom("x=uniform(0,1)", 3, 5))[2]));
  for (const char* bad : {"lr=log(0,1)", "lr=log(1)", "lr=uniform(2,1)", "lr=foo(1,2)",
                          "lr=int(1.5,3)", "lr=log(a,1)", "lr=log(1,2"}) {
    EXPECT_EQ(ParseRandom(bad, 3, 1).status().code(), Code::kInvalidArgument) << bad;
  }
  EXPECT_EQ(ParseRandom("lr=log(1e-3,1)", 0, 1).status().code(), Code::kInvalidArgument);
}

std::vector<Observation> PowerLaw(double a, double b, double c, int n) {
  std::vector<Observation> v;
  for (int i = 1; i <= n; ++i) {
    double t = static_cast<double>(i) / n;
    v.push_back({t, a + b * std::pow(t, -c)});
  }
  return v;
}

TEST(Curve, RecoversAPowerLawAndExtrapolates) {
  auto pts = PowerLaw(0.3, 0.05, 0.7, 10);
  std::vector<Observation> early(pts.begin(), pts.begin() + 4);  // the first 40%
  auto fit = FitCurve(early);
  ASSERT_TRUE(fit);
  EXPECT_NEAR(fit->At(1.0), 0.35, 0.005);
  EXPECT_FALSE(FitCurve({{0.1, 1}, {0.2, 0.9}}));
}

TEST(EarlyStop, CurveStopsAHopelessTrialAndKeepsTheBest) {
  EarlyStopper s({.policy = "curve", .reference_loss = 0.7});
  auto good = PowerLaw(0.30, 0.02, 0.8, 10), bad = PowerLaw(0.45, 0.02, 0.8, 10);
  std::optional<std::string> stop_good, stop_bad;
  int bad_stopped_at = -1;
  for (int i = 0; i < 10; ++i) {
    if (!stop_good) stop_good = s.Report(0, good[i]);
    if (!stop_bad) {
      stop_bad = s.Report(1, bad[i]);
      if (stop_bad) bad_stopped_at = i;
    }
  }
  EXPECT_FALSE(stop_good);
  ASSERT_TRUE(stop_bad);
  EXPECT_LE(bad_stopped_at, 3) << "stopped soon after warm-up";
  EXPECT_NE(stop_bad->find("curve"), std::string::npos);
}

TEST(EarlyStop, JudgesAPausedTrialOnItsPrediction) {
  EarlyStopper s({.policy = "curve", .reference_loss = 0.7});
  auto good = PowerLaw(0.30, 0.02, 0.8, 10), bad = PowerLaw(0.45, 0.02, 0.8, 10);
  for (int i = 0; i < 2; ++i) EXPECT_FALSE(s.Report(1, bad[i]));
  EXPECT_FALSE(s.Predict(1)) << "two points are too few for a curve";
  EXPECT_FALSE(s.Judge(1));
  EXPECT_FALSE(s.Report(1, bad[2]));  // its warm-up: nothing better seen yet
  ASSERT_TRUE(s.Predict(1));
  EXPECT_NEAR(*s.Predict(1), 0.47, 0.01);
  for (auto& o : good) EXPECT_FALSE(s.Report(0, o));
  s.Complete(0, 0.32);
  auto why = s.Judge(1);  // the paused trial, judged before it would resume
  ASSERT_TRUE(why);
  EXPECT_NE(why->find("curve"), std::string::npos);
  EXPECT_FALSE(s.Judge(0));
}

TEST(CurveOrder, WarmsUpEveryTrialThenResumesTheBestPredictedFirst) {
  CurveScheduler s(0.1, 4);
  for (int t = 0; t < 4; ++t) {
    auto w = s.Next();
    ASSERT_TRUE(w);
    EXPECT_EQ(w->trial, t);
    EXPECT_DOUBLE_EQ(w->until, 0.1);
    EXPECT_FALSE(w->resume);
  }
  EXPECT_FALSE(s.Next());  // all four warm up: nothing to resume yet
  s.Paused(0, 0.30);
  s.Paused(1, 0.20);
  auto a = s.Next();  // one paused so far may resume while the others still warm up
  ASSERT_TRUE(a);
  EXPECT_EQ(a->trial, 1);
  EXPECT_TRUE(a->resume);
  EXPECT_EQ(a->until, 1.0);
  s.Paused(2, std::nullopt);  // too few points for a prediction: after those that have one
  s.Paused(3, 0.25);
  std::vector<int> order;
  while (auto w = s.Next()) order.push_back(w->trial);
  EXPECT_EQ(order, (std::vector<int>{3, 0, 2}));
  EXPECT_FALSE(s.Done());  // four still run
  s.Ended(1);
  s.Ended(3);
  s.Ended(0);
  s.Ended(2);
  EXPECT_TRUE(s.Done());
}

TEST(Schedulers, SkipTrialsAnEarlierRunFinished) {
  CurveScheduler c(0.1, 4);
  c.Skip(0);
  c.Skip(2);
  std::vector<int> started;
  while (auto w = c.Next()) started.push_back(w->trial);
  EXPECT_EQ(started, (std::vector<int>{1, 3}));
  AshaScheduler a(1.0 / 9, 3, 3);
  a.Skip(1);
  a.Skip(2);
  auto w = a.Next();
  ASSERT_TRUE(w);
  EXPECT_EQ(w->trial, 0);
  EXPECT_FALSE(a.Next());
  a.Ended(0);
  EXPECT_TRUE(a.Done());
}

TEST(Asha, PausesAtRungsAndPromotesTheTopThird) {
  // Nine trials, rungs at 1/9 and 1/3; trial t's loss is 0.1 * (t + 1) at every rung (trial 0
  // is the best), run one at a time.
  AshaScheduler s(1.0 / 9, 3, 9);
  ASSERT_EQ(s.rungs().size(), 2u);
  std::vector<int> reached_end;
  double work = 0;  // fractions of the budget run
  std::map<int, double> at;
  while (auto w = s.Next()) {
    const double from = w->resume ? at[w->trial] : 0;
    EXPECT_EQ(w->resume, from > 0);
    work += w->until - from;
    at[w->trial] = w->until;
    if (w->until < 1) s.Paused(w->trial, 0.1 * (w->trial + 1));
    else {
      reached_end.push_back(w->trial);
      s.Ended(w->trial);
    }
  }
  EXPECT_TRUE(s.Done());
  // Rung 0 records 9: the top 3 (trials 0, 1, 2) go to 1/3 as they qualify; rung 1 then holds
  // 3, of which the top one goes to the end.
  EXPECT_EQ(reached_end, std::vector<int>{0});
  EXPECT_EQ(s.RungOf(1), 1);
  EXPECT_EQ(s.RungOf(8), 0);
  EXPECT_NEAR(work, 9.0 / 9 + 3 * (1.0 / 3 - 1.0 / 9) + (1 - 1.0 / 3), 1e-9);  // 2.33 of 9
}

TEST(Asha, WaitsForRunningTrialsAndFinishesASmallSearch) {
  // Two trials, two slots: nothing qualifies for a promotion by the 1/eta rule, so once both
  // paused the best of the highest rung goes on, to the end.
  AshaScheduler s(1.0 / 9, 3, 2);
  auto a = s.Next(), b = s.Next();
  ASSERT_TRUE(a && b);
  EXPECT_FALSE(s.Next());  // no new trial; both run
  EXPECT_FALSE(s.Done());
  s.Paused(a->trial, 0.5);
  EXPECT_FALSE(s.Next());  // b still runs: it may yet qualify
  s.Paused(b->trial, 0.4);
  auto c = s.Next();
  ASSERT_TRUE(c);
  EXPECT_EQ(c->trial, b->trial);
  EXPECT_TRUE(c->resume);
  EXPECT_NEAR(c->until, 1.0 / 3, 1e-9);
  s.Paused(c->trial, 0.3);
  auto d = s.Next();
  ASSERT_TRUE(d);
  EXPECT_EQ(d->trial, b->trial);
  EXPECT_EQ(d->until, 1.0);
  s.Ended(d->trial);
  EXPECT_FALSE(s.Next());
  EXPECT_TRUE(s.Done());
}

TEST(EarlyStop, DivergenceStopsAtOnceWhateverThePolicy) {
  for (const char* policy : {"none", "curve", "asha"}) {
    EarlyStopper s({.policy = policy, .reference_loss = 0.69});
    EXPECT_FALSE(s.Report(0, {0.05, 0.6}));
    auto nan = s.Report(1, {0.05, std::nan("")});
    ASSERT_TRUE(nan);
    EXPECT_NE(nan->find("diverged"), std::string::npos);
    // Far above the start: stopped once it stays there for the patience (3 evaluations).
    EXPECT_FALSE(s.Report(2, {0.05, 5.0}));
    EXPECT_FALSE(s.Report(2, {0.06, 5.0}));
    auto up = s.Report(2, {0.07, 5.0});
    ASSERT_TRUE(up);
    EXPECT_NE(up->find("3 evaluations in a row"), std::string::npos) << *up;
    // A spike that comes back down is not divergence.
    EXPECT_FALSE(s.Report(3, {0.05, 3.0}));
    EXPECT_FALSE(s.Report(3, {0.06, 3.0}));
    EXPECT_FALSE(s.Report(3, {0.07, 0.5}));
    EXPECT_FALSE(s.Report(3, {0.08, 3.0}));
  }
  EXPECT_FALSE(EarlyStopper::Validate({.policy = "median"}).ok());
}

}  // namespace
}  // namespace overcast::tune
