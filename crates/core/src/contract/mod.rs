//! The raw data contract: the `MiBolsillo.csv` format of the Brazilian bank
//! dataset, with every quirk a real file has.
//!
//! Files are cp1252, `;`-separated, with the amount header literally
//! ` valor `. Amounts are Brazilian (` 1.234,56 `, missing written ` -   `),
//! dates `dd.mm.yyyy`, and merchant groups upper case with mis-encoded labels
//! (`SERVI\x82O`, `AUTO PE AS`) that [`normalise_group`] maps to clean names.

use std::borrow::Cow;

use chrono::NaiveDate;
use serde::{Deserialize, Serialize};
use thiserror::Error;

/// The header of a raw file, in order, exactly as the real file spells it.
pub const COLUMNS: [&str; 13] = [
    "id",
    "safra_abertura",
    "cidade",
    "estado",
    "idade",
    "sexo",
    "limite_total",
    "limite_disp",
    "data",
    " valor ",
    "grupo_estabelecimento",
    "cidade_estabelecimento",
    "pais_estabelecimento",
];

/// The text written for a missing amount.
pub const MISSING_AMOUNT: &str = " -   ";

/// Merchant cities are truncated to this many characters in the real file.
pub const MERCHANT_CITY_LEN: usize = 13;

/// The merchant groups the contract knows, normalised; defined once, beside
/// the feature code that gives each its position (`group_code`).
pub use crate::features::KNOWN_GROUPS;

mod ranges;
pub mod rules;
pub use ranges::{DateRange, OUT_OF_RANGE, Range, ValueRanges};
pub use rules::{Group, RuleViolation, check_row};

/// Customer sex as recorded by the bank.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Sex {
    F,
    M,
}

/// One purchase, parsed and normalised; the unit both stages reason about.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Transaction {
    /// Customer id as written (digits); pseudonymised before it is stored.
    pub id: String,
    /// Account-opening cohort as `yyyymm`.
    pub safra_abertura: Option<u32>,
    pub cidade: String,
    pub estado: String,
    pub idade: Option<u16>,
    pub sexo: Option<Sex>,
    pub limite_total: f64,
    /// Available limit at the time of the purchase (may exceed the total).
    pub limite_disp: f64,
    pub date: NaiveDate,
    /// Purchase amount; `None` where the file writes ` -   `.
    pub valor: Option<f64>,
    /// Normalised merchant group; empty when the file leaves it empty.
    pub grupo: String,
    pub cidade_estabelecimento: String,
    pub pais_estabelecimento: String,
}

/// A field that does not follow the contract. `reason` never quotes the
/// input (that is `value`), so what stores an error can treat the value
/// alone as possibly sensitive.
#[derive(Debug, Clone, Error, PartialEq, Eq)]
#[error("field `{field}`: {reason} (got {value:?})")]
pub struct FieldError {
    pub field: &'static str,
    pub value: String,
    pub reason: String,
}

impl FieldError {
    fn new(field: &'static str, value: &str, reason: impl Into<String>) -> Self {
        Self {
            field,
            value: value.to_owned(),
            reason: reason.into(),
        }
    }
}

/// Decodes cp1252 bytes (the real file's encoding) into text.
pub fn decode_cp1252(bytes: &[u8]) -> Cow<'_, str> {
    encoding_rs::WINDOWS_1252.decode_without_bom_handling(bytes).0
}

/// Encodes text as cp1252; characters cp1252 cannot hold become `?`.
pub fn encode_cp1252(text: &str) -> Vec<u8> {
    let (bytes, _, _) = encoding_rs::WINDOWS_1252.encode(text);
    bytes.into_owned()
}

