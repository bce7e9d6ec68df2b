//! The convolutional part of the PINN (reference section 7.3 steps 2-4): encoder, amplitude and
//! phase decoders, as candle `Var`s with Glorot-uniform weights drawn from a seeded ChaCha RNG.
//!
//! One network per pattern: the network reads one diffraction pattern and writes one object
//! patch, and a group of `C = gridsize^2` patterns runs through it `C` times with the same
//! weights (the group's channels are folded into the batch). PtychoPINN instead reads the `C`
//! patterns of a group as `C` input channels of one network; measured on held-out data, that
//! shared network is what held gridsize 2 back (see the crate docs, "One network per pattern").
//!
//! Layout is NHWC throughout: a batch is `(B, H, W, channels)`. Each 3x3 'same' convolution (with
//! its bias and ReLU), max pooling and upsampling is one candle custom op from [`super::kernels`]
//! (Winograd F(4x4, 3x3) or im2col + gemm for the convolution, with a local backward tested
//! against finite differences); candle's autodiff chains them.

pub use super::kernels::{conv3x3_fused, conv3x3_with, max_pool2, upsample2, ConvAlgo};
use candle_core::{DType, Device, Tensor, Var};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use studymake_science::error::{Error, Result};

/// The phase decoder's output convolution, whose initial kernel is scaled down by
/// [`PHASE_HEAD_INIT_SCALE`] (see [`Network::new`]).
const PHASE_HEAD: &str = "phase.head";

/// The factor on the phase head's Glorot-uniform initial kernel.
const PHASE_HEAD_INIT_SCALE: f64 = 0.3;

/// Map a candle error to studymake's.
pub(crate) fn ce(e: candle_core::Error) -> Error {
    Error::Invalid(format!("tensor operation failed: {e}"))
}

/// Shape facts of a network: everything needed to rebuild it from its weights. The network
/// reads one pattern (one input channel) and writes one patch whatever the gridsize.
#[derive(Clone, Debug, PartialEq)]
pub struct NetShape {
    /// Patch / diffraction size `N` (a multiple of 8).
    pub n: usize,
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
        // One channel in and out: the network reads one pattern and writes one patch.
        let c = 1;
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

