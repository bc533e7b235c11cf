//! The corpus's deliberately invalid messages are flagged where they are broken.

use std::path::{Path, PathBuf};

use hl7v2_spec::validate::{
    Finding, Profile, Severity, SplitMessage, ValidationOptions, spec_for, validate_message,
};

fn corpus(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/corpus/public")
        .join(rel)
}

fn errors_with(profile: Option<&Profile>, rel: &str) -> Vec<Finding> {
    let bytes = std::fs::read(corpus(rel)).unwrap();
    let text = String::from_utf8_lossy(&bytes);
    let message = SplitMessage::parse(&text).unwrap();
    let spec = spec_for(&message, None).spec;
    let options = ValidationOptions::default();
    let findings = match profile {
        Some(p) => p.validate(spec, &message, &options),
        None => validate_message(spec, &message, &options),
    };
    findings
        .into_iter()
        .filter(|f| f.severity == Severity::Error)
        .collect()
}

fn covid_extract() -> Profile {
    Profile::from_toml(include_str!("profiles/cdc_covid_extract.toml")).unwrap()
}

#[test]
fn cdc_iis_known_errors_are_found_where_each_sample_says() {
    // Each testerror sample names its error in ORC-3 (DATA001_recip_dob, ...).
    let expected = [
        ("testerror_01.hl7", "DATA001_recip_dob", "VXU_V04.PID-7"),
        (
            "testerror_02.hl7",
            "DATA009_admin_date_1",
            "VXU_V04.ORDER.RXA-3",
        ),
        (
            "testerror_03.hl7",
            "DATA001_admin_date_2",
            "VXU_V04.ORDER.RXA-3",
        ),
        (
            "testerror_04.hl7",
            "DATA006_recip_address_city",
            "VXU_V04.PID-11.3",
        ),
        ("testerror_05.hl7", "DATA005_ext_type", "VXU_V04.MSH-8"),
        ("testerror_06.hl7", "DATA004_pprl_id", "VXU_V04.PID-3[2]"),
        (
            "testerror_07.hl7",
            "DATA006_recip_first_name_not_redacted",
            "VXU_V04.PID-5.1",
        ),
    ];
    let profile = covid_extract();
    for (file, marker, path) in expected {
        let rel = format!("cdc-iis-open-tools/testerror/{file}");
        let text = std::fs::read_to_string(corpus(&rel)).unwrap();
        assert!(text.contains(marker), "{file} does not name {marker}");
        let found = errors_with(Some(&profile), &rel);
        assert!(
            found.iter().any(|f| f.path == path),
            "{file}: no error at {path}: {:?}",
            found.iter().map(|f| &f.path).collect::<Vec<_>>()
        );
    }
}

#[test]
fn cdc_iis_good_samples_pass_the_same_profile() {
    let profile = covid_extract();
    for dir in ["testgood", "testdefault"] {
        for n in 1..=7 {
            let rel = format!("cdc-iis-open-tools/{dir}/{dir}_{n:02}.hl7");
            assert_eq!(errors_with(Some(&profile), &rel), [], "{rel}");
        }
    }
}

#[test]
fn malformed_samples_are_flagged_at_the_broken_place() {
    // MSH-2 is "&&&&": every delimiter the same.
    let lyme = errors_with(
        None,
        "cdc-data-exchange-hl7/malformed/Lyme_WithBadDelimiters.hl7",
    );
    assert!(lyme.iter().any(|f| f.path.ends_with("MSH-2")), "{lyme:?}");
    // A structured numeric (SN) result whose number is text.
    let generic = errors_with(
        None,
        "cdc-data-exchange-hl7/malformed/Invalid-GenV1-0-Case-Notification.hl7",
    );
    assert!(
        generic.iter().any(|f| f.path.ends_with("OBX-5.2")),
        "{:?}",
        generic.iter().map(|f| &f.path).collect::<Vec<_>>()
    );
    // hl7apy's invalid RSP^K21 sample lacks the QRI its structure requires.
    let rsp = errors_with(None, "hl7apy/test_parser_invalid_rsp_k21_L47.hl7");
    assert!(rsp.iter().any(|f| f.path.ends_with("QRI")), "{rsp:?}");
}
