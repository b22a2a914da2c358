// Algorithms trained end to end in one process (thread backend, embedded parameter server) on
// small synthetic datasets whose optimum is known.
#include <algorithm>
#include <array>
#include <cmath>
#include <fstream>
#include <random>
#include <sstream>

#include <gtest/gtest.h>

#include "algo/metrics.h"
#include "algo/model.h"
#include "data/load.h"
#include "data/test_util.h"
#include "ps/server.h"
#include "runtime/coordinator.h"

namespace overcast::runtime {
namespace {

using data::testing::TempDir;

// Writes `rows` LIBSVM lines from `gen` (which returns "label idx:val ...") and loads them.
template <typename Gen>
void MakeDataset(const TempDir& dir, const std::string& name, size_t rows, size_t test_rows,
                 Gen gen, const std::string& task = "auto",
                 data::Format format = data::Format::kLibsvm) {
  std::ostringstream train, test;
  std::mt19937_64 rng(42);
  for (size_t i = 0; i < rows; ++i) train << gen(rng) << "\n";
  for (size_t i = 0; i < test_rows; ++i) test << gen(rng) << "\n";
  auto store = data::NewLocalStore(dir.path() + "/store");
  data::LoadOptions o;
  o.input = dir.Write(name + ".train", train.str());
  o.test_input = dir.Write(name + ".test", test.str());
  o.dataset = name;
  o.task = task;
  o.format = format;
  o.partition_rows = 4096;
  auto r = data::LoadDataset(*store, o);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
}

TrainOptions Options(const TempDir& dir, const std::string& dataset, const std::string& model) {
  TrainOptions o;
  o.store = dir.path() + "/store";
  o.dataset = dataset;
  o.model = model;
  o.backend = "threads";
  o.workers = 2;
  o.eval_every_seconds = 0;
  o.ps_shards = 2;
  return o;
}

TEST(TrainTest, LinregRecoversTheGeneratingWeights) {
  TempDir dir;
  // y = 0.5 + 2 x0 - 3 x1 + 1 x2 + N(0, 0.1^2): the least-squares optimum is the truth, and the
  // test RMSE of the truth is the noise level.
  std::normal_distribution<double> noise(0, 0.1);
  std::uniform_real_distribution<double> u(-1, 1);
  MakeDataset(dir, "lin", 20000, 4000, [&](std::mt19937_64& rng) {
    double x0 = u(rng), x1 = u(rng), x2 = u(rng);
    double y = 0.5 + 2 * x0 - 3 * x1 + x2 + noise(rng);
    std::ostringstream s;
    s << y << " 1:" << x0 << " 2:" << x1 << " 3:" << x2;
    return s.str();
  }, "regression");
  auto o = Options(dir, "lin", "linreg");
  o.epochs = 5;
  o.params = {"lr=0.1", "optimizer=adagrad", "batch=32"};
  auto r = Train(o);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  ASSERT_TRUE(r->test.rmse);
  EXPECT_LT(*r->test.rmse, 0.1 * 1.05);  // within 5% of the noise level
  const auto& w = r->model.tables.at("w");
  ASSERT_EQ(w.rows, 4u);
  EXPECT_NEAR(w.data[0], 2.0, 0.03);
  EXPECT_NEAR(w.data[1], -3.0, 0.03);
  EXPECT_NEAR(w.data[2], 1.0, 0.03);
  EXPECT_NEAR(w.data[3], 0.5, 0.03);  // the bias row
  EXPECT_EQ(r->rows, 5u * 20000u);
  EXPECT_EQ(r->worker_restarts, 0u);
}

// Regression test: sync barriers were named by a per-task counter that diverged between tasks
// whose shards differ in size, and steps per epoch came from epoch 0's shards only: both hung.
// Then: tasks whose shards differ in size take every batch; the shorter ones take empty steps.
TEST(TrainTest, SyncModeTakesTheSameStepsOnEveryTask) {
  TempDir dir;
  std::normal_distribution<double> noise(0, 0.1);
  std::uniform_real_distribution<double> u(-1, 1);
  MakeDataset(dir, "lin", 21000, 2000, [&](std::mt19937_64& rng) {
    double x0 = u(rng);
    std::ostringstream s;
    s << 1 + 2 * x0 + noise(rng) << " 1:" << x0;
    return s.str();
  }, "regression");
  auto o = Options(dir, "lin", "linreg");
  o.epochs = 3;
  o.sync = true;
  o.params = {"lr=0.1", "batch=32"};
  auto r = Train(o);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_LT(*r->test.rmse, 0.11);
  // Every full batch of every shard, in each of the 3 epochs: only each shard's last partial
  // batch (under 32 rows, 2 shards) is left out. Sync mode once capped every task at the
  // smallest possible shard's steps: 52,224 of the 63,000 rows here.
  EXPECT_EQ(r->rows % 32, 0u);
  EXPECT_GE(r->rows, 3u * (21000u - 2 * 31));
  EXPECT_LE(r->rows, 3u * 21000u);
}

TEST(TrainTest, StalenessBoundKeepsWorkersTogether) {
  TempDir dir;
  std::uniform_real_distribution<double> u(-1, 1);
  MakeDataset(dir, "lin", 20000, 2000, [&](std::mt19937_64& rng) {
    double x0 = u(rng);
    std::ostringstream s;
    s << 1 + 2 * x0 << " 1:" << x0;
    return s.str();
  }, "regression");
  auto o = Options(dir, "lin", "linreg");
  o.epochs = 3;
  o.staleness = 2;
  o.params = {"lr=0.1", "batch=32"};
  auto r = Train(o);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->rows, 3u * 20000u);
  EXPECT_LT(*r->test.rmse, 0.02);
}

// A job paused at 2 of its 5 epochs keeps its tables and progress in the servers; trained
// again with resume_job it goes on from there (the tuner's ASHA promotions) and ends with the
// rows and the quality of one uninterrupted run.
TEST(TrainTest, PauseThenResumeGoesOnFromTheServers) {
  TempDir dir;
  std::normal_distribution<double> noise(0, 0.1);
  std::uniform_real_distribution<double> u(-1, 1);
  MakeDataset(dir, "lin", 20000, 2000, [&](std::mt19937_64& rng) {
    double x0 = u(rng), x1 = u(rng);
    std::ostringstream s;
    s << 0.5 + 2 * x0 - 3 * x1 + noise(rng) << " 1:" << x0 << " 2:" << x1;
    return s.str();
  }, "regression");
  auto server = ps::Server::Start(ps::ServerOptions{});
  ASSERT_TRUE(server.ok()) << server.status().ToString();
  auto o = Options(dir, "lin", "linreg");
  o.epochs = 5;
  o.params = {"lr=0.1", "optimizer=adagrad", "batch=32"};
  o.servers = {(*server)->address()};

  auto missing = o;
  missing.servers.clear();
  missing.pause_at_epochs = 2;
  EXPECT_EQ(Train(missing).status().code(), Code::kInvalidArgument);  // needs lasting servers

  o.pause_at_epochs = 2;
  auto first = Train(o);
  ASSERT_TRUE(first.ok()) << first.status().ToString();
  EXPECT_EQ(first->stopped_by, "pause");
  // Each of the 2 tasks stops at the first batch that completes its share (20000 rows).
  EXPECT_GE(first->rows, 2u * 20000u);
  EXPECT_LT(first->rows, 2u * 20000u + 2u * 32u);

  o.pause_at_epochs = 0;
  o.resume_job = first->job;
  auto rest = Train(o);
  ASSERT_TRUE(rest.ok()) << rest.status().ToString();
  EXPECT_EQ(rest->job, first->job);
  EXPECT_EQ(rest->stopped_by, "epochs");
  EXPECT_EQ(rest->rows, 5u * 20000u);  // counted from the job's start: nothing trained twice
  ASSERT_TRUE(rest->test.rmse);
  EXPECT_LT(*rest->test.rmse, 0.1 * 1.05);
  (*server)->Stop();
}

TEST(TrainTest, LogregMatchesTheBayesClassifier) {
  TempDir dir;
  // P(y=1|x) = sigmoid(1.5 x0 - 2 x1 + 0.3 x2 - 0.2): the generating model is the optimum, so
  // the trained model's test log-loss must be close to the true model's on the same rows.
  std::uniform_real_distribution<double> u(-1, 1), coin(0, 1);
  std::vector<std::tuple<double, double, double, int>> test_rows;
  auto truth = [](double a, double b, double c) {
    return 1 / (1 + std::exp(-(1.5 * a - 2 * b + 0.3 * c - 0.2)));
  };
  MakeDataset(dir, "bin", 30000, 5000, [&](std::mt19937_64& rng) {
    double a = u(rng), b = u(rng), c = u(rng);
    int y = coin(rng) < truth(a, b, c) ? 1 : 0;
    test_rows.emplace_back(a, b, c, y);
    std::ostringstream s;
    s << y << " 1:" << a << " 2:" << b << " 3:" << c;
    return s.str();
  });
  double ll_true = 0;
  for (size_t i = 30000; i < test_rows.size(); ++i) {
    auto [a, b, c, y] = test_rows[i];
    double p = truth(a, b, c);
    ll_true += y ? -std::log(p) : -std::log(1 - p);
  }
  ll_true /= 5000;
  auto o = Options(dir, "bin", "logreg");
  o.epochs = 4;
  o.params = {"lr=0.1", "batch=32"};
  auto r = Train(o);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  ASSERT_TRUE(r->test.logloss && r->test.auc && r->test.accuracy);
  EXPECT_LT(*r->test.logloss, ll_true * 1.01) << "true model: " << ll_true;
  EXPECT_GT(*r->test.auc, 0.75);
}

TEST(TrainTest, SoftmaxSeparatesThreeClassesAndL1ZeroesNoise) {
  TempDir dir;
  // Three classes around centres in features 1-2; features 3..20 are pure noise. With L1 under
  // FTRL the noise weights end at exactly zero.
  std::normal_distribution<double> n(0, 0.3);
  std::uniform_int_distribution<int> cls(0, 2);
  std::uniform_real_distribution<double> u(-1, 1);  // zero-mean noise: its optimal weight is 0
  const double cx[3] = {0, 2, 0}, cy[3] = {0, 0, 2};
  MakeDataset(dir, "three", 15000, 3000, [&](std::mt19937_64& rng) {
    int c = cls(rng);
    std::ostringstream s;
    s << c << " 1:" << cx[c] + n(rng) << " 2:" << cy[c] + n(rng);
    for (int j = 3; j <= 20; ++j) s << " " << j << ":" << u(rng);
    return s.str();
  });
  auto o = Options(dir, "three", "softmax");
  o.epochs = 3;
  o.params = {"optimizer=ftrl", "lr=0.5", "l1=5", "batch=32"};
  o.average_tail = 0;  // an average of snapshots is not sparse: check the iterate itself
  auto r = Train(o);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  ASSERT_TRUE(r->test.accuracy);
  EXPECT_GT(*r->test.accuracy, 0.99);
  const auto& w = r->model.tables.at("w");
  int zeros = 0;
  for (uint64_t j = 2; j < 20; ++j)
    for (uint32_t c = 0; c < 3; ++c) zeros += w.row(j)[c] == 0.0f;
  EXPECT_GE(zeros, 18 * 3 * 9 / 10);
}

TEST(TrainTest, TargetMetricStopsEarlyAndModelRoundTrips) {
  TempDir dir;
  std::normal_distribution<double> n(0, 0.3);
  std::uniform_int_distribution<int> cls(0, 1);
  MakeDataset(dir, "easy", 20000, 2000, [&](std::mt19937_64& rng) {
    int c = cls(rng);
    std::ostringstream s;
    s << c << " 1:" << (c ? 1 : -1) + n(rng);
    return s.str();
  });
  auto o = Options(dir, "easy", "logreg");
  o.epochs = 200;
  o.eval_every_seconds = 0.2;
  o.target = "accuracy>=0.99";
  auto r = Train(o);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->stopped_by, "target");
  EXPECT_LT(r->epochs, 200);
  EXPECT_GE(*r->test.accuracy, 0.99);
  // The curve holds every evaluation in time order; the first to meet the target is the result.
  ASSERT_FALSE(r->curve.empty());
  EXPECT_EQ(r->curve.size(), r->evaluations);
  for (size_t i = 1; i < r->curve.size(); ++i) {
    EXPECT_GE(r->curve[i].seconds, r->curve[i - 1].seconds);
    EXPECT_GE(r->curve[i].epochs, r->curve[i - 1].epochs);
  }
  auto met = std::find_if(r->curve.begin(), r->curve.end(),
                          [](const CurvePoint& p) { return *p.test.accuracy >= 0.99; });
  ASSERT_NE(met, r->curve.end());
  EXPECT_EQ(*met->test.accuracy, *r->test.accuracy);
  EXPECT_LE(met->seconds, r->train_seconds);
  const nlohmann::json j = r->ToJson();
  ASSERT_EQ(j["curve"].size(), r->curve.size());
  EXPECT_EQ(j["curve"][0]["test_accuracy"].get<double>(), *r->curve[0].test.accuracy);

