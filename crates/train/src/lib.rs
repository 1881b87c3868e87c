//! `train`: model selection, calibration and registration.
//!
//! Reads the train, test and calibration split tables and the feature list
//! written by `build-features` (each split is checked against the SHA-256
//! the feature list records: outputs of two runs are refused), then:
//!
//! 1. scores the candidate configurations (`train.search`) by successive
//!    halving ([`halving`]): grouped, stratified K-fold CV ([`cv`]) on
//!    growing, nested samples of whole customers, the best third promoted at
//!    each rung; every candidate's every rung goes to `reports/search.csv`
//!    (and, with its wall time, to the experiment log);
//! 2. refits the best configuration on the whole train split ([`fit`],
//!    boosting in [`gbm`] on the bins the search used, its rounds picked
//!    once by its own early stopping; CART trees with smartcore converted to
//!    core's tree type in [`cart`]);
//! 3. fits Platt and isotonic calibrators on the calibration split and keeps
//!    the one with the lower test Brier score, or the params' choice
//!    ([`calibrate`]);
//! 4. picks the decision threshold on the calibrated test probabilities
//!    (max F1 or least cost);
//! 5. registers the enveloped model artifact as a new version in the
//!    registry, then writes it to the model path with `reports/train.json`
//!    and `reports/search.csv` (deterministic for fixed params and data;
//!    a failed registration leaves the previous files), and appends a record
//!    (with timings and peak memory) to the experiment log. The model
//!    carries the key fingerprint from the feature list.
//!
//! Everything runs on a rayon pool of `threads` threads; the results do not
//! depend on that number.

pub mod calibrate;
pub mod cart;
pub mod cv;
pub mod fit;
pub mod gbm;
pub mod halving;
pub mod learning;
pub mod search;

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result, bail};
use revspend_core::artifact::{self, FeatureList, run_output};
use revspend_core::calibration::Calibrator;
use revspend_core::metrics::{BinaryMetrics, Curve, ECE_BINS, ece, reliability};
use revspend_core::model::{Classifier, ModelArtifact, Reliability};
use revspend_core::params::{
    Algorithm, CalibrationChoice, Checked, ModelSpec, ThresholdObjective, TrainParams,
};
use revspend_core::registry::{self, NewVersion, Registry};
use revspend_table::LabelledRows;
use serde::Serialize;

use crate::fit::Data;

/// What the stage reads.
#[derive(Debug, Clone)]
pub struct Inputs {
    pub train: PathBuf,
    pub test: PathBuf,
    pub calibration: PathBuf,
    pub feature_list: PathBuf,
}

impl Inputs {
    /// The pipeline's layout under `root` (the paths `dvc.yaml` passes,
    /// relative to the repository): the flags' defaults and the fixtures'.
    pub fn under(root: &Path) -> Inputs {
        Inputs {
            train: root.join("data/splits/train.parquet"),
            test: root.join("data/splits/test.parquet"),
            calibration: root.join("data/splits/calibration.parquet"),
            feature_list: root.join("data/features.json"),
        }
    }

    /// The holdout split beside the others (read by `train fit-once` only).
    pub fn holdout_under(root: &Path) -> PathBuf {
        root.join("data/splits/holdout.parquet")
    }
}

/// What the stage writes.
#[derive(Debug, Clone)]
pub struct Outputs {
    pub model: PathBuf,
    pub report: PathBuf,
    /// Every search trial, one CSV line each (deterministic: wall times go
    /// to the experiment log).
    pub search: PathBuf,
    /// Registry directory the model is registered in; `None` skips the
    /// registry and the experiment log.
    pub registry: Option<PathBuf>,
}

impl Outputs {
    /// The pipeline's layout under `root`, as [`Inputs::under`], with the
    /// registry.
    pub fn under(root: &Path) -> Outputs {
        Outputs {
            model: root.join("models/model.bin"),
            report: root.join("reports/train.json"),
            search: root.join("reports/search.csv"),
            registry: Some(root.join("models/registry")),
        }
    }
}

