//! Business value of the model's decisions on a window, from a confusion
//! matrix: the realised counts once labels are known, CBPE's expected counts
//! before.
//!
//! A correctly flagged revenge purchase (true positive) is worth
//! `true_positive` (say, the intervention avoids a default); a false alarm
//! costs `false_positive`, a missed one `false_negative`; a true negative is
//! worth 0. The baseline is the bank without the model: nothing is flagged,
//! so every positive is a miss. What the model adds is the difference.

use serde::Serialize;

use crate::performance::{Counts, WindowPerformance};

/// Why value rates are rejected.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ValueError {
    /// A rate that is negative or not a finite number (costs are given as
    /// positive numbers and subtracted).
    #[error("value rate `{field}` must be a finite number >= 0, got {value}")]
    BadRate { field: &'static str, value: f64 },
}

/// Money per decision. Costs are positive numbers, subtracted.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct ValueRates {
    /// Gained per correctly flagged revenge purchase.
    pub true_positive: f64,
    /// Lost per false alarm.
    pub false_positive: f64,
    /// Lost per missed revenge purchase.
    pub false_negative: f64,
}

impl ValueRates {
    /// Rates checked to be finite and non-negative; the error names the
    /// field.
    pub fn new(
        true_positive: f64,
        false_positive: f64,
        false_negative: f64,
    ) -> Result<ValueRates, ValueError> {
        for (field, value) in [
            ("true_positive", true_positive),
            ("false_positive", false_positive),
            ("false_negative", false_negative),
        ] {
            if !(value.is_finite() && value >= 0.0) {
                return Err(ValueError::BadRate { field, value });
            }
        }
        Ok(ValueRates {
            true_positive,
            false_positive,
            false_negative,
        })
    }

    /// `TP · true_positive − FP · false_positive − FN · false_negative`.
    pub fn total(&self, c: &Counts) -> f64 {
        c.tp * self.true_positive - c.fp * self.false_positive - c.fn_ * self.false_negative
    }

    /// The value of flagging nothing: every positive (`TP + FN`) is missed.
    pub fn baseline_total(&self, c: &Counts) -> f64 {
        -(c.tp + c.fn_) * self.false_negative
    }
}

/// Value per 1,000 purchases (`None` on an empty window).
pub fn per_1000(total: f64, rows: f64) -> Option<f64> {
    (rows > 0.0).then(|| total / rows * 1000.0)
}

/// The value of one confusion matrix.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Value {
    pub rows: f64,
    pub total: f64,
    pub per_1000: Option<f64>,
    /// Flagging nothing on the same rows.
    pub baseline_total: f64,
    pub baseline_per_1000: Option<f64>,
    /// `per_1000 − baseline_per_1000`: what the model adds.
    pub uplift_per_1000: Option<f64>,
}

impl Value {
    pub fn of(rates: &ValueRates, counts: &Counts) -> Value {
        let rows = counts.rows();
        let total = rates.total(counts);
        let baseline_total = rates.baseline_total(counts);
        let per = per_1000(total, rows);
        let baseline = per_1000(baseline_total, rows);
        Value {
            rows,
            total,
            per_1000: per,
            baseline_total,
            baseline_per_1000: baseline,
            uplift_per_1000: per.zip(baseline).map(|(m, b)| m - b),
        }
    }
}

/// A window's value: estimated from CBPE's expected counts, realised from
/// the labels when known.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct WindowValue {
    pub rates: ValueRates,
    pub estimated: Value,
    pub realised: Option<Value>,
}

impl WindowValue {
    pub fn of(rates: &ValueRates, window: &WindowPerformance) -> WindowValue {
        WindowValue {
            rates: *rates,
            estimated: Value::of(rates, &window.estimated.confusion),
            realised: window
                .realised
                .as_ref()
                .map(|r| Value::of(rates, &Counts::from(r.confusion))),
        }
    }

    /// The value the baseline and uplift pairs speak of: realised when the
    /// labels are known, estimated before.
    pub fn best(&self) -> &Value {
        self.realised.as_ref().unwrap_or(&self.estimated)
    }
}

