//! `registry experiment-report` on synthetic prediction logs written with the
//! server's own [`LogWriter`]. The expected numbers were computed
//! independently by `experiment_report_reference.py` beside this file
//! (numpy 2.4.6, scipy 1.17.1) from [`write_log`]'s rules; its output is
//! quoted where used.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;
use std::process::Command;

use chrono::{DateTime, Duration, Utc};
use registry::experiment_report::{self, ExperimentReport, Options, ReportError};
use revspend_core::artifact;
use revspend_core::artifact::prediction_log::{
    FeedbackRecord, LogWriter, PredictionRecord, Record, ShadowRecord, log_files,
};
use revspend_core::experiment::{ArmState, BANDIT_STATE_VERSION, BanditState};

const TOL: f64 = 1e-9;

fn close(got: Option<f64>, want: f64) {
    let got = got.expect("a number");
    assert!((got - want).abs() <= TOL, "got {got}, want {want}");
}

fn start() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2026-12-01T10:10:00Z")
        .expect("time")
        .with_timezone(&Utc)
}

fn prediction(time: DateTime<Utc>, id: &str, experiment: &str, variant: &str, p: f64, cold: bool) -> Record {
    Record::Prediction(PredictionRecord {
        time: artifact::prediction_log::timestamp(time),
        prediction_id: id.into(),
        pseudonym: "ab12".into(),
        experiment: experiment.into(),
        variant: variant.into(),
        model_version: format!("{variant}-model"),
        registry_version: None,
        route: "/predict".into(),
        features: BTreeMap::from([("valor".into(), Some(45.9))]),
        probability: p,
        threshold: 0.5,
        decision: p >= 0.5,
        cold_start: cold,
        latency_us: 100,
    })
}

fn feedback(
    time: DateTime<Utc>,
    id: &str,
    experiment: &str,
    variant: &str,
    decision: bool,
    outcome: Option<bool>,
    reward: f64,
) -> Record {
    Record::Feedback(FeedbackRecord {
        time: artifact::prediction_log::timestamp(time),
        prediction_id: id.into(),
        experiment: experiment.into(),
        variant: variant.into(),
        model_version: format!("{variant}-model"),
        decision,
        outcome,
        reward,
    })
}

fn shadow(time: DateTime<Utc>, id: &str, p: f64) -> Record {
    Record::Shadow(ShadowRecord {
        time: artifact::prediction_log::timestamp(time),
        prediction_id: id.into(),
        experiment: "exp-1".into(),
        variant: "shadow".into(),
        model_version: "shadow-model".into(),
        registry_version: None,
        probability: p,
        threshold: 0.5,
        decision: p >= 0.5,
        latency_us: 900,
    })
}

