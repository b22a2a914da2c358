#include "bench/worker_rss.h"

#include <dirent.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <fstream>
#include <iterator>
#include <sstream>
#include <string>
#include <vector>

namespace overcast::bench {
namespace {

// The pids whose parent is `parent` and that have not exited (state other than Z).
std::vector<pid_t> LiveChildren(pid_t parent) {
  std::vector<pid_t> out;
  DIR* d = ::opendir("/proc");
  if (!d) return out;
  while (dirent* e = ::readdir(d)) {
    const pid_t pid = std::atoi(e->d_name);
    if (pid <= 0) continue;
    std::ifstream f(std::string("/proc/") + e->d_name + "/stat");
    std::string stat;
    std::getline(f, stat);
    const auto close = stat.rfind(')');  // the command name may hold spaces and parentheses
    if (close == std::string::npos || close + 2 > stat.size()) continue;
    std::istringstream rest(stat.substr(close + 2));
    char state = 0;
    pid_t ppid = 0;
    rest >> state >> ppid;
    if (ppid == parent && state != 'Z') out.push_back(pid);
  }
  ::closedir(d);
  return out;
}

// The command line of /proc/<pid> ("self" for this process), NUL-separated.
std::string Cmdline(const std::string& pid) {
  std::ifstream f("/proc/" + pid + "/cmdline", std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>());
}

}  // namespace

double ProcessPeakRssMiB(pid_t pid) {
  std::ifstream f("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(f, line))
    if (line.rfind("VmHWM:", 0) == 0) return std::strtod(line.c_str() + 6, nullptr) / 1024.0;
  return -1;
}

void ChildRssSampler::Start() {
  stop_ = false;
  thread_ = std::thread([this] {
    while (!stop_) {
      Sample();
      std::this_thread::sleep_for(period_);
    }
  });
}

double ChildRssSampler::Stop() {
  if (thread_.joinable()) {
    stop_ = true;
    thread_.join();
  }
  std::lock_guard<std::mutex> l(mu_);
  double top = 0;
  for (const auto& [pid, mib] : peaks_) top = std::max(top, mib);
  return top;
}

std::map<pid_t, double> ChildRssSampler::peaks() const {
  std::lock_guard<std::mutex> l(mu_);
  return peaks_;
}

void ChildRssSampler::Sample() {
  const std::string self = Cmdline("self");
  for (pid_t pid : LiveChildren(::getpid())) {
    // Between fork and exec a child still carries this process's memory (and its VmHWM): it
    // counts once its command line is its own.
    if (Cmdline(std::to_string(pid)) == self) continue;
    const double mib = ProcessPeakRssMiB(pid);
    if (mib < 0) continue;
    std::lock_guard<std::mutex> l(mu_);
    double& peak = peaks_[pid];
    peak = std::max(peak, mib);
  }
}

}  // namespace overcast::bench
