//! The console's quarantine, dead-letter and data-quality pages and their forms. The
//! work is the `quarantine` crate's ([`crate::Api::quarantine`]) and the delivery
//! queue's; these handlers read forms and render pages.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use console::{
    DeadLetterRow, EditView, FieldQuality, FindingView, QuarantineDetail, QuarantineList,
    QuarantineRow, SenderQuality,
};
use quarantine::{DataQualityFilter, QuarantineFilter, QuarantineId, Status, Summary};

use super::{Form, Outcome, html, redirect_back, viewer};
use crate::auth::CsrfToken;
use crate::extract::{Path, Query};
use crate::{Api, ApiError, Principal};

/// How many entries a page lists.
const PAGE: usize = 50;
/// How many dead letters a page shows.
const DEAD_LETTERS: usize = 50;

fn row_of(s: &Summary) -> QuarantineRow {
    QuarantineRow {
        id: s.id.0,
        message_id: s.message_id,
        quarantined: console::time_text(s.quarantined_at),
        channel: s.channel.clone(),
        sender: s.sending_application.clone(),
        message_type: s.message_type.clone(),
        control_id: s.control_id.clone(),
        errors: s.errors,
        warnings: s.warnings,
        reason: s.reason.clone(),
        status: s.status.as_str().to_owned(),
        edits: s.edits,
    }
}

fn value(query: &[(String, String)], name: &str) -> Option<String> {
    query
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.trim().to_owned())
        .filter(|v| !v.is_empty())
}

/// A page of the destinations' dead-lettered entries, oldest first, after entry
/// `after`; and the entry the next page starts after.
async fn dead_letters(
    api: &Api,
    after: Option<i64>,
) -> Result<(Vec<DeadLetterRow>, Option<i64>), ApiError> {
    let (entries, next) = crate::dead_letters::page(api, None, None, after, DEAD_LETTERS).await?;
    let rows = entries
        .into_iter()
        .map(|e| DeadLetterRow {
            entry_id: e.id.0,
            message_id: e.message_id.0,
            channel: e.channel,
            destination: e.destination,
            attempts: u64::from(e.attempts),
            since: console::time_text(e.state_changed_at.0),
            error: e.last_error.or(e.state_reason).unwrap_or_default(),
        })
        .collect();
    Ok((rows, next))
}

pub(super) async fn list(
    State(api): State<Api>,
    principal: Principal,
    csrf: Option<axum::Extension<CsrfToken>>,
    Query(query): Query<Vec<(String, String)>>,
    outcome: Outcome,
) -> Result<Response, ApiError> {
    let viewer = viewer(&principal, csrf.as_ref());
    let mut query: Vec<(String, String)> = query
        .into_iter()
        .filter(|(k, _)| {
            matches!(
                k.as_str(),
                "channel" | "sender" | "type" | "status" | "before" | "dead_after"
            )
        })
        .collect();
    // Open entries unless another status is asked for (`status=` for any).
    if !query.iter().any(|(k, _)| k == "status") {
        query.push(("status".to_owned(), "open".to_owned()));
    }
    let status = value(&query, "status")
        .map(|s| s.parse::<Status>())
        .transpose()?;
    let before = match value(&query, "before") {
        Some(b) => Some(QuarantineId(b.parse::<i64>().map_err(|_| {
            ApiError::bad_request(format!("before: {b:?} is not an entry id"))
        })?)),
        None => None,
    };
    let filter = QuarantineFilter {
        channel: value(&query, "channel"),
        sender: value(&query, "sender"),
        message_type: value(&query, "type"),
        status,
        before,
    };
    let quarantine = api.quarantine()?;
    let total = quarantine
        .count(QuarantineFilter {
            before: None,
            ..filter.clone()
        })
        .await?;
    let entries = quarantine.list(filter, PAGE).await?;
    let dead_after = match value(&query, "dead_after") {
        Some(a) => Some(a.parse::<i64>().map_err(|_| {
            ApiError::bad_request(format!("dead_after: {a:?} is not a queue entry id"))
        })?),
        None => None,
    };
    let (dead_letters, dead_next_after) = dead_letters(&api, dead_after).await?;
    let next_before = (entries.len() == PAGE)
        .then(|| entries.last().map(|e| e.id.0))
        .flatten();
    let list = QuarantineList {
        notice: outcome.notice,
        error: outcome.error,
        query,
        rows: entries.iter().map(row_of).collect(),
        total,
        next_before,
        dead_letters,
        dead_after,
        dead_next_after,
    };
    Ok(html(
        StatusCode::OK,
        console::quarantine_page(&viewer, &list),
    ))
}

