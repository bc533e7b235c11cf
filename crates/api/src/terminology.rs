//! Terminology routes: managing the loads (`/api/terminology`), the unmapped codes, and
//! the FHIR terminology operations over the content in force (`/fhir/...`).
//!
//! | route | access | what |
//! | --- | --- | --- |
//! | `GET /api/terminology` | Metadata | the loads, newest first, and the version in force |
//! | `POST /api/terminology?name=N` | Admin | a new load: one file as the body (FHIR JSON, CSV map, LOINC table), or `{"name", "files": [{"name", "content"}], "sender", "fields"}`; in force when the answer comes |
//! | `GET /api/terminology/unmapped` | Phi | codes met without a mapping (with example message ids); `?format=csv` the CSV map to fill in and load back |
//! | `GET/POST /fhir/ConceptMap/$translate` | Metadata | `system`, `code` (or `coding`, `codeableConcept`), `url`, `target`/`targetsystem`; Corridor's `sender` and `field` choose scoped maps |
//! | `GET/POST /fhir/CodeSystem/$lookup` | Metadata | `system`, `code` (or `coding`) |
//! | `GET/POST /fhir/ValueSet/$validate-code` | Metadata | `system` (or `url`, a code system's URL: its implicit value set), `code`, `display` (or `coding`) |
//! | `GET /fhir/ConceptMap`, `GET /fhir/CodeSystem` | Metadata | search by `url`, `name`, `_id` (a searchset Bundle) |
//! | `GET /fhir/ConceptMap/{id}`, `GET /fhir/CodeSystem/{id}` | Metadata | read |
//!
//! Terminology content holds no patient data (Metadata); the unmapped codes name example
//! messages, so they are read as PHI.

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use terminology::fhir_out::{
    code_system_json, code_systems_with_ids, concept_map_json, concept_maps_with_ids,
};
use terminology::{LoadFile, MapScope, Scope, TerminologyService, Validity};

use crate::error::fhir_json;
use crate::extract::{Path, Query};
use crate::routes::{Access, Method, Routes};
use crate::times::add_iso;
use crate::{Api, ApiError, Principal};

/// Largest load accepted through the API (the LOINC table is about 80 MB; larger
/// content loads with `corridor terminology load`).
const MAX_LOAD: usize = 256 << 20;

pub(crate) fn routes() -> Routes {
    Routes::new()
        .add(Method::Get, "/api/terminology", Access::Metadata, list)
        .add(Method::Post, "/api/terminology", Access::Admin, load)
        .add(
            Method::Get,
            "/api/terminology/unmapped",
            Access::Phi,
            unmapped,
        )
        .add(
            Method::Get,
            "/fhir/ConceptMap/$translate",
            Access::Metadata,
            translate_get,
        )
        .add(
            Method::Post,
            "/fhir/ConceptMap/$translate",
            Access::Metadata,
            translate_post,
        )
        .add(
            Method::Get,
            "/fhir/CodeSystem/$lookup",
            Access::Metadata,
            lookup_get,
        )
        .add(
            Method::Post,
            "/fhir/CodeSystem/$lookup",
            Access::Metadata,
            lookup_post,
        )
        .add(
            Method::Get,
            "/fhir/ValueSet/$validate-code",
            Access::Metadata,
            validate_get,
        )
        .add(
            Method::Post,
            "/fhir/ValueSet/$validate-code",
            Access::Metadata,
            validate_post,
        )
        .add(
            Method::Get,
            "/fhir/ConceptMap",
            Access::Metadata,
            search_concept_maps,
        )
        .add(
            Method::Get,
            "/fhir/ConceptMap/{id}",
            Access::Metadata,
            read_concept_map,
        )
        .add(
            Method::Get,
            "/fhir/CodeSystem",
            Access::Metadata,
            search_code_systems,
        )
        .add(
            Method::Get,
            "/fhir/CodeSystem/{id}",
            Access::Metadata,
            read_code_system,
        )
        .map_router(|r| r.layer(DefaultBodyLimit::max(MAX_LOAD)))
}

