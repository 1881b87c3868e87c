//! Seeded synthetic data: a learnable, imbalanced, customer-grouped problem.

use rand::RngExt;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use revspend_core::model::FeatureMatrix;

/// Rows, labels and groups.
pub struct Problem {
    pub x: FeatureMatrix,
    pub y: Vec<bool>,
    pub groups: Vec<u64>,
}

impl Problem {
    pub fn data(&self) -> train::fit::Data<'_> {
        train::fit::Data {
            x: &self.x,
            y: &self.y,
            groups: &self.groups,
        }
    }
}

/// `n` rows of 4 features; the log-odds are `3·x0 − 2·x1 + 2·[x2 > 0.5] − 3`
/// (x3 is noise), so about 15% are positive; 20 rows per group.
pub fn problem(n: usize, seed: u64) -> Problem {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut values = Vec::with_capacity(n * 4);
    let mut y = Vec::with_capacity(n);
    for _ in 0..n {
        let v: [f64; 4] = std::array::from_fn(|_| rng.random_range(0.0..1.0));
        let z = 3.0 * v[0] - 2.0 * v[1] + 2.0 * f64::from(u8::from(v[2] > 0.5)) - 3.0;
        let p = 1.0 / (1.0 + (-z).exp());
        y.push(rng.random_range(0.0..1.0) < p);
        values.extend(v);
    }
    Problem {
        x: FeatureMatrix::new(n, 4, values),
        y,
        groups: (0..n as u64).map(|r| r / 20).collect(),
    }
}
