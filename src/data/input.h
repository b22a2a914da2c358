// Reading raw input: files, standard input and gzip (detected by its magic bytes), cut into
// chunks of whole lines for parallel parsing.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "common/status.h"

namespace overcast::data {

// A stream of bytes. Not thread-safe: one reader at a time.
class ByteSource {
 public:
  virtual ~ByteSource() = default;
  // Reads up to `n` bytes into `buf`; returns 0 only at the end of the stream.
  virtual Result<size_t> Read(char* buf, size_t n) = 0;
  // Bytes consumed from the underlying file so far (compressed bytes for gzip), for progress.
  virtual uint64_t raw_position() const = 0;
};

// Opens `path` ("-" is standard input). A stream that starts with the gzip magic (1f 8b) is
// decompressed transparently, whatever its name; concatenated gzip members are read in turn.
// A missing or unreadable file is InvalidArgument (bad input), naming the path.
// `*size` receives the file size when it is a regular file, else 0.
Result<std::unique_ptr<ByteSource>> OpenInput(const std::string& path, uint64_t* size);

// Cuts a ByteSource into chunks that end at a line boundary ('\n'), each at least `chunk_bytes`
// long except the last; the last may end without '\n'. It does not count lines (the parsers
// do, in parallel). Not thread-safe.
class LineChunker {
 public:
  LineChunker(std::unique_ptr<ByteSource> source, std::string name, size_t chunk_bytes,
              size_t max_line_bytes);

  // Fills `*chunk` (reusing its capacity). Returns false at the end. A line longer than
  // max_line_bytes is InvalidArgument, with line_too_long() set: that line follows the last
  // chunk handed out, and the caller, who counts lines, names it.
  Result<bool> Next(std::string* chunk);
  bool line_too_long() const { return line_too_long_; }

  uint64_t bytes() const { return bytes_; }  // text bytes handed out so far
  uint64_t raw_position() const { return source_->raw_position(); }

 private:
  std::unique_ptr<ByteSource> source_;
  std::string name_;
  size_t chunk_bytes_, max_line_bytes_;
  std::string carry_;  // the start of a line that the previous chunk did not finish
  bool line_too_long_ = false;
  uint64_t bytes_ = 0;
  bool eof_ = false;
};

}  // namespace overcast::data
