//! The HTTP source through a real socket and a real data directory: the answer carries
//! the ACK and comes only after the message is stored; garbage gets a NAK and is stored
//! as rejected; a batch body is answered with a batch of ACKs; shutdown answers the
//! request in flight and closes idle connections.

mod common;

use std::net::SocketAddr;
use std::sync::Arc;

use common::{Answer, adt_a08 as adt};
use engine::ChannelMetrics;
use engine::sources::http::HttpSource;
use store::Store;

/// One HTTP/1.1 request to /lab on a fresh connection, its head in lower case.
async fn request(addr: SocketAddr, method: &str, body: &[u8]) -> Answer {
    let headers = [("Content-Type", "x-application/hl7-v2+er7")];
    let mut answer = common::http(addr, method, "/lab", &headers, body).await;
    answer.head = answer.head.to_ascii_lowercase();
    answer
}

struct Running {
    _dir: tempfile::TempDir,
    store: Store,
    source: HttpSource,
    stored: Arc<tokio::sync::Notify>,
    metrics: Arc<ChannelMetrics>,
}

async fn start(max_body: usize) -> Running {
    let (dir, store) = common::migrated_store().await;
    let stored = Arc::new(tokio::sync::Notify::new());
    let metrics = Arc::new(ChannelMetrics::default());
    let intake = common::intake("lab", &store, stored.clone(), metrics.clone());
    let source = HttpSource::bind("127.0.0.1:0".parse().unwrap(), intake, max_body)
        .await
        .unwrap();
    Running {
        _dir: dir,
        store,
        source,
        stored,
        metrics,
    }
}

/// (state, control id, raw) of every journal row, oldest first.
fn journal(store: &Store) -> Vec<(String, String, Vec<u8>)> {
    common::rows(
        store,
        "SELECT state, control_id, raw FROM journal JOIN journal_raw USING (id) ORDER BY id",
        [],
        |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
    )
}

#[tokio::test]
async fn the_answer_carries_the_ack_of_the_stored_message() {
    let running = start(1 << 20).await;
    let addr = running.source.local_addr();
    let message = adt("C1");
    let answer = request(addr, "POST", message.as_bytes()).await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    assert!(
        answer
            .head
            .contains("content-type: x-application/hl7-v2+er7"),
        "{}",
        answer.head
    );
    assert!(answer.body.starts_with("MSH|^~\\&|EHR|HOSP|ADT|HOSP|"));
    assert!(answer.body.contains("\rMSA|AA|C1"), "{}", answer.body);
    // Stored (byte for byte) before the answer was sent, and the pipeline was told.
    let rows = journal(&running.store);
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].0, "received");
    assert_eq!(rows[0].2, message.as_bytes());
    assert!(answer.head.contains("x-corridor-message-ids: 1"));
    tokio::time::timeout(std::time::Duration::from_secs(5), running.stored.notified())
        .await
        .expect("the pipeline's notifier was woken");

    // The same message again is a duplicate: acknowledged, not stored twice.
    let again = request(addr, "POST", message.as_bytes()).await;
    assert_eq!(again.status, 200);
    assert!(again.body.contains("MSA|AA|C1"));
    assert_eq!(journal(&running.store).len(), 1);
    assert_eq!(running.metrics.counts().duplicates, 1);
    running.source.shutdown().await;
}

#[tokio::test]
async fn garbage_is_answered_with_a_nak_and_stored_as_rejected() {
    let running = start(1 << 20).await;
    let addr = running.source.local_addr();
    let answer = request(addr, "POST", b"{\"patient\": \"not hl7\"}").await;
    assert_eq!(answer.status, 400, "{}", answer.body);
    assert!(answer.body.contains("MSA|AR|"), "{}", answer.body);
    assert!(answer.body.contains("\rERR|"), "{}", answer.body);
    let rows = journal(&running.store);
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].0, "rejected");
    assert_eq!(rows[0].2, b"{\"patient\": \"not hl7\"}");

    // A message that parses up to a bad segment name is an application error (AE, 422)
    // located at the segment.
    let bad = "MSH|^~\\&|ADT|HOSP|EHR|HOSP|20240101||ADT^A08|C9|P|2.5.1\rP@D|1\r";
    let answer = request(addr, "POST", bad.as_bytes()).await;
    assert_eq!(answer.status, 422, "{}", answer.body);
    assert!(answer.body.contains("MSA|AE|C9"), "{}", answer.body);
    assert!(answer.body.contains("ERR||P@D^1"), "{}", answer.body);
    assert_eq!(journal(&running.store)[1].0, "rejected");
    assert_eq!(running.metrics.counts().rejected, 2);
    running.source.shutdown().await;
}

