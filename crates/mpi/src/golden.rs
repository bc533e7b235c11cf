//! Golden records: one best view of an enterprise patient, chosen field by field from its
//! linked source records by survivorship rules.

use crate::MpiError;
use crate::events::EnterpriseId;
use crate::patient_index::Mpi;
use crate::record::{Identifier, PatientRecord, SourceKey};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// How a field's value is chosen among the source records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Survivorship {
    /// The value from the most recently received record that has one.
    MostRecent,
    /// The value from the most trusted source (order of [`SurvivorshipRules::source_trust`]);
    /// ties go to the most recent.
    MostTrustedSource,
    /// The value most records agree on; ties go to the most recent.
    MostFrequent,
}

/// The columns a rule can name (the bulk-load column names).
pub const GOLDEN_FIELDS: [&str; 14] = [
    "family",
    "given",
    "middle",
    "suffix",
    "birth_date",
    "sex",
    "street",
    "street2",
    "city",
    "state",
    "postcode",
    "country",
    "phone",
    "ssn",
];

/// Survivorship rules: a default and per-field overrides. Deserialisable; missing keys
/// take their defaults, unknown keys are errors ([`SurvivorshipRules::check`] also
/// rejects unknown field names in `fields`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SurvivorshipRules {
    pub default: Survivorship,
    /// Per-field rule, keyed by column name (`family`, `birth_date`, ...).
    pub fields: BTreeMap<String, Survivorship>,
    /// Source systems, most trusted first; unlisted sources rank below all listed ones.
    pub source_trust: Vec<String>,
}

impl Default for SurvivorshipRules {
    /// Most frequent value for identity fields (errors are outvoted), most recent for
    /// contact fields (people move and change phones).
    fn default() -> Self {
        let mut fields = BTreeMap::new();
        for f in [
            "street", "street2", "city", "state", "postcode", "country", "phone",
        ] {
            fields.insert(f.to_string(), Survivorship::MostRecent);
        }
        SurvivorshipRules {
            default: Survivorship::MostFrequent,
            fields,
            source_trust: Vec::new(),
        }
    }
}

impl SurvivorshipRules {
    /// Rejects rules that name an unknown column.
    pub fn check(&self) -> Result<(), MpiError> {
        match self
            .fields
            .keys()
            .find(|k| !GOLDEN_FIELDS.contains(&k.as_str()))
        {
            Some(k) => Err(MpiError::InvalidConfig(format!(
                "survivorship rule for unknown field `{k}` (known: {})",
                GOLDEN_FIELDS.join(", ")
            ))),
            None => Ok(()),
        }
    }

    fn rule(&self, field: &str) -> Survivorship {
        self.fields.get(field).copied().unwrap_or(self.default)
    }

    fn trust(&self, source: &str) -> usize {
        self.source_trust
            .iter()
            .position(|s| s == source)
            .unwrap_or(self.source_trust.len())
    }
}

/// The best view of one enterprise patient.
#[derive(Debug, Clone, PartialEq)]
pub struct GoldenRecord {
    pub enterprise: EnterpriseId,
    /// Active source records it was built from.
    pub sources: Vec<SourceKey>,
    /// All qualified identifiers of those records.
    pub identifiers: Vec<Identifier>,
    /// The chosen values; `source` is `"enterprise"` and `id` the enterprise id.
    pub record: PatientRecord,
}

fn field_value(r: &PatientRecord, field: &str) -> Option<String> {
    match field {
        "family" => r.family.clone(),
        "given" => r.given.clone(),
        "middle" => r.middle.clone(),
        "suffix" => r.suffix.clone(),
        "birth_date" => r.birth_date.clone(),
        "sex" => r
            .sex
            .filter(|s| *s != crate::Sex::Unknown)
            .map(|s| s.code().to_string()),
        "street" => r.street.clone(),
        "street2" => r.street2.clone(),
        "city" => r.city.clone(),
        "state" => r.state.clone(),
        "postcode" => r.postcode.clone(),
        "country" => r.country.clone(),
        "phone" => r.phone.clone(),
        "ssn" => r.ssn.clone(),
        _ => None,
    }
}

impl Mpi {
    /// Builds the golden record of an enterprise patient (following merges), or `None`
    /// when it has no active source record.
    pub fn golden_record(
        &self,
        enterprise: EnterpriseId,
        rules: &SurvivorshipRules,
    ) -> Option<GoldenRecord> {
        let enterprise = self.current_enterprise(enterprise).ok()?;
        let members = self.active_members(enterprise);
        if members.is_empty() {
            return None;
        }
        let mut record = PatientRecord::new("enterprise", enterprise.to_string());
        for field in GOLDEN_FIELDS {
            // (value, recency, trust rank) of every record that has the field.
            let values: Vec<(String, u64, usize)> = members
                .iter()
                .filter_map(|(r, seq)| {
                    field_value(r, field).map(|v| (v, *seq, rules.trust(&r.source)))
                })
                .collect();
            let chosen = match rules.rule(field) {
                Survivorship::MostRecent => values.iter().max_by_key(|v| v.1).map(|v| v.0.clone()),
                Survivorship::MostTrustedSource => values
                    .iter()
                    .min_by_key(|v| (v.2, std::cmp::Reverse(v.1)))
                    .map(|v| v.0.clone()),
                Survivorship::MostFrequent => {
                    let mut tally: BTreeMap<&str, (usize, u64)> = BTreeMap::new();
                    for (v, seq, _) in &values {
                        let e = tally.entry(v.as_str()).or_default();
                        e.0 += 1;
                        e.1 = e.1.max(*seq);
                    }
                    tally
                        .into_iter()
                        .max_by_key(|(_, t)| *t)
                        .map(|(v, _)| v.to_string())
                }
            };
            if let Some(v) = chosen {
                if field == "sex" {
                    record.sex = Some(crate::Sex::from_code(&v));
                } else {
                    record.set_field(field, &v);
                }
            }
        }
        let mut identifiers: Vec<Identifier> = Vec::new();
        for (r, _) in &members {
            for id in &r.identifiers {
                if !identifiers.contains(id) {
                    identifiers.push(id.clone());
                }
            }
        }
        record.identifiers = identifiers.clone();
        Some(GoldenRecord {
            enterprise,
            sources: members.iter().map(|(r, _)| r.key()).collect(),
            identifiers,
            record,
        })
    }
}
