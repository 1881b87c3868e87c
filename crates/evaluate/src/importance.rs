//! Feature importance of the candidate (issue 14), two kinds:
//!
//! - **gain**: the loss reduction of the boosted model's splits, summed per
//!   feature (LightGBM's `importance_type='gain'`), raw and as a share of
//!   the total. Only the boosted model records it; every other classifier
//!   reports none rather than a made-up stand-in.
//! - **permutation**, for every model: the drop in holdout PR-AUC (and
//!   ROC-AUC) of the calibrated probabilities when one feature's column is
//!   shuffled, mean and standard deviation over `repeats` seeded shuffles.
//!
//! The shuffle permutes a feature's values across **rows**, drawn without
//! looking at customers. The model scores each row on its own, so what the
//! shuffle must do is make each row's value independent of its label and
//! of its other features; a uniform row permutation does exactly that and
//! uses the most independent draws (the least shuffle noise). Moving whole
//! customers' blocks instead would keep only within-customer consistency
//! the model never sees, and customers' blocks differ in length, so they do
//! not swap. Customers matter elsewhere: the holdout's are disjoint from
//! training (the split), and when the holdout is capped at [`MAX_ROWS`]
//! the rows kept are a seeded sample of whole customers.
//!
//! Each (feature, shuffle) has its own seeded generator and the features are
//! scored in parallel on the stage's rayon pool, so the result does not
//! depend on the thread count.

use std::path::Path;

use plotters::coord::ranged1d::SegmentValue;
use plotters::prelude::*;
use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;
use revspend_core::artifact;
use revspend_core::metrics::Curve;
use revspend_core::model::{FeatureMatrix, ModelArtifact, ModelError};
use revspend_core::params::{Checked, EvaluateParams};
use revspend_table::LabelledRows;
use serde::Serialize;

use crate::plot::{self, Area, FONT, plot_err};

/// At most this many holdout rows are shuffled, a seeded sample of whole
/// customers beyond it: each shuffle scores them all again. Measured at 1M
/// purchases (a 150,645-row holdout, 24 features, 5 shuffles, 2 cores
/// shared with other builds): all rows took 20.7 s of a 24 s stage, 50,059
/// rows of 1,508 customers 3.5 to 6.7 s; the default data's holdout (8,619
/// rows) is never cut.
pub const MAX_ROWS: usize = 50_000;

/// The importance of each model feature and how it was measured.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Importance {
    /// One row per model feature, the most important first (permutation
    /// PR-AUC drop, then gain). First, so `dvc plots` finds this list.
    pub features: Vec<FeatureImportance>,
    /// `split_gain` for a model whose splits record their gain, else `null`.
    pub gain_kind: Option<&'static str>,
    /// What a shuffle permutes: `rows` (see the module doc).
    pub shuffle: &'static str,
    /// Shuffles per feature (0: no permutation importance).
    pub repeats: usize,
    pub seed: u64,
    /// Holdout rows and customers, and how many of each were shuffled
    /// (none when `repeats` is 0).
    pub holdout_rows: usize,
    pub holdout_customers: usize,
    /// [`MAX_ROWS`]: a larger holdout is cut to a sample of whole customers.
    pub max_rows: usize,
    pub rows_used: usize,
    pub customers_used: usize,
    /// PR-AUC and ROC-AUC of the calibrated model on the rows used, before
    /// any shuffle (what the drops are measured from).
    pub baseline_pr_auc: Option<f64>,
    pub baseline_roc_auc: Option<f64>,
}

/// One feature's importance; `null` where it was not measured.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FeatureImportance {
    pub feature: String,
    /// Summed split gain.
    pub gain: Option<f64>,
    /// `gain` over the total gain of all features.
    pub gain_share: Option<f64>,
    /// Drop in PR-AUC, mean and (population) standard deviation over the
    /// shuffles.
    pub permutation_mean: Option<f64>,
    pub permutation_std: Option<f64>,
    /// Drop in ROC-AUC, likewise.
    pub permutation_roc_auc_mean: Option<f64>,
    pub permutation_roc_auc_std: Option<f64>,
}

