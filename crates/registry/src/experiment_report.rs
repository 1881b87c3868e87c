//! `registry experiment-report`: how an online experiment is going, per
//! variant, from the server's prediction log (and, when given, the bandit's
//! state file). It reads the log through
//! [`revspend_core::artifact::prediction_log::read_records`] and writes
//! nothing but the optional JSON copy of the report.
//!
//! The phases: [`read_log`] keeps the experiment's records in the window,
//! [`build`] turns them into an [`ExperimentReport`] (traffic, outcomes,
//! rewards, shadows, significance, allocation over time, bandit), [`render`]
//! prints it as tables.
//!
//! The significance test is Welch's unequal-variance two-sample t-test on
//! per-feedback rewards, two-sided at α = 0.05, each variant against the
//! control (the first variant listed that has feedback). It is a
//! fixed-sample test: looking at a running experiment again and again and
//! stopping when it says "significant" makes a false positive far likelier
//! than 5 %; no sequential correction is applied.

mod bandit;
mod render;
mod stats;

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use chrono::{DateTime, NaiveDate, Utc};
use revspend_core::artifact::prediction_log::{Record, Window, read_records};
use serde::Serialize;
use thiserror::Error;

pub use bandit::{ArmReport, BanditReport, P_BEST_DRAWS, P_BEST_SEED, p_best};
pub use render::{render, warnings};
pub use stats::{Interval, Moments, Welch, mean_interval, moments, welch};

/// The significance level of the test.
pub const ALPHA: f64 = 0.05;

/// Number of slices of the window's predictions in the allocation section.
pub const ALLOCATION_SLICES: usize = 10;

/// What the test is, as the report states it.
pub const TEST_NAME: &str = "Welch's unequal-variance two-sample t-test on per-feedback rewards, two-sided";

/// The caveat printed beside every significance table.
pub const PEEKING_CAVEAT: &str = "a fixed-sample test: looking repeatedly at a running experiment \
     and stopping at the first 'significant' inflates the false-positive rate above alpha \
     (no sequential correction is applied)";

/// The report's own refusals (I/O errors carry their path as context).
#[derive(Debug, Error)]
pub enum ReportError {
    #[error("{0}: the prediction log directory is not a directory")]
    NotADirectory(PathBuf),
    #[error(
        "no prediction records in {dir} within the window: no experiment to report on \
         (name one with --experiment)"
    )]
    NoPredictions { dir: PathBuf },
    #[error(
        "{path}: the bandit state is of experiment {state:?}, the report is of experiment \
         {report:?}"
    )]
    BanditExperiment {
        path: String,
        state: String,
        report: String,
    },
    #[error("{path}: arm {variant:?} has no Beta posterior (alpha {alpha}, beta {beta})")]
    BadPosterior {
        path: String,
        variant: String,
        alpha: f64,
        beta: f64,
    },
    #[error("{0:?}: not an RFC 3339 time nor a YYYY-MM-DD date")]
    Time(String),
}

/// What to report on.
#[derive(Debug, Clone, Default)]
pub struct Options {
    pub log_dir: PathBuf,
    /// None: the experiment of the most recent prediction record.
    pub experiment: Option<String>,
    /// Records at or after this time (none: from the first).
    pub from: Option<DateTime<Utc>>,
    /// Records before this time (none: to the last).
    pub until: Option<DateTime<Utc>>,
    pub bandit_state: Option<PathBuf>,
}

/// An RFC 3339 time, or a `YYYY-MM-DD` date meaning its 00:00 UTC.
pub fn parse_time(text: &str) -> Result<DateTime<Utc>, ReportError> {
    if let Ok(t) = DateTime::parse_from_rfc3339(text) {
        return Ok(t.with_timezone(&Utc));
    }
    NaiveDate::parse_from_str(text, "%Y-%m-%d")
        .ok()
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .map(|t| t.and_utc())
        .ok_or_else(|| ReportError::Time(text.to_owned()))
}

/// The whole report, serialised as the `--json` file.
#[derive(Debug, Clone, Serialize)]
pub struct ExperimentReport {
    pub experiment: String,
    /// `given` (--experiment) or `latest prediction`.
    pub experiment_from: String,
    pub log_dir: String,
    pub from: Option<String>,
    pub until: Option<String>,
    pub reading: Reading,
    /// In the order the variants first served a prediction (the incumbent
    /// usually served first, so it is the control), then shadow and
    /// feedback-only variants in the order they first appear.
    pub variants: Vec<VariantReport>,
    pub significance: Significance,
    pub allocation: Vec<AllocationSlice>,
    pub bandit: Option<BanditReport>,
}

