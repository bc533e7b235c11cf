//! The index in a real store: restart, messages (PID mapping, A40 merge and A37
//! unmerge), manual decisions that the matcher never overrides.

use mpi::hl7::{MessageAction, action_of};
use mpi::{Actor, Change, EnterpriseId, LinkStatus, MpiConfig, MpiService, Outcome, SourceKey};
use store::Store;

fn config() -> MpiConfig {
    MpiConfig {
        enabled: true,
        ..MpiConfig::default()
    }
}

fn open(dir: &std::path::Path) -> MpiService {
    MpiService::open_blocking(Store::open(dir).unwrap(), config()).unwrap()
}

/// A high link threshold: demographic resemblance alone goes to review.
fn open_cautious(dir: &std::path::Path) -> MpiService {
    let config = MpiConfig {
        link_threshold: 40.0,
        ..config()
    };
    MpiService::open_blocking(Store::open(dir).unwrap(), config).unwrap()
}

/// Applies one message as the engine's stage does and persists its events.
fn feed(service: &MpiService, raw: &str) -> EnterpriseId {
    let message = hl7v2::Message::parse(raw.as_bytes()).unwrap();
    let action = action_of(&message).unwrap().expect("has a PID");
    let control = message.control_id().into_owned();
    let event = mpi::hl7::trigger_event(&message);
    let applied = service.apply_message(action, &control, &event);
    let events = applied.events;
    service
        .store()
        .write(move |conn| mpi::persist::append_events_in(conn, &events))
        .wait()
        .unwrap();
    applied.result.unwrap()
}

fn adt(event: &str, control: &str, pid: &str, extra: &str) -> String {
    format!(
        "MSH|^~\\&|ADT|NORTH|CORRIDOR|HUB|20260101120000||ADT^{event}^ADT_A01|{control}|P|2.5.1\r\
         EVN|{event}|20260101120000\r{pid}\r{extra}"
    )
}

const PID_SMITH: &str = "PID|1||4711^^^NORTH^MR~123-45-6789^^^SSA^SS||Smith^John^Q^^^^L||19800312|M|||12 High St^^Springfield^IL^62701^USA||555-0100||||||123456789";

#[test]
fn pid_maps_onto_a_source_record_keyed_by_assigning_authority() {
    let raw = adt("A04", "1", PID_SMITH, "");
    let message = hl7v2::Message::parse(raw.as_bytes()).unwrap();
    let Some(MessageAction::Ingest(r)) = action_of(&message).unwrap() else {
        panic!("an A04 ingests");
    };
    assert_eq!(r.key(), SourceKey::new("NORTH", "4711"));
    assert_eq!(r.family.as_deref(), Some("Smith"));
    assert_eq!(r.given.as_deref(), Some("John"));
    assert_eq!(r.middle.as_deref(), Some("Q"));
    assert_eq!(r.birth_date.as_deref(), Some("19800312"));
    assert_eq!(r.sex, Some(mpi::Sex::Male));
    assert_eq!(r.street.as_deref(), Some("12 High St"));
    assert_eq!(r.city.as_deref(), Some("Springfield"));
    assert_eq!(r.postcode.as_deref(), Some("62701"));
    assert_eq!(r.phone.as_deref(), Some("555-0100"));
    assert_eq!(r.ssn.as_deref(), Some("123456789"));
    assert_eq!(r.identifiers.len(), 2);
    assert!(r.identifiers.iter().all(|i| i.is_qualified()));

    // Without an assigning authority, the sender names the source.
    let raw = adt("A04", "2", "PID|1||998||Doe^Jane||19700101|F", "");
    let message = hl7v2::Message::parse(raw.as_bytes()).unwrap();
    let Some(MessageAction::Ingest(r)) = action_of(&message).unwrap() else {
        panic!("an A04 ingests");
    };
    assert_eq!(r.key(), SourceKey::new("ADT@NORTH", "998"));
    assert!(r.identifiers.is_empty(), "a bare number is no identifier");

    // No PID-3 at all: a clear error, not a panic.
    let raw = adt("A04", "3", "PID|1||||Doe^Jane", "");
    let message = hl7v2::Message::parse(raw.as_bytes()).unwrap();
    assert!(action_of(&message).is_err());
    // No PID: nothing for the index.
    let raw = "MSH|^~\\&|LAB|X|Y|Z|20260101||ACK^A01|9|P|2.5.1\rMSA|AA|1\r";
    assert_eq!(
        action_of(&hl7v2::Message::parse(raw.as_bytes()).unwrap()).unwrap(),
        None
    );
}

