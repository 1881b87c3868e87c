//! `train`: fits the revenge-spending model and writes the model artifact.
//!
//! Reads the train and test split tables and the feature list written by
//! `build-features`, fits a random forest of smartcore CART trees on the
//! train split (grown in parallel, each on a stratified bootstrap and a
//! random feature subset, with its own seed so the result does not depend on
//! the thread count), picks the decision threshold on the test split and
//! writes the enveloped model artifact and a JSON training report.

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use anyhow::{Context, Result, bail};
use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand::{Rng, RngExt};
use rand_chacha::ChaCha8Rng;
use revspend_core::artifact::{self, FeatureList, LabelledRows};
use revspend_core::metrics::{BinaryMetrics, Curve};
use revspend_core::model::{BaggedTree, Classifier, FeatureMatrix, ModelArtifact, Tree};
use revspend_core::params::{Checked, TrainParams};
use serde::Serialize;
use smartcore::tree::decision_tree_classifier::{DecisionTreeClassifierParameters, SplitCriterion};

/// What the stage reads.
#[derive(Debug, Clone)]
pub struct Inputs {
    pub train: PathBuf,
    pub test: PathBuf,
    pub feature_list: PathBuf,
}

/// What the stage writes.
#[derive(Debug, Clone)]
pub struct Outputs {
    pub model: PathBuf,
    pub report: PathBuf,
}

/// The training report: deterministic for fixed params and data (timings
/// are logged, not written, so a rerun leaves identical files).
#[derive(Debug, Clone, Serialize)]
pub struct TrainReport {
    pub model_version: String,
    pub algorithm: String,
    pub features: Vec<String>,
    pub train_rows: u64,
    pub train_positives: u64,
    pub training_prior: f64,
    pub test_rows: u64,
    pub threshold: f64,
    pub threshold_source: &'static str,
    pub test_metrics: BinaryMetrics,
    pub params_hash: String,
    pub data_hash: String,
}

/// Runs the stage with `threads` worker threads for tree fitting.
pub fn run(
    params: &Checked<TrainParams>,
    inputs: &Inputs,
    outputs: &Outputs,
    threads: usize,
) -> Result<TrainReport> {
    let list: FeatureList = artifact::read_json(&inputs.feature_list).context("reading the feature list")?;
    let features = list.resolve(&inputs.feature_list)?;
    let train = artifact::read_labelled(&inputs.train, &features).context("reading the train split")?;
    let test = artifact::read_labelled(&inputs.test, &features).context("reading the test split")?;
    let positives = train.y.iter().filter(|y| **y).count();
    if positives == 0 || positives == train.y.len() {
        bail!(
            "{}: the train split has {positives} positive rows out of {}; both classes are needed",
            inputs.train.display(),
            train.y.len()
        );
    }
    let training_prior = positives as f64 / train.y.len() as f64;

    let started = std::time::Instant::now();
    let trees = fit_forest(&train, params, threads)?;
    log::info!(
        "fitted {} trees on {} rows x {} features with {threads} threads in {:.2?}",
        trees.len(),
        train.y.len(),
        features.len(),
        started.elapsed()
    );
    let classifier = Classifier::Forest { trees };
    let test_scores = classifier.predict_proba(&test.x, features.len())?;
    let (threshold, threshold_source) = match params.decision_threshold {
        Some(t) => (t, "params"),
        None => (
            Curve::new(&test_scores, &test.y)
                .best_f1_threshold()
                .map_or(0.5, |(t, _)| t),
            "max F1 on the test split",
        ),
    };
    let test_metrics = BinaryMetrics::compute(&test_scores, &test.y, threshold);

    let params_json = serde_json::to_vec(&**params).context("serialising train params")?;
    let params_hash = artifact::sha256_hex(&params_json);
    let data_hash = artifact::file_sha256(&inputs.train)?;
    let lineage = format!("{params_hash}{data_hash}{}", list.features.join(","));
    let model_version = format!("forest-{}", &artifact::sha256_hex(lineage.as_bytes())[..12]);
    let model = ModelArtifact {
        model_version: model_version.clone(),
        algorithm: "random_forest".into(),
        features,
        rule: list.rule.clone(),
        classifier,
        threshold,
        training_prior,
        train_params: (**params).clone(),
        params_hash: params_hash.clone(),
        data_hash: data_hash.clone(),
        test_metrics: test_metrics.clone(),
        written_by: concat!("revspend-core ", env!("CARGO_PKG_VERSION")).into(),
    };
    artifact::write_model(&outputs.model, &model).context("writing the model")?;
    let report = TrainReport {
        model_version,
        algorithm: model.algorithm.clone(),
        features: list.features.clone(),
        train_rows: train.y.len() as u64,
        train_positives: positives as u64,
        training_prior,
        test_rows: test.y.len() as u64,
        threshold,
        threshold_source,
        test_metrics,
        params_hash,
        data_hash,
    };
    artifact::write_json(&outputs.report, &report)?;
    Ok(report)
}

