#!/usr/bin/env python3
"""One scoring for every method: stitch, register by unnormalised cross-correlation, and score
amplitude SSIM and Pearson (and phase Pearson) over covered pixels against the ground truth.

Two inputs:

  score.py prediction PREDICTION.npz TEST.npz
      `patches` (M, N, N) complex and `centroids` (M, 2) `(x, y)` in object pixels (the object
      patch each test group predicts, centred on the group centroid; bench/ptychopinn/recipe.py
      writes this for PtychoPINN). Stitched as studymake's `src/science/stitch.rs` (and
      PtychoPINN's `reassemble_position`): the central 20 x 20 of every patch, translated
      bilinearly to its centroid minus the mean centroid, summed, divided by the same sum of
      all-ones crops (+1e-9). Covered pixels: coverage > 0.5.
  score.py image RECON.npz TEST.npz [--key K] [--gt-key K]
      a stitched, aligned crop such as studymake's `evaluation/reconstructions.npz`
      (`ptychopinn_complex` for the network, `baseline_complex` for ePIE; its ground-truth crop
      `ground_truth_complex` is found in the test file's `objectGuess` to place it) or
      recipe.py's `reconstruction.npz` with `ground_truth.npz`. Covered pixels: nonzero.

Registration works in object coordinates: the ground truth (TEST.npz `objectGuess`, Fourier-
shifted, so no resampling blur) is sampled on the reconstruction's grid displaced by (dy, dx),
and the shift maximising sum over covered pixels of (|R| - mean)(|G| - mean) is found: integer
search within +-12 px, then a 0.05 px grid within +-0.6 px of the integer peak. Phase
normalisation (scikit-image's default `phase_cross_correlation`) is not used: the zero-filled
border of a stitched image dominates it and sends the peak tens of pixels away (issue 18).
Reported `offset_yx` is where the ground truth had to be sampled relative to where the
stitching geometry puts the reconstruction: a correctly positioned reconstruction gives (0, 0).

Metrics over covered pixels (bounding box of the covered region; the SSIM map averaged over
covered pixels at least 3 px inside the covered region, so no 7x7 window sees an uncovered
pixel): amplitude SSIM (scikit-image defaults: 7x7 uniform window, data range of the truth's
amplitude over covered pixels) after scaling the reconstruction's amplitude by
mean(truth)/mean(recon); amplitude Pearson; phase Pearson after removing the global phase
(arg sum R conj(G)). Both registered and unregistered (offset 0) are reported.
"""

import argparse
import json
import sys
from pathlib import Path

import numpy as np

CROP = 20
SEARCH = 12


# ------------------------------------------------------------------------------------ stitching

def _bilinear_shift(img, oy, ox, side):
    """out(r, c) = img(r - oy, c - ox), bilinear, zero outside `img` (stitch.rs)."""
    h, w = img.shape
    r = np.arange(side)[:, None] - oy
    c = np.arange(side)[None, :] - ox
    r0 = np.floor(r).astype(np.int64)
    c0 = np.floor(c).astype(np.int64)
    fr = r - r0
    fc = c - c0
    out = np.zeros((side, side), dtype=img.dtype)
    for dr, wr in ((0, 1.0 - fr), (1, fr)):
        for dc, wc in ((0, 1.0 - fc), (1, fc)):
            rr = r0 + dr
            cc = c0 + dc
            ok = (rr >= 0) & (rr < h) & (cc >= 0) & (cc < w)
            wgt = (wr * wc) * ok
            out += wgt * img[np.clip(rr, 0, h - 1), np.clip(cc, 0, w - 1)]
    return out


