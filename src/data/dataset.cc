#include "data/dataset.h"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <random>

namespace overcast::data {

using nlohmann::json;

std::string DatasetPrefix(const std::string& name) { return "datasets/" + name + "/"; }
std::string ManifestObject(const std::string& name) { return DatasetPrefix(name) + "manifest.json"; }

Status ValidateDatasetName(const std::string& name) {
  auto ok_char = [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           c == '.' || c == '_' || c == '-';
  };
  bool ok = !name.empty() && name.size() <= 128 && ok_char(name[0]) && name[0] != '.' &&
            name[0] != '_' && name[0] != '-';
  for (char c : name) ok = ok && ok_char(c);
  if (!ok) {
    return InvalidArgument("invalid dataset name \"" + name +
                           "\": expected letters, digits, '.', '_' or '-', starting with a "
                           "letter or digit, at most 128 characters");
  }
  return Status::Ok();
}

std::string_view SplitName(Split split) { return split == Split::kTrain ? "train" : "test"; }

Result<Split> ParseSplit(std::string_view name) {
  if (name == "train") return Split::kTrain;
  if (name == "test") return Split::kTest;
  return InvalidArgument("unknown split \"" + std::string(name) + "\": expected train or test");
}

uint64_t Manifest::rows(Split split) const {
  uint64_t n = 0;
  for (const auto& p : partitions) n += p.split == split ? p.rows : 0;
  return n;
}

uint64_t Manifest::nnz(Split split) const {
  uint64_t n = 0;
  for (const auto& p : partitions) n += p.split == split ? p.nnz : 0;
  return n;
}

std::vector<const PartitionRef*> Manifest::PartitionsOf(Split split) const {
  std::vector<const PartitionRef*> out;
  for (const auto& p : partitions) {
    if (p.split == split) out.push_back(&p);
  }
  return out;
}

std::string ChecksumHex(uint64_t checksum) {
  char buf[24];
  std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(checksum));
  return buf;
}

Result<uint64_t> ParseChecksumHex(const std::string& hex) {
  if (hex.size() != 16) return Corruption("checksum \"" + hex + "\" is not 16 hex digits");
  uint64_t v = 0;
  for (char c : hex) {
    int d = (c >= '0' && c <= '9') ? c - '0' : (c >= 'a' && c <= 'f') ? c - 'a' + 10 : -1;
    if (d < 0) return Corruption("checksum \"" + hex + "\" is not 16 hex digits");
    v = v << 4 | static_cast<uint64_t>(d);
  }
  return v;
}

Result<Manifest> ManifestFromJson(const std::string& name, const json& doc) {
  const std::string where = "dataset " + name + ": manifest: ";
  try {
    if (doc.value("format", "") != "overcast-dataset") return Corruption(where + "not a manifest");
    if (doc.at("version").get<int>() != 1) {
      return Corruption(where + "unsupported version " + doc.at("version").dump());
    }
    Manifest m;
    m.name = name;
    m.num_features = doc.at("num_features").get<uint64_t>();
    m.num_classes = doc.at("num_classes").get<uint64_t>();
    for (const json& p : doc.at("partitions")) {
      PartitionRef ref;
      const std::string object = p.at("object").get<std::string>();
      OC_RETURN_IF_ERROR(ValidateObjectName(object));
      if (object.find('/') != std::string::npos) return Corruption(where + "bad object " + object);
      ref.object = DatasetPrefix(name) + object;
      auto split = ParseSplit(p.at("split").get<std::string>());
      if (!split.ok()) return Corruption(where + split.status().message());
      ref.split = *split;
      ref.rows = p.at("rows").get<uint64_t>();
      ref.nnz = p.at("nnz").get<uint64_t>();
      ref.bytes = p.at("bytes").get<uint64_t>();
      OC_ASSIGN_OR_RETURN(ref.checksum, ParseChecksumHex(p.at("checksum").get<std::string>()));
      m.partitions.push_back(std::move(ref));
    }
    m.json = doc;
    return m;
  } catch (const json::exception& e) {
    return Corruption(where + e.what());
  }
}

