//! An operator's start, stop and pause, through real sockets: a destination paused
//! while messages arrive queues them and, resumed, delivers each once in order; a
//! stopped channel's MLLP listener refuses connections until the channel is started; a
//! paused channel acknowledges and stores but processes nothing; pauses and stops
//! outlast a restart and a reload.

mod common;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{Api, count, send_all, wait_for};
use engine::{ConfigFile, Engine};

const LIMIT: Duration = Duration::from_secs(60);

fn oru(control: &str) -> Vec<u8> {
    format!(
        "MSH|^~\\&|LIS|LAB|EHR|HOSP|20240101120000||ORU^R01^ORU_R01|{control}|P|2.5.1\r\
         PID|1||P1^^^HOSP^MR||DOE^JANE\r\
         OBX|1|NM|718-7^Hemoglobin^LN||13.2|g/dL|||||F\r"
    )
    .into_bytes()
}

/// An HTTP receiver that records the control id of every body it is sent.
async fn http_receiver() -> (SocketAddr, Arc<Mutex<Vec<String>>>) {
    common::hl7_receiver(Arc::default()).await
}

/// A port nobody listens on now, for a listener that must come back on the same one.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn channels(lab_port: u16, adt_port: u16, receiver: SocketAddr) -> String {
    format!(
        r#"
[channels.lab]
source = {{ type = "mllp", listen = "127.0.0.1:{lab_port}" }}

[[channels.lab.destinations]]
name = "ehr"
type = "http"
url = "http://{receiver}/hl7"

[channels.adt]
source = {{ type = "mllp", listen = "127.0.0.1:{adt_port}" }}

[[channels.adt.destinations]]
name = "ehr"
type = "http"
url = "http://{receiver}/hl7"
"#
    )
}

async fn post(engine: &Engine, path: &str) -> serde_json::Value {
    let answer = common::http(engine.http_addr().unwrap(), "POST", path, &[], b"").await;
    assert_eq!(answer.status, 200, "POST {path}: {}", answer.body);
    answer.json()
}

async fn control(engine: &Engine, channel: &str) -> serde_json::Value {
    let answer = common::get(
        engine.http_addr().unwrap(),
        &format!("/api/channels/{channel}/control"),
    )
    .await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    answer.json()
}

fn listens(engine: &Engine, channel: &str) -> bool {
    engine.listeners().iter().any(|l| l.channel == channel)
}

async fn refused(addr: SocketAddr) -> bool {
    matches!(
        tokio::net::TcpStream::connect(addr).await,
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused
    )
}

