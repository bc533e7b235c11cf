//! How the index behaves for the people and messages that drive it.

use mpi::{
    Actor, Change, DecisionReason, Identifier, LinkStatus, MatchModel, MatcherConfig, Mpi, Outcome,
    PatientRecord, SourceKey, Survivorship, SurvivorshipRules,
};

fn index() -> Mpi {
    Mpi::new(MatcherConfig::default(), MatchModel::default()).unwrap()
}

fn patient(source: &str, id: &str, given: &str, family: &str, dob: &str) -> PatientRecord {
    let mut r = PatientRecord::new(source, id);
    r.given = Some(given.into());
    r.family = Some(family.into());
    r.birth_date = Some(dob.into());
    r
}

fn full(source: &str, id: &str) -> PatientRecord {
    let mut r = patient(source, id, "Harriet", "Quarrington", "19720415");
    r.street = Some("12 Kestrel Lane".into());
    r.city = Some("Ballarat".into());
    r.postcode = Some("3350".into());
    r.phone = Some("0412345678".into());
    r
}

fn person() -> Actor {
    Actor::Person {
        user: "reviewer1".into(),
    }
}

#[test]
fn qualified_identifier_links_even_when_demographics_differ() {
    let mut mpi = index();
    let a = patient("LAB", "1", "Ann", "Lee", "19800101").with_identifier(Identifier::new(
        "X99",
        "STATE_REGISTRY",
        "PI",
    ));
    mpi.ingest(a).unwrap();
    let b = patient("EHR", "7", "Zed", "Other", "19500505").with_identifier(Identifier::new(
        "X99",
        "STATE_REGISTRY",
        "PI",
    ));
    let d = mpi.ingest(b).unwrap();
    assert_eq!(d.outcome, Outcome::Link);
    assert!(matches!(d.reason, DecisionReason::Identifier { .. }));
}

#[test]
fn the_same_number_from_another_authority_is_not_an_identifier_match() {
    let mut mpi = index();
    mpi.ingest(
        patient("LAB", "1", "Ann", "Lee", "19800101")
            .with_identifier(Identifier::new("555", "LAB", "MR")),
    )
    .unwrap();
    let d = mpi
        .ingest(
            patient("EHR", "2", "Zed", "Other", "19500505")
                .with_identifier(Identifier::new("555", "EHR", "MR")),
        )
        .unwrap();
    assert_eq!(d.outcome, Outcome::New);
    // Same value and authority but another type is not the same identifier either.
    let d = mpi
        .ingest(
            patient("RIS", "3", "Yan", "Third", "19400404")
                .with_identifier(Identifier::new("555", "LAB", "PI")),
        )
        .unwrap();
    assert_eq!(d.outcome, Outcome::New);
}

#[test]
fn a_matching_record_links_with_per_field_explanation() {
    let mut mpi = index();
    let first = mpi.ingest(full("LAB", "L1")).unwrap();
    let mut other = full("EHR", "E1");
    other.given = Some("Hariet".into());
    other.birth_date = Some("19721504".into()); // not a valid date: typo'd month
    let d = mpi.ingest(other).unwrap();
    assert_eq!(d.outcome, Outcome::Link);
    assert_eq!(d.enterprise, first.enterprise);
    let best = &d.candidates[0];
    assert_eq!(best.candidate, SourceKey::new("LAB", "L1"));
    assert!(best.score >= mpi.config().link_threshold);
    let total: f64 = best.fields.iter().map(|f| f.weight).sum();
    assert!(
        (total - best.score).abs() < 1e-9,
        "field weights add up to the score"
    );
    assert!(
        best.fields
            .iter()
            .any(|f| f.field == mpi::Field::Given && f.level.starts_with("jaro"))
    );
}

