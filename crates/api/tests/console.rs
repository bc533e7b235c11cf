//! The web console over a real socket and a real SQLite file: a browser that is not
//! signed in is sent to the sign-in page, signs in with the form, and sees the
//! dashboard; each role sees what its permissions allow (a viewer: counts, no patient
//! names and no message pages); the browser's search and a message's labelled fields;
//! reprocessing from the detail page with the session's CSRF token; the security
//! headers and embedded assets.

use std::sync::Arc;

use store::{MessageState, NewMessage, Store, UnixMicros};

mod console_common;
use console_common::{Answer, HTML, Server, call, csrf_of, serve, serve_with, sign_in};

async fn add_message(store: &Store, control_id: &str, name: &str, state: MessageState) -> i64 {
    let message = NewMessage {
        channel: Arc::from("lab"),
        raw: bytes::Bytes::from(format!(
            "MSH|^~\\&|LIS|H|EHR|H|2024||ORU^R01|{control_id}|P|2.5.1\rPID|1||MRN7^^^H||{name}^ANNA\rOBR|1|PL1|FI1|718-7^Hemoglobin^LN\r"
        )),
        received_at: UnixMicros::now(),
        peer: Arc::from("127.0.0.1:5000"),
        tls_identity: None,
        sending_application: "LIS".into(),
        sending_facility: "H".into(),
        message_type: "ORU^R01".into(),
        control_id: control_id.into(),
        version: "2.5.1".into(),
        state,
        state_reason: None,
    };
    let store::Appended::New(id) = store.journal().append(message, None).await.unwrap() else {
        panic!("a new message")
    };
    let keys = vec![(store::search::SearchKind::PatientName, name.to_owned())];
    store
        .write(move |conn| store::search::index_in(conn, id.0, &keys))
        .await
        .unwrap();
    id.0
}

#[tokio::test]
async fn a_browser_signs_in_and_sees_the_dashboard_with_the_security_headers() {
    let server = serve().await;
    add_message(&server.store, "C1", "QUILLFEATHER", MessageState::Errored).await;
    // Not signed in: a browser is sent to the sign-in page, an API client gets JSON.
    let away = call(server.addr, "GET", "/", &[HTML], "").await;
    assert_eq!(away.status, 303);
    assert_eq!(away.header("location").as_deref(), Some("/login?next=%2F"));
    let json = call(server.addr, "GET", "/", &[], "").await;
    assert_eq!(json.status, 401);
    assert!(json.body.contains("\"error\""));
    let login = call(server.addr, "GET", "/login?next=%2F", &[HTML], "").await;
    assert_eq!(login.status, 200);
    assert!(
        login
            .body
            .contains("<form class=\"login\" method=\"post\" action=\"/login\">")
    );
    let csp = login.header("content-security-policy").unwrap();
    assert!(
        csp.contains("default-src 'self'") && csp.contains("script-src 'self'"),
        "{csp}"
    );
    assert!(!csp.contains("unsafe-inline"));
    assert!(!login.body.contains("<script>"), "no inline script");

    let cookie = sign_in(&server, "ana").await;
    let board = call(server.addr, "GET", "/", &[HTML, &cookie], "").await;
    assert_eq!(board.status, 200, "{}", board.body);
    assert!(
        board
            .body
            .contains("data-count=\"lab/errored\"><a href=\"/console/messages?channel=lab&amp;state=errored\">1</a>"),
        "{}",
        board.body
    );
    assert!(board.header("content-security-policy").is_some());
    // The live counts, once as JSON for a client that does not ask for a stream.
    let counts = call(server.addr, "GET", "/console/events", &[&cookie], "").await;
    assert_eq!(counts.status, 200);
    assert!(
        counts.body.contains("\"lab/errored\":\"1\""),
        "{}",
        counts.body
    );
    // Assets come from the binary.
    let script = call(server.addr, "GET", "/console/assets/console.js", &[], "").await;
    assert_eq!(script.status, 200);
    assert!(
        script
            .header("content-type")
            .unwrap()
            .starts_with("text/javascript")
    );
    assert!(script.body.contains("EventSource"));
    let missing = call(server.addr, "GET", "/console/assets/nothing.js", &[], "").await;
    assert_eq!(missing.status, 404);
}

