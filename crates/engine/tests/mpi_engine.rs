//! The patient index inside a running engine: messages arriving over MLLP are linked to
//! an enterprise patient, a transformer writes the enterprise id into the copy each
//! destination gets, the index answers over the engine's HTTP port, and a restart
//! keeps the same enterprise id.

mod common;

use std::time::Duration;

use common::{Api, send_all, start_engine, wait_for};
use engine::Engine;

fn adt(event: &str, control: &str) -> Vec<u8> {
    format!(
        "MSH|^~\\&|ADT|HOSP|EHR|HOSP|20240101120000||ADT^{event}^ADT_A01|{control}|P|2.5.1\r\
         EVN|{event}|20240101120000\r\
         PID|1||MRN77^^^HOSP&1.2.3&ISO^MR||RIVERA^ANA^M||19750312|F|||12 OAK ST^^SPRINGFIELD^IL^62704||^PRN^PH^^^217^5550100\r\
         PV1|1|I\r"
    )
    .into_bytes()
}

async fn start(dir: &std::path::Path) -> Engine {
    start_engine(
        dir,
        "data",
        Api::On,
        r#"
[mpi]
enabled = true
[channels.adt]
source = { type = "mllp", listen = "127.0.0.1:0" }
transforms = [ { set = "PID-3[2].1", value = "{enterprise_id}" }, { set = "PID-3[2].5", value = "EI" } ]
[[channels.adt.destinations]]
name = "archive"
type = "file"
path = "archive"
file_name = "{control_id}.hl7"
"#,
    )
    .await
}