/// Computes both importances of `model` on the holdout (`evaluate.seed`,
/// `evaluate.importance.repeats`) and writes `importance.json` (for `dvc
/// plots`) and `importance.png` into `plots_dir`.
pub fn write(
    params: &Checked<EvaluateParams>,
    model: &ModelArtifact,
    holdout: &LabelledRows,
    plots_dir: &Path,
) -> anyhow::Result<Importance> {
    let started = std::time::Instant::now();
    let imp = compute(
        model,
        &holdout.x,
        &holdout.y,
        &holdout.customers,
        params.importance.repeats,
        params.seed,
    )?;
    log::info!(
        "feature importance: {} shuffles of {} features on {} rows in {:.1} s",
        imp.repeats,
        imp.features.len(),
        imp.rows_used,
        started.elapsed().as_secs_f64()
    );
    artifact::write_json(&plots_dir.join("importance.json"), &imp)?;
    plot::register_font()?;
    let title = format!("holdout, model {}", model.model_version);
    plot::render_png(&plots_dir.join("importance.png"), |area| draw(area, &imp, &title))?;
    Ok(imp)
}

/// Both importances of `model` on the labelled rows `x`, `y` of the
/// customers `customers`.
pub fn compute(
    model: &ModelArtifact,
    x: &FeatureMatrix,
    y: &[bool],
    customers: &[String],
    repeats: usize,
    seed: u64,
) -> Result<Importance, ModelError> {
    let n = model.features.len();
    let gain = model.classifier.gain_importance(n);
    let total: f64 = gain.iter().flatten().sum();
    let groups = crate::bootstrap::rows_by_customer(customers);
    let (rows, customers_used) = if repeats > 0 {
        sample_customers(&groups, MAX_ROWS, seed)
    } else {
        (Vec::new(), 0)
    };
    let mut permutation = vec![None; n];
    let mut baseline = None;
    if !rows.is_empty() {
        let xs = if rows.len() == x.rows {
            x.clone()
        } else {
            x.select_rows(&rows)
        };
        let ys: Vec<bool> = rows.iter().map(|&r| y[r]).collect();
        let base = aucs(&model.predict_proba(&xs)?, &ys);
        baseline = Some(base);
        let drops: Vec<Vec<[f64; 2]>> = (0..n)
            .into_par_iter()
            .map_init(
                || xs.clone(),
                |work, f| {
                    (0..repeats)
                        .map(|r| {
                            shuffle_column(work, &xs, f, shuffle_rng(seed, f, r));
                            let scores = model.predict_proba(work);
                            restore_column(work, &xs, f);
                            scores.map(|s| {
                                let [pr, roc] = aucs(&s, &ys);
                                [base[0] - pr, base[1] - roc]
                            })
                        })
                        .collect::<Result<Vec<_>, _>>()
                },
            )
            .collect::<Result<_, _>>()?;
        permutation = drops.iter().map(|d| Some(mean_std(d))).collect();
    }
    let mut features: Vec<FeatureImportance> = model
        .features
        .iter()
        .enumerate()
        .map(|(f, feature)| {
            let g = gain.as_ref().map(|g| g[f]);
            let p = permutation[f];
            FeatureImportance {
                feature: feature.name().to_owned(),
                gain: g,
                gain_share: g.map(|g| if total > 0.0 { g / total } else { 0.0 }),
                permutation_mean: p.map(|p| p[0][0]),
                permutation_std: p.map(|p| p[0][1]),
                permutation_roc_auc_mean: p.map(|p| p[1][0]),
                permutation_roc_auc_std: p.map(|p| p[1][1]),
            }
        })
        .collect();
    let key = |i: &FeatureImportance| (i.permutation_mean.unwrap_or(0.0), i.gain.unwrap_or(0.0));
    features.sort_by(|a, b| {
        let (ka, kb) = (key(a), key(b));
        kb.0.total_cmp(&ka.0)
            .then(kb.1.total_cmp(&ka.1))
            .then_with(|| a.feature.cmp(&b.feature))
    });
    Ok(Importance {
        features,
        gain_kind: gain.is_some().then_some("split_gain"),
        shuffle: "rows",
        repeats,
        seed,
        holdout_rows: x.rows,
        holdout_customers: groups.len(),
        max_rows: MAX_ROWS,
        rows_used: rows.len(),
        customers_used,
        baseline_pr_auc: baseline.map(|b| b[0]),
        baseline_roc_auc: baseline.map(|b| b[1]),
    })
}

