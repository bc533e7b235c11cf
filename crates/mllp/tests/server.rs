//! The MLLP server over real TCP sockets on 127.0.0.1.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use common::*;
use mllp::{
    CommitAck, ConnectionInfo, FrameDecoder, FrameHandler, MllpClient, MllpConnector, MllpError,
    encode_frame, encode_frame_into, handler_fn,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::{Instant, timeout};

/// Reads frames from a raw socket until `count` arrived (or EOF).
async fn read_frames(stream: &mut TcpStream, count: usize) -> Vec<Bytes> {
    let mut decoder = FrameDecoder::default();
    let mut buf = BytesMut::new();
    let mut frames = Vec::new();
    while frames.len() < count {
        while let Some(frame) = decoder.decode(&mut buf).unwrap() {
            frames.push(frame);
        }
        if frames.len() == count || stream.read_buf(&mut buf).await.unwrap() == 0 {
            break;
        }
    }
    frames
}

/// True when the server closed the connection (EOF or reset) within `limit`.
async fn closed_within(stream: &mut TcpStream, limit: Duration) -> bool {
    let mut scratch = [0u8; 1024];
    let deadline = Instant::now() + limit;
    loop {
        match tokio::time::timeout_at(deadline, stream.read(&mut scratch)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return true,
            Ok(Ok(_)) => continue,
            Err(_) => return false,
        }
    }
}

#[tokio::test]
async fn round_trip_returns_the_handler_answer() {
    let handle = start(test_config(), AckWithPrefix).await;
    let mut client = MllpClient::connect(&addr_of(&handle), None).await.unwrap();
    let answer = client.send(b"MSH|^~\\&|LAB|1").await.unwrap();
    assert_eq!(answer.as_ref(), b"ACK:MSH|^~\\&|LAB|1");
    let answer = client.send(b"MSH|^~\\&|LAB|2").await.unwrap();
    assert_eq!(answer.as_ref(), b"ACK:MSH|^~\\&|LAB|2");
    let stats = handle.stats();
    assert_eq!((stats.frames_received, stats.frames_sent), (2, 2));
    handle.shutdown().await;
}

#[tokio::test]
async fn handler_sees_listener_name_and_peer_address() {
    let handle = start(
        test_config(),
        handler_fn(|_frame: Bytes, conn: &ConnectionInfo| {
            let described = format!(
                "{}|{}|{}|{}|{:?}",
                conn.listener, conn.id, conn.peer_addr, conn.tls, conn.client_subject
            );
            async move { vec![Bytes::from(described)] }
        }),
    )
    .await;
    let mut raw = TcpStream::connect(handle.local_addr()).await.unwrap();
    let local = raw.local_addr().unwrap();
    raw.write_all(&encode_frame(b"x").unwrap()).await.unwrap();
    let frames = read_frames(&mut raw, 1).await;
    assert_eq!(frames[0], format!("test|1|{local}|false|None"));
    handle.shutdown().await;
}

/// Answers after a delay that varies per frame, and checks that no two frames
/// of one connection are ever handled at the same time.
struct UnevenlySlow {
    busy: AtomicBool,
    overlaps: AtomicUsize,
}

impl FrameHandler for UnevenlySlow {
    async fn on_frame(&self, frame: Bytes, _conn: &ConnectionInfo) -> Vec<Bytes> {
        if self.busy.swap(true, Ordering::SeqCst) {
            self.overlaps.fetch_add(1, Ordering::SeqCst);
        }
        let n: u64 = std::str::from_utf8(&frame).unwrap().parse().unwrap();
        tokio::time::sleep(Duration::from_millis((7 * n) % 5)).await;
        self.busy.store(false, Ordering::SeqCst);
        // Two responses per frame, as with a commit ACK followed by an application ACK.
        vec![Bytes::from(format!("{n}a")), Bytes::from(format!("{n}b"))]
    }
}

#[tokio::test]
async fn pipelined_frames_in_one_write_are_answered_in_order() {
    let handler = Arc::new(UnevenlySlow {
        busy: AtomicBool::new(false),
        overlaps: AtomicUsize::new(0),
    });
    let handle = start(test_config(), handler.clone()).await;
    let mut raw = TcpStream::connect(handle.local_addr()).await.unwrap();
    let mut wire = BytesMut::new();
    for n in 0..100 {
        encode_frame_into(n.to_string().as_bytes(), &mut wire).unwrap();
    }
    raw.write_all(&wire).await.unwrap();
    let frames = timeout(Duration::from_secs(10), read_frames(&mut raw, 200))
        .await
        .unwrap();
    let expected: Vec<String> = (0..100)
        .flat_map(|n| [format!("{n}a"), format!("{n}b")])
        .collect();
    let got: Vec<String> = frames
        .iter()
        .map(|f| String::from_utf8(f.to_vec()).unwrap())
        .collect();
    assert_eq!(got, expected);
    assert_eq!(handler.overlaps.load(Ordering::SeqCst), 0);
    handle.shutdown().await;
}

/// Commits frames in batches: records each batch size, answers `ok:<frame>`.
#[derive(Default)]
struct BatchCommitter {
    batch_sizes: std::sync::Mutex<Vec<usize>>,
}

impl FrameHandler for BatchCommitter {
    async fn on_frame(&self, frame: Bytes, _conn: &ConnectionInfo) -> Vec<Bytes> {
        self.batch_sizes.lock().unwrap().push(1);
        vec![Bytes::from([&b"ok:"[..], &frame[..]].concat())]
    }

    async fn on_frames(&self, frames: Vec<Bytes>, _conn: &ConnectionInfo) -> Vec<Vec<Bytes>> {
        self.batch_sizes.lock().unwrap().push(frames.len());
        frames
            .iter()
            .map(|frame| vec![Bytes::from([&b"ok:"[..], &frame[..]].concat())])
            .collect()
    }
}

#[tokio::test]
async fn frames_that_arrive_together_are_handed_over_as_one_batch() {
    let handler = Arc::new(BatchCommitter::default());
    let handle = start(test_config(), handler.clone()).await;
    let mut raw = TcpStream::connect(handle.local_addr()).await.unwrap();
    let mut wire = BytesMut::new();
    for n in 0..200 {
        encode_frame_into(n.to_string().as_bytes(), &mut wire).unwrap();
    }
    raw.write_all(&wire).await.unwrap();
    let frames = timeout(Duration::from_secs(10), read_frames(&mut raw, 200))
        .await
        .unwrap();
    let expected: Vec<String> = (0..200).map(|n| format!("ok:{n}")).collect();
    let got: Vec<String> = frames
        .iter()
        .map(|f| String::from_utf8(f.to_vec()).unwrap())
        .collect();
    assert_eq!(got, expected);
    let sizes = handler.batch_sizes.lock().unwrap().clone();
    assert_eq!(sizes.iter().sum::<usize>(), 200);
    assert!(sizes.iter().any(|&n| n > 1), "never batched: {sizes:?}");
    handle.shutdown().await;
}

#[tokio::test]
async fn split_client_pipelines_while_another_task_reads_acks() {
    let handle = start(test_config(), AckWithPrefix).await;
    let client = MllpClient::connect(&addr_of(&handle), None).await.unwrap();
    let (mut writer, mut reader) = client.into_split();
    let sender = tokio::spawn(async move {
        for n in 0..500 {
            writer.send_frame(format!("m{n}").as_bytes()).await.unwrap();
        }
        writer
    });
    for n in 0..500 {
        let ack = timeout(Duration::from_secs(5), reader.next_frame())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        assert_eq!(ack, format!("ACK:m{n}"));
    }
    sender.await.unwrap().close().await.unwrap();
    assert_eq!(
        reader.next_frame().await.unwrap(),
        None,
        "server closes after our FIN"
    );
    handle.shutdown().await;
}

#[tokio::test(flavor = "current_thread")]
async fn garbage_before_a_frame_is_skipped_and_logged_once() {
    let (logs, _guard) = CapturedLogs::install();
    let handle = start(test_config(), AckWithPrefix).await;
    let mut raw = TcpStream::connect(handle.local_addr()).await.unwrap();
    raw.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    raw.write_all(b"\x00\xffmore junk").await.unwrap();
    raw.write_all(&encode_frame(b"MSH|real").unwrap())
        .await
        .unwrap();
    let frames = read_frames(&mut raw, 1).await;
    assert_eq!(frames[0].as_ref(), b"ACK:MSH|real");
    // Line breaks are not junk: "GET / HTTP/1.1" + "Host: x" + 11 bytes.
    assert_eq!(handle.stats().bytes_skipped, 14 + 7 + 11);
    let lines = logs.lines_containing("skipped bytes outside MLLP frames");
    assert_eq!(lines.len(), 1, "{}", logs.text());
    assert!(lines[0].contains("WARN") && lines[0].contains("skipped_bytes=32"));
    assert!(
        !logs.text().contains("HTTP"),
        "message content must not be logged"
    );
    handle.shutdown().await;
}

#[tokio::test(flavor = "current_thread")]
async fn endless_frame_is_cut_at_max_frame_size_while_another_client_is_served() {
    let (logs, _guard) = CapturedLogs::install();
    let mut config = test_config();
    config.max_frame_size = 64 * 1024;
    let handle = start(config, AckWithPrefix).await;

    let mut hostile = TcpStream::connect(handle.local_addr()).await.unwrap();
    let flood = tokio::spawn(async move {
        hostile.write_all(&[0x0B]).await.unwrap();
        let chunk = vec![b'A'; 16 * 1024];
        // Far more than the limit; the server must close long before the end.
        for _ in 0..1024 {
            if hostile.write_all(&chunk).await.is_err() {
                return (hostile, true);
            }
        }
        (hostile, false)
    });

    let mut client = MllpClient::connect(&addr_of(&handle), None).await.unwrap();
    assert_eq!(client.send(b"fine").await.unwrap().as_ref(), b"ACK:fine");

    let (mut hostile, write_failed) = timeout(Duration::from_secs(10), flood)
        .await
        .unwrap()
        .unwrap();
    assert!(write_failed || closed_within(&mut hostile, Duration::from_secs(2)).await);
    assert!(
        eventually(Duration::from_secs(2), || handle.stats().frames_too_large
            == 1)
        .await
    );
    assert_eq!(
        logs.lines_containing("frame exceeds max_frame_size").len(),
        1
    );
    assert_eq!(
        client.send(b"still fine").await.unwrap().as_ref(),
        b"ACK:still fine"
    );
    handle.shutdown().await;
}

#[tokio::test(flavor = "current_thread")]
async fn slow_sender_is_cut_by_read_timeout_while_another_client_is_served() {
    let (logs, _guard) = CapturedLogs::install();
    let mut config = test_config();
    config.read_timeout = Duration::from_millis(300);
    let handle = start(config, AckWithPrefix).await;

    let slow = TcpStream::connect(handle.local_addr()).await.unwrap();
    let (mut slow_read, mut slow_write) = slow.into_split();
    let started = Instant::now();
    let trickle = tokio::spawn(async move {
        // One byte every 100 ms: steady traffic, but the frame never completes in time.
        let _ = slow_write.write_all(&[0x0B]).await;
        for _ in 0..50 {
            tokio::time::sleep(Duration::from_millis(100)).await;
            if slow_write.write_all(b"M").await.is_err() {
                break;
            }
        }
    });

    let mut client = MllpClient::connect(&addr_of(&handle), None).await.unwrap();
    assert_eq!(client.send(b"quick").await.unwrap().as_ref(), b"ACK:quick");

    let mut scratch = [0u8; 16];
    let read = timeout(Duration::from_secs(3), slow_read.read(&mut scratch)).await;
    assert!(
        matches!(read, Ok(Ok(0)) | Ok(Err(_))),
        "slow sender was not cut: {read:?}"
    );
    assert!(started.elapsed() >= Duration::from_millis(300));
    trickle.abort();
    assert_eq!(handle.stats().read_timeouts, 1);
    let lines = logs.lines_containing("frame not finished within read_timeout");
    assert_eq!(lines.len(), 1, "{}", logs.text());
    assert!(lines[0].contains("WARN"));
    handle.shutdown().await;
}

#[tokio::test(flavor = "current_thread")]
async fn many_idle_connections_are_bounded_by_max_connections_and_idle_timeout() {
    // 1,001 client sockets and the server's side of them, in this one process.
    test_support::raise_open_file_limit(1100);
    let (logs, _guard) = CapturedLogs::install();
    let mut config = test_config();
    config.max_connections = 20;
    config.idle_timeout = Duration::from_secs(1);
    let handle = start(config, AckWithPrefix).await;

    // A busy sender connected before the flood keeps being served throughout.
    let mut busy = MllpClient::connect(&addr_of(&handle), None).await.unwrap();
    let stop_busy = Arc::new(AtomicBool::new(false));
    let busy_task = tokio::spawn({
        let stop_busy = stop_busy.clone();
        async move {
            let mut answered = 0;
            while !stop_busy.load(Ordering::SeqCst) {
                let ack = busy.send(format!("n{answered}").as_bytes()).await.unwrap();
                assert_eq!(ack, format!("ACK:n{answered}"));
                answered += 1;
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            answered
        }
    });

    let mut idle = Vec::new();
    for _ in 0..1000 {
        idle.push(TcpStream::connect(handle.local_addr()).await.unwrap());
    }
    assert!(
        eventually(Duration::from_secs(5), || {
            let s = handle.stats();
            s.connections_accepted + s.connections_refused == 1001
        })
        .await
    );
    let stats = handle.stats();
    assert_eq!(stats.connections_accepted, 20);
    assert_eq!(stats.connections_refused, 981);
    // One warning per second at most, not one per refused connection.
    let warnings = logs.lines_containing("max connections reached").len();
    assert!((1..=6).contains(&warnings), "{warnings} warnings");

    // Idle connections are closed after idle_timeout, freeing room for new clients.
    assert!(
        eventually(Duration::from_secs(5), || handle.stats().idle_timeouts
            >= 19)
        .await
    );
    let mut late = MllpClient::connect(&addr_of(&handle), None).await.unwrap();
    assert_eq!(late.send(b"after").await.unwrap().as_ref(), b"ACK:after");
    drop(late);

    stop_busy.store(true, Ordering::SeqCst);
    let answered = busy_task.await.unwrap();
    assert!(answered >= 5, "busy sender got only {answered} answers");
    assert_eq!(
        handle.stats().idle_timeouts,
        19,
        "the busy sender was never idle"
    );
    drop(idle);
    handle.shutdown().await;
}

#[tokio::test]
async fn shutdown_lets_the_frame_in_flight_be_answered() {
    let handler = handler_fn(|frame: Bytes, _conn: &ConnectionInfo| async move {
        tokio::time::sleep(Duration::from_millis(300)).await;
        vec![frame]
    });
    let handle = start(test_config(), handler).await;
    let addr = handle.local_addr();
    let mut client = MllpClient::connect(&addr.to_string(), None).await.unwrap();
    let waiting = tokio::spawn(async move { client.send(b"in flight").await });
    tokio::time::sleep(Duration::from_millis(100)).await;
    handle.shutdown().await;
    let answer = waiting.await.unwrap().unwrap();
    assert_eq!(answer.as_ref(), b"in flight");
    assert!(
        TcpStream::connect(addr).await.is_err(),
        "listener still accepting"
    );
}

#[tokio::test]
async fn shutdown_closes_idle_connections_promptly() {
    let handle = start(test_config(), AckWithPrefix).await;
    let mut idle = TcpStream::connect(handle.local_addr()).await.unwrap();
    assert!(
        eventually(Duration::from_secs(2), || handle.stats().connections_open
            == 1)
        .await
    );
    timeout(Duration::from_secs(2), handle.shutdown())
        .await
        .unwrap();
    assert!(closed_within(&mut idle, Duration::from_secs(1)).await);
}

#[tokio::test]
async fn commit_ack_then_application_ack_with_mllp_release_2() {
    let mut config = test_config();
    config.commit_acks = true;
    let handler = handler_fn(|_frame: Bytes, conn: &ConnectionInfo| {
        let mut responses = Vec::new();
        if conn.commit_acks {
            responses.push(CommitAck::Accept.payload());
        }
        responses.push(Bytes::from_static(b"MSA|AA|1"));
        async move { responses }
    });
    let handle = start(config, handler).await;
    let mut client = MllpClient::connect(&addr_of(&handle), None).await.unwrap();
    let first = client.send(b"MSH|1").await.unwrap();
    assert_eq!(CommitAck::from_payload(&first), Some(CommitAck::Accept));
    assert_eq!(client.receive().await.unwrap().as_ref(), b"MSA|AA|1");
    handle.shutdown().await;
}

#[tokio::test]
async fn client_send_times_out_when_no_answer_comes() {
    let silent = handler_fn(|_frame: Bytes, _conn: &ConnectionInfo| async { Vec::new() });
    let handle = start(test_config(), silent).await;
    let mut client = MllpConnector::new(None)
        .unwrap()
        .response_timeout(Duration::from_millis(200))
        .connect(&addr_of(&handle))
        .await
        .unwrap();
    let err = client.send(b"anyone?").await.unwrap_err();
    assert!(matches!(err, MllpError::Timeout(_)), "{err}");
    handle.shutdown().await;
}

#[tokio::test]
async fn client_refuses_a_payload_that_cannot_be_framed() {
    let handle = start(test_config(), AckWithPrefix).await;
    let mut client = MllpClient::connect(&addr_of(&handle), None).await.unwrap();
    let err = client.send(b"bad\x1cpayload").await.unwrap_err();
    assert!(err.to_string().contains("0x1C at offset 3"), "{err}");
    // Nothing was written, so the connection is still usable.
    assert_eq!(client.send(b"good").await.unwrap().as_ref(), b"ACK:good");
    handle.shutdown().await;
}

#[tokio::test]
async fn binding_a_busy_port_names_the_address() {
    let handle = start(test_config(), AckWithPrefix).await;
    let taken = addr_of(&handle);
    let err = mllp::MllpServer::bind("second", mllp::MllpServerConfig::new(taken.clone()))
        .await
        .unwrap_err();
    assert!(err.to_string().contains(&taken), "{err}");
    handle.shutdown().await;
}

#[tokio::test]
async fn peer_that_never_reads_its_responses_is_cut_and_does_not_hold_shutdown() {
    let mut config = test_config();
    config.read_timeout = Duration::from_millis(300);
    let big_answer = Bytes::from(vec![b'R'; 1024 * 1024]);
    let handler = handler_fn(move |_frame: Bytes, _conn: &ConnectionInfo| {
        let answer = big_answer.clone();
        async move { vec![answer] }
    });
    let handle = start(config, handler).await;
    let mut deaf = TcpStream::connect(handle.local_addr()).await.unwrap();
    let mut wire = BytesMut::new();
    for _ in 0..32 {
        encode_frame_into(b"MSH|give me a lot", &mut wire).unwrap();
    }
    deaf.write_all(&wire).await.unwrap();
    assert!(
        eventually(Duration::from_secs(5), || handle.stats().write_timeouts
            == 1)
        .await
    );
    timeout(Duration::from_secs(2), handle.shutdown())
        .await
        .unwrap();
}

#[tokio::test]
async fn panicking_handler_loses_only_its_connection_and_frees_the_slot() {
    let mut config = test_config();
    config.max_connections = 1;
    let handler = handler_fn(|frame: Bytes, _conn: &ConnectionInfo| async move {
        assert_ne!(frame.as_ref(), b"boom", "handler bug triggered on purpose");
        vec![frame]
    });
    let handle = start(config, handler).await;
    let mut victim = MllpClient::connect(&addr_of(&handle), None).await.unwrap();
    assert!(victim.send(b"boom").await.is_err());
    assert!(
        eventually(Duration::from_secs(2), || handle.stats().connections_open
            == 0)
        .await
    );
    let mut next = MllpClient::connect(&addr_of(&handle), None).await.unwrap();
    assert_eq!(next.send(b"ok").await.unwrap().as_ref(), b"ok");
    handle.shutdown().await;
}

#[tokio::test]
async fn shutdown_within_drops_connections_whose_handler_hangs() {
    let stuck = handler_fn(|_frame: Bytes, _conn: &ConnectionInfo| async {
        tokio::time::sleep(Duration::from_secs(60)).await;
        Vec::new()
    });
    let handle = start(test_config(), stuck).await;
    let mut raw = TcpStream::connect(handle.local_addr()).await.unwrap();
    raw.write_all(&encode_frame(b"MSH|stuck").unwrap())
        .await
        .unwrap();
    assert!(
        eventually(Duration::from_secs(2), || handle.stats().frames_received
            == 1)
        .await
    );
    let started = Instant::now();
    let finished = handle.shutdown_within(Duration::from_millis(200)).await;
    assert!(!finished, "a handler sleeping 60 s cannot finish in 200 ms");
    assert!(started.elapsed() < Duration::from_secs(5));
    assert!(closed_within(&mut raw, Duration::from_secs(2)).await);
}

#[tokio::test]
async fn shutdown_within_reports_a_clean_finish() {
    let handle = start(test_config(), AckWithPrefix).await;
    let mut client = MllpClient::connect(&addr_of(&handle), None).await.unwrap();
    assert_eq!(client.send(b"x").await.unwrap().as_ref(), b"ACK:x");
    assert!(handle.shutdown_within(Duration::from_secs(5)).await);
}
