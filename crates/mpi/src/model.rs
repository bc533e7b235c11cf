//! The Fellegi-Sunter model: for each field and comparison level, the probability of that
//! level among true matches (m) and among non-matches (u). A level's weight is
//! `log2(m / u)`; a pair's score is the sum over fields. u is measured on random pairs
//! (almost all non-matches), m is estimated by expectation-maximisation on the pairs that
//! blocking produces, so neither needs labelled data.

use crate::compare::{FIELD_COUNT, Features, Field, Levels, MISSING, compare};
use crate::index::{BlockKey, Blocks, block_keys};
use crate::intern::Interner;
use crate::record::PatientRecord;
use crate::rng::SplitMix64;
use hashbrown::HashMap;
use serde::{Deserialize, Serialize};

const MAX_LEVELS: usize = 5;

/// m and u of each level of one field.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FieldModel {
    pub field: Field,
    /// P(level | records are the same patient), best level first.
    pub m: Vec<f64>,
    /// P(level | records are different patients).
    pub u: Vec<f64>,
}

impl FieldModel {
    pub fn weight(&self, level: usize) -> f64 {
        (self.m[level] / self.u[level]).log2()
    }
}

/// The parameters of the match model. Serialisable, so a trained model can be stored and
/// reloaded instead of re-estimated.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MatchModel {
    /// Share of blocked candidate pairs that are true matches, as EM estimated it.
    pub prior: f64,
    pub fields: Vec<FieldModel>,
}

impl Default for MatchModel {
    /// Hand-set starting values for an index that has not been trained yet: strong
    /// evidence from exact agreement on identifying fields, little from sex and state.
    fn default() -> Self {
        let fm = |field: Field, m: &[f64], u: &[f64]| FieldModel {
            field,
            m: m.to_vec(),
            u: u.to_vec(),
        };
        MatchModel {
            prior: 0.05,
            fields: vec![
                fm(
                    Field::Given,
                    &[0.85, 0.07, 0.03, 0.05],
                    &[0.01, 0.005, 0.02, 0.965],
                ),
                fm(
                    Field::Family,
                    &[0.85, 0.07, 0.03, 0.05],
                    &[0.005, 0.003, 0.01, 0.982],
                ),
                fm(Field::Middle, &[0.8, 0.1, 0.1], &[0.01, 0.05, 0.94]),
                fm(
                    Field::BirthDate,
                    &[0.85, 0.02, 0.08, 0.02, 0.03],
                    &[0.00005, 0.00001, 0.001, 0.02, 0.97894],
                ),
                fm(Field::Sex, &[0.97, 0.03], &[0.5, 0.5]),
                fm(
                    Field::Street,
                    &[0.7, 0.1, 0.05, 0.15],
                    &[0.0001, 0.001, 0.02, 0.9789],
                ),
                fm(Field::Street2, &[0.7, 0.1, 0.2], &[0.001, 0.01, 0.989]),
                fm(Field::City, &[0.8, 0.08, 0.12], &[0.005, 0.01, 0.985]),
                fm(Field::State, &[0.9, 0.1], &[0.2, 0.8]),
                fm(Field::Postcode, &[0.8, 0.1, 0.1], &[0.002, 0.02, 0.978]),
                fm(Field::Phone, &[0.75, 0.1, 0.15], &[0.0001, 0.001, 0.9989]),
                fm(
                    Field::Ssn,
                    &[0.85, 0.08, 0.03, 0.04],
                    &[0.00001, 0.0001, 0.001, 0.99889],
                ),
            ],
        }
    }
}

/// Options of [`MatchModel::estimate`].
#[derive(Debug, Clone)]
pub struct TrainingOptions {
    /// Random pairs sampled to measure u.
    pub random_pairs: usize,
    pub em_iterations: usize,
    /// Blocks larger than this are skipped while gathering training pairs.
    pub max_block_size: usize,
    pub seed: u64,
}

impl Default for TrainingOptions {
    fn default() -> Self {
        TrainingOptions {
            random_pairs: 300_000,
            em_iterations: 40,
            max_block_size: 200,
            seed: 0x5eed,
        }
    }
}

/// What estimation saw, for logs and reports.
#[derive(Debug, Clone, PartialEq)]
pub struct TrainingReport {
    pub records: usize,
    pub blocked_pairs: usize,
    pub distinct_patterns: usize,
    pub random_pairs: usize,
    pub prior: f64,
}

