//! The patient index inside a running engine: messages arriving over MLLP are linked to
//! an enterprise patient, a transformer writes the enterprise id into the copy each
//! destination gets, the index answers over the engine's HTTP port, and a restart
//! keeps the same enterprise id.

mod common;

use std::time::Duration;

use common::{Api, send_all, start_engine, wait_for};
use engine::Engine;

fn adt(event: &str, control: &str) -> Vec<u8> {
    format!(
        "MSH|^~\\&|ADT|HOSP|EHR|HOSP|20240101120000||ADT^{event}^ADT_A01|{control}|P|2.5.1\r\
         EVN|{event}|20240101120000\r\
         PID|1||MRN77^^^HOSP&1.2.3&ISO^MR||RIVERA^ANA^M||19750312|F|||12 OAK ST^^SPRINGFIELD^IL^62704||^PRN^PH^^^217^5550100\r\
         PV1|1|I\r"
    )
    .into_bytes()
}

async fn start(dir: &std::path::Path) -> Engine {
    start_engine(
        dir,
        "data",
        Api::On,
        r#"
[mpi]
enabled = true
[channels.adt]
source = { type = "mllp", listen = "127.0.0.1:0" }
transforms = [ { set = "PID-3[2].1", value = "{enterprise_id}" }, { set = "PID-3[2].5", value = "EI" } ]
[[channels.adt.destinations]]
name = "archive"
type = "file"
path = "archive"
file_name = "{control_id}.hl7"
"#,
    )
    .await
}

/// PID-3[2].1 of the file the destination wrote for `control`, once it is there.
async fn delivered_enterprise_id(dir: &std::path::Path, control: &str) -> String {
    let file = dir.join("archive").join(format!("{control}.hl7"));
    wait_for(
        &format!("{control} to be delivered"),
        Duration::from_secs(30),
        || file.exists(),
    )
    .await;
    let raw = std::fs::read(&file).unwrap();
    let message = hl7v2::Message::parse(&raw).unwrap();
    message.get_str("PID-3[2].1").unwrap().unwrap().into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_carry_their_enterprise_id_to_the_destinations() {
    let dir = tempfile::tempdir().unwrap();
    let engine = start(dir.path()).await;
    send_all(
        engine.listeners()[0].addr,
        &[adt("A01", "ADMIT-1"), adt("A08", "UPDATE-1")],
    )
    .await;
    let admitted = delivered_enterprise_id(dir.path(), "ADMIT-1").await;
    let updated = delivered_enterprise_id(dir.path(), "UPDATE-1").await;
    assert!(!admitted.is_empty());
    assert_eq!(
        admitted, updated,
        "the same patient, the same enterprise id"
    );

    let http = engine.http_addr().unwrap();
    let answer = common::get(http, &format!("/mpi/patients/{admitted}")).await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    assert!(answer.body.contains("MRN77"), "{}", answer.body);
    let answer = common::get(
        http,
        "/mpi/fhir/Patient/$ihe-pix?sourceIdentifier=HOSP%7CMRN77",
    )
    .await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    engine.shutdown().await;

    // After a restart the index is rebuilt from its log: the next message of the same
    // patient gets the same enterprise id.
    let engine = start(dir.path()).await;
    send_all(engine.listeners()[0].addr, &[adt("A08", "UPDATE-2")]).await;
    assert_eq!(
        delivered_enterprise_id(dir.path(), "UPDATE-2").await,
        admitted
    );
    engine.shutdown().await;
}