/// Experiment `exp-1`, 40 predictions a minute apart from 10:10 (two hour
/// partitions): the first 20 alternate production/candidate, then production
/// gets one in four (a bandit moving traffic). Prediction i has probability
/// (i mod 10)/10 + 0.05 (flagged when ≥ 0.5) and is a cold start for i < 5.
/// Feedback 30 s later for every i not ≡ 4 (mod 5): no outcome when
/// i ≡ 6 (mod 7), else outcome `i mod 3 != 0`; reward 1 for a right
/// decision, 0 for a wrong one, 0.5 without outcome, and candidate's odd
/// rows with an outcome earn 0.25 more (capped at 1). A shadow scores each
/// production row at p + 0.1 when i ≡ 0 (mod 3), else p − 0.05, plus one
/// score of a prediction not in the log. Before all that, four records of
/// experiment `exp-0`.
fn write_log(dir: &Path) {
    let mut records: Vec<(DateTime<Utc>, Record)> = Vec::new();
    let t0 = start();
    for i in 0..3 {
        let t = t0 - Duration::minutes(60 - i);
        records.push((
            t,
            prediction(t, &format!("old{i}"), "exp-0", "production", 0.9, false),
        ));
    }
    let t = t0 - Duration::minutes(50);
    records.push((
        t,
        feedback(t, "old0", "exp-0", "production", true, Some(true), 1.0),
    ));
    for i in 0..40i64 {
        let variant = match i {
            i if i < 20 && i % 2 == 0 => "production",
            i if i >= 20 && i % 4 == 0 => "production",
            _ => "candidate",
        };
        let id = format!("p{i}");
        let p = (i % 10) as f64 / 10.0 + 0.05;
        let decision = p >= 0.5;
        let t = t0 + Duration::minutes(i);
        records.push((t, prediction(t, &id, "exp-1", variant, p, i < 5)));
        if variant == "production" {
            let q = if i % 3 == 0 { p + 0.1 } else { p - 0.05 };
            records.push((t + Duration::seconds(1), shadow(t + Duration::seconds(1), &id, q)));
        }
        if i % 5 == 4 {
            continue;
        }
        let outcome = (i % 7 != 6).then_some(i % 3 != 0);
        let mut reward = match outcome {
            None => 0.5,
            Some(o) if o == decision => 1.0,
            Some(_) => 0.0,
        };
        if variant == "candidate" && outcome.is_some() && i % 2 == 1 {
            reward = f64::min(1.0, reward + 0.25);
        }
        let t = t + Duration::seconds(30);
        records.push((t, feedback(t, &id, "exp-1", variant, decision, outcome, reward)));
    }
    let t = t0 + Duration::minutes(41);
    records.push((t, shadow(t, "not-logged", 0.7)));
    records.sort_by_key(|(t, _)| *t);
    let (mut writer, _) = LogWriter::open(dir, 1 << 20, "registry tests").expect("open log");
    for (t, r) in &records {
        writer.append_record(*t, r).expect("append");
    }
    writer.close().expect("close");
}

fn options(dir: &Path) -> Options {
    Options {
        log_dir: dir.to_owned(),
        ..Options::default()
    }
}

fn variant<'a>(report: &'a ExperimentReport, name: &str) -> &'a experiment_report::VariantReport {
    report
        .variants
        .iter()
        .find(|v| v.variant == name)
        .unwrap_or_else(|| panic!("no variant {name}"))
}

#[test]
fn the_report_counts_traffic_outcomes_rewards_and_shadows_per_variant() {
    let dir = tempfile::tempdir().expect("tempdir");
    write_log(dir.path());
    let report = experiment_report::build(&options(dir.path())).expect("report");
    assert_eq!(report.experiment, "exp-1");
    assert_eq!(report.experiment_from, "latest prediction");
    let names: Vec<&str> = report.variants.iter().map(|v| v.variant.as_str()).collect();
    assert_eq!(names, ["production", "candidate", "shadow"]);

    // the reference script: production req 15 dec 0.4 meanp 0.45 cold 0.2;
    // fb 12 with 10 tp fp fn 3 2 3 prec 0.6 rec 0.5;
    // mean 0.5 sd 0.4767312946227962 ci 0.19709938639478292 0.802900613605217
    let p = variant(&report, "production");
    assert_eq!(p.requests, 15);
    close(p.request_share, 15.0 / 40.0);
    close(p.decision_rate, 0.4);
    close(p.mean_probability, 0.45);
    close(p.cold_start_share, 0.2);
    assert_eq!((p.feedback.count, p.feedback.with_outcome), (12, 10));
    let f = &p.feedback;
    assert_eq!(
        (f.true_positives, f.false_positives, f.false_negatives),
        (3, 2, 3)
    );
    close(f.precision, 0.6);
    close(f.recall, 0.5);
    assert_eq!(p.reward.n, 12);
    close(p.reward.mean, 0.5);
    close(p.reward.sd, 0.4767312946227962);
    let ci = p.reward.ci95.expect("ci");
    close(Some(ci.low), 0.19709938639478292);
    close(Some(ci.high), 0.802900613605217);
    assert_eq!(p.shadow, None);

    // the reference script: candidate req 25 dec 0.56 meanp 0.53 cold 0.08;
    // fb 20 with 18 tp fp fn 8 1 5 prec 0.8888888888888888 rec 0.6153846153846154;
    // mean 0.7125 sd 0.37412177865390017 ci 0.5374056178345303 0.8875943821654697
    let c = variant(&report, "candidate");
    assert_eq!(c.requests, 25);
    close(c.decision_rate, 0.56);
    close(c.mean_probability, 0.53);
    close(c.cold_start_share, 0.08);
    assert_eq!((c.feedback.count, c.feedback.with_outcome), (20, 18));
    close(c.feedback.precision, 8.0 / 9.0);
    close(c.feedback.recall, 8.0 / 13.0);
    close(c.reward.mean, 0.7125);
    close(c.reward.sd, 0.37412177865390017);
    let ci = c.reward.ci95.expect("ci");
    close(Some(ci.low), 0.5374056178345303);
    close(Some(ci.high), 0.8875943821654697);

    // the reference script: shadow agree 0.9333333333333333 mad 0.07 n 15 (the score of
    // a prediction not in the log is counted, not compared).
    let s = variant(&report, "shadow");
    assert_eq!((s.requests, s.decision_rate, s.feedback.count), (0, None, 0));
    let sh = s.shadow.as_ref().expect("shadow");
    assert_eq!((sh.scored, sh.matched), (16, 15));
    close(sh.agreement, 14.0 / 15.0);
    close(sh.mean_abs_probability_diff, 0.07);

    // Nothing undefined is written as NaN.
    let json = serde_json::to_string(&report).expect("json");
    assert!(!json.contains("NaN"), "{json}");
}

