//! Writing a transaction Bundle into the repository.

use rusqlite::{Connection, OptionalExtension, params};
use serde_json::{Map, Value, json};
use store::{MessageId, UnixMicros};
use v2_fhir::Bundle;
use v2_fhir::merge::{Update, is_shared, merge_into};

use crate::date;
use crate::params;

/// What applying one entry did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// The resource did not exist: version 1.
    Created,
    /// The resource changed: a new version.
    Updated,
    /// The resource was already stored with this content: no new version.
    Unchanged,
}

/// One entry of an applied Bundle.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AppliedEntry {
    pub resource_type: String,
    pub id: String,
    /// The current version after the apply.
    pub version: i64,
    pub last_updated: String,
    pub outcome: Outcome,
}

/// What [`apply_bundle_in`] did, entry by entry in Bundle order.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Applied {
    pub entries: Vec<AppliedEntry>,
}

impl Applied {
    fn count(&self, outcome: Outcome) -> usize {
        self.entries.iter().filter(|e| e.outcome == outcome).count()
    }
    pub fn created(&self) -> usize {
        self.count(Outcome::Created)
    }
    pub fn updated(&self) -> usize {
        self.count(Outcome::Updated)
    }
    pub fn unchanged(&self) -> usize {
        self.count(Outcome::Unchanged)
    }

    /// The FHIR `transaction-response` Bundle for what was applied.
    pub fn transaction_response(&self) -> Value {
        let entries: Vec<Value> = self
            .entries
            .iter()
            .map(|e| {
                let status = match e.outcome {
                    Outcome::Created => "201 Created",
                    Outcome::Updated | Outcome::Unchanged => "200 OK",
                };
                json!({"response": {
                    "status": status,
                    "location": format!("{}/{}/_history/{}", e.resource_type, e.id, e.version),
                    "etag": format!("W/\"{}\"", e.version),
                    "lastModified": e.last_updated,
                }})
            })
            .collect();
        json!({"resourceType": "Bundle", "type": "transaction-response", "entry": entries})
    }
}