#[test]
fn the_index_survives_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let (ids, review_ids, status) = {
        let service = open_cautious(dir.path());
        let a = feed(&service, &adt("A04", "1", PID_SMITH, ""));
        // The same person from the lab: links on SSN and demographics.
        let b = feed(
            &service,
            &adt(
                "A04",
                "2",
                "PID|1||L-77^^^LAB^MR||Smith^Jon||19800312|M|||12 High St^^Springfield^IL^62701||||||||123456789",
                "",
            ),
        );
        assert_eq!(a, b, "the lab's record links to the hospital's patient");
        // Someone else entirely.
        let c = feed(
            &service,
            &adt(
                "A04",
                "3",
                "PID|1||5000^^^NORTH^MR||Nguyen^Anh||19920704|F|||1 Lake Rd^^Portland^OR^97201",
                "",
            ),
        );
        assert_ne!(a, c);
        // A weak resemblance: goes to review.
        let d = feed(
            &service,
            &adt(
                "A04",
                "4",
                "PID|1||R-1^^^CLINIC^MR||Smith^Jane||19800312|F",
                "",
            ),
        );
        let reviews: Vec<u64> = service.read(|m| m.reviews().map(|r| r.id).collect());
        assert_eq!(reviews.len(), 1, "the clinic record waits for review");
        let status: Vec<(SourceKey, EnterpriseId, LinkStatus)> =
            service.read(|m| m.source_records().collect());
        assert_eq!(status.len(), 4);
        let _ = d;
        ((a, c), reviews, status)
    };
    let service = open_cautious(dir.path());
    let after: Vec<(SourceKey, EnterpriseId, LinkStatus)> =
        service.read(|m| m.source_records().collect());
    assert_eq!(after, status, "same records, enterprise ids and statuses");
    let reviews_after: Vec<u64> = service.read(|m| m.reviews().map(|r| r.id).collect());
    assert_eq!(reviews_after, review_ids, "open reviews are kept");
    service.read(|m| m.check_consistency()).unwrap();
    // New records after the restart get fresh enterprise ids, not reused ones.
    let e = feed(
        &service,
        &adt(
            "A04",
            "5",
            "PID|1||9^^^SOUTH^MR||Okafor^Chidi||19550101|M|||3 Elm^^Austin^TX^73301",
            "",
        ),
    );
    assert!(e != ids.0 && e != ids.1);
    assert!(after.iter().all(|(_, ent, _)| *ent != e));
    // History comes from the store.
    let history = service
        .store()
        .read(|conn| mpi::persist::history_of(conn, ids.0.0))
        .unwrap();
    assert!(
        history.len() >= 2,
        "both records of the patient: {history:?}"
    );
}

