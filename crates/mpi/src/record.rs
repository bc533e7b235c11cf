//! The patient record a source system sends, independent of HL7: the engine maps PID
//! (and the bulk loader maps CSV columns) onto [`PatientRecord`].

use serde::{Deserialize, Serialize};
use std::fmt;

/// Which source record this is: the sending system and its own record id (MRN).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct SourceKey {
    pub source: String,
    pub id: String,
}

impl SourceKey {
    pub fn new(source: impl Into<String>, id: impl Into<String>) -> Self {
        SourceKey {
            source: source.into(),
            id: id.into(),
        }
    }
}

impl fmt::Display for SourceKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.source, self.id)
    }
}

/// An identifier qualified by who issued it and what kind it is, like an HL7 CX
/// (`value^^^authority^type`). Deterministic links compare all three parts, never the
/// bare number.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Identifier {
    pub value: String,
    /// Assigning authority (CX-4), e.g. `HOSP_A` or an OID.
    pub authority: String,
    /// Identifier type code (CX-5), e.g. `MR`, `SS`, `PI`.
    pub type_code: String,
}

impl Identifier {
    pub fn new(
        value: impl Into<String>,
        authority: impl Into<String>,
        type_code: impl Into<String>,
    ) -> Self {
        Identifier {
            value: value.into(),
            authority: authority.into(),
            type_code: type_code.into(),
        }
    }

    /// An identifier links deterministically only when all three parts are present.
    pub fn is_qualified(&self) -> bool {
        !self.value.trim().is_empty()
            && !self.authority.trim().is_empty()
            && !self.type_code.trim().is_empty()
    }
}

/// Administrative sex as HL7 table 0001 codes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
pub enum Sex {
    Female,
    Male,
    Other,
    #[default]
    Unknown,
}

impl Sex {
    /// Reads `F`, `M`, `O`/`A`/`N`, anything else (including `U`) is unknown.
    pub fn from_code(code: &str) -> Sex {
        match code.trim().to_ascii_uppercase().as_str() {
            "F" | "FEMALE" => Sex::Female,
            "M" | "MALE" => Sex::Male,
            "O" | "A" | "N" | "OTHER" => Sex::Other,
            _ => Sex::Unknown,
        }
    }

    pub fn code(self) -> &'static str {
        match self {
            Sex::Female => "F",
            Sex::Male => "M",
            Sex::Other => "O",
            Sex::Unknown => "U",
        }
    }
}

/// A generational suffix (XPN-4, or the last word of a name: "Smith Jr"): what tells a
/// son from the father whose name he carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Generation {
    Junior,
    Senior,
    Second,
    Third,
    Fourth,
}

impl Generation {
    /// Reads `JR`, `Jr.`, `JNR`, `SR`, `SNR`, `II`, `III`, `IV` (any case, dots ignored).
    pub fn from_suffix(text: &str) -> Option<Generation> {
        let word: String = text
            .chars()
            .filter(|c| c.is_alphanumeric())
            .flat_map(char::to_uppercase)
            .collect();
        match word.as_str() {
            "JR" | "JNR" | "JUNIOR" => Some(Generation::Junior),
            "SR" | "SNR" | "SENIOR" => Some(Generation::Senior),
            "II" | "2ND" => Some(Generation::Second),
            "III" | "3RD" => Some(Generation::Third),
            "IV" | "4TH" => Some(Generation::Fourth),
            _ => None,
        }
    }

    /// Splits a trailing suffix word off a name: `"Smith Jr."` gives `("Smith", Junior)`.
    /// A name that is nothing but the suffix word is left whole.
    pub fn split_from_name(name: &str) -> (&str, Option<Generation>) {
        let trimmed = name.trim_end_matches(|c: char| !c.is_alphanumeric());
        let Some(cut) = trimmed.rfind(|c: char| c.is_whitespace() || c == ',') else {
            return (name, None);
        };
        let (rest, last) = trimmed.split_at(cut);
        let rest = rest.trim_end_matches(|c: char| c.is_whitespace() || c == ',');
        match Generation::from_suffix(last) {
            Some(g) if rest.chars().any(char::is_alphabetic) => (rest, Some(g)),
            _ => (name, None),
        }
    }
}

/// One source system's view of a patient. Everything but the source key is optional.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct PatientRecord {
    pub source: String,
    pub id: String,
    pub identifiers: Vec<Identifier>,
    pub family: Option<String>,
    pub given: Option<String>,
    pub middle: Option<String>,
    /// Generational suffix as sent (XPN-4, e.g. `JR`, `III`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub suffix: Option<String>,
    /// `YYYYMMDD`; anything else is compared as text after keeping its digits.
    pub birth_date: Option<String>,
    pub sex: Option<Sex>,
    pub street: Option<String>,
    pub street2: Option<String>,
    pub city: Option<String>,
    pub state: Option<String>,
    pub postcode: Option<String>,
    pub country: Option<String>,
    pub phone: Option<String>,
    pub ssn: Option<String>,
}

impl PatientRecord {
    pub fn new(source: impl Into<String>, id: impl Into<String>) -> Self {
        PatientRecord {
            source: source.into(),
            id: id.into(),
            ..PatientRecord::default()
        }
    }

    pub fn key(&self) -> SourceKey {
        SourceKey::new(self.source.clone(), self.id.clone())
    }

    /// The generational suffix: the `suffix` field, else a last word of the family or
    /// given name such as `Jr` or `III`.
    pub fn generation(&self) -> Option<Generation> {
        let from_name =
            |n: &Option<String>| n.as_deref().and_then(|n| Generation::split_from_name(n).1);
        self.suffix
            .as_deref()
            .and_then(Generation::from_suffix)
            .or_else(|| from_name(&self.family))
            .or_else(|| from_name(&self.given))
    }

    /// Sets a field by its bulk-load column name (`family`, `birth_date`, ...); empty
    /// values leave the field absent. Returns false for an unknown column.
    pub fn set_field(&mut self, column: &str, value: &str) -> bool {
        let value = value.trim();
        let v = (!value.is_empty()).then(|| value.to_string());
        match column {
            "family" => self.family = v,
            "given" => self.given = v,
            "middle" => self.middle = v,
            "suffix" => self.suffix = v,
            "birth_date" => self.birth_date = v,
            "sex" => self.sex = v.map(|s| Sex::from_code(&s)),
            "street" => self.street = v,
            "street2" => self.street2 = v,
            "city" => self.city = v,
            "state" => self.state = v,
            "postcode" => self.postcode = v,
            "country" => self.country = v,
            "phone" => self.phone = v,
            "ssn" => self.ssn = v,
            _ => return false,
        }
        true
    }

    pub fn with_identifier(mut self, identifier: Identifier) -> Self {
        self.identifiers.push(identifier);
        self
    }
}
