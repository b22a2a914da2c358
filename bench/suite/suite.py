#!/usr/bin/python3
"""The peer benchmark suite: overcast side by side with the tools users would pick instead,
measured on this machine in this run. bench/suite/README.md describes each part and key.

Usage: bench/suite/suite.py [--quick] [--parts fmnist,ctr,ps,movielens] [--out DIR]
                            [--repeats N] [--bin OVERCAST] [--peers NAMES] [--ctr-rows N]
Writes OUT/results.json and OUT/results.md. Every figure is measured in this run; a peer that
cannot run stops the suite with its command and error (no figure is ever carried over).
"""
import argparse
import datetime
import json
import os
import platform
import re
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
PY = "/usr/bin/python3"
TIME = "/usr/bin/time"  # GNU time (Debian package time): the children's peak RSS
PEERS_PY = os.path.join(HERE, "peers.py")
ALL_PARTS = ["fmnist", "ctr", "ps", "movielens"]
# overcast mf on MovieLens: the parameters tests/integration/quality_test.cc checks its bar
# with (mf's defaults suit denser data and overfit these ratings).
MF_PARAMS = ["rank=32", "l2=0.12", "bias_l2=0.02", "init_std=0.05"]
# overcast on the CTR data: 1024-row minibatches (a 2 M-row sample ran 3.5x the samples/s of
# the default 64 rows, at a lower test log-loss after 1 and 3 epochs), and the learning rate
# searched over these values by test log-loss, as SGDClassifier's alpha is.
OVR_CLASS = 6  # Fashion-MNIST's shirt, the one-vs-rest task (also issue 5's AUC quality test)
CTR_BATCH = "batch=1024"
CTR_LRS = {"logreg": [0.05, 0.1, 0.2], "fm": [0.025, 0.05, 0.1]}
ALL_PEERS = ["liblinear", "sk-logreg", "sk-sgd", "xgb", "nmf", "als"]


class SuiteError(Exception):
    pass


def log(msg):
    print(f"[suite {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


class Runner:
    """Runs children: wall time by the clock, peak RSS from GNU time's %M (the largest of the
    child and the descendants it waited for), every command recorded.

    Not wait4's own ru_maxrss: a child that Python starts (vfork, then exec) keeps the high-water
    RSS of the address space it left behind, which is the suite's, so every figure would be at
    least the suite's own peak (a 500 MiB parent made /bin/true report 514 MiB). /usr/bin/time
    forks from a process of about 1 MiB."""

    def __init__(self, work):
        self.work = work
        self.commands = []
        self.n = 0

    def run(self, cmd, what, env=None, cwd=None):
        self.n += 1
        out_path = os.path.join(self.work, f"child{self.n}.out")
        err_path = os.path.join(self.work, f"child{self.n}.err")
        rss_path = os.path.join(self.work, f"child{self.n}.rss")
        self.commands.append({"what": what, "command": " ".join(shlex.quote(c) for c in cmd)})
        with open(out_path, "wb") as out, open(err_path, "wb") as err:
            t0 = time.perf_counter()
            try:
                p = subprocess.Popen([TIME, "-f", "%M", "-o", rss_path] + list(cmd), stdout=out,
                                     stderr=err, env=env, cwd=cwd)
            except OSError as e:
                raise SuiteError(f"{what}: cannot start {TIME}: {e}") from e
            _, status, _ = os.wait4(p.pid, 0)
            wall = time.perf_counter() - t0
            p.returncode = os.waitstatus_to_exitcode(status)
        stdout = open(out_path, encoding="utf-8", errors="replace").read()
        stderr = open(err_path, encoding="utf-8", errors="replace").read()
        if p.returncode != 0:
            raise SuiteError(f"{what} failed (exit {p.returncode}): "
                             f"{self.commands[-1]['command']}\n{stderr[-3000:]}")
        try:
            # time writes "Command exited ..." lines first when the child failed; %M is last.
            peak_kib = int(open(rss_path).read().split()[-1])
        except (OSError, ValueError, IndexError) as e:
            raise SuiteError(f"{what}: no peak RSS from {TIME} ({e})") from e
        return {"stdout": stdout, "stderr": stderr, "wall": wall, "peak_rss_mb": peak_kib / 1024.0}

    def json_line(self, cmd, what, **kw):
        r = self.run(cmd, what, **kw)
        lines = [l for l in r["stdout"].splitlines() if l.strip()]
        if not lines:
            raise SuiteError(f"{what}: printed no JSON line: {self.commands[-1]['command']}")
        try:
            r["json"] = json.loads(lines[-1])
        except json.JSONDecodeError as e:
            raise SuiteError(f"{what}: last line is not JSON ({e}): {lines[-1][:200]}") from e
        return r


def median_runs(fn, repeats, first=None):
    """Calls fn() `repeats` times (once less when `first`, a run of the same command made
    already, is given); numbers become their median, booleans true only if always."""
    runs = ([first] if first else []) + [fn() for _ in range(repeats - (1 if first else 0))]
    out = {}
    for k in runs[0]:
        vals = [r.get(k) for r in runs]
        if all(isinstance(v, bool) for v in vals):
            out[k] = all(vals)
        elif all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in vals):
            out[k] = statistics.median(vals)
        else:
            out[k] = vals[-1]
    out["repeats"] = repeats
    return out


def searched(values, run, metric, repeats, rank=None):
    """A peer's setting searched the way a user would: run(v) for each value, the one with the
    lowest `metric` (or `rank` of the entry, when given) kept and timed `repeats` times in all
    (its search run counts as the first). Returns (best value, {str(value): metric}, the median
    entry)."""
    search = {v: run(v) for v in values}
    best = min(search, key=lambda v: rank(search[v]) if rank else search[v][metric])
    return (best, {str(v): s[metric] for v, s in search.items()},
            median_runs(lambda: run(best), repeats, first=search[best]))


def warm_cache(*paths):
    """Reads files once so that no timed run pays for the disk (the page-cache warm-up)."""
    for p in paths:
        with open(p, "rb") as f:
            while f.read(1 << 24):
                pass


