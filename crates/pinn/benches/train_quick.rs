//! Wall-clock of one `quick`-profile model (Studyfile.example: 512 training patterns, 5 epochs,
//! batch 16, n_filters_scale 1, nphotons 1e9, idealized probe, lines object 224 / 400 / seed 7,
//! train_seed 42), trained through `science::model::train` as the `pinn` recipe does, with the
//! initial and final losses. Usage: `cargo bench --bench train_quick -- [gridsize] [epochs]`.

mod common;
use common::numeric_args;
use std::time::Instant;
use studymake_pinn::{train, TrainConfig};
use studymake_science::physics::simulate::{simulate, SimParams};
use studymake_science::physics::{object, probe};

fn main() {
    let args = numeric_args();
    let gridsize = args.first().copied().unwrap_or(1);
    let epochs = args.get(1).copied().unwrap_or(5);
    studymake_pinn::tune_allocator();
    let obj = object::lines_object(224, 400, 0.1, 7).expect("object");
    let pr = probe::default_probe(64);
    let data = simulate(&obj, &pr, &SimParams::new(512, 1e9, 42, gridsize)).expect("simulate");
    let cfg = TrainConfig {
        gridsize,
        seed: 42,
        epochs,
        batch_size: 16,
        n_filters_scale: 1,
        learning_rate: 1e-3,
        nphotons: 1e9,
    };
    let t = Instant::now();
    let (_, groups, hist) = train(&data, &cfg, &mut |line| println!("{line}")).expect("train");
    let secs = t.elapsed().as_secs_f64();
    let last = hist.epochs.last().expect("at least one epoch");
    println!(
        "quick gridsize {gridsize}: {} groups ({} training), {} epochs in {secs:.1} s \
         ({} threads); loss: initial {:.6e} (monitor set), final training {:.6e}, final \
         validation {}",
        groups.len(),
        hist.train_groups,
        hist.epochs.len(),
        candle_core::utils::get_num_threads(),
        hist.initial_loss,
        last.loss,
        last.val_loss
            .map(|v| format!("{v:.6e}"))
            .unwrap_or_else(|| "n/a".into()),
    );
}