fn entry_id(text: &str) -> Result<QuarantineId, ApiError> {
    text.trim()
        .parse::<i64>()
        .ok()
        .filter(|n| *n > 0)
        .map(QuarantineId)
        .ok_or_else(|| ApiError::bad_request(format!("{text:?} is not a quarantine entry id")))
}

pub(super) async fn entry(
    State(api): State<Api>,
    principal: Principal,
    csrf: Option<axum::Extension<CsrfToken>>,
    Path(id): Path<String>,
    outcome: Outcome,
) -> Result<Response, ApiError> {
    let viewer = viewer(&principal, csrf.as_ref());
    let d = api.quarantine()?.get(entry_id(&id)?).await?;
    let detail = QuarantineDetail {
        row: row_of(&d.summary),
        findings: d
            .findings
            .iter()
            .map(|f| FindingView {
                severity: f.severity.clone(),
                path: f.path.clone(),
                code: f.code,
                message: f.message.clone(),
            })
            .collect(),
        version: d.original.entry.version.clone(),
        original: d.original.raw.clone(),
        content: String::from_utf8_lossy(&d.content).into_owned(),
        revision: d.revision,
        history: d
            .history
            .iter()
            .map(|e| EditView {
                at: console::time_text(e.edited_at),
                by: e.edited_by.clone(),
                reason: e.reason.clone(),
            })
            .collect(),
        status_by: d.summary.status_by.clone(),
        status_reason: d.summary.status_reason.clone(),
        reprocessed_as: d.summary.reprocessed_as,
        notice: outcome.notice,
        error: outcome.error,
    };
    Ok(html(
        StatusCode::OK,
        console::quarantine_entry_page(&viewer, &detail),
    ))
}

/// The edit form's textarea back as a message: lines (however the browser ended them)
/// become segments ended by CR.
fn message_of(text: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(text.len());
    for line in text.split(['\r', '\n']).filter(|l| !l.trim().is_empty()) {
        out.extend_from_slice(line.as_bytes());
        out.push(b'\r');
    }
    out
}

pub(super) async fn edit(
    State(api): State<Api>,
    principal: Principal,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    let back = format!("/console/quarantine/{id}");
    let result = async {
        let id = entry_id(&id)?;
        let who = principal.require()?.to_owned();
        let form = Form::parse(&body)?;
        let why = form.required("reason", "say why the message is edited")?;
        let content = message_of(form.get("content").unwrap_or(""));
        if content.is_empty() {
            return Err(ApiError::bad_request("the message is empty"));
        }
        let edited = api.quarantine()?.edit(id, &content, &who, &why).await?;
        let errors = edited.findings.iter().filter(|f| f.is_error()).count();
        Ok(if errors == 0 {
            "Edit saved; the message validates.".to_owned()
        } else {
            format!("Edit saved; {errors} error(s) remain.")
        })
    }
    .await;
    redirect_back(&back, result)
}

pub(super) async fn revalidate(State(api): State<Api>, Path(id): Path<String>) -> Response {
    let back = format!("/console/quarantine/{id}");
    let result = async {
        let findings = api.quarantine()?.revalidate(entry_id(&id)?).await?;
        let errors = findings.iter().filter(|f| f.is_error()).count();
        Ok(format!("Revalidated: {errors} error(s)."))
    }
    .await;
    redirect_back(&back, result)
}

