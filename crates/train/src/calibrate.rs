//! Fitting probability calibrators on the calibration split.
//!
//! - Platt: `σ(a · logit(p) + b)` by Newton's method with a backtracking
//!   line search, on Platt's smoothed targets (`(N₊ + 1) / (N₊ + 2)` for a
//!   positive, `1 / (N₋ + 2)` for a negative) so a separable split does not
//!   drive the slope to infinity.
//! - Isotonic: pool-adjacent-violators on the scores sorted ascending (equal
//!   scores pooled first), knots at each block's lowest and highest score.

use revspend_core::calibration::{Calibrator, logit};
use revspend_core::metrics::brier;
use revspend_core::model::sigmoid;
use revspend_core::params::CalibrationChoice;

/// Fits Platt scaling of `scores` to `y`.
pub fn fit_platt(scores: &[f64], y: &[bool]) -> Calibrator {
    let f: Vec<f64> = scores.iter().map(|&p| logit(p)).collect();
    let n_pos = y.iter().filter(|v| **v).count() as f64;
    let n_neg = y.len() as f64 - n_pos;
    let hi = (n_pos + 1.0) / (n_pos + 2.0);
    let lo = 1.0 / (n_neg + 2.0);
    let t: Vec<f64> = y.iter().map(|&v| if v { hi } else { lo }).collect();
    let loss = |a: f64, b: f64| -> f64 {
        f.iter()
            .zip(&t)
            .map(|(&fi, &ti)| {
                let z = a * fi + b;
                // −[t log σ(z) + (1−t) log(1−σ(z))], stably.
                let log1pexp = if z > 0.0 {
                    z + (-z).exp().ln_1p()
                } else {
                    z.exp().ln_1p()
                };
                log1pexp - ti * z
            })
            .sum()
    };
    let (mut a, mut b) = (1.0, 0.0);
    let mut current = loss(a, b);
    for _ in 0..100 {
        let (mut ga, mut gb, mut haa, mut hab, mut hbb) = (0.0, 0.0, 1e-12, 0.0, 1e-12);
        for (&fi, &ti) in f.iter().zip(&t) {
            let p = sigmoid(a * fi + b);
            let d = p - ti;
            let w = p * (1.0 - p);
            ga += d * fi;
            gb += d;
            haa += w * fi * fi;
            hab += w * fi;
            hbb += w;
        }
        if ga.abs().max(gb.abs()) < 1e-10 * f.len().max(1) as f64 {
            break;
        }
        let det = haa * hbb - hab * hab;
        if det.abs() < 1e-300 {
            break;
        }
        let da = (hbb * ga - hab * gb) / det;
        let db = (haa * gb - hab * ga) / det;
        let mut step = 1.0;
        let mut improved = false;
        while step > 1e-10 {
            let (na, nb) = (a - step * da, b - step * db);
            let l = loss(na, nb);
            if l < current {
                a = na;
                b = nb;
                current = l;
                improved = true;
                break;
            }
            step /= 2.0;
        }
        if !improved {
            break;
        }
    }
    Calibrator::Platt { a, b }
}

/// Fits an isotonic (non-decreasing) map of `scores` to `y`.
pub fn fit_isotonic(scores: &[f64], y: &[bool]) -> Calibrator {
    let mut order: Vec<usize> = (0..scores.len()).filter(|&i| !scores[i].is_nan()).collect();
    order.sort_by(|&i, &j| scores[i].total_cmp(&scores[j]));
    // Blocks: (sum of y, count, lowest score, highest score).
    let mut blocks: Vec<(f64, f64, f64, f64)> = Vec::new();
    for &i in &order {
        let (s, v) = (scores[i], f64::from(u8::from(y[i])));
        match blocks.last_mut() {
            Some(last) if last.3 == s => {
                last.0 += v;
                last.1 += 1.0;
            }
            _ => blocks.push((v, 1.0, s, s)),
        }
        // Pool while the last block's mean is below its predecessor's.
        while blocks.len() > 1 {
            let k = blocks.len();
            let (a, b) = (blocks[k - 2], blocks[k - 1]);
            if a.0 / a.1 <= b.0 / b.1 {
                break;
            }
            blocks[k - 2] = (a.0 + b.0, a.1 + b.1, a.2, b.3);
            blocks.pop();
        }
    }
    let mut x = Vec::with_capacity(2 * blocks.len());
    let mut out = Vec::with_capacity(2 * blocks.len());
    for (sum, n, lo, hi) in blocks {
        let v = sum / n;
        x.push(lo);
        out.push(v);
        if hi > lo {
            x.push(hi);
            out.push(v);
        }
    }
    Calibrator::Isotonic { x, y: out }
}

/// The chosen calibrator: fitted on the calibration split; under `auto`
/// the candidate with the lower Brier score on the test split.
pub fn choose(
    choice: CalibrationChoice,
    cal_scores: &[f64],
    cal_y: &[bool],
    test_scores: &[f64],
    test_y: &[bool],
) -> Calibrator {
    match choice {
        CalibrationChoice::None => Calibrator::Identity,
        CalibrationChoice::Platt => fit_platt(cal_scores, cal_y),
        CalibrationChoice::Isotonic => fit_isotonic(cal_scores, cal_y),
        CalibrationChoice::Auto => {
            let test_brier = |c: &Calibrator| {
                let p: Vec<f64> = test_scores.iter().map(|&s| c.apply(s)).collect();
                brier(&p, test_y)
            };
            let platt = fit_platt(cal_scores, cal_y);
            let iso = fit_isotonic(cal_scores, cal_y);
            let (bp, bi) = (test_brier(&platt), test_brier(&iso));
            log::info!("calibration: test Brier Platt {bp:.5}, isotonic {bi:.5}");
            if bi < bp { iso } else { platt }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn isotonic_pools_violators() {
        let c = fit_isotonic(&[0.1, 0.2, 0.3, 0.4], &[false, true, false, true]);
        let Calibrator::Isotonic { x, y } = c else {
            panic!("isotonic")
        };
        assert_eq!(x, vec![0.1, 0.2, 0.3, 0.4]);
        assert_eq!(y, vec![0.0, 0.5, 0.5, 1.0]);
    }

    #[test]
    fn platt_recovers_a_known_sigmoid() {
        // Labels drawn as σ(2 · logit(p) − 1) on a deterministic grid of p.
        let mut scores = Vec::new();
        let mut y = Vec::new();
        for i in 1..200 {
            let p = i as f64 / 200.0;
            let q = sigmoid(2.0 * logit(p) - 1.0);
            for k in 0..100 {
                scores.push(p);
                y.push((k as f64 + 0.5) / 100.0 < q);
            }
        }
        let Calibrator::Platt { a, b } = fit_platt(&scores, &y) else {
            panic!("platt")
        };
        assert!((a - 2.0).abs() < 0.1, "a = {a}");
        assert!((b + 1.0).abs() < 0.1, "b = {b}");
    }
}
