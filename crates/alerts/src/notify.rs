//! The notifiers: a webhook (JSON POST, through delivery's HTTP client), e-mail
//! (delivery's [`Mailer`]) and an MLLP listener (an ORU^R01 notice, through delivery's
//! MLLP destination). One kind per variant of [`Notifier`].

use std::path::Path;
use std::sync::Arc;

use bytes::Bytes;
use delivery::destinations::http::JsonPost;
use delivery::destinations::mllp::MllpDestination;
use delivery::smtp::Mailer;
use delivery::{DeliveryMeta, Destination, DestinationConfig, EntryId, Outgoing};
use serde::Serialize;
use store::{MessageId, UnixMicros};
use tokio::sync::Mutex;

use crate::config::{NotifierConfig, NotifierKind};

/// A change of an alert's state, as every notifier tells it.
#[derive(Debug, Clone, Serialize)]
pub struct Notification {
    /// The alert's name.
    pub alert: String,
    /// `firing` or `resolved`.
    pub state: &'static str,
    /// The condition (`when`).
    pub condition: &'static str,
    /// The channel and destination watched, when the condition has them.
    pub channel: Option<String>,
    pub destination: Option<String>,
    /// What was seen when it fired, in words.
    pub detail: String,
    /// The episode in `/api/alerts/history`.
    pub event_id: i64,
    /// When it fired and when this change happened (RFC 3339, UTC).
    pub fired_at: String,
    pub at: String,
}

impl Notification {
    fn subject(&self) -> String {
        format!(
            "[corridor] {} {}: {}",
            self.alert,
            self.state.to_uppercase(),
            self.condition
        )
    }

    fn text(&self) -> String {
        format!(
            "Alert {} is {} ({}).\n\n{}\n\nFired at {}; this change at {}. Episode {} in /api/alerts/history.\n",
            self.alert,
            self.state,
            self.condition,
            self.detail,
            self.fired_at,
            self.at,
            self.event_id
        )
    }

    /// An ORU^R01 notice: OBR names the alert episode, OBX-5 its state and detail.
    fn hl7(&self, application: &str, facility: &str) -> Bytes {
        let now = datetime::rfc3339::format_micros(UnixMicros::now().0);
        let stamp: String = now.chars().filter(char::is_ascii_digit).take(14).collect();
        let state = if self.state == "firing" { "F" } else { "R" };
        let text = format!(
            "MSH|^~\\&|CORRIDOR|CORRIDOR|{}|{}|{stamp}||ORU^R01^ORU_R01|ALERT{}{state}|P|2.5.1\r\
             OBR|1||ALERT-{}|CORRIDOR-ALERT^Corridor alert^L|||{stamp}\r\
             OBX|1|ST|{}^{}^L||{}: {}||||||F\r",
            escape(application),
            escape(facility),
            self.event_id,
            self.event_id,
            escape(&self.alert),
            self.condition,
            self.state.to_uppercase(),
            escape(&self.detail),
        );
        Bytes::from(text)
    }
}

/// HL7 v2 escapes for the default delimiters; line ends become spaces.
fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '\\' => out.push_str("\\E\\"),
            '|' => out.push_str("\\F\\"),
            '^' => out.push_str("\\S\\"),
            '~' => out.push_str("\\R\\"),
            '&' => out.push_str("\\T\\"),
            '\r' | '\n' => out.push(' '),
            c => out.push(c),
        }
    }
    out
}

/// One configured notifier, ready to send.
pub(crate) enum Notifier {
    Webhook(Mutex<JsonPost>),
    Email(Mailer),
    Mllp {
        destination: Mutex<MllpDestination>,
        application: String,
        facility: String,
    },
}

