// The access log: a JSON line per record, all written by the time it is destroyed, rotated by
// size, and a path it cannot open refused.
#include "serve/access_log.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace overcast::serve {
namespace {

namespace fs = std::filesystem;

class AccessLogTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("oc-access-" + std::to_string(::getpid()));
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }

  std::vector<std::string> Lines(const fs::path& p) {
    std::ifstream in(p);
    std::vector<std::string> lines;
    for (std::string l; std::getline(in, l);) lines.push_back(l);
    return lines;
  }

  fs::path dir_;
};

AccessRecord Record(int status, std::string_view target) {
  AccessRecord r;
  r.at = std::chrono::system_clock::time_point(std::chrono::milliseconds(1796359560971));
  r.remote = "127.0.0.1";
  r.method = "POST";
  r.target = target;
  r.status = status;
  r.seconds = 0.00123456;
  r.bytes_in = 57;
  r.bytes_out = 80;
  return r;
}

TEST_F(AccessLogTest, ALineIsOneJsonObjectWithEveryField) {
  const auto j = nlohmann::json::parse(AccessLog::Line(Record(200, "/v1/models/m:predict")));
  EXPECT_EQ(j["time"], "2026-12-04T04:46:00.971Z");
  EXPECT_EQ(j["remote"], "127.0.0.1");
  EXPECT_EQ(j["method"], "POST");
  EXPECT_EQ(j["target"], "/v1/models/m:predict");
  EXPECT_EQ(j["status"], 200);
  EXPECT_DOUBLE_EQ(j["ms"].get<double>(), 1.235);
  EXPECT_EQ(j["in"], 57);
  EXPECT_EQ(j["out"], 80);
  // A target that is not UTF-8 still makes a line of JSON.
  const std::string bad = "/v1/models/\xff:predict";
  EXPECT_TRUE(nlohmann::json::accept(AccessLog::Line(Record(404, bad))));
}

TEST_F(AccessLogTest, EveryLineIsWrittenByTheTimeItIsDestroyed) {
  const fs::path path = dir_ / "access.log";
  {
    std::ofstream(path) << "a line from before\n";  // appended to, not truncated
    auto log = AccessLog::Open({path.string()});
    ASSERT_TRUE(log.ok()) << log.status().message();
    for (int i = 0; i < 1000; ++i) (*log)->Add(Record(200 + i % 3, "/t/" + std::to_string(i)));
    EXPECT_EQ((*log)->dropped(), 0u);
  }
  const auto lines = Lines(path);
  ASSERT_EQ(lines.size(), 1001u);
  EXPECT_EQ(lines[0], "a line from before");
  for (int i = 0; i < 1000; ++i) {
    const auto j = nlohmann::json::parse(lines[i + 1]);
    EXPECT_EQ(j["target"], "/t/" + std::to_string(i));
    EXPECT_EQ(j["status"], 200 + i % 3);
  }
}

TEST_F(AccessLogTest, RotatesBySizeKeepingTheNewestFiles) {
  const fs::path path = dir_ / "access.log";
  AccessLogOptions o{path.string()};
  o.rotate_bytes = 4096;
  o.keep_files = 2;
  {
    auto log = AccessLog::Open(o);
    ASSERT_TRUE(log.ok()) << log.status().message();
    for (int i = 0; i < 500; ++i) (*log)->Add(Record(200, "/t/" + std::to_string(i)));
  }
  // The newest lines in access.log, the ones before in access.1.log and access.2.log; none older.
  ASSERT_TRUE(fs::exists(dir_ / "access.1.log"));
  ASSERT_TRUE(fs::exists(dir_ / "access.2.log"));
  EXPECT_FALSE(fs::exists(dir_ / "access.3.log"));
  for (const char* name : {"access.log", "access.1.log", "access.2.log"}) {
    EXPECT_LE(fs::file_size(dir_ / name), 4096u) << name;
  }
  const auto newest = Lines(path);
  ASSERT_FALSE(newest.empty());
  EXPECT_EQ(nlohmann::json::parse(newest.back())["target"], "/t/499");
  const auto before = Lines(dir_ / "access.1.log");
  ASSERT_FALSE(before.empty());
  EXPECT_EQ(nlohmann::json::parse(before.back())["target"],
            "/t/" + std::to_string(499 - static_cast<int>(newest.size())));
}

TEST_F(AccessLogTest, APathItCannotOpenIsRefused) {
  std::ofstream(dir_ / "a-file") << "x";  // no directory can be made there
  auto log = AccessLog::Open({(dir_ / "a-file" / "access.log").string()});
  ASSERT_FALSE(log.ok());
  EXPECT_EQ(log.status().code(), Code::kInvalidArgument);
  EXPECT_NE(log.status().message().find("--access-log"), std::string::npos);
}

}  // namespace
}  // namespace overcast::serve
