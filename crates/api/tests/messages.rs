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

/// One message's routing: `(destination, queued)` pairs; not queued is errored.
fn routed(destinations: &[(&str, bool)]) -> delivery::Routed {
    delivery::Routed {
        channel: Arc::from("lab"),
        entries: destinations
            .iter()
            .map(|(name, queued)| delivery::RoutedEntry {
                destination: Arc::from(*name),
                outcome: if *queued {
                    delivery::RouteOutcome::Payload(bytes::Bytes::from_static(b"MSH|^~\\&|\r"))
                } else {
                    delivery::RouteOutcome::Errored {
                        step: "map".into(),
                        error: "no OBX".into(),
                    }
                },
                hand_to: None,
            })
            .collect(),
    }
}

fn control_ids(page: &Value) -> Vec<String> {
    page["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["control_id"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn messages_are_found_by_a_destination_entry_state() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let journal = store.journal();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = api::router(api::Api::new(store.clone()));
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    journal
        .append(message("Q0", MessageState::Received), None)
        .await
        .unwrap();
    // Before the queue's table exists, a destination condition finds nothing.
    let (status, none) = get(addr, "/api/messages?destination_state=queued").await;
    assert_eq!(status, 200);
    assert!(control_ids(&none).is_empty());

    delivery::migrate(&store).await.unwrap();
    // Q1: queued for lis, errored on archive. Q2: errored on lis. Q3: not routed.
    for (control, routing) in [
        ("Q1", vec![("lis", true), ("archive", false)]),
        ("Q2", vec![("lis", false)]),
        ("Q3", vec![]),
    ] {
        let id = journal
            .append(message(control, MessageState::Received), None)
            .await
            .unwrap()
            .id();
        let routed = routed(&routing);
        store
            .write(move |tx| delivery::enqueue_in(tx, id, None, &routed))
            .await
            .unwrap();
    }
    let (status, page) = get(
        addr,
        "/api/messages?channel=lab&destination=lis&destination_state=queued",
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(control_ids(&page), ["Q1"]);
    let (_, page) = get(
        addr,
        "/api/messages?destination=lis&destination_state=errored",
    )
    .await;
    assert_eq!(control_ids(&page), ["Q2"]);
    let (_, page) = get(addr, "/api/messages?destination_state=errored").await;
    assert_eq!(control_ids(&page), ["Q2", "Q1"]);
    let (_, page) = get(addr, "/api/messages?destination=archive").await;
    assert_eq!(control_ids(&page), ["Q1"]);
    // A destination's depth: queued or being sent.
    let (_, page) = get(
        addr,
        "/api/messages?destination=lis&destination_state=queued%2Csending",
    )
    .await;
    assert_eq!(control_ids(&page), ["Q1"]);
    let (_, page) = get(
        addr,
        "/api/messages?destination=lis&destination_state=dead_lettered",
    )
    .await;
    assert!(control_ids(&page).is_empty());
    // Another channel's destination of the same name is not this one.
    let (_, page) = get(
        addr,
        "/api/messages?channel=adt&destination=lis&destination_state=queued",
    )
    .await;
    assert!(control_ids(&page).is_empty());

    let (status, bad) = get(addr, "/api/messages?destination_state=lost").await;
    assert_eq!(status, 400);
    let error = bad["error"].as_str().unwrap();
    assert!(
        error.contains("destination_state") && error.contains("lost"),
        "{error}"
    );
}
