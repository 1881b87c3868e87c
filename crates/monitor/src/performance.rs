//! Model performance on a data window: estimated from the calibrated
//! probabilities before labels arrive (CBPE), realised once they have, the
//! calibration error, and alert bands learnt on the labelled reference.
//!
//! The estimate follows NannyML's confidence-based performance estimation for
//! binary classification (`nannyml/performance_estimation/confidence_based/
//! metrics.py`, functions `estimate_precision`, `estimate_recall`,
//! `estimate_f1`, `estimate_ap` and `estimate_roc_auc`): if the probabilities
//! are calibrated, a row with probability `p` is a positive with probability
//! `p`, so the expected confusion matrix at the decision threshold is
//!
//! ```text
//! TP = Σ p      over rows with p >= t      FP = Σ (1 − p) over rows with p >= t
//! FN = Σ p      over rows with p <  t      TN = Σ (1 − p) over rows with p <  t
//! ```
//!
//! and the ranking metrics walk the rows by descending `p` with the running
//! sums of `p` and `1 − p` in place of the true- and false-positive counts.
//! Where this module departs from NannyML it says so on the function.
//!
//! Realised metrics use [`revspend_core::metrics`] (the functions `evaluate`
//! reports with), so a realised PR-AUC here is the number `evaluate` prints
//! for the same rows. A metric that is undefined on a window (precision when
//! nothing is flagged, anything ranked when a class is absent) is `None`,
//! never NaN: NannyML returns 0 or NaN in those cases, as each function notes.
//!
//! Every function takes slices and does at most one sort, so a window of
//! millions of rows costs `O(n log n)`.

use std::ops::Range;

use revspend_core::metrics::{Confusion, Curve, ECE_BINS, ReliabilityBin, ece, reliability};
use serde::Serialize;

mod reference;
pub use reference::{
    Band, ChunkScores, Chunking, Reference, SamplingComponents, chunk_ranges, fit_reference,
};

/// NannyML's default multiplier of the reference standard deviation for the
/// alert bands (`StandardDeviationThreshold(std_lower_multiplier=3,
/// std_upper_multiplier=3)` in `nannyml/thresholds.py`, used for every CBPE
/// metric by `DEFAULT_THRESHOLDS` in `confidence_based/cbpe.py`).
pub const DEFAULT_STD_MULTIPLIER: f64 = 3.0;

/// NannyML's multiplier of the sampling error for an estimate's confidence
/// bounds (`SAMPLING_ERROR_RANGE` in `nannyml/sampling_error/__init__.py`).
pub const SAMPLING_ERROR_RANGE: f64 = 3.0;

/// Why performance could not be computed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum PerformanceError {
    /// Probabilities and labels of one window differ in length.
    #[error("{probabilities} probabilities but {labels} labels")]
    LengthMismatch { probabilities: usize, labels: usize },
    /// A probability that is NaN or outside `[0, 1]`.
    #[error("probability at row {row} is {value}, outside [0, 1]")]
    BadProbability { row: usize, value: f64 },
    /// A decision threshold that is not a finite number.
    #[error("decision threshold must be a finite number, got {0}")]
    BadThreshold(f64),
    /// The reference bands were fitted at another decision threshold than the
    /// window is scored at (another model), so they do not apply.
    #[error("the reference bands were fitted at threshold {reference}, the window uses {window}")]
    ThresholdMismatch { reference: f64, window: f64 },
    /// A chunk size or count of 0, or more chunks than rows.
    #[error("cannot split {rows} reference rows into {chunking:?}")]
    BadChunking { chunking: Chunking, rows: usize },
    /// A standard-deviation multiplier that is negative or not finite.
    #[error("the band multiplier must be a finite number >= 0, got {0}")]
    BadMultiplier(f64),
}

/// The five metrics that are estimated before labels and realised after.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Metric {
    Precision,
    Recall,
    F1,
    PrAuc,
    RocAuc,
}

impl Metric {
    pub const ALL: [Metric; 5] = [
        Metric::Precision,
        Metric::Recall,
        Metric::F1,
        Metric::PrAuc,
        Metric::RocAuc,
    ];

