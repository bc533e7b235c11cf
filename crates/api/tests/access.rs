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
}

/// The API over a fresh store with authentication on, served with peer addresses.
async fn serve() -> Server {
    serve_with(None).await
}

/// [`serve`], also accepting JWTs from `oidc`'s issuer.
async fn serve_with(oidc: Option<access::oidc::OidcConfig>) -> Server {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let identities = Identities::open(store.clone()).await.unwrap();
    let audit = Audit::open(store.clone()).await.unwrap();
    let verifier = match oidc {
        Some(config) => Some(access::oidc::OidcVerifier::new(config).await.unwrap()),
        None => None,
    };
    let api = api::Api {
        auth: Auth::required(identities.clone(), verifier, audit.clone()),
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
        .replace("{op}", "_history")
        .replace("{vid}", "1")
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
async fn a_phi_read_whose_record_cannot_be_written_is_refused_without_the_phi() {
    let server = serve().await;
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