/// Parses an amount written the Brazilian way (` 1.234,56 `) or plainly
/// (`1234.56`). ` -   ` and an empty field are a missing amount.
///
/// Without a decimal comma, dots are read as thousands separators only when
/// every group after the first has three digits (`1.234` is 1234, `12.5` is
/// 12.5), which is how the contract writes whole amounts.
pub fn parse_amount(text: &str) -> Result<Option<f64>, String> {
    match quick_amount(text.as_bytes()) {
        Some(v) => Ok(v),
        None => parse_amount_general(text),
    }
}

/// [`parse_amount`] for any text: the path [`quick_amount`] falls back on.
fn parse_amount_general(text: &str) -> Result<Option<f64>, String> {
    let t = text.trim();
    if t.is_empty() || t == "-" {
        return Ok(None);
    }
    let (negative, digits) = match t.strip_prefix('-') {
        Some(rest) => (true, rest.trim_start()),
        None => (false, t),
    };
    if digits.is_empty() || !digits.chars().all(|c| c.is_ascii_digit() || c == '.' || c == ',') {
        return Err("expected an amount such as ` 1.234,56 ` or ` -   `".into());
    }
    if let Some(v) = fast_amount(digits) {
        return Ok(Some(if negative { -v } else { v }));
    }
    let plain = if let Some((int, frac)) = digits.split_once(',') {
        if frac.contains(',') || frac.contains('.') {
            return Err("more than one decimal comma".into());
        }
        check_thousands(int)?;
        format!("{}.{}", int.replace('.', ""), frac)
    } else if digits.contains('.') && thousands_grouped(digits) {
        digits.replace('.', "")
    } else {
        digits.to_owned()
    };
    let value: f64 = plain
        .parse()
        .map_err(|_| "expected an amount such as ` 1.234,56 ` or ` -   `".to_string())?;
    if !value.is_finite() {
        return Err("amount is not finite".into());
    }
    Ok(Some(if negative { -value } else { value }))
}

/// The amounts the files are made of (` 1.234,56 `, ` 52,00 `, ` -   `,
/// `4700.0`, `1.234`) in one pass over the bytes: three amounts per row of
/// every file go through here. `None` sends anything else (blanks other
/// than spaces, more than 15 digits, misplaced separators, any other
/// character) to [`parse_amount_general`], which then gives the same value
/// or the error; a property test holds the two paths equal.
fn quick_amount(text: &[u8]) -> Option<Option<f64>> {
    let Some(start) = text.iter().position(|b| *b != b' ') else {
        return Some(None);
    };
    let end = text.iter().rposition(|b| *b != b' ').map_or(start, |e| e + 1);
    let mut t = &text[start..end];
    if t == b"-" {
        return Some(None);
    }
    let negative = t[0] == b'-';
    if negative {
        t = &t[1..];
        while let [b' ', rest @ ..] = t {
            t = rest;
        }
    }
    let mut mantissa = 0u64;
    let mut digits = 0usize;
    // Digits since the last separator, before the first dot, and after
    // the decimal comma; whether every group closed by a later separator
    // has three digits.
    let mut group = 0usize;
    let mut first_group: Option<usize> = None;
    let mut comma = false;
    let mut frac = 0usize;
    let mut dots = 0usize;
    let mut groups_of_three = true;
    for &b in t {
        match b {
            b'0'..=b'9' => {
                mantissa = mantissa * 10 + u64::from(b - b'0');
                digits += 1;
                group += 1;
                frac += usize::from(comma);
            }
            b'.' | b',' if comma => return None,
            b'.' => {
                dots += 1;
                match first_group {
                    None => first_group = Some(group),
                    Some(_) => groups_of_three &= group == 3,
                }
                group = 0;
            }
            b',' => {
                comma = true;
                match first_group {
                    None => first_group = Some(group),
                    Some(_) => groups_of_three &= group == 3,
                }
                group = 0;
            }
            _ => return None,
        }
        if digits > 15 {
            return None;
        }
    }
    let first = first_group.unwrap_or(group);
    let grouped = first > 0 && first <= 3 && groups_of_three;
    let value = if comma {
        // `1.234,56`, `52,00`: dots before the comma group thousands.
        if first == 0 || (dots > 0 && !grouped) {
            return None;
        }
        mantissa as f64 / POW10[frac]
    } else if dots == 0 || (grouped && group == 3) {
        // `4700`, `1.234.567`: whole.
        if digits == 0 {
            return None;
        }
        mantissa as f64
    } else if dots == 1 && first > 0 {
        // `4700.0`, `12.5`: a decimal point.
        mantissa as f64 / POW10[group]
    } else {
        return None;
    };
    Some(Some(if negative { -value } else { value }))
}

