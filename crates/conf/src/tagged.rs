//! Tables whose `type` key picks the struct that reads the rest of their keys, such as
//! a channel's `source = { type = "mllp", listen = "..." }`.
//!
//! Serde's own tagged enums read such a table into a buffer and then read the variant
//! from it, out of sight of `serde_path_to_error`: an error names the table
//! (`channels.lab.source`), not the key (`channels.lab.source.read_timeout`). [`deserialize`]
//! reads the table, then each part of it through `serde_path_to_error`, and returns an
//! error whose message starts with the key inside the table (`` `read_timeout`: ... ``);
//! [`split_key`] takes it apart again, so the caller can name the whole path and its line.
//!
//! ```
//! #[derive(serde::Deserialize)]
//! #[serde(deny_unknown_fields)]
//! struct Shared { name: String }
//!
//! #[derive(serde::Deserialize)]
//! #[serde(rename_all = "lowercase")]
//! enum Kind { Tcp(Tcp), File(File) }
//!
//! #[derive(serde::Deserialize)]
//! #[serde(deny_unknown_fields)]
//! struct Tcp { port: u16 }
//!
//! #[derive(serde::Deserialize)]
//! #[serde(deny_unknown_fields)]
//! struct File { path: String }
//!
//! struct Output { shared: Shared, kind: Kind }
//!
//! impl<'de> serde::Deserialize<'de> for Output {
//!     fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
//!         let (shared, kind) = conf::tagged::deserialize(d, "output")?;
//!         Ok(Output { shared, kind })
//!     }
//! }
//!
//! let out: Output = toml::from_str("name = \"a\"\ntype = \"tcp\"\nport = 7").unwrap();
//! assert!(matches!(out.kind, Kind::Tcp(Tcp { port: 7 })) && out.shared.name == "a");
//!
//! let Err(error) = toml::from_str::<Output>("name = \"a\"\ntype = \"file\"\nport = 7") else { panic!() };
//! let (key, message) = conf::tagged::split_key(error.message()).unwrap();
//! assert_eq!(key, "port");
//! assert_eq!(message, "is not a key of a file output (a tcp output takes it)");
//! ```

use std::fmt::Write as _;

use serde::de::{self, Deserialize, DeserializeOwned, Deserializer, Visitor};
use serde_path_to_error::Segment;

/// Reads a table whose `type` key names its kind: the keys `S` takes (the ones every
/// kind shares) into `S`, the others into the variant of `K` that `type` names. `K` is an
/// enum with one newtype variant per kind, as serde tags it by default (by the variant's
/// name); `what` names the table in messages (`"source"`).
///
/// An error about a key inside the table starts with that key (see [`split_key`]). Keys
/// no kind takes are reported before a missing or unknown `type`, since they are wrong
/// whatever it says; a key another kind takes is reported as such.
pub fn deserialize<'de, D, S, K>(deserializer: D, what: &str) -> Result<(S, K), D::Error>
where
    D: Deserializer<'de>,
    S: DeserializeOwned,
    K: DeserializeOwned,
{
    let mut table = toml::Table::deserialize(deserializer)?;
    let kinds = names_of::<K>();
    let kind = table.remove("type");
    let shared_keys = names_of::<S>();
    let (shared, own): (toml::Table, toml::Table) = table
        .into_iter()
        .partition(|(key, _)| shared_keys.contains(&key.as_str()));
    let kind = match kind {
        Some(toml::Value::String(kind)) if kinds.contains(&kind.as_str()) => kind,
        kind => {
            if let Some(key) = own
                .iter()
                .find(|(key, value)| !kinds.iter().any(|k| takes::<K>(k, key, value)))
                .map(|(key, _)| key)
            {
                return Err(de::Error::custom(keyed(
                    key,
                    &format!("unknown field `{key}`: no kind of {what} takes it"),
                )));
            }
            let expected = kinds
                .iter()
                .map(|k| format!("`{k}`"))
                .collect::<Vec<_>>()
                .join(", ");
            return Err(de::Error::custom(match kind {
                None => "missing field `type`".to_owned(),
                Some(toml::Value::String(kind)) => keyed(
                    "type",
                    &format!("unknown variant `{kind}`, expected one of {expected}"),
                ),
                Some(other) => keyed(
                    "type",
                    &format!(
                        "invalid type: {}, expected one of {expected}",
                        other.type_str()
                    ),
                ),
            }));
        }
    };
    let shared = read::<S>(toml::Value::Table(shared), false).map_err(de::Error::custom)?;
    let tagged = toml::Table::from_iter([(kind.clone(), toml::Value::Table(own.clone()))]);
    let own = read::<K>(toml::Value::Table(tagged), true).map_err(|error| {
        // A key of another kind says so, rather than only that this kind lacks it.
        let Some((key, message)) = split_key(&error) else {
            return de::Error::custom(error);
        };
        let others: Vec<&str> = kinds
            .iter()
            .filter(|k| **k != kind)
            .filter(|k| own.get(key).is_some_and(|value| takes::<K>(k, key, value)))
            .copied()
            .collect();
        if !message.starts_with(&format!("unknown field `{key}`")) || others.is_empty() {
            return de::Error::custom(error);
        }
        let takers = match others.as_slice() {
            [one] => format!("a {one} {what} takes it"),
            [rest @ .., last] => format!("{} and {last} {what}s take it", rest.join(", ")),
            [] => String::new(),
        };
        de::Error::custom(keyed(
            key,
            &format!("is not a key of a {kind} {what} ({takers})"),
        ))
    })?;
    Ok((shared, own))
}

