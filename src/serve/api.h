// The HTTP/JSON predict API: request bodies to CSR rows, outputs to response bodies, JSON errors.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"
#include "serve/predictor.h"

namespace overcast::serve {

// Request body: {"instances": [ROW, ...]} ("rows" is accepted too), each ROW either sparse
// {"ids": [u64...], "values": [f32...]} (values may be omitted: all 1.0) or a dense array of
// numbers (index = feature id; zeros are skipped). Appends the rows to `batch` and checks them
// against `info`. InvalidArgument with a message that names the row on any problem.
Status ParsePredictRequest(std::string_view body, const ModelInfo& info, SparseBatch* batch,
                           size_t max_rows);

// {"model": NAME, "predictions": [{"label": k, "probabilities": [...]}, ...]} for classifiers
// (plus "class": the label value of class k when the model records them),
// {"model": NAME, "predictions": [{"value": y}, ...]} for regression. `outputs` holds
// rows x OutputsPerRow(info) numbers.
std::string FormatPredictResponse(const ModelInfo& info, const float* outputs, size_t rows);

// InvalidArgument naming the first of `rows` rows whose outputs are not all finite, else Ok.
// Finite feature values can still overflow a model's scores (a feature id repeated in one row,
// values near the float range) into inf or NaN, which JSON cannot carry: such a request gets a
// 400, never a 200 whose body is not JSON.
Status CheckPredictOutputs(const ModelInfo& info, const float* outputs, size_t rows);

// {"error": {"code": HTTP, "message": "..."}}
std::string JsonError(int http_code, std::string_view message);

// A short reason for an HTTP status ("request body too large" for 413, ...).
std::string HttpReason(int http_code);

// The HTTP status a Status maps to: 400 bad input, 404 not found, 503 overload/unavailable, 500.
int HttpCodeFor(const Status& s);

// Parses "/v1/models/NAME:predict" into NAME; false when the path has another shape.
bool ParsePredictPath(std::string_view path, std::string* model);

}  // namespace overcast::serve
