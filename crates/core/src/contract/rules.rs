//! The rules a parsed row must meet before it is trusted: the quality
//! suite's row checks, defined once and applied by `build-features` to every
//! raw row (a violation quarantines the row) and by `serve` to every request
//! (a violation is a 422 naming the rule). Parsing says whether a field can
//! be read at all; these rules say whether what was read is plausible.
//!
//! Each rule has a name, the one an error and the quality suite use:
//! - `ranges.<field>`: a value outside its accepted range
//!   ([`ValueRanges`], edited in `config/quality.yaml`);
//! - `no_control_characters`: NUL, tab or any other control character in a
//!   field (no real export has one; a client that sends one sends garbage);
//! - `account_opened_before_purchase`: the account-opening cohort
//!   (`safra_abertura`, `yyyymm`) is not after the purchase's month;
//! - `known_merchant_group`: the merchant group is empty or one of the
//!   contract's groups ([`super::check_group`]).

use thiserror::Error;

use super::{COLUMNS, FieldError, Row, ValueRanges};

/// The rule names, as errors and reports give them.
pub const NO_CONTROL_CHARACTERS: &str = "no_control_characters";
pub const ACCOUNT_OPENED_BEFORE_PURCHASE: &str = "account_opened_before_purchase";
pub const KNOWN_MERCHANT_GROUP: &str = "known_merchant_group";

/// A row that parsed but breaks a rule: which rule, and the field, value
/// and reason.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("rule `{rule}`: {error}")]
pub struct RuleViolation {
    pub rule: &'static str,
    pub error: FieldError,
}

impl From<RuleViolation> for FieldError {
    /// The violation as a field error whose reason names the rule (the
    /// quarantine file stores field errors).
    fn from(v: RuleViolation) -> FieldError {
        FieldError {
            field: v.error.field,
            value: v.error.value,
            reason: format!("rule `{}`: {}", v.rule, v.error.reason),
        }
    }
}

/// Whether the merchant group still has to be checked: the offline reader
/// checks each distinct label once and passes [`Group::Checked`] for the
/// labels it has already accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Group {
    Unchecked,
    Checked,
}

/// Checks a parsed row against every rule; `fields` are the row's raw
/// fields (in [`COLUMNS`] order), quoted in the error. The first rule
/// broken is reported, in the order of the module documentation.
pub fn check_row(
    ranges: &ValueRanges,
    row: &Row<'_>,
    fields: &[&str],
    group: Group,
) -> Result<(), RuleViolation> {
    check_control_characters(fields)?;
    ranges.check(row, fields)?;
    check_account_opened_before_purchase(row, fields)?;
    if group == Group::Unchecked {
        super::check_group(row.grupo, &super::TextField::Grupo.normalise(row.grupo)).map_err(|error| {
            RuleViolation {
                rule: KNOWN_MERCHANT_GROUP,
                error,
            }
        })?;
    }
    Ok(())
}

/// `no_control_characters`: no field holds a control character (C0, DEL
/// or C1). The common case, pure ASCII without one, is a byte scan.
fn check_control_characters(fields: &[&str]) -> Result<(), RuleViolation> {
    for (i, text) in fields.iter().enumerate() {
        let bytes = text.as_bytes();
        let ascii_clean = bytes.iter().all(|b| (0x20..0x7f).contains(b));
        if ascii_clean || !text.chars().any(char::is_control) {
            continue;
        }
        let (at, c) = text
            .char_indices()
            .find(|(_, c)| c.is_control())
            .unwrap_or((0, '\0'));
        return Err(RuleViolation {
            rule: NO_CONTROL_CHARACTERS,
            error: FieldError::new(
                COLUMNS.get(i).copied().unwrap_or("row"),
                text,
                format!(
                    "holds the control character U+{:04X} at byte {at}; text fields hold printable text only",
                    u32::from(c)
                ),
            ),
        });
    }
    Ok(())
}

