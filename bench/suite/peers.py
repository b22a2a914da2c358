#!/usr/bin/python3
"""The Python peers of the benchmark suite (bench/suite/suite.py runs each as its own process, so
that its peak RSS is its own): scikit-learn LogisticRegression, SGDClassifier and NMF, XGBoost,
and an ALS written with numpy. Each reads the same files as overcast, times only the fit (the
read is timed apart), evaluates on the test file and prints one JSON line last on stdout.

Usage: peers.py NAME --train FILE --test FILE [options]   (NAME: sk-logreg, sk-sgd, xgb, nmf, als)
"""
import argparse
import json
import sys
import time

import numpy as np


def logloss_binary(y, p):
    p = np.clip(p, 1e-15, 1 - 1e-15)
    return float(-np.mean(y * np.log(p) + (1 - y) * np.log(1 - p)))


def logloss_multi(y, proba, classes):
    idx = np.searchsorted(classes, y)
    p = np.clip(proba[np.arange(len(y)), idx], 1e-15, 1.0)
    return float(-np.mean(np.log(p)))


def metrics(y, proba, classes):
    """Test accuracy and log-loss from class probabilities (columns in `classes` order)."""
    pred = classes[np.argmax(proba, axis=1)]
    out = {"test_accuracy": float(np.mean(pred == y))}
    if len(classes) == 2:
        from sklearn.metrics import roc_auc_score
        out["test_logloss"] = logloss_binary((y == classes[1]).astype(float), proba[:, 1])
        out["test_auc"] = float(roc_auc_score((y == classes[1]).astype(float), proba[:, 1]))
    else:
        out["test_logloss"] = logloss_multi(y, proba, classes)
    return out


def read_libsvm(a):
    from sklearn.datasets import load_svmlight_files
    t0 = time.perf_counter()
    xtr, ytr, xte, yte = load_svmlight_files([a.train, a.test], dtype=np.float64)
    if a.dense:
        xtr, xte = xtr.toarray(), xte.toarray()
    return xtr, ytr, xte, yte, time.perf_counter() - t0


def run_sklearn(a, make):
    xtr, ytr, xte, yte, read = read_libsvm(a)
    model = make()
    t0 = time.perf_counter()
    model.fit(xtr, ytr)
    fit = time.perf_counter() - t0
    out = {"read_seconds": read, "fit_seconds": fit, "train_rows": xtr.shape[0],
           "train_nnz": int(xtr.nnz) if hasattr(xtr, "nnz") else int(np.count_nonzero(xtr))}
    out.update(metrics(yte, model.predict_proba(xte), model.classes_))
    n_iter = np.max(np.atleast_1d(model.n_iter_))
    out["iterations"] = int(n_iter)
    return out


def sk_logreg(a):
    from sklearn.linear_model import LogisticRegression
    return run_sklearn(a, lambda: LogisticRegression(C=a.C, max_iter=a.max_iter, tol=a.tol,
                                                     solver=a.solver))


def sk_sgd(a):
    from sklearn.linear_model import SGDClassifier
    return run_sklearn(a, lambda: SGDClassifier(loss="log_loss", alpha=a.alpha, tol=a.tol,
                                                max_iter=a.max_iter, n_jobs=-1, random_state=1))


def xgb(a):
    import xgboost as xg
    t0 = time.perf_counter()
    dtr = xg.DMatrix(a.train + "?format=libsvm")
    dte = xg.DMatrix(a.test + "?format=libsvm")
    read = time.perf_counter() - t0
    ytr, yte = dtr.get_label(), dte.get_label()
    classes = np.unique(ytr)
    params = {"booster": a.booster, "nthread": a.threads, "eta": a.eta, "lambda": a.l2,
              "alpha": 0.0}
    if a.booster == "gbtree":
        params.update({"tree_method": "hist", "max_depth": a.max_depth})
    if len(classes) > 2:
        params.update({"objective": "multi:softprob", "num_class": len(classes)})
    else:
        params.update({"objective": "binary:logistic"})
    # Time to the target: the test metric after each round, timed apart from the fit.
    reached = {"seconds": None}
    spent = {"eval": 0.0}

    class Watch(xg.callback.TrainingCallback):
        def after_iteration(self, model, epoch, evals_log):
            if a.target is None or reached["seconds"] is not None:
                return False
            e0 = time.perf_counter()
            p = model.predict(dte)
            proba = p if p.ndim == 2 else np.stack([1 - p, p], axis=1)
            m = metrics(yte, proba, classes)
            ok = (m["test_accuracy"] >= a.target if a.target_metric == "accuracy"
                  else m["test_logloss"] <= a.target)
            spent["eval"] += time.perf_counter() - e0
            if ok:
                reached["seconds"] = time.perf_counter() - t1 - spent["eval"]
                return a.stop_at_target
            return False

    t1 = time.perf_counter()
    booster = xg.train(params, dtr, num_boost_round=a.rounds, callbacks=[Watch()])
    fit = time.perf_counter() - t1 - spent["eval"]
    p = booster.predict(dte)
    proba = p if p.ndim == 2 else np.stack([1 - p, p], axis=1)
    out = {"read_seconds": read, "fit_seconds": fit, "train_rows": int(dtr.num_row()),
           "seconds_to_target": reached["seconds"], "rounds": booster.num_boosted_rounds()}
    out.update(metrics(yte, proba, classes))
    return out


def read_ratings(path):
    d = np.loadtxt(path)
    return d[:, 0].astype(np.int64), d[:, 1].astype(np.int64), d[:, 2]


