//! The learning curve: a model's configuration refitted on growing shares
//! of the train split's customers, to show whether more data would help.
//!
//! Each share is a seeded sample of whole customers, stratified by whether
//! a customer has a positive purchase ([`cv::GroupSampler`]); the samples
//! are nested (a larger share keeps the smaller one's customers), so the
//! curve moves by adding customers, not by drawing new ones. Each sample is
//! cut into customer-grouped, stratified folds; every fold's fit is scored
//! by the selection metric on its own training rows and on the held-out
//! fold. The fits are the search's ([`crate::halving`]): boosting on the
//! train split's bins with its own early stopping, the other algorithms
//! through [`fit::fit`], with the model's class weighting.
//!
//! Every (share, fold) fit runs in parallel on the current rayon pool and
//! depends only on its rows, the configuration and its seed: the scores do
//! not depend on the thread count. Fit times are wall times (fits run side
//! by side) and are the only part that changes between runs.

use std::time::Instant;

use anyhow::{Context, Result, bail};
use rayon::prelude::*;
use revspend_core::model::{Classifier, ModelArtifact};
use revspend_core::params::{ClassWeight, ModelSpec, SelectionMetric};
use serde::Serialize;

use crate::cv;
use crate::fit::{self, Data, sub_seed};
use crate::gbm::{self, Bins};
use crate::search::score;

/// What is refitted: a model's configuration, its class weighting and the
/// metric its search selected by.
#[derive(Debug, Clone, PartialEq)]
pub struct Chosen {
    pub spec: ModelSpec,
    pub class_weight: ClassWeight,
    pub metric: SelectionMetric,
}

impl Chosen {
    /// The configuration a model artifact was trained with: its algorithm
    /// and hyper-parameters (as `ModelSpec::params_json` wrote them) and,
    /// from its train params, the class weighting and selection metric.
    pub fn from_model(model: &ModelArtifact) -> Result<Chosen> {
        let spec = spec_from_json(&model.algorithm, &model.hyperparameters)
            .with_context(|| format!("model {}", model.model_version))?;
        let params: serde_json::Value = serde_json::from_str(&model.train_params)
            .with_context(|| format!("model {}: its train params are not JSON", model.model_version))?;
        let field = |name: &str, value: &serde_json::Value| -> Result<serde_json::Value> {
            if value.is_null() {
                bail!("model {}: its train params have no `{name}`", model.model_version);
            }
            Ok(value.clone())
        };
        let class_weight = serde_json::from_value(field("class_weight", &params["class_weight"])?)
            .with_context(|| format!("model {}: reading train.class_weight", model.model_version))?;
        let metric = serde_json::from_value(field("cv.metric", &params["cv"]["metric"])?)
            .with_context(|| format!("model {}: reading train.cv.metric", model.model_version))?;
        Ok(Chosen {
            spec,
            class_weight,
            metric,
        })
    }
}

/// The configuration named by an algorithm and its hyper-parameters as
/// `ModelSpec::params_json` wrote them (`{}` for the prior).
pub fn spec_from_json(algorithm: &str, hyperparameters: &str) -> Result<ModelSpec> {
    let fail = || {
        format!(
            "cannot rebuild the configuration of algorithm `{algorithm}` from its hyper-parameters \
             {hyperparameters}"
        )
    };
    let params: serde_json::Value = serde_json::from_str(hyperparameters).with_context(fail)?;
    if algorithm == "prior" {
        return Ok(ModelSpec::Prior);
    }
    // ModelSpec is externally tagged: `{"<algorithm>": {<hyper-parameters>}}`.
    let tagged = serde_json::json!({ algorithm: params });
    serde_json::from_value(tagged).with_context(fail)
}

/// One share's sample of the train split and its folds.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    pub share: f64,
    /// Rows of the sample (indices into the train split), ascending.
    pub rows: Vec<usize>,
    /// The fold (0..k) of each row of `rows`.
    pub fold: Vec<usize>,
}

/// The nested, stratified customer samples of `shares` and their grouped
/// folds. The folds of every share are drawn with the same seed.
pub fn samples(groups: &[u64], y: &[bool], shares: &[f64], folds: usize, seed: u64) -> Vec<Sample> {
    let sampler = cv::GroupSampler::new(groups, y, seed);
    shares
        .iter()
        .map(|&share| {
            let rows = sampler.customer_share(share);
            let sg: Vec<u64> = rows.iter().map(|&r| groups[r]).collect();
            let sy: Vec<bool> = rows.iter().map(|&r| y[r]).collect();
            let fold = cv::grouped_stratified_folds(&sg, &sy, folds, sub_seed(seed, 7));
            Sample { share, rows, fold }
        })
        .collect()
}

/// Mean and (population) standard deviation of a share's fold values.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Spread {
    pub mean: f64,
    pub std: f64,
}

