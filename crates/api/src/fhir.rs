//! The FHIR R4 REST API over the repository, under `/fhir`.

//! The FHIR R4 REST API over the repository (`fhir_repo`), under `/fhir`: `metadata`,
//! read, vread, history, search and `Patient/{id}/$everything`. Errors are
//! OperationOutcomes ([`ApiError::outcome`]).

use std::sync::Arc;

use access::{FhirAccess, Scopes};
use axum::Extension;
use axum::body::Bytes;
use axum::extract::{Path, RawQuery, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use fhir_repo::date;
use fhir_repo::params::{self, COMMON, Kind, SEARCHABLE};
use fhir_repo::query::{self, SearchError};
use serde_json::{Value, json};
use store::Store;

use crate::error::fhir_json;
use crate::routes::{Access, Method, Routes};
use crate::{Api, ApiError};

/// Results per page when the client does not say (`_count`), and the most a page holds.
pub const DEFAULT_COUNT: usize = 50;
pub const MAX_COUNT: usize = 1000;

/// The caller as the access guard authenticated it (absent only when a test serves
/// the routes without the guard's principal).
pub(crate) type Caller = Option<Extension<access::Principal>>;

/// The SMART scopes limiting the caller, if any.
pub(crate) fn scopes_of(caller: &Caller) -> Option<&Scopes> {
    caller.as_ref().and_then(|Extension(c)| c.scopes.as_ref())
}

fn forbidden(diagnostics: &str) -> Response {
    outcome(StatusCode::FORBIDDEN, "forbidden", diagnostics)
}

/// Whether the caller's scopes let it read resources of type `ty` at all: Ok with the
/// Patient id the reads are limited to when only `patient/` scopes allow it, Err with
/// why not (a 403) when no scope does or a `patient/` scope has no patient context.
pub(crate) fn scope_check(scopes: Option<&Scopes>, ty: &str) -> Result<Option<String>, String> {
    let Some(scopes) = scopes else {
        return Ok(None);
    };
    if !scopes.allows(ty, FhirAccess::Read) {
        return Err(format!("the token's scopes do not allow reading {ty}"));
    }
    if !scopes.patient_only(ty, FhirAccess::Read) {
        return Ok(None);
    }
    match scopes.patient() {
        Some(patient) => Ok(Some(patient.to_owned())),
        None => Err(format!(
            "the token reads {ty} only through patient/ scopes, and it names no patient (the patient claim)"
        )),
    }
}

/// Whether `resource` belongs to the compartment of Patient `patient`: the Patient
/// itself, or a resource whose `subject` or `patient` refers to it.
fn in_compartment(resource: &Value, patient: &str) -> bool {
    if resource["resourceType"] == "Patient" {
        return resource["id"] == patient;
    }
    let wanted = format!("Patient/{patient}");
    ["subject", "patient"].iter().any(|field| {
        resource[*field]["reference"].as_str().is_some_and(|r| {
            r == wanted
                || r.strip_suffix(wanted.as_str())
                    .is_some_and(|base| base.ends_with('/'))
        })
    })
}

/// Whether the caller's scopes let it see `resource` (its type, and for `patient/`
/// scopes its patient).
fn may_see(scopes: Option<&Scopes>, resource: &Value) -> bool {
    let ty = resource["resourceType"].as_str().unwrap_or_default();
    match scope_check(scopes, ty) {
        Ok(None) => true,
        Ok(Some(patient)) => in_compartment(resource, &patient),
        Err(_) => false,
    }
}

fn outside_scopes(resource_type: &str, id: &str) -> Response {
    forbidden(&format!(
        "{resource_type}/{id} is outside the patient the token's scopes are limited to"
    ))
}

/// The repository as the handlers use it.
struct Repository {
    store: Store,
    base: String,
}

/// The repository of `app`, or a 404 OperationOutcome when it is not enabled.
fn repository(app: &Api) -> Result<Arc<Repository>, ApiError> {
    match &app.fhir_base {
        Some(base) => Ok(Arc::new(Repository {
            store: app.store.clone(),
            base: base.trim_end_matches('/').to_owned(),
        })),
        None => Err(ApiError::outcome(
            StatusCode::NOT_FOUND,
            "not-supported",
            "the FHIR repository is not enabled",
        )),
    }
}

pub(crate) fn routes() -> Routes {
    Routes::new()
        .add(Method::Get, "/fhir/metadata", Access::Metadata, metadata)
        .add(Method::Get, "/fhir/{type}", Access::Phi, search_get)
        .add(Method::Get, "/fhir/{type}/_search", Access::Phi, search_get)
        .add(
            Method::Post,
            "/fhir/{type}/_search",
            Access::Phi,
            search_post,
        )
        .add(Method::Get, "/fhir/{type}/{id}", Access::Phi, read)
        .add(
            Method::Get,
            "/fhir/{type}/{id}/{op}",
            Access::Phi,
            instance_op,
        )
        .add(
            Method::Get,
            "/fhir/{type}/{id}/{op}/{vid}",
            Access::Phi,
            vread,
        )
        // On these routes only: the other routes (and the 404s of unknown paths) must
        // not be negotiated here.
        .map_router(|r| r.route_layer(middleware::from_fn(negotiate)))
}

/// A resource's answer to a read: ETag and Last-Modified from its `meta`, and
/// 304 Not Modified (no body) when the client's copy is current: `If-None-Match`
/// names this version (`W/"2"`, `"2"` or `2`, or `*`), or, without `If-None-Match`,
/// `If-Modified-Since` is no earlier than the version's last update.
fn versioned(resource: &Value, request: &HeaderMap) -> Response {
    let version = resource["meta"]["versionId"].as_str();
    let modified = resource["meta"]["lastUpdated"]
        .as_str()
        .and_then(date::parse)
        .map(|r| r.lo);
    let unchanged = match request.get(header::IF_NONE_MATCH) {
        Some(tags) => tags.to_str().is_ok_and(|tags| {
            tags.split(',').any(|tag| {
                let tag = tag.trim();
                let bare = tag.trim_start_matches("W/").trim_matches('"');
                tag == "*" || version.is_some_and(|v| v == bare)
            })
        }),
        None => request
            .get(header::IF_MODIFIED_SINCE)
            .and_then(|v| v.to_str().ok())
            .and_then(date::parse_http_date)
            .zip(modified)
            .is_some_and(|(since, modified)| modified <= since),
    };
    let mut response = if unchanged {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        fhir_json(StatusCode::OK, resource)
    };
    if let Some(Ok(value)) = version.map(|v| HeaderValue::from_str(&format!("W/\"{v}\""))) {
        response.headers_mut().insert(header::ETAG, value);
    }
    if let Some(Ok(value)) = modified.map(|m| HeaderValue::from_str(&date::http_date(m))) {
        response.headers_mut().insert(header::LAST_MODIFIED, value);
    }
    response
}

/// Whether a media type (from `Accept` or `_format`) is one Corridor serves: FHIR
/// JSON or a wildcard.
fn serves(media: &str) -> bool {
    let media = media.split(';').next().unwrap_or_default().trim();
    matches!(
        media.to_ascii_lowercase().as_str(),
        "json"
            | "application/json"
            | "application/fhir+json"
            | "application/json+fhir"
            | "*/*"
            | "application/*"
            | ""
    )
}

/// Answers 406 Not Acceptable, before the route's handler runs, to a request whose `_format`
/// or `Accept` asks only for what Corridor does not serve (XML, Turtle, HTML): a
/// client must not get JSON it did not ask for without a word. `_format` wins over
/// `Accept`, as the specification says.
async fn negotiate(request: Request, next: Next) -> Response {
    let format = request.uri().query().and_then(|q| {
        decode_pairs(q)?
            .into_iter()
            .find(|(n, _)| n == "_format")
            .map(|(_, v)| v)
    });
    let acceptable = match format {
        Some(format) => serves(&format),
        None => {
            let accepts: Vec<&str> = request
                .headers()
                .get_all(header::ACCEPT)
                .iter()
                .filter_map(|v| v.to_str().ok())
                .flat_map(|v| v.split(','))
                .collect();
            accepts.is_empty() || accepts.into_iter().any(serves)
        }
    };
    if !acceptable {
        return outcome(
            StatusCode::NOT_ACCEPTABLE,
            "not-supported",
            "Corridor serves FHIR JSON only (application/fhir+json); XML and other formats are not available",
        );
    }
    next.run(request).await
}

/// An OperationOutcome with one issue.
fn outcome(status: StatusCode, code: &'static str, diagnostics: &str) -> Response {
    ApiError::outcome(status, code, diagnostics).into_response()
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

async fn read(
    State(app): State<Api>,
    Path((ty, id)): Path<(String, String)>,
    caller: Caller,
    headers: HeaderMap,
) -> Response {
    let api = match repository(&app) {
        Ok(api) => api,
        Err(error) => return error.into_response(),
    };
    if !is_known_type(&ty) {
        return not_found(&ty, &id);
    }
    let scopes = scopes_of(&caller);
    if let Err(refused) = scope_check(scopes, &ty) {
        return forbidden(&refused);
    }
    let (t, i) = (ty.clone(), id.clone());
    match api
        .store
        .read_async(move |c| query::read_in(c, &t, &i))
        .await
    {
        Ok(Some(resource)) if !may_see(scopes, &resource) => outside_scopes(&ty, &id),
        Ok(Some(resource)) => versioned(&resource, &headers),
        Ok(None) => not_found(&ty, &id),
        Err(e) => store_failed(e),
    }
}

async fn instance_op(
    State(app): State<Api>,
    Path((ty, id, op)): Path<(String, String, String)>,
    caller: Caller,
) -> Response {
    let api = match repository(&app) {
        Ok(api) => api,
        Err(error) => return error.into_response(),
    };
    let scopes = scopes_of(&caller);
    if let Err(refused) = scope_check(scopes, &ty) {
        return forbidden(&refused);
    }
    match op.as_str() {
        "_history" => history(api, ty, id, scopes).await,
        "$everything" if ty == "Patient" => everything(api, id, scopes).await,
        _ => outcome(
            StatusCode::NOT_FOUND,
            "not-supported",
            &format!("{op} is not an operation on {ty} here"),
        ),
    }
}

async fn history(
    api: Arc<Repository>,
    ty: String,
    id: String,
    scopes: Option<&Scopes>,
) -> Response {
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
    // Every version must be the caller's to see: a resource moved between patients
    // shows neither.
    if !versions.iter().all(|v| may_see(scopes, &v.resource)) {
        return outside_scopes(&ty, &id);
    }
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
    State(app): State<Api>,
    Path((ty, id, op, vid)): Path<(String, String, String, String)>,
    caller: Caller,
    headers: HeaderMap,
) -> Response {
    let api = match repository(&app) {
        Ok(api) => api,
        Err(error) => return error.into_response(),
    };
    let scopes = scopes_of(&caller);
    if let Err(refused) = scope_check(scopes, &ty) {
        return forbidden(&refused);
    }
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
        Ok(Some(resource)) if !may_see(scopes, &resource) => outside_scopes(&ty, &id),
        Ok(Some(resource)) => versioned(&resource, &headers),
        Ok(None) => outcome(
            StatusCode::NOT_FOUND,
            "not-found",
            &format!("{ty}/{id} has no version {version}"),
        ),
        Err(e) => store_failed(e),
    }
}

fn entry(api: &Repository, resource: Value, mode: &str) -> Value {
    let url = format!(
        "{}/{}/{}",
        api.base,
        resource["resourceType"].as_str().unwrap_or_default(),
        resource["id"].as_str().unwrap_or_default()
    );
    json!({"fullUrl": url, "resource": resource, "search": {"mode": mode}})
}

fn searchset(
    api: &Repository,
    resources: Vec<Value>,
    total: Option<u64>,
    links: Vec<Value>,
) -> Value {
    let entries: Vec<Value> = resources
        .into_iter()
        .map(|r| entry(api, r, "match"))
        .collect();
    let mut bundle = json!({
        "resourceType": "Bundle",
        "type": "searchset",
        "link": links,
    });
    if let Some(total) = total {
        bundle["total"] = total.into();
    }
    if !entries.is_empty() {
        bundle["entry"] = Value::Array(entries);
    }
    bundle
}

async fn everything(api: Arc<Repository>, id: String, scopes: Option<&Scopes>) -> Response {
    let i = id.clone();
    match api
        .store
        .read_async(move |c| query::everything_in(c, &i))
        .await
    {
        Ok(Some(resources)) if !may_see(scopes, &resources[0]) => outside_scopes("Patient", &id),
        Ok(Some(resources)) => {
            // Only the types the caller's scopes allow, and those it reads through
            // `patient/` scopes only when this is its patient. (All are in this
            // patient's compartment, those of patients merged into it too.)
            let resources: Vec<Value> = resources
                .into_iter()
                .filter(|r| {
                    let ty = r["resourceType"].as_str().unwrap_or_default();
                    scope_check(scopes, ty).is_ok_and(|p| p.is_none_or(|p| p == id))
                })
                .collect();
            let total = resources.len() as u64;
            let link = vec![json!({
                "relation": "self",
                "url": format!("{}/Patient/{id}/$everything", api.base),
            })];
            fhir_json(
                StatusCode::OK,
                &searchset(&api, resources, Some(total), link),
            )
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

/// Whether the client asked for errors on parameters Corridor does not use
/// (`Prefer: handling=strict`); the default is to leave them out and say so.
fn strict(headers: &HeaderMap) -> bool {
    headers
        .get_all("prefer")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split([',', ';']))
        .any(|p| p.trim().eq_ignore_ascii_case("handling=strict"))
}

/// `name=value&...` (a query string or a form body) as decoded pairs.
pub(crate) fn decode_pairs(text: &str) -> Option<Vec<(String, String)>> {
    let mut pairs = Vec::new();
    for part in text.split('&').filter(|p| !p.is_empty()) {
        let (name, value) = part.split_once('=').unwrap_or((part, ""));
        pairs.push((decode(name)?, decode(value)?));
    }
    Some(pairs)
}

fn bad_request(diagnostics: &str) -> Response {
    outcome(StatusCode::BAD_REQUEST, "invalid", diagnostics)
}

/// A search as the client asked for it: what Corridor will do, the parameters it
/// uses (for the self link) and those it leaves out, with why.
struct SearchRequest {
    search: query::Search,
    summary_count: bool,
    elements: Option<Vec<String>>,
    used: Vec<(String, String)>,
    ignored: Vec<(String, String)>,
}

fn parse_search(
    ty: &str,
    pairs: Vec<(String, String)>,
    strict: bool,
) -> Result<SearchRequest, String> {
    let mut request = SearchRequest {
        search: query::Search::new(Vec::new(), DEFAULT_COUNT),
        summary_count: false,
        elements: None,
        used: Vec::new(),
        ignored: Vec::new(),
    };
    let ignore = |request: &mut SearchRequest, name: &str, reason: String| {
        if strict {
            return Err(format!("search parameter {name:?}: {reason}"));
        }
        request.ignored.push((name.to_owned(), reason));
        Ok(())
    };
    for (name, value) in pairs {
        match name.as_str() {
            "_count" | "_offset" => {
                let Ok(n) = value.parse::<usize>() else {
                    return Err(format!(
                        "search parameter {name:?}: {value:?} is not a whole number"
                    ));
                };
                if name == "_count" {
                    request.search.count = n.min(MAX_COUNT);
                } else {
                    request.search.offset = n;
                }
            }
            "_format" | "_pretty" => {}
            "_summary" => match value.as_str() {
                "count" => {
                    request.summary_count = true;
                    request.used.push((name, value));
                }
                "false" => request.used.push((name, value)),
                _ => ignore(
                    &mut request,
                    &name,
                    format!("_summary={value} is not supported (count, false)"),
                )?,
            },
            "_total" => match value.as_str() {
                "none" => {
                    request.search.total = false;
                    request.used.push((name, value));
                }
                "estimate" | "accurate" => request.used.push((name, value)),
                _ => {
                    return Err(format!(
                        "search parameter \"_total\": {value:?} is not none, estimate or accurate"
                    ));
                }
            },
            "_sort" => {
                let mut used = Vec::new();
                for key in value.split(',').map(str::trim).filter(|k| !k.is_empty()) {
                    let (field, descending) = match key.strip_prefix('-') {
                        Some(f) => (f, true),
                        None => (key, false),
                    };
                    match query::unsortable(ty, field) {
                        None => {
                            request.search.sort.push(query::SortKey {
                                name: field.to_owned(),
                                descending,
                            });
                            used.push(key);
                        }
                        Some(reason) => ignore(&mut request, "_sort", reason)?,
                    }
                }
                if !used.is_empty() {
                    request.used.push((name, used.join(",")));
                }
            }
            "_include" | "_revinclude" => {
                let reverse = name == "_revinclude";
                let Some(include) = query::Include::parse(&value) else {
                    ignore(
                        &mut request,
                        &name,
                        format!("{value:?} is not Type:parameter[:TargetType]"),
                    )?;
                    continue;
                };
                match query::unincludable(ty, &include, reverse) {
                    None => {
                        if reverse {
                            request.search.revinclude.push(include);
                        } else {
                            request.search.include.push(include);
                        }
                        request.used.push((name, value));
                    }
                    Some(reason) => ignore(&mut request, &name, reason)?,
                }
            }
            "_elements" => {
                if value.trim_start().starts_with('-') {
                    // The R5 exclusion form: keeping only the rest would drop
                    // everything the client did not name.
                    ignore(
                        &mut request,
                        &name,
                        "leaving elements out (-name) is not supported".to_owned(),
                    )?;
                    continue;
                }
                let names: Vec<String> = value
                    .split(',')
                    .map(|e| e.trim().to_owned())
                    .filter(|e| !e.is_empty())
                    .collect();
                request.elements.get_or_insert_with(Vec::new).extend(names);
                request.used.push((name, value));
            }
            _ => match query::unsupported(ty, &name) {
                None => {
                    request.search.criteria.push((name.clone(), value.clone()));
                    request.used.push((name, value));
                }
                Some(reason) => ignore(&mut request, &name, reason)?,
            },
        }
    }
    if request.summary_count {
        request.search.count = 0;
        request.search.total = true;
        request.search.include.clear();
        request.search.revinclude.clear();
    }
    Ok(request)
}

/// The top-level elements R4 requires (min 1) of the searchable types; `[x]` stands
/// for any form of a choice element.
fn mandatory(resource_type: &str) -> &'static [&'static str] {
    match resource_type {
        "Encounter" => &["status", "class"],
        "Observation" | "DiagnosticReport" => &["status", "code"],
        "AllergyIntolerance" => &["patient"],
        "MedicationRequest" => &["status", "intent", "medication[x]", "subject"],
        "Immunization" => &["status", "vaccineCode", "patient", "occurrence[x]"],
        "Condition" => &["subject"],
        "ServiceRequest" => &["status", "intent", "subject"],
        "DocumentReference" => &["status", "content"],
        _ => &[],
    }
}

/// `resource` with only the top-level `elements` asked for, the elements R4 requires
/// of its type (the specification asks servers to keep them) and `resourceType`,
/// `id` and `meta`, tagged SUBSETTED as the specification asks.
fn subset(resource: Value, elements: &[String]) -> Value {
    let Value::Object(map) = resource else {
        return resource;
    };
    let required = mandatory(
        map.get("resourceType")
            .and_then(Value::as_str)
            .unwrap_or_default(),
    );
    let keep = |key: &str| {
        matches!(key, "resourceType" | "id" | "meta")
            || elements.iter().any(|e| e == key)
            || required.iter().any(|r| match r.strip_suffix("[x]") {
                Some(stem) => key.starts_with(stem),
                None => *r == key,
            })
    };
    let mut kept: serde_json::Map<String, Value> =
        map.into_iter().filter(|(k, _)| keep(k)).collect();
    let meta = kept
        .entry("meta")
        .or_insert_with(|| Value::Object(serde_json::Map::new()));
    if let Value::Object(meta) = meta {
        let tags = meta
            .entry("tag")
            .or_insert_with(|| Value::Array(Vec::new()));
        if let Value::Array(tags) = tags {
            tags.push(json!({
                "system": "http://terminology.hl7.org/CodeSystem/v3-ObservationValue",
                "code": "SUBSETTED",
            }));
        }
    }
    Value::Object(kept)
}

async fn search_get(
    State(app): State<Api>,
    Path(ty): Path<String>,
    caller: Caller,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
) -> Response {
    let api = match repository(&app) {
        Ok(api) => api,
        Err(error) => return error.into_response(),
    };
    let Some(pairs) = decode_pairs(raw.as_deref().unwrap_or_default()) else {
        return bad_request("the query string is not valid percent-encoded UTF-8");
    };
    search(api, ty, &headers, pairs, scopes_of(&caller)).await
}

/// `POST [type]/_search`: the parameters in a form body, with any in the URL.
async fn search_post(
    State(app): State<Api>,
    Path(ty): Path<String>,
    caller: Caller,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
    body: Bytes,
) -> Response {
    let api = match repository(&app) {
        Ok(api) => api,
        Err(error) => return error.into_response(),
    };
    let form = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.trim_start()
                .starts_with("application/x-www-form-urlencoded")
        });
    if !form && !body.is_empty() {
        return outcome(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "not-supported",
            "POST _search takes an application/x-www-form-urlencoded body",
        );
    }
    let Ok(body) = std::str::from_utf8(&body) else {
        return bad_request("the form body is not UTF-8");
    };
    let (Some(mut pairs), Some(more)) = (
        decode_pairs(raw.as_deref().unwrap_or_default()),
        decode_pairs(body),
    ) else {
        return bad_request("the parameters are not valid percent-encoded UTF-8");
    };
    pairs.extend(more);
    search(api, ty, &headers, pairs, scopes_of(&caller)).await
}

