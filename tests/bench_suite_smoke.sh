#!/usr/bin/env bash
# Keeps the peer suite's harness from rotting: runs bench/suite/suite.py --quick on a 20,000-row
# generated CTR file with overcast and liblinear only (seconds; no scikit-learn, XGBoost or R)
# and checks that results.json and results.md are well formed. No figure is asserted.
set -euo pipefail
bin=${1:?overcast binary}
root=$(cd "$(dirname "$0")/.." && pwd)
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
/usr/bin/python3 "$root/bench/suite/suite.py" --quick --parts ctr --peers liblinear \
  --bin "$bin" --out "$out"
/usr/bin/python3 - "$out" <<'PY'
import json, os, sys
out = sys.argv[1]
j = json.load(open(os.path.join(out, "results.json")))
for key in ["date", "commit", "machine", "command", "options", "versions", "parts", "commands"]:
    assert key in j, f"results.json lacks {key}"
assert "error" not in j, j.get("error")
for key in ["cores", "cpu", "memory_gib"]:
    assert key in j["machine"], f"machine lacks {key}"
ctr = j["parts"]["ctr"]
assert 0 < ctr["optimal_test_logloss"] < 0.7, ctr["optimal_test_logloss"]
assert ctr["generator"]["train"]["rows"] == 20000, ctr["generator"]["train"]
entries = ctr["entries"]
for name in ["overcast_logreg_w1", "overcast_logreg_w2", "overcast_logreg_cross_w2",
             "overcast_fm_w2", "liblinear"]:
    assert name in entries, f"ctr lacks {name}"
    e = entries[name]
    for key in ["fit_seconds", "test_logloss", "logloss_over_optimal", "peak_rss_mb",
                "reached_target", "rows_per_second", "nnz_per_second"]:
        assert key in e, f"{name} lacks {key}"
    assert e["test_logloss"] > 0 and e["peak_rss_mb"] > 0, (name, e)
for name in ["overcast_logreg_w1", "overcast_logreg_w2", "overcast_logreg_cross_w2",
             "overcast_fm_w2"]:
    e = entries[name]
    assert "seconds_to_liblinear_logloss" in e and e["curve"], (name, e)
    assert any(p[2] == e["test_logloss"] for p in e["curve"]), (name, e["curve"], e)
assert ctr["liblinear_logloss"] == entries["liblinear"]["test_logloss"], ctr
# The crossed run crosses the generator's field pairs on its per-field layout.
assert ctr["generator"]["model"]["field_bits"] > 0, ctr["generator"]["model"]
assert "cross=0x1,2x3" in entries["overcast_logreg_cross_w2"]["config"], entries
assert "liblinear_fit_seconds_over_overcast_logreg_cross_w2_to_target" in ctr["ratios"], ctr
assert any("--param cross=" in c["command"] for c in j["commands"]), "no crossed run"
assert any("liblinear-train" in c["command"] for c in j["commands"]), "liblinear never ran"
md = open(os.path.join(out, "results.md")).read()
assert "## CTR-style sparse data" in md and "liblinear" in md, md[:500]
print("bench suite smoke: ok")
PY
