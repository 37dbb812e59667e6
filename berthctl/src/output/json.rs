//! An order-keeping JSON tree, and the two JSON dialects crictl prints:
//! protojson (fields in proto order, as `-o json` of lists) and Go's
//! `encoding/json` (keys sorted, `<>&` escaped, numbers as float64), which
//! crictl uses for `inspect*`, `info` and `imagefsinfo`.

use std::fmt::{self, Write as _};

use serde::Serialize;
use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};

/// A JSON value whose objects keep their key order. `serde_json::Value`
/// sorts keys (the workspace does not enable `preserve_order`), which would
/// lose the proto field order crictl prints.
#[derive(Debug, Clone, PartialEq)]
pub enum Json {
    Null,
    Bool(bool),
    Int(i64),
    Uint(u64),
    Float(f64),
    String(String),
    Array(Vec<Json>),
    Object(Vec<(String, Json)>),
}

/// Names of the CRI fields that are `map<string, string>`. pbjson writes
/// them in `HashMap` order; protojson sorts map keys.
const MAP_FIELDS: &[&str] = &[
    "labels",
    "annotations",
    "info",
    "unified",
    "sysctls",
    "labelSelector",
];

impl Json {
    /// The JSON of any serde value (pbjson for CRI messages), with the
    /// order it was serialized in.
    pub fn from_serialize<T: Serialize + ?Sized>(value: &T) -> Result<Json, serde_json::Error> {
        let text = serde_json::to_string(value)?;
        serde_json::from_str(&text)
    }

    /// Like [`Json::from_serialize`], then sorts the keys of CRI map fields
    /// so output is stable, as protojson's is.
    pub fn from_proto<T: Serialize + ?Sized>(value: &T) -> Result<Json, serde_json::Error> {
        let mut json = Self::from_serialize(value)?;
        json.sort_map_fields();
        Ok(json)
    }

    fn sort_map_fields(&mut self) {
        match self {
            Json::Object(fields) => {
                for (key, value) in fields.iter_mut() {
                    if MAP_FIELDS.contains(&key.as_str())
                        && let Json::Object(entries) = value
                    {
                        entries.sort_by(|a, b| a.0.cmp(&b.0));
                    } else {
                        value.sort_map_fields();
                    }
                }
            }
            Json::Array(items) => items.iter_mut().for_each(Json::sort_map_fields),
            _ => {}
        }
    }

    /// Sorts every object's keys bytewise, as Go does when it marshals a
    /// `map[string]any`.
    pub fn sort_all_keys(&mut self) {
        match self {
            Json::Object(fields) => {
                fields.sort_by(|a, b| a.0.cmp(&b.0));
                // Duplicate keys collapse to the last one, like a Go map.
                fields.dedup_by(|later, earlier| {
                    if later.0 == earlier.0 {
                        std::mem::swap(later, earlier);
                        true
                    } else {
                        false
                    }
                });
                fields.iter_mut().for_each(|(_, v)| v.sort_all_keys());
            }
            Json::Array(items) => items.iter_mut().for_each(Json::sort_all_keys),
            _ => {}
        }
    }

    /// The value of `key` if this is an object holding it.
    pub fn get(&self, key: &str) -> Option<&Json> {
        match self {
            Json::Object(fields) => fields.iter().find(|(k, _)| k == key).map(|(_, v)| v),
            _ => None,
        }
    }

    /// Sets `key`, replacing it in place or appending it.
    pub fn set(&mut self, key: &str, value: Json) {
        if let Json::Object(fields) = self {
            match fields.iter_mut().find(|(k, _)| k == key) {
                Some(slot) => slot.1 = value,
                None => fields.push((key.to_owned(), value)),
            }
        }
    }
}

impl From<serde_json::Value> for Json {
    fn from(v: serde_json::Value) -> Self {
        match v {
            serde_json::Value::Null => Json::Null,
            serde_json::Value::Bool(b) => Json::Bool(b),
            serde_json::Value::Number(n) => {
                if let Some(u) = n.as_u64() {
                    Json::Uint(u)
                } else if let Some(i) = n.as_i64() {
                    Json::Int(i)
                } else {
                    Json::Float(n.as_f64().unwrap_or(0.0))
                }
            }
            serde_json::Value::String(s) => Json::String(s),
            serde_json::Value::Array(a) => Json::Array(a.into_iter().map(Json::from).collect()),
            serde_json::Value::Object(o) => {
                Json::Object(o.into_iter().map(|(k, v)| (k, Json::from(v))).collect())
            }
        }
    }
}

impl<'de> Deserialize<'de> for Json {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(JsonVisitor)
    }
}

struct JsonVisitor;

