//! Turns a `POST /predict` JSON body into a [`Transaction`].
//!
//! Each JSON value is turned into the text a CSV field of the data contract
//! would hold, and the row goes through [`contract::parse_fields`], the parser
//! `build-features` uses: a request written in the file's format parses
//! exactly as that row would offline. JSON numbers are written back as text
//! the parsers read unambiguously (amounts with a decimal comma, so the
//! number `1.234` is 1.234 and never the thousands-grouped 1234). The row
//! is then checked against the quality suite's row rules
//! ([`contract::rules`]), the ones `build-features` quarantines rows by.

use revspend_core::contract::{self, COLUMNS, FieldError, Group, Transaction, ValueRanges};
use serde_json::{Map, Value};

use crate::ApiError;

/// How a field's JSON value becomes CSV text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// Customer id: a string of digits or a non-negative JSON integer.
    Id,
    /// Whole numbers (cohort, age): a string or a JSON number.
    Integer,
    /// Amounts and limits: a string in the file's format or a JSON number.
    Amount,
    /// Dates and labels: strings only.
    Text,
}

/// Whether a field must be present in the request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Presence {
    /// Absent or `null` is an empty field.
    Optional,
    /// Present and not `null`.
    Required,
    /// Present; `null` is an empty field (a missing amount).
    RequiredNullable,
}

/// Kind and presence of each column, in [`COLUMNS`] order.
const SPECS: [(Kind, Presence); COLUMNS.len()] = [
    (Kind::Id, Presence::Required),             // id
    (Kind::Integer, Presence::Optional),        // safra_abertura
    (Kind::Text, Presence::Optional),           // cidade
    (Kind::Text, Presence::Optional),           // estado
    (Kind::Integer, Presence::Optional),        // idade
    (Kind::Text, Presence::Optional),           // sexo
    (Kind::Amount, Presence::Required),         // limite_total
    (Kind::Amount, Presence::Required),         // limite_disp
    (Kind::Text, Presence::Required),           // data
    (Kind::Amount, Presence::RequiredNullable), // " valor "
    (Kind::Text, Presence::Optional),           // grupo_estabelecimento
    (Kind::Text, Presence::Optional),           // cidade_estabelecimento
    (Kind::Text, Presence::Optional),           // pais_estabelecimento
];

/// The JSON key of a column: its raw header without surrounding spaces
/// (` valor ` becomes `valor`; the literal ` valor ` is accepted too).
fn key(column: usize) -> &'static str {
    COLUMNS[column].trim()
}

/// The accepted field names, for error messages.
fn accepted_keys() -> String {
    (0..COLUMNS.len()).map(key).collect::<Vec<_>>().join(", ")
}

/// Whether `name` is a field of the contract (its raw header, or the header
/// without surrounding spaces).
pub fn is_field(name: &str) -> bool {
    (0..COLUMNS.len()).any(|c| name == key(c) || name == COLUMNS[c])
}

/// Parses a request body already decoded as JSON and checks it against the
/// quality suite's row rules (`ranges`, the server's current ones): a field
/// that cannot be read is a 400, a row that breaks a rule a 422 naming it.
pub fn transaction(body: &Value, ranges: &ValueRanges) -> Result<Transaction, ApiError> {
    let Value::Object(object) = body else {
        return Err(ApiError::bad_request(format!(
            "the request body must be a JSON object with the fields {}; got {}",
            accepted_keys(),
            json_type(body)
        )));
    };
    if let Some(unknown) = object.keys().find(|k| !is_field(k)) {
        return Err(ApiError::field(
            unknown,
            format!(
                "unknown field `{unknown}`; the accepted fields are {}",
                accepted_keys()
            ),
        ));
    }

    let mut found: Vec<Option<(&str, &Value)>> = Vec::with_capacity(COLUMNS.len());
    for column in 0..COLUMNS.len() {
        found.push(lookup(object, column)?);
    }
    let missing: Vec<usize> = (0..COLUMNS.len())
        .filter(|&c| SPECS[c].1 != Presence::Optional && found[c].is_none())
        .collect();
    if let Some(&first) = missing.first() {
        let hint = if SPECS[first].1 == Presence::RequiredNullable {
            " (send null when it is unknown)"
        } else {
            ""
        };
        let name = key(first);
        return Err(ApiError::field(
            name,
            format!(
                "missing required field `{name}`{hint}; required fields are {}",
                missing_list(&missing)
            ),
        ));
    }

    let mut texts = Vec::with_capacity(COLUMNS.len());
    for (column, entry) in found.iter().enumerate() {
        texts.push(match entry {
            None => String::new(),
            Some((name, value)) => field_text(column, name, value)?,
        });
    }
    let fields: Vec<&str> = texts.iter().map(String::as_str).collect();
    let row = contract::parse_row(&fields).map_err(|e| {
        let (name, message) = named_error(&e, &found);
        ApiError::field(&name, message)
    })?;
    contract::check_row(ranges, &row, &fields, Group::Unchecked).map_err(|v| {
        let (name, message) = named_error(&v.error, &found);
        ApiError::rule(v.rule, &name, format!("rule `{}`: {message}", v.rule))
    })?;
    Ok(row.to_transaction())
}

