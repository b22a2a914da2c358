// One model-serving replica process: HTTP predict endpoints over dynamic batchers.
#pragma once

#include <string>
#include <vector>

#include "common/status.h"

namespace overcast::serve {

struct ReplicaOptions {
  std::vector<std::string> model_paths;
  std::string host = "127.0.0.1";
  int port = 0;            // 0: any free port, written to port_file
  std::string port_file;   // written atomically once listening
  size_t max_batch_rows = 32;
  int max_wait_us = 0;
  size_t max_queued_rows = 1024;
  size_t max_request_rows = 1024;
  size_t max_body_bytes = 1 << 20;
  int threads = 64;        // HTTP connection threads (one per keep-alive connection)
  int max_threads = 256;   // grown to when every thread holds a connection (ConfigureHttpServer)
  // When set, predict and /stats need `Authorization: Bearer TOKEN` (401 otherwise): the front
  // end starts each replica with a random one (kReplicaTokenEnv), so that another local process
  // cannot reach the models past the front end's secret, bounds and metrics. /healthz stays open.
  std::string token;
};

// The environment variable a replica's token comes in (not argv: /proc/PID/cmdline is readable
// by every user, /proc/PID/environ only by the process's own).
inline constexpr char kReplicaTokenEnv[] = "OVERCAST_REPLICA_TOKEN";

// Serves until SIGTERM/SIGINT (the caller blocks those signals in every thread first and
// passes a waiter) or a fatal error. Endpoints: POST /v1/models/NAME:predict, GET /healthz,
// GET /stats (per model, as JSON: batches, rows, requests, rejections, and the seconds requests
// queued and batches took to predict).
Status RunReplica(const ReplicaOptions& o);

}  // namespace overcast::serve