pub(super) async fn reprocess(
    State(api): State<Api>,
    principal: Principal,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    let back = format!("/console/quarantine/{id}");
    let result = async {
        let id = entry_id(&id)?;
        let who = principal.require()?.to_owned();
        let form = Form::parse(&body)?;
        let why = form.get("reason").unwrap_or("").trim().to_owned();
        let force = form.get("force").is_some();
        let mut results = api
            .quarantine()?
            .reprocess(&[id], &who, Some(&why), force, api.wake_channel.as_ref())
            .await?;
        match results.pop() {
            Some(r) => {
                let message = r.result?;
                Ok(format!("Reprocessed as message {}.", message.0))
            }
            None => Err(ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "no result",
            )),
        }
    }
    .await;
    redirect_back(&back, result)
}

pub(super) async fn discard(
    State(api): State<Api>,
    principal: Principal,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    let back = format!("/console/quarantine/{id}");
    let result = async {
        let id = entry_id(&id)?;
        let who = principal.require()?.to_owned();
        let form = Form::parse(&body)?;
        let why = form.required("reason", "say why the message is discarded")?;
        api.quarantine()?.discard(id, &who, &why).await?;
        Ok("Discarded.".to_owned())
    }
    .await;
    redirect_back(&back, result)
}

/// The entries ticked in the list's bulk form.
fn selected(form: &Form) -> Result<Vec<QuarantineId>, ApiError> {
    let ids = form
        .all("id")
        .map(entry_id)
        .collect::<Result<Vec<_>, _>>()?;
    if ids.is_empty() {
        return Err(ApiError::bad_request("no entry is selected"));
    }
    Ok(ids)
}

pub(super) async fn bulk_reprocess(
    State(api): State<Api>,
    principal: Principal,
    body: Bytes,
) -> Response {
    let result = async {
        let who = principal.require()?.to_owned();
        let form = Form::parse(&body)?;
        let ids = selected(&form)?;
        let why = form.get("reason").unwrap_or("").trim().to_owned();
        let results = api
            .quarantine()?
            .reprocess(
                &ids,
                &who,
                Some(&why),
                form.get("force").is_some(),
                api.wake_channel.as_ref(),
            )
            .await?;
        let done = results.iter().filter(|r| r.result.is_ok()).count();
        let refused: Vec<String> = results
            .iter()
            .filter_map(|r| r.result.as_ref().err().map(|e| format!("{}: {e}", r.id.0)))
            .collect();
        Ok(if refused.is_empty() {
            format!("Reprocessed {done} entr(ies).")
        } else {
            format!(
                "Reprocessed {done} entr(ies); not reprocessed: {}",
                refused.join("; ")
            )
        })
    }
    .await;
    redirect_back("/console/quarantine", result)
}

pub(super) async fn bulk_revalidate(State(api): State<Api>, body: Bytes) -> Response {
    let result = async {
        let form = Form::parse(&body)?;
        let ids = selected(&form)?;
        let quarantine = api.quarantine()?;
        let mut valid = 0;
        for id in &ids {
            let findings = quarantine.revalidate(*id).await?;
            if !findings.iter().any(|f| f.is_error()) {
                valid += 1;
            }
        }
        Ok(format!(
            "Revalidated {} entr(ies): {valid} without errors.",
            ids.len()
        ))
    }
    .await;
    redirect_back("/console/quarantine", result)
}

pub(super) async fn bulk_discard(
    State(api): State<Api>,
    principal: Principal,
    body: Bytes,
) -> Response {
    let result = async {
        let who = principal.require()?.to_owned();
        let form = Form::parse(&body)?;
        let ids = selected(&form)?;
        let why = form.required("reason", "say why the messages are discarded")?;
        let quarantine = api.quarantine()?;
        for id in &ids {
            quarantine.discard(*id, &who, &why).await?;
        }
        Ok(format!("Discarded {} entr(ies).", ids.len()))
    }
    .await;
    redirect_back("/console/quarantine", result)
}

pub(super) async fn resend_dead_letters(State(api): State<Api>, body: Bytes) -> Response {
    let result = async {
        let form = Form::parse(&body)?;
        let entries = form
            .all("entry")
            .map(|e| {
                e.trim()
                    .parse::<i64>()
                    .map(delivery::EntryId)
                    .map_err(|_| ApiError::bad_request(format!("{e:?} is not an entry id")))
            })
            .collect::<Result<Vec<_>, _>>()?;
        if entries.is_empty() {
            return Err(ApiError::bad_request("no dead letter is selected"));
        }
        let delivery = api.delivery.clone().ok_or_else(|| {
            ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "no destination is running")
        })?;
        for e in &entries {
            delivery.resend(*e).await?;
        }
        Ok(format!("Queued {} dead letter(s) again.", entries.len()))
    }
    .await;
    redirect_back("/console/quarantine", result)
}

