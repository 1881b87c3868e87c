//! Distribution profiles of tables: the reference a later drift monitor
//! compares new data to.
//!
//! The profile types and the statistics behind them, free of any table
//! library: [`numeric_from_values`] and [`numeric_from_counts`] summarise a
//! numeric column (count, nulls, NaNs, min/max, mean, sample std, quantiles,
//! an equal-width histogram); categorical columns keep every category's
//! frequency. [`psi`] scores how far new values of a numeric column have
//! moved from a profiled reference. Reading columns out of a dataframe is
//! `revspend-table`'s `profile` module.
//!
//! The profile is written as a DVC-tracked artifact, so it is a pure function
//! of the table: maps are ordered, quantiles and histograms depend only on the
//! multiset of values, and the sums behind mean and std run in row order.
//! Quantiles and histograms follow numpy's defaults (`np.quantile` linear
//! interpolation, `np.histogram` bins closed on the left, the last one on
//! both sides) so that a profile can be checked against a notebook.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// The probabilities every numeric profile reports quantiles at.
pub const QUANTILE_PROBABILITIES: [f64; 7] = [0.01, 0.05, 0.25, 0.5, 0.75, 0.95, 0.99];

/// Proportion substituted for an empty bin in [`psi`], so that the logarithm
/// stays finite.
pub const PSI_EPSILON: f64 = 1e-6;

/// Distribution profile of a table.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Profile {
    /// Rows in the table.
    pub rows: u64,
    pub numeric: BTreeMap<String, NumericProfile>,
    pub categorical: BTreeMap<String, CategoricalProfile>,
}

/// Profile of one numeric column.
///
/// Only finite values enter the statistics: `count + nulls + nans + infinite`
/// is the table's row count, and the histogram counts sum to `count`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NumericProfile {
    /// Finite values: those the statistics below describe.
    pub count: u64,
    pub nulls: u64,
    pub nans: u64,
    /// `+inf` and `-inf` values. Kept out of the statistics because JSON has
    /// no infinity: a profile holding one could not be read back.
    #[serde(default)]
    pub infinite: u64,
    /// `None` when `count` is 0 (as for `mean`, `std`).
    pub min: Option<f64>,
    pub max: Option<f64>,
    pub mean: Option<f64>,
    /// Sample standard deviation (`ddof = 1`); `None` when `count < 2`.
    pub std: Option<f64>,
    /// At [`QUANTILE_PROBABILITIES`], linear interpolation between order
    /// statistics as numpy's default; empty when `count` is 0.
    pub quantiles: Vec<Quantile>,
    pub histogram: Histogram,
}

/// The value below which a fraction `p` of the column lies.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Quantile {
    pub p: f64,
    pub value: f64,
}

/// Equal-width histogram over `[min, max]`.
///
/// Bin `i` holds `edges[i] <= x < edges[i + 1]`, the last bin also holds
/// `max`. A constant column has one bin with `edges == [v, v]`; a column
/// without finite values has no edges and no bins.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Histogram {
    /// `counts.len() + 1` edges, ascending.
    pub edges: Vec<f64>,
    pub counts: Vec<u64>,
}

/// Profile of one categorical column.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CategoricalProfile {
    /// Non-null values.
    pub count: u64,
    pub nulls: u64,
    /// Every category (as text) and how often it occurs; sums to `count`.
    pub frequencies: BTreeMap<String, u64>,
}

/// Population stability index of `values` against the `reference` profile,
/// binned with the reference's histogram edges (the outer bins open-ended so
/// that values outside the reference range still count):
/// `Σ (a - e) · ln(a / e)` over bins, with `e` the reference and `a` the new
/// proportions, an empty bin counting as [`PSI_EPSILON`]. NaNs in `values`
/// are skipped.
///
/// Below 0.1 is usually read as stable, above 0.25 as a significant shift.
/// The result is NaN when it is undefined: the reference has no histogram
/// (no finite values) or `values` has no non-NaN value. A constant reference
/// has one bin and so always scores 0.
pub fn psi(reference: &NumericProfile, values: &[f64]) -> f64 {
    let edges = &reference.histogram.edges;
    let expected = &reference.histogram.counts;
    let expected_total: u64 = expected.iter().sum();
    if expected.is_empty() || edges.len() != expected.len() + 1 || expected_total == 0 {
        return f64::NAN;
    }
    let actual = Binner::new(edges).count(values.iter().copied());
    psi_from_counts(expected, &actual)
}

