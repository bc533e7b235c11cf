//! MLLP destinations: frames over TCP or TLS, each answered with an HL7 ACK.
//!
//! One connection stays open between batches. Up to `pipeline` frames await their ACK at
//! any moment (a sliding window); the receiver answers a connection's frames in order, so the n-th
//! ACK belongs to the n-th frame (checked: MSA-2 must repeat the frame's MSH-10).
//! MSA-1 `AA`/`CA` is success, `AE`/`AR`/`CE`/`CR` a refusal; a timeout, a closed
//! connection or an answer out of step is a transient failure and the connection is
//! dropped, so a late answer can never be taken for another message's.

use std::path::Path;
use std::time::Duration;

use bytes::Bytes;
use mllp::{FrameReader, FrameWriter, MllpConnector, TlsClientConfig};
use store::UnixMicros;
use tokio::sync::{Semaphore, mpsc};

use super::DestinationConfig;
use super::{Delivered, DeliveryMeta, Destination, Outgoing, clip};
use crate::config::TlsConfig;
use crate::error::{ConfigError, DeliveryError};

/// Largest part of an ACK kept as the delivery's answer.
const ANSWER_LIMIT: usize = 2048;

/// `type = "mllp"`: an MLLP destination's own keys (the keys every destination takes
/// are in [`DestinationConfig`]).
#[derive(Debug, Clone, serde::Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct MllpDestinationConfig {
    /// The receiver's address, `host:port` (required; missing, it is reported with the
    /// file's other problems).
    #[serde(default)]
    pub to: Option<String>,
    /// TLS settings; without them MLLP is plain TCP.
    #[serde(default)]
    pub tls: Option<TlsConfig>,
    /// Messages sent before waiting for their answers (default 64). 1 is stop-and-wait.
    ///
    /// With more than one, a message refused with a NAK and retried later arrives after
    /// the messages sent behind it; choose 1 when strict order must survive NAK retries.
    #[serde(default = "default_pipeline")]
    pub pipeline: usize,
}

fn default_pipeline() -> usize {
    64
}

impl MllpDestinationConfig {
    /// An MLLP destination sending to `to`, every other key at its default.
    pub fn new(to: impl Into<String>) -> MllpDestinationConfig {
        MllpDestinationConfig {
            to: Some(to.into()),
            tls: None,
            pipeline: default_pipeline(),
        }
    }

    /// Checks the keys; an error names its key in backquotes.
    pub(crate) fn check(&self) -> Result<(), String> {
        if self.to.is_none() {
            return Err("mllp destinations need `to`".into());
        }
        if self.pipeline == 0 {
            return Err("`pipeline` must be at least 1".into());
        }
        Ok(())
    }
}

/// Sends to an MLLP listener.
pub struct MllpDestination {
    addr: String,
    connector: MllpConnector,
    timeout: Duration,
    pipeline: usize,
    connection: Option<(FrameWriter, FrameReader)>,
}

impl std::fmt::Debug for MllpDestination {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MllpDestination")
            .field("addr", &self.addr)
            .field("connected", &self.connection.is_some())
            .finish_non_exhaustive()
    }
}

impl MllpDestination {
    /// From a validated `type = "mllp"` configuration; TLS files are read now.
    pub fn new(
        config: &DestinationConfig,
        mllp: &MllpDestinationConfig,
        base: &Path,
    ) -> Result<MllpDestination, ConfigError> {
        let fail = |reason: String| ConfigError::Invalid {
            destination: config.name.clone(),
            reason,
        };
        let addr = mllp
            .to
            .clone()
            .ok_or_else(|| fail("mllp destinations need `to`".into()))?;
        let tls = mllp.tls.as_ref().map(|tls| TlsClientConfig {
            ca_path: base.join(&tls.ca),
            cert_path: tls.cert.as_ref().map(|p| base.join(p)),
            key_path: tls.key.as_ref().map(|p| base.join(p)),
            server_name: tls.server_name.clone(),
        });
        let connector = MllpConnector::new(tls)
            .map_err(|e| fail(format!("`tls`: {e}")))?
            .connect_timeout(config.timeout)
            .response_timeout(config.timeout);
        Ok(MllpDestination {
            addr,
            connector,
            timeout: config.timeout,
            pipeline: mllp.pipeline,
            connection: None,
        })
    }

