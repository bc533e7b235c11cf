//! Enhanced mode end to end: the listener answers CA once a message is stored, and once
//! the pipeline has decided the message, the application acknowledgement MSH-16 asks for
//! is sent to the sender's own listener (here a second engine, which stores it).

use std::time::{Duration, Instant};

use engine::{Config, Engine};
use mllp::MllpClient;
use store::Store;

fn message(control: &str, msh15: &str, msh16: &str) -> Vec<u8> {
    format!(
        "MSH|^~\\&|LIS|LAB|EHR|HOSP|20240101120000||ORU^R01^ORU_R01|{control}|P|2.5.1|||{msh15}|{msh16}\r\
         PID|1||P1^^^HOSP^MR||DOE^JANE\r"
    )
    .into_bytes()
}

async fn start(dir: &std::path::Path, data: &str, toml: &str) -> Engine {
    let text = format!(
        "[data]\ndir = {:?}\n[http]\nenabled = false\n{toml}",
        dir.join(data).display().to_string()
    );
    Engine::start(Config::from_toml_in(&text, dir).unwrap())
        .await
        .unwrap()
}

/// (MSA-1, MSA-2, MSA-3) of every acknowledgement the sender's listener stored.
fn acknowledgements(store: &Store) -> Vec<(String, String, String)> {
    store
        .read(|conn| {
            let mut stmt = conn.prepare("SELECT raw FROM journal_raw ORDER BY id")?;
            let rows = stmt.query_map([], |r| r.get::<_, Vec<u8>>(0))?;
            Ok(rows
                .map(|raw| {
                    let raw = raw.unwrap();
                    let m = hl7v2::Message::parse(&raw).unwrap();
                    let get = |p: &str| m.get_str(p).unwrap().unwrap_or_default().into_owned();
                    (get("MSA-1"), get("MSA-2"), get("MSA-3"))
                })
                .collect())
        })
        .unwrap()
}

fn owed(store: &Store) -> i64 {
    store
        .read(|conn| {
            Ok(
                conn.query_row("SELECT count(*) FROM application_acks_owed", [], |r| {
                    r.get(0)
                })?,
            )
        })
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn application_acks_follow_the_pipeline_s_decision_and_msh_16() {
    let dir = tempfile::tempdir().unwrap();
    let sender_listener = start(
        dir.path(),
        "sender",
        "[channels.acks]\nsource = { type = \"mllp\", listen = \"127.0.0.1:0\" }\n",
    )
    .await;
    let ack_to = sender_listener.listeners()[0].addr;
    let engine = start(
        dir.path(),
        "corridor",
        &format!(
            r#"
[channels.lab]
source = {{ type = "mllp", listen = "127.0.0.1:0", ack_mode = "enhanced", application_ack_to = "{ack_to}" }}
transforms = [ {{ name = "refuse BAD", script = "if (msg.get('MSH-10') === 'BAD') throw new Error('BAD is refused');" }} ]
"#
        ),
    )
    .await;
    let mut client = MllpClient::connect(&engine.listeners()[0].addr.to_string(), None)
        .await
        .unwrap();
    for (control, msh16) in [
        ("OK", "AL"),
        ("BAD", "AL"),
        ("QUIET", "ER"),
        ("SUCCESS", "SU"),
    ] {
        let ack = client.send(&message(control, "AL", msh16)).await.unwrap();
        let ack = hl7v2::Message::parse(&ack).unwrap();
        assert_eq!(ack.get_str("MSA-1").unwrap().as_deref(), Some("CA"));
    }

    let started = Instant::now();
    while acknowledgements(sender_listener.store()).len() < 3 || owed(engine.store()) > 0 {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "application acknowledgements: {:?}, still owed: {}",
            acknowledgements(sender_listener.store()),
            owed(engine.store())
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
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
