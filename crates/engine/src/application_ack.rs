//! Application acknowledgements owed to enhanced-mode senders.
//!
//! In enhanced mode (MSH-15/MSH-16) a listener answers a message with a commit
//! acknowledgement (CA) as soon as it is stored, and notes in
//! `application_acks_owed` that an application acknowledgement is owed under the
//! condition MSH-16 names (AL always, SU on success, ER on error). Once the
//! pipeline has decided the message's fate, this task builds that acknowledgement
//! and sends it, as a message of its own, to the address the listener names in
//! `application_ack_to` (the sender's own MLLP listener, as the standard's
//! enhanced mode expects).
//!
//! - processed, delivered, filtered, dead-lettered: `AA` (Corridor's application
//!   accepted it; what a destination later did is Corridor's business, not the
//!   sender's);
//! - errored, quarantined: `AE`, with the reason in MSA-3 and an ERR segment.
//!
//! The owed row is deleted in the same write that notes the send; a send that
//! fails (the sender's listener is down, it refused the ACK) is retried with a
//! growing pause, and the row stays until it succeeds: an owed acknowledgement
//! is never forgotten across restarts. One that the condition does not want
//! (SU on an error, ER on a success) is settled without sending.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use hl7v2::{AckBuilder, AckCode, AckCondition, AckError, ErrorCode};
use mllp::MllpConnector;
use rusqlite::params;
use store::Store;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tracing::{debug, warn};

/// How often the task looks for decided messages.
const POLL: Duration = Duration::from_millis(200);
/// The longest pause between two attempts to reach a sender's listener.
const MAX_BACKOFF: Duration = Duration::from_secs(60);
/// How many owed acknowledgements one look takes.
const PAGE: usize = 100;

/// One owed acknowledgement whose message has left `received`.
#[derive(Debug)]
struct Due {
    message_id: i64,
    condition: String,
    channel: String,
    state: String,
    reason: Option<String>,
    raw: Vec<u8>,
}

/// The acknowledgement a decided message gets, or `None` while it is still
/// waiting to be processed.
fn code_for(state: &str) -> Option<AckCode> {
    match state {
        "received" | "rejected" => None,
        "errored" | "quarantined" => Some(AckCode::AE),
        _ => Some(AckCode::AA),
    }
}

/// Builds the application acknowledgement of `due`, or `None` when its
/// condition (MSH-16) does not want one for this outcome.
fn acknowledgement(due: &Due) -> Option<Vec<u8>> {
    let code = code_for(&due.state)?;
    if !AckCondition::parse(&due.condition, AckCondition::Always).wants(code) {
        return None;
    }
    let mut builder = AckBuilder::for_bytes(&due.raw, code);
    if code == AckCode::AE {
        let reason = due
            .reason
            .clone()
            .unwrap_or_else(|| format!("the message was {}", due.state));
        builder = builder
            .text(reason.clone())
            .error(AckError::new(ErrorCode::ApplicationInternalError, reason));
    }
    Some(builder.build())
}

