//! The console's dead letters and a message's detail, over real sockets with browser
//! sessions (sign-in form, cookie, CSRF token from the page): dead letters page past the
//! first 50 and are discarded (confirmed, with a reason, audited) from the console and
//! the API, and a discarded entry says so on its message's page; the page shows each
//! hop's time, resends to one destination for an operator only, links the quarantine
//! entry and the patient's golden record, lists the validation findings and the FHIR
//! resources made from the message, and draws the message as a tree.

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use access::Role;
use common::{count, rows, wait_for};
use engine::Engine;

const LIMIT: Duration = Duration::from_secs(60);
const PASSWORD: &str = "correct horse battery staple";
const FORM: (&str, &str) = ("Content-Type", "application/x-www-form-urlencoded");

fn oru(control: &str) -> Vec<u8> {
    format!(
        "MSH|^~\\&|LIS|LAB|EHR|HOSP|20240101120000||ORU^R01^ORU_R01|{control}|P|2.5.1\r\
         PID|1||P1^^^HOSP^MR||QUILLFEATHER^JANE\r\
         OBR|1|PL1|FI1|718-7^Hemoglobin^LN\r\
         OBX|1|NM|718-7^Hemoglobin^LN||13.2|g/dL|||||F\r"
    )
    .into_bytes()
}

fn adt(control: &str) -> Vec<u8> {
    format!(
        "MSH|^~\\&|ADT|HOSP|EHR|HOSP|20240101120000||ADT^A04^ADT_A01|{control}|P|2.5.1\r\
         EVN|A04|20240101120000\r\
         PID|1||MRN77^^^HOSP&1.2.3&ISO^MR||RIVERA^ANA^M||19750312|F\r\
         PV1|1|O\r"
    )
    .into_bytes()
}

/// An engine with sessions (no `auth = "off"`) and users of each role.
async fn start(dir: &std::path::Path, channels: &str) -> Engine {
    let toml = format!(
        "[data]\ndir = {:?}\n[http]\nlisten = \"127.0.0.1:0\"\n{channels}",
        dir.join("data").display().to_string()
    );
    let config = engine::Config::from_toml_in(&toml, dir).unwrap();
    let engine = Engine::start(config).await.unwrap();
    let users = access::Access::open(engine.store().clone()).await.unwrap();
    for (name, role) in [
        ("olivia", Role::Operator),
        ("ana", Role::Analyst),
        ("vic", Role::Viewer),
    ] {
        users
            .add_user(name, role, Some(PASSWORD), None)
            .await
            .unwrap();
    }
    engine
}

/// Signs in with the sign-in form; the session cookie (`name=value`).
async fn sign_in(addr: SocketAddr, user: &str) -> String {
    let form = format!(
        "user={user}&password={}&next=%2F",
        PASSWORD.replace(' ', "+")
    );
    let answer = common::http(addr, "POST", "/login", &[FORM], form.as_bytes()).await;
    assert_eq!(answer.status, 303, "{}", answer.body);
    answer
        .head
        .lines()
        .find_map(|l| {
            l.split_once(':')
                .filter(|(n, _)| n.eq_ignore_ascii_case("set-cookie"))
        })
        .map(|(_, v)| v.trim().split(';').next().unwrap().to_owned())
        .expect("a session cookie")
}

/// A console page as a browser gets it.
async fn page(addr: SocketAddr, cookie: &str, path: &str) -> common::Answer {
    common::http(
        addr,
        "GET",
        path,
        &[("Cookie", cookie), ("Accept", "text/html")],
        b"",
    )
    .await
}

