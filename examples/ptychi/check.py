"""Sanity check of a reconstruction against the ground truth (not the study's scoring).

    python check.py OBJECT_NPZ TEST_NPZ [--radius R]

OBJECT_NPZ is a reconstruction.npz (member `object`, on objectGuess's grid); TEST_NPZ the dataset it
was made from. Prints the Pearson correlation of amplitude and of phase between `object` and
`objectGuess` over the covered pixels: those within R of some scan position in both row and column
(|r - y| <= R and |c - x| <= R); R defaults to N/2, i.e. every pixel inside some pattern's N x N
window. A smaller R keeps only well-illuminated pixels, like the study's stitched central crops.
Also prints the median amplitude ratio |object| / |objectGuess| there, which shows whether the
absolute scale was kept. No phase offset or ramp is removed.
"""

import argparse
import sys

import numpy as np


def covered_mask(shape, xs, ys, half):
    """Pixels within `half` of some (x, y) scan position along both axes."""
    mask = np.zeros(shape, bool)
    for x, y in zip(xs, ys):
        r0, r1 = max(0, int(np.ceil(y - half))), min(shape[0], int(np.floor(y + half)) + 1)
        c0, c1 = max(0, int(np.ceil(x - half))), min(shape[1], int(np.floor(x + half)) + 1)
        mask[r0:r1, c0:c1] = True
    return mask


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("object_npz")
    p.add_argument("test_npz")
    p.add_argument("--radius", type=float, default=None,
                   help="half-width of the covered square (default N/2)")
    args = p.parse_args(argv)
    with np.load(args.object_npz) as f:
        rec = f["object"]
    with np.load(args.test_npz) as f:
        gt, xs, ys, n_px = f["objectGuess"], f["xcoords"], f["ycoords"], f["probeGuess"].shape[0]
    if rec.shape != gt.shape:
        print(f"check.py: object has shape {rec.shape}, objectGuess {gt.shape}", file=sys.stderr)
        return 2
    radius = n_px / 2 if args.radius is None else args.radius
    mask = covered_mask(gt.shape, xs, ys, radius)
    amp = np.corrcoef(np.abs(rec[mask]), np.abs(gt[mask]))[0, 1]
    phase = np.corrcoef(np.angle(rec[mask]), np.angle(gt[mask]))[0, 1]
    ratio = np.median(np.abs(rec[mask]) / np.maximum(np.abs(gt[mask]), 1e-12))
    print(f"radius {radius:g}: covered pixels {mask.sum()} of {mask.size}; amplitude pearson {amp:.4f}; "
          f"phase pearson {phase:.4f}; median amplitude ratio {ratio:.4f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
