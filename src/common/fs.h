// Files written atomically (temporary name, fsync, rename, directory fsync) and read whole.
#pragma once

#include <string>
#include <string_view>

#include "common/status.h"

namespace overcast {

// Writes `path` so that a reader sees either the old file or the whole new one, never a part:
// the bytes go to `path.tmp-<pid>`, are fsynced, renamed over `path`, and the directory fsynced.
Status WriteFileAtomic(const std::string& path, std::string_view contents);

// Streams a file to its final name on Commit(); destroying it uncommitted removes the temporary.
class AtomicFileWriter {
 public:
  AtomicFileWriter() = default;
  ~AtomicFileWriter();
  AtomicFileWriter(const AtomicFileWriter&) = delete;
  AtomicFileWriter& operator=(const AtomicFileWriter&) = delete;

  Status Open(const std::string& path);
  Status Append(std::string_view bytes);
  Status Commit();  // fsync, rename, fsync the directory

 private:
  std::string path_, tmp_;
  int fd_ = -1;
};

Status ReadFile(const std::string& path, std::string* out);
Status MakeDirs(const std::string& path);
Status FsyncDir(const std::string& dir);
std::string DirName(const std::string& path);

}  // namespace overcast
