// End to end: the real `overcast load` binary ($OVERCAST_BIN) on small files, checking exit
// status, the file:line:column message, and that a failed load leaves nothing in the store.
#include <sys/wait.h>
#include <zlib.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "common/version.h"
#include "data/test_util.h"

namespace overcast::data {
namespace {

struct CliRun {
  int code = -1;
  std::string out, err;
};

class LoadCliTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const char* bin = std::getenv("OVERCAST_BIN");
    if (!bin || !*bin) GTEST_SKIP() << "OVERCAST_BIN is not set";
    bin_ = bin;
  }

  // Runs `overcast <args>` through the shell (args are quoted by the caller where needed).
  CliRun Overcast(const std::string& args, const std::string& stdin_from = "") {
    const std::string out = dir_.path() + "/stdout", err = dir_.path() + "/stderr";
    std::string cmd = "'" + bin_ + "' " + args + " --store '" + store() + "'" +
                      (stdin_from.empty() ? " </dev/null" : " <'" + stdin_from + "'") + " >'" +
                      out + "' 2>'" + err + "'";
    int status = std::system(cmd.c_str());
    CliRun r;
    r.code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    r.out = Slurp(out);
    r.err = Slurp(err);
    return r;
  }
  static std::string Slurp(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
  }
  std::string store() const { return dir_.path() + "/store"; }
  bool DatasetLeft(const std::string& name) const {
    return std::filesystem::exists(store() + "/datasets/" + name);
  }
  // Loads `contents` as `format` and expects exit 2 with `message` (after "overcast: FILE:").
  void ExpectBad(const std::string& format, const std::string& file, const std::string& contents,
                 const std::string& message, const std::string& extra = "") {
    SCOPED_TRACE(file);
    const std::string path = dir_.Write(file, contents);
    CliRun r = Overcast("load --format " + format + " --input '" + path + "' --dataset bad " + extra);
    EXPECT_EQ(r.code, 2) << r.err;
    EXPECT_NE(r.err.find("overcast: " + path + ":" + message), std::string::npos) << r.err;
    EXPECT_FALSE(DatasetLeft("bad"));
  }

  std::string bin_;
  testing::TempDir dir_;
};

TEST_F(LoadCliTest, EveryBadInputExitsTwoWithLineAndColumnAndLeavesNothing) {
  // Enough good rows before the bad one that partitions have been written and must be removed.
  std::string good;
  for (int i = 0; i < 3000; ++i) good += "1 1:0.5 7:2\n";
  const std::string bad_at = "3001:";
  const std::string p = " --partition-rows 100";
  ExpectBad("libsvm", "label.svm", good + "abc 1:1\n",
            bad_at + "1: expected a numeric label, found \"abc\"", p);
  ExpectBad("libsvm", "zero.svm", good + "1 0:1\n",
            bad_at + "3: expected a feature index >= 1 (LIBSVM indices are 1-based), found \"0\"", p);
  ExpectBad("libsvm", "negative.svm", good + "1 -3:1\n",
            bad_at + "3: expected a feature index (an integer >= 1), found \"-3:1\"", p);
  ExpectBad("libsvm", "order.svm", good + "1 4:1 2:1\n",
            bad_at + "7: expected feature indices in increasing order, found 2 after 4", p);
  ExpectBad("libsvm", "colon.svm", good + "1 4 5:1\n",
            bad_at + "4: expected ':' and a value after feature index \"4\", found a blank", p);
  ExpectBad("libsvm", "value.svm", good + "1 4:abc\n",
            bad_at + "5: expected a numeric feature value, found \"abc\"", p);
  ExpectBad("libsvm", "nan.svm", good + "1 4:NaN\n",
            bad_at + "5: expected a finite feature value, found \"NaN\"", p);
  ExpectBad("libsvm", "inf.svm", good + "1 4:inf\n",
            bad_at + "5: expected a finite feature value, found \"inf\"", p);
  ExpectBad("libsvm", "truncated.svm", good + "1 4:",
            bad_at + "5: expected a numeric feature value, found end of line", p);
  ExpectBad("libsvm", "empty.svm", "", "1:1: expected at least one row, found an empty file");
  ExpectBad("csv", "utf8.csv", "y,x,c\n1,2,ok\n0,3,caf\xe9\n",
            "3:8: expected UTF-8 text, found byte 0xe9", "--label-column y --categorical c");
  ExpectBad("ratings", "ratings.txt", "1 2 5\n3 4\n",
            "2:4: expected a rating (a line is: user item rating [timestamp]), found end of line");

  // A file that does not exist.
  CliRun r = Overcast("load --format libsvm --input '" + dir_.path() + "/nope.svm' --dataset bad");
  EXPECT_EQ(r.code, 2);
  EXPECT_NE(r.err.find("nope.svm: cannot open: No such file or directory"), std::string::npos)
      << r.err;
  EXPECT_FALSE(DatasetLeft("bad"));
}

