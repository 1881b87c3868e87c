//! Prediction drift: a window's score distribution against the scores of
//! the test split (held out from training, scored by the same model), on
//! the reference's decile bins, with PSI and the Jensen–Shannon distance.
//!
//! Deciles rather than equal widths: calibrated probabilities of a rare
//! class crowd near 0, where equal-width bins would put most of the mass in
//! one bin and hide a shift inside it.

use serde::Serialize;

use crate::drift::{self, DriftError, PsiLevel};

/// Bins of the reference scores.
#[derive(Debug, Clone, PartialEq)]
pub struct ScoreBins {
    /// Inner cut points, ascending and distinct: bin `i` holds scores with
    /// `cuts[i - 1] <= p < cuts[i]`.
    cuts: Vec<f64>,
    reference: Vec<u64>,
    reference_mean: f64,
    reference_decision_rate: f64,
}

/// How a window's scores moved.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PredictionDrift {
    pub psi: f64,
    pub psi_level: PsiLevel,
    pub js: f64,
    pub mean_score: f64,
    pub reference_mean_score: f64,
    pub decision_rate: f64,
    pub reference_decision_rate: f64,
    /// Share of the reference and of the window in each bin, for a plot.
    pub bins: Vec<ScoreBin>,
}

/// One bin of [`PredictionDrift`].
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ScoreBin {
    /// The bin's lower edge (`None` for the first).
    pub from: Option<f64>,
    pub reference_share: f64,
    pub window_share: f64,
}

impl ScoreBins {
    /// Decile bins of `scores` (ties can merge bins), with the decision
    /// rate at `threshold`. `None` without scores.
    pub fn from_reference(scores: &[f64], threshold: f64, bins: usize) -> Option<ScoreBins> {
        if scores.is_empty() || bins == 0 {
            return None;
        }
        let mut sorted = scores.to_vec();
        sorted.sort_by(f64::total_cmp);
        let mut cuts: Vec<f64> = (1..bins)
            .map(|k| sorted[(k * sorted.len()) / bins])
            .filter(|c| *c > sorted[0])
            .collect();
        cuts.dedup();
        let mut b = ScoreBins {
            cuts,
            reference: Vec::new(),
            reference_mean: mean(scores),
            reference_decision_rate: rate(scores, threshold),
        };
        b.reference = b.counts(scores);
        Some(b)
    }

    /// Counts of `scores` per bin.
    pub fn counts(&self, scores: &[f64]) -> Vec<u64> {
        let mut counts = vec![0u64; self.cuts.len() + 1];
        for &p in scores {
            counts[self.cuts.partition_point(|&c| c <= p)] += 1;
        }
        counts
    }

    /// The window's drift against the reference.
    pub fn drift(
        &self,
        scores: &[f64],
        threshold: f64,
        psi_warn: f64,
        psi_alarm: f64,
    ) -> Result<PredictionDrift, DriftError> {
        let counts = self.counts(scores);
        let psi = drift::psi_counts(&self.reference, &counts)?.psi;
        let js = drift::jensen_shannon_counts(&self.reference, &counts, f64::INFINITY)?.statistic;
        let share = |c: &[u64], i: usize| c[i] as f64 / c.iter().sum::<u64>().max(1) as f64;
        Ok(PredictionDrift {
            psi,
            psi_level: if psi >= psi_alarm {
                PsiLevel::Alarm
            } else if psi >= psi_warn {
                PsiLevel::Warn
            } else {
                PsiLevel::Stable
            },
            js,
            mean_score: mean(scores),
            reference_mean_score: self.reference_mean,
            decision_rate: rate(scores, threshold),
            reference_decision_rate: self.reference_decision_rate,
            bins: (0..counts.len())
                .map(|i| ScoreBin {
                    from: i.checked_sub(1).map(|j| self.cuts[j]),
                    reference_share: share(&self.reference, i),
                    window_share: share(&counts, i),
                })
                .collect(),
        })
    }
}

fn mean(x: &[f64]) -> f64 {
    x.iter().sum::<f64>() / x.len().max(1) as f64
}

fn rate(x: &[f64], threshold: f64) -> f64 {
    x.iter().filter(|&&p| p >= threshold).count() as f64 / x.len().max(1) as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_reference_against_itself_does_not_drift_and_a_shift_does() {
        let reference: Vec<f64> = (0..1_000).map(|i| f64::from(i) / 1_000.0).collect();
        let bins = ScoreBins::from_reference(&reference, 0.5, 10).expect("bins");
        assert_eq!(bins.reference, vec![100; 10]);
        let same = bins.drift(&reference, 0.5, 0.1, 0.25).expect("drift");
        assert!(same.psi.abs() < 1e-12 && same.js.abs() < 1e-12, "{same:?}");
        assert!((same.decision_rate - 0.5).abs() < 1e-12);
        // Every score moved up by 0.2: the top two deciles take 40 % of the
        // window, the bottom two none.
        let shifted: Vec<f64> = reference.iter().map(|p| (p + 0.2).min(0.999)).collect();
        let d = bins.drift(&shifted, 0.5, 0.1, 0.25).expect("drift");
        assert_eq!(d.psi_level, PsiLevel::Alarm, "{d:?}");
        assert!((d.decision_rate - 0.7).abs() < 1e-12);
        assert_eq!(d.bins.len(), 10);
    }

    #[test]
    fn ties_merge_bins() {
        let reference = [0.01, 0.01, 0.01, 0.01, 0.01, 0.01, 0.01, 0.01, 0.5, 0.9];
        let bins = ScoreBins::from_reference(&reference, 0.5, 10).expect("bins");
        assert_eq!(bins.reference, vec![8, 1, 1]);
    }
}
