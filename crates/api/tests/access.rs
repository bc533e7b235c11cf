//! Access control over a real socket and a real SQLite file: every route of
//! `api::routes()` walked with no credentials and with a token of each role, bad
//! tokens refused, and the audit record of a PHI read.

use std::net::SocketAddr;
use std::sync::Arc;

use access::audit::{Audit, Outcome, StoredRecord};
use access::{Access as Identities, Permission, Role};
use api::{Access, Auth};
use serde_json::Value;
use store::{MessageState, NewMessage, Store, UnixMicros};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

struct Server {
    addr: SocketAddr,
    store: Store,
    identities: Identities,
    audit: Audit,
    _dir: tempfile::TempDir,
    /// The audit file held open and locked, as by another process.
    _audit_file: Option<std::fs::File>,
}

/// The API over a fresh store with authentication on, served with peer addresses.
async fn serve() -> Server {
    serve_with(None).await
}

/// [`serve`], also accepting JWTs from `oidc`'s issuer.
async fn serve_with(oidc: Option<access::oidc::OidcConfig>) -> Server {
    serve_full(oidc, None).await
}

/// [`serve_with`], with `config` behind the configuration routes.
async fn serve_full(
    oidc: Option<access::oidc::OidcConfig>,
    config: Option<api::SharedConfigControl>,
) -> Server {
    serve_holding(oidc, config, false).await
}