    /// The name in metric pairs and reports.
    pub fn name(self) -> &'static str {
        match self {
            Metric::Precision => "precision",
            Metric::Recall => "recall",
            Metric::F1 => "f1",
            Metric::PrAuc => "pr_auc",
            Metric::RocAuc => "roc_auc",
        }
    }
}

/// One value of each [`Metric`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct PerMetric<T> {
    pub precision: T,
    pub recall: T,
    pub f1: T,
    /// Average precision (the area under the precision-recall step curve).
    pub pr_auc: T,
    pub roc_auc: T,
}

impl<T> PerMetric<T> {
    pub fn get(&self, metric: Metric) -> &T {
        match metric {
            Metric::Precision => &self.precision,
            Metric::Recall => &self.recall,
            Metric::F1 => &self.f1,
            Metric::PrAuc => &self.pr_auc,
            Metric::RocAuc => &self.roc_auc,
        }
    }

    fn from_fn(mut f: impl FnMut(Metric) -> T) -> PerMetric<T> {
        PerMetric {
            precision: f(Metric::Precision),
            recall: f(Metric::Recall),
            f1: f(Metric::F1),
            pr_auc: f(Metric::PrAuc),
            roc_auc: f(Metric::RocAuc),
        }
    }
}

/// A confusion matrix in real numbers: CBPE's expected counts, or realised
/// counts converted (so the value of either is computed alike).
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct Counts {
    pub tp: f64,
    pub fp: f64,
    pub tn: f64,
    #[serde(rename = "fn")]
    pub fn_: f64,
}

impl Counts {
    pub fn rows(&self) -> f64 {
        self.tp + self.fp + self.tn + self.fn_
    }

    /// `TP / (TP + FP)`; `None` when nothing is flagged.
    pub fn precision(&self) -> Option<f64> {
        share(self.tp, self.tp + self.fp)
    }

    /// `TP / (TP + FN)`; `None` when there is no positive.
    pub fn recall(&self) -> Option<f64> {
        share(self.tp, self.tp + self.fn_)
    }

    /// `TP / (TP + (FP + FN) / 2)`, NannyML's form of F1; `None` when every
    /// row is a true negative.
    pub fn f1(&self) -> Option<f64> {
        share(self.tp, self.tp + 0.5 * (self.fp + self.fn_))
    }
}

impl From<Confusion> for Counts {
    fn from(c: Confusion) -> Counts {
        Counts {
            tp: c.tp as f64,
            fp: c.fp as f64,
            tn: c.tn as f64,
            fn_: c.fn_ as f64,
        }
    }
}

/// `a / b`, or `None` when `b` is 0 (the ratio is undefined, not 0).
fn share(a: f64, b: f64) -> Option<f64> {
    (b > 0.0).then(|| a / b)
}

/// CBPE's estimate on a window.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Estimated {
    /// Expected confusion counts at the decision threshold.
    pub confusion: Counts,
    /// Mean probability: the expected share of positives (`None` on an empty
    /// window).
    pub positive_rate: Option<f64>,
    #[serde(flatten)]
    pub scores: PerMetric<Option<f64>>,
}

/// Realised metrics on a labelled window.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Realised {
    pub positives: u64,
    /// Share of positive labels (`None` on an empty window).
    pub positive_rate: Option<f64>,
    pub confusion: Confusion,
    #[serde(flatten)]
    pub scores: PerMetric<Option<f64>>,
    /// Expected calibration error over `evaluate`'s [`ECE_BINS`] bins, the
    /// number the promotion gate's `max_ece` reads (`None` on an empty
    /// window).
    pub ece: Option<f64>,
    pub reliability: Vec<ReliabilityBin>,
}

fn check_threshold(threshold: f64) -> Result<(), PerformanceError> {
    if threshold.is_finite() {
        Ok(())
    } else {
        Err(PerformanceError::BadThreshold(threshold))
    }
}

fn check_probabilities(probabilities: &[f64]) -> Result<(), PerformanceError> {
    match probabilities.iter().position(|p| !(0.0..=1.0).contains(p)) {
        Some(row) => Err(PerformanceError::BadProbability {
            row,
            value: probabilities[row],
        }),
        None => Ok(()),
    }
}

fn check_labels(probabilities: &[f64], labels: &[bool]) -> Result<(), PerformanceError> {
    if probabilities.len() == labels.len() {
        Ok(())
    } else {
        Err(PerformanceError::LengthMismatch {
            probabilities: probabilities.len(),
            labels: labels.len(),
        })
    }
}

