//! The search spaces: the candidate configurations (scored by successive
//! halving, [`crate::halving`]) and the selection score.
//!
//! A space is a list of values per hyper-parameter; `grid` takes every
//! combination, `random` draws `draws` distinct combinations with a seeded
//! RNG (all of them when the grid is smaller). The train-wide budgets
//! (`train.n_trees`, `train.max_depth`) cap the values.

use crate::fit::sub_seed;
use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;
use revspend_core::metrics::{Curve, brier, log_loss};
use revspend_core::params::{
    Algorithm, ForestConfig, GbmConfig, ModelSpec, SelectionMetric, Strategy, TrainParams,
};

/// Every combination of list indices for lists of the given lengths, in
/// odometer order (last list fastest).
fn grid(lengths: &[usize]) -> Vec<Vec<usize>> {
    let mut out = vec![Vec::new()];
    for &len in lengths {
        out = out
            .into_iter()
            .flat_map(|prefix| {
                (0..len).map(move |i| {
                    let mut v = prefix.clone();
                    v.push(i);
                    v
                })
            })
            .collect();
    }
    out
}

/// The index combinations a space's strategy picks.
fn pick(lengths: &[usize], strategy: Strategy, draws: usize, seed: u64) -> Vec<Vec<usize>> {
    let mut all = grid(lengths);
    if strategy == Strategy::Grid || draws >= all.len() {
        return all;
    }
    // Distinct draws: a seeded shuffle of the grid, cut to `draws`, then
    // put back in grid order so the trial list reads naturally.
    let mut order: Vec<usize> = (0..all.len()).collect();
    order.shuffle(&mut ChaCha8Rng::seed_from_u64(seed));
    order.truncate(draws);
    order.sort_unstable();
    order.into_iter().map(|i| std::mem::take(&mut all[i])).collect()
}

/// The configurations to try, per algorithm in `params.algorithms` order,
/// capped by the budgets and without duplicates.
pub fn candidates(params: &TrainParams) -> Vec<ModelSpec> {
    let s = &params.search;
    let depth = |d: u16| d.min(params.max_depth);
    let trees = |n: u32| n.min(params.n_trees);
    let mut out: Vec<ModelSpec> = Vec::new();
    for (a, algorithm) in params.algorithms.iter().enumerate() {
        let seed = sub_seed(params.seed, 1000 + a as u64);
        let specs: Vec<ModelSpec> = match algorithm {
            Algorithm::Prior => vec![ModelSpec::Prior],
            Algorithm::Logistic => {
                let sp = &s.logistic;
                pick(&[sp.alpha.len()], sp.strategy, sp.draws, seed)
                    .into_iter()
                    .map(|i| ModelSpec::Logistic {
                        alpha: sp.alpha[i[0]],
                    })
                    .collect()
            }
            Algorithm::NaiveBayes => {
                let sp = &s.naive_bayes;
                pick(&[sp.var_smoothing.len()], sp.strategy, sp.draws, seed)
                    .into_iter()
                    .map(|i| ModelSpec::NaiveBayes {
                        var_smoothing: sp.var_smoothing[i[0]],
                    })
                    .collect()
            }
            Algorithm::Tree => {
                let sp = &s.tree;
                pick(
                    &[sp.max_depth.len(), sp.min_samples_leaf.len()],
                    sp.strategy,
                    sp.draws,
                    seed,
                )
                .into_iter()
                .map(|i| ModelSpec::Tree {
                    max_depth: depth(sp.max_depth[i[0]]),
                    min_samples_leaf: sp.min_samples_leaf[i[1]],
                })
                .collect()
            }
            Algorithm::Forest => {
                let sp = &s.forest;
                let lengths = [
                    sp.n_trees.len(),
                    sp.max_depth.len(),
                    sp.min_samples_leaf.len(),
                    sp.feature_fraction.len(),
                ];
                pick(&lengths, sp.strategy, sp.draws, seed)
                    .into_iter()
                    .map(|i| {
                        ModelSpec::Forest(ForestConfig {
                            n_trees: trees(sp.n_trees[i[0]]),
                            max_depth: depth(sp.max_depth[i[1]]),
                            min_samples_leaf: sp.min_samples_leaf[i[2]],
                            feature_fraction: sp.feature_fraction[i[3]],
                        })
                    })
                    .collect()
            }
            Algorithm::Gbm => {
                let sp = &s.gbm;
                let lengths = [
                    sp.learning_rate.len(),
                    sp.max_iter.len(),
                    sp.max_leaves.len(),
                    sp.max_depth.len(),
                    sp.min_samples_leaf.len(),
                    sp.l2.len(),
                    sp.max_bins.len(),
                    sp.subsample.len(),
                ];
                pick(&lengths, sp.strategy, sp.draws, seed)
                    .into_iter()
                    .map(|i| ModelSpec::Gbm(gbm_config(params, &i)))
                    .collect()
            }
        };
        for spec in specs {
            if !out.contains(&spec) {
                out.push(spec);
            }
        }
    }
    out
}

