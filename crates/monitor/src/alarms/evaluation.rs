//! The alarms checked on the windows' metrics: what fired (a finding per
//! alarm, window and matching metric) and what could not be checked.

use super::*;

/// One alarm that fired on one metric of one window.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Finding {
    pub alarm: String,
    pub window: String,
    /// The window's last day (what a retrain asks to train up to).
    pub last_day: NaiveDate,
    /// The concrete metric (`psi.valor`; for a promote alarm the
    /// challenger's, `challenger.candidate.realised.pr_auc`).
    pub metric: String,
    pub value: f64,
    /// The value it was compared with (for a promote alarm, production's
    /// value plus or minus `min_gain`).
    pub threshold: f64,
    pub comparison: Comparison,
    pub severity: Severity,
    pub action: Action,
    /// The challenger a promote alarm names.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub challenger: Option<String>,
    /// Production's value of the metric, for a promote alarm.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub baseline: Option<f64>,
    pub message: String,
}

/// A rule that could not be evaluated on a window, and why.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct NotEvaluated {
    pub alarm: String,
    pub window: Option<String>,
    pub reason: String,
}

/// What [`evaluate`] found.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Evaluation {
    /// The firings, by window (oldest first) then alarm in file order.
    pub findings: Vec<Finding>,
    pub not_evaluated: Vec<NotEvaluated>,
}

/// Checks every alarm on the windows its scope names. Windows are taken
/// oldest first (by last day, then first day, then name); the newest is
/// the last.
pub fn evaluate(rules: &AlarmFile, windows: &[WindowMetrics]) -> Evaluation {
    let mut sorted: Vec<&WindowMetrics> = windows.iter().collect();
    sorted.sort_by(|a, b| (a.last_day, a.first_day, &a.window).cmp(&(b.last_day, b.first_day, &b.window)));
    let mut out = Evaluation::default();
    let Some(&newest) = sorted.last() else {
        for alarm in &rules.alarms {
            out.not_evaluated.push(NotEvaluated {
                alarm: alarm.name.clone(),
                window: None,
                reason: "the run has no window".into(),
            });
        }
        return out;
    };
    for window in &sorted {
        for alarm in &rules.alarms {
            let in_scope = match alarm.window {
                WindowScope::Each => true,
                WindowScope::Latest => std::ptr::eq(*window, newest),
            };
            if in_scope {
                check(alarm, window, &mut out);
            }
        }
    }
    out
}

fn check(alarm: &Alarm, window: &WindowMetrics, out: &mut Evaluation) {
    let skipped = |reason: String| NotEvaluated {
        alarm: alarm.name.clone(),
        window: Some(window.window.clone()),
        reason,
    };
    let finding = |metric: &str, value: f64, threshold: f64, comparison: Comparison| Finding {
        alarm: alarm.name.clone(),
        window: window.window.clone(),
        last_day: window.last_day,
        metric: metric.to_owned(),
        value,
        threshold,
        comparison,
        severity: alarm.severity,
        action: alarm.action,
        challenger: None,
        baseline: None,
        message: String::new(),
    };
    match &alarm.rule {
        Rule::Threshold {
            metric,
            comparison,
            threshold,
        } => {
            let matched: Vec<(&String, f64)> = window
                .metrics
                .iter()
                .filter(|(name, _)| metric.matches(name))
                .map(|(name, v)| (name, *v))
                .collect();
            if matched.is_empty() {
                out.not_evaluated.push(skipped(format!(
                    "no metric matches `{}` in this window",
                    metric.as_str()
                )));
                return;
            }
            let not_numbers: BTreeSet<&str> = matched
                .iter()
                .filter(|(_, v)| v.is_nan())
                .map(|(n, _)| n.as_str())
                .collect();
            if !not_numbers.is_empty() {
                out.not_evaluated.push(skipped(format!(
                    "not a number: {}",
                    not_numbers.into_iter().collect::<Vec<_>>().join(", ")
                )));
            }
            for (name, value) in matched {
                if !value.is_nan() && comparison.fires(value, *threshold) {
                    let mut f = finding(name, value, *threshold, *comparison);
                    f.message = format!(
                        "{}: {name} = {} {} {} in window {} ({}, {})",
                        alarm.name,
                        num(value),
                        comparison.symbol(),
                        num(*threshold),
                        window.window,
                        alarm.severity.name(),
                        alarm.action.name(),
                    );
                    out.findings.push(f);
                }
            }
        }
        Rule::Challenger {
            challenger,
            metric,
            greater_is_better,
            min_gain,
        } => {
            let theirs_name = format!("challenger.{challenger}.{metric}");
            let ours = window.metrics.get(metric).copied();
            let theirs = window.metrics.get(&theirs_name).copied();
            let (ours, theirs) = match (ours, theirs) {
                (Some(o), Some(t)) if !o.is_nan() && !t.is_nan() => (o, t),
                _ => {
                    let missing: Vec<&str> = [(metric.as_str(), ours), (theirs_name.as_str(), theirs)]
                        .into_iter()
                        .filter(|(_, v)| v.is_none_or(f64::is_nan))
                        .map(|(n, _)| n)
                        .collect();
                    out.not_evaluated
                        .push(skipped(format!("no value for {}", missing.join(" and "))));
                    return;
                }
            };
            let gain = if *greater_is_better {
                theirs - ours
            } else {
                ours - theirs
            };
            if gain >= *min_gain {
                let (comparison, threshold) = if *greater_is_better {
                    (Comparison::Above, ours + min_gain)
                } else {
                    (Comparison::Below, ours - min_gain)
                };
                let mut f = finding(&theirs_name, theirs, threshold, comparison);
                f.challenger = Some(challenger.clone());
                f.baseline = Some(ours);
                f.message = format!(
                    "{}: {challenger} {metric} = {} against production's {} (gain {} >= {}) in window {} ({}, {})",
                    alarm.name,
                    num(theirs),
                    num(ours),
                    num(gain),
                    num(*min_gain),
                    window.window,
                    alarm.severity.name(),
                    alarm.action.name(),
                );
                out.findings.push(f);
            }
        }
    }
}

