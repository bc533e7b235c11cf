//! The terminology routes over a real socket and a real SQLite store: loads through
//! `POST /api/terminology` put in force at once, the FHIR terminology operations
//! answering as the FHIR specification's examples say, and the unmapped codes as JSON
//! and as the CSV to fill in.

use std::net::SocketAddr;

use serde_json::{Value, json};
use store::Store;
use terminology::TerminologyService;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const CONCEPT_MAP_101: &str =
    include_str!("../../terminology/tests/data/conceptmap-example-101.json");
const CODE_SYSTEM_EXAMPLE: &str =
    include_str!("../../terminology/tests/data/codesystem-example.json");

/// The pair the specification's `$translate` example translates (R4
/// `conceptmap-operation-translate`: `preliminary` of composition-status is `active`
/// of v3 ActStatus, equivalent), as the spec's `cm-composition-status-v3` maps it.
const COMPOSITION_STATUS_MAP: &str = r#"{
  "resourceType": "ConceptMap",
  "id": "cm-composition-status-v3",
  "url": "http://hl7.org/fhir/ConceptMap/cm-composition-status-v3",
  "name": "v3.map.CompositionStatus",
  "status": "draft",
  "group": [{
    "source": "http://hl7.org/fhir/composition-status",
    "target": "http://terminology.hl7.org/CodeSystem/v3-ActStatus",
    "element": [
      {"code": "preliminary", "target": [{"code": "active", "equivalence": "equivalent"}]},
      {"code": "final", "target": [{"code": "completed", "equivalence": "wider"}]}
    ]
  }]
}"#;

/// Two rows of the LOINC table (`Loinc.csv` columns), for the `$lookup` and
/// `$validate-code` examples, which use LOINC 1963-8.
const LOINC_TABLE: &str = "\"LOINC_NUM\",\"COMPONENT\",\"PROPERTY\",\"STATUS\",\"SHORTNAME\",\"LONG_COMMON_NAME\"\n\
\"1963-8\",\"Bicarbonate\",\"SCnc\",\"ACTIVE\",\"HCO3 SerPl-sCnc\",\"Bicarbonate [Moles/volume] in Serum or Plasma\"\n\
\"2345-7\",\"Glucose\",\"MCnc\",\"ACTIVE\",\"Glucose SerPl-mCnc\",\"Glucose [Mass/volume] in Serum or Plasma\"\n";

struct Server {
    addr: SocketAddr,
    store: Store,
    _dir: tempfile::TempDir,
}

async fn serve() -> Server {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    TerminologyService::migrate(&store).await.unwrap();
    let service = TerminologyService::new(store.clone(), true);
    service.refresh().unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let api = api::Api {
        terminology: Some(service),
        fhir_base: Some(format!("http://{addr}/fhir")),
        ..api::Api::new(store.clone())
    };
    tokio::spawn(async move { axum::serve(listener, api::router(api)).await.unwrap() });
    Server {
        addr,
        store,
        _dir: dir,
    }
}

async fn call(
    addr: SocketAddr,
    method: &str,
    path: &str,
    content_type: &str,
    body: &str,
) -> (u16, String) {
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let request = format!(
        "{method} {path} HTTP/1.1\r\nHost: test\r\nX-Corridor-User: ana\r\nContent-Type: {content_type}\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = Vec::new();
    stream.read_to_end(&mut response).await.unwrap();
    let text = String::from_utf8_lossy(&response).into_owned();
    let status = text[9..12].parse().unwrap();
    let body = text
        .split_once("\r\n\r\n")
        .map_or("", |(_, b)| b)
        .to_owned();
    // Chunked answers: the JSON or CSV is between the chunk sizes.
    (status, body)
}

fn json_of(body: &str) -> Value {
    let start = body.find('{').unwrap_or_else(|| panic!("no JSON: {body}"));
    let end = body.rfind('}').unwrap();
    serde_json::from_str(&body[start..=end]).unwrap()
}

async fn load(server: &Server, name: &str, text: &str) {
    let (status, body) = call(
        server.addr,
        "POST",
        &format!("/api/terminology?name={name}"),
        "text/plain",
        text,
    )
    .await;
    assert_eq!(status, 201, "{body}");
}

/// The value of parameter `name` (its `value[x]` or its parts).
fn param<'a>(parameters: &'a Value, name: &str) -> Vec<&'a Value> {
    parameters["parameter"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["name"] == name)
        .collect()
}

fn part<'a>(parameter: &'a Value, name: &str) -> &'a Value {
    parameter["part"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == name)
        .unwrap_or_else(|| panic!("no part {name} in {parameter}"))
}

