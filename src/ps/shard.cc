#include "ps/shard.h"

#include <algorithm>
#include <atomic>
#include <cstring>
#include <nlohmann/json.hpp>

#include "common/hash.h"
#include "common/memory.h"
#include "ps/optimizer.h"
#include "ps/protocol.h"

namespace overcast::ps {

Status Shard::CreateTable(const TableSpec& spec, bool owns_dense) {
  auto it = tables_.find(spec.name);
  if (it != tables_.end()) return Status::Ok();  // the server checked compatibility
  TablePart t;
  t.spec = spec;
  if (spec.kind == TableKind::kSparse) {
    t.stride = RowStride(spec.optimizer, spec.dim);
    t.sparse = std::make_unique<SparseTable>(t.stride);
  } else if (owns_dense) {
    size_t n = spec.end - spec.begin;
    // A large dense part is read whole by every pull (the kernel copies it into the socket) and
    // written whole by every push: huge pages spare those passes a TLB miss per 4 KiB.
    ResizeForOverwrite(t.weights, n);
    for (size_t i = 0; i < n; ++i) t.weights[i] = InitialValue(spec.init, spec.begin + i, 0);
    ReserveLarge(t.state, StateFloats(spec.optimizer.kind, n));
    t.state.assign(StateFloats(spec.optimizer.kind, n), 0.0f);
  }
  tables_.emplace(spec.name, std::move(t));
  return Status::Ok();
}

namespace {
// Called before a dense table's weights change or go away: replies still being sent from
// them keep the array as it is (moved into the loan, so their pointers stay valid) and the
// table goes on with a copy (`dropping`: with nothing). Without such replies nothing moves.
void EndLoan(TablePart& t, bool dropping = false) {
  if (!t.loan) return;
  if (t.loan.use_count() > 1) {
    t.loan->weights = std::move(t.weights);
    if (!dropping) t.weights = t.loan->weights;
    t.loan.reset();
    return;
  }
  // The last reply let go of the loan on the io thread (an acq_rel decrement); this fence
  // orders its last read of the array before our writes to it.
  std::atomic_thread_fence(std::memory_order_acquire);
}
}  // namespace

void Shard::DropTable(const std::string& name) {
  auto it = tables_.find(name);
  if (it == tables_.end()) return;
  EndLoan(it->second, /*dropping=*/true);
  tables_.erase(it);
}

TablePart* Shard::Find(const std::string& name) {
  auto it = tables_.find(name);
  return it == tables_.end() ? nullptr : &it->second;
}

namespace {
constexpr size_t kPrefetch = 8;

// Visits positions pos[0..n) (or 0..n), handing f the key, its hash and its position, with the
// slot of the key kPrefetch ahead already requested from memory.
template <typename F>
void ForKeys(const SparseTable& table, const char* keys, const uint32_t* pos, size_t n, F&& f) {
  auto position = [&](size_t i) -> size_t { return pos ? pos[i] : i; };
  uint64_t hashes[kPrefetch];
  size_t warm = std::min(n, kPrefetch);
  for (size_t i = 0; i < warm; ++i) {
    hashes[i] = SparseTable::Hash(LoadU64(keys + 8 * position(i)));
    table.Prefetch(hashes[i]);
  }
  for (size_t i = 0; i < n; ++i) {
    size_t p = position(i);
    uint64_t h = hashes[i % kPrefetch];
    if (i + kPrefetch < n) {
      uint64_t hn = SparseTable::Hash(LoadU64(keys + 8 * position(i + kPrefetch)));
      hashes[i % kPrefetch] = hn;
      table.Prefetch(hn);
    }
    f(LoadU64(keys + 8 * p), h, p);
  }
}
}  // namespace

void Shard::Pull(TablePart& t, const char* keys, const uint32_t* pos, size_t n, float* out) {
  const uint32_t dim = t.spec.dim;
  SparseTable& table = *t.sparse;
  ForKeys(table, keys, pos, n, [&](uint64_t key, uint64_t h, size_t p) {
    float* dst = out + p * dim;
    if (const float* row = table.Find(key, h)) {
      if (dim == 1) {
        *dst = *row;  // the common case (linear models), without a call to memcpy
      } else {
        std::memcpy(dst, row, dim * sizeof(float));
      }
    } else {
      for (uint32_t j = 0; j < dim; ++j) dst[j] = InitialValue(t.spec.init, key, j);
    }
  });
  keys_pulled += n;
}

void Shard::Push(TablePart& t, const char* keys, const char* grads, const uint32_t* pos,
                 size_t n) {
  const uint32_t dim = t.spec.dim;
  SparseTable& table = *t.sparse;
  const OptimizerConfig& opt = t.spec.optimizer;
  const bool adam = opt.kind == OptimizerKind::kAdam;
  float g[256];
  std::vector<float> big;
  float* gbuf = g;
  if (dim > 256) {
    big.resize(dim);
    gbuf = big.data();
  }
  ForKeys(table, keys, pos, n, [&](uint64_t key, uint64_t h, size_t p) {
    bool inserted;
    float* row = table.FindOrInsert(key, h, &inserted);
    if (inserted && t.spec.init.kind != InitKind::kZeros) {
      for (uint32_t j = 0; j < dim; ++j) row[j] = InitialValue(t.spec.init, key, j);
    }
    std::memcpy(gbuf, grads + p * dim * sizeof(float), dim * sizeof(float));
    ApplyUpdate(opt, row, row + dim, gbuf, dim, adam ? row + 3 * dim : nullptr);
  });
  keys_pushed += n;
}

Status Shard::PullDense(TablePart& t, uint64_t offset, uint64_t count, std::string* out,
                        uint64_t* checksum) {
  if (offset < t.spec.begin || offset + count > t.spec.end || offset + count < offset) {
    return InvalidArgument("dense range outside this server's part of " + t.spec.name);
  }
  // Copied and hashed block by block: each block is hashed just after it is written, while
  // it is still in cache, so the reply costs one pass over memory rather than two.
  constexpr size_t kBlock = size_t{64} << 10;
  const char* src = reinterpret_cast<const char*>(t.weights.data() + (offset - t.spec.begin));
  const size_t bytes = count * sizeof(float);
  Checksummer hash;
  for (size_t at = 0; at < bytes; at += kBlock) {
    const size_t n = std::min(kBlock, bytes - at);
    const size_t was = out->size();
    out->append(src + at, n);
    hash.Update(out->data() + was, n);
  }
  *checksum = hash.Digest();
  keys_pulled += count;
  return Status::Ok();
}

Status Shard::LendDense(TablePart& t, uint64_t offset, uint64_t count, const char** data,
                        std::shared_ptr<const void>* keep, uint64_t* checksum,
                        bool* block_checksum) {
  if (offset < t.spec.begin || offset + count > t.spec.end || offset + count < offset) {
    return InvalidArgument("dense range outside this server's part of " + t.spec.name);
  }
  if (!t.loan) t.loan = std::make_shared<DenseLoan>();
  const char* base = reinterpret_cast<const char*>(t.weights.data());
  const size_t first = (offset - t.spec.begin) * sizeof(float), bytes = count * sizeof(float);
  *data = base + first;
  *keep = t.loan;
  keys_pulled += count;
  *block_checksum = first % kChecksumBlock == 0;
  if (!*block_checksum) {  // not on the grid of the kept digests: hashed whole
    *checksum = Checksum64(*data, bytes);
    dense_bytes_hashed += bytes;
    return Status::Ok();
  }
  const size_t part_bytes = t.weights.size() * sizeof(float);
  const size_t nblocks = (part_bytes + kChecksumBlock - 1) / kChecksumBlock;
  if (t.block_digests.size() != nblocks) t.block_digests.assign(nblocks, 0);
  thread_local std::vector<uint64_t> digests;
  digests.clear();
  for (size_t at = first; at < first + bytes; at += kChecksumBlock) {
    const size_t block_end = std::min(at + kChecksumBlock, part_bytes);
    const size_t n = std::min(block_end, first + bytes) - at;
    if (n < block_end - at) {  // the range ends inside a block: its part is hashed, not kept
      digests.push_back(Checksum64(base + at, n));
      dense_bytes_hashed += n;
      break;
    }
    uint64_t& d = t.block_digests[at / kChecksumBlock];
    if (d == 0) {  // (a block whose digest is 0 is hashed every time: harmless)
      d = Checksum64(base + at, n);
      dense_bytes_hashed += n;
    }
    digests.push_back(d);
  }
  *checksum = Checksum64(digests.data(), digests.size() * sizeof(uint64_t));
  return Status::Ok();
}

Status Shard::PushDense(TablePart& t, uint64_t offset, uint64_t count, const char* grads) {
  if (offset < t.spec.begin || offset + count > t.spec.end || offset + count < offset) {
    return InvalidArgument("dense range outside this server's part of " + t.spec.name);
  }
  EndLoan(t);
  const size_t n = t.weights.size();
  const size_t at = offset - t.spec.begin;
  // The blocks the update touches are hashed again when next lent; the others keep theirs.
  if (count > 0 && !t.block_digests.empty()) {
    const size_t b0 = at * sizeof(float) / kChecksumBlock;
    const size_t b1 = ((at + count) * sizeof(float) - 1) / kChecksumBlock;
    std::fill(t.block_digests.begin() + b0, t.block_digests.begin() + b1 + 1, 0);
  }
  std::vector<float> g(count);
  std::memcpy(g.data(), grads, count * sizeof(float));
  const OptimizerKind kind = t.spec.optimizer.kind;
  if (kind == OptimizerKind::kAdd || kind == OptimizerKind::kSgd) {
    ApplyUpdate(t.spec.optimizer, t.weights.data() + at, nullptr, g.data(), count, &t.step);
  } else if (kind == OptimizerKind::kAdagrad) {
    ApplyUpdate(t.spec.optimizer, t.weights.data() + at, t.state.data() + at, g.data(), count,
                &t.step);
  } else {
    // Two state planes of length n: copy the range's planes together, update, copy back.
    std::vector<float> s(2 * count);
    std::memcpy(s.data(), t.state.data() + at, count * sizeof(float));
    std::memcpy(s.data() + count, t.state.data() + n + at, count * sizeof(float));
    ApplyUpdate(t.spec.optimizer, t.weights.data() + at, s.data(), g.data(), count, &t.step);
    std::memcpy(t.state.data() + at, s.data(), count * sizeof(float));
    std::memcpy(t.state.data() + n + at, s.data() + count, count * sizeof(float));
  }
  keys_pushed += count;
  return Status::Ok();
}

void Shard::Serialize(std::string* out) const {
  ByteWriter w(out);
  uint32_t ntables = 0;
  for (auto& [name, t] : tables_) {
    if (t.spec.kind == TableKind::kSparse || !t.weights.empty()) ++ntables;
  }
  w.Put<uint32_t>(ntables);
  for (auto& [name, t] : tables_) {
    if (t.spec.kind == TableKind::kSparse) {
      EncodeSpec(t.spec, &w);
      w.Put<uint64_t>(t.sparse->size());
      t.sparse->ForEach([&](uint64_t key, const float* row) {
        w.Put<uint64_t>(key);
        w.PutBytes(row, t.stride * sizeof(float));
      });
    } else if (!t.weights.empty()) {
      EncodeSpec(t.spec, &w);
      w.Put<float>(t.step);
      w.Put<uint64_t>(t.weights.size());
      w.PutBytes(t.weights.data(), t.weights.size() * sizeof(float));
      w.Put<uint64_t>(t.state.size());
      w.PutBytes(t.state.data(), t.state.size() * sizeof(float));
    }
  }
  w.Put<uint64_t>(blobs_.size());
  for (auto& [k, v] : blobs_) {
    w.PutString(k);
    w.Put<uint64_t>(v.size());
    w.PutBytes(v.data(), v.size());
  }
}

Status Shard::Load(
    ByteReader* r,
    const std::function<Status(const TableSpec&, uint64_t, const float*)>& sparse_row,
    const std::function<Status(const TableSpec&, const TablePart&)>& dense_part) {
  uint32_t ntables = 0;
  OC_RETURN_IF_ERROR(r->Get(&ntables));
  std::vector<float> row;
  for (uint32_t i = 0; i < ntables; ++i) {
    TableSpec spec;
    OC_RETURN_IF_ERROR(DecodeSpec(r, &spec));
    if (spec.kind == TableKind::kSparse) {
      uint64_t rows = 0;
      OC_RETURN_IF_ERROR(r->Get(&rows));
      size_t stride = RowStride(spec.optimizer, spec.dim);
      row.resize(stride);
      for (uint64_t k = 0; k < rows; ++k) {
        uint64_t key = 0;
        const char* p = nullptr;
        OC_RETURN_IF_ERROR(r->Get(&key));
        OC_RETURN_IF_ERROR(r->GetView(stride, 4, &p));
        std::memcpy(row.data(), p, stride * 4);
        OC_RETURN_IF_ERROR(sparse_row(spec, key, row.data()));
      }
    } else {
      TablePart t;
      t.spec = spec;
      uint64_t n = 0;
      const char* p = nullptr;
      OC_RETURN_IF_ERROR(r->Get(&t.step));
      OC_RETURN_IF_ERROR(r->Get(&n));
      if (n != spec.end - spec.begin) return Corruption("dense part length mismatch");
      OC_RETURN_IF_ERROR(r->GetView(n, 4, &p));
      ResizeForOverwrite(t.weights, n);
      std::memcpy(t.weights.data(), p, n * 4);
      OC_RETURN_IF_ERROR(r->Get(&n));
      if (n != StateFloats(spec.optimizer.kind, t.weights.size())) {
        return Corruption("dense state length mismatch");
      }
      OC_RETURN_IF_ERROR(r->GetView(n, 4, &p));
      ResizeForOverwrite(t.state, n);
      std::memcpy(t.state.data(), p, n * 4);
      OC_RETURN_IF_ERROR(dense_part(spec, t));
    }
  }
  uint64_t nblobs = 0;
  OC_RETURN_IF_ERROR(r->Get(&nblobs));
  for (uint64_t i = 0; i < nblobs; ++i) {
    std::string k;
    uint64_t n = 0;
    const char* p = nullptr;
    OC_RETURN_IF_ERROR(r->GetString(&k));
    OC_RETURN_IF_ERROR(r->Get(&n));
    OC_RETURN_IF_ERROR(r->GetView(n, 1, &p));
    blobs_[k].assign(p, n);
  }
  return Status::Ok();
}

nlohmann::json Shard::Stats() const {
  nlohmann::json j;
  j["shard"] = index_;
  j["keys_pulled"] = keys_pulled;
  j["keys_pushed"] = keys_pushed;
  j["requests"] = requests;
  j["dense_bytes_hashed"] = dense_bytes_hashed;
  j["blobs"] = blobs_.size();
  size_t blob_bytes = 0;
  for (auto& [k, v] : blobs_) blob_bytes += k.size() + v.size();
  j["blob_bytes"] = blob_bytes;
  nlohmann::json tables = nlohmann::json::object();
  for (auto& [name, t] : tables_) {
    nlohmann::json tj;
    tj["kind"] = t.sparse ? "sparse" : "dense";
    if (t.sparse) {
      tj["rows"] = t.sparse->size();
      tj["bytes"] = t.sparse->memory_bytes();
    } else {
      tj["rows"] = t.weights.size();
      tj["bytes"] = (t.weights.capacity() + t.state.capacity()) * sizeof(float);
    }
    tables[name] = tj;
  }
  j["tables"] = tables;
  return j;
}

ShardThread::ShardThread(uint32_t index) : shard_(index), thread_([this] { Run(); }) {}

ShardThread::~ShardThread() { Stop(); }

void ShardThread::Post(Task task) {
  {
    std::lock_guard lock(mu_);
    queue_.push_back(std::move(task));
  }
  cv_.notify_one();
}

bool ShardThread::TryRunInline(const Task& task) {
  {
    std::lock_guard lock(mu_);
    if (running_ || !queue_.empty() || stop_) return false;
    running_ = true;
  }
  task(shard_);
  bool wake;
  {
    std::lock_guard lock(mu_);
    running_ = false;
    wake = !queue_.empty() || stop_;
  }
  if (wake) cv_.notify_one();
  return true;
}

void ShardThread::Stop() {
  {
    std::lock_guard lock(mu_);
    if (stop_ && !thread_.joinable()) return;
    stop_ = true;
  }
  cv_.notify_one();
  if (thread_.joinable()) thread_.join();
}

void ShardThread::Run() {
  std::vector<Task> batch;
  for (;;) {
    {
      std::unique_lock lock(mu_);
      cv_.wait(lock, [&] { return !running_ && (stop_ || !queue_.empty()); });
      if (queue_.empty() && stop_) return;
      batch.swap(queue_);
      running_ = true;
    }
    for (auto& t : batch) t(shard_);
    batch.clear();
    std::lock_guard lock(mu_);
    running_ = false;
  }
}

}  // namespace overcast::ps