#[test]
fn a40_merge_then_a37_unmerge_through_messages() {
    let dir = tempfile::tempdir().unwrap();
    let service = open(dir.path());
    let survivor = feed(&service, &adt("A04", "1", PID_SMITH, ""));
    // A duplicate registration under another MRN, different enough not to link.
    let dup = feed(
        &service,
        &adt(
            "A04",
            "2",
            "PID|1||4799^^^NORTH^MR||Smyth^Jonathan||19800321|M|||99 Low Rd^^Shelbyville^IL^62565",
            "",
        ),
    );
    assert_ne!(survivor, dup);
    let merged = feed(&service, &adt("A40", "3", PID_SMITH, "MRG|4799^^^NORTH^MR"));
    assert_eq!(merged, survivor);
    let retired = SourceKey::new("NORTH", "4799");
    service.read(|m| {
        assert_eq!(m.enterprise_of(&retired), Some(survivor));
        assert_eq!(m.is_active(&retired), Some(false));
        assert_eq!(m.current_enterprise(dup).unwrap(), survivor);
        let golden = m.golden_record(survivor, &Default::default()).unwrap();
        assert_eq!(golden.sources, vec![SourceKey::new("NORTH", "4711")]);
    });
    // The same A40 again (a resend) changes nothing.
    let before = service.read(|m| m.source_records().collect::<Vec<_>>());
    feed(&service, &adt("A40", "3", PID_SMITH, "MRG|4799^^^NORTH^MR"));
    assert_eq!(
        service.read(|m| m.source_records().collect::<Vec<_>>()),
        before
    );

    let after = feed(&service, &adt("A37", "4", PID_SMITH, "MRG|4799^^^NORTH^MR"));
    assert_eq!(after, survivor);
    service.read(|m| {
        assert_eq!(m.enterprise_of(&retired), Some(dup));
        assert_eq!(m.is_active(&retired), Some(true));
        assert_eq!(m.current_enterprise(dup).unwrap(), dup);
        m.check_consistency().unwrap();
    });
    // History, from the store after a restart: a merge and an unmerge by messages.
    drop(service);
    let service = open(dir.path());
    let history = service
        .store()
        .read(|conn| mpi::persist::history_of(conn, dup.0))
        .unwrap();
    let by_message: Vec<&str> = history
        .iter()
        .filter(|e| matches!(e.actor, Actor::Message { .. }))
        .map(|e| mpi::persist::change_kind(&e.change))
        .collect();
    assert_eq!(by_message, vec!["merged", "unmerged"]);
    assert!(
        history
            .iter()
            .any(|e| matches!(&e.actor, Actor::Message { control_id } if control_id == "3"))
    );
    service.read(|m| {
        assert_eq!(m.enterprise_of(&retired), Some(dup));
        assert_eq!(m.is_active(&retired), Some(true));
    });
}

#[test]
fn a_manual_link_is_not_overridden_by_a_later_match() {
    let dir = tempfile::tempdir().unwrap();
    let service = open(dir.path());
    let a = feed(&service, &adt("A04", "1", PID_SMITH, ""));
    let other = feed(
        &service,
        &adt(
            "A04",
            "2",
            "PID|1||X1^^^CLINIC^MR||Brown^Alice||19610202|F|||5 Oak^^Dayton^OH^45402",
            "",
        ),
    );
    assert_ne!(a, other);
    // A person says the clinic record is the same patient as the hospital's.
    let key = SourceKey::new("CLINIC", "X1");
    service
        .operate_blocking(|m| {
            m.link(
                &key,
                a,
                Actor::Person {
                    user: "reviewer".into(),
                },
                "same patient, confirmed by phone",
            )
        })
        .unwrap();
    // The clinic sends an A08 that matches nobody else better; the matcher must not move
    // the record back to a patient of its own.
    let after = feed(
        &service,
        &adt(
            "A08",
            "3",
            "PID|1||X1^^^CLINIC^MR||Brown^Alice||19610202|F|||5 Oak^^Dayton^OH^45402",
            "",
        ),
    );
    assert_eq!(after, a);
    // A new record that would match the clinic record's data links but does not pull
    // the linked record away either.
    let d = service
        .with_index(|m| {
            let mut r = mpi::PatientRecord::new("LAB", "Z9");
            r.family = Some("Brown".into());
            r.given = Some("Alice".into());
            r.birth_date = Some("19610202".into());
            r.postcode = Some("45402".into());
            r.city = Some("Dayton".into());
            r.sex = Some(mpi::Sex::Female);
            m.ingest(r)
        })
        .0
        .unwrap();
    assert!(matches!(
        d.outcome,
        Outcome::Link | Outcome::PossibleMatch | Outcome::New
    ));
    service.read(|m| {
        assert_eq!(m.enterprise_of(&key), Some(a));
        assert_eq!(m.is_pinned(&key), Some(true));
    });
    // And after a restart, still.
    drop(service);
    let service = open(dir.path());
    service.read(|m| assert_eq!(m.enterprise_of(&key), Some(a)));
    let history = service
        .store()
        .read(|conn| mpi::persist::history_of(conn, a.0))
        .unwrap();
    assert!(
        history
            .iter()
            .any(|e| matches!(&e.change, Change::RecordLinked { .. })
                && matches!(&e.actor, Actor::Person { user } if user == "reviewer")
                && e.why == "same patient, confirmed by phone")
    );
}