async fn search(
    api: Arc<Repository>,
    ty: String,
    headers: &HeaderMap,
    pairs: Vec<(String, String)>,
    scopes: Option<&Scopes>,
) -> Response {
    let Some(type_params) = params::params_of(&ty) else {
        return outcome(
            StatusCode::NOT_FOUND,
            "not-supported",
            &format!("resource type {ty:?} is not searchable here"),
        );
    };
    let patient = match scope_check(scopes, &ty) {
        Ok(patient) => patient,
        Err(refused) => return forbidden(&refused),
    };
    let mut request = match parse_search(&ty, pairs, strict(headers)) {
        Ok(r) => r,
        Err(diagnostics) => return bad_request(&diagnostics),
    };
    // Limited to one patient by `patient/` scopes: the search is too, whatever else
    // it asks (the criteria are all required).
    if let Some(patient) = patient {
        let limit = if ty == "Patient" {
            Some("_id")
        } else {
            type_params
                .iter()
                .find(|p| p.kind == Kind::Patient)
                .map(|p| p.name)
        };
        let Some(limit) = limit else {
            return forbidden(&format!(
                "{ty} is not in a patient's compartment, and the token reads it only through patient/ scopes"
            ));
        };
        request.search.criteria.push((limit.to_owned(), patient));
    }
    let (t, s) = (ty.clone(), request.search.clone());
    let result = api
        .store
        .read_async(move |conn| Ok(query::search_in(conn, &t, &s)))
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
        Ok(Err(e @ SearchError::BadParameter { .. })) => return bad_request(&e.to_string()),
        Ok(Err(SearchError::Store(e))) | Err(e) => return store_failed(e),
    };
    let (count, offset) = (request.search.count, request.search.offset);
    let query: String = request
        .used
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
    if page.more && count > 0 {
        links.push(link("next", offset + count));
    }
    if offset > 0 && count > 0 {
        links.push(link("previous", offset.saturating_sub(count)));
    }
    let matches = match &request.elements {
        Some(elements) => page
            .resources
            .into_iter()
            .map(|r| subset(r, elements))
            .collect(),
        None => page.resources,
    };
    let mut bundle = searchset(&api, matches, page.total, links);
    // Included resources only of the types (and patient) the caller's scopes allow.
    let mut extra: Vec<Value> = page
        .included
        .into_iter()
        .filter(|r| may_see(scopes, r))
        .map(|r| entry(&api, r, "include"))
        .collect();
    let mut issues: Vec<Value> = request
        .ignored
        .iter()
        .map(|(name, reason)| {
            json!({
                "severity": "warning",
                "code": "not-supported",
                "diagnostics": format!("search parameter {name:?} was ignored: {reason}"),
                "location": [format!("http.{name}")],
            })
        })
        .collect();
    if page.included_cut {
        issues.push(json!({
            "severity": "warning",
            "code": "too-costly",
            "diagnostics": format!(
                "only the first {} included resources are returned; ask for a smaller _count",
                query::MAX_INCLUDED
            ),
        }));
    }
    if !issues.is_empty() {
        extra.push(json!({
            "resource": {"resourceType": "OperationOutcome", "issue": issues},
            "search": {"mode": "outcome"},
        }));
    }
    if !extra.is_empty() {
        if let Value::Array(entries) = bundle
            .as_object_mut()
            .map(|b| b.entry("entry").or_insert_with(|| Value::Array(Vec::new())))
            .unwrap_or(&mut Value::Null)
        {
            entries.extend(extra);
        }
    }
    fhir_json(StatusCode::OK, &bundle)
}

