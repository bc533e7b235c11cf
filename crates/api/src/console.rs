//! The web console's routes: HTML pages rendered by the `console` crate, declared in
//! the one route table like every API route, so the one access check covers them.
//!
//! | route | class | page |
//! | --- | --- | --- |
//! | `GET /login` | public | the sign-in form (posts to `POST /login`) |
//! | `GET /console/assets/{file}` | public | the stylesheet and script, from the binary |
//! | `GET /` | metadata | the dashboard: counts per channel and destination |
//! | `GET /console/events` | metadata | the dashboard's counts (event `counts`) and its alerts table (event `alerts`, HTML, when it changed) as server-sent events (`Accept: text/event-stream`), else the counts once as JSON |
//! | `GET /console/charts` | metadata | the dashboard's charts alone (an HTML fragment the dashboard's script swaps in every few seconds), the minute under way included |
//! | `GET /console/messages` | PHI | the message browser (the search of `GET /api/messages`) |
//! | `GET /console/messages/{id}` | PHI | a message: the time of each hop (RFC 3339), links to its quarantine entry and its patients' golden records, its validation findings, the message labelled field by field and as a tree, each destination's entry and what it was sent, the FHIR resources made from it |
//! | `POST /console/saved-searches` | PHI | save the browser's search (`name`, `query`) as the viewer's, then show it |
//! | `POST /console/saved-searches/{name}/delete` | PHI | delete one of the viewer's saved searches |
//! | `POST /console/messages/{id}/reprocess` | operate | reprocess from the detail page's form |
//! | `POST /console/messages/{id}/resend` | operate | the detail page's resend to one `destination` |
//! | `POST /console/alerts/{name}/ack` | operate | acknowledge a firing alert from the dashboard |
//! | `GET /console/quarantine?channel=&sender=&type=&status=&before=&dead_after=` | PHI | quarantine entries (open by default) with bulk selection, and the destinations' dead letters, oldest first, 50 a page (`dead_after`: keyset by entry) |
//! | `POST /console/quarantine/reprocess`, `/revalidate`, `/discard` | operate | the list's bulk actions on the ticked `id`s (`reason`, `force`) |
//! | `GET /console/quarantine/{id}` | PHI | an entry: findings, the message in a textarea, edits, the message as received |
//! | `POST /console/quarantine/{id}/edit`, `/revalidate`, `/reprocess`, `/discard` | operate | the entry's forms |
//! | `POST /console/dead-letters/resend` | operate | queue the ticked dead letters (`entry`) again |
//! | `POST /console/dead-letters/discard` | operate | discard the ticked dead letters (`entry`, `reason`, `confirm`) |
//! | `GET /console/data-quality?channel=&sender=&type=` | metadata | per sender and type: messages validated and failed, findings by field, first and last seen |
//! | `GET /console/reviews` | PHI | the patient index's review queue, both records side by side with the match weights |
//! | `POST /console/reviews/{id}/accept`, `/reject` | steward | decide a review (`enterprise_id`, `note`) |
//! | `GET /console/patients?id=E12` | PHI | sends the browser to that patient |
//! | `GET /console/patients/{id}` | PHI | a patient's golden record, source records and history |
//! | `POST /console/patients/merge`, `/unmerge` | steward | `survivor`, `merged`, `note`; `merge_event` |
//! | `GET /console/admin` | admin | running channels and destinations with their state, the running configuration, its history with diffs, users, tokens, the audit export form |
//! | `GET /console/audit?from=&to=&who=&action=&kind=&outcome=&patient=&resource=&before=` | admin | the audit trail newest first, filtered, paged by sequence number; CSV and JSON export links; the hash chain's last check (`check=now` checks again). Its view is itself recorded (`audit.view`, the patients shown) |
//! | `POST /console/channels/{name}/start`, `/pause`, `/stop` | operate | the administration page's channel buttons |
//! | `POST /console/channels/{channel}/destinations/{destination}/start`, `/pause`, `/stop` | operate | its destination buttons (paused: queues, sends nothing; stopped: the same, its connection to the receiver closed) |
//! | `POST /console/users` | admin | add a user (`name`, `role`, `password`, `password_again`) |
//! | `POST /console/users/{name}/disable` | admin | disable a user and end their sessions |
//! | `POST /console/tokens` | admin | create a token (`user`, `role`, `expires_days`, `scopes`); the answer is a page showing its secret once (`Cache-Control: no-store`) |
//! | `POST /console/tokens/{id}/revoke` | admin | revoke a token |
//!
//! Forms post `application/x-www-form-urlencoded` with the session's `csrf_token`
//! (checked by the access layer before the handler runs); a form's handler answers
//! 303 back to its page with `?notice=` or `?error=` saying what happened. The work is
//! done by the same library functions as the JSON API's (`quarantine`, `mpi`,
//! `delivery`, `alerts`).
//!
//! A browser that is not signed in (it asks for `text/html`) is sent to the sign-in
//! page; other clients get the JSON 401 of every route. Every page carries
//! `console::CONTENT_SECURITY_POLICY`.

