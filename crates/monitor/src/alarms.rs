//! The alarm file (`config/alarms.yaml`) and its evaluation on the
//! metrics of the monitored windows.
//!
//! The file is read strictly (an unknown key is an error) and checked once
//! into an [`AlarmFile`], the only form the rest of the monitor sees; every
//! error names the key path (`alarms[2].above`). Evaluation is pure: it
//! turns the rules and each window's flat table of metrics into the
//! [`Finding`]s that fired and the rules that could not be evaluated (a
//! window without labels has no `realised.*` metric: that is reported, not
//! an error). What the findings lead to is [`crate::actions`]' business.
//!
//! A threshold alarm fires on `value >= above` or `value <= below`: the
//! threshold itself fires, so `above: 0.5` fires on a drift share of
//! exactly one half.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use chrono::NaiveDate;
use serde::{Deserialize, Serialize};
use thiserror::Error;

mod evaluation;
pub use evaluation::{Evaluation, Finding, NotEvaluated, evaluate};

/// The alarm file format this build reads (its `version:` key).
pub const ALARM_FILE_VERSION: u32 = 1;

/// Why an alarm file was refused.
#[derive(Debug, Error)]
pub enum AlarmError {
    #[error("cannot read the alarm file {path}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("alarm file {path}")]
    File {
        path: PathBuf,
        #[source]
        source: Box<AlarmError>,
    },
    /// Not YAML, an unknown key, a value of the wrong type or an unknown
    /// enum value: serde_norway's message names the key path.
    #[error(transparent)]
    Yaml(#[from] serde_norway::Error),
    #[error("{key}: {reason}")]
    Invalid { key: String, reason: String },
}

fn invalid(key: impl Into<String>, reason: impl Into<String>) -> AlarmError {
    AlarmError::Invalid {
        key: key.into(),
        reason: reason.into(),
    }
}

/// The metrics of one monitored window, as the monitor stage computed them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WindowMetrics {
    /// The window's name, e.g. `2020-07`.
    pub window: String,
    pub first_day: NaiveDate,
    /// The last day the window covers (a retrain it asks for trains on
    /// data up to this day).
    pub last_day: NaiveDate,
    /// Flat metric names (`drift.share`, `psi.valor`,
    /// `challenger.candidate.realised.pr_auc`, …) and their values.
    pub metrics: BTreeMap<String, f64>,
}

/// How bad a firing is; actions are chosen by severity first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    Info,
    Warning,
    Critical,
}

impl Severity {
    pub fn name(self) -> &'static str {
        match self {
            Severity::Info => "info",
            Severity::Warning => "warning",
            Severity::Critical => "critical",
        }
    }
}

/// What a firing alarm asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    /// The report and a warning in the log.
    Notify,
    /// A retrain request up to the window's last day.
    Retrain,
    /// `production` back to its previous version.
    Rollback,
    /// `production` to the challenger's version.
    Promote,
}

impl Action {
    pub fn name(self) -> &'static str {
        match self {
            Action::Notify => "notify",
            Action::Retrain => "retrain",
            Action::Rollback => "rollback",
            Action::Promote => "promote",
        }
    }
}

/// Which windows an alarm looks at.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WindowScope {
    /// Only the newest window of the run (the one with the latest last day).
    Latest,
    /// Every window of the run.
    Each,
}

/// The side of the threshold that fires.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Comparison {
    /// Fires on `value >= threshold`.
    Above,
    /// Fires on `value <= threshold`.
    Below,
}

impl Comparison {
    fn fires(self, value: f64, threshold: f64) -> bool {
        match self {
            Comparison::Above => value >= threshold,
            Comparison::Below => value <= threshold,
        }
    }

    fn symbol(self) -> &'static str {
        match self {
            Comparison::Above => ">=",
            Comparison::Below => "<=",
        }
    }
}

/// A metric name in which a `*` segment matches any one dot-separated
/// segment (`psi.*` matches `psi.valor`, not `psi` nor `psi.a.b`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct MetricPattern(String);

