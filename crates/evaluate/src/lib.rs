//! `evaluate`: the gate to production. Scores the holdout split, writes
//! what a risk team reads and decides whether the candidate is promoted.
//!
//! Reads the model artifact, the holdout and the train split (every model
//! feature checked by name and type; both splits checked against the hashes
//! the feature list and the model record), and the registry. Its phases:
//!
//! - the metrics of the calibrated model, its classifier before calibration
//!   and the training-prior baseline, with customer-bootstrap intervals
//!   ([`bootstrap`]);
//! - every registered version on the same rows, the champion among them
//!   ([`competition`]);
//! - gain and lift ([`lift`]), the threshold sweep ([`threshold`]), the
//!   score distribution ([`distribution`]), metrics by slice and for cold
//!   starts ([`slices`]), the learning curve ([`learning`]) and feature
//!   importance ([`importance`]);
//! - the gate and the promotion ([`gate`], [`promotion`]);
//! - `metrics.json`, `promotion.json`, `competition.json`, plot data and
//!   PNGs (drawn with plotters and a vendored font), the one-page report
//!   ([`page`]), and a copy of it all with the registry version.

pub mod bootstrap;
pub mod competition;
pub mod distribution;
pub mod gate;
pub mod importance;
pub mod learning;
pub mod lift;
pub mod page;
mod plot;
pub mod promotion;
pub mod slices;
pub mod threshold;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use revspend_core::artifact::{self, FeatureList, run_output};
use revspend_core::metrics::{BinaryMetrics, Curve, ECE_BINS, EvaluationReport, ReliabilityBin, reliability};
use revspend_core::params::{Checked, EvaluateParams};
use serde::Serialize;

/// What the stage reads.
#[derive(Debug, Clone)]
pub struct Inputs {
    pub model: PathBuf,
    pub holdout: PathBuf,
    /// The train split the model was trained on (its SHA-256 is the model's
    /// `data_hash`): the learning curve refits on it.
    pub train: PathBuf,
    /// The feature list of the `build-features` run the holdout comes
    /// from: it records the SHA-256 of each split of the run.
    pub feature_list: PathBuf,
    /// The registry: its `production` model is the champion the gate
    /// compares with, and `promotion: auto` moves that alias. `None`, or a
    /// directory without an index, means no champion.
    pub registry: Option<PathBuf>,
}

impl Inputs {
    /// The pipeline's layout under `root` (the paths `dvc.yaml` passes,
    /// relative to the repository): the flags' defaults and the fixtures'.
    pub fn under(root: &Path) -> Inputs {
        Inputs {
            model: root.join("models/model.bin"),
            holdout: root.join("data/splits/holdout.parquet"),
            train: root.join("data/splits/train.parquet"),
            feature_list: root.join("data/features.json"),
            registry: Some(root.join("models/registry")),
        }
    }
}

/// What the stage writes.
#[derive(Debug, Clone)]
pub struct Outputs {
    pub metrics: PathBuf,
    /// The promotion decision with every check of the gate.
    pub promotion: PathBuf,
    /// Every registered version on the holdout rows.
    pub competition: PathBuf,
    /// Directory for curve data (JSON/CSV) and PNG plots.
    pub plots_dir: PathBuf,
    /// `index.html`: the reports and every plot on one self-contained page.
    pub page: PathBuf,
}

impl Outputs {
    /// The pipeline's layout under `root`, as [`Inputs::under`].
    pub fn under(root: &Path) -> Outputs {
        Outputs {
            metrics: root.join("reports/metrics.json"),
            promotion: root.join("reports/promotion.json"),
            competition: root.join("reports/competition.json"),
            plots_dir: root.join("reports/plots"),
            page: root.join("reports/index.html"),
        }
    }
}

