// Running the overcast binary (or any command) to completion in a test: exit status, the log
// (stdout and stderr), and the last JSON line printed (the --json result object).
#pragma once

#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <vector>

#include "tests/integration/subprocess.h"

namespace overcast::testing {

struct CliRun {
  int exit = -1;
  std::string log;
  nlohmann::json result;  // the last JSON line, if any
};

inline nlohmann::json LastJsonLine(const std::string& log) {
  std::istringstream in(log);
  std::string line;
  nlohmann::json last;
  while (std::getline(in, line)) {
    if (line.empty() || line[0] != '{') continue;
    auto j = nlohmann::json::parse(line, nullptr, false);
    if (!j.is_discarded()) last = j;
  }
  return last;
}

// Runs argv (argv[0] "overcast" means the binary under test) with its output in a log in `dir`.
inline CliRun RunCommand(const std::string& dir, std::vector<std::string> args) {
  static int n = 0;
  const std::string log = dir + "/run" + std::to_string(n++) + ".log";
  if (args[0] == "overcast") args[0] = OvercastBin();
  Subprocess p(args, log);
  CliRun r;
  r.exit = p.Wait();
  r.log = ReadAll(log);
  r.result = LastJsonLine(r.log);
  return r;
}

// `overcast ARGS...`.
inline CliRun RunOvercast(const std::string& dir, std::vector<std::string> args) {
  args.insert(args.begin(), "overcast");
  return RunCommand(dir, std::move(args));
}

}  // namespace overcast::testing
