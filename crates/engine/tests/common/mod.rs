//! Set-up shared by the engine's integration tests: engines started from a TOML text,
//! MLLP senders that check each acknowledgement, polling with a bound, journal reads,
//! raw HTTP requests and small HL7 test messages.

// Each test binary compiles this module and uses a different part of it.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use engine::{AckModeSetting, ChannelMetrics, Config, Engine, Intake, ReceiverSettings};
use mllp::MllpClient;
use serde_json::Value;
use store::Store;
use store::rusqlite::{Params, Row};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Whether a started engine serves its HTTP API.
#[derive(Debug, Clone, Copy)]
pub enum Api {
    /// `[http] enabled = false`.
    Off,
    /// `[http] listen = "127.0.0.1:0"`: a port of the system's choosing.
    On,
}

/// A configuration text: `[data] dir` set to `dir/data`, the `[http]` section `api`
/// asks for, then `toml`. The header is four lines: `toml` starts on line 5.
pub fn config_text(dir: &Path, data: &str, api: Api, toml: &str) -> String {
    let http = match api {
        Api::Off => "enabled = false",
        // Access control is tested on its own (`corridor/tests/first_start.rs`, `api/tests/access.rs`).
        Api::On => "listen = \"127.0.0.1:0\"\nauth = \"off\"",
    };
    format!(
        "[data]\ndir = {:?}\n[http]\n{http}\n{toml}",
        dir.join(data).display().to_string()
    )
}

/// Starts an engine from [`config_text`]; relative paths in `toml` resolve in `dir`.
pub async fn start_engine(dir: &Path, data: &str, api: Api, toml: &str) -> Engine {
    let text = config_text(dir, data, api, toml);
    let config = Config::from_toml_in(&text, dir).unwrap();
    Engine::start(config).await.unwrap()
}

/// An MLLP connection to `addr`.
pub async fn mllp_client(addr: SocketAddr) -> MllpClient {
    MllpClient::connect(&addr.to_string(), None).await.unwrap()
}

/// Sends `message` and asserts that its acknowledgement's MSA-1 is `code`; returns the
/// acknowledgement.
pub async fn send_expecting(client: &mut MllpClient, message: &[u8], code: &str) -> bytes::Bytes {
    let ack = client.send(message).await.unwrap();
    let parsed = hl7v2::Message::parse(&ack).unwrap();
    assert_eq!(parsed.get_str("MSA-1").unwrap().as_deref(), Some(code));
    ack
}

/// Sends `messages` in order on one connection to `to`, asserting that each is answered AA.
pub async fn send_all(to: SocketAddr, messages: &[impl AsRef<[u8]>]) {
    let mut client = mllp_client(to).await;
    for message in messages {
        send_expecting(&mut client, message.as_ref(), "AA").await;
    }
}