#[test]
fn an_uncertain_record_is_queued_for_review_and_a_person_decides() {
    let mut mpi = index();
    let first = mpi
        .ingest(patient("LAB", "L1", "Harriet", "Quarrington", "19720415"))
        .unwrap();
    // Same name, birth year only: enough to suspect, not enough to link.
    let d = mpi
        .ingest(patient("EHR", "E1", "Harriet", "Quarrington", "19721130"))
        .unwrap();
    assert_eq!(d.outcome, Outcome::PossibleMatch, "{d:?}");
    assert_ne!(d.enterprise, first.enterprise);
    let review = mpi.reviews().next().unwrap().clone();
    assert_eq!(review.record, SourceKey::new("EHR", "E1"));
    assert_eq!(review.candidates[0].enterprise, first.enterprise);
    assert_eq!(mpi.status_of(&review.record), Some(LinkStatus::Review));

    mpi.accept_review(
        review.id,
        first.enterprise,
        person(),
        "same patient, checked by phone",
    )
    .unwrap();
    assert_eq!(mpi.enterprise_of(&review.record), Some(first.enterprise));
    assert_eq!(mpi.status_of(&review.record), Some(LinkStatus::Linked));
    assert_eq!(mpi.reviews().count(), 0);
    assert!(
        mpi.accept_review(review.id, first.enterprise, person(), "again")
            .is_err()
    );
}

#[test]
fn a_rejected_review_stays_a_patient_of_its_own() {
    let mut mpi = index();
    mpi.ingest(patient("LAB", "L1", "Harriet", "Quarrington", "19720415"))
        .unwrap();
    let d = mpi
        .ingest(patient("EHR", "E1", "Harriet", "Quarrington", "19721130"))
        .unwrap();
    let id = mpi.reviews().next().unwrap().id;
    mpi.reject_review(id, person(), "twins").unwrap();
    assert_eq!(
        mpi.enterprise_of(&SourceKey::new("EHR", "E1")),
        Some(d.enterprise)
    );
    assert_eq!(
        mpi.status_of(&SourceKey::new("EHR", "E1")),
        Some(LinkStatus::New)
    );
}

#[test]
fn manual_unlink_is_never_undone_by_the_matcher() {
    let mut mpi = index();
    let a = mpi.ingest(full("LAB", "L1")).unwrap();
    let b = mpi.ingest(full("EHR", "E1")).unwrap();
    assert_eq!(a.enterprise, b.enterprise);
    mpi.unlink(
        &SourceKey::new("EHR", "E1"),
        person(),
        "different patient, same name",
    )
    .unwrap();
    let alone = mpi.enterprise_of(&SourceKey::new("EHR", "E1")).unwrap();
    assert_ne!(alone, a.enterprise);
    // The EHR sends the same record again (an A08): it matches, but stays where the person put it.
    let again = mpi.ingest(full("EHR", "E1")).unwrap();
    assert_eq!(again.enterprise, alone);
    assert_eq!(mpi.enterprise_of(&SourceKey::new("EHR", "E1")), Some(alone));
    // A third record still links to the enterprise patient it matches best.
    let c = mpi.ingest(full("RIS", "R1")).unwrap();
    assert_eq!(c.outcome, Outcome::Link);
    mpi.check_consistency().unwrap();
}

#[test]
fn an_updated_record_alone_in_its_enterprise_is_rematched() {
    let mut mpi = index();
    let a = mpi.ingest(full("LAB", "L1")).unwrap();
    // Registered with a name only at first: not enough to link.
    let mut sparse = PatientRecord::new("EHR", "E1");
    sparse.family = Some("Quarrington".into());
    let first = mpi.ingest(sparse).unwrap();
    assert_ne!(first.outcome, Outcome::Link);
    // The full registration arrives as an update and links.
    let d = mpi.ingest(full("EHR", "E1")).unwrap();
    assert_eq!(d.outcome, Outcome::Link);
    assert_eq!(
        mpi.enterprise_of(&SourceKey::new("EHR", "E1")),
        Some(a.enterprise)
    );
    assert_eq!(mpi.len(), 2);
}

