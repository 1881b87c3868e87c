//! Reads a request body's JSON straight into the fields of a transaction,
//! without building a `serde_json::Value`: keys are matched to the contract's
//! columns as they stream past, text is borrowed from the body when it holds
//! no escapes, and values of keys that name no field are skipped unread. The
//! same [`Fields`] come from an already decoded JSON object (the MLflow, v2
//! and CSV routes), so every route checks a row the same way.

use std::borrow::Cow;
use std::fmt;

use revspend_core::contract::COLUMNS;
use serde::de::{self, Deserialize, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value};

use super::column_of;

/// One field's JSON value, its text borrowed from the body where it can be.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Scalar<'a> {
    Null,
    Text(Cow<'a, str>),
    Number(serde_json::Number),
    /// A boolean, an array or an object (never a field's value): its JSON
    /// type as error messages name it.
    Other(&'static str),
}

impl<'a> Scalar<'a> {
    fn of(value: &'a Value) -> Scalar<'a> {
        match value {
            Value::Null => Scalar::Null,
            Value::String(s) => Scalar::Text(Cow::Borrowed(s)),
            Value::Number(n) => Scalar::Number(n.clone()),
            other => Scalar::Other(super::json_type(other)),
        }
    }

    /// The value's JSON type, as error messages name it.
    pub(crate) fn json_type(&self) -> &'static str {
        match self {
            Scalar::Null => "null",
            Scalar::Text(_) => "a string",
            Scalar::Number(_) => "a number",
            Scalar::Other(kind) => kind,
        }
    }

    /// The value as the client wrote it (for a boolean, array or object, its
    /// type), for error messages.
    pub(crate) fn shown(&self) -> String {
        match self {
            Scalar::Null => "null".to_owned(),
            Scalar::Text(s) => Value::from(s.as_ref()).to_string(),
            Scalar::Number(n) => n.to_string(),
            Scalar::Other(kind) => (*kind).to_owned(),
        }
    }
}

/// The fields of one request object by column, each with the key the client
/// used for it, and what does not fit the contract's field names.
#[derive(Debug, Default)]
pub(crate) struct Fields<'a> {
    pub(crate) values: [Option<(Cow<'a, str>, Scalar<'a>)>; COLUMNS.len()],
    /// The first key, in the order sent, that names no field.
    pub(crate) unknown: Option<String>,
    /// The first column given twice: the column and the two keys, in the
    /// order sent.
    pub(crate) twice: Option<(usize, String, String)>,
}

impl<'a> Fields<'a> {
    /// The fields of a decoded JSON object.
    pub(crate) fn of_object(object: &'a Map<String, Value>) -> Fields<'a> {
        let mut fields = Fields::default();
        for (key, value) in object {
            fields.put(Cow::Borrowed(key), || Scalar::of(value));
        }
        fields
    }

    /// Records one key and its value (read only when the key names a field
    /// seen for the first time).
    fn put(&mut self, key: Cow<'a, str>, value: impl FnOnce() -> Scalar<'a>) {
        match column_of(&key) {
            None => {
                if self.unknown.is_none() {
                    self.unknown = Some(key.into_owned());
                }
            }
            Some(column) => match &self.values[column] {
                Some((first, _)) => {
                    if self.twice.is_none() {
                        self.twice = Some((column, first.to_string(), key.into_owned()));
                    }
                }
                None => self.values[column] = Some((key, value())),
            },
        }
    }
}

/// A request body: one JSON object, or what was sent instead.
// Almost every body is an object: boxing it would cost an allocation per
// request to save stack space in the rare other case.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
pub(crate) enum Body<'a> {
    Object(Fields<'a>),
    /// Not an object: its JSON type.
    Not(&'static str),
}

/// A `/predict/batch` body: an array of request objects, or what was sent
/// instead.
#[derive(Debug)]
pub(crate) enum Rows<'a> {
    Array(Vec<Body<'a>>),
    /// Not an array: its JSON type.
    Not(&'static str),
}

/// A string borrowed from the body when it holds no escapes.
struct Text<'a>(Cow<'a, str>);

impl<'de> Deserialize<'de> for Text<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct TextVisitor;
        impl<'de> Visitor<'de> for TextVisitor {
            type Value = Text<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Text<'de>, E> {
                Ok(Text(Cow::Borrowed(v)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Text<'de>, E> {
                Ok(Text(Cow::Owned(v.to_owned())))
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<Text<'de>, E> {
                Ok(Text(Cow::Owned(v)))
            }
        }
        deserializer.deserialize_str(TextVisitor)
    }
}

/// The scalar types for [`Body`] and [`Rows`], which take none of them.
macro_rules! scalar_types {
    ($wrap:expr) => {
        fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok($wrap("null"))
        }
        fn visit_u64<E: de::Error>(self, _: u64) -> Result<Self::Value, E> {
            Ok($wrap("a number"))
        }
        fn visit_i64<E: de::Error>(self, _: i64) -> Result<Self::Value, E> {
            Ok($wrap("a number"))
        }
        fn visit_f64<E: de::Error>(self, _: f64) -> Result<Self::Value, E> {
            Ok($wrap("a number"))
        }
        fn visit_str<E: de::Error>(self, _: &str) -> Result<Self::Value, E> {
            Ok($wrap("a string"))
        }
    };
}

