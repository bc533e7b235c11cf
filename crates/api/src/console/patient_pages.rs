//! The console's patient index pages: the review queue with the match weights, a
//! patient's golden record, sources and history, and the stewards' forms (accept,
//! reject, merge, unmerge). Decisions go through the same functions as `/mpi/...`.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use console::{
    CandidateView, HistoryView, PatientView, RecordView, ReviewView, SourceView, WeightView,
};
use mpi::{Actor, Change, EnterpriseId, PatientRecord, SourceKey};

use super::{Form, Outcome, html, redirect_back, viewer};
use crate::auth::CsrfToken;
use crate::extract::{Path, Query};
use crate::patients::{
    accept_review, merge_patients, parse_enterprise, patient_data, reject_review, unmerge_patients,
};
use crate::{Api, ApiError, Principal};

/// A record's values by [`console::PATIENT_FIELDS`] name.
fn record_view(key: &SourceKey, record: Option<&PatientRecord>) -> RecordView {
    let mut values = Vec::new();
    if let Some(r) = record {
        let ids: Vec<String> = r
            .identifiers
            .iter()
            .map(|i| format!("{} ({} {})", i.value, i.authority, i.type_code))
            .collect();
        let mut push = |name: &str, v: Option<&String>| {
            if let Some(v) = v.filter(|v| !v.is_empty()) {
                values.push((name.to_owned(), v.clone()));
            }
        };
        push("identifiers", Some(&ids.join(", ")));
        push("family", r.family.as_ref());
        push("given", r.given.as_ref());
        push("middle", r.middle.as_ref());
        push("suffix", r.suffix.as_ref());
        push("birth_date", r.birth_date.as_ref());
        push("sex", r.sex.map(|s| s.code().to_owned()).as_ref());
        push("street", r.street.as_ref());
        push("street2", r.street2.as_ref());
        push("city", r.city.as_ref());
        push("state", r.state.as_ref());
        push("postcode", r.postcode.as_ref());
        push("country", r.country.as_ref());
        push("phone", r.phone.as_ref());
        push("ssn", r.ssn.as_ref());
    }
    RecordView {
        key: key.to_string(),
        values,
    }
}

pub(super) async fn reviews(
    State(api): State<Api>,
    principal: Principal,
    csrf: Option<axum::Extension<CsrfToken>>,
    outcome: Outcome,
) -> Result<Response, ApiError> {
    let viewer = viewer(&principal, csrf.as_ref());
    let service = api.patient_index()?.clone();
    let mut items: Vec<ReviewView> = service.read(|mpi| {
        mpi.reviews()
            .map(|r| ReviewView {
                id: r.id,
                record: record_view(&r.record, mpi.record(&r.record).as_ref()),
                provisional: r.provisional.to_string(),
                guard: r.guard.map(|g| g.describe().to_owned()),
                candidates: r
                    .candidates
                    .iter()
                    .map(|c| CandidateView {
                        enterprise: c.enterprise.to_string(),
                        record: record_view(&c.candidate, mpi.record(&c.candidate).as_ref()),
                        score: c.score,
                        match_probability: c.match_probability,
                        weights: c
                            .fields
                            .iter()
                            .map(|w| WeightView {
                                field: w.field.name().to_owned(),
                                level: w.level.to_string(),
                                weight: w.weight,
                            })
                            .collect(),
                        guard: c.guard.map(|g| g.describe().to_owned()),
                    })
                    .collect(),
            })
            .collect()
    });
    // Oldest first, as the queue is worked.
    items.sort_by_key(|r| r.id);
    Ok(html(
        StatusCode::OK,
        console::reviews_page(
            &viewer,
            &items,
            outcome.notice.as_deref(),
            outcome.error.as_deref(),
        ),
    ))
}

fn person(principal: &Principal) -> Result<Actor, ApiError> {
    Ok(Actor::Person {
        user: principal.require()?.to_owned(),
    })
}

fn enterprise(text: &str, name: &str) -> Result<EnterpriseId, ApiError> {
    parse_enterprise(text)
        .ok_or_else(|| ApiError::bad_request(format!("{name}: an enterprise id is written E12")))
}

pub(super) async fn accept(
    State(api): State<Api>,
    principal: Principal,
    Path(id): Path<u64>,
    body: Bytes,
) -> Response {
    let result = async {
        let form = Form::parse(&body)?;
        let chosen = match form.get("enterprise_id").filter(|e| !e.trim().is_empty()) {
            Some(e) => Some(enterprise(e, "enterprise_id")?),
            None => None,
        };
        let note = form.get("note").unwrap_or("").to_owned();
        accept_review(&api, id, chosen, person(&principal)?, note).await?;
        Ok(format!("Review {id} accepted."))
    }
    .await;
    redirect_back("/console/reviews", result)
}