/// [`psi`] from bin counts already made: `expected` the reference's
/// histogram counts, `actual` the new values' counts in the same bins (as
/// [`bin_of`] assigns them). NaN when the two have different lengths or
/// either side is empty. The one PSI definition the monitor and the
/// server's live gauges share.
pub fn psi_from_counts(expected: &[u64], actual: &[u64]) -> f64 {
    let expected_total: u64 = expected.iter().sum();
    let actual_total: u64 = actual.iter().sum();
    if expected.len() != actual.len() || expected_total == 0 || actual_total == 0 {
        return f64::NAN;
    }
    let proportion = |count: u64, total: u64| {
        if count == 0 {
            PSI_EPSILON
        } else {
            count as f64 / total as f64
        }
    };
    expected
        .iter()
        .zip(actual)
        .map(|(&e, &a)| {
            let e = proportion(e, expected_total);
            let a = proportion(a, actual_total);
            (a - e) * (a / e).ln()
        })
        .sum()
}

/// Share of the reference that each bin [`psi_merged_counts`] scores holds at
/// least: the scorecard convention computes PSI on ten to twenty quantile
/// bins, so that no bin is nearly empty.
pub const PSI_MIN_BIN_SHARE: f64 = 0.05;

/// [`psi_from_counts`] after merging adjacent bins until each holds at least
/// `min_share` of the reference (`expected`; a short last group joins the
/// one before). On a skewed feature most of twenty equal-width bins hold a
/// sliver of the reference, and a window that leaves one of them empty
/// scores `e · ln(e / ε)` there (about 0.2 for a bin of 2 %), a false alarm
/// that merged bins, like the quantile bins PSI is usually computed on, do
/// not raise. Values beyond the reference range still land in the outer
/// groups. The PSI the monitor and the server's live gauges report.
pub fn psi_merged_counts(expected: &[u64], actual: &[u64], min_share: f64) -> f64 {
    let total: u64 = expected.iter().sum();
    if expected.len() != actual.len() || total == 0 {
        return f64::NAN;
    }
    let need = ((min_share * total as f64).ceil() as u64).max(1);
    let (mut e_groups, mut a_groups) = (Vec::new(), Vec::new());
    let (mut e_run, mut a_run) = (0u64, 0u64);
    for (&e, &a) in expected.iter().zip(actual) {
        e_run += e;
        a_run += a;
        if e_run >= need {
            e_groups.push(e_run);
            a_groups.push(a_run);
            (e_run, a_run) = (0, 0);
        }
    }
    if e_run > 0 || a_run > 0 {
        match (e_groups.last_mut(), a_groups.last_mut()) {
            (Some(e), Some(a)) => {
                *e += e_run;
                *a += a_run;
            }
            _ => {
                e_groups.push(e_run);
                a_groups.push(a_run);
            }
        }
    }
    psi_from_counts(&e_groups, &a_groups)
}

