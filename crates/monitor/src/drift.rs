//! Drift statistics on binned counts: Evidently's default per-column tests,
//! PSI, and the dataset-level verdict.
//!
//! A window is never held in memory. [`NumericWindow`] adds each value into
//! the reference profile's histogram bins (plus running moments), and
//! [`CategoricalWindow`] counts categories; every test below reads only those
//! counts and the reference profile. The price is that the numeric tests see
//! the data at the resolution of the reference histogram: the Kolmogorov–
//! Smirnov statistic is a lower bound of the raw-sample one, and the
//! Wasserstein distance moves mass between bin centres.
//!
//! The default choice of test and the thresholds follow Evidently's
//! `get_default_stattest` (`evidently/calculations/stattests/registry.py`,
//! under `evidently/legacy/` in current releases) and its test modules in the
//! same directory, cited on each function, so that a number here can be
//! checked against an Evidently or scipy notebook
//! (`crates/monitor/tests/drift_reference.py` computes the ones the tests
//! quote).

use revspend_core::profile::{CategoricalProfile, NumericProfile};
use serde::Serialize;
use statrs::distribution::{ChiSquared, ContinuousCDF};

use crate::window::check_histogram;
pub use crate::window::{CategoricalWindow, NumericWindow};

/// Evidently's reference-size boundary: up to this many reference rows the
/// statistical tests (KS, chi-squared) are used, above it the distances
/// (normalised Wasserstein, Jensen–Shannon), since with large samples a test
/// flags differences too small to matter.
pub const SMALL_REFERENCE_ROWS: u64 = 1_000;

/// Evidently's boundary between a numeric column treated as continuous and
/// one treated as a few categories: more than this many distinct values.
pub const FEW_VALUES: u64 = 5;

/// Evidently's default p-value threshold of the KS and chi-squared tests.
pub const DEFAULT_P_VALUE: f64 = 0.05;

/// Evidently's default threshold of the normalised Wasserstein distance.
pub const DEFAULT_WASSERSTEIN: f64 = 0.1;

/// Evidently's default threshold of the Jensen–Shannon distance.
pub const DEFAULT_JENSEN_SHANNON: f64 = 0.1;

/// PSI from which a shift is usually worth a look.
pub const PSI_WARN: f64 = 0.1;

/// PSI from which a shift is usually read as significant.
pub const PSI_ALARM: f64 = 0.25;

/// Evidently's default share of drifted columns that makes the dataset drift.
pub const DEFAULT_DRIFT_SHARE: f64 = 0.5;

/// Evidently's floor on the reference std in the normalised Wasserstein
/// distance, so that a constant reference does not divide by zero.
const MIN_WASSERSTEIN_NORM: f64 = 0.001;

/// Why a drift statistic could not be computed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum DriftError {
    /// The reference profile has no finite value, hence no histogram.
    #[error("the reference profile has no histogram (no finite values)")]
    NoReferenceHistogram,
    /// The reference histogram is malformed (edges must be one more than the
    /// bins).
    #[error("the reference histogram has {edges} edges for {bins} bins")]
    BadHistogram { edges: usize, bins: usize },
    /// The window was binned with other edges than the reference's.
    #[error("the window has {got} bins, the reference {expected}")]
    BinMismatch { expected: usize, got: usize },
    /// The reference has no (non-null) value to compare with.
    #[error("the reference has no values")]
    EmptyReference,
    /// The window has no (finite, non-null) value to compare.
    #[error("the window has no values")]
    EmptyWindow,
    /// A drift share outside `(0, 1]`.
    #[error("drift share must be in (0, 1], got {0}")]
    BadShare(f64),
}

/// A test of Evidently's default set.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DriftTest {
    KolmogorovSmirnov,
    WassersteinNorm,
    ChiSquared,
    JensenShannon,
}

/// What a test's threshold is compared with.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Score {
    /// Drift when `p < threshold` (`p <= threshold` for KS, as Evidently).
    PValue(f64),
    /// Drift when `distance >= threshold`.
    Distance(f64),
}

/// The outcome of one column's drift test.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct DriftResult {
    pub test: DriftTest,
    /// The test statistic: KS `D`, chi-squared `χ²`, the Wasserstein distance
    /// in the feature's units, the Jensen–Shannon distance.
    pub statistic: f64,
    pub score: Score,
    pub threshold: f64,
    pub drifted: bool,
}

impl DriftResult {
    fn from_p_value(test: DriftTest, statistic: f64, p: f64, threshold: f64) -> DriftResult {
        DriftResult {
            test,
            statistic,
            score: Score::PValue(p),
            threshold,
            drifted: p < threshold,
        }
    }

    /// Evidently's KS flags `p <= threshold` where its chi-squared flags
    /// `p < threshold`; kept so that a p-value exactly at the threshold gets
    /// Evidently's verdict.
    fn from_p_value_inclusive(test: DriftTest, statistic: f64, p: f64, threshold: f64) -> DriftResult {
        DriftResult {
            drifted: p <= threshold,
            ..DriftResult::from_p_value(test, statistic, p, threshold)
        }
    }

    fn from_distance(test: DriftTest, statistic: f64, d: f64, threshold: f64) -> DriftResult {
        DriftResult {
            test,
            statistic,
            score: Score::Distance(d),
            threshold,
            drifted: d >= threshold,
        }
    }
}

