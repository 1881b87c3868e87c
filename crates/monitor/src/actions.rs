//! What the alarms' findings lead to: a plan, then (when told to act) its
//! execution through the model registry.
//!
//! A dry run is the default: the plan says what would be done and nothing
//! is written. Acting:
//!
//! - `rollback` moves the alias (`production`) back to its previous version
//!   ([`Registry::rollback_noted`]); the alias log keeps the reason
//!   `rollback` and notes the alarm, window and metric.
//! - `promote` moves the alias to the challenger's version
//!   ([`Registry::promote_noted`]), noting the alarm the same way.
//! - `retrain` writes the retrain request file (`config/retrain.json`,
//!   [`write_retrain_request`]) asking to train on data up to the window's
//!   last day. The request file is a dependency of build-features in
//!   `dvc.yaml`, so the next `dvc repro` sees it changed, rebuilds the
//!   features with the training period extended to that day and retrains
//!   every stage downstream.
//! - `notify` does nothing beyond the report and a warning in the log
//!   (logged in a dry run too: it changes nothing).
//!
//! Several firings of one alarm (`psi.*` on three features, or `each` on
//! three windows) make one action, on the newest window. At most one alias
//! move (a rollback and a promote on the same run contradict each other)
//! and one retrain request (one file holds one request) are made per run:
//! the most severe alarm wins, then the first in the alarm file; the others
//! are reported as superseded.
//!
//! Cool-down: every action taken is appended to the registry's
//! `monitor-actions.jsonl` (under the registry's lock), and an alarm never
//! acts twice on the same window: a firing on a window it already acted on
//! is reported as cooled down. With `cooldown_days` in the alarm file, an
//! alarm that acted also stays quiet for that many days on any window. A
//! failed action is logged too but does not count: the next run tries again.
//! The log is read before acting and appended after, under two separate
//! holds of the lock: two monitors acting at once on the same registry
//! could both act (DVC runs one stage at a time).
//!
//! A failed action never stops the others; each outcome is reported.

use std::collections::BTreeSet;
use std::path::Path;

use chrono::{DateTime, NaiveDate, Utc};
use log::{info, warn};
use revspend_core::artifact::{RetrainRequest, read_retrain_request, write_retrain_request};
use revspend_core::registry::{
    AliasChange, MonitorAction, PRODUCTION, Registry, RegistryError, current_user, now_rfc3339, os_user,
};
use serde::Serialize;
use thiserror::Error;

use crate::alarms::{Action, AlarmFile, Finding, Severity};

mod execute;
pub use execute::execute;

/// Why the actions could not even be planned.
#[derive(Debug, Error)]
pub enum ActionError {
    #[error("cannot read the monitor's action log (needed to cool alarms down)")]
    History(#[source] RegistryError),
}

/// Dry run (the default) or act.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    #[default]
    DryRun,
    Act,
}

/// Where and as whom the actions are taken.
#[derive(Debug, Clone)]
pub struct ActionContext<'a> {
    pub registry: &'a Registry,
    /// The alias a rollback or promote moves (`production`).
    pub alias: String,
    /// The retrain request file (`config/retrain.json`).
    pub retrain_request: &'a Path,
    /// Who runs the monitor (recorded in the alias log, the request and the
    /// action log).
    pub who: String,
    pub mode: Mode,
}

impl<'a> ActionContext<'a> {
    /// A dry run on `production`, as [`current_user`].
    pub fn new(registry: &'a Registry, retrain_request: &'a Path) -> ActionContext<'a> {
        ActionContext {
            registry,
            alias: PRODUCTION.to_owned(),
            retrain_request,
            who: current_user(),
            mode: Mode::DryRun,
        }
    }
}

/// One action an alarm asks for.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ActionItem {
    pub alarm: String,
    pub action: Action,
    pub severity: Severity,
    /// The window acted on: the newest one this action answers.
    pub window: String,
    /// That window's last day (a retrain's `until`).
    pub last_day: NaiveDate,
    /// Every window whose firing this action answers, oldest first.
    pub covers: Vec<String>,
    /// The metrics that fired, e.g. `psi.valor`, `psi.idade`.
    pub metrics: Vec<String>,
    /// The challenger a promote moves the alias to.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub challenger: Option<String>,
    /// The findings' messages.
    pub reason: String,
}