#[test]
fn a40_merge_and_its_undo_leave_links_golden_records_and_history_consistent() {
    let mut mpi = index();
    let rules = SurvivorshipRules::default();
    let survivor = mpi
        .ingest(patient("EHR", "MRN-1", "Ann", "Lee", "19800101"))
        .unwrap();
    let mut dup = patient("EHR", "MRN-2", "Zelda", "Fitzgerald", "19000101");
    dup.phone = Some("0299999999".into());
    let merged = mpi.ingest(dup).unwrap();
    let lab = mpi
        .ingest(patient("LAB", "L-9", "Zelda", "Fitzgerald", "19000101"))
        .unwrap();
    assert_eq!(lab.enterprise, merged.enterprise);
    assert_ne!(survivor.enterprise, merged.enterprise);

    // ADT^A40: MRN-2 merged into MRN-1.
    let event = mpi
        .merge_source_records(
            &SourceKey::new("EHR", "MRN-1"),
            &SourceKey::new("EHR", "MRN-2"),
            Actor::Message {
                control_id: "MSG0001".into(),
            },
            "ADT^A40",
        )
        .unwrap();
    mpi.check_consistency().unwrap();
    assert_eq!(
        mpi.enterprise_of(&SourceKey::new("LAB", "L-9")),
        Some(survivor.enterprise)
    );
    assert_eq!(
        mpi.enterprise_of(&SourceKey::new("EHR", "MRN-2")),
        Some(survivor.enterprise)
    );
    assert_eq!(mpi.is_active(&SourceKey::new("EHR", "MRN-2")), Some(false));
    assert_eq!(
        mpi.current_enterprise(merged.enterprise).unwrap(),
        survivor.enterprise
    );
    let golden = mpi.golden_record(survivor.enterprise, &rules).unwrap();
    assert_eq!(
        golden.sources.len(),
        2,
        "the retired record no longer feeds the golden record"
    );
    assert_eq!(golden.record.phone, None);
    assert!(
        mpi.golden_record(merged.enterprise, &rules).is_some(),
        "old id follows the merge"
    );

    // The merge was a mistake: undo it.
    mpi.unmerge(
        event.seq,
        Actor::Person { user: "him".into() },
        "wrong patient merged",
    )
    .unwrap();
    mpi.check_consistency().unwrap();
    assert_eq!(
        mpi.enterprise_of(&SourceKey::new("LAB", "L-9")),
        Some(merged.enterprise)
    );
    assert_eq!(
        mpi.enterprise_of(&SourceKey::new("EHR", "MRN-2")),
        Some(merged.enterprise)
    );
    assert_eq!(mpi.is_active(&SourceKey::new("EHR", "MRN-2")), Some(true));
    assert_eq!(
        mpi.current_enterprise(merged.enterprise).unwrap(),
        merged.enterprise
    );
    let golden = mpi.golden_record(merged.enterprise, &rules).unwrap();
    assert_eq!(golden.record.phone.as_deref(), Some("0299999999"));
    assert_eq!(
        mpi.members(survivor.enterprise),
        vec![SourceKey::new("EHR", "MRN-1")]
    );
    assert!(mpi.unmerge(event.seq, person(), "twice").is_err());

    let history = mpi.history_of(merged.enterprise);
    assert!(
        history
            .iter()
            .any(|e| matches!(e.change, Change::EnterprisesMerged { .. })
                && e.actor
                    == Actor::Message {
                        control_id: "MSG0001".into()
                    })
    );
    assert!(history.iter().any(|e| matches!(e.change, Change::Unmerged { .. }) && e.why == "wrong patient merged"));
    // The retired record is matched against again after the undo.
    let d = mpi
        .ingest(patient("RIS", "R-1", "Zelda", "Fitzgerald", "19000101"))
        .unwrap();
    assert_eq!(d.enterprise, merged.enterprise);
}

#[test]
fn unmerge_refuses_when_a_person_moved_a_record_since() {
    let mut mpi = index();
    let a = mpi
        .ingest(patient("EHR", "1", "Ann", "Lee", "19800101"))
        .unwrap();
    let b = mpi
        .ingest(patient("EHR", "2", "Zelda", "Fitzgerald", "19000101"))
        .unwrap();
    let merge = mpi
        .merge_enterprises(a.enterprise, b.enterprise, person(), "same")
        .unwrap();
    mpi.unlink(&SourceKey::new("EHR", "2"), person(), "not the same")
        .unwrap();
    let err = mpi.unmerge(merge.seq, person(), "undo").unwrap_err();
    assert!(err.to_string().contains("has moved since"), "{err}");
    mpi.check_consistency().unwrap();
}

