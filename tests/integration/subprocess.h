// Starting and stopping real overcast processes from tests.
#pragma once

#include <signal.h>
#include <fcntl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

namespace overcast::testing {

inline std::string OvercastBin() {
  const char* b = std::getenv("OVERCAST_BIN");
  return b ? b : "overcast";
}

// Every TempPath of this test program: removed at its end when every test passed, kept (and
// named) when one failed, for its logs.
class TempPaths : public ::testing::Environment {
 public:
  static std::vector<std::string>& List() {
    static std::vector<std::string> paths;
    return paths;
  }
  void TearDown() override {
    const bool passed = ::testing::UnitTest::GetInstance()->Passed();
    for (const auto& p : List()) {
      if (passed) {
        std::error_code ec;
        std::filesystem::remove_all(p, ec);
      } else if (std::filesystem::exists(p)) {
        std::fprintf(stderr, "kept for its logs: %s\n", p.c_str());
      }
    }
  }
};
inline const bool kTempPathsRegistered =
    (::testing::AddGlobalTestEnvironment(new TempPaths), true);

inline std::string TempPath(const std::string& name) {
  auto p = std::filesystem::temp_directory_path() /
           ("overcast-it-" + name + "-" + std::to_string(::getpid()));
  std::filesystem::remove_all(p);
  TempPaths::List().push_back(p.string());
  return p.string();
}

// A child process with stdout/stderr sent to `log`. Killed (SIGKILL) on destruction if alive.
class Subprocess {
 public:
  Subprocess(std::vector<std::string> args, const std::string& log) {
    pid_ = ::fork();
    if (pid_ == 0) {
      int fd = ::open(log.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
      ::dup2(fd, 1);
      ::dup2(fd, 2);
      std::vector<char*> argv;
      for (auto& a : args) argv.push_back(a.data());
      argv.push_back(nullptr);
      ::execv(argv[0], argv.data());
      ::_exit(127);
    }
  }
  ~Subprocess() {
    if (pid_ > 0 && !exited_) {
      ::kill(pid_, SIGKILL);
      ::waitpid(pid_, nullptr, 0);
    }
  }
  pid_t pid() const { return pid_; }
  bool Alive() {
    if (exited_) return false;
    int st;
    pid_t r = ::waitpid(pid_, &st, WNOHANG);
    if (r == pid_) {
      exited_ = true;
      status_ = st;
    }
    return !exited_;
  }
  void Signal(int sig) { ::kill(pid_, sig); }
  // Waits for exit; returns the exit code (or 128 + signal).
  int Wait() {
    if (!exited_) {
      ::waitpid(pid_, &status_, 0);
      exited_ = true;
    }
    return WIFEXITED(status_) ? WEXITSTATUS(status_) : 128 + WTERMSIG(status_);
  }

 private:
  pid_t pid_ = -1;
  bool exited_ = false;
  int status_ = 0;
};

// Waits up to `seconds` for a file with a port number in it.
inline int WaitForPortFile(const std::string& path, double seconds = 10) {
  auto until = std::chrono::steady_clock::now() + std::chrono::duration<double>(seconds);
  while (std::chrono::steady_clock::now() < until) {
    std::ifstream f(path);
    int port = 0;
    if (f >> port && port > 0) return port;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return -1;
}

inline std::string ReadAll(const std::string& path) {
  std::ifstream f(path);
  return std::string(std::istreambuf_iterator<char>(f), {});
}

}  // namespace overcast::testing
