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
    /// Matches in all; `None` when the search asked for no total (`_total=none`).
    pub total: Option<u64>,
    /// The resources of this page, in the search's order.
    pub resources: Vec<Value>,
    /// Whether more matches follow this page.
    pub more: bool,
    /// Resources `_include` and `_revinclude` brought in (none of them a match).
    pub included: Vec<Value>,
    /// Whether more were to be included than [`MAX_INCLUDED`].
    pub included_cut: bool,
}

/// The most resources `_include` and `_revinclude` add to one page.
pub const MAX_INCLUDED: usize = 1000;

/// One `_sort` key: a parameter, `-` in front for descending.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SortKey {
    pub name: String,
    pub descending: bool,
}

/// One `_include` (`Source:param[:Target]`) or `_revinclude`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Include {
    pub source: String,
    pub param: String,
    pub target: Option<String>,
}

impl Include {
    /// `Source:param[:Target]`; `None` when `value` has another shape.
    pub fn parse(value: &str) -> Option<Include> {
        let mut parts = value.split(':');
        let source = parts.next().filter(|s| !s.is_empty())?;
        let param = parts.next().filter(|s| !s.is_empty())?;
        let target = parts.next().map(str::to_owned);
        if parts.next().is_some() {
            return None;
        }
        Some(Include {
            source: source.to_owned(),
            param: param.to_owned(),
            target,
        })
    }
}

/// What to search for and how to page through it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Search {
    /// `(name, value)` pairs: `name` may carry a modifier or a chain
    /// (`patient.identifier`), `value` may list alternatives separated by commas.
    pub criteria: Vec<(String, String)>,
    /// `_sort` keys, most significant first; ties fall back to the id.
    pub sort: Vec<SortKey>,
    pub count: usize,
    pub offset: usize,
    /// Whether to count every match (`_total`).
    pub total: bool,
    pub include: Vec<Include>,
    pub revinclude: Vec<Include>,
}

