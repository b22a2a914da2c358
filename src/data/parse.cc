#include "data/parse.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstring>

#include "common/hash.h"

namespace overcast::data {

Result<Format> ParseFormat(std::string_view name) {
  if (name == "libsvm" || name == "svmlight") return Format::kLibsvm;
  if (name == "csv") return Format::kCsv;
  if (name == "ratings") return Format::kRatings;
  return InvalidArgument("unknown format \"" + std::string(name) +
                         "\": expected libsvm, csv or ratings");
}

std::string_view FormatName(Format format) {
  switch (format) {
    case Format::kLibsvm: return "libsvm";
    case Format::kCsv: return "csv";
    case Format::kRatings: return "ratings";
  }
  return "?";
}

void LabelStats::AddSlow(float v) {
  min = std::min<double>(min, v);
  max = std::max<double>(max, v);
  if (all_integer && v != std::nearbyint(v)) all_integer = false;
  if (too_many) return;
  auto it = std::lower_bound(distinct.begin(), distinct.end(), v);
  if (it != distinct.end() && *it == v) return;
  if (distinct.size() >= kMaxDistinct) {
    too_many = true;
    distinct.clear();
    distinct.shrink_to_fit();
    return;
  }
  distinct.insert(it, v);
}

void LabelStats::Merge(const LabelStats& o) {
  if (o.count == 0) return;
  count += o.count;
  min = std::min(min, o.min);
  max = std::max(max, o.max);
  all_integer = all_integer && o.all_integer;
  if (too_many) return;
  if (o.too_many) {
    too_many = true;
    distinct.clear();
    return;
  }
  for (float v : o.distinct) {
    if (too_many) break;
    auto it = std::lower_bound(distinct.begin(), distinct.end(), v);
    if (it != distinct.end() && *it == v) continue;
    if (distinct.size() >= kMaxDistinct) {
      too_many = true;
      distinct.clear();
      break;
    }
    distinct.insert(it, v);
  }
}

namespace {

inline bool IsBlank(char c) { return c == ' ' || c == '\t'; }

// How a token looks in a message: quoted, cut at 24 bytes, odd bytes as \xNN.
std::string Shown(const char* b, const char* e) {
  if (b >= e) return "end of line";
  std::string s = "\"";
  size_t n = 0;
  for (const char* p = b; p < e && n < 24; ++p, ++n) {
    auto c = static_cast<unsigned char>(*p);
    if (c < 0x20 || c >= 0x7f || c == '"' || c == '\\') {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\x%02x", c);
      s += buf;
    } else {
      s += static_cast<char>(c);
    }
  }
  if (e - b > 24) s += "...";
  return s + "\"";
}

// The token at p: up to the next blank or the end of the line.
inline const char* TokenEnd(const char* p, const char* e) {
  while (p < e && !IsBlank(*p)) ++p;
  return p;
}

enum class NumStatus { kOk, kNotNumber, kNotFinite, kOutOfRange };

// Parses [b, e) entirely as a float; a leading '+' is accepted (LIBSVM labels are often "+1").
inline NumStatus ParseFloat(const char* b, const char* e, float* out) {
  if (b < e && *b == '+') ++b;
  if (b == e) return NumStatus::kNotNumber;
  {
    // Fast path for plain decimals ("0.123456", "-3", "255"): with at most 7 significant
    // digits the mantissa m is exact in a float, as is 10^k for k <= 10, so the one IEEE
    // division m / 10^k is correctly rounded, the same result as from_chars (Clinger 1990).
    static constexpr float kPow10[] = {1e0f, 1e1f, 1e2f, 1e3f, 1e4f, 1e5f,
                                       1e6f, 1e7f, 1e8f, 1e9f, 1e10f};
    const char* p = b;
    const bool neg = *p == '-';
    p += neg;
    uint32_t m = 0;
    int digits = 0, frac = 0;
    const char* int_start = p;
    while (p < e && static_cast<unsigned>(*p - '0') < 10) {
      m = m * 10 + static_cast<unsigned>(*p - '0');
      digits += (m != 0);
      ++p;
    }
    bool any = p > int_start;
    if (p < e && *p == '.') {
      const char* f = ++p;
      while (p < e && static_cast<unsigned>(*p - '0') < 10) {
        m = m * 10 + static_cast<unsigned>(*p - '0');
        digits += (m != 0);
        ++p;
      }
      frac = static_cast<int>(p - f);
      any |= p > f;
    }
    if (p == e && any && digits <= 7 && frac <= 10) {
      float v = static_cast<float>(m) / kPow10[frac];
      *out = neg ? -v : v;
      return NumStatus::kOk;
    }
  }
  auto [ptr, ec] = std::from_chars(b, e, *out);
  if (ec == std::errc::result_out_of_range) return NumStatus::kOutOfRange;
  if (ec != std::errc() || ptr != e) return NumStatus::kNotNumber;
  if (!std::isfinite(*out)) return NumStatus::kNotFinite;
  return NumStatus::kOk;
}

// Parses leading decimal digits; returns the end of the digits (== b if none). Saturates at
// 2^63 so a long run of digits is "too large", never a wrapped small number.
inline const char* ParseDigits(const char* b, const char* e, uint64_t* out) {
  uint64_t v = 0;
  const char* p = b;
  while (p < e && static_cast<unsigned>(*p - '0') < 10) {
    v = v > (uint64_t{1} << 59) ? (uint64_t{1} << 63) : v * 10 + static_cast<unsigned>(*p - '0');
    ++p;
  }
  *out = v;
  return p;
}

std::string NumberError(NumStatus st, const char* what, const char* b, const char* e) {
  std::string exp = st == NumStatus::kNotFinite    ? std::string("a finite ") + what
                    : st == NumStatus::kOutOfRange ? std::string("a ") + what +
                                                         " within float range"
                                                   : std::string("a numeric ") + what;
  return "expected " + exp + ", found " + Shown(b, e);
}

// Where a line failed: the column (pointer into the line) and the message.
struct LineError {
  const char* at = nullptr;
  std::string message;
};

// ---- LIBSVM: label [qid:n] index:value ... [# comment] ----------------------------------------

// Returns false with *err set on a bad line; true otherwise (*skip set for blank/comment lines).
bool ParseLibsvmLine(const char* b, const char* e, ParsedChunk* out, bool* skip, LineError* err) {
  const char* p = b;
  while (p < e && IsBlank(*p)) ++p;
  if (p == e || *p == '#') {
    *skip = true;
    return true;
  }
  *skip = false;
  const char* te = TokenEnd(p, e);
  float label;
  if (NumStatus st = ParseFloat(p, te, &label); st != NumStatus::kOk) {
    *err = {p, NumberError(st, "label", p, te)};
    return false;
  }
  Partition& rows = out->rows;
  const size_t start = rows.ids.size();
  uint64_t prev = 0;
  p = te;
  for (;;) {
    while (p < e && IsBlank(*p)) ++p;
    if (p == e || *p == '#') break;
    const char* tok = p;
    te = TokenEnd(p, e);
    if (te - p > 4 && std::memcmp(p, "qid:", 4) == 0) {  // ranking query ids: ignored
      p = te;
      continue;
    }
    uint64_t index;
    const char* d = ParseDigits(p, te, &index);
    if (d == p) {
      *err = {p, "expected a feature index (an integer >= 1), found " + Shown(p, te)};
      goto fail;
    }
    if (d == te) {
      *err = {d, "expected ':' and a value after feature index " + Shown(p, d) + ", found " +
                     (te == e ? "end of line" : "a blank")};
      goto fail;
    }
    if (*d != ':') {
      *err = {d, "expected ':' after feature index, found " + Shown(d, te)};
      goto fail;
    }
    if (index == 0) {
      *err = {tok, "expected a feature index >= 1 (LIBSVM indices are 1-based), found " +
                       Shown(tok, d)};
      goto fail;
    }
    if (index > (uint64_t{1} << 32)) {
      *err = {tok, "expected a feature index <= 4294967296, found " + Shown(tok, d)};
      goto fail;
    }
    if (index <= prev) {
      *err = {tok, "expected feature indices in increasing order, found " +
                       std::to_string(index) + " after " + std::to_string(prev)};
      goto fail;
    }
    float v;
    if (NumStatus st = ParseFloat(d + 1, te, &v); st != NumStatus::kOk) {
      *err = {d + 1, NumberError(st, "feature value", d + 1, te)};
      goto fail;
    }
    prev = index;
    rows.ids.push_back(static_cast<uint32_t>(index - 1));
    rows.values.push_back(v);
    p = te;
  }
  rows.labels.push_back(label);
  rows.offsets.push_back(rows.ids.size());
  out->labels.Add(label);
  if (prev > out->id_limit) out->id_limit = prev;  // id limit = last index (ids are index-1)
  return true;
fail:
  rows.ids.resize(start);
  rows.values.resize(start);
  return false;
}

// ---- CSV --------------------------------------------------------------------------------------

// Returns the offset of the first byte that is not valid UTF-8, or npos.
size_t FindInvalidUtf8(const char* b, const char* e) {
  const auto* p = reinterpret_cast<const unsigned char*>(b);
  const auto* end = reinterpret_cast<const unsigned char*>(e);
  while (p < end) {
    // ASCII fast path, 8 bytes at a time.
    while (end - p >= 8) {
      uint64_t w;
      std::memcpy(&w, p, 8);
      if (w & 0x8080808080808080ULL) break;
      p += 8;
    }
    if (p >= end) break;
    unsigned c = *p;
    if (c < 0x80) {
      ++p;
      continue;
    }
    int n;
    unsigned min;
    if ((c & 0xe0) == 0xc0) {
      n = 1, min = 0x80;
    } else if ((c & 0xf0) == 0xe0) {
      n = 2, min = 0x800;
    } else if ((c & 0xf8) == 0xf0) {
      n = 3, min = 0x10000;
    } else {
      return static_cast<size_t>(reinterpret_cast<const char*>(p) - b);
    }
    if (end - p <= n) return static_cast<size_t>(reinterpret_cast<const char*>(p) - b);
    unsigned cp = c & (0x3f >> n);
    for (int i = 1; i <= n; ++i) {
      if ((p[i] & 0xc0) != 0x80) return static_cast<size_t>(reinterpret_cast<const char*>(p) - b);
      cp = (cp << 6) | (p[i] & 0x3f);
    }
    if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) {
      return static_cast<size_t>(reinterpret_cast<const char*>(p) - b);
    }
    p += n + 1;
  }
  return std::string::npos;
}

// Splits one CSV line into fields (RFC 4180 quoting, without newlines inside quotes). Calls
// fn(index, begin, end, field_start) per field, where [begin, end) is the unquoted value (quoted
// values with "" are unescaped into `scratch`). Returns false with *err on a malformed line.
template <typename Fn>
bool SplitCsv(const char* b, const char* e, char delim, std::string* scratch, LineError* err,
              Fn&& fn) {
  const char* p = b;
  size_t index = 0;
  for (;;) {
    const char* field = p;
    const char* vb;
    const char* ve;
    if (p < e && *p == '"') {
      scratch->clear();
      ++p;
      for (;;) {
        const char* q = static_cast<const char*>(std::memchr(p, '"', static_cast<size_t>(e - p)));
        if (!q) {
          *err = {e, "expected a closing quote for the field at column " +
                         std::to_string(field - b + 1) + ", found end of line"};
          return false;
        }
        scratch->append(p, q);
        if (q + 1 < e && q[1] == '"') {
          scratch->push_back('"');
          p = q + 2;
          continue;
        }
        p = q + 1;
        break;
      }
      if (p < e && *p != delim) {
        *err = {p, std::string("expected '") + delim + "' after a quoted field, found " +
                       Shown(p, TokenEnd(p, e))};
        return false;
      }
      vb = scratch->data();
      ve = vb + scratch->size();
    } else {
      const char* q = static_cast<const char*>(std::memchr(p, delim, static_cast<size_t>(e - p)));
      ve = q ? q : e;
      vb = p;
      p = ve;
    }
    if (!fn(index, vb, ve, field)) return false;
    ++index;
    if (p >= e) break;
    ++p;  // the delimiter
  }
  return true;
}

bool ParseCsvLine(const CsvLayout& L, const char* b, const char* e, ParsedChunk* out,
                  std::string* scratch, std::vector<uint32_t>* cats, bool* skip, LineError* err) {
  const char* p = b;
  while (p < e && IsBlank(*p)) ++p;
  if (p == e) {
    *skip = true;
    return true;
  }
  *skip = false;
  if (size_t bad = FindInvalidUtf8(b, e); bad != std::string::npos) {
    char buf[8];
    std::snprintf(buf, sizeof buf, "0x%02x", static_cast<unsigned char>(b[bad]));
    *err = {b + bad, std::string("expected UTF-8 text, found byte ") + buf};
    return false;
  }
  Partition& rows = out->rows;
  const size_t start = rows.ids.size();
  float label = 0;
  cats->clear();
  const size_t ncols = L.num_columns();
  const uint64_t mask_shift = 64 - static_cast<unsigned>(L.hash_bits);
  size_t fields = 0;
  bool ok = SplitCsv(b, e, L.delimiter, scratch, err,
                     [&](size_t i, const char* vb, const char* ve, const char* field) {
    fields = i + 1;
    if (i >= ncols) {
      *err = {field, "expected " + std::to_string(ncols) + " fields, found more"};
      return false;
    }
    // Surrounding blanks are not part of a number ("1, 2" is common).
    const char* nb = vb;
    const char* ne = ve;
    while (nb < ne && IsBlank(*nb)) ++nb;
    while (ne > nb && IsBlank(ne[-1])) --ne;
    switch (L.kinds[i]) {
      case CsvLayout::Kind::kLabel: {
        NumStatus st = ParseFloat(nb, ne, &label);
        if (st != NumStatus::kOk) {
          *err = {field, NumberError(st, "label", nb, ne) + " in label column " + L.names[i]};
          return false;
        }
        return true;
      }
      case CsvLayout::Kind::kNumeric: {
        if (nb == ne) return true;  // missing: the feature is absent from this row
        float v;
        NumStatus st = ParseFloat(nb, ne, &v);
        if (st != NumStatus::kOk) {
          *err = {field, NumberError(st, "value", nb, ne) + " in numeric column " + L.names[i] +
                             " (list it in --categorical if it is a category)"};
          return false;
        }
        rows.ids.push_back(L.feature_id[i]);
        rows.values.push_back(v);
        return true;
      }
      case CsvLayout::Kind::kCategorical: {
        if (vb == ve) return true;  // missing category
        uint64_t h = MixKey(Checksum64(vb, static_cast<size_t>(ve - vb)) ^ L.column_salt[i]);
        cats->push_back(L.num_numeric + static_cast<uint32_t>(h >> mask_shift));
        return true;
      }
      case CsvLayout::Kind::kIgnored:
        return true;
    }
    return true;
  });
  if (ok && fields < ncols) {
    *err = {e, "expected " + std::to_string(ncols) + " fields, found " + std::to_string(fields)};
    ok = false;
  }
  if (!ok) {
    rows.ids.resize(start);
    rows.values.resize(start);
    return false;
  }
  // Hashed ids: sorted, and a collision inside one row counts twice (value 2).
  std::sort(cats->begin(), cats->end());
  for (size_t k = 0; k < cats->size(); ++k) {
    if (k > 0 && (*cats)[k] == (*cats)[k - 1]) {
      rows.values.back() += 1.0f;
      continue;
    }
    rows.ids.push_back((*cats)[k]);
    rows.values.push_back(1.0f);
  }
  if (rows.ids.size() > start) {
    out->id_limit = std::max<uint64_t>(out->id_limit, uint64_t{rows.ids.back()} + 1);
  }
  rows.labels.push_back(label);
  rows.offsets.push_back(rows.ids.size());
  out->labels.Add(label);
  return true;
}

// ---- ratings: user item rating [timestamp], separated by blanks, ',' or "::" ----------------

bool ParseRatingsLine(const char* b, const char* e, ParsedChunk* out, bool* skip, LineError* err) {
  static const char* const kField[] = {"a user id", "an item id", "a rating", "a timestamp"};
  const char* p = b;
  while (p < e && IsBlank(*p)) ++p;
  if (p == e || *p == '#') {
    *skip = true;
    return true;
  }
  *skip = false;
  uint64_t user = 0, item = 0;
  float rating = 0;
  int n = 0;
  while (p < e) {
    if (n == 4) {
      *err = {p, "expected end of line after the timestamp, found " + Shown(p, TokenEnd(p, e))};
      return false;
    }
    const char* fe = p;
    while (fe < e && !IsBlank(*fe) && *fe != ',' && !(*fe == ':' && fe + 1 < e && fe[1] == ':')) {
      ++fe;
    }
    if (fe == p) {
      *err = {p, std::string("expected ") + kField[n] + ", found " +
                     (p < e ? Shown(p, p + 1) : "end of line")};
      return false;
    }
    if (n == 0 || n == 1) {
      uint64_t v;
      const char* d = ParseDigits(p, fe, &v);
      if (d != fe || d == p || v > kMaxRatingsId) {
        *err = {p, std::string("expected ") + kField[n] + " (an integer in [0, 2147483647]), found " +
                       Shown(p, fe)};
        return false;
      }
      (n == 0 ? user : item) = v;
    } else if (n == 2) {
      if (NumStatus st = ParseFloat(p, fe, &rating); st != NumStatus::kOk) {
        *err = {p, NumberError(st, "rating", p, fe)};
        return false;
      }
    } else {
      uint64_t ts;
      if (ParseDigits(p, fe, &ts) != fe) {
        *err = {p, "expected a timestamp (an integer), found " + Shown(p, fe)};
        return false;
      }
    }
    ++n;
    // One separator: blanks, or blanks around ',' / "::".
    p = fe;
    while (p < e && IsBlank(*p)) ++p;
    if (p < e && *p == ',') {
      ++p;
    } else if (p + 1 < e && *p == ':' && p[1] == ':') {
      p += 2;
    } else if (p == fe && p < e) {
      *err = {p, "expected a separator (blank, ',' or \"::\"), found " + Shown(p, p + 1)};
      return false;
    } else {
      continue;  // blanks separated this field from the next (or the line ended)
    }
    while (p < e && IsBlank(*p)) ++p;
    if (p == e) {
      *err = {p, std::string("expected ") + kField[n < 4 ? n : 3] + " after the separator, found end of line"};
      return false;
    }
  }
  if (n < 3) {
    *err = {e, std::string("expected ") + kField[n] + " (a line is: user item rating [timestamp])" +
                   ", found end of line"};
    return false;
  }
  uint32_t ids[2] = {static_cast<uint32_t>(2 * user), static_cast<uint32_t>(2 * item + 1)};
  if (ids[0] > ids[1]) std::swap(ids[0], ids[1]);
  const float ones[2] = {1.0f, 1.0f};
  out->rows.AddRow(rating, ids, ones);
  out->labels.Add(rating);
  out->id_limit = std::max<uint64_t>(out->id_limit, uint64_t{ids[1]} + 1);
  out->max_user = std::max(out->max_user, user);
  out->max_item = std::max(out->max_item, item);
  out->any_rating = true;
  return true;
}

}  // namespace

