//! Parser for the embedded definition files (`data/*.hl7spec`).
//!
//! The files are written by `tools/spec-gen/generate.py`: UTF-8 text, one
//! record per line, tab-separated columns, `#` starts a comment line. Numbers
//! of 0 mean "none" (table, length) or "unbounded" (maximum occurrences).
//!
//! | kind | columns | meaning |
//! | --- | --- | --- |
//! | `V` | version | the HL7 version of the file |
//! | `S` | id, name | a segment; its `F` records follow |
//! | `F` | type, opt, max reps, max length, table, name | the next field of the segment |
//! | `D` | id, name | a composite data type; its `C` records follow |
//! | `C` | type, opt, max length, table, name | the next component |
//! | `P` | id, name | a primitive data type |
//! | `M` | id, description | a message structure; its `s`/`g` records follow |
//! | `g` | depth, kind (`q` sequence, `c` choice), min, max, name | a group |
//! | `s` | depth, min, max, segment id | a segment reference |
//! | `E` | message type, trigger event, structure | the event map |
//! | `T` | id, name | a table; its `v` records follow |
//! | `v` | code, description | a table value |
//!
//! `g` and `s` records are the structure tree in preorder: a record at depth
//! `d + 1` belongs to the nearest preceding group at depth `d`.
//!
//! Every string in the result borrows from the `'static` file text, so
//! loading allocates only the vectors and maps.

use std::collections::BTreeMap;
use std::fmt;

use crate::VersionSpec;
use crate::model::*;
use crate::version::IdMap;

/// A malformed definition file: the line and what was wrong with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoadError {
    pub line: usize,
    pub problem: String,
}

impl fmt::Display for LoadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "definition line {}: {}", self.line, self.problem)
    }
}

impl std::error::Error for LoadError {}

struct Line<'a> {
    number: usize,
    cols: Vec<&'a str>,
}

impl Line<'static> {
    fn col(&self, i: usize) -> Result<&'static str, LoadError> {
        self.cols
            .get(i)
            .copied()
            .ok_or_else(|| self.err(format!("missing column {}", i + 1)))
    }

    /// The last column is free text and may be absent when empty.
    fn text(&self, i: usize) -> &'static str {
        self.cols.get(i).copied().unwrap_or("")
    }

    fn num(&self, i: usize) -> Result<u32, LoadError> {
        let raw = self.col(i)?;
        raw.parse()
            .map_err(|_| self.err(format!("column {} is not a number: {raw:?}", i + 1)))
    }

    fn opt(&self, i: usize) -> Result<Optionality, LoadError> {
        let raw = self.col(i)?;
        Optionality::from_code(raw).ok_or_else(|| self.err(format!("unknown optionality {raw:?}")))
    }

    fn nonzero(&self, i: usize) -> Result<Option<u32>, LoadError> {
        Ok(Some(self.num(i)?).filter(|n| *n != 0))
    }

    fn err(&self, problem: String) -> LoadError {
        LoadError {
            line: self.number,
            problem,
        }
    }
}

/// Builds a structure tree from preorder records with depths.
struct TreeBuilder {
    /// `stack[d]` holds the children collected so far at depth `d + 1`;
    /// `open[d]` the group header waiting for them.
    stack: Vec<Vec<StructureNode>>,
    open: Vec<Group>,
}

impl TreeBuilder {
    fn new() -> Self {
        TreeBuilder {
            stack: vec![Vec::new()],
            open: Vec::new(),
        }
    }

    /// Closes groups until the next record at `depth` has a parent.
    fn close_to(&mut self, depth: usize) {
        while self.stack.len() > depth {
            let children = self.stack.pop().unwrap_or_default();
            match self.open.pop() {
                Some(mut group) => {
                    group.children = children;
                    if let Some(parent) = self.stack.last_mut() {
                        parent.push(StructureNode::Group(group));
                    }
                }
                None => {
                    // Depth 1 is the root; put it back.
                    self.stack.push(children);
                    break;
                }
            }
        }
    }

    fn push(
        &mut self,
        depth: usize,
        node: StructureNode,
        line: &Line<'static>,
    ) -> Result<(), LoadError> {
        if depth == 0 || depth > self.stack.len() {
            return Err(line.err(format!("depth {depth} does not follow its parent")));
        }
        self.close_to(depth);
        match node {
            StructureNode::Group(group) => {
                self.open.push(group);
                self.stack.push(Vec::new());
            }
            seg => {
                if let Some(top) = self.stack.last_mut() {
                    top.push(seg);
                }
            }
        }
        Ok(())
    }

    fn finish(mut self) -> Vec<StructureNode> {
        self.close_to(1);
        self.stack.pop().unwrap_or_default()
    }
}

fn cardinality(line: &Line<'static>, min_col: usize) -> Result<Cardinality, LoadError> {
    Ok(Cardinality {
        min: line.num(min_col)?,
        max: line.nonzero(min_col + 1)?,
    })
}

fn repetition(max: u32) -> Repetition {
    match max {
        0 => Repetition::Unbounded,
        1 => Repetition::Single,
        n => Repetition::UpTo(n),
    }
}

