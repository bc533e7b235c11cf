//! HL7 v2 in, FHIR out, through a running engine: a lab result arriving over MLLP is
//! converted, stored in the clinical repository in the transaction that processes it,
//! and found by a FHIR client over the engine's HTTP port (patient by name, their
//! observations, `$everything`, the CapabilityStatement).

use std::time::{Duration, Instant};

use engine::{Config, Engine};
use mllp::MllpClient;
use serde_json::Value;

const ORU: &[u8] = include_bytes!("../../hl7v2/tests/data/oru_r01_1500.hl7");

async fn get(addr: std::net::SocketAddr, path: &str) -> (u16, Value) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let request = format!(
        "GET {path} HTTP/1.1\r\nHost: corridor\r\nAccept: application/fhir+json\r\nConnection: close\r\n\r\n"
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer).await.unwrap();
    let text = String::from_utf8_lossy(&answer);
    let status = text[9..12].parse().unwrap();
    let body = text.split_once("\r\n\r\n").map_or("", |(_, b)| b);
    let json = match (body.find('{'), body.rfind('}')) {
        (Some(a), Some(b)) => serde_json::from_str(&body[a..=b]).unwrap(),
        _ => Value::Null,
    };
    (status, json)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lab_result_received_over_mllp_is_served_as_fhir() {
    let dir = tempfile::tempdir().unwrap();
    let text = format!(
        r#"
[data]
dir = {:?}
[http]
listen = "127.0.0.1:0"
[channels.lab]
source = {{ type = "mllp", listen = "127.0.0.1:0" }}
fhir = {{ repository = true, timezone = "-05:00" }}
"#,
        dir.path().join("data").display().to_string()
    );
    let engine = Engine::start(Config::from_toml_in(&text, dir.path()).unwrap())
        .await
        .unwrap();
    let mut client = MllpClient::connect(&engine.listeners()[0].addr.to_string(), None)
        .await
        .unwrap();
    let raw: Vec<u8> = ORU
        .split(|&b| b == b'\n' || b == b'\r')
        .filter(|l| !l.is_empty())
        .flat_map(|l| l.iter().copied().chain([b'\r']))
        .collect();
    let ack = client.send(&raw).await.unwrap();
    let ack = hl7v2::Message::parse(&ack).unwrap();
    assert_eq!(ack.get_str("MSA-1").unwrap().as_deref(), Some("AA"));

    let http = engine.http_addr().unwrap();
    let started = Instant::now();
    let patients = loop {
        let (status, bundle) = get(http, "/fhir/Patient?family=Johnson").await;
        assert_eq!(status, 200, "{bundle}");
        if bundle["total"].as_u64() == Some(1) {
            break bundle;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "the patient never appeared: {bundle}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let patient = &patients["entry"][0]["resource"];
    assert_eq!(patient["resourceType"], "Patient");
    assert_eq!(patient["birthDate"], "2007-05-26");
    let id = patient["id"].as_str().unwrap();

    let (status, observations) =
        get(http, &format!("/fhir/Observation?patient=Patient/{id}")).await;
    assert_eq!(status, 200);
    let observation = &observations["entry"][0]["resource"];
    assert_eq!(
        observation["code"]["coding"][0]["code"], "10368-9",
        "{observations}"
    );
    assert_eq!(observation["valueQuantity"]["value"], 50, "{observation}");
    assert_eq!(
        observation["valueQuantity"]["code"], "ug/dL",
        "{observation}"
    );

    let (status, everything) = get(http, &format!("/fhir/Patient/{id}/$everything")).await;
    assert_eq!(status, 200);
    let types: Vec<&str> = everything["entry"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["resource"]["resourceType"].as_str())
        .collect();
    for wanted in [
        "Patient",
        "Observation",
        "DiagnosticReport",
        "ServiceRequest",
    ] {
        assert!(types.contains(&wanted), "{wanted} missing from {types:?}");
    }
    let (status, metadata) = get(http, "/fhir/metadata").await;
    assert_eq!(status, 200);
    assert_eq!(metadata["resourceType"], "CapabilityStatement");
    engine.shutdown().await;
}
