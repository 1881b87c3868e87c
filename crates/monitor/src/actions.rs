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

/// Takes (or, in a dry run, describes) each planned action. A failure is
/// that action's outcome; the others go ahead.
pub fn execute(planned: Vec<Planned>, ctx: &ActionContext<'_>) -> Vec<ActionOutcome> {
    planned
        .into_iter()
        .map(|Planned { item, decision }| {
            let outcome = match decision {
                Decision::CooledDown { reason } => Outcome::CooledDown { reason },
                Decision::Superseded { by } => Outcome::Superseded { by },
                Decision::Act => {
                    if item.action == Action::Notify {
                        warn!("alarm {}", item.reason);
                    }
                    match ctx.mode {
                        Mode::DryRun => {
                            let would = describe(&item, ctx);
                            info!("dry run: alarm {} would {would}", item.alarm);
                            Outcome::DryRun { would }
                        }
                        Mode::Act => act(&item, ctx),
                    }
                }
            };
            ActionOutcome { item, outcome }
        })
        .collect()
}

/// What acting would do, read from the registry without changing it.
fn describe(item: &ActionItem, ctx: &ActionContext<'_>) -> String {
    let alias = &ctx.alias;
    match item.action {
        Action::Notify => "warn in the log (done in a dry run too)".to_owned(),
        Action::Retrain => format!(
            "write a retrain request to {}: train on data up to {} (window {})",
            ctx.retrain_request.display(),
            item.last_day,
            item.window
        ),
        Action::Rollback => match ctx.registry.index() {
            Ok(index) => {
                let history = index.alias_history(alias);
                match history.len().checked_sub(2).and_then(|i| history.get(i)) {
                    Some(previous) => format!(
                        "roll {alias} back from {} to {previous}",
                        history.last().copied().unwrap_or("?")
                    ),
                    None => format!("roll {alias} back, but it has no earlier version: it would fail"),
                }
            }
            Err(e) => format!("roll {alias} back, but the registry does not read: {}", chain(&e)),
        },
        Action::Promote => {
            let challenger = item.challenger.as_deref().unwrap_or("?");
            match ctx.registry.index() {
                Ok(index) => {
                    let current = index.resolve(alias).map_or("nothing", |v| v.version.as_str());
                    match index.resolve(challenger) {
                        Some(v) if v.version == current => {
                            format!("leave {alias} at {current}: {challenger} already is it")
                        }
                        Some(v) => format!("move {alias} from {current} to {} ({challenger})", v.version),
                        None => format!(
                            "move {alias} to {challenger}, which the registry does not know: it would fail"
                        ),
                    }
                }
                Err(e) => format!(
                    "move {alias} to {challenger}, but the registry does not read: {}",
                    chain(&e)
                ),
            }
        }
    }
}

