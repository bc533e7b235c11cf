//! The patient index stage: enterprise ids on the work item, events written by the
//! stage's commit, merges through messages, and `[mpi]` configuration.

use std::sync::Arc;

use engine::stages::mpi::MpiStage;
use engine::{Stage, StageOutcome, Work};
use hl7v2::OwnedMessage;
use mpi::{MpiConfig, MpiService, SourceKey};
use store::{MessageId, Store, UnixMicros};

fn work(n: i64, raw: &str) -> Work {
    Work::new(
        MessageId(n),
        Arc::from("adt"),
        UnixMicros::now(),
        OwnedMessage::parse(raw.as_bytes()).unwrap(),
    )
}

/// Runs the stage and writes its commit as the pipeline would.
fn run(stage: &MpiStage, store: &Store, work: &mut Work) {
    match stage.run(work) {
        StageOutcome::Continue { commit } => {
            if let Some(commit) = commit {
                store.write(commit).wait().unwrap();
            }
        }
        StageOutcome::Stop { reason, .. } => panic!("stopped: {reason}"),
    }
}

fn adt(event: &str, control: &str, pid: &str, extra: &str) -> String {
    format!(
        "MSH|^~\\&|ADT|NORTH|CORRIDOR|HUB|20260101120000||ADT^{event}|{control}|P|2.5.1\r{pid}\r{extra}"
    )
}

#[test]
fn messages_get_enterprise_ids_and_the_events_are_durable() {
    let dir = tempfile::tempdir().unwrap();
    let config = MpiConfig {
        enabled: true,
        ..MpiConfig::default()
    };
    let store = Store::open(dir.path()).unwrap();
    let service = MpiService::open_blocking(store.clone(), config.clone()).unwrap();
    let stage = MpiStage::new(service.clone());
    assert_eq!(stage.name(), "mpi");

    let mut a = work(
        1,
        &adt(
            "A04",
            "1",
            "PID|1||4711^^^NORTH^MR||Smith^John||19800312|M|||12 High St^^Springfield^IL^62701||||||||123456789",
            "",
        ),
    );
    run(&stage, &store, &mut a);
    let smith = a.enterprise_id.clone().expect("an enterprise id");
    assert!(smith.starts_with('E'));

    let mut b = work(
        2,
        &adt(
            "A04",
            "2",
            "PID|1||4799^^^NORTH^MR||Smyth^Jonathan||19800321|M|||99 Low Rd^^Shelbyville^IL^62565",
            "",
        ),
    );
    run(&stage, &store, &mut b);
    let dup = b.enterprise_id.clone().unwrap();
    assert_ne!(smith, dup);

    // An ORU with a PID carries the patient's id as well.
    let mut c = work(
        3,
        "MSH|^~\\&|LAB|NORTH|EHR|HUB|20260101||ORU^R01|3|P|2.5.1\rPID|1||4711^^^NORTH^MR||Smith^John||19800312|M\rOBR|1\r",
    );
    run(&stage, &store, &mut c);
    assert_eq!(c.enterprise_id.as_deref(), Some(smith.as_str()));

    // A40 merges the duplicate, A37 undoes it.
    let mut m = work(
        4,
        &adt(
            "A40",
            "4",
            "PID|1||4711^^^NORTH^MR||Smith^John||19800312|M",
            "MRG|4799^^^NORTH^MR",
        ),
    );
    run(&stage, &store, &mut m);
    assert_eq!(m.enterprise_id.as_deref(), Some(smith.as_str()));
    service.read(|i| {
        assert_eq!(
            i.enterprise_of(&SourceKey::new("NORTH", "4799"))
                .map(|e| e.to_string()),
            Some(smith.clone())
        )
    });
    let mut u = work(
        5,
        &adt(
            "A37",
            "5",
            "PID|1||4711^^^NORTH^MR||Smith^John||19800312|M",
            "MRG|4799^^^NORTH^MR",
        ),
    );
    run(&stage, &store, &mut u);
    service.read(|i| {
        assert_eq!(
            i.enterprise_of(&SourceKey::new("NORTH", "4799"))
                .map(|e| e.to_string()),
            Some(dup.clone())
        )
    });

    // A message without a PID is left alone; one without PID-3 goes on without an id.
    let mut ack = work(6, "MSH|^~\\&|X|Y|Z|W|20260101||ACK|6|P|2.5.1\rMSA|AA|1\r");
    assert!(matches!(
        stage.run(&mut ack),
        StageOutcome::Continue { commit: None }
    ));
    assert_eq!(ack.enterprise_id, None);
    let mut bare = work(7, &adt("A08", "7", "PID|1||||Doe^Jane", ""));
    assert!(matches!(
        stage.run(&mut bare),
        StageOutcome::Continue { commit: None }
    ));
    assert_eq!(bare.enterprise_id, None);

    // Everything the stage committed is what a restart sees.
    let before: Vec<_> = service.read(|i| i.source_records().collect());
    drop((stage, service));
    let again = MpiService::open_blocking(store, config).unwrap();
    let after: Vec<_> = again.read(|i| i.source_records().collect());
    assert_eq!(before, after);
    assert_eq!(after.len(), 2);
}

#[test]
fn mpi_configuration_keys() {
    let config = engine::Config::from_toml(
        "[mpi]\nenabled = true\nlink_threshold = 14.5\nreview_threshold = 6\n\n[channels.adt]\nsource = { type = \"mllp\", listen = \"127.0.0.1:0\" }\n",
    )
    .unwrap();
    assert!(config.mpi.enabled);
    assert_eq!(config.mpi.link_threshold, 14.5);
    assert_eq!(config.mpi.review_threshold, 6.0);
    let error = engine::Config::from_toml(
        "[mpi]\nlink_treshold = 3\n\n[channels.adt]\nsource = { type = \"mllp\", listen = \"127.0.0.1:0\" }\n",
    )
    .unwrap_err()
    .to_string();
    assert!(error.contains("link_treshold"), "{error}");
    let error = engine::Config::from_toml(
        "[mpi]\nlink_threshold = 3\nreview_threshold = 8\n\n[channels.adt]\nsource = { type = \"mllp\", listen = \"127.0.0.1:0\" }\n",
    )
    .unwrap_err()
    .to_string();
    assert!(error.contains("review_threshold"), "{error}");
}
