//! The known HL7 v2 versions, their embedded data, and version-string matching.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::OnceLock;

use crate::load::{self, LoadError};
use crate::model::*;
use crate::validate::StructureMatcher;
use crate::validate::types::TypeTree;

/// The versions with embedded definitions, oldest first.
pub const KNOWN_VERSIONS: [&str; 12] = [
    "2.1", "2.2", "2.3", "2.3.1", "2.4", "2.5", "2.5.1", "2.6", "2.7", "2.8", "2.8.1", "2.8.2",
];

static DATA: [&str; 12] = [
    include_str!("../data/2.1.hl7spec"),
    include_str!("../data/2.2.hl7spec"),
    include_str!("../data/2.3.hl7spec"),
    include_str!("../data/2.3.1.hl7spec"),
    include_str!("../data/2.4.hl7spec"),
    include_str!("../data/2.5.hl7spec"),
    include_str!("../data/2.5.1.hl7spec"),
    include_str!("../data/2.6.hl7spec"),
    include_str!("../data/2.7.hl7spec"),
    include_str!("../data/2.8.hl7spec"),
    include_str!("../data/2.8.1.hl7spec"),
    include_str!("../data/2.8.2.hl7spec"),
];

static LOADED: [OnceLock<VersionSpec>; 12] = [const { OnceLock::new() }; 12];

/// The definitions of one HL7 v2 version.
///
/// Obtained from [`Spec::version`] or [`Spec::nearest`]; parsed from the
/// embedded data on first use and kept for the life of the process.
#[derive(Debug)]
pub struct VersionSpec {
    pub(crate) version: &'static str,
    pub(crate) segments: IdMap<SegmentDef>,
    pub(crate) datatypes: IdMap<DataType>,
    pub(crate) structures: IdMap<MessageStructure>,
    /// message type -> [(trigger event, structure id)]
    pub(crate) events: BTreeMap<&'static str, Vec<(&'static str, &'static str)>>,
    pub(crate) tables: BTreeMap<u32, Table>,
    /// Compiled on the first structural validation of this version.
    pub(crate) matchers: OnceLock<BTreeMap<&'static str, StructureMatcher>>,
    /// The data types, fields and tables resolved for the field checks;
    /// built on the first field check of this version.
    pub(crate) type_tree: OnceLock<TypeTree>,
}

impl VersionSpec {
    /// Parses a fresh copy of a known version's embedded definitions,
    /// bypassing the process-wide cache (for benchmarks and tools).
    pub fn load_uncached(version: &str) -> Option<Result<VersionSpec, LoadError>> {
        let index = index_of(&normalize(version)?)?;
        Some(load::parse(DATA[index]))
    }

