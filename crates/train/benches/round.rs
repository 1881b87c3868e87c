//! One boosting round of the GBM on 600k seeded synthetic rows × 24
//! features (the shape of issue 13's target, at most 20 ms on 2 cores), at
//! the default configuration of `params.yaml` (31 leaves, depth 16, 255
//! bins, a 10% early-stopping slice whose loss is computed every round).
//!
//!     cargo bench --offline --workspace --bench round --profile dev
//!
//! (The dev profile builds train at opt-level 3 already; the default bench
//! profile would first build every dependency, polars included, in release.)
//!
//! Each timed iteration is one `Booster::round`: rounds 6 to 35 of a fit,
//! as `examples/bench_round.rs` times them (that example also splits the
//! round into phases and runs on a pipeline's real data). A booster is
//! replaced, untimed, after its 35th round: hundreds of rounds into a fit
//! on this easy synthetic problem, trees stop reaching 31 leaves and a
//! round costs about a third less, which is not the round the target is
//! about.

use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use revspend_core::params::{ClassWeight, GbmConfig};
use train::gbm::Booster;

mod synthetic;

const ROWS: usize = 600_000;
/// Untimed rounds of a fresh booster: the first rounds, on gradients of
/// the prior alone, are not typical.
const WARMUP: usize = 5;
/// Timed rounds of one booster before it is replaced.
const ROUNDS: usize = 30;

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
        subsample: 1.0,
        validation_fraction: 0.1,
        patience: u32::MAX,
    };
    let fresh = || {
        let mut booster = Booster::new(&x, &y, &groups, &cfg, ClassWeight::Balanced, 11);
        for _ in 0..WARMUP {
            booster.round();
        }
        booster
    };
    let mut booster = fresh();
    let mut timed = 0;
    c.bench_function("gbm_round_600k_x24_31_leaves", |b| {
        b.iter_custom(|iters| {
            let mut spent = Duration::ZERO;
            for _ in 0..iters {
                if timed == ROUNDS {
                    booster = fresh();
                    timed = 0;
                }
                let started = Instant::now();
                let more = booster.round();
                spent += started.elapsed();
                timed += 1;
                if !more {
                    // Boosting found nothing left to split: start over
                    // rather than time rounds that do nothing.
                    booster = fresh();
                    timed = 0;
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
