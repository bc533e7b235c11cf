//! Alerts end to end, over real sockets: a downstream MLLP listener that stops and comes
//! back, a webhook receiver (axum), an SMTP sink with STARTTLS and authentication
//! (aiosmtpd, in a venv this test makes under target/) and an MLLP pager. Stopping the
//! listener gives exactly one "firing" notification on each notifier within the
//! configured time; its restart exactly one "resolved"; nothing in between. The e-mail
//! destination sends through the same sink.

mod common;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{Api, oru_with_value, send_all, start_engine, wait_for};
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::task::JoinHandle;

/// An SMTP sink: STARTTLS required, AUTH required after it, each mail written to a file
/// as one JSON line (subject, body, attachments).
const SMTP_SINK: &str = r#"
import asyncio, email, json, ssl, sys, time
from email import policy
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult

port, cert, key, out, user, password = sys.argv[1:7]

class Sink:
    async def handle_DATA(self, server, session, envelope):
        message = email.message_from_bytes(envelope.content, policy=policy.default)
        body, attachments = "", []
        for part in message.walk():
            if part.is_multipart():
                continue
            if part.get_filename():
                attachments.append({"filename": part.get_filename(),
                                    "content": part.get_payload(decode=True).decode("latin-1")})
            elif part.get_content_type() == "text/plain":
                body += part.get_content()
        with open(out, "a") as f:
            f.write(json.dumps({"from": envelope.mail_from, "to": envelope.rcpt_tos,
                                "tls": session.ssl is not None,
                                "subject": str(message["subject"]), "body": body,
                                "attachments": attachments}) + "\n")
        return "250 OK"

def authenticate(server, session, envelope, mechanism, auth_data):
    ok = auth_data.login == user.encode() and auth_data.password == password.encode()
    return AuthResult(success=ok)

context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
context.load_cert_chain(cert, key)
controller = Controller(Sink(), hostname="127.0.0.1", port=int(port), tls_context=context,
                        require_starttls=True, authenticator=authenticate, auth_require_tls=True)
controller.start()
print("READY", flush=True)
while True:
    time.sleep(3600)
"#;

/// A running SMTP sink; killed when dropped.
struct SmtpSink {
    child: Child,
    port: u16,
    out: PathBuf,
}

impl Drop for SmtpSink {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl SmtpSink {
    /// Starts the sink with a certificate for 127.0.0.1 that `dir/smtp-ca.pem` holds,
    /// and the password `dir/smtp-password`.
    fn start(dir: &Path) -> SmtpSink {
        let python = test_support::python_peer("aiosmtpd");
        let key = rcgen::KeyPair::generate().unwrap();
        let params =
            rcgen::CertificateParams::new(vec!["127.0.0.1".into(), "localhost".into()]).unwrap();
        let cert = params.self_signed(&key).unwrap();
        std::fs::write(dir.join("smtp-ca.pem"), cert.pem()).unwrap();
        std::fs::write(dir.join("smtp-key.pem"), key.serialize_pem()).unwrap();
        std::fs::write(dir.join("smtp-password"), "s3cret\n").unwrap();
        std::fs::write(dir.join("smtp_sink.py"), SMTP_SINK).unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let out = dir.join("mails.jsonl");
        let mut child = Command::new(python)
            .arg(dir.join("smtp_sink.py"))
            .arg(port.to_string())
            .arg(dir.join("smtp-ca.pem"))
            .arg(dir.join("smtp-key.pem"))
            .arg(&out)
            .args(["corridor", "s3cret"])
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let mut ready = [0u8; 5];
        std::io::Read::read_exact(child.stdout.as_mut().unwrap(), &mut ready).unwrap();
        assert_eq!(&ready, b"READY");
        SmtpSink { child, port, out }
    }

    /// The `smtp = {...}` of a notifier or destination sending here.
    fn smtp_toml(&self) -> String {
        format!(
            "{{ host = \"127.0.0.1\", port = {}, security = \"starttls\", username = \"corridor\", password_file = \"smtp-password\", ca = \"smtp-ca.pem\", timeout = \"5s\" }}",
            self.port
        )
    }

