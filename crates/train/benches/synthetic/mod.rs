//! Seeded synthetic rows shaped like the pipeline's, shared by the `round`
//! benchmark and the `bench_round` example (which includes this file by
//! path: a test-only generator has no place in the library's API). Kept in
//! a directory so that Cargo does not take it for a benchmark of its own.

use rand::RngExt;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use revspend_core::model::FeatureMatrix;

/// `n` rows of 24 features shaped like the pipeline's: continuous,
/// small-integer and binary columns, about 10% positives, 150 rows per group.
pub fn synthetic(n: usize, seed: u64) -> (FeatureMatrix, Vec<bool>, Vec<u64>) {
    const P: usize = 24;
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut values = Vec::with_capacity(n * P);
    let mut y = Vec::with_capacity(n);
    for _ in 0..n {
        let row: [f64; P] = std::array::from_fn(|f| {
            let u: f64 = rng.random_range(0.0..1.0);
            match f % 4 {
                0 => u,
                1 => (u * 30.0).floor(),
                2 => f64::from(u8::from(u < 0.3)),
                _ => (u * 1e4).ln(),
            }
        });
        let z = 3.0 * row[0] - 2.0 * row[4] + 1.5 * row[2] + 0.1 * row[1] - 0.05 * row[5] - 3.5
            + 0.4 * (row[3] - 7.0);
        let p = 1.0 / (1.0 + (-z).exp());
        y.push(rng.random_range(0.0..1.0) < p);
        values.extend(row);
    }
    let groups = (0..n as u64).map(|r| r / 150).collect();
    (FeatureMatrix::new(n, P, values), y, groups)
}
