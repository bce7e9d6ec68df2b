#!/usr/bin/env python3
"""Independent reference values for studymake's evaluation metrics.

Builds the same formula-defined image pair as `science::metrics::reference_pair` and the
registration pair of `science::registration` tests, computes SSIM (scikit-image),
MS-SSIM (PtychoPINN's definition on top of scikit-image SSIM and scipy's gaussian_filter),
FRC (numpy), plane removal (numpy lstsq) and phase_cross_correlation (scikit-image), and writes
`crates/science/testdata/reference_metrics.rs`, which the Rust tests include.

Run: python3 -m venv /tmp/evenv && /tmp/evenv/bin/pip install numpy scipy scikit-image
     /tmp/evenv/bin/python scripts/reference_metrics.py
"""
import pathlib

import numpy as np
import scipy
import skimage
from scipy.ndimage import fourier_shift, gaussian_filter
from skimage.metrics import structural_similarity
from skimage.registration import phase_cross_correlation


def reference_pair():
    r, c = np.meshgrid(np.arange(40), np.arange(48), indexing="ij")
    t = 1.0 + 0.5 * np.sin(0.3 * c) * np.cos(0.2 * r) + 0.1 * ((7 * r + 3 * c) % 5)
    p = t + 0.08 * np.cos(0.7 * r + 0.45 * c) + 0.03 * (((11 * r + 5 * c) % 7) - 3.0)
    return t.astype(np.float64), p.astype(np.float64)


def ms_ssim(img1, img2, sigma):
    weights = [0.0448, 0.2856, 0.3001, 0.2363, 0.1333]
    if sigma > 0:
        img1 = gaussian_filter(img1, sigma)
        img2 = gaussian_filter(img2, sigma)
    rng = max(img1.max() - img1.min(), img2.max() - img2.min())
    value = 1.0
    for w in weights:
        if min(img1.shape) < 7:
            break
        s = structural_similarity(img1, img2, data_range=rng)
        if np.isnan(s):
            return 0.0
        value *= (1e-4 if s < 0 else s) ** w
        img1 = img1[::2, ::2]
        img2 = img2[::2, ::2]
    return value


