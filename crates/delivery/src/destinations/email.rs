//! E-mail destinations: one mail per message, through an SMTP server ([`crate::smtp`]).
//!
//! The subject and body are templates over the message's fields (`{MSH-9}`,
//! `{PID-3.1}`) and the delivery's names (`{channel}`, `{destination}`,
//! `{message_id}`, `{control_id}`); the message itself is attached as a `.hl7` file
//! unless `attach = false`. What a template names goes into the mail as it is: putting
//! patient data in mail is the configuration's choice (`docs/configuration.md`).
//! A server that cannot be reached, or answers 4xx, is a transient failure (retried);
//! a 5xx answer is a refusal that follows `on_nak`.

use std::path::Path;

use serde::Deserialize;

use store::UnixMicros;

use super::DestinationConfig;
use super::{Delivered, DeliveryMeta, Destination, Outgoing};
use crate::error::{ConfigError, DeliveryError};
use crate::smtp::{MailAttachment, Mailer, SmtpConfig};

/// `type = "email"`: an e-mail destination's own keys (the keys every destination takes
/// are in [`DestinationConfig`]).
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct EmailDestinationConfig {
    /// The mail server (`host`, `port`, `security`, `username`, `password_env` or
    /// `password_file`, `ca`, `timeout`); required, and when missing it is reported
    /// with the file's other problems.
    #[serde(default)]
    pub smtp: Option<SmtpConfig>,
    /// The sender's address (`Corridor <corridor@example.org>`).
    #[serde(default)]
    pub from: Option<String>,
    /// The recipients' addresses.
    #[serde(default)]
    pub recipients: Option<Vec<String>>,
    /// The subject template: `{MSH-9}`, `{PID-3.1}` (any path), `{channel}`,
    /// `{destination}`, `{message_id}`, `{control_id}`.
    #[serde(default)]
    pub subject: Option<String>,
    /// The body template, with the same placeholders as `subject`.
    #[serde(default)]
    pub text: Option<String>,
    /// Attach the message as a `.hl7` file (default true).
    #[serde(default = "yes")]
    pub attach: bool,
}

fn yes() -> bool {
    true
}

const DEFAULT_SUBJECT: &str = "{MSH-9} {control_id} from {channel}";
const DEFAULT_TEXT: &str = "Corridor channel {channel}, destination {destination}: message {message_id} ({MSH-9}, control id {control_id}).";

/// A text with placeholders, parsed once.
#[derive(Debug, Clone, PartialEq)]
pub struct MailTemplate {
    parts: Vec<Part>,
}

#[derive(Debug, Clone, PartialEq)]
enum Part {
    Text(String),
    Field(hl7v2::Path),
    Channel,
    Destination,
    MessageId,
    ControlId,
}

impl MailTemplate {
    /// Parses `text`; `{{` and `}}` stand for a literal brace. A placeholder that is
    /// neither a name above nor an HL7 path is an error naming it.
    pub fn parse(text: &str) -> Result<MailTemplate, String> {
        let mut parts = Vec::new();
        let mut literal = String::new();
        let mut rest = text;
        while let Some(at) = rest.find(['{', '}']) {
            literal.push_str(&rest[..at]);
            let tail = &rest[at..];
            if let Some(after) = tail.strip_prefix("{{") {
                literal.push('{');
                rest = after;
                continue;
            }
            if let Some(after) = tail.strip_prefix("}}") {
                literal.push('}');
                rest = after;
                continue;
            }
            if tail.starts_with('}') {
                return Err(format!("{text:?} has a `}}` without its `{{`"));
            }
            let end = tail
                .find('}')
                .ok_or_else(|| format!("{text:?} has a `{{` without its `}}`"))?;
            let name = &tail[1..end];
            let part = match name {
                "channel" => Part::Channel,
                "destination" => Part::Destination,
                "message_id" => Part::MessageId,
                "control_id" => Part::ControlId,
                path => Part::Field(path.parse().map_err(|e| {
                    format!("{{{path}}} is neither channel, destination, message_id, control_id nor an HL7 path: {e}")
                })?),
            };
            if !literal.is_empty() {
                parts.push(Part::Text(std::mem::take(&mut literal)));
            }
            parts.push(part);
            rest = &tail[end + 1..];
        }
        literal.push_str(rest);
        if !literal.is_empty() {
            parts.push(Part::Text(literal));
        }
        Ok(MailTemplate { parts })
    }

    /// The text for one message; a field the message lacks is empty.
    pub fn render(
        &self,
        message: Option<&hl7v2::Message<'_>>,
        message_id: i64,
        meta: &DeliveryMeta,
    ) -> String {
        let mut out = String::new();
        for part in &self.parts {
            match part {
                Part::Text(text) => out.push_str(text),
                Part::Channel => out.push_str(&meta.channel),
                Part::Destination => out.push_str(&meta.destination),
                Part::MessageId => out.push_str(&message_id.to_string()),
                Part::ControlId => {
                    if let Some(m) = message {
                        out.push_str(&m.control_id());
                    }
                }
                Part::Field(path) => {
                    if let Some(value) = message.and_then(|m| m.get(path)) {
                        out.push_str(&value.text());
                    }
                }
            }
        }
        out
    }
}

impl EmailDestinationConfig {
    /// Checks the keys; an error names its key in backquotes.
    pub(crate) fn check(&self) -> Result<(), String> {
        check(self)
    }
}

