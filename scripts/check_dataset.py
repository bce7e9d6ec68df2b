#!/usr/bin/env python3
"""Check a studymake dataset .npz against PtychoPINN's data contract (reference section 5) with numpy.

Usage: check_dataset.py FILE [FILE ...]
Loads each file with numpy.load (allow_pickle=False), as PtychoPINN's loader does, and checks every
key's dtype and shape, the provenance keys, and group_index. Prints one line per problem and exits
non-zero if there is any.
"""
import sys

import numpy as np


def check(path):
    problems = []

    def bad(msg):
        problems.append(f"{path}: {msg}")

    with np.load(path, allow_pickle=False) as f:
        keys = set(f.files)
        want = {
            "diffraction": ("float32", 3),
            "Y": ("complex64", 3),
            "objectGuess": ("complex64", 2),
            "probeGuess": ("complex64", 2),
            "xcoords": ("float64", 1),
            "ycoords": ("float64", 1),
            "xcoords_start": ("float64", 1),
            "ycoords_start": ("float64", 1),
            "scan_index": ("int64", 1),
            "gridsize": ("int64", 0),
            "seed": ("int64", 0),
            "nphotons": ("float64", 0),
            "intensity_scale": ("float64", 0),
            "group_index": ("int64", 2),
        }
        missing = sorted(set(want) - keys)
        if missing:
            bad(f"missing keys {missing}")
            return problems
        a = {k: f[k] for k in want}
    for k, (dt, nd) in want.items():
        if a[k].dtype != np.dtype(dt):
            bad(f"{k}: dtype {a[k].dtype}, expected {dt}")
        if a[k].ndim != nd:
            bad(f"{k}: shape {a[k].shape}, expected {nd}-D")
    if problems:
        return problems
    n, N, N2 = a["diffraction"].shape
    if N != N2:
        bad(f"diffraction: patterns are {N}x{N2}, not square")
    if a["Y"].shape != (n, N, N):
        bad(f"Y: shape {a['Y'].shape}, expected {(n, N, N)}")
    if a["probeGuess"].shape != (N, N):
        bad(f"probeGuess: shape {a['probeGuess'].shape}, expected {(N, N)}")
    H, W = a["objectGuess"].shape
    if H <= N or W <= N:
        bad(f"objectGuess: shape {(H, W)} is not larger than the probe")
    for k in ["xcoords", "ycoords", "xcoords_start", "ycoords_start", "scan_index"]:
        if a[k].shape != (n,):
            bad(f"{k}: shape {a[k].shape}, expected {(n,)}")
    g = int(a["gridsize"])
    gi = a["group_index"]
    if g < 1 or gi.shape[1] != g * g:
        bad(f"group_index: width {gi.shape[1]}, expected gridsize^2 = {g * g}")
    if gi.size and (gi.min() < 0 or gi.max() >= n):
        bad(f"group_index: entries outside [0, {n})")
    if not (a["nphotons"] > 0 and a["intensity_scale"] > 0):
        bad("nphotons and intensity_scale must be positive")
    # PtychoPINN's loader: diffraction is amplitude (non-negative), shape[0] >= shape[2] so it is not
    # transposed; coordinates inside the object.
    if (a["diffraction"] < 0).any() or not np.isfinite(a["diffraction"]).all():
        bad("diffraction: negative or non-finite amplitude")
    if n < N:
        print(f"{path}: note: {n} patterns < N={N}; PtychoPINN's loader would transpose it")
    if not ((a["xcoords"] >= 0) & (a["xcoords"] < W) & (a["ycoords"] >= 0) & (a["ycoords"] < H)).all():
        bad("xcoords/ycoords outside the object")
    # Amplitude in object units: mean sum diffraction^2 close to mean sum |Y P|^2 (noise aside).
    ed = (a["diffraction"].astype(np.float64) ** 2).sum(axis=(1, 2)).mean()
    ey = (np.abs(a["Y"].astype(np.complex128) * a["probeGuess"]) ** 2).sum(axis=(1, 2)).mean()
    if not abs(ed / ey - 1) < 0.05:
        bad(f"mean sum diffraction^2 = {ed:.6g} differs from mean sum |Y P|^2 = {ey:.6g}")
    return problems


def main():
    if len(sys.argv) < 2:
        print(__doc__, file=sys.stderr)
        return 2
    problems = [p for path in sys.argv[1:] for p in check(path)]
    for p in problems:
        print(p, file=sys.stderr)
    if not problems:
        print(f"ok: {' '.join(sys.argv[1:])} match the data contract")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
