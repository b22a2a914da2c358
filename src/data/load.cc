#include "data/load.h"

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <thread>

#include "common/hash.h"
#include "data/input.h"

namespace overcast::data {

using nlohmann::json;
using Clock = std::chrono::steady_clock;

Result<uint64_t> DescribeLabels(const LabelStats& s, const std::string& task, Format format,
                                json* label) {
  (*label)["min"] = s.count ? s.min : 0.0;
  (*label)["max"] = s.count ? s.max : 0.0;
  const bool can_classify = s.all_integer && !s.too_many;
  std::string kind;
  if (task == "regression" || (task == "auto" && format == Format::kRatings)) {
    kind = "regression";
  } else if (task == "classification" || task == "auto") {
    if (!can_classify) {
      if (task == "classification") {
        return InvalidArgument(
            std::string("--task classification: the labels are not a small set of integers (") +
            (s.too_many ? "more than " + std::to_string(LabelStats::kMaxDistinct) + " values"
                        : "some are not integers") + ")");
      }
      kind = "regression";
    } else {
      bool zero_one = true, pm_one = true;
      for (float v : s.distinct) {
        zero_one &= v == 0.0f || v == 1.0f;
        pm_one &= v == -1.0f || v == 1.0f;
      }
      kind = (zero_one || pm_one) ? "binary" : "multiclass";
    }
  } else {
    return InvalidArgument("--task " + task + ": expected auto, classification or regression");
  }
  (*label)["kind"] = kind;
  if (kind == "regression") return uint64_t{0};
  (*label)["classes"] = s.distinct;
  // Binary: a label > 0 is the positive class, whether the file says 0/1 or -1/+1.
  if (kind == "binary") {
    (*label)["positive"] = 1;
    return uint64_t{2};
  }
  return static_cast<uint64_t>(s.distinct.size());
}

namespace {

// One chunk of text on its way through a parser.
struct Work {
  std::string text;
  uint64_t first_line = 0;
  ParsedChunk parsed;
};

struct EncodeTask {
  Split split;
  uint64_t index;
  std::unique_ptr<Partition> part;
};

class Loader {
 public:
  Loader(Store& store, const LoadOptions& o)
      : store_(store), o_(o), start_(Clock::now()), last_progress_(start_) {
    threads_ = o.threads > 0 ? o.threads : static_cast<int>(std::thread::hardware_concurrency());
    threads_ = std::clamp(threads_, 1, 64);
  }

  Result<LoadResult> Run();

 private:
  Status RunInput(const std::string& path, bool is_test_input, bool last_input);
  Status Merge(Work& w, const std::string& name, bool is_test_input);
  void WorkerLoop(LineChunker* chunker);
  Status Flush(Split split);
  void ReportProgress(bool force);
  Split SplitOf(uint64_t row) const;

  Store& store_;
  const LoadOptions& o_;
  int threads_ = 1;
  std::unique_ptr<DatasetWriter> writer_;
  ParserConfig config_;
  Clock::time_point start_, last_progress_;

  // Merge state: touched only by the calling thread.
  Partition builder_[2];
  uint64_t part_index_[2] = {0, 0};
  uint64_t rows_seen_ = 0;  // rows of the train input so far, for the split hash
  uint64_t input_rows_ = 0;
  uint64_t next_line_ = 1;  // the number of the next chunk's first line
  LabelStats labels_;
  uint64_t id_limit_ = 0, max_user_ = 0, max_item_ = 0;
  bool any_rating_ = false;
  uint64_t bad_lines_ = 0;
  std::vector<std::string> samples_;
  uint64_t text_bytes_done_ = 0, input_bytes_done_ = 0;
  LoadProgress progress_;

