#!/usr/bin/python3
"""Splits a ratings file ("user item rating" per line) at random into OUT/train.txt and
OUT/test.txt (seed 1, the given test fraction), so that every system reads the same split.

Usage: split_ratings.py RATINGS OUTDIR TEST_FRACTION
"""
import os
import random
import sys


def main():
    if len(sys.argv) != 4:
        sys.exit(__doc__)
    src, out, frac = sys.argv[1], sys.argv[2], float(sys.argv[3])
    lines = [l for l in open(src) if l.strip()]
    for k, l in enumerate(lines[:3]):
        if len(l.split()) < 3:
            sys.exit(f"split_ratings: {src}:{k + 1}: expected 'user item rating', got {l!r}")
    rng = random.Random(1)
    rng.shuffle(lines)
    n_test = int(len(lines) * frac)
    for name, part in [("test.txt", lines[:n_test]), ("train.txt", lines[n_test:])]:
        path = os.path.join(out, name)
        with open(path + ".tmp", "w") as f:
            f.writelines(part)
        os.replace(path + ".tmp", path)
    print(f"{len(lines) - n_test} train, {n_test} test ratings", file=sys.stderr)


if __name__ == "__main__":
    main()
