#!/usr/bin/env bash
# The main job, end to end on real data: Fashion-MNIST (Debian's dataset-fashion-mnist) ->
# LIBSVM -> overcast load -> normalize (minmax) -> train softmax with 2 local worker processes
# (evaluating on the test split as it goes) -> export the model -> predict the test file with it.
# Prints a short results table; every figure in it is measured by this run.
# Usage: scripts/demo.sh [WORKDIR]   (default: a fresh temporary directory, removed at the end)
set -euo pipefail
cd "$(dirname "$0")/.."
if [ -z "${OVERCAST_BIN:-}" ]; then
  scripts/setup.sh  # installs missing Debian packages, configures and builds (idempotent)
fi
BIN=${OVERCAST_BIN:-build/tools/overcast/overcast}
[ -x "$BIN" ] || { echo "demo: $BIN not found; run scripts/setup.sh first" >&2; exit 1; }
if [ ! -d /usr/share/datasets/fashion-mnist ]; then
  echo "demo: Fashion-MNIST is missing; install it: apt-get install dataset-fashion-mnist" >&2
  exit 1
fi
if [ $# -ge 1 ]; then WORK=$1; mkdir -p "$WORK"; else WORK=$(mktemp -d); trap 'rm -rf "$WORK"' EXIT; fi
STORE=$WORK/store
WORKERS=${WORKERS:-2}
EPOCHS=${EPOCHS:-10}
now() { date +%s.%N; }
field() { /usr/bin/python3 -c "import json,sys; print(json.loads(sys.argv[1]).get(sys.argv[2], ''))" "$1" "$2"; }

t0=$(now)
echo "== convert Fashion-MNIST to LIBSVM" >&2
/usr/bin/python3 scripts/fashion_mnist_to_libsvm.py --out "$WORK" >&2
t1=$(now)
echo "== load" >&2
load=$("$BIN" load --format libsvm --input "$WORK/fashion-mnist.train.svm" \
  --test-input "$WORK/fashion-mnist.test.svm" --dataset fmnist --store "$STORE" --overwrite --json | tail -1)
t2=$(now)
echo "== normalize (minmax)" >&2
"$BIN" normalize --dataset fmnist --output fmnist-mm --method minmax --store "$STORE" --overwrite >&2
t3=$(now)
echo "== train softmax, $WORKERS worker processes, $EPOCHS epochs" >&2
train=$("$BIN" train --dataset fmnist-mm --model softmax --workers "$WORKERS" --epochs "$EPOCHS" \
  --store "$STORE" --out "$WORK/fmnist-softmax.ocm" --json | tail -1)
t4=$(now)
echo "== predict the test file with the exported model" >&2
pred=$("$BIN" predict --model "$WORK/fmnist-softmax.ocm" --input "$WORK/fashion-mnist.test.svm" \
  --output "$WORK/predictions.txt" --json | tail -1)
t5=$(now)

/usr/bin/python3 - "$load" "$train" "$pred" "$t0" "$t1" "$t2" "$t3" "$t4" "$t5" <<'PY'
import json, sys
load, train, pred = (json.loads(a) for a in sys.argv[1:4])
t = [float(x) for x in sys.argv[4:]]
rows = [
    ("convert (python)", f"{t[1]-t[0]:.1f} s", "60000 train + 10000 test images"),
    ("load", f"{t[2]-t[1]:.1f} s", f"{load.get('train_rows', '?')} + {load.get('test_rows', '?')} rows"),
    ("normalize minmax", f"{t[3]-t[2]:.1f} s", ""),
    ("train softmax", f"{train['train_seconds']:.1f} s",
     f"{train['workers']} workers, {train['epochs']:.0f} epochs, {train['samples_per_second']:.0f} samples/s, "
     f"{train['worker_restarts']} restarts"),
    ("  test accuracy", f"{train['test_accuracy']:.4f}", "held-out split, exported model"),
    ("  test log-loss", f"{train['test_logloss']:.4f}", ""),
    ("predict (exported)", f"{t[5]-t[4]:.1f} s", f"{pred['rows']} rows"),
    ("  accuracy", f"{pred['test_accuracy']:.4f}", "model file applied to the LIBSVM test file"),
    ("total", f"{t[5]-t[0]:.1f} s", ""),
]
print(f"{'step':<22}{'figure':>10}  notes")
for name, fig, note in rows:
    print(f"{name:<22}{fig:>10}  {note}")
PY
