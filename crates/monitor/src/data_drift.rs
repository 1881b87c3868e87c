//! Per-feature drift of one window: Evidently's default test (or the one
//! params name for the feature) and PSI, with the reference and window
//! means a person reads first.

use revspend_core::params::{DriftParams, TestChoice};
use revspend_core::profile::NumericProfile;
use serde::Serialize;

use crate::drift::{
    self, ColumnKind, DEFAULT_JENSEN_SHANNON, DEFAULT_P_VALUE, DEFAULT_WASSERSTEIN, DriftError, DriftResult,
    DriftTest, PsiLevel, Score,
};
use crate::window::NumericWindow;

/// One feature's drift in one window.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FeatureDrift {
    pub feature: String,
    /// The test run; `None` when params leave the feature out.
    pub test: Option<DriftTest>,
    /// The test's statistic (KS `D`, `χ²`, the Wasserstein distance in the
    /// feature's units, the JS distance).
    pub statistic: Option<f64>,
    /// What the threshold is compared with: a p-value or a distance.
    pub score: Option<f64>,
    pub threshold: Option<f64>,
    pub drifted: bool,
    pub psi: f64,
    pub psi_level: PsiLevel,
    pub reference_mean: Option<f64>,
    pub window_mean: Option<f64>,
    /// NaN or infinite values in the window (they enter no statistic).
    pub non_finite: u64,
    /// Why params override the default test, when they do.
    pub override_reason: Option<String>,
}

/// Runs the feature's test and PSI.
pub fn feature_drift(
    params: &DriftParams,
    feature: &str,
    reference: &NumericProfile,
    reference_rows: u64,
    window: &NumericWindow,
) -> Result<FeatureDrift, DriftError> {
    let setting = params.features.get(feature);
    let psi = drift::psi_merged(reference, window, drift::PSI_MIN_BIN_SHARE)?.psi;
    let psi_level = if psi >= params.psi_alarm {
        PsiLevel::Alarm
    } else if psi >= params.psi_warn {
        PsiLevel::Warn
    } else {
        PsiLevel::Stable
    };
    let test = match setting.and_then(|s| s.test) {
        Some(TestChoice::None) => None,
        Some(TestChoice::Ks) => Some(DriftTest::KolmogorovSmirnov),
        Some(TestChoice::Wasserstein) => Some(DriftTest::WassersteinNorm),
        Some(TestChoice::ChiSquared) => Some(DriftTest::ChiSquared),
        Some(TestChoice::JensenShannon) => Some(DriftTest::JensenShannon),
        None => Some(drift::choose_test(
            ColumnKind::Numeric,
            reference_rows,
            distinct_lower_bound(reference, window),
        )),
    };
    let result = match test {
        None => None,
        Some(test) => {
            let threshold = setting.and_then(|s| s.threshold).unwrap_or(match test {
                DriftTest::KolmogorovSmirnov | DriftTest::ChiSquared => DEFAULT_P_VALUE,
                DriftTest::WassersteinNorm => DEFAULT_WASSERSTEIN,
                DriftTest::JensenShannon => DEFAULT_JENSEN_SHANNON,
            });
            Some(run_test(test, reference, window, threshold)?)
        }
    };
    let score = result.map(|r| match r.score {
        Score::PValue(p) | Score::Distance(p) => p,
    });
    Ok(FeatureDrift {
        feature: feature.to_owned(),
        test,
        statistic: result.map(|r| r.statistic).filter(|s| s.is_finite()),
        score: score.filter(|s| s.is_finite()),
        threshold: result.map(|r| r.threshold),
        drifted: result.is_some_and(|r| r.drifted),
        psi,
        psi_level,
        reference_mean: reference.mean,
        window_mean: window.mean(),
        non_finite: window.nans() + window.infinite(),
        override_reason: setting.map(|s| s.reason.clone()),
    })
}

fn run_test(
    test: DriftTest,
    reference: &NumericProfile,
    window: &NumericWindow,
    threshold: f64,
) -> Result<DriftResult, DriftError> {
    match test {
        DriftTest::KolmogorovSmirnov => drift::kolmogorov_smirnov(reference, window, threshold),
        DriftTest::WassersteinNorm => drift::wasserstein_norm(reference, window, threshold),
        DriftTest::ChiSquared => drift::chi_squared_binned(reference, window, threshold),
        DriftTest::JensenShannon => drift::jensen_shannon_binned(reference, window, threshold),
    }
}

