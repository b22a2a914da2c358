// `overcast load`: a text file (LIBSVM, CSV, ratings; gzip or not) into a dataset in the store.
#include <sys/resource.h>

#include <cstdio>
#include <iostream>

#include <nlohmann/json.hpp>

#include "data/load.h"
#include "tools/overcast/commands.h"
#include "tools/overcast/progress.h"

namespace overcast::cli {

double PeakRssMiB() {
  struct rusage ru;
  if (::getrusage(RUSAGE_SELF, &ru) != 0) return 0;
  return static_cast<double>(ru.ru_maxrss) / 1024.0;  // ru_maxrss is in KiB on Linux
}

namespace {

struct LoadFlags {
  std::string format, input, test_input, dataset, store, task = "auto", compression = "zstd";
  double test_fraction = 0;
  uint64_t seed = 1, partition_rows = 16384, max_line_bytes = 256 << 20;
  int zstd_level = 1, threads = 0, hash_bits = 20;
  bool skip_bad_lines = false, overwrite = false, json = false;
  std::string label_column = "0", header = "auto", delimiter = ",";
  std::vector<std::string> categorical, ignore;
};

Status RunLoad(const LoadFlags& f) {
  data::LoadOptions o;
  OC_ASSIGN_OR_RETURN(o.format, data::ParseFormat(f.format));
  o.input = f.input;
  o.test_input = f.test_input;
  o.test_fraction = f.test_fraction;
  o.seed = f.seed;
  o.dataset = f.dataset;
  o.task = f.task;
  o.partition_rows = f.partition_rows;
  o.max_line_bytes = f.max_line_bytes;
  o.writer.compression = f.compression == "none" ? data::Compression::kNone : data::Compression::kZstd;
  o.writer.zstd_level = f.zstd_level;
  o.writer.overwrite = f.overwrite;
  o.skip_bad_lines = f.skip_bad_lines;
  o.threads = f.threads;
  o.csv.label_column = f.label_column;
  o.csv.header = f.header;
  o.csv.hash_bits = f.hash_bits;
  // Lists may come as repeated flags or comma-separated ("--categorical 14-39,name").
  auto split_list = [](const std::vector<std::string>& in) {
    std::vector<std::string> out;
    for (const auto& s : in) {
      size_t start = 0;
      while (start <= s.size()) {
        size_t end = s.find(',', start);
        if (end == std::string::npos) end = s.size();
        if (end > start) out.push_back(s.substr(start, end - start));
        start = end + 1;
      }
    }
    return out;
  };
  o.csv.categorical = split_list(f.categorical);
  o.csv.ignore = split_list(f.ignore);
  if (f.delimiter == "\\t" || f.delimiter == "tab") {
    o.csv.delimiter = '\t';
  } else if (f.delimiter.size() == 1) {
    o.csv.delimiter = f.delimiter[0];
  } else {
    return InvalidArgument("--delimiter \"" + f.delimiter + "\": expected one character or 'tab'");
  }
  const std::string store_dir = f.store.empty() ? DefaultStore() : f.store;
  OC_ASSIGN_OR_RETURN(auto store, data::OpenStore(store_dir));

  ProgressLine line;
  o.progress = [&line](const data::LoadProgress& p) {
    char buf[256];
    const double mb = static_cast<double>(p.text_bytes) / 1e6;
    std::string pct;
    if (p.input_size > 0) {
      pct = " " + std::to_string(static_cast<int>(100.0 * static_cast<double>(p.input_bytes) /
                                                  static_cast<double>(p.input_size))) + "%";
    }
    std::snprintf(buf, sizeof buf, "load %s:%s %.1f MB, %llu rows, %.1f MB/s%s", p.input.c_str(),
                  pct.c_str(), mb, static_cast<unsigned long long>(p.rows),
                  p.seconds > 0 ? mb / p.seconds : 0.0,
                  p.bad_lines ? (", " + std::to_string(p.bad_lines) + " bad lines skipped").c_str()
                              : "");
    line.Show(buf);
  };
  auto result = data::LoadDataset(*store, o);
  line.Done();
  OC_RETURN_IF_ERROR(result.status());
  const data::LoadResult& r = *result;
  const double mbps = r.seconds > 0 ? static_cast<double>(r.text_bytes) / 1e6 / r.seconds : 0;
  std::fprintf(stderr,
               "loaded dataset %s into %s: %llu train + %llu test rows, %llu features, %llu "
               "classes, %llu entries in %llu partitions (%.1f MB stored), %.2f s, %.1f MB/s\n",
               f.dataset.c_str(), store->Describe().c_str(),
               static_cast<unsigned long long>(r.train_rows),
               static_cast<unsigned long long>(r.test_rows),
               static_cast<unsigned long long>(r.num_features),
               static_cast<unsigned long long>(r.num_classes),
               static_cast<unsigned long long>(r.nnz),
               static_cast<unsigned long long>(r.partitions),
               static_cast<double>(r.stored_bytes) / 1e6, r.seconds, mbps);
  if (r.bad_lines > 0) {
    std::fprintf(stderr, "skipped %llu bad lines; the first ones:\n",
                 static_cast<unsigned long long>(r.bad_lines));
    for (const auto& s : r.bad_line_samples) std::fprintf(stderr, "  %s\n", s.c_str());
  }
  if (f.json) {
    nlohmann::json j = {{"dataset", f.dataset},
                        {"rows", r.train_rows + r.test_rows},
                        {"train_rows", r.train_rows},
                        {"test_rows", r.test_rows},
                        {"features", r.num_features},
                        {"classes", r.num_classes},
                        {"nnz", r.nnz},
                        {"partitions", r.partitions},
                        {"bad_lines", r.bad_lines},
                        {"input_mb", static_cast<double>(r.text_bytes) / 1e6},
                        {"stored_mb", static_cast<double>(r.stored_bytes) / 1e6},
                        {"seconds", r.seconds},
                        {"mb_per_s", mbps},
                        {"peak_rss_mb", PeakRssMiB()}};
    std::cout << j.dump() << std::endl;
  }
  return Status::Ok();
}

}  // namespace

void AddLoadCommand(CLI::App& app, CommandContext& ctx) {
  auto f = std::make_shared<LoadFlags>();
  CLI::App* cmd = app.add_subcommand(
      "load",
      "Load a text file into a named dataset: checksummed binary partitions plus a manifest.\n"
      "Formats:\n"
      "  libsvm   label index:value ... (1-based increasing indices; labels 0/1, -1/+1, classes\n"
      "           or reals; qid: ignored; '#' starts a comment)\n"
      "  csv      one row per line; --label-column picks the label, other columns are numeric\n"
      "           features unless listed in --categorical (hashed into 2^--hash-bits sparse\n"
      "           features, column name hashed in) or --ignore; empty numeric fields are missing\n"
      "  ratings  user item rating [timestamp], separated by blanks, ',' or '::' (MovieLens);\n"
      "           user u becomes feature 2u and item i feature 2i+1\n"
      "gzip input is detected and decompressed; --input - reads standard input.\n"
      "A malformed line stops the load with file:line:column and exit status 2, leaving nothing\n"
      "in the store (or is counted and skipped with --skip-bad-lines).\n"
      "Example:\n"
      "  overcast load --format libsvm --input train.svm.gz --test-fraction 0.2 --dataset a9a");
  cmd->add_option("--format", f->format, "libsvm, csv or ratings")
      ->required()
      ->check(CLI::IsMember({"libsvm", "svmlight", "csv", "ratings"}));
  cmd->add_option("--input", f->input, "Input file (plain or gzip), or - for standard input")
      ->required();
  cmd->add_option("--dataset", f->dataset, "Name of the dataset to create")->required();
  cmd->add_option("--test-input", f->test_input, "Take the test split from this file");
  cmd->add_option("--test-fraction", f->test_fraction,
                  "Put this fraction of the rows (a seeded hash of the row number) in the test "
                  "split")
      ->capture_default_str();
  cmd->add_option("--seed", f->seed, "Seed of the train/test split")->capture_default_str();
  cmd->add_option("--store", f->store, "Dataset store directory (default $OVERCAST_STORE, else "
                                       "~/.overcast/store)");
  cmd->add_option("--partition-rows", f->partition_rows,
                  "Rows per partition (a partition also closes at 16 MB of data)")
      ->capture_default_str();
  cmd->add_option("--task", f->task,
                  "auto: integer labels (<= 1000 values) are classes, else regression; or force "
                  "classification / regression")
      ->check(CLI::IsMember({"auto", "classification", "regression"}))
      ->capture_default_str();
  cmd->add_option("--compression", f->compression, "Partition compression: zstd or none")
      ->check(CLI::IsMember({"zstd", "none"}))
      ->capture_default_str();
  cmd->add_option("--zstd-level", f->zstd_level, "zstd level (1 is fastest)")
      ->check(CLI::Range(-5, 19))
      ->capture_default_str();
  cmd->add_flag("--skip-bad-lines", f->skip_bad_lines,
                "Skip malformed lines, count them and show the first few, instead of stopping");
  cmd->add_flag("--overwrite", f->overwrite, "Replace a dataset of the same name");
  cmd->add_option("--threads", f->threads, "Parser threads (0: one per core)")
      ->check(CLI::Range(0, 64))
      ->capture_default_str();
  cmd->add_option("--max-line-bytes", f->max_line_bytes, "Longest line accepted")
      ->capture_default_str();
  cmd->add_option("--label-column", f->label_column,
                  "csv: the label column, by header name or 0-based index")
      ->capture_default_str();
  cmd->add_option("--header", f->header,
                  "csv: auto (a first line without any number is a header), yes or no")
      ->check(CLI::IsMember({"auto", "yes", "no"}))
      ->capture_default_str();
  cmd->add_option("--categorical", f->categorical,
                  "csv: columns to hash as categories: names, 0-based indices or ranges a-b, "
                  "comma-separated")
      ->delimiter(',');
  cmd->add_option("--ignore", f->ignore, "csv: columns to drop (same syntax)")->delimiter(',');
  cmd->add_option("--hash-bits", f->hash_bits, "csv: categorical values hash into 2^B features")
      ->check(CLI::Range(1, 31))
      ->capture_default_str();
  cmd->add_option("--delimiter", f->delimiter, "csv: field separator (one character, or 'tab')")
      ->capture_default_str();
  cmd->add_flag("--json", f->json,
                "Print a final JSON line: rows, features, classes, seconds, mb_per_s, ...");
  cmd->callback([f, &ctx] { ctx.exit_code = Finish(RunLoad(*f)); });
}

}  // namespace overcast::cli