use std::convert::Infallible;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use console::{ChannelCounts, Dashboard, DestinationCounts, MessageRow, Viewer};
use store::{JournalEntry, MessageId};

use crate::auth::CsrfToken;
use crate::extract::{Path, Query};
use crate::messages::blocking;
use crate::routes::{Access, Method, Routes};
use crate::{Api, ApiError, Principal};

mod admin_pages;
mod audit_page;
mod patient_pages;
mod quarantine_pages;

pub(crate) fn routes() -> Routes {
    Routes::new()
        .add(Method::Get, "/login", Access::Public, login_page)
        .add(Method::Get, "/console/assets/{file}", Access::Public, asset)
        .add(Method::Get, "/", Access::Metadata, dashboard)
        .add(Method::Get, "/console/events", Access::Metadata, events)
        .add(
            Method::Get,
            "/console/charts",
            Access::Metadata,
            charts_fragment,
        )
        .add(Method::Get, "/console/messages", Access::Phi, messages)
        .add(Method::Get, "/console/messages/{id}", Access::Phi, message)
        .add(
            Method::Post,
            "/console/saved-searches",
            Access::Phi,
            save_search,
        )
        .add(
            Method::Post,
            "/console/saved-searches/{name}/delete",
            Access::Phi,
            delete_saved_search,
        )
        .add(
            Method::Post,
            "/console/messages/{id}/reprocess",
            Access::Operate,
            reprocess,
        )
        .add(
            Method::Post,
            "/console/messages/{id}/resend",
            Access::Operate,
            resend,
        )
        .add(
            Method::Post,
            "/console/alerts/{name}/ack",
            Access::Operate,
            acknowledge,
        )
        .add(
            Method::Get,
            "/console/quarantine",
            Access::Phi,
            quarantine_pages::list,
        )
        .add(
            Method::Post,
            "/console/quarantine/reprocess",
            Access::Operate,
            quarantine_pages::bulk_reprocess,
        )
        .add(
            Method::Post,
            "/console/quarantine/revalidate",
            Access::Operate,
            quarantine_pages::bulk_revalidate,
        )
        .add(
            Method::Post,
            "/console/quarantine/discard",
            Access::Operate,
            quarantine_pages::bulk_discard,
        )
        .add(
            Method::Get,
            "/console/quarantine/{id}",
            Access::Phi,
            quarantine_pages::entry,
        )
        .add(
            Method::Post,
            "/console/quarantine/{id}/edit",
            Access::Operate,
            quarantine_pages::edit,
        )
        .add(
            Method::Post,
            "/console/quarantine/{id}/revalidate",
            Access::Operate,
            quarantine_pages::revalidate,
        )
        .add(
            Method::Post,
            "/console/quarantine/{id}/reprocess",
            Access::Operate,
            quarantine_pages::reprocess,
        )
        .add(
            Method::Post,
            "/console/quarantine/{id}/discard",
            Access::Operate,
            quarantine_pages::discard,
        )
        .add(
            Method::Post,
            "/console/dead-letters/resend",
            Access::Operate,
            quarantine_pages::resend_dead_letters,
        )
        .add(
            Method::Post,
            "/console/dead-letters/discard",
            Access::Operate,
            quarantine_pages::discard_dead_letters,
        )
        .add(
            Method::Get,
            "/console/data-quality",
            Access::Metadata,
            quarantine_pages::data_quality,
        )
        .add(
            Method::Get,
            "/console/reviews",
            Access::Phi,
            patient_pages::reviews,
        )
        .add(
            Method::Post,
            "/console/reviews/{id}/accept",
            Access::Steward,
            patient_pages::accept,
        )
        .add(
            Method::Post,
            "/console/reviews/{id}/reject",
            Access::Steward,
            patient_pages::reject,
        )
        .add(
            Method::Get,
            "/console/patients",
            Access::Phi,
            patient_pages::lookup,
        )
        .add(
            Method::Get,
            "/console/patients/{id}",
            Access::Phi,
            patient_pages::patient,
        )
        .add(
            Method::Post,
            "/console/patients/merge",
            Access::Steward,
            patient_pages::merge,
        )
        .add(
            Method::Post,
            "/console/patients/unmerge",
            Access::Steward,
            patient_pages::unmerge,
        )
        .add(
            Method::Get,
            "/console/admin",
            Access::Admin,
            admin_pages::admin,
        )
        .add(
            Method::Get,
            "/console/audit",
            Access::Admin,
            audit_page::audit,
        )
        // Start, stop and pause from the administration page.
        .add(
            Method::Post,
            "/console/channels/{name}/start",
            Access::Operate,
            admin_pages::start_channel,
        )
        .add(
            Method::Post,
            "/console/channels/{name}/pause",
            Access::Operate,
            admin_pages::pause_channel,
        )
        .add(
            Method::Post,
            "/console/channels/{name}/stop",
            Access::Operate,
            admin_pages::stop_channel,
        )
        .add(
            Method::Post,
            "/console/channels/{channel}/destinations/{destination}/start",
            Access::Operate,
            admin_pages::start_destination,
        )
        .add(
            Method::Post,
            "/console/channels/{channel}/destinations/{destination}/pause",
            Access::Operate,
            admin_pages::pause_destination,
        )
        .add(
            Method::Post,
            "/console/channels/{channel}/destinations/{destination}/stop",
            Access::Operate,
            admin_pages::stop_destination,
        )
        // Users and tokens from the administration page.
        .add(
            Method::Post,
            "/console/users",
            Access::Admin,
            admin_pages::add_user,
        )
        .add(
            Method::Post,
            "/console/users/{name}/disable",
            Access::Admin,
            admin_pages::disable_user,
        )
        .add(
            Method::Post,
            "/console/tokens",
            Access::Admin,
            admin_pages::create_token,
        )
        .add(
            Method::Post,
            "/console/tokens/{id}/revoke",
            Access::Admin,
            admin_pages::revoke_token,
        )
}

