// The HTTP/JSON predict API: request bodies to CSR rows, outputs to response bodies, JSON errors.
#pragma once

#include <nlohmann/json_fwd.hpp>
#include <optional>
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

// `j` as compact text; bytes that are not UTF-8 (a client's model name, a target, a name from a
// model file's metadata) become U+FFFD rather than an exception, so the answer is still JSON.
std::string DumpJson(const nlohmann::json& j);
std::string DumpJson(const nlohmann::ordered_json& j);

// A short reason for an HTTP status ("request body too large" for 413, ...).
std::string HttpReason(int http_code);

// The HTTP status a Status maps to: 400 bad input, 404 not found, 503 overload/unavailable, 500.
int HttpCodeFor(const Status& s);

// Parses "/v1/models/NAME:predict" into NAME; false when the path has another shape.
bool ParsePredictPath(std::string_view path, std::string* model);

// KServe's V2 (Open Inference) protocol, translated to and from the V1 bodies above: the front
// end translates, the replicas answer V1 alone.
//
// What a V2 infer request asks beside its rows: its "id" ("" when it has none), the outputs in
// its "outputs" ([{"name": ..., "parameters"?: {"binary_data": bool}}, ...]; none: every
// output), and whether outputs not named come back as binary data (the request's
// "parameters": {"binary_data_output": true}).
struct V2Infer {
  struct Output {
    std::string name;
    std::optional<bool> binary;  // its "binary_data", when given
  };
  std::string id;
  std::vector<Output> outputs;
  bool binary_outputs = false;
};

// V2's binary tensor data extension (KServe, Triton): a body whose first `json_bytes` bytes are
// the JSON request (the Inference-Header-Content-Length header) and the rest the tensors'
// bytes, little-endian and row-major, in the order of the inputs that have a
// "parameters": {"binary_data_size": BYTES}. Absent: the body is all JSON.
using V2JsonBytes = std::optional<size_t>;

// The V1 body of a V2 infer request {"id"?, "inputs": [{"name", "shape", "datatype", "data"}],
// "outputs"?, "parameters"?}: its one input, of shape [N, F] (or [F]: one row) and a numeric
// or BOOL datatype, with its data flat in row-major order or nested (or as binary data), as N
// dense rows. What else it asks in *req. InvalidArgument naming what is wrong.
Result<std::string> V2InferToV1(std::string_view body, V2Infer* req,
                                V2JsonBytes json_bytes = std::nullopt);

// A V2 infer answer: its body, and when some outputs are binary data, the length of the JSON
// that begins it (the answer's Inference-Header-Content-Length; the tensors' bytes follow).
struct V2Answer {
  std::string body;
  V2JsonBytes json_bytes;
};

// A V1 predict answer as V2's {"model_name", "id", "outputs": [...]}: each field of the
// predictions becomes one output, N values (a number per row) or N x K (an array of K per row):
// each output's datatype as `declared` (the model's V2OutputsOf) names it, so that an answer
// and the model's metadata agree; a field not declared there (or with no `declared`): "label"
// and "cluster" INT64, "class" INT64 when every class in the answer is a whole number, the
// others ("probabilities", "value", "distance") FP32. When `req.outputs` names some, only
// those, in that order; InvalidArgument naming one the answer does not have. An output asked
// for as binary data carries "parameters": {"binary_data_size"} in place of "data", its bytes
// after the JSON. Internal when `v1_body` is not a V1 predict answer.
Result<V2Answer> V1AnswerToV2(std::string_view v1_body, const V2Infer& req,
                              const nlohmann::ordered_json* declared = nullptr);

// The V2 metadata of a model's outputs: [{"name", "datatype", "shape"}, ...] with -1 for the
// rows, in the order an infer answer lists them.
nlohmann::ordered_json V2OutputsOf(const ModelInfo& info);

// InvalidArgument naming the first output `req` asks for that a model with the outputs
// `declared` (its V2OutputsOf) does not have.
Status CheckV2Outputs(const V2Infer& req, const nlohmann::ordered_json& declared);

// V2's error body, {"error": "message"}.
std::string V2Error(std::string_view message);

// A V1 error body ({"error": {"code", "message"}}) as V2's.
std::string V1ErrorToV2(std::string_view v1_body);

}  // namespace overcast::serve
