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

use std::borrow::Cow;

use revspend_core::contract::{self, COLUMNS, FieldError, Group, Transaction, ValueRanges};
use serde_json::Value;

use crate::ApiError;

mod json;

use json::{Body, Fields, Rows, Scalar};

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
    column_of(name).is_some()
}

/// Reads a `POST /predict` body and checks it against the quality suite's
/// row rules (`ranges`, the serving snapshot's): JSON that does not parse or
/// a field that cannot be read is a 400, a row that breaks a rule a 422
/// naming it.
pub fn transaction_from_json(bytes: &[u8], ranges: &ValueRanges) -> Result<Transaction, ApiError> {
    let body: Body = serde_json::from_slice(bytes).map_err(not_json)?;
    checked(body, ranges)
}

/// Parses a request body already decoded as JSON (a row of the MLflow, v2
/// and CSV forms) and checks it as [`transaction_from_json`] does.
pub fn transaction(body: &Value, ranges: &ValueRanges) -> Result<Transaction, ApiError> {
    match body {
        Value::Object(object) => checked(Body::Object(Fields::of_object(object)), ranges),
        other => checked(Body::Not(json_type(other)), ranges),
    }
}

/// Reads a `/predict/batch` JSON body: one parsed and checked transaction,
/// or its error, per row in order; a 400 when the body is not a JSON array.
pub(crate) fn transactions_from_json(
    bytes: &[u8],
    ranges: &ValueRanges,
) -> Result<Vec<Result<Transaction, ApiError>>, ApiError> {
    match serde_json::from_slice(bytes).map_err(not_json)? {
        Rows::Array(rows) => Ok(rows.into_iter().map(|row| checked(row, ranges)).collect()),
        Rows::Not(kind) => Err(ApiError::bad_request(format!(
            "the body of /predict/batch is a JSON array of transactions (or text/csv with a header); got {kind}"
        ))),
    }
}

/// The 400 for a body that does not parse as JSON.
fn not_json(e: serde_json::Error) -> ApiError {
    ApiError::bad_request(format!("the request body is not valid JSON: {e}"))
}

/// The transaction in one request object, checked against the row rules.
fn checked(body: Body, ranges: &ValueRanges) -> Result<Transaction, ApiError> {
    let fields = match body {
        Body::Object(fields) => fields,
        Body::Not(kind) => {
            return Err(ApiError::bad_request(format!(
                "a transaction is a JSON object with the fields {}; got {kind}",
                accepted_keys(),
            )));
        }
    };
    if let Some(unknown) = &fields.unknown {
        return Err(ApiError::field(
            unknown,
            format!(
                "unknown field `{unknown}`; the accepted fields are {}",
                accepted_keys()
            ),
        ));
    }
    if let Some((column, first, second)) = &fields.twice {
        let also = if first == second {
            String::new()
        } else {
            format!(", as `{first}` and as `{second}`")
        };
        return Err(ApiError::field(
            key(*column),
            format!("field `{}` is given twice{also}; send one", key(*column)),
        ));
    }

    let missing: Vec<usize> = (0..COLUMNS.len())
        .filter(|&c| SPECS[c].1 != Presence::Optional && fields.values[c].is_none())
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

    let mut texts: Vec<Cow<str>> = Vec::with_capacity(COLUMNS.len());
    for (column, entry) in fields.values.iter().enumerate() {
        texts.push(match entry {
            None => Cow::Borrowed(""),
            Some((name, value)) => field_text(column, name, value)?,
        });
    }
    let texts: Vec<&str> = texts.iter().map(AsRef::as_ref).collect();
    let row = contract::parse_row(&texts).map_err(|e| {
        let (name, message) = named_error(&e, &fields);
        ApiError::field(&name, message)
    })?;
    contract::check_row(ranges, &row, &texts, Group::Unchecked).map_err(|v| {
        let (name, message) = named_error(&v.error, &fields);
        ApiError::rule(v.rule, &name, format!("rule `{}`: {message}", v.rule))
    })?;
    Ok(row.to_transaction())
}