impl MetricPattern {
    /// Checks a pattern: non-empty segments, each `*` or a name without `*`
    /// or spaces.
    fn parse(key: &str, text: &str) -> Result<MetricPattern, AlarmError> {
        for segment in text.split('.') {
            if segment.is_empty() {
                return Err(invalid(key, format!("{text:?} has an empty segment")));
            }
            if segment != "*" && segment.contains('*') {
                return Err(invalid(
                    key,
                    format!("{text:?}: `*` stands for a whole segment (`psi.*`), not part of one"),
                ));
            }
            if segment.chars().any(char::is_whitespace) {
                return Err(invalid(key, format!("{text:?} contains a space")));
            }
        }
        Ok(MetricPattern(text.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn is_glob(&self) -> bool {
        self.0.split('.').any(|s| s == "*")
    }

    /// Whether the metric `name` matches.
    pub fn matches(&self, name: &str) -> bool {
        let mut names = name.split('.');
        let mut patterns = self.0.split('.');
        loop {
            match (patterns.next(), names.next()) {
                (None, None) => return true,
                (Some(p), Some(n)) if !n.is_empty() && (p == "*" || p == n) => {}
                _ => return false,
            }
        }
    }
}

/// What an alarm tests.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Rule {
    /// The metric (or each metric the pattern matches) against a threshold.
    Threshold {
        metric: MetricPattern,
        comparison: Comparison,
        threshold: f64,
    },
    /// `challenger.<challenger>.<metric>` against `<metric>` (production's):
    /// fires when the challenger is better by at least `min_gain`.
    Challenger {
        challenger: String,
        metric: String,
        greater_is_better: bool,
        min_gain: f64,
    },
}

/// One checked alarm.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Alarm {
    pub name: String,
    pub rule: Rule,
    pub window: WindowScope,
    pub severity: Severity,
    pub action: Action,
    pub description: Option<String>,
}

/// The checked alarm file.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AlarmFile {
    /// An alarm that acted does not act again within this many days, on
    /// any window (`None`: only the same window is never acted on twice).
    pub cooldown_days: Option<u32>,
    /// In file order, which breaks ties between actions of equal severity.
    pub alarms: Vec<Alarm>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    version: u32,
    #[serde(default)]
    cooldown_days: Option<u32>,
    alarms: Vec<RawAlarm>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAlarm {
    name: String,
    #[serde(default)]
    metric: Option<String>,
    #[serde(default)]
    above: Option<f64>,
    #[serde(default)]
    below: Option<f64>,
    #[serde(default)]
    window: Option<WindowScope>,
    severity: Severity,
    action: Action,
    #[serde(default)]
    description: Option<String>,
    #[serde(default)]
    challenger: Option<String>,
    #[serde(default)]
    greater_is_better: Option<bool>,
    #[serde(default)]
    min_gain: Option<f64>,
}

impl AlarmFile {
    /// Reads and checks an alarm file; errors name the file and the key.
    pub fn read(path: &Path) -> Result<AlarmFile, AlarmError> {
        let text = std::fs::read_to_string(path).map_err(|source| AlarmError::Io {
            path: path.to_owned(),
            source,
        })?;
        AlarmFile::parse(&text).map_err(|source| AlarmError::File {
            path: path.to_owned(),
            source: Box::new(source),
        })
    }

    /// Parses and checks an alarm file's text.
    pub fn parse(text: &str) -> Result<AlarmFile, AlarmError> {
        let raw: RawFile = serde_norway::from_str(text)?;
        raw.check()
    }