/// `account_opened_before_purchase`: a purchase is not made on an account
/// opened in a later month.
fn check_account_opened_before_purchase(row: &Row<'_>, fields: &[&str]) -> Result<(), RuleViolation> {
    use chrono::Datelike;
    let Some(cohort) = row.safra_abertura else {
        return Ok(());
    };
    let purchase = row.date.year() as i64 * 100 + i64::from(row.date.month());
    if i64::from(cohort) <= purchase {
        return Ok(());
    }
    Err(RuleViolation {
        rule: ACCOUNT_OPENED_BEFORE_PURCHASE,
        error: FieldError::new(
            "safra_abertura",
            fields.get(1).copied().unwrap_or(""),
            format!(
                "the account was opened after the purchase ({}, month {purchase})",
                row.date.format("%Y-%m-%d")
            ),
        ),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::contract::parse_row;

    const GOOD: [&str; 13] = crate::contract::SAMPLE_ROW;

    fn rule_broken(fields: &[&str]) -> Option<(&'static str, &'static str)> {
        let row = parse_row(fields).expect("parses");
        check_row(&ValueRanges::default(), &row, fields, Group::Unchecked)
            .err()
            .map(|v| (v.rule, v.error.field))
    }

    /// Issue 15: what the server used to accept is refused by a named rule,
    /// the same one the offline reader applies.
    #[test]
    fn each_rule_names_itself_and_the_field() {
        assert_eq!(rule_broken(&GOOD), None);
        let with = |i: usize, v: &'static str| {
            let mut f = GOOD;
            f[i] = v;
            f
        };
        assert_eq!(rule_broken(&with(8, "31.12.9999")), Some(("ranges.data", "data")));
        assert_eq!(rule_broken(&with(8, "01.01.0001")), Some(("ranges.data", "data")));
        assert_eq!(
            rule_broken(&with(2, "SAO\0PAULO")),
            Some((NO_CONTROL_CHARACTERS, "cidade"))
        );
        assert_eq!(
            rule_broken(&with(11, "RIO\u{85}")),
            Some((NO_CONTROL_CHARACTERS, "cidade_estabelecimento"))
        );
        assert_eq!(
            rule_broken(&with(3, "S\tP")),
            Some((NO_CONTROL_CHARACTERS, "estado"))
        );
        assert_eq!(
            rule_broken(&with(6, "0")),
            Some(("ranges.limite_total", "limite_total"))
        );
        assert_eq!(
            rule_broken(&with(1, "202008")),
            Some((ACCOUNT_OPENED_BEFORE_PURCHASE, "safra_abertura"))
        );
        // The month of the purchase itself is fine; accents are not control characters.
        assert_eq!(rule_broken(&with(1, "202007")), None);
        assert_eq!(rule_broken(&with(2, "SÃO PAULO")), None);
        assert_eq!(
            rule_broken(&with(10, "PADARIA")),
            Some((KNOWN_MERCHANT_GROUP, "grupo_estabelecimento"))
        );
        let row = parse_row(&with(10, "PADARIA")).expect("parses");
        assert_eq!(
            check_row(
                &ValueRanges::default(),
                &row,
                &with(10, "PADARIA"),
                Group::Checked
            ),
            Ok(())
        );
    }

    #[test]
    fn a_violation_stored_as_a_field_error_keeps_the_rule_in_its_reason() {
        let mut f = GOOD;
        f[8] = "31.12.9999";
        let row = parse_row(&f).expect("parses");
        let v = check_row(&ValueRanges::default(), &row, &f, Group::Unchecked).expect_err("9999");
        let e = FieldError::from(v);
        assert_eq!((e.field, e.value.as_str()), ("data", "31.12.9999"));
        assert!(e.reason.starts_with("rule `ranges.data`: "), "{}", e.reason);
        assert!(e.reason.contains(crate::contract::OUT_OF_RANGE), "{}", e.reason);
    }
}
