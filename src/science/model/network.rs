//! The convolutional part of the PINN (reference section 7.3 steps 2-4): encoder, amplitude and
//! phase decoders, as candle `Var`s with Glorot-uniform weights drawn from a seeded ChaCha RNG.
//!
//! Layout is NHWC throughout: a batch is `(B, H, W, channels)`. A 3x3 'same' convolution is
//! written as im2col built from candle ops (zero pad, nine `narrow`s, one `cat`) followed by one
//! matrix product with the `(9 * Cin, Cout)` weight, so candle's autodiff differentiates it and
//! the work lands in candle's (fast) matmul rather than its (slow) conv2d backward. Max pooling and
//! nearest upsampling are reshapes plus `max` / `broadcast_as`.

use crate::error::{Error, Result};
use candle_core::{DType, Device, Tensor, Var};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// Map a candle error to studymake's.
pub(crate) fn ce(e: candle_core::Error) -> Error {
    Error::Invalid(format!("tensor operation failed: {e}"))
}

/// Shape facts of a network: everything needed to rebuild it from its weights.
#[derive(Clone, Debug, PartialEq)]
pub struct NetShape {
    /// Patch / diffraction size `N` (a multiple of 8).
    pub n: usize,
    /// Channels per group, `C = gridsize^2`.
    pub channels: usize,
    /// Filter multiplier `f`: encoder [32f, 64f, 128f], decoders [64f, 32f].
    pub n_filters_scale: usize,
}

impl NetShape {
    /// Encoder filter counts.
    pub fn encoder_filters(&self) -> [usize; 3] {
        let f = self.n_filters_scale;
        [32 * f, 64 * f, 128 * f]
    }

    /// Decoder filter counts.
    pub fn decoder_filters(&self) -> [usize; 2] {
        let f = self.n_filters_scale;
        [64 * f, 32 * f]
    }

    /// Every conv layer as `(name, Cin, Cout)`, in a fixed order (also the seeding order).
    pub fn layers(&self) -> Vec<(String, usize, usize)> {
        let [e0, e1, e2] = self.encoder_filters();
        let [d0, d1] = self.decoder_filters();
        let c = self.channels;
        let mut v = vec![
            ("encoder.0.conv0".to_string(), c, e0),
            ("encoder.0.conv1".to_string(), e0, e0),
            ("encoder.1.conv0".to_string(), e0, e1),
            ("encoder.1.conv1".to_string(), e1, e1),
            ("encoder.2.conv0".to_string(), e1, e2),
            ("encoder.2.conv1".to_string(), e2, e2),
        ];
        for head in ["amplitude", "phase"] {
            v.push((format!("{head}.0.conv0"), e2, d0));
            v.push((format!("{head}.0.conv1"), d0, d0));
            v.push((format!("{head}.1.conv0"), d0, d1));
            v.push((format!("{head}.1.conv1"), d1, d1));
            v.push((format!("{head}.head"), d1, c));
        }
        v
    }

    /// Validate: `N` a positive multiple of 8, `C >= 1`, `f >= 1`.
    pub fn check(&self) -> Result<()> {
        if self.n == 0 || !self.n.is_multiple_of(8) {
            return Err(Error::Invalid(format!(
                "the network needs N to be a positive multiple of 8, got {}",
                self.n
            )));
        }
        if self.channels == 0 || self.n_filters_scale == 0 {
            return Err(Error::Invalid(format!(
                "the network needs at least one channel and n_filters_scale >= 1, got C = {} and \
                 n_filters_scale = {}",
                self.channels, self.n_filters_scale
            )));
        }
        Ok(())
    }
}

/// One 3x3 'same' convolution: weight `(9 * Cin, Cout)` with row `(ky * 3 + kx) * Cin + ci`
/// (Keras' HWIO kernel flattened), bias `(Cout,)`.
pub struct Conv {
    pub name: String,
    pub cin: usize,
    pub cout: usize,
    pub weight: Var,
    pub bias: Var,
}

impl Conv {
    /// Apply to `(B, H, W, Cin)`, giving `(B, H, W, Cout)`.
    pub fn forward(&self, x: &Tensor, cache: &IndexCache) -> candle_core::Result<Tensor> {
        conv3x3_cached(x, self.weight.as_tensor(), self.bias.as_tensor(), cache)
    }
}