/// The expected confusion matrix at `threshold`: a row is flagged when
/// `p >= threshold`, the rule of [`Confusion::at`] and of the model artifact.
///
/// NannyML's `estimate_precision`/`estimate_recall`/`estimate_f1` sum the
/// same terms over its `y_pred` column.
pub fn expected_confusion(probabilities: &[f64], threshold: f64) -> Counts {
    let mut c = Counts::default();
    for &p in probabilities {
        if p >= threshold {
            c.tp += p;
            c.fp += 1.0 - p;
        } else {
            c.fn_ += p;
            c.tn += 1.0 - p;
        }
    }
    c
}

/// Estimated average precision and ROC-AUC from calibrated probabilities.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RankingEstimate {
    /// `None` when `Σ p = 0` (no expected positive).
    pub pr_auc: Option<f64>,
    /// `None` when `Σ p = 0` or `Σ (1 − p) = 0` (a class is expected absent).
    pub roc_auc: Option<f64>,
}

/// NannyML's `estimate_ap` and `estimate_roc_auc`
/// (`confidence_based/metrics.py`): sort by descending probability, take the
/// running sums `TP_k = Σ p` and `FP_k = Σ (1 − p)` over the first `k` rows,
/// then average precision `Σ (R_k − R_{k−1}) · TP_k / k` with
/// `R_k = TP_k / TP_n`, and the trapezoidal area under
/// `(FP_k / FP_n, TP_k / TP_n)` from `(0, 0)`.
///
/// Differences from NannyML, all deliberate:
/// - **Ties.** NannyML steps row by row even through rows of equal score.
///   Here a run of equal probabilities is one step, as the realised
///   [`Curve`] (and scikit-learn's `average_precision_score`, which NannyML
///   uses for the realised value) treats a tie: one threshold cannot flag
///   half of a tie. Isotonic calibration and tree scores make long ties, and
///   the row-by-row walk then credits an order within the tie that the model
///   does not make (on ties below the running precision it overstates the
///   AP; e.g. `p = [.9, .9, .1, .1]`:
///   NannyML 0.8667, here 0.86). The ROC area is the same either way (the
///   path through a tie of equal `p` is a straight line); without ties both
///   numbers are NannyML's.
/// - NannyML ranks by the uncalibrated score and sums the calibrated one;
///   the monitor has only the calibrated probability, a monotone map of the
///   score, so the order is the same except that the calibrator's flat
///   stretches become ties (above).
/// - NannyML computes `FP_k` as `k − TP_k` and rounds both running sums to 5
///   decimals (to hide negative float noise); here `FP_k` is its own sum of
///   `1 − p ≥ 0` and nothing is rounded (a difference below 1e-5 in the
///   counts).
/// - Where NannyML returns NaN (`0/0`), here the metric is `None`.
pub fn ranking_estimate(probabilities: &[f64]) -> RankingEstimate {
    let mut sorted = probabilities.to_vec();
    sorted.sort_unstable_by(|a, b| b.total_cmp(a));
    // Totals in the order of the walk, so the last point is exactly (1, 1).
    let (pos, neg) = sorted
        .iter()
        .fold((0.0, 0.0), |(t, f), &p| (t + p, f + (1.0 - p)));
    if pos <= 0.0 {
        return RankingEstimate {
            pr_auc: None,
            roc_auc: None,
        };
    }
    let (mut tp, mut fp) = (0.0, 0.0);
    let (mut prev_tp, mut prev_fp) = (0.0, 0.0);
    let (mut ap, mut area) = (0.0, 0.0);
    for (k, &p) in sorted.iter().enumerate() {
        tp += p;
        fp += 1.0 - p;
        let last_of_tie = sorted.get(k + 1).is_none_or(|&next| next != p);
        if last_of_tie {
            ap += (tp - prev_tp) * (tp / (k + 1) as f64);
            area += (fp - prev_fp) * (tp + prev_tp) / 2.0;
            prev_tp = tp;
            prev_fp = fp;
        }
    }
    RankingEstimate {
        pr_auc: Some(ap / pos),
        roc_auc: (neg > 0.0).then(|| area / (pos * neg)),
    }
}