/// The CapabilityStatement's entries for what these routes serve under `/fhir` (when
/// the terminology runs): ConceptMap and CodeSystem read and search by `_id`, `url` and
/// `name`, `$translate`, `$lookup` and `$validate-code` (GET and POST).
pub(crate) fn capability_resources() -> Vec<Value> {
    let searched = |ty: &str, operation: &str| {
        json!({
            "type": ty,
            "interaction": [{"code": "read"}, {"code": "search-type"}],
            "searchParam": [
                {"name": "_id", "type": "token"},
                {"name": "url", "type": "uri"},
                {"name": "name", "type": "string"},
            ],
            "operation": [{
                "name": operation,
                "definition": format!("http://hl7.org/fhir/OperationDefinition/{ty}-{operation}"),
            }],
        })
    };
    vec![
        searched("CodeSystem", "lookup"),
        searched("ConceptMap", "translate"),
        json!({
            "type": "ValueSet",
            "operation": [{
                "name": "validate-code",
                "definition": "http://hl7.org/fhir/OperationDefinition/ValueSet-validate-code",
            }],
        }),
    ]
}

impl Api {
    fn terminology(&self) -> Result<&TerminologyService, ApiError> {
        self.terminology
            .as_ref()
            .ok_or_else(|| ApiError::not_found("the terminology is not running"))
    }

    fn fhir_terminology(&self) -> Result<&TerminologyService, ApiError> {
        self.terminology.as_ref().ok_or_else(|| {
            ApiError::outcome(
                StatusCode::NOT_FOUND,
                "not-found",
                "the terminology is not running",
            )
        })
    }
}

fn stored_error(e: terminology::StoredError) -> ApiError {
    match e {
        terminology::StoredError::Content(e) => {
            ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, e.to_string())
        }
        terminology::StoredError::Store(e) => e.into(),
    }
}