/// The session's CSRF token, from a page's forms.
fn csrf_of(page: &str) -> String {
    page.split("name=\"csrf_token\" value=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .expect("a form with the CSRF token")
        .to_owned()
}

/// Posts a console form; the redirect's `Location`.
async fn post_form(addr: SocketAddr, cookie: &str, path: &str, form: &str) -> (u16, String) {
    let answer = common::http(
        addr,
        "POST",
        path,
        &[("Cookie", cookie), FORM],
        form.as_bytes(),
    )
    .await;
    let location = answer
        .head
        .lines()
        .find_map(|l| {
            l.split_once(':')
                .filter(|(n, _)| n.eq_ignore_ascii_case("location"))
        })
        .map(|(_, v)| v.trim().to_owned())
        .unwrap_or_default();
    (answer.status, location)
}

/// The dead-letter entry ids a quarantine page lists (their checkboxes).
fn dead_letters_listed(body: &str) -> Vec<i64> {
    body.split("aria-label=\"Select dead letter ")
        .skip(1)
        .map(|rest| rest.split('"').next().unwrap().parse().unwrap())
        .collect()
}

fn state_of(engine: &Engine, entry: i64) -> String {
    rows(
        engine.store(),
        "SELECT state FROM delivery_queue WHERE id = ?1",
        [entry],
        |r| r.get(0),
    )
    .remove(0)
}

/// Waits until the audit trail holds a record of `action` by `actor` with `outcome`.
async fn audited(engine: &Engine, actor: &str, action: &str, outcome: &str) {
    let sql = format!(
        "SELECT count(*) FROM audit_log WHERE actor LIKE '%{actor}%' AND action = '{action}' \
         AND outcome = '{outcome}'"
    );
    wait_for(&format!("{action} audited"), LIMIT, || {
        count(engine.store(), &sql) >= 1
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dead_letters_page_past_fifty_and_are_discarded_confirmed_and_audited() {
    let dir = tempfile::tempdir().unwrap();
    // Nobody listens there: `lis` dead-letters every message at its first failure,
    // `archive` delivers each.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let nowhere = closed.local_addr().unwrap();
    drop(closed);
    let engine = start(
        dir.path(),
        &format!(
            "[channels.lab]\nsource = {{ type = \"mllp\", listen = \"127.0.0.1:0\" }}\n\
             [[channels.lab.destinations]]\nname = \"archive\"\ntype = \"file\"\npath = \"archive\"\nfile_name = \"{{message_id}}.hl7\"\n\
             [[channels.lab.destinations]]\nname = \"lis\"\ntype = \"mllp\"\nto = \"{nowhere}\"\nretry = {{ max_attempts = 1 }}\n"
        ),
    )
    .await;
    let messages: Vec<Vec<u8>> = (0..53).map(|i| oru(&format!("DL{i:02}"))).collect();
    common::send_all(engine.listeners()[0].addr, &messages).await;
    let dead = "SELECT count(*) FROM delivery_queue WHERE state = 'dead_lettered'";
    wait_for("53 dead letters", LIMIT, || {
        count(engine.store(), dead) == 53
    })
    .await;
    wait_for("53 delivered to the archive", LIMIT, || {
        count(
            engine.store(),
            "SELECT count(*) FROM delivery_queue WHERE state = 'delivered'",
        ) == 53
    })
    .await;
    let addr = engine.http_addr().unwrap();
    let olivia = sign_in(addr, "olivia").await;

    // The first 50, oldest first, then the rest after the last one shown.
    let first = page(addr, &olivia, "/console/quarantine").await;
    assert_eq!(first.status, 200, "{}", first.body);
    let shown = dead_letters_listed(&first.body);
    assert_eq!(shown.len(), 50, "{}", first.body);
    assert!(shown.windows(2).all(|w| w[0] < w[1]));
    let next = first
        .body
        .split("href=\"")
        .find(|rest| rest.contains("dead_after="))
        .and_then(|rest| rest.split('"').next())
        .expect("a link to the later dead letters")
        .replace("&amp;", "&");
    assert!(
        next.ends_with(&format!("dead_after={}", shown[49])),
        "{next}"
    );
    let second = page(addr, &olivia, &next).await;
    assert_eq!(second.status, 200, "{}", second.body);
    let rest = dead_letters_listed(&second.body);
    assert_eq!(rest.len(), 3, "{}", second.body);
    assert!(rest[0] > shown[49]);
    assert!(second.body.contains("First dead letters"));
    let bad = page(addr, &olivia, "/console/quarantine?dead_after=soon").await;
    assert_eq!(bad.status, 400, "{}", bad.body);

    // A discard needs the confirmation and a reason; then the entry leaves the list.
    let token = csrf_of(&first.body);
    let (entry, other) = (shown[0], shown[1]);
    let (status, location) = post_form(
        addr,
        &olivia,
        "/console/dead-letters/discard",
        &format!("csrf_token={token}&entry={entry}&reason=obsolete"),
    )
    .await;
    assert_eq!(status, 303);
    assert!(location.contains("error=confirm"), "{location}");
    assert_eq!(state_of(&engine, entry), "dead_lettered");
    let (status, location) = post_form(
        addr,
        &olivia,
        "/console/dead-letters/discard",
        &format!("csrf_token={token}&entry={entry}&reason=obsolete+order&confirm=1"),
    )
    .await;
    assert_eq!(status, 303);
    assert!(location.contains("notice="), "{location}");
    assert_eq!(state_of(&engine, entry), "discarded");
    audited(
        &engine,
        "olivia",
        "POST /console/dead-letters/discard",
        "success",
    )
    .await;
    let after = page(addr, &olivia, "/console/quarantine").await;
    let shown_now = dead_letters_listed(&after.body);
    assert!(!shown_now.contains(&entry));
    assert_eq!(shown_now.len(), 50);

    // The API: list, discard with a reason, and a second discard is a conflict.
    let api_token = csrf_of(&after.body);
    let json_headers = [
        ("Cookie", olivia.as_str()),
        ("X-CSRF-Token", api_token.as_str()),
        ("Content-Type", "application/json"),
    ];
    let path = format!("/api/dead-letters/{other}/discard");
    let answer = common::http(addr, "POST", &path, &json_headers, b"{}").await;
    assert_eq!(answer.status, 400, "{}", answer.body);
    let answer = common::http(
        addr,
        "POST",
        &path,
        &json_headers,
        br#"{"reason": "sent by hand"}"#,
    )
    .await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    assert_eq!(answer.json()["state"], "discarded");
    assert_eq!(state_of(&engine, other), "discarded");
    let again = common::http(
        addr,
        "POST",
        &path,
        &json_headers,
        br#"{"reason": "twice"}"#,
    )
    .await;
    assert_eq!(again.status, 409, "{}", again.body);
    audited(
        &engine,
        "olivia",
        "POST /api/dead-letters/{entry}/discard",
        "success",
    )
    .await;
    let listed = common::http(
        addr,
        "GET",
        "/api/dead-letters?limit=10",
        &[("Cookie", olivia.as_str())],
        b"",
    )
    .await;
    assert_eq!(listed.status, 200, "{}", listed.body);
    let listed = listed.json();
    let ids: Vec<i64> = listed["dead_letters"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["entry"].as_i64().unwrap())
        .collect();
    assert_eq!(ids.len(), 10);
    assert!(!ids.contains(&entry) && !ids.contains(&other));
    assert_eq!(listed["next_after"], ids[9]);
    assert_eq!(listed["dead_letters"][0]["destination"], "lis");
    // An analyst reads the dead letters but cannot discard them.
    let ana = sign_in(addr, "ana").await;
    let ana_page = page(addr, &ana, "/console/quarantine").await;
    assert!(!ana_page.body.contains("/console/dead-letters/discard"));
    let (status, _) = post_form(
        addr,
        &ana,
        "/console/dead-letters/discard",
        &format!(
            "csrf_token={}&entry={}&reason=x&confirm=1",
            csrf_of(&ana_page.body),
            ids[0]
        ),
    )
    .await;
    assert_eq!(status, 403);
    assert_eq!(state_of(&engine, ids[0]), "dead_lettered");

    // The discarded entry's message says so; its hops are timed.
    let message: i64 = rows(
        engine.store(),
        "SELECT message_id FROM delivery_queue WHERE id = ?1",
        [entry],
        |r| r.get(0),
    )
    .remove(0);
    let detail = page(addr, &olivia, &format!("/console/messages/{message}")).await;
    assert_eq!(detail.status, 200, "{}", detail.body);
    assert!(
        detail
            .body
            .contains("discarded (discarded by olivia: obsolete order)"),
        "{}",
        detail.body
    );
    engine.shutdown().await;
}

/// The `<time>` of hop `hop` (for `destination`, or the message's own when empty).
fn hop_time(body: &str, hop: &str, destination: &str) -> Option<String> {
    let marker = format!("<th scope=\"row\">{hop}</th><td>{destination}</td><td><time datetime=\"");
    body.split(&marker)
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .map(str::to_owned)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_s_page_times_its_hops_resends_to_one_destination_and_links_what_it_made() {
    let dir = tempfile::tempdir().unwrap();
    let engine = start(
        dir.path(),
        "[mpi]\nenabled = true\n\
         [channels.adt]\nsource = { type = \"mllp\", listen = \"127.0.0.1:0\" }\n\
         fhir = { repository = true }\n\
         [[channels.adt.destinations]]\nname = \"archive\"\ntype = \"file\"\npath = \"archive\"\nfile_name = \"{message_id}-{entry_id}.hl7\"\n\
         [[channels.adt.destinations]]\nname = \"copy\"\ntype = \"file\"\npath = \"copy\"\nfile_name = \"{message_id}.hl7\"\n\
         [channels.lab]\nsource = { type = \"mllp\", listen = \"127.0.0.1:0\" }\n\
         [channels.lab.validation]\nstrict = true\n",
    )
    .await;
    let by_name = |name: &str| {
        engine
            .listeners()
            .iter()
            .find(|l| l.channel == name)
            .unwrap()
            .addr
    };
    common::send_all(by_name("adt"), &[adt("ADT-1")]).await;
    // Without PID-3 (required): quarantined with its findings.
    let bad = String::from_utf8(oru("BAD-1"))
        .unwrap()
        .replace("PID|1||P1^^^HOSP^MR||", "PID|1||||");
    common::send_all(by_name("lab"), &[bad.into_bytes()]).await;
    let delivered = "SELECT count(*) FROM delivery_queue WHERE state = 'delivered'";
    wait_for("both copies delivered", LIMIT, || {
        count(engine.store(), delivered) == 2
    })
    .await;
    wait_for("the lab message quarantined", LIMIT, || {
        count(
            engine.store(),
            "SELECT count(*) FROM journal WHERE state = 'quarantined'",
        ) == 1
    })
    .await;
    let id_of = |control: &str| -> i64 {
        rows(
            engine.store(),
            "SELECT id FROM journal WHERE control_id = ?1",
            [control],
            |r| r.get(0),
        )
        .remove(0)
    };
    let (adt_id, bad_id) = (id_of("ADT-1"), id_of("BAD-1"));
    let addr = engine.http_addr().unwrap();
    let olivia = sign_in(addr, "olivia").await;
    let detail = page(addr, &olivia, &format!("/console/messages/{adt_id}")).await;
    assert_eq!(detail.status, 200, "{}", detail.body);
    let body = &detail.body;

    // Each hop's time, in order: received, stored, processed, then per destination
    // queued, first sent, acknowledged (RFC 3339, UTC).
    let received = hop_time(body, "Received", "").expect("received");
    let stored = hop_time(body, "Stored", "").expect("stored");
    let processed = hop_time(body, "Processed", "").expect("processed");
    let queued = hop_time(body, "Queued", "archive").expect("queued");
    let sent = hop_time(body, "First sent", "archive").expect("first sent");
    let acked = hop_time(body, "Acknowledged", "archive").expect("acknowledged");
    let micros: Vec<i64> = [&received, &stored, &processed, &queued, &sent, &acked]
        .iter()
        .map(|t| {
            assert!(
                t.ends_with('Z') && t.contains('T') && t.len() >= 20,
                "not RFC 3339: {t}"
            );
            datetime::rfc3339::parse_time_or_date(t).unwrap()
        })
        .collect();
    assert!(micros.windows(2).all(|w| w[0] <= w[1]), "{micros:?}");
    assert_eq!(processed, queued);
    assert!(hop_time(body, "First sent", "copy").is_some());

    // The patient index's golden record and the repository's resources from it.
    // The index holds one patient, the one ADT-1 registered.
    let enterprises: Vec<i64> = rows(
        engine.store(),
        "SELECT DISTINCT enterprise FROM mpi_event_enterprises",
        [],
        |r| r.get(0),
    );
    assert_eq!(enterprises.len(), 1, "{enterprises:?}");
    let enterprise = enterprises[0];
    assert!(
        body.contains(&format!("<a href=\"/console/patients/E{enterprise}\">")),
        "{body}"
    );
    let patient: String = rows(
        engine.store(),
        "SELECT id FROM fhir_versions WHERE message_id = ?1 AND type = 'Patient'",
        [adt_id],
        |r| r.get(0),
    )
    .remove(0);
    assert!(
        body.contains(&format!(
            "<a href=\"/fhir/Patient/{patient}/_history/1\">Patient/{patient}</a>"
        )),
        "{body}"
    );
    assert!(body.contains("&quot;resourceType&quot;: &quot;Patient&quot;"));
    // The tree: segment > field > component > subcomponent, labelled.
    assert!(body.contains("<div class=\"tree\">"));
    assert!(
        body.contains("PID-3.4.2 Universal ID</span> <code>1.2.3</code>"),
        "{body}"
    );
    assert!(!body.contains("/console/quarantine/"));

    // Resend to one destination: a new entry for `archive` only, delivered.
    let token = csrf_of(body);
    let files = || {
        std::fs::read_dir(dir.path().join("archive"))
            .unwrap()
            .count()
    };
    assert_eq!(files(), 1);
    let (status, location) = post_form(
        addr,
        &olivia,
        &format!("/console/messages/{adt_id}/resend"),
        &format!("csrf_token={token}&destination=archive"),
    )
    .await;
    assert_eq!(status, 303);
    assert!(
        location.starts_with(&format!("/console/messages/{adt_id}?notice=")),
        "{location}"
    );
    wait_for("the resend delivered", LIMIT, || files() == 2).await;
    let per_destination: Vec<(String, i64)> = rows(
        engine.store(),
        "SELECT destination, count(*) FROM delivery_queue WHERE message_id = ?1 \
         GROUP BY destination ORDER BY destination",
        [adt_id],
        |r| Ok((r.get(0)?, r.get(1)?)),
    );
    assert_eq!(
        per_destination,
        [("archive".to_owned(), 2), ("copy".to_owned(), 1)]
    );
    audited(
        &engine,
        "olivia",
        "POST /console/messages/{id}/resend",
        "success",
    )
    .await;
    let (status, location) = post_form(
        addr,
        &olivia,
        &format!("/console/messages/{adt_id}/resend"),
        &format!("csrf_token={token}&destination=nowhere"),
    )
    .await;
    assert_eq!(status, 303);
    assert!(location.contains("error="), "{location}");

    // An analyst sees the page without the resend buttons and may not resend.
    let ana = sign_in(addr, "ana").await;
    let seen = page(addr, &ana, &format!("/console/messages/{adt_id}")).await;
    assert_eq!(seen.status, 200);
    assert!(seen.body.contains("RIVERA") && !seen.body.contains("/resend"));
    let (status, _) = post_form(
        addr,
        &ana,
        &format!("/console/messages/{adt_id}/resend"),
        &format!("csrf_token={}&destination=archive", csrf_of(&seen.body)),
    )
    .await;
    assert_eq!(status, 403);
    // A viewer gets no message page and no name.
    let vic = sign_in(addr, "vic").await;
    let refused = page(addr, &vic, &format!("/console/messages/{adt_id}")).await;
    assert_ne!(refused.status, 200);
    assert!(!refused.body.contains("RIVERA"));

    // The quarantined message links its entry and lists the findings stored.
    let quarantined = page(addr, &olivia, &format!("/console/messages/{bad_id}")).await;
    assert_eq!(quarantined.status, 200, "{}", quarantined.body);
    let entry: i64 = rows(
        engine.store(),
        "SELECT id FROM quarantine WHERE message_id = ?1",
        [bad_id],
        |r| r.get(0),
    )
    .remove(0);
    assert!(
        quarantined
            .body
            .contains(&format!("<a href=\"/console/quarantine/{entry}\">")),
        "{}",
        quarantined.body
    );
    assert!(quarantined.body.contains("<h2>Validation findings</h2>"));
    assert!(quarantined.body.contains("PID-3"), "{}", quarantined.body);
    assert!(quarantined.body.contains("Processed (quarantined)"));
    // Every view is in the audit trail, as a read.
    audited(&engine, "olivia", "GET /console/messages/{id}", "success").await;
    engine.shutdown().await;
}
