//! The patient index's routes, all under `/mpi`.
//!
//! | route | what |
//! | --- | --- |
//! | `GET /mpi/fhir/Patient?family=&given=&birthdate=&gender=&identifier=system\|value&_count=` | IHE PDQm-style search: a FHIR `searchset` Bundle of enterprise patients (their golden records) |
//! | `POST /mpi/fhir/Patient/$match` | FHIR `Parameters` with a `resource` Patient (and optional `count`, `onlyCertainMatches`): scored candidates, `search.score` and the match-grade extension (`certain`, `probable`, `possible`, `certainly-not`) |
//! | `GET /mpi/fhir/Patient/$ihe-pix?sourceIdentifier=system\|value[&targetSystem=]` | IHE PIXm: `Parameters` with every other identifier of that patient (`targetIdentifier`) and its enterprise patient (`targetId`) |
//! | `GET /mpi/reviews` | open possible matches, oldest first, with their candidates and scores, and the safety guard (`guard`: `name`, `why`) that held a pair back from linking |
//! | `POST /mpi/reviews/{id}/accept` | `{"enterprise_id": "E12", "note": ".."}` (default: the best candidate) links the record |
//! | `POST /mpi/reviews/{id}/reject` | `{"note": ".."}`: the record is a patient of its own |
//! | `POST /mpi/link` | `{"source", "id", "enterprise_id", "note"}` |
//! | `POST /mpi/unlink` | `{"source", "id", "note"}`: the record becomes a patient of its own |
//! | `POST /mpi/merge` | `{"survivor": "E1", "merged": "E2", "note"}` |
//! | `POST /mpi/unmerge` | `{"merge_event": 17, "note"}` (the `seq` of the merge in the history) |
//! | `GET /mpi/patients/{enterprise_id}` | golden record, linked source records, history |
//!
//! Identifier systems are those of the FHIR API (`mpi::identity`): a source named by
//! its assigning authority `HOSP` is `urn:corridor:id/HOSP` (under `[mpi]
//! identifier_base`), `1.2.3` is `urn:oid:1.2.3`, so an identifier read on
//! `/fhir/Patient` is asked here as it is. A bare name (`HOSP|MRN1`, `"source":
//! "LAB"`) is read as the system it names.
//!
//! Who decided is the authenticated caller, the [`Principal`] (never a field of the
//! body); it is stored with the event. Enterprise ids are written `E12`
//! (a plain `12` is accepted). Errors are `{"error": ".."}` with 400, 404 or 409.

use axum::extract::State;

use crate::extract::{Path, Query};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use mpi::{
    Actor, DecisionReason, EnterpriseId, GoldenRecord, Identifier, LinkStatus, MpiError, MpiEvent,
    MpiService, PatientRecord, ServiceError, Sex, SourceKey,
};
use serde_json::{Value, json};
use std::collections::HashMap;

use crate::routes::{Access, Method, Routes};
use crate::{Api, ApiError, Principal};

pub(crate) fn routes() -> Routes {
    Routes::new()
        .add(Method::Get, "/mpi/fhir/Patient", Access::Phi, search)
        .add(
            Method::Post,
            "/mpi/fhir/Patient/$match",
            Access::Phi,
            match_patient,
        )
        .add(Method::Get, "/mpi/fhir/Patient/$ihe-pix", Access::Phi, pix)
        .add(Method::Get, "/mpi/reviews", Access::Phi, reviews)
        .add(
            Method::Post,
            "/mpi/reviews/{id}/accept",
            Access::Steward,
            accept,
        )
        .add(
            Method::Post,
            "/mpi/reviews/{id}/reject",
            Access::Steward,
            reject,
        )
        .add(Method::Post, "/mpi/link", Access::Steward, link)
        .add(Method::Post, "/mpi/unlink", Access::Steward, unlink)
        .add(Method::Post, "/mpi/merge", Access::Steward, merge)
        .add(Method::Post, "/mpi/unmerge", Access::Steward, unmerge)
        .add(
            Method::Get,
            "/mpi/patients/{enterprise_id}",
            Access::Phi,
            patient,
        )
}

fn bad(msg: impl Into<String>) -> ApiError {
    ApiError::bad_request(msg)
}

type ApiResult = Result<Response, ApiError>;

fn ok(v: Value) -> ApiResult {
    Ok(axum::Json(v).into_response())
}

