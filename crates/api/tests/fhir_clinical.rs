//! The repository's clinical rules on a real SQLite store: a message that
//! describes part of a shared resource updates that part and keeps the rest,
//! and a resource of one patient is never overwritten by another's.

#[path = "fhir_common/mod.rs"]
mod common;

use common::{Repo, convert};
use serde_json::Value;
use store::{MessageId, UnixMicros};

/// The registration that records the patient's SSN, driver's licence and
/// next of kin.
const ADT_A04: &str = "MSH|^~\\&|ADT1|GHH|EHR|GHH|20240102083000-0500||ADT^A04^ADT_A01|REG-1|P|2.5.1
PID|1||PAT77^^^GHH^MR||EVERYWOMAN^EVE^E||19620320|F|||2222 HOME STREET^^GREENSBORO^NC^27401||^PRN^PH^^1^555^5552004||||||123-45-6789|S99-1234^NC
NK1|1|EVERYMAN^ADAM|SPO^Spouse^HL70063|2222 HOME STREET^^GREENSBORO^NC^27401|^PRN^PH^^1^555^5552005";

/// A later immunization whose PID carries only the MR and the name, and whose
/// NK1 names the patient's mother.
const VXU: &str = "MSH|^~\\&|MYEHR|GHH|MYIIS||20240301100000-0500||VXU^V04^VXU_V04|IZ-1|P|2.5.1
PID|1||PAT77^^^GHH^MR~IIS-5^^^MYIIS^SR||EVERYWOMAN^EVE^E||19620320|F
NK1|1|EVERYWOMAN^MARY|MTH^Mother^HL70063|2222 HOME STREET^^GREENSBORO^NC^27401
ORC|RE||IZ-1^GHH
RXA|0|1|20240301||140^Influenza^CVX|0.5|mL^^UCUM||00^new^NIP001||||||||||CP|A";

fn identifier_values(patient: &Value) -> Vec<&str> {
    patient["identifier"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["value"].as_str().unwrap())
        .collect()
}

