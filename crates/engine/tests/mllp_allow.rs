//! `allow_from` on an MLLP source, over real sockets: a sender from an address outside
//! the list is closed before any frame is read (no ACK, nothing stored), one inside it
//! is served. The refusal is counted in `/metrics`.

mod common;

use std::time::Duration;

use common::{Api, adt_a08, count, mllp_client, send_expecting, start_engine};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn channel(allow: &str) -> String {
    format!(
        "[channels.lab]\nsource = {{ type = \"mllp\", listen = \"127.0.0.1:0\", allow_from = [{allow}] }}\n"
    )
}

#[tokio::test]
async fn a_sender_outside_allow_from_is_closed_unread_and_one_inside_is_served() {
    let dir = tempfile::tempdir().unwrap();
    let engine = start_engine(dir.path(), "data", Api::On, &channel("\"10.0.0.0/8\"")).await;
    let addr = engine.listeners()[0].addr;
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let frame = format!("\x0b{}\x1c\r", adt_a08("REFUSED1"));
    // The write may already fail: the server closes at once.
    let _ = stream.write_all(frame.as_bytes()).await;
    let mut answer = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut answer))
        .await
        .expect("the refused connection is closed");
    assert!(
        read.is_err() || answer.is_empty(),
        "no answer to a refused sender: {answer:?}"
    );
    assert_eq!(count(engine.store(), "SELECT count(*) FROM journal"), 0);
    let metrics = common::get(engine.http_addr().unwrap(), "/metrics").await;
    assert_eq!(metrics.status, 200);
    assert!(
        metrics
            .body
            .contains("corridor_mllp_connections_not_allowed_total{channel=\"lab\"} 1"),
        "{}",
        metrics.body
    );
    engine.shutdown().await;

    let dir = tempfile::tempdir().unwrap();
    let engine = start_engine(
        dir.path(),
        "data",
        Api::Off,
        &channel("\"10.0.0.0/8\", \"127.0.0.0/8\""),
    )
    .await;
    let mut client = mllp_client(engine.listeners()[0].addr).await;
    send_expecting(&mut client, adt_a08("ALLOWED1").as_bytes(), "AA").await;
    assert_eq!(count(engine.store(), "SELECT count(*) FROM journal"), 1);
    engine.shutdown().await;
}