/// CBPE on a window of calibrated probabilities at the model's decision
/// threshold.
///
/// Precision, recall and F1 are NannyML's `estimate_precision`,
/// `estimate_recall` and `estimate_f1` on the [`expected_confusion`], which
/// return 0 where the denominator is 0; here they are `None`. The ranking
/// metrics are [`ranking_estimate`].
pub fn estimate(probabilities: &[f64], threshold: f64) -> Result<Estimated, PerformanceError> {
    check_threshold(threshold)?;
    check_probabilities(probabilities)?;
    let confusion = expected_confusion(probabilities, threshold);
    let ranking = ranking_estimate(probabilities);
    let rows = probabilities.len() as f64;
    Ok(Estimated {
        confusion,
        positive_rate: share(confusion.tp + confusion.fn_, rows),
        scores: PerMetric {
            precision: confusion.precision(),
            recall: confusion.recall(),
            f1: confusion.f1(),
            pr_auc: ranking.pr_auc,
            roc_auc: ranking.roc_auc,
        },
    })
}

/// Realised metrics of a labelled window at the decision threshold, with the
/// functions `evaluate` uses ([`Confusion::at`], [`Curve::average_precision`],
/// [`Curve::roc_auc`], [`reliability`] and [`ece`] over [`ECE_BINS`]), so every
/// defined value equals `evaluate`'s on the same rows.
///
/// Undefined values are `None` where `evaluate` (and `revspend_core`) would
/// print a stand-in: precision with nothing flagged (core: 0), recall and
/// PR-AUC with no positive (core: 0), F1 when every row is a true negative
/// (core: 0), ROC-AUC with one class absent (core: 0.5). NannyML's realised
/// metrics are NaN in those cases, and also for precision, recall and F1
/// when the labels or the decisions are all one class, where they are
/// defined here (e.g. recall 0 when nothing is flagged). NannyML ranks the
/// realised ROC-AUC and AP by the uncalibrated score; here by the calibrated
/// probability, as `evaluate` reports the model.
pub fn realise(probabilities: &[f64], labels: &[bool], threshold: f64) -> Result<Realised, PerformanceError> {
    check_threshold(threshold)?;
    check_labels(probabilities, labels)?;
    check_probabilities(probabilities)?;
    let confusion = Confusion::at(probabilities, labels, threshold);
    let counts = Counts::from(confusion);
    let curve = Curve::new(probabilities, labels);
    let both_classes = curve.positives > 0 && curve.negatives > 0;
    let bins = reliability(probabilities, labels, ECE_BINS);
    let positives = confusion.tp + confusion.fn_;
    Ok(Realised {
        positives,
        positive_rate: share(positives as f64, probabilities.len() as f64),
        confusion,
        scores: PerMetric {
            precision: counts.precision(),
            recall: counts.recall(),
            f1: counts.f1(),
            pr_auc: (curve.positives > 0).then(|| curve.average_precision()),
            roc_auc: both_classes.then(|| curve.roc_auc()),
        },
        ece: (!probabilities.is_empty()).then(|| ece(&bins)),
        reliability: bins,
    })
}

/// An estimate held against its reference band.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct BandCheck {
    pub lower: f64,
    pub upper: f64,
    pub out_of_band: bool,
}

/// An estimate's sampling error and NannyML's confidence bounds
/// `estimate ± 3 · sampling error`, clipped to [0, 1]
/// (`Metric.get_chunk_record`).
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Confidence {
    pub sampling_error: f64,
    pub lower: f64,
    pub upper: f64,
}

/// Everything measured on one window.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct WindowPerformance {
    pub rows: usize,
    pub threshold: f64,
    /// Share of rows flagged (`p >= threshold`); `None` on an empty window.
    pub decision_rate: Option<f64>,
    pub estimated: Estimated,
    /// `None` until the window's labels are known.
    pub realised: Option<Realised>,
    /// Each estimate against the reference band (`None` without a reference
    /// or where the band or the estimate is undefined).
    pub bands: PerMetric<Option<BandCheck>>,
    pub confidence: PerMetric<Option<Confidence>>,
}

