//! The accepted range of each numeric field of the contract (amount,
//! limits, age) and of the purchase date: a parsed value outside it
//! quarantines its row offline and is a 422 online (rule `ranges.<field>`,
//! see [`super::rules`]). The ranges are edited in the quality suite
//! (`ranges:` in `config/quality.yaml`); these are the defaults.

use chrono::NaiveDate;
use serde::{Deserialize, Serialize};

use super::FieldError;
use super::Row;
use super::rules::RuleViolation;

/// Marks the reason of a value outside its [`ValueRanges`] range, so a
/// report can count those apart from values that do not parse.
pub const OUT_OF_RANGE: &str = "outside the accepted range";

/// An inclusive range of accepted values; a bound left out is no bound.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Range {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max: Option<f64>,
}

impl Range {
    pub const fn new(min: f64, max: f64) -> Range {
        Range {
            min: Some(min),
            max: Some(max),
        }
    }

    pub fn contains(&self, v: f64) -> bool {
        self.min.is_none_or(|lo| v >= lo) && self.max.is_none_or(|hi| v <= hi)
    }

    fn check(
        &self,
        rule: &'static str,
        field: &'static str,
        text: &str,
        v: f64,
    ) -> Result<(), RuleViolation> {
        if self.contains(v) {
            return Ok(());
        }
        Err(out_of_range(rule, field, text, self))
    }
}

/// The violation of a `ranges.<field>` rule. The value is the error's
/// `value`, not part of the reason: the quarantine pseudonymises id-like
/// values, and only those.
fn out_of_range(
    rule: &'static str,
    field: &'static str,
    text: &str,
    range: &dyn std::fmt::Display,
) -> RuleViolation {
    RuleViolation {
        rule,
        error: FieldError::new(field, text, format!("{OUT_OF_RANGE} {range}")),
    }
}

/// An inclusive range of purchase dates (ISO `2020-01-31` in the suite); a
/// bound left out is no bound.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DateRange {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min: Option<NaiveDate>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max: Option<NaiveDate>,
}

impl DateRange {
    pub fn contains(&self, d: NaiveDate) -> bool {
        self.min.is_none_or(|lo| d >= lo) && self.max.is_none_or(|hi| d <= hi)
    }
}

impl std::fmt::Display for DateRange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let bound = |b: Option<NaiveDate>| b.map_or_else(|| "-".to_owned(), |d| d.to_string());
        write!(f, "[{}, {}]", bound(self.min), bound(self.max))
    }
}

impl std::fmt::Display for Range {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let bound = |b: Option<f64>| b.map_or_else(|| "-".to_owned(), |v| v.to_string());
        write!(f, "[{}, {}]", bound(self.min), bound(self.max))
    }
}

/// The values a row may hold, beyond parsing: a row with a value outside
/// its range is quarantined (with the field, the value and the range), not
/// let into training, and the other rows go on. People edit them in the
/// quality suite (`config/quality.yaml`, `ranges:`); a field left out there
/// keeps its default below. Missing values (an empty age, an amount written
/// ` -   `) are not checked.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ValueRanges {
    /// ` valor `, the purchase amount in BRL. Default `[0, 1000000]`: a
    /// purchase is not negative (a refund feed would need a lower `min`),
    /// and a million reais is beyond any card limit the bank grants.
    #[serde(default = "default_valor")]
    pub valor: Range,
    /// `limite_total`, the credit limit. Default `[1, 1000000]`: a card
    /// without a limit has no available share, so the target is undefined
    /// for it (issue 15).
    #[serde(default = "default_limite_total")]
    pub limite_total: Range,
    /// `limite_disp`, the available limit. Default `[-1000000, 2000000]`: it
    /// goes below zero with an overdraft and above the total limit after an
    /// overpayment (both happen in the real file), so it is not tied to
    /// `limite_total`.
    #[serde(default = "default_limite_disp")]
    pub limite_disp: Range,
    /// `idade`, the age in years. Default `[16, 110]`.
    #[serde(default = "default_idade")]
    pub idade: Range,
    /// `data`, the purchase date. Default `[2000-01-01, 2099-12-31]`: a
    /// date outside is a placeholder (`31.12.9999`, `01.01.0001`) or a
    /// typo, not a card purchase this model can score.
    #[serde(default = "default_data")]
    pub data: DateRange,
}

fn default_valor() -> Range {
    Range::new(0.0, 1_000_000.0)
}

fn default_limite_total() -> Range {
    Range::new(1.0, 1_000_000.0)
}

fn default_limite_disp() -> Range {
    Range::new(-1_000_000.0, 2_000_000.0)
}

fn default_idade() -> Range {
    Range::new(16.0, 110.0)
}

fn default_data() -> DateRange {
    DateRange {
        min: NaiveDate::from_ymd_opt(2000, 1, 1),
        max: NaiveDate::from_ymd_opt(2099, 12, 31),
    }
}

impl Default for ValueRanges {
    fn default() -> Self {
        ValueRanges {
            valor: default_valor(),
            limite_total: default_limite_total(),
            limite_disp: default_limite_disp(),
            idade: default_idade(),
            data: default_data(),
        }
    }
}

