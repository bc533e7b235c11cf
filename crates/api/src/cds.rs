//! CDS Hooks (<https://cds-hooks.hl7.org>): an EHR asks before it sends. Two services
//! answer the allergy-medication and duplicate-test rules against the patient's record
//! in the clinical repository, with the live rules' settings (`[rules]`: their tables,
//! windows and which rules run; [`Api::cds_rules`]).
//!
//! | route | access | what |
//! | --- | --- | --- |
//! | `GET /cds-services` | Metadata | discovery: the services, their hooks |
//! | `POST /cds-services/{id}` | PHI (audited) | `corridor-order-select` (hook `order-select`) or `corridor-order-sign` (`order-sign`): cards |
//!
//! The hook's `context.patientId` is the repository's Patient id; its record is, with
//! the patient index on, every Patient carrying that Patient's enterprise identifier
//! (each sender's), else that Patient's compartment (with the Patients merged into it). `context.draftOrders` is a
//! Bundle of MedicationRequest (checked against the active allergies) and ServiceRequest
//! (checked for a test ordered or resulted within its retesting interval); order-select
//! checks the orders `context.selections` names, order-sign all of them. A request that
//! is not JSON, names another hook, or lacks `hookInstance`, `context.patientId` or a
//! `draftOrders` Bundle is a 400 saying which.

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use rules::repository::{PatientKey, RepositoryHistory, code_of};
use rules::{
    Alert, ClinicalFacts, MedicationOrder, OrderState, PatientId, Rules, RulesConfig, Severity,
    Source, TestOrder, Timestamp,
};
use serde_json::{Value, json};
use store::rusqlite::OptionalExtension;

use crate::extract::Path;
use crate::messages::blocking;
use crate::routes::{Access, Method, Routes};
use crate::{Api, ApiError};

/// (service id, hook, title, description).
const SERVICES: &[(&str, &str, &str, &str)] = &[
    (
        "corridor-order-select",
        "order-select",
        "Allergy and duplicate-test screening (order selection)",
        "Checks the selected draft orders against the patient's active allergies (by code, ingredient and drug class) and for a test already ordered or resulted within its minimum retesting interval.",
    ),
    (
        "corridor-order-sign",
        "order-sign",
        "Allergy and duplicate-test screening (order signing)",
        "Checks every draft order about to be signed against the patient's active allergies (by code, ingredient and drug class) and for a test already ordered or resulted within its minimum retesting interval.",
    ),
];

pub(crate) fn routes() -> Routes {
    Routes::new()
        .add(Method::Get, "/cds-services", Access::Metadata, discovery)
        .add(Method::Post, "/cds-services/{id}", Access::Phi, call)
}

async fn discovery() -> Json<Value> {
    let services: Vec<Value> = SERVICES
        .iter()
        .map(|(id, hook, title, description)| {
            json!({ "id": id, "hook": hook, "title": title, "description": description })
        })
        .collect();
    Json(json!({ "services": services }))
}

fn bad(text: impl Into<String>) -> ApiError {
    ApiError::bad_request(text)
}

/// What the request asks: the patient and the orders to check.
struct Asked {
    patient: String,
    facts: ClinicalFacts,
}

/// Reads and checks a hook request for service `hook`.
fn read_request(hook: &str, body: &[u8], now: Timestamp) -> Result<Asked, ApiError> {
    let request: Value =
        serde_json::from_slice(body).map_err(|e| bad(format!("the request is not JSON: {e}")))?;
    if !request.is_object() {
        return Err(bad("the request must be a JSON object"));
    }
    match request["hook"].as_str() {
        Some(h) if h == hook => {}
        Some(other) => {
            return Err(bad(format!(
                "this service answers the {hook} hook, not {other:?}"
            )));
        }
        None => return Err(bad("hook is missing (a string naming the hook)")),
    }
    if request["hookInstance"].as_str().is_none_or(str::is_empty) {
        return Err(bad("hookInstance is missing (a UUID for this call)"));
    }
    let context = &request["context"];
    if !context.is_object() {
        return Err(bad("context is missing (an object)"));
    }
    let patient = context["patientId"]
        .as_str()
        .filter(|p| !p.is_empty() && !p.contains('/'))
        .ok_or_else(|| bad("context.patientId is missing or not a Patient id"))?
        .to_owned();
    let draft = &context["draftOrders"];
    if draft["resourceType"] != "Bundle" {
        return Err(bad("context.draftOrders must be a FHIR Bundle"));
    }
    let entries = draft["entry"].as_array().cloned().unwrap_or_default();
    let selections: Option<Vec<String>> = if hook == "order-select" {
        let list = context["selections"]
            .as_array()
            .ok_or_else(|| bad("context.selections is missing (the selected orders' Type/id)"))?;
        Some(
            list.iter()
                .map(|s| {
                    s.as_str()
                        .map(str::to_owned)
                        .ok_or_else(|| bad("context.selections holds a value that is not a string"))
                })
                .collect::<Result<_, _>>()?,
        )
    } else {
        None
    };
    let mut facts = ClinicalFacts::default();
    for (i, entry) in entries.iter().enumerate() {
        let resource = &entry["resource"];
        let kind = resource["resourceType"].as_str().unwrap_or_default();
        let id = resource["id"].as_str().unwrap_or_default();
        let reference = format!("{kind}/{id}");
        if let Some(selected) = &selections
            && !selected.contains(&reference)
        {
            continue;
        }
        let source = Source {
            control_id: "draftOrders".to_owned(),
            segment: reference.clone(),
            field: format!("entry[{i}]"),
        };
        match kind {
            "MedicationRequest" => {
                let code = code_of(&resource["medicationCodeableConcept"]);
                if code.code.is_empty() && code.text.is_empty() {
                    return Err(bad(format!(
                        "draftOrders entry[{i}] ({reference}) has no medicationCodeableConcept"
                    )));
                }
                facts.medication_orders.push(MedicationOrder {
                    code,
                    ingredients: Vec::new(),
                    order_control: None,
                    time: Some(now),
                    source,
                });
            }
            "ServiceRequest" => {
                let code = code_of(&resource["code"]);
                facts.test_orders.push(TestOrder {
                    code,
                    time: Some(now),
                    placer_order_number: None,
                    state: OrderState::Ordered,
                    source,
                });
            }
            "" => {
                return Err(bad(format!(
                    "draftOrders entry[{i}] has no resource with a resourceType"
                )));
            }
            _ => {}
        }
    }
    Ok(Asked { patient, facts })
}