/// Scores a window: the estimate always, the realised metrics when `labels`
/// are given, and the band checks when a `reference` fitted at the same
/// threshold is given.
pub fn assess(
    probabilities: &[f64],
    labels: Option<&[bool]>,
    threshold: f64,
    reference: Option<&Reference>,
) -> Result<WindowPerformance, PerformanceError> {
    if let Some(r) = reference
        && r.threshold != threshold
    {
        return Err(PerformanceError::ThresholdMismatch {
            reference: r.threshold,
            window: threshold,
        });
    }
    let estimated = estimate(probabilities, threshold)?;
    let realised = labels.map(|y| realise(probabilities, y, threshold)).transpose()?;
    let rows = probabilities.len();
    let flagged = probabilities.iter().filter(|&&p| p >= threshold).count();
    let bands = PerMetric::from_fn(|m| {
        let value = (*estimated.scores.get(m))?;
        let band = (*reference?.bands.get(m))?;
        Some(BandCheck {
            lower: band.lower,
            upper: band.upper,
            out_of_band: band.out_of_band(value),
        })
    });
    let confidence = PerMetric::from_fn(|m| {
        let value = (*estimated.scores.get(m))?;
        let error = reference?.sampling.get(m).as_ref()?.error(rows)?;
        Some(Confidence {
            sampling_error: error,
            lower: (value - SAMPLING_ERROR_RANGE * error).max(0.0),
            upper: (value + SAMPLING_ERROR_RANGE * error).min(1.0),
        })
    });
    Ok(WindowPerformance {
        rows,
        threshold,
        decision_rate: share(flagged as f64, rows as f64),
        estimated,
        realised,
        bands,
        confidence,
    })
}

/// A window's results as `(name, value)` pairs for the alarm engine:
/// `estimated.<m>` and, with a band, `estimated.<m>.lower`, `.upper` and
/// `.out_of_band` (1 or 0); `realised.<m>`, `realised.ece` and
/// `realised.positive_rate` with labels; `estimated.positive_rate` and
/// `decision_rate`. An undefined value is left out, never NaN.
pub fn metric_pairs(window: &WindowPerformance) -> Vec<(String, f64)> {
    let mut out = Vec::new();
    let mut push = |name: String, value: Option<f64>| {
        if let Some(v) = value.filter(|v| v.is_finite()) {
            out.push((name, v));
        }
    };
    for m in Metric::ALL {
        let name = m.name();
        push(format!("estimated.{name}"), *window.estimated.scores.get(m));
        if let Some(b) = window.bands.get(m) {
            push(format!("estimated.{name}.lower"), Some(b.lower));
            push(format!("estimated.{name}.upper"), Some(b.upper));
            push(
                format!("estimated.{name}.out_of_band"),
                Some(if b.out_of_band { 1.0 } else { 0.0 }),
            );
        }
    }
    if let Some(r) = &window.realised {
        for m in Metric::ALL {
            push(format!("realised.{}", m.name()), *r.scores.get(m));
        }
        push("realised.ece".into(), r.ece);
        push("realised.positive_rate".into(), r.positive_rate);
    }
    push("estimated.positive_rate".into(), window.estimated.positive_rate);
    push("decision_rate".into(), window.decision_rate);
    out
}

#[cfg(test)]
mod tests {
    use super::reference::tests::{C1, C2, reference_rows};
    use super::*;
    use rand::{RngExt, SeedableRng};
    use rand_chacha::ChaCha8Rng;
    use revspend_core::metrics::BinaryMetrics;

    // Reference values marked "NannyML" come from
    // crates/monitor/tests/performance_reference.py (nannyml 0.13.1,
    // scikit-learn 1.9.1, numpy 2.4.6).

    fn close(got: Option<f64>, want: f64) {
        let got = got.expect("defined");
        assert!((got - want).abs() < 1e-12, "got {got}, want {want}");
    }

    const P: [f64; 6] = [0.9, 0.8, 0.6, 0.4, 0.3, 0.1];
    const Y: [bool; 6] = [true, true, false, true, false, false];

