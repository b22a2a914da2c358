#include "bench/tune_bench.h"

#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>

#include <fmt/format.h>

#include "bench/child.h"

namespace overcast::bench {
namespace {

std::string Quote(const std::string& s) {
  std::string q = "'";
  for (char c : s) q += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return q + "'";
}

// Runs a shell command; returns its standard output (standard error passes through).
Result<std::string> Capture(const std::string& cmd) {
  std::FILE* p = ::popen(cmd.c_str(), "r");
  if (!p) return ErrnoStatus("popen", errno);
  std::string out;
  char buf[4096];
  size_t n;
  while ((n = std::fread(buf, 1, sizeof(buf), p)) > 0) out.append(buf, n);
  int rc = ::pclose(p);
  if (rc != 0) return Internal("command failed (" + std::to_string(rc) + "): " + cmd);
  return out;
}

Result<nlohmann::json> LastJsonLine(const std::string& out) {
  auto end = out.find_last_not_of('\n');
  if (end == std::string::npos) return Internal("no output");
  auto start = out.rfind('\n', end);
  auto j = nlohmann::json::parse(out.substr(start == std::string::npos ? 0 : start + 1), nullptr,
                                 false);
  if (j.is_discarded()) return Internal("last line is not JSON");
  return j;
}

// Rewrites LIBSVM labels to 1 for `positive` and 0 otherwise.
Status OneVsRest(const std::string& in, const std::string& out, int positive) {
  std::ifstream f(in);
  if (!f) return NotFound(in);
  std::ofstream o(out);
  std::string line;
  while (std::getline(f, line)) {
    auto sp = line.find(' ');
    int label = std::stoi(line.substr(0, sp));
    o << (label == positive ? '1' : '0') << (sp == std::string::npos ? "" : line.substr(sp))
      << '\n';
  }
  return o ? Status::Ok() : IoError("write " + out);
}

}  // namespace

Status RunTuneBench(const TuneBenchOptions& o, nlohmann::json* result) {
  namespace fs = std::filesystem;
  const ScratchDir scratch("bench-tune");
  const std::string& dir = scratch.path();
  std::string converter = o.converter;
  if (converter.empty()) converter = std::string(OVERCAST_SOURCE_DIR) + "/scripts/fashion_mnist_to_libsvm.py";
  std::string limit = o.limit ? " --limit " + std::to_string(o.limit) : "";
  OC_RETURN_IF_ERROR(
      Capture(Quote(o.python) + " " + Quote(converter) + " --out " + Quote(dir) + limit).status());
  OC_RETURN_IF_ERROR(OneVsRest(dir + "/fashion-mnist.train.svm", dir + "/train.svm",
                               o.positive_class));
  OC_RETURN_IF_ERROR(OneVsRest(dir + "/fashion-mnist.test.svm", dir + "/test.svm",
                               o.positive_class));
  std::string store = " --store " + Quote(dir + "/store");
  // Resolved here: under popen, /proc/self/exe would name the shell.
  std::error_code ec;
  std::string exe = o.overcast == "/proc/self/exe" ? fs::read_symlink(o.overcast, ec).string()
                                                   : o.overcast;
  std::string bin = Quote(exe);
  OC_RETURN_IF_ERROR(Capture(bin + " load --format libsvm --input " + Quote(dir + "/train.svm") +
                             " --test-input " + Quote(dir + "/test.svm") +
                             " --dataset ovr-raw" + store + " >&2")
                         .status());
  OC_RETURN_IF_ERROR(Capture(bin + " normalize --dataset ovr-raw --output ovr --method minmax" +
                             store + " >&2")
                         .status());
  nlohmann::json figures, ratios;
  double base_loss = 0, base_ws = 0;
  for (const char* policy : {"none", "curve", "asha"}) {
    std::string cmd = bin + " tune --dataset ovr --model logreg --grid " + Quote(o.grid) +
                      " --epochs " + std::to_string(o.epochs) + " --workers " +
                      std::to_string(o.workers) + " --concurrency " +
                      std::to_string(o.concurrency) + " --backend " + o.backend + " --eval-every " + fmt::format("{}", o.eval_every) +
                      " --early-stop " + policy + store + " --json";
    if (std::string(policy) == "curve" && o.curve_margin >= 0)
      cmd += fmt::format(" --margin {}", o.curve_margin);
    if (std::string(policy) == "asha") {
      if (o.eta > 0) cmd += fmt::format(" --eta {}", o.eta);
      if (o.min_progress > 0) cmd += fmt::format(" --min-progress {}", o.min_progress);
    }
    if (o.progress) std::fprintf(stderr, "bench tune: %s\n", cmd.c_str());
    OC_ASSIGN_OR_RETURN(std::string out, Capture(cmd));
    OC_ASSIGN_OR_RETURN(nlohmann::json j, LastJsonLine(out));
    double loss = j["best_logloss"].get<double>(), ws = j["worker_seconds"].get<double>();
    figures[std::string(policy) + "_best_logloss"] = loss;
    figures[std::string(policy) + "_worker_seconds"] = ws;
    figures[std::string(policy) + "_seconds"] = j["tune_seconds"].get<double>();
    figures[std::string(policy) + "_best_params"] = j["best_params"];
    int stopped = 0;
    for (auto& t : j["trial_results"]) stopped += t["status"] == "stopped";
    figures[std::string(policy) + "_stopped_trials"] = stopped;
    if (std::string(policy) == "none") {
      base_loss = loss;
      base_ws = ws;
    } else {
      ratios[std::string(policy) + "_worker_seconds_over_grid"] = ws / base_ws;
      ratios[std::string(policy) + "_logloss_over_grid_best"] = loss / base_loss;
    }
    if (o.progress) {
      std::fprintf(stderr, "bench tune: %s: best log-loss %.4f, %.1f worker-seconds, %d stopped\n",
                   policy, loss, ws, stopped);
    }
  }
  *result = {{"bench", "tune"}, {"figures", figures}, {"ratios", ratios}};
  return Status::Ok();
}

}  // namespace overcast::bench