/// Summary of the search in the report.
#[derive(Debug, Clone, Serialize)]
pub struct CvSummary {
    pub metric: &'static str,
    pub folds: usize,
    /// Candidate configurations at the first rung.
    pub candidates: usize,
    /// Each rung: rows, customers, candidates scored and promoted.
    pub rungs: Vec<halving::Rung>,
    /// The chosen candidate's mean and std over the last rung's folds.
    pub best_mean: f64,
    pub best_std: f64,
    /// Best mean per algorithm at the first rung, where every candidate is
    /// scored on the same rows.
    pub best_per_algorithm: Vec<(String, f64)>,
    /// Boosting rounds the refit kept (its early stopping).
    pub final_rounds: Option<usize>,
}

/// The training report: deterministic for fixed params and data (timings
/// go to the experiment log, so a rerun leaves identical files).
#[derive(Debug, Clone, Serialize)]
pub struct TrainReport {
    pub model_version: String,
    pub algorithm: String,
    pub hyperparameters: serde_json::Value,
    pub features: Vec<String>,
    pub train_rows: u64,
    pub train_positives: u64,
    pub training_prior: f64,
    pub test_rows: u64,
    pub calibration_rows: u64,
    pub cv: CvSummary,
    pub calibration: String,
    pub threshold: f64,
    pub threshold_source: String,
    /// Calibrated probabilities on the test split.
    pub test_metrics: BinaryMetrics,
    /// The classifier's own probabilities on the test split.
    pub test_metrics_uncalibrated: BinaryMetrics,
    pub params_hash: String,
    pub data_hash: String,
    /// Which pseudonymisation key the training data was made with: `the
    /// public development key` or `a secret key` (the fingerprint itself is
    /// in the model, not in this git-tracked report).
    pub pseudonym_key: &'static str,
}