pub(super) async fn reject(
    State(api): State<Api>,
    principal: Principal,
    Path(id): Path<u64>,
    body: Bytes,
) -> Response {
    let result = async {
        let form = Form::parse(&body)?;
        let note = form.get("note").unwrap_or("").to_owned();
        reject_review(&api, id, person(&principal)?, note).await?;
        Ok(format!(
            "Review {id} rejected: the record is a patient of its own."
        ))
    }
    .await;
    redirect_back("/console/reviews", result)
}

#[derive(serde::Deserialize, Default)]
pub(super) struct Lookup {
    id: Option<String>,
}

/// `?id=E12`: the lookup form on the review page sends the browser to that patient.
pub(super) async fn lookup(Query(q): Query<Lookup>) -> Result<Response, ApiError> {
    let id = enterprise(q.id.as_deref().unwrap_or(""), "id")?;
    let mut response = StatusCode::SEE_OTHER.into_response();
    if let Ok(location) = HeaderValue::from_str(&format!("/console/patients/{id}")) {
        response.headers_mut().insert(header::LOCATION, location);
    }
    Ok(response)
}

pub(super) async fn patient(
    State(api): State<Api>,
    principal: Principal,
    csrf: Option<axum::Extension<CsrfToken>>,
    Path(id): Path<String>,
    outcome: Outcome,
) -> Result<Response, ApiError> {
    let viewer = viewer(&principal, csrf.as_ref());
    let asked = enterprise(&id, "patient")?;
    let data = patient_data(&api, asked).await?;
    let view = PatientView {
        enterprise: data.current.to_string(),
        asked: (data.asked != data.current).then(|| data.asked.to_string()),
        golden: data.golden.as_ref().map(|g| {
            let mut record = g.record.clone();
            record.identifiers = g.identifiers.clone();
            record_view(
                &SourceKey::new("enterprise", data.current.to_string()),
                Some(&record),
            )
        }),
        sources: data
            .sources
            .iter()
            .map(|s| SourceView {
                record: record_view(&s.key, s.record.as_ref()),
                status: s.status.as_str().to_owned(),
                active: s.active.unwrap_or(false),
                manual: s.manual.unwrap_or(false),
            })
            .collect(),
        history: {
            // A merge can be undone while no later event undid it.
            let undone: Vec<u64> = data
                .history
                .iter()
                .filter_map(|e| match &e.change {
                    Change::Unmerged { merge_seq, .. } => Some(*merge_seq),
                    _ => None,
                })
                .collect();
            data.history
                .iter()
                .map(|e| HistoryView {
                    seq: e.seq,
                    at: console::time_text(e.at_unix_ms.saturating_mul(1000) as i64),
                    actor: mpi::persist::actor_text(&e.actor),
                    kind: mpi::persist::change_kind(&e.change).replace('_', " "),
                    why: e.why.clone(),
                    unmergeable: matches!(e.change, Change::EnterprisesMerged { .. })
                        && !undone.contains(&e.seq),
                })
                .collect()
        },
        notice: outcome.notice,
        error: outcome.error,
    };
    Ok(html(StatusCode::OK, console::patient_page(&viewer, &view)))
}

pub(super) async fn merge(State(api): State<Api>, principal: Principal, body: Bytes) -> Response {
    let form = Form::parse(&body).unwrap_or_default();
    let survivor = form.get("survivor").unwrap_or("").to_owned();
    let back = match parse_enterprise(&survivor) {
        Some(e) => format!("/console/patients/{e}"),
        None => "/console/reviews".to_owned(),
    };
    let result = async {
        let survivor = enterprise(&survivor, "survivor")?;
        let merged = enterprise(form.get("merged").unwrap_or(""), "merged")?;
        let note = form.get("note").unwrap_or("").to_owned();
        merge_patients(&api, survivor, merged, person(&principal)?, note).await?;
        Ok(format!("{merged} merged into {survivor}."))
    }
    .await;
    redirect_back(&back, result)
}

pub(super) async fn unmerge(State(api): State<Api>, principal: Principal, body: Bytes) -> Response {
    let form = Form::parse(&body).unwrap_or_default();
    let back = match form.get("back").and_then(parse_enterprise) {
        Some(e) => format!("/console/patients/{e}"),
        None => "/console/reviews".to_owned(),
    };
    let result = async {
        let seq = form
            .get("merge_event")
            .and_then(|s| s.trim().parse::<u64>().ok())
            .ok_or_else(|| ApiError::bad_request("merge_event: the merge's event number"))?;
        let note = form.get("note").unwrap_or("").to_owned();
        unmerge_patients(&api, seq, person(&principal)?, note).await?;
        Ok(format!("Merge {seq} undone."))
    }
    .await;
    redirect_back(&back, result)
}