    /// The alarm named `name`.
    pub fn alarm(&self, name: &str) -> Option<&Alarm> {
        self.alarms.iter().find(|a| a.name == name)
    }
}

impl RawFile {
    fn check(self) -> Result<AlarmFile, AlarmError> {
        if self.version != ALARM_FILE_VERSION {
            return Err(invalid(
                "version",
                format!(
                    "alarm file version {}, this build reads version {ALARM_FILE_VERSION}",
                    self.version
                ),
            ));
        }
        if self.cooldown_days == Some(0) {
            return Err(invalid(
                "cooldown_days",
                "0 days is no cool-down: leave the key out instead",
            ));
        }
        let mut alarms: Vec<Alarm> = Vec::with_capacity(self.alarms.len());
        for (i, raw) in self.alarms.into_iter().enumerate() {
            let alarm = raw.check(&format!("alarms[{i}]"))?;
            if alarms.iter().any(|a| a.name == alarm.name) {
                return Err(invalid(
                    format!("alarms[{i}].name"),
                    format!("`{}` is named twice", alarm.name),
                ));
            }
            alarms.push(alarm);
        }
        Ok(AlarmFile {
            cooldown_days: self.cooldown_days,
            alarms,
        })
    }
}

impl RawAlarm {
    fn check(self, at: &str) -> Result<Alarm, AlarmError> {
        let key = |k: &str| format!("{at}.{k}");
        let name_ok = !self.name.is_empty()
            && self.name.len() <= 64
            && self
                .name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
        if !name_ok {
            return Err(invalid(
                key("name"),
                format!("{:?}: 1 to 64 letters, digits, `-`, `_` or `.`", self.name),
            ));
        }
        let metric = self.metric.ok_or_else(|| invalid(key("metric"), "required"))?;
        let rule = if self.action == Action::Promote {
            for (given, k) in [(self.above.is_some(), "above"), (self.below.is_some(), "below")] {
                if given {
                    return Err(invalid(
                        key(k),
                        "a promote alarm compares the challenger with production: give `min_gain`",
                    ));
                }
            }
            let challenger = self
                .challenger
                .ok_or_else(|| invalid(key("challenger"), "required by action promote"))?;
            let challenger_ok = !challenger.is_empty()
                && challenger
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_'));
            if !challenger_ok {
                return Err(invalid(
                    key("challenger"),
                    format!("{challenger:?}: name a registry alias or version"),
                ));
            }
            let pattern = MetricPattern::parse(&key("metric"), &metric)?;
            if pattern.is_glob() {
                return Err(invalid(
                    key("metric"),
                    format!("{metric:?}: a promote alarm compares one metric, without `*`"),
                ));
            }
            let min_gain = self
                .min_gain
                .ok_or_else(|| invalid(key("min_gain"), "required by action promote"))?;
            if !(min_gain.is_finite() && min_gain >= 0.0) {
                return Err(invalid(
                    key("min_gain"),
                    format!("{min_gain} is not a number >= 0"),
                ));
            }
            Rule::Challenger {
                challenger,
                metric,
                greater_is_better: self.greater_is_better.unwrap_or(true),
                min_gain,
            }
        } else {
            for (given, k) in [
                (self.challenger.is_some(), "challenger"),
                (self.min_gain.is_some(), "min_gain"),
                (self.greater_is_better.is_some(), "greater_is_better"),
            ] {
                if given {
                    return Err(invalid(key(k), "only a setting of action promote"));
                }
            }
            let (comparison, threshold, k) = match (self.above, self.below) {
                (Some(t), None) => (Comparison::Above, t, "above"),
                (None, Some(t)) => (Comparison::Below, t, "below"),
                (Some(_), Some(_)) => {
                    return Err(invalid(key("below"), "give `above` or `below`, not both"));
                }
                (None, None) => {
                    return Err(invalid(key("above"), "give `above` or `below` (a number)"));
                }
            };
            if !threshold.is_finite() {
                return Err(invalid(key(k), format!("{threshold} is not a finite number")));
            }
            Rule::Threshold {
                metric: MetricPattern::parse(&key("metric"), &metric)?,
                comparison,
                threshold,
            }
        };
        Ok(Alarm {
            name: self.name,
            rule,
            window: self.window.unwrap_or(WindowScope::Latest),
            severity: self.severity,
            action: self.action,
            description: self.description.filter(|d| !d.trim().is_empty()),
        })
    }
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;

    const SHIPPED: &str = include_str!("../../../config/alarms.yaml");

    pub(crate) fn day(y: i32, m: u32, d: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, d).expect("a valid date")
    }

