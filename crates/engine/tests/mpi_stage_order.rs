//! Two channels share one patient index and write their batches in either order: a
//! crash after the later channel's write must leave a log the index rebuilds from.

use std::sync::Arc;

use engine::stages::mpi::MpiStage;
use engine::{Stage, StageOutcome, Work};
use hl7v2::OwnedMessage;
use mpi::{MpiConfig, MpiService, SourceKey};
use store::{MessageId, Store, UnixMicros};

fn work(n: i64, channel: &str, raw: &str) -> Work {
    Work::new(
        MessageId(n),
        Arc::from(channel),
        UnixMicros::now(),
        OwnedMessage::parse(raw.as_bytes()).unwrap(),
    )
}

fn config() -> MpiConfig {
    MpiConfig {
        enabled: true,
        ..MpiConfig::default()
    }
}

fn commit_of(outcome: StageOutcome) -> engine::Commit {
    match outcome {
        StageOutcome::Continue { commit } => commit.expect("the index changed"),
        StageOutcome::Stop { reason, .. } => panic!("stopped: {reason}"),
    }
}

const EHR: &str = "MSH|^~\\&|EHR|NORTH|CORRIDOR|HUB|20260101120000||ADT^A04^ADT_A01|1|P|2.5.1\rPID|1||4711^^^EHR^MR||Smith^John^Q^^^^L||19800312|M|||12 High St^^Springfield^IL^62701^USA||555-0100||||||123456789";
const LAB: &str = "MSH|^~\\&|LAB|NORTH|CORRIDOR|HUB|20260101120001||ADT^A04^ADT_A01|2|P|2.5.1\rPID|1||L-88^^^LAB^MR||Smith^John^^^^^L||19800312|M|||12 High St^^Springfield^IL^62701^USA||555-0100||||||123456789";

#[test]
fn the_later_channels_write_first_then_a_crash() {
    let dir = tempfile::tempdir().unwrap();
    let enterprise = {
        let store = Store::open(dir.path()).unwrap();
        let service = MpiService::open_blocking(store.clone(), config()).unwrap();
        let adt = MpiStage::new(service.clone());
        let lab = MpiStage::new(service.clone());
        let mut first = work(1, "adt", EHR);
        let mut second = work(2, "lab", LAB);
        let _first_commit = commit_of(adt.run(&mut first));
        let second_commit = commit_of(lab.run(&mut second));
        assert!(first.enterprise_id.is_some());
        assert_eq!(first.enterprise_id, second.enterprise_id);
        // Only the lab channel's batch reaches the store before the engine dies.
        store.write(second_commit).wait().unwrap();
        first.enterprise_id.unwrap()
    };
    let store = Store::open(dir.path()).unwrap();
    let service = MpiService::open_blocking(store.clone(), config())
        .expect("the index rebuilds from the stored log");
    service.read(|m| {
        let e = m.enterprise_of(&SourceKey::new("EHR", "4711")).unwrap();
        assert_eq!(e.to_string(), enterprise);
        assert_eq!(m.enterprise_of(&SourceKey::new("LAB", "L-88")), Some(e));
    });
    // The first message, never recorded processed, runs again: same enterprise id.
    let stage = MpiStage::new(service);
    let mut again = work(1, "adt", EHR);
    if let StageOutcome::Continue { commit: Some(c) } = stage.run(&mut again) {
        store.write(c).wait().unwrap();
    }
    assert_eq!(again.enterprise_id.as_deref(), Some(enterprise.as_str()));
}
