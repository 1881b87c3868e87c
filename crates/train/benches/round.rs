//! One boosting round of the GBM on 600k seeded synthetic rows × 24
//! features (the shape of issue 13's target, at most 20 ms on 2 cores), at
//! the default configuration of `params.yaml` (31 leaves, depth 16, 255
//! bins, a 10% early-stopping slice whose loss is computed every round).
//!
//!     cargo bench --offline --workspace --bench round
//!
//! Each timed iteration is one `Booster::round` of a booster that keeps
//! boosting (rounds never run out, early stopping never fires), so the
//! figure is a steady-state round after criterion's warm-up rounds, not a
//! first round on constant gradients. `examples/bench_round.rs` splits the
//! same round into phases and also runs on a pipeline's real data.

use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use revspend_core::params::{ClassWeight, GbmConfig};
use train::gbm::Booster;

mod synthetic;

const ROWS: usize = 600_000;

fn round(c: &mut Criterion) {
    let (x, y, groups) = synthetic::synthetic(ROWS, 7);
    let cfg = GbmConfig {
        learning_rate: 0.2,
        max_iter: u32::MAX,
        max_leaves: 31,
        max_depth: Some(16),
        min_samples_leaf: 20,
        l2: 0.0,
        max_bins: 255,
        validation_fraction: 0.1,
        patience: u32::MAX,
    };
    let new = || Booster::new(&x, &y, &groups, &cfg, ClassWeight::Balanced, 11);
    let mut booster = new();
    c.bench_function("gbm_round_600k_x24_31_leaves", |b| {
        b.iter_custom(|iters| {
            let mut spent = Duration::ZERO;
            for _ in 0..iters {
                let started = Instant::now();
                let more = booster.round();
                spent += started.elapsed();
                if !more {
                    // Boosting found nothing left to split: start over
                    // (untimed) rather than time no-op rounds.
                    booster = new();
                }
            }
            spent
        });
    });
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .sample_size(20)
        .warm_up_time(Duration::from_secs(2))
        .measurement_time(Duration::from_secs(6));
    targets = round
}
criterion_main!(benches);