def machine():
    cpu = "unknown"
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem_gb = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return {"cores": os.cpu_count(), "cpu": cpu, "memory_gib": round(mem_gb, 1),
            "kernel": platform.release(), "load_average_at_start": os.getloadavg()}


def commit():
    try:
        c = subprocess.run(["git", "-C", ROOT, "rev-parse", "HEAD"], capture_output=True,
                           text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", ROOT, "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True).stdout.strip()
        return c + ("-dirty" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def versions(peers):
    v = {}
    for pkg in ["liblinear-tools", "python3-sklearn", "python3-xgboost", "redis-server",
                "r-cran-dslabs", "python3-numpy"]:
        r = subprocess.run(["dpkg-query", "-W", "-f=${Version}", pkg], capture_output=True,
                           text=True)
        if r.returncode == 0:
            v[pkg] = r.stdout
    return v


# ---------------------------------------------------------------------------------------------
# Peers that run through a command line


def liblinear(rn, train, test, cwd, args, what, classes_hint=None):
    """liblinear-train (read + fit) then liblinear-predict -b 1; the read alone is timed with
    `liblinear-train -c 0` (train.c reads the whole problem, then stops on C <= 0)."""
    model = os.path.join(cwd, "liblinear.model")
    pred = os.path.join(cwd, "liblinear.pred")
    fit = rn.run(["liblinear-train", "-q"] + args + [train, model], f"{what}: liblinear-train")
    # `-c 0` exits 1 by design after the read, so it is timed here rather than through run().
    t0 = time.perf_counter()
    r = subprocess.run(["liblinear-train", "-c", "0", train, model + ".none"],
                       capture_output=True, text=True)
    read_s = time.perf_counter() - t0
    if "C <= 0" not in (r.stdout + r.stderr):
        raise SuiteError(f"{what}: liblinear-train -c 0 did not stop on C <= 0: {r.stderr[-500:]}")
    rn.commands.append({"what": f"{what}: liblinear read only (exits on C <= 0)",
                        "command": f"liblinear-train -c 0 {train} {model}.none"})
    rn.run(["liblinear-predict", "-b", "1", test, model, pred], f"{what}: liblinear-predict")
    acc, ll, auc = score_liblinear(pred, test)
    out = {"wall_seconds": fit["wall"], "read_seconds": read_s,
           "fit_seconds": max(fit["wall"] - read_s, 0.0), "test_accuracy": acc,
           "test_logloss": ll, "peak_rss_mb": fit["peak_rss_mb"]}
    if auc is not None:
        out["test_auc"] = auc
    return out


def auc(positive, scores):
    """Area under the ROC curve: the rank-sum (Mann-Whitney) form, ties at their mean rank."""
    order = sorted(range(len(scores)), key=lambda i: scores[i])
    rank_sum, i = 0.0, 0
    while i < len(order):
        j = i
        while j + 1 < len(order) and scores[order[j + 1]] == scores[order[i]]:
            j += 1
        mean_rank = (i + j) / 2 + 1
        rank_sum += mean_rank * sum(1 for k in order[i:j + 1] if positive[k])
        i = j + 1
    pos = sum(1 for p in positive if p)
    neg = len(positive) - pos
    if pos == 0 or neg == 0:
        return None
    return (rank_sum - pos * (pos + 1) / 2) / (pos * neg)


def score_liblinear(pred_path, test_path):
    import math
    with open(pred_path) as f:
        header = f.readline().split()
        if header[0] != "labels":
            raise SuiteError(f"{pred_path}: expected a 'labels ...' header from -b 1")
        labels = [float(x) for x in header[1:]]
        preds = [l.split() for l in f]
    ys = []
    with open(test_path) as f:
        for line in f:
            ys.append(float(line.split(None, 1)[0]))
    if len(ys) != len(preds):
        raise SuiteError(f"{pred_path}: {len(preds)} predictions for {len(ys)} test rows")
    correct, ll, top = 0, 0.0, []
    for y, p in zip(ys, preds):
        correct += float(p[0]) == y
        probs = [float(x) for x in p[1:]]
        ll -= math.log(max(probs[labels.index(y)], 1e-15))
        if len(labels) == 2:
            top.append(probs[labels.index(max(labels))])
    # Binary: AUC of the larger label's probability.
    a = auc([y == max(labels) for y in ys], top) if len(labels) == 2 else None
    return correct / len(ys), ll / len(ys), a


def peer(rn, name, train, test, what, extra):
    r = rn.json_line([PY, PEERS_PY, name, "--train", train, "--test", test] + extra, what)
    j = r["json"]
    j["wall_seconds"] = r["wall"]
    j["peak_rss_mb"] = r["peak_rss_mb"]
    return j


def overcast_load(rn, a, train, test, name, what, fmt="libsvm"):
    r = rn.json_line([a.bin, "load", "--format", fmt, "--input", train, "--test-input", test,
                      "--dataset", name, "--store", a.store, "--overwrite", "--json"], what)
    return {"load_seconds": r["wall"], "load_peak_rss_mb": r["peak_rss_mb"], "load": r["json"]}


def overcast_train(rn, a, what, dataset, model, workers, extra):
    r = rn.json_line([a.bin, "train", "--dataset", dataset, "--model", model, "--workers",
                      str(workers), "--store", a.store, "--json"] + extra, what)
    j = r["json"]
    out = {k: j[k] for k in ["train_seconds", "samples_per_second", "epochs", "test_accuracy",
                             "test_logloss", "test_auc", "test_rmse", "worker_restarts"] if k in j}
    out["stopped_by"] = j.get("stopped_by", "")
    out["curve"] = j.get("curve", [])
    out["wall_seconds"] = r["wall"]
    out["peak_rss_mb"] = r["peak_rss_mb"]
    return out


# ---------------------------------------------------------------------------------------------
# Parts


def part_fmnist(a, rn, work):
    """Fashion-MNIST, [0,1]-scaled pixels for every system: time to the target accuracy, final
    accuracy and log-loss, peak RSS."""
    src = "/usr/share/datasets/fashion-mnist"
    if not os.path.isdir(src):
        raise SuiteError("fmnist: Fashion-MNIST is missing; apt-get install dataset-fashion-mnist")
    d = os.path.join(work, "fmnist")
    os.makedirs(d, exist_ok=True)
    limit = ["--limit", "3000"] if a.quick else []
    rn.run([PY, os.path.join(HERE, "scale_fmnist.py"), "--src", src, "--out", d] + limit,
           "fmnist: convert to LIBSVM, pixels / 255")
    train, test = os.path.join(d, "train01.svm"), os.path.join(d, "test01.svm")
    warm_cache(train, test)
    target = a.fmnist_target
    res = {"target_accuracy": target, "entries": {}}
    E = res["entries"]
    load = overcast_load(rn, a, train, test, "fmnist01", "fmnist: overcast load")
    epochs = "2" if a.quick else str(a.fmnist_epochs)
    for w in a.workers:
        log(f"fmnist: overcast softmax, {w} workers")

        def one(w=w):
            t = overcast_train(rn, a, f"fmnist: overcast softmax {w} workers, to target",
                               "fmnist01", "softmax", w,
                               ["--epochs", epochs, "--target", f"accuracy>={target}",
                                "--eval-every", str(a.eval_every)])
            f = overcast_train(rn, a, f"fmnist: overcast softmax {w} workers, full",
                               "fmnist01", "softmax", w, ["--epochs", epochs])
            return {"seconds_to_target": t["train_seconds"] if t["stopped_by"] == "target"
                    else None,
                    "reached_target": t["stopped_by"] == "target",
                    "accuracy_at_stop": t["test_accuracy"],
                    "fit_seconds": f["train_seconds"], "epochs": f["epochs"],
                    "test_accuracy": f["test_accuracy"], "test_logloss": f["test_logloss"],
                    "samples_per_second": f["samples_per_second"],
                    "peak_rss_mb": max(t["peak_rss_mb"], f["peak_rss_mb"]),
                    "load_seconds": load["load_seconds"]}
        E[f"overcast_w{w}"] = dict(median_runs(one, a.repeats), system="overcast",
                                   config=f"softmax, {w} workers, {epochs} epochs, async SGD")
    fmnist_peers(a, rn, d, train, test, "fmnist", E, target)
    for k, e in E.items():
        if k.startswith("overcast"):
            continue
        e.setdefault("seconds_to_target", None)
        if e["seconds_to_target"] is None and e["test_accuracy"] >= target:
            e["seconds_to_target_upper_bound"] = e["fit_seconds"]
        e["reached_target"] = e["test_accuracy"] >= target
    res["ratios"] = ratios_to(E, "overcast_w2")
    res["ovr"] = fmnist_ovr(a, rn, d, train, test)
    return res


def overcast_fits(a, rn, what, dataset, model, workers, extra, config, E):
    """overcast `model` on `dataset` with each worker count, medians of the repeats, into
    E["overcast_wN"] (fit seconds: train seconds); config(w) describes the entry."""
    for w in workers:
        log(f"{what}: overcast {model}, {w} workers")
        r = median_runs(lambda w=w: overcast_train(
            rn, a, f"{what}: overcast {model} {w} workers", dataset, model, w, extra), a.repeats)
        r["fit_seconds"] = r["train_seconds"]
        E[f"overcast_w{w}"] = dict(r, system="overcast", config=config(w))


def fmnist_peers(a, rn, d, train, test, what, E, target=None):
    """The peers of the Fashion-MNIST part on one pair of files, with the same settings for the
    10-class files (`target` given: XGBoost times its rounds to it) and the binary ones of the
    one-vs-rest task; fills E."""
    multi = target is not None
    if "liblinear" in a.peers:
        log(f"{what}: liblinear")
        r = median_runs(lambda: liblinear(rn, train, test, d, ["-s", "0", "-c", "1"], what),
                        a.repeats)
        E["liblinear"] = dict(r, system="liblinear 2.3 (liblinear-train)",
                              config=f"-s 0 -c 1 ({'one-vs-rest ' if multi else ''}logreg, "
                                     "trust-region Newton)")
    if "sk-logreg" in a.peers:
        log(f"{what}: sklearn LogisticRegression")
        r = median_runs(lambda: peer(rn, "sk-logreg", train, test, f"{what}: sklearn logreg",
                                     ["--dense", "--max-iter", "200"]), a.repeats)
        E["sk_logreg"] = dict(r, system="scikit-learn LogisticRegression",
                              config=f"lbfgs, {'multinomial, ' if multi else ''}C=1, "
                                     "max_iter=200, dense float64")
    if "sk-sgd" in a.peers:
        log(f"{what}: sklearn SGDClassifier")
        r = median_runs(lambda: peer(rn, "sk-sgd", train, test, f"{what}: sklearn SGD",
                                     ["--dense", "--alpha", "1e-4", "--tol", "1e-3",
                                      "--max-iter", "1000"]), a.repeats)
        E["sk_sgd"] = dict(r, system="scikit-learn SGDClassifier",
                           config="log_loss, alpha=1e-4, tol=1e-3" +
                                  (", one-vs-rest on all cores" if multi else ""))
    if "xgb" in a.peers:
        log(f"{what}: xgboost")
        r = median_runs(lambda: peer(rn, "xgb", train, test, f"{what}: xgboost",
                                     ["--booster", "gblinear", "--rounds",
                                      "5" if a.quick else "100", "--eta", "0.5",
                                      "--l2", "0.0001"] +
                                     (["--target", str(target)] if multi else [])), a.repeats)
        E["xgb"] = dict(r, system="XGBoost gblinear",
                        config=f"{'multi:softprob' if multi else 'binary:logistic'}, shotgun, "
                               "eta 0.5, lambda 1e-4, 100 rounds")


def binary_copy(src, dst, positive):
    """A LIBSVM file with each label replaced by 1 (== positive) or 0."""
    with open(src) as f, open(dst, "w") as g:
        for line in f:
            y, sep, rest = line.rstrip("\n").partition(" ")
            g.write(("1" if float(y) == positive else "0") + sep + rest + "\n")


def fmnist_ovr(a, rn, d, train, test):
    """The one-vs-rest task of Fashion-MNIST: shirt (class 6, the hardest) against the other
    nine, on the same scaled pixels. Every system fits the binary files; fit seconds, accuracy,
    log-loss, AUC and peak RSS (no time-to-target: the issue sets no target for this task)."""
    cls = OVR_CLASS
    btrain, btest = os.path.join(d, "train01_ovr.svm"), os.path.join(d, "test01_ovr.svm")
    binary_copy(train, btrain, cls)
    binary_copy(test, btest, cls)
    warm_cache(btrain, btest)
    res = {"positive_class": cls, "entries": {}}
    E = res["entries"]
    load = overcast_load(rn, a, btrain, btest, "fmnist01ovr", "fmnist ovr: overcast load")
    res["overcast_load_seconds"] = load["load_seconds"]
    epochs = "2" if a.quick else str(a.fmnist_epochs)
    overcast_fits(a, rn, "fmnist ovr", "fmnist01ovr", "logreg", a.workers, ["--epochs", epochs],
                  lambda w: f"logreg, {w} workers, {epochs} epochs, defaults", E)
    fmnist_peers(a, rn, d, btrain, btest, "fmnist ovr", E)
    res["ratios"] = {}
    if "overcast_w2" in E:
        b = E["overcast_w2"]
        for k, e in E.items():
            if k == "overcast_w2":
                continue
            res["ratios"][f"{k}_fit_seconds_over_overcast_w2"] = e["fit_seconds"] / b["fit_seconds"]
            if e.get("test_auc") is not None and b.get("test_auc") is not None:
                res["ratios"][f"{k}_auc_minus_overcast_w2"] = e["test_auc"] - b["test_auc"]
    return res


def time_to(e):
    """A peer's time to the target: measured per round where the peer allows it, else its whole
    fit when the final model reached the target, else None (not reached)."""
    if e.get("seconds_to_target") is not None:
        return e["seconds_to_target"]
    if e.get("reached_target"):
        return e["fit_seconds"]
    return None


def ratios_to(E, base):
    """Each entry against `base`: time to target (when both reached it), fit time, log-loss."""
    out = {}
    if base not in E:
        return out
    b = E[base]
    bt = time_to(b)
    for k, e in E.items():
        if k == base:
            continue
        t = time_to(e)
        out[f"{k}_to_target_seconds_over_{base}"] = (t / bt) if (t and bt) else None
        out[f"{k}_fit_seconds_over_{base}"] = e["fit_seconds"] / b["fit_seconds"]
        out[f"{k}_logloss_over_{base}"] = e["test_logloss"] / b["test_logloss"]
    return out


def part_ctr(a, rn, work):
    d = os.path.join(work, "ctr")
    os.makedirs(d, exist_ok=True)
    train, test = os.path.join(d, "train.svm"), os.path.join(d, "test.svm")
    rows = a.ctr_rows
    test_rows = max(rows // 10, 1000)
    log(f"ctr: generating {rows} + {test_rows} rows")
    # Crossed copies (the interacting pairs as one more feature each) for the peers that run on
    # them too (--ctr-crossed-peers): what a user of a tool without crosses would feed it.
    xtrain, xtest = os.path.join(d, "train_x.svm"), os.path.join(d, "test_x.svm")
    crossed_peers = [p for p in a.ctr_crossed_peers if p in a.peers] if a.ctr_field_bits else []
    g = rn.json_line([a.bin, "bench", "gen-ctr", "--train", train, "--test", test, "--rows",
                      str(rows), "--test-rows", str(test_rows), "--hash-bits",
                      str(a.ctr_hash_bits), "--field-bits", str(a.ctr_field_bits),
                      "--cross-bits", str(a.ctr_cross_bits)] +
                     (["--cross-train", xtrain, "--cross-test", xtest] if crossed_peers else []),
                     "ctr: generate")
    gen = g["json"]
    opt = gen["test"]["optimal_logloss"]
    goal = opt * (1 + a.ctr_gap)
    res = {"generator": gen, "generate_seconds": g["wall"], "optimal_test_logloss": opt,
           "target_logloss": goal, "entries": {}}
    E = res["entries"]
    warm_cache(train, test)
    nnz = gen["train"]["nnz"]
    load = overcast_load(rn, a, train, test, "ctr", "ctr: overcast load")
    res["overcast_load_seconds"] = load["load_seconds"]
    epochs = str(a.ctr_epochs)
    # liblinear first: its final log-loss is the quality at which every overcast run is also
    # timed, from the run's evaluation curve (seconds_to_liblinear_logloss).
    ref = None
    if "liblinear" in a.peers:
        log("ctr: liblinear")
        r = median_runs(lambda: liblinear(rn, train, test, d, ["-s", "0", "-c", "1", "-B", "1"],
                                          "ctr"), a.repeats)
        E["liblinear"] = dict(r, system="liblinear 2.3 (liblinear-train)",
                              config="-s 0 -c 1 -B 1 (logreg with a bias term)")
        ref = res["liblinear_logloss"] = r["test_logloss"]
    if "liblinear" in crossed_peers:
        log("ctr: liblinear, crossed copy")
        warm_cache(xtrain, xtest)
        r = median_runs(lambda: liblinear(rn, xtrain, xtest, d, ["-s", "0", "-c", "1", "-B", "1"],
                                          "ctr crossed"), a.repeats)
        E["liblinear_cross"] = dict(r, system="liblinear 2.3 (liblinear-train)",
                                    config="-s 0 -c 1 -B 1 on the crossed copy (the "
                                           "interacting pairs as features)")

    def one(model, workers, params):
        t = overcast_train(rn, a, f"ctr: overcast {model} {workers} workers {' '.join(params)}",
                           "ctr", model, workers,
                           ["--epochs", epochs, "--target", f"logloss<={goal:.6f}",
                            "--eval-every", str(a.eval_every)] +
                           sum((["--param", p] for p in params), []))
        return {"seconds_to_target": t["train_seconds"] if t["stopped_by"] == "target"
                else None,
                "reached_target": t["stopped_by"] == "target",
                "fit_seconds": t["train_seconds"], "epochs": t["epochs"],
                "test_logloss": t["test_logloss"], "test_accuracy": t["test_accuracy"],
                "samples_per_second": t["samples_per_second"],
                "seconds_to_liblinear_logloss": None if ref is None else next(
                    (p["seconds"] for p in t["curve"] if p["test_logloss"] <= ref), None),
                "curve": [[p["seconds"], p["epochs"], p["test_logloss"]] for p in t["curve"]],
                "peak_rss_mb": t["peak_rss_mb"]}

    res["overcast_lr_search"] = {}
    # logreg_cross: logreg with the generator's interacting field pairs crossed (train's
    # cross=AxB; a feature's field is its id >> field_bits, as the generator lays them out).
    runs = [("logreg", "logreg", []), ("fm", "fm", [])]
    if gen["model"].get("field_bits", 0) > 0 and gen["model"]["pairs"] > 0:
        pairs = ",".join(f"{2 * k}x{2 * k + 1}" for k in range(gen["model"]["pairs"]))
        runs.insert(1, ("logreg_cross", "logreg", [f"cross={pairs}",
                                                   f"field_bits={gen['model']['field_bits']}",
                                                   f"cross_bits={a.ctr_cross_bits}"]))
    else:
        log("ctr: no logreg_cross run (the data has no field blocks: --ctr-field-bits 0)")
    for key, model, crosses in runs:
        given = crosses + a.ctr_params.get(key, [])
        keys = {kv.partition("=")[0] for kv in given}
        base = given + ([] if "batch" in keys else [CTR_BATCH])
        workers = a.ctr_workers if key == "logreg" else [2]
        lrs = [None] if "lr" in keys else CTR_LRS[model][1:2] if a.quick else CTR_LRS[model]
        best = None

        def params(lr, base=base):
            return base + ([] if lr is None else [f"lr={lr}"])
        # The learning rate is searched once, at the last worker count (2 by default), the other
        # counts run with the rate found. The best rate reaches the target soonest; when none
        # does, it has the lowest test log-loss, like SGDClassifier's alpha. (A run that stops
        # at the target ends at a higher log-loss than one that trains on: log-loss alone would
        # pick the rate that never got there.)
        def rank(e):
            return (0, e["seconds_to_target"]) if e["reached_target"] else (1, e["test_logloss"])
        for w in sorted(workers, key=lambda w: w != workers[-1]):
            log(f"ctr: overcast {key}, {w} workers")
            if best is None and len(lrs) > 1:
                runs_by_lr = {}

                def run_lr(lr):
                    runs_by_lr[lr] = one(model, w, params(lr))
                    return runs_by_lr[lr]
                best, res["overcast_lr_search"][key], r = searched(
                    lrs, run_lr, "test_logloss", a.repeats, rank)
                res.setdefault("overcast_lr_search_seconds_to_target", {})[key] = {
                    str(lr): e["seconds_to_target"] for lr, e in runs_by_lr.items()}
            else:
                best = best if best is not None else lrs[0]
                r = median_runs(lambda: one(model, w, params(best)), a.repeats)
            E[f"overcast_{key}_w{w}"] = dict(
                r, system="overcast",
                config=f"{model}, {w} workers, stop at target or {epochs} epochs, params "
                       f"{' '.join(params(best))}" +
                       (f" (lr best of {lrs}: soonest to the target, else by test log-loss)"
                        if len(lrs) > 1 else ""))
    if "sk-logreg" in a.peers:
        log("ctr: sklearn LogisticRegression")
        r = median_runs(lambda: peer(rn, "sk-logreg", train, test, "ctr: sklearn logreg",
                                     ["--C", "1", "--max-iter", "100"]), a.repeats)
        E["sk_logreg"] = dict(r, system="scikit-learn LogisticRegression",
                              config="lbfgs, C=1, max_iter=100, sparse CSR")
    if "sk-sgd" in a.peers:
        alphas = [1e-7, 1e-6, 1e-5] if not a.quick else [1e-6]

        def sgd(al):
            log(f"ctr: sklearn SGDClassifier alpha={al}")
            return peer(rn, "sk-sgd", train, test, f"ctr: sklearn SGD alpha={al}",
                        ["--alpha", str(al), "--tol", "1e-3", "--max-iter", "20"])
        best, res["sk_sgd_alpha_search"], r = searched(alphas, sgd, "test_logloss", a.repeats)
        E["sk_sgd"] = dict(r, system="scikit-learn SGDClassifier",
                           config=f"log_loss, alpha={best} (best of {alphas} by test log-loss), "
                                  "tol=1e-3, max_iter=20")
    # XGBoost on the plain files, and on the crossed copy when it is one of the crossed peers.
    xgb_runs = [("xgb", train, test, "", "binary:logistic, shotgun, eta 0.5, lambda 1e-6, up "
                 "to 30 rounds, stops at the target")] if "xgb" in a.peers else []
    if "xgb" in crossed_peers:
        xgb_runs.append(("xgb_cross", xtrain, xtest, " crossed", "as above, on the crossed copy"))
    for key, xtr, xte, which, config in xgb_runs:
        log(f"ctr{which}: xgboost gblinear")
        r = median_runs(lambda: peer(rn, "xgb", xtr, xte, f"ctr{which}: xgboost gblinear",
                                     ["--booster", "gblinear", "--rounds",
                                      "3" if a.quick else "30", "--eta", "0.5", "--l2", "1e-6",
                                      "--target", f"{goal:.6f}", "--target-metric", "logloss",
                                      "--stop-at-target"]), a.repeats)
        E[key] = dict(r, system="XGBoost gblinear", config=config)
    for k, e in E.items():
        e["logloss_over_optimal"] = e["test_logloss"] / opt
        if not k.startswith("overcast"):
            e["reached_target"] = e.get("seconds_to_target") is not None or \
                e["test_logloss"] <= goal
        e["rows_per_second"] = rows / e["fit_seconds"] if e["fit_seconds"] > 0 else None
        # A peer on the crossed copy reads that file's entries.
        n = gen["train"].get("crossed_nnz", nnz) if k.endswith("_cross") and \
            not k.startswith("overcast") else nnz
        e["nnz_per_second"] = n / e["fit_seconds"] if e["fit_seconds"] > 0 else None
    base = "overcast_logreg_w2" if "overcast_logreg_w2" in E else next(iter(E))
    res["ratios"] = ratios_to(E, base)
    if base == "overcast_logreg_w2" and "overcast_logreg_cross_w2" in E:
        # The target's reading with crosses: each peer's whole fit against the time crossed
        # logreg took to come within the gap of the optimum (None if it did not).
        ct = E["overcast_logreg_cross_w2"].get("seconds_to_target")
        for k, e in E.items():
            if not k.startswith("overcast"):
                res["ratios"][f"{k}_fit_seconds_over_overcast_logreg_cross_w2_to_target"] = \
                    e["fit_seconds"] / ct if ct else None
    lt = E[base].get("seconds_to_liblinear_logloss")
    if "liblinear" in E and base.startswith("overcast"):
        # liblinear's whole fit against the time overcast took to reach the same log-loss.
        res["ratios"][f"liblinear_fit_seconds_over_{base}_seconds_to_liblinear_logloss"] = \
            E["liblinear"]["fit_seconds"] / lt if lt else None
    return res


def part_ps(a, rn, work):
    cmd = [a.bin, "bench", "ps", "--json"] + (["--quick"] if a.quick else [])
    r = rn.json_line(cmd, "ps: overcast bench ps (overcast ps vs redis-server, loopback)")
    j = r["json"]
    if not j["figures"].get("redis_ran"):
        raise SuiteError("ps: the Redis peer did not run (is redis-server installed?)")
    return {"figures": j["figures"], "ratios": j["ratios"], "wall_seconds": r["wall"]}


def part_movielens(a, rn, work):
    d = os.path.join(work, "movielens")
    os.makedirs(d, exist_ok=True)
    csv = os.path.join(d, "ratings.csv")
    if shutil.which("Rscript") is None:
        raise SuiteError("movielens: Rscript is missing; apt-get install r-cran-dslabs")
    rn.run(["Rscript", "-e", "suppressMessages(library(dslabs)); data(movielens); "
            f"write.table(movielens[, c('userId', 'movieId', 'rating')], '{csv}', "
            "sep=' ', row.names=FALSE, col.names=FALSE)"], "movielens: export with Rscript")
    rn.run([PY, os.path.join(HERE, "split_ratings.py"), csv, d, "0.2"],
           "movielens: 80/20 random split (seed 1)")
    train, test = os.path.join(d, "train.txt"), os.path.join(d, "test.txt")
    res = {"entries": {}}
    E = res["entries"]
    load = overcast_load(rn, a, train, test, "ml", "movielens: overcast load", fmt="ratings")
    res["overcast_load_seconds"] = load["load_seconds"]
    epochs = "2" if a.quick else str(a.mf_epochs)
    overcast_fits(a, rn, "movielens", "ml", "mf", a.mf_workers,
                  ["--epochs", epochs] + sum((["--param", p] for p in a.mf_params), []),
                  lambda w: f"mf, {w} workers, {epochs} epochs, params "
                            f"{a.mf_params or 'default'}", E)
    iters = "3" if a.quick else "10"
    if "nmf" in a.peers:
        log("movielens: sklearn NMF")
        r = median_runs(lambda: peer(rn, "nmf", train, test, "movielens: sklearn NMF",
                                     ["--rank", "16", "--max-iter", "200" if not a.quick else "20",
                                      "--l2", "0"]), a.repeats)
        E["nmf"] = dict(r, system="scikit-learn NMF",
                        config="rank 16, nndsvda init, max_iter 200 (missing ratings are zeros)")
    if "als" in a.peers:
        # lambda searched by test RMSE, as overcast mf's parameters were tuned on this split.
        lambdas = [0.05, 0.1, 0.2, 0.3] if not a.quick else [0.1]

        def als(lam):
            log(f"movielens: numpy ALS lambda={lam}")
            return peer(rn, "als", train, test, f"movielens: numpy ALS lambda={lam}",
                        ["--rank", "20", "--max-iter", iters, "--l2", str(lam)])
        best, res["als_lambda_search"], r = searched(lambdas, als, "test_rmse", a.repeats)
        E["als"] = dict(r, system="ALS (numpy)",
                        config=f"biased, rank 20, global mean, lambda {best} x count (best of "
                               f"{lambdas} by test RMSE), {iters} sweeps")
    base = "overcast_w2" if "overcast_w2" in E else next(iter(E))
    res["ratios"] = {}
    for k, e in E.items():
        if k != base:
            res["ratios"][f"{k}_rmse_over_{base}"] = e["test_rmse"] / E[base]["test_rmse"]
            res["ratios"][f"{k}_seconds_over_{base}"] = e["fit_seconds"] / E[base]["fit_seconds"]
    return res


# ---------------------------------------------------------------------------------------------
# Report


def fmt(v, nd=3):
    if v is None:
        return "—"
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, float):
        if abs(v) >= 1e5:
            return f"{v:,.0f}"
        return f"{v:.{nd}f}" if abs(v) < 100 else f"{v:.1f}"
    return str(v)


def pass_rate(e):
    """Rows over fit seconds counting every pass: overcast's samples/s; SGD epochs and XGBoost
    rounds times rows; None for the batch solvers (liblinear, lbfgs)."""
    if e.get("samples_per_second"):
        return e["samples_per_second"]
    passes = e.get("rounds") or (e.get("iterations") if "SGD" in e.get("system", "") else None)
    if passes and e.get("train_rows") and e.get("fit_seconds"):
        return passes * e["train_rows"] / e["fit_seconds"]
    return None


def table(entries, cols):
    """One row per entry; a column is (key or function of the entry, heading)."""
    head = "| system | config | " + " | ".join(c[1] for c in cols) + " |"
    sep = "| --- | --- | " + " | ".join("---:" for _ in cols) + " |"
    lines = [head, sep]
    for k, e in entries.items():
        cells = [fmt(c[0](e) if callable(c[0]) else e.get(c[0])) for c in cols]
        lines.append(f"| {e.get('system', k)} | {e.get('config', '')} | " +
                     " | ".join(cells) + " |")
    return lines


def markdown(R):
    m = R["machine"]
    L = [f"# overcast peer suite results", "",
         f"- date: {R['date']}", f"- commit: {R['commit']}",
         f"- machine: {m['cores']} cores, {m['cpu']}, {m['memory_gib']} GiB memory, "
         f"Linux {m['kernel']}, load average at start {m['load_average_at_start'][0]:.2f}",
         f"- command: `{R['command']}`", f"- repeats: {R['options']['repeats']} (medians)",
         f"- peers: " + ", ".join(f"{k} {v}" for k, v in R["versions"].items()), ""]
    P = R["parts"]
    if "fmnist" in P:
        f = P["fmnist"]
        L += [f"## Fashion-MNIST (pixels / 255), target test accuracy {f['target_accuracy']}", ""]
        L += table(f["entries"], [(time_to, "s to target"),
                                  ("reached_target", "reached"),
                                  ("fit_seconds", "fit s"), ("test_accuracy", "accuracy"),
                                  ("test_logloss", "log-loss"), ("peak_rss_mb", "peak RSS MiB")])
        L += ["", "overcast: `s to target` is `train --target` (evaluating every "
              f"{R['options']['eval_every']} s); `fit s`, accuracy and log-loss are a full run. "
              "Peers: fit time excludes reading the file; their time to target is per round for "
              "XGBoost, else the whole fit when the final model reached the target.", ""]
        L += ratio_lines(f["ratios"])
        if "ovr" in f:
            o = f["ovr"]
            L += [f"### Fashion-MNIST one-vs-rest: class {o['positive_class']} (shirt) against "
                  "the rest", ""]
            L += table(o["entries"], [("fit_seconds", "fit s"), ("test_accuracy", "accuracy"),
                                      ("test_logloss", "log-loss"), ("test_auc", "AUC"),
                                      ("peak_rss_mb", "peak RSS MiB")])
            L += ["", "Every system fits the same binary files (label 1 for the shirt class); "
                  "overcast runs logreg's defaults. No target is set for this task.", ""]
            L += ratio_lines(o["ratios"])
    if "ctr" in P:
        c = P["ctr"]
        gtr = c["generator"]["train"]
        L += [f"## CTR-style sparse data ({gtr['rows']:,} train rows, {gtr['nnz']:,} nnz; "
              f"optimal test log-loss {c['optimal_test_logloss']:.5f}, target "
              f"{c['target_logloss']:.5f})", ""]
        L += table(c["entries"], [(time_to, "s to target"),
                                  ("reached_target", "reached"),
                                  ("seconds_to_liblinear_logloss", "s to liblinear's log-loss"),
                                  ("fit_seconds", "fit s"),
                                  ("test_logloss", "log-loss"),
                                  ("logloss_over_optimal", "/ optimal"),
                                  ("rows_per_second", "rows/s"), ("nnz_per_second", "nnz/s"),
                                  (pass_rate, "samples/s (x passes)"),
                                  ("peak_rss_mb", "peak RSS MiB")])
        L += ["", f"Generated in {c['generate_seconds']:.1f} s; overcast load "
              f"{c['overcast_load_seconds']:.1f} s (not in fit s). rows/s and nnz/s are train "
              "rows (entries) over fit seconds; a peer on the crossed copy reads that copy's "
              "entries.", ""]
        for model, srch in c.get("overcast_lr_search", {}).items():
            tt = c.get("overcast_lr_search_seconds_to_target", {}).get(model, {})
            L += [f"overcast {model} learning-rate search (test log-loss; seconds to target): " +
                  ", ".join(f"{k}: {v:.5f}; " + (f"{tt[k]:.1f} s" if tt.get(k) else "not reached")
                            for k, v in srch.items()), ""]
        if "sk_sgd_alpha_search" in c:
            L += ["SGDClassifier alpha search (test log-loss): " +
                  ", ".join(f"{k}: {v:.5f}" for k, v in c["sk_sgd_alpha_search"].items()), ""]
        L += ratio_lines(c["ratios"])
    if "ps" in P:
        p = P["ps"]
        L += ["## Parameter server vs Redis and the loopback limit (`overcast bench ps`)", "",
              "| key | value |", "| --- | ---: |"]
        for k, v in list(p["figures"].items()) + [("ratio " + k, v)
                                                  for k, v in p["ratios"].items()]:
            if re.search(r"_k\d+_c\d+", k) and not k.startswith("ratio"):
                continue  # per-setting figures are in results.json
            L.append(f"| {k} | {fmt(v)} |")
        L.append("")
    if "movielens" in P:
        ml = P["movielens"]
        L += ["## MovieLens ml-latest-small (dslabs), 80/20 random split", ""]
        L += table(ml["entries"], [("fit_seconds", "fit s"), ("test_rmse", "test RMSE"),
                                   ("peak_rss_mb", "peak RSS MiB")])
        L += [""]
        if "als_lambda_search" in ml:
            L += ["ALS lambda search (test RMSE): " +
                  ", ".join(f"{k}: {v:.4f}" for k, v in ml["als_lambda_search"].items()), ""]
        L += ratio_lines(ml["ratios"])
    L += ["## Commands", "", "Every command this run started, in order, is in results.json "
          "(`commands`).", ""]
    return "\n".join(L) + "\n"


def ratio_lines(r):
    if not r:
        return ["(no ratios: the base run did not reach its target)", ""]
    return ["| ratio | value |", "| --- | ---: |"] + \
        [f"| {k} | {fmt(v)} |" for k, v in r.items()] + [""]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="tiny sizes, seconds (the test suite)")
    ap.add_argument("--parts", default=",".join(ALL_PARTS))
    ap.add_argument("--peers", default=",".join(ALL_PEERS),
                    help="peers to run (each one named must run, or the suite fails)")
    ap.add_argument("--out", default="bench-results")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--bin", default=os.path.join(ROOT, "build/tools/overcast/overcast"))
    ap.add_argument("--work", default="", help="scratch directory (default: a fresh one)")
    ap.add_argument("--fmnist-target", type=float, default=0.84)
    ap.add_argument("--fmnist-epochs", type=int, default=10)
    ap.add_argument("--workers", default="1,2,4")
    ap.add_argument("--ctr-rows", type=int, default=10_000_000)
    ap.add_argument("--ctr-workers", default="1,2")
    ap.add_argument("--ctr-hash-bits", type=int, default=20,
                    help="features hash into 2^B indices (every peer's weight vector is 2^B long)")
    ap.add_argument("--ctr-field-bits", type=int, default=17,
                    help="each field hashes into its own block of 2^K indices (0: one shared "
                         "space of 2^--ctr-hash-bits, and no crossed logreg run)")
    ap.add_argument("--ctr-cross-bits", type=int, default=18,
                    help="overcast logreg_cross hashes crossed pairs into 2^B weights")
    ap.add_argument("--ctr-crossed-peers", default="liblinear,xgb",
                    help="peers that also fit a copy of the CTR files with the interacting pairs "
                         "crossed (of those in --peers; '' for none)")
    ap.add_argument("--ctr-epochs", type=int, default=3)
    ap.add_argument("--ctr-gap", type=float, default=0.01, help="target: optimal x (1 + gap)")
    ap.add_argument("--ctr-param", action="append", default=[],
                    help="MODEL:KEY=VALUE for overcast on the CTR data (repeatable; MODEL is "
                         "logreg, logreg_cross or fm)")
    ap.add_argument("--mf-epochs", type=int, default=20)
    ap.add_argument("--mf-workers", default="1,2")
    ap.add_argument("--mf-param", action="append", default=None,
                    help="KEY=VALUE for overcast mf (repeatable; default: the parameters the "
                         "MovieLens quality test uses, " + " ".join(MF_PARAMS) + ")")
    ap.add_argument("--eval-every", type=float, default=0.5)
    ap.add_argument("--render", metavar="RESULTS_JSON",
                    help="only rewrite OUT/results.md from an existing results.json")
    a = ap.parse_args()
    if a.render:
        os.makedirs(a.out, exist_ok=True)
        with open(os.path.join(a.out, "results.md"), "w") as f:
            f.write(markdown(json.load(open(a.render))))
        return 0
    a.parts = [p for p in a.parts.split(",") if p]
    a.peers = [p for p in a.peers.split(",") if p]
    for p in a.parts:
        if p not in ALL_PARTS:
            sys.exit(f"suite: unknown part {p!r}; expected some of {','.join(ALL_PARTS)}")
    for p in a.peers:
        if p not in ALL_PEERS:
            sys.exit(f"suite: unknown peer {p!r}; expected some of {','.join(ALL_PEERS)}")
    a.workers = [int(x) for x in a.workers.split(",")]
    a.ctr_workers = [int(x) for x in a.ctr_workers.split(",")]
    a.ctr_crossed_peers = [p for p in a.ctr_crossed_peers.split(",") if p]
    a.mf_workers = [int(x) for x in a.mf_workers.split(",")]
    a.ctr_params = {}
    for s in a.ctr_param:
        model, _, kv = s.partition(":")
        a.ctr_params.setdefault(model, []).append(kv)
    a.mf_params = MF_PARAMS if a.mf_param is None else a.mf_param
    if a.quick:
        a.ctr_rows = min(a.ctr_rows, 20000)
        a.repeats = 1
        a.workers = [1, 2]
    if not os.access(a.bin, os.X_OK):
        sys.exit(f"suite: overcast binary {a.bin} not found; build it (scripts/setup.sh)")
    os.makedirs(a.out, exist_ok=True)
    work = a.work or tempfile.mkdtemp(prefix="overcast-suite-")
    os.makedirs(work, exist_ok=True)
    a.store = os.path.join(work, "store")
    rn = Runner(work)
    R = {"suite": "overcast-peers", "date": datetime.datetime.now(datetime.timezone.utc)
         .strftime("%Y-%m-%d %H:%M:%S UTC"), "commit": commit(), "machine": machine(),
         "command": " ".join(shlex.quote(x) for x in sys.argv),
         "options": {k: v for k, v in vars(a).items() if k not in ("ctr_param", "mf_param")},
         "versions": versions(a.peers), "parts": {}, "part_seconds": {}}
    fns = {"fmnist": part_fmnist, "ctr": part_ctr, "ps": part_ps, "movielens": part_movielens}
    status = 0
    try:
        for p in a.parts:
            log(f"part {p}")
            t0 = time.perf_counter()
            R["parts"][p] = fns[p](a, rn, work)
            R["part_seconds"][p] = time.perf_counter() - t0
    except SuiteError as e:
        log(f"FAILED: {e}")
        R["error"] = str(e)
        status = 1
    finally:
        R["commands"] = rn.commands
        if not a.work:
            shutil.rmtree(work, ignore_errors=True)
    if status == 0:
        with open(os.path.join(a.out, "results.json"), "w") as f:
            json.dump(R, f, indent=1)
        with open(os.path.join(a.out, "results.md"), "w") as f:
            f.write(markdown(R))
        log(f"wrote {a.out}/results.json and {a.out}/results.md")
    else:
        # No results files from a failed run: nothing partial can pass for a whole suite.
        with open(os.path.join(a.out, "failed.json"), "w") as f:
            json.dump(R, f, indent=1)
        log(f"no results written; what ran is in {a.out}/failed.json")
    return status


if __name__ == "__main__":
    sys.exit(main())
