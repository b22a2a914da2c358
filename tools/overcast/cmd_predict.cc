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

Status RunPredict(const PredictFlags& f) {
  auto t0 = std::chrono::steady_clock::now();
  auto loaded = algo::Scorer::Load(f.model);
  if (loaded.status().code() == Code::kNotFound)  // a missing --model is a usage error
    return InvalidArgument(loaded.status().message());
  OC_ASSIGN_OR_RETURN(algo::Scorer scorer, std::move(loaded));
  const algo::Model& model = scorer.model();
  const algo::Algorithm* algorithm = &scorer.algorithm();
  const algo::DataInfo& dinfo = scorer.data_info();

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
  scorer.Normalize(rows.ids, rows.values);

  const size_t k = algorithm->outputs();
  std::vector<float> out(rows.rows() * k);
  scorer.Predict(algo::View(rows, 0, rows.rows()), out.data());
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
