//! Load run of the destination queues: messages are journaled and queued (one write each,
//! from many producers at once, as the engine does) while one MLLP destination worker
//! delivers them to a local MLLP receiver that answers AA. Every hop is durable: the
//! journal row and queue entry are committed before a message counts as queued, and the
//! `delivered` state is committed before it counts as delivered.
//!
//! ```sh
//! cargo run --release -p delivery --example queue_load -- [MESSAGES] [PRODUCERS] [PIPELINE]
//! ```

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use delivery::{Delivery, DestinationConfig, Router};
use mllp::{ConnectionInfo, MllpServer, MllpServerConfig, handler_fn};
use store::{Appended, Journal, MessageState, NewMessage, Store, UnixMicros};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1).map(|a| a.parse::<usize>());
    let total = args.next().transpose()?.unwrap_or(50_000);
    let producers = args.next().transpose()?.unwrap_or(64);
    let pipeline = args.next().transpose()?.unwrap_or(64);

    let received = Arc::new(AtomicUsize::new(0));
    let server = MllpServer::bind("receiver", MllpServerConfig::new("127.0.0.1:0")).await?;
    let counter = received.clone();
    let server = server.spawn(handler_fn(move |frame: Bytes, _conn: &ConnectionInfo| {
        counter.fetch_add(1, Ordering::Relaxed);
        let ack = hl7v2::AckBuilder::for_bytes(&frame, hl7v2::AckCode::AA).build();
        async move { vec![Bytes::from(ack)] }
    }));

    let dir = tempfile::tempdir()?;
    let store = Store::open(dir.path())?;
    let config: DestinationConfig = toml::from_str(&format!(
        "name = \"ehr\"\ntype = \"mllp\"\nto = \"{}\"\npipeline = {pipeline}",
        server.local_addr()
    ))?;
    let configs = [config];
    let delivery =
        Arc::new(Delivery::start(store.clone(), [("lab", &configs[..])], dir.path()).await?);
    let router = Arc::new(Router::compile("lab", &configs, dir.path())?);

    let started = Instant::now();
    let next = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for _ in 0..producers {
        let (store, router, delivery, next) = (
            store.clone(),
            router.clone(),
            delivery.clone(),
            next.clone(),
        );
        tasks.push(tokio::spawn(async move {
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= total {
                    break;
                }
                let raw = format!(
                    "MSH|^~\\&|LAB|NORTH|EHR|NORTH|20260101120000||ORU^R01|L{i}|P|2.5.1\r\
                     PID|1||{}^^^NORTH^MR||DOE^JANE||19800101|F\r\
                     OBR|1|O{i}||CBC^Blood count^LN\r\
                     OBX|1|NM|WBC^White cells^LN||7.5|10*3/uL|4.0-11.0|N|||F\r\
                     OBX|2|NM|HGB^Hemoglobin^LN||13.2|g/dL|12.0-16.0|N|||F\r",
                    i % 1000
                );
                let routed = router.route_bytes(raw.as_bytes());
                let message = NewMessage {
                    channel: Arc::from("lab"),
                    raw: Bytes::from(raw),
                    received_at: UnixMicros::now(),
                    peer: Arc::from("127.0.0.1:1"),
                    tls_identity: None,
                    sending_application: "LAB".into(),
                    sending_facility: "NORTH".into(),
                    message_type: "ORU^R01".into(),
                    control_id: format!("L{i}"),
                    version: "2.5.1".into(),
                    state: MessageState::Processed,
                    state_reason: None,
                };
                store
                    .write(move |tx| {
                        let id = match Journal::append_in(tx, &message, None)? {
                            Appended::New(id) | Appended::Duplicate(id) => id,
                        };
                        delivery::enqueue_in(tx, id, None, &routed)?;
                        Ok(())
                    })
                    .await
                    .expect("durable enqueue");
                delivery.wake("lab");
            }
        }));
    }
    for task in tasks {
        task.await?;
    }
    let queued_in = started.elapsed();
    loop {
        let stats = delivery.stats()?;
        if stats[0].counts.delivered as usize >= total {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let all_in = started.elapsed();
    let writer = store.writer_stats();
    let latencies: Vec<i64> = store.read(|c| {
        let mut s = c.prepare(
            "SELECT q.state_changed_at - j.received_at FROM delivery_queue q JOIN journal j ON j.id = q.message_id",
        )?;
        let v = s.query_map([], |r| r.get(0))?.collect::<Result<Vec<i64>, _>>()?;
        Ok(v)
    })?;
    let mut latencies = latencies;
    latencies.sort_unstable();
    let pct = |p: f64| latencies[((latencies.len() as f64 - 1.0) * p) as usize] as f64 / 1000.0;

    println!("messages             {total}");
    println!("producers            {producers}, pipeline {pipeline}");
    println!(
        "queued (durable)     {:.0} msgs/s  ({:.2} s)",
        total as f64 / queued_in.as_secs_f64(),
        queued_in.as_secs_f64()
    );
    println!(
        "delivered (durable)  {:.0} msgs/s  ({:.2} s, enqueue and delivery together)",
        total as f64 / all_in.as_secs_f64(),
        all_in.as_secs_f64()
    );
    println!("receiver got         {}", received.load(Ordering::Relaxed));
    println!(
        "journal -> delivered committed: p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
        pct(0.5),
        pct(0.99),
        pct(1.0)
    );
    println!(
        "store commits        {} for {} requests ({:.1} per fsync)",
        writer.commits,
        writer.requests,
        writer.requests as f64 / writer.commits.max(1) as f64
    );
    if let Ok(delivery) = Arc::try_unwrap(delivery) {
        delivery.shutdown().await;
    }
    server.shutdown().await;
    Ok(())
}