fn gbm_config(params: &TrainParams, i: &[usize]) -> GbmConfig {
    let sp = &params.search.gbm;
    GbmConfig {
        learning_rate: sp.learning_rate[i[0]],
        max_iter: sp.max_iter[i[1]].min(params.n_trees),
        max_leaves: sp.max_leaves[i[2]],
        max_depth: Some(sp.max_depth[i[3]].map_or(params.max_depth, |d| d.min(params.max_depth))),
        min_samples_leaf: sp.min_samples_leaf[i[4]],
        l2: sp.l2[i[5]],
        max_bins: sp.max_bins[i[6]],
        subsample: sp.subsample[i[7]],
        validation_fraction: sp.validation_fraction,
        patience: sp.patience,
    }
}

/// The algorithm's default configuration: the first value of each list.
pub fn default_spec(params: &TrainParams, algorithm: Algorithm) -> ModelSpec {
    let mut one = params.clone();
    one.algorithms = vec![algorithm];
    let s = &mut one.search;
    s.logistic.strategy = Strategy::Grid;
    s.logistic.alpha.truncate(1);
    s.naive_bayes.strategy = Strategy::Grid;
    s.naive_bayes.var_smoothing.truncate(1);
    s.tree.strategy = Strategy::Grid;
    s.tree.max_depth.truncate(1);
    s.tree.min_samples_leaf.truncate(1);
    s.forest.strategy = Strategy::Grid;
    s.forest.n_trees.truncate(1);
    s.forest.max_depth.truncate(1);
    s.forest.min_samples_leaf.truncate(1);
    s.forest.feature_fraction.truncate(1);
    if algorithm == Algorithm::Gbm {
        return ModelSpec::Gbm(gbm_config(&one, &[0; 8]));
    }
    candidates(&one).into_iter().next().unwrap_or(ModelSpec::Prior)
}

/// Score of probabilities against labels by the selection metric.
pub fn score(metric: SelectionMetric, scores: &[f64], y: &[bool]) -> f64 {
    match metric {
        SelectionMetric::PrAuc => Curve::new(scores, y).average_precision(),
        SelectionMetric::RocAuc => Curve::new(scores, y).roc_auc(),
        SelectionMetric::Brier => brier(scores, y),
        SelectionMetric::LogLoss => log_loss(scores, y),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grid_is_every_combination() {
        assert_eq!(grid(&[2, 3]).len(), 6);
        assert_eq!(grid(&[2, 3])[1], vec![0, 1]);
    }

    #[test]
    fn random_draws_are_distinct_seeded_and_capped() {
        let a = pick(&[3, 3, 2], Strategy::Random, 5, 42);
        assert_eq!(a.len(), 5);
        assert_eq!(a, pick(&[3, 3, 2], Strategy::Random, 5, 42));
        let mut d = a.clone();
        d.dedup();
        assert_eq!(d.len(), 5);
        assert_ne!(a, pick(&[3, 3, 2], Strategy::Random, 5, 43));
        assert_eq!(pick(&[2], Strategy::Random, 9, 1).len(), 2);
    }
}
