//! Values and checks more than one kind of source shares: the listen address, the
//! listeners' limits and their defaults (and the intake's acknowledgement mode, from
//! `intake.rs`). The kinds' configuration structs import it; it imports none of them.

use std::net::SocketAddr;
use std::time::Duration;

use conf::{ByteSize, ConfigDuration};
use serde::Deserialize;
use serde::de::{self, Deserializer};

pub use crate::intake::AckModeSetting;

/// A socket address to listen on, written `"IP:port"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ListenAddr(pub SocketAddr);

impl<'de> Deserialize<'de> for ListenAddr {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.trim().parse().map(ListenAddr).map_err(|_| {
            de::Error::custom(format!(
                "{text:?} is not a socket address (expected IP:port, e.g. \"127.0.0.1:2575\" or \"0.0.0.0:2575\")"
            ))
        })
    }
}

pub(crate) fn default_max_frame_size() -> ByteSize {
    ByteSize(mllp::DEFAULT_MAX_FRAME_SIZE as u64)
}
pub(crate) fn default_read_timeout() -> ConfigDuration {
    ConfigDuration(Duration::from_secs(30))
}
pub(crate) fn default_idle_timeout() -> ConfigDuration {
    ConfigDuration(Duration::from_secs(3600))
}
pub(crate) fn default_max_connections() -> usize {
    1024
}

/// The keys MLLP and HTTP sources share, checked the same way for both.
pub(crate) struct ListenerKeys<'a> {
    /// `"mllp"`, `"http"` or `"fhir"`.
    pub kind: &'static str,
    pub listen: Option<ListenAddr>,
    pub read_timeout: ConfigDuration,
    pub max_connections: usize,
    pub application_ack_to: Option<&'a str>,
    pub ack_mode: AckModeSetting,
}

impl ListenerKeys<'_> {
    /// Problems with these keys, as (key, message); `at` is `channels.NAME`.
    pub(crate) fn check(&self, at: &str) -> Vec<(String, String)> {
        let mut errors = Vec::new();
        if self.listen.is_none() {
            errors.push((
                format!("{at}.source.listen"),
                format!("a {} source needs listen = \"IP:port\"", self.kind),
            ));
        }
        if self.max_connections == 0 {
            errors.push((
                format!("{at}.source.max_connections"),
                "must be at least 1".to_owned(),
            ));
        }
        if self.read_timeout.0.is_zero() {
            errors.push((
                format!("{at}.source.read_timeout"),
                "must be longer than 0".to_owned(),
            ));
        }
        if let Some(to) = self.application_ack_to {
            if self.ack_mode != AckModeSetting::Enhanced {
                errors.push((
                    format!("{at}.source.application_ack_to"),
                    "application acknowledgements are sent only with ack_mode = \"enhanced\""
                        .to_owned(),
                ));
            } else if !is_host_port(to) {
                errors.push((
                    format!("{at}.source.application_ack_to"),
                    format!("{to:?} is not HOST:PORT"),
                ));
            }
        }
        errors
    }
}

/// `host:port` with a non-empty host and a port number.
fn is_host_port(text: &str) -> bool {
    match text.rsplit_once(':') {
        Some((host, port)) => !host.is_empty() && port.parse::<u16>().is_ok_and(|p| p != 0),
        None => false,
    }
}
