//! The definitions of one HL7 v2 version: segments, data types, tables and
//! message structures. Every name is a slice of the embedded data file.

use std::fmt;

/// Whether an element must be present (HL7 v2 "OPT" column).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Optionality {
    /// `R`: must be valued.
    Required,
    /// `O`: may be valued.
    Optional,
    /// `C`: required or not depending on a condition stated in the standard's text.
    Conditional,
    /// `X`: not used in this context.
    NotSupported,
    /// `B`: kept for backward compatibility only.
    Backward,
    /// `W`: withdrawn from the standard.
    Withdrawn,
}

impl Optionality {
    /// The one-letter code the standard prints (`R`, `O`, `C`, `X`, `B`, `W`).
    pub fn code(self) -> char {
        match self {
            Optionality::Required => 'R',
            Optionality::Optional => 'O',
            Optionality::Conditional => 'C',
            Optionality::NotSupported => 'X',
            Optionality::Backward => 'B',
            Optionality::Withdrawn => 'W',
        }
    }

    /// Parses the one-letter code; `None` for anything else.
    pub fn from_code(code: &str) -> Option<Optionality> {
        Some(match code {
            "R" => Optionality::Required,
            "O" => Optionality::Optional,
            "C" => Optionality::Conditional,
            "X" => Optionality::NotSupported,
            "B" => Optionality::Backward,
            "W" => Optionality::Withdrawn,
            _ => return None,
        })
    }

    /// True for `R` only: the one optionality a validator may insist on.
    pub fn is_required(self) -> bool {
        self == Optionality::Required
    }
}

/// How often a field may repeat.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Repetition {
    /// At most one occurrence.
    Single,
    /// At most this many occurrences (always more than one).
    UpTo(u32),
    /// Any number of occurrences.
    Unbounded,
}

impl Repetition {
    /// True when more than one occurrence is allowed.
    pub fn is_repeating(self) -> bool {
        self != Repetition::Single
    }

    /// The largest allowed number of occurrences; `None` when unbounded.
    pub fn max(self) -> Option<u32> {
        match self {
            Repetition::Single => Some(1),
            Repetition::UpTo(n) => Some(n),
            Repetition::Unbounded => None,
        }
    }
}

/// One field of a segment definition, e.g. PID-3 "Patient Identifier List".
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FieldDef {
    /// The segment this field belongs to, e.g. `PID`.
    pub segment: &'static str,
    /// 1-based position in the segment (MSH-1 is the field separator).
    pub seq: u16,
    /// Human name as the standard prints it, e.g. `Patient Identifier List`.
    pub name: &'static str,
    /// Data type id, e.g. `CX`, `ST`, `CM_MSG` (the HL7 database's name for a 2.3 `CM`).
    pub data_type: &'static str,
    pub optionality: Optionality,
    pub repetition: Repetition,
    /// Maximum length, when the source states one (2.7 and later mostly do not).
    pub max_length: Option<u32>,
    /// HL7 or user-defined table the values come from, e.g. 1 for table 0001.
    pub table: Option<u32>,
}

impl FieldDef {
    /// `PID-5 Patient Name`: how a person reading a finding wants the field named.
    pub fn label(&self) -> String {
        format!("{}-{} {}", self.segment, self.seq, self.name)
    }
}

/// A segment definition: its id, name and ordered fields.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SegmentDef {
    /// Three-character id, e.g. `PID`.
    pub id: &'static str,
    /// Human name, e.g. `Patient Identification` (empty when the source has none).
    pub name: &'static str,
    /// Fields in order; `fields[0]` is field 1.
    pub fields: Vec<FieldDef>,
}

impl SegmentDef {
    /// The field at 1-based position `seq`.
    pub fn field(&self, seq: usize) -> Option<&FieldDef> {
        seq.checked_sub(1).and_then(|i| self.fields.get(i))
    }
}

/// One component of a composite data type, e.g. CX.1 "ID Number".
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ComponentDef {
    /// 1-based position in the data type.
    pub seq: u16,
    pub name: &'static str,
    pub data_type: &'static str,
    pub optionality: Optionality,
    pub max_length: Option<u32>,
    pub table: Option<u32>,
}

/// A data type: composite (with components) or primitive (`ST`, `NM`, `DTM`...).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DataType {
    pub id: &'static str,
    /// Human name, e.g. `Extended Composite ID with Check Digit` (may be empty).
    pub name: &'static str,
    /// Components in order; empty for a primitive type.
    pub components: Vec<ComponentDef>,
}

impl DataType {
    pub fn is_composite(&self) -> bool {
        !self.components.is_empty()
    }

    /// The component at 1-based position `seq`.
    pub fn component(&self, seq: usize) -> Option<&ComponentDef> {
        seq.checked_sub(1).and_then(|i| self.components.get(i))
    }
}

/// One coded value of a table.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TableValue {
    pub code: &'static str,
    /// What the code means (empty when the source has no description).
    pub description: &'static str,
}

/// An HL7 table: a numbered list of coded values, e.g. 0001 Administrative Sex.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Table {
    pub id: u32,
    pub name: &'static str,
    /// Sorted by code.
    pub values: Vec<TableValue>,
}

impl Table {
    /// The value with this code. Values are kept sorted by code.
    pub fn get(&self, code: &str) -> Option<&TableValue> {
        self.values
            .binary_search_by(|v| v.code.cmp(code))
            .ok()
            .map(|i| &self.values[i])
    }

    pub fn contains(&self, code: &str) -> bool {
        self.get(code).is_some()
    }