    pub(crate) fn window(name: &str, month: u32, metrics: &[(&str, f64)]) -> WindowMetrics {
        WindowMetrics {
            window: name.into(),
            first_day: day(2020, month, 1),
            last_day: day(2020, month, 28),
            metrics: metrics.iter().map(|(k, v)| ((*k).to_owned(), *v)).collect(),
        }
    }

    pub(crate) fn parse(text: &str) -> AlarmFile {
        AlarmFile::parse(text).expect("a valid alarm file")
    }

    pub(crate) fn parse_err(text: &str) -> String {
        AlarmFile::parse(text)
            .expect_err("an invalid alarm file")
            .to_string()
    }

    const HEADER: &str = "version: 1\nalarms:\n";

    /// An alarm file of `HEADER` and the alarms.
    pub(crate) fn file(alarms: &str) -> String {
        format!("{HEADER}{alarms}")
    }

    #[test]
    fn the_shipped_file_checks() {
        let f = parse(SHIPPED);
        let names: Vec<&str> = f.alarms.iter().map(|a| a.name.as_str()).collect();
        for expected in [
            "feature_drift_share",
            "feature_psi",
            "previous_version_better",
            "prediction_psi",
            "estimated_f1_out_of_band",
            "pr_auc_drop",
            "calibration",
        ] {
            assert!(names.contains(&expected), "{expected} missing from {names:?}");
        }
        let drift = f.alarm("feature_drift_share").expect("feature_drift_share");
        assert_eq!(drift.action, Action::Retrain);
        assert_eq!(drift.severity, Severity::Critical);
        assert_eq!(
            f.alarm("pr_auc_drop").expect("pr_auc_drop").action,
            Action::Retrain
        );
        assert_eq!(
            f.alarm("previous_version_better")
                .expect("previous_version_better")
                .action,
            Action::Rollback
        );
        // The commented-out promote example is valid once uncommented.
        let example: String = SHIPPED
            .lines()
            .skip_while(|l| !l.contains("name: promote_candidate"))
            .take_while(|l| l.starts_with("  #"))
            .map(|l| format!("{}\n", l.replacen("  # ", "  ", 1)))
            .collect();
        assert!(example.contains("challenger"), "{example}");
        let promote = parse(&file(&example));
        assert!(matches!(promote.alarms[0].rule, Rule::Challenger { .. }));
    }

    #[test]
    fn a_valid_file_parses_into_its_rules() {
        let f = parse(
            "version: 1\ncooldown_days: 7\nalarms:\n\
             - name: psi\n  metric: psi.*\n  above: 0.25\n  window: each\n  severity: warning\n  action: notify\n  description: per feature\n\
             - name: f1\n  metric: estimated.f1\n  below: 0.4\n  severity: info\n  action: notify\n\
             - name: up\n  metric: realised.ece\n  challenger: candidate\n  min_gain: 0.01\n  greater_is_better: false\n  severity: critical\n  action: promote\n",
        );
        assert_eq!(f.cooldown_days, Some(7));
        assert_eq!(f.alarms.len(), 3);
        assert_eq!(
            f.alarms[0].rule,
            Rule::Threshold {
                metric: MetricPattern("psi.*".into()),
                comparison: Comparison::Above,
                threshold: 0.25
            }
        );
        assert_eq!(f.alarms[0].window, WindowScope::Each);
        assert_eq!(f.alarms[0].description.as_deref(), Some("per feature"));
        assert_eq!(f.alarms[1].window, WindowScope::Latest, "the default scope");
        assert_eq!(
            f.alarms[2].rule,
            Rule::Challenger {
                challenger: "candidate".into(),
                metric: "realised.ece".into(),
                greater_is_better: false,
                min_gain: 0.01
            }
        );
    }

