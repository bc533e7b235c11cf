//! v2 -> FHIR -> v2 over the public corpus (tests/corpus/public): for every
//! ADT, ORU^R01, ORM^O01, OML^O21 and VXU^V04 message, the message made back from its
//! Bundle (`v2_fhir::to_v2`) has the same values at every path both
//! directions map, compared by path. Values are compared as FHIR keeps them:
//! a time to the precision it was sent, a number as a number.

use std::path::{Path, PathBuf};

use hl7v2::{Message, Segment, StreamItem, split_stream};
use v2_fhir::to_v2::{ToV2Options, to_v2};
use v2_fhir::vocab::ConceptMap;
use v2_fhir::{Converter, Options};

fn files(dir: &Path, out: &mut Vec<PathBuf>) {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    entries.sort();
    for path in entries {
        if path.is_dir() {
            files(&path, out);
        } else if path.extension().is_some_and(|e| e == "hl7") {
            out.push(path);
        }
    }
}

/// The occurrences of a segment.
fn all<'m>(message: &'m Message<'m>, name: &[u8]) -> Vec<Segment<'m>> {
    message.segments().filter(|s| s.name() == name).collect()
}

fn component(s: &Segment<'_>, field: usize, n: usize) -> String {
    s.field(field)
        .map(|f| f.repetition(1).component(n).text().trim().to_string())
        .unwrap_or_default()
}

/// A time as FHIR keeps it: its digits, without fraction or zone (FHIR
/// may add the zone the message implied).
fn time(v: &str) -> String {
    v.split(['.', '+', '-']).next().unwrap_or("").to_string()
}

/// A number as a number, with its comparator (`=` is none); text that is
/// no number as it is.
fn number(v: &str) -> String {
    let v = v.trim();
    let digits = v.trim_start_matches(['<', '>', '=']);
    let comparator = v[..v.len() - digits.len()].trim_start_matches('=');
    match digits.trim().parse::<f64>() {
        Ok(n) => format!("{comparator}{n}"),
        Err(_) => v.to_string(),
    }
}

/// OBX-5 by its type: numbers as numbers (SN joined), codes by code,
/// times by digits, text as text without its line breaks and spacing
/// (FHIR keeps a string). Other types (EI, CX, ...) are FHIR strings made
/// of their components: not compared.
fn obx_value(s: &Segment<'_>) -> Option<String> {
    Some(match component(s, 2, 1).as_str() {
        "NM" => number(&component(s, 5, 1)),
        "SN" => number(&format!("{}{}", component(s, 5, 1), component(s, 5, 2))),
        "CWE" | "CE" | "CNE" | "IS" | "ID" => component(s, 5, 1),
        "DT" | "TS" | "DTM" => time(&component(s, 5, 1)),
        "ST" | "TX" | "FT" => {
            let text = s
                .field(5)
                .map(|f| f.text().into_owned())
                .unwrap_or_default();
            let text = text.replace("\\.br\\", " ");
            number(
                &text
                    .split(['^', ' ', '\n', '\r'])
                    .filter(|w| !w.is_empty())
                    .collect::<Vec<_>>()
                    .join(" "),
            )
        }
        _ => return None,
    })
}

/// Codes compared by what the guide maps them to: two v2 codes of one
/// meaning (PID-8 `A` and `O` are both `other`) are one value, and a code
/// the guide maps to nothing has nothing to come back.
fn meaning(map: ConceptMap, code: &str) -> Option<String> {
    map.lookup(code).map(|c| c.code.to_string())
}

/// A v2 date the converter reads (a real day: not `0000`, not `19620352`).
fn is_date(v: &str) -> bool {
    v.len() >= 8 && !v.starts_with("0000") && !v2_fhir::datatypes::date_value(&v[..8]).is_null()
}

fn first<'m>(message: &'m Message<'m>, name: &[u8]) -> Option<Segment<'m>> {
    message.segments().find(|s| s.name() == name)
}

