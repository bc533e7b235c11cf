//! Accuracy of the matcher on the FEBRL data sets, records fed one at a time.
//!
//! ```text
//! cargo run --release -p mpi --example febrl_eval [-- --link BITS --review BITS --seed N --ssn corroborated|score-only --merge-bridged true|false]
//! ```
//!
//! FEBRL1 and FEBRL2 are the tuning sets; FEBRL3 and FEBRL4 (A and B as two sources,
//! scored on cross-source pairs) are held-out checks. Last, 40 look-alike pairs of each
//! kind (`mpi::lookalike`, seed 19) are loaded after FEBRL3 and counted: linked, in
//! review or apart.

#[path = "../tests/febrl_support/mod.rs"]
mod febrl_support;

use febrl_support::{evaluate, load, look_alike_table, look_alikes_after};
use mpi::MatcherConfig;

fn main() -> Result<(), String> {
    let mut config = MatcherConfig::default();
    let mut seed = 7u64;
    let args: Vec<String> = std::env::args().skip(1).collect();
    for pair in args.chunks(2) {
        let value = pair.get(1).ok_or(format!("{} needs a value", pair[0]))?;
        match pair[0].as_str() {
            "--link" => {
                config.link_threshold = value.parse().map_err(|e| format!("--link: {e}"))?
            }
            "--review" => {
                config.review_threshold = value.parse().map_err(|e| format!("--review: {e}"))?
            }
            "--seed" => seed = value.parse().map_err(|e| format!("--seed: {e}"))?,
            "--merge-bridged" => {
                config.merge_bridged = value.parse().map_err(|e| format!("--merge-bridged: {e}"))?
            }
            "--ssn" => {
                config.ssn_rule = match value.as_str() {
                    "corroborated" => mpi::SsnRule::Corroborated,
                    "score-only" => mpi::SsnRule::ScoreOnly,
                    other => return Err(format!("--ssn {other}: use corroborated or score-only")),
                }
            }
            other => {
                return Err(format!(
                    "unknown option {other} (known: --link, --review, --seed, --ssn, --merge-bridged)"
                ));
            }
        }
    }
    println!(
        "link threshold {} bits, review threshold {} bits, SSN rule {:?}, merge bridged {}, shuffle seed {seed}",
        config.link_threshold, config.review_threshold, config.ssn_rule, config.merge_bridged
    );
    for name in ["febrl1", "febrl2", "febrl3"] {
        let records = load(name, "febrl")?;
        let acc = evaluate(&records, &config, seed, false);
        println!("{name} dedup: {acc}");
    }
    let mut linkage = load("febrl4a", "A")?;
    linkage.extend(load("febrl4b", "B")?);
    let acc = evaluate(&linkage, &config, seed, true);
    println!("febrl4 linkage (A+B, cross-source pairs): {acc}");
    let tallies = look_alikes_after(&load("febrl3", "febrl")?, &config, 40, 19);
    println!(
        "look-alikes after FEBRL3, 40 pairs of each kind:\n{}",
        look_alike_table(&tallies)
    );
    Ok(())
}
