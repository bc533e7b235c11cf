//! HL7 v2 XML conformance profiles (`HL7v2xConformanceProfile`, the format
//! NIST's tools and IGAMT export), read into a [`Profile`].
//!
//! The profile's static definition becomes the message structure to match
//! (segments and groups with their usage and cardinality; usage X elements
//! are left out, so a segment sent there is unexpected); its segments'
//! fields replace the standard's definitions (data type, usage, repetition,
//! length, table); field and component usage become rules: R where the
//! field or component must be valued, X where it must be empty. Where a
//! segment is profiled more than once, its first definition is used.
//!
//! Usage is relative to the parent: a component R is required only in a
//! valued repetition of its field, a subcomponent R only in a valued
//! component; RE, O, C and CE never make an empty value a finding.
//! Both dialects load: Messaging Workbench / IHE Gazelle (`Length`,
//! `ItemNo`, `ImpNote`, `Reference`, `DataValues`) and NIST's extended form
//! (`MinLength`/`MaxLength`, `Truncation`, `CE`, custom data type flavours
//! such as `CE_IZ` or `HD_ELR`, checked as their base type). Conformance
//! statements that test an element's own value with one `PlainText`, `Regex`
//! or `List` are checked where it is valued. Conditional usage (C, CE) of a
//! component or subcomponent whose predicate is `Valued ./N` or
//! `NOT Valued ./N` on a sibling (the most common form in the NIST IZ and
//! ELR profiles) takes its
//! `PredicateTrueUsage`/`PredicateFalseUsage` (R or X) per repetition. Not
//! evaluated: other predicates (the element stays optional), other
//! conformance statements, `ConstantValue`, and tables the version does not
//! define.

use std::collections::HashMap;

use quick_xml::Reader;
use quick_xml::events::{BytesStart, Event};

use super::profile::{Check, Conformance, Profile, ProfileError, Rule, ValuePath, keep};
use super::{Severity, StructureMatcher};
use crate::{
    Cardinality, FieldDef, Group, GroupKind, MessageStructure, Optionality, Repetition, SegmentDef,
    SegmentRef, StructureNode,
};

/// One XML element with its attributes and child elements.
#[derive(Debug, Default)]
struct Element {
    name: String,
    attributes: Vec<(String, String)>,
    children: Vec<Element>,
}

impl Element {
    fn attr(&self, name: &str) -> Option<&str> {
        self.attributes
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    fn children_named<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a Element> + 'a {
        self.children.iter().filter(move |c| c.name == name)
    }
}

fn element_of(start: &BytesStart<'_>) -> Result<Element, ProfileError> {
    let mut e = Element {
        name: String::from_utf8_lossy(start.local_name().as_ref()).into_owned(),
        ..Element::default()
    };
    for attr in start.attributes() {
        let attr =
            attr.map_err(|err| ProfileError(format!("conformance profile: bad attribute: {err}")))?;
        let key = String::from_utf8_lossy(attr.key.local_name().as_ref()).into_owned();
        let value = attr
            .normalized_value(quick_xml::XmlVersion::Implicit1_0)
            .map_err(|err| ProfileError(format!("conformance profile: attribute {key}: {err}")))?
            .into_owned();
        e.attributes.push((key, value));
    }
    Ok(e)
}

fn parse_xml(text: &str) -> Result<Element, ProfileError> {
    let mut reader = Reader::from_str(text);
    let mut stack: Vec<Element> = vec![Element::default()];
    loop {
        let event = reader.read_event().map_err(|e| {
            ProfileError(format!(
                "conformance profile: XML error at byte {}: {e}",
                reader.buffer_position()
            ))
        })?;
        match event {
            Event::Start(start) => stack.push(element_of(&start)?),
            Event::Empty(start) => {
                let e = element_of(&start)?;
                if let Some(parent) = stack.last_mut() {
                    parent.children.push(e);
                }
            }
            Event::End(_) => {
                let done = stack.pop().filter(|_| !stack.is_empty()).ok_or_else(|| {
                    ProfileError("conformance profile: closing tag without an opening one".into())
                })?;
                if let Some(parent) = stack.last_mut() {
                    parent.children.push(done);
                }
            }
            Event::Eof => break,
            _ => {}
        }
    }
    let mut document = stack.pop().filter(|_| stack.is_empty()).ok_or_else(|| {
        ProfileError("conformance profile: the XML ends inside an element".into())
    })?;
    document
        .children
        .pop()
        .ok_or_else(|| ProfileError("conformance profile: the document is empty".into()))
}