#[test]
fn golden_record_follows_the_configured_rules() {
    let mut mpi = index();
    let mut a = full("EHR", "1");
    a.phone = Some("0400000001".into());
    let mut b = full("LAB", "2");
    b.given = Some("Hariet".into());
    b.phone = Some("0400000002".into());
    let mut c = full("RIS", "3");
    c.given = Some("Hariet".into());
    c.phone = Some("0400000003".into());
    let e = mpi.ingest(a).unwrap().enterprise;
    for r in [b, c] {
        assert_eq!(mpi.ingest(r).unwrap().enterprise, e);
    }
    let mut rules = SurvivorshipRules {
        default: Survivorship::MostFrequent,
        ..SurvivorshipRules::default()
    };
    let g = mpi.golden_record(e, &rules).unwrap();
    assert_eq!(
        g.record.given.as_deref(),
        Some("Hariet"),
        "two sources outvote one"
    );
    assert_eq!(
        g.record.phone.as_deref(),
        Some("0400000003"),
        "contact details: most recent"
    );
    rules.default = Survivorship::MostTrustedSource;
    rules.source_trust = vec!["EHR".into()];
    rules
        .fields
        .insert("phone".into(), Survivorship::MostTrustedSource);
    let g = mpi.golden_record(e, &rules).unwrap();
    assert_eq!(g.record.given.as_deref(), Some("Harriet"));
    assert_eq!(g.record.phone.as_deref(), Some("0400000001"));
    rules
        .fields
        .insert("nickname".into(), Survivorship::MostRecent);
    assert!(rules.check().is_err());
}

#[test]
fn replaying_the_event_log_rebuilds_the_same_index() {
    let mut mpi = index();
    mpi.ingest(full("LAB", "L1")).unwrap();
    mpi.ingest(full("EHR", "E1")).unwrap();
    mpi.ingest(patient("LAB", "L2", "Harriet", "Quarrington", "19721130"))
        .unwrap();
    mpi.ingest(patient("RIS", "R1", "Bob", "Stone", "19500101"))
        .unwrap();
    let e = mpi.enterprise_of(&SourceKey::new("RIS", "R1")).unwrap();
    let l = mpi.enterprise_of(&SourceKey::new("LAB", "L1")).unwrap();
    let merge = mpi.merge_enterprises(l, e, person(), "same").unwrap();
    mpi.unmerge(merge.seq, person(), "undo").unwrap();
    mpi.unlink(&SourceKey::new("EHR", "E1"), person(), "split")
        .unwrap();

    let events: Vec<_> = mpi.history().to_vec();
    let json = serde_json::to_string(&events).unwrap();
    let events: Vec<mpi::MpiEvent> = serde_json::from_str(&json).unwrap();
    let replayed = Mpi::replay(MatcherConfig::default(), MatchModel::default(), events).unwrap();
    let mut a: Vec<_> = mpi.source_records().collect();
    let mut b: Vec<_> = replayed.source_records().collect();
    a.sort_by(|x, y| x.0.cmp(&y.0));
    b.sort_by(|x, y| x.0.cmp(&y.0));
    assert_eq!(a, b);
    let open = |m: &Mpi| {
        m.reviews()
            .map(|r| (r.id, r.record.clone(), r.provisional))
            .collect::<Vec<_>>()
    };
    assert_eq!(open(&mpi), open(&replayed));
    assert_eq!(open(&mpi).len(), 1);
    replayed.check_consistency().unwrap();
}

#[test]
fn a_record_without_source_or_id_is_refused() {
    let mut mpi = index();
    let err = mpi.ingest(PatientRecord::new("", "1")).unwrap_err();
    assert_eq!(err, mpi::MpiError::MissingKey);
}

#[test]
fn the_model_estimated_from_synthetic_patients_separates_matches() {
    use mpi::synthetic::{SyntheticOptions, SyntheticPopulation};
    let pop = SyntheticPopulation::new(SyntheticOptions::default());
    let mut records = Vec::new();
    for n in 0..2000u64 {
        records.push(pop.variant(n, "EHR", &format!("E{n}"), 1));
        if n % 2 == 0 {
            records.push(pop.variant(n, "LAB", &format!("L{n}"), 2));
        }
    }
    let options = mpi::TrainingOptions {
        random_pairs: 50_000,
        ..mpi::TrainingOptions::default()
    };
    let (model, report) = MatchModel::estimate(&records, &options);
    assert!(report.blocked_pairs > 1000);
    let birth = model.field(mpi::Field::BirthDate);
    assert!(
        birth.m[0] > 0.7,
        "most true matches share the birth date: {birth:?}"
    );
    assert!(birth.weight(0) > 8.0);
    // 1000 true pairs; EM's share of matches among the blocked pairs should agree.
    let true_share = 1000.0 / report.blocked_pairs as f64;
    assert!(
        (report.prior - true_share).abs() < 0.05,
        "{report:?}, true share {true_share}"
    );
    let mut mpi = Mpi::new(MatcherConfig::default(), model).unwrap();
    let mut correct = 0;
    for (i, r) in records.iter().enumerate() {
        let d = mpi.ingest(r.clone()).unwrap();
        let is_dup = r.source == "LAB";
        if (d.outcome == Outcome::Link) == is_dup {
            correct += 1;
        } else if i < 10 {
            println!("{d:?}");
        }
    }
    assert!(
        correct as f64 / records.len() as f64 > 0.97,
        "{correct} of {}",
        records.len()
    );
}

