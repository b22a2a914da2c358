// Launch backends: how the coordinator starts, watches and kills the worker of a task. Threads
// (tests, one process) and local processes (the default); Kubernetes or serverless backends
// implement the same interface.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "runtime/worker.h"

namespace overcast::runtime {

// Called from the coordinator's thread only.
class Launcher {
 public:
  virtual ~Launcher() = default;
  virtual std::string name() const = 0;
  // Starts a worker for `task` (the previous one must have ended).
  virtual Status Start(uint32_t task) = 0;
  // False once the task's worker has ended (reaping it); then LastExit says how.
  virtual bool Running(uint32_t task) = 0;
  // 0: ended cleanly; otherwise an exit code, 128+signal, or 1 for a thread's error.
  virtual int LastExit(uint32_t task) = 0;
  virtual std::string LastError(uint32_t task) = 0;
  // Ends the task's worker now (SIGKILL for a process) and waits for it.
  virtual void Kill(uint32_t task) = 0;
  virtual void KillAll() = 0;
};

// Workers as threads of this process; `base` gives everything but the task.
std::unique_ptr<Launcher> NewThreadLauncher(WorkerOptions base);

// Workers as child processes: `binary` --log-level LEVEL worker --coordinator SERVERS --job ID
// --task I [--secret-file F].
struct ProcessLauncherOptions {
  std::string binary;  // default: this executable (/proc/self/exe)
  std::vector<std::string> servers;
  std::string job;
  std::string secret_file;
  std::string log_level = "warn";
};
std::unique_ptr<Launcher> NewProcessLauncher(ProcessLauncherOptions options);

}  // namespace overcast::runtime
