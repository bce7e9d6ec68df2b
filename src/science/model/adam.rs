//! `ParallelAdamW`: candle-nn's AdamW stepped on disjoint groups of parameters at once.
//!
//! candle's element-wise operations are single-threaded, so one AdamW step (about a dozen
//! passes over every parameter) ran on one core while the other waited: 5-25 ms per batch, the
//! larger at `n_filters_scale` 2 (2.3 M parameters). Adam's update of a parameter reads only
//! that parameter, its gradient and its own moments, so splitting the parameters between
//! several candle `AdamW`s (one per group, balanced by element count) and stepping them on
//! rayon's threads gives the same bits as one `AdamW` over all of them, for any number of
//! groups (tested).

use candle_core::backprop::GradStore;
use candle_core::{Result, Var};
use candle_nn::{AdamW, Optimizer, ParamsAdamW};
use rayon::prelude::*;

/// Keras' Adam (reference 7.4): beta 0.9 / 0.999, epsilon 1e-7, no weight decay.
pub fn keras_params(lr: f64) -> ParamsAdamW {
    ParamsAdamW {
        lr,
        beta1: 0.9,
        beta2: 0.999,
        eps: 1e-7,
        weight_decay: 0.0,
    }
}

/// candle-nn's AdamW over `vars`, stepped in parallel groups.
pub struct ParallelAdamW {
    groups: Vec<AdamW>,
}

impl ParallelAdamW {
    /// AdamW over `vars` in `groups` groups (at least one), balanced by element count: the
    /// largest parameters first, each to the group with the fewest elements so far (the first
    /// such group on ties), so the split depends only on the shapes.
    pub fn new(vars: Vec<Var>, params: ParamsAdamW, groups: usize) -> Result<Self> {
        let groups = groups.max(1);
        let mut order: Vec<usize> = (0..vars.len()).collect();
        order.sort_by_key(|&i| std::cmp::Reverse(vars[i].elem_count()));
        let mut parts: Vec<(usize, Vec<Var>)> = vec![(0, Vec::new()); groups];
        for i in order {
            let lightest = (0..groups).min_by_key(|&g| (parts[g].0, g)).unwrap_or(0);
            parts[lightest].0 += vars[i].elem_count();
            parts[lightest].1.push(vars[i].clone());
        }
        let groups = parts
            .into_iter()
            .filter(|(_, v)| !v.is_empty())
            .map(|(_, v)| AdamW::new(v, params.clone()))
            .collect::<Result<Vec<_>>>()?;
        Ok(ParallelAdamW { groups })
    }

    /// One Adam step of every group, the groups on rayon's threads.
    pub fn step(&mut self, grads: &GradStore) -> Result<()> {
        self.groups.par_iter_mut().try_for_each(|g| g.step(grads))
    }

    pub fn learning_rate(&self) -> f64 {
        self.groups.first().map_or(0.0, |g| g.learning_rate())
    }

    pub fn set_learning_rate(&mut self, lr: f64) {
        for g in &mut self.groups {
            g.set_learning_rate(lr);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Tensor};

    /// Three steps on a quadratic loss: every grouping gives the bits of one AdamW.
    #[test]
    fn grouped_steps_equal_one_adamw_bit_for_bit() {
        let dev = Device::Cpu;
        let shapes: [&[usize]; 5] = [&[7, 5], &[64], &[3, 3, 4], &[1], &[300]];
        let params = keras_params(1e-2);
        let make = || -> Vec<Var> {
            shapes
                .iter()
                .enumerate()
                .map(|(i, s)| {
                    let n: usize = s.iter().product();
                    let v: Vec<f32> = (0..n)
                        .map(|j| ((j * 7919 + i * 104729) % 97) as f32 / 97.0 - 0.5)
                        .collect();
                    Var::from_tensor(&Tensor::from_vec(v, *s, &dev).unwrap()).unwrap()
                })
                .collect()
        };
        let loss = |vars: &[Var]| -> Tensor {
            let mut acc = Tensor::new(0f32, &dev).unwrap();
            for (i, v) in vars.iter().enumerate() {
                let t = v.as_tensor();
                let term = (t.sqr().unwrap() * (i as f64 + 1.0)).unwrap() + t.sin().unwrap();
                acc = (acc + term.unwrap().sum_all().unwrap()).unwrap();
            }
            acc
        };
        let reference = make();
        let mut one = AdamW::new(reference.clone(), params.clone()).unwrap();
        for _ in 0..3 {
            one.step(&loss(&reference).backward().unwrap()).unwrap();
        }
        for groups in [1, 2, 3, 8] {
            let vars = make();
            let mut par = ParallelAdamW::new(vars.clone(), params.clone(), groups).unwrap();
            for _ in 0..3 {
                par.step(&loss(&vars).backward().unwrap()).unwrap();
            }
            let flat = |v: &Var| v.flatten_all().unwrap().to_vec1::<f32>().unwrap();
            for ((a, b), start) in vars.iter().zip(&reference).zip(&make()) {
                let (a, b) = (flat(a), flat(b));
                assert!(
                    a.iter().zip(&b).all(|(x, y)| x.to_bits() == y.to_bits()),
                    "{groups} groups differ from one AdamW"
                );
                assert_ne!(a, flat(start), "the parameters did not move");
            }
            assert_eq!(par.learning_rate(), 1e-2);
            par.set_learning_rate(5e-3);
            assert_eq!(par.learning_rate(), 5e-3);
        }
    }
}