/// PR-AUC (average precision) and ROC-AUC of `scores` against `y`.
fn aucs(scores: &[f64], y: &[bool]) -> [f64; 2] {
    let curve = Curve::new(scores, y);
    [curve.average_precision(), curve.roc_auc()]
}

/// Mean and population standard deviation of each of the two drops.
fn mean_std(drops: &[[f64; 2]]) -> [[f64; 2]; 2] {
    let k = drops.len().max(1) as f64;
    std::array::from_fn(|m| {
        let mean = drops.iter().map(|d| d[m]).sum::<f64>() / k;
        let var = drops.iter().map(|d| (d[m] - mean).powi(2)).sum::<f64>() / k;
        [mean, var.sqrt()]
    })
}

/// The generator of shuffle `r` of feature `f`: its own stream, so the
/// shuffles do not depend on which thread draws them, or in what order.
fn shuffle_rng(seed: u64, f: usize, r: usize) -> ChaCha8Rng {
    let stream = ((f as u64) << 32 | r as u64).wrapping_add(1);
    ChaCha8Rng::seed_from_u64(seed ^ 0x1a5c_0f7e_2b44_9d31 ^ stream.wrapping_mul(0x9E37_79B9_7F4A_7C15))
}

/// Writes a seeded permutation of `original`'s column `f` into `work`.
fn shuffle_column(work: &mut FeatureMatrix, original: &FeatureMatrix, f: usize, mut rng: ChaCha8Rng) {
    let mut column: Vec<f64> = (0..original.rows).map(|r| original.row(r)[f]).collect();
    column.shuffle(&mut rng);
    let cols = work.cols;
    for (r, v) in column.into_iter().enumerate() {
        work.values[r * cols + f] = v;
    }
}

fn restore_column(work: &mut FeatureMatrix, original: &FeatureMatrix, f: usize) {
    let cols = work.cols;
    for r in 0..original.rows {
        work.values[r * cols + f] = original.values[r * cols + f];
    }
}

/// All rows when there are at most `max_rows`; else the rows (in holdout
/// order) of seeded-shuffled customers taken until `max_rows` is reached.
/// Returns the rows and how many customers they belong to.
fn sample_customers(groups: &[Vec<usize>], max_rows: usize, seed: u64) -> (Vec<usize>, usize) {
    let total: usize = groups.iter().map(Vec::len).sum();
    if total <= max_rows {
        return ((0..total).collect(), groups.len());
    }
    let mut order: Vec<usize> = (0..groups.len()).collect();
    order.shuffle(&mut ChaCha8Rng::seed_from_u64(seed ^ 0x5eed_c057_0e55_a11e));
    let mut rows = Vec::with_capacity(max_rows);
    let mut used = 0;
    for c in order {
        if rows.len() >= max_rows {
            break;
        }
        rows.extend_from_slice(&groups[c]);
        used += 1;
    }
    rows.sort_unstable();
    (rows, used)
}