fn fhir(v: Value) -> ApiResult {
    Ok((
        [(axum::http::header::CONTENT_TYPE, "application/fhir+json")],
        axum::Json(v),
    )
        .into_response())
}

/// `E12` or `12`.
pub fn parse_enterprise(text: &str) -> Option<EnterpriseId> {
    let t = text.trim();
    let digits = t
        .strip_prefix('E')
        .or_else(|| t.strip_prefix('e'))
        .unwrap_or(t);
    digits
        .parse::<u64>()
        .ok()
        .filter(|&n| n > 0)
        .map(EnterpriseId)
}

fn enterprise_field(v: &Value, name: &str) -> Result<EnterpriseId, ApiError> {
    let parsed = match v.get(name) {
        Some(Value::String(s)) => parse_enterprise(s),
        Some(Value::Number(n)) => n.as_u64().filter(|&n| n > 0).map(EnterpriseId),
        _ => None,
    };
    parsed.ok_or_else(|| bad(format!("`{name}` must be an enterprise id such as \"E12\"")))
}

fn string_field(v: &Value, name: &str) -> Result<String, ApiError> {
    v.get(name)
        .and_then(Value::as_str)
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .ok_or_else(|| bad(format!("`{name}` is required")))
}

fn note(v: &Value) -> String {
    v.get("note")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string()
}

/// The person deciding: the authenticated caller (the body's fields never name them).
fn person(principal: &Principal, _body: &Value) -> Result<Actor, ApiError> {
    let user = principal.require()?;
    Ok(Actor::Person {
        user: user.to_string(),
    })
}

fn body_json(body: &str) -> Result<Value, ApiError> {
    if body.trim().is_empty() {
        return Ok(json!({}));
    }
    serde_json::from_str(body).map_err(|e| bad(format!("the body is not JSON: {e}")))
}

// ----- FHIR views --------------------------------------------------------------

fn fhir_date(d: &str) -> Option<String> {
    let digits: String = d.chars().filter(char::is_ascii_digit).collect();
    match digits.len() {
        8.. => Some(format!(
            "{}-{}-{}",
            &digits[0..4],
            &digits[4..6],
            &digits[6..8]
        )),
        6 => Some(format!("{}-{}", &digits[0..4], &digits[4..6])),
        4 => Some(digits),
        _ => None,
    }
}

fn fhir_gender(s: Option<Sex>) -> Option<&'static str> {
    match s? {
        Sex::Female => Some("female"),
        Sex::Male => Some("male"),
        Sex::Other => Some("other"),
        Sex::Unknown => Some("unknown"),
    }
}

/// A Patient resource for an enterprise patient's golden record.
fn patient_resource(service: &MpiService, golden: &GoldenRecord) -> Value {
    let r = &golden.record;
    let system = &service.config().enterprise_system;
    let mut identifiers = vec![json!({
        "use": "official",
        "system": system,
        "value": golden.enterprise.to_string(),
    })];
    for key in &golden.sources {
        identifiers.push(json!({ "system": service.system_of(&key.source), "value": key.id }));
    }
    for id in &golden.identifiers {
        let already = golden
            .sources
            .iter()
            .any(|k| k.source == id.authority && k.id == id.value);
        if !already {
            identifiers.push(json!({
                "system": service.system_of(&id.authority),
                "value": id.value,
                "type": { "coding": [{ "system": "http://terminology.hl7.org/CodeSystem/v2-0203", "code": id.type_code }] },
            }));
        }
    }
    let mut p = json!({
        "resourceType": "Patient",
        "id": golden.enterprise.to_string(),
        "identifier": identifiers,
    });
    let mut given = Vec::new();
    given.extend(r.given.clone());
    given.extend(r.middle.clone());
    if r.family.is_some() || !given.is_empty() {
        let mut name = json!({ "use": "official" });
        if let Some(f) = &r.family {
            name["family"] = json!(f);
        }
        if !given.is_empty() {
            name["given"] = json!(given);
        }
        if let Some(suffix) = &r.suffix {
            name["suffix"] = json!([suffix]);
        }
        p["name"] = json!([name]);
    }
    if let Some(g) = fhir_gender(r.sex) {
        p["gender"] = json!(g);
    }
    if let Some(d) = r.birth_date.as_deref().and_then(fhir_date) {
        p["birthDate"] = json!(d);
    }
    let mut address = serde_json::Map::new();
    let lines: Vec<&String> = r.street.iter().chain(r.street2.iter()).collect();
    if !lines.is_empty() {
        address.insert("line".into(), json!(lines));
    }
    for (k, v) in [
        ("city", &r.city),
        ("state", &r.state),
        ("postalCode", &r.postcode),
        ("country", &r.country),
    ] {
        if let Some(v) = v {
            address.insert(k.into(), json!(v));
        }
    }
    if !address.is_empty() {
        p["address"] = json!([address]);
    }
    if let Some(phone) = &r.phone {
        p["telecom"] = json!([{ "system": "phone", "value": phone }]);
    }
    p
}