#[test]
fn welch_p_value_matches_scipy() {
    let dir = tempfile::tempdir().expect("tempdir");
    write_log(dir.path());
    let report = experiment_report::build(&options(dir.path())).expect("report");
    let s = &report.significance;
    assert_eq!(s.control.as_deref(), Some("production"));
    assert!(s.test.contains("Welch"), "{}", s.test);
    assert!(s.caveat.contains("repeatedly"), "{}", s.caveat);
    assert_eq!(s.comparisons.len(), 1, "the shadow has no feedback: no test");
    let c = &s.comparisons[0];
    assert_eq!((c.variant.as_str(), c.n, c.control_n), ("candidate", 20, 12));
    // scipy 1.17.1: ttest_ind(candidate_rewards, production_rewards,
    // equal_var=False) -> statistic 1.319449555206185,
    // pvalue 0.2026017837404403, df 19.11981793110583 (the reference script).
    close(c.difference, 0.2125);
    close(c.t, 1.319449555206185);
    close(c.df, 19.11981793110583);
    close(c.p_value, 0.2026017837404403);
    assert_eq!(c.significant, Some(false));
}

#[test]
fn allocation_by_tenth_shows_the_traffic_moving() {
    let dir = tempfile::tempdir().expect("tempdir");
    write_log(dir.path());
    let report = experiment_report::build(&options(dir.path())).expect("report");
    assert_eq!(report.allocation.len(), 10);
    for (k, slice) in report.allocation.iter().enumerate() {
        assert_eq!(slice.requests, 4);
        let shares: Vec<(&str, u64, f64)> = slice
            .shares
            .iter()
            .map(|s| (s.variant.as_str(), s.requests, s.share))
            .collect();
        let want = if k < 5 {
            [("production", 2, 0.5), ("candidate", 2, 0.5)]
        } else {
            [("production", 1, 0.25), ("candidate", 3, 0.75)]
        };
        assert_eq!(shares, want, "slice {}", k + 1);
    }
    assert_eq!(report.allocation[0].first, "2026-12-01T10:10:00.000Z");
    assert_eq!(report.allocation[9].last, "2026-12-01T10:49:00.000Z");
}