/// FNV-1a of the resource's JSON without `meta`: whether a PUT changes anything.
fn digest(resource: &Value) -> i64 {
    let text = match resource {
        Value::Object(map) if map.contains_key("meta") => {
            let mut copy = map.clone();
            copy.remove("meta");
            Value::Object(copy).to_string()
        }
        other => other.to_string(),
    };
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in text.bytes() {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    hash as i64
}

/// Applies a transaction Bundle inside the caller's write: every entry is a conditional
/// update by its id (same business identifier, same id). A shared resource
/// ([`v2_fhir::merge::SHARED`]) takes the message's elements over its current version
/// and keeps the rest ([`v2_fhir::merge::merge_into`], and the crate docs). A resource
/// whose content changed gets a new version (`meta.versionId`, `meta.lastUpdated` =
/// `received_at`); one stored with exactly this content is left as it is, so the same
/// message twice adds nothing. Every version is kept; the index tables follow the
/// current version. `message_id` is recorded with each version written.
///
/// A resource stored in another Patient's compartment is never overwritten: the apply
/// fails with [`store::Error::Refused`] naming it, and the caller's write (the message's
/// processing) rolls back.
pub fn apply_bundle_in(
    conn: &Connection,
    bundle: &Bundle,
    message_id: MessageId,
    received_at: UnixMicros,
) -> store::Result<Applied> {
    let last_updated = date::instant(received_at.0);
    let mut applied = Applied::default();
    let update = Update::of(bundle);
    for entry in bundle.entries() {
        let resource_type = entry.resource_type;
        let id = entry.id.as_str();
        let patient = if resource_type == "Patient" {
            Some(entry.id.clone())
        } else {
            entry.patient_id.clone()
        };
        let current: Option<(i64, i64, Option<String>)> = conn
            .prepare_cached(
                "SELECT version, digest, patient FROM fhir_resources WHERE type = ?1 AND id = ?2",
            )?
            .query_row(params![resource_type, id], |row| {
                Ok((row.get(0)?, row.get(1)?, row.get(2)?))
            })
            .optional()?;
        if let Some((_, _, Some(owner))) = &current {
            if let Some(incoming) = &patient {
                if owner != incoming && !merged_together(conn, owner, incoming)? {
                    return Err(store::Error::Refused(format!(
                        "fhir: {resource_type}/{id} is already stored for Patient/{owner}, and this \
                         message gives it to Patient/{incoming}; it was not overwritten (two \
                         patients' records got one id: check the order or visit numbers)"
                    )));
                }
            }
        }
        let mut resource = entry.resource.clone();
        if let Some((version, _, _)) = &current {
            if is_shared(resource_type) {
                let stored = current_content_in(conn, resource_type, id, *version)?;
                resource = merge_into(stored, resource, resource_type, &update);
            }
        }
        let hash = digest(&resource);
        let (version, outcome) = match current {
            Some((version, old, _)) if old == hash => {
                let when: String = conn
                    .prepare_cached(
                        "SELECT last_updated FROM fhir_versions WHERE type = ?1 AND id = ?2 AND version = ?3",
                    )?
                    .query_row(params![resource_type, id, version], |row| row.get(0))?;
                applied.entries.push(AppliedEntry {
                    resource_type: resource_type.to_owned(),
                    id: id.to_owned(),
                    version,
                    last_updated: when,
                    outcome: Outcome::Unchanged,
                });
                continue;
            }
            Some((version, _, _)) => (version + 1, Outcome::Updated),
            None => (1, Outcome::Created),
        };
        if let Value::Object(map) = &mut resource {
            let meta = map
                .entry("meta")
                .or_insert_with(|| Value::Object(Map::new()));
            if let Value::Object(meta) = meta {
                meta.insert("versionId".into(), version.to_string().into());
                meta.insert("lastUpdated".into(), last_updated.clone().into());
            }
        }
        conn.prepare_cached(
            "INSERT INTO fhir_versions (type, id, version, last_updated, received_at, message_id, patient, content) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
        )?
        .execute(params![
            resource_type,
            id,
            version,
            last_updated,
            received_at.0,
            message_id.0,
            patient,
            resource.to_string()
        ])?;
        conn.prepare_cached(
            "INSERT INTO fhir_resources (type, id, version, patient, digest) VALUES (?1, ?2, ?3, ?4, ?5) \
             ON CONFLICT (type, id) DO UPDATE SET version = excluded.version, \
             patient = excluded.patient, digest = excluded.digest",
        )?
        .execute(params![resource_type, id, version, patient, hash])?;
        index_in(conn, resource_type, id, &resource)?;
        if resource_type == "Patient" {
            record_merge_in(conn, id, &resource)?;
        }
        applied.entries.push(AppliedEntry {
            resource_type: resource_type.to_owned(),
            id: id.to_owned(),
            version,
            last_updated: last_updated.clone(),
            outcome,
        });
    }
    record_unlink_in(conn, &update)?;
    Ok(applied)
}

/// Whether one of two Patients was merged into the other (A40): the survivor's
/// messages may then update what was filed under the merged one.
fn merged_together(conn: &Connection, a: &str, b: &str) -> store::Result<bool> {
    let found = conn
        .prepare_cached(
            "SELECT 1 FROM fhir_merges WHERE (merged = ?1 AND survivor = ?2) \
             OR (merged = ?2 AND survivor = ?1)",
        )?
        .query_row(params![a, b], |_| Ok(()))
        .optional()?;
    Ok(found.is_some())
}

/// The stored content of a resource's current version, without `meta`.
fn current_content_in(
    conn: &Connection,
    resource_type: &str,
    id: &str,
    version: i64,
) -> store::Result<Value> {
    let text: String = conn
        .prepare_cached(
            "SELECT content FROM fhir_versions WHERE type = ?1 AND id = ?2 AND version = ?3",
        )?
        .query_row(params![resource_type, id, version], |row| row.get(0))?;
    let mut stored: Value = serde_json::from_str(&text).map_err(|e| {
        store::Error::Refused(format!(
            "fhir: the stored {resource_type}/{id} version {version} is not JSON: {e}"
        ))
    })?;
    if let Value::Object(map) = &mut stored {
        map.remove("meta");
    }
    Ok(stored)
}

/// An A37 (unlink) separates the Patients it names: a merge recorded between any two
/// of them (`fhir_merges`) is undone, so each compartment holds its own resources
/// again. The converter writes both Patients `active: true` and without links, so
/// their new versions no longer show the merge either.
fn record_unlink_in(conn: &Connection, update: &Update) -> store::Result<()> {
    let patients = update.unlinked();
    if patients.is_empty() {
        return Ok(());
    }
    let mut forget =
        conn.prepare_cached("DELETE FROM fhir_merges WHERE merged = ?1 AND survivor = ?2")?;
    for merged in patients {
        for survivor in patients {
            if merged != survivor {
                forget.execute(params![merged, survivor])?;
            }
        }
    }
    Ok(())
}

/// Replaces the index rows of a resource with those of its new version.
fn index_in(
    conn: &Connection,
    resource_type: &str,
    id: &str,
    resource: &Value,
) -> store::Result<()> {
    for table in ["fhir_token", "fhir_string", "fhir_date", "fhir_reference"] {
        conn.prepare_cached(&format!("DELETE FROM {table} WHERE type = ?1 AND id = ?2"))?
            .execute(params![resource_type, id])?;
    }
    let found = params::extract(resource_type, resource);
    let mut insert = conn.prepare_cached(
        "INSERT INTO fhir_token (type, id, param, system, code) VALUES (?1, ?2, ?3, ?4, ?5)",
    )?;
    for (param, system, code) in &found.tokens {
        insert.execute(params![resource_type, id, param, system, code])?;
    }
    let mut insert = conn.prepare_cached(
        "INSERT INTO fhir_string (type, id, param, value) VALUES (?1, ?2, ?3, ?4)",
    )?;
    for (param, value) in &found.strings {
        insert.execute(params![resource_type, id, param, value])?;
    }
    let mut insert = conn.prepare_cached(
        "INSERT INTO fhir_date (type, id, param, lo, hi) VALUES (?1, ?2, ?3, ?4, ?5)",
    )?;
    for (param, range) in &found.dates {
        insert.execute(params![resource_type, id, param, range.lo, range.hi])?;
    }
    let mut insert = conn.prepare_cached(
        "INSERT INTO fhir_reference (type, id, param, target) VALUES (?1, ?2, ?3, ?4)",
    )?;
    for (param, target) in &found.references {
        insert.execute(params![resource_type, id, param, target])?;
    }
    Ok(())
}

/// A Patient with a `replaced-by` link was merged into that Patient. The merge stays
/// recorded when a later message updates the merged-away Patient without the link (a
/// late result for its old identifier): only a new `replaced-by` link moves it.
fn record_merge_in(conn: &Connection, id: &str, patient: &Value) -> store::Result<()> {
    let survivor = patient["link"].as_array().and_then(|links| {
        links.iter().find_map(|l| {
            (l["type"] == "replaced-by")
                .then(|| l["other"]["reference"].as_str())
                .flatten()
                .and_then(|r| r.strip_prefix("Patient/"))
        })
    });
    if let Some(survivor) = survivor.filter(|s| *s != id) {
        conn.prepare_cached(
            "INSERT INTO fhir_merges (merged, survivor) VALUES (?1, ?2) \
             ON CONFLICT (merged) DO UPDATE SET survivor = excluded.survivor",
        )?
        .execute(params![id, survivor])?;
    }
    Ok(())
}
