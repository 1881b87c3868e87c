//! Metric types, and the binary-classification metrics both `train` (to pick
//! a threshold) and `evaluate` (to report) need: one implementation, so the
//! two stages cannot disagree on what F1 or PR-AUC means.

use serde::{Deserialize, Serialize};

/// Quality of probabilistic predictions of a binary target.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BinaryMetrics {
    pub roc_auc: f64,
    /// Average precision (area under the precision-recall step curve).
    pub pr_auc: f64,
    pub brier: f64,
    /// Mean negative log-likelihood (probabilities clamped to [1e-15, 1 − 1e-15]).
    pub log_loss: f64,
    /// Expected calibration error over [`ECE_BINS`] equal-width bins.
    pub ece: f64,
    /// Decision threshold the counts below use (`probability >= threshold`).
    pub threshold: f64,
    pub precision: f64,
    pub recall: f64,
    pub f1: f64,
    pub confusion: Confusion,
}

/// Confusion counts at a threshold.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Confusion {
    pub tp: u64,
    pub fp: u64,
    pub tn: u64,
    #[serde(rename = "fn")]
    pub fn_: u64,
}

impl Confusion {
    pub fn at(scores: &[f64], labels: &[bool], threshold: f64) -> Confusion {
        let mut c = Confusion::default();
        for (&s, &y) in scores.iter().zip(labels) {
            match (s >= threshold, y) {
                (true, true) => c.tp += 1,
                (true, false) => c.fp += 1,
                (false, false) => c.tn += 1,
                (false, true) => c.fn_ += 1,
            }
        }
        c
    }

    pub fn precision(&self) -> f64 {
        ratio(self.tp, self.tp + self.fp)
    }

    pub fn recall(&self) -> f64 {
        ratio(self.tp, self.tp + self.fn_)
    }

    pub fn f1(&self) -> f64 {
        ratio(2 * self.tp, 2 * self.tp + self.fp + self.fn_)
    }
}

fn ratio(a: u64, b: u64) -> f64 {
    if b == 0 { 0.0 } else { a as f64 / b as f64 }
}

impl BinaryMetrics {
    /// All metrics of `scores` against `labels` at `threshold`.
    pub fn compute(scores: &[f64], labels: &[bool], threshold: f64) -> BinaryMetrics {
        let curve = Curve::new(scores, labels);
        let confusion = Confusion::at(scores, labels, threshold);
        BinaryMetrics {
            roc_auc: curve.roc_auc(),
            pr_auc: curve.average_precision(),
            brier: brier(scores, labels),
            log_loss: log_loss(scores, labels),
            ece: ece(&reliability(scores, labels, ECE_BINS)),
            threshold,
            precision: confusion.precision(),
            recall: confusion.recall(),
            f1: confusion.f1(),
            confusion,
        }
    }
}

/// Mean squared error of probabilities against 0/1 outcomes.
pub fn brier(scores: &[f64], labels: &[bool]) -> f64 {
    if scores.is_empty() {
        return 0.0;
    }
    let sum: f64 = scores
        .iter()
        .zip(labels)
        .map(|(&s, &y)| (s - if y { 1.0 } else { 0.0 }).powi(2))
        .sum();
    sum / scores.len() as f64
}

/// Mean negative log-likelihood of 0/1 outcomes.
pub fn log_loss(scores: &[f64], labels: &[bool]) -> f64 {
    if scores.is_empty() {
        return 0.0;
    }
    let sum: f64 = scores
        .iter()
        .zip(labels)
        .map(|(&s, &y)| {
            let p = s.clamp(1e-15, 1.0 - 1e-15);
            -if y { p.ln() } else { (1.0 - p).ln() }
        })
        .sum();
    sum / scores.len() as f64
}

/// Bins of the reliability diagram and of the expected calibration error.
pub const ECE_BINS: usize = 10;

/// One bin of a reliability diagram: predictions in `[lower, upper)` (the
/// last bin includes 1).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReliabilityBin {
    pub lower: f64,
    pub upper: f64,
    pub count: u64,
    /// Mean predicted probability in the bin (0 when empty).
    pub mean_predicted: f64,
    /// Share of positives in the bin (0 when empty).
    pub observed_rate: f64,
}