/// PID-3's identifier values, sorted.
fn identifiers(pid: &Segment<'_>) -> Vec<String> {
    let mut v: Vec<String> = pid
        .field(3)
        .map(|f| {
            f.children()
                .map(|r| r.component(1).text().trim().to_string())
                .filter(|v| !v.is_empty())
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v.dedup();
    v
}

/// Compares a message and its round trip path by path; the differences.
fn compare(family: &str, before: &Message<'_>, after: &Message<'_>) -> Vec<String> {
    let mut differences = Vec::new();
    let mut check = |path: String, was: String, is: String| {
        if was != is {
            differences.push(format!("{path}: {was:?} became {is:?}"));
        }
    };
    let (Some(pid), Some(pid_back)) = (first(before, b"PID"), first(after, b"PID")) else {
        return vec!["no PID back".into()];
    };
    // PID-3: every identifier comes back.
    let (was, is) = (identifiers(&pid), identifiers(&pid_back));
    if !was.iter().all(|v| is.contains(v)) {
        check("PID-3".into(), format!("{was:?}"), format!("{is:?}"));
    }
    for n in [1, 2] {
        check(
            format!("PID-5.{n}"),
            component(&pid, 5, n),
            component(&pid_back, 5, n),
        );
    }
    let birth = component(&pid, 7, 1);
    if is_date(&birth) {
        check(
            "PID-7".into(),
            birth[..8].to_string(),
            component(&pid_back, 7, 1),
        );
    }
    let sex = |s: &Segment<'_>| meaning(ConceptMap::AdministrativeSex, &component(s, 8, 1));
    if let Some(m) = sex(&pid) {
        check("PID-8".into(), m, sex(&pid_back).unwrap_or_default());
    }
    match family {
        "ADT" => {
            if let (Some(pv1), Some(back)) = (first(before, b"PV1"), first(after, b"PV1")) {
                let class = |s: &Segment<'_>| {
                    meaning(ConceptMap::PatientClassEncounterClass, &component(s, 2, 1))
                };
                if let Some(m) = class(&pv1) {
                    check("PV1-2".into(), m, class(&back).unwrap_or_default());
                }
                check(
                    "PV1-19.1".into(),
                    component(&pv1, 19, 1),
                    component(&back, 19, 1),
                );
            }
            // Next of kin, allergies and diagnoses come back in the ADT:
            // each one's name or code (sorted, without repeats).
            for (name, field, what) in [
                (&b"NK1"[..], 2, "NK1-2.1"),
                (b"AL1", 3, "AL1-3.1"),
                (b"DG1", 3, "DG1-3.1"),
            ] {
                let values = |m: &Message<'_>| {
                    let mut v: Vec<String> = all(m, name)
                        .iter()
                        // The code, else the text of a concept without one.
                        .map(|s| {
                            let code = component(s, field, 1);
                            if code.is_empty() {
                                component(s, field, 2)
                            } else {
                                code
                            }
                        })
                        .filter(|v| !v.is_empty())
                        .collect();
                    v.sort();
                    v.dedup();
                    v
                };
                check(
                    what.into(),
                    format!("{:?}", values(before)),
                    format!("{:?}", values(after)),
                );
            }
        }
        "ORU" | "ORM" | "OML" => {
            let (obr, obr_back) = (all(before, b"OBR"), all(after, b"OBR"));
            check(
                "OBR count".into(),
                obr.len().to_string(),
                obr_back.len().to_string(),
            );
            for (n, (a, b)) in obr.iter().zip(&obr_back).enumerate() {
                let code = component(a, 4, 1);
                if !code.is_empty() {
                    check(format!("OBR[{}]-4.1", n + 1), code, component(b, 4, 1));
                }
            }
            let (obx, obx_back) = (all(before, b"OBX"), all(after, b"OBX"));
            check(
                "OBX count".into(),
                obx.len().to_string(),
                obx_back.len().to_string(),
            );
            let status = |s: &Segment<'_>| {
                meaning(ConceptMap::ObservationResultStatus, &component(s, 11, 1))
            };
            for (n, (a, b)) in obx.iter().zip(&obx_back).enumerate() {
                let code = component(a, 3, 1);
                if !code.is_empty() {
                    check(format!("OBX[{}]-3.1", n + 1), code, component(b, 3, 1));
                }
                if let Some(value) = obx_value(a).filter(|v| !v.is_empty()) {
                    let back = obx_value(b).unwrap_or_default();
                    // A string FHIR read as a quantity (`< 1` with units)
                    // comes back a number: compared as numbers.
                    check(format!("OBX[{}]-5", n + 1), number(&value), number(&back));
                }
                if let Some(m) = status(a) {
                    check(
                        format!("OBX[{}]-11", n + 1),
                        m,
                        status(b).unwrap_or_default(),
                    );
                }
            }
        }
        "VXU" => {
            let (rxa, rxa_back) = (all(before, b"RXA"), all(after, b"RXA"));
            check(
                "RXA count".into(),
                rxa.len().to_string(),
                rxa_back.len().to_string(),
            );
            for (n, (a, b)) in rxa.iter().zip(&rxa_back).enumerate() {
                check(
                    format!("RXA[{}]-5.1", n + 1),
                    component(a, 5, 1),
                    component(b, 5, 1),
                );
                let given = component(a, 3, 1);
                if is_date(&given) {
                    check(
                        format!("RXA[{}]-3", n + 1),
                        time(&given),
                        time(&component(b, 3, 1)),
                    );
                }
            }
        }
        _ => {}
    }
    differences
}