/// A FHIR Patient (from `$match`) as a record to score.
fn record_from_patient(service: &MpiService, p: &Value) -> Result<PatientRecord, ApiError> {
    if p.get("resourceType").and_then(Value::as_str) != Some("Patient") {
        return Err(bad("the `resource` parameter must be a Patient"));
    }
    let mut r = PatientRecord::new("$match", "query");
    let s = |v: Option<&Value>| v.and_then(Value::as_str).map(str::to_string);
    if let Some(name) = p.get("name").and_then(|n| n.get(0)) {
        r.family = s(name.get("family"));
        let given = name.get("given").and_then(Value::as_array);
        r.given = s(given.and_then(|g| g.first()));
        r.middle = s(given.and_then(|g| g.get(1)));
        r.suffix = s(name
            .get("suffix")
            .and_then(Value::as_array)
            .and_then(|x| x.first()));
    }
    r.birth_date = s(p.get("birthDate")).map(|d| d.replace('-', ""));
    r.sex = s(p.get("gender")).map(|g| match g.as_str() {
        "female" => Sex::Female,
        "male" => Sex::Male,
        "other" => Sex::Other,
        _ => Sex::Unknown,
    });
    if let Some(a) = p.get("address").and_then(|a| a.get(0)) {
        let lines = a.get("line").and_then(Value::as_array);
        r.street = s(lines.and_then(|l| l.first()));
        r.street2 = s(lines.and_then(|l| l.get(1)));
        r.city = s(a.get("city"));
        r.state = s(a.get("state"));
        r.postcode = s(a.get("postalCode"));
        r.country = s(a.get("country"));
    }
    if let Some(t) = p.get("telecom").and_then(Value::as_array) {
        r.phone = t
            .iter()
            .find(|t| t.get("system").and_then(Value::as_str) == Some("phone"))
            .and_then(|t| s(t.get("value")));
    }
    if let Some(ids) = p.get("identifier").and_then(Value::as_array) {
        for id in ids {
            let (Some(system), Some(value)) = (s(id.get("system")), s(id.get("value"))) else {
                continue;
            };
            let type_code = id
                .pointer("/type/coding/0/code")
                .and_then(Value::as_str)
                .unwrap_or("");
            if type_code == "SS" || system == "http://hl7.org/fhir/sid/us-ssn" {
                r.ssn = Some(value.clone());
            }
            if !type_code.is_empty() {
                r.identifiers.push(Identifier::new(
                    value,
                    service.name_of(&system),
                    type_code.to_string(),
                ));
            }
        }
    }
    Ok(r)
}

fn searchset(entries: Vec<Value>) -> Value {
    json!({
        "resourceType": "Bundle",
        "type": "searchset",
        "total": entries.len(),
        "entry": entries,
    })
}

fn split_token(token: &str) -> Result<(String, String), ApiError> {
    let (system, value) = token
        .split_once('|')
        .ok_or_else(|| bad("an identifier is written system|value"))?;
    if system.trim().is_empty() || value.trim().is_empty() {
        return Err(bad("an identifier is written system|value, both present"));
    }
    Ok((system.trim().to_string(), value.trim().to_string()))
}

// ----- handlers ----------------------------------------------------------------

const SEARCH_SCAN_LIMIT: usize = 100;

