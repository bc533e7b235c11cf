//! The NATS source against a real `nats-server` with JetStream (its own, on a free
//! port, started by `test_support::nats_server`): every NATS message ends up in the
//! journal once, across a restart of the server and across an engine stopped abruptly
//! between the commit and the acknowledgement; a payload that is not HL7 is stored as
//! `rejected` and not redelivered.

mod common;

use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::{self, consumer::pull, stream};
use common::{adt_a08, count, wait_for};
use engine::ChannelMetrics;
use engine::sources::nats::{NatsSource, NatsSourceConfig};
use store::Store;

const MINUTE: Duration = Duration::from_secs(60);

fn source_config(url: &str) -> NatsSourceConfig {
    let text = format!(
        "url = \"{url}\"\nstream = \"HL7\"\nconsumer = \"corridor-lab\"\nfilter_subject = \"hl7.>\"\nbatch_size = 7\n"
    );
    toml::from_str(&text).unwrap()
}

/// The stream, and the durable consumer with a short ack wait (so what was fetched and
/// never acknowledged comes back within the test).
async fn prepare(url: &str) -> jetstream::Context {
    let client = async_nats::connect(url).await.unwrap();
    let context = jetstream::new(client);
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
        .create_consumer_on_stream(
            pull::Config {
                durable_name: Some("corridor-lab".into()),
                ack_policy: jetstream::consumer::AckPolicy::Explicit,
                ack_wait: Duration::from_secs(2),
                filter_subject: "hl7.>".into(),
                ..Default::default()
            },
            "HL7",
        )
        .await
        .unwrap();
    context
}

async fn publish(context: &jetstream::Context, payloads: impl IntoIterator<Item = String>) {
    for payload in payloads {
        context
            .publish("hl7.adt", payload.into())
            .await
            .unwrap()
            .await
            .unwrap();
    }
}

async fn start(name: &str, url: &str, store: &Store) -> NatsSource {
    let intake = common::intake(
        name,
        store,
        Default::default(),
        Arc::new(ChannelMetrics::default()),
    );
    NatsSource::start(
        name,
        &source_config(url),
        1 << 20,
        std::path::Path::new("."),
        intake,
    )
    .await
    .unwrap()
}

/// How many NATS messages the consumer still has to deliver or see acknowledged.
async fn outstanding(context: &jetstream::Context) -> (u64, usize) {
    let consumer: jetstream::consumer::Consumer<pull::Config> = context
        .get_consumer_from_stream("corridor-lab", "HL7")
        .await
        .unwrap();
    let info = consumer.get_info().await.unwrap();
    (info.num_pending, info.num_ack_pending)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_message_is_stored_once_across_a_nats_restart_and_bad_payloads_are_terminated() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = test_support::nats_server(dir.path());
    let url = server.url();
    let context = prepare(&url).await;
    let (_data, store) = common::migrated_store().await;
    let source = start("lab", &url, &store).await;

    publish(&context, (0..50).map(|i| adt_a08(&format!("A-{i:03}")))).await;
    publish(&context, ["this is not HL7".to_owned()]).await;
    wait_for("the first 51 stored", MINUTE, || {
        count(&store, "SELECT count(*) FROM journal") == 51
    })
    .await;

    // The server is killed and started again on the same store while the source reads.
    server.stop();
    tokio::time::sleep(Duration::from_millis(300)).await;
    server.resume();
    let context = jetstream::new(async_nats::connect(&url).await.unwrap());
    publish(&context, (50..100).map(|i| adt_a08(&format!("A-{i:03}")))).await;
    wait_for("all 101 stored", MINUTE, || {
        count(&store, "SELECT count(*) FROM journal") == 101
    })
    .await;
    wait_for_settled(&context).await;
    assert_eq!(
        count(
            &store,
            "SELECT count(*) FROM journal WHERE state = 'rejected'"
        ),
        1
    );
    assert_eq!(
        count(
            &store,
            "SELECT count(DISTINCT control_id) FROM journal WHERE state = 'received'"
        ),
        100
    );
    source.shutdown().await;
}

/// Waits until the consumer has nothing left to deliver and nothing unacknowledged.
async fn wait_for_settled(context: &jetstream::Context) {
    let deadline = std::time::Instant::now() + MINUTE;
    loop {
        if outstanding(context).await == (0, 0) {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the consumer still has messages: {:?}",
            outstanding(context).await
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[test]
fn an_engine_stopped_abruptly_loses_nothing_and_stores_nothing_twice() {
    let dir = tempfile::tempdir().unwrap();
    let server = test_support::nats_server(dir.path());
    let url = server.url();
    let main = tokio::runtime::Runtime::new().unwrap();
    let (context, data, store) = main.block_on(async {
        let context = prepare(&url).await;
        let (data, store) = common::migrated_store().await;
        publish(&context, (0..400).map(|i| adt_a08(&format!("K-{i:03}")))).await;
        (context, data, store)
    });

    // The first engine runs in a runtime of its own, dropped mid-run: its tasks stop
    // wherever they are, between a commit and its acknowledgements too.
    let first = tokio::runtime::Runtime::new().unwrap();
    let running = first.block_on(start("lab", &url, &store));
    let deadline = std::time::Instant::now() + MINUTE;
    while count(&store, "SELECT count(*) FROM journal") < 30 {
        assert!(std::time::Instant::now() < deadline, "nothing was stored");
        std::thread::sleep(Duration::from_millis(2));
    }
    first.shutdown_timeout(Duration::ZERO);
    drop(running);
    let stored_at_the_kill = count(&store, "SELECT count(*) FROM journal");
    eprintln!("stored when the engine stopped: {stored_at_the_kill} of 400");

    main.block_on(async {
        let source = start("lab", &url, &store).await;
        wait_for("all 400 stored", MINUTE, || {
            count(&store, "SELECT count(DISTINCT control_id) FROM journal") == 400
        })
        .await;
        wait_for_settled(&context).await;
        // Redelivered messages were duplicates of stored ones: none stored twice.
        assert_eq!(count(&store, "SELECT count(*) FROM journal"), 400);
        source.shutdown().await;
    });
    drop(data);
}