#[tokio::test]
async fn a_batch_body_is_answered_with_a_batch_of_acks() {
    let running = start(1 << 20).await;
    let addr = running.source.local_addr();
    let body = format!(
        "FHS|^~\\&|ADT|HOSP\rBHS|^~\\&|ADT|HOSP\r{}{}{}BTS|3\rFTS|1\r",
        adt("B1"),
        adt("B2"),
        adt("B3")
    );
    let answer = request(addr, "POST", body.as_bytes()).await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    assert!(answer.body.starts_with("BHS|"), "{}", answer.body);
    assert!(answer.body.ends_with("BTS|3\r"), "{}", answer.body);
    let acks: Vec<&str> = answer
        .body
        .split('\r')
        .filter(|s| s.starts_with("MSA|"))
        .collect();
    assert_eq!(acks, ["MSA|AA|B1", "MSA|AA|B2", "MSA|AA|B3"]);
    let rows = journal(&running.store);
    let ids: Vec<&str> = rows.iter().map(|r| r.1.as_str()).collect();
    assert_eq!(ids, ["B1", "B2", "B3"]);
    assert!(rows.iter().all(|r| r.0 == "received"));
    // Each message is stored on its own, without the envelope.
    assert!(rows[0].2.starts_with(b"MSH|"));
    assert!(!rows[2].2.windows(3).any(|w| w == b"BTS"));

    // A stream of messages with one bad one: the worst answer wins, every message is
    // stored, the good ones as received.
    let body = format!(
        "{}{}",
        adt("S1"),
        "MSH|^~\\&|ADT|HOSP|EHR|HOSP|20240101||ADT^A08|S2|P|2.5.1\rP@D|1\r"
    );
    let answer = request(addr, "POST", body.as_bytes()).await;
    assert_eq!(answer.status, 422, "{}", answer.body);
    assert!(answer.body.contains("MSA|AA|S1"));
    assert!(answer.body.contains("MSA|AE|S2"));
    let states: Vec<String> = journal(&running.store)
        .into_iter()
        .skip(3)
        .map(|r| r.0)
        .collect();
    assert_eq!(states, ["received", "rejected"]);
    running.source.shutdown().await;
}

#[tokio::test]
async fn wrong_requests_get_clear_errors_and_store_nothing() {
    let running = start(256).await;
    let addr = running.source.local_addr();
    let large = adt(&"X".repeat(400));
    let answer = request(addr, "POST", large.as_bytes()).await;
    assert_eq!(answer.status, 413);
    assert!(
        answer.body.contains("max_frame_size (256 bytes)"),
        "{}",
        answer.body
    );

    let answer = request(addr, "GET", b"").await;
    assert_eq!(answer.status, 405);
    assert!(answer.head.contains("allow: post"));

    let answer = request(addr, "POST", b"\r\n").await;
    assert_eq!(answer.status, 400);
    assert!(answer.body.contains("the body is empty"), "{}", answer.body);
    assert!(journal(&running.store).is_empty());
    running.source.shutdown().await;
}

#[tokio::test]
async fn shutdown_answers_the_request_in_flight_and_closes_idle_connections() {
    use std::time::Duration;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::time::timeout;

    let running = start(1 << 20).await;
    let addr = running.source.local_addr();
    // A connection kept alive after its answer (idle_timeout is an hour)...
    let mut idle = tokio::net::TcpStream::connect(addr).await.unwrap();
    idle.write_all(b"GET / HTTP/1.1\r\nHost: corridor\r\n\r\n")
        .await
        .unwrap();
    // ...and one whose body is half sent when the source is told to stop.
    let message = adt("S1");
    let (first, rest) = message.as_bytes().split_at(10);
    let mut busy = tokio::net::TcpStream::connect(addr).await.unwrap();
    let head = format!(
        "POST / HTTP/1.1\r\nHost: corridor\r\nContent-Length: {}\r\n\r\n",
        message.len()
    );
    busy.write_all(head.as_bytes()).await.unwrap();
    busy.write_all(first).await.unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let stopping = tokio::spawn(running.source.shutdown());

    let mut answered = Vec::new();
    timeout(Duration::from_secs(5), idle.read_to_end(&mut answered))
        .await
        .expect("the idle connection was kept open")
        .unwrap();
    assert!(String::from_utf8_lossy(&answered).starts_with("HTTP/1.1 405"));
    busy.write_all(rest).await.unwrap();
    let mut answer = Vec::new();
    timeout(Duration::from_secs(10), busy.read_to_end(&mut answer))
        .await
        .expect("the request in flight was not answered")
        .unwrap();
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(answer.contains("MSA|AA|S1"), "{answer}");
    timeout(Duration::from_secs(10), stopping)
        .await
        .expect("shutdown did not finish")
        .unwrap();
    assert_eq!(journal(&running.store).len(), 1);
}