  const std::string path = dir.path() + "/m.ocm";
  ASSERT_TRUE(algo::SaveModel(path, r->model).ok());
  auto back = algo::LoadModel(path);
  ASSERT_TRUE(back.ok()) << back.status().ToString();
  EXPECT_EQ(back->algorithm, "logreg");
  EXPECT_EQ(back->tables.at("w").data, r->model.tables.at("w").data);
  EXPECT_EQ(back->meta["params"], r->model.meta["params"]);
  // One flipped byte anywhere is caught by the checksum.
  std::string bytes = algo::EncodeModel(r->model);
  bytes[bytes.size() / 2] ^= 1;
  EXPECT_FALSE(algo::DecodeModel(bytes, "x").ok());
}

TEST(TrainTest, BadInputIsInvalidArgument) {
  TempDir dir;
  MakeDataset(dir, "tiny", 100, 10, [](std::mt19937_64& rng) {
    return std::string(rng() % 2 ? "1 1:1" : "0 2:1");
  });
  auto check = [&](TrainOptions o, const std::string& needle) {
    auto r = Train(o);
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.status().code(), Code::kInvalidArgument) << r.status().ToString();
    EXPECT_NE(r.status().message().find(needle), std::string::npos) << r.status().message();
    EXPECT_EQ(r.status().message().find('\n'), std::string::npos);
  };
  auto o = Options(dir, "tiny", "logreg");
  auto bad = o;
  bad.dataset = "nope";
  check(bad, "not found");
  bad = o;
  bad.model = "svm";
  check(bad, "unknown model");
  bad = o;
  bad.params = {"factors=3"};
  check(bad, "no such parameter");
  bad = o;
  bad.params = {"lr=fast"};
  check(bad, "expected a number");
  bad = o;
  bad.params = {"optimizer=lbfgs"};
  check(bad, "not one of");
  bad = o;
  bad.model = "softmax";
  check(bad, "multiclass");
}