fn harriet(source: &str, id: &str) -> PatientRecord {
    patient(source, id, "Harriet", "Quarrington", "19720415")
}

#[test]
fn a_record_that_links_two_enterprise_patients_merges_them() {
    let mut mpi = index();
    let mut a = harriet("LAB", "1");
    a.phone = Some("0412345678".into());
    let a = mpi.ingest(a).unwrap();
    // Same name, nothing else in common: not linked.
    let mut b = PatientRecord::new("EHR", "2");
    b.given = Some("Harriet".into());
    b.family = Some("Quarrington".into());
    b.street = Some("12 Kestrel Lane".into());
    b.postcode = Some("3350".into());
    let b = mpi.ingest(b).unwrap();
    assert_ne!(b.outcome, Outcome::Link, "{b:?}");
    // A record agreeing with each of them on different fields bridges the two.
    let mut c = harriet("RIS", "3");
    c.phone = Some("0412345678".into());
    c.street = Some("12 Kestrel Lane".into());
    c.postcode = Some("3350".into());
    let c = mpi.ingest(c).unwrap();
    assert_eq!(c.outcome, Outcome::Link);
    assert_eq!(c.bridged.len(), 1, "{c:?}");
    let survivor = mpi.current_enterprise(a.enterprise).unwrap();
    assert_eq!(mpi.members(survivor).len(), 3);
    assert_eq!(
        mpi.enterprise_of(&SourceKey::new("EHR", "2")),
        Some(survivor)
    );
    assert_eq!(
        mpi.status_of(&SourceKey::new("EHR", "2")),
        Some(LinkStatus::Linked)
    );
    assert_eq!(mpi.reviews().count(), 0, "the bridge answered the review");
    let merge = mpi
        .history()
        .iter()
        .rev()
        .find(|e| {
            matches!(
                e.change,
                Change::EnterprisesMerged {
                    automatic: true,
                    ..
                }
            )
        })
        .unwrap();
    assert_eq!(merge.actor, Actor::Matcher);
    mpi.check_consistency().unwrap();
}

#[test]
fn a_bridging_record_never_merges_what_a_person_separated() {
    let mut mpi = index();
    let first = mpi.ingest(full("LAB", "L1")).unwrap();
    mpi.ingest(full("EHR", "E1")).unwrap();
    mpi.unlink(&SourceKey::new("EHR", "E1"), person(), "twins")
        .unwrap();
    let separated = mpi.enterprise_of(&SourceKey::new("EHR", "E1")).unwrap();
    let d = mpi.ingest(full("RIS", "R1")).unwrap();
    assert_eq!(d.outcome, Outcome::Link);
    assert_eq!(d.bridged.len(), 1);
    assert_ne!(
        mpi.current_enterprise(first.enterprise).unwrap(),
        mpi.current_enterprise(separated).unwrap()
    );
    mpi.check_consistency().unwrap();
}

#[test]
fn matcher_settings_read_from_json_name_unknown_keys() {
    let config: MatcherConfig =
        serde_json::from_str(r#"{"link_threshold": 15.0, "ssn_rule": "score_only"}"#).unwrap();
    assert_eq!(config.link_threshold, 15.0);
    assert_eq!(config.ssn_rule, mpi::SsnRule::ScoreOnly);
    assert_eq!(
        config.review_threshold,
        MatcherConfig::default().review_threshold
    );
    let err = serde_json::from_str::<MatcherConfig>(r#"{"link_treshold": 15.0}"#).unwrap_err();
    assert!(err.to_string().contains("link_treshold"), "{err}");
    let rules: SurvivorshipRules =
        serde_json::from_str(r#"{"default": "most_trusted_source", "source_trust": ["EHR"]}"#)
            .unwrap();
    assert_eq!(rules.default, Survivorship::MostTrustedSource);
    rules.check().unwrap();
}
