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
import logging
import sys

import numpy as np

from dataset import RecipeError, run

PROGRAM = "recipe.py"


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
    params = {"gridsize": args.gridsize, "algorithm": args.algorithm, "epochs": args.epochs,
              "batch_size": args.batch_size, "seed": args.seed, "threads": args.threads}
    return run(PROGRAM, args, lambda data: reconstruct(data, args), params)


if __name__ == "__main__":
    sys.exit(main())
