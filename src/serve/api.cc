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
  nlohmann::json j = {{"error", {{"code", http_code}, {"message", std::string(message)}}}};
  // A message may quote the client's bytes (a model name from the path, a query value) that are
  // not UTF-8: they become U+FFFD rather than an exception, so the client still gets its 4xx.
  return j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
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

bool ParsePredictPath(std::string_view path, std::string* model) {
  constexpr std::string_view kPrefix = "/v1/models/", kSuffix = ":predict";
  if (path.size() <= kPrefix.size() + kSuffix.size()) return false;
  if (path.substr(0, kPrefix.size()) != kPrefix) return false;
  if (path.substr(path.size() - kSuffix.size()) != kSuffix) return false;
  *model = std::string(path.substr(kPrefix.size(), path.size() - kPrefix.size() - kSuffix.size()));
  return !model->empty() && model->find('/') == std::string::npos;
}

}  // namespace overcast::serve
