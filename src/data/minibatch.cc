#include "data/minibatch.h"

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <random>
#include <thread>
#include <vector>

#include "common/hash.h"

namespace overcast::data {
namespace {

using Clock = std::chrono::steady_clock;

double Since(Clock::time_point t) {
  return std::chrono::duration<double>(Clock::now() - t).count();
}

// One ring slot: the arrays of one minibatch, reused (their capacity stays).
struct Slot {
  uint64_t epoch = 0, index = 0;
  std::vector<float> labels;
  std::vector<uint64_t> offsets;
  std::vector<uint32_t> ids;
  std::vector<float> values;
  void Clear() {
    labels.clear();
    offsets.assign(1, 0);
    ids.clear();
    values.clear();
  }
  void Append(float label, const uint32_t* row_ids, const float* row_values, size_t n) {
    labels.push_back(label);
    ids.insert(ids.end(), row_ids, row_ids + n);
    values.insert(values.end(), row_values, row_values + n);
    offsets.push_back(ids.size());
  }
};

// A partition in the shuffle window, alive while the window still holds some of its rows. It
// is read and decoded when the first of its rows goes into a minibatch that is built.
struct Loaded {
  const PartitionRef* ref = nullptr;
  bool decoded = false;
  uint64_t decoded_seq = 0;  // order of decoding: the oldest is evicted first
  Partition part;
  uint64_t rows = 0;       // the manifest's count
  uint64_t remaining = 0;  // rows not yet emitted (0 once the slot is free)
  bool held() const { return decoded && remaining > 0; }  // decoded rows still needed
};

// loaded == kInArena: the row was copied out of its partition into the arena, at index `row`.
constexpr uint32_t kInArena = UINT32_MAX;

struct RowRef {
  uint32_t loaded;  // index into the loaded-partition table, or kInArena
  uint32_t row;
};

// Rows of the shuffle window whose partitions were evicted. Rows draw out at random, so a
// partition keeps a few rows in the window long after the rest have gone: about ln(window)
// partitions' worth (10 of 16,384 rows each) would otherwise stay decoded. Copying the rows
// of all but the newest decoded partitions here bounds a reader's memory by three decoded
// partitions and about twice the window's rows, whatever the dataset's size.
class Arena {
 public:
  uint32_t Add(float label, const uint32_t* ids, const float* values, size_t n) {
    uint32_t i;
    if (free_.empty()) {
      i = static_cast<uint32_t>(rows_.size());
      rows_.emplace_back();
    } else {
      i = free_.back();
      free_.pop_back();
    }
    rows_[i] = {ids_.size(), static_cast<uint32_t>(n), label};
    ids_.insert(ids_.end(), ids, ids + n);
    values_.insert(values_.end(), values, values + n);
    live_nnz_ += n;
    return i;
  }
  // Appends row i to the slot's arrays and frees it.
  void EmitAndFree(uint32_t i, Slot* slot) {
    const Row& r = rows_[i];
    slot->Append(r.label, ids_.data() + r.at, values_.data() + r.at, r.len);
    Free(i);
  }
  void Free(uint32_t i) {
    live_nnz_ -= rows_[i].len;
    rows_[i].len = kDead;
    free_.push_back(i);
    MaybeCompact();
  }

 private:
  static constexpr uint32_t kDead = UINT32_MAX;
  struct Row {
    uint64_t at = 0;
    uint32_t len = kDead;
    float label = 0;
  };
  // Rewrites the live rows contiguously once dead ones fill more than half the arrays.
  void MaybeCompact() {
    if (ids_.size() < 4096 || ids_.size() <= 2 * live_nnz_) return;
    std::vector<uint32_t> ids;
    std::vector<float> values;
    ids.reserve(live_nnz_);
    values.reserve(live_nnz_);
    for (Row& r : rows_) {
      if (r.len == kDead) continue;
      const uint64_t at = ids.size();
      ids.insert(ids.end(), ids_.begin() + r.at, ids_.begin() + r.at + r.len);
      values.insert(values.end(), values_.begin() + r.at, values_.begin() + r.at + r.len);
      r.at = at;
    }
    ids_.swap(ids);
    values_.swap(values);
  }
  std::vector<Row> rows_;
  std::vector<uint32_t> free_;
  std::vector<uint32_t> ids_;
  std::vector<float> values_;
  uint64_t live_nnz_ = 0;
};

}  // namespace

class MinibatchReader::Impl {
 public:
  Impl(Store* store, Manifest manifest, Split split, const MinibatchOptions& o)
      : store_(store), manifest_(std::move(manifest)), o_(o) {
    for (const PartitionRef* p : manifest_.PartitionsOf(split)) parts_.push_back(*p);
    ring_.resize(o_.prefetch + 1);
    for (auto& s : ring_) {
      s.Clear();
      s.labels.reserve(o_.batch_size);
      s.offsets.reserve(o_.batch_size + 1);
    }
    producer_ = std::thread([this] { Produce(); });
  }

