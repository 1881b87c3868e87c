//! The label: a purchase is revenge spending when the card's available limit
//! is below a threshold share of the total limit and the merchant group is
//! not vital.
//!
//! The rule reads the same row's `limite_disp` and `limite_total`, which is
//! exactly why those values must not be model features (see
//! [`crate::features::Feature::is_label_input`]).

use serde::{Deserialize, Serialize};

use crate::contract::Transaction;

/// The target rule, built from the validated `build_features.target` params.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TargetRule {
    /// Available share of the limit, in percent, under which a purchase counts.
    pub threshold_pct: f64,
    /// Normalised merchant groups that are vital (never revenge spending).
    pub vital_groups: Vec<String>,
}

impl TargetRule {
    /// Whether a normalised merchant group is vital. An empty (unknown)
    /// group is not vital: the rule as written covers it.
    pub fn is_vital(&self, group: &str) -> bool {
        self.vital_groups.iter().any(|g| g == group)
    }

    /// Whether this purchase is revenge spending.
    pub fn is_revenge(&self, txn: &Transaction) -> bool {
        self.applies(
            available_pct(txn.limite_disp, txn.limite_total),
            !self.is_vital(&txn.grupo),
        )
    }

    /// The rule on its two inputs: the available share of the limit (see
    /// [`available_pct`]) and whether the group is non-vital. The leakage
    /// check rebuilds the rule from candidate features through this.
    pub fn applies(&self, available_pct: f64, non_vital: bool) -> bool {
        available_pct < self.threshold_pct && non_vital
    }
}

/// Available limit as a percentage of the total limit. A card with no total
/// limit has nothing available (0 %).
pub fn available_pct(limite_disp: f64, limite_total: f64) -> f64 {
    if limite_total > 0.0 {
        100.0 * limite_disp / limite_total
    } else {
        0.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::contract::parse_fields;

    fn txn(disp: &str, group: &str) -> Transaction {
        parse_fields(&[
            "1",
            "201405",
            "SAO PAULO",
            "SP",
            "34",
            "F",
            "1000.0",
            disp,
            "07.03.2020",
            " 52,00 ",
            group,
            "SAO PAULO",
            "BR",
        ])
        .expect("valid row")
    }

    #[test]
    fn low_availability_in_a_superfluous_group_is_revenge() {
        let rule = TargetRule {
            threshold_pct: 20.0,
            vital_groups: vec!["SUPERMERCADOS".into(), "SERVICO".into()],
        };
        assert!(rule.is_revenge(&txn("150.0", "VESTUARIO")));
        assert!(!rule.is_revenge(&txn("150.0", "SUPERMERCADOS")));
        // The mis-encoded label is vital once normalised.
        assert!(!rule.is_revenge(&txn("150.0", "SERVI\u{201A}O")));
        assert!(!rule.is_revenge(&txn("200.0", "VESTUARIO")));
        assert!(rule.is_revenge(&txn("150.0", "")));
    }

    #[test]
    fn the_rule_on_its_inputs_agrees_with_the_rule_on_a_purchase() {
        let rule = TargetRule {
            threshold_pct: 20.0,
            vital_groups: vec!["SUPERMERCADOS".into()],
        };
        for (disp, group) in [
            ("150.0", "VESTUARIO"),
            ("150.0", "SUPERMERCADOS"),
            ("200.0", "VESTUARIO"),
        ] {
            let t = txn(disp, group);
            let pct = available_pct(t.limite_disp, t.limite_total);
            assert_eq!(rule.applies(pct, !rule.is_vital(&t.grupo)), rule.is_revenge(&t));
        }
        assert!(rule.applies(19.99, true));
        assert!(!rule.applies(20.0, true));
        assert!(!rule.applies(0.0, false));
    }

    #[test]
    fn no_total_limit_means_nothing_available() {
        assert_eq!(available_pct(10.0, 0.0), 0.0);
        assert_eq!(available_pct(1200.0, 1000.0), 120.0);
    }
}
