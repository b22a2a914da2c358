// Checkpoints on disk: a directory per snapshot, one file per shard, a manifest written last.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "common/status.h"

namespace overcast::ps {

struct CheckpointInfo {
  uint64_t seq = 0;
  std::string path;
  uint64_t bytes = 0;
};

// Writes DIR/ckpt-<seq>/ (via DIR/ckpt-<seq>.tmp and a rename): shard-<i>.bin for each entry of
// `shards`, each with a header and an XXH3 trailer, then MANIFEST.json; every file and both
// directories fsynced. Keeps the newest `keep` checkpoints and deletes older ones.
Result<CheckpointInfo> WriteCheckpoint(const std::string& dir, uint64_t seq, uint32_t server_id,
                                       const std::vector<std::string>& shards, int keep);

struct LoadedCheckpoint {
  CheckpointInfo info;
  std::vector<std::string> shards;  // the shard payloads, verified
};

// The newest checkpoint under `dir` whose manifest and every shard checksum verify. Torn or
// corrupt ones are skipped with a warning naming them and why. NotFound when there is none.
Result<LoadedCheckpoint> ReadNewestCheckpoint(const std::string& dir);

// Highest sequence number present under `dir` (valid or not), 0 when none.
uint64_t HighestCheckpointSeq(const std::string& dir);

}  // namespace overcast::ps