impl ValueRanges {
    /// Checks that every bound is finite and `min <= max`, naming the field.
    pub fn validate(&self) -> Result<(), String> {
        for (name, r) in self.fields() {
            if r.min.is_some_and(|v| !v.is_finite()) || r.max.is_some_and(|v| !v.is_finite()) {
                return Err(format!("ranges.{name}: bounds must be finite numbers"));
            }
            if let (Some(lo), Some(hi)) = (r.min, r.max)
                && lo > hi
            {
                return Err(format!("ranges.{name}: `min` {lo} is above `max` {hi}"));
            }
        }
        if let (Some(lo), Some(hi)) = (self.data.min, self.data.max)
            && lo > hi
        {
            return Err(format!("ranges.data: `min` {lo} is after `max` {hi}"));
        }
        Ok(())
    }

    fn fields(&self) -> [(&'static str, Range); 4] {
        [
            ("valor", self.valor),
            ("limite_total", self.limite_total),
            ("limite_disp", self.limite_disp),
            ("idade", self.idade),
        ]
    }

    /// One line naming every range, e.g. `valor [0, 1000000]; ...`: recorded
    /// with staged data, so rows staged under other ranges are staged again.
    pub fn describe(&self) -> String {
        self.fields()
            .iter()
            .map(|(name, r)| format!("{name} {r}"))
            .chain(std::iter::once(format!("data {}", self.data)))
            .collect::<Vec<_>>()
            .join("; ")
    }

    /// Checks a parsed row's values (the `ranges.<field>` rules of
    /// [`super::rules::check_row`]); `fields` are the row's raw fields (in
    /// [`COLUMNS`](super::COLUMNS) order), quoted in the error.
    pub fn check(&self, row: &Row<'_>, fields: &[&str]) -> Result<(), RuleViolation> {
        let text = |i: usize| fields.get(i).copied().unwrap_or("");
        if let Some(age) = row.idade {
            self.idade
                .check("ranges.idade", "idade", text(4), f64::from(age))?;
        }
        self.limite_total
            .check("ranges.limite_total", "limite_total", text(6), row.limite_total)?;
        self.limite_disp
            .check("ranges.limite_disp", "limite_disp", text(7), row.limite_disp)?;
        if !self.data.contains(row.date) {
            return Err(out_of_range("ranges.data", "data", text(8), &self.data));
        }
        if let Some(v) = row.valor {
            self.valor.check("ranges.valor", " valor ", text(9), v)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::contract::*;

    #[test]
    fn value_ranges_refuse_absurd_values_naming_field_and_range() {
        let ranges = ValueRanges::default();
        ranges.validate().expect("defaults are valid");
        let fields = SAMPLE_ROW;
        let row = parse_row(&fields).expect("row");
        assert_eq!(ranges.check(&row, &fields), Ok(()));
        let mut absurd = fields;
        absurd[9] = " 100.000.000.000,00 ";
        let row = parse_row(&absurd).expect("parses");
        let violation = ranges.check(&row, &absurd).expect_err("out of range");
        assert_eq!(violation.rule, "ranges.valor");
        let err = violation.error;
        assert_eq!(
            (err.field, err.value.as_str()),
            (" valor ", " 100.000.000.000,00 ")
        );
        assert!(
            err.reason.contains(OUT_OF_RANGE) && err.reason.contains("[0, 1000000]"),
            "{err}"
        );
        // The available limit may exceed the total; a missing amount is not checked.
        let mut fine = fields;
        fine[7] = "9000.0";
        fine[9] = " -   ";
        let row = parse_row(&fine).expect("parses");
        assert_eq!(ranges.check(&row, &fine), Ok(()));

        let wide: ValueRanges = serde_norway::from_str("valor: {min: -10}\nidade: {}\n").expect("parses");
        assert_eq!(
            wide.valor,
            Range {
                min: Some(-10.0),
                max: None
            }
        );
        assert_eq!(wide.idade, Range::default());
        assert_eq!(wide.limite_total, ValueRanges::default().limite_total);
        assert!(serde_norway::from_str::<ValueRanges>("amount: {min: 0}\n").is_err());
        let upside_down: ValueRanges =
            serde_norway::from_str("idade: {min: 110, max: 16}\n").expect("parses");
        assert!(
            upside_down
                .validate()
                .expect_err("min > max")
                .contains("ranges.idade")
        );

        // Dates are ISO text in the suite; a left-out bound is no bound.
        let dates: ValueRanges = serde_norway::from_str("data: {min: 2019-01-01}\n").expect("parses");
        assert_eq!(dates.data.min, NaiveDate::from_ymd_opt(2019, 1, 1));
        assert_eq!(dates.data.max, None);
        assert!(
            dates.describe().ends_with("data [2019-01-01, -]"),
            "{}",
            dates.describe()
        );
        let backwards: ValueRanges =
            serde_norway::from_str("data: {min: 2020-01-01, max: 2019-01-01}\n").expect("parses");
        assert!(backwards.validate().expect_err("after").contains("ranges.data"));
        assert!(serde_norway::from_str::<ValueRanges>("data: {min: 31.12.2019}\n").is_err());
    }
}
