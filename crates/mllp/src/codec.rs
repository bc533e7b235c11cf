//! Incremental MLLP frame decoding over one growing byte buffer.

use bytes::{Buf, Bytes, BytesMut};
use tokio_util::codec::{Decoder, Encoder};

use crate::error::MllpError;
use crate::frame::{
    CARRIAGE_RETURN, DEFAULT_MAX_FRAME_SIZE, END_BLOCK, START_BLOCK, encode_frame_into,
};

/// A frame grew past the configured maximum before its end block arrived.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("MLLP frame exceeds the maximum size of {limit} bytes")]
pub struct FrameTooLarge {
    /// The limit that was exceeded, in payload bytes.
    pub limit: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Looking for the next start block; everything else is junk.
    BetweenFrames,
    /// The start block was consumed; `scanned` payload bytes hold no block byte.
    InFrame { scanned: usize },
}

/// Cuts MLLP frames out of a byte buffer as bytes arrive.
///
/// The decoder is tolerant the way receivers in the field need to be:
/// - bytes outside frames are skipped (line breaks silently, anything else is
///   counted, see [`take_skipped_bytes`](Self::take_skipped_bytes));
/// - a missing carriage return after the end block is accepted;
/// - a start block inside an unfinished frame abandons that frame (counted as
///   skipped) and starts a new one, so a sender that gave up mid-frame and
///   resent is understood.
///
/// A frame whose payload grows past the maximum size is an error: the buffer
/// never holds more than the maximum plus what the last read added. Each frame
/// is split off the buffer as [`Bytes`] without copying.
///
/// ```
/// use bytes::BytesMut;
/// use mllp::FrameDecoder;
///
/// let mut decoder = FrameDecoder::new(1024);
/// let mut buf = BytesMut::from(&b"junk\x0bMSH|first\x1c\x0d\x0bMSH|sec"[..]);
/// assert_eq!(decoder.decode(&mut buf).unwrap().unwrap().as_ref(), b"MSH|first");
/// assert_eq!(decoder.take_skipped_bytes(), 4);
/// assert!(decoder.decode(&mut buf).unwrap().is_none());
/// assert!(decoder.is_mid_frame());
/// buf.extend_from_slice(b"ond\x1c\x0d");
/// assert_eq!(decoder.decode(&mut buf).unwrap().unwrap().as_ref(), b"MSH|second");
/// ```
#[derive(Debug, Clone)]
pub struct FrameDecoder {
    max_frame_size: usize,
    state: State,
    /// The last frame ended exactly at the end of the buffer: a CR may follow.
    swallow_carriage_return: bool,
    skipped: usize,
}

impl Default for FrameDecoder {
    fn default() -> Self {
        FrameDecoder::new(DEFAULT_MAX_FRAME_SIZE)
    }
}

impl FrameDecoder {
    /// A decoder that refuses payloads longer than `max_frame_size` bytes.
    pub fn new(max_frame_size: usize) -> Self {
        FrameDecoder {
            max_frame_size,
            state: State::BetweenFrames,
            swallow_carriage_return: false,
            skipped: 0,
        }
    }

    /// The payload size limit this decoder enforces.
    pub fn max_frame_size(&self) -> usize {
        self.max_frame_size
    }

    /// True when a start block was seen and its frame has not ended yet.
    pub fn is_mid_frame(&self) -> bool {
        matches!(self.state, State::InFrame { .. })
    }

    /// Returns how many junk bytes were skipped since the last call, and resets
    /// the count. Line breaks (CR, LF) between frames are not counted: many
    /// senders append one after each frame.
    pub fn take_skipped_bytes(&mut self) -> usize {
        std::mem::take(&mut self.skipped)
    }