  ~Impl() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      stop_ = true;
    }
    cv_.notify_all();
    producer_.join();
  }

  Result<bool> Next(Minibatch* batch) {
    std::unique_lock<std::mutex> lk(mu_);
    if (holding_) {  // the consumer is done with the batch it held
      ++released_;
      holding_ = false;
      cv_.notify_all();
    }
    auto t = Clock::now();
    cv_.wait(lk, [&] { return produced_ > taken_ || done_ || !error_.ok(); });
    stats_.consumer_wait_seconds += Since(t);
    if (!error_.ok()) return error_;
    if (produced_ == taken_) return false;  // done, and everything was handed out
    Slot& s = ring_[taken_ % ring_.size()];
    ++taken_;
    holding_ = true;
    batch->epoch = s.epoch;
    batch->index = s.index;
    batch->labels = s.labels;
    batch->offsets = s.offsets;
    batch->ids = s.ids;
    batch->values = s.values;
    ++stats_.batches;
    stats_.rows += s.labels.size();
    return true;
  }

  ReaderStats stats() const {
    std::lock_guard<std::mutex> lock(mu_);
    return stats_;
  }
  const Manifest& manifest() const { return manifest_; }
  uint64_t rows_per_epoch() const {
    // Shards take every num_shards-th partition of a shuffled order, so their row counts
    // vary by epoch; report the average share.
    uint64_t total = 0;
    for (const auto& p : parts_) total += p.rows;
    return o_.num_shards == 1 ? total : total / o_.num_shards;
  }

 private:
  // The prefetch thread: epochs of shuffled rows, cut into minibatches, into the ring.
  void Produce() {
    Status st = ProduceAll();
    std::lock_guard<std::mutex> lock(mu_);
    if (!st.ok() && error_.ok() && !stop_) error_ = st;
    done_ = true;
    cv_.notify_all();
  }

  Status ProduceAll() {
    std::vector<size_t> order(parts_.size());
    std::vector<RowRef> window;
    std::vector<Loaded> loaded;
    std::vector<uint32_t> free_loaded;
    Arena arena;
    uint64_t decodes = 0;
    std::string scratch;
    uint64_t batch_index = 0;
    size_t skipped_rows = 0;  // rows of the minibatch being skipped
    const size_t window_size = o_.shuffle ? std::max<size_t>(o_.shuffle_window, 1) : 1;
    window.reserve(window_size);
    for (uint64_t epoch = 0; o_.epochs == 0 || epoch < o_.epochs; ++epoch) {
      for (size_t i = 0; i < order.size(); ++i) order[i] = i;
      // The partition order depends on (seed, epoch) only, so shards agree on it.
      if (o_.shuffle) {
        std::mt19937_64 prng(MixKey(o_.seed ^ MixKey(epoch + 1)));
        std::shuffle(order.begin(), order.end(), prng);
      }
      std::vector<size_t> mine;
      for (size_t p = 0; p < order.size(); ++p) {
        if (p % o_.num_shards == o_.shard_index) mine.push_back(order[p]);
      }
      std::mt19937_64 rng(MixKey(o_.seed ^ MixKey(epoch + 1) ^ MixKey(o_.shard_index + 77)));
      size_t next_part = 0;
      uint32_t cur = UINT32_MAX;  // loaded slot being fed into the window
      uint32_t cur_row = 0;
      Slot* slot = nullptr;
      for (;;) {
        // Refill the window from the partitions, in order.
        while (window.size() < window_size) {
          if (cur == UINT32_MAX || cur_row == loaded[cur].rows) {
            if (next_part == mine.size()) break;
            if (free_loaded.empty()) {
              free_loaded.push_back(static_cast<uint32_t>(loaded.size()));
              loaded.emplace_back();
            }
            cur = free_loaded.back();
            free_loaded.pop_back();
            Loaded& L = loaded[cur];
            L.ref = &parts_[mine[next_part++]];
            L.decoded = false;
            L.rows = L.remaining = L.ref->rows;
            cur_row = 0;
            if (L.remaining == 0) {
              free_loaded.push_back(cur);
              cur = UINT32_MAX;
            }
            continue;
          }
          window.push_back({cur, cur_row++});
        }
        if (window.empty()) break;
        // Draw a row (Lemire's multiply-shift: uniform enough, no division).
        const size_t j = static_cast<size_t>(
            (static_cast<unsigned __int128>(rng()) * window.size()) >> 64);
        const RowRef ref = window[j];
        window[j] = window.back();
        window.pop_back();
        const bool skipping = batch_index < o_.skip_batches;  // drawn, not built
        if (skipping) {
          ++skipped_rows;
        } else if (!slot) {
          OC_ASSIGN_OR_RETURN(slot, AcquireSlot());
          if (!slot) return Status::Ok();  // stopping
          slot->Clear();
          slot->epoch = epoch;
          slot->index = batch_index;
        }
        if (ref.loaded == kInArena) {
          if (skipping) {
            arena.Free(ref.row);
          } else {
            arena.EmitAndFree(ref.row, slot);
          }
        } else {
          Loaded& L = loaded[ref.loaded];
          if (!skipping) {
            if (!L.decoded) {
              OC_RETURN_IF_ERROR(Decode(&L, &scratch));
              L.decoded_seq = ++decodes;
              EvictAndCount(ref.loaded, cur, &loaded, &free_loaded, &window, &arena);
            }
            const uint64_t b = L.part.offsets[ref.row], e = L.part.offsets[ref.row + 1];
            slot->Append(L.part.labels[ref.row], L.part.ids.data() + b,
                         L.part.values.data() + b, e - b);
          }
          // A partition is freed once all its rows have entered the window and left it.
          if (--L.remaining == 0 && (ref.loaded != cur || cur_row == L.rows)) {
            free_loaded.push_back(ref.loaded);
            if (ref.loaded == cur) cur = UINT32_MAX;
          }
        }
        if (skipped_rows == o_.batch_size) {
          skipped_rows = 0;
          ++batch_index;
        } else if (slot && slot->labels.size() == o_.batch_size) {
          Publish();
          slot = nullptr;
          ++batch_index;
        }
      }
      if (skipped_rows > 0) {  // an epoch's last, short minibatch fell in the skipped ones
        if (!o_.drop_last) ++batch_index;
        skipped_rows = 0;
      }
      if (slot) {
        if (o_.drop_last) {
          slot->Clear();  // not published: the next AcquireSlot returns it again
        } else {
          Publish();
          ++batch_index;
        }
        slot = nullptr;
      }
      if (o_.epochs == 0 && mine.empty()) break;  // nothing to read, ever
    }
    return Status::Ok();
  }

  // After partition `fresh` was decoded: every other decoded partition but the newest of them
  // and the one still feeding the window moves its rows still in the window into the arena
  // and is freed.
  static uint64_t Evict(uint32_t fresh, uint32_t cur, std::vector<Loaded>* loaded,
                    std::vector<uint32_t>* free_loaded, std::vector<RowRef>* window,
                    Arena* arena) {
    std::vector<uint32_t> victims;
    uint32_t newest = UINT32_MAX;
    for (uint32_t i = 0; i < loaded->size(); ++i) {
      const Loaded& L = (*loaded)[i];
      // Not the partition feeding the window (the caller frees it).
      if (i == fresh || i == cur || !L.held()) continue;
      victims.push_back(i);
      if (newest == UINT32_MAX || L.decoded_seq > (*loaded)[newest].decoded_seq) newest = i;
    }
    std::erase(victims, newest);
    if (victims.empty()) return 0;
    uint64_t moved = 0;
    for (RowRef& r : *window) {
      if (r.loaded == kInArena ||
          std::find(victims.begin(), victims.end(), r.loaded) == victims.end()) {
        continue;
      }
      const Partition& p = (*loaded)[r.loaded].part;
      const uint64_t b = p.offsets[r.row], e = p.offsets[r.row + 1];
      r = {kInArena, arena->Add(p.labels[r.row], p.ids.data() + b, p.values.data() + b, e - b)};
      ++moved;
    }
    for (uint32_t v : victims) {
      (*loaded)[v].remaining = 0;
      free_loaded->push_back(v);
    }
    return moved;
  }

  // Evict(), then the reader's statistics: rows moved, and partitions held decoded.
  void EvictAndCount(uint32_t fresh, uint32_t cur, std::vector<Loaded>* loaded,
                     std::vector<uint32_t>* free_loaded, std::vector<RowRef>* window,
                     Arena* arena) {
    const uint64_t moved = Evict(fresh, cur, loaded, free_loaded, window, arena);
    const uint64_t held = std::count_if(loaded->begin(), loaded->end(),
                                        [](const Loaded& L) { return L.held(); });
    std::lock_guard<std::mutex> lock(mu_);
    stats_.rows_evicted += moved;
    stats_.peak_partitions_decoded = std::max(stats_.peak_partitions_decoded, held);
  }

  // Reads and decodes a partition of the window, checking it holds the rows the manifest says.
  Status Decode(Loaded* L, std::string* scratch) {
    auto t = Clock::now();
    OC_RETURN_IF_ERROR(ReadPartition(*store_, manifest_, *L->ref, &L->part, scratch));
    if (L->part.rows() != L->rows)
      return Corruption("partition " + L->ref->object + " holds " +
                        std::to_string(L->part.rows()) + " rows; the manifest says " +
                        std::to_string(L->rows));
    L->decoded = true;
    std::lock_guard<std::mutex> lock(mu_);
    stats_.read_seconds += Since(t);
    stats_.partitions_read++;
    stats_.bytes_read += scratch->size();
    return Status::Ok();
  }

  // Waits for a ring slot the consumer no longer needs; nullptr when stopping.
  Result<Slot*> AcquireSlot() {
    std::unique_lock<std::mutex> lk(mu_);
    auto t = Clock::now();
    // Slot produced_ % size last held minibatch produced_ - size, which must be released.
    cv_.wait(lk, [&] { return stop_ || produced_ - released_ < ring_.size(); });
    stats_.producer_idle_seconds += Since(t);
    if (stop_) return static_cast<Slot*>(nullptr);
    return &ring_[produced_ % ring_.size()];
  }
  void Publish() {
    std::lock_guard<std::mutex> lock(mu_);
    ++produced_;
    cv_.notify_all();
  }

  Store* store_;
  Manifest manifest_;
  MinibatchOptions o_;
  std::vector<PartitionRef> parts_;
  std::thread producer_;

  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::vector<Slot> ring_;  // slot k % size holds minibatch k
  uint64_t produced_ = 0;   // minibatches published
  uint64_t taken_ = 0;      // handed to the consumer
  uint64_t released_ = 0;   // given back by the consumer (taken_ - released_ is 0 or 1)
  bool holding_ = false;
  bool done_ = false, stop_ = false;
  Status error_;
  ReaderStats stats_;
};

