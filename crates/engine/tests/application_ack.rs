//! Enhanced mode end to end: the listener answers CA once a message is stored, and once
//! the pipeline has decided the message, the application acknowledgement MSH-16 asks for
//! is sent to the sender's own listener (here a second engine, which stores it).

mod common;

use std::time::Duration;

use common::{Api, mllp_client, raw_messages, send_expecting, start_engine, wait_for};
use store::Store;

fn message(control: &str, msh15: &str, msh16: &str) -> Vec<u8> {
    format!(
        "MSH|^~\\&|LIS|LAB|EHR|HOSP|20240101120000||ORU^R01^ORU_R01|{control}|P|2.5.1|||{msh15}|{msh16}\r\
         PID|1||P1^^^HOSP^MR||DOE^JANE\r"
    )
    .into_bytes()
}

/// (MSA-1, MSA-2, MSA-3) of every acknowledgement the sender's listener stored.
fn acknowledgements(store: &Store) -> Vec<(String, String, String)> {
    raw_messages(store)
        .iter()
        .map(|raw| {
            let m = hl7v2::Message::parse(raw).unwrap();
            let get = |p: &str| m.get_str(p).unwrap().unwrap_or_default().into_owned();
            (get("MSA-1"), get("MSA-2"), get("MSA-3"))
        })
        .collect()
}

fn owed(store: &Store) -> i64 {
    common::count(store, "SELECT count(*) FROM application_acks_owed")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn application_acks_follow_the_pipeline_s_decision_and_msh_16() {
    let dir = tempfile::tempdir().unwrap();
    let sender_listener = start_engine(
        dir.path(),
        "sender",
        Api::Off,
        "[channels.acks]\nsource = { type = \"mllp\", listen = \"127.0.0.1:0\" }\n",
    )
    .await;
    let ack_to = sender_listener.listeners()[0].addr;
    let engine = start_engine(
        dir.path(),
        "corridor",
        Api::Off,
        &format!(
            r#"
[channels.lab]
source = {{ type = "mllp", listen = "127.0.0.1:0", ack_mode = "enhanced", application_ack_to = "{ack_to}" }}
transforms = [ {{ name = "refuse BAD", script = "if (msg.get('MSH-10') === 'BAD') throw new Error('BAD is refused');" }} ]
"#
        ),
    )
    .await;
    let mut client = mllp_client(engine.listeners()[0].addr).await;
    for (control, msh16) in [
        ("OK", "AL"),
        ("BAD", "AL"),
        ("QUIET", "ER"),
        ("SUCCESS", "SU"),
    ] {
        send_expecting(&mut client, &message(control, "AL", msh16), "CA").await;
    }

    wait_for(
        "three application acknowledgements and none still owed",
        Duration::from_secs(30),
        || acknowledgements(sender_listener.store()).len() >= 3 && owed(engine.store()) == 0,
    )
    .await;
    let mut got = acknowledgements(sender_listener.store());
    got.sort();
    assert_eq!(got.len(), 3, "{got:?}");
    assert_eq!((got[0].0.as_str(), got[0].1.as_str()), ("AA", "OK"));
    assert_eq!((got[1].0.as_str(), got[1].1.as_str()), ("AA", "SUCCESS"));
    assert_eq!((got[2].0.as_str(), got[2].1.as_str()), ("AE", "BAD"));
    assert!(got[2].2.contains("BAD is refused"), "{got:?}");

    engine.shutdown().await;
    sender_listener.shutdown().await;
}
