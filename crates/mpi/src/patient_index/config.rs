//! The matcher's settings (`[mpi]` in the configuration).

use crate::MpiError;
use serde::{Deserialize, Serialize};

/// When an exact SSN match links deterministically.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SsnRule {
    /// SSN only weighs in the probabilistic score.
    ScoreOnly,
    /// Same SSN links when birth date or family name also (nearly) agree: guards against
    /// a mistyped SSN that happens to be someone else's.
    Corroborated,
}

/// Matcher settings. Deserialisable (e.g. from a `[mpi]` TOML table); missing keys
/// take their defaults, unknown keys are errors.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MatcherConfig {
    /// Score (bits) at or above which a record links to the best enterprise patient.
    pub link_threshold: f64,
    /// Score at or above which (and below `link_threshold`) a record goes to review.
    pub review_threshold: f64,
    /// Blocks with more records than this are not used for lookups.
    pub max_block_size: usize,
    pub ssn_rule: SsnRule,
    /// Keep every event in memory (for [`Mpi::history`]); off for bulk loads that
    /// persist through an [`EventSink`].
    pub keep_history: bool,
    /// Candidates explained in a decision.
    pub explained_candidates: usize,
    /// Merge enterprise patients that one incoming record links to both (as clustering
    /// by connected links would), unless a person or message decided on either.
    pub merge_bridged: bool,
}

impl Default for MatcherConfig {
    fn default() -> Self {
        MatcherConfig {
            link_threshold: 12.0,
            review_threshold: 4.0,
            max_block_size: 400,
            ssn_rule: SsnRule::Corroborated,
            keep_history: true,
            explained_candidates: 3,
            merge_bridged: true,
        }
    }
}

impl MatcherConfig {
    pub fn check(&self) -> Result<(), MpiError> {
        if self.review_threshold.is_nan()
            || self.link_threshold.is_nan()
            || self.review_threshold > self.link_threshold
        {
            return Err(MpiError::InvalidConfig(format!(
                "review_threshold ({}) must not exceed link_threshold ({})",
                self.review_threshold, self.link_threshold
            )));
        }
        if self.max_block_size == 0 {
            return Err(MpiError::InvalidConfig(
                "max_block_size must be at least 1".into(),
            ));
        }
        Ok(())
    }
}
