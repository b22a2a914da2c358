#include "serve/api.h"

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstdint>
#include <iterator>
#include <limits>
#include <optional>
#include <string>
#include <vector>

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <nlohmann/json.hpp>

namespace overcast::serve {

Status ParsePredictRequest(std::string_view body, const ModelInfo& info, SparseBatch* batch,
                           size_t max_rows) {
  nlohmann::json j = nlohmann::json::parse(body, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) return InvalidArgument("request body is not valid JSON");
  if (!j.is_object()) return InvalidArgument("request body must be a JSON object with \"instances\"");
  auto it = j.find("instances");
  if (it == j.end()) it = j.find("rows");
  if (it == j.end() || !it->is_array()) {
    return InvalidArgument("request needs \"instances\": an array of rows");
  }
  if (it->empty()) return InvalidArgument("\"instances\" is empty");
  if (it->size() > max_rows) {
    return InvalidArgument(fmt::format("{} rows in one request, limit is {}", it->size(), max_rows));
  }
  const size_t first = batch->rows();
  size_t r = 0;
  for (const auto& row : *it) {
    auto bad = [&](const std::string& what) {
      return InvalidArgument(fmt::format("row {}: {}", r, what));
    };
    if (row.is_array()) {
      if (row.size() > info.num_features) {
        return bad(fmt::format("dense row of {} values, model '{}' has {} features", row.size(),
                               info.name, info.num_features));
      }
      uint64_t id = 0;
      for (const auto& v : row) {
        if (!v.is_number()) return bad("dense row holds a non-number");
        const float x = v.get<float>();
        if (x != 0.0f) {
          batch->ids.push_back(id);
          batch->values.push_back(x);
        }
        ++id;
      }
    } else if (row.is_object()) {
      auto ids = row.find("ids");
      if (ids == row.end() || !ids->is_array()) return bad("sparse row needs \"ids\": [...]");
      auto vals = row.find("values");
      const bool has_vals = vals != row.end();
      if (has_vals && (!vals->is_array() || vals->size() != ids->size())) {
        return bad("\"values\" must be an array as long as \"ids\"");
      }
      for (size_t k = 0; k < ids->size(); ++k) {
        const auto& id = (*ids)[k];
        if (!id.is_number_unsigned()) {
          return bad("feature ids must be non-negative integers");
        }
        batch->ids.push_back(id.get<uint64_t>());
        if (has_vals) {
          const auto& v = (*vals)[k];
          if (!v.is_number()) return bad("values must be numbers");
          batch->values.push_back(v.get<float>());
        } else {
          batch->values.push_back(1.0f);
        }
      }
    } else {
      return bad("a row is either {\"ids\": [...], \"values\": [...]} or an array of numbers");
    }
    batch->EndRow();
    ++r;
  }
  return ValidateBatch(info, *batch, first);  // only the rows just appended
}

Status CheckPredictOutputs(const ModelInfo& info, const float* outputs, size_t rows) {
  const uint32_t outs = OutputsPerRow(info);
  for (size_t r = 0; r < rows; ++r) {
    for (uint32_t c = 0; c < outs; ++c) {
      if (!std::isfinite(outputs[r * outs + c])) {
        return InvalidArgument(fmt::format(
            "row {}: model '{}' has no finite output for it (its feature values are too large "
            "for the model's weights)",
            r, info.name));
      }
    }
  }
  return Status::Ok();
}

std::string FormatPredictResponse(const ModelInfo& info, const float* outputs, size_t rows) {
  const uint32_t outs = OutputsPerRow(info);
  std::string s;
  s.reserve(32 + rows * (16 + outs * 12));
  s += "{\"model\":\"";
  s += info.name;  // names are checked to be plain at load time by the server
  s += "\",\"predictions\":[";
  for (size_t r = 0; r < rows; ++r) {
    const float* o = outputs + r * outs;
    if (r) s += ',';
    if (info.task == Task::kRegression) {
      fmt::format_to(std::back_inserter(s), "{{\"value\":{}}}", o[0]);
      continue;
    }
    if (info.task == Task::kClustering) {
      fmt::format_to(std::back_inserter(s), "{{\"cluster\":{},\"distance\":{}}}",
                     static_cast<uint32_t>(o[1]), o[0]);
      continue;
    }
    uint32_t best = 0;
    for (uint32_t c = 1; c < outs; ++c)
      if (o[c] > o[best]) best = c;
    fmt::format_to(std::back_inserter(s), "{{\"label\":{},", best);
    if (info.class_values.size() == outs) {
      fmt::format_to(std::back_inserter(s), "\"class\":{},", info.class_values[best]);
    }
    s += "\"probabilities\":[";
    for (uint32_t c = 0; c < outs; ++c) {
      if (c) s += ',';
      fmt::format_to(std::back_inserter(s), "{:.6g}", o[c]);
    }
    s += "]}";
  }
  s += "]}";
  return s;
}

std::string JsonError(int http_code, std::string_view message) {
  // A message may quote the client's bytes (a model name from the path, a query value) that are
  // not UTF-8: DumpJson makes them U+FFFD, so the client still gets its 4xx.
  return DumpJson(
      nlohmann::json{{"error", {{"code", http_code}, {"message", std::string(message)}}}});
}

std::string DumpJson(const nlohmann::json& j) {
  return j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

std::string DumpJson(const nlohmann::ordered_json& j) {
  return j.dump(-1, ' ', false, nlohmann::ordered_json::error_handler_t::replace);
}

std::string HttpReason(int code) {
  switch (code) {
    case 400: return "bad request";
    case 404: return "not found (predict at POST /v1/models/NAME:predict)";
    case 405: return "method not allowed";
    case 413: return "request body too large";
    case 414: return "request URI too long";
    case 431: return "request line and headers too large";
    case 503: return "overloaded or no replica available; retry later";
    default: return "HTTP error " + std::to_string(code);
  }
}

int HttpCodeFor(const Status& s) {
  switch (s.code()) {
    case Code::kOk: return 200;
    case Code::kInvalidArgument: return 400;
    case Code::kNotFound: return 404;
    case Code::kResourceExhausted:
    case Code::kUnavailable: return 503;
    default: return 500;
  }
}

namespace {

// An input tensor's values as V1 number texts, one after another with a comma between them.
class FlatValues {
 public:
  template <typename... Args>
  void Format(fmt::format_string<Args...> f, Args&&... args) {
    Begin();
    fmt::format_to(std::back_inserter(text_), f, std::forward<Args>(args)...);
    ends_.push_back(text_.size());
  }
  void Append(std::string_view token) {
    Begin();
    text_ += token;
    ends_.push_back(text_.size());
  }
  void Clear() {
    text_.clear();
    ends_.clear();
  }
  size_t size() const { return ends_.size(); }
  // Values [first, last) with their commas.
  std::string_view Slice(size_t first, size_t last) const {
    if (first == last) return {};
    const size_t b = first == 0 ? 0 : ends_[first - 1] + 1;
    return std::string_view(text_).substr(b, ends_[last - 1] - b);
  }

 private:
  void Begin() {
    if (!ends_.empty()) text_ += ',';
  }
  std::string text_;
  std::vector<size_t> ends_;
};

// A V2 request read in one pass (nlohmann's SAX interface): everything but the first input's
// "data" becomes a JSON document (`root`), where that "data" is an empty array; its values go
// straight to `values`, each float as the text the body gave it (the replica reads it as it
// would have read the number there), and what else the array held is noted, to be judged once
// the datatype and the shape are known. A wide row of numbers is then neither a document of
// JSON values nor parsed twice into text (README).
class V2Reader {
 public:
  nlohmann::json root;
  FlatValues values;

  // The "data" is values of the datatype (booleans only for BOOL), flat or nested at most as
  // deep as a shape of `dims` dimensions.
  bool DataFits(bool booleans, size_t dims) const {
    return !other_ && (booleans || !booleans_) && max_depth_ <= dims;
  }

  // The SAX interface.
  bool null() { return depth_ == 0 ? Put(nullptr) : Other(); }
  bool boolean(bool b) {
    if (depth_ == 0) return Put(b);
    booleans_ = true;
    values.Append(b ? "1" : "0");
    return true;
  }
  bool number_integer(int64_t x) {
    if (depth_ == 0) return Put(x);
    values.Format("{}", x);
    return true;
  }
  bool number_unsigned(uint64_t x) {
    if (depth_ == 0) return Put(x);
    values.Format("{}", x);
    return true;
  }
  bool number_float(double x, const std::string& text) {
    if (depth_ == 0) return Put(x);
    // The lexer's text holds the locale's decimal point: written again where it is not '.'.
    if (std::all_of(text.begin(), text.end(), [](char c) {
          return (c >= '0' && c <= '9') || c == '.' || c == 'e' || c == 'E' || c == '-' ||
                 c == '+';
        })) {
      values.Append(text);
    } else {
      values.Format("{}", x);
    }
    return true;
  }
  bool string(std::string& text) { return depth_ == 0 ? Put(std::move(text)) : Other(); }
  bool binary(nlohmann::json::binary_t&) { return Other(); }  // not in JSON text
  bool start_object(size_t) {
    if (depth_ > 0) {
      ++depth_;
      return Other();
    }
    stack_.push_back({Add(nlohmann::json::object()), false});
    return true;
  }
  bool key(std::string& k) {
    if (depth_ == 0) key_ = std::move(k);
    return true;
  }
  bool end_object() { return End(); }
  bool start_array(size_t) {
    if (depth_ > 0) {
      max_depth_ = std::max(max_depth_, ++depth_);
      return true;
    }
    // The first input's "data": root -> "inputs" -> its first element -> "data".
    if (key_ == "data" && stack_.size() == 3 && stack_[1].inputs &&
        stack_[1].node->size() == 1 && stack_[2].node->is_object()) {
      values.Clear();  // a key given twice: the last one counts, as in a document
      other_ = booleans_ = false;
      depth_ = max_depth_ = 1;
      return true;
    }
    const bool inputs = stack_.size() == 1 && stack_[0].node->is_object() && key_ == "inputs";
    stack_.push_back({Add(nlohmann::json::array()), inputs});
    return true;
  }
  bool end_array() { return End(); }
  bool parse_error(size_t, const std::string&, const nlohmann::detail::exception&) {
    return false;
  }

 private:
  struct Open {
    nlohmann::json* node;
    bool inputs;  // the root's "inputs"
  };

  // Adds `v` where the document is: the root, the end of the open array, or the open object's
  // last key.
  nlohmann::json* Add(nlohmann::json v) {
    if (stack_.empty()) {
      root = std::move(v);
      return &root;
    }
    nlohmann::json& top = *stack_.back().node;
    if (top.is_array()) {
      top.push_back(std::move(v));
      return &top.back();
    }
    nlohmann::json& slot = top[key_];
    slot = std::move(v);
    return &slot;
  }
  bool Put(nlohmann::json v) {
    Add(std::move(v));
    return true;
  }
  bool Other() {
    other_ = true;
    return true;
  }
  bool End() {
    if (depth_ > 0) {
      if (--depth_ == 0) Add(nlohmann::json::array());  // where "data" is
      return true;
    }
    stack_.pop_back();
    return true;
  }

  std::vector<Open> stack_;
  std::string key_;
  size_t depth_ = 0;  // > 0: inside the first input's "data", this many brackets deep
  size_t max_depth_ = 0;
  bool booleans_ = false, other_ = false;
};

// A V2 datatype this server takes as input: its name, the bytes of one value in binary data,
// and how those bytes read.
struct V2Type {
  enum class Kind { kBool, kUnsigned, kSigned, kFp16, kBf16, kFp32, kFp64 };
  std::string_view name;
  size_t bytes;
  Kind kind;
};
using K = V2Type::Kind;
constexpr V2Type kV2Types[] = {
    {"BOOL", 1, K::kBool},       {"UINT8", 1, K::kUnsigned},  {"UINT16", 2, K::kUnsigned},
    {"UINT32", 4, K::kUnsigned}, {"UINT64", 8, K::kUnsigned}, {"INT8", 1, K::kSigned},
    {"INT16", 2, K::kSigned},    {"INT32", 4, K::kSigned},    {"INT64", 8, K::kSigned},
    {"FP16", 2, K::kFp16},       {"FP32", 4, K::kFp32},       {"FP64", 8, K::kFp64},
    {"BF16", 2, K::kBf16}};

const V2Type* FindV2Type(std::string_view name) {
  for (const V2Type& t : kV2Types) {
    if (t.name == name) return &t;
  }
  return nullptr;
}

// IEEE half precision to single: exact, as every half is a float.
float HalfToFloat(uint16_t h) {
  const bool negative = (h & 0x8000u) != 0;
  const uint32_t exponent = (h >> 10) & 0x1fu, mantissa = h & 0x3ffu;
  if (exponent == 0) {  // zero or subnormal: mantissa x 2^-24
    const float f = std::ldexp(static_cast<float>(mantissa), -24);
    return negative ? -f : f;
  }
  if (exponent == 31) {
    return mantissa != 0 ? std::numeric_limits<float>::quiet_NaN()
                         : (negative ? -1.0f : 1.0f) * std::numeric_limits<float>::infinity();
  }
  return std::bit_cast<float>((negative ? 0x80000000u : 0u) | ((exponent + 112) << 23) |
                              (mantissa << 13));
}

// Binary tensor data (little-endian, row-major) of `type` as V1 numbers, each in the fewest
// digits that read back as the same value (a single-precision type's as a float: the replica
// reads it as a double and computes with it as a float); InvalidArgument at a value JSON cannot
// carry (not finite) or a BOOL byte other than 0 and 1, naming its position.
Status DecodeBinary(const V2Type& type, std::string_view bytes, FlatValues* out) {
  const auto* p = reinterpret_cast<const unsigned char*>(bytes.data());
  const size_t n = bytes.size() / type.bytes;
  const int unused = static_cast<int>(64 - 8 * type.bytes);
  for (size_t i = 0; i < n; ++i, p += type.bytes) {
    uint64_t v = 0;
    for (size_t b = 0; b < type.bytes; ++b) v |= static_cast<uint64_t>(p[b]) << (8 * b);
    double x = 0;
    switch (type.kind) {
      case K::kBool:
        if (v > 1) {
          return InvalidArgument(
              fmt::format("the input's BOOL value {} is byte {}, not 0 or 1", i, v));
        }
        out->Append(v == 1 ? "1" : "0");
        continue;
      case K::kUnsigned:
        out->Format("{}", v);
        continue;
      case K::kSigned:
        out->Format("{}", static_cast<int64_t>(v << unused) >> unused);  // sign-extended
        continue;
      case K::kFp16:
        x = HalfToFloat(static_cast<uint16_t>(v));
        break;
      case K::kBf16:
        x = std::bit_cast<float>(static_cast<uint32_t>(v << 16));
        break;
      case K::kFp32:
        x = std::bit_cast<float>(static_cast<uint32_t>(v));
        break;
      case K::kFp64:
        x = std::bit_cast<double>(v);
        break;
    }
    if (!std::isfinite(x)) {
      return InvalidArgument(fmt::format("the input's {} value {} is not finite", type.name, i));
    }
    if (type.kind == K::kFp64) {
      out->Format("{}", x);
    } else {
      out->Format("{}", static_cast<float>(x));
    }
  }
  return Status::Ok();
}

// Appends the numbers of `data` to `out` as binary tensor data: INT64 when `int64`, else FP32.
void EncodeBinary(bool int64, const nlohmann::ordered_json& data, std::string* out) {
  for (const auto& x : data) {
    const uint64_t v = int64 ? static_cast<uint64_t>(x.get<int64_t>())
                             : std::bit_cast<uint32_t>(x.get<float>());
    for (size_t b = 0; b < (int64 ? 8u : 4u); ++b) out->push_back(static_cast<char>(v >> (8 * b)));
  }
}

// The boolean parameter `key` of `j`'s "parameters" (absent: nullopt); InvalidArgument, naming
// `whose` parameters, when the parameters are not an object or the value not a boolean.
Result<std::optional<bool>> BoolParameter(const nlohmann::json& j, std::string_view key,
                                          std::string_view whose) {
  const auto params = j.find("parameters");
  if (params == j.end()) return std::optional<bool>();
  const auto it = params->is_object() ? params->find(key) : params->end();
  if (!params->is_object() || (it != params->end() && !it->is_boolean())) {
    return InvalidArgument(fmt::format(
        "{} \"parameters\" must be an object, its \"{}\" true or false", whose, key));
  }
  return it == params->end() ? std::optional<bool>() : std::optional<bool>(it->get<bool>());
}

// The output named `name` among `outputs` (V2 output tensors or their metadata);
// InvalidArgument listing them when none is.
Result<const nlohmann::ordered_json*> AskedOutput(const nlohmann::ordered_json& outputs,
                                                  const std::string& name) {
  std::vector<std::string> names;
  for (const auto& o : outputs) {
    if (o.at("name") == name) return &o;
    names.push_back(o.at("name").get<std::string>());
  }
  return InvalidArgument(
      fmt::format("unknown output '{}'; the model's outputs: {}", name, fmt::join(names, ", ")));
}

}  // namespace

Result<std::string> V2InferToV1(std::string_view body, V2Infer* req, V2JsonBytes json_bytes) {
  if (json_bytes && *json_bytes > body.size()) {
    return InvalidArgument(fmt::format(
        "Inference-Header-Content-Length is {} but the body holds {} bytes", *json_bytes,
        body.size()));
  }
  const std::string_view binary = json_bytes ? body.substr(*json_bytes) : std::string_view();
  if (json_bytes) body = body.substr(0, *json_bytes);
  V2Reader reader;
  if (!nlohmann::json::sax_parse(body.begin(), body.end(), &reader)) {
    return InvalidArgument("request body is not valid JSON");
  }
  const nlohmann::json& j = reader.root;
  if (!j.is_object()) return InvalidArgument("request body must be a JSON object with \"inputs\"");
  *req = V2Infer{};
  if (const auto it = j.find("id"); it != j.end()) {
    if (!it->is_string()) return InvalidArgument("\"id\" must be a string");
    req->id = it->get<std::string>();
  }
  OC_ASSIGN_OR_RETURN(const auto binary_outputs,
                      BoolParameter(j, "binary_data_output", "the request's"));
  req->binary_outputs = binary_outputs.value_or(false);
  if (const auto it = j.find("outputs"); it != j.end()) {
    const std::string kWant =
        "\"outputs\" must be an array of objects with a \"name\" each, e.g. "
        "[{\"name\": \"probabilities\"}]";
    if (!it->is_array()) return InvalidArgument(kWant);
    for (const auto& o : *it) {
      const auto name = o.is_object() ? o.find("name") : o.end();
      if (!o.is_object() || name == o.end() || !name->is_string()) return InvalidArgument(kWant);
      OC_ASSIGN_OR_RETURN(auto binary_data, BoolParameter(o, "binary_data", "an output's"));
      req->outputs.push_back({name->get<std::string>(), binary_data});
    }
  }
  const auto inputs = j.find("inputs");
  if (inputs == j.end() || !inputs->is_array() || inputs->size() != 1) {
    return InvalidArgument("request needs \"inputs\": an array of one tensor (the rows' features)");
  }
  const nlohmann::json& in = (*inputs)[0];
  if (!in.is_object()) return InvalidArgument("the input must be an object");
  const auto shape = in.find("shape");
  if (shape == in.end() || !shape->is_array() || shape->empty() || shape->size() > 2 ||
      !std::all_of(shape->begin(), shape->end(),
                   [](const nlohmann::json& d) { return d.is_number_unsigned(); })) {
    return InvalidArgument("the input's \"shape\" must be [ROWS, FEATURES] or [FEATURES]");
  }
  const size_t rows = shape->size() == 2 ? (*shape)[0].get<size_t>() : 1;
  const size_t cols = shape->back().get<size_t>();
  const auto type = in.find("datatype");
  const V2Type* datatype = type != in.end() && type->is_string()
                               ? FindV2Type(type->get<std::string>())
                               : nullptr;
  if (datatype == nullptr) {
    return InvalidArgument(
        "the input's \"datatype\" must be a numeric one (FP32, INT64, ...) or BOOL");
  }
  const auto params = in.find("parameters");
  const auto size = params != in.end() && params->is_object() ? params->find("binary_data_size")
                                                              : in.end();
  if (params != in.end() &&
      (!params->is_object() || (size != params->end() && !size->is_number_unsigned()))) {
    return InvalidArgument(
        "the input's \"parameters\" must be an object, its \"binary_data_size\" a byte count");
  }
  const bool is_binary = params != in.end() && size != params->end();
  if (!is_binary && !binary.empty()) {
    return InvalidArgument(fmt::format(
        "the body holds {} bytes after its JSON but no input has \"binary_data_size\"",
        binary.size()));
  }
  const auto data = in.find("data");
  FlatValues& flat = reader.values;
  if (is_binary) {
    if (!json_bytes) {
      return InvalidArgument(
          "an input with \"binary_data_size\" needs the Inference-Header-Content-Length header "
          "(the length of the JSON before the tensor's bytes)");
    }
    if (data != in.end()) {
      return InvalidArgument("the input has both \"data\" and \"binary_data_size\"");
    }
    const size_t declared = size->get<size_t>();
    if (declared != binary.size()) {
      return InvalidArgument(fmt::format(
          "the input's \"binary_data_size\" is {} but the body holds {} bytes after its JSON",
          declared, binary.size()));
    }
    if (binary.size() % datatype->bytes != 0) {
      return InvalidArgument(fmt::format("the input's {} bytes are not whole {} values",
                                         binary.size(), datatype->name));
    }
    flat.Clear();
    OC_RETURN_IF_ERROR(DecodeBinary(*datatype, binary, &flat));
  } else if (data == in.end() || !data->is_array() ||
             !reader.DataFits(datatype->kind == K::kBool, shape->size())) {
    return InvalidArgument(fmt::format(
        "the input's \"data\" must be {} values, flat or nested as the shape", datatype->name));
  }
  if (rows == 0 || cols == 0 || flat.size() / rows != cols || flat.size() % rows != 0) {
    return InvalidArgument(fmt::format("the input's shape [{}, {}] needs {} values, {} holds {}",
                                       rows, cols, rows * cols,
                                       is_binary ? "its binary data" : "\"data\"", flat.size()));
  }
  // The V1 body: the values' texts as they are, a row's between brackets. (Built as a JSON
  // document, with every float dumped at double precision, it cost the front end 40% of its
  // rate against V1 with 784-feature rows; README.)
  std::string v1 = "{\"instances\":[";
  v1.reserve(v1.size() + flat.Slice(0, flat.size()).size() + 2 * rows + 2);
  for (size_t r = 0; r < rows; ++r) {
    v1 += r == 0 ? "[" : ",[";
    v1 += flat.Slice(r * cols, (r + 1) * cols);
    v1 += ']';
  }
  v1 += "]}";
  return v1;
}

Result<V2Answer> V1AnswerToV2(std::string_view v1_body, const V2Infer& req,
                              const nlohmann::ordered_json* declared) {
  // Ordered: the outputs come in the order of the predictions' fields (label, class, ...).
  const nlohmann::ordered_json j =
      nlohmann::ordered_json::parse(v1_body, nullptr, /*allow_exceptions=*/false);
  const auto preds = j.is_object() ? j.find("predictions") : j.end();
  if (j.is_discarded() || !j.is_object() || preds == j.end() || !preds->is_array() ||
      preds->empty() || !(*preds)[0].is_object()) {
    return Internal("the replica's answer is not a V1 predict answer");
  }
  nlohmann::ordered_json out;
  const auto model = j.find("model");
  out["model_name"] = model != j.end() && model->is_string() ? model->get<std::string>() : "";
  if (!req.id.empty()) out["id"] = req.id;
  nlohmann::ordered_json outputs = nlohmann::ordered_json::array();
  for (const auto& [field, first] : (*preds)[0].items()) {
    const size_t width = first.is_array() ? first.size() : 0;
    nlohmann::ordered_json data = nlohmann::ordered_json::array();
    bool whole = true, numbers = true;
    for (const auto& p : *preds) {
      const auto v = p.find(field);
      if (v == p.end() || v->is_array() != first.is_array() ||
          (v->is_array() && v->size() != width)) {
        return Internal("the replica's predictions differ in shape");
      }
      const auto add = [&](const nlohmann::ordered_json& x) {
        whole = whole && x.is_number_integer();
        numbers = numbers && x.is_number();
        data.push_back(x);
      };
      if (v->is_array()) {
        for (const auto& x : *v) add(x);
      } else {
        add(*v);
      }
    }
    if (!numbers) return Internal("the replica's predictions hold a value that is not a number");
    const bool integer = field == "label" || field == "cluster" || (field == "class" && whole);
    nlohmann::ordered_json o;
    o["name"] = field;
    o["datatype"] = integer ? "INT64" : "FP32";
    // The model's metadata decides, unless it says INT64 of values that are not whole (a model
    // reloaded between the two).
    for (size_t k = 0; declared && k < declared->size(); ++k) {
      const auto& d = (*declared)[k];
      if (d.at("name") == field && (d.at("datatype") != "INT64" || whole)) {
        o["datatype"] = d.at("datatype");
      }
    }
    o["shape"] = first.is_array() ? nlohmann::ordered_json::array({preds->size(), width})
                                  : nlohmann::ordered_json::array({preds->size()});
    o["data"] = std::move(data);
    outputs.push_back(std::move(o));
  }
  std::vector<bool> binary(outputs.size(), req.binary_outputs);
  if (!req.outputs.empty()) {  // only those asked for, in the order asked
    nlohmann::ordered_json picked = nlohmann::ordered_json::array();
    binary.clear();
    for (const V2Infer::Output& asked : req.outputs) {
      OC_ASSIGN_OR_RETURN(const nlohmann::ordered_json* o, AskedOutput(outputs, asked.name));
      picked.push_back(*o);
      binary.push_back(asked.binary.value_or(req.binary_outputs));
    }
    outputs = std::move(picked);
  }
  std::string tail;  // the binary outputs' bytes, in the order of the outputs
  for (size_t k = 0; k < outputs.size(); ++k) {
    if (!binary[k]) continue;
    nlohmann::ordered_json& o = outputs[k];
    const size_t before = tail.size();
    EncodeBinary(o.at("datatype") == "INT64", o.at("data"), &tail);
    o.erase("data");
    o["parameters"] = {{"binary_data_size", tail.size() - before}};
  }
  out["outputs"] = std::move(outputs);
  V2Answer answer{DumpJson(out), std::nullopt};
  if (std::find(binary.begin(), binary.end(), true) != binary.end()) {
    answer.json_bytes = answer.body.size();
    answer.body += tail;
  }
  return answer;
}

nlohmann::ordered_json V2OutputsOf(const ModelInfo& info) {
  nlohmann::ordered_json outputs = nlohmann::ordered_json::array();
  auto output = [&](const char* n, const char* type, nlohmann::json shape) {
    outputs.push_back({{"name", n}, {"datatype", type}, {"shape", std::move(shape)}});
  };
  if (info.task == Task::kRegression) {
    output("value", "FP32", {-1});
  } else if (info.task == Task::kClustering) {
    output("cluster", "INT64", {-1});
    output("distance", "FP32", {-1});
  } else {
    output("label", "INT64", {-1});
    if (!info.class_values.empty()) {
      const bool whole = std::all_of(info.class_values.begin(), info.class_values.end(),
                                     [](double c) { return c == std::floor(c); });
      output("class", whole ? "INT64" : "FP32", {-1});
    }
    output("probabilities", "FP32", {-1, static_cast<int64_t>(OutputsPerRow(info))});
  }
  return outputs;
}

Status CheckV2Outputs(const V2Infer& req, const nlohmann::ordered_json& declared) {
  for (const V2Infer::Output& asked : req.outputs) {
    OC_RETURN_IF_ERROR(AskedOutput(declared, asked.name).status());
  }
  return Status::Ok();
}

std::string V2Error(std::string_view message) {
  return DumpJson(nlohmann::json{{"error", std::string(message)}});
}

std::string V1ErrorToV2(std::string_view v1_body) {
  const nlohmann::json j = nlohmann::json::parse(v1_body, nullptr, /*allow_exceptions=*/false);
  if (j.is_object() && j.contains("error") && j["error"].is_object() &&
      j["error"].contains("message") && j["error"]["message"].is_string()) {
    return V2Error(j["error"]["message"].get<std::string>());
  }
  return V2Error(v1_body);
}

bool ParsePredictPath(std::string_view path, std::string* model) {
  constexpr std::string_view kPrefix = "/v1/models/", kSuffix = ":predict";
  if (path.size() <= kPrefix.size() + kSuffix.size()) return false;
  if (path.substr(0, kPrefix.size()) != kPrefix) return false;
  if (path.substr(path.size() - kSuffix.size()) != kSuffix) return false;
  *model = std::string(path.substr(kPrefix.size(), path.size() - kPrefix.size() - kSuffix.size()));
  return !model->empty() && model->find('/') == std::string::npos;
}

}  // namespace overcast::serve
