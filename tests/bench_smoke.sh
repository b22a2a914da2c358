#!/usr/bin/env bash
# Keeps a benchmark harness from rotting: runs `overcast bench NAME --quick --json` (seconds)
# and checks that its JSON result has every part measured. NAME is ps (Redis included),
# loadgen (wrk included) or serve (a 4 s trace, 2 rounds of autothrottle, one HPA target of
# each kind and static). No speed, no agreement between tools, and no controller's quality is asserted.
set -euo pipefail
bin=${1:?overcast binary}
name=${2:-ps}
case "$name" in
  # Deployment options other than the bench's defaults, to check that they reach every run.
  serve) args=(--seconds 4 --warmup-s 1 --base-rate 100 --peak-rate 400
               --controllers autothrottle,hpa,hpa-replicas,static --hpa-targets 0.7 --repeats 2
               --hpa-replica-cores 0.2 --hpa-max-replicas 3
               --slo-p99-ms 30 --max-batch 16 --tower-targets 0,0.05,0.1) ;;
  *) args=(--quick) ;;
esac
log=$(mktemp)
trap 'rm -f "$log"' EXIT
if ! line=$("$bin" bench "$name" "${args[@]}" --json 2>"$log" | tail -1); then
  cat "$log" >&2
  exit 1
fi
/usr/bin/python3 - "$name" "$line" "$log" <<'PY'
import json, re, sys
name, j, log = sys.argv[1], json.loads(sys.argv[2]), open(sys.argv[3]).read()
if name == "serve":
    # The deployment options given reached the result and every run's server (its start line)
    # and Tower (its decisions).
    d = j["deployment"]
    assert d["slo_p99_ms"] == 30 and d["max_batch"] == 16, d
    assert d["tower_targets"] == [0, 0.05, 0.1], d
    assert d["replica_hang_s"] == 3, d
    starts = [l for l in log.splitlines() if "serving 1 model(s)" in l]
    assert len(starts) == 10, f"{len(starts)} server starts, expected 5 runs x 2 rounds:\n{log}"
    for l in starts:
        assert "SLO p99 30 ms" in l and "batch <= 16 rows" in l, l
    # The horizontal HPA's servers: static quotas, one replica that may grow to three.
    counted = [l for l in starts if "with 1 replica(s) (up to 3), controller static" in l]
    assert len(counted) == 2, "\n".join(starts)
    chosen = {float(t) for t in re.findall(r"tower: .* -> target ([0-9.]+)", log)}
    assert chosen and chosen <= {0, 0.05, 0.1}, chosen
    # Every run, every round: CPU allocated and used, an SLO share, one p99 and one CPU sample
    # per second of the trace; the ratios that need no run to meet the SLO.
    f, r = j["figures"], j["ratios"]
    assert j["bench"] == "serve" and f["trace_seconds"] == 4 and f["repeats"] == 2, f
    assert f["hpa_replica_cores"] == [0.2] and f["hpa_max_replicas"] == 3, f
    for run in ["autothrottle_cold", "autothrottle", "hpa_u70", "hpa_replicas_c20_u70", "static"]:
        assert f[run + "_cpu_core_seconds"] > 0, run
        assert f[run + "_used_core_seconds"] > 0, run
        assert 0 <= f[run + "_slo_window_share"] <= 1, run
        assert f[run + "_requests"] > 0, run
        # No replica crashed or was killed as stuck: the run measured control, not a failure.
        assert f[run + "_replica_restarts"] == 0 and f[run + "_replica_hangs"] == 0, \
            (run, f[run + "_replica_restarts"], f[run + "_replica_hangs"], log[-3000:])
        assert len(f[run + "_cpu_core_seconds_rounds"]) == 2, run
        for key in [run, run + "_round2"]:
            assert len(j["per_window"][key]) == 4, key
            assert len(j["per_window_cpu"][key]["allocated"]) == 4, key
            counts = j["per_window_cpu"][key]["replicas"]
            assert len(counts) == 4, key
            # The fixed count elsewhere; within the bounds under the horizontal HPA.
            lo, hi = (1, 3) if run.startswith("hpa_replicas") else (2, 2)
            assert all(lo <= n <= hi for n in counts), (key, counts)
    for key in ["autothrottle_over_static_cpu", "autothrottle_warm_over_cold_cpu"]:
        assert r[key] > 0, key
    print("bench serve smoke: ok")
    sys.exit(0)
# Per bench: flags that must be true, figures and ratios that must be positive.
expected = {
    "ps": (["redis_ran"],
           ["ps_best_push_keys_per_s", "ps_best_pull_keys_per_s", "redis_best_mset_keys_per_s",
            "ps_dense_pull_mb_per_s", "loopback_stream_mb_per_s",
            "loopback_stream_hashed_mb_per_s", "loopback_stream_same_bytes_mb_per_s",
            "memory_resident_bytes_per_key"],
           ["ps_over_redis_best_push", "ps_over_redis_best_pull", "ps_dense_pull_over_loopback",
            "ps_dense_pull_over_hashed_loopback", "ps_dense_pull_over_same_bytes_loopback",
            "hashed_loopback_over_loopback",
            "memory_table_over_raw"]),
    "loadgen": ([],
                ["wrk_1conn_ok_rps", "wrk_1conn_p50_ms", "loadgen_light_p50_ms",
                 "loadgen_light_rate", "wrk_capacity_ok_rps", "loadgen_overload_offered_rps",
                 "loadgen_overload_ok_rps"],
                ["loadgen_light_p50_over_wrk_1conn_p50",
                 "loadgen_overload_ok_rps_over_wrk_capacity"]),
}
flags, figures, ratios = expected[name]
assert j["bench"] == name, j
f, r = j["figures"], j["ratios"]
for key in flags:
    assert f[key] is True, key
for key in figures:
    assert f[key] > 0, key
for key in ratios:
    assert r[key] > 0, key
print(f"bench {name} smoke: ok")
PY