/// A value for a message: at most 4 decimals, without trailing zeros.
fn num(x: f64) -> String {
    let s = format!("{x:.4}");
    let s = if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.')
    } else {
        &s
    };
    if s == "-0" { "0".to_owned() } else { s.to_owned() }
}

#[cfg(test)]
mod tests {
    use super::super::tests::{day, file, parse, window};
    use super::*;

    #[test]
    fn a_glob_fires_once_per_matching_feature() {
        let f = parse(&file(
            "- name: psi\n  metric: psi.*\n  above: 0.25\n  severity: warning\n  action: notify\n",
        ));
        let w = window(
            "2020-07",
            7,
            &[
                ("psi.valor", 0.3),
                ("psi.idade", 0.1),
                ("psi.grupo", 0.25),
                ("psi.max", 0.3),
                ("prediction.psi", 0.9),
            ],
        );
        let e = evaluate(&f, &[w]);
        let metrics: Vec<&str> = e.findings.iter().map(|f| f.metric.as_str()).collect();
        assert_eq!(metrics, ["psi.grupo", "psi.max", "psi.valor"]);
        assert!(
            e.findings[2].message.contains("psi.valor = 0.3 >= 0.25"),
            "{}",
            e.findings[2].message
        );
        assert!(e.not_evaluated.is_empty());
    }

    #[test]
    fn thresholds_fire_on_the_edge_and_not_past_it() {
        let f = parse(&file(
            "- name: hi\n  metric: m\n  above: 0.5\n  severity: info\n  action: notify\n\
             - name: lo\n  metric: m\n  below: 0.5\n  severity: info\n  action: notify\n",
        ));
        let fired = |value: f64| -> Vec<String> {
            evaluate(&f, &[window("w", 7, &[("m", value)])])
                .findings
                .into_iter()
                .map(|f| f.alarm)
                .collect()
        };
        assert_eq!(fired(0.5), ["hi", "lo"], "both fire on the threshold itself");
        assert_eq!(fired(0.500_001), ["hi"]);
        assert_eq!(fired(0.499_999), ["lo"]);
        let nan = evaluate(&f, &[window("w", 7, &[("m", f64::NAN)])]);
        assert!(nan.findings.is_empty());
        assert_eq!(nan.not_evaluated.len(), 2);
        assert!(nan.not_evaluated[0].reason.contains("not a number"));
    }

