#include "bench/load_bench.h"

#include <fcntl.h>
#include <spawn.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <random>
#include <vector>

#include "common/fs.h"

extern char** environ;

namespace overcast::bench {
namespace {

using Clock = std::chrono::steady_clock;

struct ChildRun {
  int exit_code = -1;
  double seconds = 0;
  double peak_rss_mb = 0;
  std::string out, err;
};

// Runs argv[0] (looked up in PATH) to completion, capturing its output.
Status RunChild(const std::vector<std::string>& args, ChildRun* run) {
  int out_pipe[2], err_pipe[2];
  if (::pipe2(out_pipe, O_CLOEXEC) != 0 || ::pipe2(err_pipe, O_CLOEXEC) != 0) {
    return ErrnoStatus("pipe", errno);
  }
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_adddup2(&fa, out_pipe[1], 1);
  posix_spawn_file_actions_adddup2(&fa, err_pipe[1], 2);
  std::vector<char*> argv;
  for (const auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  pid_t pid;
  auto start = Clock::now();
  int rc = posix_spawnp(&pid, argv[0], &fa, nullptr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&fa);
  ::close(out_pipe[1]);
  ::close(err_pipe[1]);
  if (rc != 0) {
    ::close(out_pipe[0]);
    ::close(err_pipe[0]);
    return ErrnoStatus("spawn " + args[0], rc);
  }
  // Drain both pipes (the child's progress lines go to stderr) until both close.
  auto drain = [](int fd, std::string* to) {
    char buf[65536];
    ssize_t n = ::read(fd, buf, sizeof buf);
    if (n > 0) to->append(buf, static_cast<size_t>(n));
    return n > 0 || (n < 0 && errno == EINTR);
  };
  bool out_open = true, err_open = true;
  while (out_open || err_open) {
    fd_set fds;
    FD_ZERO(&fds);
    if (out_open) FD_SET(out_pipe[0], &fds);
    if (err_open) FD_SET(err_pipe[0], &fds);
    if (::select(std::max(out_pipe[0], err_pipe[0]) + 1, &fds, nullptr, nullptr, nullptr) < 0) {
      if (errno == EINTR) continue;
      break;
    }
    if (out_open && FD_ISSET(out_pipe[0], &fds)) out_open = drain(out_pipe[0], &run->out);
    if (err_open && FD_ISSET(err_pipe[0], &fds)) err_open = drain(err_pipe[0], &run->err);
  }
  ::close(out_pipe[0]);
  ::close(err_pipe[0]);
  int status = 0;
  struct rusage ru;
  std::memset(&ru, 0, sizeof ru);
  while (::wait4(pid, &status, 0, &ru) < 0) {
    if (errno != EINTR) return ErrnoStatus("wait4", errno);
  }
  run->seconds = std::chrono::duration<double>(Clock::now() - start).count();
  run->peak_rss_mb = static_cast<double>(ru.ru_maxrss) / 1024.0;
  run->exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  return Status::Ok();
}

std::string LastLine(const std::string& s) {
  size_t end = s.find_last_not_of('\n');
  if (end == std::string::npos) return "";
  size_t start = s.rfind('\n', end);
  return s.substr(start == std::string::npos ? 0 : start + 1, end - (start == std::string::npos ? 0 : start + 1) + 1);
}

}  // namespace

Status GenerateLibsvm(const std::string& path, uint64_t bytes, uint64_t seed, uint64_t* rows,
                      uint64_t* nnz) {
  AtomicFileWriter w;
  OC_RETURN_IF_ERROR(w.Open(path));
  std::mt19937_64 rng(seed);
  std::string buf;
  buf.reserve(1 << 22);
  std::vector<uint32_t> idx;
  uint64_t written = 0;
  *rows = *nnz = 0;
  char num[32];
  while (written < bytes) {
    const int k = 20 + static_cast<int>(rng() % 161);
    idx.clear();
    for (int i = 0; i < k; ++i) idx.push_back(1 + static_cast<uint32_t>(rng() & ((1u << 20) - 1)));
    std::sort(idx.begin(), idx.end());
    idx.erase(std::unique(idx.begin(), idx.end()), idx.end());
    buf += (rng() & 1) ? "+1" : "-1";
    for (uint32_t i : idx) {
      buf += ' ';
      auto r = std::to_chars(num, num + sizeof num, i);
      buf.append(num, r.ptr);
      // A value with six significant digits, as tools like sklearn's dump_svmlight_file write.
      const uint64_t v = 1 + rng() % 999999;
      buf += ":0.";
      char digits[6];
      uint64_t x = v;
      for (int d = 5; d >= 0; --d, x /= 10) digits[d] = static_cast<char>('0' + x % 10);
      buf.append(digits, 6);
    }
    buf += '\n';
    ++*rows;
    *nnz += idx.size();
    if (buf.size() >= (1 << 22) - 8192) {
      OC_RETURN_IF_ERROR(w.Append(buf));
      written += buf.size();
      buf.clear();
    }
  }
  OC_RETURN_IF_ERROR(w.Append(buf));
  return w.Commit();
}

Status RunLoadBench(const LoadBenchOptions& o, nlohmann::json* result) {
  namespace fs = std::filesystem;
  auto say = [&](const std::string& s) {
    if (o.progress) std::fprintf(stderr, "bench load: %s\n", s.c_str());
  };
  std::string dir = o.dir;
  bool made_dir = false;
  if (dir.empty()) {
    const char* tmp = std::getenv("TMPDIR");
    std::string templ = std::string(tmp && *tmp ? tmp : "/tmp") + "/overcast-bench-load-XXXXXX";
    if (!::mkdtemp(templ.data())) return ErrnoStatus("mkdtemp " + templ, errno);
    dir = templ;
    made_dir = true;
  } else {
    OC_RETURN_IF_ERROR(MakeDirs(dir));
  }
  struct Cleanup {
    std::string dir;
    bool whole, keep;
    ~Cleanup() {
      if (keep) return;
      std::error_code ec;
      if (whole) {
        fs::remove_all(dir, ec);
      } else {
        fs::remove(dir + "/input.svm", ec);
        fs::remove_all(dir + "/store", ec);
      }
    }
  } cleanup{dir, made_dir, o.keep};

  const std::string input = dir + "/input.svm";
  const std::string store = dir + "/store";
  uint64_t rows = 0, nnz = 0;
  say("generating " + std::to_string(o.size_mb) + " MB of LIBSVM in " + input);
  auto t0 = Clock::now();
  OC_RETURN_IF_ERROR(GenerateLibsvm(input, o.size_mb * 1000000, o.seed, &rows, &nnz));
  const double gen_s = std::chrono::duration<double>(Clock::now() - t0).count();
  const double input_mb = static_cast<double>(fs::file_size(input)) / 1e6;

  say("overcast load");
  ChildRun ov;
  OC_RETURN_IF_ERROR(RunChild({o.overcast, "load", "--format", "libsvm", "--input", input,
                               "--dataset", "bench", "--store", store, "--overwrite",
                               "--compression", o.compression, "--threads",
                               std::to_string(o.threads), "--json"},
                              &ov));
  if (ov.exit_code != 0) {
    return Internal("overcast load exited " + std::to_string(ov.exit_code) + ": " +
                    LastLine(ov.err));
  }
  auto j = nlohmann::json::parse(LastLine(ov.out), nullptr, false);
  if (j.is_discarded() || j.value("rows", uint64_t{0}) != rows) {
    return Internal("overcast load did not report the " + std::to_string(rows) +
                    " rows generated: " + LastLine(ov.out));
  }
  nlohmann::json figures = {
      {"input_mb", input_mb},
      {"rows", rows},
      {"nnz", nnz},
      {"generate_seconds", gen_s},
      {"overcast_load_seconds", ov.seconds},
      {"overcast_load_mb_per_s", input_mb / ov.seconds},
      {"overcast_peak_rss_mb", ov.peak_rss_mb},
      {"overcast_stored_mb", j.value("stored_mb", 0.0)},
      {"overcast_threads", o.threads > 0 ? o.threads : static_cast<int>(::sysconf(_SC_NPROCESSORS_ONLN))},
  };
  nlohmann::json ratios = nlohmann::json::object();
  say("overcast: " + std::to_string(input_mb / ov.seconds) + " MB/s, peak RSS " +
      std::to_string(ov.peak_rss_mb) + " MB");
  if (!o.liblinear.empty()) {
    say(o.liblinear + " -c 0 (reads the file, then stops on C <= 0)");
    ChildRun ll;
    Status st = RunChild({o.liblinear, "-c", "0", input, dir + "/liblinear.model"}, &ll);
    if (st.ok() && ll.err.find("C <= 0") != std::string::npos) {
      figures["liblinear_read_seconds"] = ll.seconds;
      figures["liblinear_read_mb_per_s"] = input_mb / ll.seconds;
      figures["liblinear_peak_rss_mb"] = ll.peak_rss_mb;
      ratios["liblinear_read_over_overcast_load"] = ll.seconds / ov.seconds;
      ratios["liblinear_rss_over_overcast_rss"] = ll.peak_rss_mb / ov.peak_rss_mb;
      say("liblinear: " + std::to_string(input_mb / ll.seconds) + " MB/s, peak RSS " +
          std::to_string(ll.peak_rss_mb) + " MB");
    } else {
      say("liblinear not measured: " + (st.ok() ? LastLine(ll.err) : st.message()));
      figures["liblinear_error"] = st.ok() ? LastLine(ll.err) : st.message();
    }
  }
  *result = {{"bench", "load"}, {"figures", figures}, {"ratios", ratios}};
  return Status::Ok();
}

}  // namespace overcast::bench