TEST(TrainTest, KmeansFindsSeparatedBlobs) {
  TempDir dir;
  // Five blobs in 4 dimensions, 8 apart, noise sigma 0.5 per dimension: the optimal objective
  // (mean squared distance to the nearest centre) is about 4 * 0.25 = 1.0.
  std::normal_distribution<double> n(0, 0.5);
  std::uniform_int_distribution<int> blob(0, 4);
  MakeDataset(dir, "blobs", 20000, 4000, [&](std::mt19937_64& rng) {
    int b = blob(rng);
    std::ostringstream s;
    s << b;
    for (int j = 0; j < 4; ++j) s << " " << j + 1 << ":" << (j == b % 4 ? 8.0 * (1 + b / 4) : 0.0) + n(rng);
    return s.str();
  });
  auto o = Options(dir, "blobs", "kmeans");
  o.epochs = 2;
  o.params = {"k=5"};
  auto r = Train(o);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  ASSERT_TRUE(r->test.objective);
  EXPECT_NEAR(*r->test.objective, 1.0, 0.05);
}

TEST(TrainTest, MfReachesTheNoiseLevelOfALowRankMatrix) {
  TempDir dir;
  // ratings = 3 + b_u + b_i + <p_u, q_i> (rank 3) + N(0, 0.25^2), 300 users x 200 items.
  std::mt19937_64 g(5);
  std::normal_distribution<double> f(0, 0.6), bias(0, 0.3), noise(0, 0.25);
  std::vector<std::array<double, 4>> users(300), items(200);
  for (auto& u : users) u = {bias(g), f(g), f(g), f(g)};
  for (auto& i : items) i = {bias(g), f(g), f(g), f(g)};
  std::uniform_int_distribution<int> pu(0, 299), pi(0, 199);
  MakeDataset(dir, "ratings", 40000, 5000, [&](std::mt19937_64& rng) {
    int u = pu(rng), i = pi(rng);
    const auto &a = users[u], &b = items[i];
    double y = 3 + a[0] + b[0] + a[1] * b[1] + a[2] * b[2] + a[3] * b[3] + noise(rng);
    std::ostringstream s;
    s << u + 1 << "," << i + 1 << "," << y << ",0";
    return s.str();
  }, "regression", data::Format::kRatings);
  auto o = Options(dir, "ratings", "mf");
  o.epochs = 30;
  o.params = {"rank=3"};
  auto r = Train(o);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  ASSERT_TRUE(r->test.rmse);
  std::printf("mf: test rmse %.4f (noise 0.25)\n", *r->test.rmse);
  EXPECT_LT(*r->test.rmse, 0.25 * 1.10);
}