  // Pipeline state, guarded by mu_.
  std::mutex mu_;
  std::condition_variable cv_;
  bool stop_ = false, reading_ = false, eof_ = false;
  Status source_status_, write_status_;
  uint64_t next_seq_ = 0, consumed_ = 0;
  std::map<uint64_t, std::unique_ptr<Work>> ready_;
  std::vector<std::unique_ptr<Work>> free_work_;
  std::unique_ptr<Work> first_;  // the first chunk, read by the caller before workers start
  std::deque<EncodeTask> encode_q_;
  std::vector<std::unique_ptr<Partition>> free_parts_;
  size_t pending_writes_ = 0;
  std::vector<PartitionRef> refs_;
  uint64_t chunker_bytes_ = 0, chunker_raw_ = 0;
};

Split Loader::SplitOf(uint64_t row) const {
  if (o_.test_fraction <= 0) return Split::kTrain;
  // A seeded hash of the row number: the split does not depend on chunking or thread count.
  const uint64_t h = MixKey(MixKey(row) ^ MixKey(o_.seed + 0x51f15e));
  const double u = static_cast<double>(h >> 11) * 0x1.0p-53;
  return u < o_.test_fraction ? Split::kTest : Split::kTrain;
}

void Loader::WorkerLoop(LineChunker* chunker) {
  std::string scratch;  // partition encoding memory, reused
  const uint64_t max_inflight = 2 * static_cast<uint64_t>(threads_) + 1;
  std::unique_lock<std::mutex> lk(mu_);
  for (;;) {
    cv_.wait(lk, [&] {
      return stop_ || !encode_q_.empty() ||
             (!reading_ && !eof_ && next_seq_ - consumed_ < max_inflight);
    });
    if (stop_) return;
    if (!encode_q_.empty()) {
      // Writing partitions comes first: it frees memory and the merge step may be waiting.
      EncodeTask task = std::move(encode_q_.front());
      encode_q_.pop_front();
      lk.unlock();
      auto ref = writer_->WritePartition(task.split, task.index, *task.part, &scratch);
      task.part->Clear();
      lk.lock();
      if (ref.ok()) {
        refs_.push_back(*ref);
      } else if (write_status_.ok()) {
        write_status_ = ref.status();
      }
      free_parts_.push_back(std::move(task.part));
      --pending_writes_;
      cv_.notify_all();
      continue;
    }
    reading_ = true;
    std::unique_ptr<Work> w;
    if (!free_work_.empty()) {
      w = std::move(free_work_.back());
      free_work_.pop_back();
    } else {
      w = std::make_unique<Work>();
    }
    std::unique_ptr<Work> first = std::move(first_);
    lk.unlock();
    Status st;
    bool got = true;
    if (first) {
      std::swap(w, first);
    } else {
      auto r = chunker->Next(&w->text);
      if (r.ok()) {
        got = *r;
      } else {
        st = r.status();
      }
    }
    const uint64_t text = chunker->bytes(), raw = chunker->raw_position();
    lk.lock();
    if (first) free_work_.push_back(std::move(first));
    reading_ = false;
    chunker_bytes_ = text;
    chunker_raw_ = raw;
    if (!st.ok() || !got) {
      if (!st.ok()) source_status_ = st;
      eof_ = true;
      free_work_.push_back(std::move(w));
      cv_.notify_all();
      continue;
    }
    const uint64_t seq = next_seq_++;
    cv_.notify_all();  // another worker may read the next chunk now
    lk.unlock();
    w->parsed.Clear();
    ParseChunk(config_, w->text, /*first_line=*/1, &w->parsed);  // Merge makes lines absolute
    lk.lock();
    ready_[seq] = std::move(w);
    cv_.notify_all();
  }
}

Status Loader::Flush(Split split) {
  Partition& b = builder_[static_cast<int>(split)];
  if (b.rows() == 0) return Status::Ok();
  std::unique_lock<std::mutex> lk(mu_);
  const size_t max_pending = static_cast<size_t>(threads_);
  cv_.wait(lk, [&] { return pending_writes_ < max_pending || !write_status_.ok(); });
  if (!write_status_.ok()) return write_status_;
  std::unique_ptr<Partition> part;
  if (!free_parts_.empty()) {
    part = std::move(free_parts_.back());
    free_parts_.pop_back();
  } else {
    part = std::make_unique<Partition>();
  }
  std::swap(*part, b);  // the builder takes the free partition's (cleared) memory
  encode_q_.push_back({split, part_index_[static_cast<int>(split)]++, std::move(part)});
  ++pending_writes_;
  cv_.notify_all();
  return Status::Ok();
}

Status Loader::Merge(Work& w, const std::string& name, bool is_test_input) {
  ParsedChunk& c = w.parsed;
  const uint64_t base = next_line_ - 1;  // chunk-relative line numbers start at 1
  next_line_ += c.lines;
  auto where = [&](const ParseError& e) {
    return name + ":" + std::to_string(base + e.line) + ":" + std::to_string(e.column) + ": " +
           e.message;
  };
  if (!o_.skip_bad_lines && !c.errors.empty()) return InvalidArgument(where(c.errors[0]));
  bad_lines_ += c.bad_lines;
  for (const auto& e : c.errors) {
    if (samples_.size() < ParsedChunk::kMaxSamples) samples_.push_back(where(e));
  }
  labels_.Merge(c.labels);
  id_limit_ = std::max(id_limit_, c.id_limit);
  max_user_ = std::max(max_user_, c.max_user);
  max_item_ = std::max(max_item_, c.max_item);
  any_rating_ |= c.any_rating;
  const Partition& rows = c.rows;
  // Rows go to the builders in runs (of one split, up to a partition's end): one copy per run.
  for (size_t r = 0; r < rows.rows();) {
    const Split split = is_test_input ? Split::kTest : SplitOf(rows_seen_);
    Partition& b = builder_[static_cast<int>(split)];
    const uint64_t start_bytes = PartitionRawBytes(b.rows(), b.nnz());
    size_t end = r;
    uint64_t run_nnz = 0;
    do {
      run_nnz += rows.offsets[end + 1] - rows.offsets[end];
      ++end;
      ++rows_seen_;
    } while (end < rows.rows() && b.rows() + (end - r) < o_.partition_rows &&
             start_bytes + 12 * (end - r) + 8 * run_nnz < o_.partition_max_bytes &&
             (is_test_input || SplitOf(rows_seen_) == split));
    b.AppendRowsFrom(rows, r, end);
    r = end;
    if (b.rows() >= o_.partition_rows ||
        PartitionRawBytes(b.rows(), b.nnz()) >= o_.partition_max_bytes) {
      OC_RETURN_IF_ERROR(Flush(split));
    }
  }
  input_rows_ += rows.rows();
  progress_.rows += rows.rows();
  progress_.bad_lines = bad_lines_;
  return Status::Ok();
}

void Loader::ReportProgress(bool force) {
  if (!o_.progress) return;
  auto now = Clock::now();
  if (!force && now - last_progress_ < std::chrono::milliseconds(500)) return;
  last_progress_ = now;
  {
    std::lock_guard<std::mutex> lk(mu_);
    progress_.text_bytes = text_bytes_done_ + chunker_bytes_;
    progress_.input_bytes = chunker_raw_;
  }
  progress_.seconds = std::chrono::duration<double>(now - start_).count();
  o_.progress(progress_);
}

Status Loader::RunInput(const std::string& path, bool is_test_input, bool last_input) {
  const std::string name = path == "-" ? "<stdin>" : path;
  uint64_t size = 0;
  OC_ASSIGN_OR_RETURN(auto source, OpenInput(path, &size));
  LineChunker chunker(std::move(source), name, o_.chunk_bytes, o_.max_line_bytes);
  progress_.input = name;
  progress_.input_size = size;

  // The first chunk is read here: the header decides how every other line is parsed.
  auto first = std::make_unique<Work>();
  OC_ASSIGN_OR_RETURN(bool any, chunker.Next(&first->text));
  if (!any) return InvalidArgument(name + ":1:1: expected at least one row, found an empty file");
  std::string_view text(first->text);
  std::string_view line0 = text.substr(0, text.find('\n'));
  bool drop_first_line = false;
  if (o_.format == Format::kCsv) {
    OC_ASSIGN_OR_RETURN(CsvLayout layout, ResolveCsvLayout(line0, o_.csv, name));
    if (!is_test_input) {
      config_.csv = std::move(layout);
    } else if (layout.num_columns() != config_.csv.num_columns() ||
               (layout.has_header && config_.csv.has_header &&
                layout.names != config_.csv.names)) {
      return InvalidArgument(name + ":1:1: expected the columns of " + o_.input + " (" +
                             std::to_string(config_.csv.num_columns()) + "), found " +
                             std::to_string(layout.num_columns()) + " columns" +
                             (layout.num_columns() == config_.csv.num_columns()
                                  ? " with other names" : ""));
    }
    drop_first_line = layout.has_header;
  } else if (o_.format == Format::kRatings) {
    drop_first_line = RatingsLineIsHeader(line0);
  }
  if (drop_first_line) {
    size_t nl = text.find('\n');
    first->text.erase(0, nl == std::string_view::npos ? text.size() : nl + 1);
  }
  next_line_ = drop_first_line ? 2 : 1;

  {
    std::lock_guard<std::mutex> lk(mu_);
    stop_ = reading_ = eof_ = false;
    source_status_ = Status::Ok();
    next_seq_ = consumed_ = 0;
    ready_.clear();
    first_ = std::move(first);
    chunker_bytes_ = chunker_raw_ = 0;
  }
  input_rows_ = 0;
  std::vector<std::thread> workers;
  for (int i = 0; i < threads_; ++i) workers.emplace_back([this, &chunker] { WorkerLoop(&chunker); });
  auto stop_workers = [&] {
    {
      std::lock_guard<std::mutex> lk(mu_);
      stop_ = true;
      cv_.notify_all();
    }
    for (auto& t : workers) t.join();
    workers.clear();
  };

  Status status;
  for (uint64_t seq = 0;; ++seq) {
    std::unique_ptr<Work> w;
    {
      std::unique_lock<std::mutex> lk(mu_);
      cv_.wait(lk, [&] {
        return ready_.count(seq) || (eof_ && !reading_ && next_seq_ == seq) ||
               !write_status_.ok();
      });
      if (!write_status_.ok()) {
        status = write_status_;
        break;
      }
      auto it = ready_.find(seq);
      if (it == ready_.end()) {
        status = source_status_;
        if (chunker.line_too_long()) {
          status = InvalidArgument(name + ":" + std::to_string(next_line_) + ":1: " +
                                   status.message());
        }
        break;
      }
      w = std::move(it->second);
      ready_.erase(it);
    }
    status = Merge(*w, name, is_test_input);
    {
      std::lock_guard<std::mutex> lk(mu_);
      ++consumed_;
      free_work_.push_back(std::move(w));
      cv_.notify_all();
    }
    if (!status.ok()) break;
    ReportProgress(false);
  }
  if (status.ok() && input_rows_ == 0) {
    status = InvalidArgument(name + ":1:1: expected at least one data row, found none" +
                             (bad_lines_ ? std::string(" (every line was bad)") : ""));
  }
  if (status.ok()) {
    // The train builder is complete once the train input ends; both are at the last input.
    status = Flush(Split::kTrain);
    if (status.ok() && last_input) status = Flush(Split::kTest);
  }
  if (status.ok()) {
    std::unique_lock<std::mutex> lk(mu_);
    cv_.wait(lk, [&] { return pending_writes_ == 0; });
    status = write_status_;
  }
  stop_workers();
  {
    std::lock_guard<std::mutex> lk(mu_);
    text_bytes_done_ += chunker.bytes();
    input_bytes_done_ += chunker.raw_position();
    chunker_bytes_ = chunker_raw_ = 0;
    encode_q_.clear();  // on error: tasks never started; their partitions were never written
    pending_writes_ = 0;
  }
  return status;
}

Result<LoadResult> Loader::Run() {
  if (o_.input.empty()) return InvalidArgument("--input is required");
  if (!(o_.test_fraction >= 0 && o_.test_fraction < 1)) {
    return InvalidArgument("--test-fraction " + std::to_string(o_.test_fraction) +
                           ": expected a fraction in [0, 1)");
  }
  if (o_.test_fraction > 0 && !o_.test_input.empty()) {
    return InvalidArgument("give either --test-input or --test-fraction, not both");
  }
  if (o_.input == "-" && o_.test_input == "-") {
    return InvalidArgument("only one of --input and --test-input can be standard input");
  }
  if (o_.partition_rows == 0) return InvalidArgument("--partition-rows must be at least 1");
  config_.format = o_.format;
  config_.skip_bad_lines = o_.skip_bad_lines;
  OC_ASSIGN_OR_RETURN(writer_, DatasetWriter::Create(&store_, o_.dataset, o_.writer));

  const bool has_test_input = !o_.test_input.empty();
  OC_RETURN_IF_ERROR(RunInput(o_.input, false, !has_test_input));
  if (has_test_input) OC_RETURN_IF_ERROR(RunInput(o_.test_input, true, true));

  json manifest;
  json label = json::object();
  OC_ASSIGN_OR_RETURN(uint64_t num_classes, DescribeLabels(labels_, o_.task, o_.format, &label));
  uint64_t num_features = id_limit_;
  json schema = {{"format", FormatName(o_.format)}};
  if (o_.format == Format::kCsv) {
    const CsvLayout& L = config_.csv;
    num_features = L.num_features();
    json cols = json::array();
    static const char* kKinds[] = {"label", "numeric", "categorical", "ignored"};
    for (size_t i = 0; i < L.num_columns(); ++i) {
      json c = {{"index", i}, {"name", L.names[i]}, {"kind", kKinds[static_cast<int>(L.kinds[i])]}};
      if (L.kinds[i] == CsvLayout::Kind::kNumeric) c["feature_id"] = L.feature_id[i];
      cols.push_back(std::move(c));
    }
    schema["columns"] = std::move(cols);
    schema["header"] = L.has_header;
    schema["delimiter"] = std::string(1, L.delimiter);
    schema["hash_bits"] = L.hash_bits;
    schema["hash_base"] = L.num_numeric;
    schema["hash"] = "id = hash_base + (mix64(xxh3_64(value) ^ mix64(column + 0x9e3779b97f4a7c15)) >> (64 - hash_bits))";
  } else if (o_.format == Format::kRatings) {
    schema["id_layout"] = "interleaved: user u is feature 2u, item i is feature 2i+1, value 1";
    schema["max_user_id"] = max_user_;
    schema["max_item_id"] = max_item_;
  } else {
    schema["id_layout"] = "feature id = LIBSVM index - 1";
  }
  manifest["num_features"] = num_features;
  manifest["num_classes"] = num_classes;
  manifest["label"] = std::move(label);
  manifest["schema"] = std::move(schema);
  if (has_test_input) {
    manifest["split"] = {{"method", "file"}, {"test_input", o_.test_input}};
  } else if (o_.test_fraction > 0) {
    manifest["split"] = {{"method", "fraction"}, {"test_fraction", o_.test_fraction},
                         {"seed", o_.seed}, {"hash", "mix64(mix64(row) ^ mix64(seed + 0x51f15e))"}};
  } else {
    manifest["split"] = {{"method", "none"}};
  }
  uint64_t total_rows = 0, total_nnz = 0, stored = 0;
  for (const auto& r : refs_) {
    total_rows += r.rows;
    total_nnz += r.nnz;
    stored += r.bytes;
  }
  // Dense: every row holds every feature (CSV without categorical or missing values).
  manifest["dense"] = num_features > 0 && total_nnz == total_rows * num_features;
  manifest["source"] = {{"format", FormatName(o_.format)},
                        {"input", o_.input},
                        {"text_bytes", text_bytes_done_},
                        {"bad_lines_skipped", bad_lines_}};
  LoadResult result;
  result.manifest = manifest;
  OC_RETURN_IF_ERROR(writer_->Commit(std::move(manifest), refs_));
  ReportProgress(true);

  for (const auto& r : refs_) (r.split == Split::kTrain ? result.train_rows : result.test_rows) += r.rows;
  result.nnz = total_nnz;
  result.num_features = num_features;
  result.num_classes = num_classes;
  result.partitions = refs_.size();
  result.bad_lines = bad_lines_;
  result.text_bytes = text_bytes_done_;
  result.input_bytes = input_bytes_done_;
  result.stored_bytes = stored;
  result.bad_line_samples = samples_;
  result.seconds = std::chrono::duration<double>(Clock::now() - start_).count();
  OC_ASSIGN_OR_RETURN(Manifest m, ReadManifest(store_, o_.dataset));
  result.manifest = m.json;
  return result;
}

}  // namespace

Result<LoadResult> LoadDataset(Store& store, const LoadOptions& options) {
  Loader loader(store, options);
  return loader.Run();
}

}  // namespace overcast::data