    #[test]
    fn every_error_names_its_key() {
        let ok = "- name: a\n  metric: drift.share\n  above: 0.5\n  severity: info\n  action: notify\n";
        let cases: Vec<(String, &str)> = vec![
            ("version: 2\nalarms: []\n".into(), "version"),
            ("version: 1\nalarms: []\ncooldown: 3\n".into(), "cooldown"),
            (
                "version: 1\ncooldown_days: 0\nalarms: []\n".into(),
                "cooldown_days",
            ),
            (file(&format!("{ok}{ok}")), "alarms[1].name"),
            (
                file(&format!(
                    "{ok}- name: b\n  metric: x\n  above: 1\n  below: 0\n  severity: info\n  action: notify\n"
                )),
                "alarms[1].below",
            ),
            (
                file("- name: b\n  metric: x\n  severity: info\n  action: notify\n"),
                "alarms[0].above",
            ),
            (
                file(&format!(
                    "{ok}{ok}{}",
                    ok.replace("above: 0.5", "above: high")
                        .replace("name: a", "name: c")
                )),
                "alarms[2].above",
            ),
            (
                file(&ok.replace("severity: info", "severity: fatal")),
                "alarms[0].severity",
            ),
            (
                file(&ok.replace("action: notify", "action: page")),
                "alarms[0].action",
            ),
            (file(&format!("{ok}  window: all\n")), "alarms[0].window"),
            (file(&format!("{ok}  treshold: 1\n")), "alarms[0]"),
            (
                file(
                    "- name: p\n  metric: realised.pr_auc\n  min_gain: 0.01\n  severity: info\n  action: promote\n",
                ),
                "alarms[0].challenger",
            ),
            (
                file(
                    "- name: p\n  metric: realised.pr_auc\n  challenger: candidate\n  severity: info\n  action: promote\n",
                ),
                "alarms[0].min_gain",
            ),
            (
                file(
                    "- name: p\n  metric: realised.pr_auc\n  challenger: candidate\n  min_gain: 0.1\n  above: 1\n  severity: info\n  action: promote\n",
                ),
                "alarms[0].above",
            ),
            (
                file(
                    "- name: p\n  metric: psi.*\n  challenger: candidate\n  min_gain: 0.1\n  severity: info\n  action: promote\n",
                ),
                "alarms[0].metric",
            ),
            (
                file(&format!("{ok}  challenger: candidate\n")),
                "alarms[0].challenger",
            ),
            (
                file(&ok.replace("metric: drift.share", "metric: psi.va*")),
                "alarms[0].metric",
            ),
            (
                file(&ok.replace("metric: drift.share", "metric: psi..x")),
                "alarms[0].metric",
            ),
            (
                file(&ok.replace("  metric: drift.share\n", "")),
                "alarms[0].metric",
            ),
            (file(&ok.replace("name: a", "name: a b")), "alarms[0].name"),
        ];
        for (text, key) in cases {
            let err = parse_err(&text);
            assert!(err.contains(key), "expected {key:?} in {err:?} for\n{text}");
        }
    }

    #[test]
    fn the_file_error_names_the_file() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("alarms.yaml");
        std::fs::write(&path, "version: 3\nalarms: []\n").expect("write");
        let err = AlarmFile::read(&path).expect_err("version 3");
        let chain = format!(
            "{err}: {}",
            std::error::Error::source(&err)
                .map(ToString::to_string)
                .unwrap_or_default()
        );
        assert!(
            chain.contains("alarms.yaml") && chain.contains("version 3"),
            "{chain}"
        );
        assert!(AlarmFile::read(&dir.path().join("missing.yaml")).is_err());
    }

    #[test]
    fn a_star_matches_one_whole_segment() {
        let p = MetricPattern::parse("k", "psi.*").expect("pattern");
        assert!(p.matches("psi.valor"));
        assert!(!p.matches("psi"));
        assert!(!p.matches("psi.valor.x"));
        assert!(!p.matches("drift.valor"));
        assert!(!p.matches("psi."));
        let q = MetricPattern::parse("k", "challenger.*.realised.pr_auc").expect("pattern");
        assert!(q.matches("challenger.candidate.realised.pr_auc"));
        assert!(!q.matches("challenger.candidate.realised.f1"));
        let exact = MetricPattern::parse("k", "drift.share").expect("pattern");
        assert!(exact.matches("drift.share") && !exact.matches("drift.shares"));
        assert!(!exact.is_glob() && p.is_glob());
    }
}