/// Seed of tree `t`: a SplitMix64 step away from the run seed, so trees are
/// independent of each other and of the order threads pick them up in.
fn tree_seed(seed: u64, t: u64) -> u64 {
    let mut z = seed.wrapping_add(t.wrapping_add(1).wrapping_mul(0x9E37_79B9_7F4A_7C15));
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Fits the forest; tree `t` depends only on the data, params and `t`.
pub fn fit_forest(data: &LabelledRows, params: &TrainParams, threads: usize) -> Result<Vec<BaggedTree>> {
    let n = params.n_trees as usize;
    let next = AtomicUsize::new(0);
    let slots: Mutex<Vec<Option<Result<BaggedTree>>>> = Mutex::new((0..n).map(|_| None).collect());
    let (pos, neg): (Vec<usize>, Vec<usize>) = (0..data.y.len()).partition(|&i| data.y[i]);
    std::thread::scope(|s| {
        for _ in 0..threads.clamp(1, n) {
            s.spawn(|| {
                loop {
                    let t = next.fetch_add(1, Ordering::Relaxed);
                    if t >= n {
                        break;
                    }
                    let fitted = fit_tree(
                        &data.x,
                        &data.y,
                        &pos,
                        &neg,
                        params,
                        tree_seed(params.seed, t as u64),
                    );
                    if let Ok(mut slots) = slots.lock() {
                        slots[t] = Some(fitted);
                    }
                }
            });
        }
    });
    let slots = slots
        .into_inner()
        .map_err(|_| anyhow::anyhow!("a tree-fitting thread panicked"))?;
    slots
        .into_iter()
        .enumerate()
        .map(|(t, s)| {
            s.unwrap_or_else(|| bail!("tree {t} was not fitted"))
                .with_context(|| format!("fitting tree {t}"))
        })
        .collect()
}

/// Draws `k` of `from` with replacement.
fn resample(rng: &mut impl Rng, from: &[usize], k: usize, out: &mut Vec<usize>) {
    out.extend((0..k).map(|_| from[rng.random_range(0..from.len())]));
}

fn fit_tree(
    x: &FeatureMatrix,
    y: &[bool],
    pos: &[usize],
    neg: &[usize],
    params: &TrainParams,
    seed: u64,
) -> Result<BaggedTree> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    // Stratified bootstrap: each class keeps its share, so every tree sees
    // both classes however rare the positives are.
    let take = |len: usize| ((len as f64 * params.sample_fraction).round() as usize).max(1);
    let mut rows = Vec::with_capacity(take(pos.len()) + take(neg.len()));
    resample(&mut rng, pos, take(pos.len()), &mut rows);
    resample(&mut rng, neg, take(neg.len()), &mut rows);
    rows.sort_unstable();

    let mut columns: Vec<usize> = (0..x.cols).collect();
    columns.shuffle(&mut rng);
    let k = ((x.cols as f64 * params.feature_fraction).round() as usize).clamp(1, x.cols);
    columns.truncate(k);
    columns.sort_unstable();

    let matrix = x.gather(&rows, &columns);
    let labels: Vec<u32> = rows.iter().map(|&r| u32::from(y[r])).collect();
    let tree_params = DecisionTreeClassifierParameters {
        criterion: SplitCriterion::Gini,
        max_depth: Some(params.max_depth),
        min_samples_leaf: params.min_samples_leaf,
        min_samples_split: params.min_samples_split,
        seed: Some(seed),
    };
    let tree = Tree::fit(&matrix, &labels, tree_params).map_err(|e| anyhow::anyhow!("{e}"))?;
    Ok(BaggedTree { columns, tree })
}

/// Number of worker threads to use when none is given: the available cores.
pub fn default_threads() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// Reads a model, for callers that only have a path (tests, tools).
pub fn load_model(path: &Path) -> Result<ModelArtifact> {
    Ok(artifact::read_model(path)?)
}