/// Whether a planned action goes ahead.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "decision", rename_all = "snake_case")]
pub enum Decision {
    Act,
    CooledDown { reason: String },
    Superseded { by: String },
}

/// An action and whether it goes ahead.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Planned {
    #[serde(flatten)]
    pub item: ActionItem,
    #[serde(flatten)]
    pub decision: Decision,
}

/// What became of one action.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum Outcome {
    /// A dry run: what acting would do.
    DryRun {
        would: String,
    },
    Done {
        detail: String,
        #[serde(skip_serializing_if = "Option::is_none")]
        alias_change: Option<Box<AliasChange>>,
        #[serde(skip_serializing_if = "Option::is_none")]
        retrain_request: Option<Box<RetrainRequest>>,
        /// Set when the action was done but the action log could not record
        /// it (it may then act again on the next run).
        #[serde(skip_serializing_if = "Option::is_none")]
        unrecorded: Option<String>,
    },
    CooledDown {
        reason: String,
    },
    Superseded {
        by: String,
    },
    Failed {
        error: String,
    },
}

/// One action and its outcome, as the report lists it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ActionOutcome {
    #[serde(flatten)]
    pub item: ActionItem,
    #[serde(flatten)]
    pub outcome: Outcome,
}

/// The actions of a run (goes into reports/monitor.json).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ActionReport {
    pub mode: Mode,
    pub actions: Vec<ActionOutcome>,
}

/// Plans the actions from the findings, reads the action log for the
/// cool-down and, when acting, takes them.
pub fn run(
    file: &AlarmFile,
    findings: &[Finding],
    ctx: &ActionContext<'_>,
) -> Result<ActionReport, ActionError> {
    let history = ctx.registry.monitor_actions().map_err(ActionError::History)?;
    let planned = plan(
        file,
        findings,
        &history,
        DateTime::<Utc>::from(std::time::SystemTime::now()),
    );
    Ok(ActionReport {
        mode: ctx.mode,
        actions: execute(planned, ctx),
    })
}

/// The actions the findings ask for, one per alarm in alarm-file order,
/// with what the cool-down and the one-move-per-run rule decide. Pure:
/// `history` is the action log, `now` the time the cool-down counts from.
pub fn plan(
    file: &AlarmFile,
    findings: &[Finding],
    history: &[MonitorAction],
    now: DateTime<Utc>,
) -> Vec<Planned> {
    let mut planned: Vec<(usize, Planned)> = Vec::new();
    for (order, alarm) in file.alarms.iter().enumerate() {
        let mut fired: Vec<&Finding> = findings.iter().filter(|f| f.alarm == alarm.name).collect();
        if fired.is_empty() {
            continue;
        }
        fired.sort_by(|a, b| (a.last_day, &a.window).cmp(&(b.last_day, &b.window)));
        let done: Vec<&MonitorAction> = history
            .iter()
            .filter(|r| r.alarm == alarm.name && r.outcome == "done")
            .collect();
        let fresh: Vec<&Finding> = fired
            .iter()
            .copied()
            .filter(|f| !done.iter().any(|r| r.acted_on(&f.window)))
            .collect();
        let answered = if fresh.is_empty() { &fired } else { &fresh };
        let Some(newest) = answered.last() else {
            continue;
        };
        let mut covers: Vec<String> = Vec::new();
        let mut metrics: BTreeSet<String> = BTreeSet::new();
        for f in answered {
            if !covers.contains(&f.window) {
                covers.push(f.window.clone());
            }
            metrics.insert(f.metric.clone());
        }
        let item = ActionItem {
            alarm: alarm.name.clone(),
            action: alarm.action,
            severity: alarm.severity,
            window: newest.window.clone(),
            last_day: newest.last_day,
            covers,
            metrics: metrics.into_iter().collect(),
            challenger: newest.challenger.clone(),
            reason: answered
                .iter()
                .map(|f| f.message.as_str())
                .collect::<Vec<_>>()
                .join("; "),
        };
        let decision = if fresh.is_empty() {
            let last = done.iter().rev().find(|r| r.acted_on(&newest.window));
            Decision::CooledDown {
                reason: format!(
                    "already acted on window {}{}",
                    newest.window,
                    last.map(|r| format!(" at {}", r.time)).unwrap_or_default()
                ),
            }
        } else {
            match (file.cooldown_days, done.last()) {
                (Some(days), Some(last)) if within_days(&last.time, now, days) => Decision::CooledDown {
                    reason: format!(
                        "acted at {} (window {}), less than cooldown_days {days} ago",
                        last.time, last.window
                    ),
                },
                _ => Decision::Act,
            }
        };
        planned.push((order, Planned { item, decision }));
    }
    for group in [&[Action::Rollback, Action::Promote][..], &[Action::Retrain][..]] {
        let winner = planned
            .iter()
            .filter(|(_, p)| p.decision == Decision::Act && group.contains(&p.item.action))
            // Most severe first, then first in the file.
            .min_by_key(|(order, p)| (std::cmp::Reverse(p.item.severity), *order))
            .map(|(order, p)| (*order, p.item.alarm.clone()));
        if let Some((winner_order, by)) = winner {
            for (order, p) in &mut planned {
                if *order != winner_order && p.decision == Decision::Act && group.contains(&p.item.action) {
                    p.decision = Decision::Superseded { by: by.clone() };
                }
            }
        }
    }
    planned.into_iter().map(|(_, p)| p).collect()
}