/// Gather indices of a 3x3 'same' im2col for `(B, H, W)` images: for output pixel `p` and tap
/// `k = ky * 3 + kx`, entry `9 p + k` is the row of the input pixel `(y + ky - 1, x + kx - 1)` in
/// the `(B H W, Cin)` view, or `u32::MAX` (candle's "zero row") outside the image.
fn im2col_index(b: usize, h: usize, w: usize) -> Vec<u32> {
    let mut idx = Vec::with_capacity(b * h * w * 9);
    for bi in 0..b {
        for y in 0..h {
            for x in 0..w {
                for ky in 0..3 {
                    for kx in 0..3 {
                        let (yy, xx) = (y + ky, x + kx);
                        if yy < 1 || xx < 1 || yy > h || xx > w {
                            idx.push(u32::MAX);
                        } else {
                            idx.push(((bi * h + yy - 1) * w + xx - 1) as u32);
                        }
                    }
                }
            }
        }
    }
    idx
}

/// Gather indices of a nearest 2x upsampling of `(B, H, W)` images (rows of the `(B H W, C)`
/// view).
fn upsample_index(b: usize, h: usize, w: usize) -> Vec<u32> {
    let mut idx = Vec::with_capacity(b * h * w * 4);
    for bi in 0..b {
        for y in 0..2 * h {
            for x in 0..2 * w {
                idx.push(((bi * h + y / 2) * w + x / 2) as u32);
            }
        }
    }
    idx
}

/// Cached gather-index tensors by (kind, B, H, W).
#[derive(Default)]
pub struct IndexCache {
    map: std::sync::Mutex<std::collections::HashMap<(u8, usize, usize, usize), Tensor>>,
}

impl IndexCache {
    fn get(
        &self,
        kind: u8,
        b: usize,
        h: usize,
        w: usize,
        make: fn(usize, usize, usize) -> Vec<u32>,
    ) -> candle_core::Result<Tensor> {
        let mut map = self
            .map
            .lock()
            .map_err(|_| candle_core::Error::Msg("index cache poisoned".into()))?;
        if let Some(t) = map.get(&(kind, b, h, w)) {
            return Ok(t.clone());
        }
        let v = make(b, h, w);
        let n = v.len();
        let t = Tensor::from_vec(v, n, &Device::Cpu)?;
        map.insert((kind, b, h, w), t.clone());
        Ok(t)
    }
}

/// A 3x3 'same' convolution: im2col as one candle `index_select` (zero rows for the padding;
/// its gradient is one `index_add`), then one matmul. `x`: `(B, H, W, Cin)`; `w`: `(9 Cin, Cout)`;
/// `b`: `(Cout,)`.
pub fn conv3x3_cached(
    x: &Tensor,
    w: &Tensor,
    b: &Tensor,
    cache: &IndexCache,
) -> candle_core::Result<Tensor> {
    let (bsz, h, wd, cin) = x.dims4()?;
    let cout = w.dim(1)?;
    let idx = cache.get(0, bsz, h, wd, im2col_index)?;
    let col = x
        .reshape((bsz * h * wd, cin))?
        .index_select(&idx, 0)?
        .reshape((bsz * h * wd, 9 * cin))?;
    col.matmul(w)?.broadcast_add(b)?.reshape((bsz, h, wd, cout))
}

/// [`conv3x3_cached`] with a throw-away cache.
pub fn conv3x3(x: &Tensor, w: &Tensor, b: &Tensor) -> candle_core::Result<Tensor> {
    conv3x3_cached(x, w, b, &IndexCache::default())
}

/// 2x2 max pooling of `(B, H, W, C)` (H, W even): the winner of each window (the first maximum
/// in row-major window order, as TensorFlow) is found on the values, then gathered with
/// `index_select`, so the gradient goes to that one input like Keras' MaxPool.
pub fn max_pool2(x: &Tensor) -> candle_core::Result<Tensor> {
    let (b, h, w, c) = x.dims4()?;
    let v: Vec<f32> = x.detach().to_dtype(DType::F32)?.flatten_all()?.to_vec1()?;
    let (h2, w2) = (h / 2, w / 2);
    let mut idx = Vec::with_capacity(b * h2 * w2 * c);
    for bi in 0..b {
        for y in 0..h2 {
            for xx in 0..w2 {
                for ch in 0..c {
                    let mut best = ((bi * h + 2 * y) * w + 2 * xx) * c + ch;
                    for (dy, dx) in [(0, 1), (1, 0), (1, 1)] {
                        let k = ((bi * h + 2 * y + dy) * w + 2 * xx + dx) * c + ch;
                        if v[k] > v[best] {
                            best = k;
                        }
                    }
                    idx.push(best as u32);
                }
            }
        }
    }
    let n = idx.len();
    let idx = Tensor::from_vec(idx, n, &Device::Cpu)?;
    x.flatten_all()?
        .index_select(&idx, 0)?
        .reshape((b, h2, w2, c))
}