/// What reading the log found besides the experiment's records.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Reading {
    pub files: usize,
    pub records: u64,
    /// Lines that are not a record, and the first few as `file:line: reason`.
    pub bad_lines: u64,
    pub bad_examples: Vec<String>,
    /// Last lines still being written by a running server: not read.
    pub unfinished_lines: u64,
    /// Records whose `time` is not RFC 3339: not used (the window and the
    /// allocation need it).
    pub bad_times: u64,
    /// Records outside [from, until).
    pub outside_window: u64,
    /// Records of other experiments in the window, ignored, by experiment.
    pub other_experiments: BTreeMap<String, u64>,
}

impl Reading {
    /// Records of other experiments, all told.
    pub fn other_records(&self) -> u64 {
        self.other_experiments.values().sum()
    }
}

/// One variant.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct VariantReport {
    pub variant: String,
    pub requests: u64,
    /// Of all the experiment's requests in the window.
    pub request_share: Option<f64>,
    /// Share of its predictions flagged as revenge spending.
    pub decision_rate: Option<f64>,
    pub mean_probability: Option<f64>,
    pub cold_start_share: Option<f64>,
    pub feedback: Outcomes,
    pub reward: Reward,
    /// Present when the variant scored rows as a shadow.
    pub shadow: Option<Shadow>,
}

/// The feedback of a variant's predictions against their decisions.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Outcomes {
    pub count: u64,
    /// Of which the client said whether it was revenge spending.
    pub with_outcome: u64,
    pub true_positives: u64,
    pub false_positives: u64,
    pub false_negatives: u64,
    pub true_negatives: u64,
    /// TP / (TP + FP); none when nothing flagged had an outcome.
    pub precision: Option<f64>,
    /// TP / (TP + FN); none when no outcome was positive.
    pub recall: Option<f64>,
}

/// The variant's per-feedback rewards.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Reward {
    pub n: usize,
    pub mean: Option<f64>,
    /// Sample standard deviation (n − 1); none for n < 2.
    pub sd: Option<f64>,
    /// 95 % Student t interval of the mean; none for n < 2.
    pub ci95: Option<Interval>,
}

/// A shadow variant's scores against the predictions the clients got.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Shadow {
    pub scored: u64,
    /// Scores whose prediction is in the window (the rest are not compared).
    pub matched: u64,
    /// Share of matched rows where the shadow's decision is the primary's.
    pub agreement: Option<f64>,
    /// Mean |shadow probability − primary probability| over matched rows.
    pub mean_abs_probability_diff: Option<f64>,
}

/// Each variant's mean reward against the control's.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Significance {
    pub test: String,
    pub alpha: f64,
    pub caveat: String,
    /// The first variant listed that has feedback; none without feedback.
    pub control: Option<String>,
    pub comparisons: Vec<Comparison>,
}

/// One variant against the control.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Comparison {
    pub variant: String,
    pub n: usize,
    pub control_n: usize,
    /// mean(variant) − mean(control).
    pub difference: Option<f64>,
    pub t: Option<f64>,
    /// Welch–Satterthwaite degrees of freedom.
    pub df: Option<f64>,
    /// Two-sided.
    pub p_value: Option<f64>,
    pub significant: Option<bool>,
    /// Why the test is undefined, when it is.
    pub note: Option<String>,
}

/// One tenth of the window's predictions, in time order.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AllocationSlice {
    /// 1-based.
    pub slice: usize,
    /// Times of its first and last prediction.
    pub first: String,
    pub last: String,
    pub requests: u64,
    /// Per variant that served predictions, in the report's order.
    pub shares: Vec<VariantShare>,
}

/// A variant's part of a slice.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct VariantShare {
    pub variant: String,
    pub requests: u64,
    pub share: f64,
}

/// A prediction, without its features.
#[derive(Debug, Clone)]
struct Served {
    time: DateTime<Utc>,
    id: String,
    variant: String,
    probability: f64,
    decision: bool,
    cold_start: bool,
}

#[derive(Debug, Clone)]
struct Scored {
    prediction_id: String,
    variant: String,
    probability: f64,
    decision: bool,
}