TEST(TrainTest, FmLearnsPairwiseInteractionsThatLogregCannot) {
  TempDir dir;
  // y = 1 when features a and b (one of 10 each) agree in parity: no linear model separates it.
  std::uniform_int_distribution<int> pick(0, 9);
  std::uniform_real_distribution<double> coin(0, 1);
  MakeDataset(dir, "pairs", 30000, 5000, [&](std::mt19937_64& rng) {
    int a = pick(rng), b = pick(rng);
    double p = (a % 2) == (b % 2) ? 0.9 : 0.1;
    std::ostringstream s;
    s << (coin(rng) < p ? 1 : 0) << " " << a + 1 << ":1 " << b + 11 << ":1";
    return s.str();
  });
  auto o = Options(dir, "pairs", "fm");
  o.epochs = 5;
  o.params = {"factors=4", "lr=0.1", "init_std=0.1"};
  auto fm = Train(o);
  ASSERT_TRUE(fm.ok()) << fm.status().ToString();
  o.model = "logreg";
  o.params = {"lr=0.1"};
  auto lr = Train(o);
  ASSERT_TRUE(lr.ok()) << lr.status().ToString();
  std::printf("fm logloss %.4f, logreg %.4f (Bayes: 0.325)\n", *fm->test.logloss, *lr->test.logloss);
  EXPECT_LT(*fm->test.logloss, 0.36);
  EXPECT_GT(*lr->test.logloss, 0.65);
}

