//! Metrics by slice of the holdout: by month, merchant group, age band, sex,
//! and cold start (no earlier purchase) against known customers.
//!
//! A slice with enough rows and positives (`evaluate.slices.min_rows`,
//! `min_positives`, and at least one negative) is *held* to the PR-AUC
//! floor; a held slice below it is named in the report and, with
//! `gate.slices_above_floor`, fails the gate. Smaller slices are reported
//! with their metrics but not judged: their PR-AUC is mostly noise.

use revspend_core::features::{Feature, KNOWN_GROUPS};
use revspend_core::metrics::{BinaryMetrics, ECE_BINS, ReliabilityBin, reliability};
use revspend_core::params::{SLICE_DIMENSIONS, SliceParams};
use revspend_table::RowDescriptions;
use serde::Serialize;

/// The master-table columns the slices are cut by (besides the month of
/// the row's date), in the order [`RowDescriptions::columns`] holds them.
pub const COLUMNS: [Feature; 4] = [
    Feature::GroupCode,
    Feature::Idade,
    Feature::SexoM,
    Feature::PurchasesBefore,
];

/// The dimension of the cold-start slice and its two values.
pub const HISTORY: &str = SLICE_DIMENSIONS[4];
pub const COLD_START: &str = "cold_start";
const KNOWN: &str = "known";

/// One slice's metrics (those that need both classes are `None` without).
#[derive(Debug, Clone, Serialize)]
pub struct Slice {
    pub dimension: &'static str,
    pub slice: String,
    pub rows: usize,
    pub positives: usize,
    pub prevalence: f64,
    pub pr_auc: Option<f64>,
    pub roc_auc: Option<f64>,
    pub brier: f64,
    pub ece: f64,
    pub precision: f64,
    pub recall: f64,
    /// Enough rows and of both classes to be held to the floor.
    pub held_to_floor: bool,
    /// The PR-AUC floor of this slice (`slices.floors`, else
    /// `slices.pr_auc_floor`).
    pub floor: f64,
    pub below_floor: bool,
}

impl Slice {
    /// `dimension=slice`, as the report names it.
    pub fn name(&self) -> String {
        format!("{}={}", self.dimension, self.slice)
    }
}

/// Every slice, and the held ones below the floor by name.
#[derive(Debug, Clone, Serialize)]
pub struct SliceReport {
    pub pr_auc_floor: f64,
    pub min_rows: usize,
    pub min_positives: usize,
    pub slices: Vec<Slice>,
    pub below_floor: Vec<String>,
    /// Reliability of the calibrated model on the cold-start rows alone.
    pub cold_start_reliability: Vec<ReliabilityBin>,
}

impl SliceReport {
    /// The cold-start slice (absent when the holdout has no such row).
    pub fn cold_start(&self) -> Option<&Slice> {
        self.slices
            .iter()
            .find(|s| s.dimension == HISTORY && s.slice == COLD_START)
    }
}

fn group_name(code: f64) -> String {
    if !code.is_finite() || code < 0.0 {
        return "(unknown)".into();
    }
    let i = code as usize;
    match KNOWN_GROUPS.get(i) {
        Some(g) => (*g).to_owned(),
        None if i == KNOWN_GROUPS.len() => "(empty)".into(),
        None => "(unknown)".into(),
    }
}

/// Ten-year bands from 25, as a risk team reads ages.
fn age_band(age: f64) -> String {
    if !age.is_finite() {
        return "unknown".into();
    }
    match age as i64 {
        ..25 => "<25".into(),
        a @ 25..65 => {
            let lo = 25 + (a - 25) / 10 * 10;
            format!("{lo}-{}", lo + 9)
        }
        _ => "65+".into(),
    }
}

fn sex(sexo_m: f64) -> String {
    if sexo_m == 1.0 {
        "M".into()
    } else if sexo_m == 0.0 {
        "F".into()
    } else {
        "unknown".into()
    }
}

fn history(purchases_before: f64) -> String {
    if purchases_before == 0.0 {
        COLD_START.into()
    } else {
        KNOWN.into()
    }
}