impl Spread {
    fn of(values: &[f64]) -> Spread {
        let n = values.len().max(1) as f64;
        let mean = values.iter().sum::<f64>() / n;
        let std = (values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / n).sqrt();
        Spread { mean, std }
    }
}

/// One point of the curve: a share's sample and its folds' scores.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Point {
    pub share: f64,
    /// Customers, rows and positive rows of the share's sample.
    pub customers: usize,
    pub rows: usize,
    pub positives: usize,
    /// Rows each fit trained on (the sample less its held-out fold), mean
    /// over the folds: the curve's x axis.
    pub fit_rows: f64,
    /// The selection metric on the folds' own training rows.
    pub train_mean: f64,
    pub train_std: f64,
    /// The selection metric on the held-out folds.
    pub validation_mean: f64,
    pub validation_std: f64,
    /// Wall time of the folds' fits: not deterministic, so it stays out of
    /// what serialises (the reports are identical across reruns).
    #[serde(skip)]
    pub fit_seconds: Spread,
}

/// What one fold's fit scored.
struct FoldResult {
    fit_rows: usize,
    train: f64,
    validation: f64,
    seconds: f64,
}

/// The learning curve of `chosen` on the train split `data`: one point per
/// share (strictly increasing shares in (0, 1]), each from `folds`
/// customer-grouped folds. Runs on the current rayon pool.
pub fn curve(chosen: &Chosen, data: Data<'_>, shares: &[f64], folds: usize, seed: u64) -> Result<Vec<Point>> {
    if folds < 2 {
        bail!("a learning curve needs at least 2 folds, not {folds}");
    }
    let plan = samples(data.groups, data.y, shares, folds, seed);
    // Boosting splits at the whole train split's bin edges, as the search
    // and the refit do.
    let bins = match &chosen.spec {
        ModelSpec::Gbm(cfg) => Some(Bins::new(data.x, cfg.max_bins)),
        _ => None,
    };
    let jobs: Vec<(usize, usize)> = (0..plan.len())
        .flat_map(|s| (0..folds).map(move |f| (s, f)))
        .collect();
    let results: Vec<FoldResult> = jobs
        .par_iter()
        .map(|&(s, f)| {
            fit_fold(chosen, data, bins.as_ref(), &plan[s], f, sub_seed(seed, f as u64)).with_context(|| {
                format!(
                    "learning curve: share {} ({} rows), fold {f}",
                    plan[s].share,
                    plan[s].rows.len()
                )
            })
        })
        .collect::<Result<_>>()?;
    Ok(plan
        .iter()
        .zip(results.chunks(folds))
        .map(|(sample, fits)| {
            let spread =
                |value: fn(&FoldResult) -> f64| Spread::of(&fits.iter().map(value).collect::<Vec<_>>());
            let (train, validation) = (spread(|r| r.train), spread(|r| r.validation));
            Point {
                share: sample.share,
                customers: crate::halving::distinct(
                    &sample.rows.iter().map(|&r| data.groups[r]).collect::<Vec<_>>(),
                ),
                rows: sample.rows.len(),
                positives: sample.rows.iter().filter(|&&r| data.y[r]).count(),
                fit_rows: spread(|r| r.fit_rows as f64).mean,
                train_mean: train.mean,
                train_std: train.std,
                validation_mean: validation.mean,
                validation_std: validation.std,
                fit_seconds: spread(|r| r.seconds),
            }
        })
        .collect())
}

/// Fits fold `f` of `sample` on its other folds and scores both sides.
fn fit_fold(
    chosen: &Chosen,
    data: Data<'_>,
    bins: Option<&Bins>,
    sample: &Sample,
    f: usize,
    seed: u64,
) -> Result<FoldResult> {
    let (mut train_rows, mut validation_rows) = (Vec::new(), Vec::new());
    for (&r, &fold) in sample.rows.iter().zip(&sample.fold) {
        if fold == f {
            validation_rows.push(r);
        } else {
            train_rows.push(r);
        }
    }
    let y_train: Vec<bool> = train_rows.iter().map(|&r| data.y[r]).collect();
    let y_validation: Vec<bool> = validation_rows.iter().map(|&r| data.y[r]).collect();
    for (side, y) in [("training", &y_train), ("held-out", &y_validation)] {
        let positives = y.iter().filter(|v| **v).count();
        if positives == 0 || positives == y.len() {
            bail!(
                "the fold's {side} rows ({}) have {positives} positives: both classes are needed; \
                 raise the smallest share or lower the folds",
                y.len()
            );
        }
    }
    let groups_train: Vec<u64> = train_rows.iter().map(|&r| data.groups[r]).collect();
    let x_train = data.x.select_rows(&train_rows);
    let started = Instant::now();
    let model = match (&chosen.spec, bins) {
        (ModelSpec::Gbm(cfg), Some(bins)) => {
            let (model, _) = gbm::fit_binned(
                bins.select(&train_rows),
                &y_train,
                &groups_train,
                cfg,
                chosen.class_weight,
                seed,
            );
            Classifier::Gbm(model)
        }
        (spec, _) => {
            let rows = Data {
                x: &x_train,
                y: &y_train,
                groups: &groups_train,
            };
            fit::fit(spec, rows, chosen.class_weight, seed)?
        }
    };
    let seconds = started.elapsed().as_secs_f64();
    let on_train = fit::predict(&model, &x_train)?;
    let on_validation = fit::predict(&model, &data.x.select_rows(&validation_rows))?;
    Ok(FoldResult {
        fit_rows: train_rows.len(),
        train: score(chosen.metric, &on_train, &y_train),
        validation: score(chosen.metric, &on_validation, &y_validation),
        seconds,
    })
}

