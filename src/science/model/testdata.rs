//! A small noise-free simulator for the model's tests only (the real one lives in the simulate
//! module): smooth random complex object, soft-disk probe, bilinear patches (reference 4.4),
//! diffraction `|fftshift(F(patch * probe))| / N`, groups of nearest neighbours.

use crate::science::dataset::Dataset;
use crate::science::fft::{fftshift, Fft2};
use ndarray::{Array1, Array2, Array3};
use num_complex::{Complex, Complex32};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// A soft disk of radius `N * 11 / 64` centred at `((N-1)/2, (N-1)/2)`, zero phase.
pub fn disk_probe(n: usize) -> Array2<Complex32> {
    let c = (n as f64 - 1.0) / 2.0;
    let rad = n as f64 * 11.0 / 64.0;
    Array2::from_shape_fn((n, n), |(i, j)| {
        let r = ((i as f64 - c).powi(2) + (j as f64 - c).powi(2)).sqrt();
        Complex32::new((0.5 * (1.0 - ((r - rad) / 1.0).tanh())) as f32, 0.0)
    })
}

/// A smooth random object: amplitude `0.55 + 0.4 * (sum of Gaussian blobs, clipped)`, phase
/// `0.5 * (amplitude - 0.55)`.
pub fn smooth_object(size: usize, seed: u64) -> Array2<Complex32> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let blobs: Vec<(f64, f64, f64, f64)> = (0..size * size / 60)
        .map(|_| {
            (
                rng.random_range(0.0..size as f64),
                rng.random_range(0.0..size as f64),
                rng.random_range(1.5..4.0),
                rng.random_range(-1.0..1.0),
            )
        })
        .collect();
    Array2::from_shape_fn((size, size), |(i, j)| {
        let mut v = 0.0;
        for &(y, x, w, a) in &blobs {
            v += a * (-((i as f64 - y).powi(2) + (j as f64 - x).powi(2)) / (2.0 * w * w)).exp();
        }
        let amp = 0.55 + 0.4 * v.tanh();
        Complex32::from_polar(amp as f32, (0.5 * (amp - 0.55)) as f32)
    })
}

fn bilinear(o: &Array2<Complex32>, y: f64, x: f64) -> Complex32 {
    let (h, w) = o.dim();
    let (y0, x0) = (y.floor(), x.floor());
    let (fy, fx) = ((y - y0) as f32, (x - x0) as f32);
    let at = |r: f64, c: f64| {
        if r < 0.0 || c < 0.0 || r >= h as f64 || c >= w as f64 {
            Complex32::new(0.0, 0.0)
        } else {
            o[[r as usize, c as usize]]
        }
    };
    at(y0, x0) * (1.0 - fy) * (1.0 - fx)
        + at(y0, x0 + 1.0) * (1.0 - fy) * fx
        + at(y0 + 1.0, x0) * fy * (1.0 - fx)
        + at(y0 + 1.0, x0 + 1.0) * fy * fx
}

/// A noise-free dataset of `count` patterns of `n x n` on an object of `size`, grouped for
/// `gridsize` (gridsize 2: each pattern with its 3 nearest neighbours, in distance order).
pub fn simulate(n: usize, size: usize, count: usize, gridsize: usize, seed: u64) -> Dataset {
    let object = smooth_object(size, seed);
    let probe = disk_probe(n);
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0x5eed);
    let lo = n as f64 / 2.0;
    let hi = size as f64 - n as f64 / 2.0;
    let xs: Vec<f64> = (0..count).map(|_| rng.random_range(lo..hi)).collect();
    let ys: Vec<f64> = (0..count).map(|_| rng.random_range(lo..hi)).collect();
    let plan = Fft2::<f32>::new(n, n);
    let mut y = Array3::<Complex32>::zeros((count, n, n));
    let mut diffraction = Array3::<f32>::zeros((count, n, n));
    let half = (n / 2) as f64;
    for k in 0..count {
        let patch = Array2::from_shape_fn((n, n), |(i, j)| {
            bilinear(&object, ys[k] - half + i as f64, xs[k] - half + j as f64)
        });
        let mut psi: Array2<Complex<f32>> = &patch * &probe;
        plan.forward(&mut psi);
        let a = fftshift(&psi).mapv(|z| z.norm() / n as f32);
        y.index_axis_mut(ndarray::Axis(0), k).assign(&patch);
        diffraction.index_axis_mut(ndarray::Axis(0), k).assign(&a);
    }
    let c = gridsize * gridsize;
    let group_index = if gridsize == 1 {
        Array2::from_shape_fn((count, 1), |(i, _)| i as i64)
    } else {
        let mut rows = Vec::new();
        for i in 0..count {
            let mut d: Vec<(f64, usize)> = (0..count)
                .map(|j| ((xs[i] - xs[j]).powi(2) + (ys[i] - ys[j]).powi(2), j))
                .collect();
            d.sort_by(|a, b| a.partial_cmp(b).unwrap());
            rows.extend(d.iter().take(c).map(|p| p.1 as i64));
        }
        Array2::from_shape_vec((count, c), rows).unwrap()
    };
    let nphotons = 1e9;
    let energy: f64 = y
        .outer_iter()
        .map(|p| {
            p.iter()
                .zip(probe.iter())
                .map(|(o, q)| (o.norm() * q.norm()) as f64)
                .map(|v| v * v)
                .sum::<f64>()
        })
        .sum::<f64>()
        / count as f64;
    Dataset {
        diffraction,
        y,
        object,
        probe,
        xcoords: Array1::from(xs.clone()),
        ycoords: Array1::from(ys.clone()),
        xcoords_start: Array1::from(xs),
        ycoords_start: Array1::from(ys),
        scan_index: Array1::zeros(count),
        group_index,
        gridsize: gridsize as i64,
        seed: seed as i64,
        nphotons,
        intensity_scale: (nphotons / energy).sqrt(),
    }
}
