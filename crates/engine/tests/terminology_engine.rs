//! Code mapping through running engines and real sockets: a lab channel maps local codes
//! to LOINC with the starter map; the message sent on over MLLP carries both codes, the
//! FHIR Observation both codings; a glucose result converted from mg/dL to mmol/L keeps
//! its original value and unit in an NTE after the OBX (the Observation's note); an unmapped code is counted in the report; the
//! report's CSV, filled in and loaded through the API, makes later messages map without
//! a restart; and a load made by another process (as `corridor terminology load` does
//! against the data directory) reaches the running channel at the next poll.

mod common;

use std::time::Duration;

use common::{Api, raw_messages, send_all, wait_for};
use serde_json::Value;
use store::Store;

fn oru(control: &str, local_code: &str, name: &str) -> Vec<u8> {
    format!(
        "MSH|^~\\&|LIS|LAB|EHR|HOSP|20240101120000||ORU^R01^ORU_R01|{control}|P|2.5.1\r\
         PID|1||P{control}^^^HOSP^MR||DOE^JANE\r\
         OBR|1||F{control}|PANEL^Panel^L\r\
         OBX|1|NM|GLU^Glucose^L||95|mg/dL|||||F\r\
         OBX|2|NM|{local_code}^{name}^L||7.1|%|||||F\r"
    )
    .into_bytes()
}

/// The OBX-3 values of the message with control id `control` in `store`'s journal.
fn obx3_of(store: &Store, control: &str) -> Option<Vec<String>> {
    raw_messages(store).iter().find_map(|raw| {
        let m = hl7v2::Message::parse(raw).unwrap();
        (m.control_id() == control).then(|| {
            let path: hl7v2::Path = "OBX[*]-3".parse().unwrap();
            path.values_in(&m)
                .into_iter()
                .map(|e| String::from_utf8_lossy(e.raw()).into_owned())
                .collect()
        })
    })
}

/// The message with control id `control` in `store`'s journal.
fn message_of(store: &Store, control: &str) -> Option<Vec<u8>> {
    raw_messages(store)
        .into_iter()
        .find(|raw| hl7v2::Message::parse(raw).is_ok_and(|m| m.control_id() == control))
}

