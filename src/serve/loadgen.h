// Open-loop load generation against a predict endpoint, with latency percentiles per window.
#pragma once

#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include "common/status.h"

namespace overcast::serve {

// Request-rate traces: one rate (requests/s) per second.
// constant: `base` throughout. diurnal: one sine period from base to peak and back over the
// length. bursty: base with bursts to peak lasting 2-6 s at random (seeded) times, ~1 in 8 s.
Result<std::vector<double>> MakeTrace(const std::string& pattern, double base, double peak,
                                      int seconds, uint64_t seed);
// A CSV with one rate per line (a header line and extra columns are allowed: the last
// numeric column is used). InvalidArgument naming the line on anything else.
Result<std::vector<double>> ReadTraceCsv(const std::string& path);

struct LoadgenOptions {
  std::string host = "127.0.0.1";
  int port = 8080;
  std::string model;
  std::vector<double> rates;   // per second
  int connections = 64;        // concurrent keep-alive connections (upper bound on in-flight)
  double window_s = 1;
  int rows_per_request = 1;
  int nnz = 32;                // features per row (ids drawn uniformly below num_features)
  uint64_t num_features = 0;   // 0: asked from GET /v1/models
  bool poisson = true;         // exponential inter-arrivals, else evenly spaced
  double timeout_s = 10;
  uint64_t seed = 1;
  std::string bearer_token;    // sent as `Authorization: Bearer ...` when not empty
  bool tls = false;            // HTTPS (a server with --tls-cert), the certificate verified
  std::string ca_cert;         // PEM file of the CA (or self-signed certificate) to trust;
                               // "": the system's CA store
};

struct LoadWindow {
  double start_s = 0;
  uint64_t sent = 0, ok = 0, rejected = 0, errors = 0;
  double p50_ms = 0, p90_ms = 0, p99_ms = 0, max_ms = 0;
};

struct LoadgenResult {
  std::vector<LoadWindow> windows;
  uint64_t sent = 0, ok = 0, rejected = 0, errors = 0;
  double p50_ms = 0, p90_ms = 0, p99_ms = 0, max_ms = 0, mean_ms = 0;
  double seconds = 0;          // wall time of the run
  double achieved_rps = 0;     // completed requests / seconds
  double max_start_lag_ms = 0; // worst delay between a scheduled arrival and its send
};

// A predict request's JSON body: `rows` sparse rows of up to `nnz` distinct feature ids drawn
// uniformly below num_features (sorted), with values in [0, 1).
std::string PredictBody(int rows, int nnz, uint64_t num_features, std::mt19937_64& rng);

// Latency is measured from each request's scheduled arrival (not from when a connection was
// free), so a slow server cannot slow the arrivals down (no coordinated omission).
Result<LoadgenResult> RunLoadgen(const LoadgenOptions& o);

}  // namespace overcast::serve