/// `value.realised`, `value.estimated`, `value.realised_per_1000`,
/// `value.estimated_per_1000`, and `value.baseline_per_1000` and
/// `value.uplift_per_1000` of [`WindowValue::best`]. Undefined values (an
/// empty window, no labels) are left out.
pub fn metric_pairs(value: &WindowValue) -> Vec<(String, f64)> {
    let best = value.best();
    [
        ("value.realised", value.realised.map(|v| v.total)),
        ("value.estimated", Some(value.estimated.total)),
        ("value.realised_per_1000", value.realised.and_then(|v| v.per_1000)),
        ("value.estimated_per_1000", value.estimated.per_1000),
        ("value.baseline_per_1000", best.baseline_per_1000),
        ("value.uplift_per_1000", best.uplift_per_1000),
    ]
    .into_iter()
    .filter_map(|(name, v)| v.filter(|v| v.is_finite()).map(|v| (name.to_owned(), v)))
    .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::performance::assess;

    const P: [f64; 6] = [0.9, 0.8, 0.6, 0.4, 0.3, 0.1];
    const Y: [bool; 6] = [true, true, false, true, false, false];

    fn rates() -> ValueRates {
        ValueRates::new(100.0, 5.0, 50.0).expect("valid rates")
    }

    fn close(got: f64, want: f64) {
        assert!((got - want).abs() < 1e-9, "got {got}, want {want}");
    }

    #[test]
    fn rates_are_checked_by_field() {
        assert_eq!(
            ValueRates::new(100.0, -5.0, 50.0),
            Err(ValueError::BadRate {
                field: "false_positive",
                value: -5.0
            })
        );
        assert!(matches!(
            ValueRates::new(100.0, 5.0, f64::NAN),
            Err(ValueError::BadRate {
                field: "false_negative",
                ..
            })
        ));
        assert!(matches!(
            ValueRates::new(f64::INFINITY, 5.0, 50.0),
            Err(ValueError::BadRate {
                field: "true_positive",
                ..
            })
        ));
        assert!(ValueRates::new(0.0, 0.0, 0.0).is_ok());
    }

    #[test]
    fn realised_and_estimated_value_by_hand() {
        let w = assess(&P, Some(&Y), 0.5, None).expect("valid");
        let v = WindowValue::of(&rates(), &w);
        // Realised TP 2, FP 1, FN 1 of 6: 2·100 − 5 − 50 = 145; flagging
        // nothing misses all 3 positives: −150.
        let r = v.realised.expect("labelled");
        close(r.total, 145.0);
        close(r.per_1000.expect("rows"), 145.0 / 6.0 * 1000.0);
        close(r.baseline_total, -150.0);
        close(r.baseline_per_1000.expect("rows"), -25_000.0);
        close(r.uplift_per_1000.expect("rows"), (145.0 + 150.0) / 6.0 * 1000.0);
        // Expected TP 2.3, FP .7, FN .8: 230 − 3.5 − 40 = 186.5; expected
        // positives 3.1 all missed: −155.
        let e = v.estimated;
        close(e.rows, 6.0);
        close(e.total, 186.5);
        close(e.per_1000.expect("rows"), 31_083.333_333_333_332);
        close(e.baseline_total, -155.0);
        close(e.uplift_per_1000.expect("rows"), (186.5 + 155.0) / 6.0 * 1000.0);
    }

    #[test]
    fn pairs_use_the_realised_baseline_when_labels_exist() {
        let get =
            |pairs: &[(String, f64)], name: &str| pairs.iter().find(|(n, _)| n == name).map(|(_, v)| *v);
        let labelled = metric_pairs(&WindowValue::of(
            &rates(),
            &assess(&P, Some(&Y), 0.5, None).expect("valid"),
        ));
        assert_eq!(labelled.len(), 6, "{labelled:?}");
        close(get(&labelled, "value.realised").expect("pair"), 145.0);
        close(get(&labelled, "value.estimated").expect("pair"), 186.5);
        close(
            get(&labelled, "value.realised_per_1000").expect("pair"),
            24_166.666_666_666_668,
        );
        close(
            get(&labelled, "value.estimated_per_1000").expect("pair"),
            31_083.333_333_333_332,
        );
        close(
            get(&labelled, "value.baseline_per_1000").expect("pair"),
            -25_000.0,
        );
        close(
            get(&labelled, "value.uplift_per_1000").expect("pair"),
            49_166.666_666_666_67,
        );
        // Before labels: the estimated baseline (3.1 expected positives).
        let unlabelled = metric_pairs(&WindowValue::of(
            &rates(),
            &assess(&P, None, 0.5, None).expect("valid"),
        ));
        let names: Vec<&str> = unlabelled.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(
            names,
            [
                "value.estimated",
                "value.estimated_per_1000",
                "value.baseline_per_1000",
                "value.uplift_per_1000"
            ]
        );
        close(
            get(&unlabelled, "value.baseline_per_1000").expect("pair"),
            -155.0 / 6.0 * 1000.0,
        );
        close(
            get(&unlabelled, "value.uplift_per_1000").expect("pair"),
            56_916.666_666_666_67,
        );
        // An empty window is worth 0 in total and has no per-1,000 rate.
        let empty = metric_pairs(&WindowValue::of(
            &rates(),
            &assess(&[], None, 0.5, None).expect("valid"),
        ));
        assert_eq!(empty, vec![("value.estimated".to_owned(), 0.0)]);
    }
}
