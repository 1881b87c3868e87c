//! The report's statistics on per-feedback rewards: a Student t confidence
//! interval for a mean and Welch's two-sample t-test. Every result is an
//! `Option` or a reason, never a NaN: the report is read as JSON, where a
//! NaN would become `null` without saying why.

use serde::Serialize;
use statrs::distribution::{ContinuousCDF, StudentsT};

/// Count, mean and sample variance (n − 1) of a sample.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Moments {
    pub n: usize,
    pub mean: f64,
    /// None for n < 2.
    pub variance: Option<f64>,
}

/// The sample's moments (none when empty). Two passes: the one-pass
/// sum-of-squares formula loses digits when rewards sit far from zero.
pub fn moments(xs: &[f64]) -> Option<Moments> {
    let n = xs.len();
    if n == 0 {
        return None;
    }
    let mean = xs.iter().sum::<f64>() / n as f64;
    let variance = (n >= 2).then(|| xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1) as f64);
    Some(Moments { n, mean, variance })
}

/// A closed interval.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Interval {
    pub low: f64,
    pub high: f64,
}

/// The two-sided `level` confidence interval of the mean, mean ± t·s/√n with
/// t the Student t quantile on n − 1 degrees of freedom (none for n < 2).
pub fn mean_interval(m: &Moments, level: f64) -> Option<Interval> {
    let variance = m.variance?;
    let t = StudentsT::new(0.0, 1.0, (m.n - 1) as f64)
        .ok()?
        .inverse_cdf(0.5 + level / 2.0);
    let half = t * (variance / m.n as f64).sqrt();
    half.is_finite().then_some(Interval {
        low: m.mean - half,
        high: m.mean + half,
    })
}

/// Welch's unequal-variance two-sample t-test of `b`'s mean against `a`'s.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Welch {
    /// mean(b) − mean(a).
    pub difference: f64,
    pub t: f64,
    /// Welch–Satterthwaite degrees of freedom.
    pub df: f64,
    /// Two-sided.
    pub p_value: f64,
}

/// Welch's t-test, two-sided (what `scipy.stats.ttest_ind(b, a,
/// equal_var=False)` computes). Err says why it is undefined: fewer than two
/// values on a side, or no variance on either (every reward the same).
pub fn welch(a: &Moments, b: &Moments) -> Result<Welch, &'static str> {
    let (Some(va), Some(vb)) = (a.variance, b.variance) else {
        return Err("fewer than 2 feedbacks");
    };
    let (qa, qb) = (va / a.n as f64, vb / b.n as f64);
    let se2 = qa + qb;
    if se2 <= 0.0 {
        return Err("no variance in either sample");
    }
    let difference = b.mean - a.mean;
    let t = difference / se2.sqrt();
    let df = se2 * se2 / (qa * qa / (a.n - 1) as f64 + qb * qb / (b.n - 1) as f64);
    let dist = StudentsT::new(0.0, 1.0, df).map_err(|_| "degrees of freedom out of range")?;
    // sf, not 1 − cdf: keeps small p-values from rounding to zero.
    let p_value = (2.0 * dist.sf(t.abs())).min(1.0);
    if !(t.is_finite() && df.is_finite() && p_value.is_finite()) {
        return Err("not finite");
    }
    Ok(Welch {
        difference,
        t,
        df,
        p_value,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64, tol: f64) {
        assert!((a - b).abs() <= tol, "{a} vs {b}");
    }

    #[test]
    fn moments_and_interval_of_a_small_sample() {
        let m = moments(&[1.0, 2.0, 3.0, 4.0]).expect("moments");
        assert_eq!((m.n, m.mean), (4, 2.5));
        close(m.variance.expect("variance"), 5.0 / 3.0, 1e-12);
        // t(0.975, 3) = 3.182446305284263 (scipy.stats.t.ppf(0.975, 3)).
        let half = 3.182446305284263 * (5.0f64 / 3.0 / 4.0).sqrt();
        let ci = mean_interval(&m, 0.95).expect("ci");
        close(ci.low, 2.5 - half, 1e-9);
        close(ci.high, 2.5 + half, 1e-9);
        let one = moments(&[1.0]).expect("moments");
        assert_eq!(mean_interval(&one, 0.95), None);
        assert_eq!(moments(&[]), None);
    }

    #[test]
    fn welch_is_undefined_without_two_values_a_side_or_any_variance() {
        let one = moments(&[1.0]).expect("m");
        let flat = moments(&[1.0, 1.0, 1.0]).expect("m");
        assert!(welch(&one, &flat).is_err());
        assert_eq!(welch(&flat, &flat), Err("no variance in either sample"));
    }
}