impl Search {
    /// The first `count` matches of `criteria`, by id, with their total.
    pub fn new(criteria: Vec<(String, String)>, count: usize) -> Search {
        Search {
            criteria,
            sort: Vec::new(),
            count,
            offset: 0,
            total: true,
            include: Vec::new(),
            revinclude: Vec::new(),
        }
    }
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

/// A chained name split at its first link: `patient:Patient.identifier:exact` is
/// (`patient`, `Some("Patient")`, `identifier:exact`); `None` when it is no chain.
fn chain(raw_name: &str) -> Option<(&str, Option<&str>, &str)> {
    let (head, inner) = raw_name.split_once('.')?;
    Some(match head.split_once(':') {
        Some((link, target)) => (link, Some(target), inner),
        None => (head, None, inner),
    })
}

/// Why Corridor cannot use the search parameter `raw_name` (with its modifier or
/// chain) on `resource_type`, or `None` when it can. A search with such a parameter
/// either fails or goes on without it (`Prefer: handling`), as the caller decides.
pub fn unsupported(resource_type: &str, raw_name: &str) -> Option<String> {
    if let Some((link, target, inner)) = chain(raw_name) {
        return match params::param_of(resource_type, link) {
            Some(p) if p.kind == Kind::Patient => {
                if let Some(t) = target.filter(|t| *t != "Patient") {
                    return Some(format!("{link} refers to a Patient, not a {t}"));
                }
                if chain(inner).is_some() {
                    return Some("chains longer than one link are not supported".to_owned());
                }
                unsupported("Patient", inner).map(|r| format!("in the chain: {inner} {r}"))
            }
            _ => Some(format!(
                "{link} is not a chainable reference of {resource_type} here"
            )),
        };
    }
    let (name, modifier) = match raw_name.split_once(':') {
        Some((n, m)) => (n, Some(m)),
        None => (raw_name, None),
    };
    if name == "_id" {
        return modifier.map(|_| "_id takes no modifier here".to_owned());
    }
    let Some(param) = params::param_of(resource_type, name) else {
        return Some(format!("is not a search parameter of {resource_type} here"));
    };
    match (param.kind, modifier) {
        (_, None) | (Kind::String, Some("exact")) => None,
        (_, Some(m)) => Some(format!("the modifier :{m} is not supported")),
    }
}

/// Why `name` cannot be a `_sort` key of `resource_type`, or `None` when it can.
pub fn unsortable(resource_type: &str, name: &str) -> Option<String> {
    if name == "_id" {
        return None;
    }
    match params::param_of(resource_type, name) {
        Some(p) if matches!(p.kind, Kind::Token | Kind::String | Kind::Date) => None,
        Some(_) => Some(format!(
            "{resource_type} cannot be sorted by the reference {name}"
        )),
        None => Some(format!(
            "{name} is not a search parameter of {resource_type} here"
        )),
    }
}

/// Why `include` cannot be followed from `resource_type` (`reverse`: `_revinclude`),
/// or `None` when it can.
pub fn unincludable(resource_type: &str, include: &Include, reverse: bool) -> Option<String> {
    if !reverse && include.source != resource_type {
        return Some(format!(
            "{} is not the type searched ({resource_type})",
            include.source
        ));
    }
    let Some(param) = params::param_of(&include.source, &include.param) else {
        return Some(format!(
            "{} is not a search parameter of {} here",
            include.param, include.source
        ));
    };
    match param.kind {
        Kind::Patient => match &include.target {
            Some(t) if t != "Patient" => {
                Some(format!("{} only refers to a Patient", include.param))
            }
            _ if reverse && resource_type != "Patient" => Some(format!(
                "{} refers to a Patient, not a {resource_type}",
                include.param
            )),
            _ => None,
        },
        Kind::Reference => {
            let to = params::reference_target(param.name);
            if reverse && to != Some(resource_type) {
                return Some(format!(
                    "{}:{} does not refer to a {resource_type}",
                    include.source, include.param
                ));
            }
            match &include.target {
                Some(t) if Some(t.as_str()) != to => {
                    Some(format!("{} does not refer to a {t}", include.param))
                }
                _ => None,
            }
        }
        _ => Some(format!("{} is not a reference", include.param)),
    }
}

/// The SQL condition on `r` (a `fhir_resources` row of `resource_type`) for one
/// criterion, its values bound through `args`.
fn condition(
    resource_type: &str,
    raw_name: &str,
    raw_value: &str,
    args: &mut Vec<SqlValue>,
) -> Result<String, SearchError> {
    let bad = |reason: &str| SearchError::BadParameter {
        name: raw_name.to_owned(),
        reason: reason.to_owned(),
    };
    if let Some(reason) = unsupported(resource_type, raw_name) {
        return Err(bad(&reason));
    }
    if raw_value.trim().is_empty() {
        return Err(bad("has no value"));
    }
    if let Some((_, _, inner)) = chain(raw_name) {
        // The Patients that match, and every Patient merged into them.
        let inner = condition("Patient", inner, raw_value, args)?;
        return Ok(format!(
            "r.patient IN (WITH RECURSIVE c(id) AS (SELECT r.id FROM fhir_resources r \
             WHERE r.type = 'Patient' AND {inner} UNION \
             SELECT m.merged FROM fhir_merges m JOIN c ON m.survivor = c.id) SELECT id FROM c)"
        ));
    }
    let (name, modifier) = match raw_name.split_once(':') {
        Some((n, m)) => (n, Some(m)),
        None => (raw_name, None),
    };
    let mut alternatives = Vec::new();
    if name == "_id" {
        for value in raw_value.split(',') {
            alternatives.push("r.id = ?".to_owned());
            args.push(value.trim().to_owned().into());
        }
        return Ok(format!("({})", alternatives.join(" OR ")));
    }
    let Some(param) = params::param_of(resource_type, name) else {
        return Err(bad("is not a search parameter here"));
    };
    let exact = modifier == Some("exact");
    for value in raw_value.split(',') {
        let value = value.trim();
        match param.kind {
            Kind::Token => {
                let mut sql =
                    String::from("r.id IN (SELECT id FROM fhir_token WHERE type = ? AND param = ?");
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
                args.push(resource_type.to_owned().into());
                args.push(param.name.to_owned().into());
                if exact {
                    alternatives.push(
                        "r.id IN (SELECT id FROM fhir_string WHERE type = ? AND param = ? AND value = ?)".to_owned(),
                    );
                    args.push(text.into());
                } else {
                    alternatives.push(
                        "r.id IN (SELECT id FROM fhir_string WHERE type = ? AND param = ? AND value >= ? AND value < ?)".to_owned(),
                    );
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
                args.push(resource_type.to_owned().into());
                args.push(param.name.to_owned().into());
                if value.contains('/') {
                    let mut parts = value.rsplit('/');
                    let id = parts.next().unwrap_or_default();
                    let ty = parts.next().unwrap_or_default();
                    alternatives.push(
                        "r.id IN (SELECT id FROM fhir_reference WHERE type = ? AND param = ? AND target = ?)".to_owned(),
                    );
                    args.push(format!("{ty}/{id}").into());
                } else {
                    alternatives.push(
                        "r.id IN (SELECT id FROM fhir_reference WHERE type = ? AND param = ? AND substr(target, instr(target, '/') + 1) = ?)".to_owned(),
                    );
                    args.push(value.to_owned().into());
                }
            }
        }
    }
    Ok(format!("({})", alternatives.join(" OR ")))
}

/// The ORDER BY terms for `sort`, read from the index tables; the id breaks ties so
/// pages never overlap.
fn order_by(
    resource_type: &str,
    sort: &[SortKey],
    args: &mut Vec<SqlValue>,
) -> Result<String, SearchError> {
    let mut terms = Vec::new();
    for key in sort {
        if let Some(reason) = unsortable(resource_type, &key.name) {
            return Err(SearchError::BadParameter {
                name: "_sort".to_owned(),
                reason,
            });
        }
        let direction = if key.descending { "DESC" } else { "ASC" };
        if key.name == "_id" {
            terms.push(format!("r.id {direction}"));
            continue;
        }
        let Some(param) = params::param_of(resource_type, &key.name) else {
            continue;
        };
        // Ascending by the smallest value a resource has, descending by the largest.
        let (table, column) = match (param.kind, key.descending) {
            (Kind::Date, false) => ("fhir_date", "MIN(lo)"),
            (Kind::Date, true) => ("fhir_date", "MAX(hi)"),
            (Kind::String, false) => ("fhir_string", "MIN(value)"),
            (Kind::String, true) => ("fhir_string", "MAX(value)"),
            (_, false) => ("fhir_token", "MIN(code)"),
            (_, true) => ("fhir_token", "MAX(code)"),
        };
        let value = format!(
            "(SELECT {column} FROM {table} s WHERE s.type = r.type AND s.id = r.id AND s.param = ?)"
        );
        // Resources without a value come last either way.
        terms.push(format!("{value} IS NULL, {value} {direction}"));
        args.push(param.name.to_owned().into());
        args.push(param.name.to_owned().into());
    }
    terms.push("r.id".to_owned());
    Ok(terms.join(", "))
}

/// Searches `resource_type` (see [`Search`]); a criterion, sort key or include that
/// [`unsupported`], [`unsortable`] or [`unincludable`] refuses, or a value that is not
/// one of its parameter's, is a [`SearchError::BadParameter`].
pub fn search_in(
    conn: &Connection,
    resource_type: &str,
    search: &Search,
) -> Result<Page, SearchError> {
    if params::params_of(resource_type).is_none() {
        return Err(SearchError::UnknownType(resource_type.to_owned()));
    }
    let mut conditions = String::from("r.type = ?");
    let mut args: Vec<SqlValue> = vec![resource_type.to_owned().into()];
    for (name, value) in &search.criteria {
        let sql = condition(resource_type, name, value, &mut args)?;
        conditions.push_str(" AND ");
        conditions.push_str(&sql);
    }
    for (include, reverse) in search
        .include
        .iter()
        .map(|i| (i, false))
        .chain(search.revinclude.iter().map(|i| (i, true)))
    {
        if let Some(reason) = unincludable(resource_type, include, reverse) {
            return Err(SearchError::BadParameter {
                name: if reverse { "_revinclude" } else { "_include" }.to_owned(),
                reason,
            });
        }
    }
    let total = if search.total {
        let n: i64 = conn
            .prepare(&format!(
                "SELECT COUNT(*) FROM fhir_resources r WHERE {conditions}"
            ))?
            .query_row(params_from_iter(args.iter()), |row| row.get(0))?;
        Some(u64::try_from(n).unwrap_or(0))
    } else {
        None
    };
    let mut page_args = args;
    let order = order_by(resource_type, &search.sort, &mut page_args)?;
    // One more than the page holds tells whether another page follows.
    page_args.push(
        i64::try_from(search.count.saturating_add(1))
            .unwrap_or(i64::MAX)
            .into(),
    );
    page_args.push(i64::try_from(search.offset).unwrap_or(i64::MAX).into());
    let mut statement = conn.prepare(&format!(
        "SELECT v.content, r.patient FROM fhir_resources r JOIN fhir_versions v \
         ON v.type = r.type AND v.id = r.id AND v.version = r.version \
         WHERE {conditions} ORDER BY {order} LIMIT ? OFFSET ?"
    ))?;
    let rows = statement.query_map(params_from_iter(page_args.iter()), |row| {
        Ok((row.get::<_, String>(0)?, row.get::<_, Option<String>>(1)?))
    })?;
    let mut found = Vec::new();
    for row in rows {
        let (content, patient) = row?;
        found.push((parse_content(&content)?, patient));
    }
    let more = found.len() > search.count;
    found.truncate(search.count);
    let (included, included_cut) = included_in(conn, resource_type, &found, search)?;
    Ok(Page {
        total,
        resources: found.into_iter().map(|(r, _)| r).collect(),
        more,
        included,
        included_cut,
    })
}

/// The resources the page's `_include`s point to and those whose `_revinclude`
/// parameter points at the page, each once and none of them already on the page; at
/// most [`MAX_INCLUDED`] (then `true`).
fn included_in(
    conn: &Connection,
    resource_type: &str,
    page: &[(Value, Option<String>)],
    search: &Search,
) -> store::Result<(Vec<Value>, bool)> {
    let mut seen: std::collections::BTreeSet<(String, String)> = page
        .iter()
        .map(|(r, _)| {
            (
                resource_type.to_owned(),
                r["id"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect();
    let mut wanted: Vec<(String, String)> = Vec::new();
    for (resource, patient) in page {
        let id = resource["id"].as_str().unwrap_or_default();
        for include in &search.include {
            let Some(param) = params::param_of(&include.source, &include.param) else {
                continue;
            };
            if param.kind == Kind::Patient {
                if let Some(patient) = patient {
                    wanted.push(("Patient".to_owned(), patient.clone()));
                }
                continue;
            }
            let mut statement = conn.prepare_cached(
                "SELECT target FROM fhir_reference WHERE type = ?1 AND id = ?2 AND param = ?3",
            )?;
            let targets = statement.query_map(params![resource_type, id, param.name], |row| {
                row.get::<_, String>(0)
            })?;
            for target in targets {
                let target = target?;
                let mut parts = target.rsplit('/');
                let (tid, ty) = (
                    parts.next().unwrap_or_default(),
                    parts.next().unwrap_or_default(),
                );
                if include.target.as_deref().is_none_or(|t| t == ty) {
                    wanted.push((ty.to_owned(), tid.to_owned()));
                }
            }
        }
        for include in &search.revinclude {
            let Some(param) = params::param_of(&include.source, &include.param) else {
                continue;
            };
            let ids: Vec<String> = if param.kind == Kind::Patient {
                // The compartment, as `patient=` searches it.
                conn.prepare_cached(&format!(
                    "SELECT id FROM fhir_resources WHERE type = ? AND patient IN ({COMPARTMENT}) \
                     ORDER BY id"
                ))?
                .query_map(params![include.source, id], |row| row.get(0))?
                .collect::<Result<_, _>>()?
            } else {
                conn.prepare_cached(
                    "SELECT id FROM fhir_reference WHERE type = ?1 AND param = ?2 \
                     AND target = ?3 ORDER BY id",
                )?
                .query_map(
                    params![include.source, param.name, format!("{resource_type}/{id}")],
                    |row| row.get(0),
                )?
                .collect::<Result<_, _>>()?
            };
            for rid in ids {
                wanted.push((include.source.clone(), rid));
            }
        }
    }
    let mut included = Vec::new();
    for (ty, id) in wanted {
        if included.len() >= MAX_INCLUDED {
            return Ok((included, true));
        }
        if seen.insert((ty.clone(), id.clone())) {
            if let Some(resource) = read_in(conn, &ty, &id)? {
                included.push(resource);
            }
        }
    }
    Ok((included, false))
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
