//! The stored event log stays a gap-free prefix of the index's events whatever order
//! the writes come in: a later message's write first (another channel's batch), a
//! message's write rolled back, a crash in between. And one process owns an index.

use mpi::hl7::action_of;
use mpi::{Applied, MpiConfig, MpiService, ServiceError, SourceKey};
use store::Store;

fn config() -> MpiConfig {
    MpiConfig {
        enabled: true,
        ..MpiConfig::default()
    }
}

fn open(dir: &std::path::Path) -> Result<MpiService, ServiceError> {
    MpiService::open_blocking(Store::open(dir).unwrap(), config())
}

/// Decides one message as the engine's stage does, without writing anything yet.
fn decide(service: &MpiService, raw: &str) -> Applied {
    let message = hl7v2::Message::parse(raw.as_bytes()).unwrap();
    let action = action_of(&message).unwrap().expect("has a PID");
    let control = message.control_id().into_owned();
    let event = mpi::hl7::trigger_event(&message);
    service.apply_message(action, &control, &event)
}

/// The stage's commit, in a write of its own.
fn commit(service: &MpiService) {
    let s = service.clone();
    service
        .store()
        .write(move |conn| s.persist_in(conn))
        .wait()
        .unwrap();
}

fn a04(app: &str, control: &str, pid: &str) -> String {
    format!(
        "MSH|^~\\&|{app}|NORTH|CORRIDOR|HUB|20260101120000||ADT^A04^ADT_A01|{control}|P|2.5.1\r\
         EVN|A04|20260101120000\r{pid}"
    )
}

const SMITH_EHR: &str = "PID|1||4711^^^EHR^MR||Smith^John^Q^^^^L||19800312|M|||12 High St^^Springfield^IL^62701^USA||555-0100||||||123456789";
const SMITH_LAB: &str = "PID|1||L-88^^^LAB^MR||Smith^John^^^^^L||19800312|M|||12 High St^^Springfield^IL^62701^USA||555-0100||||||123456789";
const JONES_EHR: &str = "PID|1||5000^^^EHR^MR||Jones^Mary^^^^^L||19720101|F|||9 Elm St^^Shelbyville^IL^62565^USA||555-0199||||||987654321";

fn stored_events(service: &MpiService) -> u64 {
    service.store().read(mpi::persist::event_count).unwrap()
}

#[test]
fn a_later_write_first_then_a_crash_leaves_no_hole_in_the_log() {
    let dir = tempfile::tempdir().unwrap();
    let (ehr, lab) = {
        let service = open(dir.path()).unwrap();
        // Channel one decides the EHR's patient, channel two then links the lab's record
        // to it; channel two's batch is written first and the engine dies before channel
        // one's write.
        let first = decide(&service, &a04("EHR", "1", SMITH_EHR));
        let second = decide(&service, &a04("LAB", "2", SMITH_LAB));
        let ehr = first.result.unwrap();
        let lab = second.result.unwrap();
        assert_eq!(ehr, lab, "the lab's record links to the EHR's patient");
        commit(&service);
        assert_eq!(
            stored_events(&service),
            (first.events.len() + second.events.len()) as u64,
            "the second write carried the first message's events too"
        );
        (ehr, lab)
    };
    // The restart rebuilds the same index: no gap stops the replay.
    let service = open(dir.path()).unwrap();
    service.read(|m| {
        let e = SourceKey::new("EHR", "4711");
        let l = SourceKey::new("LAB", "L-88");
        assert_eq!(m.enterprise_of(&e), Some(ehr));
        assert_eq!(m.enterprise_of(&l), Some(lab));
    });
    // The first message, still `received`, is processed again: it changes no link.
    let again = decide(&service, &a04("EHR", "1", SMITH_EHR));
    assert_eq!(again.result.unwrap(), ehr);
    commit(&service);
    let service = {
        drop(service);
        open(dir.path()).unwrap()
    };
    service.read(|m| assert_eq!(m.members(ehr).len(), 2));
}

#[test]
fn a_rolled_back_write_is_carried_by_the_next_one() {
    let dir = tempfile::tempdir().unwrap();
    let (smith, jones) = {
        let service = open(dir.path()).unwrap();
        let smith = decide(&service, &a04("EHR", "1", SMITH_EHR))
            .result
            .unwrap();
        // The message's processing write fails after the index's events joined it (the
        // pipeline then rolls back that message alone).
        let s = service.clone();
        let failed = service
            .store()
            .write(move |conn| {
                s.persist_in(conn)?;
                Err::<(), _>(store::Error::Refused("a later write of the message".into()))
            })
            .wait();
        assert!(failed.is_err());
        assert_eq!(stored_events(&service), 0, "nothing of it stayed");
        assert!(service.unsaved_events() > 0, "the service still holds them");

        let jones = decide(&service, &a04("EHR", "2", JONES_EHR))
            .result
            .unwrap();
        commit(&service);
        assert_ne!(smith, jones);
        (smith, jones)
    };
    let service = open(dir.path()).unwrap();
    service.read(|m| {
        assert_eq!(m.enterprise_of(&SourceKey::new("EHR", "4711")), Some(smith));
        assert_eq!(m.enterprise_of(&SourceKey::new("EHR", "5000")), Some(jones));
    });
}

#[test]
fn committed_events_are_forgotten_and_written_once() {
    let dir = tempfile::tempdir().unwrap();
    let service = open(dir.path()).unwrap();
    for n in 0..2_100u32 {
        // Two events' worth of patients each round (a record added and its update).
        let pid = format!(
            "PID|1||{n}^^^EHR^MR||Family{n}^Given{n}||19{:02}0101|F",
            n % 100
        );
        decide(&service, &a04("EHR", &n.to_string(), &pid));
        decide(&service, &a04("EHR", &n.to_string(), &pid));
        commit(&service);
    }
    let stored = stored_events(&service);
    assert!(stored >= 4_200, "{stored} events stored");
    assert!(
        service.unsaved_events() < 4_200,
        "{} events still held after their commits",
        service.unsaved_events()
    );
    drop(service);
    let service = open(dir.path()).unwrap();
    assert_eq!(service.read(|m| m.len()), 2_100);
}

#[test]
fn one_process_at_a_time_owns_an_index() {
    let dir = tempfile::tempdir().unwrap();
    let first = open(dir.path()).unwrap();
    match open(dir.path()) {
        Err(ServiceError::InUse(path)) => {
            assert!(path.to_string_lossy().ends_with(".mpi.lock"), "{path:?}");
        }
        Err(other) => panic!("expected InUse, got {other}"),
        Ok(_) => panic!("a second owner opened the index"),
    }
    drop(first);
    open(dir.path()).expect("free again once the first owner is gone");
}
