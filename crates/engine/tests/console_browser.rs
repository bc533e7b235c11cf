//! The web console in a real headless Chromium (Debian's `chromium` and
//! `chromium-driver`, installed by `scripts/browser-deps` when missing), driven
//! through chromedriver's W3C WebDriver protocol (JSON over HTTP, spoken here in a few
//! lines rather than through a client crate whose TLS stack would change the
//! workspace's rustls features), against a running engine with access control
//! on: sign in; the dashboard's counts move as messages are sent over MLLP (server-sent
//! events, no reload); clicking the errored count lists those messages; a message's
//! fields carry their labels; a viewer sees no patient names; axe-core (npm, installed
//! under `target/npm-axe` on first use) finds no serious or critical accessibility
//! violation on the sign-in page, the dashboard, the browser and a message.
//! Then quarantine and the patient index: an operator edits a quarantined message and
//! reprocesses it; a steward accepts a review shown field by field with its weights;
//! a viewer sees no patient names on those pages; axe-core checks each of them.

mod common;

use std::net::SocketAddr;
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use access::Role;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const PASSWORD: &str = "correct horse battery staple";

/// Installs the browser when missing (the project's own script), then starts
/// chromedriver on a free port.
struct Driver {
    child: Child,
    port: u16,
}

impl Drop for Driver {
    fn drop(&mut self) {
        // chromedriver leads its own process group (see `driver`): the browser it
        // started goes with it, even when the test failed before closing its session.
        let _ = Command::new("kill")
            .arg("--")
            .arg(format!("-{}", self.child.id()))
            .status();
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn driver() -> Driver {
    test_support::apt_peer("browser");
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let child = Command::new("chromedriver")
        .arg(format!("--port={port}"))
        .process_group(0)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("chromedriver starts");
    let driver = Driver { child, port };
    common::wait_for("chromedriver", Duration::from_secs(20), || {
        std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
    })
    .await;
    driver
}

/// A WebDriver session in chromedriver.
struct Client {
    port: u16,
    session: String,
}

/// An element found in the page.
struct Element<'a> {
    client: &'a Client,
    id: String,
}

const ELEMENT_KEY: &str = "element-6066-11e4-a52e-4f735466cecf";

/// One WebDriver command: the `value` of its answer, or its error.
async fn command(port: u16, method: &str, path: &str, body: Option<Value>) -> Result<Value, Value> {
    let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap();
    let body = body.map(|b| b.to_string()).unwrap_or_default();
    let request = format!(
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    // chromedriver keeps the connection open: read the head, then Content-Length bytes.
    let mut raw = Vec::new();
    let mut buf = [0u8; 8192];
    let (head_end, length) = loop {
        let n = stream.read(&mut buf).await.unwrap();
        assert!(n > 0, "chromedriver closed the connection");
        raw.extend_from_slice(&buf[..n]);
        if let Some(end) = raw.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&raw[..end]).to_ascii_lowercase();
            let length = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .and_then(|v| v.trim().parse::<usize>().ok())
                .unwrap_or(0);
            break (end + 4, length);
        }
    };
    while raw.len() < head_end + length {
        let n = stream.read(&mut buf).await.unwrap();
        assert!(n > 0, "chromedriver closed the connection mid-answer");
        raw.extend_from_slice(&buf[..n]);
    }
    let status: u16 = String::from_utf8_lossy(&raw[9..12]).parse().unwrap();
    let json: Value =
        serde_json::from_slice(&raw[head_end..head_end + length]).unwrap_or(Value::Null);
    let value = json["value"].clone();
    if status == 200 { Ok(value) } else { Err(value) }
}