    /// The version string, e.g. `2.5.1`.
    pub fn version(&self) -> &'static str {
        self.version
    }

    /// The segment definition for a segment id like `PID`.
    pub fn segment(&self, id: &str) -> Option<&SegmentDef> {
        self.segments.get(id)
    }

    /// The field at `seq` of segment `id`: `field("PID", 5)` is PID-5 Patient Name.
    pub fn field(&self, id: &str, seq: usize) -> Option<&FieldDef> {
        self.segment(id)?.field(seq)
    }

    /// A data type (composite or primitive) by id, e.g. `CX`.
    pub fn datatype(&self, id: &str) -> Option<&DataType> {
        self.datatypes.get(id)
    }

    /// A message structure by id, e.g. `ORU_R01`.
    pub fn structure(&self, id: &str) -> Option<&MessageStructure> {
        self.structures.get(id)
    }

    /// An HL7 table by number: `table(1)` is 0001 Administrative Sex.
    pub fn table(&self, id: u32) -> Option<&Table> {
        self.tables.get(&id)
    }

    /// The structure a message follows, from MSH-9.1 (message type),
    /// MSH-9.2 (trigger event) and MSH-9.3 (message structure, when sent).
    ///
    /// Resolution order: MSH-9.3 when it names a known structure; else the
    /// version's event map (`ADT^A04` -> `ADT_A01`); else a structure named
    /// `TYPE_EVENT`; else one named after the type alone (`ACK`).
    pub fn structure_for(
        &self,
        message_type: &str,
        trigger_event: &str,
        msh_9_3: Option<&str>,
    ) -> Option<StructureMatch<'_>> {
        let found = |id: &str, source| {
            self.structure(id)
                .map(|structure| StructureMatch { structure, source })
        };
        if let Some(m) = msh_9_3
            .filter(|s| !s.is_empty())
            .and_then(|id| found(id, StructureSource::Msh93))
        {
            return Some(m);
        }
        if let Some(id) = self.event_structure(message_type, trigger_event) {
            if let Some(m) = found(id, StructureSource::EventMap) {
                return Some(m);
            }
        }
        if !trigger_event.is_empty() {
            let mut id = String::with_capacity(message_type.len() + 1 + trigger_event.len());
            id.push_str(message_type);
            id.push('_');
            id.push_str(trigger_event);
            if let Some(m) = found(&id, StructureSource::TypeAndEvent) {
                return Some(m);
            }
        }
        found(message_type, StructureSource::TypeOnly)
    }

    /// The compiled matcher of a structure, for [`crate::validate`]. All of a
    /// version's structures are compiled together on first use.
    pub fn matcher(&self, structure_id: &str) -> Option<&StructureMatcher> {
        self.matchers
            .get_or_init(|| {
                self.structures
                    .values()
                    .map(|s| (s.id, StructureMatcher::new(s)))
                    .collect()
            })
            .get(structure_id)
    }

    /// The version's data types resolved for the field checks.
    pub(crate) fn type_tree(&self) -> &TypeTree {
        self.type_tree.get_or_init(|| TypeTree::build(self))
    }

    /// The event map alone: the structure id for a message type and trigger event.
    pub fn event_structure(&self, message_type: &str, trigger_event: &str) -> Option<&'static str> {
        self.events
            .get(message_type)?
            .iter()
            .find(|(event, _)| *event == trigger_event)
            .map(|(_, structure)| *structure)
    }

    /// Every segment definition, ordered by id.
    pub fn segments(&self) -> impl Iterator<Item = &SegmentDef> {
        self.segments.values()
    }

    /// Every data type, ordered by id.
    pub fn datatypes(&self) -> impl Iterator<Item = &DataType> {
        self.datatypes.values()
    }

    /// Every message structure, ordered by id.
    pub fn structures(&self) -> impl Iterator<Item = &MessageStructure> {
        self.structures.values()
    }

    /// Every table, ordered by number.
    pub fn tables(&self) -> impl Iterator<Item = &Table> {
        self.tables.values()
    }

    /// Every `(message type, trigger event, structure id)` of the event map.
    pub fn events(&self) -> impl Iterator<Item = (&'static str, &'static str, &'static str)> + '_ {
        self.events
            .iter()
            .flat_map(|(t, evs)| evs.iter().map(move |(e, s)| (*t, *e, *s)))
    }
}

/// Entry point: the embedded definitions of every known version.
pub struct Spec;

impl Spec {
    /// The definitions for exactly this version (after normalization:
    /// `"2.5.1"`, `" v2.5.1 "`, `"2.5.1^HL7"` and `"2.5.1.0"` are the same).
    /// `None` when the version is not one of [`KNOWN_VERSIONS`].
    pub fn version(version: &str) -> Option<&'static VersionSpec> {
        if let Some(index) = exactly_known(version) {
            return Some(get(index));
        }
        index_of(&normalize(version)?).map(get)
    }

    /// The definitions for this version, or for the nearest known one when
    /// it is not known (`2.7.1` -> `2.7`, `2.9` -> `2.8.2`, `2.0` -> `2.1`).
    /// `None` only when the text is not an HL7 v2 version at all.
    pub fn nearest(version: &str) -> Option<VersionMatch> {
        // Nearly every message names a known version as it is written here.
        if let Some(index) = exactly_known(version) {
            return Some(VersionMatch {
                spec: get(index),
                requested: version.trim().to_string(),
                exact: true,
            });
        }
        let wanted = normalize(version)?;
        if let Some(index) = index_of(&wanted) {
            return Some(VersionMatch {
                spec: get(index),
                requested: version.trim().to_string(),
                exact: true,
            });
        }
        let parsed: Vec<Vec<u32>> = KNOWN_VERSIONS
            .iter()
            .map(|v| numbers(v).unwrap_or_default())
            .collect();
        let index = parsed
            .iter()
            .rposition(|known| *known <= wanted)
            .unwrap_or(0);
        Some(VersionMatch {
            spec: get(index),
            requested: version.trim().to_string(),
            exact: false,
        })
    }

    /// Every known version, loading each on first use.
    pub fn all() -> impl Iterator<Item = &'static VersionSpec> {
        (0..KNOWN_VERSIONS.len()).map(get)
    }
}

/// The outcome of [`Spec::nearest`].
#[derive(Debug, Clone)]
pub struct VersionMatch {
    pub spec: &'static VersionSpec,
    /// The version text as given (trimmed).
    pub requested: String,
    /// False when a different, nearest version was chosen.
    pub exact: bool,
}

