//! Loading the FHIR specification's own examples, and `$translate` and
//! `$validate-code` semantics on them.

use terminology::{
    Content, Equivalence, MapScope, Scope, SharedTerminology, Validity, code_system_from_json,
    concept_map_from_json,
};

const CONCEPT_MAP: &str = include_str!("data/conceptmap-example-101.json");
const CODE_SYSTEM: &str = include_str!("data/codesystem-example.json");
const ADDRESS_USE: &str = "http://hl7.org/fhir/address-use";
const V3_ADDRESS_USE: &str = "http://terminology.hl7.org/CodeSystem/v3-AddressUse";

fn loaded() -> SharedTerminology {
    let shared = SharedTerminology::new();
    shared.load(Content {
        code_systems: vec![code_system_from_json("codesystem-example.json", CODE_SYSTEM).unwrap()],
        concept_maps: vec![
            concept_map_from_json(
                "conceptmap-example-101.json",
                CONCEPT_MAP,
                MapScope::everywhere(),
            )
            .unwrap(),
        ],
    });
    shared
}

#[test]
fn concept_map_101_loads_its_group_and_unmapped_rule() {
    let map = concept_map_from_json("cm.json", CONCEPT_MAP, MapScope::everywhere()).unwrap();
    assert_eq!(map.url, "http://hl7.org/fhir/ConceptMap/101");
    assert_eq!(map.version.as_deref(), Some("4.0.1"));
    assert_eq!(map.groups.len(), 1);
    let codes: Vec<&str> = map.groups[0]
        .elements
        .iter()
        .map(|e| e.code.as_str())
        .collect();
    assert_eq!(codes, ["home", "work", "temp", "old"]);
    assert_eq!(
        map.groups[0].unmapped,
        Some(terminology::UnmappedRule::Fixed {
            code: "temp".into(),
            display: Some("temp".into())
        })
    );
}

#[test]
fn translate_home_is_h_equivalent() {
    let t = loaded().current();
    let matches = t.translate(ADDRESS_USE, "home", &Scope::default());
    assert_eq!(matches.len(), 1);
    let m = &matches[0];
    assert_eq!(m.equivalence, Equivalence::Equivalent);
    let concept = m.concept.as_ref().unwrap();
    assert_eq!(
        (concept.system.as_str(), concept.code.as_str()),
        (V3_ADDRESS_USE, "H")
    );
    assert_eq!(concept.display.as_deref(), Some("home"));
    assert_eq!(m.source, "http://hl7.org/fhir/ConceptMap/101");
    assert!(m.is_match());
}

#[test]
fn translate_old_is_disjoint_so_no_match_but_the_comment_is_kept() {
    let t = loaded().current();
    let matches = t.translate(ADDRESS_USE, "old", &Scope::default());
    assert_eq!(matches.len(), 1);
    assert_eq!(matches[0].equivalence, Equivalence::Disjoint);
    assert!(
        !matches[0].is_match(),
        "$translate answers result=false for disjoint"
    );
    assert!(
        matches[0]
            .comment
            .as_deref()
            .unwrap()
            .contains("usablePeriod")
    );
}

#[test]
fn a_code_the_group_lacks_gets_the_fixed_unmapped_code() {
    let t = loaded().current();
    let matches = t.translate(ADDRESS_USE, "billing", &Scope::default());
    assert_eq!(matches.len(), 1);
    assert_eq!(matches[0].equivalence, Equivalence::Inexact);
    assert_eq!(matches[0].concept.as_ref().unwrap().code, "temp");
    // Another system's code gets nothing at all.
    assert!(
        t.translate("http://example.org/other", "home", &Scope::default())
            .is_empty()
    );
}

