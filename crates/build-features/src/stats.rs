//! Per-feature value counts on the train split, computed once and shared
//! by the leakage check (single-feature ROC-AUC) and feature selection (the
//! share of the most common value).
//!
//! Most candidate features are small integers (flags, counts, months,
//! codes), which are counted in an array; the rest are sorted. Features are
//! shared out over the rayon pool; the result does not depend on its size.

use std::ops::Range;

use rayon::prelude::*;
use revspend_core::features::Feature;

/// The train split's feature columns, read a stretch of rows at a time:
/// in the stage, the month tables read in place through the train rows'
/// indices (a copy of the split's columns took 1.5 GB of fresh memory and
/// 2-3 s at ten million rows); in tests, plain columns.
pub trait TrainColumns: Sync {
    /// Train rows.
    fn rows(&self) -> usize;

    /// Appends feature `f`'s values over train rows `range` to `out`.
    fn read(&self, f: Feature, range: Range<usize>, out: &mut Vec<f64>);

    /// Whether features `a` and `b` are equal on every train row.
    fn equal(&self, a: Feature, b: Feature) -> bool {
        let (mut x, mut y) = (Vec::new(), Vec::new());
        let n = self.rows();
        (0..n).step_by(CHUNK).all(|start| {
            let range = start..(start + CHUNK).min(n);
            x.clear();
            y.clear();
            self.read(a, range.clone(), &mut x);
            self.read(b, range, &mut y);
            x == y
        })
    }
}

/// Train rows read at a time when a whole column is not needed at once.
pub const CHUNK: usize = 1 << 15;

/// One column per `Feature::ALL` entry.
impl TrainColumns for Vec<Vec<f64>> {
    fn rows(&self) -> usize {
        self.first().map_or(0, Vec::len)
    }

    fn read(&self, f: Feature, range: Range<usize>, out: &mut Vec<f64>) {
        out.extend_from_slice(&self[f.index()][range]);
    }
}

/// Distinct values of one feature in ascending order, with how many
/// positive and negative rows have each.
#[derive(Debug, Clone, PartialEq)]
pub struct ValueCounts {
    pub values: Vec<f64>,
    pub positives: Vec<u64>,
    pub negatives: Vec<u64>,
}

/// Widest range of integers counted in an array rather than sorted.
const DENSE_RANGE: f64 = 65_536.0;

impl ValueCounts {
    /// Counts `values` (finite; `-0.0` counts as `0.0`) split by `y`; rows
    /// past the end of `y` count as negatives (pass `&[]` for plain counts).
    pub fn new(values: &[f64], y: &[bool]) -> ValueCounts {
        ValueCounts::with_scratch(values, y, &mut Scratch::default())
    }

