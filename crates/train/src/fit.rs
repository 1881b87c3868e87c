//! Fitting one configuration ([`ModelSpec`]) of any candidate algorithm.
//!
//! Class weighting where the algorithm allows: boosting takes sample weights;
//! logistic regression and the single tree (smartcore takes no weights) are
//! fitted on a class-balanced resample (positives repeated to match the
//! negatives); forest trees each draw a class-balanced bootstrap. Naive
//! Bayes uses equal class priors (its parameters are computed here, see
//! [`fit_naive_bayes`]). The prior baseline is never weighted.

use anyhow::{Context, Result, anyhow, bail};
use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand::{Rng, RngExt};
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;
use revspend_core::model::{BaggedTree, Classifier, FeatureMatrix, Logistic, NaiveBayes};
use revspend_core::params::{ClassWeight, ForestConfig, ModelSpec};
use smartcore::linalg::basic::arrays::Array;
use smartcore::linalg::basic::matrix::DenseMatrix;
use smartcore::linear::logistic_regression::{LogisticRegression, LogisticRegressionParameters};

use crate::{cart, gbm};

/// Rows to fit on: features, labels and the group (customer) of each row.
#[derive(Debug, Clone, Copy)]
pub struct Data<'a> {
    pub x: &'a FeatureMatrix,
    pub y: &'a [bool],
    pub groups: &'a [u64],
}

impl Data<'_> {
    fn positives(&self) -> usize {
        self.y.iter().filter(|v| **v).count()
    }
}