/// The key a message from [`deserialize`] is about, and the rest of the message:
/// `` `tls.cert`: invalid type `` gives `("tls.cert", "invalid type")`.
pub fn split_key(message: &str) -> Option<(&str, &str)> {
    let rest = message.strip_prefix('`')?;
    let (key, message) = rest.split_once("`: ")?;
    let is_key = !key.is_empty()
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_-.[]".contains(c));
    is_key.then_some((key, message))
}

/// `message` about `key`, as [`split_key`] reads it.
fn keyed(key: &str, message: &str) -> String {
    format!("`{key}`: {message}")
}

/// Reads `T` from `value`; the error names the key inside it (after the variant's name
/// when `tagged`), unless it is about the whole value.
fn read<T: DeserializeOwned>(value: toml::Value, tagged: bool) -> Result<T, String> {
    let error = match serde_path_to_error::deserialize::<_, T>(value) {
        Ok(value) => return Ok(value),
        Err(error) => error,
    };
    let mut key = String::new();
    for segment in error.path().iter().skip(usize::from(tagged)) {
        match segment {
            Segment::Seq { index } => {
                let _ = write!(key, "[{index}]");
            }
            Segment::Map { key: name } | Segment::Enum { variant: name } => {
                if !key.is_empty() {
                    key.push('.');
                }
                key.push_str(name);
            }
            Segment::Unknown => break,
        }
    }
    let mut message = error.into_inner().message().trim().to_owned();
    // A key named by a table read the same way inside this one.
    if let Some((inner, rest)) = split_key(&message) {
        if !key.is_empty() {
            key.push('.');
        }
        key.push_str(inner);
        message = rest.to_owned();
    }
    // Serde names an unknown key in its message, not in the path.
    if let Some(field) = message
        .strip_prefix("unknown field `")
        .and_then(|rest| rest.split('`').next())
        .filter(|field| key != *field && !key.ends_with(&format!(".{field}")))
    {
        if !key.is_empty() {
            key.push('.');
        }
        key.push_str(field);
    }
    Err(if key.is_empty() {
        message
    } else {
        keyed(&key, &message)
    })
}

/// Whether the kind named `kind` takes `key` (whatever it thinks of `value`).
fn takes<K: DeserializeOwned>(kind: &str, key: &str, value: &toml::Value) -> bool {
    let one = toml::Table::from_iter([(key.to_owned(), value.clone())]);
    let probe = toml::Table::from_iter([(kind.to_owned(), toml::Value::Table(one))]);
    match serde_path_to_error::deserialize::<_, K>(toml::Value::Table(probe)) {
        Ok(_) => true,
        Err(error) => {
            // The path ends at the unknown key itself: the variant, then the key.
            let at_top = error.path().iter().count() <= 2;
            let unknown = error
                .inner()
                .message()
                .starts_with(&format!("unknown field `{key}`"));
            !(at_top && unknown)
        }
    }
}

/// The field names of a struct, or the variant names of an enum, that `T` reads, as
/// serde's derive passes them to the deserializer.
fn names_of<T: DeserializeOwned>() -> &'static [&'static str] {
    let mut names: &'static [&'static str] = &[];
    let _ = T::deserialize(NameTaker { names: &mut names });
    names
}

/// A deserializer that only notes the names it is asked for.
struct NameTaker<'a> {
    names: &'a mut &'static [&'static str],
}

#[derive(Debug)]
struct Taken;

impl std::fmt::Display for Taken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("names taken")
    }
}

impl std::error::Error for Taken {}

impl de::Error for Taken {
    fn custom<T: std::fmt::Display>(_: T) -> Self {
        Taken
    }
}