/// Powers of ten that are exact in `f64`.
const POW10: [f64; 16] = [
    1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15,
];

/// The common well-formed amounts (`1.234,56`, `52,00`, `4700.0`, `1.234`)
/// without allocating; `None` sends anything else to the general path.
///
/// With at most 15 digits the mantissa and the power of ten are exact, so the
/// one correctly rounded division gives the same `f64` as parsing the
/// decimal string.
fn fast_amount(digits: &str) -> Option<f64> {
    let (int, frac, thousands_dots) = match digits.split_once(',') {
        Some((int, frac)) => (int, frac, true),
        None if digits.contains('.') && thousands_grouped(digits) => (digits, "", true),
        None => match digits.split_once('.') {
            Some((int, frac)) => (int, frac, false),
            None => (digits, "", false),
        },
    };
    if int.is_empty()
        || frac.contains(['.', ','])
        || (thousands_dots && int.contains('.') && !thousands_grouped(int))
    {
        return None;
    }
    let mut mantissa = 0u64;
    let mut count = 0;
    for b in int.bytes().filter(|b| *b != b'.').chain(frac.bytes()) {
        count += 1;
        if !b.is_ascii_digit() || count > 15 {
            return None;
        }
        mantissa = mantissa * 10 + u64::from(b - b'0');
    }
    if !thousands_dots && int.contains('.') {
        return None;
    }
    Some(mantissa as f64 / POW10[frac.len()])
}

fn thousands_grouped(digits: &str) -> bool {
    let mut groups = digits.split('.');
    let first = groups.next().unwrap_or("");
    !first.is_empty() && first.len() <= 3 && groups.all(|g| g.len() == 3)
}

fn check_thousands(int: &str) -> Result<(), String> {
    if int.contains('.') && !thousands_grouped(int) {
        return Err("misplaced thousands separator".into());
    }
    if int.is_empty() {
        return Err("no digits before the decimal comma".into());
    }
    Ok(())
}

/// Formats an amount the way the real file does: ` 1.234,56 `, or ` -   `.
pub fn format_amount(value: Option<f64>) -> String {
    let Some(v) = value else {
        return MISSING_AMOUNT.to_owned();
    };
    let cents = (v.abs() * 100.0).round() as u64;
    let int = (cents / 100).to_string();
    let mut grouped = String::with_capacity(int.len() + int.len() / 3);
    for (i, c) in int.chars().enumerate() {
        if i > 0 && (int.len() - i).is_multiple_of(3) {
            grouped.push('.');
        }
        grouped.push(c);
    }
    let sign = if v < 0.0 && cents > 0 { "-" } else { "" };
    format!(" {sign}{grouped},{:02} ", cents % 100)
}

/// Parses `dd.mm.yyyy` (the file's format) or ISO `yyyy-mm-dd`.
pub fn parse_date(text: &str) -> Result<NaiveDate, String> {
    let t = text.trim();
    // The file's own `dd.mm.yyyy` without chrono's format interpreter: this
    // runs once per row of every file. Anything else takes the general path.
    if let [d1, d2, b'.', m1, m2, b'.', y1, y2, y3, y4] = *t.as_bytes() {
        let digits = [d1, d2, m1, m2, y1, y2, y3, y4];
        if digits.iter().all(u8::is_ascii_digit) {
            let n = |bs: &[u8]| bs.iter().fold(0u32, |acc, b| acc * 10 + u32::from(b - b'0'));
            let (day, month, year) = (n(&digits[0..2]), n(&digits[2..4]), n(&digits[4..8]));
            return NaiveDate::from_ymd_opt(year as i32, month, day)
                .ok_or_else(|| "expected a date as dd.mm.yyyy (or yyyy-mm-dd)".to_string());
        }
    }
    NaiveDate::parse_from_str(t, "%d.%m.%Y")
        .or_else(|_| NaiveDate::parse_from_str(t, "%Y-%m-%d"))
        .map_err(|_| "expected a date as dd.mm.yyyy (or yyyy-mm-dd)".to_string())
}

