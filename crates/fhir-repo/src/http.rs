//! The FHIR R4 REST API over the repository, under `/fhir`.

use std::sync::Arc;

use axum::Router;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::{Value, json};
use store::Store;

use crate::params::{Kind, SEARCHABLE};
use crate::query::{self, SearchError};

/// Results per page when the client does not say (`_count`), and the most a page holds.
pub const DEFAULT_COUNT: usize = 50;
pub const MAX_COUNT: usize = 1000;

struct Api {
    store: Store,
    base: String,
}

/// The routes of the FHIR API over `store`; `base_url` is how clients reach `/fhir`
/// (e.g. `http://corridor.example:8080/fhir`), used in `fullUrl` and paging links.
pub fn router(store: Store, base_url: impl Into<String>) -> Router {
    let base = base_url.into().trim_end_matches('/').to_owned();
    Router::new()
        .route("/fhir/metadata", get(metadata))
        .route("/fhir/{type}", get(search))
        .route("/fhir/{type}/{id}", get(read))
        .route("/fhir/{type}/{id}/{op}", get(instance_op))
        .route("/fhir/{type}/{id}/{op}/{vid}", get(vread))
        .with_state(Arc::new(Api { store, base }))
}

fn fhir_json(status: StatusCode, body: &Value) -> Response {
    let mut response = (status, body.to_string()).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/fhir+json; charset=utf-8"),
    );
    response
}

fn with_etag(mut response: Response, resource: &Value) -> Response {
    if let Some(v) = resource["meta"]["versionId"].as_str() {
        if let Ok(value) = HeaderValue::from_str(&format!("W/\"{v}\"")) {
            response.headers_mut().insert(header::ETAG, value);
        }
    }
    response
}

/// An OperationOutcome with one issue.
fn outcome(status: StatusCode, code: &str, diagnostics: &str) -> Response {
    fhir_json(
        status,
        &json!({
            "resourceType": "OperationOutcome",
            "issue": [{"severity": "error", "code": code, "diagnostics": diagnostics}],
        }),
    )
}

fn store_failed(error: store::Error) -> Response {
    tracing::error!(%error, "reading the FHIR repository failed");
    outcome(
        StatusCode::INTERNAL_SERVER_ERROR,
        "exception",
        "the repository could not be read",
    )
}

fn is_known_type(resource_type: &str) -> bool {
    !resource_type.is_empty() && resource_type.bytes().all(|b| b.is_ascii_alphabetic())
}

fn not_found(resource_type: &str, id: &str) -> Response {
    outcome(
        StatusCode::NOT_FOUND,
        "not-found",
        &format!("{resource_type}/{id} is not known"),
    )
}

async fn read(State(api): State<Arc<Api>>, Path((ty, id)): Path<(String, String)>) -> Response {
    if !is_known_type(&ty) {
        return not_found(&ty, &id);
    }
    let (t, i) = (ty.clone(), id.clone());
    match api
        .store
        .read_async(move |c| query::read_in(c, &t, &i))
        .await
    {
        Ok(Some(resource)) => with_etag(fhir_json(StatusCode::OK, &resource), &resource),
        Ok(None) => not_found(&ty, &id),
        Err(e) => store_failed(e),
    }
}

async fn instance_op(
    State(api): State<Arc<Api>>,
    Path((ty, id, op)): Path<(String, String, String)>,
) -> Response {
    match op.as_str() {
        "_history" => history(api, ty, id).await,
        "$everything" if ty == "Patient" => everything(api, id).await,
        _ => outcome(
            StatusCode::NOT_FOUND,
            "not-supported",
            &format!("{op} is not an operation on {ty} here"),
        ),
    }
}

