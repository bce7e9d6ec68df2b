"""A numpy-only stand-in for recipe.py: plain ePIE with the known, fixed probe.

Command-line contract (shared with recipe.py):

    python standin.py --test-data TEST_NPZ --output OUTDIR --report REPORT_JSON --gridsize G
                      [--epochs E] [--seed S]

Input: a studymake dataset .npz (`diffraction` (n,N,N) float32 = sqrt(counts)/intensity_scale, fftshifted;
`objectGuess` (H,W); `probeGuess` (N,N); `xcoords`/`ycoords` (n,) in object pixels, column/row, with
patch[i,j] = O(y - N/2 + i, x - N/2 + j); `group_index` (M, gridsize^2)).

Output: OUTDIR/reconstruction.npz (np.savez, uncompressed) with `object` (H,W) complex64 on exactly
objectGuess's pixel grid (pixels never scanned keep the initial value 1) and `gridsize` int64 scalar,
the gridsize of the data (sqrt of the group_index width); REPORT_JSON holds
{"params": {"gridsize": G, "epochs": E, "seed": S}}. The seed is accepted and reported as recipe.py's is
(studymake checks it against the condition's); this ePIE visits the patterns in file order and draws
nothing, so it does not change the result. Bad input or a gridsize other than --gridsize: a one-line
message on stderr and exit status 2. Nothing is written outside OUTDIR and REPORT_JSON.

Algorithm, as studymake's own baseline (crates/science/src/evaluation/baseline.rs) but with the object
initialised to exactly 1 (no random perturbation), so the result is fully deterministic:
forward model |fftshift(F(O_window P_k))| / N (F the unnormalised DFT) with the integer object window at
(floor(y) - N/2, floor(x) - N/2) and the probe P_k Fourier-shifted by the fractional part
(y - floor(y), x - floor(x)); the object is padded by N/2 + 2 pixels so windows near the edge fit.
Each epoch visits the patterns in file order; per pattern: modulus projection, then
O += conj(P_k) / max|P_k|^2 (psi' - psi) (ePIE, alpha = 1). The probe is not updated.
"""

import argparse
import sys

import numpy as np

from dataset import run

PROGRAM = "standin.py"


def fourier_shift(img, dy, dx):
    """Translate img by (dy, dx) pixels (rows, columns), periodically, through its spectrum."""
    ky = np.fft.fftfreq(img.shape[0])[:, None]
    kx = np.fft.fftfreq(img.shape[1])[None, :]
    return np.fft.ifft2(np.fft.fft2(img) * np.exp(-2j * np.pi * (dy * ky + dx * kx)))


def epie(data, epochs):
    """Return the ePIE object (H, W) complex64 on the ground truth's grid."""
    n_px = data["probe"].shape[0]
    h, w = data["object_shape"]
    pad = n_px // 2 + 2
    obj = np.ones((h + 2 * pad, w + 2 * pad), np.complex128)
    probe = data["probe"].astype(np.complex128)
    fy, fx = np.floor(data["ys"]), np.floor(data["xs"])
    rows = (fy - n_px // 2 + pad).astype(np.int64)
    cols = (fx - n_px // 2 + pad).astype(np.int64)
    probes = [fourier_shift(probe, dy, dx) for dy, dx in zip(data["ys"] - fy, data["xs"] - fx)]
    steps = [np.conj(p) / np.max(np.abs(p) ** 2) for p in probes]
    measured = np.fft.ifftshift(data["diffraction"].astype(np.float64), axes=(-2, -1)) * n_px
    for _ in range(epochs):
        for k, (r0, c0) in enumerate(zip(rows, cols)):
            win = obj[r0:r0 + n_px, c0:c0 + n_px]
            psi = win * probes[k]
            far = np.fft.fft2(psi)
            mod = np.abs(far)
            # Unnormalised modulus |F psi| replaced by the measured one, N * amplitude.
            far = np.where(mod > 0, far * (measured[k] / np.where(mod > 0, mod, 1.0)), measured[k])
            win += steps[k] * (np.fft.ifft2(far) - psi)
    return obj[pad:pad + h, pad:pad + w].astype(np.complex64)


def parse_args(argv):
    p = argparse.ArgumentParser(prog=PROGRAM, description=__doc__.split("\n")[0])
    p.add_argument("--test-data", required=True, help="the condition's test_data.npz")
    p.add_argument("--output", required=True, help="directory to create; receives reconstruction.npz")
    p.add_argument("--report", required=True, help="JSON file to write with the parameters used")
    p.add_argument("--gridsize", required=True, type=int, help="gridsize the data must have")
    p.add_argument("--epochs", type=int, default=20, help="passes over all patterns (default 20)")
    p.add_argument("--seed", type=int, default=0, help="reported only: nothing here is random")
    args = p.parse_args(argv)
    if args.epochs < 1:
        p.error("--epochs must be at least 1")
    return args


def main(argv=None):
    args = parse_args(argv)
    params = {"gridsize": args.gridsize, "epochs": args.epochs, "seed": args.seed}
    return run(PROGRAM, args, lambda data: epie(data, args.epochs), params)


if __name__ == "__main__":
    sys.exit(main())
