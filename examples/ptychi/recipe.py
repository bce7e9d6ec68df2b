"""Reconstruct one condition's test data with pty-chi (LSQML or ePIE), the known probe held fixed.

Command-line contract (shared with standin.py):

    python recipe.py --test-data TEST_NPZ --output OUTDIR --report REPORT_JSON --gridsize G
                     [--algorithm lsqml|epie] [--epochs E] [--batch-size B] [--seed S] [--threads T]

Input: a studymake dataset .npz (`diffraction` (n,N,N) float32 = sqrt(counts)/intensity_scale, fftshifted;
`objectGuess` (H,W); `probeGuess` (N,N); `xcoords`/`ycoords` (n,) in object pixels, column/row, with
patch[i,j] = O(y - N/2 + i, x - N/2 + j); `group_index` (M, gridsize^2); `intensity_scale`).

Output: OUTDIR/reconstruction.npz (np.savez, uncompressed) with `object` (H,W) complex64 on exactly
objectGuess's pixel grid (pixels never scanned keep the initial value 1) and `gridsize` int64 scalar,
the gridsize of the data (sqrt of the group_index width); REPORT_JSON holds
{"params": {"gridsize": G, "algorithm": ..., "epochs": ..., "batch_size": ..., "seed": ..., "threads": ...}}.
Bad input or a gridsize other than --gridsize: a one-line message on stderr and exit status 2.
Nothing is written outside OUTDIR and REPORT_JSON.

Conventions handed to pty-chi:
- measured intensities are the counts (diffraction * intensity_scale)^2, DC at (N/2, N/2), so
  `fft_shift` is on;
- pty-chi's far field is the unnormalised DFT, so its probe is intensity_scale * probeGuess / N;
- the object buffer is objectGuess's grid padded by N/2 + 2 pixels on every side; pty-chi's patch of
  a position p (row, col) starts at p + origin - (N - 1)/2 with origin the buffer's support centre
  round(shape/2) - 0.5, so p = (y + pad - 0.5) - origin puts the patch start at y - N/2 on the
  truth's grid, and likewise for x;
- probe and positions are not optimised; the object-probe ambiguity removal and LSQML's first-epoch
  probe rescaling are off, so the object keeps its absolute scale.
Deterministic for the same input on CPU: seeded, deterministic algorithms, --threads torch threads.
"""

import argparse
import json
import logging
import math
import os
import sys
import zipfile

import numpy as np

PROGRAM = "recipe.py"


class RecipeError(Exception):
    """Bad input or a failed run; reported on one line of stderr."""


def load_dataset(path):
    """Load and validate the members of a dataset file this recipe needs."""
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