/// Evidently counts a column's distinct values over both samples; the
/// binned profile only bounds that from below by the bins holding a value on
/// either side. A binary or few-valued feature has at most that many bins
/// filled; a continuous one fills more than five of twenty bins.
fn distinct_lower_bound(reference: &NumericProfile, window: &NumericWindow) -> u64 {
    reference
        .histogram
        .counts
        .iter()
        .zip(window.counts())
        .filter(|(r, w)| **r > 0 || **w > 0)
        .count() as u64
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use revspend_core::params::FeatureDrift as Setting;
    use revspend_core::profile::numeric_from_values;

    use super::*;

    fn params(features: BTreeMap<String, Setting>) -> DriftParams {
        DriftParams {
            share: 0.5,
            psi_warn: 0.1,
            psi_alarm: 0.25,
            features,
        }
    }

    fn window(reference: &NumericProfile, values: impl IntoIterator<Item = f64>) -> NumericWindow {
        let mut w = NumericWindow::new(reference).expect("bins");
        w.extend(values);
        w
    }

    #[test]
    fn default_choice_follows_evidently_and_a_shift_drifts() {
        let values: Vec<f64> = (0..2_000).map(|i| f64::from(i % 100)).collect();
        let reference = numeric_from_values(values.clone(), 0, 0, 0, 20);
        let same = window(&reference, values.iter().copied());
        let r = feature_drift(&params(BTreeMap::new()), "valor", &reference, 2_000, &same).expect("drift");
        assert_eq!(r.test, Some(DriftTest::WassersteinNorm));
        assert!(!r.drifted && r.psi < 1e-9, "{r:?}");
        // Shifted by half a standard deviation (std ≈ 28.9).
        let shifted = window(&reference, values.iter().map(|v| v + 15.0));
        let r = feature_drift(&params(BTreeMap::new()), "valor", &reference, 2_000, &shifted).expect("drift");
        assert!(r.drifted && r.psi_level != PsiLevel::Stable, "{r:?}");
        // A small reference gets KS.
        let r = feature_drift(&params(BTreeMap::new()), "valor", &reference, 900, &shifted).expect("drift");
        assert_eq!(r.test, Some(DriftTest::KolmogorovSmirnov));
        // A binary feature gets Jensen–Shannon.
        let flags: Vec<f64> = (0..2_000).map(|i| f64::from(i % 4 == 0)).collect();
        let reference = numeric_from_values(flags.clone(), 0, 0, 0, 20);
        let r = feature_drift(
            &params(BTreeMap::new()),
            "abroad",
            &reference,
            2_000,
            &window(&reference, flags.iter().copied()),
        )
        .expect("drift");
        assert_eq!(r.test, Some(DriftTest::JensenShannon));
    }

    #[test]
    fn params_override_the_test_and_threshold_or_leave_the_feature_out() {
        let values: Vec<f64> = (0..2_000).map(|i| f64::from(i % 100)).collect();
        let reference = numeric_from_values(values.clone(), 0, 0, 0, 20);
        let shifted = window(&reference, values.iter().map(|v| v + 15.0));
        let setting = |test, threshold| Setting {
            test,
            threshold,
            reason: "why".into(),
        };
        let p = params(BTreeMap::from([(
            "valor".to_owned(),
            setting(Some(TestChoice::None), None),
        )]));
        let r = feature_drift(&p, "valor", &reference, 2_000, &shifted).expect("drift");
        assert_eq!((r.test, r.drifted), (None, false));
        assert!(r.psi > 0.1, "PSI is still reported: {r:?}");
        assert_eq!(r.override_reason.as_deref(), Some("why"));
        let p = params(BTreeMap::from([("valor".to_owned(), setting(None, Some(0.9)))]));
        let r = feature_drift(&p, "valor", &reference, 2_000, &shifted).expect("drift");
        assert_eq!(
            (r.test, r.threshold, r.drifted),
            (Some(DriftTest::WassersteinNorm), Some(0.9), false)
        );
        let p = params(BTreeMap::from([(
            "valor".to_owned(),
            setting(Some(TestChoice::Ks), None),
        )]));
        let r = feature_drift(&p, "valor", &reference, 2_000, &shifted).expect("drift");
        assert_eq!((r.test, r.drifted), (Some(DriftTest::KolmogorovSmirnov), true));
    }
}