impl MatchModel {
    /// Estimates the model from unlabelled records: u from random pairs, m and the prior
    /// by EM on the pairs the blocking keys produce.
    pub fn estimate(
        records: &[PatientRecord],
        options: &TrainingOptions,
    ) -> (MatchModel, TrainingReport) {
        let mut interner = Interner::new();
        let features: Vec<Features> = records
            .iter()
            .map(|r| Features::from_record(r, &mut interner))
            .collect();
        estimate_from_features(&features, &interner, options)
    }

    pub fn field(&self, field: Field) -> &FieldModel {
        &self.fields[field.index()]
    }

    pub(crate) fn weight_table(&self) -> WeightTable {
        let mut w = [[0.0; MAX_LEVELS]; FIELD_COUNT];
        let mut m_exact = [0.0; FIELD_COUNT];
        let mut u_exact = [0.0; FIELD_COUNT];
        for fm in &self.fields {
            let f = fm.field.index();
            for (level, slot) in w[f].iter_mut().enumerate().take(fm.m.len()) {
                *slot = fm.weight(level);
            }
            m_exact[f] = fm.m[0];
            u_exact[f] = fm.u[0];
        }
        WeightTable {
            w,
            m_exact,
            u_exact,
        }
    }

    fn validate_shape(&self) -> bool {
        self.fields.len() == FIELD_COUNT
            && self.fields.iter().enumerate().all(|(n, fm)| {
                fm.field.index() == n
                    && fm.m.len() == fm.field.levels().len()
                    && fm.u.len() == fm.field.levels().len()
                    && fm.m.iter().chain(&fm.u).all(|p| *p > 0.0 && *p <= 1.0)
            })
    }

    /// Checks that every field has one m and one u per level, all in (0, 1].
    pub fn check(&self) -> Result<(), crate::MpiError> {
        if self.validate_shape() {
            Ok(())
        } else {
            Err(crate::MpiError::InvalidModel(
                "each of the 12 fields needs one m and one u per comparison level, in order, each in (0, 1]".into(),
            ))
        }
    }
}

/// The least m of any level after estimation.
const M_FLOOR: f64 = 0.002;

/// Pre-computed weights, so scoring a pair is table look-ups.
#[derive(Debug, Clone)]
pub(crate) struct WeightTable {
    w: [[f64; MAX_LEVELS]; FIELD_COUNT],
    m_exact: [f64; FIELD_COUNT],
    u_exact: [f64; FIELD_COUNT],
}

/// How many pseudo-observations of the average frequency a value's count is blended
/// with: early in an index's life the counts are too small to trust on their own.
const TF_PSEUDO_COUNT: f64 = 50.0;
/// A rare value may count for at most this many times the average value.
const TF_MAX_RATIO: f64 = 30.0;

impl WeightTable {
    pub fn level_weight(&self, field: usize, level: u8) -> f64 {
        self.w[field][level as usize]
    }

    /// Weight of an exact agreement on a value seen `count` times among `total` values,
    /// counting the incoming record.
    pub fn exact_weight_with_frequency(&self, field: usize, count: u32, total: u64) -> f64 {
        let u = self.u_exact[field];
        let freq = (f64::from(count) + TF_PSEUDO_COUNT * u) / (total as f64 + TF_PSEUDO_COUNT);
        let freq = freq.clamp(u / TF_MAX_RATIO, 1.0);
        (self.m_exact[field] / freq).log2()
    }
}

