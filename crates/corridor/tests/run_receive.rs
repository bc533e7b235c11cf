//! `corridor run` as a sender sees it: a real process, real sockets, a real
//! SQLite journal. Each test starts the binary with its own data directory and
//! free ports, sends with `mllp::MllpClient` (or raw TCP for pipelining), and
//! checks the answers and the database.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use mllp::MllpClient;
use store::rusqlite::{Connection, OpenFlags};
use tokio::io::AsyncWriteExt;

/// A running `corridor run`, killed when dropped.
struct Corridor {
    child: Child,
    listeners: HashMap<String, SocketAddr>,
    http: Option<SocketAddr>,
    data: PathBuf,
    log: Arc<Mutex<Vec<String>>>,
    _dir: tempfile::TempDir,
}

impl Drop for Corridor {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Corridor {
    /// Starts `corridor run --config` with `channels` (TOML of `[channels.*]`),
    /// data in a fresh temporary directory, HTTP on a free port.
    fn start(channels: &str) -> Corridor {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        let config = dir.path().join("corridor.toml");
        std::fs::write(
            &config,
            format!(
                "[data]\ndir = {:?}\n[http]\nlisten = \"127.0.0.1:0\"\nmetrics_public = true\n{channels}",
                data.display().to_string()
            ),
        )
        .unwrap();
        let args = ["run", "--config", config.to_str().unwrap()];
        Corridor::spawn(&args, dir, data)
    }

    fn spawn(args: &[&str], dir: tempfile::TempDir, data: PathBuf) -> Corridor {
        let mut child = Command::new(env!("CARGO_BIN_EXE_corridor"))
            .args(args)
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stderr = child.stderr.take().unwrap();
        let log = Arc::new(Mutex::new(Vec::new()));
        let (ready_tx, ready_rx) = mpsc::channel();
        let lines = log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                if line.contains("corridor is listening") {
                    let _ = ready_tx.send(line.clone());
                }
                lines.lock().unwrap().push(line);
            }
        });
        let ready = ready_rx
            .recv_timeout(Duration::from_secs(20))
            .unwrap_or_else(|_| panic!("corridor did not start: {:?}", log.lock().unwrap()));
        let (listeners, http) = parse_ready_line(&ready);
        Corridor {
            child,
            listeners,
            http,
            data,
            log,
            _dir: dir,
        }
    }

    fn addr(&self, channel: &str) -> String {
        self.listeners[channel].to_string()
    }

    fn db(&self) -> Connection {
        Connection::open_with_flags(
            self.data.join("corridor.db"),
            OpenFlags::SQLITE_OPEN_READ_ONLY,
        )
        .unwrap()
    }

    fn terminate(&mut self) -> ExitStatus {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
        wait_with_timeout(&mut self.child, Duration::from_secs(20))
    }

    fn log_text(&self) -> String {
        self.log.lock().unwrap().join("\n")
    }
}

