// Peak resident memory of this process's child processes (the worker processes of a training
// run), sampled from /proc while they live: each child's VmHWM, its own high-water mark.
#pragma once

#include <sys/types.h>

#include <atomic>
#include <chrono>
#include <map>
#include <mutex>
#include <thread>

namespace overcast::bench {

// Polls /proc every `period` on a background thread for the live children of this process
// and keeps, per child pid, the largest VmHWM seen. VmHWM only grows, so the last sample
// before a child exits is its peak up to one period. Start and Stop from one thread.
class ChildRssSampler {
 public:
  explicit ChildRssSampler(std::chrono::milliseconds period = std::chrono::milliseconds(20))
      : period_(period) {}
  ~ChildRssSampler() { Stop(); }
  ChildRssSampler(const ChildRssSampler&) = delete;
  ChildRssSampler& operator=(const ChildRssSampler&) = delete;

  void Start();
  // Stops sampling; returns the largest peak of any child in MiB (0: no child was seen).
  double Stop();
  // Peak RSS in MiB per child pid seen (valid after Stop).
  std::map<pid_t, double> peaks() const;

 private:
  void Sample();

  std::chrono::milliseconds period_;
  std::atomic<bool> stop_{false};
  std::thread thread_;
  mutable std::mutex mu_;
  std::map<pid_t, double> peaks_;  // guarded by mu_
};

// VmHWM of process `pid` in MiB, or -1 if it cannot be read (gone, or not ours to read).
double ProcessPeakRssMiB(pid_t pid);

}  // namespace overcast::bench