/// Checks that the holdout (hashing to `holdout_sha256`) is the one the
/// feature list's run wrote, and that the model was trained on that run's
/// train split (its `data_hash`): scoring a model on the holdout of
/// another run could score it on customers it was trained on.
fn check_same_run(list: &FeatureList, inputs: &Inputs, data_hash: &str, holdout_sha256: &str) -> Result<()> {
    list.verify_output(
        &inputs.feature_list,
        &run_output::split("holdout"),
        &inputs.holdout,
        holdout_sha256,
    )?;
    let train = run_output::split("train");
    let recorded = list.run_outputs.get(&train).map_or("nothing", String::as_str);
    if recorded != data_hash {
        bail!(
            "{} was trained on a train split with SHA-256 {data_hash}, but {} records {recorded} for the train \
             split of the run the holdout {} comes from: the model and the holdout come from two \
             build-features runs; rerun train (then evaluate)",
            inputs.model.display(),
            inputs.feature_list.display(),
            inputs.holdout.display()
        );
    }
    Ok(())
}

#[derive(Debug, Serialize)]
pub(crate) struct RocPoint {
    pub(crate) fpr: f64,
    pub(crate) tpr: f64,
}

/// Copies the stage's reports and plots into the candidate's registry
/// version (`versions/<id>/evaluation/`), so any past version's evaluation
/// can be opened (`registry show <id>` lists the files).
fn store_with_version(inputs: &Inputs, outputs: &Outputs, version: Option<&str>) -> Result<()> {
    let (Some(dir), Some(version)) = (inputs.registry.as_deref(), version) else {
        return Ok(());
    };
    let read = |path: &Path| std::fs::read(path).with_context(|| format!("reading {}", path.display()));
    let mut files: Vec<(String, Vec<u8>)> = vec![
        ("metrics.json".into(), read(&outputs.metrics)?),
        ("promotion.json".into(), read(&outputs.promotion)?),
        ("competition.json".into(), read(&outputs.competition)?),
        ("index.html".into(), read(&outputs.page)?),
    ];
    let mut plots: Vec<PathBuf> = std::fs::read_dir(&outputs.plots_dir)
        .with_context(|| format!("listing {}", outputs.plots_dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.is_file()
                && p.file_name()
                    .is_some_and(|n| !artifact::is_temp_name(&n.to_string_lossy()))
        })
        .collect();
    plots.sort();
    for p in plots {
        let name = p
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        files.push((format!("plots/{name}"), read(&p)?));
    }
    let stored = revspend_core::registry::Registry::new(dir)
        .store_evaluation(version, &files)
        .with_context(|| format!("storing the evaluation with {version}"))?;
    log::info!("evaluation stored with {version} in {}", stored.display());
    Ok(())
}

/// `metrics.json`: the evaluation, the champion on the same rows and the
/// intervals.
#[derive(Debug, Serialize)]
struct HoldoutReport<'a> {
    #[serde(flatten)]
    evaluation: &'a EvaluationReport,
    champion: Option<&'a promotion::Champion>,
    intervals: &'a Intervals,
    /// Cumulative gain and lift of the calibrated model by decile.
    gain_lift: &'a [lift::Decile],
    /// Metrics by month, merchant group, age band, sex and cold start.
    slices: &'a slices::SliceReport,
    /// The configuration refitted on growing shares of the train split
    /// (`null` when `evaluate.learning_curve.shares` is empty).
    learning_curve: Option<&'a learning::LearningCurve>,
    /// Gain and permutation importance of each feature.
    importance: &'a importance::Importance,
}

/// Percentile bootstrap intervals over the holdout's customers.
#[derive(Debug, Serialize)]
struct Intervals {
    resamples: usize,
    confidence: f64,
    customers: usize,
    model: MetricIntervals,
    baseline_prior: MetricIntervals,
    /// The champion's, on the same resamples of the same rows (when it was
    /// scored).
    champion: Option<MetricIntervals>,
}

/// A metric's name and its interval.
type MetricIntervals = BTreeMap<&'static str, bootstrap::Interval>;

#[derive(Debug, Serialize)]
pub(crate) struct PrPoint {
    pub(crate) recall: f64,
    pub(crate) precision: f64,
}

