//! A repository on a real store, its API on a real TCP port, and a plain HTTP/1.1 client.
#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};

use serde_json::Value;
use store::{MessageId, Store, UnixMicros};
use v2_fhir::{Converter, Options};

/// Eve Everywoman admitted (A01), with an address and a visit number.
pub const A01: &str = "MSH|^~\\&|ADT1|GHH|EHR|GHH|20240102083000+0100||ADT^A01^ADT_A01|A01-1|P|2.5.1
EVN|A01|20240102083000+0100
PID|1||P100^^^GHH^MR||EVERYWOMAN^EVE^E||19800312|F|||1 Main St^^Springfield^IL^62701
PV1|1|I|W1^101^1||||D1^DOCTOR^DAN||||||||||||V100^^^GHH^VN|||||||||||||||||||||||||20240102080000+0100";

/// Adam Everyman registered (A04): a second patient.
pub const OTHER: &str =
    "MSH|^~\\&|ADT1|GHH|EHR|GHH|20240103083000+0100||ADT^A04^ADT_A01|A04-2|P|2.5.1
EVN|A04|20240103083000+0100
PID|1||P200^^^GHH^MR||EVERYMAN^ADAM||19551105|M
PV1|1|O";

pub struct Repo {
    pub store: Store,
    pub addr: SocketAddr,
    pub runtime: tokio::runtime::Runtime,
    _dir: tempfile::TempDir,
    next_message: std::cell::Cell<i64>,
}

pub fn normalize(text: &str) -> String {
    text.trim().replace("\r\n", "\r").replace('\n', "\r")
}

pub fn convert(text: &str) -> v2_fhir::Bundle {
    let text = normalize(text);
    let message = hl7v2::Message::parse(text.as_bytes()).unwrap();
    Converter::new(Options::default())
        .convert(&message)
        .unwrap()
}

impl Repo {
    pub fn start() -> Repo {
        Repo::start_with(|api| api)
    }

    /// [`Repo::start`], the API changed by `configure` first.
    pub fn start_with(configure: impl FnOnce(api::Api) -> api::Api) -> Repo {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        fhir_repo::migrate_blocking(&store).unwrap();
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let listener = runtime
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .unwrap();
        let addr = listener.local_addr().unwrap();
        let app = api::router(configure(api::Api {
            fhir_base: Some(format!("http://{addr}/fhir")),
            ..api::Api::new(store.clone())
        }));
        runtime.spawn(async move { axum::serve(listener, app).await.unwrap() });
        Repo {
            store,
            addr,
            runtime,
            _dir: dir,
            next_message: std::cell::Cell::new(1),
        }
    }

    /// Converts and applies one message, as the engine's stage does; the receive time
    /// grows by a second per message.
    pub fn apply(&self, text: &str) -> (v2_fhir::Bundle, fhir_repo::Applied) {
        let bundle = convert(text);
        let n = self.next_message.get();
        self.next_message.set(n + 1);
        let copy = bundle.clone();
        let applied = self
            .store
            .write_blocking(move |conn| {
                fhir_repo::apply_bundle_in(
                    conn,
                    &copy,
                    MessageId(n),
                    UnixMicros(1_767_268_800_000_000 + n * 1_000_000),
                )
            })
            .unwrap();
        (bundle, applied)
    }

    /// GET `path`: status, content type and JSON body.
    pub fn get(&self, path: &str) -> (u16, String, Value) {
        let mut stream = TcpStream::connect(self.addr).unwrap();
        write!(
            stream,
            "GET {path} HTTP/1.1\r\nHost: test\r\nAccept: application/fhir+json\r\nConnection: close\r\n\r\n"
        )
        .unwrap();
        let mut response = Vec::new();
        stream.read_to_end(&mut response).unwrap();
        let text = String::from_utf8(response).unwrap();
        let status: u16 = text[9..12].parse().unwrap();
        let split = text.find("\r\n\r\n").unwrap();
        let head = text[..split].to_ascii_lowercase();
        let content_type = head
            .lines()
            .find_map(|l| l.strip_prefix("content-type: "))
            .unwrap_or_default()
            .to_owned();
        let body = &text[split + 4..];
        // Bodies are sent whole (content-length) by axum for these responses.
        let value =
            serde_json::from_str(body).unwrap_or_else(|e| panic!("{path}: not JSON ({e}): {body}"));
        (status, content_type, value)
    }

    /// Sends `method path` with extra header lines (`Name: value`) and a body; answers
    /// the status, the head (header names lower-cased) and the body.
    pub fn send(
        &self,
        method: &str,
        path: &str,
        headers: &[&str],
        body: &str,
    ) -> (u16, String, String) {
        let mut stream = TcpStream::connect(self.addr).unwrap();
        let mut head = format!("{method} {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n");
        for h in headers {
            head.push_str(h);
            head.push_str("\r\n");
        }
        head.push_str(&format!("Content-Length: {}\r\n\r\n", body.len()));
        stream.write_all(head.as_bytes()).unwrap();
        stream.write_all(body.as_bytes()).unwrap();
        let mut response = Vec::new();
        stream.read_to_end(&mut response).unwrap();
        let text = String::from_utf8(response).unwrap();
        let status: u16 = text[9..12].parse().unwrap();
        let split = text.find("\r\n\r\n").unwrap();
        (
            status,
            text[..split].to_ascii_lowercase(),
            text[split + 4..].to_owned(),
        )
    }

    /// GET with extra header lines that must answer `status` with FHIR JSON.
    pub fn get_with(&self, path: &str, headers: &[&str], status: u16) -> Value {
        let (got, head, body) = self.send("GET", path, headers, "");
        assert_eq!(got, status, "{path}: {body}");
        assert!(
            head.contains("content-type: application/fhir+json"),
            "{head}"
        );
        serde_json::from_str(&body).unwrap()
    }

    /// GET that must answer 200 with FHIR JSON.
    pub fn ok(&self, path: &str) -> Value {
        let (status, content_type, body) = self.get(path);
        assert_eq!(status, 200, "{path}: {body}");
        assert!(
            content_type.starts_with("application/fhir+json"),
            "{content_type}"
        );
        body
    }
}

pub fn entries(bundle: &Value) -> Vec<Value> {
    assert_eq!(bundle["resourceType"], "Bundle");
    bundle["entry"]
        .as_array()
        .map(|e| e.iter().map(|e| e["resource"].clone()).collect())
        .unwrap_or_default()
}
