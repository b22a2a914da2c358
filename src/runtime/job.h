// A training job as the coordinator publishes it to its workers (a blob in the parameter
// server, so a worker needs only the server address and the job id), and a task's progress.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "common/status.h"

namespace overcast::runtime {

struct JobSpec {
  std::string job;      // id; scopes the job's tables and blobs
  std::string store;    // dataset store location the workers open
  std::string dataset;
  std::string model;
  nlohmann::json params = nlohmann::json::object();  // every declared parameter, filled in
  uint32_t workers = 1; // tasks: task i reads shard i of `workers` of the train split
  uint64_t epochs = 0;  // 0: until told to stop
  uint64_t seed = 1;
  bool sync = false;    // a barrier after every step
  // async: a task may run at most this many batches ahead of the slowest unfinished task
  // (stale synchronous parallel); 0: no bound.
  uint64_t staleness = 0;
  // Workers are started by hand (or by a scheduler outside overcast) and claim their tasks
  // through the store: see GenBlob below.
  bool external = false;
  // > 0: each task pauses (exits, not done) once it has trained its share of this many epochs
  // (train rows x pause_at_epochs / workers); the job is resumed by publishing it again.
  double pause_at_epochs = 0;

  nlohmann::json ToJson() const;
  static Result<JobSpec> FromJson(const nlohmann::json& j);
};

// What a task's worker reports (blob "task/<i>"): cumulative over the task's lifetime, so a
// replacement worker resumes where the last report left off.
struct TaskProgress {
  uint64_t batches = 0, rows = 0, epoch = 0;
  double loss_sum = 0;
  uint64_t loss_rows = 0;
  bool done = false;
  bool paused = false;  // stopped at the job's pause point, to be resumed
  int64_t pid = 0;
  uint64_t starts = 0;  // how many workers have run this task

  std::string Encode() const;
  static Result<TaskProgress> Decode(const std::string& s);
};

// Servers as `overcast worker --coordinator` takes them: host:port,host:port.
inline std::string ServerList(const std::vector<std::string>& servers) {
  std::string s;
  for (const auto& a : servers) s += (s.empty() ? "" : ",") + a;
  return s;
}

// Blob names, relative to the job's scope.
inline std::string SpecBlob() { return "spec"; }
inline std::string StopBlob() { return "stop"; }
inline std::string TaskBlob(uint32_t task) { return "task/" + std::to_string(task); }
// Sync mode: the first step of `epoch` at which `task` had no batch left (see the worker).
inline std::string SyncOutBlob(uint64_t epoch, uint32_t task) {
  return "sync-out/" + std::to_string(epoch) + "/" + std::to_string(task);
}

// External workers. The coordinator opens generation g of task t by writing "gen/<t>" = g; a
// worker takes it by creating "claim/<t>/<g>" (set if absent: one winner), trains while
// "gen/<t>" still says g (a new generation revokes it), and at its end writes
// "end/<t>/<g>" = "<exit status> <message>".
inline std::string GenBlob(uint32_t task) { return "gen/" + std::to_string(task); }
inline std::string ClaimBlob(uint32_t task, uint64_t gen) {
  return "claim/" + std::to_string(task) + "/" + std::to_string(gen);
}
inline std::string EndBlob(uint32_t task, uint64_t gen) {
  return "end/" + std::to_string(task) + "/" + std::to_string(gen);
}
// Unscoped: the job a coordinator of external workers published last on these servers, for
// `overcast worker` started without --job.
inline std::string CurrentJobBlob() { return "overcast/current-job"; }

}  // namespace overcast::runtime
