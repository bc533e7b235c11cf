//! Frames per second through a real MLLP server on 127.0.0.1: one connection,
//! the client pipelining 1 KiB frames while a second task reads the ACKs,
//! over plain TCP and over TLS (certificates made by rcgen).
//!
//! `cargo bench -p mllp --bench loopback`

use std::time::Duration;

use bytes::Bytes;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use mllp::{
    ConnectionInfo, MllpConnector, MllpServer, MllpServerConfig, TlsClientConfig, TlsServerConfig,
    handler_fn,
};

const FRAMES_PER_ITERATION: u64 = 2_000;

/// A CA and a server certificate for 127.0.0.1, written to `dir`.
fn write_test_pki(dir: &std::path::Path) -> (TlsServerConfig, TlsClientConfig) {
    use rcgen::{BasicConstraints, CertificateParams, IsCa, KeyPair};
    let ca_key = KeyPair::generate().unwrap();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let key = KeyPair::generate().unwrap();
    let cert = CertificateParams::new(vec!["127.0.0.1".to_owned()])
        .unwrap()
        .signed_by(&key, &ca, &ca_key)
        .unwrap();
    let path = |name: &str| dir.join(name);
    std::fs::write(path("ca.pem"), ca.pem()).unwrap();
    std::fs::write(path("server.pem"), cert.pem()).unwrap();
    std::fs::write(path("server.key"), key.serialize_pem()).unwrap();
    (
        TlsServerConfig {
            cert_path: path("server.pem"),
            key_path: path("server.key"),
            client_ca_path: None,
        },
        TlsClientConfig::new(path("ca.pem")),
    )
}

fn pipelined_round_trips(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let ack = Bytes::from_static(
        b"MSH|^~\\&|CORRIDOR|HUB|LAB|WARD|20240101083000||ACK^R01|1|P|2.5\rMSA|AA|1\r",
    );
    let pki_dir = tempfile::tempdir().unwrap();
    let (server_tls, client_tls) = write_test_pki(pki_dir.path());
    let segment = b"OBX|1|NM|2345-7^Glucose^LN||105|mg/dL|70-99|H|||F\r";
    let payload: Vec<u8> = segment.iter().copied().cycle().take(1024).collect();

    let mut group = c.benchmark_group("loopback");
    group.throughput(Throughput::Elements(FRAMES_PER_ITERATION));
    for (name, server_tls, client_tls) in [
        ("pipelined_1KiB_frames_one_connection", None, None),
        (
            "pipelined_1KiB_frames_one_tls_connection",
            Some(server_tls),
            Some(client_tls),
        ),
    ] {
        let mut config = MllpServerConfig::new("127.0.0.1:0");
        config.tls = server_tls;
        let ack = ack.clone();
        let handle = runtime.block_on(async {
            MllpServer::bind("bench", config)
                .await
                .unwrap()
                .spawn(handler_fn(move |_frame: Bytes, _conn: &ConnectionInfo| {
                    let ack = ack.clone();
                    async move { vec![ack] }
                }))
        });
        let addr = handle.local_addr().to_string();
        let connector = MllpConnector::new(client_tls).unwrap();
        group.bench_function(name, |b| {
            b.iter(|| {
                runtime.block_on(async {
                    let client = connector.connect(&addr).await.unwrap();
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
        runtime.block_on(handle.shutdown());
    }
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(10).measurement_time(Duration::from_secs(5));
    targets = pipelined_round_trips
}
criterion_main!(benches);