/// A SplitMix64 step away from `seed`: independent sub-seeds for trees,
/// folds and algorithms, whatever order they are computed in.
pub fn sub_seed(seed: u64, k: u64) -> u64 {
    let mut z = seed.wrapping_add(k.wrapping_add(1).wrapping_mul(0x9E37_79B9_7F4A_7C15));
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Fits `spec` on `data`. Runs on the current rayon pool.
pub fn fit(spec: &ModelSpec, data: Data<'_>, class_weight: ClassWeight, seed: u64) -> Result<Classifier> {
    let n = data.y.len();
    let positives = data.positives();
    if n == 0 {
        bail!("no rows to fit on");
    }
    let balanced = class_weight == ClassWeight::Balanced && positives > 0 && positives < n;
    Ok(match spec {
        ModelSpec::Prior => Classifier::Prior {
            probability: positives as f64 / n as f64,
        },
        ModelSpec::Logistic { alpha } => Classifier::Logistic(fit_logistic(data, *alpha, balanced)?),
        ModelSpec::NaiveBayes { var_smoothing } => {
            Classifier::NaiveBayes(fit_naive_bayes(data, *var_smoothing, balanced)?)
        }
        ModelSpec::Tree {
            max_depth,
            min_samples_leaf,
        } => {
            let rows = if balanced {
                balanced_resample(data.y)
            } else {
                (0..n).collect()
            };
            let cols: Vec<usize> = (0..data.x.cols).collect();
            let labels: Vec<u32> = rows.iter().map(|&r| u32::from(data.y[r])).collect();
            let growth = cart::Growth {
                max_depth: *max_depth,
                min_samples_leaf: *min_samples_leaf,
                seed,
            };
            let tree = cart::fit(data.x, &rows, &cols, &labels, growth)?;
            Classifier::Tree { tree }
        }
        ModelSpec::Forest(cfg) => Classifier::Forest {
            trees: fit_forest(data, cfg, balanced, seed)?,
        },
        ModelSpec::Gbm(cfg) => {
            let (model, stats) = gbm::fit(data.x, data.y, data.groups, cfg, class_weight, seed);
            log::debug!(
                "gbm: {} rounds, validation loss {:?}",
                stats.rounds,
                stats.best_validation_loss
            );
            Classifier::Gbm(model)
        }
    })
}

/// Rows per chunk of a parallel prediction.
const PREDICT_ROWS: usize = 8_192;

/// The classifier's probabilities for every row of `x`, chunks of rows in
/// parallel on the current pool (each row's probability depends on that row
/// alone, so the result does not depend on the thread count).
pub fn predict(model: &Classifier, x: &FeatureMatrix) -> Result<Vec<f64>> {
    let cols = x.cols;
    if x.rows <= PREDICT_ROWS || cols == 0 {
        return Ok(model.predict_proba(x, cols)?);
    }
    let parts: Vec<Vec<f64>> = x
        .values
        .par_chunks(PREDICT_ROWS * cols)
        .map(|chunk| {
            model.predict_proba(
                &FeatureMatrix::new(chunk.len() / cols, cols, chunk.to_vec()),
                cols,
            )
        })
        .collect::<Result<_, _>>()?;
    Ok(parts.concat())
}

/// Every row once, plus the positives repeated so both classes weigh about
/// the same (deterministic: no sampling noise in a single model).
fn balanced_resample(y: &[bool]) -> Vec<usize> {
    let positives = y.iter().filter(|v| **v).count();
    let negatives = y.len() - positives;
    let copies = (negatives as f64 / positives.max(1) as f64).round().max(1.0) as usize;
    let mut rows = Vec::with_capacity(negatives + positives * copies);
    for (r, &label) in y.iter().enumerate() {
        let k = if label { copies } else { 1 };
        rows.extend(std::iter::repeat_n(r, k));
    }
    rows
}

/// Column means and standard deviations (1 for a constant column).
fn standardisation(x: &FeatureMatrix) -> (Vec<f64>, Vec<f64>) {
    let n = x.rows.max(1) as f64;
    let mut mean = vec![0f64; x.cols];
    for r in 0..x.rows {
        for (m, v) in mean.iter_mut().zip(x.row(r)) {
            *m += v;
        }
    }
    mean.iter_mut().for_each(|m| *m /= n);
    let mut var = vec![0f64; x.cols];
    for r in 0..x.rows {
        for ((s, v), m) in var.iter_mut().zip(x.row(r)).zip(&mean) {
            *s += (v - m).powi(2);
        }
    }
    let scale = var
        .into_iter()
        .map(|s| {
            let sd = (s / n).sqrt();
            if sd > 1e-12 { sd } else { 1.0 }
        })
        .collect();
    (mean, scale)
}

fn fit_logistic(data: Data<'_>, alpha: f64, balanced: bool) -> Result<Logistic> {
    let (mean, scale) = standardisation(data.x);
    let rows = if balanced {
        balanced_resample(data.y)
    } else {
        (0..data.y.len()).collect()
    };
    let p = data.x.cols;
    let mut values = Vec::with_capacity(rows.len() * p);
    for &r in &rows {
        values.extend(
            data.x
                .row(r)
                .iter()
                .zip(&mean)
                .zip(&scale)
                .map(|((v, m), s)| (v - m) / s),
        );
    }
    let z = DenseMatrix::new(rows.len(), p, values, false).map_err(|e| anyhow!("{e}"))?;
    let labels: Vec<u32> = rows.iter().map(|&r| u32::from(data.y[r])).collect();
    let model = LogisticRegression::fit(
        &z,
        &labels,
        LogisticRegressionParameters::default().with_alpha(alpha),
    )
    .map_err(|e| anyhow!("{e}"))
    .context("fitting logistic regression")?;
    let coefficients: Vec<f64> = (0..p).map(|j| *model.coefficients().get((0, j))).collect();
    let intercept = *model.intercept().get((0, 0));
    Ok(Logistic {
        mean,
        scale,
        coefficients,
        intercept,
    })
}

/// Gaussian naive Bayes: per-class priors, means and (population)
/// variances, as smartcore's `GaussianNB` estimates them, computed here in
/// one pass: smartcore's fit took 30 s on 15k rows × 24 features (it
/// copies the data per class and feature), and adds no variance floor,
/// while a feature constant within a class (all positives are non-vital
/// purchases) needs one. Smoothing as scikit-learn's `var_smoothing`.
fn fit_naive_bayes(data: Data<'_>, var_smoothing: f64, balanced: bool) -> Result<NaiveBayes> {
    let p = data.x.cols;
    let mut count = [0f64; 2];
    let mut sum = [vec![0f64; p], vec![0f64; p]];
    for r in 0..data.x.rows {
        let c = usize::from(data.y[r]);
        count[c] += 1.0;
        for (s, v) in sum[c].iter_mut().zip(data.x.row(r)) {
            *s += v;
        }
    }
    if count[0] == 0.0 || count[1] == 0.0 {
        bail!("naive Bayes needs both classes");
    }
    let means = [0, 1].map(|c| sum[c].iter().map(|s| s / count[c]).collect::<Vec<f64>>());
    let mut sq = [vec![0f64; p], vec![0f64; p]];
    for r in 0..data.x.rows {
        let c = usize::from(data.y[r]);
        for ((s, v), m) in sq[c].iter_mut().zip(data.x.row(r)).zip(&means[c]) {
            *s += (v - m).powi(2);
        }
    }
    let (_, scale) = standardisation(data.x);
    let max_var = scale.iter().map(|s| s * s).fold(0f64, f64::max);
    let eps = var_smoothing * max_var.max(1e-12);
    let variances = [0, 1].map(|c| sq[c].iter().map(|s| s / count[c] + eps).collect::<Vec<f64>>());
    let n = count[0] + count[1];
    let priors = if balanced {
        [0.5, 0.5]
    } else {
        [count[0] / n, count[1] / n]
    };
    Ok(NaiveBayes {
        priors,
        means,
        variances,
    })
}

/// Fits the forest; tree `t` depends only on the data, the config and `t`,
/// so the result does not depend on the thread count.
fn fit_forest(data: Data<'_>, cfg: &ForestConfig, balanced: bool, seed: u64) -> Result<Vec<BaggedTree>> {
    let (pos, neg): (Vec<usize>, Vec<usize>) = (0..data.y.len()).partition(|&i| data.y[i]);
    if pos.is_empty() || neg.is_empty() {
        bail!("a forest needs both classes");
    }
    (0..cfg.n_trees as u64)
        .into_par_iter()
        .map(|t| {
            fit_bagged_tree(data, &pos, &neg, cfg, balanced, sub_seed(seed, t))
                .with_context(|| format!("fitting tree {t}"))
        })
        .collect()
}

/// Draws `k` of `from` with replacement.
fn resample(rng: &mut impl Rng, from: &[usize], k: usize, out: &mut Vec<usize>) {
    out.extend((0..k).map(|_| from[rng.random_range(0..from.len())]));
}

fn fit_bagged_tree(
    data: Data<'_>,
    pos: &[usize],
    neg: &[usize],
    cfg: &ForestConfig,
    balanced: bool,
    seed: u64,
) -> Result<BaggedTree> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    // Stratified bootstrap (each class keeps its share, so every tree sees
    // both classes), or class-balanced: half the draws from each class.
    let n = pos.len() + neg.len();
    let (k_pos, k_neg) = if balanced {
        (n / 2, n - n / 2)
    } else {
        (pos.len(), neg.len())
    };
    let mut rows = Vec::with_capacity(n);
    resample(&mut rng, pos, k_pos.max(1), &mut rows);
    resample(&mut rng, neg, k_neg.max(1), &mut rows);
    rows.sort_unstable();

    let x = data.x;
    let mut columns: Vec<usize> = (0..x.cols).collect();
    columns.shuffle(&mut rng);
    let k = ((x.cols as f64 * cfg.feature_fraction).round() as usize).clamp(1, x.cols);
    columns.truncate(k);
    columns.sort_unstable();

    let labels: Vec<u32> = rows.iter().map(|&r| u32::from(data.y[r])).collect();
    let growth = cart::Growth {
        max_depth: cfg.max_depth,
        min_samples_leaf: cfg.min_samples_leaf,
        seed,
    };
    let tree = cart::fit(x, &rows, &columns, &labels, growth)?;
    Ok(BaggedTree { columns, tree })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn balanced_resample_evens_the_classes() {
        let y = [true, false, false, false, false, false, false];
        let rows = balanced_resample(&y);
        let pos = rows.iter().filter(|&&r| y[r]).count();
        assert_eq!(pos, 6);
        assert_eq!(rows.len(), 12);
    }
}