/// The permutation drop with ±1 standard deviation (when measured) and the
/// gain share (when the model has one), one bar each per feature, every
/// feature named, the most important at the top.
pub(crate) fn draw(area: &Area<'_>, imp: &Importance, title: &str) -> anyhow::Result<()> {
    let (top, body) = area.split_vertically(64);
    top.draw(&Text::new(
        format!("Feature importance ({title})"),
        (16, 10),
        (FONT, 18).into_font(),
    ))
    .map_err(plot_err)?;
    let has_gain = imp.gain_kind.is_some();
    let mut how = if imp.repeats == 0 {
        "no permutation importance (repeats: 0)".to_owned()
    } else {
        format!(
            "permutation: {} row shuffles per feature on {} of {} holdout rows{}, seed {}",
            imp.repeats,
            imp.rows_used,
            imp.holdout_rows,
            if imp.rows_used < imp.holdout_rows {
                " (whole customers)"
            } else {
                ""
            },
            imp.seed
        )
    };
    if !has_gain {
        how.push_str("; this model records no split gain");
    }
    top.draw(&Text::new(how, (16, 38), (FONT, 13).into_font()))
        .map_err(plot_err)?;
    let names: Vec<&str> = imp.features.iter().map(|i| i.feature.as_str()).collect();
    let permutation = (imp.repeats > 0).then(|| Panel {
        values: imp
            .features
            .iter()
            .map(|i| i.permutation_mean.unwrap_or(0.0))
            .collect(),
        errors: imp
            .features
            .iter()
            .map(|i| i.permutation_std.unwrap_or(0.0))
            .collect(),
        x_desc: "drop in holdout PR-AUC when shuffled",
        colour: BLUE.mix(0.7),
        label: format!("PR-AUC drop, mean of {} shuffles", imp.repeats),
        percent: false,
    });
    let gain = has_gain.then(|| Panel {
        values: imp.features.iter().map(|i| i.gain_share.unwrap_or(0.0)).collect(),
        errors: Vec::new(),
        x_desc: "share of the total split gain",
        colour: RGBColor(230, 140, 20).mix(1.0),
        label: "gain share".into(),
        percent: true,
    });
    match (permutation, gain) {
        (Some(p), Some(g)) => {
            let (left, right) = body.split_horizontally(470);
            draw_panel(&left, &names, p, true)?;
            draw_panel(&right, &names, g, false)
        }
        (Some(only), None) | (None, Some(only)) => draw_panel(&body, &names, only, true),
        (None, None) => Ok(()),
    }
}

/// One panel of horizontal bars: a value per feature, with a ±error
/// whisker when `errors` has one per feature.
struct Panel {
    values: Vec<f64>,
    errors: Vec<f64>,
    x_desc: &'static str,
    colour: RGBAColor,
    label: String,
    /// The x axis as percentages (shares).
    percent: bool,
}