/// What [`run`] returns besides the files: the report and run facts that
/// are not deterministic.
#[derive(Debug, Clone)]
pub struct RunResult {
    pub report: TrainReport,
    /// Registry version id, when registered.
    pub registered: Option<String>,
    pub timings: Vec<(&'static str, f64)>,
}

/// Reads split `what` (`train`, `test`, …), checking that it is the file
/// the feature list's run wrote (hashed from the bytes it is parsed from);
/// returns its rows and SHA-256.
fn read_split(
    path: &Path,
    list: &FeatureList,
    list_path: &Path,
    what: &str,
) -> Result<(LabelledRows, String)> {
    let features = list.resolve(list_path)?;
    let (rows, sha256) = revspend_table::read_labelled_hashed(path, &features)
        .with_context(|| format!("reading the {what} split"))?;
    list.verify_output(list_path, &run_output::split(what), path, &sha256)?;
    Ok((rows, sha256))
}

/// Reads the feature list: the commit record of the `build-features` run
/// whose splits this stage reads.
fn read_feature_list(path: &Path) -> Result<FeatureList> {
    FeatureList::read(path).context("reading the feature list")
}

fn rayon_pool(threads: usize) -> Result<rayon::ThreadPool> {
    rayon::ThreadPoolBuilder::new()
        .num_threads(threads.max(1))
        .build()
        .context("starting worker threads")
}

/// Runs the stage with `threads` worker threads.
pub fn run(
    params: &Checked<TrainParams>,
    inputs: &Inputs,
    outputs: &Outputs,
    threads: usize,
) -> Result<RunResult> {
    rayon_pool(threads)?.install(|| run_on_pool(params, inputs, outputs))
}

fn run_on_pool(params: &Checked<TrainParams>, inputs: &Inputs, outputs: &Outputs) -> Result<RunResult> {
    let started = Instant::now();
    let mut timings: Vec<(&'static str, f64)> = Vec::new();
    let mut lap = Instant::now();
    let mut mark = |name: &'static str, timings: &mut Vec<(&'static str, f64)>| {
        timings.push((name, lap.elapsed().as_secs_f64()));
        lap = Instant::now();
    };

    // What a killed run left half-written beside the outputs goes first.
    artifact::remove_temp_files_beside([
        outputs.model.as_path(),
        outputs.report.as_path(),
        outputs.search.as_path(),
    ])?;
    let list = read_feature_list(&inputs.feature_list)?;
    let features = list.resolve(&inputs.feature_list)?;
    // The model's data hash is the train split's, as read (and checked).
    let (train, data_hash) = read_split(&inputs.train, &list, &inputs.feature_list, "train")?;
    let (test, _) = read_split(&inputs.test, &list, &inputs.feature_list, "test")?;
    let (calib, _) = read_split(&inputs.calibration, &list, &inputs.feature_list, "calibration")?;
    let positives = train.y.iter().filter(|y| **y).count();
    if positives == 0 || positives == train.y.len() {
        bail!(
            "{}: the train split has {positives} positive rows out of {}; both classes are needed",
            inputs.train.display(),
            train.y.len()
        );
    }
    let training_prior = positives as f64 / train.y.len() as f64;
    let groups = cv::group_ids(&train.customers);
    mark("read", &mut timings);

    // Successive halving over the candidates, then the refit of the best
    // on the whole train split, boosted models on the same bins.
    let specs = search::candidates(params);
    let mut bins = halving::SharedBins::new(&train.x, &specs);
    mark("bin", &mut timings);
    let outcome = halving::run(&specs, &train.x, &train.y, &groups, &bins, params)?;
    // Written with the model, after registration (see below).
    let search_csv = halving::to_csv(&outcome, params.cv.metric, params.cv.folds);
    let chosen = outcome.chosen().clone();
    log::info!(
        "chosen: {} {} ({} {:.4} ± {:.4} on {} rows)",
        chosen.algorithm,
        chosen.spec.params_json(),
        params.cv.metric.name(),
        chosen.mean,
        chosen.std,
        chosen.rows
    );
    mark("search", &mut timings);

    let full = Data {
        x: &train.x,
        y: &train.y,
        groups: &groups,
    };
    let (classifier, final_rounds) = match &chosen.spec {
        ModelSpec::Gbm(cfg) => {
            // The refit's own early stopping picks the model's rounds, once:
            // on 4.5 times the last rung's fold rows the best round count
            // more than doubles (42 against 95 at 1M rows), so the folds'
            // counts would stop it short.
            let shared = bins
                .take(cfg.max_bins)
                .context("the search's bins for the chosen configuration are missing")?;
            let (model, stats) =
                gbm::fit_binned(shared, &train.y, &groups, cfg, params.class_weight, params.seed);
            log::info!("refit: {} rounds", stats.rounds);
            (Classifier::Gbm(model), Some(stats.rounds))
        }
        _ => (
            fit::fit(&chosen.spec, full, params.class_weight, params.seed)
                .with_context(|| format!("refitting {} on the train split", chosen.algorithm))?,
            None,
        ),
    };
    drop(bins);
    mark("refit", &mut timings);

    let test_raw = fit::predict(&classifier, &test.x)?;
    let cal_raw = fit::predict(&classifier, &calib.x)?;
    let calibrator = calibrate::choose(params.calibration, &cal_raw, &calib.y, &test_raw, &test.y);
    let test_scores: Vec<f64> = test_raw.iter().map(|&p| calibrator.apply(p)).collect();
    let (threshold, threshold_source) = choose_threshold(params, &test_scores, &test.y);
    // Four independent passes over the test split, two at a time.
    let ((test_metrics, test_metrics_uncalibrated), (before, after)) = rayon::join(
        || {
            rayon::join(
                || BinaryMetrics::compute(&test_scores, &test.y, threshold),
                || BinaryMetrics::compute(&test_raw, &test.y, threshold),
            )
        },
        || {
            rayon::join(
                || reliability(&test_raw, &test.y, ECE_BINS),
                || reliability(&test_scores, &test.y, ECE_BINS),
            )
        },
    );
    let reliability = Reliability {
        ece_before: ece(&before),
        ece_after: ece(&after),
        before,
        after,
    };
    mark("calibrate", &mut timings);

    let (params_json, params_hash) = params.json_and_hash();
    let algorithm = chosen.algorithm.to_owned();
    let lineage = format!(
        "{params_hash}{data_hash}{}{}",
        list.features.join(","),
        chosen.spec.params_json()
    );
    let model_version = format!("{algorithm}-{}", &artifact::sha256_hex(lineage.as_bytes())[..12]);
    let model = ModelArtifact {
        model_version: model_version.clone(),
        algorithm: algorithm.clone(),
        hyperparameters: chosen.spec.params_json().to_string(),
        features,
        rule: list.rule.clone(),
        classifier,
        calibrator: calibrator.clone(),
        threshold,
        threshold_source: threshold_source.clone(),
        training_prior,
        train_params: params_json,
        params_hash: params_hash.clone(),
        data_hash: data_hash.clone(),
        test_metrics: test_metrics.clone(),
        reliability,
        written_by: concat!("revspend-core ", env!("CARGO_PKG_VERSION")).into(),
        key_fingerprint: list.key_fingerprint.clone(),
    };
    let bytes = artifact::encode_model(&model).context("encoding the model")?;

    let mut best_per_algorithm: Vec<(String, f64)> = Vec::new();
    for t in outcome.trials.iter().filter(|t| t.rung == 0) {
        match best_per_algorithm.iter_mut().find(|(a, _)| a == t.algorithm) {
            Some((_, s)) => {
                let better = if params.cv.metric.maximise() {
                    t.mean > *s
                } else {
                    t.mean < *s
                };
                if better {
                    *s = t.mean;
                }
            }
            None => best_per_algorithm.push((t.algorithm.to_owned(), t.mean)),
        }
    }
    let report = TrainReport {
        model_version: model_version.clone(),
        algorithm: algorithm.clone(),
        hyperparameters: chosen.spec.params_json(),
        features: list.features.clone(),
        train_rows: train.y.len() as u64,
        train_positives: positives as u64,
        training_prior,
        test_rows: test.y.len() as u64,
        calibration_rows: calib.y.len() as u64,
        cv: CvSummary {
            metric: params.cv.metric.name(),
            folds: params.cv.folds,
            candidates: specs.len(),
            rungs: outcome.rungs.clone(),
            best_mean: chosen.mean,
            best_std: chosen.std,
            best_per_algorithm,
            final_rounds,
        },
        calibration: calibrator.name().into(),
        threshold,
        threshold_source,
        test_metrics: test_metrics.clone(),
        test_metrics_uncalibrated,
        params_hash: params_hash.clone(),
        data_hash: data_hash.clone(),
        pseudonym_key: revspend_core::pseudonym::describe_fingerprint(&list.key_fingerprint),
    };

    // The new version is registered before the tracked model file and the
    // reports are replaced: when the registry cannot take it (locked,
    // unreadable index, full disk), the previous model.bin and reports stay
    // as they were, so the model on disk is always a registered one.
    let registration = match &outputs.registry {
        Some(dir) => {
            let reg = Registry::new(dir);
            let who = registry::current_user();
            let entry = reg
                .register(
                    &bytes,
                    NewVersion {
                        model_version: model_version.clone(),
                        algorithm: algorithm.clone(),
                        hyperparameters: chosen.spec.params_json(),
                        calibration: calibrator.name().into(),
                        threshold,
                        params_hash: params_hash.clone(),
                        data_hash: data_hash.clone(),
                        git_commit: git_commit(),
                        test_metrics: test_metrics.clone(),
                    },
                    &who,
                )
                .with_context(|| {
                    format!(
                        "registering the model in {} ({} and the reports were left as they were)",
                        dir.display(),
                        outputs.model.display()
                    )
                })?;
            log::info!(
                "registered {} as {} (alias candidate)",
                model_version,
                entry.version
            );
            mark("register", &mut timings);
            Some((reg, who, entry))
        }
        None => None,
    };
    artifact::write_atomic(&outputs.model, &bytes).context("writing the model")?;
    artifact::write_atomic(&outputs.search, search_csv.as_bytes())?;
    artifact::write_json(&outputs.report, &report)?;
    mark("write", &mut timings);

    let mut registered = None;
    if let Some((reg, who, entry)) = registration {
        timings.push(("total", started.elapsed().as_secs_f64()));
        let record = serde_json::json!({
            "time": entry.created,
            "who": who,
            "os_user": registry::os_user(),
            "version": entry.version,
            "model_version": model_version,
            "git_commit": entry.git_commit,
            "params_hash": params_hash,
            "data_hash": data_hash,
            "params": &**params,
            "train_rows": train.y.len(),
            "cv": {
                "metric": params.cv.metric.name(),
                "folds": params.cv.folds,
                "rungs": &outcome.rungs,
                "trials": outcome.trials.iter().map(|t| serde_json::json!({
                    "candidate": t.candidate,
                    "rung": t.rung,
                    "rows": t.rows,
                    "algorithm": t.algorithm,
                    "params": t.spec.params_json(),
                    "mean": t.mean,
                    "std": t.std,
                    "rounds": t.rounds,
                    "status": t.status,
                    "fit_seconds": t.fit_seconds,
                })).collect::<Vec<_>>(),
            },
            "chosen": {
                "algorithm": algorithm,
                "params": chosen.spec.params_json(),
                "cv_mean": chosen.mean,
                "cv_std": chosen.std,
                "cv_rows": chosen.rows,
                "rounds": final_rounds,
            },
            "calibration": calibrator.name(),
            "threshold": threshold,
            "test": {
                "pr_auc": test_metrics.pr_auc,
                "roc_auc": test_metrics.roc_auc,
                "brier": test_metrics.brier,
                "ece": test_metrics.ece,
            },
            "timings_s": timings.iter().map(|(k, v)| ((*k).to_owned(), serde_json::json!(v)))
                .collect::<serde_json::Map<_, _>>(),
            "peak_rss_mb": peak_rss_mb(),
        });
        reg.append_experiment(&record)
            .context("appending to the experiment log")?;
        registered = Some(entry.version);
    } else {
        timings.push(("total", started.elapsed().as_secs_f64()));
    }
    Ok(RunResult {
        report,
        registered,
        timings,
    })
}

/// The decision threshold on calibrated test probabilities.
fn choose_threshold(params: &TrainParams, scores: &[f64], y: &[bool]) -> (f64, String) {
    let t = &params.threshold;
    if let Some(v) = t.fixed {
        return (v, "params".into());
    }
    let curve = Curve::new(scores, y);
    match t.objective {
        ThresholdObjective::MaxF1 => (
            curve.best_f1_threshold().map_or(0.5, |(v, _)| v),
            "max F1 on the test split".into(),
        ),
        ThresholdObjective::Cost => (
            curve
                .min_cost_threshold(t.fp_cost, t.fn_cost)
                .map_or(0.5, |(v, _)| v),
            format!(
                "least cost on the test split (FP {}, FN {})",
                t.fp_cost, t.fn_cost
            ),
        ),
    }
}

/// The commit the code was built from: `REVSPEND_GIT_COMMIT`, else
/// `git rev-parse HEAD` in the working directory, else unknown.
pub fn git_commit() -> Option<String> {
    if let Ok(c) = std::env::var("REVSPEND_GIT_COMMIT")
        && !c.trim().is_empty()
    {
        return Some(c.trim().to_owned());
    }
    let out = std::process::Command::new("git")
        .args(["rev-parse", "HEAD"])
        .stderr(std::process::Stdio::null())
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_owned())
        .filter(|s| !s.is_empty())
}

