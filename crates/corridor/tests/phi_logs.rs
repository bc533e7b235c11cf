//! No patient data in the logs at the default level. `corridor run` starts as an
//! operator starts it (no `RUST_LOG`, so `info`), with stdout and stderr captured,
//! and one patient with a distinctive name, MRN, SSN, birth date, phone, address
//! and account number goes through every path that logs: MLLP, HTTP and directory
//! sources; the patient index and the FHIR repository; validation failing after the
//! ACK (quarantine) and before it (AE, HTTP 422); a destination that cannot be
//! reached (retries, then a dead letter); a destination that answers AE quoting the
//! patient; messages that are not HL7 or have a broken header (AR); a file that goes
//! to the error folder; the HTTP API searched by the patient's values. Then not one
//! captured line may hold any of those values.

#[path = "send_support.rs"]
mod support;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use support::*;

/// What must never reach a log line, matched without regard to case.
const PHI: &[&str] = &[
    "QUILLFEATHER",
    "ZEBEDEE",
    "ABERNATHY",
    "MRN8675309Q",
    "19610427",
    "987-65-4329",
    "555-013-4477",
    "EVERGREEN",
    "QUAHOGTON",
    "ACCT55501",
];

const PID: &str = "PID|1||MRN8675309Q^^^GHH^MR~987-65-4329^^^SSA^SS||QUILLFEATHER^ZEBEDEE^ABERNATHY||19610427|M|||742 EVERGREEN TERRACE^^QUAHOGTON^OR^97403||555-013-4477|||||ACCT55501|987-65-4329";

fn adt(event: &str, control_id: &str, with_pv1: bool) -> String {
    let mut message = format!(
        "MSH|^~\\&|ADMIT|GHH|EHR|GHH|20240102083000||ADT^{event}^ADT_A01|{control_id}|P|2.5.1\r\
         EVN|{event}|20240102083000\r{PID}\r"
    );
    if with_pv1 {
        message.push_str("PV1|1|I|W1^101^1\r");
    }
    message
}

/// `corridor run` with stdout and stderr captured, line by line, into one log.
struct Engine {
    child: Child,
    lines: Arc<Mutex<Vec<String>>>,
}

impl Engine {
    fn start(config: &Path, data: &Path) -> Engine {
        let mut child = corridor()
            .arg("run")
            .arg("--config")
            .arg(config)
            .arg("--data")
            .arg(data)
            .env_remove("RUST_LOG")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let lines = Arc::new(Mutex::new(Vec::new()));
        let stdout = child.stdout.take().unwrap();
        let stderr = child.stderr.take().unwrap();
        for stream in [Box::new(stdout) as Box<dyn Read + Send>, Box::new(stderr)] {
            let lines = lines.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(stream).lines() {
                    let Ok(line) = line else { break };
                    lines.lock().unwrap().push(line);
                }
            });
        }
        Engine { child, lines }
    }

    fn log(&self) -> Vec<String> {
        self.lines.lock().unwrap().clone()
    }

    /// The address of channel `channel`'s listener, from the "listening" line.
    fn listener(&self, channel: &str) -> String {
        let prefix = format!("{channel}=");
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let found = self.log().iter().find_map(|line| {
                line.split_whitespace()
                    .map(|word| word.trim_start_matches("listeners="))
                    .find_map(|word| word.strip_prefix(&prefix))
                    .and_then(|url| url.split_once("://"))
                    .map(|(_, addr)| addr.to_owned())
            });
            if let Some(addr) = found {
                return addr;
            }
            assert!(Instant::now() < deadline, "no listener: {:?}", self.log());
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// SIGTERM, then the exit code.
    fn stop(mut self) -> Option<i32> {
        Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap();
        let status = self.child.wait().unwrap();
        // Let the readers take the last lines.
        std::thread::sleep(Duration::from_millis(100));
        status.code()
    }
}

/// MSA-1 of the answer to one MLLP frame.
fn mllp_answer(addr: &str, message: &str) -> String {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    stream.write_all(&[0x0B]).unwrap();
    stream.write_all(message.as_bytes()).unwrap();
    stream.write_all(&[0x1C, 0x0D]).unwrap();
    let mut answer = Vec::new();
    let mut buf = [0u8; 4096];
    while !answer.ends_with(&[0x1C, 0x0D]) {
        let n = stream.read(&mut buf).unwrap();
        assert!(n > 0, "closed without an answer to {message:?}");
        answer.extend_from_slice(&buf[..n]);
    }
    let text = String::from_utf8_lossy(&answer).into_owned();
    let msa = text
        .split('\r')
        .find(|s| s.starts_with("MSA|"))
        .unwrap_or_else(|| panic!("no MSA in {text:?}"));
    msa.split('|').nth(1).unwrap().to_owned()
}