async fn history(api: Arc<Api>, ty: String, id: String) -> Response {
    let (t, i) = (ty.clone(), id.clone());
    let versions = match api
        .store
        .read_async(move |c| query::history_in(c, &t, &i))
        .await
    {
        Ok(v) if v.is_empty() => return not_found(&ty, &id),
        Ok(v) => v,
        Err(e) => return store_failed(e),
    };
    let entries: Vec<Value> = versions
        .iter()
        .map(|v| {
            json!({
                "fullUrl": format!("{}/{ty}/{id}", api.base),
                "resource": v.resource,
                "request": {"method": "PUT", "url": format!("{ty}/{id}")},
                "response": {
                    "status": if v.version == 1 { "201 Created" } else { "200 OK" },
                    "etag": format!("W/\"{}\"", v.version),
                    "lastModified": v.last_updated,
                },
            })
        })
        .collect();
    fhir_json(
        StatusCode::OK,
        &json!({
            "resourceType": "Bundle",
            "type": "history",
            "total": entries.len(),
            "entry": entries,
        }),
    )
}

async fn vread(
    State(api): State<Arc<Api>>,
    Path((ty, id, op, vid)): Path<(String, String, String, String)>,
) -> Response {
    if op != "_history" {
        return outcome(
            StatusCode::NOT_FOUND,
            "not-supported",
            &format!("{op} is not supported"),
        );
    }
    let Ok(version) = vid.parse::<i64>() else {
        return outcome(
            StatusCode::NOT_FOUND,
            "not-found",
            &format!("{ty}/{id} has no version {vid:?}"),
        );
    };
    let (t, i) = (ty.clone(), id.clone());
    match api
        .store
        .read_async(move |c| query::vread_in(c, &t, &i, version))
        .await
    {
        Ok(Some(resource)) => with_etag(fhir_json(StatusCode::OK, &resource), &resource),
        Ok(None) => outcome(
            StatusCode::NOT_FOUND,
            "not-found",
            &format!("{ty}/{id} has no version {version}"),
        ),
        Err(e) => store_failed(e),
    }
}

fn searchset(api: &Api, resources: Vec<Value>, total: u64, links: Vec<Value>) -> Value {
    let entries: Vec<Value> = resources
        .into_iter()
        .map(|r| {
            let url = format!(
                "{}/{}/{}",
                api.base,
                r["resourceType"].as_str().unwrap_or_default(),
                r["id"].as_str().unwrap_or_default()
            );
            json!({"fullUrl": url, "resource": r, "search": {"mode": "match"}})
        })
        .collect();
    let mut bundle = json!({
        "resourceType": "Bundle",
        "type": "searchset",
        "total": total,
        "link": links,
    });
    if !entries.is_empty() {
        bundle["entry"] = Value::Array(entries);
    }
    bundle
}

async fn everything(api: Arc<Api>, id: String) -> Response {
    let i = id.clone();
    match api
        .store
        .read_async(move |c| query::everything_in(c, &i))
        .await
    {
        Ok(Some(resources)) => {
            let total = resources.len() as u64;
            let link = vec![json!({
                "relation": "self",
                "url": format!("{}/Patient/{id}/$everything", api.base),
            })];
            fhir_json(StatusCode::OK, &searchset(&api, resources, total, link))
        }
        Ok(None) => not_found("Patient", &id),
        Err(e) => store_failed(e),
    }
}

/// Percent-encodes a query component.
fn encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~:".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn decode(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' => {
                let hex = text.get(i + 1..i + 3)?;
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 2;
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8(out).ok()
}

