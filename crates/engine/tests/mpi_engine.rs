//! The patient index inside a running engine: messages arriving over MLLP are linked to
//! an enterprise patient, a transformer writes the enterprise id into the copy each
//! destination gets, the index answers over the engine's HTTP port, and a restart
//! keeps the same enterprise id.

use std::time::{Duration, Instant};

use engine::{Config, Engine};
use mllp::MllpClient;

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
    let text = format!(
        r#"
[data]
dir = {:?}
[http]
listen = "127.0.0.1:0"
[mpi]
enabled = true
[channels.adt]
source = {{ type = "mllp", listen = "127.0.0.1:0" }}
transforms = [ {{ set = "PID-3[2].1", value = "{{enterprise_id}}" }}, {{ set = "PID-3[2].5", value = "EI" }} ]
[[channels.adt.destinations]]
name = "archive"
type = "file"
path = "archive"
file_name = "{{control_id}}.hl7"
"#,
        dir.join("data").display().to_string()
    );
    Engine::start(Config::from_toml_in(&text, dir).unwrap())
        .await
        .unwrap()
}

/// PID-3[2].1 of the file the destination wrote for `control`, once it is there.
async fn delivered_enterprise_id(dir: &std::path::Path, control: &str) -> String {
    let file = dir.join("archive").join(format!("{control}.hl7"));
    let started = Instant::now();
    while !file.exists() {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "{control} never delivered"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let raw = std::fs::read(&file).unwrap();
    let message = hl7v2::Message::parse(&raw).unwrap();
    message.get_str("PID-3[2].1").unwrap().unwrap().into_owned()
}

async fn get(addr: std::net::SocketAddr, path: &str) -> (u16, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let request = format!("GET {path} HTTP/1.1\r\nHost: corridor\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer).await.unwrap();
    let text = String::from_utf8_lossy(&answer).into_owned();
    (text[9..12].parse().unwrap(), text)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_carry_their_enterprise_id_to_the_destinations() {
    let dir = tempfile::tempdir().unwrap();
    let engine = start(dir.path()).await;
    let mut client = MllpClient::connect(&engine.listeners()[0].addr.to_string(), None)
        .await
        .unwrap();
    for (event, control) in [("A01", "ADMIT-1"), ("A08", "UPDATE-1")] {
        let ack = client.send(&adt(event, control)).await.unwrap();
        let ack = hl7v2::Message::parse(&ack).unwrap();
        assert_eq!(ack.get_str("MSA-1").unwrap().as_deref(), Some("AA"));
    }
    let admitted = delivered_enterprise_id(dir.path(), "ADMIT-1").await;
    let updated = delivered_enterprise_id(dir.path(), "UPDATE-1").await;
    assert!(!admitted.is_empty());
    assert_eq!(
        admitted, updated,
        "the same patient, the same enterprise id"
    );

    let http = engine.http_addr().unwrap();
    let (status, body) = get(http, &format!("/mpi/patients/{admitted}")).await;
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("MRN77"), "{body}");
    let (status, body) = get(
        http,
        "/mpi/fhir/Patient/$ihe-pix?sourceIdentifier=HOSP%7CMRN77",
    )
    .await;
    assert_eq!(status, 200, "{body}");
    engine.shutdown().await;

    // After a restart the index is rebuilt from its log: the next message of the same
    // patient gets the same enterprise id.
    let engine = start(dir.path()).await;
    let mut client = MllpClient::connect(&engine.listeners()[0].addr.to_string(), None)
        .await
        .unwrap();
    client.send(&adt("A08", "UPDATE-2")).await.unwrap();
    assert_eq!(
        delivered_enterprise_id(dir.path(), "UPDATE-2").await,
        admitted
    );
    engine.shutdown().await;
}
