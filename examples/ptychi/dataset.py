"""What recipe.py and standin.py share: reading a condition's test data, and writing a
reconstruction in the form studymake's `evaluate` reads (`reconstruction.npz`, see
docs/ptychi.md) with the report of the parameters used.

Errors are RecipeError, reported by `run` on one line of stderr with exit status 2; nothing is
written outside the output directory and the report.
"""

import json
import math
import os
import sys
import zipfile

import numpy as np


class RecipeError(Exception):
    """Bad input or a failed run; reported on one line of stderr."""


def load_dataset(path):
    """Load and validate the members of a studymake dataset file both recipes need."""
    required = ["diffraction", "objectGuess", "probeGuess", "xcoords", "ycoords",
                "group_index", "intensity_scale"]
    try:
        npz = np.load(path, allow_pickle=False)
        if not isinstance(npz, np.lib.npyio.NpzFile):
            raise RecipeError(f"{path} is not an .npz archive")
        with npz:
            missing = [k for k in required if k not in npz.files]
            if missing:
                raise RecipeError(f"{path}: missing key(s) {', '.join(missing)}")
            d = {k: npz[k] for k in required}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as e:
        raise RecipeError(f"cannot read test data {path}: {e}") from e
    diff, obj, probe = d["diffraction"], d["objectGuess"], d["probeGuess"]
    for k, v in d.items():
        if not np.issubdtype(v.dtype, np.number):
            raise RecipeError(f"{path}: {k} has dtype {v.dtype}; expected numbers")
    if np.iscomplexobj(diff):
        raise RecipeError(f"{path}: diffraction is complex; expected real amplitudes")
    if probe.ndim != 2 or probe.shape[0] != probe.shape[1] or probe.shape[0] == 0:
        raise RecipeError(f"{path}: probeGuess has shape {probe.shape}; it must be square")
    n_px = probe.shape[0]
    if diff.ndim != 3 or diff.shape[1:] != probe.shape or diff.shape[0] == 0:
        raise RecipeError(f"{path}: diffraction has shape {diff.shape}; expected (n, {n_px}, {n_px})")
    if obj.ndim != 2:
        raise RecipeError(f"{path}: objectGuess has shape {obj.shape}; expected (H, W)")
    n = diff.shape[0]
    for k in ("xcoords", "ycoords"):
        if d[k].shape != (n,):
            raise RecipeError(f"{path}: {k} has shape {d[k].shape}; expected ({n},)")
        if not np.all(np.isfinite(d[k])):
            raise RecipeError(f"{path}: {k} holds non-finite values")
    gi = d["group_index"]
    if gi.ndim != 2 or gi.shape[1] == 0:
        raise RecipeError(f"{path}: group_index has shape {gi.shape}; expected (M, gridsize^2)")
    g = math.isqrt(gi.shape[1])
    if g * g != gi.shape[1]:
        raise RecipeError(f"{path}: group_index width {gi.shape[1]} is not a square")
    if d["intensity_scale"].shape != () or not np.isfinite(d["intensity_scale"]) \
            or d["intensity_scale"] <= 0:
        raise RecipeError(f"{path}: intensity_scale must be a positive scalar")
    pad = n_px // 2 + 2
    h, w = obj.shape
    ys, xs = d["ycoords"], d["xcoords"]
    if ys.min() < -1 or xs.min() < -1 or ys.max() > h + 1 or xs.max() > w + 1:
        raise RecipeError(f"{path}: scan positions lie outside the {h}x{w} object")
    return {
        "diffraction": diff.astype(np.float32),
        "object_shape": (h, w),
        "probe": probe.astype(np.complex64),
        "xs": xs.astype(np.float64),
        "ys": ys.astype(np.float64),
        "gridsize": g,
        "intensity_scale": float(d["intensity_scale"]),
        "pad": pad,
    }


def run(program, args, reconstruct, params):
    """Load args.test_data, check its gridsize against args.gridsize, reconstruct it and write
    OUTPUT/reconstruction.npz (`object`, `gridsize`) and the report {"params": params}."""
    try:
        data = load_dataset(args.test_data)
        if data["gridsize"] != args.gridsize:
            raise RecipeError(
                f"{args.test_data} has gridsize {data['gridsize']} (group_index width "
                f"{data['gridsize'] ** 2}) but --gridsize is {args.gridsize}"
            )
        obj = reconstruct(data)
        if not np.all(np.isfinite(obj)):
            raise RecipeError("the reconstruction holds non-finite values")
        os.makedirs(args.output, exist_ok=True)
        np.savez(os.path.join(args.output, "reconstruction.npz"),
                 object=obj, gridsize=np.int64(data["gridsize"]))
        with open(args.report, "w") as f:
            json.dump({"params": params}, f, indent=2)
            f.write("\n")
    except (RecipeError, OSError) as e:
        print(f"{program}: error: {e}", file=sys.stderr)
        return 2
    return 0