impl VersionMatch {
    /// A note for the user when the version was substituted.
    pub fn note(&self) -> Option<String> {
        (!self.exact).then(|| {
            format!(
                "HL7 version {:?} has no definitions here; using {} instead",
                self.requested,
                self.spec.version()
            )
        })
    }
}

impl fmt::Display for VersionMatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.spec.version())
    }
}

fn get(index: usize) -> &'static VersionSpec {
    LOADED[index].get_or_init(|| {
        // The data is compiled in and every version is loaded by the tests,
        // so a failure here is a build defect, not bad input.
        load::parse(DATA[index]).unwrap_or_else(|e| {
            panic!(
                "embedded HL7 {} definitions are corrupt: {e}",
                KNOWN_VERSIONS[index]
            )
        })
    })
}

/// The index of a version written exactly as [`KNOWN_VERSIONS`] writes it
/// (surrounding white space aside): what [`normalize`] and [`index_of`] find
/// for it, without parsing its numbers.
fn exactly_known(version: &str) -> Option<usize> {
    let version = version.trim();
    KNOWN_VERSIONS.iter().position(|v| *v == version)
}

fn index_of(numbers_wanted: &[u32]) -> Option<usize> {
    KNOWN_VERSIONS
        .iter()
        .position(|v| numbers(v).as_deref() == Some(numbers_wanted))
}

/// `"v2.5.1^HL7"` -> `[2, 5, 1]`; trailing zero parts are dropped (`2.5.0` is 2.5).
fn normalize(version: &str) -> Option<Vec<u32>> {
    let text = version.split('^').next().unwrap_or("").trim();
    let text = text.strip_prefix(['v', 'V']).unwrap_or(text);
    let mut parts = numbers(text)?;
    while parts.len() > 2 && parts.last() == Some(&0) {
        parts.pop();
    }
    (parts.len() >= 2 && parts[0] == 2).then_some(parts)
}

fn numbers(text: &str) -> Option<Vec<u32>> {
    text.split('.').map(|p| p.parse::<u32>().ok()).collect()
}

/// Definitions keyed by their id: kept sorted for iteration, found through a
/// hash index (validation looks up a data type for nearly every component,
/// and a tree of string keys spent most of its time comparing them).
#[derive(Debug)]
pub(crate) struct IdMap<V> {
    items: Vec<V>,
    index: HashMap<&'static str, u32, BuildHasherDefault<IdHasher>>,
}

impl<V> IdMap<V> {
    pub(crate) fn new() -> Self {
        IdMap {
            items: Vec::new(),
            index: HashMap::default(),
        }
    }

    /// Adds a definition; a later one with the same id replaces the earlier.
    pub(crate) fn insert(&mut self, id: &'static str, value: V) {
        match self.index.get(id) {
            Some(&i) => self.items[i as usize] = value,
            None => {
                self.index.insert(id, self.items.len() as u32);
                self.items.push(value);
            }
        }
    }

    /// Sorts by id once loading is done.
    pub(crate) fn finish(&mut self, id_of: fn(&V) -> &'static str) {
        self.items.sort_by(|a, b| id_of(a).cmp(id_of(b)));
        self.index.clear();
        for (i, item) in self.items.iter().enumerate() {
            self.index.insert(id_of(item), i as u32);
        }
    }

    pub(crate) fn get(&self, id: &str) -> Option<&V> {
        self.index.get(id).map(|&i| &self.items[i as usize])
    }

    /// The position of `id` among the definitions (in id order once finished).
    pub(crate) fn index_of(&self, id: &str) -> Option<u32> {
        self.index.get(id).copied()
    }

    /// The definition at a position [`IdMap::index_of`] gave.
    pub(crate) fn at(&self, index: u32) -> &V {
        &self.items[index as usize]
    }

    pub(crate) fn values(&self) -> std::slice::Iter<'_, V> {
        self.items.iter()
    }
}

/// FNV-1a: fast for the two- and three-letter ids it hashes; the keys are
/// compiled-in definitions, not input, so flooding is no concern.
pub(crate) struct IdHasher(u64);

impl Default for IdHasher {
    fn default() -> Self {
        IdHasher(0xcbf2_9ce4_8422_2325)
    }
}

impl Hasher for IdHasher {
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0 ^ b as u64).wrapping_mul(0x0100_0000_01b3);
        }
    }

    fn finish(&self) -> u64 {
        self.0
    }
}