/// Maps a merchant-group label to its clean upper-case ASCII name:
/// `SERVI\x82O` (cp1252 `‚`) and `SERVIÇO` become `SERVICO`, `AUTO PE AS`
/// becomes `AUTO PECAS`, accents are folded and blanks collapsed.
pub fn normalise_group(label: &str) -> String {
    let mut out = String::with_capacity(label.len());
    for word in label.split_whitespace() {
        if !out.is_empty() {
            out.push(' ');
        }
        for c in word.chars().flat_map(char::to_uppercase) {
            out.push(fold_char(c));
        }
    }
    match out.as_str() {
        "AUTO PE AS" => "AUTO PECAS".to_owned(),
        _ => out,
    }
}

/// Folds the accented letters Portuguese labels use to ASCII; the byte 0x82
/// (decoded as `‚`) stands for `Ç` in the real file.
fn fold_char(c: char) -> char {
    match c {
        'Á' | 'À' | 'Â' | 'Ã' | 'Ä' => 'A',
        'É' | 'È' | 'Ê' | 'Ë' => 'E',
        'Í' | 'Ì' | 'Î' | 'Ï' => 'I',
        'Ó' | 'Ò' | 'Ô' | 'Õ' | 'Ö' => 'O',
        'Ú' | 'Ù' | 'Û' | 'Ü' => 'U',
        'Ç' | '\u{201A}' => 'C',
        'Ñ' => 'N',
        other => other,
    }
}

/// One parsed data row whose text fields still borrow the decoded line, as
/// written in the file. [`Row::to_transaction`] normalises them; the offline
/// reader normalises each distinct value once instead of once per row.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Row<'a> {
    /// The customer id, trimmed (digits only).
    pub id: &'a str,
    pub safra_abertura: Option<u32>,
    pub cidade: &'a str,
    pub estado: &'a str,
    pub idade: Option<u16>,
    pub sexo: Option<Sex>,
    pub limite_total: f64,
    pub limite_disp: f64,
    pub date: NaiveDate,
    pub valor: Option<f64>,
    pub grupo: &'a str,
    pub cidade_estabelecimento: &'a str,
    pub pais_estabelecimento: &'a str,
}

impl Row<'_> {
    /// The row with every text field normalised.
    pub fn to_transaction(&self) -> Transaction {
        Transaction {
            id: self.id.to_owned(),
            safra_abertura: self.safra_abertura,
            cidade: TextField::Cidade.normalise(self.cidade),
            estado: TextField::Estado.normalise(self.estado),
            idade: self.idade,
            sexo: self.sexo,
            limite_total: self.limite_total,
            limite_disp: self.limite_disp,
            date: self.date,
            valor: self.valor,
            grupo: TextField::Grupo.normalise(self.grupo),
            cidade_estabelecimento: TextField::CidadeEstabelecimento.normalise(self.cidade_estabelecimento),
            pais_estabelecimento: TextField::PaisEstabelecimento.normalise(self.pais_estabelecimento),
        }
    }
}

/// The contract's free-text columns, each with the one normaliser its
/// values go through: [`Row::to_transaction`] and the offline reader (which
/// normalises each distinct value once) both map a column to its normaliser
/// here.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TextField {
    Cidade,
    Estado,
    Grupo,
    CidadeEstabelecimento,
    PaisEstabelecimento,
}