#[test]
fn a_processing_write_that_never_committed_leaves_a_gap_the_restart_skips() {
    let dir = tempfile::tempdir().unwrap();
    let service = open(dir.path());
    let a = feed(&service, &adt("A04", "1", PID_SMITH, ""));
    // The engine applied a message but its transaction never committed (crash):
    // its events are not in the store.
    let raw = adt(
        "A04",
        "2",
        "PID|1||X1^^^CLINIC^MR||Brown^Alice||19610202|F|||5 Oak^^Dayton^OH^45402",
        "",
    );
    let message = hl7v2::Message::parse(raw.as_bytes()).unwrap();
    let lost = service.apply_message(action_of(&message).unwrap().unwrap(), "2", "A04");
    assert!(!lost.events.is_empty());
    // A later decision by a person was stored.
    let c = feed(
        &service,
        &adt(
            "A04",
            "3",
            "PID|1||7^^^SOUTH^MR||Okafor^Chidi||19550101|M|||3 Elm^^Austin^TX^73301",
            "",
        ),
    );
    service
        .operate_blocking(|m| {
            m.merge_enterprises(a, c, Actor::Person { user: "ana".into() }, "same")
        })
        .unwrap();
    drop(service);
    let service = open(dir.path());
    service.read(|m| {
        assert_eq!(m.enterprise_of(&SourceKey::new("CLINIC", "X1")), None);
        assert_eq!(
            m.enterprise_of(&SourceKey::new("SOUTH", "7")),
            Some(a),
            "the later merge survives the gap"
        );
        m.check_consistency().unwrap();
    });
    // The message, processed again after the restart, is placed anew.
    feed(&service, &raw);
    service.read(|m| assert!(m.enterprise_of(&SourceKey::new("CLINIC", "X1")).is_some()));
}

#[test]
fn the_async_open_rebuilds_the_same_index() {
    let dir = tempfile::tempdir().unwrap();
    let before = {
        let service = open(dir.path());
        feed(&service, &adt("A04", "1", PID_SMITH, ""));
        service.read(|m| m.source_records().collect::<Vec<_>>())
    };
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let after = runtime.block_on(async {
        let service = MpiService::open(Store::open(dir.path()).unwrap(), config())
            .await
            .unwrap();
        service.read(|m| m.source_records().collect::<Vec<_>>())
    });
    assert_eq!(before, after);
    assert_eq!(after.len(), 1);
    // A configuration whose thresholds cross is refused before anything is read.
    let bad = MpiConfig {
        link_threshold: 2.0,
        review_threshold: 8.0,
        ..config()
    };
    assert!(MpiService::open_blocking(Store::open(dir.path()).unwrap(), bad).is_err());
}

#[test]
fn a_snapshot_reads_the_index_beside_the_process_that_owns_it() {
    let dir = tempfile::tempdir().unwrap();
    let reader = Store::open(dir.path()).unwrap();
    let snapshot = |store: &Store| {
        store
            .read(|conn| mpi::persist::load_snapshot(conn, config().matcher()))
            .unwrap()
    };
    assert!(snapshot(&reader).is_none(), "no patient index yet");

    let owner = open(dir.path());
    feed(&owner, &adt("A04", "1", PID_SMITH, ""));
    feed(
        &owner,
        &adt(
            "A04",
            "2",
            "PID|1||L-77^^^LAB^MR||Smith^Jon||19800312|M|||12 High St^^Springfield^IL^62701||||||||123456789",
            "",
        ),
    );
    // The owner still holds the index's lock: a second owner is refused, a reader is not.
    assert!(MpiService::open_blocking(Store::open(dir.path()).unwrap(), config()).is_err());
    let read = snapshot(&reader).expect("an index");
    let owned = owner.read(|m| m.source_records().collect::<Vec<_>>());
    assert_eq!(read.source_records().collect::<Vec<_>>(), owned);
    assert_eq!(owned.len(), 2);
    read.check_consistency().unwrap();

    // A log written by a newer corridor is refused by name, not misread.
    owner
        .store()
        .write(|conn| {
            conn.execute(
                "UPDATE component_schema SET version = 99 WHERE component = 'mpi'",
                [],
            )?;
            Ok(())
        })
        .wait()
        .unwrap();
    let newer = reader
        .read(|conn| mpi::persist::load_snapshot(conn, config().matcher()))
        .err()
        .expect("a newer schema is refused");
    assert!(newer.to_string().contains("version 99"), "{newer}");
}