async fn api(addr: std::net::SocketAddr, method: &str, path: &str, body: &[u8]) -> common::Answer {
    common::http(addr, method, path, &[("X-Corridor-User", "ana")], body).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn local_codes_reach_downstream_and_fhir_with_loinc_beside_them_and_unmapped_ones_are_reported_and_fixed_live()
 {
    let dir = tempfile::tempdir().unwrap();
    let downstream = common::start_engine(
        dir.path(),
        "down",
        Api::Off,
        "[channels.ehr]\nsource = { type = \"mllp\", listen = \"127.0.0.1:0\", duplicate_window = \"off\" }\n",
    )
    .await;
    let down_addr = downstream.listeners()[0].addr;
    let upstream = common::start_engine(
        dir.path(),
        "up",
        Api::On,
        &format!(
            r#"
[terminology]
reload_interval = "100ms"

[channels.lab]
source = {{ type = "mllp", listen = "127.0.0.1:0" }}
map = {{ fields = ["OBX-3"], unmapped = "flag", conversions = [{{ system = "LN", code = "2345-7", from = "mg/dL", to = "mmol/L", divide_by = "18.016", decimals = 2 }}] }}
fhir = {{ repository = true, timezone = "Z" }}

[[channels.lab.destinations]]
name = "ehr"
type = "mllp"
to = "{down_addr}"
"#
        ),
    )
    .await;
    let up = upstream.listeners()[0].addr;
    let http = upstream.http_addr().unwrap();

    // 1. GLU maps through the starter map; A1C7 is not in it.
    send_all(up, &[oru("M1", "A1C7", "Hemoglobin A1c")]).await;
    wait_for("M1 downstream", Duration::from_secs(30), || {
        obx3_of(downstream.store(), "M1").is_some()
    })
    .await;
    let obx3 = obx3_of(downstream.store(), "M1").unwrap();
    assert_eq!(
        obx3[0], "2345-7^Glucose [Mass/volume] in Serum or Plasma^LN^GLU^Glucose^L",
        "the LOINC code first, the local one kept as the alternate"
    );
    assert_eq!(
        obx3[1], "A1C7^Hemoglobin A1c^L",
        "unmapped: left as it came"
    );
    // Glucose converted, 95 mg/dL / 18.016 = 5.273..., with the original unit kept as
    // OBX-6's alternate and the original result in an NTE right after the OBX.
    let sent = message_of(downstream.store(), "M1").unwrap();
    let m = hl7v2::OwnedMessage::parse(&sent).unwrap();
    let text = |p: &str| m.get_text(&p.parse().unwrap()).unwrap_or_default();
    assert_eq!(text("OBX[1]-5"), "5.27");
    assert_eq!(
        text("OBX[1]-6"),
        "mmol/L^mmol/L^UCUM^mg/dL",
        "the unit as sent kept"
    );
    let names: Vec<&[u8]> = m.segment_names().collect();
    assert_eq!(
        names,
        [&b"MSH"[..], b"PID", b"OBR", b"OBX", b"NTE", b"OBX"],
        "the note follows the converted OBX"
    );
    assert_eq!(
        text("NTE-3"),
        "Original result: 95 mg/dL (converted to mmol/L by Corridor)"
    );
    assert_eq!(text("OBX[2]-5"), "7.1", "not glucose: not converted");

    // The FHIR Observation carries both codings.
    let mut observation = Value::Null;
    wait_for("the Observation", Duration::from_secs(30), || {
        let answer = futures_lite(common::get(
            http,
            "/fhir/Observation?code=http://loinc.org|2345-7",
        ));
        let bundle = answer.json();
        if bundle["total"].as_u64() == Some(1) {
            observation = bundle["entry"][0]["resource"].clone();
            true
        } else {
            false
        }
    })
    .await;
    let codings = observation["code"]["coding"].as_array().unwrap();
    assert_eq!(codings.len(), 2, "{observation}");
    assert_eq!(codings[0]["system"], "http://loinc.org");
    assert_eq!(codings[0]["code"], "2345-7");
    assert_eq!(codings[1]["code"], "GLU", "{observation}");
    assert_eq!(codings[1]["display"], "Glucose");
    // The converted value, and the original in the Observation's note.
    assert_eq!(observation["valueQuantity"]["value"], 5.27, "{observation}");
    assert_eq!(
        observation["valueQuantity"]["code"], "mmol/L",
        "{observation}"
    );
    assert_eq!(
        observation["note"][0]["text"],
        "Original result: 95 mg/dL (converted to mmol/L by Corridor)",
        "{observation}"
    );

    // 2. The unmapped code is in the report, counted per message.
    send_all(up, &[oru("M2", "A1C7", "Hemoglobin A1c")]).await;
    wait_for("M2 downstream", Duration::from_secs(30), || {
        obx3_of(downstream.store(), "M2").is_some()
    })
    .await;
    let answer = api(http, "GET", "/api/terminology/unmapped", b"").await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    let report = answer.json();
    let rows = report["unmapped"].as_array().unwrap();
    let row = rows
        .iter()
        .find(|r| r["code"] == "A1C7")
        .unwrap_or_else(|| panic!("{report}"));
    assert_eq!(row["count"], 2);
    assert_eq!(row["sender"], "LIS@LAB");
    assert_eq!(row["field"], "OBX-3");
    // Flagged: counted as a warning in the data-quality counters.
    let warnings = common::count(
        upstream.store(),
        "SELECT coalesce(sum(count), 0) FROM data_quality WHERE severity = 'warning'",
    );
    assert_eq!(warnings, 2);

    // 3. The analyst fills in the CSV and loads it back: later messages map, no restart.
    let csv = api(http, "GET", "/api/terminology/unmapped?format=csv", b"").await;
    assert_eq!(csv.status, 200);
    let filled: String = csv
        .body
        .lines()
        .map(|line| {
            if line.starts_with("L,A1C7,") {
                line.replacen(
                    ",,,,,LIS@LAB",
                    ",http://loinc.org,4548-4,Hemoglobin A1c/Hemoglobin.total in Blood,equivalent,LIS@LAB",
                    1,
                )
            } else {
                line.to_owned()
            }
        })
        .collect::<Vec<_>>()
        .join("\n");
    assert!(filled.contains("4548-4"), "{filled}");
    let loaded = api(
        http,
        "POST",
        "/api/terminology?name=lab-fixes.csv",
        filled.as_bytes(),
    )
    .await;
    assert_eq!(loaded.status, 201, "{}", loaded.body);
    send_all(up, &[oru("M3", "A1C7", "Hemoglobin A1c")]).await;
    wait_for("M3 downstream", Duration::from_secs(30), || {
        obx3_of(downstream.store(), "M3").is_some()
    })
    .await;
    assert_eq!(
        obx3_of(downstream.store(), "M3").unwrap()[1],
        "4548-4^Hemoglobin A1c/Hemoglobin.total in Blood^LN^A1C7^Hemoglobin A1c^L"
    );
    let report = api(http, "GET", "/api/terminology/unmapped", b"")
        .await
        .json();
    let row = report["unmapped"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["code"] == "A1C7")
        .cloned()
        .unwrap();
    assert_eq!(row["count"], 2, "no longer unmapped");

    // 4. A load stored by another process (the CLI against the data directory) is put
    // in force at the next poll (the version is read before the load: a poll between
    // the load and the read would otherwise leave nothing newer to wait for).
    let version = upstream.terminology().version_in_force();
    let other = terminology::TerminologyService::new(upstream.store().clone(), false);
    other
        .load(
            "cli.csv",
            vec![terminology::LoadFile {
                name: "cli.csv".into(),
                text: "source_system,source_code,target_system,target_code,target_display,equivalence\n\
                       L,VITD7,http://loinc.org,1989-3,25-Hydroxyvitamin D3 [Mass/volume] in Serum or Plasma,equivalent\n"
                    .into(),
            }],
            terminology::MapScope::everywhere(),
            "cli",
        )
        .await
        .unwrap();
    wait_for("the poll", Duration::from_secs(30), || {
        upstream.terminology().version_in_force() > version
    })
    .await;
    send_all(up, &[oru("M4", "VITD7", "Vitamin D")]).await;
    wait_for("M4 downstream", Duration::from_secs(30), || {
        obx3_of(downstream.store(), "M4").is_some()
    })
    .await;
    assert_eq!(
        obx3_of(downstream.store(), "M4").unwrap()[1],
        "1989-3^25-Hydroxyvitamin D3 [Mass/volume] in Serum or Plasma^LN^VITD7^Vitamin D^L"
    );
    upstream.shutdown().await;
    downstream.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_quarantine_policy_stops_a_message_with_an_unmapped_code() {
    let dir = tempfile::tempdir().unwrap();
    let engine = common::start_engine(
        dir.path(),
        "data",
        Api::Off,
        r#"
[channels.lab]
source = { type = "mllp", listen = "127.0.0.1:0" }
map = { fields = ["OBX-3"], unmapped = "quarantine" }
"#,
    )
    .await;
    send_all(
        engine.listeners()[0].addr,
        &[oru("Q1", "NOPE", "Nope"), oru("Q2", "GLU", "Glucose")],
    )
    .await;
    let store = engine.store().clone();
    wait_for("both decided", Duration::from_secs(30), || {
        common::count(
            &store,
            "SELECT count(*) FROM journal WHERE state IN ('quarantined', 'processed')",
        ) == 2
    })
    .await;
    assert_eq!(common::count(&store, "SELECT count(*) FROM quarantine"), 1);
    let reason: String = store
        .read(|c| {
            Ok(c.query_row(
                "SELECT state_reason FROM journal WHERE state = 'quarantined'",
                [],
                |r| r.get(0),
            )?)
        })
        .unwrap();
    assert!(
        reason.starts_with("map: 1 code(s) without a mapping"),
        "{reason}"
    );
    engine.shutdown().await;
}

/// Runs an async call to completion from inside `wait_for`'s synchronous check.
fn futures_lite<F: std::future::Future>(future: F) -> F::Output {
    tokio::task::block_in_place(|| tokio::runtime::Handle::current().block_on(future))
}

#[test]
fn invalid_map_and_terminology_settings_fail_at_start_naming_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let bad_policy = common::config_text(
        dir.path(),
        "data",
        Api::Off,
        "[channels.lab]\nsource = { type = \"mllp\", listen = \"127.0.0.1:0\" }\nmap = { fields = [\"OBX-3\"], unmapped = \"drop\" }\n",
    );
    let error = engine::Config::from_toml_in(&bad_policy, dir.path())
        .unwrap_err()
        .to_string();
    assert!(error.contains("channels.lab.map"), "{error}");
    assert!(error.contains("pass, flag or quarantine"), "{error}");

    let bad_field = common::config_text(
        dir.path(),
        "data",
        Api::Off,
        "[terminology]\nfiles = [\"missing.csv\"]\n[channels.lab]\nsource = { type = \"mllp\", listen = \"127.0.0.1:0\" }\nmap = { fields = [\"OBX\"] }\n",
    );
    let errors = engine::Config::from_toml_in(&bad_field, dir.path())
        .unwrap_err()
        .to_string();
    assert!(errors.contains("channels.lab.map.fields[0]"), "{errors}");
    assert!(errors.contains("terminology.files[0]"), "{errors}");
}