/// The profile of a column from its finite `values` (which it reorders) and
/// the counts of what was left out: nulls, NaNs and infinities.
pub fn numeric_from_values(
    mut values: Vec<f64>,
    nulls: u64,
    nans: u64,
    infinite: u64,
    bins: usize,
) -> NumericProfile {
    let count = values.len() as u64;
    let Some(&first) = values.first() else {
        return NumericProfile {
            count,
            nulls,
            nans,
            infinite,
            min: None,
            max: None,
            mean: None,
            std: None,
            quantiles: Vec::new(),
            histogram: Histogram {
                edges: Vec::new(),
                counts: Vec::new(),
            },
        };
    };

    let (mut min, mut max, mut sum) = (first, first, 0.0);
    for &x in &values {
        if x.total_cmp(&min).is_lt() {
            min = x;
        }
        if x.total_cmp(&max).is_gt() {
            max = x;
        }
        sum += x;
    }
    // Corrected two-pass algorithm (Chan, Golub & LeVeque): the second pass
    // both refines the mean and keeps the variance free of cancellation.
    let n = values.len() as f64;
    let rough_mean = sum / n;
    let (mut deviation_sum, mut squares) = (0.0, 0.0);
    for &x in &values {
        let d = x - rough_mean;
        deviation_sum += d;
        squares += d * d;
    }
    let mean = rough_mean + deviation_sum / n;
    let std = (values.len() > 1).then(|| {
        ((squares - deviation_sum * deviation_sum / n) / (n - 1.0))
            .max(0.0)
            .sqrt()
    });

    let histogram = histogram(&values, min, max, bins);
    let quantiles = quantiles(&mut values);

    NumericProfile {
        count,
        nulls,
        nans,
        infinite,
        min: Some(min),
        max: Some(max),
        mean: Some(mean),
        std,
        quantiles,
        histogram,
    }
}

/// The profile of a column of finite values given as its distinct values
/// (ascending) and how often each occurs: what [`numeric_from_values`] computes from the
/// rows (mean and std equal up to rounding, as the sums run per distinct
/// value), in time proportional to the distinct values. For callers that
/// have counted them anyway.
pub fn numeric_from_counts(values: &[f64], counts: &[u64], bins: usize) -> NumericProfile {
    debug_assert_eq!(values.len(), counts.len());
    debug_assert!(values.windows(2).all(|w| w[0] < w[1]));
    let count: u64 = counts.iter().sum();
    let (Some(&min), Some(&max)) = (values.first(), values.last()) else {
        return numeric_from_values(Vec::new(), 0, 0, 0, bins);
    };
    if count == 0 {
        return numeric_from_values(Vec::new(), 0, 0, 0, bins);
    }
    let n = count as f64;
    let weighted = || values.iter().zip(counts).map(|(&v, &c)| (v, c as f64));
    let rough_mean = weighted().map(|(v, c)| v * c).sum::<f64>() / n;
    let (mut deviation_sum, mut squares) = (0.0, 0.0);
    for (v, c) in weighted() {
        let d = v - rough_mean;
        deviation_sum += d * c;
        squares += d * d * c;
    }
    let mean = rough_mean + deviation_sum / n;
    let std = (count > 1).then(|| {
        ((squares - deviation_sum * deviation_sum / n) / (n - 1.0))
            .max(0.0)
            .sqrt()
    });

    let edges = histogram(&[], min, max, bins).edges;
    let binner = Binner::new(&edges);
    let mut histogram_counts = vec![0u64; edges.len() - 1];
    for (&v, &c) in values.iter().zip(counts) {
        histogram_counts[binner.index(v)] += c;
    }

    // Order statistic k (0-based) of the multiset: the value whose
    // cumulative count first exceeds k.
    let mut cumulative = Vec::with_capacity(counts.len());
    let mut total = 0u64;
    for &c in counts {
        total += c;
        cumulative.push(total);
    }
    let nth = |k: usize| values[cumulative.partition_point(|&upto| upto <= k as u64)];
    let last = (count - 1) as usize;
    let quantiles = QUANTILE_PROBABILITIES
        .iter()
        .map(|&p| {
            let h = last as f64 * p;
            let lo = (h.floor() as usize).min(last);
            let hi = (lo + 1).min(last);
            Quantile {
                p,
                value: lerp(nth(lo), nth(hi), h - lo as f64),
            }
        })
        .collect();

    NumericProfile {
        count,
        nulls: 0,
        nans: 0,
        infinite: 0,
        min: Some(min),
        max: Some(max),
        mean: Some(mean),
        std,
        quantiles,
        histogram: Histogram {
            edges,
            counts: histogram_counts,
        },
    }
}

