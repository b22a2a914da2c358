#include "data/normalize.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <limits>
#include <mutex>
#include <thread>

namespace overcast::data {

using nlohmann::json;
using Clock = std::chrono::steady_clock;

void FeatureStats::Resize(uint64_t n) {
  count.assign(n, 0);
  sum.assign(n, 0.0);
  sumsq.assign(n, 0.0);
  min.assign(n, std::numeric_limits<float>::infinity());
  max.assign(n, -std::numeric_limits<float>::infinity());
}

void FeatureStats::Add(const Partition& p) {
  rows += p.rows();
  for (size_t k = 0; k < p.nnz(); ++k) {
    const uint32_t j = p.ids[k];
    const float v = p.values[k];
    ++count[j];
    sum[j] += v;
    sumsq[j] += static_cast<double>(v) * v;
    min[j] = std::min(min[j], v);
    max[j] = std::max(max[j], v);
  }
}

void FeatureStats::Merge(const FeatureStats& o) {
  rows += o.rows;
  for (size_t j = 0; j < count.size(); ++j) {
    count[j] += o.count[j];
    sum[j] += o.sum[j];
    sumsq[j] += o.sumsq[j];
    min[j] = std::min(min[j], o.min[j]);
    max[j] = std::max(max[j], o.max[j]);
  }
}

double FeatureStats::Std(uint64_t j) const {
  if (rows == 0) return 0.0;
  const double m = Mean(j);
  const double var = sumsq[j] / static_cast<double>(rows) - m * m;
  return std::sqrt(std::max(var, 0.0));
}

double FeatureStats::Min(uint64_t j) const {
  if (count[j] == 0) return 0.0;
  return count[j] < rows ? std::min<double>(min[j], 0.0) : min[j];
}

double FeatureStats::Max(uint64_t j) const {
  if (count[j] == 0) return 0.0;
  return count[j] < rows ? std::max<double>(max[j], 0.0) : max[j];
}

Result<NormalizeMethod> ParseNormalizeMethod(std::string_view name) {
  if (name == "minmax") return NormalizeMethod::kMinMax;
  if (name == "standard") return NormalizeMethod::kStandard;
  return InvalidArgument("unknown method \"" + std::string(name) + "\": expected minmax or standard");
}

void Transform::Apply(Partition* p) const {
  for (size_t k = 0; k < p->nnz(); ++k) {
    const uint32_t j = p->ids[k];
    p->values[k] = (p->values[k] - shift[j]) * scale[j];
  }
}

Transform MakeTransform(const FeatureStats& s, NormalizeMethod method, bool center) {
  Transform t;
  const size_t n = s.count.size();
  t.shift.assign(n, 0.0f);
  t.scale.assign(n, 1.0f);
  for (size_t j = 0; j < n; ++j) {
    if (s.count[j] == 0) continue;
    double shift = 0, range = 0;
    if (method == NormalizeMethod::kMinMax) {
      const double lo = s.Min(j), hi = s.Max(j);
      shift = center ? lo : 0.0;
      range = center ? hi - lo : std::max(std::fabs(lo), std::fabs(hi));
    } else {
      shift = center ? s.Mean(j) : 0.0;
      range = s.Std(j);
    }
    t.shift[j] = static_cast<float>(shift);
    t.scale[j] = range > 0 ? static_cast<float>(1.0 / range) : 1.0f;
  }
  return t;
}

namespace {

// Runs fn(i) for i in [0, n) on `threads` threads; returns the first error.
Status ParallelFor(size_t n, int threads, const std::function<Status(size_t, int)>& fn) {
  std::atomic<size_t> next{0};
  std::mutex mu;
  Status first;
  std::atomic<bool> failed{false};
  auto body = [&](int t) {
    for (size_t i; !failed && (i = next.fetch_add(1)) < n;) {
      Status st = fn(i, t);
      if (!st.ok()) {
        std::lock_guard<std::mutex> lock(mu);
        if (first.ok()) first = st;
        failed = true;
      }
    }
  };
  std::vector<std::thread> pool;
  for (int t = 1; t < threads; ++t) pool.emplace_back(body, t);
  body(0);
  for (auto& th : pool) th.join();
  return first;
}

}  // namespace

Result<NormalizeResult> NormalizeDataset(Store& store, const NormalizeOptions& o) {
  auto manifest_in = ReadManifest(store, o.input);
  if (manifest_in.status().code() == Code::kNotFound) {
    return InvalidArgument(manifest_in.status().message());  // the user named it: bad usage
  }
  OC_RETURN_IF_ERROR(manifest_in.status());
  const Manifest& in = *manifest_in;
  OC_RETURN_IF_ERROR(ValidateDatasetName(o.output));
  if (o.output == o.input) {
    return InvalidArgument("--output must name a new dataset, not the input " + o.input);
  }
  const bool dense = in.json.value("dense", false);
  if (o.center && !dense) {
    return InvalidArgument("--center needs a dense dataset (every row holds every feature); " +
                           o.input + " is sparse, and centring would fill in its zeros");
  }
  constexpr uint64_t kMaxFeatures = uint64_t{1} << 26;
  if (in.num_features > kMaxFeatures) {
    return InvalidArgument("dataset " + o.input + " has " + std::to_string(in.num_features) +
                           " features; normalize handles at most 2^26");
  }
  int threads = o.threads > 0 ? o.threads : static_cast<int>(std::thread::hardware_concurrency());
  threads = std::clamp(threads, 1, 64);
  std::mutex progress_mu;
  auto report = [&](const char* pass, size_t done, size_t total) {
    if (!o.progress) return;
    std::lock_guard<std::mutex> lock(progress_mu);
    o.progress(pass, done, total);
  };

  // Pass 1: statistics over the train split, one accumulator per thread.
  auto t0 = Clock::now();
  const std::vector<const PartitionRef*> train = in.PartitionsOf(Split::kTrain);
  std::vector<FeatureStats> per_thread(static_cast<size_t>(threads));
  for (auto& s : per_thread) s.Resize(in.num_features);
  std::atomic<size_t> done{0};
  std::vector<Partition> parts(static_cast<size_t>(threads));
  std::vector<std::string> scratch(static_cast<size_t>(threads));
  OC_RETURN_IF_ERROR(ParallelFor(train.size(), threads, [&](size_t i, int t) -> Status {
    OC_RETURN_IF_ERROR(ReadPartition(store, in, *train[i], &parts[t], &scratch[t]));
    per_thread[t].Add(parts[t]);
    report("statistics", ++done, train.size());
    return Status::Ok();
  }));
  FeatureStats stats = std::move(per_thread[0]);
  for (size_t t = 1; t < per_thread.size(); ++t) stats.Merge(per_thread[t]);
  per_thread.clear();
  if (stats.rows == 0) return InvalidArgument("dataset " + o.input + " has no train rows");
  const Transform transform = MakeTransform(stats, o.method, o.center);
  const double stats_s = std::chrono::duration<double>(Clock::now() - t0).count();

  // Pass 2: transform every partition (train and test) into the new dataset.
  auto t1 = Clock::now();
  OC_ASSIGN_OR_RETURN(auto writer, DatasetWriter::Create(&store, o.output, o.writer));
  std::vector<std::pair<const PartitionRef*, uint64_t>> jobs;  // partition, index in its split
  uint64_t index[2] = {0, 0};
  for (const auto& p : in.partitions) jobs.push_back({&p, index[static_cast<int>(p.split)]++});
  std::vector<PartitionRef> refs(jobs.size());
  done = 0;
  OC_RETURN_IF_ERROR(ParallelFor(jobs.size(), threads, [&](size_t i, int t) -> Status {
    OC_RETURN_IF_ERROR(ReadPartition(store, in, *jobs[i].first, &parts[t], &scratch[t]));
    transform.Apply(&parts[t]);
    OC_ASSIGN_OR_RETURN(refs[i], writer->WritePartition(jobs[i].first->split, jobs[i].second,
                                                        parts[t], &scratch[t]));
    report("transform", ++done, jobs.size());
    return Status::Ok();
  }));

  json manifest = in.json;
  for (const char* k : {"partitions", "rows", "nnz", "created_unix", "name", "compression"}) {
    manifest.erase(k);
  }
  json ids = json::array(), shift = json::array(), scale = json::array(), mn = json::array(),
       mx = json::array(), mean = json::array(), sd = json::array();
  for (uint64_t j = 0; j < in.num_features; ++j) {
    if (stats.count[j] == 0) continue;  // never seen in train: left as is (shift 0, scale 1)
    ids.push_back(j);
    shift.push_back(transform.shift[j]);
    scale.push_back(transform.scale[j]);
    mn.push_back(stats.Min(j));
    mx.push_back(stats.Max(j));
    mean.push_back(stats.Mean(j));
    sd.push_back(stats.Std(j));
  }
  manifest["normalization"] = {
      {"method", o.method == NormalizeMethod::kMinMax ? "minmax" : "standard"},
      {"center", o.center},
      {"source_dataset", o.input},
      {"fit_split", "train"},
      {"fit_rows", stats.rows},
      {"formula", "x' = (x - shift[j]) * scale[j] for stored entries; features not listed "
                  "have shift 0, scale 1; statistics count absent entries as 0"},
      {"feature_ids", std::move(ids)},
      {"shift", std::move(shift)},
      {"scale", std::move(scale)},
      {"min", std::move(mn)},
      {"max", std::move(mx)},
      {"mean", std::move(mean)},
      {"std", std::move(sd)}};
  OC_RETURN_IF_ERROR(writer->Commit(std::move(manifest), refs));

  NormalizeResult r;
  r.rows = in.rows(Split::kTrain) + in.rows(Split::kTest);
  r.features = in.num_features;
  r.partitions = refs.size();
  r.stats_seconds = stats_s;
  r.transform_seconds = std::chrono::duration<double>(Clock::now() - t1).count();
  return r;
}

}  // namespace overcast::data
