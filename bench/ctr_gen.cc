// The CTR generator: Zipf values per field, hashed one-hot features, a true logistic model with
// pairwise interactions, labels drawn from it, and the Bayes-optimal log-loss of each split.
#include "bench/ctr_gen.h"

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <optional>
#include <string>
#include <vector>

#include "common/hash.h"

namespace overcast::bench {
namespace {

uint64_t SplitMix(uint64_t x) {
  x += 0x9e3779b97f4a7c15ULL;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}

// A uniform double in (0, 1) from 53 bits of a hash.
double Unit(uint64_t h) { return (static_cast<double>(h >> 11) + 0.5) * 0x1.0p-53; }

// A standard normal that is a pure function of `key` (Box-Muller on two hashes of it).
double Gauss(uint64_t key) {
  const double u1 = Unit(SplitMix(key)), u2 = Unit(SplitMix(key ^ 0x5bd1e995ULL));
  return std::sqrt(-2.0 * std::log(u1)) * std::cos(6.283185307179586 * u2);
}

uint64_t Key(uint64_t seed, uint64_t a, uint64_t b, uint64_t c = 0, uint64_t d = 0) {
  uint64_t h = SplitMix(seed ^ 0x243f6a8885a308d3ULL);
  for (uint64_t v : {a, b, c, d}) h = SplitMix(h ^ v);
  return h;
}

// The model, fixed by the options and the seed: vocabularies, Zipf tables, weights by hashing.
struct Model {
  const CtrGenOptions& o;
  std::vector<std::vector<double>> cdf;  // per field: cumulative P(rank <= r)

  explicit Model(const CtrGenOptions& opt) : o(opt) {
    cdf.resize(o.fields);
    for (uint32_t f = 0; f < o.fields; ++f) {
      const double t = o.fields > 1 ? static_cast<double>(f) / (o.fields - 1) : 0.0;
      const auto v = static_cast<uint32_t>(
          std::lround(o.min_vocab * std::pow(double(o.max_vocab) / o.min_vocab, t)));
      auto& c = cdf[f];
      c.resize(std::max<uint32_t>(v, 1));
      double s = 0;
      for (size_t r = 0; r < c.size(); ++r) c[r] = (s += std::pow(double(r + 1), -o.zipf));
      for (double& x : c) x /= s;
    }
  }
  uint32_t Draw(uint32_t f, double u) const {
    const auto& c = cdf[f];
    return static_cast<uint32_t>(
        std::min<size_t>(std::upper_bound(c.begin(), c.end(), u) - c.begin(), c.size() - 1));
  }
  double Weight(uint32_t f, uint32_t v) const {
    return o.weight_std * Gauss(Key(o.seed, 1, f, v));
  }
  double Pair(uint32_t f, uint32_t v, uint32_t g, uint32_t w) const {
    return o.pair_std * Gauss(Key(o.seed, 2, (uint64_t(f) << 32) | g, v, w));
  }
  uint32_t Index(uint32_t f, uint32_t v) const {
    if (o.field_bits > 0)
      return 1 + static_cast<uint32_t>((uint64_t{f} << o.field_bits) |
                                       (Key(o.seed, 3, f, v) & ((1ULL << o.field_bits) - 1)));
    return 1 + static_cast<uint32_t>(Key(o.seed, 3, f, v) & ((1ULL << o.hash_bits) - 1));
  }
};

char* PutUint(char* p, uint32_t v) {
  char tmp[12];
  int n = 0;
  do {
    tmp[n++] = static_cast<char>('0' + v % 10);
    v /= 10;
  } while (v);
  while (n) *p++ = tmp[--n];
  return p;
}

struct SplitFigures {
  uint64_t rows = 0, nnz = 0, positives = 0;
  double entropy_sum = 0;   // sum of H(p_i): the Bayes-optimal log-loss times rows
  double oracle_sum = 0;    // sum of -log P(y_i | p_i): the true model's log-loss on the labels
  uint64_t crossed_nnz = 0;  // entries of the crossed copy, when one is written
};

// One LIBSVM output written through a buffer to a temporary name, renamed when complete.
class SvmFile {
 public:
  explicit SvmFile(const std::string& path) : path_(path), tmp_(path + ".tmp"), buf_(1 << 22) {
    out_ = std::fopen(tmp_.c_str(), "wb");
    if (!out_) st_ = ErrnoStatus("open " + tmp_, errno);
  }
  ~SvmFile() {
    if (out_) std::fclose(out_);
    if (!done_) std::remove(tmp_.c_str());
  }
  const Status& status() const { return st_; }

