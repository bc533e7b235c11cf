//! The first start of `corridor run` on an empty data directory: it creates the user
//! `admin` and a token, prints the token once on stderr with how to use it, writes it to
//! a file only its owner reads, and that token opens the API while a request without it
//! gets 401. A second start creates nothing. Also: `[http] auth = "off"` is refused off
//! loopback, naming the key.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::SocketAddr;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

struct Running {
    child: Child,
    lines: mpsc::Receiver<String>,
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `corridor run --config config`; returns it, the HTTP address and every
/// stderr line up to and including the first-start notice (or the ready line when
/// there is none).
fn start(config: &Path) -> (Running, SocketAddr, Vec<String>) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_corridor"))
        .args(["run", "--config", config.to_str().unwrap()])
        .env("RUST_LOG", "info")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let running = Running { child, lines: rx };
    let mut seen = Vec::new();
    let mut http = None;
    // The notice follows the ready line; wait for its last line, or a moment after the
    // ready line when no notice comes.
    loop {
        let wait = if http.is_some() {
            Duration::from_secs(2)
        } else {
            Duration::from_secs(20)
        };
        match running.lines.recv_timeout(wait) {
            Ok(line) => {
                if let Some(at) = line.find("http=http://") {
                    let rest = &line[at + "http=http://".len()..];
                    let addr = rest.split_whitespace().next().unwrap();
                    http = Some(addr.parse::<SocketAddr>().unwrap());
                }
                let done = line.contains("then delete that file");
                seen.push(line);
                if done {
                    break;
                }
            }
            Err(_) if http.is_some() => break,
            Err(_) => panic!("corridor did not start: {seen:#?}"),
        }
    }
    let http = http.unwrap_or_else(|| panic!("no HTTP address: {seen:#?}"));
    (running, http, seen)
}

/// GET `path` with an optional `Authorization` value; the status and the whole answer.
fn get(addr: SocketAddr, path: &str, authorization: Option<&str>) -> (u16, String) {
    let mut stream = std::net::TcpStream::connect(addr).unwrap();
    let auth = authorization
        .map(|a| format!("Authorization: {a}\r\n"))
        .unwrap_or_default();
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: test\r\n{auth}Connection: close\r\n\r\n"
    )
    .unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    let status = answer.split_whitespace().nth(1).unwrap().parse().unwrap();
    (status, answer)
}

fn write_config(dir: &Path, http: &str) -> std::path::PathBuf {
    let path = dir.join("corridor.toml");
    std::fs::write(
        &path,
        format!(
            "[data]\ndir = {:?}\n[http]\n{http}\n[channels.lab]\nsource = {{ type = \"mllp\", listen = \"127.0.0.1:0\" }}\n",
            dir.join("data").display().to_string()
        ),
    )
    .unwrap();
    path
}

#[test]
fn the_first_start_prints_an_admin_token_that_opens_the_api() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), "listen = \"127.0.0.1:0\"");
    let (running, http, lines) = start(&config);
    let text = lines.join("\n");
    let token = lines
        .iter()
        .map(|l| l.trim())
        .find(|l| l.starts_with("crd_"))
        .unwrap_or_else(|| panic!("no token printed: {text}"))
        .to_owned();
    assert!(
        text.contains(&format!(
            "curl -H \"Authorization: Bearer {token}\" http://{http}/api/stats"
        )),
        "{text}"
    );
    // The file holds the same token, readable only by its owner.
    let file = dir.path().join("data").join("admin-token");
    assert!(text.contains(&file.display().to_string()), "{text}");
    assert_eq!(std::fs::read_to_string(&file).unwrap().trim(), token);
    let mode = std::fs::metadata(&file).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);

    let (status, answer) = get(http, "/api/stats", Some(&format!("Bearer {token}")));
    assert_eq!(status, 200, "{answer}");
    let (status, answer) = get(http, "/api/stats", None);
    assert_eq!(status, 401, "{answer}");
    assert!(
        answer.contains("WWW-Authenticate: Bearer") || answer.contains("www-authenticate: Bearer"),
        "{answer}"
    );
    assert!(answer.contains("\"error\""), "{answer}");
    let (status, _) = get(http, "/api/stats", Some("Bearer crd_not-a-real-token"));
    assert_eq!(status, 401);
    let (status, _) = get(http, "/health", None);
    assert_eq!(status, 200);
    drop(running);

    // A second start finds the user and creates nothing.
    let (running, http, lines) = start(&config);
    assert!(
        !lines.iter().any(|l| l.trim().starts_with("crd_")),
        "{lines:#?}"
    );
    let (status, _) = get(http, "/api/stats", Some(&format!("Bearer {token}")));
    assert_eq!(status, 200);
    drop(running);
}

#[test]
fn auth_off_is_refused_off_loopback_naming_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), "listen = \"0.0.0.0:0\"\nauth = \"off\"");
    let out = Command::new(env!("CARGO_BIN_EXE_corridor"))
        .args(["run", "--config", config.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("http.auth"), "{err}");
    assert!(err.contains("loopback"), "{err}");
}

#[test]
fn auth_off_on_loopback_starts_with_a_warning_and_answers_without_credentials() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), "listen = \"127.0.0.1:0\"\nauth = \"off\"");
    let (running, http, lines) = start(&config);
    let text = lines.join("\n");
    assert!(text.contains("http.auth is off"), "{text}");
    assert!(
        !lines.iter().any(|l| l.trim().starts_with("crd_")),
        "{text}"
    );
    let (status, answer) = get(http, "/api/stats", None);
    assert_eq!(status, 200, "{answer}");
    drop(running);
}
