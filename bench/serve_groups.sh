#!/usr/bin/env bash
# A Tower per service group against one Tower for all replicas, in one run.
#
# Two models, each on its own replica (--place hot=0 --place cold=1), under two loads at once:
# `hot` a diurnal trace of 250 -> 2000 req/s, `cold` a bursty one of 60 -> 300 req/s (4 rows
# of 64 features a request, SLO p99 25 ms, Tower every 2 s). Each mode (--tower-groups
# placement, then one) replays the pair of traces PASSES times against one server, whose
# Towers learn from nothing on the first pass and go on learning after it. Every pass starts
# with 10 unmeasured seconds at the traces' first rates. Prints, per pass, the CPU allocated
# (core-seconds, from the server's metrics) and each model's windows (1 s) meeting the SLO, and
# at the end the sums over the passes after the first with the ratio placement / one, and the
# usual last line: {"bench": "serve_groups", "figures": {...}, "ratios": {...}}.
#
# Usage: bash bench/serve_groups.sh [PASSES [SERVE OPTION...]]   (default 3; needs a built
# build/tools/overcast). Options after PASSES go to both servers, e.g. --captain-fast-up-ratio 0.25.
set -euo pipefail
cd "$(dirname "$0")/.."
PASSES=${1:-3}
shift $(( $# > 0 ? 1 : 0 ))
B=${OVERCAST_BIN:-$PWD/build/tools/overcast/overcast}
[ -x "$B" ] || { echo "serve_groups: $B not built (scripts/setup.sh)" >&2; exit 2; }
D=$(mktemp -d)
S=
cleanup() { [ -n "$S" ] && kill "$S" 2>/dev/null && wait "$S" 2>/dev/null; rm -rf "$D"; }
trap cleanup EXIT
"$B" make-model --out "$D/hot.model" --name hot --task binary --features 100000 --seed 7 >/dev/null
"$B" make-model --out "$D/cold.model" --name cold --task binary --features 100000 --seed 8 >/dev/null
allocated() {
  curl -s "http://127.0.0.1:$1/metrics" |
    awk '$1 == "overcast_serve_cpu_allocated_core_seconds_total" {print $2}'
}
for mode in placement one; do
  "$B" serve --model "$D/hot.model,$D/cold.model" --listen 127.0.0.1:0 --port-file "$D/port" \
    --replicas 2 --place hot=0 --place cold=1 --slo-p99-ms 25 --tower-interval-s 2 \
    --tower-groups "$mode" --tower-state "$D/state-$mode/tower.json" "$@" \
    > "$D/serve-$mode.log" 2>&1 &
  S=$!
  for _ in $(seq 100); do [ -s "$D/port" ] && break; sleep 0.1; done
  [ -s "$D/port" ] || { echo "serve_groups: the server did not start:" >&2; cat "$D/serve-$mode.log" >&2; exit 1; }
  P=$(cat "$D/port")
  rm -f "$D/port"
  for pass in $(seq "$PASSES"); do
    common=(--target "127.0.0.1:$P" --rows 4 --nnz 64)
    "$B" loadgen "${common[@]}" --model hot --rate 250 --seconds 10 --connections 32 >/dev/null &
    W=$!
    "$B" loadgen "${common[@]}" --model cold --rate 60 --seconds 10 --connections 16 >/dev/null
    wait "$W"
    a0=$(allocated "$P")
    "$B" loadgen "${common[@]}" --model hot --pattern diurnal --rate 250 --peak 2000 --seconds 40 \
      --connections 32 --seed "$pass" --json > "$D/hot-$mode-$pass.txt" &
    W=$!
    "$B" loadgen "${common[@]}" --model cold --pattern bursty --rate 60 --peak 300 --seconds 40 \
      --connections 16 --seed $((pass + 10)) --json > "$D/cold-$mode-$pass.txt"
    wait "$W"
    a1=$(allocated "$P")
    echo "$mode $pass $a0 $a1" >> "$D/passes"
  done
  kill "$S"
  wait "$S" || true
  S=
done
python3 - "$D" "$PASSES" <<'PY'
import json, sys
d, passes = sys.argv[1], int(sys.argv[2])
slo = 25.0
def windows(path):
    j = json.loads(open(path).read().strip().splitlines()[-1])
    w = j["windows"]
    met = sum(1 for x in w if x["p99_ms"] <= slo and x["rejected"] == 0 and x["errors"] == 0)
    return met, len(w)
warm = {}
for line in open(f"{d}/passes"):
    mode, p, a0, a1 = line.split()
    alloc = float(a1) - float(a0)
    hot = windows(f"{d}/hot-{mode}-{p}.txt")
    cold = windows(f"{d}/cold-{mode}-{p}.txt")
    print(f"{mode:9} pass {p}: {alloc:6.2f} core-s; windows meeting the SLO: hot {hot[0]}/{hot[1]}, "
          f"cold {cold[0]}/{cold[1]}")
    if int(p) > 1:
        w = warm.setdefault(mode, [0.0, 0, 0])
        w[0] += alloc
        w[1] += hot[0] + cold[0]
        w[2] += hot[1] + cold[1]
figures, ratios = {}, {}
if passes > 1:
    for mode, (a, m, n) in warm.items():
        print(f"{mode:9} passes 2..{passes}: {a:.2f} core-s, SLO met in {m}/{n} windows ({m / n:.3f})")
        figures[f"{mode}_core_seconds"] = round(a, 3)
        figures[f"{mode}_slo_share"] = round(m / n, 4)
    ratios["placement_over_one_core_seconds"] = round(warm["placement"][0] / warm["one"][0], 4)
    print(f"ratio placement / one: {ratios['placement_over_one_core_seconds']:.3f}")
print(json.dumps({"bench": "serve_groups", "figures": figures, "ratios": ratios}))
PY