impl Client {
    async fn new(driver: &Driver) -> Client {
        let answer = command(
            driver.port,
            "POST",
            "/session",
            Some(json!({"capabilities": {"alwaysMatch": {
                "browserName": "chrome",
                "goog:chromeOptions": {
                    "binary": "/usr/bin/chromium",
                    "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--window-size=1280,1000"],
                },
            }}})),
        )
        .await
        .expect("a Chromium session");
        Client {
            port: driver.port,
            session: answer["sessionId"].as_str().unwrap().to_owned(),
        }
    }

    async fn call(&self, method: &str, path: &str, body: Option<Value>) -> Result<Value, Value> {
        command(
            self.port,
            method,
            &format!("/session/{}{path}", self.session),
            body,
        )
        .await
    }

    async fn goto(&self, url: &str) {
        self.call("POST", "/url", Some(json!({"url": url})))
            .await
            .unwrap();
    }

    async fn path(&self) -> String {
        let url = self.call("GET", "/url", None).await.unwrap();
        let url = url.as_str().unwrap().to_owned();
        let rest = url.splitn(4, '/').nth(3).unwrap_or("");
        format!("/{}", rest.split('?').next().unwrap_or(""))
    }

    async fn source(&self) -> String {
        self.call("GET", "/source", None)
            .await
            .unwrap()
            .as_str()
            .unwrap()
            .to_owned()
    }

    async fn try_find(&self, css: &str) -> Option<Element<'_>> {
        let found = self
            .call(
                "POST",
                "/element",
                Some(json!({"using": "css selector", "value": css})),
            )
            .await
            .ok()?;
        Some(Element {
            client: self,
            id: found[ELEMENT_KEY].as_str()?.to_owned(),
        })
    }

    /// The element `css` selects, waiting a bounded while for it to appear.
    async fn find(&self, css: &str) -> Element<'_> {
        for _ in 0..50 {
            if let Some(element) = self.try_find(css).await {
                return element;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("no element {css:?} in {}", self.source().await);
    }

    async fn close(&self) {
        let _ = self.call("DELETE", "", None).await;
    }
}

impl Element<'_> {
    async fn text(&self) -> String {
        self.client
            .call("GET", &format!("/element/{}/text", self.id), None)
            .await
            .map(|v| v.as_str().unwrap_or_default().to_owned())
            .unwrap_or_default()
    }

    async fn attr(&self, name: &str) -> Option<String> {
        self.client
            .call(
                "GET",
                &format!("/element/{}/attribute/{name}", self.id),
                None,
            )
            .await
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned))
    }

    async fn click(&self) {
        self.client
            .call(
                "POST",
                &format!("/element/{}/click", self.id),
                Some(json!({})),
            )
            .await
            .unwrap();
    }

    async fn send_keys(&self, text: &str) {
        self.client
            .call(
                "POST",
                &format!("/element/{}/value", self.id),
                Some(json!({"text": text})),
            )
            .await
            .unwrap();
    }
}

/// axe-core's script, installed with npm under `target/npm-axe` on first use
/// (under a lock: the tests of this file run at once and would otherwise
/// install into one directory together).
fn axe_source() -> String {
    let modules = test_support::npm_peer("axe");
    std::fs::read_to_string(modules.join("axe-core/axe.min.js")).expect("axe-core's script reads")
}

/// Runs axe-core on the page shown; its serious and critical violations.
async fn accessibility_violations(client: &Client, axe: &str) -> Vec<Value> {
    client
        .call(
            "POST",
            "/execute/sync",
            Some(json!({"script": axe, "args": []})),
        )
        .await
        .expect("axe-core loads");
    let script = "var done = arguments[arguments.length - 1];\
        axe.run(document, {resultTypes: ['violations']})\
          .then(function (r) { done(r.violations); })\
          .catch(function (e) { done([{id: 'axe failed', impact: 'critical', help: String(e)}]); });";
    let violations = client
        .call(
            "POST",
            "/execute/async",
            Some(json!({"script": script, "args": []})),
        )
        .await
        .expect("axe-core runs");
    violations
        .as_array()
        .unwrap()
        .iter()
        .filter(|v| matches!(v["impact"].as_str(), Some("serious" | "critical")))
        .map(|v| json!({"id": v["id"], "impact": v["impact"], "help": v["help"]}))
        .collect()
}