#[derive(Debug, Clone)]
struct Credited {
    variant: String,
    decision: bool,
    outcome: Option<bool>,
    reward: f64,
}

/// The experiment's records in the window, and what reading found.
#[derive(Debug, Default)]
struct Log {
    experiment: String,
    experiment_from: &'static str,
    predictions: Vec<Served>,
    shadows: Vec<Scored>,
    feedbacks: Vec<Credited>,
    /// Every variant in the order it first appears (predictions first).
    variants: Vec<String>,
    reading: Reading,
}

/// Reads the log in the window and keeps `experiment`'s records (default:
/// the most recent prediction's experiment).
fn read_log(opts: &Options) -> Result<Log> {
    let dir = &opts.log_dir;
    // The reader takes a missing directory as an empty log; a report on a
    // mistyped path must say so instead.
    let meta =
        std::fs::metadata(dir).with_context(|| format!("prediction log directory {}", dir.display()))?;
    if !meta.is_dir() {
        return Err(ReportError::NotADirectory(dir.clone()).into());
    }
    let window = Window {
        from: opts.from,
        // A record lands in the partition of the hour it was written in,
        // which can be the hour after its `time`: one hour more of files,
        // and each record is kept by its own time below.
        until: opts.until.map(|u| u + chrono::Duration::hours(1)),
        // A running server's open files too: the report is read mid-experiment.
        include_open: true,
    };
    let in_window = |t: DateTime<Utc>| opts.from.is_none_or(|f| t >= f) && opts.until.is_none_or(|u| t < u);
    let mut reading = Reading::default();
    // Every experiment's records, as (experiment, record), until we know
    // which experiment is reported.
    let mut predictions: Vec<(String, Served)> = Vec::new();
    let mut shadows: Vec<(String, Scored)> = Vec::new();
    let mut feedbacks: Vec<(String, Credited)> = Vec::new();
    let stats = read_records(dir, window, |record| {
        let time = match &record {
            Record::Prediction(p) => &p.time,
            Record::Shadow(s) => &s.time,
            Record::Feedback(f) => &f.time,
        };
        let Ok(time) = DateTime::parse_from_rfc3339(time).map(|t| t.with_timezone(&Utc)) else {
            reading.bad_times += 1;
            return;
        };
        if !in_window(time) {
            reading.outside_window += 1;
            return;
        }
        match record {
            Record::Prediction(p) => predictions.push((
                p.experiment,
                Served {
                    time,
                    id: p.prediction_id,
                    variant: p.variant,
                    probability: p.probability,
                    decision: p.decision,
                    cold_start: p.cold_start,
                },
            )),
            Record::Shadow(s) => shadows.push((
                s.experiment,
                Scored {
                    prediction_id: s.prediction_id,
                    variant: s.variant,
                    probability: s.probability,
                    decision: s.decision,
                },
            )),
            Record::Feedback(f) => feedbacks.push((
                f.experiment,
                Credited {
                    variant: f.variant,
                    decision: f.decision,
                    outcome: f.outcome,
                    reward: f.reward,
                },
            )),
        }
    })
    .with_context(|| format!("reading the prediction log {}", dir.display()))?;
    reading.files = stats.files;
    reading.records = stats.records;
    reading.bad_lines = stats.bad_lines;
    reading.bad_examples = stats.bad_examples;
    reading.unfinished_lines = stats.unfinished_lines;

    // Stable sort: records of the same millisecond keep the log's order.
    predictions.sort_by_key(|(_, p)| p.time);
    let (experiment, experiment_from) = match &opts.experiment {
        Some(e) => (e.clone(), "given"),
        None => match predictions.last() {
            Some((e, _)) => (e.clone(), "latest prediction"),
            None => return Err(ReportError::NoPredictions { dir: dir.clone() }.into()),
        },
    };
    let mut log = Log {
        experiment,
        experiment_from,
        ..Log::default()
    };
    let keep = |e: String, reading: &mut Reading| -> bool {
        if e == log.experiment {
            return true;
        }
        *reading.other_experiments.entry(e).or_default() += 1;
        false
    };
    let predictions: Vec<Served> = predictions
        .into_iter()
        .filter_map(|(e, p)| keep(e, &mut reading).then_some(p))
        .collect();
    let shadows: Vec<Scored> = shadows
        .into_iter()
        .filter_map(|(e, s)| keep(e, &mut reading).then_some(s))
        .collect();
    let feedbacks: Vec<Credited> = feedbacks
        .into_iter()
        .filter_map(|(e, f)| keep(e, &mut reading).then_some(f))
        .collect();
    let names = predictions
        .iter()
        .map(|p| &p.variant)
        .chain(shadows.iter().map(|s| &s.variant))
        .chain(feedbacks.iter().map(|f| &f.variant));
    for name in names {
        if !log.variants.contains(name) {
            log.variants.push(name.clone());
        }
    }
    log.predictions = predictions;
    log.shadows = shadows;
    log.feedbacks = feedbacks;
    log.reading = reading;
    Ok(log)
}

