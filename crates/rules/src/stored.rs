//! Stored alerts: the component schema `rules` in the store (`corridor.db`),
//! written by the engine in the transaction that records the triggering
//! message processed, read by the API (`GET /api/rules/alerts`) and by the
//! engine's suppression (the same condition does not fire again within its
//! window, across restarts).
//!
//! # SCHEMA
//!
//! `rules_alerts`, one row per alert that fired:
//!
//! | column | type | meaning |
//! | --- | --- | --- |
//! | `id` | INTEGER | The alert's id (`/api/rules/alerts/{id}`). |
//! | `message_id` | INTEGER | The journal id of the message that triggered it. |
//! | `seq` | INTEGER | Its place among that message's alerts; unique with `message_id`. |
//! | `channel` | TEXT | The channel that received the message. |
//! | `rule`, `rule_version` | TEXT, INTEGER | Which rule fired (`critical-value`, ...) and its version. |
//! | `severity` | TEXT | `info`, `warning` or `critical`. |
//! | `patient` | TEXT | The enterprise patient id (or `Patient/{id}` of the repository without the patient index). |
//! | `key` | TEXT | The condition (`2823-3:high`, `sirs-lactate`, ...), for suppression. |
//! | `summary` | TEXT | What the clinician reads: test, value, threshold; drug and allergen. |
//! | `evidence` | TEXT | The facts that made it fire, as JSON (values, codes, times, sources). |
//! | `at` | INTEGER | When the condition was seen (seconds since the epoch, UTC). |
//! | `created_at` | INTEGER | When it was stored (µs). |
//! | `delivery_message` | INTEGER NULL | The journal id of the alert's own message in the alerts channel (`[rules] destinations`), whose queue rows are its delivery; NULL without destinations. |
//! | `resolved_at`, `resolved_by`, `resolution` | INTEGER NULL, TEXT NULL, TEXT NULL | Set once by `POST /api/rules/alerts/{id}/resolve`. |
//!
//! ```sql
//! -- Open alerts by rule.
//! SELECT rule, COUNT(*) FROM rules_alerts WHERE resolved_at IS NULL GROUP BY rule;
//! ```

use serde::Serialize;
use store::rusqlite::{self, Connection, OptionalExtension, params};
use store::{Migration, Store, UnixMicros};

use crate::alert::{Alert, AlertKind, Severity};
use crate::facts::PatientId;
use crate::time::Timestamp;

/// The component name in `component_schema`.
pub const COMPONENT: &str = "rules";

/// The alerts' schema history, oldest first.
pub const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        description: "rules: stored alerts",
        sql: r#"
    CREATE TABLE rules_alerts (
        id               INTEGER PRIMARY KEY AUTOINCREMENT,
        message_id       INTEGER NOT NULL,
        seq              INTEGER NOT NULL,
        channel          TEXT    NOT NULL,
        rule             TEXT    NOT NULL,
        rule_version     INTEGER NOT NULL,
        severity         TEXT    NOT NULL,
        patient          TEXT    NOT NULL,
        key              TEXT    NOT NULL,
        summary          TEXT    NOT NULL,
        evidence         TEXT    NOT NULL,
        at               INTEGER NOT NULL,
        created_at       INTEGER NOT NULL,
        delivery_message INTEGER,
        resolved_at      INTEGER,
        resolved_by      TEXT,
        resolution       TEXT,
        UNIQUE (message_id, seq)
    );
    CREATE INDEX rules_alerts_by_patient ON rules_alerts (patient, at);
    "#,
    },
    Migration {
        version: 2,
        description: "rules: alerts by their delivery message",
        // The alerts channel finds the alert behind each message it routes to a `fhir`
        // or JSON webhook destination: without this, one scan of every alert each.
        sql: r#"
    CREATE INDEX rules_alerts_by_delivery ON rules_alerts (delivery_message)
        WHERE delivery_message IS NOT NULL;
    "#,
    },
];