/// Checks an `email` destination's own keys.
fn check(config: &EmailDestinationConfig) -> Result<(), String> {
    match &config.smtp {
        None => return Err("email destinations need `smtp`".into()),
        Some(smtp) => smtp
            .check()
            .map_err(|(key, m)| format!("`smtp.{key}`: {m}"))?,
    }
    if config.from.is_none() {
        return Err("email destinations need `from`".into());
    }
    if config.recipients.as_ref().is_none_or(Vec::is_empty) {
        return Err("email destinations need `recipients`, at least one address".into());
    }
    for (key, template) in [("subject", &config.subject), ("text", &config.text)] {
        if let Some(t) = template {
            MailTemplate::parse(t).map_err(|e| format!("`{key}`: {e}"))?;
        }
    }
    Ok(())
}

/// Sends each message as a mail.
#[derive(Debug)]
pub struct EmailDestination {
    mailer: Mailer,
    subject: MailTemplate,
    text: MailTemplate,
    attach: bool,
    timeout: std::time::Duration,
}

impl EmailDestination {
    /// From a validated `type = "email"` configuration; reads the password and CA now.
    pub fn new(
        config: &DestinationConfig,
        email: &EmailDestinationConfig,
        base: &Path,
    ) -> Result<EmailDestination, ConfigError> {
        let fail = |reason: String| ConfigError::Invalid {
            destination: config.name.clone(),
            reason,
        };
        check(email).map_err(fail)?;
        let smtp = email
            .smtp
            .as_ref()
            .ok_or_else(|| fail("email destinations need `smtp`".into()))?;
        let mailer = Mailer::new(
            smtp,
            email.from.as_deref().unwrap_or_default(),
            email.recipients.as_deref().unwrap_or_default(),
            base,
        )
        .map_err(fail)?;
        let template = |text: &Option<String>, default: &str| {
            MailTemplate::parse(text.as_deref().unwrap_or(default)).map_err(fail)
        };
        Ok(EmailDestination {
            mailer,
            subject: template(&email.subject, DEFAULT_SUBJECT)?,
            text: template(&email.text, DEFAULT_TEXT)?,
            attach: email.attach,
            timeout: config.timeout,
        })
    }
}

impl Destination for EmailDestination {
    async fn deliver(
        &mut self,
        message: &Outgoing,
        meta: &DeliveryMeta,
    ) -> Result<Delivered, DeliveryError> {
        let parsed = hl7v2::Message::parse(&message.payload).ok();
        let subject = self
            .subject
            .render(parsed.as_ref(), message.message_id.0, meta)
            .replace(['\r', '\n'], " ");
        let text = self
            .text
            .render(parsed.as_ref(), message.message_id.0, meta);
        let attachment = self.attach.then(|| MailAttachment {
            file_name: format!("{}-{}.hl7", meta.channel, message.message_id.0),
            content_type: "x-application/hl7-v2+er7".to_owned(),
            bytes: message.payload.to_vec(),
        });
        let sending = self.mailer.send(&subject, &text, attachment);
        match tokio::time::timeout(self.timeout, sending).await {
            Ok(Ok(answer)) => Ok(Delivered {
                answer,
                answered_at: UnixMicros::now(),
            }),
            Ok(Err(error)) if error.transient => Err(DeliveryError::transient(error.reason)),
            Ok(Err(error)) => Err(DeliveryError::refused(error.reason.clone(), error.reason)),
            Err(_) => Err(DeliveryError::transient(format!(
                "no answer from the mail server within {:?}",
                self.timeout
            ))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    fn meta() -> DeliveryMeta {
        DeliveryMeta {
            channel: Arc::from("lab"),
            destination: Arc::from("mail"),
        }
    }

    #[test]
    fn templates_fill_fields_and_names() {
        let bytes =
            b"MSH|^~\\&|LAB|H|EHR|H|20260101||ORU^R01|C9|P|2.5.1\rPID|1||MRN7^^^H||DOE^JANE\r";
        let message = hl7v2::Message::parse(bytes).unwrap();
        let template = MailTemplate::parse(
            "{MSH-9.1} for {PID-3.1} on {channel}/{destination} #{message_id} {{x}}",
        )
        .unwrap();
        assert_eq!(
            template.render(Some(&message), 4, &meta()),
            "ORU for MRN7 on lab/mail #4 {x}"
        );
    }

    #[test]
    fn a_placeholder_that_is_no_path_is_an_error() {
        let error = MailTemplate::parse("{patient name}").unwrap_err();
        assert!(error.contains("{patient name}"), "{error}");
        assert!(MailTemplate::parse("open {MSH-9").is_err());
    }

    #[test]
    fn email_keys_belong_to_email_destinations() {
        let error = toml::from_str::<DestinationConfig>(
            "name = \"ehr\"\ntype = \"mllp\"\nto = \"127.0.0.1:1\"\nsubject = \"x\"",
        )
        .unwrap_err();
        assert_eq!(
            error.message(),
            "`subject`: is not a key of a mllp destination (email and nats destinations take it)"
        );
        let config: DestinationConfig = toml::from_str(
            "name = \"m\"\ntype = \"email\"\nsmtp = { host = \"127.0.0.1\", security = \"none\" }\nfrom = \"a@example.org\"",
        )
        .unwrap();
        let error = config.validate().unwrap_err().to_string();
        assert!(error.contains("`recipients`"), "{error}");
    }
}