/// `part / whole`, none for an empty whole.
fn ratio(part: f64, whole: f64) -> Option<f64> {
    (whole > 0.0).then(|| part / whole)
}

fn mean(xs: impl Iterator<Item = f64>) -> Option<f64> {
    let (n, sum) = xs.fold((0usize, 0.0), |(n, s), x| (n + 1, s + x));
    ratio(sum, n as f64)
}

fn traffic(variant: &str, log: &Log) -> VariantReport {
    let mine: Vec<&Served> = log.predictions.iter().filter(|p| p.variant == variant).collect();
    let n = mine.len() as f64;
    let count = |f: fn(&Served) -> bool| mine.iter().filter(|p| f(p)).count() as f64;
    VariantReport {
        variant: variant.to_owned(),
        requests: mine.len() as u64,
        request_share: ratio(n, log.predictions.len() as f64),
        decision_rate: ratio(count(|p| p.decision), n),
        mean_probability: mean(mine.iter().map(|p| p.probability)),
        cold_start_share: ratio(count(|p| p.cold_start), n),
        feedback: outcomes(variant, log),
        reward: reward(&rewards(variant, log)),
        shadow: shadow(variant, log),
    }
}

fn outcomes(variant: &str, log: &Log) -> Outcomes {
    let mut o = Outcomes::default();
    for f in log.feedbacks.iter().filter(|f| f.variant == variant) {
        o.count += 1;
        let Some(outcome) = f.outcome else { continue };
        o.with_outcome += 1;
        match (f.decision, outcome) {
            (true, true) => o.true_positives += 1,
            (true, false) => o.false_positives += 1,
            (false, true) => o.false_negatives += 1,
            (false, false) => o.true_negatives += 1,
        }
    }
    let tp = o.true_positives as f64;
    o.precision = ratio(tp, tp + o.false_positives as f64);
    o.recall = ratio(tp, tp + o.false_negatives as f64);
    o
}

fn rewards(variant: &str, log: &Log) -> Vec<f64> {
    log.feedbacks
        .iter()
        .filter(|f| f.variant == variant)
        .map(|f| f.reward)
        .collect()
}

fn reward(rewards: &[f64]) -> Reward {
    let Some(m) = moments(rewards) else {
        return Reward::default();
    };
    Reward {
        n: m.n,
        mean: Some(m.mean),
        sd: m.variance.map(f64::sqrt),
        ci95: mean_interval(&m, 0.95),
    }
}

fn shadow(variant: &str, log: &Log) -> Option<Shadow> {
    let mine: Vec<&Scored> = log.shadows.iter().filter(|s| s.variant == variant).collect();
    if mine.is_empty() {
        return None;
    }
    let primary: HashMap<&str, &Served> = log.predictions.iter().map(|p| (p.id.as_str(), p)).collect();
    let pairs: Vec<(&Scored, &Served)> = mine
        .iter()
        .filter_map(|s| Some((*s, *primary.get(s.prediction_id.as_str())?)))
        .collect();
    let n = pairs.len() as f64;
    Some(Shadow {
        scored: mine.len() as u64,
        matched: pairs.len() as u64,
        agreement: ratio(
            pairs.iter().filter(|(s, p)| s.decision == p.decision).count() as f64,
            n,
        ),
        mean_abs_probability_diff: mean(pairs.iter().map(|(s, p)| (s.probability - p.probability).abs())),
    })
}