/// Takes one action and records it in the action log.
fn act(item: &ActionItem, ctx: &ActionContext<'_>) -> Outcome {
    let note = format!(
        "monitor alarm {} ({}) on window {}: {}",
        item.alarm,
        item.severity.name(),
        item.window,
        item.reason
    );
    let result: Result<Outcome, String> = match item.action {
        Action::Notify => Ok(done("warned in the log".to_owned())),
        Action::Rollback => ctx
            .registry
            .rollback_noted(&ctx.alias, &ctx.who, Some(&note))
            .map(|change| moved(change, "rolled back"))
            .map_err(|e| chain(&e)),
        Action::Promote => promote(item, ctx, &note),
        // A pending request that already reaches the window is left as it
        // is: a second alarm on the same data asks for the same retrain.
        Action::Retrain => match read_retrain_request(ctx.retrain_request) {
            Ok(Some(pending)) if pending.until >= item.last_day => Ok(done(format!(
                "a retrain request up to {} (alarm {}, window {}) is already pending in {}; left as it is",
                pending.until,
                pending.alarm,
                pending.window,
                ctx.retrain_request.display()
            ))),
            _ => {
                let request = RetrainRequest {
                    until: item.last_day,
                    alarm: item.alarm.clone(),
                    window: item.window.clone(),
                    reason: item.reason.clone(),
                    requested_at: now_rfc3339(),
                    requested_by: ctx.who.clone(),
                };
                write_retrain_request(ctx.retrain_request, Some(&request))
                    .map(|()| Outcome::Done {
                        detail: format!(
                            "wrote {}: retrain on data up to {}",
                            ctx.retrain_request.display(),
                            request.until
                        ),
                        alias_change: None,
                        retrain_request: Some(Box::new(request)),
                        unrecorded: None,
                    })
                    .map_err(|e| chain(&e))
            }
        },
    };
    let (outcome, detail) = match result {
        Ok(outcome) => {
            let detail = match &outcome {
                Outcome::Done { detail, .. } => detail.clone(),
                _ => String::new(),
            };
            info!("alarm {} acted ({}): {detail}", item.alarm, item.action.name());
            (outcome, ("done", detail))
        }
        Err(error) => {
            log::error!("alarm {}: {} failed: {error}", item.alarm, item.action.name());
            (Outcome::Failed { error: error.clone() }, ("failed", error))
        }
    };
    let record = MonitorAction {
        time: now_rfc3339(),
        who: ctx.who.clone(),
        os_user: os_user(),
        alarm: item.alarm.clone(),
        window: item.window.clone(),
        covers: item.covers.clone(),
        action: item.action.name().to_owned(),
        outcome: detail.0.to_owned(),
        detail: detail.1,
    };
    match (ctx.registry.append_monitor_action(&record), outcome) {
        (Ok(()), outcome) => outcome,
        (
            Err(e),
            Outcome::Done {
                detail,
                alias_change,
                retrain_request,
                ..
            },
        ) => {
            let error = chain(&e);
            log::error!(
                "alarm {}: done, but not recorded in the action log: {error}",
                item.alarm
            );
            Outcome::Done {
                detail,
                alias_change,
                retrain_request,
                unrecorded: Some(error),
            }
        }
        (Err(e), outcome) => {
            log::error!(
                "alarm {}: not recorded in the action log: {}",
                item.alarm,
                chain(&e)
            );
            outcome
        }
    }
}

/// Moves the alias to the challenger, unless it already points there.
fn promote(item: &ActionItem, ctx: &ActionContext<'_>, note: &str) -> Result<Outcome, String> {
    let challenger = item
        .challenger
        .as_deref()
        .ok_or_else(|| format!("alarm {} names no challenger", item.alarm))?;
    let index = ctx.registry.index().map_err(|e| chain(&e))?;
    if let (Some(current), Some(target)) = (index.resolve(&ctx.alias), index.resolve(challenger))
        && current.version == target.version
    {
        // Logging a change to the same version would push it on the alias
        // history again, and a later rollback would "return" to it.
        return Ok(done(format!(
            "{} already is {} ({challenger}): nothing to move",
            ctx.alias, current.version
        )));
    }
    ctx.registry
        .promote_noted(challenger, &ctx.alias, &ctx.who, "promote", Some(note))
        .map(|change| moved(change, "promoted"))
        .map_err(|e| chain(&e))
}

fn done(detail: String) -> Outcome {
    Outcome::Done {
        detail,
        alias_change: None,
        retrain_request: None,
        unrecorded: None,
    }
}

fn moved(change: AliasChange, verb: &str) -> Outcome {
    Outcome::Done {
        detail: format!(
            "{verb} {} from {} to {}",
            change.alias,
            change.from.as_deref().unwrap_or("nothing"),
            change.to
        ),
        alias_change: Some(Box::new(change)),
        retrain_request: None,
        unrecorded: None,
    }
}