/// The types the converter stores that search does not cover: they answer read, vread
/// and history only (`tests/fhir_valid_r4.rs` checks that every type the corpus stores
/// is listed in the CapabilityStatement, as one of these or as searchable).
pub const READ_ONLY_TYPES: &[&str] = &[
    "Account",
    "Appointment",
    "CareTeam",
    "ChargeItem",
    "Coverage",
    "Device",
    "Location",
    "MedicationAdministration",
    "MedicationDispense",
    "MessageHeader",
    "OperationOutcome",
    "Organization",
    "Practitioner",
    "PractitionerRole",
    "Procedure",
    "Provenance",
    "RelatedPerson",
    "Specimen",
];

/// The CapabilityStatement: the types, interactions and search parameters above (the
/// terminology's resources are added by `metadata` when it runs).
pub fn capability_statement(base: &str) -> Value {
    let mut resources: Vec<Value> = SEARCHABLE
        .iter()
        .map(|(ty, params)| {
            let mut search_params: Vec<Value> = vec![json!({"name": "_id", "type": "token"})];
            search_params.extend(COMMON.iter().chain(params.iter()).map(|p| {
                let mut param = json!({"name": p.name, "type": p.kind.as_str()});
                if p.kind == Kind::Patient {
                    param["documentation"] = "The Patient and every Patient merged into it; \
                        chains to the Patient's parameters (e.g. patient.identifier=system|value)"
                        .into();
                }
                param
            }));
            let includes: Vec<String> = params
                .iter()
                .filter(|p| matches!(p.kind, Kind::Patient | Kind::Reference))
                .map(|p| format!("{ty}:{}", p.name))
                .collect();
            let revincludes: Vec<String> = SEARCHABLE
                .iter()
                .flat_map(|(source, params)| params.iter().map(move |p| (source, p)))
                .filter(|(_, p)| match p.kind {
                    Kind::Patient => *ty == "Patient",
                    Kind::Reference => params::reference_target(p.name) == Some(ty),
                    _ => false,
                })
                .map(|(source, p)| format!("{source}:{}", p.name))
                .collect();
            let mut resource = json!({
                "type": ty,
                "interaction": [
                    {"code": "read"}, {"code": "vread"},
                    {"code": "history-instance"}, {"code": "search-type"}
                ],
                "versioning": "versioned",
                "readHistory": true,
                "conditionalRead": "full-support",
                "searchInclude": includes,
                "searchRevInclude": revincludes,
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
    resources.extend(READ_ONLY_TYPES.iter().map(|ty| {
        json!({
            "type": ty,
            "interaction": [
                {"code": "read"}, {"code": "vread"}, {"code": "history-instance"}
            ],
            "versioning": "versioned",
            "readHistory": true,
            "conditionalRead": "full-support",
        })
    }));
    resources.sort_by(|a, b| a["type"].as_str().cmp(&b["type"].as_str()));
    let result_params = json!([
        {"name": "_sort", "type": "special", "documentation": "Comma-separated _id, _lastUpdated or a token, string or date parameter of the type; - in front for descending"},
        {"name": "_count", "type": "number", "documentation": "Results per page (default 50, at most 1000); 0 with _summary=count"},
        {"name": "_offset", "type": "number", "documentation": "Where the page starts, as the paging links give it"},
        {"name": "_summary", "type": "token", "documentation": "count (the total only) or false"},
        {"name": "_total", "type": "token", "documentation": "none, estimate or accurate (the total is always exact unless none)"},
        {"name": "_elements", "type": "special", "documentation": "Top-level elements to return; resources come tagged SUBSETTED"},
    ]);
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
            "documentation": "Every resource type Corridor stores can be read (read, vread, history; ETag, Last-Modified, If-None-Match and If-Modified-Since); the types listed with search-type can be searched with GET or POST [type]/_search. Parameters Corridor does not use are left out and named in an OperationOutcome entry (search mode outcome) unless the request says Prefer: handling=strict, which makes them a 400. Only JSON is served: an Accept or _format asking for XML is a 406.",
            "resource": resources,
            "searchParam": result_params,
        }],
    })
}

async fn metadata(State(app): State<Api>) -> Response {
    let api = match repository(&app) {
        Ok(api) => api,
        Err(error) => return error.into_response(),
    };
    let mut statement = capability_statement(&api.base);
    if app.terminology.is_some() {
        if let Some(resources) = statement["rest"][0]["resource"].as_array_mut() {
            resources.extend(crate::terminology::capability_resources());
        }
    }
    fhir_json(StatusCode::OK, &statement)
}
