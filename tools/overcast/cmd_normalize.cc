// `overcast normalize`: min-max or standard scaling of a dataset into a new dataset.
#include <cstdio>
#include <iostream>

#include <nlohmann/json.hpp>

#include "data/normalize.h"
#include "tools/overcast/commands.h"
#include "tools/overcast/progress.h"

namespace overcast::cli {
namespace {

struct NormalizeFlags {
  std::string dataset, output, method, store, compression = "zstd";
  bool center = false, overwrite = false, json = false;
  int threads = 0;
};

Status RunNormalize(const NormalizeFlags& f) {
  data::NormalizeOptions o;
  o.input = f.dataset;
  o.output = f.output;
  OC_ASSIGN_OR_RETURN(o.method, data::ParseNormalizeMethod(f.method));
  o.center = f.center;
  o.threads = f.threads;
  o.writer.overwrite = f.overwrite;
  o.writer.compression = f.compression == "none" ? data::Compression::kNone : data::Compression::kZstd;
  const std::string store_dir = f.store.empty() ? DefaultStore() : f.store;
  OC_ASSIGN_OR_RETURN(auto store, data::OpenStore(store_dir));
  ProgressLine line;
  o.progress = [&line](const char* pass, size_t done, size_t total) {
    line.Show("normalize " + std::string(pass) + ": " + std::to_string(done) + "/" +
                  std::to_string(total) + " partitions",
              done == total);
  };
  auto r = data::NormalizeDataset(*store, o);
  line.Done();
  OC_RETURN_IF_ERROR(r.status());
  std::fprintf(stderr,
               "normalized %s into %s (%s%s): %llu rows, %llu features, %llu partitions; "
               "statistics %.2f s, transform %.2f s\n",
               f.dataset.c_str(), f.output.c_str(), f.method.c_str(),
               f.center ? ", centred" : "", static_cast<unsigned long long>(r->rows),
               static_cast<unsigned long long>(r->features),
               static_cast<unsigned long long>(r->partitions), r->stats_seconds,
               r->transform_seconds);
  if (f.json) {
    nlohmann::json j = {{"dataset", f.dataset},      {"output", f.output},
                        {"method", f.method},        {"center", f.center},
                        {"rows", r->rows},           {"features", r->features},
                        {"partitions", r->partitions},
                        {"stats_seconds", r->stats_seconds},
                        {"transform_seconds", r->transform_seconds},
                        {"seconds", r->stats_seconds + r->transform_seconds}};
    std::cout << j.dump() << std::endl;
  }
  return Status::Ok();
}

}  // namespace

void AddNormalizeCommand(CLI::App& app, CommandContext& ctx) {
  auto f = std::make_shared<NormalizeFlags>();
  CLI::App* cmd = app.add_subcommand(
      "normalize",
      "Scale the features of a dataset into a new dataset. Statistics are fitted on the train\n"
      "split (in parallel over its partitions) and stored in the new manifest, so that predict\n"
      "applies the same transform; test rows are transformed with the train statistics.\n"
      "  minmax:    x / max|x|              (with --center: (x - min) / (max - min), in [0, 1])\n"
      "  standard:  x / std                 (with --center: (x - mean) / std)\n"
      "Absent entries of sparse rows count as zeros and stay zeros: sparse data is only scaled.\n"
      "--center is for dense datasets (a CSV of numeric columns without missing values).\n"
      "Example:\n"
      "  overcast normalize --dataset fmnist --output fmnist-std --method standard");
  cmd->add_option("--dataset", f->dataset, "The dataset to normalize")->required();
  cmd->add_option("--output", f->output, "Name of the new, normalized dataset")->required();
  cmd->add_option("--method", f->method, "minmax or standard")
      ->required()
      ->check(CLI::IsMember({"minmax", "standard"}));
  cmd->add_flag("--center", f->center, "Also centre (subtract min or mean); dense data only");
  cmd->add_option("--store", f->store, "Dataset store directory (default $OVERCAST_STORE, else "
                                       "~/.overcast/store)");
  cmd->add_flag("--overwrite", f->overwrite, "Replace an existing output dataset");
  cmd->add_option("--threads", f->threads, "Threads (0: one per core)")
      ->check(CLI::Range(0, 64))
      ->capture_default_str();
  cmd->add_option("--compression", f->compression, "Partition compression: zstd or none")
      ->check(CLI::IsMember({"zstd", "none"}))
      ->capture_default_str();
  cmd->add_flag("--json", f->json, "Print a final JSON line: rows, features, seconds, ...");
  cmd->callback([f, &ctx] { ctx.exit_code = Finish(RunNormalize(*f)); });
}

}  // namespace overcast::cli
