//! Helpers shared by the `send_*` and `receive_*` tests (included with
//! `#[path]`): the built binary, python-hl7 in a venv made from PyPI, message
//! files, a throw-away PKI made with rcgen, and in-test MLLP servers.

#![allow(dead_code)]

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use rcgen::{BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair};

pub fn workspace() -> PathBuf {
    // Lexical parent of parent: the venv records its path as given.
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .nth(2)
        .unwrap()
        .to_owned()
}

pub fn corridor() -> Command {
    Command::new(env!("CARGO_BIN_EXE_corridor"))
}

/// Runs `corridor send` with `args`, at most `limit`.
pub fn send(args: &[&str], limit: Duration) -> Output {
    let child = corridor()
        .arg("send")
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_output(child, limit)
}

/// Starts `corridor send` over 4 connections (10 s timeout) of `file` to `addr`, its
/// output piped, for a test that kills the engine while it sends.
pub fn send_in_background(addr: &str, file: &Path) -> std::process::Child {
    corridor()
        .args([
            "send",
            "--connections",
            "4",
            "--timeout",
            "10",
            "--to",
            addr,
        ])
        .arg(file)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// Waits for `child` at most `limit` (then kills it and fails the test).
pub fn wait_output(child: std::process::Child, limit: Duration) -> Output {
    let id = child.id();
    let (done, finished) = std::sync::mpsc::channel();
    let waiter = std::thread::spawn(move || {
        let output = child.wait_with_output();
        let _ = done.send(());
        output
    });
    if finished.recv_timeout(limit).is_err() {
        let _ = Command::new("kill").args(["-9", &id.to_string()]).status();
        panic!("process {id} did not finish within {limit:?}");
    }
    waiter.join().unwrap().unwrap()
}

pub fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// The control ids of the lines `AA <id>` (or `CA <id>`) of `corridor send`.
pub fn accepted_ids(stdout: &[u8]) -> Vec<String> {
    text(stdout)
        .lines()
        .filter_map(|line| {
            let (code, id) = line.split_once(' ')?;
            (code == "AA" || code == "CA").then(|| id.to_owned())
        })
        .collect()
}

/// A small ORU^R01 with control id `id`; segments end in CR.
/// After a crash and a restart: sends the messages of `all` that the first run did
/// not acknowledge again to `addr`, adding those now acknowledged to `acknowledged`.
pub fn resend_unacknowledged(
    dir: &Path,
    addr: &str,
    all: &[String],
    acknowledged: &mut BTreeSet<String>,
) {
    let remaining: Vec<String> = all
        .iter()
        .filter(|id| !acknowledged.contains(*id))
        .cloned()
        .collect();
    if remaining.is_empty() {
        return;
    }
    let file = message_file(dir, "rest.hl7", &remaining);
    let output = wait_output(send_in_background(addr, &file), Duration::from_secs(120));
    assert!(output.status.success(), "resend: {}", text(&output.stderr));
    acknowledged.extend(accepted_ids(&output.stdout));
}

/// Waits until `destination` has received every acknowledged message, failing after
/// `limit` with how many never arrived.
pub fn wait_until_received(
    destination: &TestServer,
    acknowledged: &BTreeSet<String>,
    limit: Duration,
) {
    let deadline = Instant::now() + limit;
    loop {
        let got: BTreeSet<String> = destination.all_received().into_iter().collect();
        if acknowledged.is_subset(&got) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{} acknowledged messages never reached the destination",
            acknowledged.difference(&got).count()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

pub fn oru(id: &str) -> String {
    format!(
        "MSH|^~\\&|LAB|HOSP|EHR|HOSP|20240102083000||ORU^R01|{id}|P|2.5.1\r\
         PID|1||12345^^^HOSP^MR||DOE^JANE||19800101|F\r\
         OBR|1||ACC{id}|CBC^Blood count^L\r\
         OBX|1|NM|WBC^White cells^LN||7.5|10*3/uL|4.0-11.0|N|||F\r"
    )
}

/// Writes the messages with the given ids to `dir/name`, one after another.
pub fn message_file(dir: &Path, name: &str, ids: &[String]) -> PathBuf {
    let path = dir.join(name);
    let body: String = ids.iter().map(|id| oru(id)).collect();
    std::fs::write(&path, body).unwrap();
    path
}

/// The 1.5 KB ORU used by the benchmarks.
pub fn oru_1500() -> PathBuf {
    workspace().join("crates/hl7v2/tests/data/oru_r01_1500.hl7")
}

/// The venv's python, with python-hl7 installed from PyPI (once).
pub fn python_with_hl7() -> PathBuf {
    test_support::python_peer("hl7")
}

/// A certificate authority and the certificates it issued, as PEM files.
pub struct Pki {
    pub dir: tempfile::TempDir,
    ca_cert: rcgen::Certificate,
    ca_key: KeyPair,
    pub ca_path: PathBuf,
}

/// Paths of a certificate and its key.
pub struct Issued {
    pub cert_path: PathBuf,
    pub key_path: PathBuf,
}

impl Pki {
    pub fn new(ca_name: &str) -> Pki {
        let dir = tempfile::tempdir().unwrap();
        let ca_key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, ca_name);
        let ca_cert = params.self_signed(&ca_key).unwrap();
        let ca_path = dir.path().join("ca.pem");
        std::fs::write(&ca_path, ca_cert.pem()).unwrap();
        Pki {
            dir,
            ca_cert,
            ca_key,
            ca_path,
        }
    }

    fn issue(&self, stem: &str, params: CertificateParams) -> Issued {
        let key = KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &self.ca_cert, &self.ca_key).unwrap();
        let cert_path = self.dir.path().join(format!("{stem}.pem"));
        let key_path = self.dir.path().join(format!("{stem}.key"));
        std::fs::write(&cert_path, cert.pem()).unwrap();
        std::fs::write(&key_path, key.serialize_pem()).unwrap();
        Issued {
            cert_path,
            key_path,
        }
    }

    /// A server certificate for localhost and 127.0.0.1.
    pub fn server(&self) -> Issued {
        let mut params =
            CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()]).unwrap();
        params
            .distinguished_name
            .push(DnType::CommonName, "corridor-test");
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        self.issue("server", params)
    }

    /// A client certificate whose subject is `CN=<cn>,O=<org>`.
    pub fn client(&self, cn: &str, org: &str) -> Issued {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.distinguished_name = rcgen::DistinguishedName::new();
        params
            .distinguished_name
            .push(DnType::OrganizationName, org);
        params.distinguished_name.push(DnType::CommonName, cn);
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        self.issue(&format!("client-{cn}"), params)
    }
}