    /// Cuts the next complete frame's payload out of `buf`.
    ///
    /// Returns `Ok(None)` when `buf` holds no complete frame yet; the bytes of
    /// a partial frame stay in `buf` (and are not scanned again) until more
    /// arrive. Junk before a frame is removed from `buf`.
    pub fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<Bytes>, FrameTooLarge> {
        loop {
            if self.swallow_carriage_return && !buf.is_empty() {
                self.swallow_carriage_return = false;
                if buf[0] == CARRIAGE_RETURN {
                    buf.advance(1);
                }
            }
            match self.state {
                State::BetweenFrames => {
                    let junk_len = memchr::memchr(START_BLOCK, buf).unwrap_or(buf.len());
                    if junk_len > 0 {
                        self.skipped += buf[..junk_len]
                            .iter()
                            .filter(|&&b| b != b'\r' && b != b'\n')
                            .count();
                    }
                    if junk_len == buf.len() {
                        buf.clear();
                        return Ok(None);
                    }
                    buf.advance(junk_len + 1);
                    self.state = State::InFrame { scanned: 0 };
                }
                State::InFrame { scanned } => {
                    let Some(offset) = memchr::memchr2(START_BLOCK, END_BLOCK, &buf[scanned..])
                    else {
                        if buf.len() > self.max_frame_size {
                            return Err(self.too_large());
                        }
                        self.state = State::InFrame { scanned: buf.len() };
                        return Ok(None);
                    };
                    let at = scanned + offset;
                    if at > self.max_frame_size {
                        return Err(self.too_large());
                    }
                    if buf[at] == START_BLOCK {
                        // The sender abandoned this frame and started again.
                        self.skipped += 1 + at;
                        buf.advance(at + 1);
                        self.state = State::InFrame { scanned: 0 };
                        continue;
                    }
                    let payload = buf.split_to(at).freeze();
                    buf.advance(1);
                    match buf.first() {
                        Some(&CARRIAGE_RETURN) => buf.advance(1),
                        Some(_) => {}
                        None => self.swallow_carriage_return = true,
                    }
                    self.state = State::BetweenFrames;
                    return Ok(Some(payload));
                }
            }
        }
    }

    fn too_large(&mut self) -> FrameTooLarge {
        // The rest of the stream cannot be trusted; start over if reused.
        self.state = State::BetweenFrames;
        FrameTooLarge {
            limit: self.max_frame_size,
        }
    }
}

/// [`FrameDecoder`] plus the frame encoder as a `tokio_util` codec, for use
/// with `tokio_util::codec::Framed` when the caller wants a `Stream`/`Sink`.
///
/// Skipped junk is dropped silently here; use [`MllpCodec::decoder_mut`] to
/// read the count.
#[derive(Debug, Clone, Default)]
pub struct MllpCodec {
    decoder: FrameDecoder,
}

impl MllpCodec {
    /// A codec that refuses payloads longer than `max_frame_size` bytes.
    pub fn new(max_frame_size: usize) -> Self {
        MllpCodec {
            decoder: FrameDecoder::new(max_frame_size),
        }
    }

    /// The underlying decoder (for its skipped-bytes count and state).
    pub fn decoder_mut(&mut self) -> &mut FrameDecoder {
        &mut self.decoder
    }
}

impl Decoder for MllpCodec {
    type Item = Bytes;
    type Error = MllpError;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<Bytes>, MllpError> {
        Ok(self.decoder.decode(src)?)
    }

    fn decode_eof(&mut self, buf: &mut BytesMut) -> Result<Option<Bytes>, MllpError> {
        match self.decoder.decode(buf)? {
            Some(frame) => Ok(Some(frame)),
            None if self.decoder.is_mid_frame() => Err(MllpError::ClosedMidFrame),
            None => Ok(None),
        }
    }
}

impl Encoder<&[u8]> for MllpCodec {
    type Error = MllpError;

    fn encode(&mut self, payload: &[u8], dst: &mut BytesMut) -> Result<(), MllpError> {
        encode_frame_into(payload, dst)
    }
}

impl Encoder<Bytes> for MllpCodec {
    type Error = MllpError;