#[tokio::test]
async fn a_viewer_sees_counts_but_no_patient_names() {
    let server = serve().await;
    let id = add_message(&server.store, "C1", "QUILLFEATHER", MessageState::Errored).await;
    let cookie = sign_in(&server, "vic").await;
    let board = call(server.addr, "GET", "/", &[HTML, &cookie], "").await;
    assert_eq!(board.status, 200);
    assert!(
        board.body.contains("data-count=\"lab/errored\">1<"),
        "{}",
        board.body
    );
    assert!(!board.body.contains("/console/messages"));
    assert!(!board.body.contains("QUILLFEATHER"));
    for path in [
        "/console/messages".to_owned(),
        "/console/messages?patient_name=QUILL".to_owned(),
        format!("/console/messages/{id}"),
    ] {
        let page = call(server.addr, "GET", &path, &[HTML, &cookie], "").await;
        assert_eq!(page.status, 403, "{path}");
        assert!(!page.body.contains("QUILLFEATHER"), "{path}");
        assert!(!page.body.contains("MRN7"), "{path}");
    }
}

#[tokio::test]
async fn the_browser_finds_a_message_whose_fields_are_labelled_and_an_operator_reprocesses_it() {
    let server = serve().await;
    add_message(&server.store, "C1", "DOE", MessageState::Processed).await;
    let id = add_message(&server.store, "C2", "QUILLFEATHER", MessageState::Errored).await;
    let cookie = sign_in(&server, "ana").await;
    let found = call(
        server.addr,
        "GET",
        "/console/messages?patient_name=quill&state=",
        &[HTML, &cookie],
        "",
    )
    .await;
    assert_eq!(found.status, 200, "{}", found.body);
    assert!(
        found
            .body
            .contains(&format!("<a href=\"/console/messages/{id}\">{id}</a>"))
    );
    assert!(
        found.body.contains(">C2<") && !found.body.contains(">C1<"),
        "{}",
        found.body
    );
    let bad = call(
        server.addr,
        "GET",
        "/console/messages?since=someday",
        &[HTML, &cookie],
        "",
    )
    .await;
    assert_eq!(bad.status, 400);
    assert!(bad.body.contains("since"));

    let detail = call(
        server.addr,
        "GET",
        &format!("/console/messages/{id}"),
        &[HTML, &cookie],
        "",
    )
    .await;
    assert_eq!(detail.status, 200);
    assert!(
        detail
            .body
            .contains("title=\"PID-5 Patient Name (XPN)\">QUILLFEATHER^ANNA<"),
        "{}",
        detail.body
    );
    assert!(
        detail
            .body
            .contains("title=\"OBR-2 Placer Order Number (EI)\">PL1<")
    );
    // An analyst has no reprocess button; an operator has, with the session's token.
    assert!(!detail.body.contains("/reprocess"));
    let operator = sign_in(&server, "olivia").await;
    let detail = call(
        server.addr,
        "GET",
        &format!("/console/messages/{id}"),
        &[HTML, &operator],
        "",
    )
    .await;
    let token = detail
        .body
        .split("name=\"csrf_token\" value=\"")
        .nth(2)
        .and_then(|rest| rest.split('"').next())
        .expect("a reprocess form with the CSRF token")
        .to_owned();
    let path = format!("/console/messages/{id}/reprocess");
    let forged = call(
        server.addr,
        "POST",
        &path,
        &[&operator, "Content-Type: application/x-www-form-urlencoded"],
        "csrf_token=forged",
    )
    .await;
    assert_eq!(forged.status, 403);
    let done = call(
        server.addr,
        "POST",
        &path,
        &[&operator, "Content-Type: application/x-www-form-urlencoded"],
        &format!("csrf_token={token}"),
    )
    .await;
    assert_eq!(done.status, 303, "{}", done.body);
    let state = server
        .store
        .journal()
        .get(store::MessageId(id))
        .unwrap()
        .unwrap()
        .entry
        .state;
    assert_eq!(state, MessageState::Received);
}

/// Feeds an A04 with `pid` to the patient index, as the engine's stage would.
fn feed(service: &mpi::MpiService, control: &str, pid: &str) {
    let raw = format!(
        "MSH|^~\\&|ADT|NORTH|CORRIDOR|HUB|20260101120000||ADT^A04^ADT_A01|{control}|P|2.5.1\r{pid}\r"
    );
    let message = hl7v2::Message::parse(raw.as_bytes()).unwrap();
    let action = mpi::hl7::action_of(&message).unwrap().unwrap();
    let applied = service.apply_message(action, control, "A04");
    let events = applied.events;
    service
        .store()
        .write(move |conn| mpi::persist::append_events_in(conn, &events))
        .wait()
        .unwrap();
    applied.result.unwrap();
}

