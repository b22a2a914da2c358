// Benchmark plumbing: child processes (started with a port file or a fixed port, killed on
// exit), a scratch directory removed on every way out, loopback ports, resident memory.
#pragma once

#include <sys/types.h>

#include <string>
#include <vector>

#include "common/status.h"

namespace overcast::bench {

class Child {
 public:
  Child() = default;
  ~Child();
  Child(const Child&) = delete;
  Child& operator=(const Child&) = delete;

  // Starts argv[0] (searched on PATH) with stdout/stderr to `log` (empty: /dev/null).
  Status Start(const std::vector<std::string>& argv, const std::string& log = "");
  void Kill();
  // Waits for the child to end and returns its exit status (128 + N when killed by signal N).
  Result<int> Wait();
  pid_t pid() const { return pid_; }

 private:
  pid_t pid_ = -1;
};

// A benchmark's scratch directory, $TMPDIR/overcast-NAME-PID, created at once and removed with
// everything in it on every way out of the benchmark, unless Keep() was called (a log that an
// error message points to).
class ScratchDir {
 public:
  explicit ScratchDir(const std::string& name);
  ~ScratchDir();
  ScratchDir(const ScratchDir&) = delete;
  ScratchDir& operator=(const ScratchDir&) = delete;

  const std::string& path() const { return path_; }
  void Keep() { keep_ = true; }

 private:
  std::string path_;
  bool keep_ = false;
};

// A TCP port on 127.0.0.1 that was free a moment ago.
Result<int> FreeLoopbackPort();
// Waits until 127.0.0.1:port accepts connections.
Status WaitForPort(int port, double seconds);
// Resident memory of a process, from /proc/PID/statm.
uint64_t ResidentBytesOf(pid_t pid);

}  // namespace overcast::bench