/// How alarming a PSI is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PsiLevel {
    Stable,
    Warn,
    Alarm,
}

/// PSI of a window against the reference.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct PsiResult {
    pub psi: f64,
    pub level: PsiLevel,
}

impl PsiResult {
    fn new(psi: f64) -> PsiResult {
        let level = if psi >= PSI_ALARM {
            PsiLevel::Alarm
        } else if psi >= PSI_WARN {
            PsiLevel::Warn
        } else {
            PsiLevel::Stable
        };
        PsiResult { psi, level }
    }
}

/// The reference and window bin counts of a numeric column, checked to align.
fn numeric_counts<'a>(
    reference: &'a NumericProfile,
    window: &'a NumericWindow,
) -> Result<(&'a [u64], &'a [u64]), DriftError> {
    let histogram = &reference.histogram;
    check_histogram(&histogram.edges, histogram.counts.len())?;
    if window.counts().len() != histogram.counts.len() {
        return Err(DriftError::BinMismatch {
            expected: histogram.counts.len(),
            got: window.counts().len(),
        });
    }
    check_totals(&histogram.counts, window.counts())?;
    Ok((&histogram.counts, window.counts()))
}

fn check_totals(reference: &[u64], window: &[u64]) -> Result<(u64, u64), DriftError> {
    let n: u64 = reference.iter().sum();
    let m: u64 = window.iter().sum();
    if n == 0 {
        return Err(DriftError::EmptyReference);
    }
    if m == 0 {
        return Err(DriftError::EmptyWindow);
    }
    Ok((n, m))
}

// ---------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------

/// Two-sample Kolmogorov–Smirnov test on the binned data (Evidently's
/// `ks_stattest.py`, scipy `ks_2samp`).
///
/// `D = max |F_ref − F_win|` over the bins' right edges. Within a bin neither
/// empirical CDF is known, so this is the binned statistic: a lower bound of
/// the raw samples' `D` (the maximum over a subset of points), equal to
/// `ks_2samp` on the bin-centre samples. The p-value is the asymptotic
/// Kolmogorov distribution's survival [`kolmogorov_sf`] at `√n_eff · D`, with
/// `n_eff = n·m / (n + m)`. scipy's `ks_2samp(method="asymp")` uses the
/// finite-`n` distribution `kstwo.sf(D, round(n_eff))` instead, a few
/// percent apart for windows of tens of values and converging to this one as
/// they grow, which is the regime binned streaming is for. Drift when
/// `p <= threshold` (default [`DEFAULT_P_VALUE`]), Evidently's comparison.
pub fn kolmogorov_smirnov(
    reference: &NumericProfile,
    window: &NumericWindow,
    threshold: f64,
) -> Result<DriftResult, DriftError> {
    let (r, w) = numeric_counts(reference, window)?;
    let (n, m) = check_totals(r, w)?;
    let d = cdf_gaps(r, w, n, m).fold(0.0, |max, gap| f64::max(max, gap.abs()));
    let (n, m) = (n as f64, m as f64);
    let p = kolmogorov_sf((n * m / (n + m)).sqrt() * d);
    Ok(DriftResult::from_p_value_inclusive(
        DriftTest::KolmogorovSmirnov,
        d,
        p,
        threshold,
    ))
}

/// `F_ref − F_win` at the right edge of every bin but the last (where both
/// are 1).
fn cdf_gaps<'a>(r: &'a [u64], w: &'a [u64], n: u64, m: u64) -> impl Iterator<Item = f64> + 'a {
    let (n, m) = (n as f64, m as f64);
    let bins = r.len();
    r.iter()
        .zip(w)
        .take(bins - 1)
        .scan((0u64, 0u64), move |(cr, cw), (&a, &b)| {
            *cr += a;
            *cw += b;
            Some(*cr as f64 / n - *cw as f64 / m)
        })
}

/// Survival function of the Kolmogorov distribution,
/// `Q_KS(λ) = P(K > λ) = 2 Σ_{k≥1} (−1)^{k−1} e^{−2k²λ²}`: the limit of
/// `√n · D_n` (scipy `stats.kstwobign.sf`).
///
/// The alternating series converges fast for large `λ` but needs many terms
/// and cancels badly near 0, so below `λ = 1` the complement of the Jacobi
/// theta form of the CDF, `K(λ) = √(2π)/λ Σ_{k≥1} e^{−(2k−1)²π²/(8λ²)}`, is
/// used instead (scipy's `kolmogorov` switches forms likewise, at 0.82); both
/// are the same function.
pub fn kolmogorov_sf(lambda: f64) -> f64 {
    if lambda.is_nan() {
        return f64::NAN;
    }
    if lambda <= 0.0 {
        return 1.0;
    }
    if lambda < 1.0 {
        let a = -std::f64::consts::PI.powi(2) / (8.0 * lambda * lambda);
        let mut cdf = 0.0;
        for k in 1..=50u32 {
            let j = f64::from(2 * k - 1);
            let term = (a * j * j).exp();
            cdf += term;
            if term < 1e-17 * cdf {
                break;
            }
        }
        cdf *= (2.0 * std::f64::consts::PI).sqrt() / lambda;
        return (1.0 - cdf).clamp(0.0, 1.0);
    }
    let mut sf = 0.0;
    let mut sign = 1.0;
    for k in 1..=100u32 {
        let k = f64::from(k);
        let term = (-2.0 * k * k * lambda * lambda).exp();
        sf += sign * term;
        if term < 1e-17 * sf.abs() {
            break;
        }
        sign = -sign;
    }
    (2.0 * sf).clamp(0.0, 1.0)
}