#[tokio::test]
async fn a_steward_merges_and_unmerges_from_the_patient_page_and_an_operator_cannot() {
    let server = serve_with(|store| {
        let config = mpi::MpiConfig {
            enabled: true,
            ..mpi::MpiConfig::default()
        };
        let service = mpi::MpiService::open_blocking(store, config).unwrap();
        feed(
            &service,
            "1",
            "PID|1||4711^^^NORTH^MR||Smith^John||19800312|M|||12 High St^^Springfield^IL^62701",
        );
        feed(
            &service,
            "2",
            "PID|1||5000^^^NORTH^MR||Nguyen^Anh||19920704|F|||1 Lake Rd^^Portland^OR^97201",
        );
        Some(service)
    })
    .await;
    let form = "Content-Type: application/x-www-form-urlencoded";
    let steward = sign_in(&server, "sam").await;
    let page = call(
        server.addr,
        "GET",
        "/console/patients/E1",
        &[HTML, &steward],
        "",
    )
    .await;
    assert_eq!(page.status, 200, "{}", page.body);
    assert!(page.body.contains("<td>Smith</td>"), "{}", page.body);
    assert!(page.body.contains("action=\"/console/patients/merge\""));
    let token = csrf_of(&page.body);

    // An operator may not merge, even with a session and its token.
    let operator = sign_in(&server, "olivia").await;
    let theirs = call(
        server.addr,
        "GET",
        "/console/patients/E1",
        &[HTML, &operator],
        "",
    )
    .await;
    assert!(!theirs.body.contains("/console/patients/merge"));
    let refused = call(
        server.addr,
        "POST",
        "/console/patients/merge",
        &[&operator, form],
        &format!("csrf_token={}&survivor=E1&merged=E2", csrf_of(&theirs.body)),
    )
    .await;
    assert_eq!(refused.status, 403);

    let merged = call(
        server.addr,
        "POST",
        "/console/patients/merge",
        &[&steward, form],
        &format!("csrf_token={token}&survivor=E1&merged=E2&note=same+person"),
    )
    .await;
    assert_eq!(merged.status, 303, "{}", merged.body);
    assert_eq!(
        merged.header("location").as_deref(),
        Some("/console/patients/E1?notice=E2%20merged%20into%20E1.")
    );
    let after = call(
        server.addr,
        "GET",
        "/console/patients/E2",
        &[HTML, &steward],
        "",
    )
    .await;
    assert!(
        after.body.contains("E2 was merged into E1."),
        "{}",
        after.body
    );
    assert!(after.body.contains("<td>Nguyen</td>") && after.body.contains("<td>Smith</td>"));
    let seq = after
        .body
        .split("name=\"merge_event\" value=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .expect("an unmerge form on the merge")
        .to_owned();
    let undone = call(
        server.addr,
        "POST",
        "/console/patients/unmerge",
        &[&steward, form],
        &format!("csrf_token={token}&merge_event={seq}&back=E1"),
    )
    .await;
    assert_eq!(undone.status, 303, "{}", undone.body);
    assert!(
        undone
            .header("location")
            .is_some_and(|l| l.starts_with("/console/patients/E1?notice=Merge")),
        "{:?}",
        undone.header("location")
    );
    let apart = call(
        server.addr,
        "GET",
        "/console/patients/E2",
        &[HTML, &steward],
        "",
    )
    .await;
    assert!(!apart.body.contains("was merged into"), "{}", apart.body);
    assert!(apart.body.contains("<td>Nguyen</td>") && !apart.body.contains("<td>Smith</td>"));

    // A second unmerge of the same merge is refused, and the page says why.
    let again = call(
        server.addr,
        "POST",
        "/console/patients/unmerge",
        &[&steward, form],
        &format!("csrf_token={token}&merge_event={seq}&back=E1"),
    )
    .await;
    assert!(
        again
            .header("location")
            .is_some_and(|l| l.contains("?error=")),
        "{:?}",
        again.header("location")
    );
}

#[tokio::test]
async fn a_banner_shows_only_after_the_console_s_own_redirect_not_from_a_crafted_link() {
    let server = serve().await;
    let session = sign_in(&server, "olivia").await;
    let path = "/?error=Your%20session%20expired%3A%20call%20555-0100";
    let crafted = call(server.addr, "GET", path, &[HTML, &session], "").await;
    assert_eq!(crafted.status, 200, "{}", crafted.body);
    assert!(!crafted.body.contains("555-0100"), "{}", crafted.body);

    let own = call(
        server.addr,
        "GET",
        path,
        &[HTML, &session, "Sec-Fetch-Site: same-origin"],
        "",
    )
    .await;
    assert!(own.body.contains("call 555-0100"), "{}", own.body);
}

/// The journal's counts for `lab` by SQLite's `GROUP BY`, by state name.
fn lab_counts_by_group_by(store: &Store) -> Vec<(String, u64)> {
    store
        .read(|conn| {
            let mut statement = conn.prepare(
                "SELECT state, count(*) FROM journal WHERE channel = 'lab' GROUP BY state",
            )?;
            let rows = statement
                .query_map([], |r| Ok((r.get(0)?, r.get::<_, i64>(1)? as u64)))?
                .collect::<Result<Vec<_>, _>>()?;
            Ok(rows)
        })
        .unwrap()
}

#[tokio::test]
async fn the_dashboard_s_running_counts_equal_the_journal_s_group_by_and_each_links_to_its_messages()
 {
    let server = serve().await;
    // A mixed run: messages in every state, some moved on, some reprocessed.
    let mut ids = Vec::new();
    let states = [
        MessageState::Received,
        MessageState::Processed,
        MessageState::Filtered,
        MessageState::Quarantined,
        MessageState::Errored,
        MessageState::Delivered,
        MessageState::DeadLettered,
        MessageState::Rejected,
    ];
    for i in 0..24 {
        let state = states[i % states.len()];
        ids.push(add_message(&server.store, &format!("M{i}"), "DOE", state).await);
    }
    let journal = server.store.journal();
    for (i, id) in ids.iter().enumerate().take(8) {
        // Processed, then delivered or dead-lettered as a destination answers.
        let next = if i % 2 == 0 {
            MessageState::Delivered
        } else {
            MessageState::DeadLettered
        };
        journal
            .set_state(store::MessageId(*id), next, None)
            .await
            .unwrap();
    }
    // Reprocessed: back to received.
    for id in &ids[8..11] {
        journal
            .set_state(store::MessageId(*id), MessageState::Received, None)
            .await
            .unwrap();
    }
    let expected = lab_counts_by_group_by(&server.store);
    let count_of = |state: &str| {
        expected
            .iter()
            .find(|(s, _)| s == state)
            .map_or(0, |(_, n)| *n)
    };

    let cookie = sign_in(&server, "vic").await;
    let live = call(server.addr, "GET", "/console/events", &[&cookie], "").await;
    assert_eq!(live.status, 200, "{}", live.body);
    let live: serde_json::Value = serde_json::from_str(&live.body).unwrap();
    for state in console::STATES {
        assert_eq!(
            live[format!("lab/{state}")],
            serde_json::json!(count_of(state).to_string()),
            "{state}: {live}"
        );
    }
    // 24 stored within the minute; one left `received` for a final state (the first).
    assert_eq!(live["lab/stored_per_second"], "0.40", "{live}");
    assert_eq!(live["lab/processed_per_second"], "0.02", "{live}");
    // Receipt to stored and to processed, from the same commits.
    for hop in ["stored_p50", "stored_p99", "processed_p50", "processed_p99"] {
        let text = live[format!("lab/{hop}")]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        assert!(
            text.starts_with('≤') || text.starts_with('>'),
            "{hop}: {live}"
        );
    }
    let stats = call(server.addr, "GET", "/api/stats?channel=lab", &[&cookie], "").await;
    assert_eq!(stats.status, 200, "{}", stats.body);
    let stats: serde_json::Value = serde_json::from_str(&stats.body).unwrap();
    for state in MessageState::ALL {
        assert_eq!(
            stats["messages"][state.as_str()],
            serde_json::json!(count_of(state.as_str())),
            "{state}: {stats}"
        );
    }

    // Every count on an analyst's dashboard links to the browser listing exactly those.
    let cookie = sign_in(&server, "ana").await;
    let board = call(server.addr, "GET", "/", &[HTML, &cookie], "").await;
    for state in console::STATES {
        let link = format!("/console/messages?channel=lab&amp;state={state}");
        let n = count_of(state);
        assert!(
            board.body.contains(&format!("href=\"{link}\">{n}<")),
            "{state} {n}: {}",
            board.body
        );
        let page = call(
            server.addr,
            "GET",
            &link.replace("&amp;", "&"),
            &[HTML, &cookie],
            "",
        )
        .await;
        assert_eq!(page.status, 200, "{state}: {}", page.body);
        assert_eq!(
            page.body.matches("<a href=\"/console/messages/").count() as u64,
            n,
            "{state}: {}",
            page.body
        );
    }
}

#[tokio::test]
async fn the_dashboard_draws_the_per_minute_history_as_svg_with_a_table() {
    let server = serve().await;
    add_message(&server.store, "H1", "DOE", MessageState::Processed).await;
    server
        .store
        .migrate_component(store::minutes::COMPONENT, store::minutes::MIGRATIONS)
        .await
        .unwrap();
    let minute = (UnixMicros::now().0 / 60_000_000) as u64 - 3;
    let mut latencies = store::HopLatencies::default();
    latencies.stored.count = 42;
    latencies.processed.count = 40;
    latencies.processed.buckets[3] = 40; // ≤ 1 ms
    server
        .store
        .write(move |conn| store::minutes::write_in(conn, minute, &[("lab".to_owned(), latencies)]))
        .await
        .unwrap();
    let cookie = sign_in(&server, "vic").await;
    let board = call(server.addr, "GET", "/", &[HTML, &cookie], "").await;
    assert_eq!(board.status, 200);
    assert_eq!(
        board.body.matches("<svg role=\"img\"").count(),
        2,
        "{}",
        board.body
    );
    assert!(
        board
            .body
            .contains("lab: messages per 5 min and processing p99, last 6 hours")
    );
    // The 5-minute span and the hour holding that minute, in each table (with H1,
    // stored this minute, when the span holds this minute too).
    assert_eq!(
        board
            .body
            .matches("</td><td class=\"n\">40</td><td class=\"n\">≤ 1 ms</td>")
            .count(),
        2,
        "{}",
        board.body
    );
    // The minute under way counts from memory: the 6 hours hold the 42 of the history
    // and H1.
    let six_hours = board.body.split("last 7 days").next().unwrap();
    let stored: u64 = six_hours
        .split("<tr><td>")
        .skip(1)
        .filter_map(|row| {
            row.split("<td class=\"n\">")
                .nth(1)?
                .split('<')
                .next()?
                .parse::<u64>()
                .ok()
        })
        .sum();
    assert_eq!(stored, 43, "{six_hours}");
    assert!(board.body.contains(" stored</title>"));
    assert!(board.body.contains("<div data-charts=\"/console/charts\">"));

    // The charts alone, as the dashboard's script fetches them again.
    let charts = call(server.addr, "GET", "/console/charts", &[HTML, &cookie], "").await;
    assert_eq!(charts.status, 200);
    assert!(
        charts.body.starts_with("<h2>History</h2>"),
        "{}",
        charts.body
    );
    assert!(!charts.body.contains("<html"), "{}", charts.body);
    assert_eq!(charts.body.matches("<svg role=\"img\"").count(), 2);
    assert!(
        charts
            .body
            .contains("<td class=\"n\">40</td><td class=\"n\">≤ 1 ms</td>")
    );
}

#[tokio::test]
async fn saved_searches_are_each_users_own_in_the_api_and_the_browser() {
    let server = serve().await;
    add_message(&server.store, "S1", "DOE", MessageState::Errored).await;
    let ana = sign_in(&server, "ana").await;
    let page = call(
        server.addr,
        "GET",
        "/console/messages?state=errored",
        &[HTML, &ana],
        "",
    )
    .await;
    assert_eq!(page.status, 200, "{}", page.body);
    assert!(
        page.body.contains("action=\"/console/saved-searches\""),
        "{}",
        page.body
    );
    let token = csrf_of(&page.body);

    // Saved from the browser's form: back to that search, listed by name.
    let saved = call(
        server.addr,
        "POST",
        "/console/saved-searches",
        &["Content-Type: application/x-www-form-urlencoded", &ana],
        &format!("csrf_token={token}&name=My+errors&query=state%3Derrored%26channel%3Dlab"),
    )
    .await;
    assert_eq!(saved.status, 303, "{}", saved.body);
    assert_eq!(
        saved.header("location").as_deref(),
        Some("/console/messages?state=errored&channel=lab")
    );
    let page = call(server.addr, "GET", "/console/messages", &[HTML, &ana], "").await;
    assert!(
        page.body
            .contains("<a href=\"/console/messages?state=errored&amp;channel=lab\">My errors</a>"),
        "{}",
        page.body
    );

    // The API lists the caller's own, and refuses a query the search would refuse.
    let csrf = format!("X-CSRF-Token: {token}");
    let listed = call(server.addr, "GET", "/api/saved-searches", &[&ana], "").await;
    assert_eq!(listed.status, 200, "{}", listed.body);
    let json: serde_json::Value = serde_json::from_str(&listed.body).unwrap();
    assert_eq!(json["searches"][0]["name"], "My errors");
    assert_eq!(json["searches"][0]["query"], "state=errored&channel=lab");
    let bad = call(
        server.addr,
        "POST",
        "/api/saved-searches",
        &["Content-Type: application/json", &ana, &csrf],
        r#"{"name": "odd", "query": "state=lost"}"#,
    )
    .await;
    assert_eq!(bad.status, 400, "{}", bad.body);
    assert!(bad.body.contains("lost"), "{}", bad.body);
    let made = call(
        server.addr,
        "POST",
        "/api/saved-searches",
        &["Content-Type: application/json", &ana, &csrf],
        r#"{"name": "doe", "query": "patient_name=doe"}"#,
    )
    .await;
    assert_eq!(made.status, 201, "{}", made.body);

    // Another user sees none of them and cannot delete them.
    let olivia = sign_in(&server, "olivia").await;
    let theirs = call(server.addr, "GET", "/api/saved-searches", &[&olivia], "").await;
    let json: serde_json::Value = serde_json::from_str(&theirs.body).unwrap();
    assert_eq!(json["searches"], serde_json::json!([]), "{}", theirs.body);
    let page = call(
        server.addr,
        "GET",
        "/console/messages",
        &[HTML, &olivia],
        "",
    )
    .await;
    let their_token = csrf_of(&page.body);
    let gone = call(
        server.addr,
        "DELETE",
        "/api/saved-searches/doe",
        &[&olivia, &format!("X-CSRF-Token: {their_token}")],
        "",
    )
    .await;
    assert_eq!(gone.status, 404, "{}", gone.body);

    // A viewer, who reads no patient data, has no saved searches.
    let vic = sign_in(&server, "vic").await;
    let refused = call(server.addr, "GET", "/api/saved-searches", &[&vic], "").await;
    assert_eq!(refused.status, 403, "{}", refused.body);

    // Deleted by its owner, from the list's button and through the API.
    let deleted = call(
        server.addr,
        "POST",
        "/console/saved-searches/My%20errors/delete",
        &["Content-Type: application/x-www-form-urlencoded", &ana],
        &format!("csrf_token={token}"),
    )
    .await;
    assert_eq!(deleted.status, 303, "{}", deleted.body);
    let deleted = call(
        server.addr,
        "DELETE",
        "/api/saved-searches/doe",
        &[&ana, &csrf],
        "",
    )
    .await;
    assert_eq!(deleted.status, 204, "{}", deleted.body);
    let listed = call(server.addr, "GET", "/api/saved-searches", &[&ana], "").await;
    let json: serde_json::Value = serde_json::from_str(&listed.body).unwrap();
    assert_eq!(json["searches"], serde_json::json!([]));
}

/// A body sent in chunks (`Transfer-Encoding: chunked`, as a streamed export is), joined.
fn dechunk(answer: &Answer) -> String {
    if !answer
        .header("transfer-encoding")
        .is_some_and(|v| v.contains("chunked"))
    {
        return answer.body.clone();
    }
    let mut out = String::new();
    let mut rest = answer.body.as_str();
    while let Some((size, after)) = rest.split_once("\r\n") {
        let size = usize::from_str_radix(size.trim(), 16).unwrap();
        if size == 0 {
            break;
        }
        out.push_str(&after[..size]);
        rest = &after[size + 2..];
    }
    out
}

/// The page of `GET /api/audit?format=page&...` as JSON.
async fn audit_records(server: &Server, cookie: &str, query: &str) -> serde_json::Value {
    let answer = call(
        server.addr,
        "GET",
        &format!("/api/audit?format=page&{query}"),
        &[cookie],
        "",
    )
    .await;
    assert_eq!(answer.status, 200, "{query}: {}", answer.body);
    serde_json::from_str(&answer.body).unwrap()
}

fn field_of<'a>(page: &'a serde_json::Value, key: &str) -> Vec<&'a serde_json::Value> {
    page["records"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| &r[key])
        .collect()
}