async fn search(State(api): State<Api>, Query(q): Query<HashMap<String, String>>) -> ApiResult {
    let service = api.patient_index()?.clone();
    let get = |k: &str| {
        q.get(k)
            .map(|v| v.trim().to_string())
            .filter(|v| !v.is_empty())
    };
    let (family, given, birthdate, gender, identifier) = (
        get("family"),
        get("given"),
        get("birthdate").map(|d| d.replace('-', "")),
        get("gender"),
        get("identifier"),
    );
    let count = get("_count")
        .and_then(|c| c.parse::<usize>().ok())
        .unwrap_or(SEARCH_SCAN_LIMIT)
        .clamp(1, 1000);
    if family.is_none() && given.is_none() && birthdate.is_none() && identifier.is_none() {
        return Err(bad(
            "search by at least one of family, given, birthdate or identifier",
        ));
    }
    let token = identifier
        .as_deref()
        .map(split_token)
        .transpose()?
        .map(|(system, value)| (service.name_of(&system), value));
    let matches = move |r: &PatientRecord| {
        let eq = |a: &Option<String>, b: &Option<String>| match b {
            None => true,
            Some(b) => a
                .as_deref()
                .is_some_and(|a| a.to_lowercase().starts_with(&b.to_lowercase())),
        };
        eq(&r.family, &family)
            && eq(&r.given, &given)
            && birthdate
                .as_ref()
                .is_none_or(|d| r.birth_date.as_deref() == Some(d.as_str()))
            && gender
                .as_deref()
                .is_none_or(|g| fhir_gender(r.sex) == Some(g))
    };
    let service2 = service.clone();
    let entries = tokio::task::spawn_blocking(move || {
        service2.read(|mpi| {
            let mut found: Vec<EnterpriseId> = Vec::new();
            let consider = |key: &SourceKey, found: &mut Vec<EnterpriseId>| {
                let Some(r) = mpi.record(key) else { return };
                if !matches(&r) {
                    return;
                }
                if let Some(e) = mpi
                    .enterprise_of(key)
                    .and_then(|e| mpi.current_enterprise(e).ok())
                    && !found.contains(&e)
                {
                    found.push(e);
                }
            };
            if let Some((system, value)) = &token {
                for key in mpi.records_with_identifier(system, value) {
                    consider(&key, &mut found);
                }
            } else {
                for (key, _, _) in mpi.source_records() {
                    if found.len() >= count {
                        break;
                    }
                    consider(&key, &mut found);
                }
            }
            found
                .into_iter()
                .take(count)
                .filter_map(|e| mpi.golden_record(e, service2.rules()))
                .map(|g| {
                    json!({
                        "fullUrl": format!("Patient/{}", g.enterprise),
                        "resource": patient_resource(&service2, &g),
                        "search": { "mode": "match" },
                    })
                })
                .collect::<Vec<_>>()
        })
    })
    .await?;
    fhir(searchset(entries))
}

fn grade(score: f64, link: f64, review: f64) -> &'static str {
    if score >= link {
        "certain"
    } else if score >= review {
        "probable"
    } else if score > 0.0 {
        "possible"
    } else {
        "certainly-not"
    }
}