/// The metrics of the calibrated `scores` on every slice of the rows.
pub fn by_slice(
    scores: &[f64],
    y: &[bool],
    threshold: f64,
    rows: &RowDescriptions,
    params: &SliceParams,
) -> SliceReport {
    // In the order of SLICE_DIMENSIONS, which names them for params.
    let [month, group, age, sex_dimension, history_dimension] = SLICE_DIMENSIONS;
    let keys: [(&'static str, Vec<String>); 5] = [
        (month, rows.months.clone()),
        (group, rows.columns[0].iter().map(|&c| group_name(c)).collect()),
        (age, rows.columns[1].iter().map(|&a| age_band(a)).collect()),
        (sex_dimension, rows.columns[2].iter().map(|&s| sex(s)).collect()),
        (
            history_dimension,
            rows.columns[3].iter().map(|&p| history(p)).collect(),
        ),
    ];
    let mut slices = Vec::new();
    let mut cold_start_reliability = Vec::new();
    for (dimension, key) in keys {
        let mut values: Vec<&String> = key.iter().collect();
        values.sort();
        values.dedup();
        for value in values {
            let members: Vec<usize> = (0..key.len()).filter(|&i| key[i] == *value).collect();
            let s: Vec<f64> = members.iter().map(|&i| scores[i]).collect();
            let t: Vec<bool> = members.iter().map(|&i| y[i]).collect();
            if dimension == HISTORY && value == COLD_START {
                cold_start_reliability = reliability(&s, &t, ECE_BINS);
            }
            slices.push(slice(dimension, value.clone(), &s, &t, threshold, params));
        }
    }
    let below_floor = slices.iter().filter(|s| s.below_floor).map(Slice::name).collect();
    SliceReport {
        pr_auc_floor: params.pr_auc_floor,
        min_rows: params.min_rows,
        min_positives: params.min_positives,
        slices,
        below_floor,
        cold_start_reliability,
    }
}

fn slice(
    dimension: &'static str,
    value: String,
    scores: &[f64],
    y: &[bool],
    threshold: f64,
    params: &SliceParams,
) -> Slice {
    let rows = y.len();
    let positives = y.iter().filter(|v| **v).count();
    let both = positives > 0 && positives < rows;
    let m = BinaryMetrics::compute(scores, y, threshold);
    let held = both && rows >= params.min_rows && positives >= params.min_positives;
    let floor = params.floor(&format!("{dimension}={value}"));
    Slice {
        dimension,
        slice: value,
        rows,
        positives,
        prevalence: if rows == 0 {
            0.0
        } else {
            positives as f64 / rows as f64
        },
        pr_auc: both.then_some(m.pr_auc),
        roc_auc: both.then_some(m.roc_auc),
        brier: m.brier,
        ece: m.ece,
        precision: m.precision,
        recall: m.recall,
        held_to_floor: held,
        floor,
        below_floor: held && m.pr_auc < floor,
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    fn params() -> SliceParams {
        SliceParams {
            pr_auc_floor: 0.6,
            min_rows: 4,
            min_positives: 2,
            floors: BTreeMap::new(),
        }
    }

    #[test]
    fn bands_groups_and_history_are_named() {
        assert_eq!(age_band(18.0), "<25");
        assert_eq!(age_band(25.0), "25-34");
        assert_eq!(age_band(64.0), "55-64");
        assert_eq!(age_band(80.0), "65+");
        assert_eq!(age_band(f64::NAN), "unknown");
        assert_eq!(group_name(0.0), KNOWN_GROUPS[0]);
        assert_eq!(group_name(KNOWN_GROUPS.len() as f64), "(empty)");
        assert_eq!(sex(1.0), "M");
        assert_eq!(sex(f64::NAN), "unknown");
        assert_eq!(history(0.0), COLD_START);
        assert_eq!(history(3.0), KNOWN);
    }

    /// Rows 0..4 are cold starts (and women) the model ranks backwards, rows
    /// 4..8 known customers (men) it ranks well: those two slices are
    /// held, one below the floor and one above; months, groups and ages
    /// are cut too fine to be judged.
    #[test]
    fn a_held_slice_below_the_floor_is_named_and_small_slices_are_not_judged() {
        let scores = [0.9, 0.8, 0.2, 0.1, 0.9, 0.8, 0.2, 0.1];
        let y = [false, false, true, true, true, true, false, false];
        let rows = RowDescriptions {
            months: (1..=8).map(|m| format!("2020-0{m}")).collect(),
            columns: vec![
                (0..8).map(f64::from).collect(),
                vec![18.0, 30.0, 40.0, 50.0, 60.0, 70.0, 18.0, 30.0],
                vec![0.0, 0.0, 0.0, 0.0, 1.0, 1.0, 1.0, 1.0],
                vec![0.0, 0.0, 0.0, 0.0, 2.0, 5.0, 1.0, 9.0],
            ],
        };
        let report = by_slice(&scores, &y, 0.5, &rows, &params());
        let cold = report.cold_start().expect("cold-start slice");
        assert_eq!((cold.rows, cold.positives), (4, 2));
        assert!(cold.held_to_floor && cold.below_floor);
        assert_eq!(cold.roc_auc, Some(0.0));
        let known = report
            .slices
            .iter()
            .find(|s| s.dimension == HISTORY && s.slice == KNOWN)
            .expect("known slice");
        assert_eq!(known.pr_auc, Some(1.0));
        assert!(!known.below_floor);
        assert_eq!(report.below_floor, vec!["sex=F", "customer_history=cold_start"]);
        // A slice's own floor replaces the general one.
        let mut own = params();
        own.floors.insert("sex=F".into(), 0.0);
        own.floors.insert("sex=M".into(), 1.0);
        let report_own = by_slice(&scores, &y, 0.5, &rows, &own);
        assert_eq!(report_own.below_floor, vec!["customer_history=cold_start"]);
        let m = report_own
            .slices
            .iter()
            .find(|s| s.slice == "M")
            .expect("M slice");
        assert_eq!((m.floor, m.pr_auc, m.below_floor), (1.0, Some(1.0), false));
        // One row: too small to judge, and no positive at all.
        let jan = report
            .slices
            .iter()
            .find(|s| s.slice == "2020-01")
            .expect("a month");
        assert_eq!((jan.rows, jan.pr_auc, jan.held_to_floor), (1, None, false));
        let young = report
            .slices
            .iter()
            .find(|s| s.slice == "<25")
            .expect("an age band");
        assert_eq!((young.rows, young.held_to_floor), (2, false));
        let rows_in: usize = report
            .slices
            .iter()
            .filter(|s| s.dimension == "sex")
            .map(|s| s.rows)
            .sum();
        assert_eq!(rows_in, 8, "a dimension's slices cover every row once");
        assert_eq!(
            report.cold_start_reliability.iter().map(|b| b.count).sum::<u64>(),
            4
        );
    }
}
