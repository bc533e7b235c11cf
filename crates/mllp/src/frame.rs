//! The MLLP block format and the MLLP release 2 commit acknowledgements.
//!
//! A frame is `0x0B`, the payload, then `0x1C 0x0D`:
//!
//! ```text
//! <SB> payload <EB><CR>      SB = 0x0B, EB = 0x1C, CR = 0x0D
//! ```

use bytes::{BufMut, Bytes, BytesMut};

use crate::error::MllpError;

/// Start block byte (vertical tab) that opens every frame.
pub const START_BLOCK: u8 = 0x0B;
/// End block byte (file separator) that closes every frame's payload.
pub const END_BLOCK: u8 = 0x1C;
/// Carriage return that follows [`END_BLOCK`]; tolerated when missing.
pub const CARRIAGE_RETURN: u8 = 0x0D;
/// Bytes added around every payload by the framing (`SB` + `EB CR`).
pub const FRAME_OVERHEAD: usize = 3;
/// Default limit for one frame's payload: 16 MiB.
pub const DEFAULT_MAX_FRAME_SIZE: usize = 16 * 1024 * 1024;

/// Payload of an MLLP release 2 positive commit acknowledgement (ASCII ACK).
pub const COMMIT_ACK_PAYLOAD: &[u8] = &[0x06];
/// Payload of an MLLP release 2 negative commit acknowledgement (ASCII NAK).
pub const COMMIT_NAK_PAYLOAD: &[u8] = &[0x15];

/// An MLLP release 2 commit acknowledgement.
///
/// Release 2 of MLLP lets a receiver confirm, with a one-byte frame, that it has
/// *committed* (durably stored) a message, independently of the HL7 application
/// acknowledgement. The server in this crate never sends one by itself, because
/// only the engine knows when a message is durable: when a listener has
/// [`commit_acks`](crate::MllpServerConfig::commit_acks) on, the handler returns
/// [`CommitAck::Accept.payload()`](CommitAck::payload) as the first response once
/// the message is stored (or [`CommitAck::Reject`] when it could not be), followed
/// by the application ACK if one is wanted.
///
/// ```
/// use mllp::CommitAck;
///
/// assert_eq!(CommitAck::Accept.payload().as_ref(), &[0x06]);
/// assert_eq!(CommitAck::from_payload(&[0x15]), Some(CommitAck::Reject));
/// assert_eq!(CommitAck::from_payload(b"MSH|^~\\&|"), None);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CommitAck {
    /// The message was committed to durable storage (payload `0x06`).
    Accept,
    /// The message could not be committed; the sender should resend (payload `0x15`).
    Reject,
}

impl CommitAck {
    /// The frame payload for this acknowledgement, without copying.
    pub fn payload(self) -> Bytes {
        match self {
            CommitAck::Accept => Bytes::from_static(COMMIT_ACK_PAYLOAD),
            CommitAck::Reject => Bytes::from_static(COMMIT_NAK_PAYLOAD),
        }
    }

    /// Recognises a received frame payload as a commit acknowledgement.
    pub fn from_payload(payload: &[u8]) -> Option<CommitAck> {
        match payload {
            COMMIT_ACK_PAYLOAD => Some(CommitAck::Accept),
            COMMIT_NAK_PAYLOAD => Some(CommitAck::Reject),
            _ => None,
        }
    }
}

/// Appends one frame holding `payload` to `dst`.
///
/// Fails without writing anything when the payload contains a start or end
/// block byte, which would make the receiver cut the frame in the wrong place.
pub fn encode_frame_into(payload: &[u8], dst: &mut BytesMut) -> Result<(), MllpError> {
    if let Some(offset) = memchr::memchr2(START_BLOCK, END_BLOCK, payload) {
        return Err(MllpError::PayloadNotFramable {
            byte: payload[offset],
            offset,
        });
    }
    dst.reserve(payload.len() + FRAME_OVERHEAD);
    dst.put_u8(START_BLOCK);
    dst.put_slice(payload);
    dst.put_slice(&[END_BLOCK, CARRIAGE_RETURN]);
    Ok(())
}

/// Returns one frame holding `payload`.
///
/// ```
/// let frame = mllp::encode_frame(b"MSH|^~\\&|").unwrap();
/// assert_eq!(frame.as_ref(), b"\x0bMSH|^~\\&|\x1c\x0d");
/// ```
pub fn encode_frame(payload: &[u8]) -> Result<Bytes, MllpError> {
    let mut dst = BytesMut::with_capacity(payload.len() + FRAME_OVERHEAD);
    encode_frame_into(payload, &mut dst)?;
    Ok(dst.freeze())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frame_wraps_payload_in_start_and_end_block() {
        let frame = encode_frame(b"abc").unwrap();
        assert_eq!(frame.as_ref(), &[0x0B, b'a', b'b', b'c', 0x1C, 0x0D]);
    }

    #[test]
    fn payload_with_end_block_byte_is_refused_with_its_offset() {
        let err = encode_frame(b"ab\x1ccd").unwrap_err();
        assert!(matches!(
            err,
            MllpError::PayloadNotFramable {
                byte: 0x1C,
                offset: 2
            }
        ));
    }

    #[test]
    fn commit_acks_round_trip_through_their_payloads() {
        for ack in [CommitAck::Accept, CommitAck::Reject] {
            assert_eq!(CommitAck::from_payload(&ack.payload()), Some(ack));
        }
        assert_eq!(CommitAck::from_payload(&[]), None);
        assert_eq!(CommitAck::from_payload(&[0x06, 0x06]), None);
    }
}