    /// [`ValueCounts::new`] sorting in `scratch`'s buffers, which one
    /// thread reuses feature after feature: at ten million rows each
    /// continuous feature needs about 100 MB of them, and fresh pages are
    /// slow to come by on these virtual machines.
    fn with_scratch(values: &[f64], y: &[bool], scratch: &mut Scratch) -> ValueCounts {
        let label = |i: usize| y.get(i).copied().unwrap_or(false);
        let (min, max) = values
            .iter()
            .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| {
                (lo.min(*v), hi.max(*v))
            });
        // A round trip through i64 rather than `fract()`, which is a libm
        // call per value on baseline x86-64 (1-2 s over the train split at
        // ten million rows). Exact for |v| < 2^63, which the range check
        // below needs anyway.
        let integers = values.iter().all(|&v| v == (v as i64) as f64);
        if !values.is_empty() && integers && max - min < DENSE_RANGE {
            let width = (max - min) as usize + 1;
            let (mut pos, mut neg) = (vec![0u64; width], vec![0u64; width]);
            for (i, v) in values.iter().enumerate() {
                let slot = (v - min) as usize;
                if label(i) {
                    pos[slot] += 1;
                } else {
                    neg[slot] += 1;
                }
            }
            let mut out = ValueCounts::empty();
            for (slot, (p, n)) in pos.into_iter().zip(neg).enumerate() {
                if p + n > 0 {
                    out.push(min + slot as f64, p, n);
                }
            }
            return out;
        }
        // Positives and negatives sorted apart, as integer keys in the
        // order of the values (cheaper to sort than value/label pairs
        // compared as floats), then merged.
        let Scratch { pos, neg, sort } = scratch;
        pos.clear();
        neg.clear();
        for (i, v) in values.iter().enumerate() {
            let key = order_key(v + 0.0);
            if label(i) {
                pos.push(key);
            } else {
                neg.push(key);
            }
        }
        radix_sort(pos, sort);
        radix_sort(neg, sort);
        let mut out = ValueCounts::empty();
        let (mut i, mut j) = (0, 0);
        while i < pos.len() || j < neg.len() {
            let key = match (pos.get(i), neg.get(j)) {
                (Some(&p), Some(&n)) => p.min(n),
                (Some(&p), None) => p,
                (None, Some(&n)) => n,
                (None, None) => break,
            };
            let (i0, j0) = (i, j);
            while pos.get(i) == Some(&key) {
                i += 1;
            }
            while neg.get(j) == Some(&key) {
                j += 1;
            }
            out.push(from_order_key(key), (i - i0) as u64, (j - j0) as u64);
        }
        out
    }

    fn empty() -> ValueCounts {
        ValueCounts {
            values: Vec::new(),
            positives: Vec::new(),
            negatives: Vec::new(),
        }
    }

    fn push(&mut self, value: f64, positives: u64, negatives: u64) {
        self.values.push(value);
        self.positives.push(positives);
        self.negatives.push(negatives);
    }

    /// ROC-AUC of the raw values as scores (higher = positive): the chance
    /// that a random positive scores above a random negative, ties counting
    /// half. 0.5 when either class is absent.
    pub fn roc_auc(&self) -> f64 {
        let (p, n): (u64, u64) = (self.positives.iter().sum(), self.negatives.iter().sum());
        if p == 0 || n == 0 {
            return 0.5;
        }
        let mut negatives_below = 0u64;
        let mut wins = 0.0;
        for (&pos, &neg) in self.positives.iter().zip(&self.negatives) {
            wins += pos as f64 * (negatives_below as f64 + 0.5 * neg as f64);
            negatives_below += neg;
        }
        wins / (p as f64 * n as f64)
    }

    /// The most common value and its share of rows (the smaller value on a tie).
    pub fn mode(&self) -> Option<(f64, f64)> {
        let total: u64 = self.positives.iter().sum::<u64>() + self.negatives.iter().sum::<u64>();
        let mut best: Option<(f64, u64)> = None;
        for ((&v, &p), &n) in self.values.iter().zip(&self.positives).zip(&self.negatives) {
            if best.is_none_or(|(_, c)| p + n > c) {
                best = Some((v, p + n));
            }
        }
        best.map(|(v, c)| (v, c as f64 / total as f64))
    }
}

/// Buffers [`ValueCounts`] sorts in.
#[derive(Debug, Default)]
struct Scratch {
    pos: Vec<u64>,
    neg: Vec<u64>,
    sort: Vec<u64>,
}

/// A float's bits as an integer that sorts as `f64::total_cmp` does.
fn order_key(v: f64) -> u64 {
    let bits = v.to_bits();
    if bits >> 63 == 1 { !bits } else { bits | 1 << 63 }
}

fn from_order_key(key: u64) -> f64 {
    f64::from_bits(if key >> 63 == 1 { key & !(1 << 63) } else { !key })
}

/// Sorts `keys` ascending: least-significant-digit radix sort, 11 bits a
/// pass, skipping digits every key shares (the high bits of similar floats
/// usually are). Several times faster than a comparison sort on the
/// millions of keys of a continuous feature. Every digit is counted in one
/// pass over the keys first (a digit's counts do not depend on the order
/// the earlier passes leave), so each pass after it only scatters.
fn radix_sort(keys: &mut Vec<u64>, scratch: &mut Vec<u64>) {
    const BITS: u32 = 11;
    const BUCKETS: usize = 1 << BITS;
    const DIGITS: usize = 64usize.div_ceil(BITS as usize);
    if keys.len() < 256 {
        keys.sort_unstable();
        return;
    }
    let mut counts = vec![[0usize; BUCKETS]; DIGITS];
    for &k in keys.iter() {
        for (d, c) in counts.iter_mut().enumerate() {
            c[((k >> (d as u32 * BITS)) as usize) & (BUCKETS - 1)] += 1;
        }
    }
    scratch.clear();
    scratch.resize(keys.len(), 0);
    for (d, counts) in counts.iter_mut().enumerate() {
        if counts.contains(&keys.len()) {
            continue;
        }
        let shift = d as u32 * BITS;
        let mut next = 0;
        for c in counts.iter_mut() {
            let n = *c;
            *c = next;
            next += n;
        }
        for &k in keys.iter() {
            let digit = ((k >> shift) as usize) & (BUCKETS - 1);
            scratch[counts[digit]] = k;
            counts[digit] += 1;
        }
        std::mem::swap(keys, scratch);
    }
}