#[test]
fn the_window_keeps_records_by_their_own_time_in_from_until() {
    let dir = tempfile::tempdir().expect("tempdir");
    write_log(dir.path());
    let opts = Options {
        from: Some(start()),
        until: Some(start() + Duration::minutes(20)),
        ..options(dir.path())
    };
    let report = experiment_report::build(&opts).expect("report");
    let requests: u64 = report.variants.iter().map(|v| v.requests).sum();
    assert_eq!(requests, 20);
    assert_eq!(report.reading.other_records(), 0, "exp-0 is before the window");
    assert!(report.reading.outside_window > 0);

    // A prediction of 10:59:59.900 written at 11:00:00.100 is in the 11:00
    // partition, and in a window until 11:00.
    let late = tempfile::tempdir().expect("tempdir");
    let eleven = start() + Duration::minutes(50);
    let (mut writer, _) = LogWriter::open(late.path(), 1 << 20, "registry tests").expect("open");
    let record = prediction(
        eleven - Duration::milliseconds(100),
        "p",
        "exp-1",
        "production",
        0.2,
        false,
    );
    writer
        .append_record(eleven + Duration::milliseconds(100), &record)
        .expect("append");
    writer.close().expect("close");
    let opts = Options {
        until: Some(eleven),
        ..options(late.path())
    };
    let report = experiment_report::build(&opts).expect("report");
    assert_eq!(variant(&report, "production").requests, 1);
}

#[test]
fn other_experiments_are_ignored_and_counted_and_bad_lines_reported() {
    let dir = tempfile::tempdir().expect("tempdir");
    write_log(dir.path());
    let files = log_files(dir.path(), Default::default()).expect("files");
    let mut file = std::fs::OpenOptions::new()
        .append(true)
        .open(&files[0])
        .expect("open");
    file.write_all(b"not json\n").expect("write");

    let report = experiment_report::build(&options(dir.path())).expect("report");
    assert_eq!(
        report.reading.other_experiments,
        BTreeMap::from([("exp-0".to_owned(), 4)])
    );
    assert_eq!(report.reading.bad_lines, 1);
    let warnings = experiment_report::warnings(&report);
    assert_eq!(warnings.len(), 1);
    let name = files[0].file_name().expect("name").to_string_lossy();
    assert!(warnings[0].contains(&format!("{name}:")), "{warnings:?}");
    let text = experiment_report::render(&report);
    assert!(
        text.contains("ignored 4 of other experiments (exp-0: 4)"),
        "{text}"
    );
    assert!(text.contains("1 bad line(s)"), "{text}");

    let opts = Options {
        experiment: Some("exp-0".into()),
        ..options(dir.path())
    };
    let report = experiment_report::build(&opts).expect("report");
    assert_eq!(report.experiment_from, "given");
    assert_eq!(variant(&report, "production").requests, 3);
    assert_eq!(report.reading.other_records(), 40 + 15 + 1 + 32);
}

fn bandit_state(dir: &Path, experiment: &str) -> std::path::PathBuf {
    let arm = |variant: &str, pulls, feedbacks, reward_sum: f64| ArmState {
        variant: variant.into(),
        pulls,
        feedbacks,
        reward_sum,
        reward_sq_sum: reward_sum,
    };
    let state = BanditState {
        version: BANDIT_STATE_VERSION,
        experiment: experiment.into(),
        algorithm: "thompson".into(),
        updated: "2026-12-01T11:00:00Z".into(),
        arms: vec![
            arm("production", 300, 200, 80.0),
            arm("candidate", 700, 500, 350.0),
        ],
    };
    let path = dir.join(format!("bandit-{experiment}.json"));
    artifact::write_bandit_state(&path, &state).expect("write state");
    path
}

