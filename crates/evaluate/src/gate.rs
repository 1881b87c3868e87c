//! The promotion gate: MLflow `MetricThreshold` checks of the candidate's
//! holdout metrics, alone and against the champion (the `production`
//! model, scored on the same rows), plus the hard limits.
//!
//! Each limit is one [`Check`] with its value, limit and outcome, so the
//! report says exactly which limit a rejected candidate missed.

use revspend_core::metrics::BinaryMetrics;
use revspend_core::params::{GateMetric, GateParams, MetricThreshold};
use serde::Serialize;

use crate::slices::SliceReport;

/// Against a champion of exactly 0, a relative change is undefined: the
/// candidate must then be better by this much (as MLflow does).
const ZERO_BASELINE_MARGIN: f64 = 1e-10;

/// One limit, checked.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Check {
    /// e.g. `pr_auc threshold`, `brier min_relative_change`, `max_ece`.
    pub check: String,
    /// The candidate's value the limit applies to (for a change: the
    /// change itself).
    pub value: f64,
    /// The limit the value is held to.
    pub limit: f64,
    /// `>=` or `<=`: how value and limit must compare.
    pub op: &'static str,
    /// The champion's value, for the change limits.
    pub champion: Option<f64>,
    pub passed: bool,
    /// Why a limit was skipped or read differently (no champion, a zero
    /// champion).
    pub note: Option<String>,
}

fn compare(value: f64, limit: f64, greater_is_better: bool) -> (bool, &'static str) {
    if greater_is_better {
        (value >= limit, ">=")
    } else {
        (value <= limit, "<=")
    }
}

/// The checks of one metric's `MetricThreshold` on the candidate's value,
/// against the champion's value when there is one.
pub fn metric_checks(
    metric: GateMetric,
    t: &MetricThreshold,
    candidate: f64,
    champion: Option<f64>,
) -> Vec<Check> {
    let name = metric.name();
    let gib = t.greater_is_better;
    let mut out = Vec::new();
    if let Some(limit) = t.threshold {
        let (passed, op) = compare(candidate, limit, gib);
        out.push(Check {
            check: format!("{name} threshold"),
            value: candidate,
            limit,
            op,
            champion: None,
            passed,
            note: None,
        });
    }
    let no_champion = |kind: &str, limit: f64| Check {
        check: format!("{name} {kind}"),
        value: candidate,
        limit,
        op: if gib { ">=" } else { "<=" },
        champion: None,
        passed: true,
        note: Some("skipped: no champion scored on these rows (see the champion)".into()),
    };
    if let Some(change) = t.min_absolute_change {
        out.push(match champion {
            None => no_champion("min_absolute_change", change),
            Some(base) => {
                // candidate >= champion + change (or <= champion − change).
                let limit = if gib { base + change } else { base - change };
                let (passed, op) = compare(candidate, limit, gib);
                Check {
                    check: format!("{name} min_absolute_change"),
                    value: candidate,
                    limit,
                    op,
                    champion: Some(base),
                    passed,
                    note: Some(format!(
                        "champion {base:.6} {} {change}",
                        if gib { "+" } else { "−" }
                    )),
                }
            }
        });
    }
    if let Some(min_rel) = t.min_relative_change {
        out.push(match champion {
            None => no_champion("min_relative_change", min_rel),
            Some(base) if base == 0.0 => {
                let limit = if gib {
                    base + ZERO_BASELINE_MARGIN
                } else {
                    base - ZERO_BASELINE_MARGIN
                };
                let (passed, op) = compare(candidate, limit, gib);
                Check {
                    check: format!("{name} min_relative_change"),
                    value: candidate,
                    limit,
                    op,
                    champion: Some(base),
                    passed,
                    note: Some("the champion's value is 0: the candidate must simply be better".into()),
                }
            }
            Some(base) => {
                let relative = if gib {
                    (candidate - base) / base
                } else {
                    (base - candidate) / base
                };
                Check {
                    check: format!("{name} min_relative_change"),
                    value: relative,
                    limit: min_rel,
                    op: ">=",
                    champion: Some(base),
                    passed: relative >= min_rel,
                    note: Some("value is the relative change against the champion".into()),
                }
            }
        });
    }
    out
}