/// The rules CDS Hooks answers for, from the live rules' settings (`[rules]`): its
/// allergy-medication and duplicate-test rules, with their tables and windows, each
/// only if `config` runs it. The other rules (and custom rules, which read an HL7
/// message) do not answer hooks.
pub fn screening_rules(config: &RulesConfig) -> Result<Rules, rules::ConfigError> {
    let mut config = config.clone();
    config.critical_values.enabled = false;
    config.delta_check.enabled = false;
    config.sepsis_screen.enabled = false;
    config.custom.clear();
    Rules::new(&config)
}

/// The rules the services answer with: `[rules]`' when the engine gave them, else the
/// defaults.
fn screening(api: &Api) -> Result<std::sync::Arc<Rules>, ApiError> {
    match &api.cds_rules {
        Some(rules) => Ok(rules.clone()),
        None => screening_rules(&RulesConfig::default())
            .map(std::sync::Arc::new)
            .map_err(|e| ApiError::internal(e.to_string())),
    }
}

fn card(alert: &Alert) -> Value {
    let indicator = match alert.severity {
        Severity::Critical => "critical",
        Severity::Warning => "warning",
        Severity::Info => "info",
    };
    // The specification limits a summary to 140 characters.
    let summary: String = alert.summary.chars().take(140).collect();
    let detail: Vec<String> = alert
        .evidence
        .iter()
        .map(|e| format!("- {}", rules::render::describe(e)))
        .collect();
    json!({
        "summary": summary,
        "indicator": indicator,
        "detail": format!("{}\n\nEvidence:\n{}", alert.summary, detail.join("\n")),
        "source": { "label": "Corridor clinical rules", "topic": {
            "system": "urn:corridor:rules", "code": alert.rule.as_str(),
            "display": format!("{} v{}", alert.rule.as_str(), alert.rule_version)
        } },
    })
}

async fn call(
    State(api): State<Api>,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    let Some((_, hook, _, _)) = SERVICES.iter().find(|(s, ..)| *s == id) else {
        return Err(ApiError::not_found(format!(
            "there is no CDS service {id:?}"
        )));
    };
    let now = Timestamp::from_unix_seconds(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX)),
    );
    let asked = read_request(hook, &body, now)?;
    let rules = screening(&api)?;
    let store = api.store.clone();
    let enterprise_system = api
        .patient_index
        .as_ref()
        .map(|index| index.config().enterprise_system.clone());
    let cards = blocking(move || {
        let since = now.minus(rules::Window::days(31));
        let history = store.read(|conn| {
            let exists = conn
                .prepare_cached(
                    "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'fhir_resources'",
                )?
                .exists([])?;
            if !exists {
                return Ok(None);
            }
            // With the patient index on, the record is every Patient of the Patient's
            // enterprise id (each sender's); else the Patient's own compartment.
            let enterprise = match &enterprise_system {
                Some(system) => conn
                    .prepare_cached(
                        "SELECT code FROM fhir_token WHERE type = 'Patient' AND id = ?1 \
                         AND param = 'identifier' AND system = ?2",
                    )?
                    .query_row(store::rusqlite::params![asked.patient, system], |r| {
                        r.get::<_, String>(0)
                    })
                    .optional()?
                    .map(|id| PatientKey::Enterprise {
                        system: system.clone(),
                        id,
                    }),
                None => None,
            };
            let key = enterprise.unwrap_or_else(|| PatientKey::Patient(asked.patient.clone()));
            RepositoryHistory::load(conn, &key, Some(&asked.patient), -1, since).map(Some)
        })?;
        let Some(history) = history else {
            return Err(ApiError::not_found(
                "the clinical repository is not enabled",
            ));
        };
        let patient = PatientId(format!("Patient/{}", asked.patient));
        let alerts = rules.evaluate(&patient, &asked.facts, &history, now);
        Ok(alerts.iter().map(card).collect::<Vec<_>>())
    })
    .await?;
    Ok(Json(json!({ "cards": cards })))
}