#[test]
fn the_bandit_section_gives_shares_posteriors_and_p_best_and_refuses_another_experiment() {
    let dir = tempfile::tempdir().expect("tempdir");
    write_log(&dir.path().join("log"));
    let opts = Options {
        bandit_state: Some(bandit_state(dir.path(), "exp-1")),
        ..options(&dir.path().join("log"))
    };
    let report = experiment_report::build(&opts).expect("report");
    let bandit = report.bandit.as_ref().expect("bandit");
    assert_eq!(bandit.draws, 20_000);
    let (p, c) = (&bandit.arms[0], &bandit.arms[1]);
    close(p.pull_share, 0.3);
    close(c.pull_share, 0.7);
    assert_eq!((p.feedbacks, c.feedbacks), (200, 500));
    assert_eq!((c.alpha, c.beta), (351.0, 151.0));
    close(Some(c.posterior_mean), 351.0 / 502.0);
    close(Some(p.posterior_mean), 81.0 / 202.0);
    assert!(c.p_best > 0.99, "{}", c.p_best);
    assert!((p.p_best + c.p_best - 1.0).abs() < 1e-12);
    // Fixed seed: the same state gives the same P(best).
    let again = experiment_report::build(&opts).expect("report");
    assert_eq!(again.bandit, report.bandit);

    let opts = Options {
        bandit_state: Some(bandit_state(dir.path(), "exp-9")),
        ..opts
    };
    let err = experiment_report::build(&opts).expect_err("another experiment");
    let msg = format!("{err:#}");
    assert!(
        matches!(
            err.downcast_ref::<ReportError>(),
            Some(ReportError::BanditExperiment { .. })
        ),
        "{msg}"
    );
    assert!(msg.contains("\"exp-9\"") && msg.contains("\"exp-1\""), "{msg}");
}

fn run(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_registry"))
        .arg("experiment-report")
        .args(args)
        .output()
        .expect("run registry");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn the_binary_prints_the_tables_writes_json_and_names_a_missing_log() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = dir.path().join("log");
    write_log(&log);
    let state = bandit_state(dir.path(), "exp-1");
    let json = dir.path().join("report.json");
    let path = |p: &Path| p.to_str().expect("utf-8 path").to_owned();
    let (ok, out, err) = run(&[
        "--log",
        &path(&log),
        "--bandit-state",
        &path(&state),
        "--json",
        &path(&json),
        "--from",
        "2026-12-01",
    ]);
    assert!(ok, "{err}");
    assert!(out.contains("production") && out.contains("candidate"), "{out}");
    assert!(out.contains("Welch"), "{out}");
    let traffic = out
        .split("\n\n")
        .find(|s| s.starts_with("traffic"))
        .expect("traffic table");
    assert!(
        !traffic.contains("shadow"),
        "a shadow-only variant has its own table: {traffic}"
    );
    assert!(out.contains("\nshadow   16      15       0.933"), "{out}");
    assert!(out.contains("p_best"), "{out}");
    let written: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&json).expect("json")).expect("parse");
    assert_eq!(written["experiment"], "exp-1");
    assert_eq!(written["variants"][0]["variant"], "production");

    let missing = dir.path().join("no-such-log");
    let (ok, _, err) = run(&["--log", &path(&missing)]);
    assert!(!ok);
    assert!(err.contains(&path(&missing)), "{err}");
    let (ok, _, err) = run(&["--log", &path(&log), "--from", "last tuesday"]);
    assert!(!ok);
    assert!(err.contains("last tuesday"), "{err}");
}

#[test]
fn a_log_file_of_another_format_version_is_an_error_naming_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    write_log(dir.path());
    let files = log_files(dir.path(), Default::default()).expect("files");
    let text = std::fs::read_to_string(&files[1]).expect("read");
    let text = text.replacen("\"version\":1,", "\"version\":99,", 1);
    std::fs::write(&files[1], text).expect("write");
    let err = experiment_report::build(&options(dir.path())).expect_err("version 99");
    let msg = format!("{err:#}");
    assert!(msg.contains(&files[1].display().to_string()), "{msg}");
    assert!(msg.contains("version 99"), "{msg}");
}
