//! Upgrading a repository written before `_lastUpdated` was indexed.

use fhir_repo::query::{Search, search_in};
use store::{MessageId, Store, UnixMicros};

#[test]
fn migration_2_indexes_last_updated_of_resources_already_stored() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    static FIRST: &[store::Migration] = &[fhir_repo::MIGRATIONS[0]];
    store
        .migrate_component(fhir_repo::COMPONENT, FIRST)
        .wait()
        .unwrap();
    let message = hl7v2::Message::parse(
        b"MSH|^~\\&|ADT1|GHH|EHR|GHH|20240103083000+0100||ADT^A04^ADT_A01|M-1|P|2.5.1\r\
          PID|1||OLD1^^^GHH^MR||OLDER^ONE||19700101|F",
    )
    .unwrap();
    let bundle = v2_fhir::Converter::new(v2_fhir::Options::default())
        .convert(&message)
        .unwrap();
    store
        .write_blocking(move |conn| {
            fhir_repo::apply_bundle_in(
                conn,
                &bundle,
                MessageId(1),
                UnixMicros(1_767_268_805_250_000),
            )
        })
        .unwrap();
    // As the first release wrote it: no _lastUpdated rows.
    store
        .write_blocking(|conn| {
            conn.execute("DELETE FROM fhir_date WHERE param = '_lastUpdated'", [])?;
            Ok(())
        })
        .unwrap();
    let found = |query: &str| {
        let search = Search::new(vec![("_lastUpdated".into(), query.into())], 10);
        store
            .read(move |c| Ok(search_in(c, "Patient", &search).map(|p| p.total)))
            .unwrap()
            .unwrap()
    };
    assert_eq!(found("2026-01-01T12:00:05Z"), Some(0));
    fhir_repo::migrate_blocking(&store).unwrap();
    assert_eq!(found("2026-01-01T12:00:05Z"), Some(1));
    assert_eq!(found("gt2026-01-01T12:00:05Z"), Some(0));
}

#[test]
fn migration_2_backfills_every_searchable_type() {
    let sql = fhir_repo::MIGRATIONS[1].sql;
    for (ty, _) in fhir_repo::params::SEARCHABLE {
        assert!(
            sql.contains(&format!("'{ty}'")),
            "{ty} is searchable but not backfilled"
        );
    }
}