def stitch(patches, centroids, crop=CROP):
    """Returns (image, coverage, (base_row, base_col)): canvas pixel (r, c) is object pixel
    (base_row + r, base_col + c)."""
    b, n, _ = patches.shape
    mx, my = centroids[:, 0].mean(), centroids[:, 1].mean()
    maxoff = max(np.abs(centroids[:, 0] - mx).max(), np.abs(centroids[:, 1] - my).max())
    pad = int(np.ceil(maxoff))
    if pad % 2 == 1:
        pad += 1
    side = crop + 2 * pad
    c0 = n // 2 - crop // 2
    acc = np.zeros((side, side), np.complex128)
    cov = np.zeros((side, side), np.float64)
    ones = np.ones((crop, crop))
    for k in range(b):
        dx, dy = centroids[k, 0] - mx, centroids[k, 1] - my
        oy, ox = dy + pad, dx + pad
        cr = patches[k, c0:c0 + crop, c0:c0 + crop].astype(np.complex128)
        acc += _bilinear_shift(cr, oy, ox, side)
        cov += _bilinear_shift(ones, oy, ox, side)
    img = acc / (cov + 1e-9)
    return img, cov, (my - pad - crop // 2, mx - pad - crop // 2)


# ------------------------------------------------------------------------------- registration

class Truth:
    """The ground-truth object, sampled on a grid at any sub-pixel displacement."""

    def __init__(self, obj):
        self.obj = np.asarray(obj, np.complex128)
        h, w = self.obj.shape
        self.F = np.fft.fft2(self.obj)
        self.ky = np.fft.fftfreq(h)[:, None]
        self.kx = np.fft.fftfreq(w)[None, :]
        self._cache = {}

    def _frac_shifted(self, fy, fx):
        key = (round(fy, 6), round(fx, 6))
        if key not in self._cache:
            if len(self._cache) > 64:
                self._cache.clear()
            # O'(r, c) = O(r + fy, c + fx)
            ph = np.exp(2j * np.pi * (fy * self.ky + fx * self.kx))
            self._cache[key] = np.fft.ifft2(self.F * ph) if (fy or fx) else self.obj
        return self._cache[key]

    def sample(self, row0, col0, h, w):
        """G(r, c) = O(row0 + r, col0 + c) for an h x w grid; zero outside the object."""
        ir, ic = int(np.floor(row0)), int(np.floor(col0))
        img = self._frac_shifted(row0 - ir, col0 - ic)
        H, W = img.shape
        out = np.zeros((h, w), np.complex128)
        r_lo, r_hi = max(ir, 0), min(ir + h, H)
        c_lo, c_hi = max(ic, 0), min(ic + w, W)
        if r_hi > r_lo and c_hi > c_lo:
            out[r_lo - ir:r_hi - ir, c_lo - ic:c_hi - ic] = img[r_lo:r_hi, c_lo:c_hi]
        return out


def _corr(ra, mask, g):
    ga = np.abs(g)[mask]
    return float(np.sum(ra * (ga - ga.mean())))


def register(recon, mask, truth, base):
    """The displacement (dy, dx) of the truth grid maximising the unnormalised correlation of
    amplitudes over `mask`."""
    h, w = recon.shape
    ra = np.abs(recon)[mask]
    ra = ra - ra.mean()
    best, arg = -np.inf, (0, 0)
    for dy in range(-SEARCH, SEARCH + 1):
        for dx in range(-SEARCH, SEARCH + 1):
            v = _corr(ra, mask, truth.sample(base[0] + dy, base[1] + dx, h, w))
            if v > best:
                best, arg = v, (dy, dx)
    if max(abs(arg[0]), abs(arg[1])) == SEARCH:
        print(f"score.py: warning: correlation peak at the search edge {arg}", file=sys.stderr)
    steps = np.arange(-0.6, 0.6001, 0.05)
    best_f, arg_f = best, (float(arg[0]), float(arg[1]))
    for fy in steps:
        for fx in steps:
            sy, sx = arg[0] + fy, arg[1] + fx
            v = _corr(ra, mask, truth.sample(base[0] + sy, base[1] + sx, h, w))
            if v > best_f:
                best_f, arg_f = v, (float(sy), float(sx))
    return arg_f


# ------------------------------------------------------------------------------------ metrics

def metrics(recon, gt, mask):
    from scipy.ndimage import binary_erosion
    from skimage.metrics import structural_similarity

    rows = np.where(mask.any(axis=1))[0]
    cols = np.where(mask.any(axis=0))[0]
    sl = (slice(rows[0], rows[-1] + 1), slice(cols[0], cols[-1] + 1))
    R, G, M = recon[sl], gt[sl], mask[sl]
    ra, ga = np.abs(R), np.abs(G)
    ra_n = ra * (ga[M].mean() / max(ra[M].mean(), 1e-30))
    ra_n = np.where(M, ra_n, ga)  # uncovered pixels never enter the averaged SSIM windows
    rng = float(ga[M].max() - ga[M].min())
    _, smap = structural_similarity(ga, ra_n, data_range=rng, full=True)
    inner = binary_erosion(M, structure=np.ones((7, 7)), border_value=0)
    ssim = float(smap[inner].mean())
    amp_p = float(np.corrcoef(ra[M], ga[M])[0, 1])
    c = np.sum(R[M] * np.conj(G[M]))
    pr = np.angle(R * np.exp(-1j * np.angle(c)))
    pg = np.angle(G)
    ph_p = float(np.corrcoef(pr[M], pg[M])[0, 1])
    return {"amp_ssim": ssim, "amp_pearson": amp_p, "phase_pearson": ph_p,
            "covered_pixels": int(M.sum()), "ssim_pixels": int(inner.sum())}


def score_image(recon, mask, truth, base):
    h, w = recon.shape
    off = register(recon, mask, truth, base)
    g_reg = truth.sample(base[0] + off[0], base[1] + off[1], h, w)
    g_0 = truth.sample(base[0], base[1], h, w)
    return {
        "offset_yx": [round(off[0], 3), round(off[1], 3)],
        "registered": metrics(recon, g_reg, mask),
        "unregistered": metrics(recon, g_0, mask),
        "shape": [h, w],
    }


def score_prediction(prediction, test):
    p = np.load(prediction)
    t = np.load(test)
    img, cov, base = stitch(np.asarray(p["patches"]), np.asarray(p["centroids"], np.float64))
    s = score_image(img, cov > 0.5, Truth(t["objectGuess"]), base)
    s["input"] = str(prediction)
    s["scoring"] = "bench/ptychopinn/score.py prediction"
    return s


def _find(sub, obj):
    """(row, col) where `sub` sits exactly in `obj`."""
    h, w = sub.shape
    H, W = obj.shape
    rows, cols = np.nonzero(obj[:H - h + 1, :W - w + 1] == sub[0, 0])
    for r, c in zip(rows, cols):
        if np.array_equal(obj[r:r + h, c:c + w], sub):
            return int(r), int(c)
    return None


def score_recon_file(path, test, key=None, gt_path=None, gt_key=None):
    z = np.load(path)
    names = list(z.keys())
    if key is None:
        cands = [k for k in names if np.iscomplexobj(z[k]) and z[k].ndim == 2 and "ground_truth" not in k]
        if len(cands) != 1:
            sys.exit(f"score.py: {path}: say --key, one of {names}")
        key = cands[0]
    recon = np.asarray(z[key]).astype(np.complex128)
    zg = np.load(gt_path) if gt_path else z
    if gt_key is None:
        cands = [k for k in zg.keys() if "ground_truth" in k and np.iscomplexobj(zg[k])]
        if len(cands) != 1:
            sys.exit(f"score.py: say --gt-key (ground-truth crop) among {list(zg.keys())}")
        gt_key = cands[0]
    gt_crop = np.asarray(zg[gt_key])
    obj = np.asarray(np.load(test)["objectGuess"])
    at = _find(gt_crop.astype(obj.dtype), obj)
    if at is None:
        sys.exit(f"score.py: the ground-truth crop `{gt_key}` is not a window of {test}'s objectGuess")
    if gt_crop.shape != recon.shape:
        sys.exit(f"score.py: reconstruction {recon.shape} and ground-truth crop {gt_crop.shape} differ")
    s = score_image(recon, np.abs(recon) > 1e-12, Truth(obj), (float(at[0]), float(at[1])))
    s["input"] = f"{path}:{key}"
    s["scoring"] = "bench/ptychopinn/score.py image"
    return s


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("prediction")
    s.add_argument("prediction")
    s.add_argument("test")
    s = sub.add_parser("image")
    s.add_argument("recon")
    s.add_argument("test")
    s.add_argument("--key")
    s.add_argument("--gt", help="npz holding the ground-truth crop (default: RECON itself)")
    s.add_argument("--gt-key")
    for s in sub.choices.values():
        s.add_argument("--name", help="a label for the output")
        s.add_argument("--json", action="store_true", help="print JSON (default: one line)")
    a = ap.parse_args()
    if a.cmd == "prediction":
        r = score_prediction(Path(a.prediction), Path(a.test))
    else:
        r = score_recon_file(Path(a.recon), Path(a.test), a.key, a.gt, a.gt_key)
    if a.name:
        r["name"] = a.name
    if a.json:
        print(json.dumps(r, indent=1))
    else:
        g, u = r["registered"], r["unregistered"]
        print(f"{a.name or r['input']}: amp SSIM {g['amp_ssim']:.3f} Pearson {g['amp_pearson']:.3f} "
              f"phase Pearson {g['phase_pearson']:.3f} | offset {r['offset_yx']} | unregistered amp SSIM "
              f"{u['amp_ssim']:.3f} Pearson {u['amp_pearson']:.3f}")


if __name__ == "__main__":
    main()
