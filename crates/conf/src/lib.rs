//! Corridor's configuration grammar: the value types every configuration key of
//! every crate shares, so `"1d"` means one day wherever a duration is written.
//!
//! - [`parse_duration`], [`ConfigDuration`] and the [`duration`] serde helpers:
//!   `"250ms"`, `"30s"`, `"10m"` (or `"10min"`), `"1h"`, `"1d"`, or a whole
//!   number of seconds.
//! - [`parse_byte_size`] and [`ByteSize`]: a number of bytes, or `"64KiB"`,
//!   `"16MiB"`, `"1GiB"` (powers of 1024) and `"500KB"`, `"1MB"`, `"1GB"`
//!   (powers of 1000).
//! - [`tagged`]: tables whose `type` key picks the struct that reads the rest
//!   (`source = { type = "mllp", ... }`), with errors that name the key inside them.
//!
//! ```
//! use std::time::Duration;
//!
//! #[derive(serde::Deserialize)]
//! struct Retry {
//!     #[serde(with = "conf::duration")]
//!     max_backoff: Duration,
//!     limit: conf::ByteSize,
//! }
//!
//! let retry: Retry = toml::from_str("max_backoff = \"1d\"\nlimit = \"16MiB\"").unwrap();
//! assert_eq!(retry.max_backoff, Duration::from_secs(86_400));
//! assert_eq!(retry.limit.0, 16 << 20);
//! assert_eq!(conf::parse_duration("90s"), Some(Duration::from_secs(90)));
//! ```

mod duration_grammar;
mod size;
pub mod tagged;

pub use duration_grammar::{ConfigDuration, DuplicateWindow, duration, parse_duration};
pub use size::{ByteSize, parse_byte_size};

/// Splits `"250ms"` into its whole number and its unit (`250`, `"ms"`), spaces trimmed.
fn number_and_unit(text: &str) -> Option<(u64, &str)> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    Some((number.parse().ok()?, unit.trim()))
}