fn significance(variants: &[VariantReport], log: &Log) -> Significance {
    let control = variants
        .iter()
        .find(|v| v.feedback.count > 0)
        .map(|v| v.variant.clone());
    let mut comparisons = Vec::new();
    if let Some(control) = &control {
        let a = rewards(control, log);
        let ma = moments(&a);
        for v in variants
            .iter()
            .filter(|v| &v.variant != control && v.feedback.count > 0)
        {
            let b = rewards(&v.variant, log);
            let result = match (&ma, moments(&b)) {
                (Some(ma), Some(mb)) => welch(ma, &mb),
                _ => Err("no feedback"),
            };
            comparisons.push(match result {
                Ok(w) => Comparison {
                    variant: v.variant.clone(),
                    n: b.len(),
                    control_n: a.len(),
                    difference: Some(w.difference),
                    t: Some(w.t),
                    df: Some(w.df),
                    p_value: Some(w.p_value),
                    significant: Some(w.p_value < ALPHA),
                    note: None,
                },
                Err(why) => Comparison {
                    variant: v.variant.clone(),
                    n: b.len(),
                    control_n: a.len(),
                    difference: ma.zip(moments(&b)).map(|(ma, mb)| mb.mean - ma.mean),
                    t: None,
                    df: None,
                    p_value: None,
                    significant: None,
                    note: Some(why.to_owned()),
                },
            });
        }
    }
    Significance {
        test: TEST_NAME.to_owned(),
        alpha: ALPHA,
        caveat: PEEKING_CAVEAT.to_owned(),
        control,
        comparisons,
    }
}

/// The predictions cut into [`ALLOCATION_SLICES`] runs of (nearly) equal
/// count in time order, each with every serving variant's share: a bandit
/// moving traffic shows as shares drifting from slice to slice. Fewer slices
/// when there are fewer predictions.
fn allocation(log: &Log, serving: &[String]) -> Vec<AllocationSlice> {
    let n = log.predictions.len();
    let slices = ALLOCATION_SLICES.min(n);
    (0..slices)
        .map(|k| {
            let part = &log.predictions[k * n / slices..(k + 1) * n / slices];
            let requests = part.len() as u64;
            let shares = serving
                .iter()
                .map(|v| {
                    let r = part.iter().filter(|p| &p.variant == v).count() as u64;
                    VariantShare {
                        variant: v.clone(),
                        requests: r,
                        share: r as f64 / requests as f64,
                    }
                })
                .collect();
            let stamp = |p: Option<&Served>| p.map(|p| stamp(p.time)).unwrap_or_default();
            AllocationSlice {
                slice: k + 1,
                first: stamp(part.first()),
                last: stamp(part.last()),
                requests,
                shares,
            }
        })
        .collect()
}

fn stamp(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// The report of the log (and bandit state) `opts` names.
pub fn build(opts: &Options) -> Result<ExperimentReport> {
    let log = read_log(opts)?;
    let variants: Vec<VariantReport> = log.variants.iter().map(|v| traffic(v, &log)).collect();
    let serving: Vec<String> = variants
        .iter()
        .filter(|v| v.requests > 0)
        .map(|v| v.variant.clone())
        .collect();
    let bandit = match &opts.bandit_state {
        Some(path) => {
            let state = revspend_core::artifact::read_bandit_state(path)
                .with_context(|| format!("reading the bandit state {}", path.display()))?;
            Some(bandit::bandit_report(
                &path.display().to_string(),
                &state,
                &log.experiment,
            )?)
        }
        None => None,
    };
    Ok(ExperimentReport {
        experiment: log.experiment.clone(),
        experiment_from: log.experiment_from.to_owned(),
        log_dir: opts.log_dir.display().to_string(),
        from: opts.from.map(stamp),
        until: opts.until.map(stamp),
        significance: significance(&variants, &log),
        allocation: allocation(&log, &serving),
        variants,
        bandit,
        reading: log.reading,
    })
}

/// The command: builds the report, writes the JSON copy when asked, and
/// returns the text and the warnings.
pub fn command(opts: &Options, json: Option<&Path>) -> Result<(String, Vec<String>)> {
    let report = build(opts)?;
    if let Some(path) = json {
        revspend_core::artifact::write_json(path, &report)
            .with_context(|| format!("writing the report {}", path.display()))?;
    }
    Ok((render(&report), warnings(&report)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_are_rfc3339_or_dates_at_midnight_utc() {
        let t = parse_time("2026-12-01").expect("date");
        assert_eq!(stamp(t), "2026-12-01T00:00:00.000Z");
        let t = parse_time("2026-12-01T14:05:00+02:00").expect("time");
        assert_eq!(stamp(t), "2026-12-01T12:05:00.000Z");
        assert!(matches!(parse_time("yesterday"), Err(ReportError::Time(_))));
    }
}