def frc(t, p):
    m = min(t.shape)
    def crop(a):
        r0 = (a.shape[0] - m) // 2
        c0 = (a.shape[1] - m) // 2
        return a[r0:r0 + m, c0:c0 + m]
    t, p = crop(t), crop(p)
    f1 = np.fft.fftshift(np.fft.fft2(t))
    f2 = np.fft.fftshift(np.fft.fft2(p))
    y, x = np.indices((m, m))
    rings = np.round(np.sqrt((y - m // 2) ** 2 + (x - m // 2) ** 2)).astype(int)
    n = rings.max() + 1
    cnt = np.bincount(rings.ravel(), minlength=n)
    def ring_mean(v):
        re = np.bincount(rings.ravel(), v.real.ravel(), minlength=n)
        im = np.bincount(rings.ravel(), np.imag(v).ravel(), minlength=n)
        return (re + 1j * im) / cnt
    c = ring_mean(f1 * np.conj(f2))
    a = ring_mean(np.abs(f1) ** 2).real
    b = ring_mean(np.abs(f2) ** 2).real
    return np.abs(c) / np.sqrt(a * b)


def crossing(curve, thr):
    below = np.nonzero(curve < thr)[0]
    if len(below) == 0:
        return float(len(curve))
    i = below[0]
    if i == 0:
        return 0.0
    a, b = curve[i - 1], curve[i]
    return (i - 1) + (a - thr) / (a - b)


def remove_plane(z):
    h, w = z.shape
    r, c = np.meshgrid(np.arange(h), np.arange(w), indexing="ij")
    A = np.stack([c.ravel(), r.ravel(), np.ones(h * w)], axis=1)
    coef, *_ = np.linalg.lstsq(A, z.ravel(), rcond=None)
    return z - (A @ coef).reshape(h, w)


def registration_pair():
    # A smooth, non-periodic-looking image and a Fourier-shifted copy (shift (1.37, -2.61)).
    r, c = np.meshgrid(np.arange(64), np.arange(72), indexing="ij")
    ref = (np.exp(-((r - 30.0) ** 2 + (c - 38.0) ** 2) / 90.0)
           + 0.6 * np.exp(-((r - 18.0) ** 2 + (c - 20.0) ** 2) / 30.0)
           + 0.3 * np.sin(0.31 * r) * np.cos(0.23 * c) ** 2)
    moving = np.fft.ifft2(fourier_shift(np.fft.fft2(ref), (1.37, -2.61))).real
    return ref, moving


def periodic_image():
    # Every period divides 68: a periodic image whose Fourier shift is exact.
    r, c = np.meshgrid(np.arange(68), np.arange(68), indexing="ij")
    return (1.0 + 0.5 * np.sin(2 * np.pi * r / 68) * np.cos(2 * np.pi * 2 * c / 68)
            + 0.3 * np.cos(2 * np.pi * (3 * r + c) / 34)
            + 0.2 * np.sin(2 * np.pi * 5 * c / 68 + 1.0))


PERIODIC_SHIFTS = [(1.3, -0.7), (0.5, 0.0), (0.2, 0.3), (2.6, -1.4), (-3.0, 2.0)]


def periodic_registrations():
    """scikit-image's shift for each Fourier shift of the periodic image, stored as float64
    and as float32 (the study's precision)."""
    ref = periodic_image()
    out = []
    for s in PERIODIC_SHIFTS:
        mov = np.fft.ifft2(fourier_shift(np.fft.fft2(ref), s)).real
        d64, _, _ = phase_cross_correlation(ref, mov, upsample_factor=50, normalization="phase")
        d32, _, _ = phase_cross_correlation(ref.astype(np.float32), mov.astype(np.float32),
                                            upsample_factor=50, normalization="phase")
        out.append((s, d64, d32))
    return out


def complex_pair():
    # A 68x68 pair (the crop of PtychoPINN's unregistered score is visible at this size).
    r, c = np.meshgrid(np.arange(68), np.arange(68), indexing="ij")
    amp_t = 1.0 + 0.3 * np.sin(0.23 * c) * np.cos(0.17 * r) + 0.05 * ((3 * r + 5 * c) % 4)
    phi_t = 0.4 * np.sin(0.11 * r + 0.07 * c) + 0.2 * np.cos(0.3 * c) + 0.01 * c
    amp_p = 0.9 * (amp_t + 0.06 * np.cos(0.5 * r - 0.35 * c) + 0.02 * (((7 * r + 2 * c) % 5) - 2.0))
    phi_p = phi_t + 0.1 * np.sin(0.41 * r) * np.cos(0.29 * c) - 0.02 * r + 0.5
    return amp_t * np.exp(1j * phi_t), amp_p * np.exp(1j * phi_p)


def ptychopinn_scores(recon, gt, trim=2):
    """PtychoPINN's eval_reconstruction (plane mode) on an unregistered pair: trim once."""
    g = gt[trim:-trim, trim:-trim]
    p = recon[trim:-trim, trim:-trim]
    at = np.abs(g)
    ap = np.abs(p) * (at.mean() / np.abs(p).mean())
    pt = remove_plane(np.angle(g))
    pp = remove_plane(np.angle(p))
    out = {}
    for name, t, q in (("amplitude", at, ap), ("phase", pt, pp)):
        if name == "amplitude":
            s = structural_similarity(t, q, data_range=t.max() - t.min())
            ms = ms_ssim(t, q, 1.0)
        else:
            st, sq = (t + np.pi) / (2 * np.pi), (q + np.pi) / (2 * np.pi)
            s = structural_similarity(st, sq, data_range=1.0)
            ms = ms_ssim(st, sq, 0.0)
        curve = frc(t, q)
        out[name] = [np.mean(np.abs(t - q)), np.mean((t - q) ** 2), s, ms,
                     crossing(curve, 0.5), crossing(curve, 1.0 / 7.0)]
    return out


def main():
    t, p = reference_pair()
    s = structural_similarity(t, p, data_range=t.max() - t.min())
    ms = ms_ssim(t, p, 1.0)
    curve = frc(t, p)
    pr = remove_plane(t)
    ref, moving = registration_pair()
    shift, _, _ = phase_cross_correlation(ref, moving, upsample_factor=50, normalization="phase")
    regs = periodic_registrations()
    scores = ptychopinn_scores(*complex_pair()[::-1])
    out = pathlib.Path(__file__).resolve().parent.parent / "crates" / "science" / "testdata" / "reference_metrics.rs"
    lines = [
        "// Generated by scripts/reference_metrics.py; do not edit.",
        f"// numpy {np.__version__}, scipy {scipy.__version__}, scikit-image {skimage.__version__}",
        "pub struct Reference {",
        "    pub ssim: f64,",
        "    pub ms_ssim: f64,",
        "    pub frc: &'static [f64],",
        "    pub frc50: f64,",
        "    pub plane_removed_3_5: f64,",
        "    pub registration_shift: [f64; 2],",
        "    /// (applied Fourier shift, scikit-image float64 result, float32 result) per case.",
        "    pub periodic_registrations: &'static [([f64; 2], [f64; 2], [f64; 2])],",
        "    /// The 68x68 complex pair unregistered: [mae, mse, ssim, ms_ssim, frc50, frc1over7].",
        "    pub unregistered_amplitude: [f64; 6],",
        "    pub unregistered_phase: [f64; 6],",
        "}",
        "pub const VALUES: Reference = Reference {",
        f"    ssim: {float(s)!r},",
        f"    ms_ssim: {float(ms)!r},",
        "    frc: &[" + ", ".join(repr(float(v)) for v in curve) + "],",
        f"    frc50: {float(crossing(curve, 0.5))!r},",
        f"    plane_removed_3_5: {float(pr[3, 5])!r},",
        f"    registration_shift: [{float(shift[0])!r}, {float(shift[1])!r}],",
        "    periodic_registrations: &["
        + ", ".join(
            f"([{a[0]!r}, {a[1]!r}], [{float(b[0])!r}, {float(b[1])!r}], [{float(c[0])!r}, {float(c[1])!r}])"
            for a, b, c in regs)
        + "],",
        "    unregistered_amplitude: [" + ", ".join(repr(float(v)) for v in scores["amplitude"]) + "],",
        "    unregistered_phase: [" + ", ".join(repr(float(v)) for v in scores["phase"]) + "],",
        "};",
    ]
    out.write_text("\n".join(lines) + "\n")
    print(out.read_text())


if __name__ == "__main__":
    main()