pub(super) async fn data_quality(
    State(api): State<Api>,
    principal: Principal,
    csrf: Option<axum::Extension<CsrfToken>>,
    Query(query): Query<Vec<(String, String)>>,
) -> Result<Response, ApiError> {
    let viewer = viewer(&principal, csrf.as_ref());
    let query: Vec<(String, String)> = query
        .into_iter()
        .filter(|(k, _)| {
            matches!(
                k.as_str(),
                "channel" | "sender" | "type" | "since" | "bucket"
            )
        })
        .collect();
    let filter = DataQualityFilter {
        channel: value(&query, "channel"),
        sender: value(&query, "sender"),
        message_type: value(&query, "type"),
    };
    let (since, bucket) = crate::quarantine::over_time_range(
        value(&query, "since").as_deref(),
        value(&query, "bucket").as_deref(),
    )?;
    let quarantine = api.quarantine()?;
    let (messages, findings) = quarantine.data_quality(filter.clone()).await?;
    let (by_sender, by_field) = quarantine
        .data_quality_over_time(filter, since, bucket)
        .await?;
    let over_time = console::QualityOverTime::build(
        bucket.as_str(),
        since,
        store::UnixMicros::now().0,
        bucket.micros(),
        &by_sender
            .into_iter()
            .map(|s| (s.start, s.sender, s.validated, s.with_errors))
            .collect::<Vec<_>>(),
        &by_field
            .into_iter()
            .map(|f| (f.start, f.sender, f.path, f.count))
            .collect::<Vec<_>>(),
    );
    let senders: Vec<SenderQuality> = messages
        .into_iter()
        .map(|m| SenderQuality {
            channel: m.channel,
            sender: m.sender,
            message_type: m.message_type,
            validated: m.validated,
            with_errors: m.with_errors,
            with_warnings: m.with_warnings,
            first_seen: console::time_text(m.first_seen),
            last_seen: console::time_text(m.last_seen),
        })
        .collect();
    let fields: Vec<FieldQuality> = findings
        .into_iter()
        .map(|f| FieldQuality {
            channel: f.channel,
            sender: f.sender,
            message_type: f.message_type,
            path: f.path,
            code: f.code,
            severity: f.severity,
            description: f.description,
            count: f.count,
            messages: f.messages,
            first_seen: console::time_text(f.first_seen),
            last_seen: console::time_text(f.last_seen),
        })
        .collect();
    Ok(html(
        StatusCode::OK,
        console::data_quality_page(&viewer, &query, &senders, &fields, &over_time),
    ))
}

/// Discards the ticked dead letters, once the operator confirmed and said why: each
/// leaves the dead letters (state `discarded`) and its message's page says so.
pub(super) async fn discard_dead_letters(
    State(api): State<Api>,
    principal: Principal,
    body: Bytes,
) -> Response {
    let result = async {
        let who = principal.require()?.to_owned();
        let form = Form::parse(&body)?;
        let entries = form
            .all("entry")
            .map(|e| {
                e.trim()
                    .parse::<i64>()
                    .map_err(|_| ApiError::bad_request(format!("{e:?} is not an entry id")))
            })
            .collect::<Result<Vec<_>, _>>()?;
        if entries.is_empty() {
            return Err(ApiError::bad_request("no dead letter is selected"));
        }
        let why = form.required("reason", "say why the dead letters are discarded")?;
        if form.get("confirm").is_none() {
            return Err(ApiError::bad_request(
                "confirm: tick the box confirming the discard (a discarded dead letter is not sent again)",
            ));
        }
        for e in &entries {
            crate::dead_letters::discard_entry(&api, *e, &who, &why).await?;
        }
        Ok(format!("Discarded {} dead letter(s).", entries.len()))
    }
    .await;
    redirect_back("/console/quarantine", result)
}