#[tokio::test]
async fn the_audit_trail_is_filtered_paged_and_exported_for_admins_only_and_its_view_is_audited() {
    let server = serve().await;
    let first = add_message(&server.store, "C1", "QUILLFEATHER", MessageState::Processed).await;
    let second = add_message(&server.store, "C2", "QUILLFEATHER", MessageState::Processed).await;
    let ana = sign_in(&server, "ana").await;
    let vic = sign_in(&server, "vic").await;
    let ada = sign_in(&server, "ada").await;
    // Records to find: ana reads two messages and a patient page (no patient index:
    // 404, still recorded with its patient); a viewer and an analyst are refused the
    // audit page (recorded as denied).
    for id in [first, second, first] {
        let page = call(
            server.addr,
            "GET",
            &format!("/console/messages/{id}"),
            &[HTML, &ana],
            "",
        )
        .await;
        assert_eq!(page.status, 200);
    }
    call(
        server.addr,
        "GET",
        "/console/patients/E12",
        &[HTML, &ana],
        "",
    )
    .await;
    for cookie in [&vic, &ana] {
        let page = call(server.addr, "GET", "/console/audit", &[HTML, cookie], "").await;
        assert_eq!(page.status, 403, "{}", page.body);
        assert!(!page.body.contains("Hash chain"));
        let api = call(server.addr, "GET", "/api/audit?format=page", &[cookie], "").await;
        assert_eq!(api.status, 403);
    }

    // The admin's page: the chain's state, the records newest first, filtered by action.
    let page = call(server.addr, "GET", "/console/audit", &[HTML, &ada], "").await;
    assert_eq!(page.status, 200, "{}", page.body);
    assert!(page.body.contains("Hash chain intact"), "{}", page.body);
    assert!(
        page.body
            .contains("href=\"/console/audit\">Audit trail</a>")
    );
    let action = "GET /console/messages/{id}";
    let filtered = call(
        server.addr,
        "GET",
        &format!("/console/audit?action={}", console::url_encode(action)),
        &[HTML, &ada],
        "",
    )
    .await;
    assert_eq!(filtered.status, 200);
    let cells: Vec<&str> = filtered
        .body
        .split("<td class=\"action\">")
        .skip(1)
        .collect();
    assert_eq!(cells.len(), 3, "{}", filtered.body);
    assert!(
        cells
            .iter()
            .all(|c| c.contains("GET /console/messages/{id}</a>"))
    );
    assert!(filtered.body.contains(&format!(
        "href=\"/api/audit?action={}&amp;format=csv\"",
        console::url_encode(action)
    )));

    // The API: the same filters, keyset pages newest first, no record twice.
    let one = audit_records(&server, &ada, "who=ana&limit=2").await;
    let seqs: Vec<i64> = field_of(&one, "seq")
        .iter()
        .map(|v| v.as_i64().unwrap())
        .collect();
    assert_eq!(seqs.len(), 2);
    assert!(seqs[0] > seqs[1]);
    let next = one["next_before"].as_i64().unwrap();
    assert_eq!(next, seqs[1]);
    let two = audit_records(&server, &ada, &format!("who=ana&limit=2&before={next}")).await;
    let more: Vec<i64> = field_of(&two, "seq")
        .iter()
        .map(|v| v.as_i64().unwrap())
        .collect();
    assert!(more.iter().all(|s| *s < seqs[1]), "{more:?}");
    let all = audit_records(&server, &ada, "who=user%3Aana&limit=500").await;
    assert!(all["next_before"].is_null());
    // The sign-in, three message reads, the patient page, two refusals (page and API).
    assert_eq!(field_of(&all, "seq").len(), 7, "{all}");
    assert!(field_of(&all, "actor").iter().all(|a| *a == "user:ana"));
    let denied = audit_records(&server, &ada, "outcome=denied").await;
    let denied_actors: Vec<&serde_json::Value> = field_of(&denied, "actor");
    assert_eq!(denied_actors.len(), 4, "{denied}");
    assert!(field_of(&denied, "outcome").iter().all(|o| *o == "denied"));
    let patient = audit_records(&server, &ada, "patient=E12").await;
    // The patient page, and the admin's first view of the audit page, which showed it.
    assert_eq!(
        field_of(&patient, "resource"),
        vec!["/console/audit", "/console/patients/E12"]
    );
    assert!(
        field_of(&patient, "patients")
            .iter()
            .all(|p| *p == &serde_json::json!(["E12"]))
    );
    let resource = format!("/console/messages/{second}");
    let by_resource = audit_records(
        &server,
        &ada,
        &format!("resource={}", console::url_encode(&resource)),
    )
    .await;
    assert_eq!(field_of(&by_resource, "resource").len(), 1);
    let reads = audit_records(&server, &ada, "kind=R&who=ana").await;
    assert_eq!(field_of(&reads, "kind").len(), 4);
    let tomorrow = datetime::rfc3339::format_micros(UnixMicros::now().0 + 86_400_000_000);
    let none = audit_records(&server, &ada, &format!("from={}", &tomorrow[..10])).await;
    assert!(field_of(&none, "seq").is_empty());
    let today = &datetime::rfc3339::format_micros(UnixMicros::now().0)[..10];
    let through_today =
        audit_records(&server, &ada, &format!("to={today}&who=ana&limit=500")).await;
    assert_eq!(
        field_of(&through_today, "seq").len(),
        7,
        "a date includes its day"
    );

    // The export: streamed CSV and JSON of the same filter, oldest first.
    let csv = call(
        server.addr,
        "GET",
        "/api/audit?format=csv&outcome=denied",
        &[&ada],
        "",
    )
    .await;
    assert_eq!(csv.status, 200);
    assert!(csv.header("content-type").unwrap().starts_with("text/csv"));
    let csv = dechunk(&csv);
    let lines: Vec<&str> = csv.lines().collect();
    assert!(lines[0].starts_with("seq,at,actor,"), "{csv}");
    assert_eq!(lines.len(), 5, "{csv}");
    assert!(lines[1..].iter().all(|l| l.contains(",denied,")));
    let json = call(
        server.addr,
        "GET",
        &format!(
            "/api/audit?format=json&action={}",
            console::url_encode(action)
        ),
        &[&ada],
        "",
    )
    .await;
    let json: serde_json::Value = serde_json::from_str(&dechunk(&json)).unwrap();
    let exported = json.as_array().unwrap();
    assert_eq!(exported.len(), 3);
    assert!(exported[0]["seq"].as_i64() < exported[2]["seq"].as_i64());
    // The old contract still holds: since alone, JSON by default.
    let old = call(
        server.addr,
        "GET",
        "/api/audit?since=2020-01-01",
        &[&ada],
        "",
    )
    .await;
    assert_eq!(old.status, 200);
    assert!(
        serde_json::from_str::<serde_json::Value>(&dechunk(&old))
            .unwrap()
            .is_array()
    );

    // Bad filters: a 400 naming the parameter, on the API and on the page.
    for (query, name) in [
        ("kind=Z", "kind"),
        ("outcome=maybe", "outcome"),
        ("from=yesterday", "from"),
        ("before=x", "before"),
        ("format=xml", "format"),
    ] {
        let bad = call(
            server.addr,
            "GET",
            &format!("/api/audit?{query}"),
            &[&ada],
            "",
        )
        .await;
        assert_eq!(bad.status, 400, "{query}");
        assert!(bad.body.contains(name), "{query}: {}", bad.body);
    }
    let bad = call(
        server.addr,
        "GET",
        "/console/audit?from=yesterday",
        &[HTML, &ada],
        "",
    )
    .await;
    assert_eq!(bad.status, 400);
    assert!(bad.body.contains("role=\"alert\">from:"), "{}", bad.body);

    // Viewing the page is itself recorded: a read by ada naming the filter and the
    // patients it showed.
    let shown = call(
        server.addr,
        "GET",
        "/console/audit?patient=E12",
        &[HTML, &ada],
        "",
    )
    .await;
    assert_eq!(shown.status, 200);
    let views = audit_records(&server, &ada, "action=audit.view").await;
    let newest = &views["records"][0];
    assert_eq!(newest["actor"], "user:ada");
    assert_eq!(newest["kind"], "R");
    assert_eq!(newest["patients"], serde_json::json!(["E12"]));
    assert!(
        newest["detail"].as_str().unwrap().contains("patient=E12"),
        "{newest}"
    );
    // Each view of the page is recorded once (not again by the access layer).
    assert_eq!(field_of(&views, "seq").len(), 4, "{views}");
    let guard = audit_records(&server, &ada, "action=GET%20%2Fconsole%2Faudit&who=ada").await;
    assert!(field_of(&guard, "seq").is_empty(), "{guard}");
}
