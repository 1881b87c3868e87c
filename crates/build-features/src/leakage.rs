//! Leakage check: which candidate features give the label away.
//!
//! Every candidate feature is scored alone against the target on the train
//! split (ROC-AUC of its raw values, taken as max(AUC, 1 − AUC) so a feature
//! that separates "backwards" counts too), and marked when it is an input of
//! the target rule. The report also scores the rule rebuilt from the
//! candidates (`available_pct < threshold` and a non-vital group): that is
//! what a model fed the leaky features learns, and why its AUC means nothing.

use revspend_core::features::{Feature, FeatureKind};

use crate::stats::{CHUNK, TrainColumns, ValueCounts};
use revspend_core::params::LeakageParams;
use revspend_core::target::TargetRule;
use serde::Serialize;

/// Fewest train rows of each class for the single-feature AUC to flag
/// anything: on a handful of rows any feature separates the target by chance.
pub const MIN_ROWS_PER_CLASS: usize = 30;

/// One candidate feature's leakage verdict.
#[derive(Debug, Clone, Serialize)]
pub struct LeakageEntry {
    pub feature: String,
    pub kind: FeatureKind,
    pub single_feature_auc: f64,
    pub label_input: bool,
    pub flagged: bool,
    pub in_feature_set: bool,
    pub reason: Option<String>,
}

/// `reports/leakage.json`.
#[derive(Debug, Clone, Serialize)]
pub struct LeakageReport {
    pub max_single_feature_auc: f64,
    pub allow_leaky_features: bool,
    /// ROC-AUC of the target rule rebuilt from candidate features.
    pub rule_reconstruction_auc: f64,
    /// Why the single-feature AUC flags nothing, when the train split is too
    /// small to judge (label inputs are flagged regardless).
    pub auc_check_skipped: Option<String>,
    pub entries: Vec<LeakageEntry>,
    /// Flagged features the model would use; the stage fails on any unless
    /// leaky features are explicitly allowed.
    pub flagged_in_feature_set: Vec<String>,
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
        let reason = if label_input {
            Some("input of the target rule (same row)".to_owned())
        } else if auc_check_skipped.is_none() && auc > params.max_single_feature_auc {
            Some(format!(
                "alone reaches ROC-AUC {auc:.4} > {}",
                params.max_single_feature_auc
            ))
        } else {
            None
        };
        entries.push(LeakageEntry {
            feature: f.name().to_owned(),
            kind: f.kind(),
            single_feature_auc: auc,
            label_input,
            flagged: reason.is_some(),
            in_feature_set: feature_set.contains(f),
            reason,
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
    let flagged_in_feature_set = entries
        .iter()
        .filter(|e| e.flagged && e.in_feature_set)
        .map(|e| e.feature.clone())
        .collect();
    LeakageReport {
        max_single_feature_auc: params.max_single_feature_auc,
        allow_leaky_features,
        rule_reconstruction_auc: ValueCounts::new(&rebuilt, y).roc_auc(),
        auc_check_skipped,
        entries,
        flagged_in_feature_set,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    #[allow(clippy::needless_range_loop)] // one row index fills several columns
    fn label_inputs_and_separating_features_are_flagged() {
        let n = 200;
        let mut columns = vec![vec![0.0; n]; Feature::ALL.len()];
        let y: Vec<bool> = (0..n).map(|i| i % 4 == 0).collect();
        for i in 0..n {
            // available_pct low exactly on positives, group always non-vital.
            columns[Feature::AvailablePct.index()][i] = if y[i] { 5.0 } else { 60.0 };
            columns[Feature::GroupNonVital.index()][i] = 1.0;
            // A perfect proxy of the label hiding among honest features.
            columns[Feature::Spend7d.index()][i] = if y[i] { 0.0 } else { 10.0 };
            columns[Feature::Valor.index()][i] = (i % 7) as f64;
        }
        let rule = TargetRule {
            threshold_pct: 20.0,
            vital_groups: vec![],
        };
        let params = LeakageParams {
            max_single_feature_auc: 0.95,
        };
        let counts = crate::stats::value_counts(&columns, &y);
        let report = check(
            &columns,
            &counts,
            &y,
            &[Feature::Valor, Feature::Spend7d],
            &rule,
            &params,
            false,
        );
        let entry = |name: &str| report.entries.iter().find(|e| e.feature == name).expect("entry");
        assert!(entry("available_pct").flagged && entry("available_pct").label_input);
        assert!(entry("spend_7d").flagged && !entry("spend_7d").label_input);
        assert!((entry("spend_7d").single_feature_auc - 1.0).abs() < 1e-12);
        assert!(!entry("valor").flagged);
        assert_eq!(report.flagged_in_feature_set, vec!["spend_7d".to_owned()]);
        assert!((report.rule_reconstruction_auc - 1.0).abs() < 1e-12);
        assert_eq!(report.auc_check_skipped, None);

        // Too few rows to judge: only the label inputs are flagged.
        let small: Vec<Vec<f64>> = columns.iter().map(|c| c[..20].to_vec()).collect();
        let counts = crate::stats::value_counts(&small, &y[..20]);
        let report = check(
            &small,
            &counts,
            &y[..20],
            &[Feature::Spend7d],
            &rule,
            &params,
            false,
        );
        assert!(report.auc_check_skipped.is_some());
        assert!(report.flagged_in_feature_set.is_empty());
        assert!(report.entries.iter().filter(|e| e.flagged).all(|e| e.label_input));
    }
}