TEST(TrainTest, LogregWithCrossesLearnsPairwiseInteractions) {
  TempDir dir;
  // The parity task above with a in features 1-10 and b in 17-26: with field_bits 4, 0-based
  // ids 0-9 are field 0 and 16-25 field 1, so cross=0x1 gives each (a, b) a weight of its own.
  std::uniform_int_distribution<int> pick(0, 9);
  std::uniform_real_distribution<double> coin(0, 1);
  auto row = [](int y, int a, int b) {
    return std::to_string(y) + " " + std::to_string(a + 1) + ":1 " + std::to_string(b + 17) + ":1";
  };
  MakeDataset(dir, "xpairs", 30000, 5000, [&](std::mt19937_64& rng) {
    int a = pick(rng), b = pick(rng);
    double p = (a % 2) == (b % 2) ? 0.9 : 0.1;
    return row(coin(rng) < p ? 1 : 0, a, b);
  });
  auto o = Options(dir, "xpairs", "logreg");
  o.epochs = 5;
  o.params = {"lr=0.1"};
  auto plain = Train(o);
  ASSERT_TRUE(plain.ok()) << plain.status().ToString();
  o.params = {"lr=0.1", "cross=0x1", "field_bits=4", "cross_bits=12"};
  auto crossed = Train(o);
  ASSERT_TRUE(crossed.ok()) << crossed.status().ToString();
  std::printf("logreg crossed logloss %.4f, plain %.4f (Bayes: 0.325)\n",
              *crossed->test.logloss, *plain->test.logloss);
  EXPECT_LT(*crossed->test.logloss, 0.36);
  EXPECT_GT(*plain->test.logloss, 0.65);

  // The exported model crosses the rows it scores the same way: a saved and reloaded model
  // gives P(y=1) near 0.9 when the parities agree and near 0.1 when they do not.
  const std::string path = dir.path() + "/x.ocm";
  ASSERT_TRUE(algo::SaveModel(path, crossed->model).ok());
  auto scorer = algo::Scorer::Load(path);
  ASSERT_TRUE(scorer.ok()) << scorer.status().ToString();
  EXPECT_EQ(scorer->model().tables.at("w").rows, 26u + 1 + 4096);
  const float labels[2] = {0, 0};
  const uint64_t offsets[3] = {0, 2, 4};
  const uint32_t ids[4] = {2, 20, 2, 21};  // a=2 with b=4 (agree), a=2 with b=5 (disagree)
  const float values[4] = {1, 1, 1, 1};
  data::Minibatch mb;
  mb.labels = labels;
  mb.offsets = offsets;
  mb.ids = ids;
  mb.values = values;
  float out[2];
  scorer->Predict(mb, out);
  EXPECT_GT(out[0], 0.8f);
  EXPECT_LT(out[1], 0.2f);
}