/// With the terminology running, the CapabilityStatement lists its resources and
/// operations, and each answers.
#[tokio::test]
async fn the_capability_statement_lists_the_terminology_operations() {
    let server = serve().await;
    load(
        &server,
        "cm-composition-status-v3.json",
        COMPOSITION_STATUS_MAP,
    )
    .await;
    load(&server, "Loinc.csv", LOINC_TABLE).await;
    let (status, body) = call(server.addr, "GET", "/fhir/metadata", "text/plain", "").await;
    assert_eq!(status, 200, "{body}");
    let capability = json_of(&body);
    let resources = capability["rest"][0]["resource"].as_array().unwrap();
    let of = |ty: &str| {
        resources
            .iter()
            .find(|r| r["type"] == ty)
            .unwrap_or_else(|| panic!("{ty} not listed"))
    };
    for (ty, operation, path) in [
        (
            "ConceptMap",
            "translate",
            "/fhir/ConceptMap/$translate?system=http://hl7.org/fhir/composition-status&code=preliminary",
        ),
        (
            "CodeSystem",
            "lookup",
            "/fhir/CodeSystem/$lookup?system=http://loinc.org&code=1963-8",
        ),
        (
            "ValueSet",
            "validate-code",
            "/fhir/ValueSet/$validate-code?system=http://loinc.org&code=1963-8",
        ),
    ] {
        assert_eq!(of(ty)["operation"][0]["name"], operation, "{ty}");
        let (status, body) = call(server.addr, "GET", path, "text/plain", "").await;
        assert_eq!(status, 200, "{path}: {body}");
        assert_eq!(json_of(&body)["resourceType"], "Parameters", "{path}");
    }
    for ty in ["ConceptMap", "CodeSystem"] {
        let searched = of(ty)["interaction"]
            .as_array()
            .unwrap()
            .iter()
            .any(|i| i["code"] == "search-type");
        assert!(searched, "{ty}");
        let (status, body) =
            call(server.addr, "GET", &format!("/fhir/{ty}"), "text/plain", "").await;
        assert_eq!(status, 200, "{ty}: {body}");
        assert_eq!(json_of(&body)["type"], "searchset");
    }
    let (_, body) = call(
        server.addr,
        "GET",
        "/fhir/ConceptMap?url=http://hl7.org/fhir/ConceptMap/cm-composition-status-v3",
        "text/plain",
        "",
    )
    .await;
    assert_eq!(json_of(&body)["total"], 1, "{body}");
}

