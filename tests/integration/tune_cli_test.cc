// `overcast tune` end to end through the real binary: a grid with a diverging learning rate,
// early stopping, the JSON result, and bad input.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <random>

#include "tests/integration/subprocess.h"

namespace overcast {
namespace {
using testing::OvercastBin;
using testing::ReadAll;
using testing::Subprocess;
using testing::TempPath;

// A separable-ish binary problem: label = [w . x + noise > 0] over 50 sparse features.
void WriteData(const std::string& path, int rows, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<double> n(0, 1);
  std::vector<double> w(50);
  for (auto& v : w) v = n(rng);
  std::ofstream f(path);
  for (int r = 0; r < rows; ++r) {
    std::vector<std::pair<int, double>> x;
    double dot = 0;
    for (int j = 0; j < 50; ++j) {
      if (rng() % 4) continue;
      double v = n(rng);
      x.emplace_back(j + 1, v);
      dot += w[j] * v;
    }
    f << (dot + 0.3 * n(rng) > 0 ? 1 : 0);
    for (auto& [j, v] : x) f << ' ' << j << ':' << v;
    f << '\n';
  }
}

struct CmdResult {
  int code;
  std::string out, err;
};

CmdResult Overcast(const std::string& dir, std::vector<std::string> args) {
  args.insert(args.begin(), OvercastBin());
  static int n = 0;
  std::string out = dir + "/out" + std::to_string(n), err = dir + "/err" + std::to_string(n);
  ++n;
  // Subprocess sends both streams to one log; run through sh to split them.
  std::string cmd;
  for (auto& a : args) cmd += "'" + a + "' ";
  cmd += ">" + out + " 2>" + err;
  Subprocess p({"/bin/sh", "-c", cmd}, dir + "/sh.log");
  int code = p.Wait();
  return {code, ReadAll(out), ReadAll(err)};
}

class TuneCli : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = TempPath("tune");
    std::filesystem::create_directories(dir_);
    WriteData(dir_ + "/train.svm", 20000, 3);
    CmdResult r = Overcast(dir_, {"load", "--format", "libsvm", "--input", dir_ + "/train.svm",
                            "--dataset", "toy", "--test-fraction", "0.2", "--store",
                            dir_ + "/store"});
    ASSERT_EQ(r.code, 0) << r.err;
  }
  static std::string dir_;
};
std::string TuneCli::dir_;

TEST_F(TuneCli, DivergingTrialsStopAndTheBestIsReturned) {
  CmdResult r = Overcast(dir_, {"tune", "--dataset", "toy", "--model", "logreg", "--store",
                          dir_ + "/store", "--grid", "lr=0.05,0.5,5000;optimizer=sgd",
                          "--epochs", "30", "--workers", "1", "--backend", "threads",
                          "--concurrency", "3", "--eval-every", "0.2", "--early-stop", "none",
                          "--out", dir_ + "/best.ocm", "--json"});
  ASSERT_EQ(r.code, 0) << r.err;
  auto last = r.out.substr(r.out.rfind('\n', r.out.size() - 2) + 1);
  auto j = nlohmann::json::parse(last);
  EXPECT_EQ(j["trials"].get<int>(), 3);
  EXPECT_NE(j["best_params"]["lr"].get<std::string>(), "5000");
  EXPECT_GT(j["worker_seconds"].get<double>(), 0);
  EXPECT_TRUE(j.contains("test_logloss"));
  bool diverged_stopped = false;
  for (auto& t : j["trial_results"]) {
    if (t["params"]["lr"] == "5000") {
      diverged_stopped = t["status"] == "stopped" &&
                         t["reason"].get<std::string>().find("diverged") != std::string::npos;
      EXPECT_LT(t["progress"].get<double>(), 0.7) << "stopped well before its budget";
    }
  }
  EXPECT_TRUE(diverged_stopped) << last;
  EXPECT_TRUE(std::filesystem::exists(dir_ + "/best.ocm"));
}

TEST_F(TuneCli, BadSpacesAreExitTwoWithOneLine) {
  for (std::vector<std::string> bad : {
           std::vector<std::string>{"--grid", "nosuch=1,2"},
           std::vector<std::string>{"--grid", ""},
           std::vector<std::string>{"--random", "lr=log(0,1)", "--trials", "3"},
           std::vector<std::string>{"--grid", "lr=abc"},
       }) {
    std::vector<std::string> args = {"tune", "--dataset", "toy", "--model", "logreg", "--store",
                                     dir_ + "/store", "--epochs", "1", "--backend", "threads"};
    args.insert(args.end(), bad.begin(), bad.end());
    CmdResult r = Overcast(dir_, args);
    EXPECT_EQ(r.code, 2) << bad[1] << ": " << r.err;
    EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
  }
}

}  // namespace
}  // namespace overcast