    #[test]
    fn cbpe_by_hand_matches_nannyml() {
        // Flagged (p >= 0.5): .9 .8 .6, so TP = 2.3, FP = 0.7; the rest:
        // FN = .4 + .3 + .1 = 0.8, TN = 2.2.
        let e = estimate(&P, 0.5).expect("valid");
        let c = e.confusion;
        assert!((c.tp - 2.3).abs() < 1e-12 && (c.fp - 0.7).abs() < 1e-12);
        assert!((c.fn_ - 0.8).abs() < 1e-12 && (c.tn - 2.2).abs() < 1e-12);
        // precision 2.3/3, recall 2.3/3.1, F1 2.3/(2.3 + 1.5/2).
        close(e.scores.precision, 0.7666666666666667); // NannyML
        close(e.scores.recall, 0.7419354838709679); // NannyML
        close(e.scores.f1, 0.7540983606557378); // NannyML
        // Running TP .9 1.7 2.3 2.7 3.0 3.1 over k = 1..6:
        // AP = (.9·.9 + .8·.85 + .6·2.3/3 + .4·.675 + .3·.6 + .1·3.1/6) / 3.1.
        close(e.scores.pr_auc, 2.4516666666666667 / 3.1);
        close(e.scores.pr_auc, 0.7908602150537634); // NannyML
        // Running FP .1 .3 .7 1.3 2.0 2.9: Σ ΔFP·(TP_k + TP_k−1)/2 = 7.345,
        // over Σp · Σ(1−p) = 3.1 · 2.9.
        close(e.scores.roc_auc, 7.345 / 8.99);
        close(e.scores.roc_auc, 0.8170189098998888); // NannyML
        close(e.positive_rate, 3.1 / 6.0);
    }

    #[test]
    fn a_tie_is_one_step_unlike_nannyml() {
        // p = .9 .9 .1 .1: one step to TP 1.8 of 2 rows (precision .9), one to
        // TP 2.0 of 4 (precision .5): AP = (1.8·.9 + .2·.5) / 2 = 0.86.
        // NannyML walks the tie row by row: 0.8666666666666667.
        let r = ranking_estimate(&[0.9, 0.9, 0.1, 0.1]);
        close(r.pr_auc, 0.86);
        // The ROC path through a tie is straight: both give 0.9 (NannyML 0.9).
        close(r.roc_auc, 0.9);
        // Without ties the order of the input does not matter.
        let shuffled = ranking_estimate(&[0.3, 0.9, 0.1, 0.6, 0.8, 0.4]);
        close(shuffled.pr_auc, 0.7908602150537634);
    }

    #[test]
    fn realised_by_hand_matches_scikit_learn_and_evaluate() {
        let r = realise(&P, &Y, 0.5).expect("valid");
        // Flagged .9(T) .8(T) .6(F); not flagged .4(T) .3(F) .1(F).
        assert_eq!(
            r.confusion,
            Confusion {
                tp: 2,
                fp: 1,
                tn: 2,
                fn_: 1
            }
        );
        close(r.scores.precision, 2.0 / 3.0);
        close(r.scores.recall, 2.0 / 3.0);
        close(r.scores.f1, 2.0 / 3.0);
        // Positives at ranks 1, 2, 4: AP = (1 + 1 + 3/4) / 3.
        close(r.scores.pr_auc, 0.9166666666666666); // scikit-learn …65
        // 8 of 9 positive-negative pairs ordered right.
        close(r.scores.roc_auc, 8.0 / 9.0);
        // One row per bin: |.9−1| + |.8−1| + |.6−0| + |.4−1| + |.3−0| + |.1−0|
        // = 1.9, over 6.
        close(r.ece, 1.9 / 6.0);
        close(r.positive_rate, 0.5);
        let evaluate = BinaryMetrics::compute(&P, &Y, 0.5);
        assert_eq!(r.scores.pr_auc, Some(evaluate.pr_auc));
        assert_eq!(r.scores.roc_auc, Some(evaluate.roc_auc));
        assert_eq!(r.ece, Some(evaluate.ece));
    }