fn wait_with_timeout(child: &mut Child, limit: Duration) -> ExitStatus {
    let deadline = std::time::Instant::now() + limit;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "corridor did not exit"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Reads `listeners=lab=mllp://127.0.0.1:1234 b=mllp://... http=http://127.0.0.1:5678`.
fn parse_ready_line(line: &str) -> (HashMap<String, SocketAddr>, Option<SocketAddr>) {
    let mut listeners = HashMap::new();
    let mut http = None;
    let rest = &line[line.find("listeners=").unwrap() + "listeners=".len()..];
    for token in rest.split_whitespace() {
        if let Some(addr) = token.strip_prefix("http=http://") {
            http = Some(addr.parse().unwrap());
            break;
        }
        if let Some((name, url)) = token.split_once('=') {
            let addr = url.split("://").nth(1).unwrap();
            listeners.insert(name.to_owned(), addr.parse().unwrap());
        }
    }
    (listeners, http)
}

fn oru(control_id: &str) -> Vec<u8> {
    format!(
        "MSH|^~\\&|LAB|NORTH|EHR|NORTH|20260101120000||ORU^R01^ORU_R01|{control_id}|P|2.5.1\r\
         PID|1||12345^^^NORTH^MR||DOE^JANE\r\
         OBR|1||9876|CBC\r\
         OBX|1|NM|WBC^White cells^LN||7.5|10*3/uL|||||F\r"
    )
    .into_bytes()
}

fn enhanced(control_id: &str, msh15: &str, msh16: &str) -> Vec<u8> {
    format!(
        "MSH|^~\\&|LAB|NORTH|EHR|NORTH|20260101120000||ORU^R01|{control_id}|P|2.5.1|||{msh15}|{msh16}\r\
         PID|1||12345^^^NORTH^MR||DOE^JANE\r"
    )
    .into_bytes()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// MSA-1 and MSA-2 of an acknowledgement.
fn msa(ack: &[u8]) -> (String, String) {
    let ack = text(ack);
    let line = ack
        .split('\r')
        .find(|s| s.starts_with("MSA|"))
        .unwrap_or_else(|| panic!("no MSA in {ack:?}"));
    let fields: Vec<&str> = line.split('|').collect();
    (
        fields[1].to_owned(),
        fields.get(2).unwrap_or(&"").to_string(),
    )
}

fn err_segments(ack: &[u8]) -> Vec<String> {
    text(ack)
        .split('\r')
        .filter(|s| s.starts_with("ERR|"))
        .map(str::to_owned)
        .collect()
}

/// (state, state_reason, raw) of the rows with this control id.
fn rows(db: &Connection, control_id: &str) -> Vec<(String, Option<String>, Vec<u8>)> {
    let mut query = db
        .prepare(
            "SELECT state, state_reason, raw FROM journal JOIN journal_raw USING (id) \
                 WHERE control_id = ?1 ORDER BY id",
        )
        .unwrap();
    query
        .query_map([control_id], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect()
}

const ONE_CHANNEL: &str =
    "[channels.lab]\nsource = { type = \"mllp\", listen = \"127.0.0.1:0\" }\n";

#[tokio::test]
async fn aa_arrives_only_once_the_message_is_in_the_journal() {
    let corridor = Corridor::start(ONE_CHANNEL);
    let mut sender = MllpClient::connect(&corridor.addr("lab"), None)
        .await
        .unwrap();
    let message = oru("CTRL-1");
    let ack = sender.send(&message).await.unwrap();
    assert_eq!(msa(&ack), ("AA".into(), "CTRL-1".into()));

    // Read at the moment the AA is in hand: the row must already be committed.
    let db = corridor.db();
    let (channel, peer, app, facility, kind, version, state, raw): (
        String,
        String,
        String,
        String,
        String,
        String,
        String,
        Vec<u8>,
    ) = db
        .query_row(
            "SELECT channel, peer, sending_application, sending_facility, message_type, version, state, raw \
             FROM journal JOIN journal_raw USING (id) WHERE control_id = 'CTRL-1'",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?, r.get(6)?, r.get(7)?)),
        )
        .unwrap();
    assert_eq!(channel, "lab");
    assert_eq!(
        peer.parse::<SocketAddr>().unwrap().ip().to_string(),
        "127.0.0.1"
    );
    assert_eq!((app.as_str(), facility.as_str()), ("LAB", "NORTH"));
    assert_eq!(kind, "ORU^R01^ORU_R01");
    assert_eq!(version, "2.5.1");
    // The channel's pipeline may have processed it already.
    assert!(
        ["received", "processed"].contains(&state.as_str()),
        "{state}"
    );
    assert_eq!(
        raw, message,
        "the journal keeps the bytes exactly as received"
    );
}

#[tokio::test]
async fn unparseable_message_gets_ae_with_err_naming_the_segment_and_is_kept_as_rejected() {
    let corridor = Corridor::start(ONE_CHANNEL);
    let mut sender = MllpClient::connect(&corridor.addr("lab"), None)
        .await
        .unwrap();
    let broken =
        b"MSH|^~\\&|LAB|NORTH|EHR|NORTH|20260101||ORU^R01|BAD-1|P|2.5.1\rPID|1\rP@D|oops\r";
    let ack = sender.send(broken).await.unwrap();
    assert_eq!(msa(&ack), ("AE".into(), "BAD-1".into()));
    let errs = err_segments(&ack);
    assert_eq!(errs.len(), 1, "{}", text(&ack));
    assert!(
        errs[0].contains("P@D"),
        "ERR names the segment: {}",
        errs[0]
    );
    assert!(
        errs[0].contains("|100^"),
        "ERR-3 is 100 (segment sequence error): {}",
        errs[0]
    );

    let stored = rows(&corridor.db(), "BAD-1");
    assert_eq!(stored.len(), 1);
    assert_eq!(stored[0].0, "rejected");
    assert!(
        stored[0].1.as_deref().unwrap().contains("segment 3"),
        "{:?}",
        stored[0].1
    );
    assert_eq!(stored[0].2, broken);
}

#[tokio::test]
async fn input_that_is_not_hl7_gets_ar_with_err_100_and_is_kept_as_rejected() {
    let corridor = Corridor::start(ONE_CHANNEL);
    let mut sender = MllpClient::connect(&corridor.addr("lab"), None)
        .await
        .unwrap();
    let garbage = b"GET / HTTP/1.1\r\nHost: example\r\n\r\n";
    let ack = sender.send(garbage).await.unwrap();
    assert_eq!(msa(&ack).0, "AR");
    let errs = err_segments(&ack);
    assert_eq!(errs.len(), 1, "{}", text(&ack));
    assert!(errs[0].contains("|100^"), "{}", errs[0]);

    // The same connection keeps working for the next, good message.
    let ack = sender.send(&oru("AFTER-GARBAGE")).await.unwrap();
    assert_eq!(msa(&ack), ("AA".into(), "AFTER-GARBAGE".into()));

    let db = corridor.db();
    let (state, reason, raw): (String, String, Vec<u8>) = db
        .query_row(
            "SELECT state, state_reason, raw FROM journal JOIN journal_raw USING (id) \
             WHERE control_id = '' ",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .unwrap();
    assert_eq!(state, "rejected");
    assert!(reason.contains("not an HL7 v2 message"), "{reason}");
    assert_eq!(raw, garbage);
}

#[tokio::test]
async fn duplicates_are_acknowledged_again_but_stored_once_unless_detection_is_off() {
    let corridor = Corridor::start(
        "[channels.lab]\nsource = { type = \"mllp\", listen = \"127.0.0.1:0\" }\n\
         [channels.raw]\nsource = { type = \"mllp\", listen = \"127.0.0.1:0\", duplicate_window = \"off\" }\n",
    );
    for channel in ["lab", "raw"] {
        let mut sender = MllpClient::connect(&corridor.addr(channel), None)
            .await
            .unwrap();
        for _ in 0..3 {
            let ack = sender.send(&oru(&format!("DUP-{channel}"))).await.unwrap();
            assert_eq!(msa(&ack), ("AA".into(), format!("DUP-{channel}")));
        }
        // A second connection resending the same message is a duplicate too.
        let mut other = MllpClient::connect(&corridor.addr(channel), None)
            .await
            .unwrap();
        let ack = other.send(&oru(&format!("DUP-{channel}"))).await.unwrap();
        assert_eq!(msa(&ack).0, "AA");
    }
    let db = corridor.db();
    assert_eq!(rows(&db, "DUP-lab").len(), 1, "duplicates are stored once");
    assert_eq!(
        rows(&db, "DUP-raw").len(),
        4,
        "with detection off every copy is kept"
    );
}

#[tokio::test]
async fn enhanced_mode_sends_ca_as_msh_15_asks_and_records_the_application_ack_owed() {
    let corridor = Corridor::start(
        "[channels.lab]\nsource = { type = \"mllp\", listen = \"127.0.0.1:0\", ack_mode = \"enhanced\" }\n",
    );
    let mut sender = MllpClient::connect(&corridor.addr("lab"), None)
        .await
        .unwrap();
    let ack = sender.send(&enhanced("E-AL", "AL", "AL")).await.unwrap();
    assert_eq!(msa(&ack), ("CA".into(), "E-AL".into()));

    // NE and ER (on success) ask for no commit ACK: nothing comes back for
    // them, so the next answer on the connection is E-LAST's.
    sender
        .send_frame(&enhanced("E-NE", "NE", "NE"))
        .await
        .unwrap();
    sender
        .send_frame(&enhanced("E-ER", "ER", ""))
        .await
        .unwrap();
    let ack = sender.send(&enhanced("E-LAST", "", "")).await.unwrap();
    assert_eq!(
        msa(&ack),
        ("CA".into(), "E-LAST".into()),
        "empty MSH-15 means AL"
    );

    // A broken message under MSH-15=ER gets its CE with an ERR.
    let ack = sender
        .send(b"MSH|^~\\&|LAB|NORTH|EHR|NORTH|20260101||ORU^R01|E-BAD|P|2.5.1|||ER|NE\rP@D|x\r")
        .await
        .unwrap();
    assert_eq!(msa(&ack), ("CE".into(), "E-BAD".into()));
    assert_eq!(err_segments(&ack).len(), 1);

    let db = corridor.db();
    for id in ["E-AL", "E-NE", "E-ER", "E-LAST"] {
        assert_eq!(rows(&db, id).len(), 1, "{id} is stored");
        let state = &rows(&db, id)[0].0;
        assert!(
            ["received", "processed"].contains(&state.as_str()),
            "{state}"
        );
    }
    let owed: Vec<(String, String)> = db
        .prepare(
            "SELECT j.control_id, o.condition FROM application_acks_owed o \
             JOIN journal j ON j.id = o.message_id ORDER BY j.id",
        )
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert_eq!(owed, [("E-AL".to_owned(), "AL".to_owned())]);
}

#[tokio::test]
async fn commit_acks_come_before_the_application_ack() {
    let corridor = Corridor::start(
        "[channels.lab]\nsource = { type = \"mllp\", listen = \"127.0.0.1:0\", commit_acks = true }\n",
    );
    let mut sender = MllpClient::connect(&corridor.addr("lab"), None)
        .await
        .unwrap();
    let first = sender.send(&oru("R2-1")).await.unwrap();
    assert_eq!(first.as_ref(), mllp::COMMIT_ACK_PAYLOAD);
    let second = sender.receive().await.unwrap();
    assert_eq!(msa(&second), ("AA".into(), "R2-1".into()));
    assert_eq!(rows(&corridor.db(), "R2-1").len(), 1);
}

/// Writes `count` frames in one TCP write (a pipelining sender) and returns
/// the connection, ready to read the answers.
async fn pipeline(addr: &str, prefix: &str, count: usize) -> tokio::net::TcpStream {
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let mut wire = Vec::new();
    for i in 0..count {
        wire.push(mllp::START_BLOCK);
        wire.extend_from_slice(&oru(&format!("{prefix}-{i}")));
        wire.extend_from_slice(&[mllp::END_BLOCK, mllp::CARRIAGE_RETURN]);
    }
    stream.write_all(&wire).await.unwrap();
    stream
}

/// Reads answers until `count` arrived or the server closed the connection.
fn read_acks(stream: tokio::net::TcpStream, count: usize) -> Vec<(String, String)> {
    let mut stream = stream.into_std().unwrap();
    stream.set_nonblocking(false).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    let mut pending = Vec::new();
    let mut acks = Vec::new();
    let mut buf = vec![0u8; 64 * 1024];
    while acks.len() < count {
        let n = stream.read(&mut buf).unwrap_or(0);
        if n == 0 {
            break;
        }
        pending.extend_from_slice(&buf[..n]);
        // Frames are SB payload EB CR; a frame may start before this read.
        while let Some(end) = pending
            .windows(2)
            .position(|w| w == [mllp::END_BLOCK, mllp::CARRIAGE_RETURN])
        {
            let frame: Vec<u8> = pending.drain(..end + 2).collect();
            let start = frame
                .iter()
                .position(|&b| b == mllp::START_BLOCK)
                .map_or(0, |p| p + 1);
            acks.push(msa(&frame[start..end]));
        }
    }
    acks
}

#[tokio::test]
async fn pipelined_messages_each_get_their_own_ack_in_order() {
    let corridor = Corridor::start(ONE_CHANNEL);
    let stream = pipeline(&corridor.addr("lab"), "PIPE", 200).await;
    let acks = tokio::task::spawn_blocking(move || read_acks(stream, 200))
        .await
        .unwrap();
    let expected: Vec<(String, String)> = (0..200)
        .map(|i| ("AA".to_owned(), format!("PIPE-{i}")))
        .collect();
    assert_eq!(acks, expected);
    let count: i64 = corridor
        .db()
        .query_row(
            "SELECT count(*) FROM journal WHERE control_id LIKE 'PIPE-%'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(count, 200);
}

#[tokio::test]
async fn sigterm_acknowledges_what_is_in_flight_and_exits_0() {
    let mut corridor = Corridor::start(ONE_CHANNEL);
    let mut stream = pipeline(&corridor.addr("lab"), "TERM", 500).await;
    // Wait for the first answer, so the server is mid-way through the stream.
    let mut first = [0u8; 1];
    tokio::io::AsyncReadExt::read_exact(&mut stream, &mut first)
        .await
        .unwrap();
    assert_eq!(first[0], mllp::START_BLOCK);
    let status = corridor.terminate();
    assert_eq!(status.code(), Some(0), "{}", corridor.log_text());

    // The first answer's start byte was read above; the reader copes with that.
    let acks = tokio::task::spawn_blocking(move || read_acks(stream, 500))
        .await
        .unwrap();
    assert!(!acks.is_empty());
    let db = corridor.db();
    for (i, (code, id)) in acks.iter().enumerate() {
        assert_eq!(code, "AA");
        assert_eq!(id, &format!("TERM-{i}"), "answers come in order");
        assert_eq!(
            rows(&db, id).len(),
            1,
            "{id} was acknowledged, so it is stored"
        );
    }
    assert!(corridor.log_text().contains("stopped"));
}

#[tokio::test]
async fn health_and_metrics_count_what_was_received() {
    let corridor = Corridor::start(ONE_CHANNEL);
    let mut sender = MllpClient::connect(&corridor.addr("lab"), None)
        .await
        .unwrap();
    sender.send(&oru("M-1")).await.unwrap();
    sender.send(&oru("M-1")).await.unwrap();
    sender.send(b"not hl7").await.unwrap();
    let http = corridor.http.unwrap();
    let health = http_get(http, "/health");
    assert!(health.starts_with("HTTP/1.1 200"), "{health}");
    let body: serde_json::Value =
        serde_json::from_str(&health[health.find("\r\n\r\n").unwrap() + 4..]).unwrap();
    assert_eq!(body["status"], "ok");
    assert_eq!(body["channels"][0]["name"], "lab");
    assert_eq!(body["channels"][0]["received"], 1);
    assert_eq!(body["channels"][0]["duplicates"], 1);
    assert_eq!(body["channels"][0]["rejected"], 1);

    let metrics = http_get(http, "/metrics");
    assert!(
        metrics.contains("corridor_messages_received_total{channel=\"lab\"} 1"),
        "{metrics}"
    );
    assert!(metrics.contains("corridor_messages_duplicate_total{channel=\"lab\"} 1"));
    assert!(metrics.contains("corridor_messages_rejected_total{channel=\"lab\"} 1"));
    assert!(metrics.contains("corridor_ack_latency_seconds_count{channel=\"lab\"} 3"));
}

fn http_get(addr: SocketAddr, path: &str) -> String {
    let mut stream = std::net::TcpStream::connect(addr).unwrap();
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    response
}

fn corridor_output(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_corridor"))
        .args(args)
        .env("RUST_LOG", "info")
        .output()
        .unwrap()
}

fn write_config(dir: &Path, text: &str) -> String {
    let path = dir.join("corridor.toml");
    std::fs::write(&path, text).unwrap();
    path.to_str().unwrap().to_owned()
}

#[test]
fn config_errors_name_the_key_in_check_and_at_run() {
    let dir = tempfile::tempdir().unwrap();
    let unknown = write_config(
        dir.path(),
        "[channels.lab]\nsource = { type = \"mllp\", listen = \"127.0.0.1:0\", ack_mod = \"enhanced\" }\n",
    );
    for args in [
        vec!["config", "check", &unknown],
        vec!["run", "--config", &unknown],
    ] {
        let out = corridor_output(&args);
        assert_eq!(out.status.code(), Some(1), "{args:?}");
        let err = text(&out.stderr);
        assert!(
            err.contains("channels.lab.source.ack_mod: unknown field `ack_mod`"),
            "{err}"
        );
    }

    let bad_addr = write_config(
        dir.path(),
        "[channels.lab]\nsource = { type = \"mllp\", listen = \"nonsense\" }\n",
    );
    let out = corridor_output(&["config", "check", &bad_addr]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr)
            .contains("channels.lab.source.listen: \"nonsense\" is not a socket address"),
        "{}",
        text(&out.stderr)
    );

    let valid = write_config(
        dir.path(),
        "[channels.lab]\nsource = { type = \"mllp\", listen = \"127.0.0.1:2575\" }\n\
         filters = [ { path = \"MSH-9.1\", in = [\"ORU\"] } ]\n\
         [[channels.lab.destinations]]\nname = \"ehr\"\ntype = \"mllp\"\nto = \"127.0.0.1:2576\"\n",
    );
    let out = corridor_output(&["config", "check", &valid]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).contains("valid (1 channel, 1 destination)"),
        "{}",
        text(&out.stdout)
    );
}

#[test]
fn default_configuration_is_one_mllp_channel_on_2575_with_the_api_on_8080() {
    // The defaults as `corridor run` without `--config` uses them; checked on the parsed
    // configuration, so the suite passes beside a running engine that holds these ports.
    let config = engine::Config::default_config();
    assert_eq!(config.channels.keys().collect::<Vec<_>>(), ["default"]);
    let source = &config.channels["default"].source;
    assert_eq!(source.kind(), engine::SourceKind::Mllp);
    assert_eq!(source.listen_addr().to_string(), "127.0.0.1:2575");
    assert!(config.http.enabled);
    assert_eq!(config.http.listen.0.to_string(), "127.0.0.1:8080");
    assert_eq!(config.data.dir, Path::new("corridor-data"));
}

#[tokio::test]
async fn the_default_channel_with_free_ports_stores_in_the_data_dir() {
    // The default configuration's shape with ports of the system's choosing: `--data`
    // wins over `[data] dir`, the message is stored there and acknowledged.
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("here");
    let config = write_config(
        dir.path(),
        "[http]\nlisten = \"127.0.0.1:0\"\nmetrics_public = true\n[channels.default]\nsource = { type = \"mllp\", listen = \"127.0.0.1:0\" }\n",
    );
    let mut corridor = Corridor::spawn(
        &["run", "--config", &config, "--data", data.to_str().unwrap()],
        tempfile::tempdir().unwrap(),
        data.clone(),
    );
    let addr = corridor.addr("default");
    assert!(corridor.http.is_some());
    let mut sender = MllpClient::connect(&addr, None).await.unwrap();
    let ack = sender.send(&oru("DEFAULT-1")).await.unwrap();
    assert_eq!(msa(&ack), ("AA".into(), "DEFAULT-1".into()));
    assert_eq!(rows(&corridor.db(), "DEFAULT-1").len(), 1);
    assert!(data.join("corridor.db").is_file());
    drop(sender);
    assert_eq!(corridor.terminate().code(), Some(0));
}