    async fn connection(&mut self) -> Result<(FrameWriter, FrameReader), DeliveryError> {
        match self.connection.take() {
            Some(open) => Ok(open),
            None => {
                let client = self
                    .connector
                    .connect(&self.addr)
                    .await
                    .map_err(|e| DeliveryError::transient(e.to_string()))?;
                Ok(client.into_split())
            }
        }
    }

    /// Sends the frames in order with up to `pipeline` of them awaiting their ACK at any
    /// moment (a sliding window: each ACK read lets one more frame go), and reads their
    /// ACKs. The first failure stops further frames; the ACKs of frames already written
    /// are still read, unless the connection is out of step. Keeps the connection only if
    /// every frame written got its answer.
    async fn send_all(&mut self, batch: &[Outgoing]) -> Vec<Result<Delivered, DeliveryError>> {
        let (mut writer, mut reader) = match self.connection().await {
            Ok(open) => open,
            Err(err) => return vec![Err(err)],
        };
        let window = Semaphore::new(self.pipeline.max(1));
        // The reader waits for each frame to be written before waiting for its ACK, so a
        // failed write ends the read side at once instead of after a timeout.
        let (written_tx, mut written_rx) = mpsc::unbounded_channel::<()>();
        let write = async {
            let mut written = 0;
            for message in batch {
                // Closed by the reader after a failure: nothing more is sent.
                let Ok(permit) = window.acquire().await else {
                    break;
                };
                permit.forget();
                writer.send_frame(&message.payload).await?;
                written += 1;
                let _ = written_tx.send(());
            }
            drop(written_tx);
            Ok::<usize, mllp::MllpError>(written)
        };
        let timeout = self.timeout;
        let read = async {
            let mut results = Vec::with_capacity(batch.len());
            for message in batch {
                if written_rx.recv().await.is_none() {
                    break;
                }
                let frame = match tokio::time::timeout(timeout, reader.next_frame()).await {
                    Ok(Ok(Some(frame))) => Ok(frame),
                    Ok(Ok(None)) => {
                        Err("the receiver closed the connection before answering".to_owned())
                    }
                    Ok(Err(err)) => Err(err.to_string()),
                    Err(_) => Err(format!("no ACK within {timeout:?}")),
                };
                let result = frame
                    .map_err(DeliveryError::transient)
                    .and_then(|frame| judge_ack(&message.payload, frame));
                let failed = result.is_err();
                let out_of_step =
                    matches!(&result, Err(e) if e.kind == crate::FailureKind::Transient);
                results.push(result);
                if failed {
                    // After any failure the worker decides what may follow (order within
                    // a key): no further frame is written.
                    window.close();
                } else {
                    window.add_permits(1);
                }
                if out_of_step {
                    break;
                }
            }
            window.close();
            results
        };
        let (written, mut results) = tokio::join!(write, read);
        let healthy = written.as_ref().is_ok_and(|&n| results.len() == n)
            && results.iter().all(|r| {
                r.as_ref()
                    .map_or_else(|e| e.kind != crate::FailureKind::Transient, |_| true)
            });
        if let Err(err) = written {
            if results.len() < batch.len() {
                results.push(Err(DeliveryError::transient(err.to_string())));
            }
        }
        if healthy {
            self.connection = Some((writer, reader));
        }
        results
    }
}

impl Destination for MllpDestination {
    async fn deliver(
        &mut self,
        message: &Outgoing,
        _meta: &DeliveryMeta,
    ) -> Result<Delivered, DeliveryError> {
        self.send_all(std::slice::from_ref(message))
            .await
            .pop()
            .unwrap_or_else(|| Err(DeliveryError::transient("the message was not sent")))
    }

