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
  // True while the task waits for a worker to take it (external workers): not a silent worker.
  virtual bool Waiting(uint32_t /*task*/) { return false; }
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

// Workers started by hand (`overcast worker --coordinator ADDR`, on any host) or by a scheduler
// outside overcast. Start opens a new generation of the task for a worker to claim, Kill
// revokes the current one (its worker stops at its next report); a worker's end is read from
// its end blob. `state` is the job's scope on the servers and must outlive the launcher.
std::unique_ptr<Launcher> NewExternalLauncher(algo::State* state, uint32_t tasks);

}  // namespace overcast::runtime