fn number(text: Option<&str>) -> Option<u32> {
    text.and_then(|t| t.trim().parse().ok())
}

/// `Min`/`Max` with usage: only R keeps its minimum; `*` is unbounded.
fn cardinality(e: &Element) -> Cardinality {
    let usage = e.attr("Usage").unwrap_or("O");
    let min = if usage == "R" {
        number(e.attr("Min")).unwrap_or(1).max(1)
    } else {
        0
    };
    let max = match e.attr("Max").map(str::trim) {
        Some("*") => None,
        other => Some(number(other).unwrap_or(1)),
    };
    Cardinality { min, max }
}

fn optionality(usage: &str) -> Optionality {
    match usage {
        "R" => Optionality::Required,
        "X" => Optionality::NotSupported,
        "C" | "CE" => Optionality::Conditional,
        "B" => Optionality::Backward,
        "W" => Optionality::Withdrawn,
        _ => Optionality::Optional, // O, RE
    }
}

/// `0001`, `HL70001` -> 1; local tables (`99ACME`) have no number we know.
fn table_number(text: Option<&str>) -> Option<u32> {
    let t = text?.trim();
    let t = t.strip_prefix("HL7").unwrap_or(t);
    t.parse().ok().filter(|n| *n > 0)
}

/// NIST flavours of a data type (`CE_IZ`, `HD_IZ_0361`, `TS_ELR`) are the
/// base type with tighter usage, which the profile's component rules carry;
/// the format checks are the base type's.
fn base_datatype(name: &str) -> &str {
    name.split('_')
        .next()
        .filter(|b| !b.is_empty())
        .unwrap_or(name)
}

struct Builder {
    segments: Vec<SegmentDef>,
    rules: Vec<Rule>,
    seen: HashMap<String, ()>,
}

impl Builder {
    fn rule(&mut self, path: ValuePath, usage: &str, inside_field: bool) {
        let (required, forbidden) = match usage {
            "R" => (true, false),
            "X" => (false, true),
            _ => return,
        };
        self.rules.push(Rule {
            path,
            required,
            forbidden,
            only_if_parent_valued: inside_field,
            absent_segment_counts: false,
            checks: Vec::<Check>::new(),
            severity: Severity::Error,
            message: None,
            when: None,
            predicate: None,
        });
    }

    /// Usage C whose predicate is `Valued ./N` or `NOT Valued ./N` on a
    /// sibling: a rule that decides per repetition. Other predicates are not
    /// evaluated (the element stays optional).
    fn conditional(&mut self, path: ValuePath, e: &Element) {
        if !matches!(e.attr("Usage"), Some("C" | "CE")) {
            return;
        }
        let usage = |name: &str| match e.attr(name) {
            Some("R") => (true, false),
            Some("X") => (false, true),
            _ => (false, false),
        };
        let (when_true, when_false) = (usage("PredicateTrueUsage"), usage("PredicateFalseUsage"));
        if when_true == (false, false) && when_false == (false, false) {
            return;
        }
        let Some(condition) = e
            .children_named("Predicate")
            .next()
            .and_then(|p| p.children_named("Condition").next())
        else {
            return;
        };
        let (test, negated) = match condition.children.as_slice() {
            [t] if t.name == "NOT" => match t.children.as_slice() {
                [inner] => (inner, true),
                _ => return,
            },
            [t] => (t, false),
            _ => return,
        };
        let sibling = match (test.name.as_str(), test.attr("location")) {
            ("Valued", Some(loc)) => match loc.strip_prefix("./").and_then(|n| n.parse().ok()) {
                Some(n) if n > 0 => n,
                _ => return,
            },
            _ => return,
        };
        self.rules.push(Rule {
            path,
            required: false,
            forbidden: false,
            only_if_parent_valued: true,
            absent_segment_counts: false,
            checks: Vec::new(),
            severity: Severity::Error,
            message: None,
            when: None,
            predicate: Some(super::profile::SiblingPredicate {
                sibling,
                negated,
                when_true,
                when_false,
            }),
        });
    }

