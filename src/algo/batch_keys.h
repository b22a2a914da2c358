// The distinct keys a minibatch touches, and for each stored entry the position of its key:
// what a worker pulls and pushes. O(nnz) with a reused per-id index, no allocation once warm.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

namespace overcast::algo {

// Not thread-safe; one per worker slot.
class BatchKeys {
 public:
  // keys = the distinct ids of `ids` in first-seen order, then `extra` (a bias key) last;
  // pos[e] = index in keys of ids[e].
  void Build(std::span<const uint32_t> ids, uint64_t extra) {
    keys.clear();
    pos.resize(ids.size());
    for (size_t e = 0; e < ids.size(); ++e) {
      const uint32_t id = ids[e];
      if (id >= slot_.size()) slot_.resize(std::max<size_t>(size_t{id} + 1, slot_.size() * 2), -1);
      int32_t s = slot_[id];
      if (s < 0) {
        s = static_cast<int32_t>(keys.size());
        slot_[id] = s;
        keys.push_back(id);
      }
      pos[e] = static_cast<uint32_t>(s);
    }
    for (uint64_t k : keys) slot_[k] = -1;  // reset only what was set
    keys.push_back(extra);
  }
  size_t extra_index() const { return keys.size() - 1; }

  std::vector<uint64_t> keys;
  std::vector<uint32_t> pos;

 private:
  std::vector<int32_t> slot_;
};

}  // namespace overcast::algo