    /// True when `code` is a value of the table, or, for table 0396 (coding
    /// systems), fits one of the code patterns the table itself defines:
    /// `HL7nnnn` (an HL7 table), `99zzz` (local), `ISOnnnn`, `IBTnnnn`,
    /// `PLRnnnn` and `L`; and an OID (`2.16.840.1.113883.6.1`).
    pub fn accepts(&self, code: &str) -> bool {
        self.contains(code) || self.accepts_pattern(code)
    }

    /// The code patterns of table 0396 that [`Table::accepts`] takes
    /// besides the table's values.
    pub(crate) fn accepts_pattern(&self, code: &str) -> bool {
        if self.id != 396 {
            return false;
        }
        let numbered = |prefix: &str| {
            code.strip_prefix(prefix)
                .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
        };
        // An OID naming the coding system (PHIN VADS and most public-health
        // guides do this; 2.7 gave it a component of its own, CWE.14).
        let oid = code.contains('.')
            && code
                .split('.')
                .all(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()));
        oid || code == "L"
            || code
                .strip_prefix("99")
                .is_some_and(|z| !z.is_empty() && z.bytes().all(|b| b.is_ascii_alphanumeric()))
            || ["HL7", "ISO", "IBT", "PLR"].iter().any(|p| numbered(p))
    }

    /// `HL70001`: the id as HL7 documents write it.
    pub fn hl7_id(&self) -> String {
        format!("HL7{:04}", self.id)
    }
}

/// How many times a segment or group may occur where it stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Cardinality {
    pub min: u32,
    /// `None` means unbounded.
    pub max: Option<u32>,
}

impl Cardinality {
    pub fn is_required(self) -> bool {
        self.min > 0
    }

    pub fn is_repeating(self) -> bool {
        self.max != Some(1)
    }

    /// True when `count` occurrences exceed the maximum.
    pub fn exceeded_by(self, count: u32) -> bool {
        self.max.is_some_and(|max| count > max)
    }
}

impl fmt::Display for Cardinality {
    /// `[1..1]`, `[0..*]`: the notation of the standard's message tables.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.max {
            Some(max) => write!(f, "[{}..{}]", self.min, max),
            None => write!(f, "[{}..*]", self.min),
        }
    }
}

/// A segment's place in a message structure.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SegmentRef {
    /// Segment id; `ANYHL7SEGMENT` is the standard's wildcard for any segment.
    pub id: &'static str,
    pub cardinality: Cardinality,
}

/// Whether a group's children follow each other or stand for one another.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum GroupKind {
    /// The children appear in order (nearly every group).
    Sequence,
    /// Exactly one of the children appears (e.g. ORM_O01's OBR/RQD/RQ1/RXO/ODS/ODT).
    Choice,
}

/// A named group of segments, e.g. ORU_R01.PATIENT_RESULT.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Group {
    /// Name as in the standard, without the structure prefix: `ORDER_OBSERVATION`.
    pub name: &'static str,
    pub kind: GroupKind,
    pub cardinality: Cardinality,
    pub children: Vec<StructureNode>,
}

/// A child of a message structure or group.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StructureNode {
    Segment(SegmentRef),
    Group(Group),
}

impl StructureNode {
    /// The segment id or the group name.
    pub fn name(&self) -> &'static str {
        match self {
            StructureNode::Segment(s) => s.id,
            StructureNode::Group(g) => g.name,
        }
    }

    pub fn cardinality(&self) -> Cardinality {
        match self {
            StructureNode::Segment(s) => s.cardinality,
            StructureNode::Group(g) => g.cardinality,
        }
    }
}

/// A message structure, e.g. ORU_R01: the ordered tree of segments and groups.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MessageStructure {
    /// Structure id as MSH-9.3 carries it, e.g. `ORU_R01`.
    pub id: &'static str,
    /// Human description (may be empty).
    pub description: &'static str,
    pub children: Vec<StructureNode>,
}

impl MessageStructure {
    /// The group reached by following `path` (group names below the root),
    /// e.g. `["PATIENT_RESULT", "ORDER_OBSERVATION"]`.
    pub fn group(&self, path: &[&str]) -> Option<&Group> {
        let mut children = &self.children;
        let mut found = None;
        for name in path {
            let group = children.iter().find_map(|c| match c {
                StructureNode::Group(g) if g.name == *name => Some(g),
                _ => None,
            })?;
            children = &group.children;
            found = Some(group);
        }
        found
    }

    /// Every segment id the structure mentions, in document order (with repeats).
    pub fn segment_ids(&self) -> Vec<&'static str> {
        fn walk(nodes: &[StructureNode], out: &mut Vec<&'static str>) {
            for n in nodes {
                match n {
                    StructureNode::Segment(s) => out.push(s.id),
                    StructureNode::Group(g) => walk(&g.children, out),
                }
            }
        }
        let mut out = Vec::new();
        walk(&self.children, &mut out);
        out
    }
}

/// How [`crate::VersionSpec::structure_for`] found the structure.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum StructureSource {
    /// MSH-9.3 named a structure this version knows.
    Msh93,
    /// The version's event map (table 0354) maps the message type and trigger event.
    EventMap,
    /// A structure named `TYPE_EVENT` exists.
    TypeAndEvent,
    /// A structure named after the message type alone exists (`ACK`).
    TypeOnly,
}

/// The structure chosen for a message and why.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StructureMatch<'a> {
    pub structure: &'a MessageStructure,
    pub source: StructureSource,
}