/// With `CORRIDOR_SCREENSHOTS=DIR` (`scripts/screenshots`), saves the page shown as
/// `DIR/NAME.png`.
async fn screenshot(client: &Client, name: &str) {
    use base64::Engine as _;
    let Some(dir) = std::env::var_os("CORRIDOR_SCREENSHOTS") else {
        return;
    };
    let png = client.call("GET", "/screenshot", None).await.unwrap();
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(png.as_str().unwrap())
        .unwrap();
    let dir = std::path::PathBuf::from(dir);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join(format!("{name}.png")), bytes).unwrap();
}

/// Signs out with the header's button and waits for the sign-in page the form answers
/// with: going on before it would race the sign-out's own navigation.
async fn sign_out(client: &Client) {
    client.find("header form button").await.click().await;
    for _ in 0..200 {
        if client.path().await == "/login" {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!("signing out did not reach the sign-in page");
}

async fn sign_in(client: &Client, base: &str, user: &str) {
    client.goto(&format!("{base}/")).await;
    // Not signed in: the console sends the browser to the sign-in page.
    assert_eq!(client.path().await, "/login");
    client.find("#user").await.send_keys(user).await;
    client.find("#password").await.send_keys(PASSWORD).await;
    client.find("form.login button").await.click().await;
    // The sign-in page's heading may still be found for a moment: wait for the next.
    wait_for_text(client, "main h1", "Dashboard").await;
}

/// Polls the text of the element `css` until it is `expected` (the page is not
/// reloaded: the events stream updates it).
async fn wait_for_text(client: &Client, css: &str, expected: &str) {
    let mut last = String::new();
    for _ in 0..150 {
        if let Some(element) = client.try_find(css).await {
            last = element.text().await;
            if last == expected {
                return;
            }
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    panic!("{css}: {last:?}, expected {expected:?}");
}

/// Messages stored over the dashboard's first chart (its table), as the page shows now.
async fn chart_stored(client: &Client) -> u64 {
    let script = "var rows = document.querySelectorAll('[data-charts] figure:first-of-type tbody tr');\
        var n = 0;\
        rows.forEach(function (tr) { var c = tr.children[1]; if (c) { n += parseInt(c.textContent, 10) || 0; } });\
        return n;";
    client
        .call(
            "POST",
            "/execute/sync",
            Some(json!({"script": script, "args": []})),
        )
        .await
        .unwrap()
        .as_u64()
        .unwrap_or(0)
}

/// The test's messages carry the time they are sent in MSH-7 (and EVN-2), so the
/// dashboard's sender clock lag, and the screenshots made from this test, are sensible.
fn oru(control: &str, family: &str) -> Vec<u8> {
    format!(
        "MSH|^~\\&|LIS|LAB|EHR|HOSP|{now}||ORU^R01^ORU_R01|{control}|P|2.5.1\r\
         PID|1||MRN-{control}^^^HOSP^MR||{family}^ANNA\r\
         OBX|1|NM|718-7^Hemoglobin^LN||13.2|g/dL|||||F\r",
        now = datetime::hl7::now_dtm_utc()
    )
    .into_bytes()
}

#[tokio::test]
async fn the_console_in_chromium() {
    let driver = driver().await;
    let dir = tempfile::tempdir().unwrap();
    // A receiver that is not there: the `lis` destination, given only control ids
    // starting DL, dead-letters them at its first failure.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let nowhere = closed.local_addr().unwrap();
    drop(closed);
    let toml = format!(
        "[data]\ndir = {:?}\n[http]\nlisten = \"127.0.0.1:0\"\n\
[channels.lab]\nsource = {{ type = \"mllp\", listen = \"127.0.0.1:0\" }}\n\
transforms = [ {{ name = \"refuse BAD\", script = \"if (msg.get('MSH-10').indexOf('BAD') === 0) throw new Error('refused'); \" }} ]\n\
[[channels.lab.destinations]]\nname = \"archive\"\ntype = \"file\"\npath = \"archive\"\nfile_name = \"{{message_id}}.hl7\"\n\
[[channels.lab.destinations]]\nname = \"lis\"\ntype = \"mllp\"\nto = \"{nowhere}\"\nretry = {{ max_attempts = 1 }}\n\
filters = [ {{ path = \"MSH-10\", matches = \"^DL\" }} ]\n",
        dir.path().join("data").display().to_string()
    );
    let config = engine::Config::from_toml_in(&toml, dir.path()).unwrap();
    let engine = engine::Engine::start(config).await.unwrap();
    let users = access::Access::open(engine.store().clone()).await.unwrap();
    for (name, role) in [("ana", Role::Analyst), ("vic", Role::Viewer)] {
        users
            .add_user(name, role, Some(PASSWORD), None)
            .await
            .unwrap();
    }
    let http: SocketAddr = engine.http_addr().unwrap();
    let mllp = engine.listeners()[0].addr;
    let base = format!("http://{http}");

    let client = Client::new(&driver).await;
    let axe = axe_source();
    client.goto(&format!("{base}/login")).await;
    client.find("form.login").await;
    let mut violations = Vec::new();
    violations.push(("sign-in", accessibility_violations(&client, &axe).await));
    sign_in(&client, &base, "ana").await;

    // Counts move as messages arrive, without a reload.
    common::send_all(mllp, &[oru("M1", "QUILLFEATHER"), oru("M2", "DOE")]).await;
    wait_for_text(&client, "[data-count=\"lab/delivered\"]", "2").await;
    common::send_all(mllp, &[oru("BAD-1", "DOE"), oru("BAD-2", "DOE")]).await;
    wait_for_text(&client, "[data-count=\"lab/errored\"]", "2").await;

    // The errored count is a link to those messages.
    client
        .find("[data-count=\"lab/errored\"] a")
        .await
        .click()
        .await;
    client.find("form.search").await;
    screenshot(&client, "browser").await;
    let text = client.find("main table").await.text().await;
    assert!(text.contains("BAD-1") && text.contains("BAD-2"), "{text}");
    assert!(!text.contains("M1"), "{text}");

    // A destination's dead-letter count is a link to the messages dead-lettered there.
    common::send_all(mllp, &[oru("DL-1", "DOE"), oru("DL-2", "DOE")]).await;
    client.goto(&format!("{base}/")).await;
    wait_for_text(&client, "[data-count=\"dest/lab/lis/dead_lettered\"]", "2").await;
    client
        .find("[data-count=\"dest/lab/lis/dead_lettered\"] a")
        .await
        .click()
        .await;
    client.find("form.search").await;
    assert_eq!(
        client
            .find("#q-destination_state")
            .await
            .attr("value")
            .await
            .as_deref(),
        Some("dead_lettered")
    );
    let text = client.find("main table").await.text().await;
    assert!(text.contains("DL-1") && text.contains("DL-2"), "{text}");
    assert!(!text.contains("M1") && !text.contains("BAD-1"), "{text}");

    // A message's fields carry their labels.
    client
        .goto(&format!("{base}/console/messages?patient_name=quill"))
        .await;
    client.find("main table tbody a").await.click().await;
    let name = client
        .find("pre.hl7 span[title^=\"PID-5 Patient Name\"]")
        .await;
    assert_eq!(name.text().await, "QUILLFEATHER^ANNA");
    assert_eq!(
        name.attr("title").await.as_deref(),
        Some("PID-5 Patient Name (XPN)")
    );
    screenshot(&client, "detail").await;
    violations.push(("message", accessibility_violations(&client, &axe).await));
    client
        .goto(&format!("{base}/console/messages?state=errored"))
        .await;
    client.find("form.search").await;
    violations.push(("browser", accessibility_violations(&client, &axe).await));
    client.goto(&format!("{base}/")).await;
    client.find("[data-live]").await;
    wait_for_text(&client, "[data-count=\"lab/errored\"]", "2").await;
    screenshot(&client, "dashboard").await;
    violations.push(("dashboard", accessibility_violations(&client, &axe).await));
    let serious: Vec<_> = violations.iter().filter(|(_, v)| !v.is_empty()).collect();
    assert!(serious.is_empty(), "{serious:#?}");

    // The charts follow new messages without a reload: the first chart's table (the
    // last 6 hours) counts them, and the page is the one loaded before (its marker
    // survives).
    client
        .call(
            "POST",
            "/execute/sync",
            Some(json!({"script": "window.corridorMarker = 'kept'; return null;", "args": []})),
        )
        .await
        .unwrap();
    let before = chart_stored(&client).await;
    common::send_all(
        mllp,
        &[oru("C1", "DOE"), oru("C2", "DOE"), oru("C3", "DOE")],
    )
    .await;
    let mut after = before;
    for _ in 0..150 {
        after = chart_stored(&client).await;
        if after >= before + 3 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert!(
        after >= before + 3,
        "chart's stored total {before} -> {after}"
    );
    let marker = client
        .call(
            "POST",
            "/execute/sync",
            Some(json!({"script": "return window.corridorMarker || null;", "args": []})),
        )
        .await
        .unwrap();
    assert_eq!(marker, json!("kept"), "the dashboard was not reloaded");

    // Sign out; a viewer sees counts and no patient names.
    sign_out(&client).await;
    sign_in(&client, &base, "vic").await;
    wait_for_text(&client, "[data-count=\"lab/errored\"]", "2").await;
    let source = client.source().await;
    assert!(!source.contains("QUILLFEATHER") && !source.contains("DOE"));
    client
        .goto(&format!("{base}/console/messages?state=errored"))
        .await;
    let source = client.source().await;
    assert!(source.contains("does not allow"), "{source}");
    assert!(!source.contains("DOE"));

    client.close().await;
    engine.shutdown().await;
}

/// An ORU whose PID carries no name: under strict validation the missing PID-5 is an
/// error, so the message is quarantined.
fn nameless_oru(control: &str) -> Vec<u8> {
    format!(
        "MSH|^~\\&|LIS|LAB|EHR|HOSP|{now}||ORU^R01^ORU_R01|{control}|P|2.5.1\r\
         PID|1||MRN-{control}^^^HOSP^MR\r\
         OBR|1||ACC-{control}|718-7^Hemoglobin^LN\r\
         OBX|1|NM|718-7^Hemoglobin^LN||13.2|g/dL|||||F\r",
        now = datetime::hl7::now_dtm_utc()
    )
    .into_bytes()
}

fn adt(control: &str, pid: &str) -> Vec<u8> {
    format!(
        "MSH|^~\\&|ADT|NORTH|CORRIDOR|HUB|{now}||ADT^A04^ADT_A01|{control}|P|2.5.1\r\
         EVN|A04|{now}\r{pid}\rPV1|1|O\r",
        now = datetime::hl7::now_dtm_utc()
    )
    .into_bytes()
}

/// Opens `url` again until the element `css` is on it (the pipeline works after the ACK).
async fn goto_until(client: &Client, url: &str, css: &str) {
    for _ in 0..60 {
        client.goto(url).await;
        if client.try_find(css).await.is_some() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    panic!("no element {css:?} at {url}: {}", client.source().await);
}

/// Polls until the element `css` holds `expected` (a form's answer replaces the page:
/// the element of the page before may still be found for a moment).
async fn wait_for_contains(client: &Client, css: &str, expected: &str) -> String {
    let mut last = String::new();
    for _ in 0..100 {
        if let Some(element) = client.try_find(css).await {
            last = element.text().await;
            if last.contains(expected) {
                return last;
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!(
        "{css}: {last:?}, expected {expected:?} in it: {}",
        client.source().await
    );
}

/// The text of the first element `css` selects.
async fn text_of(client: &Client, css: &str) -> String {
    client.find(css).await.text().await
}

#[tokio::test]
async fn quarantine_and_patient_index_in_chromium() {
    let driver = driver().await;
    let dir = tempfile::tempdir().unwrap();
    // A high link threshold: a resemblance without a shared identifier waits for a person.
    let toml = format!(
        "[data]\ndir = {:?}\n[http]\nlisten = \"127.0.0.1:0\"\n\
[mpi]\nenabled = true\nlink_threshold = 40\n\
[alerting]\ninterval = \"200ms\"\n\
[alerting.notifiers.hook]\ntype = \"webhook\"\nurl = \"http://127.0.0.1:9/alerts\"\n\
[[alerts]]\nname = \"adt-quiet\"\nwhen = \"no_messages\"\nchannel = \"adt\"\nquiet_for = \"1s\"\nnotify = [\"hook\"]\n\
[channels.adt]\nsource = {{ type = \"mllp\", listen = \"127.0.0.1:0\" }}\n\
[channels.lab]\nsource = {{ type = \"mllp\", listen = \"127.0.0.1:0\" }}\n\
[channels.lab.validation]\nmode = \"after_ack\"\nstrict = true\n\
[[channels.lab.destinations]]\nname = \"archive\"\ntype = \"file\"\npath = \"archive\"\nfile_name = \"{{message_id}}.hl7\"\n",
        dir.path().join("data").display().to_string()
    );
    let config = engine::Config::from_toml_in(&toml, dir.path()).unwrap();
    let engine = engine::Engine::start(config).await.unwrap();
    let users = access::Access::open(engine.store().clone()).await.unwrap();
    for (name, role) in [
        ("olivia", Role::Operator),
        ("sam", Role::Steward),
        ("vic", Role::Viewer),
        ("ada", Role::Admin),
    ] {
        users
            .add_user(name, role, Some(PASSWORD), None)
            .await
            .unwrap();
    }
    let http: SocketAddr = engine.http_addr().unwrap();
    let listener = |channel: &str| {
        engine
            .listeners()
            .into_iter()
            .find(|l| l.channel == channel)
            .unwrap()
            .addr
    };
    let base = format!("http://{http}");
    common::send_all(listener("lab"), &[nameless_oru("Q1")]).await;
    common::send_all(
        listener("adt"),
        &[
            adt(
                "A1",
                "PID|1||4711^^^NORTH^MR||QUILLFEATHER^JOHN||19800312|M|||12 High St^^Springfield^IL^62701",
            ),
            adt(
                "A2",
                "PID|1||R-1^^^CLINIC^MR||QUILLFEATHER^JOHN||19800312|M|||99 Low Rd^^Shelbyville^IL^62565",
            ),
        ],
    )
    .await;

    let client = Client::new(&driver).await;
    let axe = axe_source();
    let mut violations = Vec::new();

    // An operator edits the quarantined message and reprocesses it.
    sign_in(&client, &base, "olivia").await;
    // The quiet channel's alert fires and shows on the dashboard; the operator
    // acknowledges it there.
    goto_until(
        &client,
        &format!("{base}/"),
        "form[action=\"/console/alerts/adt-quiet/ack\"]",
    )
    .await;
    let alerts = text_of(&client, "table.alerts").await;
    assert!(
        alerts.contains("adt-quiet") && alerts.contains("firing"),
        "{alerts}"
    );
    client
        .find("form[action=\"/console/alerts/adt-quiet/ack\"] button")
        .await
        .click()
        .await;
    wait_for_contains(&client, "p.notice", "adt-quiet acknowledged").await;
    wait_for_contains(&client, "table.alerts", "by olivia").await;
    violations.push((
        "dashboard with an alert",
        accessibility_violations(&client, &axe).await,
    ));
    client
        .find("header a[href=\"/console/quarantine\"]")
        .await
        .click()
        .await;
    goto_until(
        &client,
        &format!("{base}/console/quarantine"),
        "input[data-select=\"entry\"]",
    )
    .await;
    let row = client.find("table.selectable tbody tr td a").await;
    let listed = text_of(&client, "table.selectable tbody").await;
    assert!(listed.contains("Q1"), "{listed}");
    screenshot(&client, "quarantine").await;
    violations.push(("quarantine", accessibility_violations(&client, &axe).await));
    row.click().await;
    let findings = text_of(&client, "table.findings").await;
    assert!(findings.contains("PID-5"), "{findings}");
    violations.push((
        "quarantine entry",
        accessibility_violations(&client, &axe).await,
    ));
    let content = client.find("#content").await;
    let text = client
        .call(
            "GET",
            &format!("/element/{}/property/value", content.id),
            None,
        )
        .await
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default()
        .replace("MRN-Q1^^^HOSP^MR", "MRN-Q1^^^HOSP^MR||QUILLFEATHER^ANNA");
    client
        .call(
            "POST",
            &format!("/element/{}/clear", content.id),
            Some(json!({})),
        )
        .await
        .unwrap();
    assert!(text.contains("QUILLFEATHER^ANNA"), "{text}");
    content.send_keys(&text).await;
    client
        .find("#edit-reason")
        .await
        .send_keys("name added from the order")
        .await;
    client.find("form.edit button").await.click().await;
    wait_for_contains(&client, "p.notice", "Edit saved").await;
    let findings = text_of(&client, "table.findings").await;
    assert!(!findings.contains("PID-5"), "{findings}");
    client
        .find("form[action$=\"/reprocess\"] button")
        .await
        .click()
        .await;
    wait_for_contains(&client, "p.notice", "Reprocessed as message").await;
    assert_eq!(text_of(&client, "td.status").await, "reprocessed");
    client.find("a.reprocessed-as").await.click().await;
    let name = client
        .find("pre.hl7 span[title^=\"PID-5 Patient Name\"]")
        .await;
    assert_eq!(name.text().await, "QUILLFEATHER^ANNA");
    // Two more are discarded together: select all, a reason, Discard.
    common::send_all(listener("lab"), &[nameless_oru("Q2"), nameless_oru("Q3")]).await;
    let open = format!("{base}/console/quarantine");
    for _ in 0..60 {
        client.goto(&open).await;
        let listed = text_of(&client, "table.selectable tbody").await;
        if listed.contains("Q2") && listed.contains("Q3") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    client
        .find("input[data-select-all=\"entry\"]")
        .await
        .click()
        .await;
    client
        .find("#bulk-reason")
        .await
        .send_keys("test messages from the sender")
        .await;
    client
        .find("button[formaction=\"/console/quarantine/discard\"]")
        .await
        .click()
        .await;
    wait_for_contains(&client, "p.notice", "Discarded 2 entr(ies).").await;
    let listed = text_of(&client, "table.selectable tbody").await;
    assert!(listed.contains("Nothing quarantined matches."), "{listed}");
    client
        .goto(&format!("{base}/console/quarantine?status=discarded"))
        .await;
    let discarded = text_of(&client, "table.selectable tbody").await;
    assert!(
        discarded.contains("Q2") && discarded.contains("Q3") && !discarded.contains("Q1"),
        "{discarded}"
    );
    client.goto(&format!("{base}/console/data-quality")).await;
    let quality = text_of(&client, "main").await;
    assert!(
        quality.contains("PID-5") && quality.contains("LIS"),
        "{quality}"
    );
    violations.push((
        "data quality",
        accessibility_violations(&client, &axe).await,
    ));
    sign_out(&client).await;

    // A steward accepts the review: both records side by side with the weights.
    sign_in(&client, &base, "sam").await;
    client
        .find("header a[href=\"/console/reviews\"]")
        .await
        .click()
        .await;
    goto_until(&client, &format!("{base}/console/reviews"), "table.compare").await;
    let compare = text_of(&client, "table.compare").await;
    assert!(
        compare.contains("CLINIC/R-1") && compare.contains("NORTH/4711"),
        "{compare}"
    );
    let street = text_of(&client, "table.compare tr.disagree").await;
    assert!(
        street.contains("Street") || street.contains("City"),
        "{street}"
    );
    assert!(
        street.contains('-'),
        "a disagreeing field weighs against: {street}"
    );
    screenshot(&client, "review-queue").await;
    violations.push((
        "review queue",
        accessibility_violations(&client, &axe).await,
    ));
    client.find("button.accept").await.click().await;
    wait_for_contains(&client, "p.notice", "accepted").await;
    assert!(
        text_of(&client, "main")
            .await
            .contains("No record waits for review."),
        "{}",
        client.source().await
    );
    client.goto(&format!("{base}/console/patients?id=E1")).await;
    let sources = text_of(&client, "main").await;
    assert!(
        sources.contains("NORTH/4711") && sources.contains("CLINIC/R-1"),
        "{sources}"
    );
    assert!(sources.contains("review accepted"), "{sources}");
    violations.push(("patient", accessibility_violations(&client, &axe).await));
    sign_out(&client).await;

    // An administrator sees the running channels, their destinations and the users.
    sign_in(&client, &base, "ada").await;
    client
        .find("header a[href=\"/console/admin\"]")
        .await
        .click()
        .await;
    let channels = text_of(&client, "main table").await;
    assert!(
        channels.contains("adt") && channels.contains("lab") && channels.contains("archive"),
        "{channels}"
    );
    let page = text_of(&client, "main").await;
    assert!(
        page.contains("olivia") && page.contains("steward"),
        "{page}"
    );
    violations.push((
        "administration",
        accessibility_violations(&client, &axe).await,
    ));
    // The audit trail: filtered by an action, only that action's records are listed.
    client
        .find("header a[href=\"/console/audit\"]")
        .await
        .click()
        .await;
    client.find("p.chain").await;
    let action = "GET /console/quarantine/{id}";
    client.find("#a-action").await.send_keys(action).await;
    client.find("form.search button").await.click().await;
    // The filtered page's action cells, once it has replaced the unfiltered one.
    let mut cells = Value::Null;
    for _ in 0..100 {
        cells = client
            .call(
                "POST",
                "/execute/sync",
                Some(json!({
                    "script": "return location.search.includes('action=') && document.readyState === 'complete' ? Array.from(document.querySelectorAll('td.action')).map(c => c.textContent) : null;",
                    "args": [],
                })),
            )
            .await
            .unwrap();
        if cells.is_array() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let cells: Vec<&str> = cells
        .as_array()
        .expect("the filtered audit page")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert!(!cells.is_empty(), "{}", client.source().await);
    assert!(cells.iter().all(|c| *c == action), "{cells:?}");
    violations.push(("audit", accessibility_violations(&client, &axe).await));
    sign_out(&client).await;

    let serious: Vec<_> = violations.iter().filter(|(_, v)| !v.is_empty()).collect();
    assert!(serious.is_empty(), "{serious:#?}");

    // A viewer sees no patient names: not on data quality, and the quarantine, review
    // and patient pages are refused.
    sign_in(&client, &base, "vic").await;
    for page in [
        "/console/data-quality",
        "/console/quarantine",
        "/console/quarantine/1",
        "/console/reviews",
        "/console/patients/E1",
        "/console/admin",
        "/console/audit",
    ] {
        client.goto(&format!("{base}{page}")).await;
        client.find("main h1").await;
        let source = client.source().await;
        assert!(
            !source.contains("QUILLFEATHER") && !source.contains("MRN-"),
            "{page}: {source}"
        );
        if page != "/console/data-quality" {
            assert!(source.contains("does not allow"), "{page}: {source}");
        }
    }
    client.goto(&format!("{base}/")).await;
    let nav = text_of(&client, "header").await;
    assert!(
        !nav.contains("Quarantine") && !nav.contains("Patient index"),
        "{nav}"
    );

    client.close().await;
    engine.shutdown().await;
}