fn draw_panel(area: &Area<'_>, names: &[&str], p: Panel, with_names: bool) -> anyhow::Result<()> {
    let n = names.len();
    let err = |k: usize| p.errors.get(k).copied().unwrap_or(0.0);
    let hi = (0..n).map(|k| p.values[k] + err(k)).fold(0.0, f64::max);
    let lo = (0..n).map(|k| p.values[k] - err(k)).fold(0.0, f64::min);
    let pad = 0.05 * (hi - lo).max(1e-3);
    // Feature k is segment n - 1 - k of the segments 0..=n - 1: the list's
    // first (the most important) at the top.
    let row = |k: usize| n - 1 - k;
    let name_of = |v: &SegmentValue<usize>| match v {
        SegmentValue::CenterOf(i) | SegmentValue::Exact(i) if with_names && *i < n => {
            names[n - 1 - i].to_owned()
        }
        _ => String::new(),
    };
    let mut chart = ChartBuilder::on(area)
        .margin(10)
        .x_label_area_size(40)
        .y_label_area_size(if with_names { 150 } else { 0 })
        .build_cartesian_2d(
            (lo - if lo < 0.0 { pad } else { 0.0 })..(hi + pad),
            (0..n.saturating_sub(1)).into_segmented(),
        )
        .map_err(plot_err)?;
    let percent = |v: &f64| format!("{:.0} %", 100.0 * v);
    let plain = |v: &f64| format!("{v:.2}");
    chart
        .configure_mesh()
        .disable_y_mesh()
        .max_light_lines(1)
        .y_labels(n + 1)
        .y_label_formatter(&name_of)
        .x_labels(if with_names { 6 } else { 4 })
        .x_label_formatter(if p.percent { &percent } else { &plain })
        .x_desc(p.x_desc)
        .label_style((FONT, 12))
        .axis_desc_style((FONT, 13))
        .draw()
        .map_err(plot_err)?;
    // Bars at most 24 pixels thick, whatever the number of features.
    let segment = chart.plotting_area().dim_in_pixel().1 / n.max(1) as u32;
    let margin = (segment.saturating_sub(24) / 2).max(3);
    let colour = p.colour;
    chart
        .draw_series(p.values.iter().enumerate().map(|(k, &v)| {
            let mut bar = Rectangle::new(
                [
                    (0.0, SegmentValue::Exact(row(k))),
                    (v, SegmentValue::Exact(row(k) + 1)),
                ],
                colour.filled(),
            );
            bar.set_margin(margin, margin, 0, 0);
            bar
        }))
        .map_err(plot_err)?
        .label(p.label)
        .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 16, y + 5)], colour.filled()));
    if p.errors.len() == n {
        // A whisker from v - e to v + e with an 8-pixel cap at each end
        // (plotters' `ErrorBar` needs a feature the workspace leaves off).
        let whisker = BLACK.stroke_width(1);
        let ends = |k: usize| [p.values[k] - err(k), p.values[k] + err(k)];
        chart
            .draw_series((0..n).flat_map(|k| {
                let y = SegmentValue::CenterOf(row(k));
                ends(k).map(|x| {
                    EmptyElement::at((x, y.clone())) + PathElement::new(vec![(0, -4), (0, 4)], whisker)
                })
            }))
            .map_err(plot_err)?;
        chart
            .draw_series((0..n).map(|k| {
                let [from, to] = ends(k);
                let y = SegmentValue::CenterOf(row(k));
                PathElement::new(vec![(from, y.clone()), (to, y)], whisker)
            }))
            .map_err(plot_err)?
            .label("±1 standard deviation")
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 16, y)], whisker));
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::LowerRight)
        .label_font((FONT, 12))
        .background_style(WHITE.mix(0.9))
        .border_style(BLACK)
        .draw()
        .map_err(plot_err)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use revspend_core::calibration::Calibrator;
    use revspend_core::features::Feature;
    use revspend_core::model::{Classifier, Logistic};

    /// A logistic model over three features whose only weight is on the
    /// first: `valor` carries all the signal, the others none.
    fn model(coefficients: [f64; 3]) -> ModelArtifact {
        let json = r#"{"seed":1}"#.to_owned();
        ModelArtifact {
            model_version: "m".into(),
            algorithm: "logistic".into(),
            hyperparameters: "{}".into(),
            features: vec![Feature::Valor, Feature::Idade, Feature::Month],
            rule: revspend_core::target::TargetRule {
                threshold_pct: 20.0,
                vital_groups: vec![],
            },
            classifier: Classifier::Logistic(Logistic {
                mean: vec![0.0; 3],
                scale: vec![1.0; 3],
                coefficients: coefficients.to_vec(),
                intercept: 0.0,
            }),
            calibrator: Calibrator::Identity,
            threshold: 0.5,
            threshold_source: "params".into(),
            training_prior: 0.5,
            params_hash: revspend_core::artifact::sha256_hex(json.as_bytes()),
            train_params: json,
            data_hash: String::new(),
            test_metrics: serde_json::from_value(serde_json::json!({
                "roc_auc": 0.0, "pr_auc": 0.0, "brier": 0.0, "log_loss": 0.0, "ece": 0.0,
                "threshold": 0.5, "precision": 0.0, "recall": 0.0, "f1": 0.0,
                "confusion": {"tp": 0, "fp": 0, "tn": 0, "fn": 0}
            }))
            .expect("metrics"),
            reliability: serde_json::from_value(serde_json::json!({
                "before": [], "after": [], "ece_before": 0.0, "ece_after": 0.0
            }))
            .expect("reliability"),
            written_by: "test".into(),
            key_fingerprint: String::new(),
        }
    }

    /// `n` rows of customers of 10 rows each: the label is `valor > 0`
    /// (with a few flipped), `idade` and `month` are unrelated to it.
    fn holdout(n: usize) -> (FeatureMatrix, Vec<bool>, Vec<String>) {
        let mut values = Vec::with_capacity(3 * n);
        let mut y = Vec::with_capacity(n);
        for i in 0..n {
            let valor = ((i * 37) % 101) as f64 / 50.0 - 1.0;
            values.extend([valor, ((i * 13) % 7) as f64, (i % 12) as f64]);
            y.push((valor > 0.0) ^ i.is_multiple_of(11));
        }
        let customers = (0..n).map(|i| format!("c{}", i / 10)).collect();
        (FeatureMatrix::new(n, 3, values), y, customers)
    }

    fn by_name<'a>(imp: &'a Importance, name: &str) -> &'a FeatureImportance {
        imp.features.iter().find(|i| i.feature == name).expect("feature")
    }

    /// Issue 14: the feature carrying all the signal loses most of the
    /// PR-AUC when shuffled; features the model does not use lose none.
    #[test]
    fn the_feature_carrying_the_signal_is_the_important_one() {
        let (x, y, customers) = holdout(600);
        let imp = compute(&model([2.0, 0.0, 0.0]), &x, &y, &customers, 5, 7).expect("importance");
        let valor = by_name(&imp, "valor");
        let drop = valor.permutation_mean.expect("measured");
        assert!(drop > 0.2, "valor: {valor:?}");
        assert!(
            valor.permutation_roc_auc_mean.expect("measured") > 0.3,
            "{valor:?}"
        );
        for unused in ["idade", "month"] {
            let i = by_name(&imp, unused);
            assert!(i.permutation_mean.expect("measured").abs() < 1e-12, "{i:?}");
            assert_eq!(i.permutation_std, Some(0.0));
        }
        assert_eq!(imp.features[0].feature, "valor", "the most important first");
        // A logistic model records no split gain: none is invented.
        assert_eq!(imp.gain_kind, None);
        assert!(
            imp.features
                .iter()
                .all(|i| i.gain.is_none() && i.gain_share.is_none())
        );
        assert_eq!(
            (imp.shuffle, imp.rows_used, imp.customers_used),
            ("rows", 600, 60)
        );
        assert!(imp.baseline_pr_auc.expect("baseline") > 0.8);

        let none = compute(&model([2.0, 0.0, 0.0]), &x, &y, &customers, 0, 7).expect("importance");
        assert!(none.features.iter().all(|i| i.permutation_mean.is_none()));
        assert_eq!((none.baseline_pr_auc, none.rows_used), (None, 0));
    }

    /// Issue 14: the same seed gives the same bits on 1 and 2 threads;
    /// another seed gives other shuffles.
    #[test]
    fn permutation_importance_does_not_depend_on_the_thread_count() {
        // Enough rows that the second thread takes part.
        let (x, y, customers) = holdout(50_000);
        let m = model([2.0, 0.3, -0.2]);
        let on = |threads: usize, seed: u64| {
            rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .expect("pool")
                .install(|| compute(&m, &x, &y, &customers, 4, seed).expect("importance"))
        };
        let one = on(1, 3);
        assert_eq!(one, on(2, 3));
        assert_ne!(one, on(2, 4), "the seed draws the shuffles");
        assert!(one.features.iter().all(|i| i.permutation_std.expect("std") > 0.0));
    }

    /// A capped holdout keeps whole customers, seeded, rows in order.
    #[test]
    fn a_capped_holdout_is_a_sample_of_whole_customers() {
        let groups: Vec<Vec<usize>> = (0..50).map(|c| (3 * c..3 * c + 3).collect()).collect();
        let (rows, customers) = sample_customers(&groups, 31, 9);
        assert_eq!((rows.len(), customers), (33, 11));
        assert!(rows.windows(2).all(|w| w[0] < w[1]));
        assert!(rows.chunks(3).all(|c| c[0] % 3 == 0 && c[2] == c[0] + 2));
        assert_eq!(sample_customers(&groups, 31, 9).0, rows);
        assert_ne!(sample_customers(&groups, 31, 10).0, rows);
        assert_eq!(sample_customers(&groups, 150, 9), ((0..150).collect(), 50));
    }

    #[test]
    fn mean_and_population_std_of_the_drops() {
        let [pr, roc] = mean_std(&[[0.1, 1.0], [0.3, 1.0]]);
        assert!((pr[0] - 0.2).abs() < 1e-12 && (pr[1] - 0.1).abs() < 1e-12);
        assert_eq!(roc, [1.0, 0.0]);
    }
}
