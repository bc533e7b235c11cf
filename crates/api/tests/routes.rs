//! The route table: built from the same declaration as the router, every route in it is
//! served (and no other method on its path), every route carries an access class, and
//! every error has the one shape.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;

use api::{Access, Method, RouteInfo};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Every route Corridor's HTTP port serves, with its access class. A route added to the
/// router appears in `api::routes()` and fails this list until it is named here.
const EXPECTED: &[(&str, &str, Access)] = &[
    ("GET", "/health", Access::Public),
    ("GET", "/metrics", Access::Metrics),
    ("GET", "/api/messages", Access::Phi),
    ("GET", "/api/messages/{id}", Access::Phi),
    ("POST", "/api/messages/{id}/reprocess", Access::Operate),
    ("POST", "/api/messages/{id}/resend", Access::Operate),
    ("GET", "/api/stats", Access::Metadata),
    ("GET", "/api/dead-letters", Access::Phi),
    ("POST", "/api/dead-letters/{entry}/discard", Access::Operate),
    ("GET", "/api/saved-searches", Access::Phi),
    ("POST", "/api/saved-searches", Access::Phi),
    ("DELETE", "/api/saved-searches/{name}", Access::Phi),
    ("GET", "/api/quarantine", Access::Phi),
    ("POST", "/api/quarantine/reprocess", Access::Operate),
    ("GET", "/api/quarantine/{id}", Access::Phi),
    ("PUT", "/api/quarantine/{id}", Access::Operate),
    ("POST", "/api/quarantine/{id}/revalidate", Access::Operate),
    ("POST", "/api/quarantine/{id}/reprocess", Access::Operate),
    ("POST", "/api/quarantine/{id}/discard", Access::Operate),
    ("GET", "/api/data-quality", Access::Metadata),
    ("GET", "/mpi/fhir/Patient", Access::Phi),
    ("POST", "/mpi/fhir/Patient/$match", Access::Phi),
    ("GET", "/mpi/fhir/Patient/$ihe-pix", Access::Phi),
    ("GET", "/mpi/reviews", Access::Phi),
    ("POST", "/mpi/reviews/{id}/accept", Access::Steward),
    ("POST", "/mpi/reviews/{id}/reject", Access::Steward),
    ("POST", "/mpi/link", Access::Steward),
    ("POST", "/mpi/unlink", Access::Steward),
    ("POST", "/mpi/merge", Access::Steward),
    ("POST", "/mpi/unmerge", Access::Steward),
    ("GET", "/mpi/patients/{enterprise_id}", Access::Phi),
    // Terminology (crates/api/src/terminology.rs): content is Metadata, unmapped codes
    // name example messages (Phi), loads are Admin.
    ("GET", "/api/terminology", Access::Metadata),
    ("POST", "/api/terminology", Access::Admin),
    ("GET", "/api/terminology/unmapped", Access::Phi),
    ("GET", "/fhir/ConceptMap/$translate", Access::Metadata),
    ("POST", "/fhir/ConceptMap/$translate", Access::Metadata),
    ("GET", "/fhir/CodeSystem/$lookup", Access::Metadata),
    ("POST", "/fhir/CodeSystem/$lookup", Access::Metadata),
    ("GET", "/fhir/ValueSet/$validate-code", Access::Metadata),
    ("POST", "/fhir/ValueSet/$validate-code", Access::Metadata),
    ("GET", "/fhir/ConceptMap", Access::Metadata),
    ("GET", "/fhir/ConceptMap/{id}", Access::Metadata),
    ("GET", "/fhir/CodeSystem", Access::Metadata),
    ("GET", "/fhir/CodeSystem/{id}", Access::Metadata),
    // The feed profile of a channel's stored messages (crates/api/src/profile.rs).
    ("GET", "/api/channels/{name}/profile", Access::Phi),
    ("GET", "/fhir/metadata", Access::Metadata),
    ("GET", "/fhir/{type}", Access::Phi),
    ("GET", "/fhir/{type}/_search", Access::Phi),
    ("POST", "/fhir/{type}/_search", Access::Phi),
    ("GET", "/fhir/{type}/{id}", Access::Phi),
    ("GET", "/fhir/{type}/{id}/{op}", Access::Phi),
    ("GET", "/fhir/{type}/{id}/{op}/{vid}", Access::Phi),
    // Access (issue 13): who looked at a patient, and administration.
    ("GET", "/fhir/AuditEvent", Access::Phi),
    ("GET", "/api/users", Access::Admin),
    ("POST", "/api/users", Access::Admin),
    ("POST", "/api/users/{name}/disable", Access::Admin),
    ("GET", "/api/tokens", Access::Admin),
    ("POST", "/api/tokens", Access::Admin),
    ("POST", "/api/tokens/{id}/revoke", Access::Admin),
    ("GET", "/api/audit", Access::Admin),
    ("GET", "/api/audit/verify", Access::Admin),
    ("GET", "/api/rules/alerts", Access::Phi),
    ("POST", "/api/rules/alerts/{id}/resolve", Access::Operate),
    ("GET", "/cds-services", Access::Metadata),
    ("POST", "/cds-services/{id}", Access::Phi),
    ("GET", "/api/alerts", Access::Metadata),
    ("GET", "/api/alerts/history", Access::Metadata),
    ("POST", "/api/alerts/{name}/ack", Access::Operate),
    ("POST", "/api/config/reload", Access::Admin),
    ("GET", "/api/config/history", Access::Admin),
    ("GET", "/api/config/history/{n}", Access::Admin),
    // Browser sessions.
    ("POST", "/login", Access::Public),
    ("POST", "/logout", Access::Metadata),
    // The web console.
    ("GET", "/login", Access::Public),
    ("GET", "/console/assets/{file}", Access::Public),
    ("GET", "/", Access::Metadata),
    ("GET", "/console/events", Access::Metadata),
    ("GET", "/console/charts", Access::Metadata),
    ("GET", "/console/messages", Access::Phi),
    ("GET", "/console/messages/{id}", Access::Phi),
    ("POST", "/console/saved-searches", Access::Phi),
    ("POST", "/console/saved-searches/{name}/delete", Access::Phi),
    ("POST", "/console/messages/{id}/reprocess", Access::Operate),
    ("POST", "/console/messages/{id}/resend", Access::Operate),
    ("POST", "/console/alerts/{name}/ack", Access::Operate),
    ("GET", "/console/quarantine", Access::Phi),
    ("POST", "/console/quarantine/reprocess", Access::Operate),
    ("POST", "/console/quarantine/revalidate", Access::Operate),
    ("POST", "/console/quarantine/discard", Access::Operate),
    ("GET", "/console/quarantine/{id}", Access::Phi),
    ("POST", "/console/quarantine/{id}/edit", Access::Operate),
    (
        "POST",
        "/console/quarantine/{id}/revalidate",
        Access::Operate,
    ),
    (
        "POST",
        "/console/quarantine/{id}/reprocess",
        Access::Operate,
    ),
    ("POST", "/console/quarantine/{id}/discard", Access::Operate),
    ("POST", "/console/dead-letters/resend", Access::Operate),
    ("POST", "/console/dead-letters/discard", Access::Operate),
    ("GET", "/console/data-quality", Access::Metadata),
    ("GET", "/console/reviews", Access::Phi),
    ("POST", "/console/reviews/{id}/accept", Access::Steward),
    ("POST", "/console/reviews/{id}/reject", Access::Steward),
    ("GET", "/console/patients", Access::Phi),
    ("GET", "/console/patients/{id}", Access::Phi),
    ("POST", "/console/patients/merge", Access::Steward),
    ("POST", "/console/patients/unmerge", Access::Steward),
    ("GET", "/console/admin", Access::Admin),
    ("GET", "/console/audit", Access::Admin),
    ("POST", "/console/channels/{name}/start", Access::Operate),
    ("POST", "/console/channels/{name}/pause", Access::Operate),
    ("POST", "/console/channels/{name}/stop", Access::Operate),
    (
        "POST",
        "/console/channels/{channel}/destinations/{destination}/start",
        Access::Operate,
    ),
    (
        "POST",
        "/console/channels/{channel}/destinations/{destination}/pause",
        Access::Operate,
    ),
    (
        "POST",
        "/console/channels/{channel}/destinations/{destination}/stop",
        Access::Operate,
    ),
    // Users and tokens from the administration page (crates/api/src/console/admin_pages.rs).
    ("POST", "/console/users", Access::Admin),
    ("POST", "/console/users/{name}/disable", Access::Admin),
    ("POST", "/console/tokens", Access::Admin),
    ("POST", "/console/tokens/{id}/revoke", Access::Admin),
    // Start, stop and pause of channels and destinations (crates/api/src/channel_control.rs).
    ("GET", "/api/channels/{name}/control", Access::Metadata),
    ("POST", "/api/channels/{name}/start", Access::Operate),
    ("POST", "/api/channels/{name}/stop", Access::Operate),
    ("POST", "/api/channels/{name}/pause", Access::Operate),
    (
        "POST",
        "/api/channels/{channel}/destinations/{destination}/start",
        Access::Operate,
    ),
    (
        "POST",
        "/api/channels/{channel}/destinations/{destination}/pause",
        Access::Operate,
    ),
    (
        "POST",
        "/api/channels/{channel}/destinations/{destination}/stop",
        Access::Operate,
    ),
    (
        "POST",
        "/api/channels/{channel}/destinations/{destination}/resume",
        Access::Operate,
    ),
];

