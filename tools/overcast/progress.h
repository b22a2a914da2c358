// Progress lines on standard error: redrawn in place on a terminal, plain lines otherwise.
#pragma once

#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <string>

namespace overcast::cli {

class ProgressLine {
 public:
  ProgressLine() : tty_(::isatty(2) == 1), last_(std::chrono::steady_clock::now()) {}
  ~ProgressLine() { Done(); }

  // Shows `text`; off a terminal, at most one line every `plain_every` seconds unless forced.
  void Show(const std::string& text, bool force = false, double plain_every = 2.0) {
    if (tty_) {
      std::fprintf(stderr, "\r\033[K%s", text.c_str());
      shown_ = true;
      return;
    }
    auto now = std::chrono::steady_clock::now();
    if (!force && std::chrono::duration<double>(now - last_).count() < plain_every) return;
    last_ = now;
    std::fprintf(stderr, "%s\n", text.c_str());
  }
  // Ends the in-place line (on a terminal), so the next output starts on a fresh line.
  void Done() {
    if (tty_ && shown_) std::fprintf(stderr, "\n");
    shown_ = false;
  }

 private:
  bool tty_;
  bool shown_ = false;
  std::chrono::steady_clock::time_point last_;
};

// Peak resident memory of this process so far, in MiB.
double PeakRssMiB();

}  // namespace overcast::cli