/// Every check of the gate: the per-metric thresholds, then the hard limits.
pub fn checks(
    gate: &GateParams,
    candidate: &BinaryMetrics,
    champion: Option<&BinaryMetrics>,
    prior: &BinaryMetrics,
) -> Vec<Check> {
    let mut out = Vec::new();
    for (&metric, t) in &gate.thresholds {
        out.extend(metric_checks(
            metric,
            t,
            metric.of(candidate),
            champion.map(|c| metric.of(c)),
        ));
    }
    if let Some(max) = gate.max_ece {
        out.push(Check {
            check: "max_ece".into(),
            value: candidate.ece,
            limit: max,
            op: "<=",
            champion: None,
            passed: candidate.ece <= max,
            note: None,
        });
    }
    if gate.beat_prior {
        out.push(Check {
            check: "beats the training prior (pr_auc)".into(),
            value: candidate.pr_auc,
            limit: prior.pr_auc,
            op: ">",
            champion: None,
            passed: candidate.pr_auc > prior.pr_auc,
            note: None,
        });
    }
    out
}

/// The gate's limits on slices: the cold-start slice's ROC-AUC (a model
/// that ignores new customers scores 0.5 there) and no held slice below
/// the PR-AUC floor.
pub fn slice_checks(gate: &GateParams, slices: &SliceReport) -> Vec<Check> {
    let mut out = Vec::new();
    if let Some(min) = gate.cold_start_min_roc_auc {
        let cold = slices.cold_start();
        let value = cold.and_then(|s| s.roc_auc);
        out.push(Check {
            check: "cold_start roc_auc".into(),
            value: value.unwrap_or(f64::NAN),
            limit: min,
            op: ">=",
            champion: None,
            passed: value.is_some_and(|v| v >= min),
            note: match (cold, value) {
                (_, Some(_)) => None,
                (None, _) => {
                    Some("the holdout has no cold-start row: new customers cannot be checked".into())
                }
                (Some(s), None) => Some(format!(
                    "the cold-start slice has {} rows and {} positives: its ROC-AUC is undefined, so the \
                     model's behaviour on new customers cannot be checked (gate.cold_start_min_roc_auc: null \
                     waives it)",
                    s.rows, s.positives
                )),
            },
        });
    }
    if gate.slices_above_floor {
        let below = &slices.below_floor;
        out.push(Check {
            check: "slices below the pr_auc floor".into(),
            value: below.len() as f64,
            limit: 0.0,
            op: "<=",
            champion: None,
            passed: below.is_empty(),
            note: Some(if below.is_empty() {
                format!(
                    "{} of {} slices held to their floor (pr_auc >= {} unless set per slice)",
                    slices.slices.iter().filter(|s| s.held_to_floor).count(),
                    slices.slices.len(),
                    slices.pr_auc_floor
                )
            } else {
                let named: Vec<String> = below
                    .iter()
                    .map(|name| match slices.slices.iter().find(|s| &s.name() == name) {
                        Some(s) => format!("{name} ({:.3} < {})", s.pr_auc.unwrap_or(f64::NAN), s.floor),
                        None => name.clone(),
                    })
                    .collect();
                format!("below their floor: {}", named.join(", "))
            }),
        });
    }
    out
}

