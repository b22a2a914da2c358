#include "runtime/launcher.h"

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <map>
#include <thread>

#include "runtime/job.h"

namespace overcast::runtime {
namespace {

class ThreadLauncher final : public Launcher {
 public:
  explicit ThreadLauncher(WorkerOptions base) : base_(std::move(base)) {}
  ~ThreadLauncher() override { KillAll(); }
  std::string name() const override { return "threads"; }

  Status Start(uint32_t task) override {
    auto& w = workers_[task];
    if (w && w->thread.joinable()) w->thread.join();
    w = std::make_unique<Worker>();
    Worker* p = w.get();
    WorkerOptions o = base_;
    o.task = task;
    o.cancel = &p->cancel;
    p->thread = std::thread([p, o] {
      p->status = RunWorker(o);
      p->finished.store(true);
    });
    return Status::Ok();
  }
  bool Running(uint32_t task) override {
    auto it = workers_.find(task);
    return it != workers_.end() && it->second && !it->second->finished.load();
  }
  int LastExit(uint32_t task) override {
    auto it = workers_.find(task);
    if (it == workers_.end() || !it->second) return 0;
    return it->second->status.ok() ? 0 : 1;
  }
  std::string LastError(uint32_t task) override {
    auto it = workers_.find(task);
    return it == workers_.end() || !it->second ? "" : it->second->status.message();
  }
  void Kill(uint32_t task) override {
    auto it = workers_.find(task);
    if (it == workers_.end() || !it->second) return;
    it->second->cancel.store(true);
    if (it->second->thread.joinable()) it->second->thread.join();
  }
  void KillAll() override {
    for (auto& [t, w] : workers_) Kill(t);
  }

 private:
  struct Worker {
    std::thread thread;
    std::atomic<bool> cancel{false}, finished{false};
    Status status;
  };
  WorkerOptions base_;
  std::map<uint32_t, std::unique_ptr<Worker>> workers_;
};

class ProcessLauncher final : public Launcher {
 public:
  explicit ProcessLauncher(ProcessLauncherOptions o) : o_(std::move(o)) {
    if (o_.binary.empty()) {
      char buf[4096];
      ssize_t n = ::readlink("/proc/self/exe", buf, sizeof(buf) - 1);
      o_.binary = n > 0 ? std::string(buf, n) : "overcast";
    }
  }
  ~ProcessLauncher() override { KillAll(); }
  std::string name() const override { return "processes"; }

  Status Start(uint32_t task) override {
    std::vector<std::string> args = {o_.binary, "--log-level", o_.log_level, "worker",
                                     "--coordinator", ServerList(o_.servers), "--job", o_.job,
                                     "--task", std::to_string(task)};
    if (!o_.secret_file.empty()) {
      args.push_back("--secret-file");
      args.push_back(o_.secret_file);
    }
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    pid_t pid = ::fork();
    if (pid < 0) return ErrnoStatus("fork", errno);
    if (pid == 0) {
      ::execv(argv[0], argv.data());
      ::_exit(127);
    }
    procs_[task] = Proc{pid, false, 0};
    return Status::Ok();
  }
  bool Running(uint32_t task) override {
    auto it = procs_.find(task);
    if (it == procs_.end() || it->second.ended) return false;
    int st = 0;
    if (::waitpid(it->second.pid, &st, WNOHANG) == it->second.pid) {
      it->second.ended = true;
      it->second.exit = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
      return false;
    }
    return true;
  }
  int LastExit(uint32_t task) override {
    auto it = procs_.find(task);
    return it == procs_.end() ? 0 : it->second.exit;
  }
  std::string LastError(uint32_t task) override {
    int e = LastExit(task);
    if (e == 0) return "";
    if (e > 128) return "killed by signal " + std::to_string(e - 128);
    return "exited with status " + std::to_string(e) + " (its error is on stderr above)";
  }
  void Kill(uint32_t task) override {
    auto it = procs_.find(task);
    if (it == procs_.end() || it->second.ended) return;
    ::kill(it->second.pid, SIGKILL);
    int st = 0;
    ::waitpid(it->second.pid, &st, 0);
    it->second.ended = true;
    it->second.exit = 128 + SIGKILL;
  }
  void KillAll() override {
    for (auto& [t, p] : procs_) Kill(t);
  }

 private:
  struct Proc {
    pid_t pid;
    bool ended;
    int exit;
  };
  ProcessLauncherOptions o_;
  std::map<uint32_t, Proc> procs_;
};

class ExternalLauncher final : public Launcher {
 public:
  ExternalLauncher(algo::State* state, uint32_t tasks) : state_(state), tasks_(tasks) {}
  ~ExternalLauncher() override { KillAll(); }
  std::string name() const override { return "external"; }

  Status Start(uint32_t task) override {
    Task& t = tasks_[task];
    t.ended = false;
    t.exit = 0;
    t.error.clear();
    return Publish(task);
  }
  bool Running(uint32_t task) override {
    Task& t = tasks_[task];
    if (t.ended) return false;
    auto end = state_->GetBlob(EndBlob(task, t.gen));
    if (!end.ok()) return true;  // not ended, or the servers are away (the coordinator sees it)
    t.ended = true;
    t.exit = std::atoi(end->c_str());
    const size_t sp = end->find(' ');
    t.error = sp == std::string::npos ? "" : end->substr(sp + 1);
    if (t.exit != 0 && t.error.empty()) t.error = "exited with status " + std::to_string(t.exit);
    return false;
  }
  int LastExit(uint32_t task) override { return tasks_[task].exit; }
  std::string LastError(uint32_t task) override { return tasks_[task].error; }
  void Kill(uint32_t task) override {
    Task& t = tasks_[task];
    if (t.ended) return;
    (void)Publish(task);  // the worker of the old generation stops at its next report
    t.ended = true;
    t.exit = 128 + SIGKILL;
    t.error = "revoked";
  }
  void KillAll() override {
    for (uint32_t i = 0; i < tasks_.size(); ++i) Kill(i);
  }
  bool Waiting(uint32_t task) override {
    const Task& t = tasks_[task];
    return !t.ended && state_->GetBlob(ClaimBlob(task, t.gen)).status().code() == Code::kNotFound;
  }

 private:
  struct Task {
    uint64_t gen = 0;
    bool ended = true;
    int exit = 0;
    std::string error;
  };
  Status Publish(uint32_t task) {
    Task& t = tasks_[task];
    ++t.gen;
    return state_->SetBlob(GenBlob(task), std::to_string(t.gen));
  }
  algo::State* state_;
  std::vector<Task> tasks_;
};

}  // namespace

std::unique_ptr<Launcher> NewExternalLauncher(algo::State* state, uint32_t tasks) {
  return std::make_unique<ExternalLauncher>(state, tasks);
}
std::unique_ptr<Launcher> NewThreadLauncher(WorkerOptions base) {
  return std::make_unique<ThreadLauncher>(std::move(base));
}
std::unique_ptr<Launcher> NewProcessLauncher(ProcessLauncherOptions options) {
  return std::make_unique<ProcessLauncher>(std::move(options));
}

}  // namespace overcast::runtime