/// numpy's default (`method="linear"`) quantiles of non-empty `values`, which
/// it partially orders: only the order statistics the interpolation needs are
/// selected, which is several times cheaper than a full sort.
fn quantiles(values: &mut [f64]) -> Vec<Quantile> {
    let last = values.len() - 1;
    let positions = QUANTILE_PROBABILITIES.map(|p| {
        let h = last as f64 * p;
        let lo = (h.floor() as usize).min(last);
        (p, lo, (lo + 1).min(last), h - lo as f64)
    });
    let mut needed: Vec<usize> = positions.iter().flat_map(|&(_, lo, hi, _)| [lo, hi]).collect();
    needed.sort_unstable();
    needed.dedup();
    select_order_statistics(values, &needed);

    positions
        .iter()
        .map(|&(p, lo, hi, t)| Quantile {
            p,
            value: lerp(values[lo], values[hi], t),
        })
        .collect()
}

/// numpy's `_lerp`: exact at both ends, and monotone in `t`.
fn lerp(a: f64, b: f64, t: f64) -> f64 {
    if a == b {
        return a;
    }
    let diff = b - a;
    if t >= 0.5 {
        b - diff * (1.0 - t)
    } else {
        a + diff * t
    }
}

/// Reorders `values` so that each index in `ks` (ascending, distinct) holds
/// the value a full sort by `total_cmp` would put there.
fn select_order_statistics(values: &mut [f64], ks: &[usize]) {
    if ks.is_empty() {
        return;
    }
    let mid = ks.len() / 2;
    let k = ks[mid];
    values.select_nth_unstable_by(k, f64::total_cmp);
    let (left, right) = values.split_at_mut(k);
    select_order_statistics(left, &ks[..mid]);
    let right_ks: Vec<usize> = ks[mid + 1..].iter().map(|&j| j - k - 1).collect();
    select_order_statistics(&mut right[1..], &right_ks);
}

/// numpy's `np.histogram(values, bins)` over `[min, max]`, except that a
/// constant column gets the single bin `[v, v]` rather than `[v-0.5, v+0.5]`.
fn histogram(values: &[f64], min: f64, max: f64, bins: usize) -> Histogram {
    let edges = if min == max {
        vec![min, max]
    } else {
        // np.linspace: start + i * step, the last edge exactly `max`.
        let step = (max - min) / bins as f64;
        let mut edges: Vec<f64> = (0..bins).map(|i| min + i as f64 * step).collect();
        edges.push(max);
        edges
    };
    let counts = Binner::new(&edges).count(values.iter().copied());
    Histogram { edges, counts }
}

/// The bin of a finite `x` among the histogram `edges` of a profile, by the
/// rule of [`psi`]: bin `i` holds `edges[i] <= x < edges[i + 1]`, the last
/// bin is closed on the right, and values beyond either end go to the outer
/// bins (a shift past the reference range still shows, piled in an outer
/// bin). `None` for NaN and infinities, which the profile keeps out of its
/// histogram, and when `edges` holds fewer than two edges (no histogram).
/// Callers that stream values one at a time (the server's live drift
/// gauges) bin with this and score with [`psi_from_counts`].
pub fn bin_of(edges: &[f64], x: f64) -> Option<usize> {
    if edges.len() < 2 || !x.is_finite() {
        return None;
    }
    Some(Binner::new(edges).index(x))
}

/// Counts values into the bins of `edges` (at least two, ascending): bin `i`
/// holds `edges[i] <= x < edges[i + 1]`, the last bin is closed on the right,
/// and values beyond either end go to the outer bins.
///
/// Guesses a value's bin from equal widths, as numpy does, then corrects the
/// guess against the edges themselves, so rounding (or edges that are not
/// equally spaced) can never put a value in the wrong bin.
struct Binner<'a> {
    edges: &'a [f64],
    bins: usize,
    first: f64,
    last: f64,
    scale: f64,
}