impl TextField {
    /// Every text column, in the order staged tables keep them.
    pub const ALL: [TextField; 5] = [
        TextField::Cidade,
        TextField::Estado,
        TextField::Grupo,
        TextField::CidadeEstabelecimento,
        TextField::PaisEstabelecimento,
    ];

    /// The column's name in the raw header (and in staged tables).
    pub const fn column(self) -> &'static str {
        match self {
            TextField::Cidade => "cidade",
            TextField::Estado => "estado",
            TextField::Grupo => "grupo_estabelecimento",
            TextField::CidadeEstabelecimento => "cidade_estabelecimento",
            TextField::PaisEstabelecimento => "pais_estabelecimento",
        }
    }

    /// A raw value of this column, normalised.
    pub fn normalise(self, raw: &str) -> String {
        match self {
            TextField::Grupo => normalise_group(raw),
            TextField::Estado | TextField::PaisEstabelecimento => normalise_code(raw),
            TextField::Cidade | TextField::CidadeEstabelecimento => normalise_city(raw),
        }
    }
}

/// A city as stored: trimmed, otherwise as written (merchant cities are cut
/// to [`MERCHANT_CITY_LEN`] characters in the source and stay so).
pub fn normalise_city(text: &str) -> String {
    text.trim().to_owned()
}

/// A state or country code: trimmed, upper case.
pub fn normalise_code(text: &str) -> String {
    text.trim().to_uppercase()
}

/// Parses the 13 decoded fields of one data row (in [`COLUMNS`] order).
pub fn parse_fields(fields: &[&str]) -> Result<Transaction, FieldError> {
    parse_row(fields).map(|row| row.to_transaction())
}

/// Parses the 13 decoded fields of one data row without copying its text.
pub fn parse_row<'a>(fields: &[&'a str]) -> Result<Row<'a>, FieldError> {
    if fields.len() != COLUMNS.len() {
        return Err(FieldError::new(
            "row",
            &fields.join(";"),
            format!("expected {} fields, got {}", COLUMNS.len(), fields.len()),
        ));
    }
    let id = check_id(fields[0])?;
    let safra_abertura = parse_cohort(fields[1])?;
    let idade = parse_age(fields[4])?;
    let sexo = parse_sex(fields[5])?;
    let limite_total = parse_limit("limite_total", fields[6])?;
    if limite_total < 0.0 {
        return Err(FieldError::new("limite_total", fields[6], "must not be negative"));
    }
    let limite_disp = parse_limit("limite_disp", fields[7])?;
    let date = parse_date(fields[8]).map_err(|r| FieldError::new("data", fields[8], r))?;
    let valor = parse_amount(fields[9]).map_err(|r| FieldError::new(" valor ", fields[9], r))?;
    check_country(fields[12])?;
    Ok(Row {
        id,
        safra_abertura,
        cidade: fields[2],
        estado: fields[3],
        idade,
        sexo,
        limite_total,
        limite_disp,
        date,
        valor,
        grupo: fields[10],
        cidade_estabelecimento: fields[11],
        pais_estabelecimento: fields[12],
    })
}

/// A merchant country: empty, or a two-letter code (`BR`, `us`). A field
/// of another length is not a country code: a last line cut short turns
/// `BR` into `B` (issue 12).
pub fn check_country(text: &str) -> Result<(), FieldError> {
    let t = text.trim();
    if t.is_empty() || (t.len() == 2 && t.bytes().all(|b| b.is_ascii_alphabetic())) {
        return Ok(());
    }
    Err(FieldError::new(
        "pais_estabelecimento",
        text,
        "expected a two-letter country code",
    ))
}