/// Wasserstein-1 distance between the binned reference and window, divided
/// by the reference's population std (Evidently's
/// `wasserstein_distance_norm.py`: `wasserstein_distance(ref, cur) /
/// max(np.std(ref), 0.001)`).
///
/// Each bin's mass sits at its centre, so `W1 = Σ |F_ref − F_win| ·
/// (c_{i+1} − c_i)` over the bins' right edges: exactly scipy's
/// `wasserstein_distance` on the bin-centre samples, which the tests check.
/// Spreading each bin's mass uniformly instead gives the same value wherever
/// the CDF gap keeps its sign across a bin and a smaller one where it flips,
/// so the centre form is never below it and needs no assumption about the
/// data within a bin. The std is the profile's (sample, `ddof = 1`) turned
/// into numpy's default population std, as Evidently divides by `np.std`.
/// `statistic` is `W1` in the feature's units. Drift when the normalised
/// distance `>= threshold` (default [`DEFAULT_WASSERSTEIN`]).
pub fn wasserstein_norm(
    reference: &NumericProfile,
    window: &NumericWindow,
    threshold: f64,
) -> Result<DriftResult, DriftError> {
    let (r, w) = numeric_counts(reference, window)?;
    let (n, m) = check_totals(r, w)?;
    let edges = &reference.histogram.edges;
    let centre = |i: usize| (edges[i] + edges[i + 1]) / 2.0;
    let w1: f64 = cdf_gaps(r, w, n, m)
        .enumerate()
        .map(|(i, gap)| gap.abs() * (centre(i + 1) - centre(i)))
        .sum();
    let population_std = match (reference.std, reference.count) {
        (Some(s), count) if count > 0 => s * ((count as f64 - 1.0) / count as f64).sqrt(),
        _ => 0.0,
    };
    let distance = w1 / population_std.max(MIN_WASSERSTEIN_NORM);
    Ok(DriftResult::from_distance(
        DriftTest::WassersteinNorm,
        w1,
        distance,
        threshold,
    ))
}

/// Chi-squared goodness of fit of the window's categories to the reference's
/// (Evidently's `chisquare_stattest.py`: observed = window counts, expected =
/// reference proportions × window total, over the union of categories, p from
/// `scipy.stats.chisquare` with `k − 1` degrees of freedom).
///
/// A category the reference never saw has expected count 0, so, as in
/// Evidently and scipy, the statistic is infinite and `p = 0`: a value the
/// reference cannot produce is drift by definition, and
/// [`CategoricalWindow::unseen`] names it. Nulls enter neither side (Evidently
/// scales by the row counts including nulls; with non-null counts expected
/// and observed sum to the same total, which scipy requires). With a single
/// category there is nothing to compare: `p = 1`. Drift when `p < threshold`
/// (default [`DEFAULT_P_VALUE`]).
pub fn chi_squared(
    reference: &CategoricalProfile,
    window: &CategoricalWindow,
    threshold: f64,
) -> Result<DriftResult, DriftError> {
    let (r, w) = window.aligned(reference);
    chi_squared_counts(&r, &w, threshold)
}

/// [`chi_squared`] with the reference histogram's bins as the categories:
/// for a numeric column of few distinct values (each in its own bin unless
/// two lie within a bin width; the window's values beyond the reference range
/// join the outer bins rather than forming new categories). Bins empty on
/// both sides are no category and take no degree of freedom.
pub fn chi_squared_binned(
    reference: &NumericProfile,
    window: &NumericWindow,
    threshold: f64,
) -> Result<DriftResult, DriftError> {
    let (r, w) = numeric_counts(reference, window)?;
    chi_squared_counts(r, w, threshold)
}

fn chi_squared_counts(r: &[u64], w: &[u64], threshold: f64) -> Result<DriftResult, DriftError> {
    let (n, m) = check_totals(r, w)?;
    let scale = m as f64 / n as f64;
    let mut statistic = 0.0;
    let mut categories = 0u32;
    for (&e, &o) in r.iter().zip(w) {
        if e == 0 && o == 0 {
            continue;
        }
        categories += 1;
        let expected = e as f64 * scale;
        let diff = o as f64 - expected;
        statistic += diff * diff / expected;
    }
    let p = if statistic.is_infinite() {
        0.0
    } else {
        match ChiSquared::new(f64::from(categories.saturating_sub(1))) {
            Ok(distribution) => distribution.sf(statistic),
            // No degree of freedom: one category, nothing to compare.
            Err(_) => 1.0,
        }
    };
    Ok(DriftResult::from_p_value(
        DriftTest::ChiSquared,
        statistic,
        p,
        threshold,
    ))
}

