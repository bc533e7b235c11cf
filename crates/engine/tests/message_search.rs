//! Message search end to end: messages sent over MLLP to a channel with a file
//! destination, processed by the pipeline and delivered (which writes the search index), and found
//! through `GET /api/messages` by patient, name, order number, type, sender, time and
//! text; paging by id; JSON errors; each destination's entry with what it was sent.

mod common;

use std::time::Duration;

use common::{Api, get, send_all, wait_for};
use store::MessageState;

fn oru(control: &str, mrn: &str, family: &str, accession: &str) -> Vec<u8> {
    format!(
        "MSH|^~\\&|LIS|LAB|EHR|HOSP|20240101120000||ORU^R01^ORU_R01|{control}|P|2.5.1\r\
         PID|1||{mrn}^^^HOSP^MR||{family}^ANNA\r\
         ORC|RE|PLC-{control}|FIL-{control}\r\
         OBR|1|PLC-{control}|FIL-{control}|718-7^Hemoglobin^LN||||||||||||||||{accession}\r\
         OBX|1|NM|718-7^Hemoglobin^LN||13.2|g/dL|||||F\r"
    )
    .into_bytes()
}

fn ids(answer: &serde_json::Value) -> Vec<String> {
    answer["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["control_id"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn messages_are_found_by_patient_name_order_and_text() {
    let dir = tempfile::tempdir().unwrap();
    let engine = common::start_engine(
        dir.path(),
        "data",
        Api::On,
        r#"
[channels.lab]
source = { type = "mllp", listen = "127.0.0.1:0" }
[[channels.lab.destinations]]
name = "archive"
type = "file"
path = "archive"
file_name = "{message_id}.hl7"
"#,
    )
    .await;
    let mllp = engine.listeners()[0].addr;
    let http = engine.http_addr().unwrap();
    let mut messages: Vec<Vec<u8>> = (0..30)
        .map(|i| {
            oru(
                &format!("M{i:02}"),
                &format!("MRN{}", i % 3),
                if i == 7 { "QUILLFEATHER" } else { "DOE" },
                &format!("ACC{i:02}"),
            )
        })
        .collect();
    messages.push(common::adt_a08("ADT-1").into_bytes());
    send_all(mllp, &messages).await;
    let store = engine.store().clone();
    wait_for("processing", Duration::from_secs(30), || {
        common::count(
            &store,
            "SELECT count(*) FROM journal WHERE state NOT IN ('received', 'processed')",
        ) == 31
    })
    .await;
    let states = common::rows(
        &store,
        "SELECT state, coalesce(state_reason, '') FROM journal WHERE state <> 'delivered'",
        [],
        |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)),
    );
    assert!(states.is_empty(), "{states:?}");

    let by_name = get(http, "/api/messages?patient_name=quillf").await;
    assert_eq!(by_name.status, 200, "{}", by_name.body);
    assert_eq!(ids(&by_name.json()), ["M07"]);
    let by_accession = get(http, "/api/messages?order=ACC12").await.json();
    assert_eq!(ids(&by_accession), ["M12"]);
    let by_placer = get(http, "/api/messages?order=PLC-M03").await.json();
    assert_eq!(ids(&by_placer), ["M03"]);
    let by_filler = get(http, "/api/messages?order=FIL-M04").await.json();
    assert_eq!(ids(&by_filler), ["M04"]);
    let by_patient = get(http, "/api/messages?patient_id=MRN1&limit=100")
        .await
        .json();
    assert_eq!(ids(&by_patient).len(), 10);
    let adt = get(http, "/api/messages?type=ADT").await.json();
    assert_eq!(ids(&adt), ["ADT-1"]);
    let adt_a08 = get(http, "/api/messages?type=ADT%5EA08").await.json();
    assert_eq!(ids(&adt_a08), ["ADT-1"]);
    let lis = get(http, "/api/messages?sender=LIS&limit=100").await.json();
    assert_eq!(ids(&lis).len(), 30);
    let control = get(http, "/api/messages?control_id=M21").await.json();
    assert_eq!(ids(&control), ["M21"]);
    let text = get(http, "/api/messages?text=ACC29").await.json();
    assert_eq!(ids(&text), ["M29"]);
    let combined = get(
        http,
        "/api/messages?patient_id=MRN1&text=ACC10&state=delivered",
    )
    .await
    .json();
    assert_eq!(ids(&combined), ["M10"]);
    let nothing = get(http, "/api/messages?patient_id=MRN1&order=ACC12")
        .await
        .json();
    assert!(ids(&nothing).is_empty(), "M12 is MRN0's");
    let future = get(http, "/api/messages?since=2999-01-01").await.json();
    assert!(ids(&future).is_empty());
    let today = get(http, "/api/messages?since=2000-01-01T00:00:00Z&limit=500")
        .await
        .json();
    assert_eq!(ids(&today).len(), 31);

    // Keyset paging: pages of 7 meet every message once.
    let mut seen = Vec::new();
    let mut path = "/api/messages?sender=LIS&limit=7".to_owned();
    loop {
        let page = get(http, &path).await.json();
        seen.extend(ids(&page));
        match page["next_before"].as_i64() {
            Some(next) => path = format!("/api/messages?sender=LIS&limit=7&before={next}"),
            None => break,
        }
    }
    let mut expected: Vec<String> = (0..30).map(|i| format!("M{i:02}")).rev().collect();
    assert_eq!(seen, expected);
    expected.clear();

    // Times are RFC 3339 with their zone, beside the epoch microseconds.
    let first = &by_name.json()["messages"][0];
    let received = first["received"].as_str().unwrap();
    assert!(
        received.ends_with('Z') && received.contains('T'),
        "{received}"
    );
    assert!(first["received_at"].is_i64());

    // Bad input: a JSON error naming the parameter.
    for (path, word) in [
        ("/api/messages?since=yesterday", "since"),
        ("/api/messages?state=lost", "lost"),
        ("/api/messages?patient=1", "patient"),
        ("/api/messages?before=abc", "before"),
    ] {
        let answer = get(http, path).await;
        assert_eq!(answer.status, 400, "{path}: {}", answer.body);
        let error = answer.json()["error"].as_str().unwrap().to_owned();
        assert!(error.contains(word), "{path}: {error}");
    }

    // A message's detail: each destination's entry and what it was sent.
    let id = by_name.json()["messages"][0]["id"].as_i64().unwrap();
    let detail = get(http, &format!("/api/messages/{id}")).await.json();
    let destination = &detail["destinations"][0];
    assert_eq!(destination["destination"], "archive");
    assert_eq!(destination["state"], "delivered");
    assert!(
        destination["payload"]
            .as_str()
            .unwrap()
            .contains("QUILLFEATHER")
    );
    assert!(destination["acked"].as_str().unwrap().ends_with('Z'));
    assert_eq!(detail["state"], MessageState::Delivered.as_str());
    engine.shutdown().await;
}

