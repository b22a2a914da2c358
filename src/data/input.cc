#include "data/input.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <vector>

namespace overcast::data {
namespace {

class FdSource final : public ByteSource {
 public:
  FdSource(int fd, bool owned, std::string name) : fd_(fd), owned_(owned), name_(std::move(name)) {}
  ~FdSource() override {
    if (owned_) ::close(fd_);
  }
  Result<size_t> Read(char* buf, size_t n) override {
    // Serve what OpenInput peeked at first.
    if (peek_pos_ < peek_.size()) {
      size_t k = std::min(n, peek_.size() - peek_pos_);
      std::memcpy(buf, peek_.data() + peek_pos_, k);
      peek_pos_ += k;
      return k;
    }
    for (;;) {
      ssize_t got = ::read(fd_, buf, n);
      if (got < 0 && errno == EINTR) continue;
      if (got < 0) return ErrnoStatus("read " + name_, errno);
      pos_ += static_cast<uint64_t>(got);
      return static_cast<size_t>(got);
    }
  }
  uint64_t raw_position() const override { return pos_ - (peek_.size() - peek_pos_); }
  // Reads up to n bytes ahead, to be served again by Read.
  Status Peek(size_t n) {
    peek_.resize(n);
    size_t have = 0;
    while (have < n) {
      ssize_t got = ::read(fd_, peek_.data() + have, n - have);
      if (got < 0 && errno == EINTR) continue;
      if (got < 0) return ErrnoStatus("read " + name_, errno);
      if (got == 0) break;
      have += static_cast<size_t>(got);
    }
    peek_.resize(have);
    pos_ += have;
    return Status::Ok();
  }
  const std::string& peeked() const { return peek_; }

 private:
  int fd_;
  bool owned_;
  std::string name_;
  std::string peek_;
  size_t peek_pos_ = 0;
  uint64_t pos_ = 0;
};

class GzipSource final : public ByteSource {
 public:
  GzipSource(std::unique_ptr<ByteSource> in, std::string name)
      : in_(std::move(in)), name_(std::move(name)), buf_(1 << 18) {}
  ~GzipSource() override {
    if (init_) inflateEnd(&z_);
  }
  Status Init() {
    std::memset(&z_, 0, sizeof z_);
    if (inflateInit2(&z_, 15 + 16) != Z_OK) return Internal("inflateInit2 failed");
    init_ = true;
    return Status::Ok();
  }
  Result<size_t> Read(char* buf, size_t n) override {
    z_.next_out = reinterpret_cast<Bytef*>(buf);
    z_.avail_out = static_cast<uInt>(std::min<size_t>(n, 1u << 30));
    while (z_.avail_out > 0) {
      if (z_.avail_in == 0 && !in_eof_) {
        OC_ASSIGN_OR_RETURN(size_t got, in_->Read(buf_.data(), buf_.size()));
        if (got == 0) {
          in_eof_ = true;
        } else {
          z_.next_in = reinterpret_cast<Bytef*>(buf_.data());
          z_.avail_in = static_cast<uInt>(got);
        }
      }
      if (z_.avail_in == 0 && in_eof_) {
        if (in_member_) return InvalidArgument(name_ + ": truncated gzip stream");
        break;
      }
      if (!in_member_) {
        // A new member starts (gzip files may be concatenations of members).
        if (inflateReset(&z_) != Z_OK) return Internal("inflateReset failed");
        in_member_ = true;
      }
      int rc = inflate(&z_, Z_NO_FLUSH);
      if (rc == Z_STREAM_END) {
        in_member_ = false;
      } else if (rc == Z_BUF_ERROR) {
        continue;  // needs more input; the loop fetches it
      } else if (rc != Z_OK) {
        return InvalidArgument(name_ + ": invalid gzip data: " + (z_.msg ? z_.msg : "error"));
      }
    }
    return n - z_.avail_out;
  }
  uint64_t raw_position() const override { return in_->raw_position(); }

