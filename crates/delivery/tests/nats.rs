//! NATS destinations against a real `nats-server` with JetStream (its own, on a free
//! port, started by `test_support::nats_server`): messages are published once each to
//! subjects built from their fields, a publish tried again is de-duplicated by its
//! `Nats-Msg-Id`, nothing is lost across a restart of the server, and a missing stream
//! is a transient failure that names the subject template.

mod common;

use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::{self, stream};
use bytes::Bytes;
use common::*;
use delivery::destinations::nats::NatsDestination;
use delivery::{
    DeliveryMeta, Destination, DestinationConfig, DestinationSettings, EntryId, EntryState,
    FailureKind, Outgoing,
};
use futures_util::StreamExt;
use store::{MessageId, Store};

fn nats_config(url: &str, extra: &str) -> DestinationConfig {
    config(&format!(
        "name = \"bus\"\ntype = \"nats\"\nurl = \"{url}\"\nsubject = \"hl7.{{MSH-9.1}}.{{MSH-4}}\"\n\
         retry = {{ max_attempts = 1000, initial_backoff = \"50ms\", max_backoff = \"300ms\" }}\n\
         timeout = \"2s\"\n{extra}"
    ))
}

async fn make_stream(url: &str) -> jetstream::Context {
    let context = jetstream::new(async_nats::connect(url).await.unwrap());
    context
        .create_stream(stream::Config {
            name: "HL7".into(),
            subjects: vec!["hl7.>".into()],
            storage: stream::StorageType::File,
            ..Default::default()
        })
        .await
        .unwrap();
    context
}

/// Every message of the stream: (subject, payload).
async fn stream_messages(context: &jetstream::Context) -> Vec<(String, Bytes)> {
    let stream = context.get_stream("HL7").await.unwrap();
    let consumer = stream
        .create_consumer(jetstream::consumer::pull::Config {
            deliver_policy: jetstream::consumer::DeliverPolicy::All,
            ..Default::default()
        })
        .await
        .unwrap();
    let mut out = Vec::new();
    let mut batch = consumer
        .fetch()
        .max_messages(10_000)
        .expires(Duration::from_secs(1))
        .messages()
        .await
        .unwrap();
    while let Some(message) = batch.next().await {
        let message = message.unwrap();
        out.push((
            message.message.subject.to_string(),
            message.message.payload.clone(),
        ));
    }
    out
}

fn outgoing(id: i64, payload: Vec<u8>, attempts: u32) -> Outgoing {
    Outgoing {
        entry: EntryId(id),
        message_id: MessageId(id),
        payload: Bytes::from(payload),
        ordering_key: Arc::from(""),
        attempts,
    }
}

fn meta() -> DeliveryMeta {
    DeliveryMeta {
        channel: Arc::from("lab"),
        destination: Arc::from("bus"),
    }
}