/// The column a JSON key names: its raw header, or the header without
/// surrounding spaces.
fn column_of(name: &str) -> Option<usize> {
    (0..COLUMNS.len()).find(|&c| name == key(c) || name == COLUMNS[c])
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
fn field_text<'v>(column: usize, name: &str, value: &'v Scalar) -> Result<Cow<'v, str>, ApiError> {
    let (kind, presence) = SPECS[column];
    let wrong_type = |expected: &str| {
        ApiError::field(
            name,
            format!("field `{name}`: expected {expected}, got {}", value.json_type()),
        )
    };
    match value {
        Scalar::Null if presence == Presence::Required => Err(ApiError::field(
            name,
            format!("field `{name}` is required and must not be null"),
        )),
        Scalar::Null => Ok(Cow::Borrowed("")),
        Scalar::Text(s) => Ok(Cow::Borrowed(s)),
        Scalar::Number(n) => match kind {
            Kind::Id => n.as_u64().map(|v| Cow::Owned(v.to_string())).ok_or_else(|| {
                ApiError::field(
                    name,
                    format!("field `{name}`: expected a customer id of digits, got {n}"),
                )
            }),
            Kind::Integer => Ok(Cow::Owned(match n.as_u64() {
                Some(v) => v.to_string(),
                // The parser rejects what is not a whole number, naming the field.
                None => number_text(n),
            })),
            // A decimal comma makes the text unambiguous to `parse_amount`.
            Kind::Amount => Ok(Cow::Owned(number_text(n).replace('.', ","))),
            Kind::Text => Err(wrong_type("a string")),
        },
        Scalar::Other(_) => Err(wrong_type(match kind {
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
fn named_error(error: &FieldError, fields: &Fields) -> (String, String) {
    let entry = COLUMNS
        .iter()
        .position(|c| *c == error.field)
        .and_then(|c| fields.values[c].as_ref())
        .map(|(name, value)| (name.to_string(), value.shown()));
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
        // Read from the body's text, a JSON number is the exact f64 it
        // denotes, as the same digits in a raw file are.
        let text = r#"{"id": "1", "limite_total": 976323.9074058723, "limite_disp": "1,0",
                       "data": "2020-03-07", "valor": 12.34}"#;
        let txn = transaction_from_json(text.as_bytes(), &ValueRanges::default()).expect("parses");
        assert_eq!(txn.limite_total, 976323.9074058723);
        assert_eq!(
            Some(txn.limite_total),
            contract::parse_amount("976323,9074058723").expect("amount")
        );
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
        // The value is shown as the client wrote it, in JSON.
        let err = transaction_from_json(body.to_string().as_bytes(), &ValueRanges::default())
            .expect_err("not an amount");
        assert!(err.to_string().contains(r#"(got "abc")"#), "{err}");
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

    /// A JSON value of the kinds a client sends in a field, escapes included.
    fn any_field_value() -> impl proptest::strategy::Strategy<Value = Value> {
        use proptest::prelude::*;
        prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(Value::from),
            (0.0..1e7f64).prop_map(Value::from),
            "[0-9 .,-]{0,12}".prop_map(Value::String),
            "[0-9]{2}[./-][0-9]{2}[./-][0-9]{4}".prop_map(Value::String),
            any::<String>().prop_map(Value::String),
            Just(json!([1, "a"])),
            Just(json!({"a": null})),
        ]
    }

    proptest::proptest! {
        /// The body read as it streams and the body decoded first give the
        /// same transaction or the same error, whatever the fields hold.
        #[test]
        fn streaming_and_decoded_bodies_agree(
            changes in proptest::collection::vec(
                (
                    proptest::sample::select(vec![
                        "id", "safra_abertura", "idade", "limite_total", "limite_disp", "data",
                        " valor ", "valor", "grupo_estabelecimento", "cidade", "extra",
                    ]),
                    proptest::option::of(any_field_value()),
                ),
                0..5,
            )
        ) {
            let mut body = raw();
            let object = body.as_object_mut().expect("object");
            for (key, value) in changes {
                match value {
                    Some(v) => object.insert(key.to_owned(), v),
                    None => object.remove(key),
                };
            }
            let text = body.to_string();
            let streamed = transaction_from_json(text.as_bytes(), &ValueRanges::default());
            let decoded = rules_default(&serde_json::from_str(&text).expect("valid JSON"));
            match (streamed, decoded) {
                (Ok(a), Ok(b)) => proptest::prop_assert_eq!(a, b),
                (Err(a), Err(b)) => proptest::prop_assert_eq!(a.to_string(), b.to_string()),
                (a, b) => proptest::prop_assert!(false, "{text}: streamed {a:?}, decoded {b:?}"),
            }
        }
    }
}