 private:
  std::unique_ptr<ByteSource> in_;
  std::string name_;
  std::vector<char> buf_;
  z_stream z_;
  bool init_ = false, in_eof_ = false, in_member_ = false;
};

}  // namespace

Result<std::unique_ptr<ByteSource>> OpenInput(const std::string& path, uint64_t* size) {
  *size = 0;
  int fd = 0;
  bool owned = false;
  std::string name = path == "-" ? "<stdin>" : path;
  if (path != "-") {
    fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
      int err = errno;
      return InvalidArgument(path + ": cannot open: " + std::strerror(err));
    }
    owned = true;
    struct stat st;
    if (::fstat(fd, &st) == 0) {
      if (S_ISDIR(st.st_mode)) {
        ::close(fd);
        return InvalidArgument(path + ": is a directory, expected a file");
      }
      if (S_ISREG(st.st_mode)) *size = static_cast<uint64_t>(st.st_size);
    }
  }
  auto src = std::make_unique<FdSource>(fd, owned, name);
  OC_RETURN_IF_ERROR(src->Peek(2));
  const std::string& head = src->peeked();
  if (head.size() == 2 && static_cast<unsigned char>(head[0]) == 0x1f &&
      static_cast<unsigned char>(head[1]) == 0x8b) {
    auto gz = std::make_unique<GzipSource>(std::move(src), name);
    OC_RETURN_IF_ERROR(gz->Init());
    return std::unique_ptr<ByteSource>(std::move(gz));
  }
  return std::unique_ptr<ByteSource>(std::move(src));
}

LineChunker::LineChunker(std::unique_ptr<ByteSource> source, std::string name, size_t chunk_bytes,
                         size_t max_line_bytes)
    : source_(std::move(source)),
      name_(std::move(name)),
      chunk_bytes_(std::clamp<size_t>(chunk_bytes, 1, std::max<size_t>(max_line_bytes, 1))),
      max_line_bytes_(max_line_bytes) {}

Result<bool> LineChunker::Next(std::string* chunk) {
  // Copy the carried line start into `chunk` (not swap): the chunk keeps its large buffer.
  chunk->assign(carry_);
  size_t scan_from = 0;  // bytes before this hold no '\n'
  for (;;) {
    size_t cut = std::string::npos;
    if (chunk->size() >= chunk_bytes_ || eof_) {
      const void* nl = chunk->size() > scan_from
                           ? ::memrchr(chunk->data() + scan_from, '\n', chunk->size() - scan_from)
                           : nullptr;
      if (nl) cut = static_cast<size_t>(static_cast<const char*>(nl) - chunk->data()) + 1;
      if (cut == std::string::npos) scan_from = chunk->size();
    }
    if (cut == std::string::npos && eof_) {
      if (chunk->empty()) return false;
      cut = chunk->size();  // the last line, without '\n'
    }
    if (cut != std::string::npos) {
      carry_.assign(chunk->data() + cut, chunk->size() - cut);
      chunk->resize(cut);
      bytes_ += chunk->size();
      return true;
    }
    // The line in hand is not finished: read more.
    if (chunk->size() > max_line_bytes_ && scan_from >= chunk->size()) {
      // No newline in the whole buffer, i.e. one line longer than the limit.
      line_too_long_ = true;
      return InvalidArgument("expected a line of at most " + std::to_string(max_line_bytes_) +
                             " bytes, found a longer one (raise --max-line-bytes)");
    }
    const size_t old = chunk->size();
    const size_t want = std::max<size_t>(chunk_bytes_ - std::min(old, chunk_bytes_), 1 << 16);
    chunk->resize(old + want);
    auto got = source_->Read(chunk->data() + old, want);
    if (!got.ok()) {
      chunk->resize(old);
      return got.status();
    }
    chunk->resize(old + *got);
    if (*got == 0) eof_ = true;
  }
}

}  // namespace overcast::data
