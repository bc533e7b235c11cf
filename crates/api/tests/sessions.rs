//! Browser sessions over a real socket and a real SQLite file: login with a password,
//! the cookie's attributes, CSRF on every change made with the cookie (not with a
//! bearer token), forged cookies, throttling, timeouts, logout, and the audit records
//! of logins.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use access::audit::{Audit, Outcome, StoredRecord};
use access::{Access as Identities, Role, SessionPolicy, ThrottlePolicy};
use api::Auth;
use serde_json::Value;
use store::{MessageState, NewMessage, Store, UnixMicros};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const PASSWORD: &str = "correct horse battery staple";

struct Server {
    addr: SocketAddr,
    store: Store,
    identities: Identities,
    audit: Audit,
    _dir: tempfile::TempDir,
}

async fn serve(policy: SessionPolicy, secure: bool) -> Server {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let identities = Identities::open(store.clone()).await.unwrap();
    let audit = Audit::open(store.clone()).await.unwrap();
    let throttle = ThrottlePolicy {
        per_user: 3,
        ..ThrottlePolicy::default()
    };
    let api = api::Api {
        auth: Auth::required(identities.clone(), None, audit.clone())
            .with_sessions(policy, throttle, secure),
        ..api::Api::new(store.clone())
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = api::router(api).into_make_service_with_connect_info::<SocketAddr>();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    for (name, role) in [("olivia", Role::Operator), ("vic", Role::Viewer)] {
        identities
            .add_user(name, role, Some(PASSWORD), None)
            .await
            .unwrap();
    }
    Server {
        addr,
        store,
        identities,
        audit,
        _dir: dir,
    }
}

async fn default_server() -> Server {
    serve(SessionPolicy::default(), false).await
}

struct Answer {
    status: u16,
    head: String,
    body: String,
}

impl Answer {
    fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("{e}: {}", self.body))
    }

    fn header(&self, name: &str) -> Option<String> {
        self.head.lines().find_map(|line| {
            let (n, v) = line.split_once(':')?;
            n.trim()
                .eq_ignore_ascii_case(name)
                .then(|| v.trim().to_owned())
        })
    }
}

