//! Reading the repository: read, vread, history, search and `$everything`.

use rusqlite::types::Value as SqlValue;
use rusqlite::{Connection, OptionalExtension, params, params_from_iter};
use serde_json::Value;

use crate::date;
use crate::params::{self, Kind};

/// One stored version of a resource.
#[derive(Clone, Debug, PartialEq)]
pub struct Version {
    pub version: i64,
    pub last_updated: String,
    /// The journal id of the message that wrote it.
    pub message_id: Option<i64>,
    /// The resource as stored, with `meta.versionId` and `meta.lastUpdated`.
    pub resource: Value,
}

/// Why a search was refused.
#[derive(Debug, thiserror::Error)]
pub enum SearchError {
    #[error("resource type {0:?} is not searchable here")]
    UnknownType(String),
    #[error("search parameter {name:?}: {reason}")]
    BadParameter { name: String, reason: String },
    #[error(transparent)]
    Store(#[from] store::Error),
}

impl From<rusqlite::Error> for SearchError {
    fn from(e: rusqlite::Error) -> Self {
        SearchError::Store(e.into())
    }
}

/// A page of search results.
#[derive(Clone, Debug, PartialEq)]
pub struct Page {
    /// Matches in all.
    pub total: u64,
    /// The resources of this page, ordered by id.
    pub resources: Vec<Value>,
}

fn parse_content(text: &str) -> store::Result<Value> {
    serde_json::from_str(text)
        .map_err(|e| store::Error::Refused(format!("a stored FHIR resource is not JSON: {e}")))
}

/// The current version of `Type/id`.
pub fn read_in(conn: &Connection, resource_type: &str, id: &str) -> store::Result<Option<Value>> {
    let text: Option<String> = conn
        .prepare_cached(
            "SELECT v.content FROM fhir_resources r JOIN fhir_versions v \
             ON v.type = r.type AND v.id = r.id AND v.version = r.version \
             WHERE r.type = ?1 AND r.id = ?2",
        )?
        .query_row(params![resource_type, id], |row| row.get(0))
        .optional()?;
    text.as_deref().map(parse_content).transpose()
}

/// Every version of `Type/id`, newest first (empty when it does not exist).
pub fn history_in(conn: &Connection, resource_type: &str, id: &str) -> store::Result<Vec<Version>> {
    let mut statement = conn.prepare_cached(
        "SELECT version, last_updated, message_id, content FROM fhir_versions \
         WHERE type = ?1 AND id = ?2 ORDER BY version DESC",
    )?;
    let rows = statement.query_map(params![resource_type, id], |row| {
        Ok((
            row.get::<_, i64>(0)?,
            row.get::<_, String>(1)?,
            row.get::<_, Option<i64>>(2)?,
            row.get::<_, String>(3)?,
        ))
    })?;
    let mut versions = Vec::new();
    for row in rows {
        let (version, last_updated, message_id, content) = row?;
        versions.push(Version {
            version,
            last_updated,
            message_id,
            resource: parse_content(&content)?,
        });
    }
    Ok(versions)
}

/// One version of `Type/id`.
pub fn vread_in(
    conn: &Connection,
    resource_type: &str,
    id: &str,
    version: i64,
) -> store::Result<Option<Value>> {
    let text: Option<String> = conn
        .prepare_cached(
            "SELECT content FROM fhir_versions WHERE type = ?1 AND id = ?2 AND version = ?3",
        )?
        .query_row(params![resource_type, id, version], |row| row.get(0))
        .optional()?;
    text.as_deref().map(parse_content).transpose()
}

/// The Patient ids whose resources belong to `patient`'s compartment: itself and every
/// Patient merged into it (directly or through other merges).
const COMPARTMENT: &str = "WITH RECURSIVE c(id) AS (SELECT ? UNION \
     SELECT m.merged FROM fhir_merges m JOIN c ON m.survivor = c.id) SELECT id FROM c";

/// The last path segment of a reference value (`Patient/1`, a full URL or a bare id).
fn reference_id(value: &str) -> &str {
    value.rsplit('/').next().unwrap_or(value)
}

/// Searches `resource_type` with `(name, value)` pairs (`name` may carry a modifier,
/// `value` may list alternatives separated by commas). Paging is `count` from `offset`.
pub fn search_in(
    conn: &Connection,
    resource_type: &str,
    query: &[(String, String)],
    count: usize,
    offset: usize,
) -> Result<Page, SearchError> {
    let params = params::params_of(resource_type)
        .ok_or_else(|| SearchError::UnknownType(resource_type.to_owned()))?;
    let mut conditions = String::from("r.type = ?");
    let mut args: Vec<SqlValue> = vec![resource_type.to_owned().into()];
    for (raw_name, raw_value) in query {
        let bad = |reason: &str| SearchError::BadParameter {
            name: raw_name.clone(),
            reason: reason.to_owned(),
        };
        let (name, modifier) = match raw_name.split_once(':') {
            Some((n, m)) => (n, Some(m)),
            None => (raw_name.as_str(), None),
        };
        if raw_value.trim().is_empty() {
            return Err(bad("has no value"));
        }
        let mut alternatives = Vec::new();
        if name == "_id" {
            if modifier.is_some() {
                return Err(bad("takes no modifier"));
            }
            for value in raw_value.split(',') {
                alternatives.push("r.id = ?".to_owned());
                args.push(value.trim().to_owned().into());
            }
            conditions.push_str(&format!(" AND ({})", alternatives.join(" OR ")));
            continue;
        }
        let param = params.iter().find(|p| p.name == name).ok_or_else(|| {
            bad(&format!(
                "is not a search parameter of {resource_type} here"
            ))
        })?;
        let exact = match (param.kind, modifier) {
            (_, None) => false,
            (Kind::String, Some("exact")) => true,
            (_, Some(m)) => return Err(bad(&format!("the modifier :{m} is not supported"))),
        };
        for value in raw_value.split(',') {
            let value = value.trim();
            match param.kind {
                Kind::Token => {
                    let mut sql = String::from(
                        "r.id IN (SELECT id FROM fhir_token WHERE type = ? AND param = ?",
                    );
                    args.push(resource_type.to_owned().into());
                    args.push(param.name.to_owned().into());
                    match value.split_once('|') {
                        Some((system, "")) => {
                            sql.push_str(" AND system = ?");
                            args.push(system.to_owned().into());
                        }
                        Some((system, code)) => {
                            sql.push_str(" AND code = ? AND system = ?");
                            args.push(code.to_owned().into());
                            args.push(system.to_owned().into());
                        }
                        None => {
                            sql.push_str(" AND code = ?");
                            args.push(value.to_owned().into());
                        }
                    }
                    sql.push(')');
                    alternatives.push(sql);
                }
                Kind::String => {
                    let text = params::normalize(value);
                    if exact {
                        alternatives.push(
                            "r.id IN (SELECT id FROM fhir_string WHERE type = ? AND param = ? AND value = ?)".to_owned(),
                        );
                        args.push(resource_type.to_owned().into());
                        args.push(param.name.to_owned().into());
                        args.push(text.into());
                    } else {
                        alternatives.push(
                            "r.id IN (SELECT id FROM fhir_string WHERE type = ? AND param = ? AND value >= ? AND value < ?)".to_owned(),
                        );
                        args.push(resource_type.to_owned().into());
                        args.push(param.name.to_owned().into());
                        args.push(text.clone().into());
                        args.push(format!("{text}\u{10FFFF}").into());
                    }
                }
                Kind::Date => {
                    let (prefix, rest) = match value.get(..2) {
                        Some(p) if p.bytes().all(|b| b.is_ascii_alphabetic()) => (p, &value[2..]),
                        _ => ("eq", value),
                    };
                    let range = date::parse(rest).ok_or_else(|| {
                        bad(&format!(
                            "{rest:?} is not a date (YYYY, YYYY-MM, YYYY-MM-DD or a dateTime)"
                        ))
                    })?;
                    let (test, bounds): (&str, Vec<i64>) = match prefix {
                        "eq" => ("lo >= ? AND hi <= ?", vec![range.lo, range.hi]),
                        "ge" => ("hi >= ?", vec![range.lo]),
                        "le" => ("lo <= ?", vec![range.hi]),
                        "gt" => ("hi > ?", vec![range.hi]),
                        "lt" => ("lo < ?", vec![range.lo]),
                        other => {
                            return Err(bad(&format!(
                                "the prefix {other:?} is not supported (eq, ge, le, gt, lt)"
                            )));
                        }
                    };
                    alternatives.push(format!(
                        "r.id IN (SELECT id FROM fhir_date WHERE type = ? AND param = ? AND {test})"
                    ));
                    args.push(resource_type.to_owned().into());
                    args.push(param.name.to_owned().into());
                    args.extend(bounds.into_iter().map(SqlValue::from));
                }
                Kind::Patient => {
                    if value.contains('/') && !value.contains("Patient/") {
                        return Err(bad("must name a Patient (Patient/id or id)"));
                    }
                    alternatives.push(format!("r.patient IN ({COMPARTMENT})"));
                    args.push(reference_id(value).to_owned().into());
                }
                Kind::Reference => {
                    if value.contains('/') {
                        let mut parts = value.rsplit('/');
                        let id = parts.next().unwrap_or_default();
                        let ty = parts.next().unwrap_or_default();
                        alternatives.push(
                            "r.id IN (SELECT id FROM fhir_reference WHERE type = ? AND param = ? AND target = ?)".to_owned(),
                        );
                        args.push(resource_type.to_owned().into());
                        args.push(param.name.to_owned().into());
                        args.push(format!("{ty}/{id}").into());
                    } else {
                        alternatives.push(
                            "r.id IN (SELECT id FROM fhir_reference WHERE type = ? AND param = ? AND substr(target, instr(target, '/') + 1) = ?)".to_owned(),
                        );
                        args.push(resource_type.to_owned().into());
                        args.push(param.name.to_owned().into());
                        args.push(value.to_owned().into());
                    }
                }
            }
        }
        conditions.push_str(&format!(" AND ({})", alternatives.join(" OR ")));
    }
    let total: i64 = conn
        .prepare(&format!(
            "SELECT COUNT(*) FROM fhir_resources r WHERE {conditions}"
        ))?
        .query_row(params_from_iter(args.iter()), |row| row.get(0))?;
    let mut page_args = args;
    page_args.push(i64::try_from(count).unwrap_or(i64::MAX).into());
    page_args.push(i64::try_from(offset).unwrap_or(i64::MAX).into());
    let mut statement = conn.prepare(&format!(
        "SELECT v.content FROM fhir_resources r JOIN fhir_versions v \
         ON v.type = r.type AND v.id = r.id AND v.version = r.version \
         WHERE {conditions} ORDER BY r.id LIMIT ? OFFSET ?"
    ))?;
    let rows = statement.query_map(params_from_iter(page_args.iter()), |row| {
        row.get::<_, String>(0)
    })?;
    let mut resources = Vec::new();
    for row in rows {
        resources.push(parse_content(&row?)?);
    }
    Ok(Page {
        total: u64::try_from(total).unwrap_or(0),
        resources,
    })
}

/// The Patient and every resource of its compartment (Patients merged into it and
/// their resources included), the Patient first; `None` when there is no such Patient.
pub fn everything_in(conn: &Connection, patient: &str) -> store::Result<Option<Vec<Value>>> {
    let Some(first) = read_in(conn, "Patient", patient)? else {
        return Ok(None);
    };
    let mut resources = vec![first];
    let mut statement = conn.prepare_cached(&format!(
        "SELECT v.content FROM fhir_resources r JOIN fhir_versions v \
         ON v.type = r.type AND v.id = r.id AND v.version = r.version \
         WHERE r.patient IN ({COMPARTMENT}) AND NOT (r.type = 'Patient' AND r.id = ?) \
         ORDER BY r.type, r.id"
    ))?;
    let rows = statement.query_map(params![patient, patient], |row| row.get::<_, String>(0))?;
    for row in rows {
        resources.push(parse_content(&row?)?);
    }
    Ok(Some(resources))
}
