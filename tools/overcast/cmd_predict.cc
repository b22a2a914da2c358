// `overcast predict`: apply a model file to a LIBSVM or CSV file (with the dataset's
// normalization), print predictions, and metrics when the input is labelled.
#include <chrono>
#include <cstdio>
#include <fstream>
#include <iostream>

#include <nlohmann/json.hpp>

#include "algo/metrics.h"
#include "algo/model.h"
#include "data/input.h"
#include "data/parse.h"
#include "tools/overcast/commands.h"

namespace overcast::cli {
namespace {

struct PredictFlags {
  std::string model, input, format = "libsvm", output;
  bool json = false;
  int threads = 1;
};

Status ReadAllInput(const std::string& path, std::string* text) {
  uint64_t size = 0;
  OC_ASSIGN_OR_RETURN(auto src, data::OpenInput(path, &size));
  text->clear();
  text->reserve(size);
  char buf[1 << 16];
  for (;;) {
    OC_ASSIGN_OR_RETURN(size_t n, src->Read(buf, sizeof(buf)));
    if (n == 0) break;
    text->append(buf, n);
  }
  return Status::Ok();
}

// x' = (x - shift) * scale on stored entries of the listed features (docs/formats.md).
Status ApplyNormalization(const nlohmann::json& norm, data::Partition* p) {
  if (!norm.is_object()) return Status::Ok();
  try {
    const auto ids = norm.at("feature_ids").get<std::vector<uint64_t>>();
    const auto shift = norm.at("shift").get<std::vector<float>>();
    const auto scale = norm.at("scale").get<std::vector<float>>();
    if (ids.size() != shift.size() || ids.size() != scale.size())
      return InvalidArgument("model normalization: arrays of different lengths");
    uint64_t limit = 0;
    for (uint64_t id : ids) limit = std::max(limit, id + 1);
    std::vector<float> sh(limit, 0.0f), sc(limit, 1.0f);
    for (size_t i = 0; i < ids.size(); ++i) {
      sh[ids[i]] = shift[i];
      sc[ids[i]] = scale[i];
    }
    for (size_t e = 0; e < p->ids.size(); ++e) {
      uint32_t id = p->ids[e];
      if (id < limit) p->values[e] = (p->values[e] - sh[id]) * sc[id];
    }
  } catch (const std::exception& e) {
    return InvalidArgument(std::string("model normalization: ") + e.what());
  }
  return Status::Ok();
}

Status RunPredict(const PredictFlags& f) {
  auto t0 = std::chrono::steady_clock::now();
  OC_ASSIGN_OR_RETURN(algo::Model model, algo::LoadModel(f.model).status().code() == Code::kNotFound
                                             ? Result<algo::Model>(InvalidArgument(
                                                   "model file " + f.model + " does not exist"))
                                             : algo::LoadModel(f.model));
  auto registry = algo::BuiltinAlgorithms();
  OC_ASSIGN_OR_RETURN(const algo::AlgorithmInfo* info,
                      algo::FindAlgorithm(registry, model.algorithm));
  OC_ASSIGN_OR_RETURN(algo::Params params,
                      algo::Params::FromJson(info->params, model.meta.value("params", nlohmann::json::object()),
                                             model.algorithm));
  const algo::DataInfo dinfo = algo::DataInfoFromManifest(model.meta);
  OC_ASSIGN_OR_RETURN(auto algorithm, info->create(params, dinfo));

  std::string text;
  OC_RETURN_IF_ERROR(ReadAllInput(f.input, &text));
  data::ParserConfig pc;
  OC_ASSIGN_OR_RETURN(pc.format, data::ParseFormat(f.format));
  if (pc.format == data::Format::kCsv) {
    std::string_view first(text.data(), std::min(text.find('\n'), text.size()));
    OC_ASSIGN_OR_RETURN(pc.csv, data::ResolveCsvLayout(first, data::CsvOptions(), f.input));
  } else if (pc.format != data::Format::kLibsvm) {
    return InvalidArgument("--format must be libsvm or csv");
  }
  data::ParsedChunk chunk;
  data::ParseChunk(pc, text, 1, &chunk);
  if (!chunk.errors.empty()) {
    const auto& e = chunk.errors.front();
    return InvalidArgument(f.input + ":" + std::to_string(e.line) + ":" + std::to_string(e.column) +
                           ": " + e.message);
  }
  data::Partition& rows = chunk.rows;
  if (rows.rows() == 0) return InvalidArgument(f.input + ": no rows");
  OC_RETURN_IF_ERROR(ApplyNormalization(model.meta.value("normalization", nlohmann::json()), &rows));

  const size_t k = algorithm->outputs();
  std::vector<float> out(rows.rows() * k);
  algorithm->Predict(model, algo::View(rows, 0, rows.rows()), out.data());
  algo::Metrics m = algo::Evaluate(*algorithm, model, dinfo, rows, f.threads);
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();

  // Predictions: a class label, a probability of the positive class, a value, or a cluster.
  std::FILE* dst = nullptr;
  if (!f.output.empty()) {
    dst = std::fopen(f.output.c_str(), "w");
    if (!dst) return ErrnoStatus("open " + f.output, errno);
  } else if (!f.json) {
    dst = stdout;
  }
  if (dst) {
    for (size_t r = 0; r < rows.rows(); ++r) {
      const float* o = out.data() + r * k;
      switch (algorithm->task()) {
        case algo::Task::kMulticlass: {
          size_t c = std::max_element(o, o + k) - o;
          std::fprintf(dst, "%g\n", c < dinfo.classes.size() ? dinfo.classes[c] : float(c));
          break;
        }
        case algo::Task::kClustering:
          std::fprintf(dst, "%d\n", static_cast<int>(o[1]));
          break;
        default:
          std::fprintf(dst, "%.6g\n", o[0]);
      }
    }
    if (dst != stdout && std::fclose(dst) != 0) return ErrnoStatus("close " + f.output, errno);
  }
  std::string line;
  const nlohmann::json mj = m.ToJson("");
  for (auto& [key, v] : mj.items()) line += "  " + key + " " + std::to_string(v.get<double>());
  std::fprintf(stderr, "predicted %zu rows of %s with %s model %s in %.2f s;%s\n", rows.rows(),
               f.input.c_str(), model.algorithm.c_str(), f.model.c_str(), seconds, line.c_str());
  if (f.json) {
    nlohmann::json j = m.ToJson("test_");
    j["rows"] = rows.rows();
    j["seconds"] = seconds;
    j["model"] = model.algorithm;
    std::cout << j.dump() << std::endl;
  }
  return Status::Ok();
}

}  // namespace

void AddPredictCommand(CLI::App& app, CommandContext& ctx) {
  auto f = std::make_shared<PredictFlags>();
  CLI::App* cmd = app.add_subcommand(
      "predict",
      "Apply a model written by `overcast train --out` to a LIBSVM or CSV file. The dataset's\n"
      "normalization, stored in the model, is applied first. Prints one prediction per row (a\n"
      "class label, P(positive), a value, or a cluster index) to stdout or --output, and the\n"
      "metrics of the labelled input on stderr (with --json, as the last stdout line: the same\n"
      "keys as train: test_logloss, test_accuracy, test_auc, test_rmse).\n"
      "Example:\n"
      "  overcast predict --model fmnist.ocm --input fashion-mnist.test.svm --json");
  cmd->add_option("--model", f->model, "Model file")->required();
  cmd->add_option("--input", f->input, "Rows to predict (gzip is detected); - for stdin")->required();
  cmd->add_option("--format", f->format, "libsvm or csv (label in column 0)")
      ->check(CLI::IsMember({"libsvm", "csv"}))
      ->capture_default_str();
  cmd->add_option("--output", f->output, "Write predictions here instead of stdout");
  cmd->add_option("--threads", f->threads, "Threads for scoring")->check(CLI::Range(1, 64))
      ->capture_default_str();
  cmd->add_flag("--json", f->json, "Print metrics as a JSON last line (predictions only with --output)");
  cmd->callback([f, &ctx] { ctx.exit_code = Finish(RunPredict(*f)); });
}

}  // namespace overcast::cli
