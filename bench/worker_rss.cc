#include "bench/worker_rss.h"

#include <dirent.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <fstream>
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
  for (pid_t pid : LiveChildren(::getpid())) {
    const double mib = ProcessPeakRssMiB(pid);
    if (mib < 0) continue;
    std::lock_guard<std::mutex> l(mu_);
    double& peak = peaks_[pid];
    peak = std::max(peak, mib);
  }
}

}  // namespace overcast::bench
