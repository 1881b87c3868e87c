//! The calibrated score's distribution per actual class: how far apart the
//! model puts revenge and other purchases, and where the threshold cuts.

use serde::Serialize;

/// Equal-width bins over [0, 1].
pub const BINS: usize = 20;

/// One bin: its range, the rows of each class in it, and those counts as
/// shares of their class (so the two classes compare despite the
/// imbalance).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ScoreBin {
    pub lower: f64,
    pub upper: f64,
    pub negatives: u64,
    pub positives: u64,
    pub negative_share: f64,
    pub positive_share: f64,
}

/// The histogram of `scores` per class of `y` over [`BINS`] bins (a score
/// of exactly 1 falls in the last bin).
pub fn per_class(scores: &[f64], y: &[bool]) -> Vec<ScoreBin> {
    let mut counts = [[0u64; 2]; BINS];
    for (&s, &t) in scores.iter().zip(y) {
        let bin = ((s.clamp(0.0, 1.0) * BINS as f64) as usize).min(BINS - 1);
        counts[bin][usize::from(t)] += 1;
    }
    let totals = counts
        .iter()
        .fold([0u64; 2], |acc, c| [acc[0] + c[0], acc[1] + c[1]]);
    let share = |n: u64, total: u64| if total == 0 { 0.0 } else { n as f64 / total as f64 };
    counts
        .iter()
        .enumerate()
        .map(|(i, c)| ScoreBin {
            lower: i as f64 / BINS as f64,
            upper: (i + 1) as f64 / BINS as f64,
            negatives: c[0],
            positives: c[1],
            negative_share: share(c[0], totals[0]),
            positive_share: share(c[1], totals[1]),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_class_is_binned_and_shared_on_its_own() {
        let scores = [0.01, 0.04, 0.5, 0.97, 1.0, 0.02];
        let y = [false, false, false, true, true, true];
        let bins = per_class(&scores, &y);
        assert_eq!(bins.len(), BINS);
        assert_eq!((bins[0].negatives, bins[0].positives), (2, 1));
        assert_eq!(bins[10].negatives, 1, "0.5 opens the eleventh bin");
        assert_eq!(bins[19].positives, 2, "0.97 and 1.0 share the last bin");
        assert!((bins[0].negative_share - 2.0 / 3.0).abs() < 1e-12);
        assert!((bins[19].positive_share - 2.0 / 3.0).abs() < 1e-12);
        let total: f64 = bins.iter().map(|b| b.positive_share).sum();
        assert!((total - 1.0).abs() < 1e-12);
    }
}