/// Creates or upgrades the alerts' table (the engine does at start).
pub async fn migrate(store: &Store) -> store::Result<u32> {
    store.migrate_component(COMPONENT, MIGRATIONS).await
}

/// [`migrate`] for callers outside an async runtime.
pub fn migrate_blocking(store: &Store) -> store::Result<u32> {
    store.migrate_component(COMPONENT, MIGRATIONS).wait()
}

/// An alert to store, with the message that triggered it.
pub struct NewAlert<'a> {
    pub message_id: i64,
    /// Its place among the message's alerts.
    pub seq: u32,
    pub channel: &'a str,
    pub alert: &'a Alert,
    /// The alert's own message in the alerts channel, when it has destinations.
    pub delivery_message: Option<i64>,
}

/// Stores one alert; the same message and place stored before (a message
/// processed again) is left as it is. Hands back the alert's id.
pub fn insert_in(conn: &Connection, new: &NewAlert<'_>) -> store::Result<i64> {
    let alert = new.alert;
    let evidence = serde_json::to_string(&alert.evidence)
        .map_err(|e| store::Error::Refused(format!("an alert's evidence is not JSON: {e}")))?;
    conn.prepare_cached(
        "INSERT INTO rules_alerts (message_id, seq, channel, rule, rule_version, severity, \
         patient, key, summary, evidence, at, created_at, delivery_message) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13) \
         ON CONFLICT (message_id, seq) DO NOTHING",
    )?
    .execute(params![
        new.message_id,
        new.seq,
        new.channel,
        alert.rule.as_str(),
        alert.rule_version,
        alert.severity.as_str(),
        alert.patient.0,
        alert.key,
        alert.summary,
        evidence,
        alert.at.unix_seconds(),
        UnixMicros::now().0,
        new.delivery_message,
    ])?;
    let id = conn
        .prepare_cached("SELECT id FROM rules_alerts WHERE message_id = ?1 AND seq = ?2")?
        .query_row(params![new.message_id, new.seq], |r| r.get(0))?;
    Ok(id)
}

/// The patient's alerts seen at or after `since`, without their evidence:
/// what suppression compares a new alert with. Resolved alerts count (the
/// condition was seen and handled).
pub fn recent_in(
    conn: &Connection,
    patient: &PatientId,
    since: Timestamp,
) -> store::Result<Vec<Alert>> {
    let mut stmt = conn.prepare_cached(
        "SELECT rule, rule_version, severity, key, summary, at FROM rules_alerts \
         WHERE patient = ?1 AND at >= ?2 ORDER BY id",
    )?;
    let rows = stmt.query_map(params![patient.0, since.unix_seconds()], |r| {
        Ok((
            r.get::<_, String>(0)?,
            r.get::<_, u32>(1)?,
            r.get::<_, String>(2)?,
            r.get::<_, String>(3)?,
            r.get::<_, String>(4)?,
            r.get::<_, i64>(5)?,
        ))
    })?;
    let mut alerts = Vec::new();
    for row in rows {
        let (rule, rule_version, severity, key, summary, at) = row?;
        // A rule this version does not know (a newer Corridor's) suppresses nothing.
        let Some(rule) = AlertKind::parse_stored(&rule) else {
            continue;
        };
        alerts.push(Alert {
            rule,
            rule_version,
            severity: Severity::parse(&severity).unwrap_or(Severity::Warning),
            patient: patient.clone(),
            key,
            summary,
            evidence: Vec::new(),
            at: Timestamp::from_unix_seconds(at),
        });
    }
    Ok(alerts)
}

/// One stored alert, as the API lists it.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct StoredAlert {
    pub id: i64,
    pub message_id: i64,
    pub channel: String,
    pub rule: String,
    pub rule_version: u32,
    pub severity: String,
    pub patient: String,
    pub key: String,
    pub summary: String,
    pub evidence: serde_json::Value,
    /// When the condition was seen, as an HL7 `DTM` in UTC.
    pub at: String,
    pub created_at: i64,
    /// Its delivery: `none` (no destinations), else the journal state of the
    /// alert's message in the alerts channel (`received` until it is queued
    /// for the destinations, `processed` once it is).
    pub delivery: String,
    pub delivery_message: Option<i64>,
    pub resolved_at: Option<i64>,
    pub resolved_by: Option<String>,
    pub resolution: Option<String>,
}

