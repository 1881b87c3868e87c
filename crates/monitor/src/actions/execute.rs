//! Taking the planned actions: through the registry (rollback, promote),
//! the retrain request file, or the log (notify), each recorded in the
//! registry's action log; in a dry run, what each would do.

use super::*;

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
    use super::super::tests::*;
    use super::*;
    use revspend_core::artifact::read_retrain_request;

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
}