    /// NIST conformance statements that test the element's own value
    /// (`location="."`) with one `PlainText`, `Regex` or `List`: they apply
    /// where the element is valued. Statements about other locations or
    /// built from `AND`/`OR`/`NOT`/`Custom` are not evaluated.
    fn statements(&mut self, e: &Element, path: ValuePath) -> Result<(), ProfileError> {
        for statement in e.children_named("ConformanceStatement") {
            let Some(assertion) = statement.children_named("Assertion").next() else {
                continue;
            };
            let [test] = assertion.children.as_slice() else {
                continue;
            };
            if test.attr("location") != Some(".") {
                continue;
            }
            let check = match test.name.as_str() {
                "PlainText" => match test.attr("value") {
                    Some(v) => Check::Allowed(vec![v.to_string()]),
                    None => continue,
                },
                "List" => match test.attr("csv") {
                    Some(csv) => Check::Allowed(csv.split(',').map(str::to_string).collect()),
                    None => continue,
                },
                "Regex" => match test.attr("regex") {
                    Some(re) => Check::Pattern(
                        regex::Regex::new(&format!("^(?:{re})$")).map_err(|err| {
                            ProfileError(format!(
                                "conformance profile: {path}: conformance statement {}: regex: {err}",
                                statement.attr("id").unwrap_or("?")
                            ))
                        })?,
                    ),
                    None => continue,
                },
                _ => continue,
            };
            let id = statement.attr("id").unwrap_or("?");
            self.rules.push(Rule {
                path: path.clone(),
                required: false,
                forbidden: false,
                only_if_parent_valued: false,
                absent_segment_counts: false,
                checks: vec![check],
                severity: Severity::Error,
                message: Some(format!(
                    "{path}: the value breaks the profile's conformance statement {id}"
                )),
                when: None,
                predicate: None,
            });
        }
        Ok(())
    }