/// One request with the given extra header lines and body.
async fn call(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[String],
    body: &str,
) -> Answer {
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let extra: String = headers.iter().map(|h| format!("{h}\r\n")).collect();
    let request = format!(
        "{method} {path} HTTP/1.1\r\nHost: test\r\n{extra}Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = Vec::new();
    stream.read_to_end(&mut response).await.unwrap();
    let text = String::from_utf8_lossy(&response).into_owned();
    let status = text[9..12].parse().unwrap();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    Answer {
        status,
        head: head.to_owned(),
        body: body.to_owned(),
    }
}

const JSON: &str = "Content-Type: application/json";
const FORM: &str = "Content-Type: application/x-www-form-urlencoded";

/// Logs in; the `Cookie:` header line and the CSRF token.
async fn login(server: &Server, user: &str) -> (String, String) {
    let answer = call(
        server.addr,
        "POST",
        "/login",
        &[JSON.to_owned()],
        &format!(r#"{{"user": "{user}", "password": "{PASSWORD}"}}"#),
    )
    .await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    let set_cookie = answer.header("set-cookie").expect("a session cookie");
    let pair = set_cookie.split(';').next().unwrap().to_owned();
    let csrf = answer.json()["csrf_token"].as_str().unwrap().to_owned();
    (format!("Cookie: {pair}"), csrf)
}

fn records(audit: &Audit) -> Vec<StoredRecord> {
    let mut records = Vec::new();
    audit
        .for_each_since(0, |r| {
            records.push(r);
            Ok(())
        })
        .unwrap();
    records
}

/// A processed message (so reprocessing it is allowed); its id.
async fn processed_message(store: &Store) -> i64 {
    let message = NewMessage {
        channel: Arc::from("lab"),
        raw: bytes::Bytes::from_static(
            b"MSH|^~\\&|LAB|H|EHR|H|2024||ORU^R01|S1|P|2.5.1\rPID|1||MRN1||DOE^JANE\r",
        ),
        received_at: UnixMicros::now(),
        peer: Arc::from("127.0.0.1:5000"),
        tls_identity: None,
        sending_application: "LAB".into(),
        sending_facility: "H".into(),
        message_type: "ORU^R01".into(),
        control_id: "S1".into(),
        version: "2.5.1".into(),
        state: MessageState::Processed,
        state_reason: None,
    };
    let store::Appended::New(id) = store.journal().append(message, None).await.unwrap() else {
        panic!("a new message")
    };
    id.0
}

#[tokio::test]
async fn a_login_sets_a_strict_httponly_cookie_that_authenticates_reads() {
    let server = default_server().await;
    let answer = call(
        server.addr,
        "POST",
        "/login",
        &[JSON.to_owned()],
        &format!(r#"{{"user": "vic", "password": "{PASSWORD}"}}"#),
    )
    .await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    let cookie = answer.header("set-cookie").unwrap();
    assert!(cookie.starts_with("corridor-session="), "{cookie}");
    assert!(cookie.contains("HttpOnly"), "{cookie}");
    assert!(cookie.contains("SameSite=Strict"), "{cookie}");
    assert!(!cookie.contains("Secure"), "plain HTTP: {cookie}");
    let body = answer.json();
    assert_eq!(body["user"], "vic");
    assert_eq!(body["role"], "viewer");
    assert!(body["csrf_token"].as_str().unwrap().len() >= 32);

    let (cookie, _) = login(&server, "vic").await;
    let stats = call(
        server.addr,
        "GET",
        "/api/stats",
        std::slice::from_ref(&cookie),
        "",
    )
    .await;
    assert_eq!(stats.status, 200, "{}", stats.body);
    // The role is the user's: a viewer reads no message content.
    let phi = call(server.addr, "GET", "/api/messages", &[cookie], "").await;
    assert_eq!(phi.status, 403, "{}", phi.body);
}

#[tokio::test]
async fn under_https_the_cookie_is_secure_and_host_prefixed() {
    let server = serve(SessionPolicy::default(), true).await;
    let answer = call(
        server.addr,
        "POST",
        "/login",
        &[JSON.to_owned()],
        &format!(r#"{{"user": "vic", "password": "{PASSWORD}"}}"#),
    )
    .await;
    let cookie = answer.header("set-cookie").unwrap();
    assert!(cookie.starts_with("__Host-corridor-session="), "{cookie}");
    assert!(cookie.contains("; Secure"), "{cookie}");
}

#[tokio::test]
async fn a_change_with_the_session_needs_its_csrf_token_a_bearer_token_does_not() {
    let server = default_server().await;
    let id = processed_message(&server.store).await;
    let path = format!("/api/messages/{id}/reprocess");
    let (cookie, csrf) = login(&server, "olivia").await;

    let before = records(&server.audit).len();
    let without = call(
        server.addr,
        "POST",
        &path,
        std::slice::from_ref(&cookie),
        "",
    )
    .await;
    assert_eq!(without.status, 403, "{}", without.body);
    assert!(without.json()["error"].as_str().unwrap().contains("CSRF"));
    let wrong = call(
        server.addr,
        "POST",
        &path,
        &[cookie.clone(), "X-CSRF-Token: not-the-token".to_owned()],
        "",
    )
    .await;
    assert_eq!(wrong.status, 403, "{}", wrong.body);
    // Nothing was reprocessed, and both refusals are recorded.
    let state = server
        .store
        .journal()
        .get(store::MessageId(id))
        .unwrap()
        .unwrap()
        .entry
        .state;
    assert_eq!(state, MessageState::Processed);
    let denied = &records(&server.audit)[before..];
    assert_eq!(denied.len(), 2, "{denied:#?}");
    assert!(denied.iter().all(|r| r.record.outcome == Outcome::Denied
        && r.record.actor == "user:olivia"
        && r.record.method == "session"));

    let with = call(
        server.addr,
        "POST",
        &path,
        &[cookie.clone(), format!("X-CSRF-Token: {csrf}")],
        "",
    )
    .await;
    assert_eq!(with.status, 202, "{}", with.body);

    // An HTML form sends the token as a field; the body reaches the handler whole.
    server
        .store
        .write(move |conn| {
            store::Journal::set_state_in(conn, store::MessageId(id), MessageState::Processed, None)
        })
        .await
        .unwrap();
    let form = call(
        server.addr,
        "POST",
        &path,
        &[cookie.clone(), FORM.to_owned()],
        &format!("csrf_token={csrf}"),
    )
    .await;
    assert_eq!(form.status, 202, "{}", form.body);
    let wrong_form = call(
        server.addr,
        "POST",
        &path,
        &[cookie, FORM.to_owned()],
        "csrf_token=forged",
    )
    .await;
    assert_eq!(wrong_form.status, 403, "{}", wrong_form.body);

    // A bearer token is not sent by browsers on their own: no CSRF token needed.
    server
        .store
        .write(move |conn| {
            store::Journal::set_state_in(conn, store::MessageId(id), MessageState::Processed, None)
        })
        .await
        .unwrap();
    let token = server
        .identities
        .create_token("olivia", None, None, None)
        .await
        .unwrap();
    let bearer = call(
        server.addr,
        "POST",
        &path,
        &[format!("Authorization: Bearer {}", token.secret)],
        "",
    )
    .await;
    assert_eq!(bearer.status, 202, "{}", bearer.body);
}

#[tokio::test]
async fn forged_and_ended_sessions_get_401() {
    let server = default_server().await;
    let (cookie, csrf) = login(&server, "vic").await;
    for forged in [
        "Cookie: corridor-session=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA".to_owned(),
        "Cookie: corridor-session=".to_owned(),
        format!("{cookie}x"),
    ] {
        let answer = call(
            server.addr,
            "GET",
            "/api/stats",
            std::slice::from_ref(&forged),
            "",
        )
        .await;
        assert_eq!(answer.status, 401, "{forged}: {}", answer.body);
        assert!(answer.json()["error"].is_string());
    }
    // Logout ends the session (with its CSRF token, like any change) and clears the cookie.
    let refused = call(
        server.addr,
        "POST",
        "/logout",
        std::slice::from_ref(&cookie),
        "",
    )
    .await;
    assert_eq!(refused.status, 403, "{}", refused.body);
    let out = call(
        server.addr,
        "POST",
        "/logout",
        &[cookie.clone(), format!("X-CSRF-Token: {csrf}")],
        "",
    )
    .await;
    assert_eq!(out.status, 200, "{}", out.body);
    assert_eq!(out.json()["signed_out"], true);
    assert!(out.header("set-cookie").unwrap().contains("Max-Age=0"));
    let after = call(server.addr, "GET", "/api/stats", &[cookie], "").await;
    assert_eq!(after.status, 401, "{}", after.body);
    let logouts = records(&server.audit)
        .into_iter()
        .filter(|r| r.record.action == "logout")
        .count();
    assert_eq!(logouts, 1);
}

#[tokio::test]
async fn idle_and_absolute_timeouts_end_sessions() {
    for policy in [
        SessionPolicy {
            idle_timeout: Duration::ZERO,
            ..SessionPolicy::default()
        },
        SessionPolicy {
            absolute_timeout: Duration::ZERO,
            ..SessionPolicy::default()
        },
    ] {
        let server = serve(policy, false).await;
        let (cookie, _) = login(&server, "vic").await;
        let answer = call(server.addr, "GET", "/api/stats", &[cookie], "").await;
        assert_eq!(answer.status, 401, "{policy:?}: {}", answer.body);
    }
}

#[tokio::test]
async fn failed_logins_are_one_answer_audited_and_throttled() {
    let server = default_server().await;
    let wrong = call(
        server.addr,
        "POST",
        "/login",
        &[JSON.to_owned()],
        r#"{"user": "vic", "password": "not the password"}"#,
    )
    .await;
    let unknown = call(
        server.addr,
        "POST",
        "/login",
        &[JSON.to_owned()],
        r#"{"user": "nobody", "password": "not the password"}"#,
    )
    .await;
    assert_eq!((wrong.status, unknown.status), (401, 401));
    assert_eq!(wrong.body, unknown.body, "names cannot be told apart");
    assert!(wrong.header("set-cookie").is_none());
    let malformed = call(server.addr, "POST", "/login", &[JSON.to_owned()], "{").await;
    assert_eq!(malformed.status, 400);
    assert!(malformed.json()["error"].is_string());

    let logins: Vec<_> = records(&server.audit)
        .into_iter()
        .filter(|r| r.record.action == "login")
        .map(|r| r.record)
        .collect();
    assert_eq!(logins.len(), 2);
    assert_eq!(logins[0].actor, "user:vic");
    assert_eq!(logins[0].outcome, Outcome::Denied);
    assert_eq!(logins[0].address.as_deref(), Some("127.0.0.1"));
    assert_eq!(logins[1].actor, "user:nobody");

    // Two more failures reach the limit of three for the name: then even the right
    // password is refused until the window ends.
    for _ in 0..2 {
        let answer = call(
            server.addr,
            "POST",
            "/login",
            &[JSON.to_owned()],
            r#"{"user": "vic", "password": "guess guess guess"}"#,
        )
        .await;
        assert_eq!(answer.status, 401);
    }
    let throttled = call(
        server.addr,
        "POST",
        "/login",
        &[JSON.to_owned()],
        &format!(r#"{{"user": "vic", "password": "{PASSWORD}"}}"#),
    )
    .await;
    assert_eq!(throttled.status, 429, "{}", throttled.body);
    assert!(throttled.header("retry-after").is_some());
    // Another name is not held back by vic's failures.
    let (cookie, _) = login(&server, "olivia").await;
    assert!(cookie.starts_with("Cookie: corridor-session="));
    let success = records(&server.audit)
        .into_iter()
        .filter(|r| r.record.action == "login" && r.record.outcome == Outcome::Success)
        .count();
    assert_eq!(success, 1);
}

#[tokio::test]
async fn a_form_login_redirects_to_a_local_page_only() {
    let server = default_server().await;
    let ok = call(
        server.addr,
        "POST",
        "/login",
        &[FORM.to_owned()],
        &format!(
            "user=vic&password={}&next=%2Fconsole%2Fmessages",
            PASSWORD.replace(' ', "+")
        ),
    )
    .await;
    assert_eq!(ok.status, 303, "{}", ok.body);
    assert_eq!(ok.header("location").as_deref(), Some("/console/messages"));
    assert!(ok.header("set-cookie").is_some());
    let elsewhere = call(
        server.addr,
        "POST",
        "/login",
        &[FORM.to_owned()],
        &format!(
            "user=vic&password={}&next=%2F%2Fevil.example",
            PASSWORD.replace(' ', "+")
        ),
    )
    .await;
    assert_eq!(elsewhere.header("location").as_deref(), Some("/"));
    let failed = call(
        server.addr,
        "POST",
        "/login",
        &[FORM.to_owned()],
        "user=vic&password=wrong",
    )
    .await;
    assert_eq!(failed.status, 303);
    assert!(
        failed
            .header("location")
            .unwrap()
            .starts_with("/login?failed=1"),
        "{:?}",
        failed.header("location")
    );
    assert!(failed.header("set-cookie").is_none());
}

#[tokio::test]
async fn a_users_sessions_end_at_once_when_it_is_disabled_or_its_password_changes() {
    let server = default_server().await;
    let (olivia, _) = login(&server, "olivia").await;
    let (vic, _) = login(&server, "vic").await;
    for cookie in [&olivia, &vic] {
        let answer = call(
            server.addr,
            "GET",
            "/api/stats",
            std::slice::from_ref(cookie),
            "",
        )
        .await;
        assert_eq!(answer.status, 200, "{}", answer.body);
    }
    // As the command line would, from another process: its own store handle.
    let dir = server.store.path().parent().unwrap().to_owned();
    let other = tokio::task::spawn_blocking(move || {
        let other = Identities::open_blocking(Store::open(&dir).unwrap()).unwrap();
        other
            .set_password("olivia", "another long passphrase", None)
            .wait()
            .unwrap();
        other.disable_user("vic", None).wait().unwrap();
    });
    other.await.unwrap();
    for cookie in [&olivia, &vic] {
        let answer = call(
            server.addr,
            "GET",
            "/api/stats",
            std::slice::from_ref(cookie),
            "",
        )
        .await;
        assert_eq!(answer.status, 401, "{cookie}: {}", answer.body);
        assert!(answer.json()["error"].is_string());
    }
    // Olivia signs in with the new password and is let in again.
    let answer = call(
        server.addr,
        "POST",
        "/login",
        &[JSON.to_owned()],
        r#"{"user": "olivia", "password": "another long passphrase"}"#,
    )
    .await;
    assert_eq!(answer.status, 200, "{}", answer.body);
}
