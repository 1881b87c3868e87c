//! A data window accumulated one value at a time into the reference
//! profile's bins or categories: all the drift tests of [`crate::drift`]
//! read, so that a window larger than memory can be scored and no raw value
//! is kept.

use std::collections::{BTreeMap, BTreeSet};

use revspend_core::profile::{CategoricalProfile, NumericProfile};

use crate::drift::DriftError;

/// A numeric window streamed into the reference histogram's bins.
///
/// Bin `i` holds `edges[i] <= x < edges[i + 1]`, the last bin also holds the
/// last edge, and finite values beyond either end go to the outer bins, as
/// [`revspend_core::profile::psi`] bins them: a shift past the reference range
/// still shows, piled in an outer bin. NaNs and infinities are counted apart
/// and enter no statistic, as in the reference profile.
#[derive(Debug, Clone, PartialEq)]
pub struct NumericWindow {
    edges: Vec<f64>,
    counts: Vec<u64>,
    nans: u64,
    infinite: u64,
    /// Moments about `shift` (the first finite value) rather than about 0:
    /// the sum of squares of values far from 0 with a small spread would
    /// otherwise lose the variance to cancellation.
    shift: Option<f64>,
    sum: f64,
    sum_squares: f64,
}

impl NumericWindow {
    /// An empty window over `reference`'s histogram bins.
    pub fn new(reference: &NumericProfile) -> Result<NumericWindow, DriftError> {
        let histogram = &reference.histogram;
        check_histogram(&histogram.edges, histogram.counts.len())?;
        Ok(NumericWindow {
            edges: histogram.edges.clone(),
            counts: vec![0; histogram.counts.len()],
            nans: 0,
            infinite: 0,
            shift: None,
            sum: 0.0,
            sum_squares: 0.0,
        })
    }

    /// Adds one value.
    pub fn push(&mut self, x: f64) {
        if x.is_nan() {
            self.nans += 1;
            return;
        }
        if x.is_infinite() {
            self.infinite += 1;
            return;
        }
        let bin = bin_index(&self.edges, x);
        self.counts[bin] += 1;
        let shift = *self.shift.get_or_insert(x);
        let d = x - shift;
        self.sum += d;
        self.sum_squares += d * d;
    }

    /// Adds values in order.
    pub fn extend(&mut self, values: impl IntoIterator<Item = f64>) {
        for x in values {
            self.push(x);
        }
    }

    /// Finite values per bin.
    pub fn counts(&self) -> &[u64] {
        &self.counts
    }

    /// Finite values added.
    pub fn count(&self) -> u64 {
        self.counts.iter().sum()
    }

    pub fn nans(&self) -> u64 {
        self.nans
    }

    /// `+inf` and `-inf` values added.
    pub fn infinite(&self) -> u64 {
        self.infinite
    }

    /// Mean of the finite values; `None` when there is none.
    pub fn mean(&self) -> Option<f64> {
        let n = self.count();
        let shift = self.shift?;
        (n > 0).then(|| shift + self.sum / n as f64)
    }

    /// Sample standard deviation (`ddof = 1`, as the profile's); `None` below
    /// two values.
    pub fn std(&self) -> Option<f64> {
        let n = self.count() as f64;
        (self.count() > 1).then(|| {
            ((self.sum_squares - self.sum * self.sum / n) / (n - 1.0))
                .max(0.0)
                .sqrt()
        })
    }
}

/// A categorical window: how often each category occurs.
///
/// Every category is kept under its own name, including those the reference
/// never saw, as Evidently takes the union of both sides' categories; the
/// memory is one entry per distinct category, which a column with unbounded
/// cardinality (an id) would make large.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CategoricalWindow {
    frequencies: BTreeMap<String, u64>,
    nulls: u64,
}

impl CategoricalWindow {
    pub fn new() -> CategoricalWindow {
        CategoricalWindow::default()
    }

    /// Adds one value; `None` is a null, counted apart.
    pub fn push(&mut self, value: Option<&str>) {
        match value {
            None => self.nulls += 1,
            Some(v) => match self.frequencies.get_mut(v) {
                Some(c) => *c += 1,
                None => {
                    self.frequencies.insert(v.to_owned(), 1);
                }
            },
        }
    }

    pub fn frequencies(&self) -> &BTreeMap<String, u64> {
        &self.frequencies
    }

    /// Non-null values added.
    pub fn count(&self) -> u64 {
        self.frequencies.values().sum()
    }

    pub fn nulls(&self) -> u64 {
        self.nulls
    }