/// Jensen–Shannon distance between the reference and window proportions
/// over the union of categories (Evidently's `jensenshannon.py`, scipy
/// `spatial.distance.jensenshannon` with its default natural log): the square
/// root of the JS divergence, between 0 and `√ln 2`. Current Evidently passes
/// `base=None` (natural log); some earlier releases passed `base=2`, whose
/// distances are `1/√ln 2 ≈ 1.20` times these, so a threshold carried over
/// from one of those reads differently here. A category on one side
/// only adds a finite amount, so no smoothing is needed. Drift when the
/// distance `>= threshold` (default [`DEFAULT_JENSEN_SHANNON`]); `statistic`
/// is the same distance.
pub fn jensen_shannon(
    reference: &CategoricalProfile,
    window: &CategoricalWindow,
    threshold: f64,
) -> Result<DriftResult, DriftError> {
    let (r, w) = window.aligned(reference);
    jensen_shannon_counts(&r, &w, threshold)
}

/// [`jensen_shannon`] over the reference histogram's bins. Evidently bins
/// both samples together into 30 equal bins; the reference's bins are what a
/// streamed window can be put into.
pub fn jensen_shannon_binned(
    reference: &NumericProfile,
    window: &NumericWindow,
    threshold: f64,
) -> Result<DriftResult, DriftError> {
    let (r, w) = numeric_counts(reference, window)?;
    jensen_shannon_counts(r, w, threshold)
}

/// Jensen–Shannon distance (natural log) of two aligned count vectors.
pub fn jensen_shannon_counts(r: &[u64], w: &[u64], threshold: f64) -> Result<DriftResult, DriftError> {
    let (n, m) = check_totals(r, w)?;
    // scipy's rel_entr: x·ln(x/y), 0 when x is 0.
    let rel_entr = |x: f64, y: f64| if x > 0.0 { x * (x / y).ln() } else { 0.0 };
    let divergence: f64 = r
        .iter()
        .zip(w)
        .map(|(&a, &b)| {
            let (p, q) = (a as f64 / n as f64, b as f64 / m as f64);
            let mid = (p + q) / 2.0;
            (rel_entr(p, mid) + rel_entr(q, mid)) / 2.0
        })
        .sum();
    let distance = divergence.max(0.0).sqrt();
    Ok(DriftResult::from_distance(
        DriftTest::JensenShannon,
        distance,
        distance,
        threshold,
    ))
}

/// Population stability index over the reference histogram's bins, with the
/// convention of [`revspend_core::profile::psi`] (an empty bin counts as
/// [`revspend_core::profile::PSI_EPSILON`]), which it equals on the same values (Evidently's
/// `psi.py` has the same sum with 0.0001 for an empty bin).
pub fn psi_binned(reference: &NumericProfile, window: &NumericWindow) -> Result<PsiResult, DriftError> {
    let (r, w) = numeric_counts(reference, window)?;
    psi_counts(r, w)
}

pub use revspend_core::profile::PSI_MIN_BIN_SHARE;

/// [`psi_binned`] on bins merged until each holds `min_share` of the
/// reference ([`revspend_core::profile::psi_merged_counts`]: the definition
/// the server's live gauges share).
pub fn psi_merged(
    reference: &NumericProfile,
    window: &NumericWindow,
    min_share: f64,
) -> Result<PsiResult, DriftError> {
    let (r, w) = numeric_counts(reference, window)?;
    check_totals(r, w)?;
    Ok(PsiResult::new(revspend_core::profile::psi_merged_counts(
        r, w, min_share,
    )))
}

/// [`psi_binned`] over the union of categories; a category on one side only
/// counts as [`revspend_core::profile::PSI_EPSILON`] on the other, so a new category weighs in by its
/// share of the window.
pub fn psi_categorical(
    reference: &CategoricalProfile,
    window: &CategoricalWindow,
) -> Result<PsiResult, DriftError> {
    let (r, w) = window.aligned(reference);
    psi_counts(&r, &w)
}

/// PSI of two aligned count vectors (the reference first), with an empty
/// bin counted as [`revspend_core::profile::PSI_EPSILON`]: [`revspend_core::profile::psi_from_counts`].
pub fn psi_counts(r: &[u64], w: &[u64]) -> Result<PsiResult, DriftError> {
    check_totals(r, w)?;
    Ok(PsiResult::new(revspend_core::profile::psi_from_counts(r, w)))
}

// ---------------------------------------------------------------------------
// Choice and dataset verdict
// ---------------------------------------------------------------------------

/// How a column is typed in the schema.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ColumnKind {
    Numeric,
    Categorical,
}