#[test]
fn a_vxu_updates_the_patient_without_erasing_what_the_adt_recorded() {
    let repo = Repo::start();
    let (registration, _) = repo.apply(ADT_A04);
    let patient_id = registration.patient_id().unwrap().to_owned();
    let (immunization, applied) = repo.apply(VXU);
    assert_eq!(immunization.patient_id(), Some(patient_id.as_str()));
    assert!(applied.updated() >= 1, "the VXU adds the registry id");

    let patient = repo.ok(&format!("/fhir/Patient/{patient_id}"));
    assert_eq!(patient["meta"]["versionId"], "2");
    // The registry's identifier joins the ones the ADT gave.
    assert_eq!(
        identifier_values(&patient),
        ["PAT77", "IIS-5", "123-45-6789", "S99-1234"]
    );
    // What the VXU did not carry is as the ADT left it, and the mother it
    // names joins the spouse the ADT recorded.
    let contacts: Vec<&str> = patient["contact"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"]["given"][0].as_str().unwrap())
        .collect();
    assert_eq!(contacts, ["MARY", "ADAM"]);
    assert_eq!(patient["address"][0]["city"], "GREENSBORO");
    assert_eq!(patient["telecom"][0]["value"], "+1 (555) 5552004");
    assert_eq!(patient["birthDate"], "1962-03-20");
}

#[test]
fn an_a08_replaces_the_elements_it_sends() {
    let repo = Repo::start();
    let (registration, _) = repo.apply(ADT_A04);
    let patient_id = registration.patient_id().unwrap().to_owned();
    repo.apply(
        "MSH|^~\\&|ADT1|GHH|EHR|GHH|20240202083000-0500||ADT^A08^ADT_A01|UPD-1|P|2.5.1
PID|1||PAT77^^^GHH^MR||EVERYWOMAN^EVE^E||19620320|F|||9 NEW ROAD^^DURHAM^NC^27701",
    );
    let patient = repo.ok(&format!("/fhir/Patient/{patient_id}"));
    // The address the A08 sends is now the only one: the patient moved.
    let addresses = patient["address"].as_array().unwrap();
    assert_eq!(addresses.len(), 1);
    assert_eq!(addresses[0]["city"], "DURHAM");
    // What it does not send stays.
    assert_eq!(
        identifier_values(&patient),
        ["PAT77", "123-45-6789", "S99-1234"]
    );
    assert_eq!(patient["contact"][0]["name"]["family"], "EVERYMAN");
}

#[test]
fn the_patient_retired_by_an_a40_keeps_its_content() {
    let repo = Repo::start();
    let (registration, _) = repo.apply(ADT_A04);
    let retired = registration.patient_id().unwrap().to_owned();
    let (merge, _) = repo.apply(
        "MSH|^~\\&|ADT1|GHH|MPI|GHH|20240306083000-0500||ADT^A40^ADT_A39|MRG-1|P|2.5.1
EVN|A40|20240306083000-0500
PID|1||KEEP1^^^GHH^MR||EVERYWOMAN^EVE
MRG|PAT77^^^GHH^MR",
    );
    let survivor = merge.patient_id().unwrap().to_owned();
    let patient = repo.ok(&format!("/fhir/Patient/{retired}"));
    assert_eq!(patient["active"], false);
    assert_eq!(patient["link"][0]["type"], "replaced-by");
    assert_eq!(
        patient["link"][0]["other"]["reference"],
        format!("Patient/{survivor}")
    );
    // The merge says who replaced it, not who it was: all of that stays.
    assert_eq!(patient["name"][0]["family"], "EVERYWOMAN");
    assert_eq!(patient["birthDate"], "1962-03-20");
    assert_eq!(patient["gender"], "female");
    assert_eq!(patient["contact"][0]["name"]["family"], "EVERYMAN");
    assert_eq!(
        identifier_values(&patient),
        ["PAT77", "123-45-6789", "S99-1234"]
    );
}

/// A booking of patient `A1` named `family`.
fn siu_booking(family: &str, control: &str) -> String {
    format!(
        "MSH|^~\\&|SCHED|GHH|EHR|GHH|20240110090000-0500||SIU^S12^SIU_S12|{control}|P|2.5.1
SCH||77^SCHED|||||ROUTINE^Routine visit|||||^^^20240115090000-0500^20240115093000-0500
PID|1||A1^^^GHH^MR||{family}^ANN"
    )
}

#[test]
fn a_record_already_filed_for_another_patient_is_refused_not_overwritten() {
    let repo = Repo::start();
    let (first, _) = repo.apply(&siu_booking("FIRST", "S-1"));
    let appointment_id = first.of_type("Appointment").next().unwrap().id.clone();
    // The id is filed under another patient, as a repository filled before ids
    // were kept apart per patient can hold it.
    let id = appointment_id.clone();
    repo.store
        .write_blocking(move |conn| {
            conn.execute(
                "UPDATE fhir_resources SET patient = 'another-patient' \
                 WHERE type = 'Appointment' AND id = ?1",
                [&id],
            )?;
            Ok(())
        })
        .unwrap();
    let before = repo.ok(&format!("/fhir/Appointment/{appointment_id}"));

    let second = convert(&siu_booking("RENAMED", "S-2"));
    assert_eq!(
        second.of_type("Appointment").next().unwrap().id,
        appointment_id
    );
    let error = repo
        .store
        .write_blocking(move |conn| {
            fhir_repo::apply_bundle_in(
                conn,
                &second,
                MessageId(99),
                UnixMicros(1_767_300_000_000_000),
            )
        })
        .unwrap_err();
    let reason = error.to_string();
    assert!(matches!(error, store::Error::Refused(_)), "{reason}");
    assert!(
        reason.contains(&format!("Appointment/{appointment_id}"))
            && reason.contains("Patient/another-patient"),
        "{reason}"
    );
    assert!(
        !reason.contains("RENAMED"),
        "no patient data in the reason: {reason}"
    );

    // The stored appointment is as it was, and nothing of the refused message
    // was kept: the patient's name did not change.
    let after = repo.ok(&format!("/fhir/Appointment/{appointment_id}"));
    assert_eq!(after, before);
    assert_eq!(repo.ok("/fhir/Patient?family=RENAMED")["total"], 0);
    assert_eq!(repo.ok("/fhir/Patient?family=FIRST")["total"], 1);
}

#[test]
fn a_late_result_does_not_reopen_a_discharged_visit() {
    let repo = Repo::start();
    let (discharge, _) = repo.apply(
        "MSH|^~\\&|ADT1|GHH|EHR|GHH|20240105150000-0500||ADT^A03^ADT_A03|DIS-1|P|2.5.1
EVN|A03|20240105150000-0500
PID|1||PAT77^^^GHH^MR||EVERYWOMAN^EVE
PV1|1|I|4E^401^1^GHH||||||||||||||||V100^^^GHH^VN|||||||||||||||||||||||||20240102080000-0500|20240105143000-0500",
    );
    let encounter_id = discharge.of_type("Encounter").next().unwrap().id.clone();
    let (result, _) = repo.apply(
        "MSH|^~\\&|LAB|GHH LAB|EHR|GHH|20240106090000-0500||ORU^R01^ORU_R01|LAB-9|P|2.5.1
PID|1||PAT77^^^GHH^MR||EVERYWOMAN^EVE
PV1|1|I|4E^401^1^GHH||||||||||||||||V100^^^GHH^VN
OBR|1||F-9^LAB|2345-7^Glucose^LN|||20240105070000-0500
OBX|1|NM|2345-7^Glucose^LN||95|mg/dL^^UCUM|||||F",
    );
    assert_eq!(result.of_type("Encounter").next().unwrap().id, encounter_id);
    let encounter = repo.ok(&format!("/fhir/Encounter/{encounter_id}"));
    assert_eq!(encounter["status"], "finished");
    assert_eq!(encounter["period"]["end"], "2024-01-05T14:30:00-05:00");
}

#[test]
fn a_death_time_replaces_the_earlier_deceased_flag() {
    let repo = Repo::start();
    let (registration, _) = repo.apply(
        "MSH|^~\\&|ADT1|GHH|EHR|GHH|20240102083000-0500||ADT^A04^ADT_A01|REG-2|P|2.5.1
PID|1||PAT88^^^GHH^MR||EVERYMAN^ADAM||19400101|M||||||||||||||||||||||N",
    );
    let patient_id = registration.patient_id().unwrap().to_owned();
    repo.apply(
        "MSH|^~\\&|ADT1|GHH|EHR|GHH|20240302083000-0500||ADT^A08^ADT_A01|UPD-3|P|2.5.1
PID|1||PAT88^^^GHH^MR||EVERYMAN^ADAM||19400101|M|||||||||||||||||||||202403010600-0500|Y",
    );
    let patient = repo.ok(&format!("/fhir/Patient/{patient_id}"));
    assert_eq!(patient["deceasedDateTime"], "2024-03-01T06:00:00-05:00");
    assert!(patient.get("deceasedBoolean").is_none(), "{patient:#}");
}
