#!/usr/bin/python3
"""Convert Fashion-MNIST as Debian ships it (package dataset-fashion-mnist: gzipped IDX files in
/usr/share/datasets/fashion-mnist) to LIBSVM text: one line per image, "label index:pixel ..."
with 1-based indices 1..784 (row-major 28x28) and only the non-zero pixels (raw 0..255; use
`overcast normalize` to scale). Labels are the classes 0..9.

Usage: scripts/fashion_mnist_to_libsvm.py [--src DIR] [--out DIR] [--limit N]
Writes OUT/fashion-mnist.train.svm (60000 rows) and OUT/fashion-mnist.test.svm (10000 rows).
Then: overcast load --format libsvm --input OUT/fashion-mnist.train.svm \
        --test-input OUT/fashion-mnist.test.svm --dataset fmnist
Standard library only.
"""
import argparse
import gzip
import os
import struct
import sys


def read_idx(path):
    """Returns (dims, payload bytes) of an IDX file (gzipped or not), checking its header."""
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rb") as f:
        data = f.read()
    if len(data) < 4 or data[0] != 0 or data[1] != 0:
        raise ValueError(f"{path}: not an IDX file (bad magic)")
    if data[2] != 0x08:
        raise ValueError(f"{path}: expected unsigned byte data (type 0x08), found 0x{data[2]:02x}")
    ndim = data[3]
    dims = struct.unpack(">" + "I" * ndim, data[4:4 + 4 * ndim])
    payload = data[4 + 4 * ndim:]
    expected = 1
    for d in dims:
        expected *= d
    if len(payload) != expected:
        raise ValueError(f"{path}: expected {expected} bytes of data, found {len(payload)}")
    return dims, payload


def convert(images_path, labels_path, out_path, limit, value=str):
    """Writes the first `limit` (None: all) images as LIBSVM rows; `value` formats a pixel."""
    idims, pixels = read_idx(images_path)
    ldims, labels = read_idx(labels_path)
    if len(idims) != 3 or len(ldims) != 1 or idims[0] != ldims[0]:
        raise ValueError(f"{images_path} and {labels_path} do not match: {idims} vs {ldims}")
    n, size = idims[0], idims[1] * idims[2]
    if limit is not None:
        n = min(n, limit)
    tmp = out_path + ".tmp"
    with open(tmp, "w", encoding="ascii") as out:
        for i in range(n):
            row = pixels[i * size:(i + 1) * size]
            feats = " ".join(f"{j + 1}:{value(v)}" for j, v in enumerate(row) if v)
            out.write(f"{labels[i]} {feats}\n" if feats else f"{labels[i]}\n")
    os.replace(tmp, out_path)  # atomic: no half-written file under the final name
    return n


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--src", default="/usr/share/datasets/fashion-mnist")
    ap.add_argument("--out", default=".")
    ap.add_argument("--limit", type=int, default=None, help="convert only the first N images")
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    for split, prefix in (("train", "train"), ("test", "t10k")):
        images = os.path.join(args.src, f"{prefix}-images-idx3-ubyte.gz")
        labels = os.path.join(args.src, f"{prefix}-labels-idx1-ubyte.gz")
        out = os.path.join(args.out, f"fashion-mnist.{split}.svm")
        try:
            n = convert(images, labels, out, args.limit)
        except (OSError, ValueError) as e:
            print(f"fashion_mnist_to_libsvm: {e}", file=sys.stderr)
            if isinstance(e, FileNotFoundError):
                print("  (install the Debian package dataset-fashion-mnist)", file=sys.stderr)
            return 2
        print(f"wrote {out}: {n} rows", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
