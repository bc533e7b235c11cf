//! Property: whatever sequence of messages and decisions arrives, every source record
//! belongs to exactly one enterprise patient, and replaying the log rebuilds the same
//! index.

use mpi::synthetic::{SyntheticOptions, SyntheticPopulation};
use mpi::{Actor, MatchModel, MatcherConfig, Mpi, SourceKey};
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

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn no_source_record_is_ever_in_two_enterprise_patients(ops in prop::collection::vec(op(), 1..60)) {
        let pop = SyntheticPopulation::new(SyntheticOptions { error_rate: 0.3, ..SyntheticOptions::default() });
        let mut mpi = Mpi::new(MatcherConfig::default(), MatchModel::default()).unwrap();
        let mut merges: Vec<u64> = Vec::new();
        for op in ops {
            let keys: Vec<SourceKey> = mpi.source_records().map(|(k, _, _)| k).collect();
            let enterprises: Vec<_> = mpi.enterprises().collect();
            let key = |i: usize| keys.get(i % keys.len().max(1)).cloned();
            // Errors are fine (e.g. unlinking a lone record); inconsistency is not.
            match op {
                Op::Ingest { person: p, source, variant } => {
                    let source = ["EHR", "LAB", "RIS"][source as usize];
                    let id = format!("{source}-{p}-{}", variant % 2);
                    mpi.ingest(pop.variant(p, source, &id, variant)).unwrap();
                }
                Op::Link { record, target } => {
                    if let (Some(k), Some(&e)) = (key(record), enterprises.get(target % enterprises.len().max(1))) {
                        let _ = mpi.link(&k, e, person(), "prop");
                    }
                }
                Op::Unlink { record } => {
                    if let Some(k) = key(record) {
                        let _ = mpi.unlink(&k, person(), "prop");
                    }
                }
                Op::MergeEnterprises { a, b } => {
                    let n = enterprises.len().max(1);
                    if let (Some(&x), Some(&y)) = (enterprises.get(a % n), enterprises.get(b % n)) {
                        if let Ok(e) = mpi.merge_enterprises(x, y, person(), "prop") {
                            merges.push(e.seq);
                        }
                    }
                }
                Op::MergeRecords { a, b } => {
                    if let (Some(x), Some(y)) = (key(a), key(b)) {
                        if let Ok(e) = mpi.merge_source_records(&x, &y, person(), "A40") {
                            merges.push(e.seq);
                        }
                    }
                }
                Op::Unmerge { which } => {
                    if let Some(&seq) = merges.get(which % merges.len().max(1)) {
                        let _ = mpi.unmerge(seq, person(), "undo");
                    }
                }
                Op::Review { which, accept } => {
                    let open: Vec<_> = mpi.reviews().cloned().collect();
                    if let Some(item) = open.get(which % open.len().max(1)) {
                        if let (true, Some(best)) = (accept, item.candidates.first()) {
                            let _ = mpi.accept_review(item.id, best.enterprise, person(), "ok");
                        } else {
                            let _ = mpi.reject_review(item.id, person(), "no");
                        }
                    }
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