/// Which alerts to list.
#[derive(Clone, Debug, Default)]
pub struct AlertFilter {
    pub patient: Option<String>,
    pub rule: Option<String>,
    /// Only alerts not resolved yet.
    pub open: bool,
    /// Only alerts with an id below this (paging back).
    pub before: Option<i64>,
}

/// The newest alerts matching `filter`, at most `limit`.
pub fn list_in(
    conn: &Connection,
    filter: &AlertFilter,
    limit: usize,
) -> store::Result<Vec<StoredAlert>> {
    let mut stmt = conn.prepare_cached(
        "SELECT a.id, a.message_id, a.channel, a.rule, a.rule_version, a.severity, a.patient, \
         a.key, a.summary, a.evidence, a.at, a.created_at, a.delivery_message, j.state, \
         a.resolved_at, a.resolved_by, a.resolution \
         FROM rules_alerts a LEFT JOIN journal j ON j.id = a.delivery_message \
         WHERE (?1 IS NULL OR a.patient = ?1) AND (?2 IS NULL OR a.rule = ?2) \
         AND (?3 = 0 OR a.resolved_at IS NULL) AND (?4 IS NULL OR a.id < ?4) \
         ORDER BY a.id DESC LIMIT ?5",
    )?;
    let rows = stmt.query_map(
        params![
            filter.patient,
            filter.rule,
            filter.open,
            filter.before,
            i64::try_from(limit).unwrap_or(i64::MAX)
        ],
        |r| {
            let evidence: String = r.get(9)?;
            let delivery_message: Option<i64> = r.get(12)?;
            let state: Option<String> = r.get(13)?;
            Ok(StoredAlert {
                id: r.get(0)?,
                message_id: r.get(1)?,
                channel: r.get(2)?,
                rule: r.get(3)?,
                rule_version: r.get(4)?,
                severity: r.get(5)?,
                patient: r.get(6)?,
                key: r.get(7)?,
                summary: r.get(8)?,
                evidence: serde_json::from_str(&evidence).unwrap_or(serde_json::Value::Null),
                at: Timestamp::from_unix_seconds(r.get(10)?).to_hl7(),
                created_at: r.get(11)?,
                delivery: match (delivery_message, state) {
                    (None, _) => "none".to_owned(),
                    (Some(_), Some(state)) => state,
                    (Some(_), None) => "removed".to_owned(),
                },
                delivery_message,
                resolved_at: r.get(14)?,
                resolved_by: r.get(15)?,
                resolution: r.get(16)?,
            })
        },
    )?;
    Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
}

/// The alert whose delivery message (in the alerts channel) is `message`.
pub fn by_delivery_message_in(
    conn: &Connection,
    message: i64,
) -> store::Result<Option<StoredAlert>> {
    let id: Option<i64> = conn
        .prepare_cached("SELECT id FROM rules_alerts WHERE delivery_message = ?1")?
        .query_row([message], |r| r.get(0))
        .optional()?;
    let Some(id) = id else {
        return Ok(None);
    };
    let filter = AlertFilter {
        before: Some(id + 1),
        ..AlertFilter::default()
    };
    Ok(list_in(conn, &filter, 1)?.into_iter().find(|a| a.id == id))
}

