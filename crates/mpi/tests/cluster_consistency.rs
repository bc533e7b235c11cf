//! Property: whatever sequence of messages and decisions arrives, each operation does
//! what it says or refuses with the error its preconditions predict, every source record
//! belongs to exactly one enterprise patient, and replaying the log rebuilds the same
//! index.

use mpi::synthetic::{SyntheticOptions, SyntheticPopulation};
use mpi::{
    Actor, Change, DecisionReason, EnterpriseId, LinkStatus, MatchModel, MatcherConfig, Mpi,
    MpiError, MpiEvent, Outcome, SourceKey,
};
use proptest::prelude::*;
use std::collections::HashMap;

#[derive(Debug, Clone)]
enum Op {
    /// A record of person `person` from source `source` (small pools, so records repeat).
    Ingest {
        person: u64,
        source: u8,
        variant: u64,
    },
    Link {
        record: usize,
        target: usize,
    },
    Unlink {
        record: usize,
    },
    MergeEnterprises {
        a: usize,
        b: usize,
    },
    MergeRecords {
        a: usize,
        b: usize,
    },
    Unmerge {
        which: usize,
    },
    Review {
        which: usize,
        accept: bool,
    },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (0u64..12, 0u8..3, 0u64..4).prop_map(|(person, source, variant)| Op::Ingest { person, source, variant }),
        1 => (0usize..64, 0usize..64).prop_map(|(record, target)| Op::Link { record, target }),
        1 => (0usize..64).prop_map(|record| Op::Unlink { record }),
        1 => (0usize..64, 0usize..64).prop_map(|(a, b)| Op::MergeEnterprises { a, b }),
        1 => (0usize..64, 0usize..64).prop_map(|(a, b)| Op::MergeRecords { a, b }),
        1 => (0usize..8).prop_map(|which| Op::Unmerge { which }),
        1 => (0usize..8, any::<bool>()).prop_map(|(which, accept)| Op::Review { which, accept }),
    ]
}

fn person() -> Actor {
    Actor::Person {
        user: "prop".into(),
    }
}

/// Checks through the public API that each source record is in exactly one enterprise.
fn assert_one_enterprise_each(mpi: &Mpi) {
    mpi.check_consistency().unwrap();
    let mut owners: HashMap<SourceKey, Vec<mpi::EnterpriseId>> = HashMap::new();
    for e in mpi.enterprises() {
        for key in mpi.members(e) {
            owners.entry(key).or_default().push(e);
        }
    }
    for (key, enterprise, _) in mpi.source_records() {
        assert_eq!(
            owners.get(&key),
            Some(&vec![enterprise]),
            "{key} must be in exactly {enterprise}"
        );
    }
}

/// The enterprise patient `key` belongs to now.
fn owner(mpi: &Mpi, key: &SourceKey) -> EnterpriseId {
    let e = mpi.enterprise_of(key).expect("a known record");
    mpi.current_enterprise(e).unwrap()
}

/// The status a decision's outcome gives its record.
fn status_for(outcome: Outcome) -> LinkStatus {
    match outcome {
        Outcome::Link => LinkStatus::Linked,
        Outcome::PossibleMatch => LinkStatus::Review,
        Outcome::New => LinkStatus::New,
    }
}

/// A merge done during the run, to predict what undoing it does.
struct Merge {
    seq: u64,
    survivor: EnterpriseId,
    merged: EnterpriseId,
    moved: Vec<SourceKey>,
    retired: Option<SourceKey>,
    undone: bool,
}