/// Checks a merchant group as normalised by [`normalise_group`]: empty (the
/// real file leaves some empty) or one of the contract's groups,
/// [`KNOWN_GROUPS`]. A label outside the list is refused rather than made a
/// new category: a UTF-8 `SERVIÇO` read as cp1252 becomes `SERVIA‡O`, which
/// is not vital, and would flip its rows' labels (issue 12). `raw` is the
/// label as written, named in the error.
pub fn check_group(raw: &str, normalised: &str) -> Result<(), FieldError> {
    if normalised.is_empty() || KNOWN_GROUPS.contains(&normalised) {
        return Ok(());
    }
    Err(FieldError::new(
        "grupo_estabelecimento",
        raw,
        format!(
            "not a merchant group of the contract (empty, or one of {})",
            KNOWN_GROUPS.join(", ")
        ),
    ))
}

/// A customer id: a non-empty run of digits.
pub fn parse_id(text: &str) -> Result<String, FieldError> {
    check_id(text).map(str::to_owned)
}

/// A customer id, trimmed and checked, without copying it.
pub fn check_id(text: &str) -> Result<&str, FieldError> {
    let t = text.trim();
    if t.is_empty() || !t.bytes().all(|b| b.is_ascii_digit()) {
        return Err(FieldError::new("id", text, "expected a customer id of digits"));
    }
    Ok(t)
}

/// An account-opening cohort `yyyymm`, or `None` when empty.
pub fn parse_cohort(text: &str) -> Result<Option<u32>, FieldError> {
    let t = text.trim();
    if t.is_empty() {
        return Ok(None);
    }
    let err = || FieldError::new("safra_abertura", text, "expected a cohort as yyyymm");
    if t.len() != 6 {
        return Err(err());
    }
    let v: u32 = t.parse().map_err(|_| err())?;
    if !(1..=12).contains(&(v % 100)) || v / 100 < 1900 {
        return Err(err());
    }
    Ok(Some(v))
}

/// An age in years, or `None` when empty.
pub fn parse_age(text: &str) -> Result<Option<u16>, FieldError> {
    let t = text.trim();
    if t.is_empty() {
        return Ok(None);
    }
    // Exports from dataframe tools sometimes write whole numbers as `34.0`.
    let whole = t.strip_suffix(".0").unwrap_or(t);
    match whole.parse::<u16>() {
        Ok(v) if v <= 120 => Ok(Some(v)),
        _ => Err(FieldError::new(
            "idade",
            text,
            "expected an age between 0 and 120",
        )),
    }
}

/// `F` or `M`, or `None` when empty.
pub fn parse_sex(text: &str) -> Result<Option<Sex>, FieldError> {
    match text.trim() {
        "" => Ok(None),
        "F" | "f" => Ok(Some(Sex::F)),
        "M" | "m" => Ok(Some(Sex::M)),
        _ => Err(FieldError::new("sexo", text, "expected F or M")),
    }
}

/// A credit limit, plain (`4700.0`) or Brazilian (` 4.700,00 `); required.
pub fn parse_limit(field: &'static str, text: &str) -> Result<f64, FieldError> {
    match parse_amount(text) {
        Ok(Some(v)) => Ok(v),
        Ok(None) => Err(FieldError::new(field, text, "a limit is required")),
        Err(reason) => Err(FieldError::new(field, text, reason)),
    }
}