    fn mails(&self) -> Vec<Value> {
        std::fs::read_to_string(&self.out)
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }
}

/// An MLLP listener that acknowledges every frame with AA (or the code set by
/// [`MllpPeer::answer_with`]) and keeps what it got.
struct MllpPeer {
    addr: SocketAddr,
    got: Arc<Mutex<Vec<String>>>,
    code: Arc<Mutex<&'static str>>,
    task: Option<JoinHandle<()>>,
}

impl MllpPeer {
    async fn start(addr: &str) -> MllpPeer {
        let listener = tokio::net::TcpListener::bind(addr).await.unwrap();
        let addr = listener.local_addr().unwrap();
        let got = Arc::new(Mutex::new(Vec::new()));
        let code = Arc::new(Mutex::new("AA"));
        let task = tokio::spawn(accept(listener, got.clone(), code.clone()));
        MllpPeer {
            addr,
            got,
            code,
            task: Some(task),
        }
    }

    /// Answers every frame from now on with MSA-1 `code` (`AE`: a NAK).
    fn answer_with(&self, code: &'static str) {
        *self.code.lock().unwrap() = code;
    }

    /// Closes the listener and every connection.
    async fn stop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
            let _ = task.await;
        }
    }

    /// Listens again on the same port.
    async fn restart(&mut self) {
        let listener = tokio::net::TcpListener::bind(self.addr).await.unwrap();
        self.task = Some(tokio::spawn(accept(
            listener,
            self.got.clone(),
            self.code.clone(),
        )));
    }

    fn got(&self) -> Vec<String> {
        self.got.lock().unwrap().clone()
    }
}

async fn accept(
    listener: tokio::net::TcpListener,
    got: Arc<Mutex<Vec<String>>>,
    code: Arc<Mutex<&'static str>>,
) {
    // Owned here: aborting this task drops every connection with it.
    let mut connections = tokio::task::JoinSet::new();
    loop {
        let Ok((mut stream, _)) = listener.accept().await else {
            return;
        };
        let (got, code) = (got.clone(), code.clone());
        connections.spawn(async move {
            let mut buffer = Vec::new();
            let mut chunk = [0u8; 4096];
            loop {
                let Ok(n) = stream.read(&mut chunk).await else {
                    return;
                };
                if n == 0 {
                    return;
                }
                buffer.extend_from_slice(&chunk[..n]);
                while let Some(end) = buffer.windows(2).position(|w| w == [0x1c, 0x0d]) {
                    let frame: Vec<u8> = buffer.drain(..end + 2).collect();
                    let payload = &frame[1..frame.len() - 2];
                    let control = hl7v2::Message::parse(payload)
                        .map(|m| m.control_id().into_owned())
                        .unwrap_or_default();
                    got.lock()
                        .unwrap()
                        .push(String::from_utf8_lossy(payload).into_owned());
                    let code = *code.lock().unwrap();
                    let ack = format!(
                        "\x0bMSH|^~\\&|PEER|PEER|CORRIDOR|CORRIDOR|20260101000000||ACK|A{control}|P|2.5.1\rMSA|{code}|{control}\r\x1c\r"
                    );
                    if stream.write_all(ack.as_bytes()).await.is_err() {
                        return;
                    }
                }
            }
        });
    }
}

/// A webhook receiver: every JSON body POSTed to `/alerts`.
async fn webhook() -> (SocketAddr, Arc<Mutex<Vec<Value>>>) {
    let got = Arc::new(Mutex::new(Vec::new()));
    let keep = got.clone();
    let app = axum::Router::new().route(
        "/alerts",
        axum::routing::post(move |axum::Json(body): axum::Json<Value>| {
            let keep = keep.clone();
            async move {
                keep.lock().unwrap().push(body);
                "ok"
            }
        }),
    );
    (common::serve(app).await, got)
}