/// Value counts of every feature (in `Feature::ALL` order), features in
/// parallel.
pub fn value_counts(columns: &dyn TrainColumns, y: &[bool]) -> Vec<ValueCounts> {
    Feature::ALL
        .par_iter()
        .map_init(
            || (Vec::new(), Scratch::default()),
            |(values, scratch), &f| {
                values.clear();
                columns.read(f, 0..columns.rows(), values);
                ValueCounts::with_scratch(values, y, scratch)
            },
        )
        .collect()
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use revspend_core::metrics::Curve;

    use super::*;

    #[test]
    fn counts_modes_and_auc_of_a_small_column() {
        let values = [3.0, 1.0, 1.0, 2.0, -0.0, 0.0];
        let y = [true, false, true, true, false, false];
        let c = ValueCounts::new(&values, &y);
        assert_eq!(c.values, vec![0.0, 1.0, 2.0, 3.0]);
        assert_eq!(c.positives, vec![0, 1, 1, 1]);
        assert_eq!(c.negatives, vec![2, 1, 0, 0]);
        assert_eq!(c.mode(), Some((0.0, 2.0 / 6.0)));
        // Positives 1, 2, 3 against negatives 0, 0, 1: 8.5 wins of 9.
        assert!((c.roc_auc() - 8.5 / 9.0).abs() < 1e-12);
        let unlabelled = ValueCounts::new(&[0.5, 0.5, 0.25], &[]);
        assert_eq!(unlabelled.mode(), Some((0.5, 2.0 / 3.0)));
        assert_eq!(unlabelled.roc_auc(), 0.5);
    }

    proptest! {
        /// The integer keys sort as the floats do and give the floats back.
        #[test]
        fn order_keys_sort_as_floats(a in any::<f64>(), b in any::<f64>()) {
            prop_assert_eq!(order_key(a).cmp(&order_key(b)), a.total_cmp(&b));
            prop_assert_eq!(from_order_key(order_key(a)).to_bits(), a.to_bits());
        }

        /// The radix sort sorts.
        #[test]
        fn radix_sort_equals_a_comparison_sort(
            mut keys in proptest::collection::vec(any::<u64>(), 0..2000),
            spread in 0u32..64,
        ) {
            // Narrow keys too, so that shared digits are skipped.
            for k in keys.iter_mut() {
                *k >>= spread;
            }
            let mut expected = keys.clone();
            expected.sort_unstable();
            radix_sort(&mut keys, &mut vec![7; 3]);
            prop_assert_eq!(keys, expected);
        }

        /// Both counting paths give the AUC the metrics curve gives.
        #[test]
        fn auc_equals_the_curve_auc(
            rows in proptest::collection::vec((0u32..50, any::<bool>(), any::<bool>()), 2..300),
        ) {
            let y: Vec<bool> = rows.iter().map(|r| r.1).collect();
            prop_assume!(y.iter().any(|v| *v) && y.iter().any(|v| !*v));
            // Integers take the dense path; scaled, they take the sorted one.
            let dense: Vec<f64> = rows.iter().map(|r| f64::from(r.0)).collect();
            let sparse: Vec<f64> = rows.iter().map(|r| f64::from(r.0) * 0.37 + if r.2 { 1e6 } else { 0.0 }).collect();
            for values in [dense, sparse] {
                let expected = Curve::new(&values, &y).roc_auc();
                prop_assert!((ValueCounts::new(&values, &y).roc_auc() - expected).abs() < 1e-9);
            }
        }
    }
}