/// Peak resident memory of this process (VmHWM), in MiB, on Linux.
pub fn peak_rss_mb() -> Option<f64> {
    revspend_core::process::peak_rss_mb()
}

/// Number of worker threads to use when none is given: the available cores.
pub fn default_threads() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// Reads a model, for callers that only have a path (tests, tools).
pub fn load_model(path: &Path) -> Result<ModelArtifact> {
    Ok(artifact::read_model(path)?)
}

/// What one timed fit (`train fit-once`) measured.
#[derive(Debug, Clone, Serialize)]
pub struct FitOnce {
    pub algorithm: &'static str,
    pub hyperparameters: serde_json::Value,
    pub threads: usize,
    pub train_rows: u64,
    pub features: usize,
    pub fit_seconds: f64,
    pub rows_per_second: f64,
    /// Boosting rounds kept (GBM only).
    pub rounds: Option<usize>,
    pub calibration: String,
    pub holdout: BinaryMetrics,
    pub holdout_uncalibrated: BinaryMetrics,
    pub peak_rss_mb: Option<f64>,
}

/// Fits the algorithm's default configuration (first value of each list)
/// once on the whole train split, timed; calibrates on the calibration split
/// (isotonic unless `train.calibration` names another: there is no test
/// split to choose on here) and scores the holdout split.
pub fn fit_once(
    params: &Checked<TrainParams>,
    algorithm: Algorithm,
    train_path: &Path,
    calibration_path: &Path,
    holdout_path: &Path,
    feature_list: &Path,
    threads: usize,
) -> Result<FitOnce> {
    rayon_pool(threads)?.install(|| {
        let list = read_feature_list(feature_list)?;
        let (train, _) = read_split(train_path, &list, feature_list, "train")?;
        let (calib, _) = read_split(calibration_path, &list, feature_list, "calibration")?;
        let (holdout, _) = read_split(holdout_path, &list, feature_list, "holdout")?;
        let groups = cv::group_ids(&train.customers);
        let spec = search::default_spec(params, algorithm);
        let data = Data {
            x: &train.x,
            y: &train.y,
            groups: &groups,
        };
        let started = Instant::now();
        let classifier = fit::fit(&spec, data, params.class_weight, params.seed)?;
        let fit_seconds = started.elapsed().as_secs_f64();
        let rounds = match &classifier {
            revspend_core::model::Classifier::Gbm(m) => Some(m.trees.len()),
            _ => None,
        };
        let p = train.x.cols;
        let cal_raw = fit::predict(&classifier, &calib.x)?;
        let calibrator = match params.calibration {
            CalibrationChoice::Platt => calibrate::fit_platt(&cal_raw, &calib.y),
            CalibrationChoice::None => Calibrator::Identity,
            CalibrationChoice::Isotonic | CalibrationChoice::Auto => {
                calibrate::fit_isotonic(&cal_raw, &calib.y)
            }
        };
        let raw = fit::predict(&classifier, &holdout.x)?;
        let calibrated: Vec<f64> = raw.iter().map(|&s| calibrator.apply(s)).collect();
        let threshold = Curve::new(&calibrated, &holdout.y)
            .best_f1_threshold()
            .map_or(0.5, |(t, _)| t);
        Ok(FitOnce {
            algorithm: algorithm.name(),
            hyperparameters: spec.params_json(),
            threads,
            train_rows: train.y.len() as u64,
            features: p,
            fit_seconds,
            rows_per_second: train.y.len() as f64 / fit_seconds.max(1e-9),
            rounds,
            calibration: calibrator.name().into(),
            holdout: BinaryMetrics::compute(&calibrated, &holdout.y, threshold),
            holdout_uncalibrated: BinaryMetrics::compute(&raw, &holdout.y, threshold),
            peak_rss_mb: peak_rss_mb(),
        })
    })
}

/// The spec `fit-once` would fit, for display.
pub fn default_spec(params: &TrainParams, algorithm: Algorithm) -> ModelSpec {
    search::default_spec(params, algorithm)
}
