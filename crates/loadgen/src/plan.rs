//! The messages to send, laid out once.

use std::fmt;
use std::time::{SystemTime, UNIX_EPOCH};

use hl7v2::{Message, OwnedMessage};

/// Where a message was read: the words every error about it starts with.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Origin {
    /// The file's name as given (`-` for standard input).
    pub file: String,
    /// The message's number within the file, from 1.
    pub number: usize,
    /// The line its MSH segment starts on.
    pub line: usize,
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}: message {} (line {})",
            self.file, self.number, self.line
        )
    }
}

/// The messages to send, laid out once.
pub struct Plan {
    layout: Layout,
}

enum Layout {
    /// Each message of the files once, as read (segments ending in CR).
    AsRead(Vec<Outgoing>),
    /// `total` messages cycling through the files' messages, each with a
    /// unique MSH-10: `<run tag>-<index>`.
    Numbered {
        templates: Vec<Template>,
        total: u64,
        run_tag: String,
    },
}

/// One message ready to send, with its control id.
#[derive(Clone, Debug)]
pub struct Outgoing {
    payload: Vec<u8>,
    control_id: String,
}

/// A message cut around its MSH-10, so a new control id is two copies away.
struct Template {
    before_id: Vec<u8>,
    after_id: Vec<u8>,
}

/// Stands in for MSH-10 while a template is cut; letters and digits only, so
/// escaping leaves it as is.
const ID_MARKER: &str = "CORRIDORSENDCONTROLID";

impl Outgoing {
    /// One message as read (segments ending in CR, LF or CRLF), ready to send:
    /// segments joined by CR, its MSH-10 read. Refused when it does not parse or
    /// holds a byte MLLP uses for framing.
    pub fn new(bytes: &[u8], origin: &Origin) -> Result<Outgoing, String> {
        let payload = with_cr_segments(bytes);
        if let Some(offset) = payload.iter().position(|&b| b == 0x0B || b == 0x1C) {
            return Err(format!(
                "{origin}: byte 0x{:02X} at offset {offset} cannot be sent over MLLP",
                payload[offset]
            ));
        }
        let control_id = Message::parse(&payload)
            .map_err(|error| format!("{origin}: {error}"))?
            .control_id()
            .into_owned();
        Ok(Outgoing {
            payload,
            control_id,
        })
    }

    /// The message's MSH-10.
    pub fn control_id(&self) -> &str {
        &self.control_id
    }
}

impl Plan {
    /// Each of `messages` once, in order; or with `count`, that many messages
    /// cycling through them, each with a unique MSH-10 (`<run tag>-<index>`, the
    /// run tag differing between runs so a receiver's duplicate window never
    /// mistakes one run's messages for another's).
    pub fn new(messages: Vec<(Outgoing, Origin)>, count: Option<u64>) -> Result<Plan, String> {
        let Some(total) = count else {
            return Ok(Plan {
                layout: Layout::AsRead(messages.into_iter().map(|(m, _)| m).collect()),
            });
        };
        let msh_10: hl7v2::Path = "MSH-10"
            .parse()
            .map_err(|error| format!("MSH-10 path: {error}"))?;
        let mut templates = Vec::with_capacity(messages.len());
        for (message, origin) in messages {
            let mut owned = OwnedMessage::parse(&message.payload)
                .map_err(|error| format!("{origin}: {error}"))?;
            owned
                .set_text(&msh_10, ID_MARKER)
                .map_err(|error| format!("{origin}: {error}"))?;
            let bytes = owned.to_bytes();
            let Some(at) = bytes
                .windows(ID_MARKER.len())
                .position(|w| w == ID_MARKER.as_bytes())
            else {
                return Err(format!("{origin}: cannot rewrite MSH-10"));
            };
            templates.push(Template {
                before_id: bytes[..at].to_vec(),
                after_id: bytes[at + ID_MARKER.len()..].to_vec(),
            });
        }
        Ok(Plan {
            layout: Layout::Numbered {
                templates,
                total,
                run_tag: run_tag(),
            },
        })
    }

    /// How many messages the plan sends.
    pub fn total(&self) -> u64 {
        match &self.layout {
            Layout::AsRead(messages) => messages.len() as u64,
            Layout::Numbered { total, .. } => *total,
        }
    }

    /// The indices connection `connection` of `connections` sends, in order.
    pub(crate) fn indices(
        &self,
        connection: usize,
        connections: usize,
    ) -> impl Iterator<Item = u64> {
        (connection as u64..self.total()).step_by(connections)
    }