/// Evidently's default test (`get_default_stattest`,
/// `evidently/calculations/stattests/registry.py`): a numeric column with
/// more than [`FEW_VALUES`] distinct values gets KS when the reference has
/// at most [`SMALL_REFERENCE_ROWS`] rows, else the normalised Wasserstein
/// distance; a categorical column, or a numeric one of few values, gets
/// chi-squared for a small reference, else Jensen–Shannon.
///
/// `reference_rows` is the reference table's row count (Evidently's
/// `reference_data.shape[0]` counts nulls too). `distinct_values` is the
/// number of distinct values over reference and window together, as
/// Evidently counts them, and is a parameter because the profile cannot tell
/// it: a histogram's non-empty bins only bound it from below (a single bin can
/// hold a thousand values). For a categorical column
/// [`CategoricalWindow::distinct_with`] gives it.
///
/// Evidently uses a two-proportion Z-test instead of chi-squared when a
/// small reference has at most two distinct values; chi-squared with one
/// degree of freedom is the same test for a large enough window (`χ² = Z²`
/// without Evidently's continuity details), so it is kept here.
pub fn choose_test(kind: ColumnKind, reference_rows: u64, distinct_values: u64) -> DriftTest {
    let small = reference_rows <= SMALL_REFERENCE_ROWS;
    let continuous = kind == ColumnKind::Numeric && distinct_values > FEW_VALUES;
    match (continuous, small) {
        (true, true) => DriftTest::KolmogorovSmirnov,
        (true, false) => DriftTest::WassersteinNorm,
        (false, true) => DriftTest::ChiSquared,
        (false, false) => DriftTest::JensenShannon,
    }
}

/// The default test of a numeric column, run with its default threshold.
/// See [`choose_test`] for `reference_rows` and `distinct_values`.
pub fn numeric_drift(
    reference: &NumericProfile,
    window: &NumericWindow,
    reference_rows: u64,
    distinct_values: u64,
) -> Result<DriftResult, DriftError> {
    match choose_test(ColumnKind::Numeric, reference_rows, distinct_values) {
        DriftTest::KolmogorovSmirnov => kolmogorov_smirnov(reference, window, DEFAULT_P_VALUE),
        DriftTest::WassersteinNorm => wasserstein_norm(reference, window, DEFAULT_WASSERSTEIN),
        DriftTest::ChiSquared => chi_squared_binned(reference, window, DEFAULT_P_VALUE),
        DriftTest::JensenShannon => jensen_shannon_binned(reference, window, DEFAULT_JENSEN_SHANNON),
    }
}

/// The default test of a categorical column, run with its default threshold.
pub fn categorical_drift(
    reference: &CategoricalProfile,
    window: &CategoricalWindow,
    reference_rows: u64,
) -> Result<DriftResult, DriftError> {
    let distinct = window.distinct_with(reference);
    match choose_test(ColumnKind::Categorical, reference_rows, distinct) {
        DriftTest::JensenShannon => jensen_shannon(reference, window, DEFAULT_JENSEN_SHANNON),
        _ => chi_squared(reference, window, DEFAULT_P_VALUE),
    }
}

/// Whether the dataset drifted, from its columns' results.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct DatasetDrift {
    pub columns: usize,
    pub drifted_columns: usize,
    /// `drifted_columns / columns`; 0 with no column.
    pub share: f64,
    pub threshold: f64,
    pub drifted: bool,
}

/// Evidently's dataset drift: the share of drifted columns `>= share`
/// (default [`DEFAULT_DRIFT_SHARE`]), which must lie in `(0, 1]`. No column
/// means no drift.
pub fn dataset_drift(results: &[DriftResult], share: f64) -> Result<DatasetDrift, DriftError> {
    dataset_drift_of(results.iter().map(|r| r.drifted), share)
}

/// [`dataset_drift`] from each tested column's verdict.
pub fn dataset_drift_of(
    drifted: impl IntoIterator<Item = bool>,
    share: f64,
) -> Result<DatasetDrift, DriftError> {
    if !(share > 0.0 && share <= 1.0) {
        return Err(DriftError::BadShare(share));
    }
    let (mut columns, mut drifted_columns) = (0usize, 0usize);
    for d in drifted {
        columns += 1;
        drifted_columns += usize::from(d);
    }
    let fraction = if columns == 0 {
        0.0
    } else {
        drifted_columns as f64 / columns as f64
    };
    Ok(DatasetDrift {
        columns,
        drifted_columns,
        share: fraction,
        threshold: share,
        drifted: columns > 0 && fraction >= share,
    })
}

#[cfg(test)]
mod tests {
    //! The expected numbers are printed by `crates/monitor/tests/drift_reference.py`
    //! (scipy 1.17.1, numpy 2.4.6) from the same fixtures.

    use std::collections::BTreeMap;

    use proptest::prelude::*;
    use revspend_core::profile::{numeric_from_values, psi};

    use super::*;

    fn close(got: f64, want: f64, tol: f64) {
        assert!(
            (got - want).abs() <= tol * want.abs().max(1.0),
            "got {got}, want {want}"
        );
    }

    fn p_value(r: &DriftResult) -> f64 {
        match r.score {
            Score::PValue(p) => p,
            Score::Distance(_) => panic!("{r:?} has no p-value"),
        }
    }

    fn distance(r: &DriftResult) -> f64 {
        match r.score {
            Score::Distance(d) => d,
            Score::PValue(_) => panic!("{r:?} has no distance"),
        }
    }

    /// 0..=20 ten times each: ten bins of width 2 over [0, 20].
    fn reference_values() -> Vec<f64> {
        (0..210).map(|i| f64::from(i % 21)).collect()
    }

    fn reference() -> NumericProfile {
        numeric_from_values(reference_values(), 0, 0, 0, 10)
    }

    fn mild() -> Vec<f64> {
        (0..120).map(|i| f64::from((i * 7) % 23)).collect()
    }

    fn strong() -> Vec<f64> {
        (0..150).map(|i| f64::from(i % 21 + 6)).collect()
    }