async fn match_patient(State(api): State<Api>, body: String) -> ApiResult {
    let service = api.patient_index()?.clone();
    let params = body_json(&body)?;
    if params.get("resourceType").and_then(Value::as_str) != Some("Parameters") {
        return Err(bad("$match takes a FHIR Parameters resource"));
    }
    let list = params
        .get("parameter")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let param = |n: &str| {
        list.iter()
            .find(|p| p.get("name").and_then(Value::as_str) == Some(n))
    };
    let patient = param("resource")
        .and_then(|p| p.get("resource"))
        .ok_or_else(|| bad("$match needs a `resource` parameter holding a Patient"))?;
    let record = record_from_patient(&service, patient)?;
    let count = param("count")
        .and_then(|p| p.get("valueInteger"))
        .and_then(Value::as_u64)
        .unwrap_or(10) as usize;
    let only_certain = param("onlyCertainMatches")
        .and_then(|p| p.get("valueBoolean"))
        .and_then(Value::as_bool)
        .unwrap_or(false);
    let cfg = service.config().clone();
    let (decision, _) = service.with_index(|mpi| mpi.find_matches(&record));
    let deterministic = matches!(decision.reason, DecisionReason::Identifier { .. });
    let mut scored: Vec<(EnterpriseId, f64, f64, &'static str)> = decision
        .candidates
        .iter()
        .map(|c| {
            // A guarded pair is never certain, whatever its score.
            let link = if c.guard.is_some() {
                f64::INFINITY
            } else {
                cfg.link_threshold
            };
            let g = grade(c.score, link, cfg.review_threshold);
            (c.enterprise, c.score, c.match_probability, g)
        })
        .collect();
    if deterministic
        && decision.enterprise.0 > 0
        && !scored.iter().any(|s| s.0 == decision.enterprise)
    {
        scored.insert(0, (decision.enterprise, f64::INFINITY, 1.0, "certain"));
    }
    let entries: Vec<Value> = service.read(|mpi| {
        scored
            .iter()
            .filter(|s| !only_certain || s.3 == "certain")
            .take(count.max(1))
            .filter_map(|&(e, _bits, probability, g)| {
                let e = mpi.current_enterprise(e).ok()?;
                let golden = mpi.golden_record(e, service.rules())?;
                Some(json!({
                    "fullUrl": format!("Patient/{e}"),
                    "resource": patient_resource(&service, &golden),
                    "search": {
                        "mode": "match",
                        "score": (probability * 10000.0).round() / 10000.0,
                        "extension": [{
                            "url": "http://hl7.org/fhir/StructureDefinition/match-grade",
                            "valueCode": g,
                        }],
                    },
                }))
            })
            .collect()
    });
    fhir(searchset(entries))
}

async fn pix(State(api): State<Api>, Query(q): Query<HashMap<String, String>>) -> ApiResult {
    let service = api.patient_index()?.clone();
    let source = q
        .get("sourceIdentifier")
        .ok_or_else(|| bad("sourceIdentifier=system|value is required"))?;
    // Systems as the FHIR API shows them (`urn:corridor:id/HOSP`); a bare
    // authority name (`HOSP`) is read as the system it names.
    let (system, value) = split_token(source)?;
    let system = service.name_of(&system);
    let enterprise_system = service.config().enterprise_system.clone();
    let canonical = |s: &str| {
        if s == enterprise_system {
            s.to_string()
        } else {
            service.system_of(&service.name_of(s))
        }
    };
    let targets: Vec<String> = q
        .get("targetSystem")
        .map(|t| {
            t.split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(canonical)
                .collect()
        })
        .unwrap_or_default();
    let found = service.read(|mpi| {
        let keys = mpi.records_with_identifier(&system, &value);
        let enterprise = keys
            .iter()
            .find_map(|k| mpi.enterprise_of(k))
            .and_then(|e| mpi.current_enterprise(e).ok())?;
        let mut ids: Vec<(String, String)> = Vec::new();
        for key in mpi.members(enterprise) {
            if mpi.is_active(&key) != Some(true) {
                continue;
            }
            ids.push((key.source.clone(), key.id.clone()));
            if let Some(r) = mpi.record(&key) {
                for i in r.identifiers {
                    ids.push((i.authority, i.value));
                }
            }
        }
        ids.push((enterprise_system.clone(), enterprise.to_string()));
        ids.sort();
        ids.dedup();
        Some((enterprise, ids))
    });
    let Some((enterprise, ids)) = found else {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "sourceIdentifier is not known to the patient index",
        ));
    };
    let mut parameter: Vec<Value> = ids
        .into_iter()
        .filter(|(s, v)| !(s == &system && v == &value))
        .map(|(s, v)| {
            let s = if s == enterprise_system {
                s
            } else {
                service.system_of(&s)
            };
            (s, v)
        })
        .filter(|(s, _)| targets.is_empty() || targets.contains(s))
        .map(|(s, v)| {
            json!({ "name": "targetIdentifier", "valueIdentifier": { "system": s, "value": v } })
        })
        .collect();
    parameter.push(json!({
        "name": "targetId",
        "valueReference": { "reference": format!("Patient/{enterprise}") },
    }));
    fhir(json!({ "resourceType": "Parameters", "parameter": parameter }))
}

async fn reviews(State(api): State<Api>) -> ApiResult {
    let service = api.patient_index()?.clone();
    let items: Vec<Value> = service.read(|mpi| {
        mpi.reviews()
            .map(|r| {
                json!({
                    "id": r.id,
                    "record": r.record,
                    "provisional": r.provisional.to_string(),
                    "guard": r.guard.map(|g| json!({ "name": g.name(), "why": g.describe() })),
                    "candidates": r.candidates.iter().map(|c| json!({
                        "enterprise_id": c.enterprise.to_string(),
                        "candidate": c.candidate,
                        "score": c.score,
                        "match_probability": c.match_probability,
                        "fields": c.fields,
                        "guard": c.guard,
                    })).collect::<Vec<_>>(),
                })
            })
            .collect()
    });
    ok(json!({ "reviews": items }))
}