TEST_F(LoadCliTest, CrLfGzipStdinAndJson) {
  const std::string crlf = dir_.Write("crlf.svm", "1 1:1\r\n0 2:1\r\n");
  CliRun r = Overcast("load --format libsvm --input '" + crlf + "' --dataset crlf --json");
  ASSERT_EQ(r.code, 0) << r.err;
  auto j = nlohmann::json::parse(r.out.substr(r.out.rfind('{')));
  EXPECT_EQ(j["rows"], 2);
  EXPECT_EQ(j["features"], 2);
  EXPECT_EQ(j["classes"], 2);
  for (const char* key : {"seconds", "mb_per_s", "peak_rss_mb"}) EXPECT_TRUE(j.contains(key));

  const std::string gz = dir_.path() + "/a.svm.data";  // detected by content, not name
  gzFile f = gzopen(gz.c_str(), "wb");
  gzputs(f, "1 1:1\n0 3:1\n1 2:1\n");
  gzclose(f);
  r = Overcast("load --format libsvm --input '" + gz + "' --dataset gz --json --test-fraction 0.5");
  ASSERT_EQ(r.code, 0) << r.err;
  j = nlohmann::json::parse(r.out.substr(r.out.rfind('{')));
  EXPECT_EQ(j["rows"], 3);

  r = Overcast("load --format libsvm --input - --dataset stdin --json", crlf);
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_TRUE(std::filesystem::exists(store() + "/datasets/stdin/manifest.json"));

  // An existing dataset is refused (bad usage) unless --overwrite.
  r = Overcast("load --format libsvm --input '" + crlf + "' --dataset crlf");
  EXPECT_EQ(r.code, 2);
  EXPECT_NE(r.err.find("already exists"), std::string::npos);
}

TEST_F(LoadCliTest, SkipBadLinesReportsThem) {
  const std::string path = dir_.Write("mixed.svm", "1 1:1\nx 1:1\n0 2:1\n1 0:1\n");
  CliRun r = Overcast("load --format libsvm --input '" + path + "' --dataset m --skip-bad-lines --json");
  ASSERT_EQ(r.code, 0) << r.err;
  auto j = nlohmann::json::parse(r.out.substr(r.out.rfind('{')));
  EXPECT_EQ(j["rows"], 2);
  EXPECT_EQ(j["bad_lines"], 2);
  EXPECT_NE(r.err.find("skipped 2 bad lines"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find(path + ":2:1: expected a numeric label"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find(path + ":4:3:"), std::string::npos) << r.err;
}

TEST_F(LoadCliTest, TenMegabyteLineLoadsAndALimitRefusesIt) {
  std::string line = "1";
  uint32_t index = 0;
  while (line.size() < 10'000'000) line += " " + std::to_string(++index) + ":1";
  const std::string path = dir_.Write("wide.svm", "0 1:1\n" + line + "\n0 2:1\n");
  CliRun r = Overcast("load --format libsvm --input '" + path + "' --dataset wide --json");
  ASSERT_EQ(r.code, 0) << r.err;
  auto j = nlohmann::json::parse(r.out.substr(r.out.rfind('{')));
  EXPECT_EQ(j["rows"], 3);
  EXPECT_EQ(j["nnz"].get<uint64_t>(), index + 2u);
  EXPECT_EQ(j["features"].get<uint64_t>(), index);
  ExpectBad("libsvm", "wide2.svm", "0 1:1\n" + line + "\n",
            "2:1: expected a line of at most 1000000 bytes, found a longer one",
            "--max-line-bytes 1000000");
}

// The Fashion-MNIST converter (scripts/) on the Debian package's files, then a load.
TEST_F(LoadCliTest, FashionMnistConverterOutputLoads) {
  if (!std::filesystem::exists("/usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz")) {
    GTEST_SKIP() << "dataset-fashion-mnist is not installed";
  }
  const std::string script = std::string(OVERCAST_SOURCE_DIR) + "/scripts/fashion_mnist_to_libsvm.py";
  const std::string cmd = "/usr/bin/python3 '" + script + "' --limit 300 --out '" + dir_.path() +
                          "/fm' 2>/dev/null";
  ASSERT_EQ(std::system(cmd.c_str()), 0);
  CliRun r = Overcast("load --format libsvm --input '" + dir_.path() +
                      "/fm/fashion-mnist.train.svm' --test-input '" + dir_.path() +
                      "/fm/fashion-mnist.test.svm' --dataset fmnist --json");
  ASSERT_EQ(r.code, 0) << r.err;
  auto j = nlohmann::json::parse(r.out.substr(r.out.rfind('{')));
  EXPECT_EQ(j["train_rows"], 300);
  EXPECT_EQ(j["test_rows"], 300);
  EXPECT_EQ(j["classes"], 10);
  EXPECT_LE(j["features"].get<int>(), 784);
  r = Overcast("normalize --dataset fmnist --output fmnist-mm --method minmax --json");
  ASSERT_EQ(r.code, 0) << r.err;
}

TEST_F(LoadCliTest, HelpTeaches) {
  CliRun r = Overcast("load --help");
  EXPECT_EQ(r.code, 0);
  for (const char* s : {"libsvm", "--categorical", "--hash-bits", "--test-fraction", "gzip",
                        "--skip-bad-lines", "Example"}) {
    EXPECT_NE(r.out.find(s), std::string::npos) << s;
  }
}

// `overcast --version` prints the release (the project() version) and exits 0, with no
// subcommand needed; `/metrics` and V2's `GET /v2` name the same one.
TEST_F(LoadCliTest, TheBinaryPrintsItsVersion) {
  const std::string out = dir_.path() + "/version";
  for (const std::string flag : {"--version", "--help"}) {
    const int status = std::system(("'" + bin_ + "' " + flag + " >'" + out + "'").c_str());
    ASSERT_TRUE(WIFEXITED(status)) << flag;
    EXPECT_EQ(WEXITSTATUS(status), 0) << flag;
    if (flag == "--version") {
      EXPECT_EQ(Slurp(out), std::string(Version()) + "\n");
    } else {
      EXPECT_NE(Slurp(out).find("--version"), std::string::npos);
    }
  }
}

}  // namespace
}  // namespace overcast::data
