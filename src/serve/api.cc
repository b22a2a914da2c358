#include "serve/api.h"

#include <algorithm>
#include <cmath>

#include <fmt/format.h>
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

// Appends the numbers of `data` (arrays nested at most `depth` deep holding numbers, or
// booleans when `booleans`) to `out` in row-major order; false at anything else. The bound keeps
// a body of nested brackets from running the stack out.
bool Flatten(const nlohmann::json& data, bool booleans, size_t depth,
             std::vector<nlohmann::json>* out) {
  if (data.is_array()) {
    if (depth == 0) return false;
    for (const auto& d : data) {
      if (!Flatten(d, booleans, depth - 1, out)) return false;
    }
    return true;
  }
  if (booleans && data.is_boolean()) {
    out->push_back(data.get<bool>() ? 1 : 0);
    return true;
  }
  if (!data.is_number()) return false;
  out->push_back(data);
  return true;
}

}  // namespace

Result<std::string> V2InferToV1(std::string_view body, std::string* id) {
  const nlohmann::json j = nlohmann::json::parse(body, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) return InvalidArgument("request body is not valid JSON");
  if (!j.is_object()) return InvalidArgument("request body must be a JSON object with \"inputs\"");
  id->clear();
  if (const auto it = j.find("id"); it != j.end()) {
    if (!it->is_string()) return InvalidArgument("\"id\" must be a string");
    *id = it->get<std::string>();
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
  static constexpr std::string_view kTypes[] = {"BOOL",  "UINT8", "UINT16", "UINT32", "UINT64",
                                                "INT8",  "INT16", "INT32",  "INT64",  "FP16",
                                                "FP32",  "FP64",  "BF16"};
  const auto type = in.find("datatype");
  if (type == in.end() || !type->is_string() ||
      std::find(std::begin(kTypes), std::end(kTypes), type->get<std::string>()) ==
          std::end(kTypes)) {
    return InvalidArgument(
        "the input's \"datatype\" must be a numeric one (FP32, INT64, ...) or BOOL");
  }
  const std::string datatype = type->get<std::string>();
  const auto data = in.find("data");
  std::vector<nlohmann::json> flat;
  if (data == in.end() || !data->is_array() ||
      !Flatten(*data, datatype == "BOOL", shape->size(), &flat)) {
    return InvalidArgument(fmt::format(
        "the input's \"data\" must be {} values, flat or nested as the shape", datatype));
  }
  if (rows == 0 || cols == 0 || flat.size() / rows != cols || flat.size() % rows != 0) {
    return InvalidArgument(
        fmt::format("the input's shape [{}, {}] needs {} values, \"data\" holds {}", rows, cols,
                    rows * cols, flat.size()));
  }
  nlohmann::json instances = nlohmann::json::array();
  for (size_t r = 0; r < rows; ++r) {
    nlohmann::json row = nlohmann::json::array();
    for (size_t k = r * cols; k < (r + 1) * cols; ++k) row.push_back(std::move(flat[k]));
    instances.push_back(std::move(row));
  }
  return DumpJson(nlohmann::json{{"instances", std::move(instances)}});
}

Result<std::string> V1AnswerToV2(std::string_view v1_body, const std::string& id) {
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
  if (!id.empty()) out["id"] = id;
  nlohmann::ordered_json outputs = nlohmann::ordered_json::array();
  for (const auto& [field, first] : (*preds)[0].items()) {
    const size_t width = first.is_array() ? first.size() : 0;
    nlohmann::ordered_json data = nlohmann::ordered_json::array();
    bool whole = true;
    for (const auto& p : *preds) {
      const auto v = p.find(field);
      if (v == p.end() || v->is_array() != first.is_array() ||
          (v->is_array() && v->size() != width)) {
        return Internal("the replica's predictions differ in shape");
      }
      const auto add = [&](const nlohmann::ordered_json& x) {
        whole = whole && x.is_number_integer();
        data.push_back(x);
      };
      if (v->is_array()) {
        for (const auto& x : *v) add(x);
      } else {
        add(*v);
      }
    }
    const bool integer = field == "label" || field == "cluster" || (field == "class" && whole);
    nlohmann::ordered_json o;
    o["name"] = field;
    o["datatype"] = integer ? "INT64" : "FP32";
    o["shape"] = first.is_array() ? nlohmann::ordered_json::array({preds->size(), width})
                                  : nlohmann::ordered_json::array({preds->size()});
    o["data"] = std::move(data);
    outputs.push_back(std::move(o));
  }
  out["outputs"] = std::move(outputs);
  return DumpJson(out);
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