enum Open {
    Nothing,
    Segment(SegmentDef),
    DataType(DataType),
    Structure(&'static str, &'static str, TreeBuilder),
    Table(Table),
}

/// Parses one embedded definition file.
pub(crate) fn parse(text: &'static str) -> Result<VersionSpec, LoadError> {
    let mut spec = VersionSpec {
        version: "",
        segments: IdMap::new(),
        datatypes: IdMap::new(),
        structures: IdMap::new(),
        events: BTreeMap::new(),
        tables: BTreeMap::new(),
        matchers: std::sync::OnceLock::new(),
        type_tree: std::sync::OnceLock::new(),
    };
    let mut open = Open::Nothing;
    for (index, raw) in text.lines().enumerate() {
        if raw.is_empty() || raw.starts_with('#') {
            continue;
        }
        let line = Line {
            number: index + 1,
            cols: raw.split('\t').collect(),
        };
        let kind = line.col(0)?;
        // A child record continues the open definition; any other closes it.
        let is_child = matches!(
            (kind, &open),
            ("F", Open::Segment(_))
                | ("C", Open::DataType(_))
                | ("g" | "s", Open::Structure(..))
                | ("v", Open::Table(_))
        );
        if !is_child {
            close(&mut spec, std::mem::replace(&mut open, Open::Nothing));
        }
        match (kind, &mut open) {
            ("V", _) => spec.version = line.col(1)?,
            ("S", _) => {
                open = Open::Segment(SegmentDef {
                    id: line.col(1)?,
                    name: line.text(2),
                    fields: Vec::new(),
                })
            }
            ("F", Open::Segment(seg)) => {
                let seq = seg.fields.len() as u16 + 1;
                seg.fields.push(FieldDef {
                    segment: seg.id,
                    seq,
                    data_type: line.col(1)?,
                    optionality: line.opt(2)?,
                    repetition: repetition(line.num(3)?),
                    max_length: line.nonzero(4)?,
                    table: line.nonzero(5)?,
                    name: line.text(6),
                });
            }
            ("D" | "P", _) => {
                open = Open::DataType(DataType {
                    id: line.col(1)?,
                    name: line.text(2),
                    components: Vec::new(),
                })
            }
            ("C", Open::DataType(dt)) => {
                let seq = dt.components.len() as u16 + 1;
                dt.components.push(ComponentDef {
                    seq,
                    data_type: line.col(1)?,
                    optionality: line.opt(2)?,
                    max_length: line.nonzero(3)?,
                    table: line.nonzero(4)?,
                    name: line.text(5),
                });
            }
            ("M", _) => open = Open::Structure(line.col(1)?, line.text(2), TreeBuilder::new()),
            ("g", Open::Structure(_, _, tree)) => {
                let depth = line.num(1)? as usize;
                let kind = match line.col(2)? {
                    "q" => GroupKind::Sequence,
                    "c" => GroupKind::Choice,
                    other => return Err(line.err(format!("unknown group kind {other:?}"))),
                };
                let group = Group {
                    kind,
                    cardinality: cardinality(&line, 3)?,
                    name: line.col(5)?,
                    children: Vec::new(),
                };
                tree.push(depth, StructureNode::Group(group), &line)?;
            }
            ("s", Open::Structure(_, _, tree)) => {
                let depth = line.num(1)? as usize;
                let seg = SegmentRef {
                    cardinality: cardinality(&line, 2)?,
                    id: line.col(4)?,
                };
                tree.push(depth, StructureNode::Segment(seg), &line)?;
            }
            ("E", _) => {
                let (msg_type, event, structure) = (line.col(1)?, line.col(2)?, line.col(3)?);
                spec.events
                    .entry(msg_type)
                    .or_default()
                    .push((event, structure));
            }
            ("T", _) => {
                open = Open::Table(Table {
                    id: line.num(1)?,
                    name: line.text(2),
                    values: Vec::new(),
                })
            }
            ("v", Open::Table(table)) => table.values.push(TableValue {
                code: line.col(1)?,
                description: line.text(2),
            }),
            (other, _) => return Err(line.err(format!("unexpected record {other:?} here"))),
        }
    }
    close(&mut spec, open);
    spec.segments.finish(|s| s.id);
    spec.datatypes.finish(|d| d.id);
    spec.structures.finish(|s| s.id);
    if spec.version.is_empty() {
        return Err(LoadError {
            line: 0,
            problem: "no V record naming the version".into(),
        });
    }
    Ok(spec)
}

fn close(spec: &mut VersionSpec, open: Open) {
    match open {
        Open::Nothing => {}
        Open::Segment(seg) => {
            spec.segments.insert(seg.id, seg);
        }
        Open::DataType(dt) => {
            spec.datatypes.insert(dt.id, dt);
        }
        Open::Structure(id, description, tree) => {
            let children = tree.finish();
            spec.structures.insert(
                id,
                MessageStructure {
                    id,
                    description,
                    children,
                },
            );
        }
        Open::Table(mut table) => {
            table.values.sort_by(|a, b| a.code.cmp(b.code));
            table.values.dedup_by(|a, b| a.code == b.code);
            spec.tables.insert(table.id, table);
        }
    }
}