/// The notifications' states seen by each notifier: webhook, mail, pager.
fn seen(
    hook: &Mutex<Vec<Value>>,
    sink: &SmtpSink,
    pager: &MllpPeer,
) -> (Vec<String>, Vec<String>, Vec<String>) {
    let hook = hook
        .lock()
        .unwrap()
        .iter()
        .map(|n| n["state"].as_str().unwrap().to_owned())
        .collect();
    let mail = sink
        .mails()
        .iter()
        .map(|m| {
            let subject = m["subject"].as_str().unwrap();
            if subject.contains("FIRING") {
                "firing"
            } else {
                "resolved"
            }
            .to_owned()
        })
        .collect();
    let pager = pager
        .got()
        .iter()
        .map(|m| {
            let obx = m
                .split('\r')
                .find(|s| s.starts_with("OBX"))
                .unwrap()
                .to_owned();
            if obx.contains("|FIRING: ") {
                "firing"
            } else {
                "resolved"
            }
            .to_owned()
        })
        .collect();
    (hook, mail, pager)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopped_listener_fires_once_on_every_notifier_and_its_restart_resolves_once() {
    let dir = tempfile::tempdir().unwrap();
    let sink = SmtpSink::start(dir.path());
    let (hook_addr, hook) = webhook().await;
    let pager = MllpPeer::start("127.0.0.1:0").await;
    let mut ehr = MllpPeer::start("127.0.0.1:0").await;
    let toml = format!(
        r#"
[alerting]
interval = "200ms"
[alerting.notifiers.hook]
type = "webhook"
url = "http://{hook_addr}/alerts"
[alerting.notifiers.mail]
type = "email"
smtp = {smtp}
from = "Corridor <corridor@example.org>"
recipients = ["ops@example.org"]
[alerting.notifiers.pager]
type = "mllp"
to = "{pager}"
receiving_application = "PAGER"

[channels.lab]
source = {{ type = "mllp", listen = "127.0.0.1:0" }}
[[channels.lab.destinations]]
name = "ehr"
type = "mllp"
to = "{ehr}"
timeout = "2s"
retry = {{ max_attempts = 1000, initial_backoff = "100ms", max_backoff = "300ms" }}

[[alerts]]
name = "ehr-unreachable"
when = "destination_unreachable"
channel = "lab"
destination = "ehr"
for = "1s"
notify = ["hook", "mail", "pager"]
"#,
        smtp = sink.smtp_toml(),
        pager = pager.addr,
        ehr = ehr.addr,
    );
    let engine = start_engine(dir.path(), "data", Api::On, &toml).await;
    let source = engine.listeners()[0].addr;
    let http = engine.http_addr().unwrap();

    // Delivering: nothing fires.
    send_all(source, &[oru_with_value("M1", "1")]).await;
    wait_for("M1 delivered", Duration::from_secs(10), || {
        ehr.got().len() == 1
    })
    .await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(seen(&hook, &sink, &pager), (vec![], vec![], vec![]));

    // The listener stops; a message waits for it.
    ehr.stop().await;
    let stopped = std::time::Instant::now();
    send_all(source, &[oru_with_value("M2", "2")]).await;
    wait_for(
        "one firing on each notifier",
        Duration::from_secs(20),
        || {
            let (h, m, p) = seen(&hook, &sink, &pager);
            !h.is_empty() && !m.is_empty() && !p.is_empty()
        },
    )
    .await;
    // `for = "1s"`, evaluated every 200 ms, sent at once: well within 10 s.
    assert!(
        stopped.elapsed() < Duration::from_secs(10),
        "{:?}",
        stopped.elapsed()
    );
    // Still failing for a while: nothing more is sent.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let firing = vec!["firing".to_owned()];
    assert_eq!(
        seen(&hook, &sink, &pager),
        (firing.clone(), firing.clone(), firing.clone())
    );
    let note = hook.lock().unwrap()[0].clone();
    assert_eq!(note["alert"], "ehr-unreachable");
    assert_eq!(note["condition"], "destination_unreachable");
    assert_eq!(note["destination"], "ehr");
    let mail = &sink.mails()[0];
    assert_eq!(mail["tls"], true, "the mail went over STARTTLS");
    assert_eq!(mail["to"], serde_json::json!(["ops@example.org"]));
    assert!(mail["body"].as_str().unwrap().contains("ehr-unreachable"));
    let notice = &pager.got()[0];
    assert!(
        notice.contains("|PAGER|") && notice.contains("|ORU^R01^ORU_R01|"),
        "{notice}"
    );

    // The API and /metrics show it; it can be acknowledged.
    let listed = common::get(http, "/api/alerts").await.json();
    assert_eq!(listed["alerts"][0]["state"], "firing", "{listed}");
    let metrics = common::get(http, "/metrics").await.body;
    assert!(
        metrics.contains(
            "corridor_alert_firing{alert=\"ehr-unreachable\",condition=\"destination_unreachable\"} 1"
        ),
        "{metrics}"
    );
    let acked = common::http(
        http,
        "POST",
        "/api/alerts/ehr-unreachable/ack",
        &[("X-Corridor-User", "nurse.on.call")],
        b"",
    )
    .await;
    assert_eq!(acked.status, 200, "{}", acked.body);
    let unknown = common::http(
        http,
        "POST",
        "/api/alerts/nope/ack",
        &[("X-Corridor-User", "x")],
        b"",
    )
    .await;
    assert_eq!(unknown.status, 404);

    // The listener comes back: the waiting message goes through, one "resolved" each.
    ehr.restart().await;
    wait_for(
        "one resolved on each notifier",
        Duration::from_secs(20),
        || {
            let (h, m, p) = seen(&hook, &sink, &pager);
            h.len() == 2 && m.len() == 2 && p.len() == 2
        },
    )
    .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let both = vec!["firing".to_owned(), "resolved".to_owned()];
    assert_eq!(
        seen(&hook, &sink, &pager),
        (both.clone(), both.clone(), both)
    );
    assert!(ehr.got().iter().any(|m| m.contains("|M2|")));

    let listed = common::get(http, "/api/alerts").await.json();
    assert_eq!(listed["alerts"][0]["state"], "ok", "{listed}");
    let history = common::get(http, "/api/alerts/history").await.json();
    let events = history["events"].as_array().unwrap();
    assert_eq!(events.len(), 1, "{history}");
    assert_eq!(events[0]["acknowledged_by"], "nurse.on.call");
    assert!(events[0]["resolved_at"].is_string(), "{history}");
    // The destination's last error is gone with its recovery.
    let api_stats = common::get(http, "/api/stats").await.json();
    assert!(
        api_stats.to_string().contains("\"last_error\":null"),
        "{api_stats}"
    );
    engine.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_email_destination_mails_each_message_with_templates_and_the_message_attached() {
    let dir = tempfile::tempdir().unwrap();
    let sink = SmtpSink::start(dir.path());
    let toml = format!(
        r#"
[channels.lab]
source = {{ type = "mllp", listen = "127.0.0.1:0" }}
[[channels.lab.destinations]]
name = "mail"
type = "email"
smtp = {smtp}
from = "corridor@example.org"
recipients = ["lab@example.org", "ward@example.org"]
subject = "{{MSH-9.1}} result for {{PID-3.1}}"
text = "Result {{OBX-3.2}}: {{OBX-5}} (message {{control_id}} on {{channel}})"
"#,
        smtp = sink.smtp_toml(),
    );
    let engine = start_engine(dir.path(), "data", Api::Off, &toml).await;
    let message = oru_with_value("E1", "13.5");
    send_all(engine.listeners()[0].addr, std::slice::from_ref(&message)).await;
    wait_for("the mail", Duration::from_secs(20), || {
        !sink.mails().is_empty()
    })
    .await;
    let mail = &sink.mails()[0];
    assert_eq!(mail["subject"], "ORU result for 42");
    assert_eq!(
        mail["body"].as_str().unwrap().trim_end(),
        "Result Test: 13.5 (message E1 on lab)"
    );
    assert_eq!(
        mail["to"],
        serde_json::json!(["lab@example.org", "ward@example.org"])
    );
    assert_eq!(mail["tls"], true);
    let attachment = &mail["attachments"][0];
    assert_eq!(attachment["filename"], "lab-1.hl7");
    assert_eq!(attachment["content"], message.as_str());
    wait_for("the entry delivered", Duration::from_secs(10), || {
        common::count(
            engine.store(),
            "SELECT count(*) FROM delivery_queue WHERE state = 'delivered'",
        ) == 1
    })
    .await;
    engine.shutdown().await;
}

/// A server-sent events stream read as it comes (`GET path`, `Accept:
/// text/event-stream`): every byte kept, the events read out of them on demand.
struct EventStream {
    text: Arc<Mutex<String>>,
    task: JoinHandle<()>,
}

impl Drop for EventStream {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl EventStream {
    async fn open(http: SocketAddr, path: &str) -> EventStream {
        let mut stream = tokio::net::TcpStream::connect(http).await.unwrap();
        let request = format!(
            "GET {path} HTTP/1.1\r\nHost: {http}\r\nAccept: text/event-stream\r\nConnection: close\r\n\r\n"
        );
        stream.write_all(request.as_bytes()).await.unwrap();
        let text = Arc::new(Mutex::new(String::new()));
        let keep = text.clone();
        let task = tokio::spawn(async move {
            let mut chunk = [0u8; 8192];
            while let Ok(n) = stream.read(&mut chunk).await {
                if n == 0 {
                    return;
                }
                keep.lock()
                    .unwrap()
                    .push_str(&String::from_utf8_lossy(&chunk[..n]));
            }
        });
        EventStream { text, task }
    }

    /// The data of every event named `name` so far, in order (chunk sizes skipped).
    fn events(&self, name: &str) -> Vec<String> {
        let text = self.text.lock().unwrap().clone();
        let mut found = Vec::new();
        for block in text.split("\n\n") {
            let lines: Vec<&str> = block.lines().map(|l| l.trim_end_matches('\r')).collect();
            if !lines.iter().any(|l| *l == format!("event: {name}")) {
                continue;
            }
            let data: Vec<&str> = lines
                .iter()
                .filter_map(|l| l.strip_prefix("data: ").or(l.strip_prefix("data:")))
                .collect();
            found.push(data.join("\n"));
        }
        found
    }

    fn last(&self, name: &str) -> String {
        self.events(name).pop().unwrap_or_default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_s_events_bring_a_firing_alert_and_take_it_away_when_resolved() {
    let dir = tempfile::tempdir().unwrap();
    let (hook_addr, _hook) = webhook().await;
    let mut ehr = MllpPeer::start("127.0.0.1:0").await;
    let toml = format!(
        r#"
[alerting]
interval = "200ms"
[alerting.notifiers.hook]
type = "webhook"
url = "http://{hook_addr}/alerts"

[channels.lab]
source = {{ type = "mllp", listen = "127.0.0.1:0" }}
[[channels.lab.destinations]]
name = "ehr"
type = "mllp"
to = "{ehr}"
timeout = "2s"
retry = {{ max_attempts = 1000, initial_backoff = "100ms", max_backoff = "300ms" }}

[[alerts]]
name = "ehr-unreachable"
when = "destination_unreachable"
channel = "lab"
destination = "ehr"
for = "1s"
notify = ["hook"]
"#,
        ehr = ehr.addr,
    );
    let engine = start_engine(dir.path(), "data", Api::On, &toml).await;
    let source = engine.listeners()[0].addr;
    let http = engine.http_addr().unwrap();

    // The page holds the alerts inside the live block.
    let page = common::get(http, "/").await.body;
    let live = page.find("data-live=\"/console/events\"").unwrap();
    let alerts = page.find("<div data-live-alerts").unwrap();
    assert!(live < alerts, "{page}");
    let events = EventStream::open(http, "/console/events").await;
    wait_for("the first alerts event", Duration::from_secs(10), || {
        events
            .last("alerts")
            .contains("No alert is firing (1 configured)")
    })
    .await;

    ehr.stop().await;
    send_all(source, &[oru_with_value("M1", "1")]).await;
    wait_for(
        "the alert firing on the stream",
        Duration::from_secs(20),
        || {
            let last = events.last("alerts");
            last.contains(">ehr-unreachable<") && last.contains(">firing<")
        },
    )
    .await;

    ehr.restart().await;
    wait_for(
        "the alert gone from the stream",
        Duration::from_secs(20),
        || {
            events
                .last("alerts")
                .contains("No alert is firing (1 configured)")
        },
    )
    .await;
    assert!(ehr.got().iter().any(|m| m.contains("|M1|")));
    // The table is sent when it changes, not with every count.
    let sent = events.events("alerts");
    assert!(
        sent.windows(2).all(|w| w[0] != w[1]),
        "the same alerts sent twice in a row: {sent:?}"
    );
    assert!(!events.events("counts").is_empty());
    engine.shutdown().await;
}

/// The states the webhook was told for alert `name`, in order.
fn told(hook: &Mutex<Vec<Value>>, name: &str) -> Vec<String> {
    hook.lock()
        .unwrap()
        .iter()
        .filter(|n| n["alert"] == name)
        .map(|n| n["state"].as_str().unwrap_or_default().to_owned())
        .collect()
}

/// A configuration with one webhook notifier (`hook`), alerts evaluated every 200 ms,
/// then `rest`.
fn with_hook(hook: SocketAddr, rest: &str) -> String {
    format!(
        "[alerting]\ninterval = \"200ms\"\n[alerting.notifiers.hook]\ntype = \"webhook\"\nurl = \"http://{hook}/alerts\"\n{rest}"
    )
}

/// Waits until the webhook was told exactly `states` for `name`, then checks that
/// nothing more comes for a while (no repeat while the condition lasts).
async fn told_exactly(hook: &Mutex<Vec<Value>>, name: &str, states: &[&str]) {
    wait_for(
        &format!("{name}: {states:?}"),
        Duration::from_secs(20),
        || told(hook, name).len() >= states.len(),
    )
    .await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(told(hook, name), states, "{:?}", hook.lock().unwrap());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paused_destination_s_queue_age_fires_once_and_its_resume_resolves_once() {
    let dir = tempfile::tempdir().unwrap();
    let (hook_addr, hook) = webhook().await;
    let ehr = MllpPeer::start("127.0.0.1:0").await;
    let toml = with_hook(
        hook_addr,
        &format!(
            r#"
[channels.lab]
source = {{ type = "mllp", listen = "127.0.0.1:0" }}
[[channels.lab.destinations]]
name = "ehr"
type = "mllp"
to = "{ehr}"

[[alerts]]
name = "ehr-waiting"
when = "queue_age"
channel = "lab"
destination = "ehr"
older_than = "1s"
notify = ["hook"]
"#,
            ehr = ehr.addr
        ),
    );
    let engine = start_engine(dir.path(), "data", Api::On, &toml).await;
    let http = engine.http_addr().unwrap();
    let pause = common::http(
        http,
        "POST",
        "/api/channels/lab/destinations/ehr/pause",
        &[],
        b"",
    )
    .await;
    assert_eq!(pause.status, 200, "{}", pause.body);
    send_all(engine.listeners()[0].addr, &[oru_with_value("W1", "1")]).await;
    told_exactly(&hook, "ehr-waiting", &["firing"]).await;
    let note = hook.lock().unwrap()[0].clone();
    assert_eq!(note["condition"], "queue_age", "{note}");
    assert!(ehr.got().is_empty(), "paused, yet sent: {:?}", ehr.got());

    let resume = common::http(
        http,
        "POST",
        "/api/channels/lab/destinations/ehr/resume",
        &[],
        b"",
    )
    .await;
    assert_eq!(resume.status, 200, "{}", resume.body);
    told_exactly(&hook, "ehr-waiting", &["firing", "resolved"]).await;
    assert!(ehr.got().iter().any(|m| m.contains("|W1|")));
    engine.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_naking_receiver_s_nak_rate_fires_once_and_resolves_once_when_it_accepts_again() {
    let dir = tempfile::tempdir().unwrap();
    let (hook_addr, hook) = webhook().await;
    let ehr = MllpPeer::start("127.0.0.1:0").await;
    ehr.answer_with("AE");
    let toml = with_hook(
        hook_addr,
        &format!(
            r#"
[channels.lab]
source = {{ type = "mllp", listen = "127.0.0.1:0" }}
[[channels.lab.destinations]]
name = "ehr"
type = "mllp"
to = "{ehr}"
on_nak = "error"

[[alerts]]
name = "ehr-naks"
when = "nak_rate"
channel = "lab"
destination = "ehr"
above = 0.5
window = "2s"
notify = ["hook"]
"#,
            ehr = ehr.addr
        ),
    );
    let engine = start_engine(dir.path(), "data", Api::On, &toml).await;
    let source = engine.listeners()[0].addr;
    // Both refused: 2 of 2 attempts failed, above half.
    send_all(
        source,
        &[oru_with_value("N1", "1"), oru_with_value("N2", "2")],
    )
    .await;
    told_exactly(&hook, "ehr-naks", &["firing"]).await;
    let note = hook.lock().unwrap()[0].clone();
    assert_eq!(note["condition"], "nak_rate", "{note}");
    assert_eq!(
        common::count(
            engine.store(),
            "SELECT count(*) FROM delivery_queue WHERE state = 'errored'"
        ),
        2
    );

    // Accepted again: the failures leave the window, the share falls, it resolves once.
    ehr.answer_with("AA");
    send_all(
        source,
        &[
            oru_with_value("N3", "3"),
            oru_with_value("N4", "4"),
            oru_with_value("N5", "5"),
        ],
    )
    .await;
    told_exactly(&hook, "ehr-naks", &["firing", "resolved"]).await;
    assert_eq!(
        common::count(
            engine.store(),
            "SELECT count(*) FROM delivery_queue WHERE state = 'delivered'"
        ),
        3
    );
    engine.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn low_disk_space_fires_once_and_a_lower_threshold_after_a_restart_resolves_it_once() {
    let dir = tempfile::tempdir().unwrap();
    let (hook_addr, hook) = webhook().await;
    let config = |below: &str| {
        with_hook(
            hook_addr,
            &format!(
                r#"
[channels.lab]
source = {{ type = "mllp", listen = "127.0.0.1:0" }}

[[alerts]]
name = "disk"
when = "disk_space"
below = "{below}"
notify = ["hook"]
"#
            ),
        )
    };
    // More than any test machine's disk has free: it fires.
    let engine = start_engine(dir.path(), "data", Api::On, &config("1000000GiB")).await;
    told_exactly(&hook, "disk", &["firing"]).await;
    let note = hook.lock().unwrap()[0].clone();
    assert_eq!(note["condition"], "disk_space", "{note}");
    let listed = common::get(engine.http_addr().unwrap(), "/api/alerts")
        .await
        .json();
    assert_eq!(listed["alerts"][0]["state"], "firing", "{listed}");
    engine.shutdown().await;

    // Started again with one byte as the threshold: the episode left firing resolves.
    let engine = start_engine(dir.path(), "data", Api::On, &config("1B")).await;
    told_exactly(&hook, "disk", &["firing", "resolved"]).await;
    let http = engine.http_addr().unwrap();
    let history = common::get(http, "/api/alerts/history").await.json();
    let events = history["events"].as_array().unwrap();
    assert_eq!(events.len(), 1, "{history}");
    assert!(events[0]["resolved_at"].is_string(), "{history}");
    engine.shutdown().await;
}

/// What the engine logs at `info` (the binary's default level) in this test process,
/// formatted as the binary does, without colours.
#[derive(Clone, Default)]
struct Logs(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Logs {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Logs {
    /// Captures every thread's logs from now on (once per process: engines log from
    /// their runtime's threads). Tests tell their lines apart by channel name.
    fn install() -> Logs {
        static LOGS: std::sync::OnceLock<Logs> = std::sync::OnceLock::new();
        LOGS.get_or_init(|| {
            let logs = Logs::default();
            let writer = logs.clone();
            let subscriber = tracing_subscriber::fmt()
                .with_writer(move || writer.clone())
                .with_ansi(false)
                .with_target(false)
                .with_max_level(tracing::Level::INFO)
                .finish();
            tracing::subscriber::set_global_default(subscriber).unwrap();
            logs
        })
        .clone()
    }

    fn lines(&self, needles: &[&str]) -> Vec<String> {
        String::from_utf8_lossy(&self.0.lock().unwrap())
            .lines()
            .filter(|l| needles.iter().all(|n| l.contains(n)))
            .map(str::to_owned)
            .collect()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_destination_logs_one_warning_and_its_recovery_one_info_line() {
    let logs = Logs::install();
    let dir = tempfile::tempdir().unwrap();
    let mut ehr = MllpPeer::start("127.0.0.1:0").await;
    let toml = format!(
        r#"
[channels.logged]
source = {{ type = "mllp", listen = "127.0.0.1:0" }}
[[channels.logged.destinations]]
name = "ehr"
type = "mllp"
to = "{ehr}"
timeout = "2s"
retry = {{ max_attempts = 1000, initial_backoff = "100ms", max_backoff = "300ms" }}
"#,
        ehr = ehr.addr,
    );
    let engine = start_engine(dir.path(), "data", Api::Off, &toml).await;
    let source = engine.listeners()[0].addr;
    send_all(source, &[oru_with_value("G1", "1")]).await;
    wait_for("G1 delivered", Duration::from_secs(10), || {
        ehr.got().len() == 1
    })
    .await;
    let channel = ["channel=logged", "destination=ehr"];
    let failing = |logs: &Logs| logs.lines(&[&channel[..], &["destination failing"]].concat());
    let again = |logs: &Logs| logs.lines(&[&channel[..], &["destination delivers again"]].concat());
    assert!(failing(&logs).is_empty() && again(&logs).is_empty());

    // Down for a dozen retries: one warning.
    ehr.stop().await;
    send_all(source, &[oru_with_value("G2", "2")]).await;
    wait_for("the warning", Duration::from_secs(10), || {
        !failing(&logs).is_empty()
    })
    .await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let warned = failing(&logs);
    assert_eq!(warned.len(), 1, "{warned:#?}");
    assert!(warned[0].contains(" WARN "), "{warned:?}");
    assert!(again(&logs).is_empty());

    // Back: G2 goes through, one info line.
    ehr.restart().await;
    wait_for("G2 delivered", Duration::from_secs(10), || {
        ehr.got().iter().any(|m| m.contains("|G2|"))
    })
    .await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let recovered = again(&logs);
    assert_eq!(recovered.len(), 1, "{recovered:#?}");
    assert!(recovered[0].contains(" INFO "), "{recovered:?}");
    assert_eq!(failing(&logs).len(), 1);
    // Never the message content at this level: no patient name, no OBX value.
    let ours = logs.lines(&["channel=logged"]);
    assert!(
        ours.iter()
            .all(|l| !l.contains("Doe") && !l.contains("Jane")),
        "{ours:#?}"
    );
    engine.shutdown().await;
}
