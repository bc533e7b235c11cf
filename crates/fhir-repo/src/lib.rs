//! Corridor's clinical repository: the FHIR R4 resources converted from every message,
//! kept per patient in the store, and the reads and searches the FHIR REST API (served
//! by the `api` crate under `/fhir`) answers with.
//!
//! - [`apply_bundle_in`] writes a transaction Bundle (from `v2_fhir`) inside the caller's
//!   write: the engine calls it in the transaction that records the message processed,
//!   so a message's resources are stored exactly when the message is.
//! - [`query`] holds the reads (read, vread, history, search, `$everything`) and
//!   [`params`] the search parameters the API and its CapabilityStatement are built
//!   from.
//!
//! # The API as clients use it
//!
//! Search (`GET [type]?...` or `POST [type]/_search` with a form body) takes the
//! parameters of [`params`] with `_id` and `_lastUpdated`, chains from `patient` and
//! `subject` to the Patient's parameters (`Observation?patient.identifier=s|v`), and
//! `_count`, `_offset`, `_sort`, `_summary=count`, `_total`, `_include`, `_revinclude`
//! and `_elements`. A parameter it cannot use is left out, as the specification asks
//! by default: the Bundle's self link shows only the parameters used and an
//! OperationOutcome entry (search mode `outcome`) names each one left out. With
//! `Prefer: handling=strict` it is a 400 instead; a bad value of a known parameter
//! always is. Reads and vreads carry `ETag` and `Last-Modified` and answer 304 to a
//! current `If-None-Match` or `If-Modified-Since`. Only JSON is served: an `Accept` or
//! `_format` asking for XML is a 406.
//!
//! # Updates, versions and duplicates
//!
//! Every entry is a conditional update by its id, and the converter derives ids from
//! business identifiers, so an A08 after an A01 updates the same Patient and Encounter.
//! A resource whose content (everything but `meta`) changed gets the next version with
//! `meta.versionId` and `meta.lastUpdated` (the message's receive time); every version
//! is kept for vread and history. A resource that arrives with the content it already
//! has is left alone: the same message twice adds no version.
//!
//! # Partial updates
//!
//! Patient, Encounter, Practitioner, Organization, Location, RelatedPerson, Account and
//! Coverage are shared: each message describes part of them (a VXU's PID carries no
//! SSN, an A40 names the retired Patient only by its identifiers). An update of one of
//! them merges into its current version, element by element: an element the message
//! sends replaces the stored one (an A08's addresses, names and telecoms are the
//! patient's now), an element it leaves out is kept. Three repeating elements combine
//! instead of replacing: `identifier` is the union by system and value, `extension`
//! by url, and a Patient's `link` by the Patient it points to (an A37 removes the
//! links between the two Patients it names). An Encounter's status changes only by an
//! ADT event: a result's PV1 derives one from the patient class alone, which must not
//! reopen a discharged visit; likewise only an ADT replaces a Patient's `contact` list
//! (a VXU's NK1 names the mother, not every contact: its contacts join the stored ones
//! by name and relationship). A choice element (`deceased[x]`) keeps only the form the
//! message sends. Every other resource is one v2 record
//! (a result, a dose, an order) and the message that sends it again sends all of it:
//! it replaces the stored version whole. These rules are `v2_fhir::merge`, which the
//! `fhir` destination applies to a FHIR server's current versions too.
//!
//! # Collisions
//!
//! A resource is never moved from one Patient's compartment to another: an entry whose
//! id is stored for another Patient (and not one merged with it) fails the apply with
//! `store::Error::Refused`, naming the resource and both Patient ids and nothing of
//! the message is written; the engine records the message `errored` with that reason.
//!
//! # Merges (A40)
//!
//! The converter writes the merged-away Patient with `active: false` and a `replaced-by`
//! link to the survivor (and the survivor with a `replaces` link). The repository
//! records the pair in `fhir_merges` and leaves the merged Patient's resources where
//! they are (their references still name it, as the message that made them did). The
//! survivor's compartment includes every Patient merged into it, directly or through
//! chains of merges: `patient=` search and `$everything` on the survivor return their
//! resources too, while reading the merged Patient shows the merge. A later message
//! that updates the merged Patient without the link does not undo the merge.
//!
//! # Unlinks (A37)
//!
//! An A37 names two patients in two PIDs. The converter writes both `active: true`
//! without links, and the repository drops any merge recorded between them: after an
//! A40 and then an A37 for the same pair, reading either Patient shows no link, both
//! are active, and each compartment (`patient=`, `$everything`) holds only its own
//! resources again.
//!
//! # SCHEMA
//!
//! The component `fhir_repo` (see `component_schema`) keeps these tables in `corridor.db`:
//!
//! `fhir_resources`, the current version of each resource:
//!
//! | column | type | meaning |
//! | --- | --- | --- |
//! | `type` | TEXT | Resource type (`Patient`, `Observation`, ...). |
//! | `id` | TEXT | Resource id. Primary key with `type`. |
//! | `version` | INTEGER | The current version (`meta.versionId`). |
//! | `patient` | TEXT NULL | The Patient whose compartment holds it (a Patient: itself). |
//! | `digest` | INTEGER | FNV-1a of the content without `meta`: an unchanged PUT is skipped. |
//!
//! `fhir_versions`, every version ever written:
//!
//! | column | type | meaning |
//! | --- | --- | --- |
//! | `type`, `id`, `version` | TEXT, TEXT, INTEGER | Primary key. |
//! | `last_updated` | TEXT | `meta.lastUpdated` (FHIR instant, UTC). |
//! | `received_at` | INTEGER | When the message that wrote it was received (µs). |
//! | `message_id` | INTEGER NULL | The journal id of that message (indexed since migration 3: the console's message page lists the resources a message made). |
//! | `patient` | TEXT NULL | The compartment Patient at that version. |
//! | `content` | TEXT | The resource as FHIR JSON, `meta` included. |
//!
//! Search indexes, one row per value a search parameter finds in the current version
//! (replaced when a version is written; `fhir_date` also holds each searchable
//! resource's `_lastUpdated`, to the second, since migration 2): `fhir_token (type, id, param, system, code)`,
//! `fhir_string (type, id, param, value)` (lower-cased), `fhir_date (type, id, param, lo,
//! hi)` (the value's span in UTC seconds, inclusive), `fhir_reference (type, id, param,
//! target)` (`Type/id`). Each has an index on `(type, param, value columns)` for search
//! and one on `(type, id)` for replacing rows.
//!
//! `fhir_merges (merged PRIMARY KEY, survivor)`: Patient ids merged away and the Patient
//! they were merged into.
//!
//! ```sql
//! -- How many resources of each type, and how many versions.
//! SELECT type, COUNT(*), SUM(version) FROM fhir_resources GROUP BY type;
//! -- Every version of one Observation, oldest first, with the message that wrote it.
//! SELECT version, last_updated, message_id FROM fhir_versions
//!  WHERE type = 'Observation' AND id = '...' ORDER BY version;
//! ```