fn destination(config: &DestinationConfig) -> NatsDestination {
    let DestinationSettings::Nats(nats) = &config.settings else {
        panic!("not nats")
    };
    NatsDestination::new(config, nats, std::path::Path::new(".")).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_message_is_published_once_and_a_retried_publish_is_a_duplicate() {
    let dir = tempfile::tempdir().unwrap();
    let server = test_support::nats_server(dir.path());
    let context = make_stream(&server.url()).await;
    let config = nats_config(&server.url(), "");
    let mut bus = destination(&config);
    let batch: Vec<Outgoing> = (1..=20)
        .map(|i| outgoing(i, message(&format!("C{i}"), "P1"), 0))
        .collect();
    let results = bus.deliver_batch(&batch, &meta()).await;
    assert_eq!(results.len(), 20);
    for result in &results {
        let delivered = result.as_ref().unwrap();
        assert!(
            !delivered.answer.contains("duplicate"),
            "{}",
            delivered.answer
        );
    }
    // The acknowledgement of message 7 was "lost": the queue tries it again.
    let again = bus
        .deliver(&outgoing(7, message("C7", "P1"), 1), &meta())
        .await
        .unwrap();
    assert!(again.answer.contains("(duplicate)"), "{}", again.answer);

    let published = stream_messages(&context).await;
    assert_eq!(published.len(), 20);
    for (i, (subject, payload)) in published.iter().enumerate() {
        assert_eq!(subject, "hl7.ORU.NORTH");
        assert_eq!(payload.as_ref(), message(&format!("C{}", i + 1), "P1"));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_stream_is_a_transient_failure_naming_the_subject() {
    let dir = tempfile::tempdir().unwrap();
    let server = test_support::nats_server(dir.path());
    let config = nats_config(&server.url(), "");
    let mut bus = destination(&config);
    let error = bus
        .deliver(&outgoing(1, message("C1", "P1"), 0), &meta())
        .await
        .unwrap_err();
    assert_eq!(error.kind, FailureKind::Transient);
    assert!(
        error.reason.contains("no JetStream stream"),
        "{}",
        error.reason
    );
    assert!(
        error.reason.contains("hl7.{MSH-9.1}.{MSH-4}"),
        "{}",
        error.reason
    );
    // Once the operator creates the stream, the retry goes through.
    make_stream(&server.url()).await;
    bus.deliver(&outgoing(1, message("C1", "P1"), 1), &meta())
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_queue_holds_across_a_nats_restart_and_every_message_arrives_once() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = test_support::nats_server(dir.path());
    let url = server.url();
    make_stream(&url).await;
    let store = Store::open(&dir.path().join("data")).unwrap();
    let configs = [nats_config(&url, "")];
    let (delivery, router) = start(&store, &configs, dir.path()).await;

    for i in 0..100 {
        ingest(&store, &router, message(&format!("R{i:03}"), "P1"), None).await;
    }
    wait_for("some delivered", Duration::from_secs(60), || {
        count_in(&store, EntryState::Delivered) >= 10
    })
    .await;
    server.stop();
    for i in 100..200 {
        ingest(&store, &router, message(&format!("R{i:03}"), "P1"), None).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(count_in(&store, EntryState::Delivered) < 200);
    server.resume();
    wait_for("all 200 delivered", Duration::from_secs(120), || {
        count_in(&store, EntryState::Delivered) == 200
    })
    .await;
    assert_eq!(count_in(&store, EntryState::DeadLettered), 0);

    let context = jetstream::new(async_nats::connect(&url).await.unwrap());
    let published = stream_messages(&context).await;
    let mut controls: Vec<String> = published
        .iter()
        .map(|(_, payload)| {
            hl7v2::Message::parse(payload)
                .unwrap()
                .control_id()
                .into_owned()
        })
        .collect();
    assert_eq!(controls.len(), 200, "each message published exactly once");
    controls.sort();
    controls.dedup();
    assert_eq!(controls.len(), 200);
    drop(delivery);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_fhir_payload_is_the_bundle_on_the_messages_subject() {
    let dir = tempfile::tempdir().unwrap();
    let server = test_support::nats_server(dir.path());
    let context = make_stream(&server.url()).await;
    let store = Store::open(&dir.path().join("data")).unwrap();
    let configs = [nats_config(&server.url(), "payload = \"fhir\"\n")];
    let (delivery, router) = start(&store, &configs, dir.path()).await;
    let adt = b"MSH|^~\\&|ADT|NORTH|EHR|NORTH|20260101120000||ADT^A01^ADT_A01|F1|P|2.5.1\r\
EVN|A01|20260101120000\rPID|1||MRN9^^^NORTH^MR||DOE^JANE||19800101|F\rPV1|1|I\r"
        .to_vec();
    ingest(&store, &router, adt, None).await;
    wait_for("delivered", Duration::from_secs(60), || {
        count_in(&store, EntryState::Delivered) == 1
    })
    .await;
    let published = stream_messages(&context).await;
    assert_eq!(published.len(), 1);
    assert_eq!(published[0].0, "hl7.ADT.NORTH");
    let bundle: serde_json::Value = serde_json::from_slice(&published[0].1).unwrap();
    assert_eq!(bundle["resourceType"], "Bundle");
    drop(delivery);
}