/// The status and body of one HTTP/1.1 request.
fn http(addr: &str, method: &str, target: &str, body: &str) -> (u16, String) {
    let mut stream = TcpStream::connect(addr).unwrap();
    write!(
        stream,
        "{method} {target} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: x-application/hl7-v2+er7\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    let status = answer
        .split_whitespace()
        .nth(1)
        .and_then(|status| status.parse().ok())
        .unwrap_or_else(|| panic!("not an HTTP answer: {answer:?}"));
    let body = answer
        .split_once("\r\n\r\n")
        .map(|(_, body)| body.to_owned())
        .unwrap_or_default();
    (status, body)
}

/// The HTTP status of POSTing `body` to an HTTP source.
fn http_post(addr: &str, body: &str) -> u16 {
    http(addr, "POST", "/", body).0
}

/// A receiver that answers every message AE, quoting the patient back, as some do.
fn quoting_receiver() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { return };
            std::thread::spawn(move || {
                let mut buf = [0u8; 65536];
                let mut frame = Vec::new();
                loop {
                    let Ok(n) = stream.read(&mut buf) else { return };
                    if n == 0 {
                        return;
                    }
                    frame.extend_from_slice(&buf[..n]);
                    while let Some(end) = frame.windows(2).position(|w| w == [0x1C, 0x0D]) {
                        let message = String::from_utf8_lossy(&frame[1..end]).into_owned();
                        frame.drain(..end + 2);
                        let control_id = message.split('|').nth(9).unwrap_or_default().to_owned();
                        let ack = format!(
                            "\x0bMSH|^~\\&|EHR|GHH|ADMIT|GHH|20240102083001||ACK|A{control_id}|P|2.5.1\r\
                             MSA|AE|{control_id}|unknown patient QUILLFEATHER^ZEBEDEE MRN8675309Q\r\
                             ERR|||204^Unknown key identifier^HL70357|E||||PID-3 MRN8675309Q not found\r\x1c\r"
                        );
                        if stream.write_all(ack.as_bytes()).is_err() {
                            return;
                        }
                    }
                }
            });
        }
    });
    addr
}

fn closed_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn count(data: &Path, sql: &str) -> i64 {
    let Ok(db) = rusqlite::Connection::open_with_flags(
        data.join("corridor.db"),
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
    ) else {
        return -1;
    };
    db.query_row(sql, [], |row| row.get(0)).unwrap_or(-1)
}