/// Polls `done` every 20 ms until it holds, and fails the test naming `what` once `limit`
/// has passed. Limits are generous: the machine is shared; this bounds a hang, it
/// measures nothing.
pub async fn wait_for(what: &str, limit: Duration, mut done: impl FnMut() -> bool) {
    let start = Instant::now();
    while !done() {
        assert!(
            start.elapsed() < limit,
            "timed out after {limit:?} waiting: {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Every row `sql` selects with `params`, each read by `row`, in the order given.
pub fn rows<T>(
    store: &Store,
    sql: &str,
    params: impl Params,
    row: impl FnMut(&Row<'_>) -> store::rusqlite::Result<T>,
) -> Vec<T> {
    store
        .read(|conn| {
            let mut stmt = conn.prepare(sql)?;
            let rows = stmt
                .query_map(params, row)?
                .collect::<Result<Vec<_>, _>>()?;
            Ok(rows)
        })
        .unwrap()
}

/// The one integer `sql` selects.
pub fn count(store: &Store, sql: &str) -> i64 {
    store
        .read(|conn| Ok(conn.query_row(sql, [], |r| r.get(0))?))
        .unwrap()
}

/// The raw bytes of every message in the journal, oldest first.
pub fn raw_messages(store: &Store) -> Vec<Vec<u8>> {
    rows(store, "SELECT raw FROM journal_raw ORDER BY id", [], |r| {
        r.get(0)
    })
}

/// A store in a fresh data directory with the engine's tables; keep the directory alive
/// as long as the store.
pub async fn migrated_store() -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    engine::migrate(&store).await.unwrap();
    (dir, store)
}

/// The intake of a source of `channel`: original acknowledgements, a ten-minute
/// duplicate window, `stored` woken after each commit that stores a message.
pub fn intake(
    channel: &str,
    store: &Store,
    stored: Arc<tokio::sync::Notify>,
    metrics: Arc<ChannelMetrics>,
) -> Intake {
    Intake::new(
        ReceiverSettings {
            channel: Arc::from(channel),
            ack_mode: AckModeSetting::Original,
            duplicate_window: Some(Duration::from_secs(600)),
            stored,
        },
        store.clone(),
        metrics,
    )
}

/// Serves `app` on a local port of the system's choosing; returns the address.
pub async fn serve(app: axum::Router) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    addr
}

/// An HTTP answer as it came: the status, the head (status line and headers) and the
/// body.
pub struct Answer {
    pub status: u16,
    pub head: String,
    pub body: String,
}

impl Answer {
    /// The JSON object of the body: chunked or not, it lies between the first '{' and
    /// the last '}'. The whole body when there is none.
    pub fn json_text(&self) -> &str {
        match (self.body.find('{'), self.body.rfind('}')) {
            (Some(a), Some(b)) => &self.body[a..=b],
            _ => &self.body,
        }
    }

    /// The JSON object of the body, parsed; `Null` when there is none.
    pub fn json(&self) -> Value {
        match (self.body.find('{'), self.body.rfind('}')) {
            (Some(a), Some(b)) => serde_json::from_str(&self.body[a..=b]).unwrap(),
            _ => Value::Null,
        }
    }
}

/// One HTTP/1.1 request on a fresh connection (`Connection: close`), read to the end.
pub async fn http(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Answer {
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let mut request = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str("\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    stream.write_all(body).await.unwrap();
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).await.unwrap();
    let text = String::from_utf8(raw).unwrap();
    let (head, body) = text
        .split_once("\r\n\r\n")
        .unwrap_or_else(|| panic!("no end of the head in {text:?}"));
    let status = head.split(' ').nth(1).unwrap().parse().unwrap();
    Answer {
        status,
        head: head.to_owned(),
        body: body.to_owned(),
    }
}

/// A GET of `path` with no body and no extra headers.
pub async fn get(addr: SocketAddr, path: &str) -> Answer {
    http(addr, "GET", path, &[], b"").await
}

/// An ADT^A08 of patient P1 with control id `control`.
pub fn adt_a08(control: &str) -> String {
    format!(
        "MSH|^~\\&|ADT|HOSP|EHR|HOSP|20240101120000||ADT^A08^ADT_A01|{control}|P|2.5.1\r\
         EVN|A08|20240101120000\r\
         PID|1||P1^^^HOSP^MR||DOE^JANE\r"
    )
}

/// An ORU^R01 with one numeric OBX whose value (OBX-5) is `value`.
pub fn oru_with_value(control: &str, value: &str) -> String {
    format!(
        "MSH|^~\\&|LAB|F|EHR|F|20240315||ORU^R01^ORU_R01|{control}|P|2.5.1\r\
         PID|1||42^^^H^MR||Doe^Jane\r\
         OBR|1||F1|1234-5^Test^LN\r\
         OBX|1|NM|1234-5^Test^LN||{value}||||||F\r"
    )
}

/// An HTTP receiver at `/hl7` that records the control id of every message it takes,
/// in arrival order, and answers 500 (taking nothing) while `refuse` is set.
pub async fn hl7_receiver(
    refuse: Arc<std::sync::atomic::AtomicBool>,
) -> (SocketAddr, Arc<std::sync::Mutex<Vec<String>>>) {
    let got: Arc<std::sync::Mutex<Vec<String>>> = Arc::default();
    let seen = got.clone();
    let app = axum::Router::new().route(
        "/hl7",
        axum::routing::post(move |body: axum::body::Bytes| {
            let (seen, refuse) = (seen.clone(), refuse.clone());
            async move {
                if refuse.load(std::sync::atomic::Ordering::SeqCst) {
                    return axum::http::StatusCode::INTERNAL_SERVER_ERROR;
                }
                let m = hl7v2::Message::parse(&body).unwrap();
                seen.lock().unwrap().push(m.control_id().into_owned());
                axum::http::StatusCode::OK
            }
        }),
    );
    (serve(app).await, got)
}