  // One row: the label, then `feats` (index, value), which must be ascending.
  void Row(int y, const std::vector<std::pair<uint32_t, uint32_t>>& feats) {
    if (!st_.ok()) return;
    if (used_ + 16 * (feats.size() + 2) > buf_.size()) Flush();
    char* p0 = buf_.data() + used_;
    char* q = p0;
    *q++ = static_cast<char>('0' + y);
    for (auto [idx, cnt] : feats) {
      *q++ = ' ';
      q = PutUint(q, idx);
      *q++ = ':';
      q = PutUint(q, cnt);
    }
    *q++ = '\n';
    used_ += static_cast<size_t>(q - p0);
  }

  Status Close() {
    Flush();
    if (out_ && std::fclose(out_) != 0 && st_.ok()) st_ = ErrnoStatus("close " + tmp_, errno);
    out_ = nullptr;
    if (st_.ok() && std::rename(tmp_.c_str(), path_.c_str()) != 0)
      st_ = ErrnoStatus("rename " + tmp_ + " to " + path_, errno);
    done_ = st_.ok();
    return st_;
  }

 private:
  void Flush() {
    if (st_.ok() && used_ && std::fwrite(buf_.data(), 1, used_, out_) != used_)
      st_ = ErrnoStatus("write " + tmp_, errno);
    used_ = 0;
  }