fn wait_until(what: &str, engine: &Engine, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !done() {
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {what}; log:\n{}",
            engine.log().join("\n")
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn no_log_line_at_the_default_level_holds_the_patient_on_any_path() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let inbox = dir.path().join("in");
    std::fs::create_dir_all(&inbox).unwrap();
    let quoting = quoting_receiver();
    let unreachable = closed_port();
    let config = dir.path().join("corridor.toml");
    std::fs::write(
        &config,
        format!(
            r#"
[http]
listen = "127.0.0.1:0"
auth = "off"

[mpi]
enabled = true

[channels.adt]
source = {{ type = "mllp", listen = "127.0.0.1:0" }}

[channels.adt.validation]
mode = "after_ack"

[channels.adt.fhir]
repository = true

[[channels.adt.destinations]]
name = "unreachable"
type = "mllp"
to = "127.0.0.1:{unreachable}"
retry = {{ max_attempts = 2, initial_backoff = "10ms", max_backoff = "20ms" }}

[[channels.adt.destinations]]
name = "quoting"
type = "mllp"
to = "{quoting}"
retry = {{ max_attempts = 2, initial_backoff = "10ms", max_backoff = "20ms" }}

[[channels.adt.destinations]]
name = "archive"
type = "file"
path = "{archive}"

[channels.web]
source = {{ type = "http", listen = "127.0.0.1:0" }}

[channels.web.validation]
mode = "before_ack"

[channels.drop]
source = {{ type = "directory", path = "{inbox}", poll_interval = "100ms" }}
"#,
            archive = dir.path().join("archive").display(),
            inbox = inbox.display(),
        ),
    )
    .unwrap();
    let engine = Engine::start(&config, &data);
    let mllp = engine.listener("adt");
    let web = engine.listener("web");

    // MLLP: an admission and an update (the index links them), one without its
    // required PV1 (quarantined after the ACK), and three it refuses: no MSH, a bad
    // segment, a header that does not parse.
    assert_eq!(mllp_answer(&mllp, &adt("A01", "PHI-1", true)), "AA");
    assert_eq!(mllp_answer(&mllp, &adt("A08", "PHI-2", true)), "AA");
    assert_eq!(mllp_answer(&mllp, &adt("A01", "PHI-3", false)), "AA");
    assert_eq!(mllp_answer(&mllp, &format!("{PID}\r")), "AR");
    let bad_segment = format!("{}P@D|QUILLFEATHER^ZEBEDEE\r", adt("A01", "PHI-4", true));
    assert_eq!(mllp_answer(&mllp, &bad_segment), "AE");
    let broken_header = adt("A01", "PHI-5", true).replace("MSH|^~\\&|", "MSH|QUILLFEATHER");
    assert_ne!(mllp_answer(&mllp, &broken_header), "AA");

    // HTTP: one accepted, one failing validation before the answer.
    assert_eq!(http_post(&web, &adt("A01", "PHI-6", true)), 200);
    assert_eq!(http_post(&web, &adt("A01", "PHI-7", false)), 422);

    // Directory: one file stored, one with a segment before MSH (to the error folder).
    std::fs::write(inbox.join("good.hl7"), adt("A01", "PHI-8", true)).unwrap();
    std::fs::write(
        inbox.join("bad.hl7"),
        format!("{PID}\r{}", adt("A01", "PHI-9", true)),
    )
    .unwrap();

    wait_until("both files moved", &engine, || {
        inbox.join("done/good.hl7").exists() && inbox.join("error/bad.hl7").exists()
    });
    wait_until("dead letters on both failing destinations", &engine, || {
        count(
            &data,
            "SELECT count(DISTINCT destination) FROM delivery_queue WHERE state = 'dead_lettered'",
        ) == 2
    });
    wait_until("every message processed", &engine, || {
        count(
            &data,
            "SELECT count(*) FROM journal WHERE state = 'received'",
        ) == 0
    });
    assert!(count(&data, "SELECT count(*) FROM quarantine") >= 2);
    assert!(count(&data, "SELECT count(*) FROM fhir_resources") >= 1);
    assert!(count(&data, "SELECT count(*) FROM mpi_events") >= 1);

    // The API, searched by the patient's values the way an analyst searches: found
    // where it is stored, and an unparsable value refused.
    let api = engine.listener("http");
    let (status, found) = http(&api, "GET", "/fhir/Patient?family=QUILLFEATHER", "");
    assert_eq!(status, 200);
    assert!(found.contains("QUILLFEATHER"), "{found}");
    let (status, found) = http(
        &api,
        "GET",
        "/mpi/fhir/Patient?family=QUILLFEATHER&birthdate=1961-04-27",
        "",
    );
    assert_eq!(status, 200, "{found}");
    assert!(found.contains("QUILLFEATHER"), "{found}");
    let (status, _) = http(&api, "GET", "/mpi/fhir/Patient?identifier=MRN8675309Q", "");
    assert_eq!(status, 400);
    let (status, _) = http(&api, "GET", "/fhir/Patient?birthdate=QUILLFEATHER", "");
    assert_eq!(status, 400);
    for path in [
        "/api/messages",
        "/api/stats",
        "/health",
        "/metrics",
        "/mpi/reviews",
    ] {
        assert_eq!(http(&api, "GET", path, "").0, 200, "{path}");
    }

    let lines = engine.lines.clone();
    assert_eq!(engine.stop(), Some(0));
    // Read after the exit, so the shutdown's lines are scanned too.
    let log = lines.lock().unwrap().clone();
    let text = log.join("\n");
    assert!(log.len() >= 10, "too little was logged to judge:\n{text}");
    let leaks: Vec<(&str, &String)> = log
        .iter()
        .flat_map(|line| {
            let upper = line.to_uppercase();
            PHI.iter()
                .filter(move |phi| upper.contains(*phi))
                .map(move |phi| (*phi, line))
        })
        .collect();
    assert!(
        leaks.is_empty(),
        "patient data in {} log line(s): {leaks:#?}",
        leaks.len()
    );
}