Result<Manifest> ReadManifest(Store& store, const std::string& name) {
  OC_RETURN_IF_ERROR(ValidateDatasetName(name));
  std::string bytes;
  Status st = store.Get(ManifestObject(name), &bytes);
  if (st.code() == Code::kNotFound) {
    return NotFound("no dataset \"" + name + "\" in store " + store.Describe());
  }
  OC_RETURN_IF_ERROR(st);
  json doc = json::parse(bytes, nullptr, /*allow_exceptions=*/false);
  if (doc.is_discarded()) return Corruption("dataset " + name + ": manifest is not valid JSON");
  return ManifestFromJson(name, doc);
}

Status ReadPartition(Store& store, const Manifest& manifest, const PartitionRef& ref,
                     Partition* out, std::string* scratch) {
  const std::string where = "dataset " + manifest.name + ": partition " + ref.object;
  Status st = store.Get(ref.object, scratch);
  if (!st.ok()) return Status(st.code() == Code::kNotFound ? Code::kCorruption : st.code(),
                              where + ": " + st.message());
  st = DecodePartition(*scratch, ref.checksum, manifest.num_features, out);
  if (!st.ok()) return Corruption(where + ": " + st.message());
  if (out->rows() != ref.rows || out->nnz() != ref.nnz) {
    return Corruption(where + ": holds " + std::to_string(out->rows()) + " rows, " +
                      std::to_string(out->nnz()) + " entries; the manifest says " +
                      std::to_string(ref.rows) + " and " + std::to_string(ref.nnz));
  }
  return Status::Ok();
}

Status ListDatasets(Store& store, std::vector<std::string>* names) {
  names->clear();
  std::vector<std::string> objects;
  OC_RETURN_IF_ERROR(store.List("datasets/", &objects));
  const std::string suffix = "/manifest.json";
  for (const auto& o : objects) {
    if (o.size() > 9 + suffix.size() && o.compare(o.size() - suffix.size(), suffix.size(), suffix) == 0) {
      std::string n = o.substr(9, o.size() - 9 - suffix.size());
      if (n.find('/') == std::string::npos) names->push_back(n);
    }
  }
  return Status::Ok();
}

Status RemoveDataset(Store& store, const std::string& name) {
  OC_RETURN_IF_ERROR(ValidateDatasetName(name));
  OC_RETURN_IF_ERROR(store.Remove(ManifestObject(name)));
  std::vector<std::string> objects;
  OC_RETURN_IF_ERROR(store.List(DatasetPrefix(name), &objects));
  for (const auto& o : objects) OC_RETURN_IF_ERROR(store.Remove(o));
  return Status::Ok();
}

// ---- DatasetWriter ----------------------------------------------------------------------------

DatasetWriter::DatasetWriter(Store* store, std::string name, Options options, std::string run)
    : store_(store), name_(std::move(name)), options_(options), run_(std::move(run)) {}

Result<std::unique_ptr<DatasetWriter>> DatasetWriter::Create(Store* store, const std::string& name,
                                                             const Options& options) {
  OC_RETURN_IF_ERROR(ValidateDatasetName(name));
  std::string bytes;
  Status st = store->Get(ManifestObject(name), &bytes);
  if (st.ok() && !options.overwrite) {
    return InvalidArgument("dataset \"" + name + "\" already exists in store " +
                           store->Describe() + " (pass --overwrite to replace it)");
  }
  if (!st.ok() && st.code() != Code::kNotFound) return st;
  if (st.code() == Code::kNotFound) {
    // Partitions without a manifest are what a crashed writer leaves: not a dataset, remove.
    std::vector<std::string> stale;
    OC_RETURN_IF_ERROR(store->List(DatasetPrefix(name), &stale));
    for (const auto& o : stale) OC_RETURN_IF_ERROR(store->Remove(o));
  }
  // A run id keeps these partitions apart from those of the dataset being replaced.
  std::random_device rd;
  uint64_t r = (uint64_t{rd()} << 32 | rd()) ^
               static_cast<uint64_t>(std::chrono::steady_clock::now().time_since_epoch().count());
  char run[16];
  std::snprintf(run, sizeof run, "%08llx", static_cast<unsigned long long>(r & 0xffffffffULL));
  return std::unique_ptr<DatasetWriter>(new DatasetWriter(store, name, options, run));
}