fn event_json(e: &MpiEvent) -> Value {
    json!({
        "seq": e.seq,
        "at_unix_ms": e.at_unix_ms,
        "actor": mpi::persist::actor_text(&e.actor),
        "kind": mpi::persist::change_kind(&e.change),
        "why": e.why,
        "change": e.change,
    })
}

async fn accept(
    State(api): State<Api>,
    Path(id): Path<u64>,
    principal: Principal,
    body: String,
) -> ApiResult {
    let body = body_json(&body)?;
    let actor = person(&principal, &body)?;
    let chosen = if body.get("enterprise_id").is_some() {
        Some(enterprise_field(&body, "enterprise_id")?)
    } else {
        None
    };
    let event = accept_review(&api, id, chosen, actor, note(&body)).await?;
    ok(event_json(&event))
}

/// Links review `id`'s record to `chosen` (default: its best candidate).
pub(crate) async fn accept_review(
    api: &Api,
    id: u64,
    chosen: Option<EnterpriseId>,
    actor: Actor,
    why: String,
) -> Result<MpiEvent, ApiError> {
    let service = api.patient_index()?.clone();
    Ok(service
        .operate(move |mpi| {
            let item = mpi.review(id).ok_or(MpiError::UnknownReview(id))?;
            let to = match chosen {
                Some(e) => e,
                None => item
                    .candidates
                    .first()
                    .map(|c| c.enterprise)
                    .ok_or(MpiError::UnknownReview(id))?,
            };
            mpi.accept_review(id, to, actor, &why)
        })
        .await?)
}

async fn reject(
    State(api): State<Api>,
    Path(id): Path<u64>,
    principal: Principal,
    body: String,
) -> ApiResult {
    let body = body_json(&body)?;
    let actor = person(&principal, &body)?;
    let event = reject_review(&api, id, actor, note(&body)).await?;
    ok(event_json(&event))
}

/// Review `id`'s record stays a patient of its own.
pub(crate) async fn reject_review(
    api: &Api,
    id: u64,
    actor: Actor,
    why: String,
) -> Result<MpiEvent, ApiError> {
    let service = api.patient_index()?.clone();
    Ok(service
        .operate(move |mpi| mpi.reject_review(id, actor, &why))
        .await?)
}

/// `source` is a name (`LAB`) or its identifier system (`urn:corridor:id/LAB`).
fn source_key(service: &MpiService, body: &Value) -> Result<SourceKey, ApiError> {
    Ok(SourceKey::new(
        service.name_of(&string_field(body, "source")?),
        string_field(body, "id")?,
    ))
}

async fn link(State(api): State<Api>, principal: Principal, body: String) -> ApiResult {
    let service = api.patient_index()?.clone();
    let body = body_json(&body)?;
    let actor = person(&principal, &body)?;
    let key = source_key(&service, &body)?;
    let to = enterprise_field(&body, "enterprise_id")?;
    let why = note(&body);
    let event = service
        .operate(move |mpi| mpi.link(&key, to, actor, &why))
        .await?;
    ok(event_json(&event))
}

async fn unlink(State(api): State<Api>, principal: Principal, body: String) -> ApiResult {
    let service = api.patient_index()?.clone();
    let body = body_json(&body)?;
    let actor = person(&principal, &body)?;
    let key = source_key(&service, &body)?;
    let why = note(&body);
    let event = service
        .operate(move |mpi| mpi.unlink(&key, actor, &why))
        .await?;
    ok(event_json(&event))
}

async fn merge(State(api): State<Api>, principal: Principal, body: String) -> ApiResult {
    let body = body_json(&body)?;
    let actor = person(&principal, &body)?;
    let survivor = enterprise_field(&body, "survivor")?;
    let merged = enterprise_field(&body, "merged")?;
    let event = merge_patients(&api, survivor, merged, actor, note(&body)).await?;
    ok(event_json(&event))
}

