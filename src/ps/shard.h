// A shard: the tables' rows and blobs that one server thread owns, and that thread.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "common/bytes.h"
#include "common/status.h"
#include "ps/sparse_table.h"
#include "ps/table_spec.h"

namespace overcast::ps {

// A dense table's weights as replies being sent straight from them last saw them: the table
// moves its array here before changing it while such a reply is still being written.
struct DenseLoan {
  std::vector<float> weights;
};

struct TablePart {
  TableSpec spec;
  size_t stride = 0;                    // sparse: floats per stored row
  std::unique_ptr<SparseTable> sparse;  // sparse tables
  std::vector<float> weights, state;    // dense tables: this shard's [begin, end)
  float step = 0;                       // dense adam step
  // Shared with every reply being sent from `weights` (LendDense); null or held by the table
  // alone when none is.
  std::shared_ptr<DenseLoan> loan;
  // XXH3-64 of each kChecksumBlock bytes of `weights` (common/hash.h; the last block may be
  // shorter), 0 for a block not hashed since it last changed. A lent reply's checksum is the
  // block checksum of its range (net::kFlagBlockChecksum), made from these: pulls of unchanged
  // weights, such as every worker of a synchronous step pulling the same ones, hash nothing,
  // and a pull after a push hashes only the blocks the push touched. Sized on first use;
  // cleared when `weights` is replaced as a whole.
  std::vector<uint64_t> block_digests;
};

// The data of one shard. Only its own thread touches it (see ShardThread), so nothing here
// takes a lock.
class Shard {
 public:
  explicit Shard(uint32_t index) : index_(index) {}

  Status CreateTable(const TableSpec& spec, bool owns_dense);
  void DropTable(const std::string& name);
  TablePart* Find(const std::string& name);

  // Rows for keys[pos[i]] go to out + pos[i] * dim (pos == nullptr: positions 0..n).
  void Pull(TablePart& t, const char* keys, const uint32_t* pos, size_t n, float* out);
  // Applies grads[pos[i] * dim ...] to the rows of keys[pos[i]], creating missing rows.
  void Push(TablePart& t, const char* keys, const char* grads, const uint32_t* pos, size_t n);
  // Appends the weights of [offset, offset + count) to *out and sets *checksum to XXH3-64 of
  // the bytes appended (computed while copying them).
  Status PullDense(TablePart& t, uint64_t offset, uint64_t count, std::string* out,
                   uint64_t* checksum);
  Status PushDense(TablePart& t, uint64_t offset, uint64_t count, const char* grads);
  // Dense pull without a copy: *data points at the weights of [offset, offset + count), which
  // stay valid and unchanged while *keep is held (a push meanwhile goes to a copy of the
  // array). *checksum is the block checksum of those bytes when the range starts on a block
  // of the table's part (*block_checksum set; the client's pieces do), else their XXH3-64.
  // *keep may be released on any thread.
  Status LendDense(TablePart& t, uint64_t offset, uint64_t count, const char** data,
                   std::shared_ptr<const void>* keep, uint64_t* checksum, bool* block_checksum);

  std::unordered_map<std::string, std::string>& blobs() { return blobs_; }

  // The whole shard as bytes (tables then blobs), and back; see docs/formats.md.
  void Serialize(std::string* out) const;
  Status Load(ByteReader* r, const std::function<Status(const TableSpec&, uint64_t key,
                                                        const float* row)>& sparse_row,
              const std::function<Status(const TableSpec&, const TablePart&)>& dense_part);

  nlohmann::json Stats() const;
  uint64_t keys_pulled = 0, keys_pushed = 0, requests = 0;
  uint64_t dense_bytes_hashed = 0;  // by LendDense: bytes hashed, not taken from block_digests

  const std::map<std::string, TablePart>& tables() const { return tables_; }

 private:
  uint32_t index_;
  std::map<std::string, TablePart> tables_;
  std::unordered_map<std::string, std::string> blobs_;
};

// A thread that owns one Shard and runs tasks on it in the order they were posted.
// Post() may be called from any thread; the queue hand-off is the only lock, taken once per
// request per shard, never per key.
class ShardThread {
 public:
  using Task = std::function<void(Shard&)>;
  explicit ShardThread(uint32_t index);
  ~ShardThread();
  void Post(Task task);
  // Runs `task` on the calling thread when the shard is idle (nothing queued, nothing
  // running), and then returns true; otherwise leaves it to the caller to Post. Tasks still
  // run one at a time and in order. For small requests, this saves two thread hand-offs.
  bool TryRunInline(const Task& task);
  void Stop();  // runs what is queued, then joins
  Shard& shard_for_setup() { return shard_; }  // only before the thread runs tasks

 private:
  void Run();
  Shard shard_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<Task> queue_;
  bool running_ = false;  // a task runs, on this thread or inline on another
  bool stop_ = false;
  std::thread thread_;
};

}  // namespace overcast::ps