    #[test]
    fn undefined_metrics_are_none_not_nan_or_zero() {
        // No positive label, nothing flagged.
        let r = realise(&[0.1, 0.2], &[false, false], 0.5).expect("valid");
        assert_eq!(r.scores, PerMetric::default());
        close(r.ece, 0.15);
        // Flagged but no positive: precision 0 is defined, recall is not.
        let r = realise(&[0.7, 0.2], &[false, false], 0.5).expect("valid");
        assert_eq!(r.scores.precision, Some(0.0));
        assert_eq!(r.scores.recall, None);
        // An empty window has no estimate at all.
        let e = estimate(&[], 0.5).expect("valid");
        assert_eq!(e.scores, PerMetric::default());
        assert_eq!(e.positive_rate, None);
        let w = assess(&[], Some(&[]), 0.5, None).expect("valid");
        assert_eq!(w.decision_rate, None);
        let pairs = metric_pairs(&w);
        assert!(pairs.is_empty(), "{pairs:?}");
        // All probabilities 0: no expected positive to rank.
        let e = estimate(&[0.0, 0.0], 0.5).expect("valid");
        assert_eq!(
            (e.scores.pr_auc, e.scores.roc_auc, e.scores.recall),
            (None, None, None)
        );
        // All 1: the ROC needs an expected negative, the AP does not.
        let r = ranking_estimate(&[1.0, 1.0]);
        assert_eq!((r.pr_auc, r.roc_auc), (Some(1.0), None));
    }

    #[test]
    fn bad_inputs_are_named() {
        assert!(matches!(
            estimate(&[0.2, 1.5], 0.5),
            Err(PerformanceError::BadProbability { row: 1, value }) if value == 1.5
        ));
        assert!(matches!(
            estimate(&[0.2, f64::NAN], 0.5),
            Err(PerformanceError::BadProbability { row: 1, .. })
        ));
        assert_eq!(
            realise(&[0.2], &[true, false], 0.5),
            Err(PerformanceError::LengthMismatch {
                probabilities: 1,
                labels: 2
            })
        );
        assert_eq!(
            estimate(&[0.2], f64::INFINITY),
            Err(PerformanceError::BadThreshold(f64::INFINITY))
        );
        let reference = fit_reference(&P, &Y, 0.5, Chunking::Size(3), 3.0).expect("valid");
        assert_eq!(
            assess(&P, None, 0.4, Some(&reference)),
            Err(PerformanceError::ThresholdMismatch {
                reference: 0.5,
                window: 0.4
            })
        );
        assert_eq!(
            fit_reference(&P, &Y, 0.5, Chunking::Size(3), -1.0),
            Err(PerformanceError::BadMultiplier(-1.0))
        );
    }

    /// `n` probabilities `u³` (mean 1/4, a minority flagged at 0.5) and
    /// labels drawn with probability `truth(p)`.
    fn synthetic(n: usize, seed: u64, truth: fn(f64) -> f64) -> (Vec<f64>, Vec<bool>) {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        (0..n)
            .map(|_| {
                let p = rng.random::<f64>().powi(3);
                let y = rng.random::<f64>() < truth(p);
                (p, y)
            })
            .unzip()
    }

    /// |estimated − realised| of each metric.
    fn gaps(p: &[f64], y: &[bool]) -> Vec<(Metric, f64)> {
        let w = assess(p, Some(y), 0.5, None).expect("valid");
        let r = w.realised.expect("labelled");
        Metric::ALL
            .iter()
            .map(|&m| {
                let e = w.estimated.scores.get(m).expect("estimated");
                let r = r.scores.get(m).expect("realised");
                (m, (e - r).abs())
            })
            .collect()
    }

    /// How far an estimate may sit from the realised value on 200,000
    /// calibrated rows (about 20% flagged): the gaps measured are 0.0005 to
    /// 0.0022, the sampling error of each metric a few thousandths.
    const TOLERANCE: f64 = 0.01;

    #[test]
    fn cbpe_tracks_realised_metrics_when_calibrated() {
        let (p, y) = synthetic(200_000, 7, |p| p);
        for (m, gap) in gaps(&p, &y) {
            assert!(gap < TOLERANCE, "{m:?}: estimate off by {gap}");
        }
        // The realised metrics are evaluate's on the same rows.
        let r = realise(&p, &y, 0.5).expect("valid");
        let evaluate = BinaryMetrics::compute(&p, &y, 0.5);
        assert_eq!(r.scores.pr_auc, Some(evaluate.pr_auc));
        assert_eq!(r.scores.roc_auc, Some(evaluate.roc_auc));
        assert_eq!(r.scores.f1, Some(evaluate.f1));
        assert!(r.ece.expect("rows") < 0.01, "calibrated: {:?}", r.ece);
    }

