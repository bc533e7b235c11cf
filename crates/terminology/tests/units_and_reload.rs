//! Units and exact conversions; snapshots swapped while readers hold the
//! old one; scopes ordering translations.

use std::sync::Arc;

use rust_decimal::Decimal;
use terminology::units::{self, Conversion, Factor, UnitCheck};
use terminology::{Content, MapScope, Scope, SharedTerminology, concept_maps_from_csv};

#[test]
fn common_spellings_normalise_to_ucum() {
    for (written, ucum) in [
        ("mg/dl", "mg/dL"),
        ("MG/DL", "mg/dL"),
        ("mmol/l", "mmol/L"),
        ("10^3/uL", "10*3/uL"),
        ("K/uL", "10*3/uL"),
        ("x10e6/uL", "10*6/uL"),
        ("fl", "fL"),
        ("mIU/L", "m[iU]/L"),
        (" sec ", "s"),
    ] {
        assert_eq!(units::normalise(written), Some(ucum), "{written}");
        assert_eq!(
            units::check(written),
            UnitCheck::Spelling(ucum),
            "{written}"
        );
    }
    assert_eq!(units::check("mg/dL"), UnitCheck::Ucum);
    assert_eq!(units::check("10*3/uL"), UnitCheck::Ucum);
    // UCUM is case-sensitive: `MG/DL` is not UCUM, only a spelling of it.
    assert_ne!(units::check("MG/DL"), UnitCheck::Ucum);
    assert_eq!(units::check("bananas"), UnitCheck::Unknown);
    assert_eq!(units::normalise("bananas"), None);
}

#[test]
fn glucose_converts_both_ways_with_exact_decimals() {
    let to_mmol = Conversion::glucose_mg_dl_to_mmol_l();
    let c = to_mmol.apply("100", "mg/dl").unwrap();
    // 100 / 18.016 = 5.5506...
    assert_eq!(c.value, Decimal::new(555, 2));
    assert_eq!(c.unit, "mmol/L");
    assert_eq!(
        (c.original_value.as_str(), c.original_unit.as_str()),
        ("100", "mg/dl")
    );
    let back = Conversion::glucose_mmol_l_to_mg_dl()
        .apply("5.5", "mmol/L")
        .unwrap();
    // 5.5 * 18.016 = 99.088
    assert_eq!(back.value, Decimal::new(99, 0));
    // Not a number, or not this unit: no conversion.
    assert!(to_mmol.apply("<5", "mg/dL").is_none());
    assert!(to_mmol.apply("100", "mmol/L").is_none());
    assert!(to_mmol.apply("", "mg/dL").is_none());
}

#[test]
fn arithmetic_is_decimal_not_binary_floating_point() {
    let tenth = Conversion {
        code: None,
        from: "mg/dL".into(),
        to: "g/dL".into(),
        factor: Factor::MultiplyBy(Decimal::new(1, 1)),
        decimals: 10,
    };
    // 0.2 * 0.1 in f64 is 0.020000000000000004.
    assert_eq!(
        tenth.apply("0.2", "mg/dL").unwrap().value.to_string(),
        "0.02"
    );
    // Half away from zero: 2.5 -> 3 at 0 places.
    let round = Conversion {
        decimals: 0,
        factor: Factor::MultiplyBy(Decimal::ONE),
        ..tenth
    };
    assert_eq!(
        round.apply("2.5", "mg/dL").unwrap().value,
        Decimal::new(3, 0)
    );
    assert_eq!(
        round.apply("-2.5", "mg/dL").unwrap().value,
        Decimal::new(-3, 0)
    );
}

const V1: &str = "source_system,source_code,target_system,target_code,equivalence\nL,GLU,http://loinc.org,2345-7,equivalent\n";
const V2: &str = "source_system,source_code,target_system,target_code,equivalence\nL,GLU,http://loinc.org,2339-0,equivalent\n";

fn content(csv: &str) -> Content {
    Content {
        concept_maps: concept_maps_from_csv("lab.csv", csv).unwrap(),
        ..Content::default()
    }
}