#[cfg(test)]
mod tests {
    use std::collections::{HashMap, HashSet};

    use super::*;

    /// 400 customers of 1 to 12 rows, a quarter of them with positives.
    fn split() -> (Vec<u64>, Vec<bool>) {
        let (mut groups, mut y) = (Vec::new(), Vec::new());
        for g in 0..400u64 {
            for k in 0..1 + (g * 5 % 12) {
                groups.push(g);
                y.push(g % 4 == 0 && k % 3 == 0);
            }
        }
        (groups, y)
    }

    fn customers(groups: &[u64], rows: &[usize]) -> HashSet<u64> {
        rows.iter().map(|&r| groups[r]).collect()
    }

    #[test]
    fn larger_shares_contain_the_smaller_samples() {
        let (groups, y) = split();
        let plan = samples(&groups, &y, &[0.1, 0.25, 0.5, 0.75, 1.0], 3, 11);
        for pair in plan.windows(2) {
            let (small, large) = (
                customers(&groups, &pair[0].rows),
                customers(&groups, &pair[1].rows),
            );
            assert!(
                small.is_subset(&large),
                "share {} leaves out customers of share {}",
                pair[1].share,
                pair[0].share
            );
            assert!(small.len() < large.len());
        }
        // Each share is about its share of the customers, of both strata.
        for sample in &plan {
            let with_positives: HashSet<u64> = sample
                .rows
                .iter()
                .filter(|&&r| y[r])
                .map(|&r| groups[r])
                .collect();
            let n = customers(&groups, &sample.rows).len() as f64;
            assert!(
                (n - 400.0 * sample.share).abs() <= 1.0,
                "share {}: {n} customers",
                sample.share
            );
            assert!((with_positives.len() as f64 - 100.0 * sample.share).abs() <= 1.0);
        }
        assert_eq!(plan[4].rows, (0..y.len()).collect::<Vec<_>>());
        // Seeded: the same plan again, another with another seed.
        assert_eq!(plan, samples(&groups, &y, &[0.1, 0.25, 0.5, 0.75, 1.0], 3, 11));
        assert_ne!(plan[0].rows, samples(&groups, &y, &[0.1], 3, 12)[0].rows);
    }

    #[test]
    fn folds_keep_customers_whole_and_hold_positives() {
        let (groups, y) = split();
        for sample in samples(&groups, &y, &[0.25, 1.0], 4, 3) {
            let mut fold_of: HashMap<u64, usize> = HashMap::new();
            let mut positives = [0usize; 4];
            for (&r, &f) in sample.rows.iter().zip(&sample.fold) {
                assert_eq!(
                    *fold_of.entry(groups[r]).or_insert(f),
                    f,
                    "customer {} in two folds",
                    groups[r]
                );
                positives[f] += usize::from(y[r]);
            }
            assert!(
                positives.iter().all(|&p| p > 0),
                "share {}: {positives:?}",
                sample.share
            );
        }
    }

    #[test]
    fn a_configuration_is_rebuilt_from_its_json_or_refused() {
        let gbm = ModelSpec::Gbm(revspend_core::params::GbmConfig {
            learning_rate: 0.1,
            max_iter: 200,
            max_leaves: 31,
            max_depth: None,
            min_samples_leaf: 20,
            l2: 0.0,
            max_bins: 255,
            subsample: 0.8,
            validation_fraction: 0.1,
            patience: 10,
        });
        for spec in [
            gbm,
            ModelSpec::Prior,
            ModelSpec::Logistic { alpha: 0.5 },
            ModelSpec::Tree {
                max_depth: 6,
                min_samples_leaf: 5,
            },
        ] {
            let json = spec.params_json().to_string();
            let back = spec_from_json(spec.algorithm().name(), &json).expect("rebuilt");
            assert_eq!(back, spec);
        }
        let err = spec_from_json("logistic", r#"{"depth":3}"#).expect_err("no alpha");
        assert!(format!("{err:#}").contains("`logistic`"), "{err:#}");
        assert!(spec_from_json("svm", "{}").is_err());
    }
}