def ratings_data(a):
    t0 = time.perf_counter()
    tu, ti, tr = read_ratings(a.train)
    su, si, sr = read_ratings(a.test)
    users = {u: k for k, u in enumerate(np.unique(np.concatenate([tu, su])))}
    items = {i: k for k, i in enumerate(np.unique(np.concatenate([ti, si])))}
    tu = np.array([users[u] for u in tu]); su = np.array([users[u] for u in su])
    ti = np.array([items[i] for i in ti]); si = np.array([items[i] for i in si])
    return (tu, ti, tr), (su, si, sr), len(users), len(items), time.perf_counter() - t0


def rmse(pred, r):
    return float(np.sqrt(np.mean((np.clip(pred, 0.5, 5.0) - r) ** 2)))


def nmf(a):
    from scipy.sparse import csr_matrix
    from sklearn.decomposition import NMF
    (tu, ti, tr), (su, si, sr), nu, ni, read = ratings_data(a)
    m = csr_matrix((tr, (tu, ti)), shape=(nu, ni))  # missing ratings are zeros to NMF
    t0 = time.perf_counter()
    model = NMF(n_components=a.rank, init="nndsvda", max_iter=a.max_iter, random_state=1,
                alpha_W=a.l2, alpha_H="same")
    w = model.fit_transform(m)
    h = model.components_
    fit = time.perf_counter() - t0
    pred = np.einsum("ij,ij->i", w[su], h[:, si].T)
    return {"read_seconds": read, "fit_seconds": fit, "test_rmse": rmse(pred, sr),
            "iterations": int(model.n_iter_), "train_rows": len(tr)}


def groups(ids, n):
    """Row positions of each id 0..n-1 (one sort, not n scans)."""
    order = np.argsort(ids, kind="stable")
    return np.split(order, np.searchsorted(ids[order], np.arange(1, n)))


def als(a):
    """Biased ALS: r ~ mu + b_u + b_i + p_u . q_i, L2 of lambda times each row's count (as in
    ALS-WR) on the factors and on the biases. Each half-sweep solves one side exactly with the
    other side fixed: a user's [p_u, b_u] against the features [q_i, 1] of the items it rated
    and the target r - mu - b_i (and the same for items). --no-biases: mu + p_u . q_i alone."""
    (tu, ti, tr), (su, si, sr), nu, ni, read = ratings_data(a)
    t0 = time.perf_counter()
    rng = np.random.default_rng(1)
    mu = tr.mean()
    k = a.rank + (1 if a.biases else 0)
    # Column `rank` holds the bias when biases are on; the other side's matching feature is 1.
    p = np.zeros((nu, k))
    q = np.zeros((ni, k))
    p[:, :a.rank] = rng.normal(0, 0.1, (nu, a.rank))
    q[:, :a.rank] = rng.normal(0, 0.1, (ni, a.rank))
    by_user = groups(tu, nu)
    by_item = groups(ti, ni)
    eye = np.eye(k)

    def solve(fixed, groups, other_idx, out):
        feats = fixed.copy()
        if a.biases:
            bias_of_other = fixed[:, a.rank].copy()
            feats[:, a.rank] = 1.0
        for j, rows in enumerate(groups):
            if len(rows) == 0:
                out[j] = 0
                continue
            f = feats[other_idx[rows]]
            target = tr[rows] - mu
            if a.biases:
                target = target - bias_of_other[other_idx[rows]]
            out[j] = np.linalg.solve(f.T @ f + a.l2 * len(rows) * eye, f.T @ target)

    for _ in range(a.max_iter):
        solve(q, by_user, ti, p)
        solve(p, by_item, tu, q)
    fit = time.perf_counter() - t0
    pred = mu + np.einsum("ij,ij->i", p[su, :a.rank], q[si, :a.rank])
    if a.biases:
        pred += p[su, a.rank] + q[si, a.rank]
    return {"read_seconds": read, "fit_seconds": fit, "test_rmse": rmse(pred, sr),
            "iterations": a.max_iter, "train_rows": len(tr)}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("name", choices=["sk-logreg", "sk-sgd", "xgb", "nmf", "als"])
    ap.add_argument("--train", required=True)
    ap.add_argument("--test", required=True)
    ap.add_argument("--dense", action="store_true", help="densify the features (sklearn)")
    ap.add_argument("--C", type=float, default=1.0)
    ap.add_argument("--solver", default="lbfgs")
    ap.add_argument("--alpha", type=float, default=1e-4)
    ap.add_argument("--tol", type=float, default=1e-4)
    ap.add_argument("--max-iter", type=int, default=100)
    ap.add_argument("--booster", default="gblinear")
    ap.add_argument("--rounds", type=int, default=50)
    ap.add_argument("--eta", type=float, default=0.5)
    ap.add_argument("--l2", type=float, default=0.0)
    ap.add_argument("--max-depth", type=int, default=6)
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--target", type=float, default=None)
    ap.add_argument("--target-metric", choices=["accuracy", "logloss"], default="accuracy")
    ap.add_argument("--stop-at-target", action="store_true")
    ap.add_argument("--rank", type=int, default=16)
    ap.add_argument("--no-biases", dest="biases", action="store_false",
                    help="als: no user and item biases")
    a = ap.parse_args()
    fn = {"sk-logreg": sk_logreg, "sk-sgd": sk_sgd, "xgb": xgb, "nmf": nmf, "als": als}[a.name]
    print(json.dumps(fn(a)))


if __name__ == "__main__":
    try:
        main()
    except Exception as e:  # the suite shows this line and stops
        print(f"peers.py {sys.argv[1] if len(sys.argv) > 1 else ''}: {type(e).__name__}: {e}",
              file=sys.stderr)
        raise