def reconstruct(data, args):
    """Run pty-chi; return the object (H, W) complex64 on the ground truth's grid."""
    import torch
    from ptychi import api
    from ptychi.api.task import PtychographyTask

    torch.set_num_threads(args.threads)
    torch.set_num_interop_threads(args.threads)

    n_px = data["probe"].shape[0]
    h, w = data["object_shape"]
    pad = data["pad"]
    buf_shape = (h + 2 * pad, w + 2 * pad)
    origin = np.round(np.array(buf_shape) / 2.0) - 0.5
    pos_y = data["ys"] + pad - 0.5 - origin[0]
    pos_x = data["xs"] + pad - 0.5 - origin[1]

    scale = data["intensity_scale"]
    counts = (data["diffraction"].astype(np.float64) * scale) ** 2
    probe = (scale / n_px) * data["probe"].astype(np.complex128)

    if args.algorithm == "lsqml":
        options = api.LSQMLOptions()
        options.reconstructor_options.noise_model = api.NoiseModels.GAUSSIAN
        options.reconstructor_options.rescale_probe_intensity_in_first_epoch = False
    else:
        options = api.EPIEOptions()
        options.object_options.alpha = 1.0
    options.data_options.fft_shift = True

    options.object_options.optimizable = True
    options.object_options.optimizer = api.Optimizers.SGD
    options.object_options.step_size = 1.0
    options.object_options.determine_position_origin_coords_by = (
        api.ObjectPosOriginCoordsMethods.SUPPORT
    )
    options.object_options.remove_object_probe_ambiguity.enabled = False

    options.probe_options.optimizable = False
    options.probe_options.orthogonalize_incoherent_modes.enabled = False
    options.probe_options.orthogonalize_opr_modes.enabled = False
    options.probe_position_options.optimizable = False
    options.opr_mode_weight_options.optimizable = False

    rec = options.reconstructor_options
    rec.num_epochs = args.epochs
    rec.batch_size = args.batch_size
    rec.batching_mode = api.BatchingModes.RANDOM
    rec.default_device = api.Devices.CPU
    rec.default_dtype = api.Dtypes.FLOAT32
    rec.random_seed = args.seed
    rec.allow_nondeterministic_algorithms = False

    with PtychographyTask(
        options,
        diffraction_data=torch.tensor(counts, dtype=torch.float32),
        object_data=torch.ones((1, *buf_shape), dtype=torch.complex64),
        probe_data=torch.tensor(probe[None, None], dtype=torch.complex64),
        probe_position_x_px=torch.tensor(pos_x, dtype=torch.float32),
        probe_position_y_px=torch.tensor(pos_y, dtype=torch.float32),
    ) as task:
        used = task.reconstructor.parameter_group.object.pos_origin_coords.cpu().numpy()
        if not np.allclose(used, origin):
            raise RecipeError(f"pty-chi chose position origin {used}, expected {origin}")
        task.run()
        buf = task.get_data_to_cpu("object", as_numpy=True)[0]
    return np.ascontiguousarray(buf[pad:pad + h, pad:pad + w]).astype(np.complex64)


def parse_args(argv):
    p = argparse.ArgumentParser(prog=PROGRAM, description=__doc__.split("\n")[0])
    p.add_argument("--test-data", required=True, help="the condition's test_data.npz")
    p.add_argument("--output", required=True, help="directory to create; receives reconstruction.npz")
    p.add_argument("--report", required=True, help="JSON file to write with the parameters used")
    p.add_argument("--gridsize", required=True, type=int, help="gridsize the data must have")
    p.add_argument("--algorithm", choices=["lsqml", "epie"], default="lsqml")
    p.add_argument("--epochs", type=int, default=200, help="passes over all patterns (default 200)")
    p.add_argument("--batch-size", type=int, default=None,
                   help="patterns per update (default: 100 for lsqml, 1 for epie, i.e. classic ePIE)")
    p.add_argument("--seed", type=int, default=0, help="seed of torch/numpy/batch order (default 0)")
    p.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    args = p.parse_args(argv)
    if args.batch_size is None:
        args.batch_size = 100 if args.algorithm == "lsqml" else 1
    for name in ("epochs", "batch_size", "threads"):
        if getattr(args, name) < 1:
            p.error(f"--{name.replace('_', '-')} must be at least 1")
    return args


def main(argv=None):
    args = parse_args(argv)
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    try:
        data = load_dataset(args.test_data)
        if data["gridsize"] != args.gridsize:
            raise RecipeError(
                f"{args.test_data} has gridsize {data['gridsize']} (group_index width "
                f"{data['gridsize'] ** 2}) but --gridsize is {args.gridsize}"
            )
        obj = reconstruct(data, args)
        if not np.all(np.isfinite(obj)):
            raise RecipeError("the reconstruction holds non-finite values")
        os.makedirs(args.output, exist_ok=True)
        np.savez(os.path.join(args.output, "reconstruction.npz"),
                 object=obj, gridsize=np.int64(data["gridsize"]))
        params = {"gridsize": args.gridsize, "algorithm": args.algorithm, "epochs": args.epochs,
                  "batch_size": args.batch_size, "seed": args.seed, "threads": args.threads}
        with open(args.report, "w") as f:
            json.dump({"params": params}, f, indent=2)
            f.write("\n")
    except (RecipeError, OSError) as e:
        print(f"{PROGRAM}: error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