/// A channel with no stage and no destination (an archive) stores its messages
/// `processed` on receipt, with no pipeline run after: its search keys are written in
/// the commit that stores them, so its messages are found by patient and order too.
#[tokio::test]
async fn an_archive_channel_s_messages_are_found_by_patient_and_order() {
    let dir = tempfile::tempdir().unwrap();
    let engine = common::start_engine(
        dir.path(),
        "data",
        Api::On,
        "[channels.archive]\nsource = { type = \"mllp\", listen = \"127.0.0.1:0\" }\n",
    )
    .await;
    let mllp = engine.listeners()[0].addr;
    let http = engine.http_addr().unwrap();
    let messages: Vec<Vec<u8>> = (0..6)
        .map(|i| {
            oru(
                &format!("A{i}"),
                &format!("MRN{}", i % 2),
                if i == 4 { "QUILLFEATHER" } else { "DOE" },
                &format!("ACC{i}"),
            )
        })
        .collect();
    send_all(mllp, &messages).await;
    let store = engine.store().clone();
    assert_eq!(
        common::count(
            &store,
            "SELECT count(*) FROM journal WHERE state = 'processed'"
        ),
        6
    );
    let found = |query: &'static str| async move {
        let mut found = ids(&get(http, &format!("/api/messages?{query}")).await.json());
        found.sort();
        found
    };
    assert_eq!(found("patient_id=MRN1").await, ["A1", "A3", "A5"]);
    assert_eq!(found("patient_name=quill").await, ["A4"]);
    assert_eq!(found("order=FIL-A2").await, ["A2"]);
    assert_eq!(found("order=ACC5").await, ["A5"]);
    engine.shutdown().await;
}