async fn list(State(api): State<Api>) -> Result<axum::Json<Value>, ApiError> {
    let service = api.terminology()?.clone();
    let loads = tokio::task::spawn_blocking(move || service.list())
        .await
        .map_err(|e| ApiError::internal(e.to_string()))?
        .map_err(stored_error)?;
    let mut loads = serde_json::to_value(loads).map_err(|e| ApiError::internal(e.to_string()))?;
    if let Value::Array(list) = &mut loads {
        list.iter_mut().for_each(|l| add_iso(l, &["loaded_at"]));
    }
    let service = api.terminology()?;
    Ok(axum::Json(json!({
        "version_in_force": service.version_in_force(),
        "snapshot": service.current().version(),
        "loads": loads,
    })))
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct LoadQuery {
    name: Option<String>,
    sender: Option<String>,
    field: Option<String>,
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct LoadBody {
    name: String,
    files: Vec<LoadBodyFile>,
    #[serde(default)]
    sender: Option<String>,
    #[serde(default)]
    fields: Vec<String>,
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct LoadBodyFile {
    name: String,
    content: String,
}

async fn load(
    State(api): State<Api>,
    principal: Principal,
    Query(q): Query<LoadQuery>,
    body: Bytes,
) -> Result<(StatusCode, axum::Json<Value>), ApiError> {
    let who = principal.require()?.to_owned();
    let service = api.terminology()?.clone();
    let text = std::str::from_utf8(&body)
        .map_err(|_| ApiError::bad_request("the body must be UTF-8 text"))?;
    if text.trim().is_empty() || text.trim() == "{}" {
        return Err(ApiError::bad_request(
            "the body is empty: send a file (with ?name=) or {\"name\", \"files\": [...]}",
        ));
    }
    let structured = serde_json::from_str::<Value>(text)
        .ok()
        .filter(|v| v.get("files").is_some());
    let (name, files, scope) = match structured {
        Some(value) => {
            let body: LoadBody = serde_json::from_value(value)
                .map_err(|e| ApiError::bad_request(format!("the body: {e}")))?;
            let files = body
                .files
                .into_iter()
                .map(|f| LoadFile {
                    name: f.name,
                    text: f.content,
                })
                .collect();
            let scope = MapScope {
                sender: body.sender,
                fields: body.fields,
            };
            (body.name, files, scope)
        }
        None => {
            let name = q.name.ok_or_else(|| {
                ApiError::bad_request("name the load: ?name= (the file's name is a good one)")
            })?;
            let files = vec![LoadFile {
                name: name.clone(),
                text: text.to_owned(),
            }];
            let scope = MapScope {
                sender: q.sender,
                fields: q.field.into_iter().collect(),
            };
            (name, files, scope)
        }
    };
    let record = service
        .load(&name, files, scope, &who)
        .await
        .map_err(stored_error)?;
    let refreshed = service.clone();
    tokio::task::spawn_blocking(move || refreshed.refresh())
        .await
        .map_err(|e| ApiError::internal(e.to_string()))?
        .map_err(stored_error)?;
    Ok((
        StatusCode::CREATED,
        axum::Json(json!({
            "load": record,
            "version_in_force": service.version_in_force(),
        })),
    ))
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct UnmappedQuery {
    format: Option<String>,
}

async fn unmapped(
    State(api): State<Api>,
    Query(q): Query<UnmappedQuery>,
) -> Result<Response, ApiError> {
    let service = api.terminology()?.clone();
    let rows = tokio::task::spawn_blocking(move || service.unmapped())
        .await
        .map_err(|e| ApiError::internal(e.to_string()))?
        .map_err(stored_error)?;
    match q.format.as_deref() {
        None | Some("json") => Ok(axum::Json(json!({ "unmapped": rows })).into_response()),
        Some("csv") => Ok((
            [
                (header::CONTENT_TYPE, "text/csv; charset=utf-8"),
                (
                    header::CONTENT_DISPOSITION,
                    "attachment; filename=\"unmapped.csv\"",
                ),
            ],
            terminology::stored::unmapped_csv(&rows),
        )
            .into_response()),
        Some(other) => Err(ApiError::bad_request(format!(
            "format {other:?}: use json or csv"
        ))),
    }
}

/// An operation's input parameters, from the query string or a `Parameters` body,
/// flattened to (name, text): a Coding becomes `system`, `code`, `display`,
/// `version`, a CodeableConcept its first coding.
struct Params(Vec<(String, String)>);

impl Params {
    fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    fn from_query(pairs: Vec<(String, String)>) -> Params {
        let mut out = Vec::new();
        for (name, value) in pairs {
            if name == "coding" {
                // `system|code` in a query string.
                if let Some((system, code)) = value.split_once('|') {
                    out.push(("system".to_owned(), system.to_owned()));
                    out.push(("code".to_owned(), code.to_owned()));
                    continue;
                }
            }
            out.push((name, value));
        }
        Params(out)
    }

    fn from_body(headers: &HeaderMap, body: &[u8]) -> Result<Params, ApiError> {
        let bad = |m: String| ApiError::outcome(StatusCode::BAD_REQUEST, "invalid", m);
        let form = headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("application/x-www-form-urlencoded"));
        if form {
            let pairs: Vec<(String, String)> = serde_urlencoded_pairs(body);
            return Ok(Params::from_query(pairs));
        }
        let value: Value = serde_json::from_slice(body)
            .map_err(|e| bad(format!("the body is not a Parameters resource: {e}")))?;
        if value.get("resourceType").and_then(Value::as_str) != Some("Parameters") {
            return Err(bad("the body must be a Parameters resource".to_owned()));
        }
        let mut out = Vec::new();
        for p in value
            .get("parameter")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let Some(name) = p.get("name").and_then(Value::as_str) else {
                return Err(bad("a parameter without a name".to_owned()));
            };
            let Some(object) = p.as_object() else {
                continue;
            };
            for (key, v) in object {
                if key == "valueCoding" {
                    push_coding(&mut out, v);
                } else if key == "valueCodeableConcept" {
                    if let Some(first) = v
                        .get("coding")
                        .and_then(Value::as_array)
                        .and_then(|c| c.first())
                    {
                        push_coding(&mut out, first);
                    }
                } else if let Some(text) = key.strip_prefix("value").and(v.as_str()) {
                    out.push((name.to_owned(), text.to_owned()));
                } else if key.starts_with("value")
                    && let Some(b) = v.as_bool()
                {
                    out.push((name.to_owned(), b.to_string()));
                }
            }
        }
        Ok(Params(out))
    }
}

fn serde_urlencoded_pairs(body: &[u8]) -> Vec<(String, String)> {
    // axum's Query reads the same format; its Form needs a handler of its own.
    let text = String::from_utf8_lossy(body);
    text.split('&')
        .filter(|p| !p.is_empty())
        .map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            (decode(k), decode(v))
        })
        .collect()
}

fn decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' => match bytes
                .get(i + 1..i + 3)
                .and_then(|h| std::str::from_utf8(h).ok())
                .and_then(|h| u8::from_str_radix(h, 16).ok())
            {
                Some(b) => {
                    out.push(b);
                    i += 2;
                }
                None => out.push(b'%'),
            },
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn push_coding(out: &mut Vec<(String, String)>, coding: &Value) {
    for key in ["system", "code", "display", "version"] {
        if let Some(v) = coding.get(key).and_then(Value::as_str) {
            out.push((key.to_owned(), v.to_owned()));
        }
    }
}

fn required<'a>(params: &'a Params, name: &str) -> Result<&'a str, ApiError> {
    params.get(name).filter(|v| !v.is_empty()).ok_or_else(|| {
        ApiError::outcome(
            StatusCode::BAD_REQUEST,
            "required",
            format!("parameter {name} is required"),
        )
    })
}

