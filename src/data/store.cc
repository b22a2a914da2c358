#include "data/store.h"

#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <filesystem>
#include <system_error>

#include "common/fs.h"

namespace overcast::data {
namespace fs = std::filesystem;

Status ValidateObjectName(std::string_view name) {
  auto bad = [&](const char* why) {
    return InvalidArgument("invalid object name \"" + std::string(name) + "\": " + why);
  };
  if (name.empty()) return bad("empty");
  if (name.front() == '/') return bad("starts with '/'");
  size_t start = 0;
  while (start <= name.size()) {
    size_t end = name.find('/', start);
    if (end == std::string_view::npos) end = name.size();
    std::string_view part = name.substr(start, end - start);
    if (part.empty()) return bad("empty path component");
    if (part == "." || part == "..") return bad("'.' or '..' component");
    if (part.find(".tmp-") != std::string_view::npos) return bad("contains '.tmp-'");
    start = end + 1;
  }
  for (unsigned char c : name) {
    if (c < 0x20 || c == 0x7f) return bad("control character");
  }
  return Status::Ok();
}

namespace {

class LocalStore final : public Store {
 public:
  explicit LocalStore(std::string root) : root_(std::move(root)) {
    while (root_.size() > 1 && root_.back() == '/') root_.pop_back();
  }

  Status Put(std::string_view name, std::string_view bytes) override {
    OC_RETURN_IF_ERROR(ValidateObjectName(name));
    std::string path = PathOf(name);
    OC_RETURN_IF_ERROR(MakeDirs(DirName(path)));
    return WriteFileAtomic(path, bytes);
  }

  Status Get(std::string_view name, std::string* bytes) override {
    OC_RETURN_IF_ERROR(ValidateObjectName(name));
    return ReadFile(PathOf(name), bytes);
  }

  Status List(std::string_view prefix, std::vector<std::string>* names) override {
    names->clear();
    // Walk only the deepest directory the prefix names, then filter by the full prefix.
    std::string dir_part(prefix.substr(0, prefix.rfind('/') == std::string_view::npos
                                              ? 0
                                              : prefix.rfind('/')));
    fs::path dir = dir_part.empty() ? fs::path(root_) : fs::path(root_) / dir_part;
    std::error_code ec;
    if (!fs::is_directory(dir, ec)) return Status::Ok();
    fs::recursive_directory_iterator it(dir, ec), end;
    if (ec) return IoError("list " + dir.string() + ": " + ec.message());
    for (; it != end; it.increment(ec)) {
      if (ec) return IoError("list " + dir.string() + ": " + ec.message());
      if (!it->is_regular_file(ec)) continue;
      std::string rel = fs::path(it->path()).lexically_relative(root_).generic_string();
      if (rel.find(".tmp-") != std::string::npos) continue;  // an unfinished Put
      if (rel.compare(0, prefix.size(), prefix) == 0) names->push_back(std::move(rel));
    }
    std::sort(names->begin(), names->end());
    return Status::Ok();
  }

  Status Remove(std::string_view name) override {
    OC_RETURN_IF_ERROR(ValidateObjectName(name));
    std::string path = PathOf(name);
    if (::unlink(path.c_str()) != 0 && errno != ENOENT) return ErrnoStatus("unlink " + path, errno);
    // Remove directories left empty, so a failed load leaves no trace of its dataset.
    fs::path dir = fs::path(path).parent_path();
    fs::path root(root_);
    while (dir != root && dir.string().size() > root_.size()) {
      if (::rmdir(dir.c_str()) != 0) break;  // not empty (or gone): stop
      dir = dir.parent_path();
    }
    return Status::Ok();
  }

  std::string Describe() const override { return root_; }

 private:
  std::string PathOf(std::string_view name) const { return root_ + "/" + std::string(name); }
  std::string root_;
};

}  // namespace

std::unique_ptr<Store> NewLocalStore(std::string root) {
  return std::make_unique<LocalStore>(std::move(root));
}

Result<std::unique_ptr<Store>> OpenStore(const std::string& location) {
  if (location.empty()) return InvalidArgument("empty store location");
  std::string path = location;
  if (path.rfind("file://", 0) == 0) {
    path = path.substr(7);
  } else if (auto pos = path.find("://"); pos != std::string::npos) {
    return InvalidArgument("store " + location + ": scheme '" + path.substr(0, pos) +
                           "' is not supported yet (use a directory path or file://PATH)");
  }
  if (path.empty()) return InvalidArgument("empty store path in " + location);
  return NewLocalStore(path);
}

}  // namespace overcast::data