/// Reliability diagram over `bins` equal-width probability bins.
pub fn reliability(scores: &[f64], labels: &[bool], bins: usize) -> Vec<ReliabilityBin> {
    let bins = bins.max(1);
    let mut count = vec![0u64; bins];
    let mut sum_p = vec![0f64; bins];
    let mut sum_y = vec![0f64; bins];
    for (&s, &y) in scores.iter().zip(labels) {
        let b = ((s.clamp(0.0, 1.0) * bins as f64) as usize).min(bins - 1);
        count[b] += 1;
        sum_p[b] += s;
        sum_y[b] += f64::from(u8::from(y));
    }
    (0..bins)
        .map(|b| {
            let n = count[b] as f64;
            ReliabilityBin {
                lower: b as f64 / bins as f64,
                upper: (b + 1) as f64 / bins as f64,
                count: count[b],
                mean_predicted: if count[b] == 0 { 0.0 } else { sum_p[b] / n },
                observed_rate: if count[b] == 0 { 0.0 } else { sum_y[b] / n },
            }
        })
        .collect()
}

/// Expected calibration error: the count-weighted mean gap between
/// predicted and observed rates over the bins.
pub fn ece(bins: &[ReliabilityBin]) -> f64 {
    let total: u64 = bins.iter().map(|b| b.count).sum();
    if total == 0 {
        return 0.0;
    }
    bins.iter()
        .map(|b| b.count as f64 * (b.mean_predicted - b.observed_rate).abs())
        .sum::<f64>()
        / total as f64
}

/// One distinct score threshold with the counts at `score >= threshold`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct CurvePoint {
    pub threshold: f64,
    pub tp: u64,
    pub fp: u64,
}

/// Ranking curve: cumulative counts at each distinct score, high to low.
#[derive(Debug, Clone, PartialEq)]
pub struct Curve {
    pub points: Vec<CurvePoint>,
    pub positives: u64,
    pub negatives: u64,
}

impl Curve {
    pub fn new(scores: &[f64], labels: &[bool]) -> Curve {
        let mut order: Vec<usize> = (0..scores.len()).collect();
        order.sort_by(|&a, &b| scores[b].total_cmp(&scores[a]));
        let mut points = Vec::new();
        let (mut tp, mut fp) = (0u64, 0u64);
        for (k, &i) in order.iter().enumerate() {
            if labels[i] {
                tp += 1;
            } else {
                fp += 1;
            }
            // Close a point only after the last row sharing this score.
            let last_of_score = order.get(k + 1).is_none_or(|&j| scores[j] != scores[i]);
            if last_of_score {
                points.push(CurvePoint {
                    threshold: scores[i],
                    tp,
                    fp,
                });
            }
        }
        Curve {
            points,
            positives: tp,
            negatives: fp,
        }
    }

    /// False- and true-positive rates, starting at (0, 0).
    pub fn roc(&self) -> Vec<(f64, f64, f64)> {
        let mut out = vec![(0.0, 0.0, f64::INFINITY)];
        for p in &self.points {
            out.push((
                ratio(p.fp, self.negatives),
                ratio(p.tp, self.positives),
                p.threshold,
            ));
        }
        out
    }

    /// Trapezoidal area under the ROC curve (0.5 when one class is absent).
    pub fn roc_auc(&self) -> f64 {
        if self.positives == 0 || self.negatives == 0 {
            return 0.5;
        }
        let roc = self.roc();
        roc.windows(2)
            .map(|w| (w[1].0 - w[0].0) * (w[1].1 + w[0].1) / 2.0)
            .sum()
    }

    /// (recall, precision, threshold) at each distinct score.
    pub fn precision_recall(&self) -> Vec<(f64, f64, f64)> {
        self.points
            .iter()
            .map(|p| (ratio(p.tp, self.positives), ratio(p.tp, p.tp + p.fp), p.threshold))
            .collect()
    }

    /// Average precision: Σ (R_k − R_{k−1}) · P_k, as scikit-learn defines it.
    pub fn average_precision(&self) -> f64 {
        if self.positives == 0 {
            return 0.0;
        }
        let mut prev_recall = 0.0;
        let mut ap = 0.0;
        for (recall, precision, _) in self.precision_recall() {
            ap += (recall - prev_recall) * precision;
            prev_recall = recall;
        }
        ap
    }

    /// The threshold with the highest F1 (ties: the higher threshold).
    pub fn best_f1_threshold(&self) -> Option<(f64, f64)> {
        let mut best: Option<(f64, f64)> = None;
        for p in &self.points {
            let f1 = ratio(2 * p.tp, p.tp + p.fp + self.positives);
            if best.is_none_or(|(_, b)| f1 > b) {
                best = Some((p.threshold, f1));
            }
        }
        best
    }

