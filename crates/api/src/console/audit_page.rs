//! The console's audit trail page (`Admin`): the records of `GET /api/audit?format=page`
//! with the same filters, newest first, the export links, and the hash chain's last
//! check (made on the first view after a start, and again on "Check again").
//!
//! The page shows patient identifiers, so its view is recorded like any PHI read: one
//! record, kind `R`, naming the filters and the patients shown (the guard's own record
//! is replaced by it).

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use console::{AuditRow, AuditView, ChainState};

use access::audit::{ActionKind, AuditRecord, Outcome};

use super::{html, viewer};
use crate::admin::{AuditQuery, audit_page, verification};
use crate::auth::{AuditedWithChange, CsrfToken};
use crate::extract::Query;
use crate::{Api, ApiError, Principal};

/// Records per page.
const PAGE: usize = 50;

/// The query parameters the page keeps (its filters and its place).
const KEPT: &[&str] = &[
    "from", "to", "who", "action", "kind", "outcome", "patient", "resource", "before",
];

pub(super) async fn audit(
    State(api): State<Api>,
    principal: Principal,
    csrf: Option<axum::Extension<CsrfToken>>,
    Query(query): Query<Vec<(String, String)>>,
) -> Result<Response, ApiError> {
    let viewer = viewer(&principal, csrf.as_ref());
    let check_now = query.iter().any(|(k, v)| k == "check" && v == "now");
    let query: Vec<(String, String)> = query
        .into_iter()
        .filter(|(k, _)| KEPT.contains(&k.as_str()))
        .collect();
    let get = |name: &str| {
        query
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
    };
    let asked = AuditQuery {
        from: get("from"),
        to: get("to"),
        who: get("who"),
        action: get("action"),
        kind: get("kind"),
        outcome: get("outcome"),
        patient: get("patient"),
        resource: get("resource"),
        before: get("before"),
        ..AuditQuery::default()
    };
    let (records, next_before, error) = match asked.filter() {
        Ok(filter) => {
            let (records, next) = audit_page(&api, filter, PAGE).await?;
            (records, next, None)
        }
        Err(e) if e.status() == StatusCode::BAD_REQUEST => {
            (Vec::new(), None, Some(e.message().to_owned()))
        }
        Err(e) => return Err(e),
    };
    let audit = api
        .auth
        .audit()
        .cloned()
        .ok_or_else(|| ApiError::not_found("no audit trail is kept"))?;
    // The last check, or a new one (the first view after a start, or asked for); a
    // check that cannot run leaves the page usable and says so.
    let check = match audit.last_check() {
        Some(check) if !check_now => Some(check),
        _ => match verification(&api).await {
            Ok(_) => audit.last_check(),
            Err(e) => {
                tracing::error!(error = %e.message(), "the audit chain could not be checked");
                None
            }
        },
    };
    let chain = check.map(|c| ChainState {
        checked_at: console::time_text(c.at),
        records: c.verification.records,
        broken: c.verification.broken.map(|b| b.to_string()),
    });
    let mut patients: Vec<String> = Vec::new();
    for p in records.iter().flat_map(|r| &r.record.patients) {
        if !patients.contains(p) {
            patients.push(p.clone());
        }
    }
    let rows: Vec<AuditRow> = records
        .into_iter()
        .map(|s| {
            let r = s.record;
            AuditRow {
                seq: s.seq,
                at: console::time_text(r.at),
                actor: r.actor,
                owner: r.owner,
                method: r.method,
                address: r.address,
                action: r.action,
                kind: r.kind.code().to_owned(),
                resource: r.resource,
                patients: r.patients,
                outcome: r.outcome.as_str().to_owned(),
                detail: r.detail,
            }
        })
        .collect();
    // This view's own record: what was asked and which patients it showed.
    if let Some(caller) = principal.authenticated() {
        let filters: Vec<String> = query
            .iter()
            .filter(|(_, v)| !v.trim().is_empty())
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        let record = AuditRecord::by(caller, "audit.view", ActionKind::Read, Outcome::Success)
            .resource("/console/audit")
            .patients(patients)
            .detail(format!(
                "{} records shown; filters: {}",
                rows.len(),
                if filters.is_empty() {
                    "none".to_owned()
                } else {
                    filters.join(", ")
                }
            ));
        audit.append(record).await.map_err(|e| {
            tracing::error!(error = %e, "audit record not written; request refused");
            ApiError::internal("the audit record could not be written, so the request is refused")
        })?;
    }
    let status = if error.is_some() {
        StatusCode::BAD_REQUEST
    } else {
        StatusCode::OK
    };
    let view = AuditView {
        query,
        rows,
        next_before,
        chain,
        error,
    };
    let mut response = html(status, console::audit_page(&viewer, &view));
    if principal.authenticated().is_some() {
        response.extensions_mut().insert(AuditedWithChange);
    }
    Ok(response)
}
