// CPU cgroups of replicas: set a quota in cores, read throttling and usage (v1, v2, or /proc only).
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "common/status.h"

namespace overcast::serve {

// Cumulative counters, as the kernel reports them.
struct CpuStat {
  uint64_t nr_periods = 0;    // CFS periods in which the group was runnable
  uint64_t nr_throttled = 0;  // of those, periods in which it ran out of quota
  uint64_t throttled_usec = 0;
  uint64_t usage_usec = 0;  // CPU time used by the group's tasks
  uint64_t nr_bursts = 0;   // periods in which the group spent burst (Linux 5.14+)
  uint64_t burst_usec = 0;  // CPU time spent beyond the quota from the burst
};

// How far a cumulative counter moved since `before`; 0 when it went backwards (the group was
// recreated, e.g. for a restarted replica).
inline uint64_t CounterDelta(uint64_t now, uint64_t before) {
  return now >= before ? now - before : 0;
}

// The kernel's smallest CFS quota, in microseconds per period.
inline constexpr long kMinQuotaUs = 1000;

// The CFS quota and period that give `cores`: `period_us`, unless the quota would fall below
// the kernel's 1 ms; then the period stretches, up to `max_period_us`, so that 1 ms a period is
// `cores` (a quota still never goes below 1 ms: at the longest period, 1 ms / max_period_us is
// the floor). A longer period lets a throttled group wait longer for its next quota, which is
// why it is kept for limits that need it.
struct CfsQuota {
  long quota_us, period_us;
};
CfsQuota QuotaFor(double cores, int period_us, int max_period_us);

// One replica's CPU group. Called from the server's control thread only.
class CpuCgroup {
 public:
  virtual ~CpuCgroup() = default;
  virtual Status SetLimit(double cores) = 0;  // see QuotaFor
  // The CFS period the last SetLimit wrote (0 for the kind that enforces nothing).
  virtual int period_us() const { return 0; }
  // Limits under 1 ms per period may stretch the period up to this (QuotaFor); at most the
  // base period (the default) keeps it fixed. Applied by every later SetLimit.
  virtual void set_max_period(int) {}
  virtual Result<CpuStat> Read() = 0;
  virtual Status AddProcess(pid_t pid) = 0;
  // The files a child writes its own pid into before exec (none for the /proc-only kind).
  virtual std::vector<std::string> procs_files() const = 0;
  virtual std::string describe() const = 0;
  virtual bool enforces() const { return true; }
  // CFS burst (Linux 5.14+: v1 cpu.cfs_burst_us, v2 cpu.max.burst) as a fraction of the quota,
  // applied by every later SetLimit: runtime left unused in earlier periods, up to this much,
  // may be spent in one period beyond its quota. The long-run rate stays at most the quota, so
  // the limit is still what is allocated; a short burst of requests no longer waits a period
  // out. The kernel caps it at the quota (fraction <= 1). Kernels or trees without the file
  // ignore it.
  virtual void set_burst_fraction(double) {}
};

// cgroup v1: `cpu_dir` holds cpu.cfs_quota_us, cpu.cfs_period_us, cpu.stat, cgroup.procs;
// `cpuacct_dir` holds cpuacct.usage (nanoseconds) and may equal cpu_dir. Directories are
// created when `create` (they must exist otherwise). A fake tree of plain files works too.
Result<std::unique_ptr<CpuCgroup>> OpenCgroupV1(const std::string& cpu_dir,
                                                const std::string& cpuacct_dir, int period_us,
                                                bool create);
// cgroup v2: `dir` holds cpu.max ("QUOTA PERIOD" or "max PERIOD"), cpu.stat (usage_usec,
// nr_periods, nr_throttled, throttled_usec) and cgroup.procs.
Result<std::unique_ptr<CpuCgroup>> OpenCgroupV2(const std::string& dir, int period_us, bool create);
// No cgroup: usage from /proc/PID/stat of the processes added; SetLimit only records the value
// (nothing is enforced, and no throttling is ever reported).
std::unique_ptr<CpuCgroup> OpenProcOnly();

// Picks the kind for `mode` ("auto", "v1", "v2", "none") and makes group `name` under the
// machine's hierarchy (v1: /sys/fs/cgroup/cpu/overcast/NAME; v2: /sys/fs/cgroup/overcast/NAME,
// or the unified mount). "auto" falls back to "none" with a warning when nothing is writable.
Result<std::unique_ptr<CpuCgroup>> CreateReplicaCgroup(const std::string& mode,
                                                       const std::string& name, int period_us);
// Removes a group created by CreateReplicaCgroup (best effort; it must have no processes left).
void RemoveReplicaCgroup(const std::string& mode, const std::string& name);

}  // namespace overcast::serve