    fn encode(&mut self, payload: Bytes, dst: &mut BytesMut) -> Result<(), MllpError> {
        encode_frame_into(&payload, dst)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frame::encode_frame;
    use proptest::prelude::*;

    fn decode_all(decoder: &mut FrameDecoder, buf: &mut BytesMut) -> Vec<Bytes> {
        let mut frames = Vec::new();
        while let Some(frame) = decoder.decode(buf).unwrap() {
            frames.push(frame);
        }
        frames
    }

    #[test]
    fn partial_frame_waits_for_its_end_block() {
        let mut decoder = FrameDecoder::new(100);
        let mut buf = BytesMut::from(&b"\x0bMSH|partial"[..]);
        assert_eq!(decoder.decode(&mut buf).unwrap(), None);
        assert!(decoder.is_mid_frame());
        buf.extend_from_slice(b"\x1c");
        assert_eq!(
            decoder.decode(&mut buf).unwrap().unwrap(),
            &b"MSH|partial"[..]
        );
        assert!(!decoder.is_mid_frame());
        // The CR arriving later belongs to the frame, not to junk.
        buf.extend_from_slice(b"\x0d");
        assert_eq!(decoder.decode(&mut buf).unwrap(), None);
        assert_eq!(decoder.take_skipped_bytes(), 0);
        assert!(buf.is_empty());
    }

    #[test]
    fn junk_between_frames_is_skipped_and_counted() {
        let mut decoder = FrameDecoder::new(100);
        let mut buf = BytesMut::from(&b"GET / HTTP/1.1\x0bone\x1c\x0dxyz\x0btwo\x1c\x0d"[..]);
        let frames = decode_all(&mut decoder, &mut buf);
        assert_eq!(frames, vec![&b"one"[..], &b"two"[..]]);
        assert_eq!(decoder.take_skipped_bytes(), 14 + 3);
        assert_eq!(decoder.take_skipped_bytes(), 0);
    }

    #[test]
    fn junk_without_any_start_block_is_dropped_from_the_buffer() {
        let mut decoder = FrameDecoder::new(100);
        let mut buf = BytesMut::from(&b"no frames here at all"[..]);
        assert_eq!(decoder.decode(&mut buf).unwrap(), None);
        assert!(buf.is_empty(), "junk must not accumulate");
        assert_eq!(decoder.take_skipped_bytes(), 21);
    }

    #[test]
    fn line_breaks_between_frames_are_not_counted_as_junk() {
        let mut decoder = FrameDecoder::new(100);
        let mut buf = BytesMut::from(&b"\x0bone\x1c\x0d\r\n\x0btwo\x1c\x0d\n"[..]);
        assert_eq!(decode_all(&mut decoder, &mut buf).len(), 2);
        assert_eq!(decoder.take_skipped_bytes(), 0);
    }

    #[test]
    fn missing_carriage_return_after_end_block_is_tolerated() {
        let mut decoder = FrameDecoder::new(100);
        let mut buf = BytesMut::from(&b"\x0bone\x1c\x0btwo\x1c"[..]);
        let frames = decode_all(&mut decoder, &mut buf);
        assert_eq!(frames, vec![&b"one"[..], &b"two"[..]]);
        assert_eq!(decoder.take_skipped_bytes(), 0);
    }

    #[test]
    fn start_block_inside_a_frame_abandons_the_partial_frame() {
        let mut decoder = FrameDecoder::new(100);
        let mut buf = BytesMut::from(&b"\x0bhalf-sent\x0bwhole\x1c\x0d"[..]);
        assert_eq!(decode_all(&mut decoder, &mut buf), vec![&b"whole"[..]]);
        assert_eq!(decoder.take_skipped_bytes(), 10);
    }

    #[test]
    fn frame_past_the_limit_is_refused_before_its_end_arrives() {
        let mut decoder = FrameDecoder::new(8);
        let mut buf = BytesMut::from(&b"\x0b12345678"[..]);
        assert_eq!(decoder.decode(&mut buf).unwrap(), None);
        buf.extend_from_slice(b"9");
        assert_eq!(decoder.decode(&mut buf), Err(FrameTooLarge { limit: 8 }));
    }

    #[test]
    fn frame_exactly_at_the_limit_is_accepted() {
        let mut decoder = FrameDecoder::new(8);
        let mut buf = BytesMut::from(&b"\x0b12345678\x1c\x0d\x0b123456789\x1c\x0d"[..]);
        assert_eq!(decoder.decode(&mut buf).unwrap().unwrap(), &b"12345678"[..]);
        assert_eq!(decoder.decode(&mut buf), Err(FrameTooLarge { limit: 8 }));
    }

    #[test]
    fn empty_payload_is_a_frame() {
        let mut decoder = FrameDecoder::new(8);
        let mut buf = BytesMut::from(&b"\x0b\x1c\x0d"[..]);
        assert_eq!(decoder.decode(&mut buf).unwrap().unwrap(), &b""[..]);
    }

    #[test]
    fn codec_reports_a_stream_that_ends_mid_frame() {
        let mut codec = MllpCodec::new(100);
        let mut buf = BytesMut::from(&b"\x0bcut off"[..]);
        assert!(matches!(
            codec.decode_eof(&mut buf),
            Err(MllpError::ClosedMidFrame)
        ));
    }

    fn payload() -> impl Strategy<Value = Vec<u8>> {
        proptest::collection::vec(any::<u8>(), 0..300).prop_map(|mut bytes| {
            bytes.retain(|&b| b != START_BLOCK && b != END_BLOCK);
            bytes
        })
    }

    proptest! {
        #[test]
        fn frames_round_trip_whatever_the_read_boundaries(
            payloads in proptest::collection::vec(payload(), 0..20),
            chunk in 1usize..64,
            with_cr in any::<bool>(),
        ) {
            let mut wire = BytesMut::new();
            for p in &payloads {
                encode_frame_into(p, &mut wire).unwrap();
                if !with_cr {
                    wire.truncate(wire.len() - 1);
                }
            }
            let mut decoder = FrameDecoder::new(300);
            let mut buf = BytesMut::new();
            let mut decoded = Vec::new();
            for piece in wire.chunks(chunk) {
                buf.extend_from_slice(piece);
                decoded.extend(decode_all(&mut decoder, &mut buf));
            }
            prop_assert_eq!(decoded.len(), payloads.len());
            for (got, want) in decoded.iter().zip(&payloads) {
                prop_assert_eq!(got.as_ref(), want.as_slice());
            }
            prop_assert_eq!(decoder.take_skipped_bytes(), 0);
            prop_assert!(buf.is_empty());
        }

        #[test]
        fn junk_between_frames_never_hides_a_frame(
            payloads in proptest::collection::vec(payload(), 1..10),
            junk in proptest::collection::vec(payload(), 1..10),
        ) {
            let mut wire = BytesMut::new();
            let mut junk_total = 0;
            for (i, p) in payloads.iter().enumerate() {
                // Junk must not contain a start block; end blocks were removed too.
                let j = &junk[i % junk.len()];
                wire.extend_from_slice(j);
                junk_total += j.iter().filter(|&&b| b != b'\r' && b != b'\n').count();
                wire.extend_from_slice(&encode_frame(p).unwrap());
            }
            let mut decoder = FrameDecoder::new(300);
            let decoded = decode_all(&mut decoder, &mut wire);
            prop_assert_eq!(decoded.len(), payloads.len());
            for (got, want) in decoded.iter().zip(&payloads) {
                prop_assert_eq!(got.as_ref(), want.as_slice());
            }
            prop_assert_eq!(decoder.take_skipped_bytes(), junk_total);
        }

        #[test]
        fn arbitrary_input_never_panics_or_overgrows(input in proptest::collection::vec(any::<u8>(), 0..2000)) {
            let mut decoder = FrameDecoder::new(64);
            let mut buf = BytesMut::new();
            for piece in input.chunks(7) {
                buf.extend_from_slice(piece);
                loop {
                    match decoder.decode(&mut buf) {
                        Ok(Some(frame)) => prop_assert!(frame.len() <= 64),
                        Ok(None) => break,
                        Err(_) => { buf.clear(); break; }
                    }
                }
                prop_assert!(buf.len() <= 64 + 7);
            }
        }
    }
}
