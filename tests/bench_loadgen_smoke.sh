#!/usr/bin/env bash
# Keeps the loadgen-against-wrk check from rotting: runs `overcast bench loadgen --quick` (a
# second per phase, wrk included) and checks that its JSON result has every figure measured.
# No speed or agreement is asserted: both are benchmarked, not tested.
set -euo pipefail
bin=${1:?overcast binary}
line=$("$bin" bench loadgen --quick --json | tail -1)
/usr/bin/python3 - "$line" <<'PY'
import json, sys
j = json.loads(sys.argv[1])
assert j["bench"] == "loadgen", j
f, r = j["figures"], j["ratios"]
for key in ["wrk_1conn_ok_rps", "wrk_1conn_p50_ms", "loadgen_light_p50_ms", "loadgen_light_rate",
            "wrk_capacity_ok_rps", "loadgen_overload_offered_rps", "loadgen_overload_ok_rps"]:
    assert f[key] > 0, key
for key in ["loadgen_light_p50_over_wrk_1conn_p50", "loadgen_overload_ok_rps_over_wrk_capacity"]:
    assert r[key] > 0, key
print("bench loadgen smoke: ok")
PY