TEST(MetricsTest, AucClosedForms) {
  EXPECT_DOUBLE_EQ(algo::Auc({0.1f, 0.4f, 0.35f, 0.8f}, {0, 0, 1, 1}), 0.75);
  EXPECT_DOUBLE_EQ(algo::Auc({0.5f, 0.5f}, {0, 1}), 0.5);
  EXPECT_DOUBLE_EQ(algo::Auc({0.1f, 0.9f}, {0, 1}), 1.0);
}

TEST(ParamsTest, DefaultsAndOverrides) {
  auto specs = algo::CommonParams(0.05, "adagrad", 64);
  auto p = algo::Params::Parse(specs, {"lr=0.5", "batch=8"}, "m");
  ASSERT_TRUE(p.ok());
  EXPECT_DOUBLE_EQ(p->Float("lr"), 0.5);
  EXPECT_EQ(p->Int("batch"), 8);
  EXPECT_EQ(p->Choice("optimizer"), "adagrad");
  auto again = algo::Params::FromJson(specs, p->ToJson(), "m");
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(again->ToJson(), p->ToJson());
  EXPECT_FALSE(algo::Params::Parse(specs, {"batch=0"}, "m").ok());
  EXPECT_FALSE(algo::Params::Parse(specs, {"batch=1.5"}, "m").ok());
  EXPECT_FALSE(algo::Params::Parse(specs, {"lr"}, "m").ok());
}

}  // namespace
}  // namespace overcast::runtime