impl<'de> Deserializer<'de> for NameTaker<'_> {
    type Error = Taken;

    fn deserialize_any<V: Visitor<'de>>(self, _: V) -> Result<V::Value, Taken> {
        Err(Taken)
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _: &'static str,
        fields: &'static [&'static str],
        _: V,
    ) -> Result<V::Value, Taken> {
        *self.names = fields;
        Err(Taken)
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _: &'static str,
        variants: &'static [&'static str],
        _: V,
    ) -> Result<V::Value, Taken> {
        *self.names = variants;
        Err(Taken)
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string
        bytes byte_buf option unit unit_struct newtype_struct seq tuple
        tuple_struct map identifier ignored_any
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, Deserialize, PartialEq)]
    #[serde(deny_unknown_fields)]
    struct Shared {
        name: String,
        #[serde(default)]
        retries: u32,
    }

    #[derive(Debug, Deserialize, PartialEq)]
    #[serde(rename_all = "lowercase")]
    enum Kind {
        Mllp(Mllp),
        Http(Http),
        Directory(Directory),
    }

    #[derive(Debug, Deserialize, PartialEq)]
    #[serde(deny_unknown_fields)]
    struct Mllp {
        to: String,
        #[serde(default)]
        tls: Option<Tls>,
    }

    #[derive(Debug, Deserialize, PartialEq)]
    #[serde(deny_unknown_fields)]
    struct Tls {
        ca: String,
    }

    #[derive(Debug, Deserialize, PartialEq)]
    #[serde(deny_unknown_fields)]
    struct Http {
        to: String,
        #[serde(default)]
        read_timeout: u32,
    }

    #[derive(Debug, Deserialize, PartialEq)]
    #[serde(deny_unknown_fields)]
    struct Directory {
        path: String,
    }

    #[derive(Debug, PartialEq)]
    struct Table(Shared, Kind);

    impl<'de> Deserialize<'de> for Table {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            let (shared, kind) = super::deserialize(d, "source")?;
            Ok(Table(shared, kind))
        }
    }

    /// The key and message of the error reading `text`, through `serde_path_to_error`
    /// as the engine reads its file.
    fn problem(text: &str) -> (String, String) {
        let error =
            serde_path_to_error::deserialize::<_, std::collections::BTreeMap<String, Table>>(
                toml::Deserializer::new(text),
            )
            .unwrap_err();
        let outer = error.path().to_string();
        let message = error.into_inner().message().to_owned();
        match split_key(&message) {
            Some((key, rest)) => (format!("{outer}.{key}"), rest.to_owned()),
            None => (outer, message),
        }
    }

    #[test]
    fn the_type_picks_the_struct_and_shared_keys_go_apart_in_any_order() {
        let read: Table =
            toml::from_str("to = \"a:1\"\nname = \"x\"\ntype = \"http\"\nread_timeout = 5")
                .unwrap();
        assert_eq!(
            read,
            Table(
                Shared {
                    name: "x".into(),
                    retries: 0
                },
                Kind::Http(Http {
                    to: "a:1".into(),
                    read_timeout: 5
                })
            )
        );
    }

    #[test]
    fn an_error_inside_the_table_names_its_key() {
        assert_eq!(
            problem("[a]\nname = \"x\"\ntype = \"mllp\"\nto = \"h:1\"\ntls = { ca = 3 }\n"),
            (
                "a.tls.ca".to_owned(),
                "invalid type: integer `3`, expected a string".to_owned()
            )
        );
        assert_eq!(
            problem("[a]\nname = \"x\"\nretries = \"many\"\ntype = \"mllp\"\nto = \"h:1\"\n").0,
            "a.retries"
        );
        let (key, message) =
            problem("[a]\nname = \"x\"\ntype = \"mllp\"\nto = \"h:1\"\nlisen = 1\n");
        assert_eq!(key, "a.lisen");
        assert!(
            message.starts_with("unknown field `lisen`, expected"),
            "{message}"
        );
    }

    #[test]
    fn a_key_of_another_kind_is_named_as_such() {
        assert_eq!(
            problem("[a]\nname = \"x\"\ntype = \"directory\"\npath = \"p\"\nread_timeout = 5\n"),
            (
                "a.read_timeout".to_owned(),
                "is not a key of a directory source (a http source takes it)".to_owned()
            )
        );
        assert_eq!(
            problem("[a]\nname = \"x\"\ntype = \"directory\"\npath = \"p\"\nto = \"h:1\"\n").1,
            "is not a key of a directory source (mllp and http sources take it)"
        );
    }

    #[test]
    fn a_bad_type_is_named_after_keys_no_kind_takes() {
        assert_eq!(
            problem("[a]\nname = \"x\"\ntype = \"pigeon\"\nto = \"h:1\"\n"),
            (
                "a.type".to_owned(),
                "unknown variant `pigeon`, expected one of `mllp`, `http`, `directory`".to_owned()
            )
        );
        assert_eq!(
            problem("[a]\nname = \"x\"\ntype = \"pigeon\"\ncolour = \"red\"\n").0,
            "a.colour"
        );
        assert_eq!(
            problem("[a]\nname = \"x\"\nto = \"h:1\"\n"),
            ("a".to_owned(), "missing field `type`".to_owned())
        );
        assert_eq!(problem("[a]\nname = \"x\"\ntype = 3\n").0, "a.type");
    }

    #[test]
    fn names_are_taken_from_the_derive() {
        assert_eq!(names_of::<Shared>(), ["name", "retries"]);
        assert_eq!(names_of::<Kind>(), ["mllp", "http", "directory"]);
        assert_eq!(split_key("`a.b[2]`: bad"), Some(("a.b[2]", "bad")));
        assert_eq!(split_key("invalid type: `x`: y"), None);
    }
}