    /// The threshold with the lowest `fp_cost · FP + fn_cost · FN` (ties:
    /// the higher threshold).
    pub fn min_cost_threshold(&self, fp_cost: f64, fn_cost: f64) -> Option<(f64, f64)> {
        let mut best: Option<(f64, f64)> = None;
        for p in &self.points {
            let cost = fp_cost * p.fp as f64 + fn_cost * (self.positives - p.tp) as f64;
            if best.is_none_or(|(_, b)| cost < b) {
                best = Some((p.threshold, cost));
            }
        }
        best
    }
}

/// What `evaluate` reports for one split: the model (calibrated, and the
/// classifier before calibration) and a baseline that always predicts the
/// training prior.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EvaluationReport {
    pub model_version: String,
    pub algorithm: String,
    pub calibration: String,
    pub split: String,
    pub rows: u64,
    pub positives: u64,
    pub prevalence: f64,
    pub model: BinaryMetrics,
    pub model_uncalibrated: BinaryMetrics,
    pub baseline_prior: BinaryMetrics,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn perfect_and_inverted_rankings() {
        let labels = [true, true, false, false];
        let perfect = BinaryMetrics::compute(&[0.9, 0.8, 0.2, 0.1], &labels, 0.5);
        assert_eq!(perfect.roc_auc, 1.0);
        assert_eq!(perfect.pr_auc, 1.0);
        assert_eq!(perfect.f1, 1.0);
        let inverted = BinaryMetrics::compute(&[0.1, 0.2, 0.8, 0.9], &labels, 0.5);
        assert_eq!(inverted.roc_auc, 0.0);
        assert_eq!(
            inverted.confusion,
            Confusion {
                tp: 0,
                fp: 2,
                tn: 0,
                fn_: 2
            }
        );
    }

    #[test]
    fn ties_give_the_chance_diagonal() {
        let labels = [true, false, true, false, false];
        let flat = BinaryMetrics::compute(&[0.4; 5], &labels, 0.5);
        assert!((flat.roc_auc - 0.5).abs() < 1e-12);
        // A constant score ranks nothing: average precision is the prevalence.
        assert!((flat.pr_auc - 0.4).abs() < 1e-12);
        assert!((flat.brier - (2.0 * 0.36 + 3.0 * 0.16) / 5.0).abs() < 1e-12);
    }

    #[test]
    fn known_average_precision() {
        // scikit-learn: average_precision_score([1,0,1,0], [.9,.8,.7,.1]) = 0.8333…
        let m = BinaryMetrics::compute(&[0.9, 0.8, 0.7, 0.1], &[true, false, true, false], 0.5);
        assert!((m.pr_auc - 5.0 / 6.0).abs() < 1e-12);
        assert!((m.roc_auc - 0.75).abs() < 1e-12);
    }

    #[test]
    fn best_f1_threshold_separates() {
        let c = Curve::new(&[0.9, 0.8, 0.3, 0.1], &[true, true, false, false]);
        assert_eq!(c.best_f1_threshold(), Some((0.8, 1.0)));
        // Missing a positive costs 10, flagging a negative 1: flag down to 0.3.
        assert_eq!(c.min_cost_threshold(1.0, 10.0), Some((0.8, 0.0)));
        let c = Curve::new(&[0.9, 0.8, 0.3, 0.1], &[true, false, true, false]);
        assert_eq!(c.min_cost_threshold(1.0, 10.0), Some((0.3, 1.0)));
    }

    #[test]
    fn reliability_bins_and_ece() {
        let scores = [0.05, 0.15, 0.15, 0.95, 1.0];
        let labels = [false, false, true, true, true];
        let bins = reliability(&scores, &labels, 10);
        assert_eq!(bins.len(), 10);
        assert_eq!(bins[1].count, 2);
        assert!((bins[1].observed_rate - 0.5).abs() < 1e-12);
        assert_eq!(bins[9].count, 2, "1.0 falls in the last bin");
        // |0.05-0| + 2|0.15-0.5| + 2|0.975-1|, over 5.
        let want = (0.05 + 2.0 * 0.35 + 2.0 * 0.025) / 5.0;
        assert!((ece(&bins) - want).abs() < 1e-12);
        assert_eq!(ece(&reliability(&[], &[], 10)), 0.0);
    }
}
