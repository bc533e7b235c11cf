//! Decoding throughput of the MLLP frame decoder.
//!
//! `cargo bench -p mllp --bench codec`

use bytes::BytesMut;
use criterion::{Criterion, Throughput, black_box, criterion_group, criterion_main};
use mllp::{FrameDecoder, encode_frame_into};

/// A typical ORU^R01 result payload of about 1 KiB (synthetic, no real patient).
fn sample_payload(len: usize) -> Vec<u8> {
    let segment = b"OBX|1|NM|2345-7^Glucose^LN||105|mg/dL|70-99|H|||F|||20240101083000\r";
    segment.iter().copied().cycle().take(len).collect()
}

fn decode_frames(c: &mut Criterion) {
    let mut group = c.benchmark_group("decode");
    for (name, payload_len, reads) in [
        ("1KiB_frames_64KiB_reads", 1024, 64 * 1024),
        ("64KiB_frames_16KiB_reads", 64 * 1024, 16 * 1024),
    ] {
        let payload = sample_payload(payload_len);
        let mut wire = BytesMut::new();
        while wire.len() < 4 * 1024 * 1024 {
            encode_frame_into(&payload, &mut wire).unwrap();
        }
        let wire = wire.freeze();
        group.throughput(Throughput::Bytes(wire.len() as u64));
        group.bench_function(name, |b| {
            b.iter(|| {
                let mut decoder = FrameDecoder::default();
                let mut buf = BytesMut::with_capacity(reads);
                let mut frames = 0usize;
                for chunk in wire.chunks(reads) {
                    buf.extend_from_slice(chunk);
                    while let Some(frame) = decoder.decode(&mut buf).unwrap() {
                        black_box(&frame);
                        frames += 1;
                    }
                }
                frames
            })
        });
    }
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(20).measurement_time(std::time::Duration::from_secs(3));
    targets = decode_frames
}
criterion_main!(benches);