/// The alert as a FHIR R4 transaction Bundle holding one `DetectedIssue` (a PUT, so a
/// resend does not add a second): code the rule, severity `high` (critical),
/// `moderate` (warning) or `low` (information), the patient by the enterprise
/// identifier under `patient_system` (a logical reference), the condition's time,
/// the summary and evidence as `detail`.
pub fn detected_issue_bundle(alert: &StoredAlert, patient_system: &str) -> serde_json::Value {
    let severity = match alert.severity.as_str() {
        "critical" => "high",
        "warning" => "moderate",
        _ => "low",
    };
    let identified = Timestamp::parse_hl7(&alert.at)
        .map(|t| datetime_iso(t.unix_seconds()))
        .unwrap_or_default();
    let patient = match alert.patient.strip_prefix("Patient/") {
        Some(id) => serde_json::json!({ "reference": format!("Patient/{id}") }),
        None => serde_json::json!({
            "identifier": { "system": patient_system, "value": alert.patient }
        }),
    };
    let id = format!("corridor-alert-{}", alert.id);
    serde_json::json!({
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [ {
            "fullUrl": format!("DetectedIssue/{id}"),
            "resource": {
                "resourceType": "DetectedIssue",
                "id": id,
                "identifier": [ { "system": "urn:corridor:rules:alert", "value": alert.id.to_string() } ],
                "status": "final",
                "code": {
                    "coding": [ { "system": "urn:corridor:rules", "code": alert.rule,
                        "display": format!("{} v{}", alert.rule, alert.rule_version) } ],
                    "text": alert.summary,
                },
                "severity": severity,
                "patient": patient,
                "identifiedDateTime": identified,
                "detail": format!("{}\n\nEvidence: {}", alert.summary, alert.evidence),
            },
            "request": { "method": "PUT", "url": format!("DetectedIssue/{id}") },
        } ],
    })
}

/// The alert as a webhook receives it (the JSON body of `[rules]`' `http`
/// destinations):
///
/// ```json
/// { "id": 7, "rule": "critical-value", "version": 1, "severity": "critical",
///   "patient": { "system": "urn:corridor:enterprise-id", "id": "E42" },
///   "key": "2823-3:high", "summary": "Critical high result: ...",
///   "evidence": [ ... ], "at": "2024-01-02T10:15:00Z", "created_at": "2024-01-02T10:30:01.123456Z",
///   "message_id": 17, "channel": "lab", "resolved_at": null }
/// ```
///
/// `patient.system` is absent for a repository Patient (`Patient/{id}`, without the
/// patient index); `at` is when the condition was seen, `created_at` when the alert
/// was stored.
pub fn alert_json(alert: &StoredAlert, patient_system: &str) -> serde_json::Value {
    let at = Timestamp::parse_hl7(&alert.at)
        .map(|t| datetime_iso(t.unix_seconds()))
        .unwrap_or_default();
    let patient = match alert.patient.strip_prefix("Patient/") {
        Some(_) => serde_json::json!({ "id": alert.patient }),
        None => serde_json::json!({ "system": patient_system, "id": alert.patient }),
    };
    serde_json::json!({
        "id": alert.id,
        "rule": alert.rule,
        "version": alert.rule_version,
        "severity": alert.severity,
        "patient": patient,
        "key": alert.key,
        "summary": alert.summary,
        "evidence": alert.evidence,
        "at": at,
        "created_at": datetime::rfc3339::format_micros(alert.created_at),
        "message_id": alert.message_id,
        "channel": alert.channel,
        "resolved_at": alert.resolved_at.map(datetime::rfc3339::format_micros),
    })
}

/// `YYYY-MM-DDThh:mm:ssZ` for seconds since the epoch.
fn datetime_iso(seconds: i64) -> String {
    let dtm = datetime::hl7::format_dtm_utc(seconds);
    // YYYYMMDDHHMMSS+0000
    if dtm.len() < 14 {
        return String::new();
    }
    format!(
        "{}-{}-{}T{}:{}:{}Z",
        &dtm[0..4],
        &dtm[4..6],
        &dtm[6..8],
        &dtm[8..10],
        &dtm[10..12],
        &dtm[12..14]
    )
}

/// What resolving an alert did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Resolved {
    /// It is resolved now.
    Resolved,
    /// It was resolved before; nothing changed.
    Already,
    /// There is no alert with that id.
    NotFound,
}