/// Whether `time` (RFC 3339) lies less than `days` days before `now`. A
/// time that does not parse counts as long ago (the log is ours; a hand
/// edit should not silence an alarm forever).
fn within_days(time: &str, now: DateTime<Utc>, days: u32) -> bool {
    match DateTime::parse_from_rfc3339(time) {
        Ok(t) => now.signed_duration_since(t) < chrono::Duration::days(i64::from(days)),
        Err(e) => {
            warn!("monitor action log: time {time:?} does not parse ({e}); cool-down ignores it");
            false
        }
    }
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use crate::alarms::{WindowMetrics, evaluate};
    use revspend_core::artifact;
    use revspend_core::calibration::Calibrator;
    use revspend_core::features::Feature;
    use revspend_core::metrics::BinaryMetrics;
    use revspend_core::model::{Classifier, ModelArtifact, Reliability};
    use revspend_core::registry::NewVersion;
    use revspend_core::target::TargetRule;

    pub(crate) const ALARMS: &str = "version: 1\nalarms:\n\
        - name: drift\n  metric: drift.share\n  above: 0.5\n  severity: critical\n  action: retrain\n  window: each\n\
        - name: psi\n  metric: psi.*\n  above: 0.25\n  severity: warning\n  action: notify\n\
        - name: drop\n  metric: realised.pr_auc_drop\n  above: 0.1\n  severity: critical\n  action: rollback\n\
        - name: up\n  metric: realised.pr_auc\n  challenger: candidate\n  min_gain: 0.05\n  severity: warning\n  action: promote\n";

    pub(crate) fn alarms(text: &str) -> AlarmFile {
        AlarmFile::parse(text).expect("a valid alarm file")
    }

    pub(crate) fn window(name: &str, month: u32, metrics: &[(&str, f64)]) -> WindowMetrics {
        WindowMetrics {
            window: name.into(),
            first_day: NaiveDate::from_ymd_opt(2020, month, 1).expect("date"),
            last_day: NaiveDate::from_ymd_opt(2020, month, 28).expect("date"),
            metrics: metrics.iter().map(|(k, v)| ((*k).to_owned(), *v)).collect(),
        }
    }

    pub(crate) fn new_version(model_version: &str) -> NewVersion {
        NewVersion {
            model_version: model_version.into(),
            algorithm: "prior".into(),
            hyperparameters: serde_json::json!({}),
            calibration: "identity".into(),
            threshold: 0.5,
            params_hash: "p".repeat(64),
            data_hash: "d".repeat(64),
            git_commit: None,
            test_metrics: BinaryMetrics::compute(&[0.2, 0.8], &[false, true], 0.5),
        }
    }

    /// The bytes of a real (tiny) model file: the registry checks them
    /// before it moves an alias.
    pub(crate) fn model_bytes(model_version: &str) -> Vec<u8> {
        let train_params = "{}".to_owned();
        let model = ModelArtifact {
            model_version: model_version.into(),
            algorithm: "prior".into(),
            hyperparameters: "{}".into(),
            features: vec![Feature::Valor],
            rule: TargetRule {
                threshold_pct: 20.0,
                vital_groups: vec!["SERVICO".into()],
            },
            classifier: Classifier::Prior { probability: 0.1 },
            calibrator: Calibrator::Identity,
            threshold: 0.5,
            threshold_source: "params".into(),
            training_prior: 0.1,
            params_hash: artifact::sha256_hex(train_params.as_bytes()),
            train_params,
            data_hash: "d".repeat(64),
            test_metrics: BinaryMetrics::compute(&[0.2, 0.8], &[false, true], 0.5),
            reliability: Reliability {
                before: Vec::new(),
                after: Vec::new(),
                ece_before: 0.0,
                ece_after: 0.0,
            },
            written_by: "monitor tests".into(),
            key_fingerprint: "0".repeat(32),
        };
        artifact::encode_model(&model).expect("encode model")
    }

    /// A registry where production went v0001 → v0002 and the candidate
    /// is v0003, and a retrain request file holding no request.
    pub(crate) struct Fixture {
        pub(crate) dir: tempfile::TempDir,
        pub(crate) registry: Registry,
    }

    impl Fixture {
        pub(crate) fn new() -> Fixture {
            let dir = tempfile::tempdir().expect("temp dir");
            let registry = Registry::new(dir.path().join("registry"));
            for i in 1..=3 {
                let name = format!("prior-{i}");
                registry
                    .register(&model_bytes(&name), new_version(&name), "test")
                    .expect("register");
            }
            registry
                .promote("v0002", PRODUCTION, "test")
                .expect("promote v0002");
            write_retrain_request(&dir.path().join("retrain.json"), None).expect("request file");
            Fixture { dir, registry }
        }

        pub(crate) fn request_path(&self) -> std::path::PathBuf {
            self.dir.path().join("retrain.json")
        }

        pub(crate) fn production(&self) -> String {
            self.registry.resolve(PRODUCTION).expect("production").version
        }

        pub(crate) fn run(&self, file: &AlarmFile, windows: &[WindowMetrics], mode: Mode) -> ActionReport {
            let path = self.request_path();
            let mut ctx = ActionContext::new(&self.registry, &path);
            ctx.who = "monitor-test".into();
            ctx.mode = mode;
            run(file, &evaluate(file, windows).findings, &ctx).expect("actions run")
        }
    }

    pub(crate) fn outcome<'a>(report: &'a ActionReport, alarm: &str) -> &'a Outcome {
        &report
            .actions
            .iter()
            .find(|a| a.item.alarm == alarm)
            .unwrap_or_else(|| panic!("no action for {alarm} in {report:?}"))
            .outcome
    }

    pub(crate) fn now() -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2020-09-01T00:00:00Z")
            .expect("time")
            .with_timezone(&Utc)
    }

    pub(crate) fn findings(file: &AlarmFile, windows: &[WindowMetrics]) -> Vec<Finding> {
        evaluate(file, windows).findings
    }

    #[test]
    fn one_action_per_alarm_on_its_newest_window() {
        let file = alarms(ALARMS);
        let windows = [
            window("2020-06", 6, &[("drift.share", 0.6)]),
            window(
                "2020-07",
                7,
                &[
                    ("drift.share", 0.7),
                    ("psi.valor", 0.3),
                    ("psi.idade", 0.4),
                    ("psi.grupo", 0.1),
                ],
            ),
        ];
        let plan = plan(&file, &findings(&file, &windows), &[], now());
        assert_eq!(plan.len(), 2, "{plan:?}");
        let drift = &plan[0].item;
        assert_eq!(
            (drift.alarm.as_str(), drift.window.as_str()),
            ("drift", "2020-07")
        );
        assert_eq!(drift.covers, ["2020-06", "2020-07"]);
        assert_eq!(
            drift.last_day,
            NaiveDate::from_ymd_opt(2020, 7, 28).expect("date")
        );
        let psi = &plan[1].item;
        assert_eq!(psi.metrics, ["psi.idade", "psi.valor"]);
        assert!(plan.iter().all(|p| p.decision == Decision::Act));
    }

    #[test]
    fn one_alias_move_per_run_by_severity_then_file_order() {
        let metrics = [
            ("realised.pr_auc_drop", 0.2),
            ("realised.pr_auc", 0.5),
            ("challenger.candidate.realised.pr_auc", 0.6),
        ];
        let windows = [window("2020-07", 7, &metrics)];
        // The rollback is critical, the promote a warning: the rollback wins.
        let file = alarms(ALARMS);
        let plan = plan(&file, &findings(&file, &windows), &[], now());
        let decision = |alarm: &str| {
            plan.iter()
                .find(|p| p.item.alarm == alarm)
                .map(|p| p.decision.clone())
                .expect("planned")
        };
        assert_eq!(decision("drop"), Decision::Act);
        assert_eq!(decision("up"), Decision::Superseded { by: "drop".into() });
        // Equal severity: the first in the file wins.
        let file = alarms(&ALARMS.replace(
            "severity: warning\n  action: promote",
            "severity: critical\n  action: promote",
        ));
        let plan2 = plan_of(&file, &windows);
        assert_eq!(
            plan2,
            [
                ("drop".to_owned(), Decision::Act),
                ("up".to_owned(), Decision::Superseded { by: "drop".into() })
            ]
        );
        // A promote listed first and as severe wins.
        let reordered = "version: 1\nalarms:\n\
            - name: up\n  metric: realised.pr_auc\n  challenger: candidate\n  min_gain: 0.05\n  severity: critical\n  action: promote\n\
            - name: drop\n  metric: realised.pr_auc_drop\n  above: 0.1\n  severity: critical\n  action: rollback\n";
        let plan3 = plan_of(&alarms(reordered), &windows);
        assert_eq!(
            plan3,
            [
                ("up".to_owned(), Decision::Act),
                ("drop".to_owned(), Decision::Superseded { by: "up".into() })
            ]
        );
        // A more severe alarm later in the file beats an earlier one.
        let severe_later = reordered.replacen("severity: critical", "severity: info", 1);
        let plan4 = plan_of(&alarms(&severe_later), &windows);
        assert_eq!(
            plan4,
            [
                ("up".to_owned(), Decision::Superseded { by: "drop".into() }),
                ("drop".to_owned(), Decision::Act)
            ]
        );
    }

    fn plan_of(file: &AlarmFile, windows: &[WindowMetrics]) -> Vec<(String, Decision)> {
        plan(file, &findings(file, windows), &[], now())
            .into_iter()
            .map(|p| (p.item.alarm, p.decision))
            .collect()
    }

    #[test]
    fn cooldown_days_quiets_an_alarm_on_any_window() {
        let file = alarms(&ALARMS.replace("version: 1\n", "version: 1\ncooldown_days: 7\n"));
        let record = |time: &str| MonitorAction {
            time: time.into(),
            who: "t".into(),
            os_user: "t".into(),
            alarm: "drift".into(),
            window: "2020-07".into(),
            covers: vec!["2020-07".into()],
            action: "retrain".into(),
            outcome: "done".into(),
            detail: String::new(),
        };
        let windows = [window("2020-08", 8, &[("drift.share", 0.9)])];
        let f = findings(&file, &windows);
        let recent = plan(&file, &f, &[record("2020-08-28T00:00:00Z")], now());
        assert!(
            matches!(&recent[0].decision, Decision::CooledDown { reason } if reason.contains("cooldown_days 7")),
            "{recent:?}"
        );
        let old = plan(&file, &f, &[record("2020-08-20T00:00:00Z")], now());
        assert_eq!(old[0].decision, Decision::Act);
        let mut failed = record("2020-08-31T00:00:00Z");
        failed.outcome = "failed".into();
        assert_eq!(
            plan(&file, &f, &[failed], now())[0].decision,
            Decision::Act,
            "a failure does not cool down"
        );
    }

    #[test]
    fn the_report_serialises_with_its_outcomes() {
        let fx = Fixture::new();
        let file = alarms(ALARMS);
        let report = fx.run(
            &file,
            &[window("2020-07", 7, &[("psi.valor", 0.5)])],
            Mode::DryRun,
        );
        let json = serde_json::to_value(&report).expect("serialise");
        assert_eq!(json["mode"], "dry_run");
        assert_eq!(json["actions"][0]["alarm"], "psi");
        assert_eq!(json["actions"][0]["action"], "notify");
        assert_eq!(json["actions"][0]["outcome"], "dry_run");
        assert_eq!(json["actions"][0]["metrics"][0], "psi.valor");
    }
}