    #[test]
    fn cbpe_misses_when_the_probabilities_are_miscalibrated() {
        // Labels drawn from p²: the model overstates every probability. The
        // gaps measured: precision 0.177, recall 0.195, PR-AUC 0.031,
        // ROC-AUC 0.037, all past twice the tolerance. F1 misses by only
        // 0.007: the realised precision falls as the realised recall rises
        // (positives concentrate at high p), and the two nearly cancel.
        let (p, y) = synthetic(200_000, 7, |p| p * p);
        let gaps = gaps(&p, &y);
        let gap = |m: Metric| gaps.iter().find(|g| g.0 == m).expect("metric").1;
        for m in [Metric::Precision, Metric::Recall, Metric::PrAuc, Metric::RocAuc] {
            assert!(gap(m) > 2.0 * TOLERANCE, "{m:?}: estimate off by only {}", gap(m));
        }
        let r = realise(&p, &y, 0.5).expect("valid");
        assert!(r.ece.expect("rows") > 0.05, "miscalibrated: {:?}", r.ece);
    }

    #[test]
    fn window_pairs_name_every_metric() {
        let (p, y) = reference_rows(&[C1, C2, C2]);
        let reference = fit_reference(&p, &y, 0.5, Chunking::Size(4), 1.0).expect("valid");
        let w = assess(&P, Some(&Y), 0.5, Some(&reference)).expect("valid");
        let pairs = metric_pairs(&w);
        let get = |name: &str| {
            pairs
                .iter()
                .find(|(n, _)| n == name)
                .unwrap_or_else(|| panic!("{name} missing from {pairs:?}"))
                .1
        };
        assert!((get("estimated.precision") - 0.7666666666666667).abs() < 1e-12);
        // Estimated precision .767 is inside [.431, .902]; estimated PR-AUC
        // .791 is below the band's .810.
        assert_eq!(get("estimated.precision.out_of_band"), 0.0);
        assert_eq!(get("estimated.pr_auc.out_of_band"), 1.0);
        assert!((get("estimated.pr_auc.lower") - 0.8103214687570501).abs() < 1e-12);
        assert!((get("realised.roc_auc") - 8.0 / 9.0).abs() < 1e-12);
        assert!((get("realised.ece") - 1.9 / 6.0).abs() < 1e-12);
        assert_eq!(get("realised.positive_rate"), 0.5);
        assert!((get("estimated.positive_rate") - 3.1 / 6.0).abs() < 1e-12);
        assert_eq!(get("decision_rate"), 0.5);
        // 5 estimates × 4 names, 5 realised, ece, two positive rates and
        // the decision rate.
        assert_eq!(pairs.len(), 20 + 5 + 1 + 2 + 1, "{pairs:?}");
        assert!(pairs.iter().all(|(_, v)| v.is_finite()));
        // Confidence bounds: estimate ± 3 · sampling error, within [0, 1].
        let c = w.confidence.precision.expect("reference");
        assert!((c.sampling_error - 0.4714045207910317 / 3.0f64.sqrt()).abs() < 1e-12);
        // .767 ∓ .817 on 6 rows: clipped at both ends.
        assert_eq!((c.lower, c.upper), (0.0, 1.0));
        // Without labels nor reference: only the estimates and the rates.
        let names: Vec<String> = metric_pairs(&assess(&P, None, 0.5, None).expect("valid"))
            .into_iter()
            .map(|(n, _)| n)
            .collect();
        assert_eq!(
            names,
            [
                "estimated.precision",
                "estimated.recall",
                "estimated.f1",
                "estimated.pr_auc",
                "estimated.roc_auc",
                "estimated.positive_rate",
                "decision_rate"
            ]
        );
    }

    #[test]
    fn results_serialise_with_plain_names() {
        let w = assess(&P, Some(&Y), 0.5, None).expect("valid");
        let json = serde_json::to_value(&w).expect("serialisable");
        let expected_fn = json["estimated"]["confusion"]["fn"].as_f64().expect("number");
        assert!((expected_fn - 0.8).abs() < 1e-12);
        assert!(json["estimated"]["pr_auc"].is_number());
        assert_eq!(json["realised"]["confusion"]["fn"], 1);
        assert!(json["bands"]["precision"].is_null());
    }
}