    #[test]
    fn latest_looks_at_the_newest_window_and_each_at_all() {
        let f = parse(&file(
            "- name: latest\n  metric: drift.share\n  above: 0.5\n  severity: info\n  action: notify\n  window: latest\n\
             - name: each\n  metric: drift.share\n  above: 0.5\n  severity: info\n  action: notify\n  window: each\n",
        ));
        // Given newest first: the order of the slice does not decide.
        let windows = [
            window("2020-08", 8, &[("drift.share", 0.2)]),
            window("2020-06", 6, &[("drift.share", 0.9)]),
            window("2020-07", 7, &[("drift.share", 0.7)]),
        ];
        let e = evaluate(&f, &windows);
        let fired: Vec<(&str, &str)> = e
            .findings
            .iter()
            .map(|f| (f.alarm.as_str(), f.window.as_str()))
            .collect();
        assert_eq!(fired, [("each", "2020-06"), ("each", "2020-07")]);
        let newest_hot = [window("2020-08", 8, &[("drift.share", 0.6)]), windows[1].clone()];
        let fired: Vec<(String, String)> = evaluate(&f, &newest_hot)
            .findings
            .into_iter()
            .map(|f| (f.alarm, f.window))
            .collect();
        assert_eq!(
            fired,
            [
                ("each".to_owned(), "2020-06".to_owned()),
                ("latest".to_owned(), "2020-08".to_owned()),
                ("each".to_owned(), "2020-08".to_owned())
            ]
        );
    }

    #[test]
    fn a_missing_metric_is_reported_not_evaluated() {
        let f = parse(&file(
            "- name: drop\n  metric: realised.pr_auc_drop\n  above: 0.1\n  severity: critical\n  action: rollback\n  window: each\n",
        ));
        let e = evaluate(
            &f,
            &[
                window("2020-06", 6, &[("realised.pr_auc_drop", 0.2)]),
                window("2020-07", 7, &[("drift.share", 0.1)]),
            ],
        );
        assert_eq!(e.findings.len(), 1);
        assert_eq!(e.findings[0].window, "2020-06");
        assert_eq!(e.findings[0].last_day, day(2020, 6, 28));
        assert_eq!(e.not_evaluated.len(), 1);
        assert_eq!(e.not_evaluated[0].window.as_deref(), Some("2020-07"));
        assert!(e.not_evaluated[0].reason.contains("realised.pr_auc_drop"));
        let none = evaluate(&f, &[]);
        assert!(none.findings.is_empty() && none.not_evaluated.len() == 1);
    }

    #[test]
    fn a_challenger_fires_when_better_by_the_minimum_gain() {
        let f = parse(&file(
            "- name: up\n  metric: realised.pr_auc\n  challenger: candidate\n  min_gain: 0.05\n  severity: warning\n  action: promote\n\
             - name: ece\n  metric: realised.ece\n  challenger: candidate\n  min_gain: 0.01\n  greater_is_better: false\n  severity: info\n  action: promote\n",
        ));
        let run = |metrics: &[(&str, f64)]| evaluate(&f, &[window("2020-07", 7, metrics)]);
        let e = run(&[
            ("realised.pr_auc", 0.5),
            ("challenger.candidate.realised.pr_auc", 0.56),
            ("realised.ece", 0.05),
            ("challenger.candidate.realised.ece", 0.03),
        ]);
        assert_eq!(e.findings.len(), 2, "{e:?}");
        let up = &e.findings[0];
        assert_eq!(up.metric, "challenger.candidate.realised.pr_auc");
        assert_eq!(up.challenger.as_deref(), Some("candidate"));
        assert_eq!(up.baseline, Some(0.5));
        assert!((up.threshold - 0.55).abs() < 1e-12);
        assert_eq!(e.findings[1].comparison, Comparison::Below);
        let e = run(&[
            ("realised.pr_auc", 0.5),
            ("challenger.candidate.realised.pr_auc", 0.54),
            ("realised.ece", 0.05),
            ("challenger.candidate.realised.ece", 0.045),
        ]);
        assert!(e.findings.is_empty(), "{e:?}");
        let e = run(&[("realised.pr_auc", 0.5)]);
        assert_eq!(e.not_evaluated.len(), 2);
        assert!(
            e.not_evaluated[0]
                .reason
                .contains("challenger.candidate.realised.pr_auc")
        );
        assert!(!e.not_evaluated[0].reason.contains("realised.pr_auc and"));
    }

    #[test]
    fn numbers_in_messages_are_short() {
        assert_eq!(num(0.300_000_000_000_000_04), "0.3");
        assert_eq!(num(0.25), "0.25");
        assert_eq!(num(2.0), "2");
        assert_eq!(num(-0.000_01), "0");
        assert_eq!(num(0.123_456), "0.1235");
    }
}
