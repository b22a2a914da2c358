// Reading a dataset for training: shuffled minibatches, prefetched on a background thread into
// a bounded ring, handed out as CSR views with no per-row allocation.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "common/status.h"
#include "data/dataset.h"
#include "data/store.h"

namespace overcast::data {

struct MinibatchOptions {
  size_t batch_size = 256;
  uint64_t seed = 1;
  // Each epoch visits the partitions in a seeded random order and draws rows at random from a
  // window of `shuffle_window` rows that refills as it drains (rows mix across partitions).
  // shuffle = false reads partitions and rows in stored order (evaluation).
  bool shuffle = true;
  size_t shuffle_window = 16384;
  size_t prefetch = 4;    // minibatches made ahead of the consumer (the ring holds one more)
  uint64_t epochs = 1;    // 0: no end
  bool drop_last = false; // drop an epoch's last, short minibatch
  // Data parallelism: of each epoch's partition order, this reader takes the positions p with
  // p % num_shards == shard_index. Readers with the same seed and different shard indices
  // cover disjoint partitions that together are the whole split.
  uint32_t shard_index = 0;
  uint32_t num_shards = 1;
  // Resuming: the first `skip_batches` minibatches of the sequence are drawn (so what follows
  // is the same) but not built, nor handed out, and a partition whose rows all fall in them is
  // never read. Next() starts with minibatch `skip_batches`.
  uint64_t skip_batches = 0;
};

// One minibatch in CSR form: row r has entries [offsets[r], offsets[r+1]) of ids and values.
// The spans point into the reader's ring and stay valid until the next Next() call.
struct Minibatch {
  uint64_t epoch = 0;  // 0-based
  uint64_t index = 0;  // position in this reader's sequence of minibatches, from 0
  std::span<const float> labels;
  std::span<const uint64_t> offsets;  // rows()+1 entries, offsets[0] == 0
  std::span<const uint32_t> ids;      // feature ids, increasing within a row
  std::span<const float> values;
  size_t rows() const { return labels.size(); }
  size_t nnz() const { return ids.size(); }
};

// A minibatch that owns its arrays: one copied out of the reader's ring so that it outlives the
// next Next() call (a worker holds the one being computed and the one whose pull is in flight),
// or one built by hand. `view` points into the arrays; the vectors keep their capacity, so
// copying allocates nothing once warm. (A plain copy of one would view the original's arrays:
// use CopyFrom.)
struct OwnedMinibatch {
  std::vector<float> labels, values;
  std::vector<uint64_t> offsets;
  std::vector<uint32_t> ids;
  Minibatch view;
  // The arrays, epoch and index of `b`, then Refresh().
  void CopyFrom(const Minibatch& b);
  // Points `view` at the arrays (after filling them by hand).
  void Refresh();
};

struct ReaderStats {
  uint64_t batches = 0, rows = 0;
  uint64_t partitions_read = 0, bytes_read = 0;
  // Most partitions held decoded at once (the memory bound: 3, whatever the dataset's size)
  // and rows moved out of evicted partitions into the window's own arena.
  uint64_t peak_partitions_decoded = 0, rows_evicted = 0;
  double consumer_wait_seconds = 0;  // time Next() waited for the prefetcher: ~0 when hidden
  double read_seconds = 0;           // prefetcher time fetching, checking and decoding
  double producer_idle_seconds = 0;  // prefetcher time waiting for a free ring slot
};

// Thread safety: Open, Next, stats and the destructor are for one consumer thread; the reader
// runs its own prefetch thread internally.
class MinibatchReader {
 public:
  // Reads the manifest of `dataset` and starts prefetching `split`. InvalidArgument if the
  // options make no sense or the split is empty; NotFound if there is no such dataset.
  // `store` must outlive the reader.
  static Result<std::unique_ptr<MinibatchReader>> Open(Store* store, const std::string& dataset,
                                                       Split split,
                                                       const MinibatchOptions& options);
  ~MinibatchReader();
  MinibatchReader(const MinibatchReader&) = delete;
  MinibatchReader& operator=(const MinibatchReader&) = delete;

  // Fills *batch with the next minibatch and returns true, or returns false after the last
  // epoch. A partition that fails its checksum or structure checks is a Corruption error
  // naming it; the reader is then finished.
  Result<bool> Next(Minibatch* batch);

  ReaderStats stats() const;
  const Manifest& manifest() const;
  uint64_t rows_per_epoch() const;  // rows this reader (shard) visits per epoch

  class Impl;

 private:
  explicit MinibatchReader(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace overcast::data