    /// Writes message `index` into `payload` and its MSH-10 into `control_id`.
    pub(crate) fn fill(&self, index: u64, payload: &mut Vec<u8>, control_id: &mut String) {
        payload.clear();
        control_id.clear();
        match &self.layout {
            Layout::AsRead(messages) => {
                let message = &messages[index as usize];
                payload.extend_from_slice(&message.payload);
                control_id.push_str(&message.control_id);
            }
            Layout::Numbered {
                templates, run_tag, ..
            } => {
                use std::fmt::Write as _;
                let template = &templates[(index % templates.len() as u64) as usize];
                let _ = write!(control_id, "{run_tag}-{index}");
                payload.extend_from_slice(&template.before_id);
                payload.extend_from_slice(control_id.as_bytes());
                payload.extend_from_slice(&template.after_id);
            }
        }
    }
}

/// Segments joined by CR, as MLLP peers expect, whatever the file used.
fn with_cr_segments(bytes: &[u8]) -> Vec<u8> {
    let mut payload = Vec::with_capacity(bytes.len() + 1);
    for line in bytes.split(|&b| b == b'\r' || b == b'\n') {
        if !line.is_empty() {
            payload.extend_from_slice(line);
            payload.push(b'\r');
        }
    }
    payload
}

/// Six base-36 characters that differ between runs, so numbered control ids
/// of two runs do not collide in a receiver's duplicate detection.
fn run_tag() -> String {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    // SplitMix64 finaliser: spreads nearby clocks and pids over the range.
    let mut x = nanos ^ (u64::from(std::process::id()) << 32);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^= x >> 31;
    const DIGITS: &[u8; 36] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ";
    (0..6)
        .map(|i| DIGITS[((x >> (i * 6)) % 36) as usize] as char)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn origin() -> Origin {
        Origin {
            file: "m.hl7".into(),
            number: 1,
            line: 1,
        }
    }

    #[test]
    fn segments_end_in_cr_whatever_the_file_used() {
        assert_eq!(
            with_cr_segments(b"MSH|a\r\nPID|b\nOBX|c"),
            b"MSH|a\rPID|b\rOBX|c\r"
        );
    }

    #[test]
    fn numbered_messages_carry_their_own_control_id() {
        let text = b"MSH|^~\\&|LAB|HOSP|EHR|HOSP|20240102||ORU^R01|ORIG|P|2.5.1\nPID|1\n";
        let message = Outgoing::new(text, &origin()).unwrap();
        let plan = Plan::new(vec![(message, origin())], Some(3)).unwrap();
        let (mut payload, mut id) = (Vec::new(), String::new());
        plan.fill(2, &mut payload, &mut id);
        let message = Message::parse(&payload).unwrap();
        assert_eq!(message.control_id(), id.as_str());
        assert!(id.ends_with("-2"), "{id}");
        assert!(payload.ends_with(b"PID|1\r"));
    }

    #[test]
    fn messages_as_read_keep_their_control_ids() {
        let text = b"MSH|^~\\&|LAB|HOSP|EHR|HOSP|20240102||ORU^R01|ORIG|P|2.5.1\rPID|1\r";
        let message = Outgoing::new(text, &origin()).unwrap();
        let plan = Plan::new(vec![(message, origin())], None).unwrap();
        assert_eq!(plan.total(), 1);
        let (mut payload, mut id) = (Vec::new(), String::new());
        plan.fill(0, &mut payload, &mut id);
        assert_eq!(id, "ORIG");
        assert_eq!(payload, text);
    }

    #[test]
    fn a_framing_byte_or_a_non_message_is_refused_naming_the_message() {
        let framed = b"MSH|^~\\&|LAB|HOSP|EHR|HOSP|20240102||ORU^R01|X|P|2.5.1\rNTE|1||a\x1cb\r";
        let error = Outgoing::new(framed, &origin()).unwrap_err();
        assert!(
            error.starts_with("m.hl7: message 1 (line 1): byte 0x1C at offset"),
            "{error}"
        );
        let error = Outgoing::new(b"MSH", &origin()).unwrap_err();
        assert!(error.starts_with("m.hl7: message 1 (line 1): "), "{error}");
    }

    #[test]
    fn connections_share_the_indices_round_robin() {
        let plan = Plan {
            layout: Layout::AsRead(
                (0..5)
                    .map(|i| Outgoing {
                        payload: vec![],
                        control_id: i.to_string(),
                    })
                    .collect(),
            ),
        };
        assert_eq!(plan.indices(1, 2).collect::<Vec<_>>(), vec![1, 3]);
        assert_eq!(plan.indices(0, 2).collect::<Vec<_>>(), vec![0, 2, 4]);
    }
}