impl<'a> Binner<'a> {
    fn new(edges: &'a [f64]) -> Binner<'a> {
        let bins = edges.len() - 1;
        let (first, last) = (edges[0], edges[bins]);
        let scale = if last > first {
            bins as f64 / (last - first)
        } else {
            0.0
        };
        Binner {
            edges,
            bins,
            first,
            last,
            scale,
        }
    }

    /// Bin counts of the non-NaN `values`.
    fn count(&self, values: impl IntoIterator<Item = f64>) -> Vec<u64> {
        let mut counts = vec![0u64; self.bins];
        for x in values {
            if !x.is_nan() {
                counts[self.index(x)] += 1;
            }
        }
        counts
    }

    fn index(&self, x: f64) -> usize {
        if x <= self.first {
            return 0;
        }
        if x >= self.last {
            return self.bins - 1;
        }
        // Saturating cast: a huge guess is clamped, then corrected below.
        let mut i = (((x - self.first) * self.scale) as usize).min(self.bins - 1);
        while i > 0 && x < self.edges[i] {
            i -= 1;
        }
        while i + 1 < self.bins && x >= self.edges[i + 1] {
            i += 1;
        }
        i
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The two ways to a profile agree: from the rows, and from the distinct
    /// values with their counts. (The table crate's tests check both against
    /// numpy through dataframes.)
    #[test]
    fn values_and_counts_give_the_same_profile() {
        let rows = [3.0, 1.0, 2.0, 3.0, 3.0, 10.0, 1.0];
        let from_rows = numeric_from_values(rows.to_vec(), 0, 0, 0, 4);
        let from_counts = numeric_from_counts(&[1.0, 2.0, 3.0, 10.0], &[2, 1, 3, 1], 4);
        assert_eq!(from_rows.count, 7);
        assert_eq!(from_rows.histogram, from_counts.histogram);
        assert_eq!(from_rows.quantiles, from_counts.quantiles);
        assert_eq!((from_rows.min, from_rows.max), (Some(1.0), Some(10.0)));
        let (a, b) = (from_rows.mean.expect("mean"), from_counts.mean.expect("mean"));
        assert!((a - b).abs() < 1e-12, "{a} {b}");
    }

    #[test]
    fn psi_is_zero_against_itself_and_grows_with_a_shift() {
        let values: Vec<f64> = (0..1000).map(|i| f64::from(i % 100)).collect();
        let reference = numeric_from_values(values.clone(), 0, 0, 0, 10);
        assert!(psi(&reference, &values).abs() < 1e-12);
        let shifted: Vec<f64> = values.iter().map(|v| v + 50.0).collect();
        assert!(psi(&reference, &shifted) > 0.25);
        assert!(psi(&reference, &[]).is_nan());
    }

    #[test]
    fn streamed_bins_give_the_psi_of_the_values() {
        let values: Vec<f64> = (0..1000).map(|i| f64::from(i % 97) * 1.5).collect();
        let reference = numeric_from_values(values.clone(), 0, 0, 0, 12);
        let edges = &reference.histogram.edges;
        let new: Vec<f64> = values.iter().map(|v| v * 1.3 - 20.0).collect();
        let mut counts = vec![0u64; reference.histogram.counts.len()];
        for &x in &new {
            counts[bin_of(edges, x).expect("finite value, real histogram")] += 1;
        }
        let streamed = psi_from_counts(&reference.histogram.counts, &counts);
        assert!((streamed - psi(&reference, &new)).abs() < 1e-12, "{streamed}");
        // Beyond the ends: the outer bins; never a bin for what the profile
        // leaves out.
        assert_eq!(bin_of(edges, -1e12), Some(0));
        assert_eq!(bin_of(edges, 1e12), Some(11));
        assert_eq!(bin_of(edges, f64::NAN), None);
        assert_eq!(bin_of(edges, f64::INFINITY), None);
        assert_eq!(bin_of(&[1.0], 1.0), None);
        assert!(psi_from_counts(&[1, 2], &[0, 0]).is_nan());
        assert!(psi_from_counts(&[1, 2], &[1]).is_nan());
    }
}
