//! Precision, recall, F1 and the cost of errors at every decision
//! threshold, so a person sees what moving the model's threshold would do.
//!
//! The cost is `fp_cost · FP + fn_cost · FN` with the costs the model was
//! trained with (`train.threshold`, read from the params the artifact
//! records).

use revspend_core::metrics::Curve;
use serde::Serialize;

/// The counts' consequences at `score >= threshold`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct ThresholdPoint {
    pub threshold: f64,
    pub precision: f64,
    pub recall: f64,
    pub f1: f64,
    pub cost: f64,
}

fn ratio(a: f64, b: f64) -> f64 {
    if b > 0.0 { a / b } else { 0.0 }
}

/// One point per distinct score, highest threshold first.
pub fn sweep(curve: &Curve, fp_cost: f64, fn_cost: f64) -> Vec<ThresholdPoint> {
    let positives = curve.positives as f64;
    curve
        .points
        .iter()
        .map(|p| {
            let (tp, fp) = (p.tp as f64, p.fp as f64);
            let fn_ = positives - tp;
            ThresholdPoint {
                threshold: p.threshold,
                precision: ratio(tp, tp + fp),
                recall: ratio(tp, positives),
                f1: ratio(2.0 * tp, 2.0 * tp + fp + fn_),
                cost: fp_cost * fp + fn_cost * fn_,
            }
        })
        .collect()
}

/// The error costs in the model's recorded training params
/// (`threshold.fp_cost`, `threshold.fn_cost`); `None` when they are absent.
pub fn costs(train_params_json: &str) -> Option<(f64, f64)> {
    let v: serde_json::Value = serde_json::from_str(train_params_json).ok()?;
    let t = v.get("threshold")?;
    Some((t.get("fp_cost")?.as_f64()?, t.get("fn_cost")?.as_f64()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Issue 14: the sweep of a hand-computed example.
    #[test]
    fn every_threshold_of_a_hand_computed_example() {
        let curve = Curve::new(&[0.9, 0.8, 0.7, 0.6], &[true, false, true, false]);
        let s = sweep(&curve, 1.0, 5.0);
        let got: Vec<(f64, f64, f64, f64)> = s
            .iter()
            .map(|p| (p.threshold, p.precision, p.recall, p.cost))
            .collect();
        assert_eq!(
            got,
            [
                (0.9, 1.0, 0.5, 5.0),
                (0.8, 0.5, 0.5, 6.0),
                (0.7, 2.0 / 3.0, 1.0, 1.0),
                (0.6, 0.5, 1.0, 2.0)
            ]
        );
        let f1: Vec<f64> = s.iter().map(|p| p.f1).collect();
        assert!(
            (f1[0] - 2.0 / 3.0).abs() < 1e-12 && (f1[2] - 0.8).abs() < 1e-12,
            "{f1:?}"
        );
        assert_eq!(
            costs(r#"{"threshold":{"objective":"max_f1","fp_cost":1.0,"fn_cost":5.0}}"#),
            Some((1.0, 5.0))
        );
        assert_eq!(costs("{}"), None);
    }
}