/// What an in-test MLLP server answers to one message.
#[derive(Clone, Copy, Debug)]
pub enum Answer {
    /// AA with MSA-2 = the message's MSH-10.
    Accept,
    /// AE with MSA-2 = MSH-10 and MSA-3 "rejected by test".
    Reject,
    /// AA naming another message.
    WrongId,
    /// Nothing at all.
    Silence,
    /// AA, as `Accept`, after holding the connection for the given time.
    AcceptAfter(std::time::Duration),
}

/// An ACK for `message` with `code`, MSA-2 `acknowledged`, built with hl7v2.
pub fn ack_for(message: &[u8], code: hl7v2::AckCode, acknowledged: Option<&str>) -> Vec<u8> {
    let parsed = hl7v2::Message::parse(message).unwrap();
    let ack = hl7v2::AckBuilder::new(&parsed, code).build();
    match acknowledged {
        None => ack,
        Some(other) => {
            let mut owned = hl7v2::OwnedMessage::parse(&ack).unwrap();
            owned.set_text(&"MSA-2".parse().unwrap(), other).unwrap();
            owned.to_bytes()
        }
    }
}

/// Received control ids, per connection, in arrival order.
pub type Received = std::sync::Arc<Mutex<std::collections::BTreeMap<u64, Vec<String>>>>;

/// An MLLP server (the `mllp` crate) on 127.0.0.1 that answers each message
/// with `answer(control id)` and records what each connection received.
pub struct TestServer {
    pub addr: String,
    pub received: Received,
    pub stats: mllp::StatsReader,
    runtime: tokio::runtime::Runtime,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
}

struct Recording<F> {
    answer: F,
    received: Received,
}