/// Marks alert `id` resolved by `by`, with an optional note.
pub fn resolve_in(
    conn: &Connection,
    id: i64,
    by: &str,
    note: Option<&str>,
) -> store::Result<Resolved> {
    let current: Option<Option<i64>> = conn
        .prepare_cached("SELECT resolved_at FROM rules_alerts WHERE id = ?1")?
        .query_row([id], |r| r.get(0))
        .optional()?;
    match current {
        None => Ok(Resolved::NotFound),
        Some(Some(_)) => Ok(Resolved::Already),
        Some(None) => {
            conn.prepare_cached(
                "UPDATE rules_alerts SET resolved_at = ?2, resolved_by = ?3, resolution = ?4 \
                 WHERE id = ?1",
            )?
            .execute(params![id, UnixMicros::now().0, by, note])?;
            Ok(Resolved::Resolved)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{InMemoryHistory, Rules, RulesConfig, extract};

    /// The alerts channel asks for the alert of each message it routes to a `fhir` or
    /// JSON destination: an index search, not a scan of every stored alert.
    #[test]
    fn the_alert_of_a_delivery_message_is_found_through_an_index() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        migrate_blocking(&store).unwrap();
        let plan: Vec<String> = store
            .read(|conn| {
                let mut stmt = conn.prepare(
                    "EXPLAIN QUERY PLAN SELECT id FROM rules_alerts WHERE delivery_message = ?1",
                )?;
                let rows = stmt.query_map([7], |r| r.get::<_, String>(3))?;
                Ok(rows.collect::<Result<Vec<_>, _>>()?)
            })
            .unwrap();
        assert!(
            plan.iter()
                .any(|step| step.contains("USING") && step.contains("rules_alerts_by_delivery")),
            "{plan:?}"
        );
        assert!(
            !plan.iter().any(|step| step.starts_with("SCAN")),
            "{plan:?}"
        );
    }

    fn potassium_alert() -> Alert {
        let bytes = b"MSH|^~\\&|LAB|HOSP|EHR|HOSP|20240102103000||ORU^R01|MSG1|P|2.5.1\r\
              PID|1||123^^^HOSP^MR||DOE^JANE\r\
              OBR|1||F1|2823-3^Potassium^LN|||20240102101500\r\
              OBX|1|NM|2823-3^Potassium^LN||6.4|mmol/L|3.5-5.1|HH|||F\r";
        let message = hl7v2::Message::parse(bytes).unwrap();
        let now = Timestamp::parse_hl7("20240102103001").unwrap();
        Rules::new(&RulesConfig::default())
            .unwrap()
            .evaluate(
                &PatientId("E42".into()),
                &extract(&message),
                &InMemoryHistory::new(),
                now,
            )
            .remove(0)
    }

    #[test]
    fn a_custom_rule_s_alert_is_stored_with_its_name_and_version() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        migrate_blocking(&store).unwrap();
        let alert = Alert {
            rule: AlertKind::Custom(crate::custom::intern("low-k-digoxin")),
            rule_version: 0xdead_beef,
            severity: Severity::Critical,
            patient: PatientId("E42".into()),
            key: "low-k".into(),
            summary: "Potassium 3.2".into(),
            evidence: vec![crate::Evidence::Custom(serde_json::json!({ "k": 3.2 }))],
            at: Timestamp::parse_hl7("20240102103000").unwrap(),
        };
        let copy = alert.clone();
        store
            .write_blocking(move |conn| {
                insert_in(
                    conn,
                    &NewAlert {
                        message_id: 8,
                        seq: 0,
                        channel: "lab",
                        alert: &copy,
                        delivery_message: Some(100),
                    },
                )
            })
            .unwrap();
        let recent = store
            .read(|c| recent_in(c, &alert.patient, alert.at.minus(crate::Window::days(1))))
            .unwrap();
        assert_eq!(recent[0].rule, alert.rule);
        assert_eq!(recent[0].rule_version, 0xdead_beef);
        let stored = store
            .read(|c| by_delivery_message_in(c, 100))
            .unwrap()
            .unwrap();
        assert_eq!(stored.rule, "low-k-digoxin");
        assert_eq!(stored.rule_version, 0xdead_beef);
        assert_eq!(
            stored.evidence,
            serde_json::json!([{ "Custom": { "k": 3.2 } }])
        );
        let json = alert_json(&stored, "urn:example:eid");
        assert_eq!(json["rule"], "low-k-digoxin");
        assert_eq!(json["version"], 0xdead_beef_u32);
        assert_eq!(json["severity"], "critical");
        assert_eq!(
            json["patient"],
            serde_json::json!({ "system": "urn:example:eid", "id": "E42" })
        );
        assert_eq!(json["at"], "2024-01-02T10:30:00Z");
        assert_eq!(json["evidence"], stored.evidence);
        assert!(json["created_at"].as_str().unwrap().ends_with('Z'));
    }

    #[test]
    fn stored_alerts_suppress_resolve_once_and_become_a_detected_issue() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        migrate_blocking(&store).unwrap();
        let alert = potassium_alert();
        let copy = alert.clone();
        let id = store
            .write_blocking(move |conn| {
                let new = NewAlert {
                    message_id: 7,
                    seq: 0,
                    channel: "lab",
                    alert: &copy,
                    delivery_message: Some(99),
                };
                let first = insert_in(conn, &new)?;
                // The same message processed again stores nothing new.
                assert_eq!(insert_in(conn, &new)?, first);
                Ok(first)
            })
            .unwrap();
        let since = alert.at.minus(crate::Window::days(1));
        let recent = store
            .read(|c| recent_in(c, &PatientId("E42".into()), since))
            .unwrap();
        assert_eq!(recent.len(), 1);
        assert_eq!(
            (recent[0].rule, recent[0].key.as_str()),
            (alert.rule, "2823-3:high")
        );
        assert!(
            store
                .read(|c| recent_in(c, &PatientId("E43".into()), since))
                .unwrap()
                .is_empty()
        );

        let stored = store
            .read(|c| by_delivery_message_in(c, 99))
            .unwrap()
            .unwrap();
        assert_eq!(stored.id, id);
        assert_eq!(stored.evidence[0]["Observation"]["code"]["code"], "2823-3");
        let bundle = detected_issue_bundle(&stored, "urn:corridor:enterprise");
        let issue = &bundle["entry"][0]["resource"];
        assert_eq!(bundle["type"], "transaction");
        assert_eq!(issue["resourceType"], "DetectedIssue");
        assert_eq!(issue["severity"], "high");
        assert_eq!(issue["code"]["coding"][0]["code"], "critical-value");
        assert_eq!(issue["patient"]["identifier"]["value"], "E42");
        assert_eq!(issue["identifiedDateTime"], "2024-01-02T10:15:00Z");
        assert_eq!(bundle["entry"][0]["request"]["method"], "PUT");

        let resolve = |note: Option<&'static str>| {
            store
                .write_blocking(move |c| resolve_in(c, id, "nurse", note))
                .unwrap()
        };
        assert_eq!(resolve(Some("called the ward")), Resolved::Resolved);
        assert_eq!(resolve(None), Resolved::Already);
        assert_eq!(
            store
                .write_blocking(|c| resolve_in(c, 12345, "nurse", None))
                .unwrap(),
            Resolved::NotFound
        );
        let open = AlertFilter {
            open: true,
            ..AlertFilter::default()
        };
        assert!(store.read(|c| list_in(c, &open, 10)).unwrap().is_empty());
        let all = store
            .read(|c| list_in(c, &AlertFilter::default(), 10))
            .unwrap();
        assert_eq!(all[0].resolved_by.as_deref(), Some("nurse"));
        assert_eq!(all[0].resolution.as_deref(), Some("called the ward"));
        // Its delivery message is not in a journal here.
        assert_eq!(all[0].delivery, "removed");
    }
}
