//! Cumulative gain and lift by decile: the share of revenge purchases
//! caught in the top k·10 % of scores, and how many times more than a
//! random pick of the same size.
//!
//! Rows are ranked by score, highest first; equal scores keep their row
//! order, so the cut at a decile boundary is deterministic. Decile `k`
//! holds the first `ceil(n · k / 10)` rows.

use serde::Serialize;

/// One line of the table: the top `share` of the rows by score.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Decile {
    /// 1..=10.
    pub decile: usize,
    /// Share of the rows, `decile / 10`.
    pub share: f64,
    /// Rows in the top share, and the positives among them.
    pub rows: usize,
    pub positives: usize,
    /// Positives caught / all positives.
    pub gain: f64,
    /// `gain / share`: 1 is a random pick.
    pub lift: f64,
    /// Positives / rows in the top share.
    pub precision: f64,
}

/// The gain and lift table; empty without rows or positives.
pub fn by_decile(scores: &[f64], y: &[bool]) -> Vec<Decile> {
    let n = scores.len().min(y.len());
    let total = y[..n].iter().filter(|v| **v).count();
    if n == 0 || total == 0 {
        return Vec::new();
    }
    let mut order: Vec<usize> = (0..n).collect();
    // Stable: equal scores keep their row order.
    order.sort_by(|&a, &b| scores[b].total_cmp(&scores[a]));
    let mut caught = 0usize;
    let mut taken = 0usize;
    let mut out = Vec::with_capacity(10);
    for decile in 1..=10usize {
        let upto = (n * decile).div_ceil(10);
        while taken < upto {
            caught += usize::from(y[order[taken]]);
            taken += 1;
        }
        let share = decile as f64 / 10.0;
        let gain = caught as f64 / total as f64;
        out.push(Decile {
            decile,
            share,
            rows: taken,
            positives: caught,
            gain,
            lift: gain / share,
            precision: caught as f64 / taken as f64,
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Issue 14: the table of a hand-computed example.
    #[test]
    fn gain_and_lift_of_a_hand_computed_example() {
        // Ten rows, scores 1.0 down to 0.1; positives at ranks 1, 2 and 4.
        let scores: Vec<f64> = (0..10).map(|i| 1.0 - 0.1 * f64::from(i)).collect();
        let mut y = [false; 10];
        for r in [0, 1, 3] {
            y[r] = true;
        }
        // Shuffle the rows: the ranking, not the row order, decides.
        let perm = [7, 2, 9, 0, 5, 3, 8, 1, 6, 4];
        let s: Vec<f64> = perm.iter().map(|&i| scores[i]).collect();
        let l: Vec<bool> = perm.iter().map(|&i| y[i]).collect();
        let t = by_decile(&s, &l);
        assert_eq!(t.len(), 10);
        let gains: Vec<usize> = t.iter().map(|d| d.positives).collect();
        assert_eq!(gains, [1, 2, 2, 3, 3, 3, 3, 3, 3, 3]);
        let close = |a: f64, b: f64| (a - b).abs() < 1e-12;
        assert!(close(t[0].gain, 1.0 / 3.0) && close(t[0].lift, 10.0 / 3.0));
        assert!(close(t[2].gain, 2.0 / 3.0) && close(t[2].lift, 20.0 / 9.0));
        assert!(close(t[3].gain, 1.0) && close(t[3].lift, 2.5) && close(t[3].precision, 0.75));
        assert!(close(t[9].gain, 1.0) && close(t[9].lift, 1.0) && close(t[9].precision, 0.3));
    }

    #[test]
    fn uneven_sizes_round_the_cut_up_and_no_positive_gives_no_table() {
        let t = by_decile(&[0.9, 0.8, 0.7], &[false, true, false]);
        let rows: Vec<usize> = t.iter().map(|d| d.rows).collect();
        assert_eq!(rows, [1, 1, 1, 2, 2, 2, 3, 3, 3, 3]);
        assert!(by_decile(&[0.5], &[false]).is_empty());
    }
}
