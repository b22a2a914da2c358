#!/usr/bin/python3
"""The k-means quality reference: Fashion-MNIST (Debian's dataset-fashion-mnist) with pixels
scaled to [0, 1] (x / 255), written as LIBSVM files for `overcast load`, and scikit-learn's
KMeans (Debian's python3-sklearn; init k-means++, n_init restarts, full Lloyd iterations)
fitted on the same train rows. Prints one JSON line: sklearn's objective on the test rows and
on the train rows, each the mean over rows of the squared distance to the nearest centre
(what overcast reports as test_objective), and the fit's seconds.

Usage: scripts/kmeans_reference.py --out DIR [--k 10] [--n-init 10] [--seed 0] [--limit N]
Writes DIR/fmnist01.train.svm and DIR/fmnist01.test.svm (labels kept; kmeans ignores them).
"""
import argparse
import gzip
import json
import os
import time

import numpy as np
from sklearn.cluster import KMeans

SRC = "/usr/share/datasets/fashion-mnist"


def read_idx(path, header_dims):
    with gzip.open(path, "rb") as f:
        data = f.read()
    offset = 4 + 4 * header_dims
    dims = np.frombuffer(data[4:offset], dtype=">u4")
    return np.frombuffer(data, dtype=np.uint8, offset=offset).reshape(tuple(int(d) for d in dims))


def load(split, limit):
    prefix = "train" if split == "train" else "t10k"
    x = read_idx(f"{SRC}/{prefix}-images-idx3-ubyte.gz", 3).reshape(-1, 784)
    y = read_idx(f"{SRC}/{prefix}-labels-idx1-ubyte.gz", 1)
    if limit:
        x, y = x[:limit], y[:limit]
    return x, y


def write_libsvm(path, x, y):
    # " j:v/255" for every (pixel, value) pair, printed once: 9 significant digits give back the
    # same float32 as the division; rows then join their non-zero entries from the table.
    table = np.array([[f" {j + 1}:{v / 255:.9g}" for v in range(256)] for j in range(784)],
                     dtype=object)
    with open(path, "w") as f:
        for row, label in zip(x, y):
            nz = np.nonzero(row)[0]
            f.write(str(int(label)) + "".join(table[nz, row[nz]]) + "\n")


def objective(km, x):
    return float(-km.score(x) / len(x))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", required=True)
    ap.add_argument("--k", type=int, default=10)
    ap.add_argument("--n-init", type=int, default=10)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--limit", type=int, default=0, help="first N rows of each split (0: all)")
    a = ap.parse_args()
    os.makedirs(a.out, exist_ok=True)
    xtr, ytr = load("train", a.limit)
    xte, yte = load("test", a.limit)
    write_libsvm(os.path.join(a.out, "fmnist01.train.svm"), xtr, ytr)
    write_libsvm(os.path.join(a.out, "fmnist01.test.svm"), xte, yte)
    xtr = xtr.astype(np.float64) / 255
    xte = xte.astype(np.float64) / 255
    t0 = time.time()
    km = KMeans(n_clusters=a.k, init="k-means++", n_init=a.n_init, random_state=a.seed).fit(xtr)
    seconds = time.time() - t0
    print(json.dumps({"k": a.k, "n_init": a.n_init, "train_rows": len(xtr), "test_rows": len(xte),
                      "sklearn_test_objective": objective(km, xte),
                      "sklearn_train_objective": objective(km, xtr),
                      "sklearn_iterations": int(km.n_iter_), "sklearn_seconds": seconds}))


if __name__ == "__main__":
    main()
