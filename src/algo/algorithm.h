// The public algorithm API: streaming initialize / update / finalize over a parameter-server
// state (pull, push, blobs, barrier), in the spirit of SageMaker's algorithms, and the registry.
#pragma once

#include <cstdint>
#include <functional>
#include <future>
#include <map>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "algo/params.h"
#include "common/status.h"
#include "data/minibatch.h"
#include "ps/client.h"
#include "ps/table_spec.h"

namespace overcast::algo {

// What the algorithm is told about its dataset (from the manifest).
struct DataInfo {
  uint64_t num_features = 0;
  uint64_t num_classes = 0;        // 0: regression
  std::string label_kind;          // binary | multiclass | regression
  std::vector<float> classes;      // multiclass: the label values, class c is classes[c]
  nlohmann::json schema;           // manifest "schema" (ratings: max_user_id, ...)
};

// What the predictions of a model are, which decides the metrics.
enum class Task { kBinary, kMulticlass, kRegression, kClustering };
std::string_view TaskName(Task task);

// One worker's (or the coordinator's) view of the job's state in the parameter server. Table
// and blob names are scoped to the job, so jobs can share servers. Not thread-safe beyond what
// ps::Client is: one State per thread that uses it.
class State {
 public:
  State(ps::Client* client, std::string job, uint32_t worker_index, uint32_t num_workers)
      : client_(client), job_(std::move(job)), worker_(worker_index), workers_(num_workers) {}

  // Idempotent: every worker may create the same table.
  Status CreateTable(ps::TableSpec spec);
  std::future<Status> Pull(const std::string& table, std::span<const uint64_t> keys, float* out);
  std::future<Status> Push(const std::string& table, std::span<const uint64_t> keys,
                           std::span<const float> grads);
  std::future<Status> PullDense(const std::string& table, uint64_t offset, uint64_t count,
                                float* out);
  std::future<Status> PushDense(const std::string& table, uint64_t offset,
                                std::span<const float> grads);
  Result<std::string> GetBlob(const std::string& key);
  Status SetBlob(const std::string& key, std::string_view value);
  Status Barrier(const std::string& name, uint32_t parties);

  uint32_t worker_index() const { return worker_; }
  uint32_t num_workers() const { return workers_; }
  const std::string& job() const { return job_; }
  std::string Scoped(const std::string& name) const { return job_ + "/" + name; }
  ps::Client* client() { return client_; }

 private:
  ps::Client* client_;
  std::string job_;
  uint32_t worker_, workers_;
};

// A trained model out of the parameter server: named float matrices (rows x dim, row-major;
// a sparse table's row r is key r) plus JSON metadata. What `--out` writes and predict reads.
struct ModelTable {
  uint64_t rows = 0;
  uint32_t dim = 0;
  std::vector<float> data;
  const float* row(uint64_t r) const { return data.data() + r * dim; }
};
struct Model {
  std::string algorithm;
  nlohmann::json meta = nlohmann::json::object();  // params, data info, normalization, metrics
  std::map<std::string, ModelTable> tables;
};

// A sample of training rows handed to Initialize (k-means++ seeds its centres from it).
using Sample = data::Partition;

// An algorithm instance belongs to one thread (a worker, or the coordinator). update() of the
// streaming API is split in two so that a worker can overlap the next batch's pull with this
// batch's compute: Prepare issues the asynchronous pulls of `batch` into `slot` (0 or 1), and
// Apply waits for them, computes the gradient and pushes it. The batch must stay unchanged
// from Prepare to Apply; pushes may still be in flight when Apply returns (the slot's buffers
// are waited for before they are reused).
class Algorithm {
 public:
  virtual ~Algorithm() = default;
  virtual Task task() const = 0;

  // Creates the tables (idempotent; run by the coordinator and again by each worker). Only the
  // coordinator passes a sample; workers pass nullptr.
  virtual Status Initialize(State& state, const Sample* sample) = 0;
  virtual Status Prepare(State& state, const data::Minibatch& batch, int slot) = 0;
  virtual Status Apply(State& state, const data::Minibatch& batch, int slot) = 0;
  // Waits for this instance's pushes in flight; run by a worker at the end of its task.
  virtual Status Finalize(State& state) = 0;

  // The streaming API's update: Prepare + Apply in slot 0.
  Status Update(State& state, const data::Minibatch& batch) {
    OC_RETURN_IF_ERROR(Prepare(state, batch, 0));
    return Apply(state, batch, 0);
  }

  // Reads the whole model out of the servers (tables only; the caller adds metadata).
  virtual Status Export(State& state, Model* model) = 0;
  // Outputs per row of Predict: binary 1 (P(y=1)), multiclass num_classes (probabilities),
  // regression 1, clustering 2 (squared distance to the nearest centre, its index).
  virtual size_t outputs() const = 0;
  // Predicts every row of `rows` into out[r * outputs() ...]. Feature ids the model does not
  // know are ignored. Thread-safe (const).
  virtual void Predict(const Model& model, const data::Minibatch& rows, float* out) const = 0;

  // Running training loss of this instance since the last call: sum and row count.
  virtual std::pair<double, uint64_t> TakeTrainLoss() {
    auto r = std::make_pair(loss_sum_, loss_rows_);
    loss_sum_ = 0;
    loss_rows_ = 0;
    return r;
  }

 protected:
  double loss_sum_ = 0;
  uint64_t loss_rows_ = 0;
};

// A registry entry: name, one-line description, declared parameters, and a factory.
struct AlgorithmInfo {
  std::string name;
  std::string description;
  std::vector<ParamSpec> params;
  // Checks that the dataset suits the algorithm (InvalidArgument with a reason) and builds it.
  std::function<Result<std::unique_ptr<Algorithm>>(const Params&, const DataInfo&)> create;
  // Training rows the coordinator reads and passes to Initialize (0: none needed).
  size_t init_sample_rows = 0;
};

// The built-in algorithms, in a fixed order, from an explicit list (no static registration).
// A program with its own algorithms passes its own vector wherever a registry is taken.
std::vector<AlgorithmInfo> BuiltinAlgorithms();
// Looks `name` up; InvalidArgument naming the known ones if absent.
Result<const AlgorithmInfo*> FindAlgorithm(const std::vector<AlgorithmInfo>& registry,
                                           const std::string& name);

// The parameters every gradient-trained built-in takes: lr, batch, optimizer, l1, l2.
std::vector<ParamSpec> CommonParams(double lr, const std::string& optimizer, int64_t batch);
// An optimizer config from the common parameters.
Result<ps::OptimizerConfig> OptimizerFromParams(const Params& p);

DataInfo DataInfoFromManifest(const nlohmann::json& manifest);

}  // namespace overcast::algo
