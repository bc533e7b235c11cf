//! Validation after the ACK, through a running engine: a CDC immunization message without
//! its birth date is acknowledged, fails the real NIST IZ conformance profile in the
//! pipeline, and waits in quarantine with its findings (counted in data quality), while a
//! valid one reaches the file destination. An analyst corrects and reprocesses it; the
//! corrected message goes through the channel again and reaches the destination.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use engine::{Config, Engine};
use mllp::MllpClient;
use quarantine::{ChannelValidation, DataQualityFilter, Quarantine, QuarantineFilter, Validators};
use store::{MessageId, MessageState, Store};

fn crates_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn iz_profile() -> PathBuf {
    crates_dir().join("hl7v2-spec/tests/profiles/real/iz/immunization-profile.xml")
}

fn adult(name: &str) -> Vec<u8> {
    std::fs::read(crates_dir().join(format!("../tests/corpus/public/cdc-iis-open-tools/{name}")))
        .unwrap()
}

fn without_birth_date(message: &[u8]) -> Vec<u8> {
    let text = String::from_utf8(message.to_vec()).unwrap();
    assert_eq!(text.matches("|19840615|").count(), 1);
    text.replacen("|19840615|", "||", 1).into_bytes()
}

fn state_of(store: &Store, id: MessageId) -> MessageState {
    store.journal().get(id).unwrap().unwrap().entry.state
}

async fn wait_for(what: &str, mut done: impl FnMut() -> bool) {
    // Generous: the machine is shared; this bounds a hang, it measures nothing.
    let limit = Duration::from_secs(30);
    let start = Instant::now();
    while !done() {
        assert!(start.elapsed() < limit, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8(bytes.to_vec()).unwrap()
}

/// The files the destination wrote, by name (the journal id), as text.
fn delivered_files(dir: &Path) -> Vec<String> {
    let mut files: Vec<PathBuf> = match std::fs::read_dir(dir) {
        Ok(entries) => entries.map(|e| e.unwrap().path()).collect(),
        Err(_) => return Vec::new(),
    };
    files.sort();
    files
        .iter()
        .map(|p| text(&std::fs::read(p).unwrap()))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_failing_its_profile_after_the_ack_is_quarantined_fixed_and_delivered() {
    let dir = tempfile::tempdir().unwrap();
    let toml = format!(
        r#"
[data]
dir = {data:?}
[http]
enabled = false
[channels.iz]
# The CDC samples share one control id; here they are different messages.
source = {{ type = "mllp", listen = "127.0.0.1:0", duplicate_window = "off" }}
[channels.iz.validation]
mode = "after_ack"
profile = {profile:?}
[[channels.iz.destinations]]
name = "registry"
type = "file"
path = "registry"
file_name = "{{message_id}}.hl7"
"#,
        data = dir.path().join("data").display().to_string(),
        profile = iz_profile().display().to_string(),
    );
    let config = Config::from_toml_in(&toml, dir.path()).unwrap();
    let engine = Engine::start(config).await.unwrap();
    let store = engine.store().clone();
    let addr = engine.listeners()[0].addr;
    let out = dir.path().join("registry");

    let good = adult("Adult_z22_New_Covid_vaccine.hl7");
    let bad = without_birth_date(&adult("Adult_z22_non-vaccination_deferral.hl7"));
    let mut client = MllpClient::connect(&addr.to_string(), None).await.unwrap();
    for message in [&bad, &good] {
        // Validation comes after the ACK: both are accepted once stored.
        let ack = client.send(message).await.unwrap();
        let ack = hl7v2::Message::parse(&ack).unwrap();
        assert_eq!(ack.get_str("MSA-1").unwrap().as_deref(), Some("AA"));
    }
    let (bad_id, good_id) = (MessageId(1), MessageId(2));
    wait_for("the bad message to be quarantined", || {
        state_of(&store, bad_id) == MessageState::Quarantined
    })
    .await;
    wait_for("the good message to be delivered", || {
        state_of(&store, good_id) == MessageState::Delivered
    })
    .await;
    let reason = store
        .journal()
        .get(bad_id)
        .unwrap()
        .unwrap()
        .entry
        .state_reason;
    assert!(reason.unwrap().contains("VXU_V04.PID-7"));
    assert_eq!(delivered_files(&out), [text(&good)]);

    let validation = ChannelValidation {
        profile: Some(Arc::new(
            hl7v2_spec::validate::Profile::load(iz_profile()).unwrap(),
        )),
        ..ChannelValidation::default()
    };
    let q = Quarantine::new(store.clone(), Validators::new().with("iz", validation));
    let entries = q
        .list(
            QuarantineFilter {
                channel: Some("iz".into()),
                ..QuarantineFilter::default()
            },
            10,
        )
        .await
        .unwrap();
    assert_eq!(entries.len(), 1);
    assert_eq!(entries[0].message_id, bad_id.0);
    assert_eq!(entries[0].first_errors[0].path, "VXU_V04.PID-7");

    // Both messages were counted, in the transactions that processed them.
    let (messages, findings) = q
        .data_quality(DataQualityFilter {
            channel: Some("iz".into()),
            ..DataQualityFilter::default()
        })
        .await
        .unwrap();
    assert_eq!(messages.len(), 1);
    assert_eq!(messages[0].validated, 2);
    assert_eq!(messages[0].with_errors, 1);
    let pid7 = findings
        .iter()
        .find(|f| f.path == "VXU_V04.PID-7")
        .expect("the missing birth date is counted");
    assert_eq!((pid7.count, pid7.severity.as_str()), (1, "error"));
    let metrics = quarantine::prometheus_text(&store).unwrap();
    assert!(metrics.contains("path=\"VXU_V04.PID-7\",code=\"101\",severity=\"error\"} 1\n"));

    // The analyst puts the birth date back and reprocesses; the pipeline takes it up (the
    // notifier is not wired here, so the processor's idle poll finds it).
    let fixed = adult("Adult_z22_non-vaccination_deferral.hl7");
    let edited = q
        .edit(
            entries[0].id,
            &fixed,
            "ana",
            "birth date from the registration desk",
        )
        .await
        .unwrap();
    assert!(edited.findings.iter().all(|f| !f.is_error()));
    let done = q
        .reprocess(&[entries[0].id], "ana", None, &|_: &str| {})
        .await
        .unwrap();
    let new_id = *done[0].result.as_ref().unwrap();
    wait_for("the corrected message to be delivered", || {
        state_of(&store, new_id) == MessageState::Delivered
    })
    .await;
    // The correction as stored: segment ends CR, no trailing blank line.
    let corrected = quarantine::normalize_content(&fixed);
    assert_ne!(corrected, fixed, "the sample ends with an empty line");
    assert_eq!(delivered_files(&out), [text(&good), text(&corrected)]);
    // The original stays as it came, quarantined; the entry says where it went.
    assert_eq!(state_of(&store, bad_id), MessageState::Quarantined);
    assert_eq!(store.journal().get(bad_id).unwrap().unwrap().raw, bad);
    let detail = q.get(entries[0].id).await.unwrap();
    assert_eq!(detail.summary.reprocessed_as, Some(new_id.0));
    let (messages, _) = q.data_quality(DataQualityFilter::default()).await.unwrap();
    assert_eq!(messages[0].validated, 3);
    assert_eq!(messages[0].with_errors, 1);
    engine.shutdown().await;
}
