//! Small noise-free cases for the tests of this crate and the crates above it (feature
//! `testdata`): a synthetic grouped dataset for the network, a raster scan for the baseline, and a
//! perfect prediction for the evaluation. Deterministic; nothing here is used by a build.
//!
//! The network's case: smooth random complex object, soft-disk probe, bilinear patches
//! (reference 4.4), diffraction `|fftshift(F(patch * probe))| / N`, groups of nearest neighbours.

use crate::evaluation::stitch::extract_patch;
use crate::evaluation::Prediction;
use crate::io::dataset::Dataset;
use crate::numerics::fft::{fftshift, Fft2};
use ndarray::{s, Array1, Array2, Array3};
use num_complex::{Complex, Complex32, Complex64};
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

/// A small noise-free dataset: smooth object, soft disk probe, jittered raster positions,
/// diffraction = |fftshift(F(patch P))| / N.
pub struct Sim {
    pub object: Array2<Complex64>,
    pub probe: Array2<Complex32>,
    pub xs: Vec<f64>,
    pub ys: Vec<f64>,
    pub diffraction: Array3<f32>,
}

pub fn raster(size: usize, n: usize, step: f64, radius: f64, jitter: bool) -> Sim {
    let object = Array2::from_shape_fn((size, size), |(r, c)| {
        let (r, c) = (r as f64, c as f64);
        let amp =
            0.75 + 0.2 * (0.31 * c).sin() * (0.23 * r).cos() + 0.05 * (0.9 * (r + 0.5 * c)).sin();
        let ph = 0.5 * (0.17 * r + 0.05 * c).sin() + 0.3 * (0.41 * c).cos();
        Complex64::from_polar(amp, ph)
    });
    let h = (n / 2) as f64;
    let probe = Array2::from_shape_fn((n, n), |(i, j)| {
        let d = ((i as f64 - h).powi(2) + (j as f64 - h).powi(2)).sqrt();
        let a = 1.0 / (1.0 + ((d - radius) / 1.0).exp());
        Complex32::from_polar(a as f32, (0.02 * d * d) as f32)
    });
    let mut xs = Vec::new();
    let mut ys = Vec::new();
    let lo = h;
    let hi = size as f64 - h;
    let mut k = 0;
    let mut y = lo;
    while y < hi {
        let mut x = lo;
        while x < hi {
            // Deterministic sub-pixel jitter.
            let j = if jitter { 1.0 } else { 0.0 };
            xs.push(x + j * 0.37 * ((k * 7 % 5) as f64 / 5.0));
            ys.push(y + j * 0.61 * ((k * 3 % 7) as f64 / 7.0));
            k += 1;
            x += step;
        }
        y += step;
    }
    let plan = Fft2::<f64>::new(n, n);
    let p64 = probe.mapv(|z| Complex64::new(z.re as f64, z.im as f64));
    let mut diffraction = Array3::<f32>::zeros((xs.len(), n, n));
    for k in 0..xs.len() {
        let mut psi = &extract_patch(&object, xs[k], ys[k], n) * &p64;
        plan.forward(&mut psi);
        let a = crate::numerics::fft::fftshift(&psi.mapv(|z| z.norm() / n as f64));
        diffraction
            .slice_mut(s![k, .., ..])
            .assign(&a.mapv(|v| v as f32));
    }
    Sim {
        object,
        probe,
        xs,
        ys,
        diffraction,
    }
}

/// An in-memory gridsize-1 dataset (noise-free, object 64x64, N = 16, a 12x12 raster of step 4
/// from 8 to 52, so the mean position and all offsets are whole pixels, or with sub-pixel
/// jitter) and a perfect prediction: the ground-truth patches at the positions.
pub fn perfect_case(jitter: bool) -> (Dataset, Prediction) {
    let sim = raster(64, 16, 4.0, 4.0, jitter);
    let n = sim.xs.len();
    let patches = Array3::from_shape_fn((n, 16, 16), |(k, i, j)| {
        let p = extract_patch(&sim.object, sim.xs[k], sim.ys[k], 16);
        let z = p[[i, j]];
        Complex32::new(z.re as f32, z.im as f32)
    });
    let object = sim.object.clone();
    gridsize1_case(
        &object,
        sim.probe.clone(),
        (sim.xs.clone(), sim.ys.clone()),
        sim.diffraction.clone(),
        patches,
    )
}

/// A gridsize-1 dataset of `object` scanned at `(xs, ys)` with these patterns, and the
/// prediction of `patches` at the positions (each pattern its own group, centroid its position).
pub fn gridsize1_case(
    object: &Array2<Complex64>,
    probe: Array2<Complex32>,
    (xs, ys): (Vec<f64>, Vec<f64>),
    diffraction: Array3<f32>,
    patches: Array3<Complex32>,
) -> (Dataset, Prediction) {
    let n = xs.len();
    let centroids = Array2::from_shape_fn((n, 2), |(k, a)| if a == 0 { xs[k] } else { ys[k] });
    let data = Dataset {
        diffraction,
        y: patches.clone(),
        object: object.mapv(|z| Complex32::new(z.re as f32, z.im as f32)),
        probe,
        xcoords: Array1::from(xs.clone()),
        ycoords: Array1::from(ys.clone()),
        xcoords_start: Array1::from(xs),
        ycoords_start: Array1::from(ys),
        scan_index: Array1::zeros(n),
        group_index: Array2::from_shape_fn((n, 1), |(k, _)| k as i64),
        gridsize: 1,
        seed: 43,
        nphotons: 1e9,
        intensity_scale: 1.0,
    };
    let pred = Prediction {
        patches,
        centroids,
        gridsize: 1,
    };
    (data, pred)
}

/// `bytes` with the one occurrence of `from` replaced by `to` (same length, so a file's offsets
/// hold): how the tests alter one value in a file header. Panics when `from` is absent or the
/// lengths differ, which is a broken test.
pub fn replace_once(bytes: &[u8], from: &[u8], to: &[u8]) -> Vec<u8> {
    assert_eq!(from.len(), to.len(), "replace_once keeps the length");
    let at = bytes
        .windows(from.len())
        .position(|w| w == from)
        .unwrap_or_else(|| panic!("{:?} not found", String::from_utf8_lossy(from)));
    let mut out = bytes.to_vec();
    out[at..at + to.len()].copy_from_slice(to);
    out
}
