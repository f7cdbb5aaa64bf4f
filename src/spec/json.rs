//! Parsing of the JSON documents a client hands cuddy (config.json, `exec
//! --process`, `update --resources`) so that every error says where: the
//! line and column of a syntax error, the field path of a type error, and
//! no document read as something it is not. serde reads a JSON array as a
//! struct's fields in order, so `[]` would be a config with every field
//! absent and `"resources": [null]` resources with nothing set: an array
//! where the spec has an object is refused, naming the field.

use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

/// When `text`'s first value is not an object: what it is (`"an array"`,
/// ...) and its 1-based line and column. `None` for an object or for text
/// that is not JSON at all (the parser says where).
pub fn not_an_object(text: &[u8]) -> Option<(&'static str, usize, usize)> {
    let at = text.iter().position(|b| !b" \t\r\n".contains(b));
    let Some(at) = at else {
        return Some(("an empty file", 1, text.len() + 1));
    };
    let what = match text[at] {
        b'{' => return None,
        b'[' => "an array",
        b'"' => "a string",
        b'-' | b'0'..=b'9' => "a number",
        b't' | b'f' => "a boolean",
        b'n' => "null",
        _ => return None,
    };
    let line = 1 + text[..at].iter().filter(|b| **b == b'\n').count();
    let col = 1 + at
        - text[..at]
            .iter()
            .rposition(|b| *b == b'\n')
            .map_or(0, |n| n + 1);
    Some((what, line, col))
}

/// The message for [`not_an_object`]'s answer.
pub fn object_expected((what, line, col): (&str, usize, usize)) -> String {
    format!("must be a JSON object ({{...}}), found {what} at line {line} column {col}")
}

/// The first field (a path like `linux.resources`) where `raw` has an array
/// and `typed` (the parsed document serialized back) has an object.
pub fn array_for_object(raw: &Value, typed: &Value) -> Option<String> {
    match (raw, typed) {
        (Value::Array(_), Value::Object(_)) => Some(String::new()),
        (Value::Object(r), Value::Object(t)) => r.iter().find_map(|(k, rv)| {
            let inner = array_for_object(rv, t.get(k)?)?;
            Some(join(k, &inner))
        }),
        (Value::Array(r), Value::Array(t)) => {
            r.iter().zip(t).enumerate().find_map(|(i, (rv, tv))| {
                let inner = array_for_object(rv, tv)?;
                Some(format!("[{i}]{}", dot(&inner)))
            })
        }
        _ => None,
    }
}

fn join(k: &str, inner: &str) -> String {
    if inner.is_empty() {
        k.to_string()
    } else {
        format!("{k}{}", dot(inner))
    }
}

fn dot(inner: &str) -> String {
    if inner.is_empty() || inner.starts_with('[') {
        inner.to_string()
    } else {
        format!(".{inner}")
    }
}

/// Parses a JSON object of type `T`; `prepare` may edit the JSON value
/// first. The error says where: `FIELD: why`, or the line and column.
/// `prefix` is put before a field path (e.g. `linux.resources.`).
pub fn parse_object<T: DeserializeOwned + Serialize>(
    text: &[u8],
    prefix: &str,
    prepare: impl FnOnce(&mut Value),
) -> Result<T, String> {
    if let Some(found) = not_an_object(text) {
        return Err(object_expected(found));
    }
    let mut raw: Value = serde_json::from_slice(text).map_err(|e| e.to_string())?;
    prepare(&mut raw);
    let typed: T = serde_path_to_error::deserialize(&raw).map_err(|e| {
        let field = e.path().to_string();
        format!("{prefix}{field}: {}", e.into_inner())
    })?;
    check_shape(&raw, &typed, prefix)?;
    Ok(typed)
}

/// [`array_for_object`] of `raw` against `typed`, as an error naming the
/// field (after `prefix`).
pub fn check_shape<T: Serialize>(raw: &Value, typed: &T, prefix: &str) -> Result<(), String> {
    let back = serde_json::to_value(typed).map_err(|e| e.to_string())?;
    match array_for_object(raw, &back) {
        None => Ok(()),
        Some(field) => Err(format!(
            "{prefix}{field}: must be a JSON object ({{...}}), found an array"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn top_level_kinds_and_positions() {
        assert_eq!(not_an_object(b" {}"), None);
        assert_eq!(not_an_object(b"[]"), Some(("an array", 1, 1)));
        assert_eq!(not_an_object(b"\n\n  7"), Some(("a number", 3, 3)));
        assert_eq!(not_an_object(b"  "), Some(("an empty file", 1, 3)));
        assert_eq!(not_an_object(b"nul"), Some(("null", 1, 1)));
        assert_eq!(not_an_object(b"?"), None);
    }

    #[test]
    fn arrays_where_objects_belong_are_named() {
        let raw = json!({"linux": {"resources": [null], "x": 1}});
        let typed = json!({"linux": {"resources": {}}});
        assert_eq!(
            array_for_object(&raw, &typed).as_deref(),
            Some("linux.resources")
        );
        let raw = json!({"mounts": [{"o": []}]});
        let typed = json!({"mounts": [{"o": {}}]});
        assert_eq!(
            array_for_object(&raw, &typed).as_deref(),
            Some("mounts[0].o")
        );
        assert_eq!(
            array_for_object(&json!([1]), &json!({})).as_deref(),
            Some("")
        );
        assert_eq!(
            array_for_object(&json!({"a": [1]}), &json!({"a": [1]})),
            None
        );
    }

    #[test]
    fn parse_object_names_the_field() {
        #[derive(serde::Deserialize, serde::Serialize)]
        struct Inner {
            limit: Option<i64>,
        }
        #[derive(serde::Deserialize, serde::Serialize)]
        struct Outer {
            memory: Option<Inner>,
        }
        let e = parse_object::<Outer>(br#"{"memory": {"limit": "1g"}}"#, "r.", |_| {})
            .err()
            .unwrap();
        assert!(e.starts_with("r.memory.limit: invalid type"), "{e}");
        let e = parse_object::<Outer>(br#"{"memory": [5]}"#, "", |_| {})
            .err()
            .unwrap();
        assert!(e.starts_with("memory: must be a JSON object"), "{e}");
        let e = parse_object::<Outer>(b"[]", "", |_| {}).err().unwrap();
        assert!(e.contains("found an array at line 1 column 1"), "{e}");
    }
}