MinibatchReader::MinibatchReader(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
MinibatchReader::~MinibatchReader() = default;

Result<std::unique_ptr<MinibatchReader>> MinibatchReader::Open(Store* store,
                                                               const std::string& dataset,
                                                               Split split,
                                                               const MinibatchOptions& o) {
  if (o.batch_size == 0) return InvalidArgument("batch size must be at least 1");
  if (o.prefetch == 0) return InvalidArgument("prefetch must be at least 1");
  if (o.num_shards == 0 || o.shard_index >= o.num_shards) {
    return InvalidArgument("shard " + std::to_string(o.shard_index) + " of " +
                           std::to_string(o.num_shards) + " does not exist");
  }
  OC_ASSIGN_OR_RETURN(Manifest m, ReadManifest(*store, dataset));
  if (m.rows(split) == 0) {
    return InvalidArgument("dataset " + dataset + " has no " + std::string(SplitName(split)) +
                           " rows");
  }
  return std::unique_ptr<MinibatchReader>(
      new MinibatchReader(std::make_unique<Impl>(store, std::move(m), split, o)));
}

Result<bool> MinibatchReader::Next(Minibatch* batch) { return impl_->Next(batch); }

void OwnedMinibatch::CopyFrom(const Minibatch& b) {
  labels.assign(b.labels.begin(), b.labels.end());
  offsets.assign(b.offsets.begin(), b.offsets.end());
  ids.assign(b.ids.begin(), b.ids.end());
  values.assign(b.values.begin(), b.values.end());
  view.epoch = b.epoch;
  view.index = b.index;
  Refresh();
}

void OwnedMinibatch::Refresh() {
  view.labels = labels;
  view.offsets = offsets;
  view.ids = ids;
  view.values = values;
}
ReaderStats MinibatchReader::stats() const { return impl_->stats(); }
const Manifest& MinibatchReader::manifest() const { return impl_->manifest(); }
uint64_t MinibatchReader::rows_per_epoch() const { return impl_->rows_per_epoch(); }

}  // namespace overcast::data