    fn window(reference: &NumericProfile, values: &[f64]) -> NumericWindow {
        let mut w = NumericWindow::new(reference).expect("reference has a histogram");
        w.extend(values.iter().copied());
        w
    }

    fn categorical(pairs: &[(&str, u64)]) -> CategoricalProfile {
        let frequencies: BTreeMap<String, u64> = pairs.iter().map(|&(k, c)| (k.to_owned(), c)).collect();
        CategoricalProfile {
            count: frequencies.values().sum(),
            nulls: 0,
            frequencies,
        }
    }

    fn categorical_window(pairs: &[(&str, u64)]) -> CategoricalWindow {
        let mut w = CategoricalWindow::new();
        for &(k, c) in pairs {
            for _ in 0..c {
                w.push(Some(k));
            }
        }
        w
    }

    #[test]
    fn kolmogorov_sf_matches_scipy_kstwobign() {
        let cases = [
            (0.3, 0.9999906941986655),
            (0.5, 0.9639452436648751),
            (0.9, 0.3927307079406543),
            (1.0, 0.26999967167735456),
            (1.36, 0.049485876755377876),
            (2.0, 0.0006709252557796953),
        ];
        for (lambda, want) in cases {
            close(kolmogorov_sf(lambda), want, 1e-12);
        }
        let tail = kolmogorov_sf(3.0);
        assert!((tail / 3.045995948942526e-08 - 1.0).abs() < 1e-9, "{tail}");
        assert_eq!(kolmogorov_sf(0.0), 1.0);
        // Both branches meet at λ = 1.
        close(kolmogorov_sf(1.0 - 1e-12), kolmogorov_sf(1.0), 1e-10);
    }

    #[test]
    fn windows_bin_like_the_reference_script() {
        let r = reference();
        assert_eq!(r.histogram.counts, [20, 20, 20, 20, 20, 20, 20, 20, 20, 30]);
        let w = window(&r, &mild());
        assert_eq!(w.counts(), [11, 10, 11, 11, 10, 10, 10, 11, 10, 26]);
        let w = window(&r, &strong());
        assert_eq!(w.counts(), [0, 0, 0, 16, 15, 14, 14, 14, 14, 63]);
    }

    #[test]
    fn mild_shift_matches_scipy() {
        let r = reference();
        let w = window(&r, &mild());

        let ks = kolmogorov_smirnov(&r, &w, DEFAULT_P_VALUE).expect("ks");
        close(ks.statistic, 0.07380952380952377, 1e-12);
        close(p_value(&ks), 0.7997222553832759, 1e-10);
        assert!(!ks.drifted);

        let wd = wasserstein_norm(&r, &w, DEFAULT_WASSERSTEIN).expect("wasserstein");
        close(wd.statistic, 0.6714285714285712, 1e-12);
        close(distance(&wd), 0.11088277920201199, 1e-12);
        // Just over Evidently's 0.1: the distance is more sensitive here.
        assert!(wd.drifted);

        let chi = chi_squared_binned(&r, &w, DEFAULT_P_VALUE).expect("chi2");
        close(chi.statistic, 5.533333333333331, 1e-12);
        close(p_value(&chi), 0.7855618137264583, 1e-9);
        assert!(!chi.drifted);

        // At a threshold equal to p, KS drifts (Evidently's `<=`) and
        // chi-squared does not (its `<`).
        let at = kolmogorov_smirnov(&r, &w, p_value(&ks)).expect("ks");
        assert!(at.drifted);
        let at = chi_squared_binned(&r, &w, p_value(&chi)).expect("chi2");
        assert!(!at.drifted);

        let js = jensen_shannon_binned(&r, &w, DEFAULT_JENSEN_SHANNON).expect("js");
        close(distance(&js), 0.06983089931175035, 1e-12);
        assert!(!js.drifted);

        let p = psi_binned(&r, &w).expect("psi");
        close(p.psi, 0.03923708420397973, 1e-12);
        close(p.psi, psi(&r, &mild()), 1e-12);
        assert_eq!(p.level, PsiLevel::Stable);
    }

    #[test]
    fn strong_shift_matches_scipy_and_drifts() {
        let r = reference();
        let w = window(&r, &strong());

        let ks = kolmogorov_smirnov(&r, &w, DEFAULT_P_VALUE).expect("ks");
        close(ks.statistic, 0.2857142857142857, 1e-12);
        let p = p_value(&ks);
        assert!((p / 1.2497499018926193e-06 - 1.0).abs() < 1e-9, "{p}");
        assert!(ks.drifted);

        let wd = wasserstein_norm(&r, &w, DEFAULT_WASSERSTEIN).expect("wasserstein");
        close(wd.statistic, 4.424761904761905, 1e-12);
        close(distance(&wd), 0.730725378968153, 1e-12);
        assert!(wd.drifted);

        let chi = chi_squared_binned(&r, &w, DEFAULT_P_VALUE).expect("chi2");
        close(chi.statistic, 123.76999999999998, 1e-12);
        let p = p_value(&chi);
        assert!((p / 2.256546926195002e-22 - 1.0).abs() < 1e-8, "{p}");
        assert!(chi.drifted);

        let js = jensen_shannon_binned(&r, &w, DEFAULT_JENSEN_SHANNON).expect("js");
        close(distance(&js), 0.367258924099668, 1e-12);
        assert!(js.drifted);

        let p = psi_binned(&r, &w).expect("psi");
        close(p.psi, 3.5759877934191757, 1e-12);
        close(p.psi, psi(&r, &strong()), 1e-12);
        assert_eq!(p.level, PsiLevel::Alarm);
    }