/// Nearest-neighbour 2x upsampling of `(B, H, W, C)`, one `index_select` of pixel rows.
pub fn upsample2_cached(x: &Tensor, cache: &IndexCache) -> candle_core::Result<Tensor> {
    let (b, h, w, c) = x.dims4()?;
    let idx = cache.get(1, b, h, w, upsample_index)?;
    x.reshape((b * h * w, c))?
        .index_select(&idx, 0)?
        .reshape((b, 2 * h, 2 * w, c))
}

/// [`upsample2_cached`] with a throw-away cache.
pub fn upsample2(x: &Tensor) -> candle_core::Result<Tensor> {
    upsample2_cached(x, &IndexCache::default())
}

/// The encoder and the two decoders.
pub struct Network {
    pub shape: NetShape,
    pub convs: Vec<Conv>,
    /// Gather indices reused across batches.
    pub cache: IndexCache,
}

/// A 64-bit stream key from a seed and a label (blake3, so streams never collide by accident).
pub(crate) fn stream_seed(seed: u64, label: &str) -> u64 {
    let mut h = blake3::Hasher::new();
    h.update(&seed.to_le_bytes());
    h.update(label.as_bytes());
    let d = h.finalize();
    let mut b = [0u8; 8];
    b.copy_from_slice(&d.as_bytes()[..8]);
    u64::from_le_bytes(b)
}

impl Network {
    /// A fresh network: Glorot-uniform kernels (`limit = sqrt(6 / (9 Cin + 9 Cout))`, as Keras),
    /// zero biases; each layer's kernel from its own ChaCha8 stream keyed by (`seed`, layer name).
    pub fn new(shape: NetShape, seed: u64, dtype: DType) -> Result<Network> {
        shape.check()?;
        let dev = Device::Cpu;
        let mut convs = Vec::new();
        for (name, cin, cout) in shape.layers() {
            let mut rng = ChaCha8Rng::seed_from_u64(stream_seed(seed, &name));
            let limit = (6.0 / (9.0 * (cin + cout) as f64)).sqrt();
            let w: Vec<f64> = (0..9 * cin * cout)
                .map(|_| rng.random_range(-limit..limit))
                .collect();
            let w = Tensor::from_vec(w, (9 * cin, cout), &dev)
                .and_then(|t| t.to_dtype(dtype))
                .map_err(ce)?;
            let b = Tensor::zeros(cout, dtype, &dev).map_err(ce)?;
            convs.push(Conv {
                name,
                cin,
                cout,
                weight: Var::from_tensor(&w).map_err(ce)?,
                bias: Var::from_tensor(&b).map_err(ce)?,
            });
        }
        Ok(Network {
            shape,
            convs,
            cache: IndexCache::default(),
        })
    }

    /// Every trainable tensor (kernels and biases), in layer order.
    pub fn vars(&self) -> Vec<Var> {
        self.convs
            .iter()
            .flat_map(|c| [c.weight.clone(), c.bias.clone()])
            .collect()
    }

    fn conv(&self, name: &str) -> candle_core::Result<&Conv> {
        self.convs
            .iter()
            .find(|c| c.name == name)
            .ok_or_else(|| candle_core::Error::Msg(format!("no layer {name}")))
    }

    /// The number of input channels of the first convolution, read from its kernel.
    pub fn input_channels(&self) -> usize {
        self.convs.first().map(|c| c.cin).unwrap_or(0)
    }

