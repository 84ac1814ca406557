//! The untyped value a graph file parses into before anything is interpreted.
//!
//! `ron::Value` would do, except that it silently keeps the last of two equal map keys; a
//! graph with two nodes named "load" must be refused, not half-loaded. So the file is parsed
//! by `ron` into this type, whose `Deserialize` refuses duplicate keys.

use std::fmt;

use petri_api::ParamValue;
use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};

#[derive(Clone, Debug, PartialEq)]
pub enum Raw {
    Unit,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
    Seq(Vec<Raw>),
    /// Keys in file order; duplicates refused while parsing.
    Map(Vec<(Raw, Raw)>),
}

impl Raw {
    pub fn kind(&self) -> &'static str {
        match self {
            Raw::Unit => "nothing",
            Raw::Bool(_) => "a boolean",
            Raw::Int(_) => "an integer",
            Raw::Float(_) => "a number",
            Raw::Str(_) => "a string",
            Raw::Seq(_) => "a list",
            Raw::Map(_) => "a map",
        }
    }

    /// Converts to a parameter value. Map keys must be strings.
    pub fn to_param(&self) -> Result<ParamValue, String> {
        Ok(match self {
            Raw::Unit => ParamValue::Null,
            Raw::Bool(b) => ParamValue::Bool(*b),
            Raw::Int(i) => ParamValue::Int(*i),
            Raw::Float(f) => ParamValue::Float(*f),
            Raw::Str(s) => ParamValue::Str(s.clone()),
            Raw::Seq(v) => ParamValue::List(v.iter().map(Raw::to_param).collect::<Result<_, _>>()?),
            Raw::Map(m) => {
                let mut out = std::collections::BTreeMap::new();
                for (k, v) in m {
                    let Raw::Str(k) = k else { return Err(format!("map keys must be strings, found {}", k.kind())) };
                    out.insert(k.clone(), v.to_param()?);
                }
                ParamValue::Map(out)
            }
        })
    }
}

/// Parses RON text into a [`Raw`] value. Errors carry the line and column.
pub fn parse(text: &str) -> Result<Raw, String> {
    ron::Options::default().from_str::<Raw>(text).map_err(|e| {
        // SpannedError's Display gives "line:col-line:col: message"; keep the start.
        let pos = e.span.start;
        format!("line {}, column {}: {}", pos.line, pos.col, e.code)
    })
}

impl<'de> Deserialize<'de> for Raw {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Raw, D::Error> {
        d.deserialize_any(RawVisitor)
    }
}

struct RawVisitor;

impl<'de> Visitor<'de> for RawVisitor {
    type Value = Raw;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a RON value")
    }
    fn visit_bool<E>(self, v: bool) -> Result<Raw, E> {
        Ok(Raw::Bool(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Raw, E> {
        Ok(Raw::Int(v))
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Raw, E> {
        i64::try_from(v).map(Raw::Int).map_err(|_| E::custom(format!("integer {v} is too large")))
    }
    fn visit_i128<E: de::Error>(self, v: i128) -> Result<Raw, E> {
        i64::try_from(v).map(Raw::Int).map_err(|_| E::custom(format!("integer {v} is too large")))
    }
    fn visit_u128<E: de::Error>(self, v: u128) -> Result<Raw, E> {
        i64::try_from(v).map(Raw::Int).map_err(|_| E::custom(format!("integer {v} is too large")))
    }
    fn visit_f32<E>(self, v: f32) -> Result<Raw, E> {
        // ron hands out f32 only when the literal is exactly representable, so this is lossless.
        Ok(Raw::Float(v as f64))
    }
    fn visit_f64<E>(self, v: f64) -> Result<Raw, E> {
        Ok(Raw::Float(v))
    }
    fn visit_char<E>(self, v: char) -> Result<Raw, E> {
        Ok(Raw::Str(v.to_string()))
    }
    fn visit_str<E>(self, v: &str) -> Result<Raw, E> {
        Ok(Raw::Str(v.to_owned()))
    }
    fn visit_string<E>(self, v: String) -> Result<Raw, E> {
        Ok(Raw::Str(v))
    }
    fn visit_bytes<E: de::Error>(self, _: &[u8]) -> Result<Raw, E> {
        Err(E::custom("byte strings are not allowed in graph files"))
    }
    fn visit_unit<E>(self) -> Result<Raw, E> {
        Ok(Raw::Unit)
    }
    fn visit_none<E>(self) -> Result<Raw, E> {
        Ok(Raw::Unit)
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Raw, D::Error> {
        Raw::deserialize(d)
    }
    fn visit_newtype_struct<D: Deserializer<'de>>(self, d: D) -> Result<Raw, D::Error> {
        Raw::deserialize(d)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Raw, A::Error> {
        let mut v = Vec::new();
        while let Some(x) = seq.next_element()? {
            v.push(x);
        }
        Ok(Raw::Seq(v))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Raw, A::Error> {
        let mut v: Vec<(Raw, Raw)> = Vec::new();
        while let Some((k, val)) = map.next_entry::<Raw, Raw>()? {
            if v.iter().any(|(k2, _)| *k2 == k) {
                let name = match &k {
                    Raw::Str(s) => s.clone(),
                    other => format!("{other:?}"),
                };
                return Err(de::Error::custom(format!("the key \"{name}\" appears twice")));
            }
            v.push((k, val));
        }
        Ok(Raw::Map(v))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_structs_maps_and_refuses_duplicates() {
        let r = parse(r#"(a: 1, b: {"x": [1.5, "s", None]}, c: ("n", "p"))"#).unwrap();
        let Raw::Map(m) = r else { panic!() };
        assert_eq!(m[0], (Raw::Str("a".into()), Raw::Int(1)));
        let e = parse(r#"{"load": 1, "load": 2}"#).unwrap_err();
        assert!(e.contains("appears twice"), "{e}");
        let e = parse("(a: 1,\n b: [1, 2,\n").unwrap_err();
        assert!(e.starts_with("line "), "{e}");
    }
}