#[tokio::test]
async fn translate_answers_as_the_specification_example_by_get_and_post() {
    let server = serve().await;
    load(
        &server,
        "cm-composition-status-v3.json",
        COMPOSITION_STATUS_MAP,
    )
    .await;
    load(&server, "conceptmap-example-101.json", CONCEPT_MAP_101).await;

    // GET [base]/ConceptMap/$translate?system=http://hl7.org/fhir/composition-status
    //   &code=preliminary&source=...&target=... (the specification's example)
    let (status, body) = call(
        server.addr,
        "GET",
        "/fhir/ConceptMap/$translate?system=http://hl7.org/fhir/composition-status&code=preliminary\
         &source=http://hl7.org/fhir/ValueSet/composition-status&target=http://hl7.org/fhir/ValueSet/v3-ActStatus",
        "text/plain",
        "",
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let answer = json_of(&body);
    assert_eq!(answer["resourceType"], "Parameters");
    assert_eq!(param(&answer, "result")[0]["valueBoolean"], true);
    let m = param(&answer, "match")[0];
    assert_eq!(part(m, "equivalence")["valueCode"], "equivalent");
    assert_eq!(
        part(m, "concept")["valueCoding"],
        json!({"system": "http://terminology.hl7.org/CodeSystem/v3-ActStatus", "code": "active"})
    );

    // POST with Parameters: ConceptMap 101 maps home to H (equivalent) and old to OLD
    // (disjoint: result false, the comment kept).
    let request = json!({"resourceType": "Parameters", "parameter": [
        {"name": "url", "valueUri": "http://hl7.org/fhir/ConceptMap/101"},
        {"name": "coding", "valueCoding": {"system": "http://hl7.org/fhir/address-use", "code": "home"}}
    ]});
    let (status, body) = call(
        server.addr,
        "POST",
        "/fhir/ConceptMap/$translate",
        "application/fhir+json",
        &request.to_string(),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let answer = json_of(&body);
    assert_eq!(param(&answer, "result")[0]["valueBoolean"], true);
    let m = param(&answer, "match")[0];
    assert_eq!(part(m, "concept")["valueCoding"]["code"], "H");
    assert_eq!(
        part(m, "source")["valueUri"],
        "http://hl7.org/fhir/ConceptMap/101"
    );
    let (_, body) = call(
        server.addr,
        "GET",
        "/fhir/ConceptMap/$translate?system=http://hl7.org/fhir/address-use&code=old",
        "text/plain",
        "",
    )
    .await;
    let answer = json_of(&body);
    assert_eq!(param(&answer, "result")[0]["valueBoolean"], false);
    let m = param(&answer, "match")[0];
    assert_eq!(part(m, "equivalence")["valueCode"], "disjoint");
    assert!(
        part(m, "comment")["valueString"]
            .as_str()
            .unwrap()
            .contains("usablePeriod")
    );

    // No code: an OperationOutcome.
    let (status, body) = call(
        server.addr,
        "GET",
        "/fhir/ConceptMap/$translate?system=x",
        "text/plain",
        "",
    )
    .await;
    assert_eq!(status, 400);
    assert_eq!(json_of(&body)["resourceType"], "OperationOutcome");
}

#[tokio::test]
async fn lookup_and_validate_code_answer_as_the_specification_examples() {
    let server = serve().await;
    load(&server, "Loinc.csv", LOINC_TABLE).await;
    load(&server, "codesystem-example.json", CODE_SYSTEM_EXAMPLE).await;

    // GET [base]/CodeSystem/$lookup?system=http://loinc.org&code=1963-8
    let (status, body) = call(
        server.addr,
        "GET",
        "/fhir/CodeSystem/$lookup?system=http://loinc.org&code=1963-8",
        "text/plain",
        "",
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let answer = json_of(&body);
    assert_eq!(param(&answer, "name")[0]["valueString"], "LOINC");
    assert_eq!(
        param(&answer, "display")[0]["valueString"],
        "Bicarbonate [Moles/volume] in Serum or Plasma"
    );
    // The POST form of the example: a Parameters with a coding.
    let request = json!({"resourceType": "Parameters", "parameter": [
        {"name": "coding", "valueCoding": {"system": "http://loinc.org", "code": "1963-8"}}
    ]});
    let (status, body) = call(
        server.addr,
        "POST",
        "/fhir/CodeSystem/$lookup",
        "application/fhir+json",
        &request.to_string(),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        param(&json_of(&body), "display")[0]["valueString"],
        "Bicarbonate [Moles/volume] in Serum or Plasma"
    );

    // GET [base]/ValueSet/$validate-code?system=http://loinc.org&code=1963-8&display=test:
    // the specification's example answers result false with a message on the display.
    let (status, body) = call(
        server.addr,
        "GET",
        "/fhir/ValueSet/$validate-code?system=http://loinc.org&code=1963-8&display=test",
        "text/plain",
        "",
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let answer = json_of(&body);
    assert_eq!(param(&answer, "result")[0]["valueBoolean"], false);
    assert!(
        param(&answer, "message")[0]["valueString"]
            .as_str()
            .unwrap()
            .contains("display \"test\" is incorrect")
    );
    assert_eq!(
        param(&answer, "display")[0]["valueString"],
        "Bicarbonate [Moles/volume] in Serum or Plasma"
    );
    // The ACME example code system: chol-mmol is valid, chol-x is not.
    let request = json!({"resourceType": "Parameters", "parameter": [
        {"name": "url", "valueUri": "http://hl7.org/fhir/CodeSystem/example"},
        {"name": "code", "valueCode": "chol-mmol"}
    ]});
    let (_, body) = call(
        server.addr,
        "POST",
        "/fhir/ValueSet/$validate-code",
        "application/fhir+json",
        &request.to_string(),
    )
    .await;
    assert_eq!(param(&json_of(&body), "result")[0]["valueBoolean"], true);
    let (_, body) = call(
        server.addr,
        "GET",
        "/fhir/ValueSet/$validate-code?url=http://hl7.org/fhir/CodeSystem/example&code=chol-x",
        "text/plain",
        "",
    )
    .await;
    assert_eq!(param(&json_of(&body), "result")[0]["valueBoolean"], false);

    // Read and search.
    let (status, body) = call(
        server.addr,
        "GET",
        "/fhir/CodeSystem?url=http://loinc.org&_summary=true",
        "text/plain",
        "",
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let bundle = json_of(&body);
    assert_eq!(bundle["total"], 1);
    let id = bundle["entry"][0]["resource"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(bundle["entry"][0]["resource"].get("concept").is_none());
    let (status, body) = call(
        server.addr,
        "GET",
        &format!("/fhir/CodeSystem/{id}"),
        "text/plain",
        "",
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(json_of(&body)["count"], 2);
    let (status, body) = call(
        server.addr,
        "GET",
        "/fhir/ConceptMap?url=corridor:starter/loinc-lab",
        "text/plain",
        "",
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let bundle = json_of(&body);
    assert!(
        bundle["total"].as_u64().unwrap() >= 1,
        "the starter map: {bundle}"
    );
    let (status, _) = call(
        server.addr,
        "GET",
        "/fhir/ConceptMap/nothing-here",
        "text/plain",
        "",
    )
    .await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn loads_are_listed_bad_ones_refused_and_unmapped_codes_exported() {
    let server = serve().await;
    let (status, body) = call(
        server.addr,
        "POST",
        "/api/terminology?name=bad.csv",
        "text/csv",
        "source_system,source_code,target_system,target_code,equivalence\nL,A,LN,1-8,sideways\n",
    )
    .await;
    assert_eq!(status, 422, "{body}");
    assert!(body.contains("bad.csv line 2"), "{body}");
    let files = json!({"name": "lab", "sender": "LAB", "fields": ["OBX-3"], "files": [
        {"name": "lab.csv", "content": "source_system,source_code,target_system,target_code,equivalence\nL,HBA1C,LN,4548-4,equivalent\n"}
    ]});
    let (status, body) = call(
        server.addr,
        "POST",
        "/api/terminology",
        "application/json",
        &files.to_string(),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    let (status, body) = call(server.addr, "GET", "/api/terminology", "text/plain", "").await;
    assert_eq!(status, 200, "{body}");
    let list = json_of(&body);
    assert_eq!(list["loads"].as_array().unwrap().len(), 1);
    assert_eq!(list["loads"][0]["sender"], "LAB");
    let loaded = list["loads"][0]["loaded"].as_str().unwrap();
    assert!(loaded.ends_with('Z'), "{list}");
    assert_eq!(
        datetime::rfc3339::parse_time_or_date(loaded),
        Ok(list["loads"][0]["loaded_at"].as_i64().unwrap()),
        "{list}"
    );
    assert_eq!(list["version_in_force"], list["loads"][0]["version"]);

    let code = terminology::UnmappedCode {
        sender: "LAB".into(),
        field: "OBX-3".into(),
        system: "L".into(),
        code: "ZZZ".into(),
        display: None,
        reason: terminology::UnmappedReason::NoMapping,
    };
    server
        .store
        .write(move |conn| {
            Ok(terminology::stored::record_unmapped_in(
                conn,
                "lab",
                42,
                5,
                &[code],
            )?)
        })
        .await
        .unwrap();
    let (status, body) = call(
        server.addr,
        "GET",
        "/api/terminology/unmapped",
        "text/plain",
        "",
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let rows = json_of(&body);
    assert_eq!(rows["unmapped"][0]["code"], "ZZZ");
    assert_eq!(rows["unmapped"][0]["example_message_id"], 42);
    let (status, body) = call(
        server.addr,
        "GET",
        "/api/terminology/unmapped?format=csv",
        "text/plain",
        "",
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("L,ZZZ,,,,,,LAB,OBX-3,,1,5,5,42"), "{body}");
}

#[tokio::test]
async fn a_channels_stored_messages_are_profiled() {
    let server = serve().await;
    for control in ["P1", "P2"] {
        let raw = format!(
            "MSH|^~\\&|LIS|LAB|EHR|H|20240101||ORU^R01|{control}|P|2.5.1\rPID|1||42^^^H^MR||DOE^JANE\rOBX|1|NM|ODD^Odd^L||5|mg/dL\r"
        );
        server
            .store
            .journal()
            .append(
                store::NewMessage {
                    channel: std::sync::Arc::from("lab"),
                    raw: bytes::Bytes::from(raw),
                    received_at: store::UnixMicros::now(),
                    peer: std::sync::Arc::from("127.0.0.1:5000"),
                    tls_identity: None,
                    sending_application: "LIS".into(),
                    sending_facility: "LAB".into(),
                    message_type: "ORU^R01".into(),
                    control_id: control.into(),
                    version: "2.5.1".into(),
                    state: store::MessageState::Processed,
                    state_reason: None,
                },
                None,
            )
            .await
            .unwrap();
    }
    let (status, body) = call(
        server.addr,
        "GET",
        "/api/channels/lab/profile",
        "text/plain",
        "",
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let report = json_of(&body);
    assert_eq!(report["messages"], 2);
    assert_eq!(report["message_types"]["ORU^R01"], 2);
    assert_eq!(
        report["unmapped"][0]["code"], "ODD",
        "against the starter map: {report}"
    );
    let (status, body) = call(
        server.addr,
        "GET",
        "/api/channels/lab/profile?format=profile",
        "text/plain",
        "",
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let text = body.trim_start_matches(|c: char| c != '#');
    hl7v2_spec::validate::Profile::from_toml(
        text.trim_end_matches(|c: char| c.is_ascii_hexdigit() || c.is_whitespace()),
    )
    .unwrap_or_else(|e| panic!("{e}: {text}"));
    let (status, _) = call(
        server.addr,
        "GET",
        "/api/channels/none/profile",
        "text/plain",
        "",
    )
    .await;
    assert_eq!(status, 404);
}
