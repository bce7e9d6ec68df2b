#!/usr/bin/env python3
"""numpy implementation of the same simulation formula as studymake's (reference section 4), timed.

Usage: simulate_numpy.py OBJECT.npz PROBE.npy [N_PATTERNS]
Positions uniform in [N/2, W - N/2), bilinear patch extraction with zero fill, s from the mean
illuminated energy, |fftshift(fft2(s * patch * P))|^2 / N^2, Poisson noise, sqrt(counts) / s as
float32. Vectorised over chunks of patterns. Prints `numpy_s SECONDS` and patterns per second.
"""
import sys
import time

import numpy as np


def extract(obj, xs, ys, n):
    h, w = obj.shape
    pad = n + 2
    big = np.zeros((h + 2 * pad, w + 2 * pad), obj.dtype)
    big[pad:pad + h, pad:pad + w] = obj
    r = ys[:, None] - n // 2 + np.arange(n)[None, :]
    c = xs[:, None] - n // 2 + np.arange(n)[None, :]
    r0, c0 = np.floor(r), np.floor(c)
    fr, fc = (r - r0).astype(np.float32), (c - c0).astype(np.float32)
    ri, ci = r0.astype(np.int64) + pad, c0.astype(np.int64) + pad
    R, C = ri[:, :, None], ci[:, None, :]
    FR, FC = fr[:, :, None], fc[:, None, :]
    return (big[R, C] * ((1 - FR) * (1 - FC)) + big[R, C + 1] * ((1 - FR) * FC)
            + big[R + 1, C] * (FR * (1 - FC)) + big[R + 1, C + 1] * (FR * FC)).astype(np.complex64)


def simulate(obj, probe, n_images, nphotons=1e9, seed=42, chunk=500):
    rng = np.random.default_rng(seed)
    n = probe.shape[0]
    h, w = obj.shape
    buf = min(n // 2, min(h, w) / 2 - 1)
    xs = rng.uniform(buf, w - buf, n_images)
    ys = rng.uniform(buf, h - buf, n_images)
    Y = np.empty((n_images, n, n), np.complex64)
    for a in range(0, n_images, chunk):
        Y[a:a + chunk] = extract(obj, xs[a:a + chunk], ys[a:a + chunk], n)
    p2 = np.abs(probe).astype(np.float64) ** 2
    energy = (np.abs(Y).astype(np.float64) ** 2 * p2).sum(axis=(1, 2))
    s = np.sqrt(nphotons / energy.mean())
    diff = np.empty((n_images, n, n), np.float32)
    for a in range(0, n_images, chunk):
        f = np.fft.fftshift(np.fft.fft2(s * Y[a:a + chunk] * probe), axes=(1, 2))
        lam = (np.abs(f) ** 2).astype(np.float64) / (n * n)
        diff[a:a + chunk] = (np.sqrt(rng.poisson(lam)) / s).astype(np.float32)
    return diff, Y, s


def main():
    if len(sys.argv) < 3:
        print(__doc__, file=sys.stderr)
        return 2
    obj = np.load(sys.argv[1])["objectGuess"]
    probe = np.load(sys.argv[2])
    n = int(sys.argv[3]) if len(sys.argv) > 3 else 5000
    best = best_cpu = float("inf")
    for _ in range(2):
        t, c = time.perf_counter(), time.process_time()
        diff, Y, s = simulate(obj, probe, n)
        best = min(best, time.perf_counter() - t)
        best_cpu = min(best_cpu, time.process_time() - c)
    ed = (diff.astype(np.float64) ** 2).sum(axis=(1, 2)).mean()
    ey = (np.abs(Y * probe).astype(np.float64) ** 2).sum(axis=(1, 2)).mean()
    print(f"numpy_s {best:.4f}")
    print(f"numpy_cpu_s {best_cpu:.4f}")
    print(f"numpy_patterns_per_s {n / best:.0f}")
    print(f"numpy_energy_check {ed / ey:.6f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