mod apply;
pub mod date;
pub mod params;
pub mod query;

use store::{Migration, Store};

pub use apply::{Applied, AppliedEntry, Outcome, apply_bundle_in};

/// The component name in `component_schema`.
pub const COMPONENT: &str = "fhir_repo";

/// The repository's schema history, oldest first.
pub const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        description: "FHIR repository: resources, versions, search indexes, merges",
        sql: r#"
    CREATE TABLE fhir_resources (
        type    TEXT    NOT NULL,
        id      TEXT    NOT NULL,
        version INTEGER NOT NULL,
        patient TEXT,
        digest  INTEGER NOT NULL,
        PRIMARY KEY (type, id)
    ) WITHOUT ROWID;
    CREATE INDEX fhir_resources_by_patient ON fhir_resources (patient, type);
    CREATE TABLE fhir_versions (
        type         TEXT    NOT NULL,
        id           TEXT    NOT NULL,
        version      INTEGER NOT NULL,
        last_updated TEXT    NOT NULL,
        received_at  INTEGER NOT NULL,
        message_id   INTEGER,
        patient      TEXT,
        content      TEXT    NOT NULL,
        PRIMARY KEY (type, id, version)
    );
    CREATE TABLE fhir_token (
        type TEXT NOT NULL, id TEXT NOT NULL, param TEXT NOT NULL,
        system TEXT NOT NULL, code TEXT NOT NULL
    );
    CREATE INDEX fhir_token_search ON fhir_token (type, param, code, system);
    CREATE INDEX fhir_token_owner ON fhir_token (type, id);
    CREATE TABLE fhir_string (
        type TEXT NOT NULL, id TEXT NOT NULL, param TEXT NOT NULL, value TEXT NOT NULL
    );
    CREATE INDEX fhir_string_search ON fhir_string (type, param, value);
    CREATE INDEX fhir_string_owner ON fhir_string (type, id);
    CREATE TABLE fhir_date (
        type TEXT NOT NULL, id TEXT NOT NULL, param TEXT NOT NULL,
        lo INTEGER NOT NULL, hi INTEGER NOT NULL
    );
    CREATE INDEX fhir_date_search ON fhir_date (type, param, lo, hi);
    CREATE INDEX fhir_date_owner ON fhir_date (type, id);
    CREATE TABLE fhir_reference (
        type TEXT NOT NULL, id TEXT NOT NULL, param TEXT NOT NULL, target TEXT NOT NULL
    );
    CREATE INDEX fhir_reference_search ON fhir_reference (type, param, target);
    CREATE INDEX fhir_reference_owner ON fhir_reference (type, id);
    CREATE TABLE fhir_merges (
        merged   TEXT PRIMARY KEY,
        survivor TEXT NOT NULL
    ) WITHOUT ROWID;
    CREATE INDEX fhir_merges_by_survivor ON fhir_merges (survivor);
    "#,
    },
    Migration {
        version: 2,
        description: "FHIR repository: _lastUpdated in the date index",
        // The second of each current version's receive time, which is its
        // meta.lastUpdated (kept to the millisecond) as params::extract indexes it.
        sql: r#"
    INSERT INTO fhir_date (type, id, param, lo, hi)
    SELECT r.type, r.id, '_lastUpdated', v.received_at / 1000000, v.received_at / 1000000
      FROM fhir_resources r JOIN fhir_versions v
        ON v.type = r.type AND v.id = r.id AND v.version = r.version
     WHERE r.type IN ('Patient', 'Encounter', 'Observation', 'DiagnosticReport',
           'AllergyIntolerance', 'MedicationRequest', 'Immunization', 'Condition',
           'ServiceRequest', 'DocumentReference');
    "#,
    },
    Migration {
        version: 3,
        description: "FHIR repository: versions by the message that wrote them",
        // The console's message page lists the resources made from a message.
        sql: r#"
    CREATE INDEX fhir_versions_by_message ON fhir_versions (message_id)
        WHERE message_id IS NOT NULL;
    "#,
    },
];

/// Creates or upgrades the repository's tables. Run it once before the first
/// [`apply_bundle_in`] (the engine does at start).
pub async fn migrate(store: &Store) -> store::Result<u32> {
    store.migrate_component(COMPONENT, MIGRATIONS).await
}

/// [`migrate`] for callers outside an async runtime.
pub fn migrate_blocking(store: &Store) -> store::Result<u32> {
    store.migrate_component(COMPONENT, MIGRATIONS).wait()
}