/// Merges enterprise patient `merged` into `survivor`.
pub(crate) async fn merge_patients(
    api: &Api,
    survivor: EnterpriseId,
    merged: EnterpriseId,
    actor: Actor,
    why: String,
) -> Result<MpiEvent, ApiError> {
    let service = api.patient_index()?.clone();
    Ok(service
        .operate(move |mpi| mpi.merge_enterprises(survivor, merged, actor, &why))
        .await?)
}

async fn unmerge(State(api): State<Api>, principal: Principal, body: String) -> ApiResult {
    let body = body_json(&body)?;
    let actor = person(&principal, &body)?;
    let seq = body
        .get("merge_event")
        .and_then(Value::as_u64)
        .ok_or_else(|| bad("`merge_event` (the merge's seq in the history) is required"))?;
    let event = unmerge_patients(&api, seq, actor, note(&body)).await?;
    ok(event_json(&event))
}

/// Undoes the merge recorded as event `seq`.
pub(crate) async fn unmerge_patients(
    api: &Api,
    seq: u64,
    actor: Actor,
    why: String,
) -> Result<MpiEvent, ApiError> {
    let service = api.patient_index()?.clone();
    Ok(service
        .operate(move |mpi| mpi.unmerge(seq, actor, &why))
        .await?)
}

/// One source record of an enterprise patient, as the index holds it.
pub(crate) struct SourceOf {
    pub key: SourceKey,
    pub status: LinkStatus,
    pub active: Option<bool>,
    pub manual: Option<bool>,
    pub record: Option<PatientRecord>,
}

/// An enterprise patient: where it lives now, its golden record, its source records and
/// the history of both the id asked for and the current one.
pub(crate) struct PatientData {
    pub asked: EnterpriseId,
    pub current: EnterpriseId,
    pub golden: Option<GoldenRecord>,
    pub sources: Vec<SourceOf>,
    pub history: Vec<MpiEvent>,
}

/// Reads enterprise patient `asked` (following merges).
pub(crate) async fn patient_data(api: &Api, asked: EnterpriseId) -> Result<PatientData, ApiError> {
    let service = api.patient_index()?.clone();
    let view = service.read(|mpi| -> Result<_, MpiError> {
        let current = mpi.current_enterprise(asked)?;
        let golden = mpi.golden_record(current, service.rules());
        let sources: Vec<SourceOf> = mpi
            .members(current)
            .into_iter()
            .map(|k| SourceOf {
                status: mpi.status_of(&k).unwrap_or(LinkStatus::New),
                active: mpi.is_active(&k),
                manual: mpi.is_pinned(&k),
                record: mpi.record(&k),
                key: k,
            })
            .collect();
        Ok((current, golden, sources))
    })?;
    let (current, golden, sources) = view;
    let store = service.store().clone();
    let mut history = Vec::new();
    for e in [asked, current] {
        let events = store
            .read_async(move |conn| mpi::persist::history_of(conn, e.0))
            .await
            .map_err(ServiceError::from)?;
        for ev in events {
            if !history.iter().any(|h: &MpiEvent| h.seq == ev.seq) {
                history.push(ev);
            }
        }
    }
    history.sort_by_key(|e| e.seq);
    Ok(PatientData {
        asked,
        current,
        golden,
        sources,
        history,
    })
}

async fn patient(State(api): State<Api>, Path(id): Path<String>) -> ApiResult {
    let service = api.patient_index()?.clone();
    let asked = parse_enterprise(&id).ok_or_else(|| bad("an enterprise id is written E12"))?;
    let PatientData {
        asked,
        current,
        golden,
        sources,
        history,
    } = patient_data(&api, asked).await?;
    let sources: Vec<Value> = sources
        .into_iter()
        .map(|s| {
            json!({
                "system": service.system_of(&s.key.source),
                "source": s.key.source,
                "id": s.key.id,
                "status": s.status.as_str(),
                "active": s.active,
                "manual": s.manual,
                "record": s.record,
            })
        })
        .collect();
    ok(json!({
        "enterprise_id": current.to_string(),
        "merged_into": (current != asked).then(|| current.to_string()),
        "golden_record": golden.as_ref().map(|g| json!({
            "record": g.record,
            "identifiers": g.identifiers,
        })),
        "patient": golden.as_ref().map(|g| patient_resource(&service, g)),
        "sources": sources,
        "history": history.iter().map(event_json).collect::<Vec<_>>(),
    }))
}
