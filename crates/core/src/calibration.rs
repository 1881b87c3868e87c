//! Probability calibrators: what the artifact carries and `serve` applies.
//! Fitting (Platt by Newton's method, isotonic by pool-adjacent-violators)
//! lives in `train`.

use serde::{Deserialize, Serialize};

/// Scores are clamped this far from 0 and 1 before taking their logit, so a
/// classifier's hard 0/1 stays finite.
pub const LOGIT_EPS: f64 = 1e-7;

/// The logit of a probability, clamped to `[LOGIT_EPS, 1 − LOGIT_EPS]`.
pub fn logit(p: f64) -> f64 {
    let p = p.clamp(LOGIT_EPS, 1.0 - LOGIT_EPS);
    (p / (1.0 - p)).ln()
}

/// The logistic function, stable at both ends.
pub fn sigmoid(z: f64) -> f64 {
    if z >= 0.0 {
        1.0 / (1.0 + (-z).exp())
    } else {
        let e = z.exp();
        e / (1.0 + e)
    }
}

/// How far from 0 and 1 a calibrated probability stays (issue 14).
pub const PROB_EPS: f64 = 1e-6;

/// Maps a classifier's probability to a calibrated one.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Calibrator {
    /// No calibration: the classifier's probability as it is.
    Identity,
    /// Platt scaling on the logit of the score: `σ(a · logit(p) + b)`.
    Platt { a: f64, b: f64 },
    /// Isotonic regression: a non-decreasing map given by knots, linearly
    /// interpolated between them and constant beyond the ends (as
    /// scikit-learn's `IsotonicRegression(out_of_bounds="clip")`).
    Isotonic { x: Vec<f64>, y: Vec<f64> },
}

impl Calibrator {
    pub fn name(&self) -> &'static str {
        match self {
            Calibrator::Identity => "none",
            Calibrator::Platt { .. } => "platt",
            Calibrator::Isotonic { .. } => "isotonic",
        }
    }

    /// The calibrated probability of `p`, never exactly 0 or 1: bounded to
    /// `[PROB_EPS, 1 − PROB_EPS]`. A hard 0 says a purchase can never be
    /// revenge spending (isotonic regression maps its lowest block of
    /// scores to the share of positives in it, often none; a steep Platt
    /// sigmoid rounds to 0 or 1 in `f64`), which no finite calibration set
    /// can show.
    pub fn apply(&self, p: f64) -> f64 {
        let q = match self {
            Calibrator::Identity => p,
            Calibrator::Platt { a, b } => sigmoid(a * logit(p) + b),
            Calibrator::Isotonic { x, y } => interpolate(x, y, p),
        };
        if q.is_nan() {
            return q;
        }
        q.clamp(PROB_EPS, 1.0 - PROB_EPS)
    }
}

fn interpolate(x: &[f64], y: &[f64], p: f64) -> f64 {
    let (Some(&first), Some(&last)) = (x.first(), x.last()) else {
        return p;
    };
    if p.is_nan() {
        return y[0];
    }
    if p <= first {
        return y[0];
    }
    if p >= last {
        return y[y.len() - 1];
    }
    // First knot strictly above p; p lies in [x[i-1], x[i]).
    let i = x.partition_point(|&k| k <= p);
    let (x0, x1, y0, y1) = (x[i - 1], x[i], y[i - 1], y[i]);
    if x1 == x0 {
        y1
    } else {
        y0 + (y1 - y0) * (p - x0) / (x1 - x0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Issue 14: no calibrator returns exactly 0 or 1.
    #[test]
    fn calibrated_probabilities_are_never_exactly_0_or_1() {
        let steep = Calibrator::Platt { a: 50.0, b: 0.0 };
        let iso = Calibrator::Isotonic {
            x: vec![0.1, 0.9],
            y: vec![0.0, 1.0],
        };
        for c in [Calibrator::Identity, steep, iso] {
            for p in [0.0, 1e-12, 0.05, 0.5, 0.95, 1.0 - 1e-12, 1.0] {
                let q = c.apply(p);
                assert!(q > 0.0 && q < 1.0, "{} maps {p} to {q}", c.name());
                assert!((PROB_EPS..=1.0 - PROB_EPS).contains(&q));
            }
        }
        // Inside the bounds nothing moves.
        assert_eq!(Calibrator::Identity.apply(0.3), 0.3);
    }

    #[test]
    fn isotonic_interpolates_and_clips() {
        let c = Calibrator::Isotonic {
            x: vec![0.1, 0.5, 0.9],
            y: vec![0.0, 0.2, 1.0],
        };
        // Clipped to the end knots, then bounded away from 0 and 1.
        assert_eq!(c.apply(0.0), PROB_EPS);
        assert!((c.apply(0.3) - 0.1).abs() < 1e-12);
        assert!((c.apply(0.7) - 0.6).abs() < 1e-12);
        assert_eq!(c.apply(0.95), 1.0 - PROB_EPS);
        assert_eq!(c.apply(0.5), 0.2);
    }

    #[test]
    fn platt_with_unit_slope_is_the_identity() {
        let c = Calibrator::Platt { a: 1.0, b: 0.0 };
        for p in [0.01, 0.3, 0.5, 0.99] {
            assert!((c.apply(p) - p).abs() < 1e-9);
        }
        assert!(Calibrator::Platt { a: 1.0, b: 0.0 }.apply(1.0) < 1.0);
    }
}
