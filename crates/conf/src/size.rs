//! Sizes in bytes.

use std::fmt;

use serde::de::{self, Deserialize, Deserializer, Visitor};

/// Parses `"16MiB"`, `"64KiB"`, `"1GiB"`, `"500KB"`, `"1000"` or `"1000B"`.
pub fn parse_byte_size(text: &str) -> Option<u64> {
    let (number, unit) = crate::number_and_unit(text)?;
    let factor: u64 = match unit {
        "" | "B" => 1,
        "KiB" => 1 << 10,
        "MiB" => 1 << 20,
        "GiB" => 1 << 30,
        "KB" | "kB" => 1_000,
        "MB" => 1_000_000,
        "GB" => 1_000_000_000,
        _ => return None,
    };
    number.checked_mul(factor)
}

/// A size in bytes, written as a number or `"64KiB"`, `"16MiB"`, `"1GiB"` (or KB/MB/GB,
/// powers of 1000).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct ByteSize(pub u64);

impl<'de> Deserialize<'de> for ByteSize {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(SizeVisitor)
    }
}

struct SizeVisitor;

impl Visitor<'_> for SizeVisitor {
    type Value = ByteSize;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a size such as 65536, \"64KiB\" or \"16MiB\"")
    }

    fn visit_i64<E: de::Error>(self, n: i64) -> Result<ByteSize, E> {
        u64::try_from(n)
            .map(ByteSize)
            .map_err(|_| E::custom(format!("{n} is not a size (it is negative)")))
    }

    fn visit_u64<E: de::Error>(self, n: u64) -> Result<ByteSize, E> {
        Ok(ByteSize(n))
    }

    fn visit_str<E: de::Error>(self, text: &str) -> Result<ByteSize, E> {
        parse_byte_size(text).map(ByteSize).ok_or_else(|| {
            E::custom(format!(
                "{text:?} is not a size (expected bytes or e.g. \"64KiB\", \"16MiB\")"
            ))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_take_binary_and_decimal_units() {
        assert_eq!(parse_byte_size("16MiB"), Some(16 << 20));
        assert_eq!(parse_byte_size("64KiB"), Some(64 << 10));
        assert_eq!(parse_byte_size("500KB"), Some(500_000));
        assert_eq!(parse_byte_size(" 1000 "), Some(1000));
        assert_eq!(parse_byte_size("1000B"), Some(1000));
        assert_eq!(parse_byte_size("lots"), None);
        assert_eq!(parse_byte_size("MiB"), None);
        assert_eq!(parse_byte_size("99999999999GiB"), None);
    }

    #[test]
    fn a_negative_size_is_refused_in_words() {
        #[derive(serde::Deserialize, Debug)]
        #[allow(dead_code)]
        struct Limits {
            max: ByteSize,
        }
        let error = toml::from_str::<Limits>("max = -1")
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("-1 is not a size (it is negative)"),
            "{error}"
        );
        let error = toml::from_str::<Limits>("max = \"lots\"")
            .unwrap_err()
            .to_string();
        assert!(error.contains("\"lots\" is not a size"), "{error}");
    }
}