/// The value of a column and the key the client used for it.
fn lookup(object: &Map<String, Value>, column: usize) -> Result<Option<(&str, &Value)>, ApiError> {
    let trimmed = object.get_key_value(key(column));
    let raw = if COLUMNS[column] == key(column) {
        None
    } else {
        object.get_key_value(COLUMNS[column])
    };
    match (trimmed, raw) {
        (Some(_), Some(_)) => Err(ApiError::field(
            key(column),
            format!(
                "field `{}` is given twice, as `{}` and as `{}`; send one",
                key(column),
                key(column),
                COLUMNS[column]
            ),
        )),
        (Some((k, v)), None) | (None, Some((k, v))) => Ok(Some((k.as_str(), v))),
        (None, None) => Ok(None),
    }
}

fn missing_list(missing: &[usize]) -> String {
    let all: Vec<&str> = (0..COLUMNS.len())
        .filter(|&c| SPECS[c].1 != Presence::Optional)
        .map(key)
        .collect();
    let mut text = all.join(", ");
    if missing.len() > 1 {
        let names: Vec<&str> = missing.iter().map(|&c| key(c)).collect();
        text.push_str(&format!(" (missing: {})", names.join(", ")));
    }
    text
}

/// The CSV text for one JSON value, or an error naming the field.
fn field_text(column: usize, name: &str, value: &Value) -> Result<String, ApiError> {
    let (kind, presence) = SPECS[column];
    let wrong_type = |expected: &str| {
        ApiError::field(
            name,
            format!("field `{name}`: expected {expected}, got {}", json_type(value)),
        )
    };
    match value {
        Value::Null if presence == Presence::Required => Err(ApiError::field(
            name,
            format!("field `{name}` is required and must not be null"),
        )),
        Value::Null => Ok(String::new()),
        Value::String(s) => Ok(s.clone()),
        Value::Number(n) => match kind {
            Kind::Id => n.as_u64().map(|v| v.to_string()).ok_or_else(|| {
                ApiError::field(
                    name,
                    format!("field `{name}`: expected a customer id of digits, got {n}"),
                )
            }),
            Kind::Integer => Ok(match n.as_u64() {
                Some(v) => v.to_string(),
                // The parser rejects what is not a whole number, naming the field.
                None => number_text(n),
            }),
            // A decimal comma makes the text unambiguous to `parse_amount`.
            Kind::Amount => Ok(number_text(n).replace('.', ",")),
            Kind::Text => Err(wrong_type("a string")),
        },
        _ => Err(wrong_type(match kind {
            Kind::Text => "a string",
            Kind::Id => "a string of digits or an integer",
            Kind::Integer | Kind::Amount => "a number or a string",
        })),
    }
}

/// A JSON number as plain decimal text: Rust's `f64` display never uses an
/// exponent and round-trips exactly.
fn number_text(n: &serde_json::Number) -> String {
    match (n.as_u64(), n.as_i64(), n.as_f64()) {
        (Some(v), _, _) => v.to_string(),
        (None, Some(v), _) => v.to_string(),
        (None, None, Some(v)) => format!("{v}"),
        (None, None, None) => n.to_string(),
    }
}

/// A parser error, renamed to the JSON field the client sent and showing
/// the value as sent: the field's name and the message.
fn named_error(error: &FieldError, found: &[Option<(&str, &Value)>]) -> (String, String) {
    let entry = COLUMNS
        .iter()
        .position(|c| *c == error.field)
        .and_then(|c| found[c].map(|(name, value)| (name.to_owned(), value.to_string())));
    let (name, shown) =
        entry.unwrap_or_else(|| (error.field.trim().to_owned(), format!("{:?}", error.value)));
    let message = format!("field `{name}`: {} (got {shown})", error.reason);
    (name, message)
}