/// Runs the stage.
pub fn run(params: &Checked<EvaluateParams>, inputs: &Inputs, outputs: &Outputs) -> Result<EvaluationReport> {
    // What a killed run left half-written beside the outputs goes first.
    artifact::remove_temp_files_beside([
        outputs.metrics.as_path(),
        outputs.promotion.as_path(),
        outputs.competition.as_path(),
        outputs.page.as_path(),
        &outputs.plots_dir.join("roc.png"),
    ])?;
    let model = artifact::read_model(&inputs.model).context("reading the model")?;
    let list = FeatureList::read(&inputs.feature_list).context("reading the feature list")?;
    let (holdout, sha256) = revspend_table::read_labelled_hashed(&inputs.holdout, &model.features)
        .context("reading the holdout split")?;
    check_same_run(&list, inputs, &model.data_hash, &sha256)?;
    let slice_columns: Vec<&str> = slices::COLUMNS.iter().map(|f| f.name()).collect();
    let described = revspend_table::read_row_descriptions(&inputs.holdout, &slice_columns, &sha256)
        .context("reading the holdout's slice columns")?;
    let raw = model.predict_uncalibrated(&holdout.x)?;
    let scores: Vec<f64> = raw.iter().map(|&p| model.calibrator.apply(p)).collect();
    let y = &holdout.y;
    let positives = y.iter().filter(|v| **v).count() as u64;
    let rows = y.len() as u64;
    let report = EvaluationReport {
        model_version: model.model_version.clone(),
        algorithm: model.algorithm.clone(),
        calibration: model.calibrator.name().into(),
        split: "holdout".into(),
        rows,
        positives,
        prevalence: if rows == 0 {
            0.0
        } else {
            positives as f64 / rows as f64
        },
        model: BinaryMetrics::compute(&scores, y, model.threshold),
        model_uncalibrated: BinaryMetrics::compute(&raw, y, model.threshold),
        baseline_prior: BinaryMetrics::compute(&vec![model.training_prior; y.len()], y, model.threshold),
    };

    // Intervals from customer resamples, the champion on the same rows, and
    // the gate.
    let groups = bootstrap::rows_by_customer(&holdout.customers);
    let b = &params.bootstrap;
    let interval = |s: &[f64], threshold: f64| {
        bootstrap::intervals(s, y, &groups, threshold, b.resamples, b.confidence, params.seed)
    };
    let prior_scores = vec![model.training_prior; y.len()];
    let competition = competition::compete(
        inputs.registry.as_deref(),
        &model.model_version,
        &report.model,
        &inputs.holdout,
        y.len(),
    )?;
    let mut competition = competition;
    let champion_scores = competition.as_mut().and_then(|c| c.champion_scores.take());
    let champion = promotion::champion(competition.as_ref());
    let intervals = Intervals {
        resamples: b.resamples,
        confidence: b.confidence,
        customers: groups.len(),
        model: interval(&scores, model.threshold),
        baseline_prior: interval(&prior_scores, model.threshold),
        champion: champion_scores.as_ref().map(|c| interval(&c.scores, c.threshold)),
    };
    let gain_lift = lift::by_decile(&scores, y);
    let by_slice = slices::by_slice(&scores, y, model.threshold, &described, &params.slices);
    if !by_slice.below_floor.is_empty() {
        log::warn!(
            "slices below the PR-AUC floor {}: {}",
            params.slices.pr_auc_floor,
            by_slice.below_floor.join(", ")
        );
    }
    let learning_curve = learning::run(params, &model, &inputs.model, &inputs.train, &outputs.plots_dir)?;
    let importance = importance::write(params, &model, &holdout, &outputs.plots_dir)?;
    let decision = promotion::decide(
        params,
        inputs.registry.as_deref(),
        &model,
        &report.model,
        &report.baseline_prior,
        champion.clone(),
        &by_slice,
    )?;
    log::info!(
        "promotion gate ({} mode): {} ({})\n{}",
        decision.mode,
        decision.decision,
        decision.reason,
        gate::table(&decision.checks)
    );
    artifact::write_json(
        &outputs.metrics,
        &HoldoutReport {
            evaluation: &report,
            champion: champion.as_ref(),
            intervals: &intervals,
            gain_lift: &gain_lift,
            slices: &by_slice,
            learning_curve: learning_curve.as_ref(),
            importance: &importance,
        },
    )?;
    artifact::write_json(&outputs.promotion, &decision)?;
    let competition = competition.unwrap_or_else(|| competition::Competition {
        holdout_rows: y.len(),
        candidate_model_version: model.model_version.clone(),
        champion: None,
        versions: Vec::new(),
        champion_scores: None,
    });
    artifact::write_json(&outputs.competition, &competition)?;

    let curve = Curve::new(&scores, y);
    let roc: Vec<RocPoint> = thin(&curve.roc(), params.curve_points)
        .into_iter()
        .map(|(fpr, tpr, _)| RocPoint { fpr, tpr })
        .collect();
    let pr: Vec<PrPoint> = thin(&curve.precision_recall(), params.curve_points)
        .into_iter()
        .map(|(recall, precision, _)| PrPoint { recall, precision })
        .collect();
    let champion_curves = champion_scores.as_ref().zip(champion.as_ref()).map(|(c, who)| {
        let curve = Curve::new(&c.scores, y);
        let m = who.metrics.as_ref();
        plot::ChampionCurves {
            version: who.version.clone(),
            roc: thin(&curve.roc(), params.curve_points)
                .into_iter()
                .map(|(fpr, tpr, _)| RocPoint { fpr, tpr })
                .collect(),
            pr: thin(&curve.precision_recall(), params.curve_points)
                .into_iter()
                .map(|(recall, precision, _)| PrPoint { recall, precision })
                .collect(),
            roc_auc: m.map_or(f64::NAN, |m| m.roc_auc),
            pr_auc: m.map_or(f64::NAN, |m| m.pr_auc),
        }
    });
    let dir = &outputs.plots_dir;
    artifact::write_json(&dir.join("roc.json"), &serde_json::json!({ "roc": roc }))?;
    let score_bins = distribution::per_class(&scores, y);
    artifact::write_json(
        &dir.join("score_distribution.json"),
        &serde_json::json!({ "score_distribution": score_bins }),
    )?;
    let versions: Vec<serde_json::Value> = competition
        .versions
        .iter()
        .filter_map(|e| {
            e.metrics.as_ref().map(|m| {
                serde_json::json!({
                    "version": format!("{} {}", e.version, e.algorithm),
                    "pr_auc": m.pr_auc,
                    "roc_auc": m.roc_auc,
                    "is_candidate": e.is_candidate,
                })
            })
        })
        .collect();
    artifact::write_json(
        &dir.join("competition.json"),
        &serde_json::json!({ "competition": versions }),
    )?;
    artifact::write_json(&dir.join("pr.json"), &serde_json::json!({ "pr": pr }))?;
    artifact::write_json(&dir.join("gain.json"), &serde_json::json!({ "gain": gain_lift }))?;
    let (fp_cost, fn_cost) = threshold::costs(&model.train_params).unwrap_or((1.0, 1.0));
    let sweep = thin(&threshold::sweep(&curve, fp_cost, fn_cost), params.curve_points);
    artifact::write_json(
        &dir.join("threshold.json"),
        &serde_json::json!({ "threshold": sweep }),
    )?;
    let mut confusion_rows = String::from("actual,predicted\n");
    for (s, t) in scores.iter().zip(y) {
        confusion_rows.push_str(&format!("{},{}\n", u8::from(*t), u8::from(*s >= model.threshold)));
    }
    artifact::write_atomic(&dir.join("confusion.csv"), confusion_rows.as_bytes())?;
    let before = reliability(&raw, y, ECE_BINS);
    let after = reliability(&scores, y, ECE_BINS);
    // The calibrated model's bins for `dvc plots` (one series per file, so
    // DVC's default template draws it); the PNG shows before, after and the
    // cold-start rows.
    artifact::write_json(
        &dir.join("reliability.json"),
        &serde_json::json!({ "reliability": reliability_points(&after) }),
    )?;
    artifact::write_json(
        &dir.join("reliability_cold_start.json"),
        &serde_json::json!({ "reliability": reliability_points(&by_slice.cold_start_reliability) }),
    )?;
    let slice_bars: Vec<serde_json::Value> = by_slice
        .slices
        .iter()
        .filter_map(|s| {
            s.pr_auc.map(|v| {
                serde_json::json!({
                    "slice": s.name(),
                    "pr_auc": v,
                    "rows": s.rows,
                    "positives": s.positives,
                    "held_to_floor": s.held_to_floor,
                })
            })
        })
        .collect();
    artifact::write_json(
        &dir.join("slices.json"),
        &serde_json::json!({ "slices": slice_bars }),
    )?;

    plot::register_font()?;
    let title = format!("holdout, model {}", model.model_version);
    plot::render_png(&dir.join("roc.png"), |area| {
        plot::draw_roc(area, &roc, champion_curves.as_ref(), &report, &title)
    })?;
    plot::render_png(&dir.join("pr.png"), |area| {
        plot::draw_pr(area, &pr, champion_curves.as_ref(), &report, &title)
    })?;
    plot::render_png(&dir.join("gain.png"), |area| {
        plot::draw_gain(area, &gain_lift, &title)
    })?;
    plot::render_png(&dir.join("threshold.png"), |area| {
        plot::draw_threshold(area, &sweep, model.threshold, (fp_cost, fn_cost), &title)
    })?;
    plot::render_png(&dir.join("confusion.png"), |area| {
        plot::draw_confusion(area, &report.model.confusion, model.threshold, &title)
    })?;
    plot::render_png(&dir.join("reliability.png"), |area| {
        plot::draw_reliability(area, &before, &after, &by_slice, &report, &title)
    })?;
    let height = 140 + 18 * by_slice.slices.len() as u32;
    plot::render_png_sized(&dir.join("slices.png"), (800, height), |area| {
        plot::draw_slices(area, &by_slice, &title)
    })?;
    plot::render_png(&dir.join("score_distribution.png"), |area| {
        plot::draw_score_distribution(area, &score_bins, model.threshold, &title)
    })?;
    let height = 160 + 34 * competition.versions.len() as u32;
    plot::render_png_sized(&dir.join("competition.png"), (800, height), |area| {
        plot::draw_competition(area, &competition, &title)
    })?;
    page::write(&outputs.page, outputs)?;
    store_with_version(inputs, outputs, decision.candidate_version.as_deref())?;
    Ok(report)
}

/// The non-empty bins of a reliability diagram, for `dvc plots`.
fn reliability_points(bins: &[ReliabilityBin]) -> Vec<serde_json::Value> {
    bins.iter()
        .filter(|b| b.count > 0)
        .map(|b| {
            serde_json::json!({
                "mean_predicted": b.mean_predicted,
                "observed_rate": b.observed_rate,
                "count": b.count,
            })
        })
        .collect()
}

/// Keeps at most `n` points, evenly spaced, always the first and the last.
fn thin<T: Copy>(points: &[T], n: usize) -> Vec<T> {
    if points.len() <= n {
        return points.to_vec();
    }
    let step = (points.len() - 1) as f64 / (n - 1) as f64;
    (0..n)
        .map(|i| points[((i as f64 * step).round() as usize).min(points.len() - 1)])
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thinning_keeps_the_ends() {
        let pts: Vec<u32> = (0..1000).collect();
        let t = thin(&pts, 11);
        assert_eq!(t.len(), 11);
        assert_eq!(t[0], 0);
        assert_eq!(t[10], 999);
        assert_eq!(thin(&pts[..5], 11), pts[..5].to_vec());
    }
}
