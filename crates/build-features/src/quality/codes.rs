//! Text columns as codes (a check of a value alone runs once per distinct
//! value), comparable keys, and cells rendered as text for examples.

use anyhow::Result;
use chrono::NaiveDate;
use polars::prelude::*;

/// Whether a column holds text: String, or Categorical (the stage passes
/// its text columns that way: a code per row over few distinct values).
pub(super) fn is_text(dtype: &DataType) -> bool {
    matches!(dtype, DataType::String | DataType::Categorical(..))
}

/// What a value-only check says of one distinct value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Verdict {
    Expected,
    Unexpected,
    /// Empty text: null.
    Missing,
}

/// A text column as a code per row (null stays null) and the text of each
/// code, so that a check of the value alone runs once per distinct value.
pub(super) struct Codes<'a> {
    pub(super) codes: UInt32Chunked,
    pub(super) texts: Texts<'a>,
}

pub(super) enum Texts<'a> {
    /// Built from a String column.
    Listed(Vec<&'a str>),
    /// A Categorical column's own mapping.
    Mapping(&'a CategoricalMapping),
}

impl<'a> Codes<'a> {
    pub(super) fn new(s: &'a Series) -> Result<Self> {
        match s.dtype() {
            DataType::Categorical(_, mapping) => {
                let codes = s.to_physical_repr().cast(&DataType::UInt32)?.u32()?.clone();
                Ok(Self {
                    codes,
                    texts: Texts::Mapping(mapping),
                })
            }
            _ => {
                let mut index: PlHashMap<&'a str, u32> = PlHashMap::new();
                let mut listed = Vec::new();
                let codes = s
                    .str()?
                    .iter()
                    .map(|v| {
                        v.map(|v| {
                            *index.entry(v).or_insert_with(|| {
                                listed.push(v);
                                (listed.len() - 1) as u32
                            })
                        })
                    })
                    .collect();
                Ok(Self {
                    codes,
                    texts: Texts::Listed(listed),
                })
            }
        }
    }

    /// Number of codes (an upper bound for a Categorical mapping).
    pub(super) fn len(&self) -> usize {
        match &self.texts {
            Texts::Listed(v) => v.len(),
            Texts::Mapping(m) => m.num_cats_upper_bound(),
        }
    }

    pub(super) fn text(&self, code: u32) -> &'a str {
        match &self.texts {
            Texts::Listed(v) => v.get(code as usize).copied().unwrap_or_default(),
            Texts::Mapping(m) => m.cat_to_str(code).unwrap_or_default(),
        }
    }

    /// `f` of every code's text, indexed by code.
    pub(super) fn verdicts<V>(&self, f: impl Fn(&str) -> V) -> Vec<V> {
        (0..self.len()).map(|c| f(self.text(c as u32))).collect()
    }
}

/// A column's values as comparable keys: text codes (empty text is null),
/// or the bits of the value as a number.
pub(super) enum Keys<'a> {
    Text(Codes<'a>, Vec<bool>),
    Number(Float64Chunked),
}

impl<'a> Keys<'a> {
    pub(super) fn new(s: &'a Series) -> Result<Self> {
        if is_text(s.dtype()) {
            let codes = Codes::new(s)?;
            let empty = codes.verdicts(str::is_empty);
            Ok(Keys::Text(codes, empty))
        } else {
            Ok(Keys::Number(
                s.to_physical_repr().cast(&DataType::Float64)?.f64()?.clone(),
            ))
        }
    }

    pub(super) fn iter(&self) -> Box<dyn Iterator<Item = Option<u64>> + '_> {
        match self {
            Keys::Text(codes, empty) => Box::new(
                codes
                    .codes
                    .iter()
                    .map(|c| c.filter(|c| !empty[*c as usize]).map(u64::from)),
            ),
            Keys::Number(values) => Box::new(values.iter().map(|v| v.map(f64::to_bits))),
        }
    }
}

pub(super) const EPOCH: NaiveDate = NaiveDate::from_ymd_opt(1970, 1, 1).expect("valid date");

pub(super) fn epoch_days(d: NaiveDate) -> i32 {
    (d - EPOCH).num_days() as i32
}

pub(super) fn date_text(days: i32) -> String {
    EPOCH
        .checked_add_signed(chrono::TimeDelta::days(days.into()))
        .map_or_else(|| format!("day {days}"), |d| d.to_string())
}

/// A cell as text for an example: strings as they are, dates ISO, null as
/// `null`.
pub(super) fn cell_text(s: &Series, row: usize) -> String {
    match s.get(row) {
        Ok(AnyValue::Null) => "null".to_owned(),
        Ok(v @ (AnyValue::Categorical(..) | AnyValue::CategoricalOwned(..))) => {
            v.get_str().unwrap_or_default().to_owned()
        }
        Ok(AnyValue::String(v)) => v.to_owned(),
        Ok(AnyValue::StringOwned(v)) => v.to_string(),
        Ok(AnyValue::Date(days)) => date_text(days),
        Ok(v) => v.to_string(),
        Err(_) => String::new(),
    }
}
