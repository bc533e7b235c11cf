//! Shared test helpers: a real SQLite store, real MLLP receivers, messages.
#![allow(dead_code)]

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use delivery::{Delivery, DestinationConfig, EntryState, QueueEntry, Router};
use mllp::{ConnectionInfo, MllpServer, MllpServerConfig, ServerHandle, handler_fn};
use store::{Appended, Journal, MessageId, MessageState, NewMessage, Store, UnixMicros};

/// An HL7 message with control id `control` and patient id `patient`.
pub fn message(control: &str, patient: &str) -> Vec<u8> {
    format!(
        "MSH|^~\\&|LAB|NORTH|EHR|NORTH|20260101120000||ORU^R01|{control}|P|2.5.1\r\
         PID|1||{patient}^^^NORTH^MR||DOE^JANE\r\
         OBX|1|NM|WBC^White cells^LN||7.5|10*3/uL\r"
    )
    .into_bytes()
}

pub fn config(text: &str) -> DestinationConfig {
    toml::from_str(text).unwrap()
}

/// Stores `raw` in the journal and queues it for the channel's destinations, in one write,
/// the way the engine does.
pub async fn ingest(
    store: &Store,
    router: &Router,
    raw: Vec<u8>,
    ordering_key: Option<String>,
) -> MessageId {
    let parsed = hl7v2::OwnedMessage::parse(&raw).unwrap();
    let routed = router.route(&parsed);
    let control = hl7v2::Message::parse(&raw)
        .unwrap()
        .control_id()
        .into_owned();
    let new = NewMessage {
        channel: Arc::from(router.channel()),
        raw: Bytes::from(raw),
        received_at: UnixMicros::now(),
        peer: Arc::from("127.0.0.1:1"),
        tls_identity: None,
        sending_application: "LAB".into(),
        sending_facility: "NORTH".into(),
        message_type: "ORU^R01".into(),
        control_id: control,
        version: "2.5.1".into(),
        state: MessageState::Processed,
        state_reason: None,
    };
    store
        .write(move |tx| {
            let id = match Journal::append_in(tx, &new, None)? {
                Appended::New(id) | Appended::Duplicate(id) => id,
            };
            delivery::enqueue_in(tx, id, ordering_key.as_deref(), &routed)?;
            Ok(id)
        })
        .await
        .unwrap()
}

/// What a receiver got: control ids in arrival order.
#[derive(Clone, Default)]
pub struct Received(pub Arc<Mutex<Vec<String>>>);

impl Received {
    pub fn ids(&self) -> Vec<String> {
        self.0.lock().unwrap().clone()
    }
    pub fn len(&self) -> usize {
        self.0.lock().unwrap().len()
    }
}

/// How a test receiver answers a message (by control id and how often it was seen).
pub type Answer = Arc<dyn Fn(&str, usize) -> Option<hl7v2::AckCode> + Send + Sync>;

pub fn always_aa() -> Answer {
    Arc::new(|_, _| Some(hl7v2::AckCode::AA))
}

/// An MLLP receiver on `listen` that records every accepted message's control id and
/// answers as `answer` says (None: no answer at all).
pub async fn receiver(listen: &str, received: Received, answer: Answer) -> ServerHandle {
    let server = MllpServer::bind("receiver", MllpServerConfig::new(listen))
        .await
        .unwrap();
    let seen: Arc<Mutex<std::collections::HashMap<String, usize>>> = Arc::default();
    server.spawn(handler_fn(move |frame: Bytes, _conn: &ConnectionInfo| {
        let received = received.clone();
        let answer = answer.clone();
        let seen = seen.clone();
        async move {
            let msg = hl7v2::Message::parse(&frame).unwrap();
            let control = msg.control_id().into_owned();
            let times = {
                let mut seen = seen.lock().unwrap();
                let n = seen.entry(control.clone()).or_insert(0);
                *n += 1;
                *n
            };
            match answer(&control, times) {
                None => {
                    // Never answers: the sender times out.
                    std::future::pending::<()>().await;
                    vec![]
                }
                Some(code) => {
                    if code.is_positive() {
                        received.0.lock().unwrap().push(control);
                    }
                    vec![Bytes::from(
                        hl7v2::AckBuilder::new(&msg, code)
                            .text("test receiver")
                            .build(),
                    )]
                }
            }
        }
    }))
}

/// A free local port (bound then released).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

pub async fn wait_for(what: &str, timeout: Duration, mut done: impl FnMut() -> bool) {
    let deadline = std::time::Instant::now() + timeout;
    while !done() {
        assert!(
            std::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

pub fn entries(store: &Store, message: MessageId) -> Vec<QueueEntry> {
    store
        .read(|c| delivery::entries_of_message(c, message))
        .unwrap()
}

pub fn count_in(store: &Store, state: EntryState) -> i64 {
    store
        .read(|c| {
            Ok(c.query_row(
                "SELECT count(*) FROM delivery_queue WHERE state = ?1",
                [state.as_str()],
                |r| r.get(0),
            )?)
        })
        .unwrap()
}

pub fn journal_state(store: &Store, id: MessageId) -> MessageState {
    store.journal().get(id).unwrap().unwrap().entry.state
}

pub async fn start(
    store: &Store,
    configs: &[DestinationConfig],
    base: &Path,
) -> (Delivery, Router) {
    let delivery = Delivery::start(store.clone(), [("lab", configs)], base)
        .await
        .unwrap();
    let router = Router::compile("lab", configs, base).unwrap();
    (delivery, router)
}
