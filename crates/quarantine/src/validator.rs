//! How a channel validates its messages: version, strictness, and profiles per channel or
//! per sender.

use std::collections::BTreeMap;
use std::sync::Arc;

use hl7v2_spec::validate::{self, Finding, MessageFields, Profile, Severity, ValidationOptions};

/// The validation settings of one channel, built once from its configuration.
///
/// A message is validated against its HL7 version (MSH-12, or `version` when set) tightened
/// or relaxed by a profile: the profile of its sender (MSH-3, matched whole or by its first
/// component) when `sender_profiles` names one, else the channel's `profile`.
#[derive(Clone, Default)]
pub struct ChannelValidation {
    /// Validate as this HL7 version instead of the one in MSH-12.
    pub version: Option<String>,
    /// Required fields, required components and HL7 table values are errors.
    pub strict: bool,
    /// The channel's profile, if any.
    pub profile: Option<Arc<Profile>>,
    /// Profiles by sending application (MSH-3), which win over the channel's.
    pub sender_profiles: BTreeMap<String, Arc<Profile>>,
}

impl std::fmt::Debug for ChannelValidation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChannelValidation")
            .field("version", &self.version)
            .field("strict", &self.strict)
            .field("profile", &self.profile.as_ref().map(|p| &p.name))
            .field("senders", &self.sender_profiles.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl ChannelValidation {
    /// The options the settings stand for.
    pub fn options(&self) -> ValidationOptions {
        if self.strict {
            ValidationOptions::strict()
        } else {
            ValidationOptions::default()
        }
    }

    /// The profile for a message from `sending_application` (MSH-3 as text).
    pub fn profile_for(&self, sending_application: &str) -> Option<&Profile> {
        let first = sending_application
            .split('^')
            .next()
            .unwrap_or(sending_application);
        self.sender_profiles
            .get(sending_application)
            .or_else(|| self.sender_profiles.get(first))
            .or(self.profile.as_ref())
            .map(Arc::as_ref)
    }

    /// Validates a parsed message.
    pub fn validate<M: MessageFields + ?Sized>(&self, message: &M) -> Vec<Finding> {
        let found = validate::spec_for(message, self.version.as_deref());
        let options = self.options();
        let sender = message.field(0, 3).unwrap_or("");
        match self.profile_for(sender) {
            Some(profile) => profile.validate(found.spec, message, &options),
            None => validate::validate_message(found.spec, message, &options),
        }
    }

    /// Validates raw message bytes; the error says why they are not an HL7 message.
    pub fn validate_bytes(&self, raw: &[u8]) -> Result<Vec<Finding>, hl7v2::Error> {
        let message = hl7v2::Message::parse(raw)?;
        Ok(self.validate(&message))
    }

    /// Validates an [`hl7v2::OwnedMessage`] (as a pipeline stage holds it).
    pub fn validate_owned(
        &self,
        message: &hl7v2::OwnedMessage,
    ) -> Result<Vec<Finding>, hl7v2::Error> {
        self.validate_bytes(&message.to_bytes())
    }
}

/// Validation settings of every channel; channels without settings validate against the
/// base standard with default strictness.
#[derive(Clone, Debug, Default)]
pub struct Validators {
    channels: BTreeMap<String, Arc<ChannelValidation>>,
    fallback: Arc<ChannelValidation>,
}

impl Validators {
    /// No channel settings: everything validates against the base standard.
    pub fn new() -> Validators {
        Validators::default()
    }

    /// Adds (or replaces) the settings of `channel`.
    pub fn with(mut self, channel: impl Into<String>, validation: ChannelValidation) -> Self {
        self.channels.insert(channel.into(), Arc::new(validation));
        self
    }

    /// The settings of `channel`.
    pub fn channel(&self, channel: &str) -> &ChannelValidation {
        self.channels
            .get(channel)
            .map(Arc::as_ref)
            .unwrap_or(&self.fallback)
    }
}

/// The header values quarantine and data quality key on, read from a parsed message.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Header {
    /// MSH-3 as text.
    pub sending_application: String,
    /// MSH-4 as text.
    pub sending_facility: String,
    /// MSH-9.1^MSH-9.2, e.g. `ORU^R01` (the structure in MSH-9.3 is left out).
    pub message_type: String,
    /// MSH-10.
    pub control_id: String,
    /// MSH-12.
    pub version: String,
}

impl Header {
    /// Reads the header of a parsed message.
    pub fn of<M: MessageFields + ?Sized>(message: &M) -> Header {
        let component = message.separators().component;
        let text = |n: usize| message.field(0, n).unwrap_or("").trim().to_string();
        let msh9 = text(9);
        let mut parts = msh9.split(component);
        let message_type = match (parts.next(), parts.next()) {
            (Some(kind), Some(event)) if !event.is_empty() => format!("{kind}^{event}"),
            (Some(kind), _) => kind.to_string(),
            (None, _) => String::new(),
        };
        let version = text(12);
        Header {
            sending_application: text(3),
            sending_facility: text(4),
            message_type,
            control_id: text(10),
            version: version.split(component).next().unwrap_or("").to_string(),
        }
    }

    /// Reads the header of raw bytes; `None` when they are not an HL7 message.
    pub fn of_bytes(raw: &[u8]) -> Option<Header> {
        hl7v2::Message::parse(raw).ok().map(|m| Header::of(&m))
    }

    /// The sender data quality counts by: the first component of MSH-3 (the namespace id),
    /// or `(none)` when MSH-3 is empty.
    pub fn sender(&self) -> String {
        sender_of(&self.sending_application)
    }
}

/// The first component of MSH-3, `(none)` when empty.
pub(crate) fn sender_of(sending_application: &str) -> String {
    let first = sending_application.split('^').next().unwrap_or("").trim();
    if first.is_empty() {
        "(none)".to_string()
    } else {
        first.to_string()
    }
}

/// True when any finding is an error.
pub fn has_errors(findings: &[Finding]) -> bool {
    findings.iter().any(|f| f.severity == Severity::Error)
}