fn due_page(conn: &rusqlite::Connection) -> store::Result<Vec<Due>> {
    let mut stmt = conn.prepare_cached(
        "SELECT o.message_id, o.condition, j.channel, j.state, j.state_reason, r.raw \
         FROM application_acks_owed o JOIN journal j ON j.id = o.message_id \
         JOIN journal_raw r ON r.id = o.message_id \
         WHERE j.state NOT IN ('received', 'rejected') \
         ORDER BY o.message_id LIMIT ?1",
    )?;
    let rows = stmt.query_map(params![PAGE as i64], |r| {
        Ok(Due {
            message_id: r.get(0)?,
            condition: r.get(1)?,
            channel: r.get(2)?,
            state: r.get(3)?,
            reason: r.get(4)?,
            raw: r.get(5)?,
        })
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// Starts the task. `targets` maps a channel to the `host:port` its
/// enhanced-mode senders listen on; owed acknowledgements of other channels
/// stay owed (and visible) until a target is configured.
pub fn spawn(
    store: Store,
    targets: HashMap<String, String>,
    mut stop: watch::Receiver<bool>,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        if targets.is_empty() {
            return;
        }
        let connector = match MllpConnector::new(None) {
            Ok(c) => Arc::new(c.response_timeout(Duration::from_secs(30))),
            Err(err) => {
                warn!(error = %err, "application acknowledgements cannot be sent");
                return;
            }
        };
        let mut backoff: HashMap<String, Duration> = HashMap::new();
        loop {
            let pause = match send_due(&store, &targets, &connector, &mut backoff).await {
                Ok(true) => Duration::ZERO,
                Ok(false) => backoff.values().copied().max().unwrap_or(POLL).max(POLL),
                Err(err) => {
                    warn!(error = %err, "reading owed application acknowledgements failed");
                    Duration::from_secs(1)
                }
            };
            tokio::select! {
                _ = tokio::time::sleep(pause) => {}
                _ = stop.changed() => return,
            }
            if *stop.borrow() {
                return;
            }
        }
    })
}

/// Sends what is due; true when a full page was settled (more may wait).
async fn send_due(
    store: &Store,
    targets: &HashMap<String, String>,
    connector: &MllpConnector,
    backoff: &mut HashMap<String, Duration>,
) -> store::Result<bool> {
    let page = store.read_async(due_page).await?;
    let full = page.len() == PAGE;
    let mut settled = Vec::new();
    let mut failed_channels: Vec<String> = Vec::new();
    for due in page {
        if failed_channels.contains(&due.channel) {
            continue;
        }
        let Some(target) = targets.get(&due.channel) else {
            continue;
        };
        let Some(ack) = acknowledgement(&due) else {
            settled.push(due.message_id);
            continue;
        };
        match send(connector, target, &ack).await {
            Ok(()) => {
                backoff.remove(&due.channel);
                settled.push(due.message_id);
            }
            Err(reason) => {
                let next = backoff
                    .get(&due.channel)
                    .map_or(POLL * 5, |d| (*d * 2).min(MAX_BACKOFF));
                warn!(
                    channel = %due.channel,
                    message_id = due.message_id,
                    retry_in_ms = next.as_millis() as u64,
                    %reason,
                    "application acknowledgement not delivered; will retry"
                );
                backoff.insert(due.channel.clone(), next);
                failed_channels.push(due.channel);
            }
        }
    }
    let any = !settled.is_empty();
    if any {
        debug!(
            count = settled.len(),
            "application acknowledgements settled"
        );
        store
            .write(move |conn| {
                let mut stmt =
                    conn.prepare_cached("DELETE FROM application_acks_owed WHERE message_id = ?1")?;
                for id in settled {
                    stmt.execute(params![id])?;
                }
                Ok(())
            })
            .await?;
    }
    Ok(full && any && failed_channels.is_empty())
}

/// Sends one acknowledgement and waits for the listener's answer: a positive
/// answer (AA/CA), or none at all from a listener that does not acknowledge
/// acknowledgements, counts as delivered.
async fn send(connector: &MllpConnector, target: &str, ack: &[u8]) -> Result<(), String> {
    let mut client = connector
        .connect(target)
        .await
        .map_err(|e| format!("cannot connect to {target}: {e}"))?;
    let answer = client
        .send(ack)
        .await
        .map_err(|e| format!("{target} did not answer: {e}"))?;
    let code = hl7v2::Message::parse(&answer)
        .ok()
        .and_then(|m| m.get_str("MSA-1").ok().flatten().map(|c| c.into_owned()));
    match code.as_deref().and_then(AckCode::parse) {
        Some(code) if !code.is_positive() => Err(format!("{target} answered {}", code.as_str())),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn due(state: &str, condition: &str) -> Due {
        Due {
            message_id: 1,
            condition: condition.to_owned(),
            channel: "lab".to_owned(),
            state: state.to_owned(),
            reason: Some("step map failed".to_owned()),
            raw: b"MSH|^~\\&|LIS|LAB|EHR|HOSP|20240101||ORU^R01|C1|P|2.5|||AL|AL\rPID|1\r".to_vec(),
        }
    }

    fn msa(ack: &[u8]) -> (String, String) {
        let m = hl7v2::Message::parse(ack).unwrap();
        (
            m.get_str("MSA-1").unwrap().unwrap().into_owned(),
            m.get_str("MSA-2").unwrap().unwrap().into_owned(),
        )
    }

    #[test]
    fn decided_messages_get_aa_or_ae_and_undecided_ones_wait() {
        assert_eq!(acknowledgement(&due("received", "AL")), None);
        let aa = acknowledgement(&due("delivered", "AL")).unwrap();
        assert_eq!(msa(&aa), ("AA".to_owned(), "C1".to_owned()));
        let ae = acknowledgement(&due("errored", "AL")).unwrap();
        assert_eq!(msa(&ae).0, "AE");
        assert!(String::from_utf8_lossy(&ae).contains("step map failed"));
        assert!(String::from_utf8_lossy(&ae).contains("\rERR|"));
    }

    #[test]
    fn msh16_decides_which_outcomes_are_acknowledged() {
        assert_eq!(acknowledgement(&due("delivered", "ER")), None);
        assert!(acknowledgement(&due("errored", "ER")).is_some());
        assert_eq!(acknowledgement(&due("quarantined", "SU")), None);
        assert!(acknowledgement(&due("processed", "SU")).is_some());
    }
}