    fn segment(&mut self, e: &Element) -> Result<&'static str, ProfileError> {
        let name = e
            .attr("Name")
            .ok_or_else(|| ProfileError("conformance profile: a Segment has no Name".into()))?;
        let id = keep(name.to_string());
        if self.seen.insert(name.to_string(), ()).is_some() {
            return Ok(id);
        }
        let mut fields = Vec::new();
        for (i, f) in e.children_named("Field").enumerate() {
            let seq = i as u16 + 1;
            let usage = f.attr("Usage").unwrap_or("O");
            let max = f.attr("Max").map(str::trim);
            fields.push(FieldDef {
                segment: id,
                seq,
                name: keep(f.attr("Name").unwrap_or("").to_string()),
                data_type: keep(base_datatype(f.attr("Datatype").unwrap_or("ST")).to_string()),
                // R is checked as a rule below, so a message gets one finding.
                optionality: match optionality(usage) {
                    Optionality::Required => Optionality::Optional,
                    other => other,
                },
                repetition: match max {
                    Some("*") => Repetition::Unbounded,
                    other => match number(other).unwrap_or(1) {
                        0 | 1 => Repetition::Single,
                        n => Repetition::UpTo(n),
                    },
                },
                // Messaging Workbench says Length, NIST's tools MaxLength.
                max_length: number(f.attr("Length").or(f.attr("MaxLength"))).filter(|n| *n > 0),
                table: table_number(f.attr("Table")),
            });
            let path = |component: usize, subcomponent: usize| ValuePath {
                segment: name.to_string(),
                occurrence: None,
                field: seq,
                repetition: None,
                component,
                subcomponent,
            };
            self.rule(path(0, 0), usage, false);
            self.statements(f, path(0, 0))?;
            for (c, comp) in f.children_named("Component").enumerate() {
                self.rule(path(c + 1, 0), comp.attr("Usage").unwrap_or("O"), true);
                self.conditional(path(c + 1, 0), comp);
                self.statements(comp, path(c + 1, 0))?;
                for (s, sub) in comp.children_named("SubComponent").enumerate() {
                    self.rule(path(c + 1, s + 1), sub.attr("Usage").unwrap_or("O"), true);
                    self.conditional(path(c + 1, s + 1), sub);
                    self.statements(sub, path(c + 1, s + 1))?;
                }
            }
        }
        self.segments.push(SegmentDef {
            id,
            name: keep(e.attr("LongName").unwrap_or("").to_string()),
            fields,
        });
        Ok(id)
    }

    fn children(&mut self, parent: &Element) -> Result<Vec<StructureNode>, ProfileError> {
        let mut nodes = Vec::new();
        for e in &parent.children {
            if e.attr("Usage") == Some("X") {
                continue;
            }
            match e.name.as_str() {
                "Segment" => {
                    let id = self.segment(e)?;
                    nodes.push(StructureNode::Segment(SegmentRef {
                        id,
                        cardinality: cardinality(e),
                    }));
                }
                "SegGroup" => {
                    let name = e.attr("Name").unwrap_or("GROUP").to_string();
                    nodes.push(StructureNode::Group(Group {
                        name: keep(name),
                        kind: GroupKind::Sequence,
                        cardinality: cardinality(e),
                        children: self.children(e)?,
                    }));
                }
                _ => {}
            }
        }
        Ok(nodes)
    }
}

impl Profile {
    /// Reads an HL7 v2 XML conformance profile. Names from the profile are
    /// kept for the life of the process (profiles are configuration).
    pub fn from_conformance_xml(text: &str) -> Result<Profile, ProfileError> {
        let root = parse_xml(text)?;
        if root.name != "HL7v2xConformanceProfile" {
            return Err(ProfileError(format!(
                "conformance profile: the root element is {:?}, not HL7v2xConformanceProfile",
                root.name
            )));
        }
        let def = root
            .children_named("HL7v2xStaticDef")
            .next()
            .ok_or_else(|| {
                ProfileError("conformance profile: no HL7v2xStaticDef element".into())
            })?;
        let message_type = def.attr("MsgType").unwrap_or("").to_string();
        let trigger_event = def.attr("EventType").unwrap_or("").to_string();
        let structure_id = match def.attr("MsgStructID") {
            Some(id) if !id.is_empty() => id.to_string(),
            _ => format!("{message_type}_{trigger_event}"),
        };
        let name = root
            .children_named("MetaData")
            .chain(def.children_named("MetaData"))
            .find_map(|m| m.attr("Name"))
            .unwrap_or(&structure_id)
            .to_string();
        let mut builder = Builder {
            segments: Vec::new(),
            rules: Vec::new(),
            seen: HashMap::new(),
        };
        let children = builder.children(def)?;
        if children.is_empty() {
            return Err(ProfileError(
                "conformance profile: the static definition has no segments".into(),
            ));
        }
        let structure = MessageStructure {
            id: keep(structure_id),
            description: "",
            children,
        };
        let matcher = StructureMatcher::new(&structure);
        Ok(Profile {
            name,
            runs: super::profile::rule_runs(&builder.rules),
            rules: builder.rules,
            overrides: HashMap::new(),
            segments: builder.segments,
            conformance: Some(Conformance {
                message_type,
                trigger_event,
                structure,
                matcher,
            }),
        })
    }

    /// The message structure a conformance profile describes.
    pub fn structure(&self) -> Option<&MessageStructure> {
        self.conformance.as_ref().map(|c| &c.structure)
    }
}
