//! Frames per second through a real MLLP server on 127.0.0.1: one connection,
//! the client pipelining 1 KiB frames while a second task reads the ACKs.
//!
//! `cargo bench -p mllp --bench loopback`

use std::time::Duration;

use bytes::Bytes;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use mllp::{ConnectionInfo, MllpClient, MllpServer, MllpServerConfig, handler_fn};

const FRAMES_PER_ITERATION: u64 = 2_000;

fn pipelined_round_trips(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let ack = Bytes::from_static(
        b"MSH|^~\\&|CORRIDOR|HUB|LAB|WARD|20240101083000||ACK^R01|1|P|2.5\rMSA|AA|1\r",
    );
    let handle = runtime.block_on(async {
        let server = MllpServer::bind("bench", MllpServerConfig::new("127.0.0.1:0"))
            .await
            .unwrap();
        server.spawn(handler_fn(move |_frame: Bytes, _conn: &ConnectionInfo| {
            let ack = ack.clone();
            async move { vec![ack] }
        }))
    });
    let addr = handle.local_addr().to_string();
    let segment = b"OBX|1|NM|2345-7^Glucose^LN||105|mg/dL|70-99|H|||F\r";
    let payload: Vec<u8> = segment.iter().copied().cycle().take(1024).collect();

    let mut group = c.benchmark_group("loopback");
    group.throughput(Throughput::Elements(FRAMES_PER_ITERATION));
    group.bench_function("pipelined_1KiB_frames_one_connection", |b| {
        b.iter(|| {
            runtime.block_on(async {
                let client = MllpClient::connect(&addr, None).await.unwrap();
                let (mut writer, mut reader) = client.into_split();
                let payload = payload.clone();
                let sender = tokio::spawn(async move {
                    for _ in 0..FRAMES_PER_ITERATION {
                        writer.send_frame(&payload).await.unwrap();
                    }
                    writer
                });
                for _ in 0..FRAMES_PER_ITERATION {
                    reader.next_frame().await.unwrap().unwrap();
                }
                sender.await.unwrap().close().await.unwrap();
            })
        })
    });
    group.finish();
    runtime.block_on(handle.shutdown());
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(10).measurement_time(Duration::from_secs(5));
    targets = pipelined_round_trips
}
criterion_main!(benches);