    #[test]
    fn the_reference_against_itself_does_not_drift() {
        let r = reference();
        let w = window(&r, &reference_values());
        let results = [
            kolmogorov_smirnov(&r, &w, DEFAULT_P_VALUE),
            wasserstein_norm(&r, &w, DEFAULT_WASSERSTEIN),
            chi_squared_binned(&r, &w, DEFAULT_P_VALUE),
            jensen_shannon_binned(&r, &w, DEFAULT_JENSEN_SHANNON),
        ];
        for result in results {
            let result = result.expect("computable");
            assert!(!result.drifted, "{result:?}");
            close(result.statistic, 0.0, 1e-12);
        }
        let p = psi_binned(&r, &w).expect("psi");
        close(p.psi, 0.0, 1e-12);
        assert_eq!(p.level, PsiLevel::Stable);

        let c = categorical(&[("a", 50), ("b", 30), ("c", 20)]);
        let cw = categorical_window(&[("a", 5), ("b", 3), ("c", 2)]);
        let chi = chi_squared(&c, &cw, DEFAULT_P_VALUE).expect("chi2");
        close(p_value(&chi), 1.0, 1e-12);
        assert!(!chi.drifted);
        let js = jensen_shannon(&c, &cw, DEFAULT_JENSEN_SHANNON).expect("js");
        close(distance(&js), 0.0, 1e-12);
    }

    #[test]
    fn categorical_tests_match_scipy() {
        let r = categorical(&[("a", 50), ("b", 30), ("c", 20)]);
        let w = categorical_window(&[("a", 30), ("b", 25), ("c", 25)]);
        let chi = chi_squared(&r, &w, DEFAULT_P_VALUE).expect("chi2");
        close(chi.statistic, 7.604166666666666, 1e-12);
        close(p_value(&chi), 0.022324214595451124, 1e-9);
        assert!(chi.drifted);
        let js = jensen_shannon(&r, &w, DEFAULT_JENSEN_SHANNON).expect("js");
        close(distance(&js), 0.10376761735538395, 1e-12);
        assert!(js.drifted);
        let p = psi_categorical(&r, &w).expect("psi");
        close(p.psi, 0.08667783303367299, 1e-12);
        assert_eq!(p.level, PsiLevel::Stable);
    }

    /// A category the reference never saw: infinite χ² and p = 0 as scipy
    /// gives, finite JS and PSI.
    #[test]
    fn an_unseen_category_is_its_own_bucket() {
        let r = categorical(&[("a", 50), ("b", 30), ("c", 20)]);
        let mut w = categorical_window(&[("a", 30), ("b", 25), ("c", 25), ("d", 10)]);
        w.push(None);
        assert_eq!((w.count(), w.nulls()), (90, 1));
        assert_eq!(w.unseen(&r).collect::<Vec<_>>(), [("d", 10)]);
        assert_eq!(w.distinct_with(&r), 4);

        let chi = chi_squared(&r, &w, DEFAULT_P_VALUE).expect("chi2");
        assert!(chi.statistic.is_infinite());
        assert_eq!(p_value(&chi), 0.0);
        assert!(chi.drifted);
        let js = jensen_shannon(&r, &w, DEFAULT_JENSEN_SHANNON).expect("js");
        close(distance(&js), 0.22425701279380827, 1e-12);
        let p = psi_categorical(&r, &w).expect("psi");
        close(p.psi, 1.385747125924903, 1e-12);
        assert_eq!(p.level, PsiLevel::Alarm);
    }

    #[test]
    fn choose_test_follows_evidently() {
        use ColumnKind::{Categorical, Numeric};
        assert_eq!(choose_test(Numeric, 1_000, 6), DriftTest::KolmogorovSmirnov);
        assert_eq!(choose_test(Numeric, 1_001, 6), DriftTest::WassersteinNorm);
        assert_eq!(choose_test(Numeric, 1_000, 5), DriftTest::ChiSquared);
        assert_eq!(choose_test(Numeric, 1_001, 5), DriftTest::JensenShannon);
        assert_eq!(choose_test(Categorical, 1_000, 40), DriftTest::ChiSquared);
        assert_eq!(choose_test(Categorical, 1_001, 40), DriftTest::JensenShannon);

        let r = reference();
        let w = window(&r, &strong());
        let small = numeric_drift(&r, &w, 210, 21).expect("drift");
        assert_eq!(small.test, DriftTest::KolmogorovSmirnov);
        let large = numeric_drift(&r, &w, 5_000, 21).expect("drift");
        assert_eq!(large.test, DriftTest::WassersteinNorm);
        let c = categorical(&[("a", 50), ("b", 30), ("c", 20)]);
        let cw = categorical_window(&[("a", 30), ("b", 25), ("c", 25)]);
        let cat = categorical_drift(&c, &cw, 100).expect("drift");
        assert_eq!(cat.test, DriftTest::ChiSquared);
    }

