//! Validation before the ACK through a real MLLP socket and a real data directory: a
//! message with error findings is answered AE (AR when its type is not supported) with
//! one ERR segment per finding naming the location, stored as rejected with the findings
//! as its reason, quarantined and counted, all in the write that stores it.

mod common;

use std::sync::Arc;

use common::count;
use engine::{ChannelMetrics, Config, MllpReceiver};
use quarantine::ChannelValidation;
use store::Store;

fn oru(control: &str, value: &str) -> Vec<u8> {
    common::oru_with_value(control, value).into_bytes()
}

struct Running {
    _dir: tempfile::TempDir,
    store: Store,
    addr: String,
    server: mllp::ServerHandle,
}

async fn start(validation: ChannelValidation) -> Running {
    let (dir, store) = common::migrated_store().await;
    quarantine::Quarantine::migrate(&store).await.unwrap();
    let intake = common::intake(
        "lab",
        &store,
        Default::default(),
        Arc::new(ChannelMetrics::default()),
    )
    .validating(Arc::new(validation));
    let server = mllp::MllpServer::bind("lab", mllp::MllpServerConfig::new("127.0.0.1:0"))
        .await
        .unwrap();
    let addr = server.local_addr().to_string();
    let server = server.spawn(MllpReceiver::with_intake(intake));
    Running {
        _dir: dir,
        store,
        addr,
        server,
    }
}

async fn send(addr: &str, message: &[u8]) -> String {
    let mut client = mllp::MllpClient::connect(addr, None).await.unwrap();
    let ack = client.send(message).await.unwrap();
    String::from_utf8(ack.to_vec()).unwrap()
}

/// (state, reason) of each journal row, oldest first.
fn journal(store: &Store) -> Vec<(String, Option<String>)> {
    common::rows(
        store,
        "SELECT state, state_reason FROM journal ORDER BY id",
        [],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )
}

#[tokio::test]
async fn an_invalid_message_is_answered_with_err_segments_and_stored_as_rejected() {
    let running = start(ChannelValidation::default()).await;

    let ack = send(&running.addr, &oru("V1", "13.2")).await;
    assert!(ack.contains("MSA|AA|V1"), "{ack}");

    let ack = send(&running.addr, &oru("V2", "high")).await;
    assert!(ack.contains("MSA|AE|V2"), "{ack}");
    // ERR-2 names OBX, its first occurrence, field 5; ERR-3 the 0357 code; ERR-4 E.
    let err = ack
        .split('\r')
        .find(|s| s.starts_with("ERR|"))
        .unwrap_or_else(|| panic!("no ERR segment: {ack}"));
    assert!(err.starts_with("ERR||OBX^1^5"), "{err}");
    assert!(err.contains("|102^Data type error^HL70357|E|"), "{err}");
    assert!(err.contains("OBX-5"), "{err}");

    // Stored as rejected, with the findings as the reason; quarantined and counted in
    // the same write.
    let rows = journal(&running.store);
    assert_eq!(rows[0].0, "received");
    assert_eq!(rows[1].0, "rejected");
    let reason = rows[1].1.clone().unwrap();
    assert!(
        reason.starts_with("validation before the ACK: 1 error: "),
        "{reason}"
    );
    assert!(reason.contains("OBX-5"), "{reason}");
    assert!(
        !reason.contains("high"),
        "no message values in the reason: {reason}"
    );
    assert_eq!(
        count(
            &running.store,
            "SELECT count(*) FROM quarantine WHERE message_id = 2 AND status = 'open'"
        ),
        1
    );
    assert_eq!(
        count(
            &running.store,
            "SELECT validated FROM data_quality_messages WHERE channel = 'lab'"
        ),
        2
    );
    assert_eq!(
        count(
            &running.store,
            "SELECT with_errors FROM data_quality_messages WHERE channel = 'lab'"
        ),
        1
    );

    // A corrected resend under the same control id is heard (rejected rows are never
    // duplicates).
    let ack = send(&running.addr, &oru("V2", "14.0")).await;
    assert!(ack.contains("MSA|AA|V2"), "{ack}");
    assert_eq!(journal(&running.store).len(), 3);
    running.server.shutdown().await;
}

#[tokio::test]
async fn an_unsupported_message_type_is_rejected_with_ar() {
    let running = start(ChannelValidation::default()).await;
    let message = b"MSH|^~\\&|LAB|F|EHR|F|20240315||ADT^Z99|U1|P|2.5.1\rPID|1||42^^^H^MR\r";
    let ack = send(&running.addr, message).await;
    assert!(ack.contains("MSA|AR|U1"), "{ack}");
    assert!(ack.contains("ERR||MSH^1^9"), "{ack}");
    assert!(ack.contains("201^Unsupported event code^HL70357"), "{ack}");
    assert_eq!(journal(&running.store)[0].0, "rejected");
    running.server.shutdown().await;
}

#[tokio::test]
async fn a_profile_is_loaded_at_start_and_a_missing_one_names_its_key() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("lab.toml"),
        "name = \"lab\"\n[[rule]]\npath = \"PID-8\"\nrequired = true\n",
    )
    .unwrap();
    let text = |profile: &str| {
        format!(
            "[channels.lab]\nsource = {{ type = \"mllp\", listen = \"127.0.0.1:0\" }}\n\
             [channels.lab.validation]\nmode = \"before_ack\"\nprofile = \"{profile}\"\n"
        )
    };
    let config = Config::from_toml_in(&text("lab.toml"), dir.path()).unwrap();
    let mut cache = quarantine::ProfileCache::new();
    let validation = config.channels["lab"]
        .validation
        .as_ref()
        .unwrap()
        .build("lab", dir.path(), &mut cache)
        .unwrap();
    assert_eq!(validation.profile.as_ref().unwrap().name, "lab");

    // The profile's rule makes PID-8 required: the message without it is answered AE.
    let running = start(validation).await;
    let ack = send(&running.addr, &oru("P1", "13.2")).await;
    assert!(ack.contains("MSA|AE|P1"), "{ack}");
    assert!(ack.contains("ERR||PID^1^8"), "{ack}");
    running.server.shutdown().await;

    let missing = Config::from_toml_in(&text("nowhere.toml"), dir.path()).unwrap_err();
    let words = missing.to_string();
    assert!(words.contains("channels.lab.validation.profile"), "{words}");
    assert!(words.contains("does not exist"), "{words}");

    std::fs::write(dir.path().join("bad.toml"), "rules = 3\n").unwrap();
    let invalid = Config::from_toml_in(&text("bad.toml"), dir.path()).unwrap_err();
    let words = invalid.to_string();
    assert!(words.contains("channels.lab.validation.profile"), "{words}");
    assert!(words.contains("does not load"), "{words}");
}