void ParseChunk(const ParserConfig& config, std::string_view text, uint64_t first_line,
                ParsedChunk* out) {
  const char* p = text.data();
  const char* end = p + text.size();
  // A guess that saves most regrowth: ~8 text bytes per stored entry.
  out->rows.ids.reserve(out->rows.ids.size() + text.size() / 8);
  out->rows.values.reserve(out->rows.values.size() + text.size() / 8);
  std::string scratch;
  std::vector<uint32_t> cats;
  uint64_t line = first_line;
  for (; p < end; ++line) {
    const char* nl = static_cast<const char*>(std::memchr(p, '\n', static_cast<size_t>(end - p)));
    const char* le = nl ? nl : end;
    const char* next = nl ? nl + 1 : end;
    if (le > p && le[-1] == '\r') --le;  // CR-LF
    bool skip = false;
    LineError err;
    bool ok = false;
    switch (config.format) {
      case Format::kLibsvm: ok = ParseLibsvmLine(p, le, out, &skip, &err); break;
      case Format::kCsv:
        ok = ParseCsvLine(config.csv, p, le, out, &scratch, &cats, &skip, &err);
        break;
      case Format::kRatings: ok = ParseRatingsLine(p, le, out, &skip, &err); break;
    }
    if (!ok) {
      ++out->bad_lines;
      if (out->errors.size() < ParsedChunk::kMaxSamples) {
        out->errors.push_back({line, static_cast<uint64_t>(err.at - p) + 1, std::move(err.message)});
      }
      if (!config.skip_bad_lines) return;
    }
    p = next;
  }
  out->lines = line - first_line;
}

