//! `SIGHUP` on a running `corridor run`: the configuration file is read again and
//! applied without a restart. An added channel listens, a connection to an unchanged
//! one stays open and keeps being answered, the history records the file as applied by
//! `SIGHUP`, the audit trail records the reload, and a broken file is refused with its
//! key in the log while traffic goes on.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use store::rusqlite::{Connection, OpenFlags};

struct Corridor {
    child: Child,
    log: Arc<Mutex<Vec<String>>>,
}

impl Drop for Corridor {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Corridor {
    fn start(config: &Path) -> Corridor {
        let mut child = Command::new(env!("CARGO_BIN_EXE_corridor"))
            .args(["run", "--config", config.to_str().unwrap()])
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stderr = child.stderr.take().unwrap();
        let log = Arc::new(Mutex::new(Vec::new()));
        let lines = log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                lines.lock().unwrap().push(line);
            }
        });
        Corridor { child, log }
    }

    /// Waits for the first log line containing `what` after the first `skip` lines;
    /// returns it and its index.
    fn wait_for_line(&self, what: &str, skip: usize) -> (usize, String) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            {
                let log = self.log.lock().unwrap();
                if let Some((i, line)) = log
                    .iter()
                    .enumerate()
                    .skip(skip)
                    .find(|(_, l)| l.contains(what))
                {
                    return (i, line.clone());
                }
            }
            assert!(
                Instant::now() < deadline,
                "no log line with {what:?}: {:#?}",
                self.log.lock().unwrap()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn hangup(&self) {
        let status = Command::new("kill")
            .args(["-HUP", &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
    }
}

/// The address of `channel` in a log line listing `channel=mllp://ADDR`.
fn listener_in(line: &str, channel: &str) -> SocketAddr {
    let prefix = format!("{channel}=mllp://");
    let at = line
        .find(&prefix)
        .unwrap_or_else(|| panic!("{prefix} in {line}"));
    line[at + prefix.len()..]
        .split(|c: char| c.is_whitespace() || c == '"')
        .next()
        .unwrap()
        .parse()
        .unwrap()
}

/// Sends one MLLP frame and reads the answer's MSA-1.
fn send(stream: &mut TcpStream, control: &str) -> String {
    let message =
        format!("MSH|^~\\&|LAB|NORTH|EHR|NORTH|20260101120000||ORU^R01|{control}|P|2.5.1\rPID|1\r");
    let mut frame = vec![0x0b];
    frame.extend_from_slice(message.as_bytes());
    frame.extend_from_slice(&[0x1c, 0x0d]);
    stream.write_all(&frame).unwrap();
    let mut answer = Vec::new();
    let mut byte = [0u8; 1];
    while !answer.ends_with(&[0x1c, 0x0d]) {
        let n = stream.read(&mut byte).unwrap();
        assert_eq!(n, 1, "the connection was closed");
        answer.push(byte[0]);
    }
    let text = String::from_utf8_lossy(&answer).into_owned();
    let msa = text.split('\r').find(|s| s.starts_with("MSA|")).unwrap();
    msa.split('|').nth(1).unwrap().to_owned()
}

fn write_config(path: &Path, data: &Path, channels: &str) {
    std::fs::write(
        path,
        format!(
            "[data]\ndir = {:?}\n[http]\nlisten = \"127.0.0.1:0\"\n{channels}",
            data.display().to_string()
        ),
    )
    .unwrap();
}

const LAB: &str = "[channels.lab]\nsource = { type = \"mllp\", listen = \"127.0.0.1:0\" }\n";
const ADT: &str = "[channels.adt]\nsource = { type = \"mllp\", listen = \"127.0.0.1:0\" }\n";

#[test]
fn sighup_applies_the_changed_file_and_refuses_a_broken_one() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let config = dir.path().join("corridor.toml");
    write_config(&config, &data, LAB);
    let corridor = Corridor::start(&config);
    let (_, ready) = corridor.wait_for_line("corridor is listening", 0);
    let lab = listener_in(&ready, "lab");
    let mut to_lab = TcpStream::connect(lab).unwrap();
    to_lab
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    assert_eq!(send(&mut to_lab, "1"), "AA");

    // A channel is added.
    write_config(&config, &data, &format!("{LAB}{ADT}"));
    corridor.hangup();
    let (at, reloaded) = corridor.wait_for_line("configuration reloaded", 0);
    assert!(
        reloaded.contains("by=\"SIGHUP\"") || reloaded.contains("by=SIGHUP"),
        "{reloaded}"
    );
    assert!(reloaded.contains("added=[\"adt\"]"), "{reloaded}");
    // The unchanged channel's connection is still open and answered.
    assert_eq!(send(&mut to_lab, "2"), "AA");
    let (_, listening) = corridor.wait_for_line("listening after the reload", at);
    let adt = listener_in(&listening, "adt");
    let mut to_adt = TcpStream::connect(adt).unwrap();
    to_adt
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    assert_eq!(send(&mut to_adt, "3"), "AA");

    // A broken file is refused, naming its key; the running configuration stays.
    write_config(
        &config,
        &data,
        &format!("{LAB}{ADT}[channels.adt.retention]\nkeep = \"forever and a day\"\n"),
    );
    corridor.hangup();
    let (_, refused) = corridor.wait_for_line("configuration reload refused", at);
    assert!(refused.contains("channels.adt.retention"), "{refused}");
    assert_eq!(send(&mut to_lab, "4"), "AA");
    assert_eq!(send(&mut to_adt, "5"), "AA");

    // The history: the start, then the file as applied by SIGHUP, with its diff.
    let db =
        Connection::open_with_flags(data.join("corridor.db"), OpenFlags::SQLITE_OPEN_READ_ONLY)
            .unwrap();
    let versions: Vec<(String, String)> = db
        .prepare("SELECT applied_by, diff FROM config_versions ORDER BY n")
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(versions.len(), 2, "{versions:?}");
    assert_eq!(versions[0].0, "start");
    assert_eq!(versions[1].0, "SIGHUP");
    assert!(
        versions[1].1.contains("+[channels.adt]"),
        "{}",
        versions[1].1
    );
    // Both reloads are in the audit trail, the refused one as failed. The records are
    // written to the audit file at once and folded into `audit_log` within 500 ms
    // (docs/security.md, "How durable the audit trail is").
    let read_audited = || -> Vec<(String, String)> {
        db.prepare("SELECT actor, outcome FROM audit_log WHERE action = 'SIGHUP config reload' ORDER BY seq")
            .unwrap()
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap()
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut audited = read_audited();
    while audited.len() < 2 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
        audited = read_audited();
    }
    assert_eq!(audited.len(), 2, "{audited:?}");
    assert_eq!(audited[0].0, "corridor");
    assert_ne!(audited[0].1, audited[1].1, "{audited:?}");
}
