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

    /// Adds settings already shared with a pipeline stage or a source.
    pub fn with_shared(
        mut self,
        channel: impl Into<String>,
        validation: Arc<ChannelValidation>,
    ) -> Self {
        self.channels.insert(channel.into(), validation);
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

/// Loads profile files once each, however many channels and senders name them (a NIST
/// conformance profile is a megabyte of XML).
#[derive(Default)]
pub struct ProfileCache {
    loaded: BTreeMap<std::path::PathBuf, Arc<Profile>>,
}

impl ProfileCache {
    /// An empty cache.
    pub fn new() -> ProfileCache {
        ProfileCache::default()
    }

    /// The profile in `path` (TOML or XML, by content), loaded on first use; errors name
    /// the file.
    pub fn load(
        &mut self,
        path: &std::path::Path,
    ) -> Result<Arc<Profile>, hl7v2_spec::validate::ProfileError> {
        if let Some(profile) = self.loaded.get(path) {
            return Ok(Arc::clone(profile));
        }
        let profile = Arc::new(Profile::load(path)?);
        self.loaded.insert(path.to_owned(), Arc::clone(&profile));
        Ok(profile)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn profile(name: &str) -> Arc<Profile> {
        Arc::new(Profile::from_toml(&format!("name = \"{name}\"\n")).unwrap())
    }

    #[test]
    fn a_sender_profile_wins_over_the_channels_by_whole_msh3_or_its_first_component() {
        let validation = ChannelValidation {
            profile: Some(profile("channel")),
            sender_profiles: [
                ("LAB".to_string(), profile("lab")),
                ("EHR^1.2.3^ISO".to_string(), profile("ehr exact")),
            ]
            .into(),
            ..ChannelValidation::default()
        };
        let name = |msh3: &str| validation.profile_for(msh3).map(|p| p.name.clone());
        assert_eq!(name("LAB").as_deref(), Some("lab"));
        assert_eq!(name("LAB^2.16.840^ISO").as_deref(), Some("lab"));
        assert_eq!(name("EHR^1.2.3^ISO").as_deref(), Some("ehr exact"));
        assert_eq!(name("EHR").as_deref(), Some("channel"));
        assert_eq!(name("").as_deref(), Some("channel"));
        assert!(ChannelValidation::default().profile_for("LAB").is_none());
    }

    #[test]
    fn the_cache_loads_a_file_once_and_names_a_bad_one() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("p.toml");
        std::fs::write(&path, "name = \"p\"\n").unwrap();
        let mut cache = ProfileCache::new();
        let first = cache.load(&path).unwrap();
        let second = cache.load(&path).unwrap();
        assert!(Arc::ptr_eq(&first, &second));
        let missing = dir.path().join("missing.toml");
        let error = cache.load(&missing).unwrap_err();
        assert!(error.0.contains("missing.toml"), "{}", error.0);
    }

    #[test]
    fn header_reads_type_and_event_without_the_structure() {
        let message = hl7v2::Message::parse(
            b"MSH|^~\\&|LAB^1.2^ISO|F|EHR|F|2024||ORU^R01^ORU_R01|C9|P|2.5.1\r",
        )
        .unwrap();
        let header = Header::of(&message);
        assert_eq!(header.message_type, "ORU^R01");
        assert_eq!(header.sending_application, "LAB^1.2^ISO");
        assert_eq!(header.sender(), "LAB");
        assert_eq!(header.control_id, "C9");
        assert_eq!(header.version, "2.5.1");
        let bare = hl7v2::Message::parse(b"MSH|^~\\&||F|EHR|F|2024||ACK|C9|P|2.5.1\r").unwrap();
        assert_eq!(Header::of(&bare).message_type, "ACK");
        assert_eq!(Header::of(&bare).sender(), "(none)");
    }
}