impl<F: Fn(&str) -> Answer + Send + Sync + 'static> mllp::FrameHandler for Recording<F> {
    async fn on_frame(
        &self,
        frame: bytes::Bytes,
        conn: &mllp::ConnectionInfo,
    ) -> Vec<bytes::Bytes> {
        let id = hl7v2::Message::parse(&frame)
            .map(|m| m.control_id().into_owned())
            .unwrap_or_default();
        self.received
            .lock()
            .unwrap()
            .entry(conn.id.0)
            .or_default()
            .push(id.clone());
        let ack = match (self.answer)(&id) {
            Answer::Accept => ack_for(&frame, hl7v2::AckCode::AA, None),
            Answer::Reject => {
                let parsed = hl7v2::Message::parse(&frame).unwrap();
                hl7v2::AckBuilder::new(&parsed, hl7v2::AckCode::AE)
                    .text("rejected by test")
                    .build()
            }
            Answer::WrongId => ack_for(&frame, hl7v2::AckCode::AA, Some("SOMETHING-ELSE")),
            Answer::Silence => return vec![],
            Answer::AcceptAfter(delay) => {
                tokio::time::sleep(delay).await;
                ack_for(&frame, hl7v2::AckCode::AA, None)
            }
        };
        vec![bytes::Bytes::from(ack)]
    }
}

impl TestServer {
    pub fn start(
        config: mllp::MllpServerConfig,
        answer: impl Fn(&str) -> Answer + Send + Sync + 'static,
    ) -> TestServer {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let received = Received::default();
        let handler = Recording {
            answer,
            received: received.clone(),
        };
        let (shutdown, stop) = tokio::sync::oneshot::channel::<()>();
        let server = runtime
            .block_on(mllp::MllpServer::bind("test", config))
            .unwrap();
        let addr = server.local_addr().to_string();
        let stats = server.stats_reader();
        runtime.spawn(server.run_until(handler, async move {
            let _ = stop.await;
        }));
        TestServer {
            addr,
            received,
            stats,
            runtime,
            shutdown: Some(shutdown),
        }
    }

    pub fn plain(answer: impl Fn(&str) -> Answer + Send + Sync + 'static) -> TestServer {
        TestServer::start(mllp::MllpServerConfig::new("127.0.0.1:0"), answer)
    }

    /// Every control id received, over all connections.
    pub fn all_received(&self) -> Vec<String> {
        self.received
            .lock()
            .unwrap()
            .values()
            .flatten()
            .cloned()
            .collect()
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
        let _ = &self.runtime;
    }
}

/// `corridor run` as a child process on a data directory, with its stderr
/// (the log) collected line by line.
pub struct Run {
    child: std::process::Child,
    /// The MLLP listener of channel `lab`.
    pub addr: String,
    pub data: PathBuf,
    log: std::sync::Arc<Mutex<String>>,
    /// Time from spawning to the "corridor is listening" line.
    pub started_in: Duration,
}

/// A configuration with one channel `lab` on a free port, HTTP off, and
/// `extra` appended inside the source table (`, read_timeout = "2s"`).
pub fn lab_config(extra: &str) -> String {
    format!(
        "[http]\nenabled = false\n[channels.lab]\nsource = {{ type = \"mllp\", listen = \"127.0.0.1:0\"{extra} }}\n"
    )
}

