#include "algo/cross.h"

#include <algorithm>
#include <charconv>
#include <vector>

#include "common/hash.h"

namespace overcast::algo {
namespace {

// Parses "AxB[,CxD...]" (',' or '+' between pairs) into `pairs`; the reason on failure.
std::string ParsePairs(const std::string& spec, std::vector<std::pair<uint32_t, uint32_t>>* pairs) {
  size_t start = 0;
  while (start <= spec.size() && !spec.empty()) {
    size_t end = spec.find_first_of(",+", start);
    if (end == std::string::npos) end = spec.size();
    const std::string item = spec.substr(start, end - start);
    const size_t x = item.find('x');
    uint32_t a = 0, b = 0;
    auto num = [](const std::string& t, uint32_t* v) {
      auto r = std::from_chars(t.data(), t.data() + t.size(), *v);
      return !t.empty() && r.ec == std::errc() && r.ptr == t.data() + t.size();
    };
    if (x == std::string::npos || !num(item.substr(0, x), &a) || !num(item.substr(x + 1), &b))
      return "expected field pairs like 0x1,2x3 (AxB: two field numbers), got '" + item + "'";
    pairs->emplace_back(a, b);
    start = end + 1;
  }
  return "";
}

}  // namespace

std::string Crosses::Check(const std::string& spec) {
  std::vector<std::pair<uint32_t, uint32_t>> pairs;
  return ParsePairs(spec, &pairs);
}

Result<Crosses> Crosses::Make(const std::string& spec, uint32_t field_bits, uint32_t bits,
                              uint64_t base) {
  Crosses c;
  if (std::string why = ParsePairs(spec, &c.pairs_); !why.empty())
    return InvalidArgument("cross: " + why);
  if (c.empty()) return c;
  if (field_bits > 31) return InvalidArgument("cross: field_bits must be at most 31");
  if (bits < 1 || bits > 30 || base + (uint64_t{1} << bits) > (uint64_t{1} << 32))
    return InvalidArgument("cross: " + std::to_string(base) + " features plus 2^" +
                           std::to_string(bits) +
                           " crossed ids do not fit 32-bit feature ids (lower cross_bits)");
  c.field_bits_ = field_bits;
  c.bits_ = bits;
  c.base_ = base;
  return c;
}

void Crosses::Expand(const data::Minibatch& in, uint64_t limit, data::OwnedMinibatch* out) const {
  out->labels.assign(in.labels.begin(), in.labels.end());
  out->offsets.assign(1, 0);
  out->ids.clear();
  out->values.clear();
  const uint64_t mask = (uint64_t{1} << bits_) - 1;
  std::vector<std::pair<uint32_t, float>> sorted;  // a row that came out of order, sorted
  std::vector<uint32_t> sorted_ids;
  std::vector<float> sorted_values;
  for (size_t r = 0; r < in.rows(); ++r) {
    const uint32_t* b = in.ids.data() + in.offsets[r];
    const uint32_t* end = in.ids.data() + in.offsets[r + 1];
    const float* v = in.values.data() + in.offsets[r];
    if (!std::is_sorted(b, end)) {  // rows from a request need not be in id order
      sorted.clear();
      for (const uint32_t* i = b; i < end; ++i) sorted.emplace_back(*i, v[i - b]);
      std::sort(sorted.begin(), sorted.end());
      sorted_ids.clear();
      sorted_values.clear();
      for (const auto& [id, x] : sorted) {
        sorted_ids.push_back(id);
        sorted_values.push_back(x);
      }
      b = sorted_ids.data();
      end = b + sorted_ids.size();
      v = sorted_values.data();
    }
    // Entries at or past `limit` sit at the end of the (increasing) row: cut them off.
    const uint32_t* e = std::lower_bound(b, end, limit);
    out->ids.insert(out->ids.end(), b, e);
    out->values.insert(out->values.end(), v, v + (e - b));
    // A field's entries are a contiguous run of the increasing ids.
    auto run = [&](uint32_t f) {
      const uint64_t lo = uint64_t{f} << field_bits_, hi = (uint64_t{f} + 1) << field_bits_;
      const uint32_t* first = std::lower_bound(b, e, lo);
      return std::make_pair(first, std::lower_bound(first, e, hi));
    };
    for (const auto& [fa, fb] : pairs_) {
      const auto [a0, a1] = run(fa);
      if (a0 == a1) continue;
      const auto [b0, b1] = run(fb);
      for (const uint32_t* i = a0; i < a1; ++i)
        // A field crossed with itself pairs each two distinct entries once.
        for (const uint32_t* j = fa == fb ? i + 1 : b0; j < b1; ++j) {
          const uint64_t h = MixKey((uint64_t{*i} << 32) | *j) & mask;
          out->ids.push_back(static_cast<uint32_t>(base_ + h));
          out->values.push_back(v[i - b] * v[j - b]);
        }
    }
    out->offsets.push_back(out->ids.size());
  }
  out->view.epoch = in.epoch;
  out->view.index = in.index;
  out->Refresh();
}

}  // namespace overcast::algo
