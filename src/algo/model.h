// Model files: a self-describing binary (metadata JSON + float tables + XXH3 checksum), written
// atomically, with a JSON sidecar for people (docs/formats.md, "Model files").
#pragma once

#include <string>

#include "algo/algorithm.h"
#include "common/status.h"

namespace overcast::algo {

std::string EncodeModel(const Model& model);
// Corruption (naming what is wrong) for a bad magic, version, checksum or structure.
Result<Model> DecodeModel(std::string_view bytes, const std::string& source);

// Writes `path` atomically and `path`.json (the metadata, pretty-printed) beside it.
Status SaveModel(const std::string& path, const Model& model);
// NotFound if absent; InvalidArgument naming the file when it is not a valid model file.
Result<Model> LoadModel(const std::string& path);

}  // namespace overcast::algo