// ---- CSV layout -------------------------------------------------------------------------------

namespace {

std::vector<std::string> SplitHeader(std::string_view line, char delim, std::string* error) {
  std::vector<std::string> fields;
  std::string scratch;
  LineError err;
  if (!SplitCsv(line.data(), line.data() + line.size(), delim, &scratch, &err,
                [&](size_t, const char* b, const char* e, const char*) {
                  fields.emplace_back(b, e);
                  return true;
                })) {
    *error = err.message;
  }
  return fields;
}

}  // namespace

bool RatingsLineIsHeader(std::string_view line) {
  const char* p = line.data();
  const char* e = p + line.size();
  while (p < e && IsBlank(*p)) ++p;
  uint64_t v;
  const char* d = ParseDigits(p, e, &v);
  return d == p && p < e && *p != '#';
}

Result<CsvLayout> ResolveCsvLayout(std::string_view first_line, const CsvOptions& o,
                                   const std::string& source) {
  if (!first_line.empty() && first_line.back() == '\r') first_line.remove_suffix(1);
  if (size_t bad = FindInvalidUtf8(first_line.data(), first_line.data() + first_line.size());
      bad != std::string::npos) {
    char buf[8];
    std::snprintf(buf, sizeof buf, "0x%02x", static_cast<unsigned char>(first_line[bad]));
    return InvalidArgument(source + ":1:" + std::to_string(bad + 1) +
                           ": expected UTF-8 text, found byte " + buf);
  }
  std::string split_error;
  std::vector<std::string> fields = SplitHeader(first_line, o.delimiter, &split_error);
  if (!split_error.empty()) return InvalidArgument(source + ":1: " + split_error);
  if (o.hash_bits < 1 || o.hash_bits > 31) {
    return InvalidArgument("--hash-bits " + std::to_string(o.hash_bits) +
                           ": expected a number of bits in [1, 31]");
  }
  CsvLayout L;
  L.delimiter = o.delimiter;
  L.hash_bits = o.hash_bits;
  const size_t ncols = fields.size();
  if (o.header == "yes") {
    L.has_header = true;
  } else if (o.header == "no") {
    L.has_header = false;
  } else if (o.header == "auto") {
    bool any_number = false;
    for (const std::string& f : fields) {
      float v;
      std::string_view t(f);
      while (!t.empty() && IsBlank(t.front())) t.remove_prefix(1);
      while (!t.empty() && IsBlank(t.back())) t.remove_suffix(1);
      any_number |= ParseFloat(t.data(), t.data() + t.size(), &v) == NumStatus::kOk;
    }
    L.has_header = !any_number;
  } else {
    return InvalidArgument("--header " + o.header + ": expected auto, yes or no");
  }
  for (size_t i = 0; i < ncols; ++i) {
    L.names.push_back(L.has_header ? fields[i] : "column" + std::to_string(i));
  }
  // A column reference: a header name, a 0-based index, or (in lists) a range "a-b".
  auto resolve = [&](const std::string& ref, const char* flag,
                     std::vector<size_t>* out) -> Status {
    uint64_t a, b;
    const char* s = ref.data();
    const char* e = s + ref.size();
    const char* d = ParseDigits(s, e, &a);
    if (d != s && d == e) {
      if (a >= ncols) {
        return InvalidArgument(std::string(flag) + " " + ref + ": column index out of range (" +
                               source + " has " + std::to_string(ncols) + " columns, 0-based)");
      }
      out->push_back(a);
      return Status::Ok();
    }
    if (d != s && d < e && *d == '-') {
      const char* d2 = ParseDigits(d + 1, e, &b);
      if (d2 == e && d2 != d + 1 && a <= b && b < ncols) {
        for (uint64_t i = a; i <= b; ++i) out->push_back(i);
        return Status::Ok();
      }
    }
    for (size_t i = 0; i < ncols; ++i) {
      if (L.has_header && L.names[i] == ref) {
        out->push_back(i);
        return Status::Ok();
      }
    }
    return InvalidArgument(std::string(flag) + " " + ref + ": no such column in " + source +
                           (L.has_header ? "" : " (it has no header: use 0-based indices)"));
  };
  std::vector<size_t> label_cols, cat_cols, ignore_cols;
  OC_RETURN_IF_ERROR(resolve(o.label_column, "--label-column", &label_cols));
  for (const auto& c : o.categorical) OC_RETURN_IF_ERROR(resolve(c, "--categorical", &cat_cols));
  for (const auto& c : o.ignore) OC_RETURN_IF_ERROR(resolve(c, "--ignore", &ignore_cols));
  L.label_column = label_cols[0];
  L.kinds.assign(ncols, CsvLayout::Kind::kNumeric);
  for (size_t c : cat_cols) L.kinds[c] = CsvLayout::Kind::kCategorical;
  for (size_t c : ignore_cols) L.kinds[c] = CsvLayout::Kind::kIgnored;
  L.kinds[L.label_column] = CsvLayout::Kind::kLabel;
  L.feature_id.assign(ncols, 0);
  L.column_salt.assign(ncols, 0);
  for (size_t i = 0; i < ncols; ++i) {
    L.column_salt[i] = MixKey(i + 0x9e3779b97f4a7c15ULL);
    if (L.kinds[i] == CsvLayout::Kind::kNumeric) L.feature_id[i] = L.num_numeric++;
  }
  if (L.num_features() > (uint64_t{1} << 32)) {
    return InvalidArgument("--hash-bits " + std::to_string(o.hash_bits) +
                           " with " + std::to_string(L.num_numeric) +
                           " numeric columns exceeds 2^32 feature ids");
  }
  return L;
}

}  // namespace overcast::data
