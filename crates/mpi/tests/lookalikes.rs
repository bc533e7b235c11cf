//! Look-alikes loaded after FEBRL3: the model is estimated on FEBRL3 (realistic data),
//! its 5,000 records are indexed, then 40 pairs of each kind from `mpi::lookalike`
//! arrive, each pair's first record then its second. Different people must never be
//! linked automatically (each pair lands in review or stays apart); the true duplicates
//! must all be found.

mod febrl_support;

use febrl_support::{load, look_alike_table, look_alikes_after};
use mpi::MatcherConfig;
use mpi::lookalike::LookAlikeKind;

const PAIRS_PER_KIND: usize = 40;

#[test]
fn look_alikes_after_febrl3_are_never_linked_and_true_duplicates_are() {
    let febrl3 = load("febrl3", "febrl").unwrap();
    let tallies = look_alikes_after(&febrl3, &MatcherConfig::default(), PAIRS_PER_KIND, 19);
    println!("{}", look_alike_table(&tallies));
    for kind in LookAlikeKind::ALL {
        let t = &tallies[kind.name()];
        assert_eq!(t.linked + t.review + t.apart, PAIRS_PER_KIND);
        if kind.same_person() {
            assert_eq!(
                t.linked, PAIRS_PER_KIND,
                "every true duplicate is found: {t:?}"
            );
        } else {
            assert_eq!(t.linked, 0, "{}: no automatic link: {t:?}", kind.name());
        }
    }
}