/// The one log line containing `needle` that names `peer` (the hostile tests' case
/// connections), waiting up to 10 s; fails on none or several.
pub fn line_for(run: &Run, needle: &str, peer: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let lines: Vec<String> = run
            .log()
            .lines()
            .filter(|l| l.contains(needle) && l.split_whitespace().any(|w| w == peer))
            .map(str::to_owned)
            .collect();
        if lines.len() == 1 {
            return lines[0].clone();
        }
        assert!(
            lines.len() < 2,
            "more than one {needle:?} line for {peer}: {lines:?}"
        );
        assert!(
            Instant::now() < deadline,
            "no {needle:?} line for {peer} in:\n{}",
            run.log()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

impl Run {
    /// Starts `corridor run --data DATA --config DATA/../NAME.toml` and waits
    /// until it listens.
    pub fn start(data: &Path, config: &str) -> Run {
        Run::start_command(corridor(), data, config, &[])
    }

    /// [`Run::start`] with more environment variables for the process.
    pub fn start_with_env(data: &Path, config: &str, env: &[(&str, std::ffi::OsString)]) -> Run {
        Run::start_command(corridor(), data, config, env)
    }

    /// Like [`Run::start`], with the engine's open-file limit (soft and hard) set to
    /// `limit` by the shell that starts it.
    pub fn start_with_open_files(data: &Path, config: &str, limit: u64) -> Run {
        let mut command = Command::new("sh");
        command.args([
            "-c",
            &format!("ulimit -n {limit} && exec \"$0\" \"$@\""),
            env!("CARGO_BIN_EXE_corridor"),
        ]);
        Run::start_command(command, data, config, &[])
    }

    fn start_command(
        mut command: Command,
        data: &Path,
        config: &str,
        env: &[(&str, std::ffi::OsString)],
    ) -> Run {
        let config_path = data.with_extension("toml");
        std::fs::write(&config_path, config).unwrap();
        let started = Instant::now();
        let mut child = command
            .arg("run")
            .arg("--data")
            .arg(data)
            .arg("--config")
            .arg(&config_path)
            .env("RUST_LOG", "info")
            .envs(env.iter().map(|(k, v)| (k, v)))
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let log = std::sync::Arc::new(Mutex::new(String::new()));
        let (ready, listening) = std::sync::mpsc::channel::<String>();
        let stderr = child.stderr.take().unwrap();
        let collected = log.clone();
        std::thread::spawn(move || {
            use std::io::BufRead;
            for line in std::io::BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                if let Some(at) = line
                    .find("lab=mllp://")
                    .or_else(|| line.find("lab=mllps://"))
                {
                    let rest = &line[at..];
                    let addr = rest[rest.find("://").unwrap() + 3..]
                        .split_whitespace()
                        .next()
                        .unwrap()
                        .to_owned();
                    let _ = ready.send(addr);
                }
                let mut log = collected.lock().unwrap();
                log.push_str(&line);
                log.push('\n');
            }
        });
        let addr = match listening.recv_timeout(Duration::from_secs(30)) {
            Ok(addr) => addr,
            Err(_) => {
                let _ = child.kill();
                panic!("corridor run did not listen: {}", log.lock().unwrap());
            }
        };
        Run {
            child,
            addr,
            data: data.to_owned(),
            log,
            started_in: started.elapsed(),
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Everything logged so far.
    pub fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    /// Log lines containing `needle`, waiting up to 5 s for at least one.
    pub fn log_lines(&self, needle: &str) -> Vec<String> {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let lines: Vec<String> = self
                .log()
                .lines()
                .filter(|l| l.contains(needle))
                .map(str::to_owned)
                .collect();
            if !lines.is_empty() || Instant::now() > deadline {
                return lines;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Resident memory in KiB (VmRSS of /proc/PID/status).
    pub fn rss_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid())).unwrap();
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap()
    }

    /// Waits up to `limit` for the process to exit on its own; None if it still runs.
    pub fn wait_for_exit(&mut self, limit: Duration) -> Option<std::process::ExitStatus> {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return Some(status);
            }
            if Instant::now() > deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// SIGKILL: no chance to finish anything.
    pub fn kill(mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }

    /// SIGTERM, then wait for the exit; returns the exit code.
    pub fn terminate(mut self) -> Option<i32> {
        Command::new("kill")
            .args(["-TERM", &self.pid().to_string()])
            .status()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status.code();
            }
            assert!(Instant::now() < deadline, "corridor run ignored SIGTERM");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Run {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The journal of a data directory: (control id, state, TLS identity) of each row.
pub fn journal(data: &Path) -> Vec<(String, String, Option<String>)> {
    let db = rusqlite::Connection::open_with_flags(
        data.join("corridor.db"),
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
    )
    .unwrap();
    let mut query = db
        .prepare("SELECT control_id, state, tls_identity FROM journal ORDER BY id")
        .unwrap();
    query
        .query_map([], |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect()
}

/// The control ids of channel `channel`'s journal rows, in journal order.
pub fn journal_of(data: &Path, channel: &str) -> Vec<String> {
    let db = rusqlite::Connection::open_with_flags(
        data.join("corridor.db"),
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
    )
    .unwrap();
    let mut query = db
        .prepare("SELECT control_id FROM journal WHERE channel = ?1 ORDER BY id")
        .unwrap();
    query
        .query_map([channel], |row| row.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect()
}

/// The number of journal rows, read while the engine may be writing.
pub fn journal_len(data: &Path) -> u64 {
    let Ok(db) = rusqlite::Connection::open_with_flags(
        data.join("corridor.db"),
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
    ) else {
        return 0;
    };
    db.query_row("SELECT count(*) FROM journal", [], |row| row.get(0))
        .unwrap_or(0)
}