    #[test]
    fn dataset_drifts_from_the_share_of_drifted_columns() {
        let r = reference();
        let same = window(&r, &reference_values());
        let moved = window(&r, &strong());
        let stay = kolmogorov_smirnov(&r, &same, DEFAULT_P_VALUE).expect("ks");
        let go = kolmogorov_smirnov(&r, &moved, DEFAULT_P_VALUE).expect("ks");

        let half = dataset_drift(&[stay, go, stay, go], DEFAULT_DRIFT_SHARE).expect("share");
        assert_eq!((half.columns, half.drifted_columns), (4, 2));
        close(half.share, 0.5, 1e-12);
        assert!(half.drifted);
        let quarter = dataset_drift(&[stay, go, stay, stay], DEFAULT_DRIFT_SHARE).expect("share");
        assert!(!quarter.drifted);
        assert!(!dataset_drift(&[], DEFAULT_DRIFT_SHARE).expect("share").drifted);
        assert_eq!(dataset_drift(&[go], 0.0), Err(DriftError::BadShare(0.0)));
        assert!(dataset_drift(&[go], f64::NAN).is_err());
    }

    #[test]
    fn empty_sides_are_errors() {
        let r = reference();
        let w = NumericWindow::new(&r).expect("window");
        assert_eq!(
            kolmogorov_smirnov(&r, &w, DEFAULT_P_VALUE),
            Err(DriftError::EmptyWindow)
        );
        let nothing = numeric_from_values(Vec::new(), 3, 0, 0, 10);
        assert_eq!(
            NumericWindow::new(&nothing),
            Err(DriftError::NoReferenceHistogram)
        );
        let other = numeric_from_values(vec![1.0, 2.0, 3.0], 0, 0, 0, 4);
        let w = window(&other, &[1.0]);
        assert_eq!(
            psi_binned(&r, &w),
            Err(DriftError::BinMismatch { expected: 10, got: 4 })
        );
        let c = categorical(&[]);
        let cw = categorical_window(&[("a", 1)]);
        assert_eq!(
            chi_squared(&c, &cw, DEFAULT_P_VALUE),
            Err(DriftError::EmptyReference)
        );
    }

    /// The raw two-sample `D`: the largest gap between the empirical CDFs.
    fn raw_ks(a: &[f64], b: &[f64]) -> f64 {
        let mut points: Vec<f64> = a.iter().chain(b).copied().collect();
        points.sort_by(f64::total_cmp);
        let cdf = |s: &[f64], x: f64| s.iter().filter(|&&v| v <= x).count() as f64 / s.len() as f64;
        points
            .iter()
            .map(|&x| (cdf(a, x) - cdf(b, x)).abs())
            .fold(0.0, f64::max)
    }

    proptest! {
        #[test]
        fn binned_ks_is_a_lower_bound_of_the_raw_one(
            reference_values in prop::collection::vec(0u8..50, 2..80),
            window_values in prop::collection::vec(0u8..60, 1..80),
        ) {
            let a: Vec<f64> = reference_values.iter().map(|&v| f64::from(v)).collect();
            let b: Vec<f64> = window_values.iter().map(|&v| f64::from(v)).collect();
            let r = numeric_from_values(a.clone(), 0, 0, 0, 8);
            let ks = kolmogorov_smirnov(&r, &window(&r, &b), DEFAULT_P_VALUE);
            let binned = ks.map(|k| k.statistic).unwrap_or(f64::NAN);
            prop_assert!(binned <= raw_ks(&a, &b) + 1e-12, "{} > {}", binned, raw_ks(&a, &b));
        }
    }
    #[test]
    fn merged_psi_ignores_an_empty_sliver_bin_and_still_sees_a_shift() {
        // 49 % of the reference at 0, 49 % at 0.5, a 2 % sliver at 1.
        let mut values = vec![0.0; 490];
        values.extend(vec![0.5; 490]);
        values.extend(vec![1.0; 20]);
        let reference = revspend_core::profile::numeric_from_values(values, 0, 0, 0, 20);
        let mut window = NumericWindow::new(&reference).expect("bins");
        window.extend(vec![0.0; 500]);
        window.extend(vec![0.5; 500]);
        let raw = psi_binned(&reference, &window).expect("psi").psi;
        let merged = psi_merged(&reference, &window, PSI_MIN_BIN_SHARE)
            .expect("psi")
            .psi;
        // Raw: the empty sliver alone scores 0.02 · ln(0.02 / 1e-6) ≈ 0.198.
        assert!(raw > 0.19, "{raw}");
        // Merged: the sliver joins the 0.5 group, (0.49, 0.51) against (0.5, 0.5).
        assert!(merged < 0.001, "{merged}");
        let mut shifted = NumericWindow::new(&reference).expect("bins");
        shifted.extend(vec![0.0; 900]);
        shifted.extend(vec![0.5; 100]);
        let merged = psi_merged(&reference, &shifted, PSI_MIN_BIN_SHARE)
            .expect("psi")
            .psi;
        // (0.9 − 0.49) ln(0.9 / 0.49) + (0.1 − 0.51) ln(0.1 / 0.51) ≈ 0.917.
        assert!((merged - 0.917).abs() < 0.001, "{merged}");
    }
}