    /// The window's categories absent from `reference`, with their counts.
    pub fn unseen<'a>(
        &'a self,
        reference: &'a CategoricalProfile,
    ) -> impl Iterator<Item = (&'a str, u64)> + 'a {
        self.frequencies
            .iter()
            .filter(|(k, _)| !reference.frequencies.contains_key(*k))
            .map(|(k, &c)| (k.as_str(), c))
    }

    /// Distinct categories over the reference and the window together: what
    /// Evidently counts to choose a test.
    pub fn distinct_with(&self, reference: &CategoricalProfile) -> u64 {
        let keys: BTreeSet<&String> = reference
            .frequencies
            .keys()
            .chain(self.frequencies.keys())
            .collect();
        keys.len() as u64
    }

    /// Counts of the reference and the window over the union of their
    /// categories (in key order): the aligned vectors every categorical test
    /// reads.
    pub(crate) fn aligned(&self, reference: &CategoricalProfile) -> (Vec<u64>, Vec<u64>) {
        let keys: BTreeSet<&String> = reference
            .frequencies
            .keys()
            .chain(self.frequencies.keys())
            .collect();
        keys.into_iter()
            .map(|k| {
                (
                    reference.frequencies.get(k).copied().unwrap_or(0),
                    self.frequencies.get(k).copied().unwrap_or(0),
                )
            })
            .unzip()
    }
}

pub(crate) fn check_histogram(edges: &[f64], bins: usize) -> Result<(), DriftError> {
    if bins == 0 {
        return Err(DriftError::NoReferenceHistogram);
    }
    if edges.len() != bins + 1 {
        return Err(DriftError::BadHistogram {
            edges: edges.len(),
            bins,
        });
    }
    Ok(())
}

/// The bin of finite `x` under `edges` (at least two, ascending), with the
/// rule of core's (private) histogram binner: left-closed bins, the last one
/// closed, values beyond the ends in the outer bins. Binary search rather
/// than core's equal-width guess: the edges are only read, never assumed
/// equally spaced.
fn bin_index(edges: &[f64], x: f64) -> usize {
    let bins = edges.len() - 1;
    // Edges <= x, minus one, is the bin whose left edge is the last <= x.
    let above = edges.partition_point(|&e| e <= x);
    above.saturating_sub(1).min(bins - 1)
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use revspend_core::profile::numeric_from_values;

    use super::*;

    fn close(got: f64, want: f64, tol: f64) {
        assert!(
            (got - want).abs() <= tol * want.abs().max(1.0),
            "got {got}, want {want}"
        );
    }

    fn window(reference: &NumericProfile, values: &[f64]) -> NumericWindow {
        let mut w = NumericWindow::new(reference).expect("reference has a histogram");
        w.extend(values.iter().copied());
        w
    }

    #[test]
    fn streaming_equals_batch_binning() {
        let values: Vec<f64> = (0..500)
            .map(|i| 1_000.0 + f64::from((i * 37) % 101) / 7.0)
            .collect();
        let batch = numeric_from_values(values.clone(), 0, 0, 0, 12);
        let mut w = window(&batch, &values);
        assert_eq!(w.counts(), batch.histogram.counts);
        close(w.mean().expect("mean"), batch.mean.expect("mean"), 1e-12);
        close(w.std().expect("std"), batch.std.expect("std"), 1e-10);

        w.extend([f64::NAN, f64::INFINITY, f64::NEG_INFINITY, -1e9, 1e9]);
        assert_eq!((w.nans(), w.infinite(), w.count()), (1, 2, 502));
        assert_eq!(w.counts()[0], batch.histogram.counts[0] + 1);
        assert_eq!(w.counts()[11], batch.histogram.counts[11] + 1);
    }

    #[test]
    fn categories_are_counted_with_nulls_apart() {
        let mut w = CategoricalWindow::new();
        for v in [Some("b"), None, Some("a"), Some("b")] {
            w.push(v);
        }
        assert_eq!((w.count(), w.nulls()), (3, 1));
        let reference = CategoricalProfile {
            count: 5,
            nulls: 0,
            frequencies: [("a".to_owned(), 2), ("c".to_owned(), 3)].into(),
        };
        assert_eq!(w.unseen(&reference).collect::<Vec<_>>(), [("b", 2)]);
        assert_eq!(w.distinct_with(&reference), 3);
        // Union in key order: a, b, c.
        assert_eq!(w.aligned(&reference), (vec![2, 0, 3], vec![1, 2, 0]));
    }

    proptest! {
        #[test]
        fn streamed_counts_equal_the_profile_histogram(
            values in prop::collection::vec(-1e6f64..1e6, 1..200),
            bins in 1usize..30,
        ) {
            let batch = numeric_from_values(values.clone(), 0, 0, 0, bins);
            let w = window(&batch, &values);
            prop_assert_eq!(w.counts(), &batch.histogram.counts[..]);
            let (got, want) = (w.mean().unwrap_or(f64::NAN), batch.mean.unwrap_or(f64::NAN));
            prop_assert!((got - want).abs() <= 1e-9 * want.abs().max(1.0));
        }

    }
}