/// An error and its sources, `a: b: c`.
fn chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alarms::{WindowMetrics, evaluate};
    use revspend_core::artifact::{self, read_retrain_request};
    use revspend_core::calibration::Calibrator;
    use revspend_core::features::Feature;
    use revspend_core::metrics::BinaryMetrics;
    use revspend_core::model::{Classifier, ModelArtifact, Reliability};
    use revspend_core::registry::NewVersion;
    use revspend_core::target::TargetRule;

    const ALARMS: &str = "version: 1\nalarms:\n\
        - name: drift\n  metric: drift.share\n  above: 0.5\n  severity: critical\n  action: retrain\n  window: each\n\
        - name: psi\n  metric: psi.*\n  above: 0.25\n  severity: warning\n  action: notify\n\
        - name: drop\n  metric: realised.pr_auc_drop\n  above: 0.1\n  severity: critical\n  action: rollback\n\
        - name: up\n  metric: realised.pr_auc\n  challenger: candidate\n  min_gain: 0.05\n  severity: warning\n  action: promote\n";

    fn alarms(text: &str) -> AlarmFile {
        AlarmFile::parse(text).expect("a valid alarm file")
    }

    fn window(name: &str, month: u32, metrics: &[(&str, f64)]) -> WindowMetrics {
        WindowMetrics {
            window: name.into(),
            first_day: NaiveDate::from_ymd_opt(2020, month, 1).expect("date"),
            last_day: NaiveDate::from_ymd_opt(2020, month, 28).expect("date"),
            metrics: metrics.iter().map(|(k, v)| ((*k).to_owned(), *v)).collect(),
        }
    }

    fn new_version(model_version: &str) -> NewVersion {
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
    fn model_bytes(model_version: &str) -> Vec<u8> {
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
    struct Fixture {
        dir: tempfile::TempDir,
        registry: Registry,
    }

    impl Fixture {
        fn new() -> Fixture {
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

        fn request_path(&self) -> std::path::PathBuf {
            self.dir.path().join("retrain.json")
        }

        fn production(&self) -> String {
            self.registry.resolve(PRODUCTION).expect("production").version
        }

        fn run(&self, file: &AlarmFile, windows: &[WindowMetrics], mode: Mode) -> ActionReport {
            let path = self.request_path();
            let mut ctx = ActionContext::new(&self.registry, &path);
            ctx.who = "monitor-test".into();
            ctx.mode = mode;
            run(file, &evaluate(file, windows).findings, &ctx).expect("actions run")
        }
    }

    fn outcome<'a>(report: &'a ActionReport, alarm: &str) -> &'a Outcome {
        &report
            .actions
            .iter()
            .find(|a| a.item.alarm == alarm)
            .unwrap_or_else(|| panic!("no action for {alarm} in {report:?}"))
            .outcome
    }

    fn now() -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2020-09-01T00:00:00Z")
            .expect("time")
            .with_timezone(&Utc)
    }

    fn findings(file: &AlarmFile, windows: &[WindowMetrics]) -> Vec<Finding> {
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
    fn rollback_moves_production_back_and_logs_the_alarm() {
        let fx = Fixture::new();
        assert_eq!(fx.production(), "v0002");
        let file = alarms(ALARMS);
        let report = fx.run(
            &file,
            &[window("2020-07", 7, &[("realised.pr_auc_drop", 0.15)])],
            Mode::Act,
        );
        let Outcome::Done {
            alias_change: Some(change),
            ..
        } = outcome(&report, "drop")
        else {
            panic!("not done: {report:?}");
        };
        assert_eq!(
            (change.from.as_deref(), change.to.as_str()),
            (Some("v0002"), "v0001")
        );
        assert_eq!(fx.production(), "v0001");
        let index = fx.registry.index().expect("index");
        let last = index.alias_log.last().expect("logged");
        assert_eq!(last.reason, "rollback", "alias_history pops on this reason");
        let note = last.note.as_deref().expect("a note");
        assert!(
            note.contains("drop") && note.contains("2020-07") && note.contains("realised.pr_auc_drop"),
            "{note}"
        );
        assert_eq!(index.alias_history(PRODUCTION), ["v0001"]);
        let log = fx.registry.monitor_actions().expect("action log");
        assert_eq!(log.len(), 1);
        assert_eq!(
            (
                log[0].alarm.as_str(),
                log[0].action.as_str(),
                log[0].outcome.as_str()
            ),
            ("drop", "rollback", "done")
        );
        assert_eq!(log[0].who, "monitor-test");
    }

    #[test]
    fn promote_moves_production_to_the_challenger() {
        let fx = Fixture::new();
        let file = alarms(ALARMS);
        let metrics = [
            ("realised.pr_auc", 0.5),
            ("challenger.candidate.realised.pr_auc", 0.6),
        ];
        let report = fx.run(&file, &[window("2020-07", 7, &metrics)], Mode::Act);
        assert!(
            matches!(
                outcome(&report, "up"),
                Outcome::Done {
                    alias_change: Some(_),
                    ..
                }
            ),
            "{report:?}"
        );
        assert_eq!(fx.production(), "v0003");
        let index = fx.registry.index().expect("index");
        let last = index.alias_log.last().expect("logged");
        assert_eq!(last.reason, "promote");
        assert!(
            last.note.as_deref().is_some_and(|n| n.contains("alarm up")),
            "{last:?}"
        );
        // On a new window the challenger already is production: nothing moves.
        let before = index.alias_log.len();
        let report = fx.run(&file, &[window("2020-08", 8, &metrics)], Mode::Act);
        assert!(
            matches!(outcome(&report, "up"), Outcome::Done { alias_change: None, detail, .. } if detail.contains("already")),
            "{report:?}"
        );
        assert_eq!(fx.registry.index().expect("index").alias_log.len(), before);
        let dry = fx.run(&file, &[window("2020-09", 9, &metrics)], Mode::DryRun);
        assert!(
            matches!(outcome(&dry, "up"), Outcome::DryRun { would } if would.contains("leave production at v0003")),
            "{dry:?}"
        );
    }

    #[test]
    fn retrain_writes_the_request_build_features_reads() {
        let fx = Fixture::new();
        let file = alarms(ALARMS);
        let report = fx.run(
            &file,
            &[window("2020-07", 7, &[("drift.share", 0.62)])],
            Mode::Act,
        );
        assert!(
            matches!(
                outcome(&report, "drift"),
                Outcome::Done {
                    retrain_request: Some(_),
                    ..
                }
            ),
            "{report:?}"
        );
        let request = read_retrain_request(&fx.request_path())
            .expect("read")
            .expect("a request");
        assert_eq!(request.until, NaiveDate::from_ymd_opt(2020, 7, 28).expect("date"));
        assert_eq!(
            (request.alarm.as_str(), request.window.as_str()),
            ("drift", "2020-07")
        );
        assert!(
            request.reason.contains("drift.share = 0.62 >= 0.5"),
            "{}",
            request.reason
        );
        assert_eq!(request.requested_by, "monitor-test");
        assert_eq!(fx.production(), "v0002", "a retrain moves no alias");
    }

    #[test]
    fn acting_twice_on_a_window_acts_once_and_a_new_window_acts_again() {
        let fx = Fixture::new();
        let file = alarms(ALARMS);
        let july = [window("2020-07", 7, &[("drift.share", 0.9), ("psi.valor", 0.5)])];
        let first = fx.run(&file, &july, Mode::Act);
        assert!(
            first
                .actions
                .iter()
                .all(|a| matches!(a.outcome, Outcome::Done { .. })),
            "{first:?}"
        );
        std::fs::write(fx.request_path(), "{\"version\": 1, \"request\": null}").expect("clear the request");
        let second = fx.run(&file, &july, Mode::Act);
        assert!(
            second
                .actions
                .iter()
                .all(|a| matches!(a.outcome, Outcome::CooledDown { .. })),
            "{second:?}"
        );
        assert_eq!(
            read_retrain_request(&fx.request_path()).expect("read"),
            None,
            "no second request"
        );
        assert_eq!(
            fx.registry.monitor_actions().expect("log").len(),
            2,
            "drift and psi, once each"
        );
        // With `each`, July (acted on) and August (new): August acts, alone.
        let both = [july[0].clone(), window("2020-08", 8, &[("drift.share", 0.8)])];
        let third = fx.run(&file, &both, Mode::Act);
        let drift = third
            .actions
            .iter()
            .find(|a| a.item.alarm == "drift")
            .expect("drift");
        assert!(matches!(drift.outcome, Outcome::Done { .. }), "{third:?}");
        assert_eq!(
            (drift.item.window.as_str(), drift.item.covers.as_slice()),
            ("2020-08", &["2020-08".to_owned()][..])
        );
        let request = read_retrain_request(&fx.request_path())
            .expect("read")
            .expect("a request");
        assert_eq!(request.window, "2020-08");
    }

    #[test]
    fn a_failed_action_does_not_stop_the_others() {
        let fx = Fixture::new();
        let file = alarms(ALARMS);
        // The request's path is a directory: the retrain fails.
        let taken = fx.dir.path().join("taken");
        std::fs::create_dir_all(taken.join("inside")).expect("a directory");
        let mut ctx = ActionContext::new(&fx.registry, &taken);
        ctx.mode = Mode::Act;
        let windows = [window(
            "2020-07",
            7,
            &[("drift.share", 0.9), ("realised.pr_auc_drop", 0.3)],
        )];
        let report = run(&file, &findings(&file, &windows), &ctx).expect("run");
        assert!(
            matches!(outcome(&report, "drift"), Outcome::Failed { .. }),
            "{report:?}"
        );
        assert!(
            matches!(outcome(&report, "drop"), Outcome::Done { .. }),
            "{report:?}"
        );
        assert_eq!(fx.production(), "v0001");
        let log = fx.registry.monitor_actions().expect("log");
        let outcomes: Vec<(&str, &str)> = log
            .iter()
            .map(|r| (r.alarm.as_str(), r.outcome.as_str()))
            .collect();
        assert_eq!(outcomes, [("drift", "failed"), ("drop", "done")]);
        // The failed one tries again next run; the done one does not.
        let again = plan(&file, &findings(&file, &windows), &log, now());
        assert_eq!(again[0].decision, Decision::Act);
        assert!(matches!(again[1].decision, Decision::CooledDown { .. }));
    }

    #[test]
    fn a_dry_run_changes_nothing() {
        let fx = Fixture::new();
        let file = alarms(ALARMS);
        let index_before = std::fs::read(fx.registry.index_path()).expect("index bytes");
        let request_before = std::fs::read(fx.request_path()).expect("request bytes");
        let windows = [window(
            "2020-07",
            7,
            &[
                ("drift.share", 0.9),
                ("psi.valor", 0.5),
                ("realised.pr_auc_drop", 0.3),
                ("realised.pr_auc", 0.5),
                ("challenger.candidate.realised.pr_auc", 0.9),
            ],
        )];
        let report = fx.run(&file, &windows, Mode::DryRun);
        assert_eq!(report.mode, Mode::DryRun);
        let Outcome::DryRun { would } = outcome(&report, "drop") else {
            panic!("{report:?}");
        };
        assert!(would.contains("from v0002 to v0001"), "{would}");
        assert!(
            matches!(outcome(&report, "drift"), Outcome::DryRun { would } if would.contains("2020-07-28"))
        );
        assert!(matches!(outcome(&report, "up"), Outcome::Superseded { .. }));
        assert_eq!(
            std::fs::read(fx.registry.index_path()).expect("index bytes"),
            index_before
        );
        assert_eq!(
            std::fs::read(fx.request_path()).expect("request bytes"),
            request_before
        );
        assert!(
            !fx.registry.monitor_actions_path().exists(),
            "no action log written"
        );
        // A dry run is not remembered: acting afterwards acts.
        let acted = fx.run(&file, &windows, Mode::Act);
        assert!(
            matches!(outcome(&acted, "drop"), Outcome::Done { .. }),
            "{acted:?}"
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