    async fn deliver_batch(
        &mut self,
        batch: &[Outgoing],
        _meta: &DeliveryMeta,
    ) -> Vec<Result<Delivered, DeliveryError>> {
        self.send_all(batch).await
    }

    async fn disconnect(&mut self) {
        if let Some((writer, reader)) = self.connection.take() {
            // The receiver reads the end of the stream (a TLS close_notify first).
            let _ = tokio::time::timeout(self.timeout, writer.close()).await;
            drop(reader);
        }
    }
}

/// Reads the receiver's ACK for `sent`: MSA-1 decides, MSA-2 must be the sent MSH-10.
fn judge_ack(sent: &Bytes, ack: Bytes) -> Result<Delivered, DeliveryError> {
    let answered_at = UnixMicros::now();
    let answer = clip(&ack, ANSWER_LIMIT);
    let parsed = match hl7v2::Message::parse(&ack) {
        Ok(parsed) => parsed,
        Err(err) => {
            return Err(DeliveryError::transient(format!(
                "the receiver's answer is not an HL7 message: {err}"
            )));
        }
    };
    let code = parsed.get_str("MSA-1").ok().flatten().unwrap_or_default();
    let acked_id = parsed.get_str("MSA-2").ok().flatten().unwrap_or_default();
    let sent_id = hl7v2::Message::parse(sent)
        .map(|m| m.control_id().into_owned())
        .unwrap_or_default();
    if !sent_id.is_empty() && !acked_id.is_empty() && acked_id != sent_id {
        return Err(DeliveryError::transient(
            "the receiver acknowledged another message than the one sent (MSA-2 differs \
             from MSH-10); reconnecting",
        ));
    }
    match hl7v2::AckCode::parse(code.trim()) {
        Some(code) if code.is_positive() => Ok(Delivered {
            answer,
            answered_at,
        }),
        Some(code) => {
            let text = parsed.get_str("MSA-3").ok().flatten().unwrap_or_default();
            let reason = if text.is_empty() {
                format!("the receiver answered {}", code.as_str())
            } else {
                format!("the receiver answered {}: {text}", code.as_str())
            };
            Err(DeliveryError::refused(reason, answer))
        }
        None => Err(DeliveryError::transient(format!(
            "the receiver's answer has no valid MSA-1 (found {code:?})"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SENT: &[u8] = b"MSH|^~\\&|A|B|C|D|20260101||ORU^R01|CTRL7|P|2.5.1\r";

    #[test]
    fn aa_for_the_sent_control_id_is_delivered() {
        let ack = Bytes::from_static(b"MSH|^~\\&|C|D|A|B|20260101||ACK|9|P|2.5.1\rMSA|AA|CTRL7\r");
        let delivered = judge_ack(&Bytes::from_static(SENT), ack).unwrap();
        assert!(delivered.answer.contains("MSA|AA|CTRL7"));
    }

    #[test]
    fn ae_is_a_refusal_carrying_msa_3() {
        let ack = Bytes::from_static(
            b"MSH|^~\\&|C|D|A|B|20260101||ACK|9|P|2.5.1\rMSA|AE|CTRL7|unknown patient\r",
        );
        let err = judge_ack(&Bytes::from_static(SENT), ack).unwrap_err();
        assert_eq!(err.kind, crate::FailureKind::Refused);
        assert!(err.reason.contains("AE: unknown patient"), "{}", err.reason);
    }

    #[test]
    fn ack_for_another_control_id_is_out_of_step() {
        let ack = Bytes::from_static(b"MSH|^~\\&|C|D|A|B|20260101||ACK|9|P|2.5.1\rMSA|AA|OTHER\r");
        let err = judge_ack(&Bytes::from_static(SENT), ack).unwrap_err();
        assert_eq!(err.kind, crate::FailureKind::Transient);
    }
}
