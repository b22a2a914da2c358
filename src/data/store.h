// The dataset store: a narrow interface over named, immutable objects, and its local backend.
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"

namespace overcast::data {

// A flat namespace of named byte objects, the way an object store (S3, GCS) sees the world.
// Names are relative paths with '/' separators ("datasets/fmnist/manifest.json"): no leading
// '/', no empty, "." or ".." components, no control characters. Objects are written whole and
// never modified in place, so a backend needs no more than these four operations; callers use
// only this interface, and an S3-compatible backend can be added beside the local one.
//
// Thread safety: every method may be called concurrently from any thread.
class Store {
 public:
  virtual ~Store() = default;

  // Stores `bytes` under `name`, replacing any old object atomically: a reader sees the old
  // object or the whole new one, never a part, even if the process dies mid-way.
  virtual Status Put(std::string_view name, std::string_view bytes) = 0;
  // Reads the whole object. NotFound if there is none.
  virtual Status Get(std::string_view name, std::string* bytes) = 0;
  // The names that start with `prefix` (a plain string prefix), sorted.
  virtual Status List(std::string_view prefix, std::vector<std::string>* names) = 0;
  // Removes the object; OK if it does not exist, so that cleanup may be retried.
  virtual Status Remove(std::string_view name) = 0;
  // Where the store lives, for messages ("/home/u/.overcast/store").
  virtual std::string Describe() const = 0;
};

// Checks that `name` is a valid object name (see Store); InvalidArgument naming it otherwise.
Status ValidateObjectName(std::string_view name);

// A store kept as files under `root` (created on first Put). Object "a/b" is file root/a/b;
// Put writes root/a/b.tmp-<pid>, fsyncs, renames and fsyncs the directory. Remove deletes the
// file and then any directories it leaves empty, up to (not including) root.
std::unique_ptr<Store> NewLocalStore(std::string root);

// Opens a store from a location: a directory path or file://PATH. Other schemes (s3://) are
// refused with InvalidArgument until their backend exists.
Result<std::unique_ptr<Store>> OpenStore(const std::string& location);

}  // namespace overcast::data
