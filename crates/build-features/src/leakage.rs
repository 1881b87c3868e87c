//! Leakage check: which candidate features give the label away, and which
//! are only suspiciously predictive.
//!
//! A leak is a matter of lineage, not of strength. A feature that reads the
//! current row's label inputs (its [`FeatureKind`] in core says so) lets a
//! model learn the target rule: it is a **leak** and fails the stage when
//! it is in the feature set. No feature definition reads a later row: every
//! history feature is computed from strictly earlier purchases by
//! `revspend_core::features::compute`, which the point-in-time tests guard.
//!
//! Every candidate is also scored alone against the target on the train
//! split (ROC-AUC of its raw values, taken as max(AUC, 1 − AUC) so a feature
//! that separates "backwards" counts too). A feature of clean lineage above
//! `max_single_feature_auc` is **suspicious**: a reason to look, not proof
//! of a leak (the utilisation at the customer's previous purchase is known
//! before authorisation and legitimately strong). It is a warning in the
//! report and the log until a person acknowledges it in params with a
//! reason. The report also scores the rule rebuilt from the candidates
//! (`available_pct < threshold` and a non-vital group): that is what a model
//! fed the leaky features learns, and why its AUC means nothing.

use revspend_core::features::{Feature, FeatureKind};

use crate::stats::{CHUNK, TrainColumns, ValueCounts};
use revspend_core::params::LeakageParams;
use revspend_core::target::TargetRule;
use serde::Serialize;

/// Fewest train rows of each class for the single-feature AUC to flag
/// anything: on a handful of rows any feature separates the target by chance.
pub const MIN_ROWS_PER_CLASS: usize = 30;

/// What the check concludes about one candidate feature.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// Reads the current row's label inputs: a leak by lineage. Fails the
    /// stage when in the feature set, unless params allow leaky features
    /// for a comparison run.
    Leak,
    /// Clean lineage, but alone separates the target better than
    /// `max_single_feature_auc`: a warning until acknowledged.
    Suspicious,
    /// Suspicious, and acknowledged in params with a reason.
    Acknowledged,
    /// Neither.
    Clean,
}

/// One candidate feature's leakage verdict.
#[derive(Debug, Clone, Serialize)]
pub struct LeakageEntry {
    pub feature: String,
    pub kind: FeatureKind,
    pub single_feature_auc: f64,
    /// Reads the current row's label inputs (its lineage).
    pub label_input: bool,
    pub verdict: Verdict,
    pub in_feature_set: bool,
    /// Why the verdict is not `clean`.
    pub reason: Option<String>,
    /// The reason params give for keeping it, when acknowledged.
    pub acknowledged: Option<String>,
}

/// `reports/leakage.json`.
#[derive(Debug, Clone, Serialize)]
pub struct LeakageReport {
    pub max_single_feature_auc: f64,
    pub allow_leaky_features: bool,
    /// ROC-AUC of the target rule rebuilt from candidate features.
    pub rule_reconstruction_auc: f64,
    /// Why the single-feature AUC flags nothing, when the train split is too
    /// small to judge (label inputs are leaks regardless).
    pub auc_check_skipped: Option<String>,
    pub entries: Vec<LeakageEntry>,
    /// Leaks by lineage the model would use: the stage fails on any unless
    /// leaky features are explicitly allowed.
    pub leaks_in_feature_set: Vec<String>,
    /// Suspicious features the model uses that nobody has acknowledged: a
    /// warning each.
    pub warnings: Vec<String>,
    /// Acknowledged features that are not suspicious on this train split
    /// (or not candidates any more): the acknowledgement is not needed.
    pub unused_acknowledgements: Vec<String>,
}

impl LeakageReport {
    fn entry(&self, name: &str) -> Option<&LeakageEntry> {
        self.entries.iter().find(|e| e.feature == name)
    }

    /// The message for the leaks in the feature set: what each reads and
    /// what each way out costs.
    pub fn leak_message(&self) -> Option<String> {
        if self.leaks_in_feature_set.is_empty() {
            return None;
        }
        Some(format!(
            "{} read(s) the current row's label inputs (limite_disp, limite_total: what the target rule itself \
             reads), so a model fed them learns the rule (rebuilt from the candidates it scores ROC-AUC {:.4}), \
             not revenge spending, and cannot be used before the purchase is authorised. Remove them from \
             build_features.features: the holdout score drops to what the model honestly knows. Setting \
             build_features.allow_leaky_features: true keeps them for a comparison run only.",
            self.leaks_in_feature_set.join(", "),
            self.rule_reconstruction_auc
        ))
    }