#[test]
fn the_table_lists_every_route_once_with_its_access_class() {
    let table = api::routes();
    let listed: Vec<(&str, &str, Access)> = table
        .iter()
        .map(|r| (r.method.as_str(), r.path, r.access))
        .collect();
    assert_eq!(
        listed, EXPECTED,
        "api::routes() and the expected table differ"
    );
    let unique: BTreeSet<(&str, &str)> =
        table.iter().map(|r| (r.method.as_str(), r.path)).collect();
    assert_eq!(
        unique.len(),
        table.len(),
        "a method and path declared twice"
    );
}

#[test]
fn access_classes_follow_what_a_route_does() {
    for RouteInfo {
        method,
        path,
        access,
    } in api::routes()
    {
        // Only liveness, signing in and the console's stylesheet and script go without
        // credentials.
        assert_eq!(
            access == Access::Public,
            matches!(path, "/health" | "/login" | "/console/assets/{file}"),
            "{path}"
        );
        // A read never needs the right to change; a change is never a GET. (Admin
        // routes both read, such as the audit export and the configuration history, and change.)
        let change = matches!(access, Access::Operate | Access::Steward | Access::Admin);
        if method == Method::Get {
            assert!(
                !matches!(access, Access::Operate | Access::Steward),
                "GET {path}"
            );
        }
        // Users, tokens, the audit trail and the configuration are administration.
        if ["/api/users", "/api/tokens", "/api/audit", "/api/config"]
            .iter()
            .any(|prefix| path.starts_with(prefix))
        {
            assert_eq!(access, Access::Admin, "{path}");
        }
        // Patient index decisions (the API's and the console's forms) need the
        // steward's permission, other changes the operator's.
        if change {
            assert_eq!(
                access == Access::Steward,
                path.starts_with("/mpi/")
                    || path.starts_with("/console/reviews/")
                    || path.starts_with("/console/patients/"),
                "{path}"
            );
        }
    }
}