/// [`serve_full`]; with `hold_audit_file`, the audit file is locked first as another
/// process would hold it, so records are committed to the database directly.
async fn serve_holding(
    oidc: Option<access::oidc::OidcConfig>,
    config: Option<api::SharedConfigControl>,
    hold_audit_file: bool,
) -> Server {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let audit_file = hold_audit_file.then(|| {
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(access::audit::file_of(store.path()))
            .unwrap();
        rustix::fs::flock(&file, rustix::fs::FlockOperation::NonBlockingLockExclusive).unwrap();
        file
    });
    let identities = Identities::open(store.clone()).await.unwrap();
    let audit = Audit::open(store.clone()).await.unwrap();
    let verifier = match oidc {
        Some(config) => Some(access::oidc::OidcVerifier::new(config).await.unwrap()),
        None => None,
    };
    let api = api::Api {
        auth: Auth::required(identities.clone(), verifier, audit.clone()),
        config,
        ..api::Api::new(store.clone())
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = api::router(api).into_make_service_with_connect_info::<SocketAddr>();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    Server {
        addr,
        store,
        identities,
        audit,
        _dir: dir,
        _audit_file: audit_file,
    }
}

impl Server {
    /// A user of `role` and a token for them.
    async fn token(&self, role: Role) -> (i64, String) {
        let name = role.as_str();
        if self
            .identities
            .list_users()
            .unwrap()
            .iter()
            .all(|u| u.name != name)
        {
            self.identities
                .add_user(name, role, None, None)
                .await
                .unwrap();
        }
        let token = self
            .identities
            .create_token(name, None, None, None)
            .await
            .unwrap();
        (token.id, token.secret)
    }

    fn records(&self) -> Vec<StoredRecord> {
        let mut records = Vec::new();
        self.audit
            .for_each_since(0, |r| {
                records.push(r);
                Ok(())
            })
            .unwrap();
        records
    }
}

/// Sends one request; the status, the raw head and the body.
async fn call(
    addr: SocketAddr,
    method: &str,
    path: &str,
    authorization: Option<&str>,
) -> (u16, String, String) {
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let auth = authorization
        .map(|a| format!("Authorization: {a}\r\n"))
        .unwrap_or_default();
    let body = if method == "GET" { "" } else { "{}" };
    let request = format!(
        "{method} {path} HTTP/1.1\r\nHost: test\r\n{auth}Content-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = Vec::new();
    stream.read_to_end(&mut response).await.unwrap();
    let text = String::from_utf8_lossy(&response).into_owned();
    let status = text[9..12].parse().unwrap();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    (status, head.to_owned(), body.to_owned())
}

/// The path with its parameters filled in.
fn concrete(path: &str) -> String {
    path.replace("{id}", "1")
        .replace("{file}", "1")
        .replace("{type}", "Patient")
        .replace("{enterprise_id}", "E1")
        .replace("{name}", "nobody")
        .replace("{channel}", "nobody")
        .replace("{destination}", "nobody")
        .replace("{op}", "_history")
        .replace("{vid}", "1")
        .replace("{n}", "1")
        .replace("{entry}", "1")
}

fn assert_json_error(what: &str, body: &str) {
    let start = body
        .find('{')
        .unwrap_or_else(|| panic!("{what}: no JSON: {body}"));
    let end = body.rfind('}').unwrap();
    let value: Value = serde_json::from_str(&body[start..=end]).unwrap();
    assert!(
        value["error"].is_string() || value["resourceType"] == "OperationOutcome",
        "{what}: {body}"
    );
}

#[tokio::test]
async fn every_route_needs_credentials_and_each_role_gets_exactly_its_permissions() {
    let server = serve().await;
    let routes = api::routes();
    assert!(routes.len() > 30, "the table lists every route");
    for route in &routes {
        let path = concrete(route.path);
        let method = route.method.as_str();
        let (status, head, body) = call(server.addr, method, &path, None).await;
        if route.access == Access::Public {
            assert_ne!(status, 401, "{method} {path}");
            continue;
        }
        assert_eq!(status, 401, "{method} {path}: {body}");
        assert!(
            head.to_ascii_lowercase()
                .contains("www-authenticate: bearer"),
            "{method} {path}: {head}"
        );
        assert_json_error(&format!("{method} {path}"), &body);
    }
    for role in Role::ALL {
        let (_, token) = server.token(role).await;
        let bearer = format!("Bearer {token}");
        for route in &routes {
            let path = concrete(route.path);
            let method = route.method.as_str();
            let (status, _, body) = call(server.addr, method, &path, Some(&bearer)).await;
            let allowed = route.access.permission().is_none_or(|p| role.allows(p));
            assert_ne!(status, 401, "{role} {method} {path}: {body}");
            if allowed {
                assert_ne!(status, 403, "{role} {method} {path}: {body}");
            } else {
                assert_eq!(status, 403, "{role} {method} {path}: {body}");
                assert_json_error(&format!("{role} {method} {path}"), &body);
            }
        }
    }
    // The walk is not vacuous: viewers are refused PHI, stewards operations, and only
    // admins everything.
    assert!(!Role::Viewer.allows(Permission::ReadPhi));
    assert!(routes.iter().any(|r| r.access == Access::Phi));
    assert!(routes.iter().any(|r| r.access == Access::Operate));
    assert!(routes.iter().any(|r| r.access == Access::Steward));
    // The alert routes are walked too: listing is metadata, acknowledging an operation.
    let alert_routes: Vec<_> = routes
        .iter()
        .filter(|r| r.path.starts_with("/api/alerts"))
        .map(|r| (r.method.as_str(), r.path, r.access))
        .collect();
    assert_eq!(
        alert_routes,
        [
            ("GET", "/api/alerts", Access::Metadata),
            ("GET", "/api/alerts/history", Access::Metadata),
            ("POST", "/api/alerts/{name}/ack", Access::Operate),
        ]
    );
    assert!(!Role::Viewer.allows(Permission::Operate));
    assert!(
        routes
            .iter()
            .any(|r| r.access == Access::Admin && r.path == "/api/config/reload")
    );
    // Channel control is walked too: its state is metadata, changing it an operation.
    let control_routes: Vec<_> = routes
        .iter()
        .filter(|r| r.path.starts_with("/api/channels/") && !r.path.ends_with("/profile"))
        .map(|r| (r.method.as_str(), r.access))
        .collect();
    assert_eq!(control_routes.len(), 8, "{control_routes:?}");
    assert!(
        control_routes
            .iter()
            .all(|(m, a)| (*m == "GET") == (*a == Access::Metadata)
                && (*m == "GET" || *a == Access::Operate))
    );
}

#[tokio::test]
async fn expired_revoked_unknown_and_malformed_credentials_get_401() {
    let server = serve().await;
    let (expired_id, expired) = server.token(Role::Admin).await;
    server
        .store
        .write(move |conn| {
            conn.execute(
                "UPDATE access_tokens SET expires_at = 1 WHERE id = ?1",
                [expired_id],
            )?;
            Ok(())
        })
        .await
        .unwrap();
    let (revoked_id, revoked) = server.token(Role::Admin).await;
    server
        .identities
        .revoke_token(revoked_id, None)
        .await
        .unwrap();
    let (_, good) = server.token(Role::Admin).await;
    let unknown = format!("crd_{}", "A".repeat(43));
    for authorization in [
        format!("Bearer {expired}"),
        format!("Bearer {revoked}"),
        format!("Bearer {unknown}"),
        "Bearer crd_short".to_owned(),
        "Bearer".to_owned(),
        "Bearer ".to_owned(),
        format!("Basic {good}"),
        good.clone(),
        "Bearer eyJhbGciOiJub25lIn0.e30.".to_owned(),
        format!("Bearer {good} extra"),
    ] {
        let (status, head, body) =
            call(server.addr, "GET", "/api/stats", Some(&authorization)).await;
        assert_eq!(status, 401, "{authorization:?}: {body}");
        assert!(
            head.to_ascii_lowercase()
                .contains("www-authenticate: bearer"),
            "{head}"
        );
        assert_json_error(&authorization, &body);
    }
    for scheme in ["Bearer", "bearer", "BEARER"] {
        let (status, _, body) = call(
            server.addr,
            "GET",
            "/api/stats",
            Some(&format!("{scheme} {good}")),
        )
        .await;
        assert_eq!(status, 200, "{scheme}: {body}");
    }
    // `/metrics` is not public unless configured.
    let (status, _, _) = call(server.addr, "GET", "/metrics", None).await;
    assert_eq!(status, 401);
}

fn message(control_id: &str) -> NewMessage {
    NewMessage {
        channel: Arc::from("lab"),
        raw: bytes::Bytes::from(format!(
            "MSH|^~\\&|LAB|H|EHR|H|2024||ORU^R01|{control_id}|P|2.5.1\rPID|1||MRN4242||QUILLFEATHER^ANA\r"
        )),
        received_at: UnixMicros::now(),
        peer: Arc::from("127.0.0.1:5000"),
        tls_identity: None,
        sending_application: "LAB".into(),
        sending_facility: "H".into(),
        message_type: "ORU^R01".into(),
        control_id: control_id.into(),
        version: "2.5.1".into(),
        state: MessageState::Received,
        state_reason: None,
    }
}

#[tokio::test]
async fn one_phi_read_gives_one_audit_record_naming_who_and_what() {
    let server = serve().await;
    let store::Appended::New(id) = server
        .store
        .journal()
        .append(message("C1"), None)
        .await
        .unwrap()
    else {
        panic!("a new message")
    };
    let (token_id, token) = server.token(Role::Analyst).await;
    let before = server.records().len();
    // Metadata is not audited.
    let (status, _, _) = call(
        server.addr,
        "GET",
        "/api/stats",
        Some(&format!("Bearer {token}")),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(server.records().len(), before);

    let path = format!("/api/messages/{id}");
    let (status, _, body) = call(server.addr, "GET", &path, Some(&format!("Bearer {token}"))).await;
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("QUILLFEATHER"), "{body}");
    let records = server.records();
    assert_eq!(records.len(), before + 1, "{records:#?}");
    let record = &records[before].record;
    assert_eq!(record.actor, format!("token:{token_id}"));
    assert_eq!(record.owner.as_deref(), Some("analyst"));
    assert_eq!(record.method, "token");
    assert_eq!(record.action, "GET /api/messages/{id}");
    assert_eq!(record.resource.as_deref(), Some(path.as_str()));
    assert_eq!(record.outcome, Outcome::Success);
    assert_eq!(record.address.as_deref(), Some("127.0.0.1"));

    // A refused request reads nothing and is recorded as denied.
    let (viewer_id, viewer) = server.token(Role::Viewer).await;
    let (status, _, body) =
        call(server.addr, "GET", &path, Some(&format!("Bearer {viewer}"))).await;
    assert_eq!(status, 403);
    assert!(!body.contains("QUILLFEATHER"));
    let records = server.records();
    assert_eq!(records.len(), before + 2);
    let denied = &records[before + 1].record;
    assert_eq!(denied.actor, format!("token:{viewer_id}"));
    assert_eq!(denied.action, "GET /api/messages/{id}");
    assert_eq!(denied.outcome, Outcome::Denied);
}

#[tokio::test]
async fn a_phi_read_is_in_the_audit_file_when_answered_and_seen_by_a_search_right_after() {
    let server = serve().await;
    let store::Appended::New(id) = server
        .store
        .journal()
        .append(message("C3"), None)
        .await
        .unwrap()
    else {
        panic!("a new message")
    };
    let (_, token) = server.token(Role::Analyst).await;
    let before = server.records().len();
    let (status, _, body) = call(
        server.addr,
        "GET",
        &format!("/api/messages/{id}"),
        Some(&format!("Bearer {token}")),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    // The record was written before the answer left: the file holds it now.
    let file = std::fs::read_to_string(access::audit::file_of(server.store.path())).unwrap();
    let resource = format!("\"resource\":\"/api/messages/{id}\"");
    assert!(
        file.lines()
            .any(|line| line.contains("GET /api/messages/{id}") && line.contains(&resource)),
        "{file}"
    );
    // A search right after the read sees it, folded or not.
    let records = server.records();
    assert_eq!(records.len(), before + 1);
    assert_eq!(
        records[before].record.resource.as_deref(),
        Some(format!("/api/messages/{id}").as_str())
    );
}

#[tokio::test]
async fn a_phi_read_whose_record_cannot_be_written_is_refused_without_the_phi() {
    // Another process holds the audit file, so the record goes to the database, whose
    // table is dropped below: the record cannot be written anywhere.
    let server = serve_holding(None, None, true).await;
    let store::Appended::New(id) = server
        .store
        .journal()
        .append(message("C2"), None)
        .await
        .unwrap()
    else {
        panic!("a new message")
    };
    let (_, token) = server.token(Role::Analyst).await;
    // The audit trail's table goes away: every append fails.
    server
        .store
        .write(|conn| {
            conn.execute_batch("DROP TABLE audit_log;")?;
            Ok(())
        })
        .await
        .unwrap();
    let (status, _, body) = call(
        server.addr,
        "GET",
        &format!("/api/messages/{id}"),
        Some(&format!("Bearer {token}")),
    )
    .await;
    assert_eq!(status, 500, "{body}");
    assert!(!body.contains("QUILLFEATHER"), "{body}");
    assert!(body.contains("audit"), "{body}");
    assert_json_error("refused read", &body);
}

mod oidc {
    use super::*;
    use access::oidc::{JwksSource, OidcConfig};
    use base64::Engine as _;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use jsonwebtoken::{Algorithm, EncodingKey, Header};
    use rsa::pkcs8::{EncodePrivateKey, LineEnding};
    use rsa::traits::PublicKeyParts;
    use serde_json::json;

    const ISSUER: &str = "https://idp.hospital.example/realms/main";

    fn now() -> i64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs() as i64
    }

    #[tokio::test]
    async fn an_oidc_jwt_authenticates_with_its_roles_and_is_audited_under_its_name() {
        let key = rsa::RsaPrivateKey::new(&mut rand::rngs::OsRng, 2048).unwrap();
        let public = key.to_public_key();
        let private_pem = key.to_pkcs8_pem(LineEnding::LF).unwrap().to_string();
        let jwks = json!({"keys": [{
            "kty": "RSA", "use": "sig", "kid": "k1", "alg": "RS256",
            "n": URL_SAFE_NO_PAD.encode(public.n().to_bytes_be()),
            "e": URL_SAFE_NO_PAD.encode(public.e().to_bytes_be()),
        }]});
        let keys_dir = tempfile::tempdir().unwrap();
        let jwks_file = keys_dir.path().join("jwks.json");
        std::fs::write(&jwks_file, jwks.to_string()).unwrap();
        let server = serve_with(Some(OidcConfig::new(
            ISSUER,
            "corridor",
            JwksSource::File(jwks_file),
        )))
        .await;
        let sign = |claims: Value| {
            let mut header = Header::new(Algorithm::RS256);
            header.kid = Some("k1".to_owned());
            let jwt = jsonwebtoken::encode(
                &header,
                &claims,
                &EncodingKey::from_rsa_pem(private_pem.as_bytes()).unwrap(),
            )
            .unwrap();
            format!("Bearer {jwt}")
        };
        let claims = |roles: Value, aud: &str, exp: i64| {
            json!({
                "iss": ISSUER, "aud": aud, "sub": "u-123", "preferred_username": "jdoe",
                "iat": now(), "exp": exp, "roles": roles,
            })
        };
        let analyst = sign(claims(json!(["analyst"]), "corridor", now() + 300));

        let before = server.records().len();
        let (status, _, body) = call(server.addr, "GET", "/api/messages", Some(&analyst)).await;
        assert_eq!(status, 200, "{body}");
        let records = server.records();
        assert_eq!(records.len(), before + 1);
        assert_eq!(records[before].record.actor, "oidc:jdoe");
        assert_eq!(records[before].record.method, "oidc");
        // An analyst does not operate.
        let (status, _, _) = call(
            server.addr,
            "POST",
            "/api/messages/1/reprocess",
            Some(&analyst),
        )
        .await;
        assert_eq!(status, 403);
        // Claims that map to no role: authenticated, allowed nothing.
        let nobody = sign(claims(json!(["visitors"]), "corridor", now() + 300));
        let (status, _, body) = call(server.addr, "GET", "/api/stats", Some(&nobody)).await;
        assert_eq!(status, 403, "{body}");
        // Expired, another audience, unsigned: 401.
        let expired = sign(claims(json!(["admin"]), "corridor", now() - 3600));
        let elsewhere = sign(claims(json!(["admin"]), "another-app", now() + 300));
        let unsigned = format!(
            "Bearer {}.{}.",
            URL_SAFE_NO_PAD.encode(br#"{"alg":"none","typ":"JWT"}"#),
            URL_SAFE_NO_PAD.encode(
                claims(json!(["admin"]), "corridor", now() + 300)
                    .to_string()
                    .as_bytes()
            )
        );
        for bad in [expired, elsewhere, unsigned] {
            let (status, _, body) = call(server.addr, "GET", "/api/stats", Some(&bad)).await;
            assert_eq!(status, 401, "{body}");
        }
    }
}

/// Sends `method path` with `body` (JSON); the status, the head (lower-cased) and the
/// body.
async fn send(
    addr: SocketAddr,
    method: &str,
    path: &str,
    authorization: &str,
    body: &str,
) -> (u16, String, String) {
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let request = format!(
        "{method} {path} HTTP/1.1\r\nHost: test\r\nAuthorization: {authorization}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = Vec::new();
    stream.read_to_end(&mut response).await.unwrap();
    let text = String::from_utf8_lossy(&response).into_owned();
    let status = text[9..12].parse().unwrap();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    (status, head.to_ascii_lowercase(), body.to_owned())
}

#[tokio::test]
async fn the_audit_event_search_names_who_read_a_patient() {
    let server = serve().await;
    let (reader_id, reader) = server.token(Role::Analyst).await;
    let (_, other) = server.token(Role::Steward).await;
    // User X (the analyst's token) reads Patient p7; the steward reads another patient.
    let (status, _, body) = call(
        server.addr,
        "GET",
        "/fhir/Patient/p7",
        Some(&format!("Bearer {reader}")),
    )
    .await;
    // The repository is not enabled here: the read answers 404, and is still a read.
    assert_eq!(status, 404, "{body}");
    let (status, _, _) = call(
        server.addr,
        "GET",
        "/fhir/Observation?patient=p8",
        Some(&format!("Bearer {other}")),
    )
    .await;
    assert_eq!(status, 404);

    let today = access::audit::rfc3339(UnixMicros::now().0)[..10].to_owned();
    let (status, _, body) = call(
        server.addr,
        "GET",
        &format!("/fhir/AuditEvent?patient=Patient/p7&date={today}"),
        Some(&format!("Bearer {other}")),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let bundle: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(bundle["resourceType"], "Bundle");
    assert_eq!(bundle["total"], 1, "{bundle}");
    let event = &bundle["entry"][0]["resource"];
    assert_eq!(event["resourceType"], "AuditEvent");
    assert_eq!(
        event["agent"][0]["who"]["identifier"]["value"],
        format!("token:{reader_id}")
    );
    assert_eq!(
        event["agent"][1]["who"]["identifier"]["value"], "analyst",
        "the token's owner: {event}"
    );
    assert_eq!(event["entity"][0]["what"]["reference"], "Patient/p7");
    assert_eq!(event["action"], "R");

    // A day without reads has none; a date range from today has X's read (and the
    // AuditEvent searches since, which are reads about the patient too).
    for (date, reads) in [("2001-01-01", 0), (&format!("ge{today}")[..], 1)] {
        let (status, _, body) = call(
            server.addr,
            "GET",
            &format!("/fhir/AuditEvent?patient=p7&date={date}"),
            Some(&format!("Bearer {other}")),
        )
        .await;
        assert_eq!(status, 200, "{body}");
        let bundle: Value = serde_json::from_str(&body).unwrap();
        let entries = bundle["entry"].as_array().cloned().unwrap_or_default();
        assert_eq!(bundle["total"], entries.len(), "{bundle}");
        let by_reader = entries
            .iter()
            .filter(|e| {
                e["resource"]["agent"][0]["who"]["identifier"]["value"]
                    == format!("token:{reader_id}")
            })
            .count();
        assert_eq!(by_reader, reads, "{date}: {bundle}");
        assert!(
            entries.iter().all(
                |e| e["resource"]["subtype"][0]["code"] != "GET /fhir/{type}"
                    || e["resource"]["agent"][0]["who"]["identifier"]["value"]
                        == format!("token:{reader_id}")
            ),
            "the steward's read of another patient is not listed: {bundle}"
        );
    }
    // Without a patient, or with a bad date: 400 OperationOutcomes.
    for path in [
        "/fhir/AuditEvent",
        "/fhir/AuditEvent?patient=p7&date=lately",
    ] {
        let (status, _, body) =
            call(server.addr, "GET", path, Some(&format!("Bearer {other}"))).await;
        assert_eq!(status, 400, "{path}: {body}");
        assert!(body.contains("OperationOutcome"), "{body}");
    }
    // It is PHI: a viewer is refused.
    let (_, viewer) = server.token(Role::Viewer).await;
    let (status, _, _) = call(
        server.addr,
        "GET",
        "/fhir/AuditEvent?patient=p7",
        Some(&format!("Bearer {viewer}")),
    )
    .await;
    assert_eq!(status, 403);
}

#[tokio::test]
async fn an_admin_manages_users_and_tokens_over_http_and_each_change_is_audited_once() {
    let server = serve().await;
    let (admin_id, admin) = server.token(Role::Admin).await;
    let bearer = format!("Bearer {admin}");
    let before = server.records().len();

    // Add a user.
    let (status, _, body) = send(
        server.addr,
        "POST",
        "/api/users",
        &bearer,
        r#"{"name": "bea", "role": "analyst"}"#,
    )
    .await;
    assert_eq!(status, 201, "{body}");
    let user: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(user["name"], "bea");
    assert_eq!(user["role"], "analyst");
    let (status, _, body) = send(
        server.addr,
        "POST",
        "/api/users",
        &bearer,
        r#"{"name": "bea", "role": "analyst"}"#,
    )
    .await;
    assert_eq!(status, 409, "{body}");
    for bad in [
        r#"{"name": "cy", "role": "root"}"#,
        r#"{"name": "cy"}"#,
        "not json",
    ] {
        let (status, _, body) = send(server.addr, "POST", "/api/users", &bearer, bad).await;
        assert_eq!(status, 400, "{bad}: {body}");
        assert_json_error(bad, &body);
    }
    let (status, _, body) = send(server.addr, "GET", "/api/users", &bearer, "").await;
    assert_eq!(status, 200);
    assert!(body.contains("\"bea\""), "{body}");
    assert!(!body.contains("argon2"), "no password hashes: {body}");

    // A token for her, printed once; it works, and is not in the list.
    let (status, head, body) = send(
        server.addr,
        "POST",
        "/api/tokens",
        &bearer,
        r#"{"user": "bea", "expires_days": 7, "scopes": "system/Patient.read"}"#,
    )
    .await;
    assert_eq!(status, 201, "{body}");
    assert!(head.contains("cache-control: no-store"), "{head}");
    let token: Value = serde_json::from_str(&body).unwrap();
    let secret = token["token"].as_str().unwrap().to_owned();
    let token_id = token["id"].as_i64().unwrap();
    assert!(secret.starts_with("crd_"));
    assert_eq!(token["scopes"], "system/Patient.read");
    let bea = format!("Bearer {secret}");
    let (status, _, _) = call(server.addr, "GET", "/api/stats", Some(&bea)).await;
    assert_eq!(status, 200);
    let (status, _, body) = send(server.addr, "GET", "/api/tokens", &bearer, "").await;
    assert_eq!(status, 200);
    assert!(!body.contains(&secret), "{body}");
    assert!(body.contains("system/Patient.read"), "{body}");
    // A role wider than the owner's is refused.
    let (status, _, body) = send(
        server.addr,
        "POST",
        "/api/tokens",
        &bearer,
        r#"{"user": "bea", "role": "admin"}"#,
    )
    .await;
    assert_eq!(status, 400, "{body}");

    // Revoke it: refused from the next request.
    let (status, _, body) = send(
        server.addr,
        "POST",
        &format!("/api/tokens/{token_id}/revoke"),
        &bearer,
        "",
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let (status, _, _) = call(server.addr, "GET", "/api/stats", Some(&bea)).await;
    assert_eq!(status, 401);
    let (status, _, _) = send(server.addr, "POST", "/api/tokens/999/revoke", &bearer, "").await;
    assert_eq!(status, 404);

    // Disable her.
    let (status, _, body) = send(server.addr, "POST", "/api/users/bea/disable", &bearer, "").await;
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("\"disabled\":true"), "{body}");

    // One record per change, written with it, naming who did it and to whom.
    let records = server.records();
    let changes: Vec<(&str, Option<&str>, &str)> = records[before..]
        .iter()
        .filter(|r| r.record.action.contains('.'))
        .map(|r| {
            (
                r.record.action.as_str(),
                r.record.resource.as_deref(),
                r.record.outcome.as_str(),
            )
        })
        .collect();
    assert_eq!(
        changes,
        [
            ("user.add", Some("user/bea"), "success"),
            ("token.create", Some("user/bea"), "success"),
            (
                "token.revoke",
                Some(&format!("token/{token_id}")[..]),
                "success"
            ),
            ("user.disable", Some("user/bea"), "success"),
        ]
    );
    for record in &records[before..] {
        if record.record.action.contains('.') {
            assert_eq!(record.record.actor, format!("token:{admin_id}"));
        }
    }
    // Failed changes are recorded by the guard (the duplicate user, the bad bodies...).
    assert!(
        records[before..]
            .iter()
            .any(|r| r.record.action == "POST /api/users" && r.record.outcome == Outcome::Failed)
    );

    // Audit export (JSON and CSV), streamed (chunked, never built whole), and
    // verification.
    let (status, head, body) = send(server.addr, "GET", "/api/audit?format=csv", &bearer, "").await;
    assert_eq!(status, 200, "{body}");
    assert!(head.contains("content-type: text/csv"), "{head}");
    assert!(head.contains("transfer-encoding: chunked"), "{head}");
    let body = dechunk(&body);
    assert!(body.starts_with("seq,at,actor"), "{body}");
    assert!(body.contains("user.disable"), "{body}");
    let (status, _, body) = send(
        server.addr,
        "GET",
        "/api/audit?since=2001-01-01&format=json",
        &bearer,
        "",
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let exported: Value = serde_json::from_str(&dechunk(&body)).unwrap();
    assert!(exported.as_array().unwrap().len() >= 4);
    let (status, _, body) = send(server.addr, "GET", "/api/audit?since=soon", &bearer, "").await;
    assert_eq!(status, 400, "{body}");
    let (status, _, body) = send(server.addr, "GET", "/api/audit/verify", &bearer, "").await;
    assert_eq!(status, 200, "{body}");
    let verified: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(verified["intact"], true, "{body}");
    // An edited record is named.
    server
        .store
        .write(|conn| {
            conn.execute_batch(
                "DROP TRIGGER audit_log_append_only;
                 UPDATE audit_log SET actor = 'user:nobody' WHERE seq = 2;",
            )?;
            Ok(())
        })
        .await
        .unwrap();
    let (_, _, body) = send(server.addr, "GET", "/api/audit/verify", &bearer, "").await;
    let verified: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(verified["intact"], false, "{body}");
    assert_eq!(verified["broken"]["seq"], 2, "{body}");

    // Only admins: an operator is refused every admin route.
    let (_, operator) = server.token(Role::Operator).await;
    for (method, path) in [
        ("GET", "/api/users"),
        ("POST", "/api/tokens"),
        ("GET", "/api/audit"),
    ] {
        let (status, _, _) = send(
            server.addr,
            method,
            path,
            &format!("Bearer {operator}"),
            "{}",
        )
        .await;
        assert_eq!(status, 403, "{method} {path}");
    }
}

#[tokio::test]
async fn every_answer_carries_the_security_headers() {
    let server = serve().await;
    let (_, token) = server.token(Role::Admin).await;
    for (path, authorization) in [
        ("/health", None),
        ("/api/stats", None),
        ("/api/stats", Some(format!("Bearer {token}"))),
        ("/fhir/metadata", Some(format!("Bearer {token}"))),
        ("/no/such/route", None),
    ] {
        let (status, head, _) = call(server.addr, "GET", path, authorization.as_deref()).await;
        let head = head.to_ascii_lowercase();
        for header in [
            "x-content-type-options: nosniff",
            "content-security-policy: default-src 'self'; frame-ancestors 'none'",
            "referrer-policy: no-referrer",
            "x-frame-options: deny",
            "cache-control: no-store",
        ] {
            assert!(
                head.contains(header),
                "{path} ({status}) lacks {header}: {head}"
            );
        }
        // No HTTPS here: no HSTS.
        assert!(!head.contains("strict-transport-security"), "{head}");
    }
}

/// Sends the head of `method path` and then `body` as it is (no more); answers the whole
/// response. The server must answer without reading further.
/// The body of a chunked answer, its chunks joined.
fn dechunk(body: &str) -> String {
    let mut rest = body;
    let mut joined = String::new();
    while let Some((size, after)) = rest.split_once("\r\n") {
        let size = usize::from_str_radix(size.trim(), 16).expect("a chunk size");
        if size == 0 {
            break;
        }
        joined.push_str(&after[..size]);
        rest = &after[size + 2..];
    }
    joined
}

async fn send_raw(addr: SocketAddr, head: &str, body: &[u8]) -> String {
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    stream.write_all(head.as_bytes()).await.unwrap();
    stream.write_all(body).await.unwrap();
    let mut response = Vec::new();
    let _ = stream.read_to_end(&mut response).await;
    String::from_utf8_lossy(&response).into_owned()
}

#[tokio::test]
async fn a_body_over_the_limit_gets_413_with_a_json_error_on_every_route() {
    let server = serve().await;
    let (_, token) = server.token(Role::Admin).await;
    let bearer = format!("Bearer {token}");
    // A declared length over the limit: refused before the body is read.
    for route in api::routes()
        .iter()
        .filter(|r| r.method != api::Method::Get)
    {
        let path = concrete(route.path);
        let method = route.method.as_str();
        let text = send_raw(
            server.addr,
            &format!(
                "{method} {path} HTTP/1.1\r\nHost: test\r\nAuthorization: {bearer}\r\n\
                 Content-Type: application/json\r\nContent-Length: {}\r\n\
                 Connection: close\r\n\r\n",
                api::DEFAULT_MAX_BODY + 1
            ),
            b"{",
        )
        .await;
        assert!(text.starts_with("HTTP/1.1 413"), "{method} {path}: {text}");
        let body = text.split_once("\r\n\r\n").map_or("", |(_, b)| b);
        assert_json_error(&path, body);
    }
    // A chunked body that grows past the limit while read is refused the same way: one
    // byte more than the limit is sent, and no end.
    let chunk = vec![b'y'; 64 * 1024];
    let mut chunks = Vec::new();
    let mut sent = 0;
    while sent <= api::DEFAULT_MAX_BODY {
        let size = chunk.len().min(api::DEFAULT_MAX_BODY + 1 - sent);
        chunks.extend_from_slice(format!("{size:x}\r\n").as_bytes());
        chunks.extend_from_slice(&chunk[..size]);
        chunks.extend_from_slice(b"\r\n");
        sent += size;
    }
    let text = send_raw(
        server.addr,
        &format!(
            "POST /api/users HTTP/1.1\r\nHost: test\r\nAuthorization: {bearer}\r\n\
             Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\
             Connection: close\r\n\r\n"
        ),
        &chunks,
    )
    .await;
    assert!(text.starts_with("HTTP/1.1 413"), "{text}");
    let body = text.split_once("\r\n\r\n").map_or("", |(_, b)| b);
    assert_json_error("chunked", body);
    // Within the limit, the same route answers.
    let (status, _, body) = send(
        server.addr,
        "POST",
        "/api/users",
        &bearer,
        r#"{"name": "dee", "role": "viewer"}"#,
    )
    .await;
    assert_eq!(status, 201, "{body}");
}

/// A stand-in for the engine behind the configuration routes: it records who asked,
/// applies the first reload and refuses the next, naming a key.
#[derive(Default)]
struct FakeConfig {
    asked_by: std::sync::Mutex<Vec<String>>,
}

impl api::ConfigControl for FakeConfig {
    fn reload(&self, by: String) -> api::BoxFuture<Result<api::ReloadApplied, api::ReloadRefused>> {
        let mut asked = self.asked_by.lock().unwrap();
        asked.push(by);
        let outcome = if asked.len() == 1 {
            Ok(api::ReloadApplied {
                version: Some(2),
                changed: vec!["lab".to_owned()],
                ..Default::default()
            })
        } else {
            Err(api::ReloadRefused::Invalid {
                file: Some("corridor.toml".to_owned()),
                problems: vec![api::ConfigProblem {
                    key: "channels.lab.source.listen".to_owned(),
                    message: "\"nonsense\" is not a socket address".to_owned(),
                    line: Some(7),
                }],
            })
        };
        Box::pin(async move { outcome })
    }

    fn history(&self) -> Result<Vec<api::ConfigVersion>, String> {
        Ok(vec![api::ConfigVersion {
            n: 1,
            applied_at: 1,
            applied_by: "start".to_owned(),
            config: "[channels.lab]\n".to_owned(),
            diff: String::new(),
        }])
    }

    fn version(&self, n: i64) -> Result<Option<api::ConfigVersion>, String> {
        Ok(self.history()?.into_iter().find(|v| v.n == n))
    }
}

#[tokio::test]
async fn only_admins_reload_the_configuration_and_each_attempt_is_audited() {
    let fake = Arc::new(FakeConfig::default());
    let server = serve_full(None, Some(fake.clone())).await;
    let (operator_id, operator) = server.token(Role::Operator).await;
    let (admin_id, admin) = server.token(Role::Admin).await;
    let before = server.records().len();

    // An operator may not: 403, recorded as denied, and the engine is not asked.
    let (status, _, body) = call(
        server.addr,
        "POST",
        "/api/config/reload",
        Some(&format!("Bearer {operator}")),
    )
    .await;
    assert_eq!(status, 403, "{body}");
    assert!(fake.asked_by.lock().unwrap().is_empty());
    let records = server.records();
    assert_eq!(records[before].record.actor, format!("token:{operator_id}"));
    assert_eq!(records[before].record.action, "POST /api/config/reload");
    assert_eq!(records[before].record.outcome, Outcome::Denied);

    // An admin may: the engine hears who asked, the answer says what changed.
    let (status, _, body) = call(
        server.addr,
        "POST",
        "/api/config/reload",
        Some(&format!("Bearer {admin}")),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let answer: Value =
        serde_json::from_str(&body[body.find('{').unwrap()..=body.rfind('}').unwrap()]).unwrap();
    assert_eq!(answer["reload"]["changed"][0], "lab");
    assert_eq!(
        fake.asked_by.lock().unwrap()[0],
        format!("token:{admin_id} (admin)")
    );
    // A refused file: 422, the key and line in a JSON error.
    let (status, _, body) = call(
        server.addr,
        "POST",
        "/api/config/reload",
        Some(&format!("Bearer {admin}")),
    )
    .await;
    assert_eq!(status, 422, "{body}");
    assert_json_error("refused reload", &body);
    assert!(body.contains("channels.lab.source.listen"), "{body}");
    assert!(body.contains("\"line\":7"), "{body}");
    let records = server.records();
    let reloads: Vec<_> = records[before..]
        .iter()
        .filter(|r| r.record.action == "POST /api/config/reload")
        .map(|r| (r.record.actor.clone(), r.record.outcome))
        .collect();
    assert_eq!(
        reloads,
        [
            (format!("token:{operator_id}"), Outcome::Denied),
            (format!("token:{admin_id}"), Outcome::Success),
            (format!("token:{admin_id}"), Outcome::Failed),
        ]
    );

    // The history, for admins only.
    let (status, _, body) = call(
        server.addr,
        "GET",
        "/api/config/history/1",
        Some(&format!("Bearer {admin}")),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("\"applied_by\":\"start\""), "{body}");
    let (status, _, _) = call(
        server.addr,
        "GET",
        "/api/config/history",
        Some(&format!("Bearer {operator}")),
    )
    .await;
    assert_eq!(status, 403);
}
