//! Calibration repairs a deliberately miscalibrated model.

use revspend_core::calibration::Calibrator;
use revspend_core::metrics::{ECE_BINS, brier, ece, reliability};
use revspend_core::model::sigmoid;
use revspend_core::params::CalibrationChoice;
use train::calibrate::{choose, fit_isotonic, fit_platt};

/// True probabilities `q` and labels drawn from them, with the model's
/// overconfident, shifted score `σ(3 · logit(q) + 1)`.
fn miscalibrated(n: usize, offset: usize) -> (Vec<f64>, Vec<bool>) {
    let mut scores = Vec::with_capacity(n);
    let mut y = Vec::with_capacity(n);
    for i in 0..n {
        // Low-discrepancy draws: deterministic without an RNG.
        let u = ((i + offset) as f64 * 0.618_033_988_749_895).fract();
        let v = ((i + offset) as f64 * 0.754_877_666_246_693).fract();
        let q = 0.02 + 0.6 * u * u;
        let logit = (q / (1.0 - q)).ln();
        scores.push(sigmoid(3.0 * logit + 1.0));
        y.push(v < q);
    }
    (scores, y)
}

fn calibrated_brier(c: &Calibrator, scores: &[f64], y: &[bool]) -> f64 {
    let p: Vec<f64> = scores.iter().map(|&s| c.apply(s)).collect();
    brier(&p, y)
}

#[test]
fn platt_and_isotonic_improve_brier_and_ece_on_fresh_data() {
    let (cal_s, cal_y) = miscalibrated(20_000, 0);
    let (test_s, test_y) = miscalibrated(20_000, 50_000);
    let raw = brier(&test_s, &test_y);
    let raw_ece = ece(&reliability(&test_s, &test_y, ECE_BINS));
    for c in [fit_platt(&cal_s, &cal_y), fit_isotonic(&cal_s, &cal_y)] {
        let b = calibrated_brier(&c, &test_s, &test_y);
        assert!(b < raw - 0.005, "{}: Brier {b} vs raw {raw}", c.name());
        let p: Vec<f64> = test_s.iter().map(|&s| c.apply(s)).collect();
        let e = ece(&reliability(&p, &test_y, ECE_BINS));
        assert!(
            e < raw_ece / 3.0 && e < 0.02,
            "{}: ECE {e} vs raw {raw_ece}",
            c.name()
        );
    }
    // Platt recovers the inverse map (a = 1/3, b = −1/3) closely.
    let Calibrator::Platt { a, b } = fit_platt(&cal_s, &cal_y) else {
        panic!("platt")
    };
    assert!(
        (a - 1.0 / 3.0).abs() < 0.05 && (b + 1.0 / 3.0).abs() < 0.15,
        "a {a}, b {b}"
    );
}

#[test]
fn auto_keeps_the_lower_test_brier_and_none_is_the_identity() {
    let (cal_s, cal_y) = miscalibrated(5_000, 0);
    let (test_s, test_y) = miscalibrated(5_000, 9_000);
    let auto = choose(CalibrationChoice::Auto, &cal_s, &cal_y, &test_s, &test_y);
    let both = [fit_platt(&cal_s, &cal_y), fit_isotonic(&cal_s, &cal_y)];
    let best = both
        .iter()
        .map(|c| calibrated_brier(c, &test_s, &test_y))
        .fold(f64::INFINITY, f64::min);
    assert_eq!(calibrated_brier(&auto, &test_s, &test_y), best);
    let none = choose(CalibrationChoice::None, &cal_s, &cal_y, &test_s, &test_y);
    assert_eq!(none, Calibrator::Identity);
}

#[test]
fn isotonic_output_is_monotone() {
    let (s, y) = miscalibrated(3_000, 7);
    let c = fit_isotonic(&s, &y);
    let grid: Vec<f64> = (0..=1000).map(|i| f64::from(i) / 1000.0).collect();
    let out: Vec<f64> = grid.iter().map(|&p| c.apply(p)).collect();
    assert!(out.windows(2).all(|w| w[0] <= w[1]));
    assert!(out.iter().all(|p| (0.0..=1.0).contains(p)));
}
