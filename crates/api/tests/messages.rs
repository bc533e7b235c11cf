//! The API over a real socket, on a real SQLite journal.

use std::sync::Arc;

use serde_json::Value;
use store::{MessageState, NewMessage, Store, UnixMicros};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

async fn get(addr: std::net::SocketAddr, path: &str) -> (u16, Value) {
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let request = format!("GET {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = Vec::new();
    stream.read_to_end(&mut response).await.unwrap();
    let text = String::from_utf8(response).unwrap();
    let status: u16 = text[9..12].parse().unwrap();
    let body_start = text.find("\r\n\r\n").unwrap() + 4;
    let body = &text[body_start..];
    // Bodies may come chunked; the JSON is the part between the chunk sizes.
    let json = body
        .find('{')
        .and_then(|s| body.rfind('}').map(|e| &body[s..=e]))
        .unwrap_or("null");
    (status, serde_json::from_str(json).unwrap())
}

fn message(control_id: &str, state: MessageState) -> NewMessage {
    NewMessage {
        channel: Arc::from("lab"),
        raw: bytes::Bytes::from(format!(
            "MSH|^~\\&|LAB|H|EHR|H|2024||ORU^R01|{control_id}|P|2.5.1\rPID|1\r"
        )),
        received_at: UnixMicros::now(),
        peer: Arc::from("127.0.0.1:5000"),
        tls_identity: None,
        sending_application: "LAB".into(),
        sending_facility: "H".into(),
        message_type: "ORU^R01".into(),
        control_id: control_id.into(),
        version: "2.5.1".into(),
        state,
        state_reason: (state == MessageState::Rejected).then(|| "no PID-3".to_string()),
    }
}

#[tokio::test]
async fn messages_can_be_listed_read_and_counted() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let journal = store.journal();
    for i in 0..5 {
        let state = if i == 3 {
            MessageState::Rejected
        } else {
            MessageState::Received
        };
        journal
            .append(message(&format!("C{i}"), state), None)
            .await
            .unwrap();
    }
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = api::router(api::Api::new(store.clone()));
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });

    let (status, page) = get(addr, "/api/messages?limit=2").await;
    assert_eq!(status, 200);
    let messages = page["messages"].as_array().unwrap();
    assert_eq!(messages.len(), 2);
    assert_eq!(messages[0]["control_id"], "C4");
    let next = page["next_before"].as_i64().unwrap();
    let (_, page2) = get(addr, &format!("/api/messages?limit=10&before={next}")).await;
    assert_eq!(page2["messages"].as_array().unwrap().len(), 3);

    let (_, rejected) = get(addr, "/api/messages?state=rejected").await;
    assert_eq!(rejected["messages"][0]["control_id"], "C3");
    assert_eq!(rejected["messages"][0]["state_reason"], "no PID-3");

    let id = messages[0]["id"].as_i64().unwrap();
    let (status, one) = get(addr, &format!("/api/messages/{id}")).await;
    assert_eq!(status, 200);
    assert!(one["raw"].as_str().unwrap().contains("|C4|"));
    assert_eq!(one["peer"], "127.0.0.1:5000");

    let (status, missing) = get(addr, "/api/messages/999999").await;
    assert_eq!(status, 404);
    assert!(missing["error"].as_str().unwrap().contains("999999"));

    let (status, bad) = get(addr, "/api/messages?state=lost").await;
    assert_eq!(status, 400);
    assert!(bad["error"].as_str().unwrap().contains("lost"));

    let (_, stats) = get(addr, "/api/stats?channel=lab").await;
    assert_eq!(stats["messages"]["received"], 4);
    assert_eq!(stats["messages"]["rejected"], 1);
    assert_eq!(stats["messages"]["delivered"], 0);
}