impl Notifier {
    /// Builds `[alerting.notifiers.NAME]`; reads TLS files and the SMTP password now.
    pub(crate) fn build(
        name: &str,
        config: &NotifierConfig,
        base: &Path,
    ) -> Result<Notifier, String> {
        let timeout = format!("{}ms", config.timeout.0.as_millis().max(1));
        let tls = config.tls.as_ref().map(|t| {
            serde_json::json!({
                "ca": t.ca, "cert": t.cert, "key": t.key, "server_name": t.server_name,
            })
        });
        let as_destination = |kind: &str, extra: serde_json::Value| {
            let mut value = serde_json::json!({
                "name": format!("notifier {name}"),
                "type": kind,
                "timeout": timeout,
            });
            if let (Some(object), serde_json::Value::Object(extra)) = (value.as_object_mut(), extra)
            {
                object.extend(extra);
            }
            if let (Some(object), Some(tls)) = (value.as_object_mut(), &tls) {
                object.insert("tls".into(), tls.clone());
            }
            serde_json::from_value::<DestinationConfig>(value).map_err(|e| e.to_string())
        };
        match config.kind {
            NotifierKind::Webhook => {
                let destination = as_destination(
                    "http",
                    serde_json::json!({ "url": config.url, "headers": config.headers }),
                )?;
                destination.validate().map_err(|e| e.to_string())?;
                let post = JsonPost::new(&destination, base).map_err(|e| e.to_string())?;
                Ok(Notifier::Webhook(Mutex::new(post)))
            }
            NotifierKind::Email => {
                let smtp = config.smtp.as_ref().ok_or("email notifiers need `smtp`")?;
                let mailer = Mailer::new(
                    smtp,
                    config.from.as_deref().unwrap_or_default(),
                    config.recipients.as_deref().unwrap_or_default(),
                    base,
                )?;
                Ok(Notifier::Email(mailer))
            }
            NotifierKind::Mllp => {
                let destination = as_destination(
                    "mllp",
                    serde_json::json!({ "to": config.to, "pipeline": 1 }),
                )?;
                destination.validate().map_err(|e| e.to_string())?;
                let delivery::DestinationSettings::Mllp(settings) = &destination.settings else {
                    return Err("an mllp notifier is an mllp destination".to_owned());
                };
                let mllp = MllpDestination::new(&destination, settings, base)
                    .map_err(|e| e.to_string())?;
                Ok(Notifier::Mllp {
                    destination: Mutex::new(mllp),
                    application: config
                        .receiving_application
                        .clone()
                        .unwrap_or_else(|| "ALERTS".to_owned()),
                    facility: config.receiving_facility.clone().unwrap_or_default(),
                })
            }
        }
    }

    /// Sends one notification; the receiver's answer or the failure, in words.
    pub(crate) async fn send(
        &self,
        name: &Arc<str>,
        note: &Notification,
    ) -> Result<String, String> {
        match self {
            Notifier::Webhook(post) => {
                let body = serde_json::to_vec(note).map_err(|e| e.to_string())?;
                post.lock()
                    .await
                    .post(Bytes::from(body))
                    .await
                    .map_err(|e| e.reason)
            }
            Notifier::Email(mailer) => mailer
                .send(&note.subject(), &note.text(), None)
                .await
                .map_err(|e| e.reason),
            Notifier::Mllp {
                destination,
                application,
                facility,
            } => {
                let outgoing = Outgoing {
                    entry: EntryId(note.event_id),
                    message_id: MessageId(note.event_id),
                    payload: note.hl7(application, facility),
                    ordering_key: Arc::from(""),
                    attempts: 0,
                };
                let meta = DeliveryMeta {
                    channel: Arc::from("alerts"),
                    destination: name.clone(),
                };
                destination
                    .lock()
                    .await
                    .deliver(&outgoing, &meta)
                    .await
                    .map(|d| d.answer)
                    .map_err(|e| e.reason)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_mllp_notice_is_an_oru_that_parses_with_its_detail_escaped() {
        let note = Notification {
            alert: "ehr-down".into(),
            state: "firing",
            condition: "destination_unreachable",
            channel: Some("lab".into()),
            destination: Some("ehr".into()),
            detail: "lab/ehr: cannot connect | refused".into(),
            event_id: 7,
            fired_at: String::new(),
            at: String::new(),
        };
        let bytes = note.hl7("PAGER", "ICU");
        let message = hl7v2::Message::parse(&bytes).unwrap();
        assert_eq!(message.get_str("MSH-9.1").unwrap().as_deref(), Some("ORU"));
        assert_eq!(message.get_str("MSH-5").unwrap().as_deref(), Some("PAGER"));
        assert_eq!(
            message.get_str("OBX-5").unwrap().as_deref(),
            Some("FIRING: lab/ehr: cannot connect | refused")
        );
    }
}