async fn search(
    State(api): State<Arc<Api>>,
    Path(ty): Path<String>,
    RawQuery(raw): RawQuery,
) -> Response {
    let mut pairs = Vec::new();
    for part in raw
        .as_deref()
        .unwrap_or_default()
        .split('&')
        .filter(|p| !p.is_empty())
    {
        let (name, value) = part.split_once('=').unwrap_or((part, ""));
        match (decode(name), decode(value)) {
            (Some(n), Some(v)) => pairs.push((n, v)),
            _ => {
                return outcome(
                    StatusCode::BAD_REQUEST,
                    "invalid",
                    "the query string is not valid percent-encoded UTF-8",
                );
            }
        }
    }
    let mut count = DEFAULT_COUNT;
    let mut offset = 0;
    let mut criteria = Vec::new();
    for (name, value) in pairs {
        match name.as_str() {
            "_count" | "_offset" => {
                let Ok(n) = value.parse::<usize>() else {
                    return outcome(
                        StatusCode::BAD_REQUEST,
                        "invalid",
                        &format!("search parameter {name:?}: {value:?} is not a whole number"),
                    );
                };
                if name == "_count" {
                    count = n.min(MAX_COUNT);
                } else {
                    offset = n;
                }
            }
            "_format" | "_pretty" => {}
            _ => criteria.push((name, value)),
        }
    }
    let (t, c) = (ty.clone(), criteria.clone());
    let result = api
        .store
        .read_async(move |conn| Ok(query::search_in(conn, &t, &c, count, offset)))
        .await;
    let page = match result {
        Ok(Ok(page)) => page,
        Ok(Err(SearchError::UnknownType(t))) => {
            return outcome(
                StatusCode::NOT_FOUND,
                "not-supported",
                &format!("resource type {t:?} is not searchable here"),
            );
        }
        Ok(Err(e @ SearchError::BadParameter { .. })) => {
            return outcome(StatusCode::BAD_REQUEST, "invalid", &e.to_string());
        }
        Ok(Err(SearchError::Store(e))) | Err(e) => return store_failed(e),
    };
    let query: String = criteria
        .iter()
        .map(|(n, v)| format!("{}={}&", encode(n), encode(v)))
        .collect();
    let link = |relation: &str, from: usize| {
        json!({
            "relation": relation,
            "url": format!("{}/{ty}?{query}_count={count}&_offset={from}", api.base),
        })
    };
    let mut links = vec![link("self", offset)];
    if (offset + count) < page.total as usize && count > 0 {
        links.push(link("next", offset + count));
    }
    if offset > 0 {
        links.push(link("previous", offset.saturating_sub(count)));
    }
    fhir_json(
        StatusCode::OK,
        &searchset(&api, page.resources, page.total, links),
    )
}

/// The CapabilityStatement: the types, interactions and search parameters above.
pub fn capability_statement(base: &str) -> Value {
    let resources: Vec<Value> = SEARCHABLE
        .iter()
        .map(|(ty, params)| {
            let mut search_params: Vec<Value> = vec![json!({"name": "_id", "type": "token"})];
            search_params.extend(params.iter().map(|p| {
                let mut param = json!({"name": p.name, "type": p.kind.as_str()});
                if p.kind == Kind::Patient {
                    param["documentation"] = "The Patient and every Patient merged into it".into();
                }
                param
            }));
            let mut resource = json!({
                "type": ty,
                "interaction": [
                    {"code": "read"}, {"code": "vread"},
                    {"code": "history-instance"}, {"code": "search-type"}
                ],
                "versioning": "versioned",
                "readHistory": true,
                "searchParam": search_params,
            });
            if *ty == "Patient" {
                resource["operation"] = json!([{
                    "name": "everything",
                    "definition": "http://hl7.org/fhir/OperationDefinition/Patient-everything",
                }]);
            }
            resource
        })
        .collect();
    json!({
        "resourceType": "CapabilityStatement",
        "status": "active",
        "date": "2026-01-01",
        "kind": "instance",
        "software": {"name": "Corridor"},
        "implementation": {
            "description": "Corridor clinical repository (read-only; resources come from HL7 v2 messages)",
            "url": base,
        },
        "fhirVersion": "4.0.1",
        "format": ["application/fhir+json"],
        "rest": [{
            "mode": "server",
            "documentation": "Every resource type Corridor stores can be read (read, vread, history); the types listed can be searched. Paging with _count and _offset.",
            "resource": resources,
        }],
    })
}

async fn metadata(State(api): State<Arc<Api>>) -> Response {
    fhir_json(StatusCode::OK, &capability_statement(&api.base))
}
