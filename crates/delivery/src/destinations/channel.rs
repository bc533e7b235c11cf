//! Channel destinations: `type = "channel"`, `channel = "NAME"` hands the processed
//! message to another channel of the same engine.
//!
//! There is no queue and no worker in between: [`hand_over_in`] appends the message to
//! the receiving channel's journal as `received`, inside the transaction that records
//! it processed on this channel ([`crate::enqueue_in`]), and records this destination's
//! entry `delivered` with the new journal id as its answer. Both commit or neither does,
//! so a crash never loses a hand-over nor makes two, and the receiving channel takes
//! messages in the order this channel processed them: chained channels keep
//! at-least-once delivery and order end to end. The journal row carries the message's
//! own MSH fields (sender, type, control id), so the receiving channel sees the original
//! sender; its peer is `channel:NAME`. A message resent on this destination is refused:
//! reprocess it on its channel instead. Cycles (`a -> b -> a`) are refused when the
//! configuration is checked.

use std::sync::Arc;

use bytes::Bytes;
use serde::Deserialize;
use store::rusqlite::Connection;
use store::{Appended, Journal, MessageId, MessageState, NewMessage, UnixMicros};

use super::{Delivered, DeliveryMeta, Destination, Outgoing};
use crate::error::DeliveryError;

/// `type = "channel"`: a channel destination's own keys (the keys every destination
/// takes are in [`DestinationConfig`](super::DestinationConfig)).
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct ChannelDestinationConfig {
    /// The channel of this engine that receives the message (required).
    #[serde(default)]
    pub channel: Option<String>,
}

impl ChannelDestinationConfig {
    /// Checks the keys; an error names its key in backquotes.
    pub(crate) fn check(&self) -> Result<(), String> {
        match &self.channel {
            None => {
                Err("channel destinations need `channel` (the receiving channel's name)".into())
            }
            Some(name) if name.trim().is_empty() => Err("`channel` must not be empty".into()),
            // That the channel exists, is not this one and closes no cycle is checked
            // with the whole configuration (the engine's `Config::check`).
            Some(_) => Ok(()),
        }
    }
}

/// Appends `payload` to channel `to`'s journal as `received`, handed over by channel
/// `from`; returns its journal id. Runs inside the caller's transaction.
pub fn hand_over_in(
    conn: &Connection,
    from: &str,
    to: &str,
    payload: &Bytes,
) -> store::Result<MessageId> {
    let header = hl7v2::RawHeader::scan(payload);
    let text = |n: usize| header.as_ref().map(|h| h.text(n)).unwrap_or_default();
    let message = NewMessage {
        channel: Arc::from(to),
        raw: payload.clone(),
        received_at: UnixMicros::now(),
        peer: Arc::from(format!("channel:{from}")),
        tls_identity: None,
        sending_application: text(3),
        sending_facility: text(4),
        message_type: text(9),
        control_id: text(10),
        version: text(12),
        state: MessageState::Received,
        state_reason: None,
    };
    // No duplicate window: the hand-over commits once with the processing that makes it.
    match Journal::append_in(conn, &message, None)? {
        Appended::New(id) | Appended::Duplicate(id) => Ok(id),
    }
}

/// The worker side of a channel destination: its entries are delivered when they are
/// queued, so the worker only meets one that was resent, which it refuses.
pub(crate) struct ChannelDestination;

impl Destination for ChannelDestination {
    async fn deliver(
        &mut self,
        _message: &Outgoing,
        meta: &DeliveryMeta,
    ) -> Result<Delivered, DeliveryError> {
        Err(DeliveryError::refused(
            format!(
                "a channel destination hands messages over when channel {} processes them; reprocess the message instead of resending it",
                meta.channel
            ),
            "not resent",
        ))
    }
}
