#include "algo/model.h"

#include <sys/stat.h>

#include <cstring>

#include "common/bytes.h"
#include "common/fs.h"
#include "common/hash.h"

namespace overcast::algo {
namespace {
constexpr char kMagic[8] = {'O', 'C', 'M', 'O', 'D', 'E', 'L', '1'};
constexpr uint32_t kVersion = 1;
}  // namespace

std::string EncodeModel(const Model& model) {
  std::string out;
  ByteWriter w(&out);
  w.PutBytes(kMagic, 8);
  w.Put<uint32_t>(kVersion);
  w.Put<uint32_t>(0);  // flags, reserved
  w.PutString(model.algorithm);
  w.PutString(model.meta.dump());
  w.Put<uint32_t>(static_cast<uint32_t>(model.tables.size()));
  for (const auto& [name, t] : model.tables) {
    w.PutString(name);
    w.Put<uint64_t>(t.rows);
    w.Put<uint32_t>(t.dim);
    w.PutArray<float>(t.data);
  }
  w.Put<uint64_t>(Checksum64(out.data(), out.size()));
  return out;
}

Result<Model> DecodeModel(std::string_view bytes, const std::string& source) {
  auto bad = [&](const std::string& why) {
    return InvalidArgument(source + ": not a valid overcast model file: " + why);
  };
  if (bytes.size() < 8 + 8 + 8 || std::memcmp(bytes.data(), kMagic, 8) != 0)
    return bad("bad magic (expected OCMODEL1)");
  uint64_t stored;
  std::memcpy(&stored, bytes.data() + bytes.size() - 8, 8);
  if (Checksum64(bytes.data(), bytes.size() - 8) != stored) return bad("checksum mismatch");
  ByteReader r(bytes.data() + 8, bytes.size() - 16);
  uint32_t version, flags;
  if (!r.Get(&version).ok() || !r.Get(&flags).ok()) return bad("truncated header");
  if (version != kVersion) return bad("version " + std::to_string(version) + " (this build reads 1)");
  Model m;
  std::string meta;
  if (!r.GetString(&m.algorithm).ok() || !r.GetString(&meta, 1u << 30).ok())
    return bad("truncated metadata");
  m.meta = nlohmann::json::parse(meta, nullptr, false);
  if (m.meta.is_discarded() || !m.meta.is_object()) return bad("metadata is not a JSON object");
  uint32_t n;
  if (!r.Get(&n).ok()) return bad("truncated table count");
  for (uint32_t i = 0; i < n; ++i) {
    std::string name;
    ModelTable t;
    if (!r.GetString(&name).ok() || !r.Get(&t.rows).ok() || !r.Get(&t.dim).ok())
      return bad("truncated table header");
    if (t.dim == 0 || t.rows > r.remaining() / 4 / t.dim) return bad("table " + name + " truncated");
    t.data.resize(t.rows * t.dim);
    const char* p = nullptr;
    if (!r.GetView(t.data.size(), 4, &p).ok()) return bad("table " + name + " truncated");
    std::memcpy(t.data.data(), p, t.data.size() * 4);
    m.tables[name] = std::move(t);
  }
  if (r.remaining() != 0) return bad("trailing bytes");
  return m;
}

Status SaveModel(const std::string& path, const Model& model) {
  OC_RETURN_IF_ERROR(WriteFileAtomic(path, EncodeModel(model)));
  nlohmann::json side = model.meta;
  side["algorithm"] = model.algorithm;
  nlohmann::json tables = nlohmann::json::object();
  for (const auto& [name, t] : model.tables) tables[name] = {{"rows", t.rows}, {"dim", t.dim}};
  side["tables"] = tables;
  return WriteFileAtomic(path + ".json", side.dump(2) + "\n");
}

Result<Model> LoadModel(const std::string& path) {
  struct stat st;
  if (::stat(path.c_str(), &st) != 0) return NotFound("model file " + path + " does not exist");
  std::string bytes;
  Status s = ReadFile(path, &bytes);
  if (!s.ok()) return InvalidArgument("cannot read model " + path + ": " + s.message());
  return DecodeModel(bytes, path);
}

Result<Scorer> Scorer::Open(Model model, const std::string& source) {
  auto bad = [&](const std::string& why) { return InvalidArgument("model " + source + ": " + why); };
  Scorer s;
  s.model_ = std::make_unique<Model>(std::move(model));
  const Model& m = *s.model_;
  const auto registry = BuiltinAlgorithms();
  auto found = FindAlgorithm(registry, m.algorithm);
  if (!found.ok()) return bad(found.status().message());
  const AlgorithmInfo* info = *found;
  auto params = Params::FromJson(info->params, m.meta.value("params", nlohmann::json::object()),
                                 m.algorithm);
  if (!params.ok()) return bad(params.status().message());
  try {
    s.info_ = DataInfoFromManifest(m.meta);
  } catch (const std::exception& e) {
    return bad(std::string("dataset metadata: ") + e.what());
  }
  auto algorithm = info->create(*params, s.info_);
  if (!algorithm.ok()) return bad(algorithm.status().message());
  s.algorithm_ = std::move(*algorithm);
  for (const auto& [name, t] : m.tables) {
    if (t.rows == 0) return bad("table '" + name + "' is empty");
  }

  const nlohmann::json norm = m.meta.value("normalization", nlohmann::json());
  if (norm.is_object()) {
    try {
      const auto ids = norm.at("feature_ids").get<std::vector<uint64_t>>();
      const auto shift = norm.at("shift").get<std::vector<float>>();
      const auto scale = norm.at("scale").get<std::vector<float>>();
      if (ids.size() != shift.size() || ids.size() != scale.size())
        return bad("normalization arrays of different lengths");
      uint64_t limit = 0;
      for (uint64_t id : ids) limit = std::max(limit, id + 1);
      if (limit > (uint64_t{1} << 32)) return bad("normalization feature id beyond 2^32");
      s.shift_.assign(limit, 0.0f);
      s.scale_.assign(limit, 1.0f);
      for (size_t i = 0; i < ids.size(); ++i) {
        s.shift_[ids[i]] = shift[i];
        s.scale_[ids[i]] = scale[i];
      }
    } catch (const std::exception& e) {
      return bad(std::string("normalization: ") + e.what());
    }
  }

  // A probe row with no features: an algorithm whose tables are missing throws here rather
  // than in the middle of serving.
  const float label = 0;
  const uint64_t offsets[2] = {0, 0};
  data::Minibatch probe;
  probe.labels = std::span<const float>(&label, 1);
  probe.offsets = offsets;
  std::vector<float> out(s.outputs());
  try {
    s.Predict(probe, out.data());
  } catch (const std::exception& e) {
    return bad(std::string("tables do not fit algorithm ") + m.algorithm + ": " + e.what());
  }
  return s;
}

Result<Scorer> Scorer::Load(const std::string& path) {
  OC_ASSIGN_OR_RETURN(Model m, LoadModel(path));
  return Open(std::move(m), path);
}

void Scorer::Normalize(std::span<const uint32_t> ids, std::span<float> values) const {
  const size_t limit = shift_.size();
  for (size_t e = 0; e < ids.size(); ++e) {
    const uint32_t id = ids[e];
    if (id < limit) values[e] = (values[e] - shift_[id]) * scale_[id];
  }
}

}  // namespace overcast::algo