    /// Forward pass. `x`: `(B, N, N, C)` normalised diffraction amplitude (already divided by
    /// the intensity scale). Returns `(amplitude, phase)`, each `(B, N/2, N/2, C)`: the central
    /// half of the object patch, amplitude in (0, 1) (sigmoid), phase in (-pi, pi) (pi tanh).
    pub fn forward(&self, x: &Tensor) -> candle_core::Result<(Tensor, Tensor)> {
        let mut h = x.clone();
        for i in 0..3 {
            h = self
                .conv(&format!("encoder.{i}.conv0"))?
                .forward(&h, &self.cache)?
                .relu()?;
            h = self
                .conv(&format!("encoder.{i}.conv1"))?
                .forward(&h, &self.cache)?
                .relu()?;
            h = max_pool2(&h)?;
        }
        let mut out = Vec::new();
        for head in ["amplitude", "phase"] {
            let mut d = h.clone();
            for i in 0..2 {
                d = self
                    .conv(&format!("{head}.{i}.conv0"))?
                    .forward(&d, &self.cache)?
                    .relu()?;
                d = self
                    .conv(&format!("{head}.{i}.conv1"))?
                    .forward(&d, &self.cache)?
                    .relu()?;
                d = upsample2_cached(&d, &self.cache)?;
            }
            out.push(
                self.conv(&format!("{head}.head"))?
                    .forward(&d, &self.cache)?,
            );
        }
        let phase = (out[1].tanh()? * std::f64::consts::PI)?;
        let amp = (out[0].neg()?.exp()? + 1.0)?.recip()?;
        Ok((amp, phase))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rand_tensor(shape: &[usize], seed: u64) -> Tensor {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let n: usize = shape.iter().product();
        let v: Vec<f64> = (0..n).map(|_| rng.random_range(-1.0..1.0)).collect();
        Tensor::from_vec(v, shape, &Device::Cpu).unwrap()
    }

    #[test]
    fn im2col_convolution_matches_candle_conv2d() {
        let x = rand_tensor(&[2, 8, 6, 3], 1);
        let w = rand_tensor(&[27, 5], 2);
        let b = rand_tensor(&[5], 3);
        let got = conv3x3(&x, &w, &b).unwrap();
        // Reference: candle's NCHW conv2d with an OIHW kernel.
        let k = w
            .reshape((3, 3, 3, 5))
            .unwrap()
            .permute((3, 2, 0, 1))
            .unwrap()
            .contiguous()
            .unwrap();
        let want = x
            .permute((0, 3, 1, 2))
            .unwrap()
            .contiguous()
            .unwrap()
            .conv2d(&k, 1, 1, 1, 1)
            .unwrap()
            .broadcast_add(&b.reshape((1, 5, 1, 1)).unwrap())
            .unwrap()
            .permute((0, 2, 3, 1))
            .unwrap();
        let err = (got - want)
            .unwrap()
            .abs()
            .unwrap()
            .max_all()
            .unwrap()
            .to_scalar::<f64>()
            .unwrap();
        assert!(err < 1e-12, "im2col conv differs from conv2d by {err}");
    }

    #[test]
    fn pool_and_upsample_match_naive_loops() {
        let x = rand_tensor(&[2, 4, 6, 3], 4);
        let xs: Vec<f64> = x.flatten_all().unwrap().to_vec1().unwrap();
        let at = |b: usize, i: usize, j: usize, c: usize| xs[((b * 4 + i) * 6 + j) * 3 + c];
        let p: Vec<f64> = max_pool2(&x)
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1()
            .unwrap();
        let u: Vec<f64> = upsample2(&x)
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1()
            .unwrap();
        for b in 0..2 {
            for i in 0..2 {
                for j in 0..3 {
                    for c in 0..3 {
                        let m = at(b, 2 * i, 2 * j, c)
                            .max(at(b, 2 * i + 1, 2 * j, c))
                            .max(at(b, 2 * i, 2 * j + 1, c))
                            .max(at(b, 2 * i + 1, 2 * j + 1, c));
                        assert_eq!(p[((b * 2 + i) * 3 + j) * 3 + c], m);
                    }
                }
            }
            for i in 0..8 {
                for j in 0..12 {
                    for c in 0..3 {
                        assert_eq!(u[((b * 8 + i) * 12 + j) * 3 + c], at(b, i / 2, j / 2, c));
                    }
                }
            }
        }
    }

    #[test]
    fn same_seed_same_weights_and_first_layer_has_c_inputs() {
        let s = NetShape {
            n: 16,
            channels: 4,
            n_filters_scale: 1,
        };
        let a = Network::new(s.clone(), 7, DType::F32).unwrap();
        let b = Network::new(s.clone(), 7, DType::F32).unwrap();
        let c = Network::new(s, 8, DType::F32).unwrap();
        assert_eq!(a.input_channels(), 4);
        let wa: Vec<f32> = a.convs[0].weight.flatten_all().unwrap().to_vec1().unwrap();
        let wb: Vec<f32> = b.convs[0].weight.flatten_all().unwrap().to_vec1().unwrap();
        let wc: Vec<f32> = c.convs[0].weight.flatten_all().unwrap().to_vec1().unwrap();
        assert_eq!(wa, wb);
        assert_ne!(wa, wc);
        let lim = (6.0f32 / (9.0 * 36.0)).sqrt();
        assert!(wa.iter().all(|w| w.abs() <= lim));
        let x = Tensor::zeros((2, 16, 16, 4), DType::F32, &Device::Cpu).unwrap();
        let (amp, ph) = a.forward(&x).unwrap();
        assert_eq!(amp.dims(), &[2, 8, 8, 4]);
        assert_eq!(ph.dims(), &[2, 8, 8, 4]);
    }
}