  std::string path_, tmp_;
  std::vector<char> buf_;
  size_t used_ = 0;
  std::FILE* out_ = nullptr;
  Status st_ = Status::Ok();
  bool done_ = false;
};

// Sorts (index, count) pairs and sums the counts of equal indices (a hash collision inside a
// row adds up); liblinear requires ascending indices.
void Merge(std::vector<std::pair<uint32_t, uint32_t>>* feats) {
  std::sort(feats->begin(), feats->end());
  size_t w = 0;
  for (size_t j = 0; j < feats->size(); ++j) {
    if (w > 0 && (*feats)[w - 1].first == (*feats)[j].first) {
      (*feats)[w - 1].second += (*feats)[j].second;
    } else {
      (*feats)[w++] = (*feats)[j];
    }
  }
  feats->resize(w);
}

// Writes `rows` rows to `path` and, when `crossed_path` is not empty, the same rows with one
// more feature per interacting pair (CtrGenOptions::cross_train_path).
Status WriteSplit(const Model& m, const std::string& path, const std::string& crossed_path,
                  uint64_t rows, uint64_t stream, SplitFigures* fig) {
  SvmFile out(path);
  std::optional<SvmFile> crossed;
  if (!crossed_path.empty()) crossed.emplace(crossed_path);
  OC_RETURN_IF_ERROR(out.status());
  if (crossed) OC_RETURN_IF_ERROR(crossed->status());
  const uint32_t cross_base = 1 + (m.o.fields << m.o.field_bits);
  const uint64_t cross_mask = (uint64_t{1} << m.o.cross_bits) - 1;
  std::vector<uint32_t> value(m.o.fields);
  std::vector<std::pair<uint32_t, uint32_t>> feats;  // (index, count)
  for (uint64_t i = 0; i < rows && out.status().ok(); ++i) {
    uint64_t h = Key(m.o.seed, 4 + stream, i);
    double logit = m.o.bias;
    feats.clear();
    for (uint32_t f = 0; f < m.o.fields; ++f) {
      h = SplitMix(h);
      value[f] = m.Draw(f, Unit(h));
      logit += m.Weight(f, value[f]);
      feats.emplace_back(m.Index(f, value[f]), 1);
    }
    for (uint32_t k = 0; k < m.o.pairs && 2 * k + 1 < m.o.fields; ++k)
      logit += m.Pair(2 * k, value[2 * k], 2 * k + 1, value[2 * k + 1]);
    const double p = 1.0 / (1.0 + std::exp(-logit));
    const int y = Unit(SplitMix(h ^ 0xa5a5a5a5ULL)) < p ? 1 : 0;
    fig->entropy_sum += -(p * std::log(p) + (1 - p) * std::log1p(-p));
    fig->oracle_sum += -(y ? std::log(p) : std::log1p(-p));
    fig->positives += y;
    Merge(&feats);
    fig->nnz += feats.size();
    out.Row(y, feats);
    if (crossed) {
      for (uint32_t k = 0; k < m.o.pairs && 2 * k + 1 < m.o.fields; ++k) {
        const uint64_t a = m.Index(2 * k, value[2 * k]), b = m.Index(2 * k + 1, value[2 * k + 1]);
        feats.emplace_back(cross_base + static_cast<uint32_t>(MixKey((a << 32) | b) & cross_mask),
                           1);
      }
      Merge(&feats);
      fig->crossed_nnz += feats.size();
      crossed->Row(y, feats);
    }
  }
  fig->rows = rows;
  OC_RETURN_IF_ERROR(out.Close());
  if (crossed) OC_RETURN_IF_ERROR(crossed->Close());
  return Status::Ok();
}

nlohmann::json Figures(const SplitFigures& f) {
  const double n = std::max<double>(1, f.rows);
  nlohmann::json j = {{"rows", f.rows},
          {"nnz", f.nnz},
          {"positive_rate", f.positives / n},
          {"optimal_logloss", f.entropy_sum / n},
          {"true_model_logloss", f.oracle_sum / n}};
  if (f.crossed_nnz) j["crossed_nnz"] = f.crossed_nnz;
  return j;
}

}  // namespace

Status GenerateCtr(const CtrGenOptions& o, nlohmann::json* summary) {
  if (o.fields == 0 || o.min_vocab == 0 || o.max_vocab < o.min_vocab)
    return InvalidArgument("gen-ctr: need fields >= 1 and 1 <= min_vocab <= max_vocab");
  if (o.hash_bits < 8 || o.hash_bits > 31)
    return InvalidArgument("gen-ctr: hash_bits must be in 8..31");
  if (o.field_bits > 0 &&
      (o.field_bits > 30 || (uint64_t{o.fields} << o.field_bits) >= (1ULL << 31)))
    return InvalidArgument("gen-ctr: fields x 2^field_bits must be below 2^31");
  if (o.train_path.empty() || o.test_path.empty())
    return InvalidArgument("gen-ctr: --train and --test output paths are required");
  if (o.cross_train_path.empty() != o.cross_test_path.empty())
    return InvalidArgument("gen-ctr: --cross-train and --cross-test go together");
  if (!o.cross_train_path.empty() &&
      (o.field_bits == 0 || o.cross_bits < 1 || o.cross_bits > 30 ||
       (uint64_t{o.fields} << o.field_bits) + 1 + (uint64_t{1} << o.cross_bits) >= (1ULL << 31)))
    return InvalidArgument(
        "gen-ctr: crossed copies need --field-bits > 0 and fields x 2^field_bits + "
        "2^cross_bits below 2^31");
  const Model m(o);
  SplitFigures train, test;
  OC_RETURN_IF_ERROR(WriteSplit(m, o.train_path, o.cross_train_path, o.rows, 0, &train));
  OC_RETURN_IF_ERROR(WriteSplit(m, o.test_path, o.cross_test_path, o.test_rows, 1, &test));
  nlohmann::json vocab = nlohmann::json::array();
  for (const auto& c : m.cdf) vocab.push_back(c.size());
  *summary = {{"model",
               {{"fields", o.fields},
                {"vocab", vocab},
                {"zipf", o.zipf},
                {"hash_bits", o.hash_bits},
                {"field_bits", o.field_bits},
                {"bias", o.bias},
                {"weight_std", o.weight_std},
                {"pairs", o.pairs},
                {"pair_std", o.pair_std},
                {"seed", o.seed}}},
              {"train", Figures(train)},
              {"test", Figures(test)},
              {"train_path", o.train_path},
              {"test_path", o.test_path}};
  if (!o.cross_train_path.empty()) {
    (*summary)["model"]["cross_bits"] = o.cross_bits;
    (*summary)["cross_train_path"] = o.cross_train_path;
    (*summary)["cross_test_path"] = o.cross_test_path;
  }
  return Status::Ok();
}

}  // namespace overcast::bench