/// EM on the blocked pairs of `features`, u from random pairs.
pub(crate) fn estimate_from_features(
    features: &[Features],
    interner: &Interner,
    options: &TrainingOptions,
) -> (MatchModel, TrainingReport) {
    let start = MatchModel::default();
    let n = features.len();

    // u from random pairs.
    let mut u_counts = [[0u64; MAX_LEVELS]; FIELD_COUNT];
    let mut rng = SplitMix64::new(options.seed);
    let mut random_pairs = 0;
    if n >= 2 {
        for _ in 0..options.random_pairs {
            let a = rng.below(n as u64) as usize;
            let b = rng.below(n as u64) as usize;
            if a == b {
                continue;
            }
            random_pairs += 1;
            let levels = compare(&features[a], &features[b], interner);
            for (f, &l) in levels.iter().enumerate() {
                if l != MISSING {
                    u_counts[f][l as usize] += 1;
                }
            }
        }
    }
    let mut model = start.clone();
    for (f, fm) in model.fields.iter_mut().enumerate() {
        let levels = fm.u.len();
        let total: u64 = u_counts[f][..levels].iter().sum();
        if total >= 1000 {
            for (u, &count) in fm.u.iter_mut().zip(&u_counts[f]) {
                // Half a count of smoothing keeps unseen levels finite.
                *u = (count as f64 + 0.5) / (total as f64 + 0.5 * levels as f64);
            }
        }
    }

    // Comparison patterns of blocked pairs.
    let mut blocks = Blocks::default();
    let mut keys: Vec<BlockKey> = Vec::new();
    let mut candidates: Vec<u32> = Vec::new();
    let mut patterns: HashMap<Levels, u64> = HashMap::new();
    let mut blocked_pairs = 0;
    for (id, f) in features.iter().enumerate() {
        keys.clear();
        block_keys(f, interner, &mut keys);
        candidates.clear();
        blocks.candidates(&keys, options.max_block_size, &mut candidates);
        for &c in &candidates {
            let levels = compare(f, &features[c as usize], interner);
            *patterns.entry(levels).or_default() += 1;
            blocked_pairs += 1;
        }
        blocks.insert(id as u32, &keys);
    }

    // EM with two free classes on the blocked pairs: matches (m) and the non-matches
    // that blocking let through (whose level distribution differs from random pairs', so
    // it gets its own u). Holding u at the random-pair values instead lets EM explain
    // every blocked pair as a match. Scoring then uses m with the random-pair u.
    let mut prior = start.prior;
    let mut u_blocked: Vec<Vec<f64>> = model.fields.iter().map(|f| f.u.clone()).collect();
    if blocked_pairs > 0 {
        let patterns: Vec<(Levels, f64)> =
            patterns.into_iter().map(|(l, c)| (l, c as f64)).collect();
        for _ in 0..options.em_iterations {
            let mut m_acc = [[0.0f64; MAX_LEVELS]; FIELD_COUNT];
            let mut u_acc = [[0.0f64; MAX_LEVELS]; FIELD_COUNT];
            let mut matched = 0.0;
            let mut total = 0.0;
            for (levels, count) in &patterns {
                let mut log_m = prior.ln();
                let mut log_u = (1.0 - prior).ln();
                for (f, &l) in levels.iter().enumerate() {
                    if l != MISSING {
                        log_m += model.fields[f].m[l as usize].ln();
                        log_u += u_blocked[f][l as usize].ln();
                    }
                }
                let p = 1.0 / (1.0 + (log_u - log_m).exp());
                matched += p * count;
                total += count;
                for (f, &l) in levels.iter().enumerate() {
                    if l != MISSING {
                        m_acc[f][l as usize] += p * count;
                        u_acc[f][l as usize] += (1.0 - p) * count;
                    }
                }
            }
            prior = (matched / total).clamp(1e-6, 0.999);
            for (f, fm) in model.fields.iter_mut().enumerate() {
                let levels = fm.m.len();
                let m_sum: f64 = m_acc[f][..levels].iter().sum();
                let u_sum: f64 = u_acc[f][..levels].iter().sum();
                // One pseudo-observation spread as the starting model says keeps a
                // level that no pair showed from getting probability zero.
                for l in 0..levels {
                    fm.m[l] = (m_acc[f][l] + start.fields[f].m[l]) / (m_sum + 1.0);
                    u_blocked[f][l] = (u_acc[f][l] + start.fields[f].u[l]) / (u_sum + 1.0);
                }
            }
        }
        model.prior = prior;
        for fm in &mut model.fields {
            // Real data has errors in every field now and then, even if this sample
            // showed none: no level may rule a match out on its own.
            for m in &mut fm.m {
                *m = m.max(M_FLOOR);
            }
            let sum: f64 = fm.m.iter().sum();
            for m in &mut fm.m {
                *m /= sum;
            }
        }
    }
    let report = TrainingReport {
        records: n,
        blocked_pairs,
        distinct_patterns: 0,
        random_pairs,
        prior,
    };
    (model, report)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::compare::FIELDS;

    #[test]
    fn default_model_has_one_probability_per_level() {
        let model = MatchModel::default();
        model.check().unwrap();
        for f in FIELDS {
            let fm = model.field(f);
            assert!(
                fm.weight(0) > 0.0,
                "{f:?} exact agreement must count for a match"
            );
            assert!(
                fm.weight(fm.m.len() - 1) < 0.0,
                "{f:?} disagreement must count against"
            );
        }
    }

    #[test]
    fn rare_values_weigh_more_than_common_ones() {
        let table = MatchModel::default().weight_table();
        let f = Field::Family.index();
        let rare = table.exact_weight_with_frequency(f, 2, 100_000);
        let common = table.exact_weight_with_frequency(f, 2_000, 100_000);
        assert!(rare > common + 3.0, "rare {rare} common {common}");
    }
}