#[test]
fn lookup_and_validate_code_on_the_acme_code_system() {
    let t = loaded().current();
    let system = "http://hl7.org/fhir/CodeSystem/example";
    let concept = t.lookup(system, "chol-mmol").unwrap();
    assert_eq!(concept.display.as_deref(), Some("SChol (mmol/L)"));
    assert_eq!(
        concept.definition.as_deref(),
        Some("Serum Cholesterol, in mmol/L")
    );
    assert!(t.lookup(system, "chol-x").is_none());
    assert_eq!(
        t.validate_code(system, "chol", Some("SChol")),
        Validity::Valid
    );
    assert_eq!(t.validate_code(system, "chol", None), Validity::Valid);
    assert_eq!(
        t.validate_code(system, "chol", Some("Cholesterol")),
        Validity::WrongDisplay {
            expected: "SChol".into()
        }
    );
    assert_eq!(t.validate_code(system, "ldl", None), Validity::UnknownCode);
    assert_eq!(
        t.validate_code("http://loinc.org", "2345-7", None),
        Validity::UnknownSystem
    );
}

#[test]
fn nested_concepts_are_flattened() {
    let json = r#"{"resourceType":"CodeSystem","url":"urn:x","concept":[
        {"code":"a","concept":[{"code":"a1","display":"A one","concept":[{"code":"a1x"}]}]},
        {"code":"b"}]}"#;
    let cs = code_system_from_json("x.json", json).unwrap();
    let codes: Vec<&str> = cs.concepts.keys().map(String::as_str).collect();
    assert_eq!(codes, ["a", "a1", "a1x", "b"]);
}

#[test]
fn r5_relationships_and_no_map_read_as_r4_equivalences() {
    let json = r#"{"resourceType":"ConceptMap","url":"urn:m","group":[{"source":"urn:s","target":"urn:t","element":[
        {"code":"n","target":[{"code":"N","relationship":"source-is-narrower-than-target"}]},
        {"code":"z","noMap":true}],
        "unmapped":{"mode":"use-source-code"}}]}"#;
    let map = concept_map_from_json("r5.json", json, MapScope::everywhere()).unwrap();
    let elements = &map.groups[0].elements;
    assert_eq!(elements[0].targets[0].equivalence, Equivalence::Wider);
    assert_eq!(elements[1].targets[0].equivalence, Equivalence::Unmatched);
    let shared = SharedTerminology::new();
    shared.load(Content {
        concept_maps: vec![map],
        ..Content::default()
    });
    let t = shared.current();
    // `use-source-code` (R4 `provided`) gives an unlisted code back as itself.
    let m = t.translate("urn:s", "q", &Scope::default());
    assert_eq!(m[0].equivalence, Equivalence::Equal);
    assert_eq!(m[0].concept.as_ref().unwrap().code, "q");
    assert!(!t.translate("urn:s", "z", &Scope::default())[0].is_match());
}

#[test]
fn bad_input_names_the_json_path() {
    let err = concept_map_from_json(
        "cm.json",
        r#"{"resourceType":"ConceptMap","url":"u","group":[{"source":"s","target":"t","element":[{"code":"a","target":[{"code":"b","equivalence":"same"}]}]}]}"#,
        MapScope::everywhere(),
    )
    .unwrap_err();
    assert_eq!(
        err.place,
        "cm.json $.group[0].element[0].target[0].equivalence"
    );
    assert!(
        err.message.contains("\"same\" is not an equivalence"),
        "{err}"
    );

    let err = concept_map_from_json(
        "cm.json",
        r#"{"resourceType":"ConceptMap","url":"u","group":[{"source":"s","element":[]}]}"#,
        MapScope::everywhere(),
    )
    .unwrap_err();
    assert_eq!(err.place, "cm.json $.group[0].target");

    let err = code_system_from_json("cs.json", r#"{"resourceType":"ConceptMap"}"#).unwrap_err();
    assert_eq!(err.place, "cs.json $.resourceType");

    let err = code_system_from_json("cs.json", "{\n  \"url\": ").unwrap_err();
    assert!(err.place.starts_with("cs.json line 2"), "{err}");

    let err = code_system_from_json(
        "cs.json",
        r#"{"resourceType":"CodeSystem","url":"u","concept":[{"code":"a"},{"code":"a"}]}"#,
    )
    .unwrap_err();
    assert_eq!(err.place, "cs.json $.concept[1]");
}