fn parameters(parameter: Vec<Value>) -> Response {
    fhir_json(
        StatusCode::OK,
        &json!({"resourceType": "Parameters", "parameter": parameter}),
    )
}

fn coding_json(system: &str, code: &str, display: Option<&str>) -> Value {
    let mut c = json!({"system": system, "code": code});
    if let Some(d) = display {
        c["display"] = json!(d);
    }
    c
}

async fn translate_get(
    State(api): State<Api>,
    Query(q): Query<Vec<(String, String)>>,
) -> Result<Response, ApiError> {
    translate(&api, &Params::from_query(q))
}

async fn translate_post(
    State(api): State<Api>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    translate(&api, &Params::from_body(&headers, &body)?)
}

fn translate(api: &Api, params: &Params) -> Result<Response, ApiError> {
    let t = api.fhir_terminology()?.current();
    let system = required(params, "system")?;
    let code = required(params, "code")?;
    if params.get("reverse") == Some("true") {
        return Err(ApiError::outcome(
            StatusCode::BAD_REQUEST,
            "not-supported",
            "reverse translation is not supported",
        ));
    }
    let scope = Scope {
        application: params
            .get("sender")
            .map(|s| s.split('@').next().unwrap_or(s)),
        facility: params
            .get("sender")
            .and_then(|s| s.split_once('@'))
            .map(|(_, f)| f),
        field: params.get("field"),
    };
    let only: Option<Vec<String>> = params.get("url").map(|u| vec![u.to_owned()]);
    let target = params.get("targetsystem").or(params.get("target_system"));
    let matches: Vec<_> = t
        .translate_in(system, code, &scope, only.as_deref())
        .into_iter()
        .filter(|m| {
            target.is_none_or(|want| {
                m.concept.as_ref().is_none_or(|c| {
                    terminology::canonical_system(&c.system) == terminology::canonical_system(want)
                })
            })
        })
        .collect();
    let result = matches.iter().any(|m| m.is_match());
    let mut out = vec![json!({"name": "result", "valueBoolean": result})];
    if !result {
        out.push(
            json!({"name": "message", "valueString": if matches.is_empty() {
                format!("no loaded map translates {code} of {system}")
            } else {
                format!("the loaded maps name no equivalent for {code} of {system}")
            }}),
        );
    }
    for m in &matches {
        let mut part = vec![json!({"name": "equivalence", "valueCode": m.equivalence.as_str()})];
        if let Some(c) = &m.concept {
            part.push(json!({"name": "concept", "valueCoding": coding_json(&c.system, &c.code, c.display.as_deref())}));
        }
        part.push(json!({"name": "source", "valueUri": m.source}));
        if let Some(comment) = &m.comment {
            part.push(json!({"name": "comment", "valueString": comment}));
        }
        out.push(json!({"name": "match", "part": part}));
    }
    Ok(parameters(out))
}

async fn lookup_get(
    State(api): State<Api>,
    Query(q): Query<Vec<(String, String)>>,
) -> Result<Response, ApiError> {
    lookup(&api, &Params::from_query(q))
}

async fn lookup_post(
    State(api): State<Api>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    lookup(&api, &Params::from_body(&headers, &body)?)
}

fn lookup(api: &Api, params: &Params) -> Result<Response, ApiError> {
    let t = api.fhir_terminology()?.current();
    let system = required(params, "system")?;
    let code = required(params, "code")?;
    let Some(cs) = t.code_system(system) else {
        return Err(ApiError::outcome(
            StatusCode::NOT_FOUND,
            "not-found",
            format!("no code system {system} is loaded"),
        ));
    };
    let Some(concept) = cs.concepts.get(code) else {
        return Err(ApiError::outcome(
            StatusCode::NOT_FOUND,
            "not-found",
            format!("code {code} is not in {system}"),
        ));
    };
    let mut out = vec![
        json!({"name": "name", "valueString": cs.name.clone().unwrap_or_else(|| cs.url.clone())}),
    ];
    if let Some(v) = &cs.version {
        out.push(json!({"name": "version", "valueString": v}));
    }
    if let Some(d) = &concept.display {
        out.push(json!({"name": "display", "valueString": d}));
    }
    if let Some(d) = &concept.definition {
        out.push(json!({"name": "definition", "valueString": d}));
    }
    Ok(parameters(out))
}

async fn validate_get(
    State(api): State<Api>,
    Query(q): Query<Vec<(String, String)>>,
) -> Result<Response, ApiError> {
    validate(&api, &Params::from_query(q))
}

async fn validate_post(
    State(api): State<Api>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    validate(&api, &Params::from_body(&headers, &body)?)
}