/// A valid data row (in [`COLUMNS`] order) that tests change one field of.
#[cfg(test)]
pub(crate) const SAMPLE_ROW: [&str; 13] = [
    "1",
    "201405",
    "SAO PAULO",
    "SP",
    "34",
    "F",
    "4700.0",
    "612.0",
    "02.07.2020",
    " 52,00 ",
    "VAREJO",
    "SAO PAULO",
    "BR",
];

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn amounts_in_every_written_form() {
        assert_eq!(parse_amount(" 1.234,56 "), Ok(Some(1234.56)));
        assert_eq!(parse_amount(" 52,00 "), Ok(Some(52.0)));
        assert_eq!(parse_amount(" -   "), Ok(None));
        assert_eq!(parse_amount(""), Ok(None));
        assert_eq!(parse_amount("4700.0"), Ok(Some(4700.0)));
        assert_eq!(parse_amount("1.234"), Ok(Some(1234.0)));
        assert_eq!(parse_amount("12.5"), Ok(Some(12.5)));
        assert_eq!(parse_amount(" -12,30 "), Ok(Some(-12.3)));
        // Too many digits for the fast path: the general parse still applies.
        assert_eq!(
            parse_amount("123456789012345678901234"),
            Ok(Some(123456789012345678901234.0))
        );
        assert_eq!(
            parse_amount("1.234.567.890.123.456,789"),
            Ok(Some("1234567890123456.789".parse().expect("decimal")))
        );
        assert!(parse_amount("12,3,4").is_err());
        assert!(parse_amount("abc").is_err());
        assert!(parse_amount("1.23,00").is_err());
    }

    #[test]
    fn amounts_are_formatted_like_the_real_file() {
        assert_eq!(format_amount(Some(1234.56)), " 1.234,56 ");
        assert_eq!(format_amount(Some(5.0)), " 5,00 ");
        assert_eq!(format_amount(Some(1_000_000.0)), " 1.000.000,00 ");
        assert_eq!(format_amount(None), " -   ");
    }

    #[test]
    fn text_fields_are_contract_columns_normalised_like_a_row() {
        for f in TextField::ALL {
            assert!(COLUMNS.contains(&f.column()), "{f:?}");
        }
        let row = parse_row(&[
            "1",
            "201405",
            " sao paulo ",
            " sp",
            "34",
            "F",
            "1000.0",
            "150.0",
            "07.03.2020",
            " 52,00 ",
            "SERVI\u{201A}O",
            " SAO PAULO ",
            "br ",
        ])
        .expect("valid row");
        let txn = row.to_transaction();
        let raw = [
            row.cidade,
            row.estado,
            row.grupo,
            row.cidade_estabelecimento,
            row.pais_estabelecimento,
        ];
        let normalised = [
            &txn.cidade,
            &txn.estado,
            &txn.grupo,
            &txn.cidade_estabelecimento,
            &txn.pais_estabelecimento,
        ];
        for ((f, raw), want) in TextField::ALL.into_iter().zip(raw).zip(normalised) {
            assert_eq!(&f.normalise(raw), want, "{f:?}");
        }
        assert_eq!(txn.grupo, "SERVICO");
        assert_eq!(txn.estado, "SP");
    }

    #[test]
    fn mis_encoded_groups_are_normalised() {
        let decoded = decode_cp1252(b"SERVI\x82O");
        assert_eq!(normalise_group(&decoded), "SERVICO");
        assert_eq!(normalise_group("SERVIÇO"), "SERVICO");
        assert_eq!(normalise_group("AUTO PE AS"), "AUTO PECAS");
        assert_eq!(normalise_group(" loja  de depart "), "LOJA DE DEPART");
        assert_eq!(normalise_group(""), "");
    }

    #[test]
    fn dates_in_file_and_iso_form() {
        let d = NaiveDate::from_ymd_opt(2020, 3, 7).expect("valid date");
        assert_eq!(parse_date("07.03.2020"), Ok(d));
        assert_eq!(parse_date("2020-03-07"), Ok(d));
        assert!(parse_date("31.02.2020").is_err());
        assert!(parse_date("2020/03/07").is_err());
    }

    #[test]
    fn a_bad_field_is_named() {
        let mut fields = vec![
            "123",
            "201405",
            "SAO PAULO",
            "SP",
            "34",
            "F",
            "4700.0",
            "1500.5",
            "07.03.2020",
            " 52,00 ",
            "VAREJO",
            "SAO PAULO",
            "BR",
        ];
        assert!(parse_fields(&fields).is_ok());
        fields[8] = "2020.03.07";
        let err = parse_fields(&fields).expect_err("bad date");
        assert_eq!(err.field, "data");
        fields[8] = "07.03.2020";
        fields[5] = "X";
        assert_eq!(parse_fields(&fields).expect_err("bad sex").field, "sexo");
        fields[5] = "M";
        fields[7] = "";
        assert_eq!(parse_fields(&fields).expect_err("no limit").field, "limite_disp");
    }

    /// Issue 12: a country code is two letters (or empty), so a last line
    /// cut from `BR` to `B` is refused.
    #[test]
    fn a_country_code_is_two_letters_or_empty() {
        for ok in ["BR", " br ", "US", ""] {
            assert_eq!(check_country(ok), Ok(()), "{ok:?}");
        }
        for bad in ["B", "BRA", "B1", "1"] {
            assert_eq!(
                check_country(bad).expect_err("refused").field,
                "pais_estabelecimento",
                "{bad:?}"
            );
        }
    }

    /// Issue 12: an unknown merchant group is an error naming it; the
    /// empty group and every known one (however written) pass.
    #[test]
    fn an_unknown_merchant_group_is_refused_naming_it() {
        for raw in ["", "SERVI\u{201A}O", "SERVIÇO", "auto pe as", "M.O.T.O."] {
            assert_eq!(check_group(raw, &normalise_group(raw)), Ok(()), "{raw:?}");
        }
        // UTF-8 SERVIÇO decoded as cp1252.
        let misread = decode_cp1252("SERVIÇO".as_bytes());
        let err = check_group(&misread, &normalise_group(&misread)).expect_err("unknown");
        assert_eq!(err.field, "grupo_estabelecimento");
        assert_eq!(err.value, misread);
        assert!(
            !err.reason.contains(&*misread),
            "the reason never quotes the input"
        );
    }

    proptest! {
        #[test]
        fn formatted_amounts_parse_back(cents in -1_000_000_000i64..1_000_000_000i64) {
            let v = cents as f64 / 100.0;
            let parsed = parse_amount(&format_amount(Some(v))).expect("parses").expect("present");
            prop_assert!((parsed - v).abs() < 1e-6);
        }

        /// The allocation-free path must agree bit for bit with parsing the
        /// decimal string.
        #[test]
        fn fast_amounts_equal_the_general_parse(int in 0u64..10_000_000_000, frac in 0u32..100, dec in 0usize..4) {
            let text = if dec == 0 { format_amount(Some(int as f64)) } else {
                format!("{int},{:0width$}", u64::from(frac) % 10u64.pow(dec as u32), width = dec)
            };
            let plain = text.trim().replace('.', "").replace(',', ".");
            let expected: f64 = plain.parse().expect("plain decimal");
            prop_assert_eq!(parse_amount(&text), Ok(Some(expected)));
        }

        #[test]
        fn fast_dates_equal_chrono(day in 1u32..32, month in 1u32..13, year in 1990i32..2100) {
            let text = format!("{day:02}.{month:02}.{year}");
            let chrono = NaiveDate::parse_from_str(&text, "%d.%m.%Y").ok();
            prop_assert_eq!(parse_date(&text).ok(), chrono);
        }

        /// The one-pass path gives exactly what the general one gives
        /// wherever it answers (it leaves everything else to it).
        #[test]
        fn quick_amounts_equal_the_general_parse(
            s in "[ ]{0,2}-?[ ]{0,1}[0-9]{0,4}([.,][0-9]{0,4}){0,4}[ \t]{0,2}|[ -]{0,3}[0-9.,]{0,18}[ ]{0,2}"
        ) {
            if let Some(quick) = quick_amount(s.as_bytes()) {
                let general = parse_amount_general(&s);
                prop_assert_eq!(quick.map(f64::to_bits), general.clone().ok().flatten().map(f64::to_bits), "{:?} vs {:?}", quick, general);
                prop_assert!(general.is_ok());
            }
        }

        #[test]
        fn parse_amount_never_panics(s in "\\PC{0,20}") {
            let _ = parse_amount(&s);
        }
    }
}
