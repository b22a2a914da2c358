#!/usr/bin/env bash
# Keeps the benchmark harness from rotting: runs `overcast bench ps --quick` (seconds, Redis
# included) and checks that its JSON result has every part measured. No speed is asserted.
set -euo pipefail
bin=${1:?overcast binary}
line=$("$bin" bench ps --quick --json | tail -1)
/usr/bin/python3 - "$line" <<'PY'
import json, sys
j = json.loads(sys.argv[1])
assert j["bench"] == "ps", j
f, r = j["figures"], j["ratios"]
assert f["redis_ran"] is True, "the Redis peer did not run"
for key in ["ps_best_push_keys_per_s", "ps_best_pull_keys_per_s", "redis_best_mset_keys_per_s",
            "ps_dense_pull_mb_per_s", "loopback_stream_mb_per_s", "loopback_stream_hashed_mb_per_s",
            "memory_resident_bytes_per_key"]:
    assert f[key] > 0, key
for key in ["ps_over_redis_best_push", "ps_over_redis_best_pull", "ps_dense_pull_over_loopback",
            "ps_dense_pull_over_hashed_loopback", "hashed_loopback_over_loopback",
            "memory_table_over_raw"]:
    assert r[key] > 0, key
print("bench ps smoke: ok")
PY