impl<'de> Deserialize<'de> for Scalar<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct ScalarVisitor;
        impl<'de> Visitor<'de> for ScalarVisitor {
            type Value = Scalar<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a JSON value")
            }
            fn visit_unit<E: de::Error>(self) -> Result<Scalar<'de>, E> {
                Ok(Scalar::Null)
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Scalar<'de>, E> {
                Ok(Scalar::Number(v.into()))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Scalar<'de>, E> {
                Ok(Scalar::Number(v.into()))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Scalar<'de>, E> {
                // JSON has no NaN or infinity: serde_json refuses them first.
                serde_json::Number::from_f64(v)
                    .map(Scalar::Number)
                    .ok_or_else(|| E::custom("a number that is not finite"))
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Scalar<'de>, E> {
                Ok(Scalar::Text(Cow::Borrowed(v)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Scalar<'de>, E> {
                Ok(Scalar::Text(Cow::Owned(v.to_owned())))
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<Scalar<'de>, E> {
                Ok(Scalar::Text(Cow::Owned(v)))
            }
            fn visit_bool<E: de::Error>(self, _: bool) -> Result<Scalar<'de>, E> {
                Ok(Scalar::Other("a boolean"))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Scalar<'de>, A::Error> {
                while seq.next_element::<IgnoredAny>()?.is_some() {}
                Ok(Scalar::Other("an array"))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Scalar<'de>, A::Error> {
                while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
                Ok(Scalar::Other("an object"))
            }
        }
        deserializer.deserialize_any(ScalarVisitor)
    }
}

impl<'de> Deserialize<'de> for Body<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct BodyVisitor;
        impl<'de> Visitor<'de> for BodyVisitor {
            type Value = Body<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Body<'de>, A::Error> {
                let mut fields = Fields::default();
                while let Some(Text(key)) = map.next_key::<Text<'de>>()? {
                    if column_of(&key).is_some() {
                        let value = map.next_value::<Scalar<'de>>()?;
                        fields.put(key, || value);
                    } else {
                        map.next_value::<IgnoredAny>()?;
                        fields.put(key, || Scalar::Null);
                    }
                }
                Ok(Body::Object(fields))
            }
            fn visit_bool<E: de::Error>(self, _: bool) -> Result<Body<'de>, E> {
                Ok(Body::Not("a boolean"))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Body<'de>, A::Error> {
                while seq.next_element::<IgnoredAny>()?.is_some() {}
                Ok(Body::Not("an array"))
            }
            scalar_types!(Body::Not);
        }
        deserializer.deserialize_any(BodyVisitor)
    }
}