impl Merge {
    fn from_event(event: &MpiEvent) -> Merge {
        let Change::EnterprisesMerged {
            survivor,
            merged,
            moved,
            retired,
            ..
        } = &event.change
        else {
            panic!("a merge records EnterprisesMerged: {event:?}");
        };
        Merge {
            seq: event.seq,
            survivor: *survivor,
            merged: *merged,
            moved: moved.clone(),
            retired: retired.clone(),
            undone: false,
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn every_operation_does_what_it_says_and_no_record_is_in_two_patients(ops in prop::collection::vec(op(), 1..60)) {
        let pop = SyntheticPopulation::new(SyntheticOptions { error_rate: 0.3, ..SyntheticOptions::default() });
        let mut mpi = Mpi::new(MatcherConfig::default(), MatchModel::default()).unwrap();
        let mut merges: Vec<Merge> = Vec::new();
        for op in ops {
            let keys: Vec<SourceKey> = mpi.source_records().map(|(k, _, _)| k).collect();
            let enterprises: Vec<_> = mpi.enterprises().collect();
            let key = |i: usize| keys.get(i % keys.len().max(1)).cloned();
            let enterprise = |i: usize| enterprises.get(i % enterprises.len().max(1)).copied();
            match op {
                Op::Ingest { person: p, source, variant } => {
                    let source = ["EHR", "LAB", "RIS"][source as usize];
                    let id = format!("{source}-{p}-{}", variant % 2);
                    let record = pop.variant(p, source, &id, variant);
                    let k = record.key();
                    let seen = keys.contains(&k);
                    let d = mpi.ingest(record).unwrap();
                    prop_assert_eq!(&d.record, &k);
                    prop_assert_eq!(owner(&mpi, &k), mpi.current_enterprise(d.enterprise).unwrap());
                    prop_assert_eq!(mpi.status_of(&k), Some(status_for(d.outcome)));
                    // (An update keeps its place unless re-matched; its reason is the
                    // matcher's view, not what happened.)
                    if !seen && matches!(d.reason, DecisionReason::Guarded { .. }) {
                        prop_assert_eq!(d.outcome, Outcome::PossibleMatch);
                        prop_assert!(mpi.reviews().any(|r| r.record == k && r.guard.is_some()));
                    }
                }
                Op::Link { record, target } => {
                    let (Some(k), Some(e)) = (key(record), enterprise(target)) else { continue };
                    let result = mpi.link(&k, e, person(), "prop");
                    if owner(&mpi, &k) == e && result.is_err() {
                        prop_assert_eq!(result.unwrap_err(), MpiError::AlreadyLinked(k, e));
                    } else {
                        let event = result.unwrap();
                        let is_link = matches!(&event.change, Change::RecordLinked { to, .. } if *to == e);
                        prop_assert!(is_link, "{:?}", event);
                        prop_assert_eq!(owner(&mpi, &k), e);
                        prop_assert_eq!(mpi.status_of(&k), Some(LinkStatus::Linked));
                        prop_assert_eq!(mpi.is_pinned(&k), Some(true));
                    }
                }
                Op::Unlink { record } => {
                    let Some(k) = key(record) else { continue };
                    let before = owner(&mpi, &k);
                    let alone = mpi.members(before).len() < 2;
                    let result = mpi.unlink(&k, person(), "prop");
                    if alone {
                        prop_assert_eq!(result.unwrap_err(), MpiError::NothingToUnlink(k));
                    } else {
                        result.unwrap();
                        let now = owner(&mpi, &k);
                        prop_assert_ne!(now, before);
                        prop_assert_eq!(mpi.members(now), vec![k.clone()]);
                        prop_assert!(!mpi.members(before).contains(&k));
                        prop_assert_eq!(mpi.status_of(&k), Some(LinkStatus::New));
                    }
                }
                Op::MergeEnterprises { a, b } => {
                    let (Some(x), Some(y)) = (enterprise(a), enterprise(b)) else { continue };
                    let moving = mpi.members(y);
                    let result = mpi.merge_enterprises(x, y, person(), "prop");
                    if x == y {
                        prop_assert_eq!(result.unwrap_err(), MpiError::SameEnterprise(x));
                    } else {
                        let event = result.unwrap();
                        prop_assert!(mpi.members(y).is_empty());
                        prop_assert_eq!(mpi.current_enterprise(y).unwrap(), x);
                        for k in &moving {
                            prop_assert_eq!(owner(&mpi, k), x);
                        }
                        merges.push(Merge::from_event(&event));
                    }
                }
                Op::MergeRecords { a, b } => {
                    let (Some(x), Some(y)) = (key(a), key(b)) else { continue };
                    let was_active = mpi.is_active(&y) == Some(true);
                    let result = mpi.merge_source_records(&x, &y, person(), "A40");
                    if x == y {
                        prop_assert_eq!(result.unwrap_err(), MpiError::SameRecord(x));
                    } else if !was_active {
                        prop_assert_eq!(result.unwrap_err(), MpiError::AlreadyMerged(y));
                    } else {
                        let event = result.unwrap();
                        prop_assert_eq!(mpi.is_active(&y), Some(false));
                        prop_assert_eq!(owner(&mpi, &y), owner(&mpi, &x));
                        merges.push(Merge::from_event(&event));
                    }
                }
                Op::Unmerge { which } => {
                    if merges.is_empty() {
                        continue;
                    }
                    let n = which % merges.len();
                    let m = &merges[n];
                    let moved_since = m
                        .moved
                        .iter()
                        .find(|k| mpi.enterprise_of(k) != Some(m.survivor))
                        .cloned();
                    let result = mpi.unmerge(m.seq, person(), "undo");
                    if m.undone {
                        prop_assert_eq!(result.unwrap_err(), MpiError::AlreadyUndone(m.seq));
                    } else if let Some(record) = moved_since {
                        prop_assert_eq!(
                            result.unwrap_err(),
                            MpiError::UnmergeConflict { merge_seq: m.seq, record }
                        );
                    } else {
                        result.unwrap();
                        for k in &m.moved {
                            prop_assert_eq!(mpi.enterprise_of(k), Some(m.merged));
                        }
                        if let Some(r) = &m.retired {
                            prop_assert_eq!(mpi.is_active(r), Some(true));
                        }
                        merges[n].undone = true;
                    }
                }
                Op::Review { which, accept } => {
                    let open: Vec<_> = mpi.reviews().cloned().collect();
                    let Some(item) = open.get(which % open.len().max(1)) else { continue };
                    let best = item.candidates.first().map(|c| c.enterprise);
                    if let (true, Some(best)) = (accept, best) {
                        let to = mpi.current_enterprise(best).unwrap();
                        mpi.accept_review(item.id, best, person(), "ok").unwrap();
                        prop_assert_eq!(owner(&mpi, &item.record), to);
                        prop_assert_eq!(mpi.status_of(&item.record), Some(LinkStatus::Linked));
                    } else {
                        mpi.reject_review(item.id, person(), "no").unwrap();
                        prop_assert_eq!(mpi.status_of(&item.record), Some(LinkStatus::New));
                    }
                    prop_assert!(mpi.review(item.id).is_none(), "a decided review is closed");
                    let again = mpi.reject_review(item.id, person(), "twice");
                    prop_assert_eq!(again.unwrap_err(), MpiError::UnknownReview(item.id));
                }
            }
            assert_one_enterprise_each(&mpi);
        }
        let replayed = Mpi::replay(MatcherConfig::default(), MatchModel::default(), mpi.history().to_vec()).unwrap();
        assert_one_enterprise_each(&replayed);
        let a: Vec<_> = mpi.source_records().collect();
        let b: Vec<_> = replayed.source_records().collect();
        prop_assert_eq!(a, b);
    }
}
