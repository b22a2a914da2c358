#include "serve/cgroup.h"

#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <functional>
#include <mutex>
#include <sstream>
#include <vector>

#include "common/log.h"

namespace overcast::serve {
namespace {

namespace fs = std::filesystem;

Status WriteSmall(const std::string& path, const std::string& value) {
  std::ofstream f(path, std::ios::out | std::ios::trunc);
  if (!f) return ErrnoStatus("open " + path, errno);
  f << value;
  f.flush();
  if (!f) return ErrnoStatus("write '" + value + "' to " + path, errno);
  return Status::Ok();
}

Result<std::string> ReadSmall(const std::string& path) {
  std::ifstream f(path);
  if (!f) return ErrnoStatus("open " + path, errno);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

// Parses "key value" lines; missing keys stay 0.
void ParseKeyValues(const std::string& text, CpuStat* st, bool v2) {
  std::istringstream in(text);
  std::string key;
  uint64_t v;
  while (in >> key >> v) {
    if (key == "nr_periods") st->nr_periods = v;
    else if (key == "nr_throttled") st->nr_throttled = v;
    else if (key == "throttled_time" && !v2) st->throttled_usec = v / 1000;  // v1: ns
    else if (key == "throttled_usec") st->throttled_usec = v;
    else if (key == "usage_usec" && v2) st->usage_usec = v;
    else if (key == "nr_bursts") st->nr_bursts = v;
    else if (key == "burst_time" && !v2) st->burst_usec = v / 1000;  // v1: ns
    else if (key == "burst_usec") st->burst_usec = v;
  }
}

Status EnsureDir(const std::string& dir, bool create) {
  std::error_code ec;
  if (fs::is_directory(dir, ec)) return Status::Ok();
  if (!create) return NotFound("cgroup directory " + dir + " does not exist");
  fs::create_directories(dir, ec);
  if (ec) return IoError("create cgroup " + dir + ": " + ec.message());
  return Status::Ok();
}

// Quota and burst writes in the order the kernel accepts (burst <= quota at every step): a
// falling quota lowers the burst first, a rising one raises the quota first.
class BurstWriter {
 public:
  void set_fraction(double f) { fraction_ = std::clamp(f, 0.0, 1.0); }
  Status Apply(const std::string& burst_file, long quota,
               const std::function<Status(long)>& write_quota) {
    if (!checked_) {
      checked_ = true;
      std::error_code ec;
      has_file_ = fs::exists(burst_file, ec);
      // A group left behind by an earlier run may hold any burst: start from 0.
      if (has_file_) OC_RETURN_IF_ERROR(WriteBurst(burst_file, 0));
    }
    const long burst = std::lround(fraction_ * quota);
    const bool use = has_file_ && (fraction_ > 0 || burst_ > 0);
    if (use && burst < burst_) OC_RETURN_IF_ERROR(WriteBurst(burst_file, burst));
    OC_RETURN_IF_ERROR(write_quota(quota));
    if (use && burst > burst_) OC_RETURN_IF_ERROR(WriteBurst(burst_file, burst));
    return Status::Ok();
  }

 private:
  Status WriteBurst(const std::string& file, long burst) {
    OC_RETURN_IF_ERROR(WriteSmall(file, std::to_string(burst)));
    burst_ = burst;
    return Status::Ok();
  }
  double fraction_ = 0;
  bool checked_ = false, has_file_ = false;
  long burst_ = 0;  // as last written (the kernel's default is 0)
};

class CgroupV1 final : public CpuCgroup {
 public:
  CgroupV1(std::string cpu, std::string acct, int period)
      : cpu_(std::move(cpu)), acct_(std::move(acct)), period_(period), max_period_(period),
        written_period_(period) {}
  Status Init() {
    return WriteSmall(cpu_ + "/cpu.cfs_period_us", std::to_string(period_));
  }
  Status SetLimit(double cores) override {
    const CfsQuota q = QuotaFor(cores, period_, max_period_);
    return burst_.Apply(cpu_ + "/cpu.cfs_burst_us", q.quota_us, [&](long quota) {
      // Every quota is at least the kernel's 1 ms, so the period may go first either way.
      if (q.period_us != written_period_) {
        OC_RETURN_IF_ERROR(WriteSmall(cpu_ + "/cpu.cfs_period_us", std::to_string(q.period_us)));
        written_period_ = static_cast<int>(q.period_us);
      }
      return WriteSmall(cpu_ + "/cpu.cfs_quota_us", std::to_string(quota));
    });
  }
  int period_us() const override { return written_period_; }
  void set_max_period(int us) override { max_period_ = us; }
  void set_burst_fraction(double f) override { burst_.set_fraction(f); }
  Result<CpuStat> Read() override {
    CpuStat st;
    OC_ASSIGN_OR_RETURN(std::string s, ReadSmall(cpu_ + "/cpu.stat"));
    ParseKeyValues(s, &st, false);
    OC_ASSIGN_OR_RETURN(std::string u, ReadSmall(acct_ + "/cpuacct.usage"));
    st.usage_usec = std::strtoull(u.c_str(), nullptr, 10) / 1000;
    return st;
  }
  Status AddProcess(pid_t pid) override {
    OC_RETURN_IF_ERROR(WriteSmall(cpu_ + "/cgroup.procs", std::to_string(pid)));
    if (acct_ != cpu_) OC_RETURN_IF_ERROR(WriteSmall(acct_ + "/cgroup.procs", std::to_string(pid)));
    return Status::Ok();
  }
  std::vector<std::string> procs_files() const override {
    if (acct_ == cpu_) return {cpu_ + "/cgroup.procs"};
    return {cpu_ + "/cgroup.procs", acct_ + "/cgroup.procs"};
  }
  std::string describe() const override { return "cgroup v1 " + cpu_; }

 private:
  std::string cpu_, acct_;
  int period_, max_period_, written_period_;
  BurstWriter burst_;
};

class CgroupV2 final : public CpuCgroup {
 public:
  CgroupV2(std::string dir, int period)
      : dir_(std::move(dir)), period_(period), max_period_(period), written_period_(period) {}
  Status SetLimit(double cores) override {
    const CfsQuota q = QuotaFor(cores, period_, max_period_);
    return burst_.Apply(dir_ + "/cpu.max.burst", q.quota_us, [&](long quota) {
      OC_RETURN_IF_ERROR(WriteSmall(dir_ + "/cpu.max", std::to_string(quota) + " " +
                                                           std::to_string(q.period_us)));
      written_period_ = static_cast<int>(q.period_us);
      return Status::Ok();
    });
  }
  int period_us() const override { return written_period_; }
  void set_max_period(int us) override { max_period_ = us; }
  void set_burst_fraction(double f) override { burst_.set_fraction(f); }
  Result<CpuStat> Read() override {
    CpuStat st;
    OC_ASSIGN_OR_RETURN(std::string s, ReadSmall(dir_ + "/cpu.stat"));
    ParseKeyValues(s, &st, true);
    return st;
  }
  Status AddProcess(pid_t pid) override {
    return WriteSmall(dir_ + "/cgroup.procs", std::to_string(pid));
  }
  std::vector<std::string> procs_files() const override { return {dir_ + "/cgroup.procs"}; }
  std::string describe() const override { return "cgroup v2 " + dir_; }

 private:
  std::string dir_;
  int period_, max_period_, written_period_;
  BurstWriter burst_;
};

class ProcOnly final : public CpuCgroup {
 public:
  Status SetLimit(double) override { return Status::Ok(); }
  Result<CpuStat> Read() override {
    std::lock_guard<std::mutex> l(mu_);
    CpuStat st;
    const long hz = ::sysconf(_SC_CLK_TCK);
    for (pid_t p : pids_) {
      auto s = ReadSmall("/proc/" + std::to_string(p) + "/stat");
      if (!s.ok()) continue;  // gone: its time is lost, as it would be from a cgroup's view too
      const std::string& t = *s;
      auto rp = t.rfind(')');
      if (rp == std::string::npos) continue;
      std::istringstream in(t.substr(rp + 2));
      std::string field;
      uint64_t utime = 0, stime = 0;
      for (int i = 3; i <= 15 && in >> field; ++i) {
        if (i == 14) utime = std::strtoull(field.c_str(), nullptr, 10);
        if (i == 15) stime = std::strtoull(field.c_str(), nullptr, 10);
      }
      st.usage_usec += (utime + stime) * 1000000 / hz;
    }
    return st;
  }
  Status AddProcess(pid_t pid) override {
    std::lock_guard<std::mutex> l(mu_);
    pids_.assign(1, pid);  // one process per replica: the newest replaces a dead one
    return Status::Ok();
  }
  std::vector<std::string> procs_files() const override { return {}; }
  std::string describe() const override { return "no cgroup (/proc usage only, not enforced)"; }
  bool enforces() const override { return false; }

 private:
  std::mutex mu_;
  std::vector<pid_t> pids_;
};

constexpr const char* kV1Cpu = "/sys/fs/cgroup/cpu";
constexpr const char* kV1Acct = "/sys/fs/cgroup/cpuacct";
constexpr const char* kV2Root = "/sys/fs/cgroup";

bool V1Usable() { return ::access((std::string(kV1Cpu) + "/cpu.cfs_quota_us").c_str(), W_OK) == 0; }

std::string V2Root() {
  for (std::string root : {std::string(kV2Root), std::string(kV2Root) + "/unified"}) {
    auto c = ReadSmall(root + "/cgroup.controllers");
    if (c.ok() && c->find("cpu") != std::string::npos && ::access(root.c_str(), W_OK) == 0) return root;
  }
  return "";
}

}  // namespace

CfsQuota QuotaFor(double cores, int period_us, int max_period_us) {
  long period = period_us;
  if (max_period_us > period_us && cores * period_us < kMinQuotaUs) {
    const double stretched = std::ceil(kMinQuotaUs / std::max(cores, 1e-9));
    period = std::min<long>(max_period_us, static_cast<long>(stretched));
  }
  return {std::max(kMinQuotaUs, std::lround(cores * period)), period};
}

Result<std::unique_ptr<CpuCgroup>> OpenCgroupV1(const std::string& cpu_dir,
                                                const std::string& cpuacct_dir, int period_us,
                                                bool create) {
  OC_RETURN_IF_ERROR(EnsureDir(cpu_dir, create));
  OC_RETURN_IF_ERROR(EnsureDir(cpuacct_dir, create));
  auto cg = std::make_unique<CgroupV1>(cpu_dir, cpuacct_dir, period_us);
  OC_RETURN_IF_ERROR(cg->Init());
  return std::unique_ptr<CpuCgroup>(std::move(cg));
}

Result<std::unique_ptr<CpuCgroup>> OpenCgroupV2(const std::string& dir, int period_us, bool create) {
  OC_RETURN_IF_ERROR(EnsureDir(dir, create));
  return std::unique_ptr<CpuCgroup>(new CgroupV2(dir, period_us));
}

std::unique_ptr<CpuCgroup> OpenProcOnly() { return std::make_unique<ProcOnly>(); }

Result<std::unique_ptr<CpuCgroup>> CreateReplicaCgroup(const std::string& mode,
                                                       const std::string& name, int period_us) {
  if (mode == "none") return OpenProcOnly();
  if (mode == "v1" || (mode == "auto" && V1Usable())) {
    const bool separate_acct = fs::exists(std::string(kV1Acct) + "/cpuacct.usage");
    const std::string cpu = std::string(kV1Cpu) + "/overcast/" + name;
    const std::string acct =
        separate_acct ? std::string(kV1Acct) + "/overcast/" + name : cpu;
    auto r = OpenCgroupV1(cpu, acct, period_us, /*create=*/true);
    if (r.ok() || mode == "v1") return r;
    spdlog::warn("cgroup v1 unusable ({}); trying v2", r.status().message());
  }
  if (mode == "v2" || mode == "auto") {
    std::string root = V2Root();
    if (root.empty()) {
      if (mode == "v2") return Unavailable("no writable cgroup v2 hierarchy with the cpu controller");
    } else {
      const std::string parent = root + "/overcast";
      OC_RETURN_IF_ERROR(EnsureDir(parent, true));
      (void)WriteSmall(root + "/cgroup.subtree_control", "+cpu");
      (void)WriteSmall(parent + "/cgroup.subtree_control", "+cpu");
      auto r = OpenCgroupV2(parent + "/" + name, period_us, true);
      if (r.ok() || mode == "v2") return r;
      spdlog::warn("cgroup v2 unusable ({})", r.status().message());
    }
  }
  if (mode != "auto") return InvalidArgument("unknown cgroup mode '" + mode + "' (auto|v1|v2|none)");
  spdlog::warn("no writable CPU cgroup: replicas run without CPU quotas (usage from /proc only)");
  return OpenProcOnly();
}

void RemoveReplicaCgroup(const std::string& mode, const std::string& name) {
  if (mode == "none") return;
  for (std::string d : {std::string(kV1Cpu) + "/overcast/" + name,
                        std::string(kV1Acct) + "/overcast/" + name,
                        std::string(kV2Root) + "/overcast/" + name,
                        std::string(kV2Root) + "/unified/overcast/" + name}) {
    ::rmdir(d.c_str());
  }
}

}  // namespace overcast::serve