/// The path with its parameters filled in.
fn concrete(path: &str) -> String {
    path.replace("{id}", "1")
        .replace("{file}", "1")
        .replace("{type}", "Patient")
        .replace("{enterprise_id}", "E1")
        .replace("{name}", "nobody")
        .replace("{op}", "_history")
        .replace("{vid}", "1")
        .replace("{n}", "1")
}

/// Sends `method path` with an empty body; answers the status and the body.
async fn call(addr: SocketAddr, method: &str, path: &str) -> (u16, String) {
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let request = format!(
        "{method} {path} HTTP/1.1\r\nHost: test\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = Vec::new();
    stream.read_to_end(&mut response).await.unwrap();
    let text = String::from_utf8_lossy(&response).into_owned();
    let status = text[9..12].parse().unwrap();
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    (status, body)
}

/// An error is `{"error": "..."}`, or an OperationOutcome on the FHIR repository's routes.
fn assert_error_shape(path: &str, status: u16, body: &str) {
    let value: serde_json::Value = serde_json::from_str(body)
        .unwrap_or_else(|e| panic!("{path}: {status} is not JSON ({e}): {body}"));
    if path.starts_with("/fhir/") {
        assert_eq!(value["resourceType"], "OperationOutcome", "{path}: {body}");
        assert!(
            value["issue"][0]["diagnostics"].is_string(),
            "{path}: {body}"
        );
    } else {
        assert!(value["error"].is_string(), "{path}: {status} {body}");
    }
}

async fn serve_bare_api() -> (tempfile::TempDir, SocketAddr) {
    let dir = tempfile::tempdir().unwrap();
    let store = store::Store::open(dir.path()).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = api::router(api::Api::new(store));
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (dir, addr)
}

#[tokio::test]
async fn a_malformed_id_or_query_string_gets_the_one_error_shape() {
    let (_dir, addr) = serve_bare_api().await;
    for (method, path) in [
        ("GET", "/api/messages/abc"),
        ("GET", "/api/messages?limit=lots"),
        ("GET", "/api/messages?colour=red"),
        ("POST", "/api/messages/1/resend"),
        ("GET", "/api/quarantine/abc"),
        ("GET", "/api/quarantine?status=lost"),
        ("POST", "/mpi/reviews/abc/accept"),
    ] {
        let (status, body) = call(addr, method, path).await;
        assert_eq!(status, 400, "{method} {path}: {body}");
        assert_error_shape(path, status, &body);
    }
}

#[tokio::test]
async fn the_router_serves_exactly_the_methods_of_the_table() {
    let (_dir, addr) = serve_bare_api().await;
    let mut by_path: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
    for route in api::routes() {
        by_path
            .entry(route.path)
            .or_default()
            .insert(route.method.as_str());
    }
    for (path, methods) in by_path {
        let concrete = concrete(path);
        for method in ["GET", "POST", "PUT", "DELETE", "PATCH"] {
            let (status, body) = call(addr, method, &concrete).await;
            if methods.contains(method) {
                // Matched: a handler answered (an unmatched path is axum's bare 404).
                assert_ne!(status, 405, "{method} {path}: {body}");
                assert!(
                    !(status == 404 && body.is_empty()),
                    "{method} {path} is in the table but not routed"
                );
                if status >= 400 {
                    assert_error_shape(path, status, &body);
                }
            } else {
                assert_eq!(
                    status, 405,
                    "{method} {path} is routed but not in the table: {body}"
                );
            }
        }
    }
}