#[test]
fn v2_to_fhir_to_v2_keeps_every_mapped_field_of_the_corpus() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/corpus/public");
    let mut paths = Vec::new();
    files(&root, &mut paths);
    let converter = Converter::new(Options::default());
    let options = ToV2Options {
        timestamp: "20240101000000+0000".into(),
        ..ToV2Options::default()
    };
    let mut compared = 0;
    let mut by_family = std::collections::BTreeMap::<String, usize>::new();
    let mut differences = Vec::new();
    for path in &paths {
        let rel = path.strip_prefix(&root).unwrap().display().to_string();
        if rel.contains("malformed")
            || ["Invalid", "Bad", "bad", "error"]
                .iter()
                .any(|w| rel.contains(w))
        {
            continue;
        }
        let bytes = std::fs::read(path).unwrap();
        for (n, item) in split_stream(&bytes).into_iter().enumerate() {
            let StreamItem::Message { bytes, .. } = item else {
                continue;
            };
            let Ok(original) = Message::parse(bytes) else {
                continue;
            };
            let msh9 = |c: usize| {
                original
                    .segment(0)
                    .field(9)
                    .map(|f| f.component(c).text().to_string())
                    .unwrap_or_default()
            };
            let (code, event) = (msh9(1), msh9(2));
            let family = match (code.as_str(), event.as_str()) {
                ("ADT", e) if !matches!(e, "A40" | "A37" | "A60") => "ADT",
                ("ORU", "R01") | ("ORM", "O01") | ("OML", "O21") | ("VXU", "V04") => code.as_str(),
                _ => continue,
            };
            let label = format!("{rel}#{}", n + 1);
            if original.find_segment(b"PID", 1).is_none() {
                continue;
            }
            let bundle = converter
                .convert(&original)
                .unwrap_or_else(|e| panic!("{label}: {e}"));
            // A family whose records the message did not carry (an order
            // message of ORC only) has nothing to come back.
            let carried = match family {
                "ADT" => "Patient",
                "ORU" => "Observation",
                "ORM" | "OML" => "ServiceRequest",
                _ => "Immunization",
            };
            if bundle.of_type(carried).next().is_none() {
                continue;
            }
            let back = to_v2(bundle.to_json_string().as_bytes(), &options)
                .unwrap_or_else(|e| panic!("{label}: {e}"));
            let Some(text) = back
                .messages
                .iter()
                .find(|m| m.split('|').nth(8).is_some_and(|t| t.starts_with(family)))
            else {
                differences.push(format!(
                    "{label}: no {family} message back: {:?}",
                    back.messages
                ));
                continue;
            };
            let again =
                Message::parse(text.as_bytes()).unwrap_or_else(|e| panic!("{label}: {e}\n{text}"));
            compared += 1;
            *by_family.entry(family.to_string()).or_insert(0) += 1;
            for name in [&b"NK1"[..], b"AL1", b"DG1"] {
                if family == "ADT" {
                    *by_family
                        .entry(String::from_utf8_lossy(name).into_owned())
                        .or_insert(0) += all(&original, name).len();
                }
            }
            for difference in compare(family, &original, &again) {
                differences.push(format!("{label}: {difference}"));
            }
        }
    }
    assert!(compared > 150, "only {compared} messages compared");
    // Each family, and the ADT's NK1, AL1 and DG1, were there to compare.
    for kind in ["ADT", "ORU", "ORM", "OML", "VXU", "NK1", "AL1", "DG1"] {
        assert!(
            by_family.get(kind).is_some_and(|n| *n > 0),
            "no {kind} compared: {by_family:?}"
        );
    }
    assert!(
        differences.is_empty(),
        "{} differences:\n{}",
        differences.len(),
        differences.join("\n")
    );
}
