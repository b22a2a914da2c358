#include "ps/checkpoint.h"

#include <algorithm>
#include <cinttypes>
#include <cstdio>
#include <ctime>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "common/bytes.h"
#include "common/fs.h"
#include "common/hash.h"
#include "common/log.h"

namespace overcast::ps {
namespace fs = std::filesystem;
namespace {

constexpr char kShardMagic[8] = {'O', 'V', 'C', 'K', 'S', 'H', 'R', 'D'};
constexpr uint32_t kFormatVersion = 1;

std::string SeqName(uint64_t seq) {
  char buf[32];
  std::snprintf(buf, sizeof(buf), "ckpt-%012" PRIu64, seq);
  return buf;
}

// Sequence numbers of finished checkpoint directories (ckpt-N, not ckpt-N.tmp), newest first.
std::vector<uint64_t> ListSeqs(const std::string& dir, bool include_tmp) {
  std::vector<uint64_t> seqs;
  std::error_code ec;
  for (auto& e : fs::directory_iterator(dir, ec)) {
    std::string name = e.path().filename().string();
    if (!name.starts_with("ckpt-")) continue;
    bool tmp = name.ends_with(".tmp");
    if (tmp && !include_tmp) continue;
    std::string digits = name.substr(5, tmp ? name.size() - 9 : std::string::npos);
    if (digits.empty() || !std::all_of(digits.begin(), digits.end(), ::isdigit)) continue;
    seqs.push_back(std::stoull(digits));
  }
  std::sort(seqs.rbegin(), seqs.rend());
  return seqs;
}

std::string Hex(uint64_t v) {
  char buf[17];
  std::snprintf(buf, sizeof(buf), "%016" PRIx64, v);
  return buf;
}

Status VerifyShardFile(const std::string& path, const std::string& bytes, uint64_t want_sum,
                       std::string* payload) {
  if (bytes.size() < sizeof(kShardMagic) + 4 + 8) return Corruption(path + ": truncated");
  if (Checksum64(bytes.data(), bytes.size() - 8) != want_sum) {
    return Corruption(path + ": checksum mismatch");
  }
  uint64_t trailer;
  std::memcpy(&trailer, bytes.data() + bytes.size() - 8, 8);
  if (trailer != want_sum) return Corruption(path + ": trailer does not match manifest");
  if (std::memcmp(bytes.data(), kShardMagic, 8) != 0) return Corruption(path + ": bad magic");
  uint32_t version;
  std::memcpy(&version, bytes.data() + 8, 4);
  if (version != kFormatVersion) return Corruption(path + ": unknown format version");
  payload->assign(bytes.data() + 12, bytes.size() - 12 - 8);
  return Status::Ok();
}

Result<LoadedCheckpoint> ReadCheckpointDir(const std::string& path, uint64_t seq) {
  std::string text;
  OC_RETURN_IF_ERROR(ReadFile(path + "/MANIFEST.json", &text));
  nlohmann::json m = nlohmann::json::parse(text, nullptr, false);
  if (m.is_discarded() || !m.contains("files") || !m["files"].is_array()) {
    return Corruption(path + "/MANIFEST.json: not a checkpoint manifest");
  }
  LoadedCheckpoint out;
  out.info.seq = seq;
  out.info.path = path;
  for (auto& f : m["files"]) {
    if (!f.contains("name") || !f.contains("checksum") || !f["name"].is_string() ||
        !f["checksum"].is_string()) {
      return Corruption(path + "/MANIFEST.json: bad file entry");
    }
    std::string file = path + "/" + f["name"].get<std::string>();
    std::string bytes, payload;
    OC_RETURN_IF_ERROR(ReadFile(file, &bytes));
    uint64_t sum = std::strtoull(f["checksum"].get<std::string>().c_str(), nullptr, 16);
    OC_RETURN_IF_ERROR(VerifyShardFile(file, bytes, sum, &payload));
    out.info.bytes += bytes.size();
    out.shards.push_back(std::move(payload));
  }
  return out;
}

}  // namespace

Result<CheckpointInfo> WriteCheckpoint(const std::string& dir, uint64_t seq, uint32_t server_id,
                                       const std::vector<std::string>& shards, int keep) {
  OC_RETURN_IF_ERROR(MakeDirs(dir));
  const std::string final_path = dir + "/" + SeqName(seq);
  const std::string tmp_path = final_path + ".tmp";
  std::error_code ec;
  fs::remove_all(tmp_path, ec);
  OC_RETURN_IF_ERROR(MakeDirs(tmp_path));
  CheckpointInfo info;
  info.seq = seq;
  info.path = final_path;
  nlohmann::json files = nlohmann::json::array();
  for (size_t i = 0; i < shards.size(); ++i) {
    std::string name = "shard-" + std::to_string(i) + ".bin";
    AtomicFileWriter w;
    OC_RETURN_IF_ERROR(w.Open(tmp_path + "/" + name));
    std::string head(kShardMagic, 8);
    ByteWriter(&head).Put<uint32_t>(kFormatVersion);
    Checksummer sum;
    sum.Update(head.data(), head.size());
    sum.Update(shards[i].data(), shards[i].size());
    uint64_t digest = sum.Digest();
    std::string tail(8, '\0');
    std::memcpy(tail.data(), &digest, 8);
    OC_RETURN_IF_ERROR(w.Append(head));
    OC_RETURN_IF_ERROR(w.Append(shards[i]));
    OC_RETURN_IF_ERROR(w.Append(tail));
    OC_RETURN_IF_ERROR(w.Commit());
    uint64_t bytes = head.size() + shards[i].size() + tail.size();
    info.bytes += bytes;
    files.push_back({{"name", name}, {"bytes", bytes}, {"checksum", Hex(digest)}});
  }
  nlohmann::json manifest = {{"format", "overcast-ps-checkpoint"},
                             {"version", kFormatVersion},
                             {"seq", seq},
                             {"server_id", server_id},
                             {"created_unix", static_cast<int64_t>(std::time(nullptr))},
                             {"files", files}};
  OC_RETURN_IF_ERROR(WriteFileAtomic(tmp_path + "/MANIFEST.json", manifest.dump(2)));
  fs::remove_all(final_path, ec);
  fs::rename(tmp_path, final_path, ec);
  if (ec) return IoError("rename " + tmp_path + ": " + ec.message());
  OC_RETURN_IF_ERROR(FsyncDir(dir));
  auto seqs = ListSeqs(dir, false);
  for (size_t i = static_cast<size_t>(std::max(keep, 1)); i < seqs.size(); ++i) {
    fs::remove_all(dir + "/" + SeqName(seqs[i]), ec);
  }
  return info;
}

Result<LoadedCheckpoint> ReadNewestCheckpoint(const std::string& dir) {
  for (uint64_t seq : ListSeqs(dir, true)) {
    std::string path = dir + "/" + SeqName(seq);
    if (!fs::exists(path)) {
      spdlog::warn("skipping torn checkpoint {}.tmp: it was never completed", path);
      continue;
    }
    auto loaded = ReadCheckpointDir(path, seq);
    if (loaded.ok()) return loaded;
    spdlog::warn("skipping torn checkpoint {}: {}", path, loaded.status().message());
  }
  return NotFound("no valid checkpoint in " + dir);
}

uint64_t HighestCheckpointSeq(const std::string& dir) {
  auto seqs = ListSeqs(dir, true);
  return seqs.empty() ? 0 : seqs.front();
}

}  // namespace overcast::ps