/// A short fixed-width table of the checks, for the log.
pub fn table(checks: &[Check]) -> String {
    let mut out = format!(
        "{:<40} {:>12} {:>2} {:>12}  result\n",
        "check", "value", "", "limit"
    );
    for c in checks {
        out.push_str(&format!(
            "{:<40} {:>12.6} {:>2} {:>12.6}  {}{}\n",
            c.check,
            c.value,
            c.op,
            c.limit,
            if c.passed { "pass" } else { "FAIL" },
            c.note.as_ref().map_or(String::new(), |n| format!(" ({n})"))
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(
        threshold: Option<f64>,
        abs: Option<f64>,
        rel: Option<f64>,
        greater_is_better: bool,
    ) -> MetricThreshold {
        MetricThreshold {
            threshold,
            min_absolute_change: abs,
            min_relative_change: rel,
            greater_is_better,
        }
    }

    fn passed(checks: &[Check]) -> Vec<bool> {
        checks.iter().map(|c| c.passed).collect()
    }

    /// Issue 14: the threshold is `>=` when greater is better, `<=`
    /// otherwise, the boundary included.
    #[test]
    fn threshold_checks_pass_and_fail_on_the_right_side() {
        let m = GateMetric::PrAuc;
        assert_eq!(
            passed(&metric_checks(m, &t(Some(0.8), None, None, true), 0.8, None)),
            [true]
        );
        assert_eq!(
            passed(&metric_checks(m, &t(Some(0.8), None, None, true), 0.79, None)),
            [false]
        );
        let b = GateMetric::Brier;
        assert_eq!(
            passed(&metric_checks(b, &t(Some(0.05), None, None, false), 0.05, None)),
            [true]
        );
        assert_eq!(
            passed(&metric_checks(b, &t(Some(0.05), None, None, false), 0.051, None)),
            [false]
        );
    }

    /// Issue 14: the absolute change is against the champion, in the
    /// metric's better direction.
    #[test]
    fn absolute_change_checks_follow_greater_is_better() {
        let m = GateMetric::PrAuc;
        let abs = t(None, Some(0.01), None, true);
        assert_eq!(passed(&metric_checks(m, &abs, 0.91, Some(0.90))), [true]);
        assert_eq!(passed(&metric_checks(m, &abs, 0.905, Some(0.90))), [false]);
        let c = &metric_checks(m, &abs, 0.905, Some(0.90))[0];
        assert!((c.limit - 0.91).abs() < 1e-12, "{c:?}");
        let lower = t(None, Some(0.01), None, false);
        let b = GateMetric::Brier;
        assert_eq!(passed(&metric_checks(b, &lower, 0.04, Some(0.05))), [true]);
        assert_eq!(passed(&metric_checks(b, &lower, 0.045, Some(0.05))), [false]);
        // No champion: skipped, said so, passes.
        let skipped = &metric_checks(m, &abs, 0.1, None)[0];
        assert!(skipped.passed && skipped.note.as_deref().is_some_and(|n| n.contains("no champion")));
    }

    /// Issue 14: the relative change, including MLflow's fallback when the
    /// champion scores exactly 0.
    #[test]
    fn relative_change_checks_and_the_zero_champion() {
        let m = GateMetric::PrAuc;
        let rel = t(None, None, Some(0.05), true);
        assert_eq!(passed(&metric_checks(m, &rel, 0.85, Some(0.80))), [true]);
        assert_eq!(passed(&metric_checks(m, &rel, 0.83, Some(0.80))), [false]);
        let c = &metric_checks(m, &rel, 0.85, Some(0.80))[0];
        assert!((c.value - 0.0625).abs() < 1e-12, "{c:?}");
        // Lower is better: (champion − candidate) / champion.
        let b = GateMetric::LogLoss;
        let lower = t(None, None, Some(0.1), false);
        assert_eq!(passed(&metric_checks(b, &lower, 0.18, Some(0.20))), [true]);
        assert_eq!(passed(&metric_checks(b, &lower, 0.19, Some(0.20))), [false]);
        // "At least as good": 0 relative change.
        let same = t(None, None, Some(0.0), true);
        assert_eq!(passed(&metric_checks(m, &same, 0.8, Some(0.8))), [true]);
        assert_eq!(passed(&metric_checks(m, &same, 0.7999, Some(0.8))), [false]);
        // A zero champion: the candidate must simply be better.
        let e = GateMetric::Ece;
        let zero = t(None, None, Some(0.5), false);
        assert_eq!(passed(&metric_checks(e, &zero, 0.0, Some(0.0))), [false]);
        assert_eq!(passed(&metric_checks(m, &rel, 1e-9, Some(0.0))), [true]);
    }

    /// Issue 14: every limit given is checked, and the hard limits follow.
    #[test]
    fn all_limits_are_checked_with_the_hard_limits() {
        let metrics = |pr_auc: f64, ece: f64| BinaryMetrics {
            pr_auc,
            ece,
            ..BinaryMetrics::compute(&[0.2, 0.8], &[false, true], 0.5)
        };
        let mut thresholds = std::collections::BTreeMap::new();
        thresholds.insert(GateMetric::PrAuc, t(Some(0.5), Some(0.01), Some(0.0), true));
        let gate = GateParams {
            thresholds,
            max_ece: Some(0.02),
            beat_prior: true,
            cold_start_min_roc_auc: Some(0.6),
            slices_above_floor: true,
        };
        let prior = metrics(0.1, 0.0);
        let good = checks(&gate, &metrics(0.9, 0.01), Some(&metrics(0.85, 0.01)), &prior);
        assert_eq!(good.len(), 5);
        assert!(good.iter().all(|c| c.passed), "{}", table(&good));
        let bad = checks(&gate, &metrics(0.09, 0.03), Some(&metrics(0.85, 0.01)), &prior);
        let failed: Vec<&str> = bad
            .iter()
            .filter(|c| !c.passed)
            .map(|c| c.check.as_str())
            .collect();
        assert_eq!(
            failed,
            [
                "pr_auc threshold",
                "pr_auc min_absolute_change",
                "pr_auc min_relative_change",
                "max_ece",
                "beats the training prior (pr_auc)"
            ]
        );
        assert!(table(&bad).contains("FAIL"));
    }

    fn slice_report(cold: Option<(usize, usize, Option<f64>)>, below: &[&str]) -> SliceReport {
        let slice = |rows, positives, roc_auc| crate::slices::Slice {
            dimension: crate::slices::HISTORY,
            slice: crate::slices::COLD_START.into(),
            rows,
            positives,
            prevalence: 0.1,
            pr_auc: roc_auc,
            roc_auc,
            brier: 0.1,
            ece: 0.01,
            precision: 0.5,
            recall: 0.5,
            held_to_floor: true,
            floor: 0.5,
            below_floor: false,
        };
        SliceReport {
            pr_auc_floor: 0.5,
            min_rows: 10,
            min_positives: 2,
            slices: cold.map(|(r, p, a)| slice(r, p, a)).into_iter().collect(),
            below_floor: below.iter().map(|s| (*s).to_owned()).collect(),
            cold_start_reliability: Vec::new(),
        }
    }

    /// Issue 14: a model that ignores new customers (cold-start ROC-AUC
    /// 0.5), a cold-start slice that cannot be judged, and a slice below
    /// the floor each fail the gate, named; a waived limit is not checked.
    #[test]
    fn the_cold_start_and_slice_limits_fail_by_name() {
        let mut gate = GateParams {
            thresholds: std::collections::BTreeMap::new(),
            max_ece: None,
            beat_prior: false,
            cold_start_min_roc_auc: Some(0.6),
            slices_above_floor: true,
        };
        let outcome = |report: &SliceReport, gate: &GateParams| -> Vec<(String, bool)> {
            slice_checks(gate, report)
                .into_iter()
                .map(|c| (c.check, c.passed))
                .collect()
        };
        let good = slice_report(Some((300, 20, Some(0.8))), &[]);
        let both = |a, b| {
            vec![
                ("cold_start roc_auc".to_owned(), a),
                ("slices below the pr_auc floor".to_owned(), b),
            ]
        };
        assert_eq!(outcome(&good, &gate), both(true, true));
        let ignores_new = slice_report(Some((300, 20, Some(0.5))), &[]);
        assert_eq!(outcome(&ignores_new, &gate), both(false, true));
        let undefined = slice_report(Some((300, 0, None)), &[]);
        let checks = slice_checks(&gate, &undefined);
        assert!(!checks[0].passed);
        assert!(
            checks[0]
                .note
                .as_deref()
                .is_some_and(|n| n.contains("300 rows and 0 positives")),
            "{:?}",
            checks[0].note
        );
        assert_eq!(outcome(&slice_report(None, &[]), &gate), both(false, true));
        let below = slice_report(Some((300, 20, Some(0.8))), &["month=2020-03", "sex=F"]);
        let checks = slice_checks(&gate, &below);
        assert!(!checks[1].passed && checks[1].value == 2.0);
        assert!(
            checks[1]
                .note
                .as_deref()
                .is_some_and(|n| n.contains("month=2020-03, sex=F")),
            "{:?}",
            checks[1].note
        );
        gate.cold_start_min_roc_auc = None;
        gate.slices_above_floor = false;
        assert!(slice_checks(&gate, &below).is_empty());
    }
}