/// A urlencoded form's fields, in order (a field may repeat: ticked checkboxes).
#[derive(Default)]
pub(crate) struct Form(Vec<(String, String)>);

impl Form {
    pub(crate) fn parse(body: &[u8]) -> Result<Form, ApiError> {
        serde_urlencoded::from_bytes(body)
            .map(Form)
            .map_err(|e| ApiError::bad_request(format!("the form: {e}")))
    }

    /// The first value of `name`.
    pub(crate) fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// Every value of `name`.
    pub(crate) fn all<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.0
            .iter()
            .filter(move |(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// The trimmed, non-empty value of `name`, or 400 saying `why`.
    pub(crate) fn required(&self, name: &str, why: &str) -> Result<String, ApiError> {
        self.get(name)
            .map(str::trim)
            .filter(|v| !v.is_empty())
            .map(str::to_owned)
            .ok_or_else(|| ApiError::bad_request(format!("{name}: {why}")))
    }
}

/// The answer to a console form: 303 back to `page` with `?notice=` (it worked) or
/// `?error=` (the error's message, as the JSON API would have said it). A refusal's
/// status goes with the redirect ([`FormRefused`]) so the audit trail records the form
/// as the JSON route's refusal would be, not as a success.
pub(crate) fn redirect_back(page: &str, result: Result<String, ApiError>) -> Response {
    let mut response = StatusCode::SEE_OTHER.into_response();
    let query = match result {
        Ok(notice) => format!("notice={}", console::url_encode(&notice)),
        Err(e) => {
            response.extensions_mut().insert(FormRefused(e.status()));
            format!("error={}", console::url_encode(e.message()))
        }
    };
    if let Ok(location) = HeaderValue::from_str(&format!("{page}?{query}")) {
        response.headers_mut().insert(header::LOCATION, location);
    }
    response
}

/// On a form's redirect: the status the JSON route would have refused it with, for the
/// audit record's outcome.
#[derive(Debug, Clone, Copy)]
pub(crate) struct FormRefused(pub(crate) StatusCode);

/// Whether a path is a console page (a browser asking for it is sent to sign in).
pub(crate) fn is_page(path: &str) -> bool {
    path == "/" || (path.starts_with("/console/") && !path.starts_with("/console/assets/"))
}

/// An HTML answer with the console's security headers.
pub(crate) fn html(status: StatusCode, body: String) -> Response {
    let mut response = (status, body).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(console::CONTENT_SECURITY_POLICY),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// The header's viewer: the caller's name and role, the session's CSRF token.
pub(crate) fn viewer_of(principal: &access::Principal, csrf: Option<&CsrfToken>) -> Viewer {
    let user = match &principal.actor {
        access::Actor::User { name } => name.clone(),
        access::Actor::Token { owner, .. } => owner.clone(),
        access::Actor::Oidc { name, .. } => name.clone(),
        access::Actor::Anonymous => "anonymous".to_owned(),
    };
    Viewer {
        user,
        role: principal
            .roles
            .iter()
            .map(|r| r.as_str())
            .collect::<Vec<_>>()
            .join(", "),
        csrf: csrf.map(|c| c.0.clone()),
        reads_phi: principal.allows(access::Permission::ReadPhi),
        operates: principal.allows(access::Permission::Operate),
        stewards: principal.allows(access::Permission::Steward),
        administers: principal.allows(access::Permission::Admin),
    }
}

pub(crate) fn viewer(principal: &Principal, csrf: Option<&axum::Extension<CsrfToken>>) -> Viewer {
    match principal.authenticated() {
        Some(p) => viewer_of(p, csrf.map(|c| &c.0)),
        None => Viewer::default(),
    }
}

#[derive(serde::Deserialize)]
struct LoginQuery {
    #[serde(default)]
    failed: Option<String>,
    #[serde(default)]
    next: Option<String>,
}

async fn login_page(Query(q): Query<LoginQuery>) -> Response {
    html(
        StatusCode::OK,
        console::login_page(q.failed.is_some(), q.next.as_deref().unwrap_or("/")),
    )
}

async fn asset(Path(file): Path<String>) -> Response {
    match console::asset(&file) {
        Some((content_type, bytes)) => {
            let mut response = bytes.into_response();
            let headers = response.headers_mut();
            headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
            headers.insert(
                header::X_CONTENT_TYPE_OPTIONS,
                HeaderValue::from_static("nosniff"),
            );
            headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
            response
        }
        None => ApiError::not_found(format!("no console asset {file:?}")).into_response(),
    }
}

/// Quantile `q` of one hop of a channel's latencies (the bound of its bucket).
fn hop(
    latencies: &[(String, store::HopLatencies)],
    channel: &str,
    q: f64,
    which: fn(&store::HopLatencies) -> &store::HopHistogram,
) -> Option<u64> {
    latencies
        .iter()
        .find(|(c, _)| c == channel)
        .and_then(|(_, h)| which(h).quantile_micros(q))
}

/// Quantile `q` of a destination's answer or sent latency (the bound of its bucket; `u64::MAX`
/// above the last).
fn cumulative_quantile(h: &delivery::LatencySnapshot, q: f64) -> Option<u64> {
    if h.count == 0 {
        return None;
    }
    let rank = ((q * h.count as f64).ceil() as u64).clamp(1, h.count);
    Some(
        delivery::LATENCY_BUCKETS_MICROS
            .iter()
            .zip(&h.cumulative)
            .find(|(_, n)| **n >= rank)
            .map_or(u64::MAX, |(bound, _)| *bound),
    )
}

/// The dashboard's counts: messages per channel and state, each destination's queue.
async fn dashboard_data(api: &Api) -> Result<Dashboard, ApiError> {
    // The store's running counts and rates: no read of the journal.
    let rates = api.store.message_rates();
    let latencies = api.store.hop_latencies();
    let lags = api.store.clock_lags();
    let mut channels: Vec<ChannelCounts> = api
        .store
        .message_counts()
        .into_iter()
        .map(|(channel, by_state)| ChannelCounts {
            stored_per_second: rates
                .iter()
                .find(|(c, _)| *c == channel)
                .map_or(0.0, |(_, r)| r.stored_per_second),
            processed_per_second: rates
                .iter()
                .find(|(c, _)| *c == channel)
                .map_or(0.0, |(_, r)| r.processed_per_second),
            stored_p50_us: hop(&latencies, &channel, 0.5, |h| &h.stored),
            stored_p99_us: hop(&latencies, &channel, 0.99, |h| &h.stored),
            processed_p50_us: hop(&latencies, &channel, 0.5, |h| &h.processed),
            processed_p99_us: hop(&latencies, &channel, 0.99, |h| &h.processed),
            open_connections: None,
            held: String::new(),
            clock_lag: lags
                .iter()
                .find(|(c, _)| *c == channel)
                .map(|(_, l)| console::ClockLagText {
                    p50_us: l.p50_micros,
                    max_us: l.max_micros,
                    unreadable: l.missing,
                })
                .unwrap_or_default(),
            channel,
            counts: console::STATES
                .iter()
                .map(|name| {
                    store::MessageState::ALL
                        .iter()
                        .zip(by_state)
                        .find(|(s, _)| s.as_str() == *name)
                        .map_or(0, |(_, n)| n)
                })
                .collect(),
        })
        .collect();
    // Every running channel has its row, messages or not, so live updates find it.
    if let Some(status) = &api.status {
        for running in status.channels() {
            match channels.iter_mut().find(|c| c.channel == running.name) {
                Some(c) => c.open_connections = Some(running.open_connections),
                None => channels.push(ChannelCounts {
                    channel: running.name,
                    counts: vec![0; console::STATES.len()],
                    open_connections: Some(running.open_connections),
                    ..ChannelCounts::default()
                }),
            }
        }
        channels.sort_by(|a, b| a.channel.cmp(&b.channel));
    }
    let destinations = match api.delivery.clone() {
        Some(delivery) => blocking(move || Ok(delivery.stats()?)).await?,
        None => Vec::new(),
    };
    // An operator's holds: paused or stopped channels, paused destinations.
    let held = match api.config.clone() {
        Some(control) => control.channel_states().await,
        None => Vec::new(),
    };
    for c in &mut channels {
        if let Some(s) = held
            .iter()
            .find(|s| s.channel == c.channel && s.state != "running")
        {
            c.held = s.state.to_owned();
        }
    }
    let paused = |channel: &str, destination: &str| {
        held.iter().any(|s| {
            s.channel == channel
                && s.destinations
                    .iter()
                    .any(|d| d.destination == destination && d.state != "running")
        })
    };
    Ok(Dashboard {
        channels,
        destinations: destinations
            .iter()
            .map(|d| DestinationCounts {
                paused: paused(&d.channel, &d.destination),
                channel: d.channel.clone(),
                destination: d.destination.clone(),
                queued: d.counts.queued,
                delivered: d.counts.delivered,
                errored: d.counts.errored,
                dead_lettered: d.counts.dead_lettered,
                depth: d.counts.depth,
                oldest_queued_age_ms: d.oldest_queued_age.map(|a| a.as_millis() as u64),
                answer_p50_us: cumulative_quantile(&d.answer_latency, 0.5),
                answer_p99_us: cumulative_quantile(&d.answer_latency, 0.99),
                sent_p50_us: cumulative_quantile(&d.sent_latency, 0.5),
                sent_p99_us: cumulative_quantile(&d.sent_latency, 0.99),
                thresholds: api
                    .destination_thresholds
                    .get(&(d.channel.clone(), d.destination.clone()))
                    .copied(),
            })
            .collect(),
        thresholds: api.queue_thresholds,
        alerts: api
            .alerts
            .as_ref()
            .map(|a| {
                a.list()
                    .iter()
                    .map(|s| console::AlertRow {
                        name: s.name.clone(),
                        condition: s.condition.to_owned(),
                        state: s.state.to_owned(),
                        detail: s.detail.clone(),
                        fired_at: s.fired_at.map(console::time_text),
                        acked_by: s.acked_by.clone(),
                    })
                    .collect()
            })
            .unwrap_or_default(),
        charts: Vec::new(),
        notice: None,
        error: None,
    })
}

/// What a form's redirect says happened (`?notice=` or `?error=`), shown above the page.
///
/// Only when the browser says the request came from the console itself
/// (`Sec-Fetch-Site: same-origin`, as on the redirect after a console form): a link
/// crafted elsewhere cannot put words of its choosing on a console page.
#[derive(Default)]
pub(crate) struct Outcome {
    pub(crate) notice: Option<String>,
    pub(crate) error: Option<String>,
}

impl<S: Send + Sync> axum::extract::FromRequestParts<S> for Outcome {
    type Rejection = Infallible;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        _state: &S,
    ) -> Result<Self, Self::Rejection> {
        let same_origin = parts
            .headers
            .get("sec-fetch-site")
            .is_some_and(|v| v.as_bytes() == b"same-origin");
        if !same_origin {
            return Ok(Outcome::default());
        }
        let pairs: Vec<(String, String)> =
            serde_urlencoded::from_str(parts.uri.query().unwrap_or("")).unwrap_or_default();
        let take = |name: &str| {
            pairs
                .iter()
                .find(|(k, v)| k == name && !v.is_empty())
                .map(|(_, v)| v.clone())
        };
        Ok(Outcome {
            notice: take("notice"),
            error: take("error"),
        })
    }
}

async fn dashboard(
    State(api): State<Api>,
    principal: Principal,
    csrf: Option<axum::Extension<CsrfToken>>,
    outcome: Outcome,
) -> Result<Response, ApiError> {
    let mut board = dashboard_data(&api).await?;
    board.notice = outcome.notice;
    board.error = outcome.error;
    let channels: Vec<String> = board.channels.iter().map(|c| c.channel.clone()).collect();
    let store = api.store.clone();
    board.charts = blocking(move || Ok(charts(&store, &channels)?)).await?;
    Ok(html(
        StatusCode::OK,
        console::dashboard_page(&viewer(&principal, csrf.as_ref()), &board),
    ))
}

/// Each channel's charts: the last 6 hours in 5-minute spans, the last 7 days in hours,
/// from the per-minute history (`store::minutes`).
fn charts(store: &store::Store, channels: &[String]) -> store::Result<Vec<console::Chart>> {
    let now = store::UnixMicros::now().0 / 60_000_000;
    let now = u64::try_from(now).unwrap_or(0);
    let (current, live) = store.current_minute();
    let mut charts = Vec::new();
    for channel in channels {
        for (range, minutes, step) in [("last 6 hours", 360, 5), ("last 7 days", 7 * 1440, 60)] {
            let to = now - now % step + step;
            let points = store::minutes::read(store, channel, to - minutes, to, step)?;
            charts.push(console::Chart {
                channel: channel.clone(),
                range: range.to_owned(),
                step_minutes: step,
                points: points
                    .into_iter()
                    .map(|p| {
                        let mut point = console::ChartPoint {
                            start_minute: p.start,
                            stored: p.stored,
                            processed: p.processed,
                            processed_p99_us: p.processed_p99_us,
                        };
                        // The minute under way, not in the history yet: from memory.
                        if (p.start..p.start + step).contains(&current) {
                            if let Some((_, h)) = live.iter().find(|(c, _)| c == channel) {
                                point.stored += h.stored.count;
                                point.processed += h.processed.count;
                                let p99 = h.processed.quantile_micros(0.99);
                                point.processed_p99_us = point.processed_p99_us.max(p99);
                            }
                        }
                        point
                    })
                    .collect(),
            });
        }
    }
    Ok(charts)
}

/// The dashboard's charts alone (`GET /console/charts`), as the page shows them: the
/// dashboard's script fetches them again every few seconds so the charts follow live.
async fn charts_fragment(State(api): State<Api>) -> Result<Response, ApiError> {
    let board = dashboard_data(&api).await?;
    let channels: Vec<String> = board.channels.iter().map(|c| c.channel.clone()).collect();
    let store = api.store.clone();
    let charts = blocking(move || Ok(charts(&store, &channels)?)).await?;
    Ok(html(StatusCode::OK, console::charts_html(&charts)))
}

fn counts_json(board: &Dashboard) -> serde_json::Value {
    let mut map = serde_json::Map::new();
    for (key, text, level) in board.live_values() {
        let value = match level {
            Some(level) => serde_json::json!({"text": text, "level": level}),
            None => serde_json::Value::String(text),
        };
        map.insert(key, value);
    }
    serde_json::Value::Object(map)
}

/// How often the live dashboard's counts are sent.
const EVENTS_EVERY: Duration = Duration::from_secs(2);

/// The dashboard's live values: every `EVENTS_EVERY` an event `counts` (the JSON of
/// [`counts_json`]), and an event `alerts` (the HTML of `[data-live-alerts]`, rendered
/// for this viewer) first and whenever it changed. Without `Accept: text/event-stream`,
/// the counts once as JSON.
async fn events(
    State(api): State<Api>,
    principal: Principal,
    csrf: Option<axum::Extension<CsrfToken>>,
    request: Request,
) -> Result<Response, ApiError> {
    let wants_stream = request
        .headers()
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("text/event-stream"));
    if !wants_stream {
        let board = dashboard_data(&api).await?;
        return Ok(axum::Json(counts_json(&board)).into_response());
    }
    let viewer = viewer(&principal, csrf.as_ref());
    // Per tick: the counts, then the alerts when their HTML changed.
    let ticks = futures_util::stream::unfold(
        (api, viewer, None::<String>, true),
        |(api, viewer, last_alerts, first)| async move {
            if !first {
                tokio::time::sleep(EVENTS_EVERY).await;
            }
            let mut events = Vec::with_capacity(2);
            let mut sent_alerts = last_alerts;
            match dashboard_data(&api).await {
                Ok(board) => {
                    events.push(
                        Event::default()
                            .event("counts")
                            .data(counts_json(&board).to_string()),
                    );
                    let alerts = console::alerts_html(&viewer, &board.alerts);
                    if sent_alerts.as_deref() != Some(alerts.as_str()) {
                        events.push(Event::default().event("alerts").data(alerts.clone()));
                        sent_alerts = Some(alerts);
                    }
                }
                Err(e) => events.push(Event::default().event("error").data(e.message())),
            }
            Some((
                futures_util::stream::iter(events.into_iter().map(Ok::<_, Infallible>)),
                (api, viewer, sent_alerts, false),
            ))
        },
    );
    let stream = futures_util::StreamExt::flatten(ticks);
    Ok(Sse::new(stream)
        .keep_alive(KeepAlive::default())
        .into_response())
}

fn row_of(e: &JournalEntry) -> MessageRow {
    MessageRow {
        id: e.id.0,
        received: console::time_text(e.received_at.0),
        channel: e.channel.clone(),
        message_type: e.message_type.clone(),
        sender: e.sending_application.clone(),
        control_id: e.control_id.clone(),
        state: e.state.as_str().to_owned(),
    }
}

async fn messages(
    State(api): State<Api>,
    principal: Principal,
    csrf: Option<axum::Extension<CsrfToken>>,
    Query(query): Query<Vec<(String, String)>>,
) -> Result<Response, ApiError> {
    let viewer = viewer(&principal, csrf.as_ref());
    let known: Vec<&str> = console::SEARCH_FIELDS
        .iter()
        .map(|(k, _)| *k)
        .chain(["before", "limit"])
        .collect();
    let query: Vec<(String, String)> = query
        .into_iter()
        .filter(|(k, _)| known.contains(&k.as_str()))
        .collect();
    let saved: Vec<console::SavedSearchLink> = match principal.user() {
        Some(user) => crate::saved_searches::searches_of(&api, user)
            .await?
            .into_iter()
            .map(|s| console::SavedSearchLink {
                name: s.name,
                query: s.query,
            })
            .collect(),
        None => Vec::new(),
    };
    match crate::messages::search(&api, &query, 50).await {
        Ok((entries, next)) => {
            let rows: Vec<MessageRow> = entries.iter().map(row_of).collect();
            Ok(html(
                StatusCode::OK,
                console::messages_page(&viewer, &query, &saved, &rows, next, None),
            ))
        }
        Err(e) if e.status() == StatusCode::BAD_REQUEST => Ok(html(
            StatusCode::BAD_REQUEST,
            console::messages_page(&viewer, &query, &saved, &[], None, Some(e.message())),
        )),
        Err(e) => Err(e),
    }
}

/// Saves the browser's search under a name (the form below the search), then shows it.
async fn save_search(State(api): State<Api>, principal: Principal, body: Bytes) -> Response {
    let result = async {
        let user = principal.require()?.to_owned();
        let form = Form::parse(&body)?;
        let name = form.required("name", "give the search a name")?;
        let (name, query) = crate::saved_searches::checked(&name, form.get("query").unwrap_or(""))?;
        crate::saved_searches::save_search(&api, &user, &name, &query).await?;
        Ok(query)
    }
    .await;
    match result {
        Ok(query) => {
            let mut response = StatusCode::SEE_OTHER.into_response();
            if let Ok(location) = HeaderValue::from_str(&format!("/console/messages?{query}")) {
                response.headers_mut().insert(header::LOCATION, location);
            }
            response
        }
        Err(e) => redirect_back("/console/messages", Err(e)),
    }
}

/// Deletes one of the viewer's saved searches (its button in the list).
async fn delete_saved_search(
    State(api): State<Api>,
    principal: Principal,
    Path(name): Path<String>,
) -> Response {
    let result = async {
        let user = principal.require()?.to_owned();
        if crate::saved_searches::delete_search(&api, &user, &name).await? {
            Ok(format!("Saved search {name} deleted."))
        } else {
            Err(ApiError::not_found(format!(
                "you have no saved search {name:?}"
            )))
        }
    }
    .await;
    redirect_back("/console/messages", result)
}

/// A queue entry as the detail page shows it, times in RFC 3339.
fn destination_view(
    e: delivery::QueueEntry,
    payload: Option<Vec<u8>>,
) -> console::DestinationEntry {
    let time = |t: store::UnixMicros| console::time_text(t.0);
    console::DestinationEntry {
        entry_id: e.id.0,
        destination: e.destination,
        state: e.state.as_str().to_owned(),
        state_reason: e.state_reason,
        attempts: u64::from(e.attempts),
        answer: e.answer,
        error: e.last_error,
        payload,
        queued: time(e.queued_at),
        first_sent: e.first_sent_at.map(time),
        last_sent: e.sent_at.map(time),
        acked: e.acked_at.map(time),
        state_changed: time(e.state_changed_at),
    }
}

/// The golden record (`E12`) the patient index linked message `id` to, as its channel
/// recorded it in the message's search keys. Keyed by the message, not by its control
/// id: two senders' messages may share an MSH-10.
fn patients_of_message(conn: &store::rusqlite::Connection, id: i64) -> store::Result<Vec<String>> {
    let mut select = conn.prepare_cached(
        "SELECT value FROM message_search WHERE message_id = ?1 AND kind = 'enterprise' \
         ORDER BY value",
    )?;
    let rows = select.query_map([id], |r| r.get::<_, String>(0))?;
    rows.map(|r| Ok(r?)).collect()
}

/// The repository's versions written from message `id`.
fn fhir_of_message(
    conn: &store::rusqlite::Connection,
    id: i64,
) -> store::Result<Vec<console::FhirResourceView>> {
    let mut select = conn.prepare_cached(
        "SELECT type, id, version, content FROM fhir_versions WHERE message_id = ?1 \
         ORDER BY type, id, version",
    )?;
    let rows = select.query_map([id], |r| {
        Ok(console::FhirResourceView {
            resource_type: r.get(0)?,
            id: r.get(1)?,
            version: r.get(2)?,
            json: r.get(3)?,
        })
    })?;
    let mut out = Vec::new();
    for row in rows {
        let mut view = row?;
        // Pretty-printed when it parses; as stored otherwise.
        if let Some(pretty) = serde_json::from_str::<serde_json::Value>(&view.json)
            .ok()
            .and_then(|value| serde_json::to_string_pretty(&value).ok())
        {
            view.json = pretty;
        }
        out.push(view);
    }
    Ok(out)
}

async fn message(
    State(api): State<Api>,
    principal: Principal,
    csrf: Option<axum::Extension<CsrfToken>>,
    Path(id): Path<i64>,
    outcome: Outcome,
) -> Result<Response, ApiError> {
    let viewer = viewer(&principal, csrf.as_ref());
    let store = api.store.clone();
    let (mpi_on, fhir_on) = (api.patient_index.is_some(), api.fhir_base.is_some());
    let (stored, entries, patients, fhir) = blocking(move || {
        let Some(stored) = store.journal().get(MessageId(id))? else {
            return Ok((None, Vec::new(), Vec::new(), None));
        };
        // Before the first processing there is no queue table yet in a bare store.
        let entries = store
            .read(|conn| {
                delivery::entries_of_message(conn, MessageId(id))?
                    .into_iter()
                    .map(|e| {
                        let payload = delivery::payload_of(conn, e.id)?;
                        Ok(destination_view(e, payload))
                    })
                    .collect::<store::Result<Vec<_>>>()
            })
            .unwrap_or_default();
        let patients = if mpi_on {
            store.read(|conn| patients_of_message(conn, id))?
        } else {
            Vec::new()
        };
        let fhir = if fhir_on {
            Some(store.read(|conn| fhir_of_message(conn, id))?)
        } else {
            None
        };
        Ok((Some(stored), entries, patients, fhir))
    })
    .await?;
    let Some(stored) = stored else {
        return Err(ApiError::not_found(format!("no message {id}")));
    };
    let (quarantine_entry, findings) = match api.quarantine.as_ref() {
        Some(q) => match q.entry_of_message(MessageId(id)).await? {
            Some(entry) => {
                let detail = q.get(entry).await?;
                let findings = detail
                    .findings
                    .iter()
                    .map(|f| console::FindingView {
                        severity: f.severity.clone(),
                        path: f.path.clone(),
                        code: f.code,
                        message: f.message.clone(),
                    })
                    .collect();
                (Some(entry.0), findings)
            }
            None => (None, Vec::new()),
        },
        None => (None, Vec::new()),
    };
    let e = &stored.entry;
    let time = |t: store::UnixMicros| console::time_text(t.0);
    let mut hops = vec![
        ("Received".to_owned(), time(e.received_at)),
        ("Stored".to_owned(), time(e.stored_at)),
    ];
    // Entries are queued in the transaction that records the processing.
    if let Some(first) = entries.first() {
        hops.push(("Processed".to_owned(), first.queued.clone()));
    } else if !matches!(
        e.state,
        store::MessageState::Received | store::MessageState::Rejected
    ) {
        hops.push((format!("Processed ({})", e.state), time(e.state_changed_at)));
    }
    hops.push((format!("State {}", e.state), time(e.state_changed_at)));
    let detail = console::MessageDetail {
        row: row_of(e),
        state_reason: e.state_reason.clone(),
        version: e.version.clone(),
        raw: stored.raw.clone(),
        hops,
        destinations: entries,
        quarantine_entry,
        findings,
        patients,
        fhir,
        notice: outcome.notice,
        error: outcome.error,
    };
    Ok(html(
        StatusCode::OK,
        console::message_page(&viewer, &detail),
    ))
}

async fn reprocess(State(api): State<Api>, Path(id): Path<i64>) -> Result<Response, ApiError> {
    crate::messages::reprocess_message(&api, id).await?;
    let mut response = StatusCode::SEE_OTHER.into_response();
    if let Ok(location) = HeaderValue::from_str(&format!("/console/messages/{id}")) {
        response.headers_mut().insert(header::LOCATION, location);
    }
    Ok(response)
}

/// The detail page's resend button: the message again to one destination.
async fn resend(State(api): State<Api>, Path(id): Path<i64>, body: Bytes) -> Response {
    let result = async {
        let form = Form::parse(&body)?;
        let destination = form.required("destination", "name the destination")?;
        let entry = crate::messages::resend_to(&api, id, &destination).await?;
        Ok(format!("Queued again for {destination} (entry {entry})."))
    }
    .await;
    redirect_back(&format!("/console/messages/{id}"), result)
}

async fn acknowledge(
    State(api): State<Api>,
    principal: Principal,
    Path(name): Path<String>,
) -> Response {
    let result = async {
        let who = principal.require()?.to_owned();
        let alerts = api
            .alerts
            .as_ref()
            .ok_or_else(|| ApiError::not_found(format!("no alert is named {name:?}")))?;
        match alerts.acknowledge(&name, &who).await {
            Ok(_) => Ok(format!("{name} acknowledged.")),
            Err(alerts::AckError::Store(error)) => Err(error.into()),
            Err(error) => Err(ApiError::new(StatusCode::CONFLICT, error.to_string())),
        }
    }
    .await;
    redirect_back("/", result)
}