impl<'de> Visitor<'de> for JsonVisitor {
    type Value = Json;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Json, E> {
        Ok(Json::Bool(v))
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Json, E> {
        Ok(Json::Int(v))
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Json, E> {
        Ok(Json::Uint(v))
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Json, E> {
        Ok(Json::Float(v))
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Json, E> {
        Ok(Json::String(v.to_owned()))
    }
    fn visit_string<E: de::Error>(self, v: String) -> Result<Json, E> {
        Ok(Json::String(v))
    }
    fn visit_unit<E: de::Error>(self) -> Result<Json, E> {
        Ok(Json::Null)
    }
    fn visit_none<E: de::Error>(self) -> Result<Json, E> {
        Ok(Json::Null)
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Json, D::Error> {
        Json::deserialize(d)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Json, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element()? {
            items.push(item);
        }
        Ok(Json::Array(items))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Json, A::Error> {
        let mut fields = Vec::new();
        while let Some((k, v)) = map.next_entry::<String, Json>()? {
            fields.push((k, v));
        }
        Ok(Json::Object(fields))
    }
}

/// Which JSON encoder's habits to copy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    /// Go's protojson: no HTML escaping, integers printed as they are.
    Proto,
    /// Go's encoding/json after a round trip through `any`: `<`, `>`, `&`,
    /// U+2028 and U+2029 escaped, every number a float64.
    Go,
}

/// Pretty-prints with two-space indentation (protojson's `Indent: "  "`
/// and `json.Indent(.., "", "  ")` agree on layout), without a trailing
/// newline.
pub fn to_pretty(value: &Json, dialect: Dialect) -> String {
    let mut out = String::new();
    write_value(&mut out, value, dialect, 0);
    out
}

fn indent(out: &mut String, level: usize) {
    out.extend(std::iter::repeat_n(' ', level * 2));
}

fn write_value(out: &mut String, value: &Json, dialect: Dialect, level: usize) {
    match value {
        Json::Null => out.push_str("null"),
        Json::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Json::Int(i) => match dialect {
            Dialect::Proto => {
                let _ = write!(out, "{i}");
            }
            Dialect::Go => out.push_str(&go_float(*i as f64)),
        },
        Json::Uint(u) => match dialect {
            Dialect::Proto => {
                let _ = write!(out, "{u}");
            }
            Dialect::Go => out.push_str(&go_float(*u as f64)),
        },
        Json::Float(f) => out.push_str(&go_float(*f)),
        Json::String(s) => write_string(out, s, dialect),
        Json::Array(items) if items.is_empty() => out.push_str("[]"),
        Json::Array(items) => {
            out.push_str("[\n");
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push_str(",\n");
                }
                indent(out, level + 1);
                write_value(out, item, dialect, level + 1);
            }
            out.push('\n');
            indent(out, level);
            out.push(']');
        }
        Json::Object(fields) if fields.is_empty() => out.push_str("{}"),
        Json::Object(fields) => {
            out.push_str("{\n");
            for (i, (k, v)) in fields.iter().enumerate() {
                if i > 0 {
                    out.push_str(",\n");
                }
                indent(out, level + 1);
                write_string(out, k, dialect);
                out.push_str(": ");
                write_value(out, v, dialect, level + 1);
            }
            out.push('\n');
            indent(out, level);
            out.push('}');
        }
    }
}

/// encoding/json's float64 form: plain decimal from 1e-6 up to 1e21,
/// exponent form (`1e+21`, `1e-7`) outside it.
pub fn go_float(f: f64) -> String {
    if !f.is_finite() {
        // Go refuses to marshal these; null keeps the document valid.
        return "null".to_owned();
    }
    let abs = f.abs();
    if abs != 0.0 && !(1e-6..1e21).contains(&abs) {
        let s = format!("{f:e}");
        return match s.split_once('e') {
            Some((m, e)) if !e.starts_with('-') => format!("{m}e+{e}"),
            _ => s,
        };
    }
    format!("{f}")
}

fn write_string(out: &mut String, s: &str, dialect: Dialect) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            '<' | '>' | '&' | '\u{2028}' | '\u{2029}' if dialect == Dialect::Go => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_key_order_and_layout() {
        let v: Json = serde_json::from_str(r#"{"z":1,"a":[],"m":{},"l":[true,null]}"#).unwrap();
        assert_eq!(
            to_pretty(&v, Dialect::Proto),
            "{\n  \"z\": 1,\n  \"a\": [],\n  \"m\": {},\n  \"l\": [\n    true,\n    null\n  ]\n}"
        );
    }

    #[test]
    fn go_dialect_escapes_html_and_uses_float64() {
        let v: Json = serde_json::from_str(
            r#"{"s":"<a&b>\u2028\u0001\b","n":18446744073709551615,"f":1e21,"t":1e-7}"#,
        )
        .unwrap();
        assert_eq!(
            to_pretty(&v, Dialect::Go),
            "{\n  \"s\": \"\\u003ca\\u0026b\\u003e\\u2028\\u0001\\b\",\n  \"n\": 18446744073709552000,\n  \"f\": 1e+21,\n  \"t\": 1e-7\n}"
        );
        assert_eq!(
            to_pretty(&Json::String("<".into()), Dialect::Proto),
            "\"<\""
        );
    }

    #[test]
    fn sorts_only_map_fields_for_proto() {
        let v: Json =
            serde_json::from_str(r#"{"b":{"y":1,"x":2},"labels":{"y":"1","x":"2"}}"#).unwrap();
        let mut json = v.clone();
        json.sort_map_fields();
        assert_eq!(
            to_pretty(&json, Dialect::Proto).replace(['\n', ' '], ""),
            r#"{"b":{"y":1,"x":2},"labels":{"x":"2","y":"1"}}"#
        );
        let mut all = v;
        all.sort_all_keys();
        assert_eq!(
            to_pretty(&all, Dialect::Proto).replace(['\n', ' '], ""),
            r#"{"b":{"x":2,"y":1},"labels":{"x":"2","y":"1"}}"#
        );
    }
}
