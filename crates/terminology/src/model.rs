//! The model: codings, code systems and concept maps, shaped as FHIR R4
//! shapes them.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

/// A code in a system, with its display when known.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Coding {
    /// The system as written (a URI, or an HL7 table 0396 name such as `LN`).
    pub system: String,
    pub code: String,
    pub display: Option<String>,
}

impl Coding {
    pub fn new(system: &str, code: &str, display: Option<&str>) -> Coding {
        Coding {
            system: system.to_string(),
            code: code.to_string(),
            display: display.map(str::to_string),
        }
    }
}

/// How a target relates to its source: FHIR R4's `ConceptMapEquivalence`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Equivalence {
    RelatedTo,
    Equivalent,
    Equal,
    Wider,
    Subsumes,
    Narrower,
    Specializes,
    Inexact,
    Unmatched,
    Disjoint,
}

impl Equivalence {
    pub const ALL: [Equivalence; 10] = [
        Equivalence::RelatedTo,
        Equivalence::Equivalent,
        Equivalence::Equal,
        Equivalence::Wider,
        Equivalence::Subsumes,
        Equivalence::Narrower,
        Equivalence::Specializes,
        Equivalence::Inexact,
        Equivalence::Unmatched,
        Equivalence::Disjoint,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Equivalence::RelatedTo => "relatedto",
            Equivalence::Equivalent => "equivalent",
            Equivalence::Equal => "equal",
            Equivalence::Wider => "wider",
            Equivalence::Subsumes => "subsumes",
            Equivalence::Narrower => "narrower",
            Equivalence::Specializes => "specializes",
            Equivalence::Inexact => "inexact",
            Equivalence::Unmatched => "unmatched",
            Equivalence::Disjoint => "disjoint",
        }
    }

    /// Whether a target with this equivalence may stand for its source:
    /// `$translate` answers `result: true` only for these (not `unmatched`,
    /// not `disjoint`).
    pub fn is_match(self) -> bool {
        !matches!(self, Equivalence::Unmatched | Equivalence::Disjoint)
    }
}

impl FromStr for Equivalence {
    type Err = String;

    fn from_str(s: &str) -> Result<Equivalence, String> {
        Equivalence::ALL
            .into_iter()
            .find(|e| e.as_str() == s)
            .ok_or_else(|| {
                format!(
                    "{s:?} is not an equivalence; use one of {}",
                    Equivalence::ALL.map(Equivalence::as_str).join(", ")
                )
            })
    }
}

impl fmt::Display for Equivalence {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A code system: its concepts by code (a hierarchy is flattened).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CodeSystem {
    pub url: String,
    pub version: Option<String>,
    pub name: Option<String>,
    pub concepts: BTreeMap<String, Concept>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Concept {
    pub code: String,
    pub display: Option<String>,
    pub definition: Option<String>,
}

/// Where a map applies: every sender and field when both are empty.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct MapScope {
    /// `APP` (MSH-3.1, any facility) or `APP@FACILITY` (MSH-3.1 and MSH-4.1).
    pub sender: Option<String>,
    /// Fields such as `OBX-3`; empty means any field.
    pub fields: Vec<String>,
}

impl MapScope {
    pub fn everywhere() -> MapScope {
        MapScope::default()
    }

    /// Whether the map applies to a code seen at `at`.
    pub fn covers(&self, at: &Scope<'_>) -> bool {
        let sender_ok = match self.sender.as_deref() {
            None => true,
            Some(wanted) => match wanted.split_once('@') {
                Some((app, facility)) => {
                    Some(app) == at.application && Some(facility) == at.facility
                }
                None => Some(wanted) == at.application,
            },
        };
        let field_ok =
            self.fields.is_empty() || at.field.is_some_and(|f| self.fields.iter().any(|m| m == f));
        sender_ok && field_ok
    }

    /// Higher for narrower scopes, so a sender's own map wins over a
    /// general one.
    pub fn specificity(&self) -> u8 {
        let sender = match self.sender.as_deref() {
            None => 0,
            Some(s) if s.contains('@') => 4,
            Some(_) => 2,
        };
        sender + u8::from(!self.fields.is_empty())
    }
}

/// Where a code was seen: the sender (MSH-3.1, MSH-4.1) and the field.
/// `Scope::default()` is "anywhere": only unscoped maps apply.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Scope<'a> {
    pub application: Option<&'a str>,
    pub facility: Option<&'a str>,
    pub field: Option<&'a str>,
}

/// A concept map: groups of source elements, each with its targets.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ConceptMap {
    pub url: String,
    pub version: Option<String>,
    pub name: Option<String>,
    pub scope: MapScope,
    pub groups: Vec<Group>,
}

/// The mappings from one source system to one target system.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Group {
    pub source: String,
    pub target: String,
    pub elements: Vec<MapElement>,
    pub unmapped: Option<UnmappedRule>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MapElement {
    pub code: String,
    pub display: Option<String>,
    pub targets: Vec<Target>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Target {
    /// `None` for an `unmatched` element that names no target.
    pub code: Option<String>,
    pub display: Option<String>,
    pub equivalence: Equivalence,
    pub comment: Option<String>,
}

/// A group's `unmapped`: what a code the group does not list translates to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum UnmappedRule {
    /// The source code itself, in the target system.
    Provided,
    /// This code.
    Fixed {
        code: String,
        display: Option<String>,
    },
    /// Another map, by its canonical URL.
    OtherMap(String),
}