DatasetWriter::~DatasetWriter() {
  if (!committed_) Abort();
}

void DatasetWriter::Abort() {
  std::lock_guard<std::mutex> lock(mu_);
  for (const auto& o : written_) (void)store_->Remove(o);
  written_.clear();
}

Result<PartitionRef> DatasetWriter::WritePartition(Split split, uint64_t index, const Partition& p,
                                                   std::string* scratch) {
  char file[64];
  std::snprintf(file, sizeof file, "%s-%s-%05llu.ocp", run_.c_str(), SplitName(split).data(),
                static_cast<unsigned long long>(index));
  PartitionRef ref;
  ref.object = DatasetPrefix(name_) + file;
  ref.split = split;
  ref.rows = p.rows();
  ref.nnz = p.nnz();
  OC_ASSIGN_OR_RETURN(ref.checksum,
                      EncodePartition(p, options_.compression, options_.zstd_level, scratch));
  ref.bytes = scratch->size();
  {
    // Recorded before the Put, so a Put that fails half-way is still cleaned up.
    std::lock_guard<std::mutex> lock(mu_);
    written_.push_back(ref.object);
  }
  OC_RETURN_IF_ERROR(store_->Put(ref.object, *scratch));
  return ref;
}

Status DatasetWriter::Commit(json manifest, std::vector<PartitionRef> partitions) {
  std::sort(partitions.begin(), partitions.end(), [](const auto& a, const auto& b) {
    return std::make_pair(a.split, a.object) < std::make_pair(b.split, b.object);
  });
  const std::string prefix = DatasetPrefix(name_);
  json parts = json::array();
  uint64_t rows[2] = {0, 0}, nnz[2] = {0, 0};
  for (const auto& p : partitions) {
    parts.push_back({{"object", p.object.substr(prefix.size())},
                     {"split", SplitName(p.split)},
                     {"rows", p.rows},
                     {"nnz", p.nnz},
                     {"bytes", p.bytes},
                     {"checksum", ChecksumHex(p.checksum)}});
    rows[static_cast<int>(p.split)] += p.rows;
    nnz[static_cast<int>(p.split)] += p.nnz;
  }
  manifest["format"] = "overcast-dataset";
  manifest["version"] = 1;
  manifest["name"] = name_;
  manifest["feature_id_type"] = "uint32";
  manifest["compression"] = options_.compression == Compression::kZstd ? "zstd" : "none";
  manifest["rows"] = {{"train", rows[0]}, {"test", rows[1]}};
  manifest["nnz"] = {{"train", nnz[0]}, {"test", nnz[1]}};
  manifest["partitions"] = std::move(parts);
  manifest["created_unix"] = std::chrono::duration_cast<std::chrono::seconds>(
                                 std::chrono::system_clock::now().time_since_epoch())
                                 .count();

  // The old partitions (when replacing) are those not written by this run.
  std::vector<std::string> before;
  OC_RETURN_IF_ERROR(store_->List(prefix, &before));
  OC_RETURN_IF_ERROR(store_->Put(ManifestObject(name_), manifest.dump(1)));
  committed_ = true;
  std::vector<std::string> mine;
  {
    std::lock_guard<std::mutex> lock(mu_);
    mine = written_;
  }
  std::sort(mine.begin(), mine.end());
  for (const auto& o : before) {
    if (o == ManifestObject(name_) || std::binary_search(mine.begin(), mine.end(), o)) continue;
    (void)store_->Remove(o);  // best effort: the new manifest no longer names it
  }
  return Status::Ok();
}

}  // namespace overcast::data
