//! What authentication and the audit trail cost an API read: the same requests over a
//! real socket to the same data, once with `auth = "off"` (no audit trail) and once with
//! an API token (and, on a PHI route, its audit record, committed before the answer).
//!
//! ```sh
//! cargo bench -p api --bench access_cost -- --warm-up-time 2 --measurement-time 10
//! ```
//!
//! Criterion reports the mean and its spread; the p50 and p99 of every request timed
//! (warm-up included) are printed after each benchmark, which is what issue 13's budget
//! (at most 50 µs added to the p99) is about. Run it on a quiet machine.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use store::{MessageState, NewMessage, Store, UnixMicros};

/// A kept-alive HTTP/1.1 connection, read by `Content-Length`.
struct Client {
    reader: BufReader<TcpStream>,
    request: Vec<u8>,
}

impl Client {
    fn new(addr: SocketAddr, path: &str, authorization: Option<&str>) -> Client {
        let stream = TcpStream::connect(addr).unwrap();
        stream.set_nodelay(true).unwrap();
        let auth = authorization
            .map(|a| format!("Authorization: {a}\r\n"))
            .unwrap_or_default();
        Client {
            reader: BufReader::new(stream),
            request: format!("GET {path} HTTP/1.1\r\nHost: bench\r\n{auth}\r\n").into_bytes(),
        }
    }

    /// One request; panics unless it is answered 200.
    fn get(&mut self) {
        self.reader.get_mut().write_all(&self.request).unwrap();
        let mut line = String::new();
        self.reader.read_line(&mut line).unwrap();
        assert!(line.starts_with("HTTP/1.1 200"), "{line}");
        let mut length = 0usize;
        loop {
            line.clear();
            self.reader.read_line(&mut line).unwrap();
            if line == "\r\n" {
                break;
            }
            if let Some(value) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                length = value.trim().parse().unwrap();
            }
        }
        let mut body = vec![0; length];
        self.reader.read_exact(&mut body).unwrap();
    }
}

struct Served {
    _dir: tempfile::TempDir,
    _runtime: tokio::runtime::Runtime,
    open: SocketAddr,
    guarded: SocketAddr,
    token: String,
    message: i64,
}

fn serve() -> Served {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let (open, guarded, token, message) = runtime.block_on(async {
        let identities = access::Access::open(store.clone()).await.unwrap();
        let audit = access::audit::Audit::open(store.clone()).await.unwrap();
        identities
            .add_user("bench", access::Role::Analyst, None, None)
            .await
            .unwrap();
        let token = identities
            .create_token("bench", None, None, None)
            .await
            .unwrap()
            .secret;
        let message = NewMessage {
            channel: Arc::from("lab"),
            raw: bytes::Bytes::from_static(
                b"MSH|^~\\&|LAB|H|EHR|H|2024||ORU^R01|B1|P|2.5.1\rPID|1||MRN1||DOE^JANE\rOBX|1|NM|GLU||5.4|mmol/L\r",
            ),
            received_at: UnixMicros::now(),
            peer: Arc::from("127.0.0.1:1"),
            tls_identity: None,
            sending_application: "LAB".into(),
            sending_facility: "H".into(),
            message_type: "ORU^R01".into(),
            control_id: "B1".into(),
            version: "2.5.1".into(),
            state: MessageState::Received,
            state_reason: None,
        };
        let id = store.journal().append(message, None).await.unwrap().id().0;
        let mut addrs = Vec::new();
        for auth in [
            api::Auth::off(None),
            api::Auth::required(identities, None, audit),
        ] {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            addrs.push(listener.local_addr().unwrap());
            let app = api::router(api::Api {
                auth,
                ..api::Api::new(store.clone())
            })
            .into_make_service_with_connect_info::<SocketAddr>();
            tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        }
        (addrs[0], addrs[1], token, id)
    });
    Served {
        _dir: dir,
        _runtime: runtime,
        open,
        guarded,
        token,
        message,
    }
}

/// Runs one benchmark of `client`'s request, printing the p50 and p99 of every request.
fn bench(c: &mut Criterion, name: &str, mut client: Client) {
    let mut samples: Vec<Duration> = Vec::new();
    c.bench_function(name, |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let start = Instant::now();
                client.get();
                let took = start.elapsed();
                samples.push(took);
                total += took;
            }
            total
        })
    });
    if samples.is_empty() {
        // Filtered out on the command line.
        return;
    }
    samples.sort();
    let at = |q: f64| samples[((samples.len() as f64 * q) as usize).min(samples.len() - 1)];
    eprintln!(
        "{name}: {} requests, p50 {:?}, p99 {:?}",
        samples.len(),
        at(0.50),
        at(0.99)
    );
}

fn access_cost(c: &mut Criterion) {
    let served = serve();
    let bearer = format!("Bearer {}", served.token);
    let message = format!("/api/messages/{}", served.message);
    // Metadata: authentication alone (not audited).
    bench(
        c,
        "stats, auth off",
        Client::new(served.open, "/api/stats", None),
    );
    bench(
        c,
        "stats, API token",
        Client::new(served.guarded, "/api/stats", Some(&bearer)),
    );
    // A PHI read: authentication and its audit record (committed before the answer).
    bench(
        c,
        "message read, auth off",
        Client::new(served.open, &message, None),
    );
    bench(
        c,
        "message read, API token and audit record",
        Client::new(served.guarded, &message, Some(&bearer)),
    );
}

criterion_group!(benches, access_cost);
criterion_main!(benches);