/// A JSON value's type, as error messages name it.
pub(crate) fn json_type(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// [`transaction`] under the quality suite's default ranges.
    fn rules_default(body: &Value) -> Result<Transaction, ApiError> {
        transaction(body, &ValueRanges::default())
    }
    use serde_json::json;

    fn raw() -> Value {
        json!({
            "id": "9876543210",
            "safra_abertura": "201405",
            "cidade": "SAO PAULO",
            "estado": "SP",
            "idade": "34",
            "sexo": "F",
            "limite_total": "4700.0",
            "limite_disp": "1500.5",
            "data": "07.03.2020",
            " valor ": " 1.234,56 ",
            "grupo_estabelecimento": "SERVI\u{201A}O",
            "cidade_estabelecimento": "SAO PAULO",
            "pais_estabelecimento": "BR",
        })
    }

    fn field_of(result: Result<Transaction, ApiError>) -> String {
        match result.expect_err("rejected") {
            ApiError::BadRequest { field, .. } => field.unwrap_or_default(),
            other => panic!("unexpected error {other:?}"),
        }
    }

    #[test]
    fn raw_strings_parse_exactly_as_the_offline_row() {
        let offline = contract::parse_fields(&[
            "9876543210",
            "201405",
            "SAO PAULO",
            "SP",
            "34",
            "F",
            "4700.0",
            "1500.5",
            "07.03.2020",
            " 1.234,56 ",
            "SERVI\u{201A}O",
            "SAO PAULO",
            "BR",
        ])
        .expect("valid row");
        assert_eq!(rules_default(&raw()).expect("valid request"), offline);
        assert_eq!(offline.grupo, "SERVICO");
    }

    #[test]
    fn json_numbers_and_iso_dates_mean_what_they_say() {
        let mut body = raw();
        body["id"] = json!(9876543210u64);
        body["safra_abertura"] = json!(201405);
        body["idade"] = json!(34.0);
        body["limite_total"] = json!(4700);
        body["limite_disp"] = json!(1500.5);
        body["data"] = json!("2020-03-07");
        body[" valor "] = json!(1234.56);
        let expected = rules_default(&raw()).expect("raw form");
        assert_eq!(rules_default(&body).expect("numeric form"), expected);

        // `1.234` as a JSON number is one real and 234 thousandths, while the
        // file's text "1.234" is a thousands-grouped 1234.
        body[" valor "] = json!(1.234);
        assert_eq!(rules_default(&body).expect("small amount").valor, Some(1.234));
        body[" valor "] = json!("1.234");
        assert_eq!(rules_default(&body).expect("grouped amount").valor, Some(1234.0));
        // Parsing is not the range check: without a range on the amount a
        // refund and a huge amount read as they are.
        let open = ValueRanges {
            valor: contract::Range::default(),
            ..ValueRanges::default()
        };
        body[" valor "] = json!(-12.5);
        assert_eq!(transaction(&body, &open).expect("refund").valor, Some(-12.5));
        body[" valor "] = json!(1e20);
        assert_eq!(transaction(&body, &open).expect("huge").valor, Some(1e20));
        assert_eq!(
            rules_default(&body)
                .expect_err("over the default range")
                .rule_name(),
            Some("ranges.valor")
        );
    }

    #[test]
    fn missing_amount_is_null_or_the_file_marker() {
        let mut body = raw();
        body[" valor "] = Value::Null;
        assert_eq!(rules_default(&body).expect("null").valor, None);
        body[" valor "] = json!(" -   ");
        assert_eq!(rules_default(&body).expect("marker").valor, None);
    }

    #[test]
    fn optional_fields_may_be_absent_or_null() {
        let mut body = raw();
        let object = body.as_object_mut().expect("object");
        for k in [
            "safra_abertura",
            "cidade",
            "estado",
            "idade",
            "sexo",
            "grupo_estabelecimento",
        ] {
            object.remove(k);
        }
        object.insert("cidade_estabelecimento".into(), Value::Null);
        object.insert("pais_estabelecimento".into(), Value::Null);
        let t = rules_default(&body).expect("minimal request");
        assert_eq!(t.idade, None);
        assert_eq!(t.grupo, "");
        assert_eq!(t.pais_estabelecimento, "");
    }

    #[test]
    fn errors_name_the_field_the_client_sent() {
        let mut body = raw();
        body[" valor "] = json!("abc");
        assert_eq!(field_of(rules_default(&body)), " valor ");
        let object = body.as_object_mut().expect("object");
        object.remove(" valor ");
        object.insert("valor".into(), json!("12,3,4"));
        assert_eq!(field_of(rules_default(&body)), "valor");
        body["valor"] = json!(true);
        assert_eq!(field_of(rules_default(&body)), "valor");

        let mut body = raw();
        body["id"] = json!(-5);
        assert_eq!(field_of(rules_default(&body)), "id");
        body["id"] = json!(12.5);
        assert_eq!(field_of(rules_default(&body)), "id");
        body["id"] = json!("12a");
        assert_eq!(field_of(rules_default(&body)), "id");

        let mut body = raw();
        body["idade"] = json!(34.5);
        assert_eq!(field_of(rules_default(&body)), "idade");
        let mut body = raw();
        body["limite_disp"] = Value::Null;
        assert_eq!(field_of(rules_default(&body)), "limite_disp");
        let mut body = raw();
        body["data"] = json!(20200307);
        assert_eq!(field_of(rules_default(&body)), "data");
        let mut body = raw();
        body["cidade"] = json!(["SAO PAULO"]);
        assert_eq!(field_of(rules_default(&body)), "cidade");
    }

    #[test]
    fn structure_errors_are_named() {
        let mut body = raw();
        body["valor"] = json!("1,00");
        assert_eq!(field_of(rules_default(&body)), "valor");

        let mut body = raw();
        body["limite"] = json!(1);
        assert_eq!(field_of(rules_default(&body)), "limite");

        let mut body = raw();
        let object = body.as_object_mut().expect("object");
        object.remove("data");
        object.remove(" valor ");
        let err = rules_default(&body).expect_err("missing");
        assert_eq!(err.field_name(), Some("data"));
        assert!(err.to_string().contains("missing: data, valor"), "{err}");

        let err = rules_default(&json!([1, 2])).expect_err("array");
        assert!(err.to_string().contains("JSON object"), "{err}");
    }
}