fn validate(api: &Api, params: &Params) -> Result<Response, ApiError> {
    let t = api.fhir_terminology()?.current();
    let code = required(params, "code")?;
    // The value sets Corridor knows are the implicit ones of its code systems: `url`
    // names the code system (or its `?vs` form), or `system` does.
    let system = match params.get("system") {
        Some(s) => s.to_owned(),
        None => required(params, "url")?.trim_end_matches("?vs").to_owned(),
    };
    let display = params.get("display");
    let (result, message) = match t.validate_code(&system, code, display) {
        Validity::Valid => (true, None),
        Validity::WrongDisplay { expected } => (
            false,
            Some(format!(
                "The display \"{}\" is incorrect; the display of {code} is \"{expected}\"",
                display.unwrap_or_default()
            )),
        ),
        Validity::UnknownCode => (false, Some(format!("Unknown code {code} in {system}"))),
        Validity::UnknownSystem => {
            return Err(ApiError::outcome(
                StatusCode::NOT_FOUND,
                "not-found",
                format!("no code system or value set {system} is loaded"),
            ));
        }
    };
    let mut out = vec![json!({"name": "result", "valueBoolean": result})];
    if let Some(m) = message {
        out.push(json!({"name": "message", "valueString": m}));
    }
    if let Some(d) = t.lookup(&system, code).and_then(|c| c.display.clone()) {
        out.push(json!({"name": "display", "valueString": d}));
    }
    Ok(parameters(out))
}

/// A searchset Bundle of `resources`.
fn searchset(resources: Vec<Value>) -> Response {
    let entries: Vec<Value> = resources
        .into_iter()
        .map(|r| json!({"resource": r, "search": {"mode": "match"}}))
        .collect();
    fhir_json(
        StatusCode::OK,
        &json!({"resourceType": "Bundle", "type": "searchset", "total": entries.len(), "entry": entries}),
    )
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct SearchQuery {
    url: Option<String>,
    name: Option<String>,
    #[serde(rename = "_id")]
    id: Option<String>,
    #[serde(rename = "_summary")]
    summary: Option<String>,
}

fn matches(q: &SearchQuery, id: &str, url: &str, name: Option<&str>) -> bool {
    q.id.as_deref().is_none_or(|want| want == id)
        && q.url.as_deref().is_none_or(|want| want == url)
        && q.name.as_deref().is_none_or(|want| {
            name.is_some_and(|n| n.to_lowercase().starts_with(&want.to_lowercase()))
        })
}

async fn search_concept_maps(
    State(api): State<Api>,
    Query(q): Query<SearchQuery>,
) -> Result<Response, ApiError> {
    let t = api.fhir_terminology()?.current();
    let found = concept_maps_with_ids(&t)
        .into_iter()
        .filter(|(id, m)| matches(&q, id, &m.url, m.name.as_deref()))
        .map(|(id, m)| concept_map_json(&id, m))
        .collect();
    Ok(searchset(found))
}

async fn read_concept_map(
    State(api): State<Api>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let t = api.fhir_terminology()?.current();
    concept_maps_with_ids(&t)
        .into_iter()
        .find(|(i, _)| *i == id)
        .map(|(id, m)| fhir_json(StatusCode::OK, &concept_map_json(&id, m)))
        .ok_or_else(|| {
            ApiError::outcome(
                StatusCode::NOT_FOUND,
                "not-found",
                format!("ConceptMap/{id} is not loaded"),
            )
        })
}

async fn search_code_systems(
    State(api): State<Api>,
    Query(q): Query<SearchQuery>,
) -> Result<Response, ApiError> {
    let t = api.fhir_terminology()?.current();
    let summary = q.summary.as_deref() == Some("true");
    let found = code_systems_with_ids(&t)
        .into_iter()
        .filter(|(id, s)| matches(&q, id, &s.url, s.name.as_deref()))
        .map(|(id, s)| {
            let mut json = code_system_json(&id, s);
            if summary && let Some(o) = json.as_object_mut() {
                o.remove("concept");
            }
            json
        })
        .collect();
    Ok(searchset(found))
}

async fn read_code_system(
    State(api): State<Api>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let t = api.fhir_terminology()?.current();
    code_systems_with_ids(&t)
        .into_iter()
        .find(|(i, _)| *i == id)
        .map(|(id, s)| fhir_json(StatusCode::OK, &code_system_json(&id, s)))
        .ok_or_else(|| {
            ApiError::outcome(
                StatusCode::NOT_FOUND,
                "not-found",
                format!("CodeSystem/{id} is not loaded"),
            )
        })
}
