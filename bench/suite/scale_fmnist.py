#!/usr/bin/python3
"""Fashion-MNIST (Debian's dataset-fashion-mnist IDX files) to LIBSVM with pixels scaled to
[0, 1] (value / 255, zeros left out), the one file every system of the suite reads.

Usage: scale_fmnist.py [--src DIR] --out DIR [--limit N]
Writes OUT/train01.svm (60000 rows) and OUT/test01.svm (10000 rows); labels are 0..9.
"""
import argparse
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "../../scripts"))
from fashion_mnist_to_libsvm import convert  # noqa: E402  (the project's checked converter)

VALUE = [f"{v / 255:.6g}" for v in range(256)]  # the 256 possible pixel texts, formatted once


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--src", default="/usr/share/datasets/fashion-mnist")
    ap.add_argument("--out", required=True)
    ap.add_argument("--limit", type=int, default=0)
    a = ap.parse_args()
    for split, stem in [("train", "train"), ("test", "t10k")]:
        n = convert(os.path.join(a.src, f"{stem}-images-idx3-ubyte.gz"),
                    os.path.join(a.src, f"{stem}-labels-idx1-ubyte.gz"),
                    os.path.join(a.out, f"{split}01.svm"), a.limit or None,
                    value=VALUE.__getitem__)
        print(f"{split}: {n} rows", file=sys.stderr)


if __name__ == "__main__":
    main()