/// Messages past the pipeline (processed, then delivered).
fn processed(engine: &Engine) -> i64 {
    count(
        engine.store(),
        "SELECT count(*) FROM journal WHERE state <> 'received'",
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_destination_paused_while_sending_delivers_everything_once_in_order_when_resumed() {
    let dir = tempfile::tempdir().unwrap();
    let (receiver, got) = http_receiver().await;
    let (lab, adt) = (free_port(), free_port());
    let engine =
        common::start_engine(dir.path(), "data", Api::On, &channels(lab, adt, receiver)).await;
    let lab_addr: SocketAddr = format!("127.0.0.1:{lab}").parse().unwrap();
    let all: Vec<String> = (0..60).map(|i| format!("M{i:03}")).collect();
    let messages: Vec<Vec<u8>> = all.iter().map(|c| oru(c)).collect();

    // The sender goes on while the destination is paused.
    let sending = {
        let messages = messages.clone();
        tokio::spawn(async move {
            let mut client = common::mllp_client(lab_addr).await;
            for m in &messages {
                common::send_expecting(&mut client, m, "AA").await;
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        })
    };
    wait_for("the first deliveries", LIMIT, || {
        got.lock().unwrap().len() >= 5
    })
    .await;
    let answer = post(&engine, "/api/channels/lab/destinations/ehr/pause").await;
    assert_eq!(answer["destinations"][0]["state"], "paused", "{answer}");
    let delivered_when_paused = got.lock().unwrap().len();
    sending.await.unwrap();
    // Everything is stored and processed (queued for the paused destination) ...
    wait_for("all processed", LIMIT, || processed(&engine) == 60).await;
    // ... and, past the batch it was delivering, the destination sends nothing more.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let held = got.lock().unwrap().len();
    assert!(held < 60, "a paused destination delivered everything");
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(got.lock().unwrap().len(), held, "delivered while paused");
    assert!(held >= delivered_when_paused);
    let queued = count(
        engine.store(),
        "SELECT count(*) FROM delivery_queue WHERE state = 'queued'",
    );
    assert_eq!(queued as usize, 60 - held);
    let state = control(&engine, "lab").await;
    assert_eq!(state["state"], "running");
    assert_eq!(state["destinations"][0]["destination"], "ehr");
    assert_eq!(state["destinations"][0]["state"], "paused");
    assert_eq!(state["destinations"][0]["paused_by"], "anonymous");

    let answer = post(&engine, "/api/channels/lab/destinations/ehr/resume").await;
    assert_eq!(answer["destinations"][0]["state"], "running", "{answer}");
    wait_for("every message delivered", LIMIT, || {
        got.lock().unwrap().len() >= 60
    })
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(*got.lock().unwrap(), all, "each once, in order");
    engine.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopped_channel_refuses_connections_and_a_paused_one_stores_without_processing() {
    let dir = tempfile::tempdir().unwrap();
    let (receiver, got) = http_receiver().await;
    let (lab, adt) = (free_port(), free_port());
    let engine =
        common::start_engine(dir.path(), "data", Api::On, &channels(lab, adt, receiver)).await;
    let lab_addr: SocketAddr = format!("127.0.0.1:{lab}").parse().unwrap();

    let answer = post(&engine, "/api/channels/lab/stop").await;
    assert_eq!(answer["state"], "stopped", "{answer}");
    assert!(
        refused(lab_addr).await,
        "a stopped channel took a connection"
    );
    assert!(!listens(&engine, "lab"));
    assert!(listens(&engine, "adt"), "another channel was stopped too");

    let answer = post(&engine, "/api/channels/lab/start").await;
    assert_eq!(answer["state"], "running", "{answer}");
    send_all(lab_addr, &[oru("S1")]).await;
    wait_for("S1 delivered", LIMIT, || got.lock().unwrap().len() == 1).await;

    // Paused: acknowledged and stored, not processed until started.
    let answer = post(&engine, "/api/channels/lab/pause").await;
    assert_eq!(answer["state"], "paused", "{answer}");
    send_all(lab_addr, &[oru("P1"), oru("P2")]).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(processed(&engine), 1, "a paused channel processed");
    assert_eq!(
        count(
            engine.store(),
            "SELECT count(*) FROM journal WHERE state = 'received'"
        ),
        2
    );
    post(&engine, "/api/channels/lab/start").await;
    wait_for("P1 and P2 delivered", LIMIT, || {
        got.lock().unwrap().len() == 3
    })
    .await;
    assert_eq!(*got.lock().unwrap(), ["S1", "P1", "P2"]);

    // Unknown names are 404s.
    let unknown = common::http(
        engine.http_addr().unwrap(),
        "POST",
        "/api/channels/nope/stop",
        &[],
        b"",
    )
    .await;
    assert_eq!(unknown.status, 404, "{}", unknown.body);
    let unknown = common::http(
        engine.http_addr().unwrap(),
        "POST",
        "/api/channels/lab/destinations/nope/pause",
        &[],
        b"",
    )
    .await;
    assert_eq!(unknown.status, 404, "{}", unknown.body);
    engine.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paused_destination_and_a_stopped_channel_stay_so_after_a_restart_and_a_reload() {
    let dir = tempfile::tempdir().unwrap();
    let (receiver, got) = http_receiver().await;
    let (lab, adt) = (free_port(), free_port());
    let file = dir.path().join("corridor.toml");
    let write = |extra: &str| {
        std::fs::write(
            &file,
            common::config_text(
                dir.path(),
                "data",
                Api::On,
                &format!("{}{extra}", channels(lab, adt, receiver)),
            ),
        )
        .unwrap();
    };
    write("");
    let start = || Engine::start_from_file(ConfigFile::new(file.clone()));
    let engine = start().await.unwrap();
    post(&engine, "/api/channels/lab/destinations/ehr/pause").await;
    post(&engine, "/api/channels/adt/stop").await;
    engine.shutdown().await;

    let engine = start().await.unwrap();
    assert!(!listens(&engine, "adt"), "a stopped channel started again");
    assert_eq!(control(&engine, "adt").await["state"], "stopped");
    let lab_state = control(&engine, "lab").await;
    assert_eq!(
        lab_state["destinations"][0]["state"], "paused",
        "{lab_state}"
    );
    let lab_addr: SocketAddr = format!("127.0.0.1:{lab}").parse().unwrap();
    send_all(lab_addr, &[oru("R1")]).await;
    wait_for("R1 processed", LIMIT, || processed(&engine) == 1).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(
        got.lock().unwrap().is_empty(),
        "a paused destination delivered after a restart"
    );

    // A reload that changes both channels (the stopped one's source too) keeps them so.
    write("\n[channels.extra]\nsource = { type = \"mllp\", listen = \"127.0.0.1:0\" }\n");
    std::fs::write(
        &file,
        std::fs::read_to_string(&file)
            .unwrap()
            .replace(
                &format!("127.0.0.1:{adt}\" }}"),
                &format!("127.0.0.1:{adt}\", ack_mode = \"enhanced\" }}"),
            )
            .replace("url = \"http://", "method = \"POST\"\nurl = \"http://"),
    )
    .unwrap();
    let applied = engine.reload("test").await.unwrap();
    assert_eq!(applied.changed, ["adt", "lab"], "{applied:?}");
    assert!(
        !listens(&engine, "adt"),
        "a reload started a stopped channel"
    );
    assert!(listens(&engine, "extra"));
    assert_eq!(control(&engine, "adt").await["state"], "stopped");
    assert_eq!(
        control(&engine, "lab").await["destinations"][0]["state"],
        "paused"
    );
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(
        got.lock().unwrap().is_empty(),
        "a reloaded paused destination delivered"
    );

    post(&engine, "/api/channels/lab/destinations/ehr/resume").await;
    wait_for("R1 delivered", LIMIT, || got.lock().unwrap().len() == 1).await;
    post(&engine, "/api/channels/adt/start").await;
    assert!(listens(&engine, "adt"));
    engine.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dead_letters_resent_from_the_api_and_the_console_are_delivered_once() {
    let dir = tempfile::tempdir().unwrap();
    let refuse = Arc::new(AtomicBool::new(true));
    let (receiver, got) = common::hl7_receiver(refuse.clone()).await;
    let lab = free_port();
    let engine = common::start_engine(
        dir.path(),
        "data",
        Api::On,
        &format!(
            r#"
[channels.lab]
source = {{ type = "mllp", listen = "127.0.0.1:{lab}" }}

[[channels.lab.destinations]]
name = "ehr"
type = "http"
url = "http://{receiver}/hl7"
retry = {{ max_attempts = 1 }}
on_failure = "dead_letter"
"#
        ),
    )
    .await;
    let lab_addr: SocketAddr = format!("127.0.0.1:{lab}").parse().unwrap();
    send_all(lab_addr, &[oru("D1"), oru("D2")]).await;
    let dead = || {
        count(
            engine.store(),
            "SELECT count(*) FROM delivery_queue WHERE state = 'dead_lettered'",
        )
    };
    wait_for("both dead-lettered", LIMIT, || dead() == 2).await;
    assert!(got.lock().unwrap().is_empty());
    refuse.store(false, Ordering::SeqCst);
    let entries: Vec<(i64, i64)> = common::rows(
        engine.store(),
        "SELECT id, message_id FROM delivery_queue WHERE state = 'dead_lettered' ORDER BY id",
        [],
        |r| Ok((r.get(0)?, r.get(1)?)),
    );
    let addr = engine.http_addr().unwrap();

    // D1 through the API.
    let answer = common::http(
        addr,
        "POST",
        &format!("/api/messages/{}/resend?destination=ehr", entries[0].1),
        &[],
        b"",
    )
    .await;
    assert_eq!(answer.status, 202, "{}", answer.body);
    wait_for("D1 delivered", LIMIT, || got.lock().unwrap().len() == 1).await;
    assert_eq!(*got.lock().unwrap(), ["D1"]);

    // D2 through the console's dead-letter form.
    let form = format!("entry={}", entries[1].0);
    let answer = common::http(
        addr,
        "POST",
        "/console/dead-letters/resend",
        &[("Content-Type", "application/x-www-form-urlencoded")],
        form.as_bytes(),
    )
    .await;
    assert_eq!(answer.status, 303, "{}", answer.body);
    assert!(answer.head.contains("notice="), "{}", answer.head);
    wait_for("D2 delivered", LIMIT, || got.lock().unwrap().len() == 2).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(*got.lock().unwrap(), ["D1", "D2"], "each once");
    assert_eq!(
        count(
            engine.store(),
            "SELECT count(*) FROM delivery_queue WHERE state = 'delivered'"
        ),
        2
    );
    engine.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_colours_a_queue_s_depth_from_the_console_thresholds() {
    let dir = tempfile::tempdir().unwrap();
    let (receiver, _got) = http_receiver().await;
    let (lab, adt) = (free_port(), free_port());
    let config = format!(
        "[console]\nqueue_depth_warn = 2\nqueue_depth_alarm = 3\n{}",
        channels(lab, adt, receiver)
    );
    let engine = common::start_engine(dir.path(), "data", Api::On, &config).await;
    post(&engine, "/api/channels/lab/destinations/ehr/pause").await;
    let lab_addr: SocketAddr = format!("127.0.0.1:{lab}").parse().unwrap();
    let mut client = common::mllp_client(lab_addr).await;
    for control in ["Q1", "Q2"] {
        common::send_expecting(&mut client, &oru(control), "AA").await;
    }
    wait_for("both processed", LIMIT, || processed(&engine) == 2).await;
    let answer = common::get(engine.http_addr().unwrap(), "/console/events").await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    let counts = answer.json();
    assert_eq!(counts["dest/lab/ehr/depth"]["text"], "2", "{counts}");
    assert_eq!(counts["dest/lab/ehr/depth"]["level"], "warn", "{counts}");
    assert_eq!(counts["dest/lab/ehr/depth_state"], "warning", "{counts}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_destination_s_own_thresholds_colour_its_queue_and_bad_ones_stop_the_start() {
    let dir = tempfile::tempdir().unwrap();
    let (receiver, _got) = http_receiver().await;
    let (lab, adt) = (free_port(), free_port());
    let config = format!(
        "[console]\nqueue_depth_warn = 2\nqueue_depth_alarm = 3\n\
         [console.destinations.adt.ehr]\nqueue_depth_warn = 5\nqueue_depth_alarm = 10\n{}",
        channels(lab, adt, receiver)
    );
    let engine = common::start_engine(dir.path(), "data", Api::On, &config).await;
    post(&engine, "/api/channels/lab/destinations/ehr/pause").await;
    post(&engine, "/api/channels/adt/destinations/ehr/pause").await;
    for port in [lab, adt] {
        let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
        let mut client = common::mllp_client(addr).await;
        for control in ["Q1", "Q2"] {
            common::send_expecting(&mut client, &oru(control), "AA").await;
        }
    }
    wait_for("all four processed", LIMIT, || processed(&engine) == 4).await;
    let http = engine.http_addr().unwrap();
    let counts = common::get(http, "/console/events").await.json();
    // Two queued on each: a warning by [console], nothing by adt/ehr's own.
    assert_eq!(counts["dest/lab/ehr/depth"]["text"], "2", "{counts}");
    assert_eq!(counts["dest/lab/ehr/depth"]["level"], "warn", "{counts}");
    assert_eq!(counts["dest/adt/ehr/depth"]["text"], "2", "{counts}");
    assert_eq!(counts["dest/adt/ehr/depth"]["level"], "ok", "{counts}");
    assert_eq!(counts["dest/adt/ehr/depth_state"], "", "{counts}");
    let page = common::get(http, "/").await.body;
    assert!(
        page.contains("<td class=\"n ok\" data-count=\"dest/adt/ehr/depth\">"),
        "{page}"
    );
    assert!(
        page.contains("<td class=\"n warn\" data-count=\"dest/lab/ehr/depth\">"),
        "{page}"
    );
    engine.shutdown().await;

    // Bad values stop the start, each naming its key.
    let errors = |console: &str| -> String {
        let text = common::config_text(
            dir.path(),
            "data2",
            Api::Off,
            &format!(
                "{console}\n{}",
                channels(free_port(), free_port(), receiver)
            ),
        );
        match engine::Config::from_toml_in(&text, dir.path()) {
            Ok(_) => String::new(),
            Err(e) => e.to_string(),
        }
    };
    let text = errors("[console.destinations.adt.ehr]\nqueue_depth_warn = 0");
    assert!(
        text.contains("console.destinations.adt.ehr.queue_depth_warn: must be more than 0"),
        "{text}"
    );
    let text = errors("[console.destinations.adt.ehr]\nqueue_age_alarm = \"10s\"");
    assert!(
        text.contains("console.destinations.adt.ehr.queue_age_alarm: the warning age (60000 ms) must not be longer than the alarm age (10000 ms)"),
        "{text}"
    );
    let text = errors("[console.destinations.adt.lis]\nqueue_depth_warn = 5");
    assert!(
        text.contains(
            "console.destinations.adt.lis: channels.adt has no destination named \"lis\""
        ),
        "{text}"
    );
    let text = errors("[console.destinations.adt.ehr]\nqueue_depth = 5");
    assert!(text.contains("queue_depth"), "{text}");
    assert!(errors("[console.destinations.adt.ehr]\nqueue_age_warn = \"5s\"").is_empty());
}

/// The value of the `/metrics` sample `series` (name and labels, exactly).
fn sample(metrics: &str, series: &str) -> Option<f64> {
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
        .and_then(|v| v.parse().ok())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sent_hop_counts_from_receipt_to_the_first_attempt_in_metrics_and_on_the_dashboard() {
    let dir = tempfile::tempdir().unwrap();
    let (receiver, got) = http_receiver().await;
    let (lab, adt) = (free_port(), free_port());
    let engine =
        common::start_engine(dir.path(), "data", Api::On, &channels(lab, adt, receiver)).await;
    let http = engine.http_addr().unwrap();
    // Held for 1.5 s after receipt: each entry's first attempt is at least that late.
    post(&engine, "/api/channels/lab/destinations/ehr/pause").await;
    let lab_addr: SocketAddr = format!("127.0.0.1:{lab}").parse().unwrap();
    send_all(lab_addr, &[oru("S1"), oru("S2"), oru("S3")]).await;
    let held = std::time::Instant::now();
    wait_for("all three processed", LIMIT, || processed(&engine) == 3).await;
    tokio::time::sleep(Duration::from_millis(1500).saturating_sub(held.elapsed())).await;
    post(&engine, "/api/channels/lab/destinations/ehr/resume").await;
    wait_for("all three delivered", LIMIT, || {
        got.lock().unwrap().len() == 3
    })
    .await;
    let took = held.elapsed().as_secs_f64();

    let metrics = common::get(http, "/metrics").await.body;
    let name = "corridor_destination_sent_latency_seconds";
    let labels = "channel=\"lab\",destination=\"ehr\"";
    let count = sample(&metrics, &format!("{name}_count{{{labels}}}"));
    assert_eq!(count, Some(3.0), "{metrics}");
    let sum = sample(&metrics, &format!("{name}_sum{{{labels}}}")).unwrap();
    assert!(
        (3.0 * 1.5..=3.0 * (took + 1.0)).contains(&sum),
        "sum {sum} s for three entries held 1.5 s (all delivered {took} s after)"
    );
    assert_eq!(
        sample(&metrics, &format!("{name}_bucket{{{labels},le=\"1\"}}")),
        Some(0.0),
        "{metrics}"
    );
    assert_eq!(
        sample(&metrics, &format!("{name}_bucket{{{labels},le=\"60\"}}")),
        Some(3.0),
        "{metrics}"
    );
    // adt/ehr sent nothing: its histogram is there, empty.
    assert_eq!(
        sample(
            &metrics,
            &format!("{name}_count{{channel=\"adt\",destination=\"ehr\"}}")
        ),
        Some(0.0),
        "{metrics}"
    );

    let counts = common::get(http, "/console/events").await.json();
    let p50 = counts["dest/lab/ehr/sent_p50"].as_str().unwrap_or_default();
    assert!(
        ["≤ 2.5 s", "≤ 5 s", "≤ 10 s"].contains(&p50),
        "{p50:?} in {counts}"
    );
    assert_eq!(counts["dest/adt/ehr/sent_p50"], "-", "{counts}");
    let page = common::get(http, "/").await.body;
    assert!(
        page.contains(&format!(
            "<td class=\"n\" data-count=\"dest/lab/ehr/sent_p99\">{}</td>",
            counts["dest/lab/ehr/sent_p99"].as_str().unwrap()
        )),
        "{page}"
    );
    engine.shutdown().await;
}

/// What a test MLLP receiver saw: the control ids it acknowledged, in order, the
/// connections it accepted and those still open (closed when the sender closes).
#[derive(Clone, Default)]
struct MllpSeen {
    got: Arc<Mutex<Vec<String>>>,
    accepted: Arc<std::sync::atomic::AtomicUsize>,
    open: Arc<std::sync::atomic::AtomicUsize>,
}

/// A downstream MLLP listener answering AA to every frame, counting its connections.
async fn mllp_receiver() -> (SocketAddr, MllpSeen) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let seen = MllpSeen::default();
    let keep = seen.clone();
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            keep.accepted.fetch_add(1, Ordering::SeqCst);
            keep.open.fetch_add(1, Ordering::SeqCst);
            let keep = keep.clone();
            tokio::spawn(async move {
                let mut decoder = mllp::FrameDecoder::new(1 << 20);
                let mut buf = bytes::BytesMut::new();
                'connection: loop {
                    while let Ok(Some(frame)) = decoder.decode(&mut buf) {
                        let control = hl7v2::Message::parse(&frame)
                            .ok()
                            .and_then(|m| {
                                m.get_str("MSH-10").ok().flatten().map(|c| c.into_owned())
                            })
                            .unwrap_or_default();
                        keep.got.lock().unwrap().push(control.clone());
                        let ack = format!(
                            "\x0bMSH|^~\\&|EHR|HOSP|LIS|LAB|20240101120000||ACK|A{control}|P|2.5.1\rMSA|AA|{control}\r\x1c\r"
                        );
                        if socket.write_all(ack.as_bytes()).await.is_err() {
                            break 'connection;
                        }
                    }
                    match socket.read_buf(&mut buf).await {
                        Ok(0) | Err(_) => break,
                        Ok(_) => {}
                    }
                }
                keep.open.fetch_sub(1, Ordering::SeqCst);
            });
        }
    });
    (addr, seen)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopped_destination_closes_its_connection_stays_stopped_after_a_restart_and_delivers_in_order_when_started()
 {
    let dir = tempfile::tempdir().unwrap();
    let (receiver, seen) = mllp_receiver().await;
    let lab = free_port();
    let file = dir.path().join("corridor.toml");
    std::fs::write(
        &file,
        common::config_text(
            dir.path(),
            "data",
            Api::On,
            &format!(
                r#"
[channels.lab]
source = {{ type = "mllp", listen = "127.0.0.1:{lab}" }}

[[channels.lab.destinations]]
name = "ehr"
type = "mllp"
to = "{receiver}"
"#
            ),
        ),
    )
    .unwrap();
    let start = || Engine::start_from_file(ConfigFile::new(file.clone()));
    let engine = start().await.unwrap();
    let lab_addr: SocketAddr = format!("127.0.0.1:{lab}").parse().unwrap();
    let open = || seen.open.load(Ordering::SeqCst);
    let accepted = || seen.accepted.load(Ordering::SeqCst);

    send_all(lab_addr, &[oru("S1")]).await;
    wait_for("S1 delivered", LIMIT, || {
        seen.got.lock().unwrap().len() == 1
    })
    .await;
    assert_eq!((accepted(), open()), (1, 1), "one connection, kept open");

    // Paused: nothing is sent, the connection stays open.
    let answer = post(&engine, "/api/channels/lab/destinations/ehr/pause").await;
    assert_eq!(answer["destinations"][0]["state"], "paused", "{answer}");
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(open(), 1, "a paused destination closed its connection");

    // Stopped: the receiver sees its connection closed.
    let answer = post(&engine, "/api/channels/lab/destinations/ehr/stop").await;
    assert_eq!(answer["destinations"][0]["state"], "stopped", "{answer}");
    assert_eq!(answer["destinations"][0]["paused_by"], "anonymous");
    wait_for("the connection closed", Duration::from_secs(5), || {
        open() == 0
    })
    .await;

    // Messages go on arriving and queue; no connection is opened for them.
    let queued: Vec<String> = (1..=5).map(|i| format!("Q{i}")).collect();
    let messages: Vec<Vec<u8>> = queued.iter().map(|c| oru(c)).collect();
    send_all(lab_addr, &messages).await;
    wait_for("all processed", LIMIT, || processed(&engine) == 6).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(
        *seen.got.lock().unwrap(),
        ["S1"],
        "a stopped destination sent"
    );
    assert_eq!(
        (accepted(), open()),
        (1, 0),
        "a stopped destination connected"
    );
    let waiting = count(
        engine.store(),
        "SELECT count(*) FROM delivery_queue WHERE state = 'queued'",
    );
    assert_eq!(waiting, 5);

    // A restart keeps it stopped.
    engine.shutdown().await;
    let engine = start().await.unwrap();
    assert_eq!(
        control(&engine, "lab").await["destinations"][0]["state"],
        "stopped"
    );
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(
        (accepted(), seen.got.lock().unwrap().len()),
        (1, 1),
        "a stopped destination connected after a restart"
    );

    // Started: it connects again and delivers the queue, each once, in order.
    let answer = post(&engine, "/api/channels/lab/destinations/ehr/start").await;
    assert_eq!(answer["destinations"][0]["state"], "running", "{answer}");
    wait_for("the queue delivered", LIMIT, || {
        seen.got.lock().unwrap().len() >= 6
    })
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let mut expected = vec!["S1".to_owned()];
    expected.extend(queued);
    assert_eq!(*seen.got.lock().unwrap(), expected, "each once, in order");
    assert_eq!((accepted(), open()), (2, 1));
    engine.shutdown().await;
}
