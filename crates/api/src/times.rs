//! Times in API answers. Every time is given twice: as microseconds since the Unix
//! epoch under its `*_at` name, and as RFC 3339 in UTC (ISO 8601 with zone) under the
//! same name without `_at` (`received_at` and `received`). The conversion is
//! `datetime::rfc3339`'s, the one used for every record Corridor shows.

use serde_json::Value;

/// A time in microseconds since the Unix epoch as RFC 3339 in UTC.
pub(crate) fn iso(micros: i64) -> Value {
    Value::String(datetime::rfc3339::format_micros(micros))
}

/// Adds beside each `fields` entry (a `*_at` name holding microseconds, or null) of the
/// JSON object `value` its RFC 3339 twin without `_at`; null stays null. A value that is
/// not an object, or a name without `_at`, is left alone.
pub(crate) fn add_iso(value: &mut Value, fields: &[&str]) {
    let Value::Object(map) = value else {
        return;
    };
    for field in fields {
        let Some(name) = field.strip_suffix("_at") else {
            continue;
        };
        let twin = match map.get(*field) {
            Some(Value::Number(n)) => n.as_i64().map_or(Value::Null, iso),
            _ => Value::Null,
        };
        map.insert(name.to_owned(), twin);
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::add_iso;

    #[test]
    fn each_micros_field_gets_its_rfc3339_twin() {
        let mut v = json!({"applied_at": 1_767_225_600_000_000_i64, "done_at": null, "n": 1});
        add_iso(&mut v, &["applied_at", "done_at"]);
        assert_eq!(v["applied"], "2026-01-01T00:00:00Z");
        assert_eq!(v["applied_at"], 1_767_225_600_000_000_i64);
        assert!(v["done"].is_null());
        assert_eq!(v["n"], 1);
    }
}