fn target(t: &terminology::Terminology) -> String {
    t.translate("L", "GLU", &Scope::default())[0]
        .concept
        .as_ref()
        .unwrap()
        .code
        .clone()
}

#[test]
fn a_reload_is_a_new_version_and_a_held_snapshot_stays_as_it_was() {
    let shared = SharedTerminology::new();
    assert_eq!(shared.current().version(), 0);
    assert_eq!(shared.load(content(V1)), 1);
    let held = shared.current();
    assert_eq!(shared.load(content(V2)), 2);
    assert_eq!(
        target(&held),
        "2345-7",
        "a message in flight keeps its snapshot"
    );
    assert_eq!(held.version(), 1);
    assert_eq!(target(&shared.current()), "2339-0");
    assert_eq!(shared.current().version(), 2);
}

#[test]
fn readers_on_other_threads_see_one_whole_snapshot_or_the_next() {
    let shared = Arc::new(SharedTerminology::new());
    shared.load(content(V1));
    let readers: Vec<_> = (0..2)
        .map(|_| {
            let shared = Arc::clone(&shared);
            std::thread::spawn(move || {
                let mut last = 0;
                for _ in 0..2000 {
                    let t = shared.current();
                    let expected = if t.version() % 2 == 1 {
                        "2345-7"
                    } else {
                        "2339-0"
                    };
                    assert_eq!(target(&t), expected, "version {}", t.version());
                    assert!(t.version() >= last, "versions never go back");
                    last = t.version();
                }
            })
        })
        .collect();
    for i in 0..50 {
        shared.load(content(if i % 2 == 0 { V2 } else { V1 }));
    }
    for r in readers {
        r.join().unwrap();
    }
    assert_eq!(shared.current().version(), 51);
}

#[test]
fn narrower_scopes_come_first_and_scopes_exclude() {
    let csv = "source_system,source_code,target_system,target_code,equivalence,sender,field\n\
               L,GLU,http://loinc.org,1-general,equivalent,,\n\
               L,GLU,http://loinc.org,2-sender,equivalent,LAB,\n\
               L,GLU,http://loinc.org,3-facility,equivalent,LAB@NORTH,\n\
               L,GLU,http://loinc.org,4-field,equivalent,,OBR-4\n";
    let shared = SharedTerminology::new();
    shared.load(content(csv));
    let t = shared.current();
    let codes = |scope: Scope<'_>| -> Vec<String> {
        t.translate("L", "GLU", &scope)
            .into_iter()
            .map(|m| m.concept.unwrap().code)
            .collect()
    };
    let at = |app, facility, field| Scope {
        application: Some(app),
        facility: Some(facility),
        field: Some(field),
    };
    assert_eq!(
        codes(at("LAB", "NORTH", "OBX-3")),
        ["3-facility", "2-sender", "1-general"]
    );
    assert_eq!(
        codes(at("LAB", "SOUTH", "OBX-3")),
        ["2-sender", "1-general"]
    );
    assert_eq!(
        codes(at("OTHER", "NORTH", "OBR-4")),
        ["4-field", "1-general"]
    );
    assert_eq!(codes(Scope::default()), ["1-general"]);
    // The same map read from FHIR with a scope given at load.
    let scoped = MapScope {
        sender: Some("LAB".into()),
        fields: vec!["OBX-3".into()],
    };
    assert!(scoped.covers(&at("LAB", "X", "OBX-3")));
    assert!(!scoped.covers(&at("LAB", "X", "OBX-6")));
}

#[test]
fn v2_and_fhir_system_names_meet() {
    let csv = "source_system,source_code,target_system,target_code,equivalence\nhttp://loinc.org,2345-7,urn:local,G,equivalent\n";
    let shared = SharedTerminology::new();
    shared.load(content(csv));
    // A message writes LOINC as `LN`: the map written with the URI serves it.
    assert_eq!(
        shared
            .current()
            .translate("LN", "2345-7", &Scope::default())
            .len(),
        1
    );
    assert_eq!(terminology::v2_system_name("http://loinc.org"), "LN");
    assert_eq!(terminology::canonical_system("99ZZZ"), "99ZZZ");
}