    /// Validate: `N` a positive multiple of 8, `f >= 1`.
    pub fn check(&self) -> Result<()> {
        if self.n == 0 || !self.n.is_multiple_of(8) {
            return Err(Error::Invalid(format!(
                "the network needs N to be a positive multiple of 8, got {}",
                self.n
            )));
        }
        if self.n_filters_scale == 0 {
            return Err(Error::Invalid(format!(
                "the network needs n_filters_scale >= 1, got {}",
                self.n_filters_scale
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
    /// Apply to `(B, H, W, Cin)`, giving `(B, H, W, Cout)`, followed by a ReLU if `relu`,
    /// computed by `algo`.
    pub fn forward(&self, x: &Tensor, relu: bool, algo: ConvAlgo) -> candle_core::Result<Tensor> {
        conv3x3_with(
            x,
            self.weight.as_tensor(),
            self.bias.as_tensor(),
            relu,
            algo,
        )
    }
}

/// A 3x3 'same' convolution plus bias (no activation): `x` `(B, H, W, Cin)`, `w`
/// `(9 Cin, Cout)`, `b` `(Cout,)`. See [`conv3x3_fused`].
pub fn conv3x3(x: &Tensor, w: &Tensor, b: &Tensor) -> candle_core::Result<Tensor> {
    conv3x3_fused(x, w, b, false)
}

/// The encoder and the two decoders.
pub struct Network {
    pub shape: NetShape,
    pub convs: Vec<Conv>,
    /// How the convolutions are computed ([`ConvAlgo::Auto`] unless a benchmark compares).
    pub algo: ConvAlgo,
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
    ///
    /// The one exception is the phase head ([`PHASE_HEAD`]), whose Glorot kernel is multiplied
    /// by [`PHASE_HEAD_INIT_SCALE`] = 0.3: the lines object is a weak phase object (phase
    /// 0.1 A), and a full-size random head paints an initial phase of a few tenths of a radian
    /// that five epochs do not remove (at the quick budget the learned phase came out
    /// anti-correlated with the truth). Measured at the quick budget (gridsize 1, seeds 42, 1, 2;
    /// bench/README.md, "Training quality"): unregistered phase SSIM 0.973-0.976 with the full
    /// head, 0.980-0.986 at 0.3; a zero head (0.981-0.983) cost amplitude correlation in the
    /// small training test (0.19-0.28 against 0.40-0.57), 0.3 does not.
    pub fn new(shape: NetShape, seed: u64, dtype: DType) -> Result<Network> {
        shape.check()?;
        let dev = Device::Cpu;
        let mut convs = Vec::new();
        for (name, cin, cout) in shape.layers() {
            let mut rng = ChaCha8Rng::seed_from_u64(stream_seed(seed, &name));
            let limit = (6.0 / (9.0 * (cin + cout) as f64)).sqrt();
            let scale = if name == PHASE_HEAD {
                PHASE_HEAD_INIT_SCALE
            } else {
                1.0
            };
            let w: Vec<f64> = (0..9 * cin * cout)
                .map(|_| scale * rng.random_range(-limit..limit))
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
            algo: ConvAlgo::Auto,
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
    /// the intensity scale), `C` patterns per group. Returns `(amplitude, phase)`, each
    /// `(B, N/2, N/2, C)`: the central half of each pattern's object patch, amplitude in (0, 1)
    /// (sigmoid), phase in (-pi, pi) (pi tanh). Each pattern goes through the same one-channel
    /// network on its own: channel `c` of the output depends on channel `c` of the input only.
    pub fn forward(&self, x: &Tensor) -> candle_core::Result<(Tensor, Tensor)> {
        let (b, n, w, c) = x.dims4()?;
        if c == 1 {
            return self.forward_patterns(x);
        }
        // (B, N, N, C) -> (B C, N, N, 1): pattern (b, c) becomes batch row b C + c.
        let xs = x
            .permute((0, 3, 1, 2))?
            .contiguous()?
            .reshape((b * c, n, w, 1))?;
        let (amp, phase) = self.forward_patterns(&xs)?;
        let back = |t: Tensor| -> candle_core::Result<Tensor> {
            let (_, h, w, _) = t.dims4()?;
            t.reshape((b, c, h, w))?.permute((0, 2, 3, 1))?.contiguous()
        };
        Ok((back(amp)?, back(phase)?))
    }

    /// The network on single patterns: `(P, N, N, 1)` to two `(P, N/2, N/2, 1)`.
    fn forward_patterns(&self, x: &Tensor) -> candle_core::Result<(Tensor, Tensor)> {
        let mut h = x.clone();
        for i in 0..3 {
            h = self
                .conv(&format!("encoder.{i}.conv0"))?
                .forward(&h, true, self.algo)?;
            h = self
                .conv(&format!("encoder.{i}.conv1"))?
                .forward(&h, true, self.algo)?;
            h = max_pool2(&h)?;
        }
        let mut out = Vec::new();
        for head in ["amplitude", "phase"] {
            let mut d = h.clone();
            for i in 0..2 {
                d = self
                    .conv(&format!("{head}.{i}.conv0"))?
                    .forward(&d, true, self.algo)?;
                d = self
                    .conv(&format!("{head}.{i}.conv1"))?
                    .forward(&d, true, self.algo)?;
                d = upsample2(&d)?;
            }
            out.push(
                self.conv(&format!("{head}.head"))?
                    .forward(&d, false, self.algo)?,
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
    fn same_seed_same_weights_and_one_input_channel() {
        let s = NetShape {
            n: 16,
            n_filters_scale: 1,
        };
        let a = Network::new(s.clone(), 7, DType::F32).unwrap();
        let b = Network::new(s.clone(), 7, DType::F32).unwrap();
        let c = Network::new(s, 8, DType::F32).unwrap();
        assert_eq!(a.input_channels(), 1);
        let wa: Vec<f32> = a.convs[0].weight.flatten_all().unwrap().to_vec1().unwrap();
        let wb: Vec<f32> = b.convs[0].weight.flatten_all().unwrap().to_vec1().unwrap();
        let wc: Vec<f32> = c.convs[0].weight.flatten_all().unwrap().to_vec1().unwrap();
        assert_eq!(wa, wb);
        assert_ne!(wa, wc);
        let lim = (6.0f32 / (9.0 * 33.0)).sqrt();
        assert!(wa.iter().all(|w| w.abs() <= lim));
        let x = Tensor::zeros((2, 16, 16, 4), DType::F32, &Device::Cpu).unwrap();
        let (amp, ph) = a.forward(&x).unwrap();
        assert_eq!(amp.dims(), &[2, 8, 8, 4]);
        assert_eq!(ph.dims(), &[2, 8, 8, 4]);
    }

    #[test]
    fn each_pattern_of_a_group_goes_through_the_same_network_alone() {
        let net = Network::new(
            NetShape {
                n: 16,
                n_filters_scale: 1,
            },
            5,
            DType::F32,
        )
        .unwrap();
        let x = rand_tensor(&[2, 16, 16, 4], 9)
            .to_dtype(DType::F32)
            .unwrap();
        let (amp, phase) = net.forward(&x).unwrap();
        assert_eq!(amp.dims(), &[2, 8, 8, 4]);
        for c in 0..4 {
            let xc = x.narrow(3, c, 1).unwrap().contiguous().unwrap();
            let (a1, p1) = net.forward(&xc).unwrap();
            for (got, want) in [(&amp, a1), (&phase, p1)] {
                let g: Vec<f32> = got
                    .narrow(3, c, 1)
                    .unwrap()
                    .flatten_all()
                    .unwrap()
                    .to_vec1()
                    .unwrap();
                let w: Vec<f32> = want.flatten_all().unwrap().to_vec1().unwrap();
                // The same arithmetic on the same rows: equal to the bit.
                assert!(
                    g.iter().zip(&w).all(|(p, q)| p.to_bits() == q.to_bits()),
                    "channel {c} differs from the pattern run alone"
                );
            }
        }
    }

    #[test]
    fn the_phase_head_starts_small_and_every_other_layer_is_glorot() {
        let s = NetShape {
            n: 16,
            n_filters_scale: 1,
        };
        let net = Network::new(s, 3, DType::F32).unwrap();
        for c in &net.convs {
            let w: Vec<f32> = c.weight.flatten_all().unwrap().to_vec1().unwrap();
            let limit = (6.0 / (9.0 * (c.cin + c.cout) as f64)).sqrt();
            let scale = if c.name == PHASE_HEAD { 0.3 } else { 1.0 };
            let top = w.iter().fold(0.0f64, |m, &v| m.max(v.abs() as f64));
            // Uniform in (-scale limit, scale limit): the largest of 9 Cin Cout >= 288 draws is
            // above 0.9 of the bound with probability 1 - 0.9^288.
            assert!(
                top <= scale * limit * (1.0 + 1e-6) && top > 0.9 * scale * limit,
                "layer {}: largest |w| {top}, bound {}",
                c.name,
                scale * limit
            );
        }
    }
}