impl<'de> Deserialize<'de> for Rows<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct RowsVisitor;
        impl<'de> Visitor<'de> for RowsVisitor {
            type Value = Rows<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a JSON array")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Rows<'de>, A::Error> {
                let mut rows = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(4096));
                while let Some(row) = seq.next_element::<Body<'de>>()? {
                    rows.push(row);
                }
                Ok(Rows::Array(rows))
            }
            fn visit_bool<E: de::Error>(self, _: bool) -> Result<Rows<'de>, E> {
                Ok(Rows::Not("a boolean"))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Rows<'de>, A::Error> {
                while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
                Ok(Rows::Not("an object"))
            }
            scalar_types!(Rows::Not);
        }
        deserializer.deserialize_any(RowsVisitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(text: &str) -> Body<'_> {
        serde_json::from_str(text).expect("valid JSON")
    }

    #[test]
    fn text_without_escapes_is_borrowed_from_the_body() {
        let Body::Object(fields) = body(r#"{"cidade": "SAO PAULO", "estado": "S\u0050"}"#) else {
            panic!("an object")
        };
        let (_, cidade) = fields.values[2].as_ref().expect("cidade");
        assert!(matches!(cidade, Scalar::Text(Cow::Borrowed("SAO PAULO"))));
        let (_, estado) = fields.values[3].as_ref().expect("estado");
        assert_eq!(estado, &Scalar::Text(Cow::Owned("SP".into())));
    }

    #[test]
    fn reads_what_the_decoded_object_holds() {
        let text = r#"{"id": 12, " valor ": null, "sexo": true, "idade": [1, {"a": 2}],
                       "extra": {"deep": [1, 2]}, "valor": "1,0", "cidade": {"x": 1}}"#;
        let Body::Object(streamed) = body(text) else {
            panic!("an object")
        };
        let value: Value = serde_json::from_str(text).expect("valid JSON");
        let decoded = Fields::of_object(value.as_object().expect("object"));
        assert_eq!(streamed.values, decoded.values);
        assert_eq!(streamed.unknown.as_deref(), Some("extra"));
        assert_eq!(decoded.unknown.as_deref(), Some("extra"));
        assert_eq!(streamed.twice, Some((9, " valor ".into(), "valor".into())));
        assert_eq!(
            streamed.values[4].as_ref().map(|v| v.1.json_type()),
            Some("an array")
        );
        assert_eq!(
            streamed.values[2].as_ref().map(|v| v.1.json_type()),
            Some("an object")
        );
        assert_eq!(
            streamed.values[5].as_ref().map(|v| v.1.shown()),
            Some("a boolean".into())
        );
    }

    #[test]
    fn the_same_key_twice_is_seen() {
        let Body::Object(fields) = body(r#"{"data": "01.01.2020", "data": "02.01.2020"}"#) else {
            panic!("an object")
        };
        assert_eq!(fields.twice, Some((8, "data".into(), "data".into())));
    }

    #[test]
    fn other_bodies_are_named_by_type() {
        for (text, kind) in [
            ("[1, 2]", "an array"),
            ("\"x\"", "a string"),
            ("3.5", "a number"),
            ("-3", "a number"),
            ("null", "null"),
            ("false", "a boolean"),
        ] {
            assert!(matches!(body(text), Body::Not(k) if k == kind), "{text}");
        }
        let rows: Rows = serde_json::from_str(r#"{"a": [1]}"#).expect("valid JSON");
        assert!(matches!(rows, Rows::Not("an object")));
        let rows: Rows = serde_json::from_str(r#"[{"id": "1"}, 2]"#).expect("valid JSON");
        assert!(matches!(&rows, Rows::Array(r) if matches!(r[1], Body::Not("a number"))));
        assert!(serde_json::from_str::<Body>(r#"{"id": "1",}"#).is_err());
        assert!(serde_json::from_str::<Rows>("[{}").is_err());
    }
}