    /// One warning per suspicious, unacknowledged feature in the feature set.
    pub fn warning_messages(&self) -> Vec<String> {
        self.warnings
            .iter()
            .filter_map(|name| self.entry(name))
            .map(|e| {
                format!(
                    "{} alone reaches ROC-AUC {:.4} on the train split (above \
                     build_features.leakage.max_single_feature_auc {}), but its lineage is clean ({:?}: known \
                     before the purchase is authorised), so this is not a proven leak: look at it. If it is \
                     legitimate, acknowledge it with a reason under build_features.leakage.acknowledged to \
                     silence this warning; removing it from build_features.features costs the model its signal.",
                    e.feature, e.single_feature_auc, self.max_single_feature_auc, e.kind
                )
            })
            .collect()
    }
}

/// Scores every candidate. `columns[f.index()]` holds feature `f` over the
/// train rows, `counts[f.index()]` its value counts, `y` their targets.
pub fn check(
    columns: &dyn TrainColumns,
    counts: &[ValueCounts],
    y: &[bool],
    feature_set: &[Feature],
    rule: &TargetRule,
    params: &LeakageParams,
    allow_leaky_features: bool,
) -> LeakageReport {
    let positives = y.iter().filter(|v| **v).count();
    let negatives = y.len() - positives;
    let auc_check_skipped = (positives.min(negatives) < MIN_ROWS_PER_CLASS).then(|| {
        format!(
            "the train split has {positives} positive and {negatives} negative rows; \
             at least {MIN_ROWS_PER_CLASS} of each are needed"
        )
    });
    let mut entries = Vec::with_capacity(Feature::ALL.len());
    for f in Feature::ALL {
        let auc = counts[f.index()].roc_auc();
        let auc = auc.max(1.0 - auc);
        let label_input = f.is_label_input();
        let strong = auc_check_skipped.is_none() && auc > params.max_single_feature_auc;
        let acknowledged = params.acknowledged(*f).map(str::to_owned);
        let (verdict, reason) = if label_input {
            (
                Verdict::Leak,
                Some("reads the current row's label inputs (lineage)".to_owned()),
            )
        } else if strong {
            let reason = Some(format!(
                "alone reaches ROC-AUC {auc:.4} > {}",
                params.max_single_feature_auc
            ));
            if acknowledged.is_some() {
                (Verdict::Acknowledged, reason)
            } else {
                (Verdict::Suspicious, reason)
            }
        } else {
            (Verdict::Clean, None)
        };
        entries.push(LeakageEntry {
            feature: f.name().to_owned(),
            kind: f.kind(),
            single_feature_auc: auc,
            label_input,
            verdict,
            in_feature_set: feature_set.contains(f),
            reason,
            acknowledged,
        });
    }
    let rows = columns.rows();
    let mut rebuilt: Vec<f64> = Vec::with_capacity(rows);
    let (mut pct, mut non_vital) = (Vec::new(), Vec::new());
    for start in (0..rows).step_by(CHUNK) {
        let range = start..(start + CHUNK).min(rows);
        pct.clear();
        non_vital.clear();
        columns.read(Feature::AvailablePct, range.clone(), &mut pct);
        columns.read(Feature::GroupNonVital, range, &mut non_vital);
        rebuilt.extend(
            pct.iter()
                .zip(&non_vital)
                .map(|(&pct, &nv)| f64::from(u8::from(rule.applies(pct, nv > 0.5)))),
        );
    }
    let in_set = |verdict: Verdict| -> Vec<String> {
        entries
            .iter()
            .filter(|e| e.verdict == verdict && e.in_feature_set)
            .map(|e| e.feature.clone())
            .collect()
    };
    let leaks_in_feature_set = in_set(Verdict::Leak);
    let warnings = in_set(Verdict::Suspicious);
    let unused_acknowledgements = params
        .acknowledged
        .iter()
        .filter(|a| {
            !entries
                .iter()
                .any(|e| e.feature == a.feature && e.verdict == Verdict::Acknowledged && e.in_feature_set)
        })
        .map(|a| a.feature.clone())
        .collect();
    LeakageReport {
        max_single_feature_auc: params.max_single_feature_auc,
        allow_leaky_features,
        rule_reconstruction_auc: ValueCounts::new(&rebuilt, y).roc_auc(),
        auc_check_skipped,
        entries,
        leaks_in_feature_set,
        warnings,
        unused_acknowledgements,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    #[allow(clippy::needless_range_loop)] // one row index fills several columns
    fn a_leak_is_told_apart_from_a_strong_feature_by_lineage_issue_12() {
        let n = 200;
        let mut columns = vec![vec![0.0; n]; Feature::ALL.len()];
        let y: Vec<bool> = (0..n).map(|i| i % 4 == 0).collect();
        for i in 0..n {
            // available_pct low exactly on positives, group always non-vital.
            columns[Feature::AvailablePct.index()][i] = if y[i] { 5.0 } else { 60.0 };
            columns[Feature::GroupNonVital.index()][i] = 1.0;
            // A perfect separator of clean lineage (history).
            columns[Feature::Spend7d.index()][i] = if y[i] { 0.0 } else { 10.0 };
            columns[Feature::Valor.index()][i] = (i % 7) as f64;
        }
        let rule = TargetRule {
            threshold_pct: 20.0,
            vital_groups: vec![],
        };
        let mut params = LeakageParams {
            max_single_feature_auc: 0.95,
            acknowledged: vec![],
        };
        let counts = crate::stats::value_counts(&columns, &y);
        let set = [Feature::Valor, Feature::Spend7d, Feature::AvailablePct];
        let report = check(&columns, &counts, &y, &set, &rule, &params, false);
        let entry = |r: &LeakageReport, name: &str| r.entry(name).expect("entry").clone();
        assert_eq!(entry(&report, "available_pct").verdict, Verdict::Leak);
        assert_eq!(entry(&report, "limite_disp").verdict, Verdict::Leak);
        assert_eq!(entry(&report, "spend_7d").verdict, Verdict::Suspicious);
        assert!((entry(&report, "spend_7d").single_feature_auc - 1.0).abs() < 1e-12);
        assert_eq!(entry(&report, "valor").verdict, Verdict::Clean);
        assert_eq!(report.leaks_in_feature_set, vec!["available_pct".to_owned()]);
        assert_eq!(report.warnings, vec!["spend_7d".to_owned()]);
        let leak = report.leak_message().expect("a leak");
        assert!(
            leak.contains("available_pct") && leak.contains("label inputs"),
            "{leak}"
        );
        let warnings = report.warning_messages();
        assert!(warnings[0].contains("spend_7d") && warnings[0].contains("not a proven leak"));
        assert!((report.rule_reconstruction_auc - 1.0).abs() < 1e-12);
        assert_eq!(report.auc_check_skipped, None);

        // Acknowledged with a reason: no warning, the reason is in the report;
        // an acknowledgement of a feature that is not suspicious is reported.
        params.acknowledged = vec![
            revspend_core::params::Acknowledgement {
                feature: "spend_7d".into(),
                reason: "known before authorisation".into(),
            },
            revspend_core::params::Acknowledgement {
                feature: "valor".into(),
                reason: "looked at it".into(),
            },
        ];
        let report = check(&columns, &counts, &y, &set, &rule, &params, false);
        assert_eq!(entry(&report, "spend_7d").verdict, Verdict::Acknowledged);
        assert_eq!(
            entry(&report, "spend_7d").acknowledged.as_deref(),
            Some("known before authorisation")
        );
        assert!(report.warnings.is_empty());
        assert_eq!(report.unused_acknowledgements, vec!["valor".to_owned()]);

        // Too few rows to judge strength: only the lineage leaks remain.
        let small: Vec<Vec<f64>> = columns.iter().map(|c| c[..20].to_vec()).collect();
        let counts = crate::stats::value_counts(&small, &y[..20]);
        let report = check(&small, &counts, &y[..20], &set, &rule, &params, false);
        assert!(report.auc_check_skipped.is_some());
        assert!(report.warnings.is_empty());
        assert!(
            report
                .entries
                .iter()
                .filter(|e| e.verdict != Verdict::Clean)
                .all(|e| e.label_input)
        );
    }
}
