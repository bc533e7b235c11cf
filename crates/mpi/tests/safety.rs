//! Safety guards. On real messages in a real store: the sample messages of
//! `tests/corpus` carry two patients, MRN 102 SINGLETON^MARION and MRN 103
//! OTHER_IBM_BRIDGE^MARION, who share a given name, a birth date and a sex and nothing
//! else. They are fed as the engine's `mpi` stage feeds them (PID mapped, applied,
//! events written in a transaction). And twins that a record without a given name
//! would have merged.

use mpi::hl7::action_of;
use mpi::{
    DecisionReason, EnterpriseId, Guard, LinkStatus, MatchModel, MatcherConfig, Mpi, MpiConfig,
    MpiService, Outcome, PatientRecord, Sex, SourceKey,
};
use std::path::PathBuf;
use store::Store;

fn corpus(name: &str) -> Vec<u8> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/corpus/public/izgateway-v2tofhir")
        .join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Applies one message as the engine's stage does and commits its events.
fn feed(service: &MpiService, raw: &[u8]) -> EnterpriseId {
    let message = hl7v2::Message::parse(raw).unwrap();
    let action = action_of(&message).unwrap().expect("has a PID");
    let control = message.control_id().into_owned();
    let event = mpi::hl7::trigger_event(&message);
    let applied = service.apply_message(action, &control, &event);
    let s = service.clone();
    service
        .store()
        .write(move |conn| s.persist_in(conn))
        .wait()
        .unwrap();
    applied.result.unwrap()
}

fn open(dir: &std::path::Path) -> MpiService {
    let config = MpiConfig {
        enabled: true,
        ..MpiConfig::default()
    };
    MpiService::open_blocking(Store::open(dir).unwrap(), config).unwrap()
}

#[test]
fn two_marions_sharing_only_a_birth_date_wait_for_a_person() {
    let dir = tempfile::tempdir().unwrap();
    let service = open(dir.path());
    // PID-3's authority `IBOT&1.3.6.1.4.1.21367.2009.1.2.370&ISO` is named by its
    // OID, as the FHIR Patient's identifier system is (`urn:oid:...`).
    const IBOT: &str = "1.3.6.1.4.1.21367.2009.1.2.370";
    let singleton = SourceKey::new(IBOT, "102");
    let other = SourceKey::new(IBOT, "103");

    let first = feed(&service, &corpus("msg_013.hl7"));
    let second = feed(&service, &corpus("msg_017.hl7"));
    assert_ne!(first, second, "MRN 103 is not linked to MRN 102");
    service.read(|mpi| {
        assert_eq!(mpi.status_of(&other), Some(LinkStatus::Review));
        let review = mpi.reviews().find(|r| r.record == other).unwrap();
        assert_eq!(review.guard, Some(Guard::TooFewFieldsAgree));
        let best = &review.candidates[0];
        assert_eq!(best.candidate, singleton);
        assert!(
            best.score >= mpi.config().link_threshold,
            "the score alone would have linked them: {best:?}"
        );
        assert_eq!(best.guard, Some(Guard::TooFewFieldsAgree));
    });
    // The audit trail says which guard held the pair.
    let why: String = service
        .store()
        .read(|conn| {
            Ok(conn.query_row(
                "SELECT why FROM mpi_events WHERE kind = 'record_added' ORDER BY seq DESC LIMIT 1",
                [],
                |r| r.get(0),
            )?)
        })
        .unwrap();
    assert!(why.contains("too_few_fields_agree"), "{why}");
    assert!(
        !why.contains("MARION"),
        "no patient data in the reason: {why}"
    );

    // The source itself then merges 102 into 103 (ADT^A40): a message decides.
    let merged = feed(&service, &corpus("msg_019.hl7"));
    service.read(|mpi| {
        assert_eq!(mpi.enterprise_of(&singleton), Some(merged));
        assert_eq!(mpi.enterprise_of(&other), Some(merged));
    });
}

fn twin(source: &str, id: &str, given: Option<&str>) -> PatientRecord {
    let mut r = PatientRecord::new(source, id);
    r.given = given.map(str::to_string);
    r.family = Some("Okonkwo".into());
    r.birth_date = Some("20150611".into());
    r.sex = Some(Sex::Female);
    r.street = Some("31 Larch Avenue".into());
    r.city = Some("Bendigo".into());
    r.postcode = Some("3550".into());
    r.phone = Some("0412345678".into());
    r
}

#[test]
fn a_record_without_a_given_name_never_merges_twins() {
    let mut index = Mpi::new(MatcherConfig::default(), MatchModel::default()).unwrap();
    let amara = index.ingest(twin("EHR", "1", Some("Amara"))).unwrap();
    let zola = index.ingest(twin("LAB", "2", Some("Zola"))).unwrap();
    assert_eq!(zola.outcome, Outcome::PossibleMatch);
    assert!(matches!(
        zola.reason,
        DecisionReason::Guarded {
            guard: Guard::PossibleTwin,
            ..
        }
    ));
    // The pharmacy sends one of them without a given name: it matches both.
    let unnamed = index.ingest(twin("PHARM", "3", None)).unwrap();
    assert_eq!(unnamed.outcome, Outcome::PossibleMatch, "{unnamed:?}");
    assert!(matches!(
        unnamed.reason,
        DecisionReason::Guarded {
            guard: Guard::PossibleTwin,
            between_candidates: true,
            ..
        }
    ));
    assert!(unnamed.bridged.is_empty());
    let why = &index.history().last().unwrap().why;
    assert!(
        why.contains("guard possible_twin between two candidates"),
        "{why}"
    );
    let of = |id: &str, source: &str| {
        index
            .current_enterprise(index.enterprise_of(&SourceKey::new(source, id)).unwrap())
            .unwrap()
    };
    assert_ne!(
        of("1", "EHR"),
        of("2", "LAB"),
        "the twins stay two patients"
    );
    assert_eq!(of("1", "EHR"), amara.enterprise);
    assert_eq!(
        index.status_of(&SourceKey::new("PHARM", "3")),
        Some(LinkStatus::Review)
    );
    index.check_consistency().unwrap();
}
