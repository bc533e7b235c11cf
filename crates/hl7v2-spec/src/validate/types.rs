//! The data types of a version resolved once for the field checks: each
//! field and component knows what check its values get (a date, a number, a
//! coded value, a composite to split, nothing) and which table's codes it is
//! checked against, so checking a value is an index into this tree, not a
//! lookup of its data type by name and a match on that name per component.

use std::collections::HashSet;
use std::hash::BuildHasherDefault;

use crate::model::FieldDef;
use crate::version::IdHasher;
use crate::{SegmentDef, VersionSpec};

/// What a value of a data type is checked for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Check {
    /// Text, user-defined codes, unknown types: nothing to judge.
    Nothing,
    /// `ID`: a code of the element's HL7 table.
    Coded,
    /// A composite: its index among the version's data types (and in
    /// [`TypeTree::components`]).
    Composite(u32),
    /// `DT`.
    Date,
    /// `TM`.
    Time,
    /// `DTM`, and `TS` where it is a primitive.
    DateTime,
    /// `NM`.
    Number,
    /// `SI`.
    SequenceId,
}

/// A field or component: its check and its table, resolved.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Slot {
    pub(crate) check: Check,
    /// Index into [`TypeTree::tables`]; [`NO_TABLE`] when the element names
    /// no table with values in this version.
    pub(crate) table: u32,
}

pub(crate) const NO_TABLE: u32 = u32::MAX;

/// How many leading components of a composite can give a finding.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Reach {
    /// Up to the last component with a check.
    pub(crate) checked: u16,
    /// Up to the last required component.
    pub(crate) required: u16,
}

/// A table with values, its codes hashed (a table's sorted values need a
/// string comparison per step of a binary search).
#[derive(Debug)]
pub(crate) struct TableCodes {
    pub(crate) id: u32,
    pub(crate) codes: HashSet<&'static str, BuildHasherDefault<IdHasher>>,
}

/// A version's data types, fields and tables resolved for the field checks;
/// built on the first field check of the version.
#[derive(Debug)]
pub(crate) struct TypeTree {
    /// Per data type (by its index among the version's data types), the
    /// slots of its components; empty for a primitive.
    pub(crate) components: Vec<Box<[Slot]>>,
    /// Per data type, how many of its components need looking at: up to the
    /// last one with a check, and up to the last required one (past them a
    /// value's components need not be split at all).
    pub(crate) reach: Vec<Reach>,
    /// Per segment definition (by its index among the version's segments),
    /// the slots of its fields.
    pub(crate) segments: Vec<Box<[Slot]>>,
    /// Per segment definition, how many leading fields reach its last
    /// required one (past them and past a segment's last field nothing is
    /// left to report).
    pub(crate) required_reach: Vec<u16>,
    /// Every table with values, ordered by id.
    pub(crate) tables: Vec<TableCodes>,
}

/// How many leading fields of `def` reach its last required one.
fn required_reach(def: &SegmentDef) -> usize {
    def.fields
        .iter()
        .rposition(|f| f.optionality.is_required())
        .map_or(0, |i| i + 1)
}

impl TypeTree {
    pub(crate) fn build(spec: &VersionSpec) -> TypeTree {
        let mut tree = TypeTree {
            components: Vec::new(),
            reach: Vec::new(),
            segments: Vec::new(),
            required_reach: spec
                .segments
                .values()
                .map(|def| required_reach(def) as u16)
                .collect(),
            tables: spec
                .tables
                .values()
                .filter(|t| !t.values.is_empty())
                .map(|t| TableCodes {
                    id: t.id,
                    codes: t.values.iter().map(|v| v.code).collect(),
                })
                .collect(),
        };
        tree.components = spec
            .datatypes
            .values()
            .map(|dt| {
                dt.components
                    .iter()
                    .map(|comp| {
                        // TS.1 is a DTM in every version, whatever older data calls it.
                        let id = if dt.id == "TS" && comp.seq == 1 {
                            "DTM"
                        } else {
                            comp.data_type
                        };
                        Slot {
                            check: check_of(spec, id),
                            table: tree.table_index(comp.table),
                        }
                    })
                    .collect()
            })
            .collect();
        tree.reach = spec
            .datatypes
            .values()
            .zip(&tree.components)
            .map(|(dt, slots)| {
                let upto = |keep: &dyn Fn(usize) -> bool| {
                    (0..slots.len())
                        .rev()
                        .find(|&i| keep(i))
                        .map_or(0, |i| i + 1) as u16
                };
                Reach {
                    checked: upto(&|i| slots[i].check != Check::Nothing),
                    required: upto(&|i| dt.components[i].optionality.is_required()),
                }
            })
            .collect();
        tree.segments = spec
            .segments
            .values()
            .map(|def| def.fields.iter().map(|f| tree.slot_of(spec, f)).collect())
            .collect();
        tree
    }

    /// The slots of a segment definition's fields, and how many leading
    /// fields reach the last required one: the version's own segments are
    /// resolved already; a profile's are resolved into `scratch`.
    pub(crate) fn field_slots<'t>(
        &'t self,
        spec: &VersionSpec,
        def: &SegmentDef,
        scratch: &'t mut Vec<Slot>,
    ) -> (&'t [Slot], usize) {
        if let Some(index) = spec.segments.index_of(def.id) {
            if std::ptr::eq(spec.segments.at(index), def) {
                if let (Some(slots), Some(&reach)) = (
                    self.segments.get(index as usize),
                    self.required_reach.get(index as usize),
                ) {
                    return (slots, usize::from(reach));
                }
            }
        }
        scratch.clear();
        scratch.extend(def.fields.iter().map(|f| self.slot_of(spec, f)));
        (scratch, required_reach(def))
    }

    fn slot_of(&self, spec: &VersionSpec, f: &FieldDef) -> Slot {
        Slot {
            check: check_of(spec, f.data_type),
            table: self.table_index(f.table),
        }
    }

    fn table_index(&self, id: Option<u32>) -> u32 {
        id.and_then(|id| self.tables.binary_search_by_key(&id, |t| t.id).ok())
            .map_or(NO_TABLE, |i| i as u32)
    }
}

/// What values of data type `id` are checked for: text types and codes
/// settled by name, else by the data type's definition.
fn check_of(spec: &VersionSpec, id: &str) -> Check {
    match id {
        "ST" | "TX" | "FT" | "IS" | "GTS" | "varies" => return Check::Nothing,
        "ID" => return Check::Coded,
        _ => {}
    }
    let Some(index) = spec.datatypes.index_of(id) else {
        return Check::Nothing;
    };
    let dt = spec.datatypes.at(index);
    if dt.is_composite() {
        return Check::Composite(index);
    }
    match dt.id {
        "DT" => Check::Date,
        "TM" => Check::Time,
        "DTM" | "TS" => Check::DateTime,
        "NM" => Check::Number,
        "SI" => Check::SequenceId,
        "ID" => Check::Coded,
        _ => Check::Nothing,
    }
}

/// OBX-5's check: whatever data type OBX-2 names (`None` when the version
/// does not know it).
pub(crate) fn named_check(spec: &VersionSpec, id: &str) -> Option<Check> {
    spec.datatype(id)?;
    Some(check_of(spec, id))
}