/// PID-3[2].1 of the file the destination wrote for `control`, once it is there.
async fn delivered_enterprise_id(dir: &std::path::Path, control: &str) -> String {
    let file = dir.join("archive").join(format!("{control}.hl7"));
    wait_for(
        &format!("{control} to be delivered"),
        Duration::from_secs(30),
        || file.exists(),
    )
    .await;
    let raw = std::fs::read(&file).unwrap();
    let message = hl7v2::Message::parse(&raw).unwrap();
    message.get_str("PID-3[2].1").unwrap().unwrap().into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_carry_their_enterprise_id_to_the_destinations() {
    let dir = tempfile::tempdir().unwrap();
    let engine = start(dir.path()).await;
    send_all(
        engine.listeners()[0].addr,
        &[adt("A01", "ADMIT-1"), adt("A08", "UPDATE-1")],
    )
    .await;
    let admitted = delivered_enterprise_id(dir.path(), "ADMIT-1").await;
    let updated = delivered_enterprise_id(dir.path(), "UPDATE-1").await;
    assert!(!admitted.is_empty());
    assert_eq!(
        admitted, updated,
        "the same patient, the same enterprise id"
    );

    let http = engine.http_addr().unwrap();
    let answer = common::get(http, &format!("/mpi/patients/{admitted}")).await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    assert!(answer.body.contains("MRN77"), "{}", answer.body);
    let answer = common::get(
        http,
        // PID-3's authority `HOSP&1.2.3&ISO` is the system the FHIR Patient shows.
        "/mpi/fhir/Patient/$ihe-pix?sourceIdentifier=urn:oid:1.2.3%7CMRN77",
    )
    .await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    engine.shutdown().await;

    // After a restart the index is rebuilt from its log: the next message of the same
    // patient gets the same enterprise id.
    let engine = start(dir.path()).await;
    send_all(engine.listeners()[0].addr, &[adt("A08", "UPDATE-2")]).await;
    assert_eq!(
        delivered_enterprise_id(dir.path(), "UPDATE-2").await,
        admitted
    );
    engine.shutdown().await;
}

/// An HTTP GET answered 200, as JSON.
async fn json(http: std::net::SocketAddr, path: &str) -> serde_json::Value {
    let answer = common::get(http, path).await;
    assert_eq!(answer.status, 200, "{path}: {}", answer.body);
    answer.json()
}

/// `system|value` for a query string.
fn token(identifier: &serde_json::Value) -> String {
    format!(
        "{}%7C{}",
        identifier["system"].as_str().unwrap(),
        identifier["value"].as_str().unwrap()
    )
}

/// Issue 17 item 5: the identifier systems the FHIR API shows are the ones the
/// patient index answers PIXm and PDQm for (an authority with an OID, and an
/// identifier without authority, named by its sender), and an A40 keeps the
/// retired Patient's content in its new version.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_fhir_patients_identifiers_are_the_ones_the_patient_index_answers_for() {
    let dir = tempfile::tempdir().unwrap();
    let engine = start_engine(
        dir.path(),
        "data",
        Api::On,
        r#"
[mpi]
enabled = true
[channels.adt]
source = { type = "mllp", listen = "127.0.0.1:0" }
fhir = { repository = true }
"#,
    )
    .await;
    let lab = "MSH|^~\\&|LAB|NORTH|EHR|HOSP|20240101120500||ADT^A04^ADT_A01|LAB-1|P|2.5.1\r\
         EVN|A04|20240101120500\r\
         PID|1||L-9^^^^MR||RIVERA^ANA^M||19750312|F|||12 OAK ST^^SPRINGFIELD^IL^62704||^PRN^PH^^^217^5550100\r";
    send_all(
        engine.listeners()[0].addr,
        &[adt("A04", "ADMIT-1"), lab.as_bytes().to_vec()],
    )
    .await;
    let http = engine.http_addr().unwrap();
    let mut patients = serde_json::Value::Null;
    for _ in 0..600 {
        patients = json(http, "/fhir/Patient?family=RIVERA").await;
        if patients["total"].as_u64() == Some(2) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(patients["total"], 2, "{patients}");
    let identifier_of = |value: &str| {
        patients["entry"]
            .as_array()
            .unwrap()
            .iter()
            .flat_map(|e| e["resource"]["identifier"].as_array().unwrap().iter())
            .find(|i| i["value"] == value)
            .cloned()
            .unwrap_or_else(|| panic!("no identifier {value} in {patients}"))
    };
    let hospital = identifier_of("MRN77");
    assert_eq!(hospital["system"], "urn:oid:1.2.3");
    let sender = identifier_of("L-9");
    assert_eq!(sender["system"], "urn:corridor:id/LAB%40NORTH");

    // PIXm with each identifier as the FHIR API shows it: known, and answered with
    // the other in the same form.
    let pix = json(
        http,
        &format!(
            "/mpi/fhir/Patient/$ihe-pix?sourceIdentifier={}",
            token(&sender)
        ),
    )
    .await;
    let targets: Vec<&serde_json::Value> = pix["parameter"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["name"] == "targetIdentifier")
        .map(|p| &p["valueIdentifier"])
        .collect();
    assert!(
        targets
            .iter()
            .any(|t| t["system"] == hospital["system"] && t["value"] == "MRN77"),
        "{pix}"
    );
    let pix = json(
        http,
        &format!(
            "/mpi/fhir/Patient/$ihe-pix?sourceIdentifier={}",
            token(&hospital)
        ),
    )
    .await;
    assert!(
        pix["parameter"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["valueIdentifier"]["system"] == sender["system"]),
        "{pix}"
    );
    // PDQm by the same identifier.
    let found = json(
        http,
        &format!("/mpi/fhir/Patient?identifier={}", token(&hospital)),
    )
    .await;
    assert_eq!(found["total"], 1, "{found}");

    // An A40 merges MRN77 into KEEP1: the retired Patient's new version keeps
    // its name and the rest, and says who replaced it.
    let retired_id = patients["entry"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| &e["resource"])
        .find(|r| {
            r["identifier"]
                .as_array()
                .unwrap()
                .iter()
                .any(|i| i["value"] == "MRN77")
        })
        .and_then(|r| r["id"].as_str())
        .unwrap()
        .to_owned();
    let merge = "MSH|^~\\&|ADT|HOSP|EHR|HOSP|20240102120000||ADT^A40^ADT_A39|MERGE-1|P|2.5.1\r\
         EVN|A40|20240102120000\r\
         PID|1||KEEP1^^^HOSP&1.2.3&ISO^MR||RIVERA^ANA\r\
         MRG|MRN77^^^HOSP&1.2.3&ISO^MR\r";
    send_all(engine.listeners()[0].addr, &[merge.as_bytes().to_vec()]).await;
    let path = format!("/fhir/Patient/{retired_id}");
    let mut retired = serde_json::Value::Null;
    for _ in 0..600 {
        retired = json(http, &path).await;
        if retired["active"] == false {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(retired["active"], false, "{retired}");
    assert_eq!(retired["meta"]["versionId"], "2", "{retired}");
    assert_eq!(retired["link"][0]["type"], "replaced-by", "{retired}");
    assert_eq!(retired["name"][0]["family"], "RIVERA", "{retired}");
    assert_eq!(retired["name"][0]["given"][0], "ANA", "{retired}");
    assert_eq!(retired["birthDate"], "1975-03-12", "{retired}");
    assert_eq!(retired["address"][0]["city"], "SPRINGFIELD", "{retired}");
    engine.shutdown().await;
}

const PASSWORD: &str = "correct horse battery staple";

/// An ADT^A04 from NORTH with `pid` as its PID segment.
fn adt_with(control: &str, pid: &str) -> Vec<u8> {
    format!(
        "MSH|^~\\&|ADT|NORTH|CORRIDOR|HUB|20240101120000||ADT^A04^ADT_A01|{control}|P|2.5.1\r\
         EVN|A04|20240101120000\r{pid}\rPV1|1|O\r"
    )
    .into_bytes()
}

/// The value of the `/metrics` sample `series` (name and labels, exactly).
fn sample(metrics: &str, series: &str) -> Option<f64> {
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
        .and_then(|v| v.parse().ok())
}

/// A signed-in console session: its cookie and CSRF token.
struct Session {
    http: std::net::SocketAddr,
    cookie: String,
    csrf: String,
}

impl Session {
    /// Signs `user` in with `POST /login` (JSON), as the console's form does.
    async fn sign_in(http: std::net::SocketAddr, user: &str) -> Session {
        let body = serde_json::json!({"user": user, "password": PASSWORD}).to_string();
        let answer = common::http(
            http,
            "POST",
            "/login",
            &[("Content-Type", "application/json")],
            body.as_bytes(),
        )
        .await;
        assert_eq!(answer.status, 200, "{}", answer.body);
        let cookie = answer
            .head
            .lines()
            .find_map(|l| {
                let (name, value) = l.split_once(':')?;
                name.eq_ignore_ascii_case("set-cookie")
                    .then(|| value.trim().split(';').next().unwrap_or("").to_owned())
            })
            .unwrap_or_else(|| panic!("no cookie in {}", answer.head));
        let csrf = answer.json()["csrf_token"].as_str().unwrap().to_owned();
        Session { http, cookie, csrf }
    }

    async fn get(&self, path: &str) -> common::Answer {
        common::http(
            self.http,
            "GET",
            path,
            &[("Cookie", &self.cookie), ("Accept", "text/html")],
            b"",
        )
        .await
    }

    /// A console form posted with `fields` (urlencoded by the caller).
    async fn post_form(&self, path: &str, fields: &str) -> common::Answer {
        common::http(
            self.http,
            "POST",
            path,
            &[
                ("Cookie", &self.cookie),
                ("Content-Type", "application/x-www-form-urlencoded"),
            ],
            fields.as_bytes(),
        )
        .await
    }
}

/// A steward rejects a review through the console's form (session cookie and CSRF
/// token, over HTTP): the record stays a patient of its own. `/metrics` follows the
/// patient index and the repository as the messages are processed and the review is
/// decided. (`corridor_mpi_review_decisions_total` is not asserted: it counts the
/// index's in-memory history, which the engine's index does not keep, so it stays 0.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_steward_rejects_a_review_in_the_console_and_metrics_follow_the_index_and_repository() {
    let dir = tempfile::tempdir().unwrap();
    // A high link threshold: a resemblance without a shared identifier waits for a person.
    let toml = format!(
        "[data]\ndir = {:?}\n[http]\nlisten = \"127.0.0.1:0\"\n\
         [mpi]\nenabled = true\nlink_threshold = 40\n\
         [channels.adt]\nsource = {{ type = \"mllp\", listen = \"127.0.0.1:0\" }}\n\
         fhir = {{ repository = true }}\n",
        dir.path().join("data").display().to_string()
    );
    let config = engine::Config::from_toml_in(&toml, dir.path()).unwrap();
    let engine = Engine::start(config).await.unwrap();
    let users = access::Access::open(engine.store().clone()).await.unwrap();
    users
        .add_user("sam", access::Role::Steward, Some(PASSWORD), None)
        .await
        .unwrap();
    let http = engine.http_addr().unwrap();
    let sam = Session::sign_in(http, "sam").await;

    let metrics = sam.get("/metrics").await;
    assert_eq!(metrics.status, 200, "{}", metrics.body);
    assert_eq!(
        sample(&metrics.body, "corridor_mpi_source_records"),
        Some(0.0),
        "{}",
        metrics.body
    );
    assert_eq!(
        sample(&metrics.body, "corridor_fhir_resources{type=\"Patient\"}"),
        None
    );

    send_all(
        engine.listeners()[0].addr,
        &[
            adt_with(
                "A1",
                "PID|1||4711^^^NORTH^MR||QUILLFEATHER^JOHN||19800312|M|||12 High St^^Springfield^IL^62701",
            ),
            adt_with(
                "A2",
                "PID|1||R-1^^^CLINIC^MR||QUILLFEATHER^JOHN||19800312|M|||99 Low Rd^^Shelbyville^IL^62565",
            ),
        ],
    )
    .await;
    let mut body = String::new();
    for _ in 0..600 {
        body = sam.get("/metrics").await.body;
        if sample(&body, "corridor_mpi_review_queue") == Some(1.0)
            && sample(&body, "corridor_fhir_writes_total{type=\"Patient\"}").unwrap_or(0.0) >= 2.0
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        sample(&body, "corridor_mpi_source_records"),
        Some(2.0),
        "{body}"
    );
    assert_eq!(
        sample(&body, "corridor_mpi_enterprise_patients"),
        Some(2.0),
        "{body}"
    );
    assert_eq!(
        sample(&body, "corridor_mpi_review_queue"),
        Some(1.0),
        "{body}"
    );
    assert!(
        sample(&body, "corridor_fhir_resources{type=\"Patient\"}").unwrap_or(0.0) >= 1.0,
        "{body}"
    );
    assert!(
        sample(&body, "corridor_fhir_writes_total{type=\"Patient\"}").unwrap_or(0.0) >= 2.0,
        "{body}"
    );

    // The review page's reject form.
    let page = sam.get("/console/reviews").await;
    assert_eq!(page.status, 200, "{}", page.body);
    let start = page
        .body
        .find("action=\"/console/reviews/")
        .unwrap_or_else(|| panic!("no review form in {}", page.body));
    let id: String = page.body[start + "action=\"/console/reviews/".len()..]
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    assert!(
        page.body
            .contains(&format!("action=\"/console/reviews/{id}/reject\"")),
        "{}",
        page.body
    );
    let reject = format!("/console/reviews/{id}/reject");
    // Without the session's CSRF token: refused, nothing decided.
    let forged = sam.post_form(&reject, "note=not%20the%20same").await;
    assert_eq!(forged.status, 403, "{}", forged.body);
    let rejected = sam
        .post_form(
            &reject,
            &format!("csrf_token={}&note=not%20the%20same%20person", sam.csrf),
        )
        .await;
    assert_eq!(rejected.status, 303, "{}", rejected.body);
    assert!(
        rejected.head.contains("/console/reviews?notice=") && rejected.head.contains("rejected"),
        "{}",
        rejected.head
    );
    let page = sam.get("/console/reviews").await.body;
    assert!(page.contains("No record waits for review."), "{page}");

    let body = sam.get("/metrics").await.body;
    assert_eq!(
        sample(&body, "corridor_mpi_review_queue"),
        Some(0.0),
        "{body}"
    );
    // Still two patients: the rejected match was not linked.
    assert_eq!(
        sample(&body, "corridor_mpi_enterprise_patients"),
        Some(2.0),
        "{body}"
    );
    engine.shutdown().await;
}
