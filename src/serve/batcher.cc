#include "serve/batcher.h"

#include <algorithm>

namespace overcast::serve {
namespace {

uint64_t Nanos(std::chrono::steady_clock::duration d) {
  return static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(d).count());
}

}  // namespace

Batcher::Batcher(const Predictor* model, BatcherOptions o)
    : model_(model), o_(o), outputs_per_row_(OutputsPerRow(model->info())) {}

Batcher::~Batcher() {
  std::unique_lock<std::mutex> l(mu_);
  stop_ = true;
  fill_cv_.notify_all();
  idle_cv_.wait(l, [&] { return !leading_ && queue_.empty(); });
}

BatcherStats Batcher::stats() const {
  std::lock_guard<std::mutex> l(mu_);
  return stats_;
}

Status Batcher::Submit(const SparseBatch& rows, std::vector<float>* out) {
  Job job{&rows, out, std::chrono::steady_clock::now(), false, false, {}};
  std::unique_lock<std::mutex> l(mu_);
  if (stop_) return Unavailable("replica is shutting down");
  if (queued_rows_ + rows.rows() > o_.max_queued_rows) {
    ++stats_.rejected;
    return ResourceExhausted("replica queue full (" + std::to_string(queued_rows_) + " rows queued)");
  }
  queue_.push_back(&job);
  queued_rows_ += rows.rows();
  if (!leading_) {
    leading_ = true;  // the queue was empty: this job is its front
    job.lead = true;
  } else if (leader_waits_ && queued_rows_ >= o_.max_batch_rows) {
    fill_cv_.notify_one();
  }
  while (!job.done) {
    if (!job.lead) {
      job.cv.wait(l, [&] { return job.done || job.lead; });
      continue;
    }
    LeadOneBatch(l, &job);  // the leader's job is the queue's front, so this finishes it
  }
  return Status::Ok();
}

void Batcher::LeadOneBatch(std::unique_lock<std::mutex>& l, Job* leader) {
  if (o_.max_wait.count() > 0 && queued_rows_ < o_.max_batch_rows && !stop_) {
    // Wait for a fuller batch, but never past the oldest request's deadline.
    leader_waits_ = true;
    fill_cv_.wait_until(l, leader->arrived + o_.max_wait,
                        [&] { return stop_ || queued_rows_ >= o_.max_batch_rows; });
    leader_waits_ = false;
  }
  std::vector<Job*> taken;
  size_t rows = 0;
  while (!queue_.empty() &&
         (taken.empty() || rows + queue_.front()->rows->rows() <= o_.max_batch_rows)) {
    taken.push_back(queue_.front());
    rows += queue_.front()->rows->rows();
    queue_.pop_front();
  }
  queued_rows_ -= rows;
  l.unlock();
  const auto began = std::chrono::steady_clock::now();
  merged_.clear();
  for (Job* j : taken) {
    const SparseBatch& b = *j->rows;
    const uint32_t base = static_cast<uint32_t>(merged_.ids.size());
    merged_.ids.insert(merged_.ids.end(), b.ids.begin(), b.ids.end());
    merged_.values.insert(merged_.values.end(), b.values.begin(), b.values.end());
    for (size_t r = 1; r < b.offsets.size(); ++r) merged_.offsets.push_back(base + b.offsets[r]);
  }
  model_->Predict(merged_, &outputs_);
  size_t at = 0;
  for (Job* j : taken) {
    const size_t n = j->rows->rows() * outputs_per_row_;
    j->out->assign(outputs_.begin() + at, outputs_.begin() + at + n);
    at += n;
  }
  const auto ended = std::chrono::steady_clock::now();
  l.lock();
  stats_.batches += 1;
  stats_.rows += rows;
  stats_.sizes[std::lower_bound(kBatchRowsBounds.begin(), kBatchRowsBounds.end(), rows) -
               kBatchRowsBounds.begin()] += 1;
  stats_.requests += taken.size();
  for (Job* j : taken) stats_.queue_ns += Nanos(began - j->arrived);
  stats_.compute_ns += Nanos(ended - began);
  // Notified under mu_: a job's thread cannot see done, return and destroy the job (and its
  // condition variable) before the notify is over.
  for (Job* j : taken) {
    j->done = true;
    j->lead = false;
    if (j != leader) j->cv.notify_one();
  }
  if (!queue_.empty()) {
    Job* next = queue_.front();  // hand the lead to the oldest waiting request
    next->lead = true;
    next->cv.notify_one();
  } else {
    leading_ = false;
    if (stop_) idle_cv_.notify_all();
  }
}

}  // namespace overcast::serve
