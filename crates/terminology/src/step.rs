//! The code-mapping step: maps a channel's coded fields (CE/CWE/CNE)
//! through the loaded maps, keeping the original code as the alternate
//! triplet, normalises OBX-6 units and converts values where asked.

use std::borrow::Cow;
use std::fmt;
use std::fmt::Write as _;

use hl7v2::{Charset, Delimiters, Element, Level, OwnedMessage, Path, SegmentName};
use rust_decimal::Decimal;
use serde::{Deserialize, Deserializer};

use crate::error::{Error, Result};
use crate::model::Scope;
use crate::systems::{canonical, v2_name};
use crate::terminology::Terminology;
use crate::units::{self, Conversion, Factor, UnitCheck};

/// A field such as `OBX-3`: a segment name and a field number.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FieldPath {
    pub segment: SegmentName,
    pub field: usize,
    label: String,
}

impl FieldPath {
    pub fn parse(text: &str) -> Result<FieldPath, String> {
        let bad = || format!("{text:?} is not a field like OBX-3");
        let path: Path = text.parse().map_err(|_| bad())?;
        match (path.occurrence, path.field, path.repetition, path.component) {
            (1, Some(field), None, None) if !text.contains('[') => Ok(FieldPath {
                segment: path.segment,
                field,
                label: format!("{}-{field}", path.segment),
            }),
            _ => Err(bad()),
        }
    }

    pub fn as_str(&self) -> &str {
        &self.label
    }
}

impl fmt::Display for FieldPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.label)
    }
}

/// What to do with a message holding a code no map translates.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum UnmappedPolicy {
    /// Leave the code as it is and go on.
    #[default]
    Pass,
    /// Go on, with the message flagged for an analyst.
    Flag,
    /// Stop the message: the engine quarantines it.
    Quarantine,
}

impl<'de> Deserialize<'de> for UnmappedPolicy {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<UnmappedPolicy, D::Error> {
        let text = String::deserialize(d)?;
        match text.as_str() {
            "pass" => Ok(UnmappedPolicy::Pass),
            "flag" => Ok(UnmappedPolicy::Flag),
            "quarantine" => Ok(UnmappedPolicy::Quarantine),
            other => Err(serde::de::Error::custom(format!(
                "unmapped: {other:?} is not a policy; use pass, flag or quarantine"
            ))),
        }
    }
}

/// A step's configuration, as a channel's configuration file writes it.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct MapStepConfig {
    /// The maps to use, by URL (a CSV map's URL is its name); empty: all.
    #[serde(default)]
    pub maps: Vec<String>,
    /// The coded fields to map, such as `OBX-3`, `OBR-4`, `AL1-3`.
    pub fields: Vec<String>,
    #[serde(default)]
    pub unmapped: UnmappedPolicy,
    /// Normalise OBX-6 spellings to UCUM (and report unknown units).
    #[serde(default)]
    pub units: bool,
    #[serde(default)]
    pub conversions: Vec<ConversionConfig>,
}

/// A value conversion: OBX-5 of results coded `system`/`code` in `from`
/// become results in `to`. Numbers are strings, to be read exactly.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct ConversionConfig {
    pub system: Option<String>,
    pub code: Option<String>,
    pub from: String,
    pub to: String,
    pub multiply_by: Option<String>,
    pub divide_by: Option<String>,
    #[serde(default = "default_decimals")]
    pub decimals: u32,
}

fn default_decimals() -> u32 {
    2
}

/// A change the step made: the path and the raw field before and after,
/// so an original value is never lost (OBX-5 has no alternate).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Change {
    pub path: String,
    pub before: String,
    pub after: String,
}

/// Why a code was left as it is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UnmappedReason {
    /// No map translates it.
    NoMapping,
    /// A unit that is neither UCUM nor a known spelling.
    UnknownUnit,
    /// Components 4-6 and 10-12 are both taken: the original would be lost.
    NoRoomForOriginal,
}

/// A code the step left unmapped.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UnmappedCode {
    /// `MSH-3.1`, or `MSH-3.1@MSH-4.1` when MSH-4 is given.
    pub sender: String,
    pub field: String,
    pub system: String,
    pub code: String,
    pub display: Option<String>,
    pub reason: UnmappedReason,
}

/// What the engine does with the message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Decision {
    Continue,
    Flag,
    Quarantine,
}

/// The result of one message through the step.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MapOutcome {
    pub decision: Decision,
    pub changes: Vec<Change>,
    pub unmapped: Vec<UnmappedCode>,
}

/// The step, built once from its configuration; each message is mapped
/// against the [`Terminology`] snapshot the caller passes in.
#[derive(Clone, Debug)]
pub struct MapStep {
    maps: Option<Vec<String>>,
    fields: Vec<FieldPath>,
    policy: UnmappedPolicy,
    units: bool,
    /// OBX-6, when units are normalised and `fields` does not name it.
    units_field: Option<FieldPath>,
    conversions: Vec<Conversion>,
}

impl MapStep {
    /// Checks the configuration; an invalid value is an error naming its key.
    pub fn new(config: &MapStepConfig) -> Result<MapStep> {
        if config.fields.is_empty() && !config.units && config.conversions.is_empty() {
            return Err(Error::at("fields", "names no field to map"));
        }
        let fields = config
            .fields
            .iter()
            .enumerate()
            .map(|(i, f)| FieldPath::parse(f).map_err(|m| Error::at(format!("fields[{i}]"), m)))
            .collect::<Result<Vec<_>>>()?;
        let conversions = config
            .conversions
            .iter()
            .enumerate()
            .map(|(i, c)| conversion(i, c))
            .collect::<Result<Vec<_>>>()?;
        let units_field = if config.units && !fields.iter().any(|f| f.as_str() == "OBX-6") {
            Some(FieldPath::parse("OBX-6").map_err(|m| Error::at("units", m))?)
        } else {
            None
        };
        Ok(MapStep {
            units_field,
            maps: (!config.maps.is_empty()).then(|| config.maps.clone()),
            fields,
            policy: config.unmapped,
            units: config.units,
            conversions,
        })
    }

    /// Maps `message`'s configured fields in place. Each mapped code moves
    /// to components 4-6 (an alternate already there moves on to 10-12) and
    /// the target takes components 1-3, its system as HL7 v2 names it (`LN`).
    /// Every edit is listed in the outcome's `changes`.
    pub fn apply(&self, terminology: &Terminology, message: &mut OwnedMessage) -> MapOutcome {
        self.run(terminology, message, true)
    }

    /// [`MapStep::apply`] without the change records (`changes` is empty):
    /// the same edits, the same unmapped codes and decision. This is what the
    /// engine's map stage runs: the journal keeps the message as received, so
    /// the records would only be built to be dropped.
    pub fn apply_without_changes(
        &self,
        terminology: &Terminology,
        message: &mut OwnedMessage,
    ) -> MapOutcome {
        self.run(terminology, message, false)
    }

    fn run(
        &self,
        terminology: &Terminology,
        message: &mut OwnedMessage,
        record: bool,
    ) -> MapOutcome {
        let mut run = Run {
            step: self,
            terminology,
            application: msh_text(message, 3),
            facility: msh_text(message, 4),
            changes: Vec::new(),
            unmapped: Vec::new(),
            special: special_bytes(&message.delimiters()),
            record,
            edits: Vec::new(),
        };
        for field in &self.fields {
            let kind = if self.units && field.segment.as_bytes() == b"OBX" && field.field == 6 {
                Kind::Unit
            } else {
                Kind::Code
            };
            run.field(message, field, kind);
        }
        if let Some(obx6) = &self.units_field {
            run.field(message, obx6, Kind::Unit);
        }
        if !self.conversions.is_empty() {
            run.convert(message);
        }
        let decision = match (run.unmapped.is_empty(), self.policy) {
            (true, _) | (false, UnmappedPolicy::Pass) => Decision::Continue,
            (false, UnmappedPolicy::Flag) => Decision::Flag,
            (false, UnmappedPolicy::Quarantine) => Decision::Quarantine,
        };
        MapOutcome {
            decision,
            changes: run.changes,
            unmapped: run.unmapped,
        }
    }
}

fn conversion(i: usize, c: &ConversionConfig) -> Result<Conversion> {
    let key = |k: &str| format!("conversions[{i}].{k}");
    let number = |k: &str, v: &str| -> Result<Decimal> {
        let d: Decimal = v
            .trim()
            .parse()
            .map_err(|_| Error::at(key(k), format!("{v:?} is not a decimal number")))?;
        if d.is_zero() {
            return Err(Error::at(key(k), "must not be zero"));
        }
        Ok(d)
    };
    let factor = match (&c.multiply_by, &c.divide_by) {
        (Some(m), None) => Factor::MultiplyBy(number("multiply_by", m)?),
        (None, Some(d)) => Factor::DivideBy(number("divide_by", d)?),
        _ => {
            return Err(Error::at(
                key("multiply_by"),
                "give exactly one of multiply_by and divide_by",
            ));
        }
    };
    let unit = |k: &str, v: &str| -> Result<String> {
        units::normalise(v).map(str::to_string).ok_or_else(|| {
            Error::at(
                key(k),
                format!("{v:?} is not a unit Corridor knows as UCUM"),
            )
        })
    };
    let code = match (&c.system, &c.code) {
        (Some(s), Some(code)) => Some((canonical(s).to_string(), code.clone())),
        (None, None) => None,
        _ => {
            return Err(Error::at(
                key("code"),
                "give both system and code, or neither",
            ));
        }
    };
    if c.decimals > 10 {
        return Err(Error::at(key("decimals"), "at most 10"));
    }
    Ok(Conversion {
        code,
        from: unit("from", &c.from)?,
        to: unit("to", &c.to)?,
        factor,
        decimals: c.decimals,
    })
}

/// The text of MSH-`field`.1 (empty when absent).
fn msh_text(message: &OwnedMessage, field: usize) -> String {
    let Some(segment) = SegmentName::new(b"MSH") else {
        return String::new();
    };
    let path = Path {
        segment,
        occurrence: 1,
        field: Some(field),
        repetition: None,
        component: Some(1),
        subcomponent: None,
        every_occurrence: false,
        every_repetition: false,
    };
    message.get_text(&path).unwrap_or_default()
}

/// How a field's repetitions are mapped.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// Through the maps.
    Code,
    /// OBX-6: UCUM stays, a known spelling becomes UCUM, anything else goes
    /// through the maps.
    Unit,
}

/// An edit decided while the field was read: repetition `repetition` (1-based)
/// becomes `after`.
struct Edit {
    repetition: usize,
    after: Vec<u8>,
    /// The repetition as it was, when changes are recorded.
    before: Option<Vec<u8>>,
    /// Whether the code is reported (`NoRoomForOriginal`) when the edit cannot
    /// be written; a unit's spelling is left as it is.
    report_unwritten: bool,
}

struct Run<'a> {
    step: &'a MapStep,
    terminology: &'a Terminology,
    application: String,
    facility: String,
    changes: Vec<Change>,
    unmapped: Vec<UnmappedCode>,
    /// The bytes `hl7v2::escape::escape` escapes in this message.
    special: [bool; 256],
    /// Whether edits are listed in `changes`.
    record: bool,
    /// The edits of the field being mapped (kept to reuse its buffer).
    edits: Vec<Edit>,
}

impl Run<'_> {
    fn sender(&self) -> String {
        if self.facility.is_empty() {
            self.application.clone()
        } else {
            format!("{}@{}", self.application, self.facility)
        }
    }

    fn component_text(message: &OwnedMessage, path: &Path, n: usize) -> String {
        message
            .get(path)
            .map(|e| e.component(n).text().into_owned())
            .unwrap_or_default()
    }

    /// Maps every non-empty repetition of `field` in every segment of that
    /// name. Each occurrence's field is read once, its edits decided from the
    /// bytes read (borrowed), then written: an edit of one repetition leaves
    /// the others as they were, and a field of one repetition is set whole
    /// (the same bytes, without splitting the field into repetitions and
    /// joining them again).
    fn field(&mut self, message: &mut OwnedMessage, field: &FieldPath, kind: Kind) {
        let count = message
            .segment_names()
            .filter(|n| *n == field.segment.as_bytes())
            .count();
        let mut edits = std::mem::take(&mut self.edits);
        for occurrence in 1..=count {
            let whole = Path {
                segment: field.segment,
                occurrence,
                field: Some(field.field),
                repetition: None,
                component: None,
                subcomponent: None,
                every_occurrence: false,
                every_repetition: false,
            };
            edits.clear();
            // `OwnedMessage::get` reads repetitions, never a whole field: read
            // them one by one until there is none.
            let mut repetitions = 0;
            let mut literal = false;
            for r in 1.. {
                let at = Path {
                    repetition: Some(r),
                    ..whole.clone()
                };
                let Some(rep) = message.get(&at) else {
                    break;
                };
                repetitions = r;
                literal |= rep.level() == Level::Literal;
                if rep.is_empty() {
                    continue;
                }
                if let Some(mut edit) = self.decide(rep, field, kind) {
                    edit.repetition = r;
                    edits.push(edit);
                }
            }
            // A literal (MSH-1, MSH-2) is never split: set as it was read.
            let one_repetition = repetitions == 1 && !literal;
            for edit in edits.drain(..) {
                let at = Path {
                    repetition: Some(edit.repetition),
                    ..whole.clone()
                };
                let set = if one_repetition {
                    message.set_raw(&whole, &edit.after)
                } else {
                    message.set_raw(&at, &edit.after)
                };
                match set {
                    Ok(()) => self.record(&at, edit.before, edit.after),
                    Err(_) if edit.report_unwritten => self.unmapped_at(message, field, &at),
                    Err(_) => {}
                }
            }
        }
        self.edits = edits;
    }

    /// What to write in place of one non-empty repetition, if anything; a
    /// code left unmapped is noted.
    fn decide(&mut self, rep: Element<'_>, field: &FieldPath, kind: Kind) -> Option<Edit> {
        match kind {
            Kind::Code => self.decide_code(rep, field, UnmappedReason::NoMapping),
            Kind::Unit => match units::check(&text(&rep.component(1))) {
                UnitCheck::Ucum => None,
                UnitCheck::Spelling(ucum) => Some(Edit {
                    repetition: 0,
                    after: self.rewritten(rep, [ucum, ucum, "UCUM"])?,
                    before: self.record.then(|| rep.raw().to_vec()),
                    report_unwritten: false,
                }),
                // A map may still know it: the unmapped export, filled in.
                UnitCheck::Unknown => self.decide_code(rep, field, UnmappedReason::UnknownUnit),
            },
        }
    }

    /// Maps one coded repetition; a code no map translates is noted with
    /// `reason`.
    fn decide_code(
        &mut self,
        rep: Element<'_>,
        field: &FieldPath,
        reason: UnmappedReason,
    ) -> Option<Edit> {
        let code = text(&rep.component(1));
        let system = text(&rep.component(3));
        if code.is_empty()
            || self
                .terminology
                .is_target_system(canonical(&system), self.step.maps.as_deref())
        {
            // Nothing to map, or already in a target system.
            return None;
        }
        let scope = Scope {
            application: Some(&self.application),
            facility: Some(&self.facility),
            field: Some(field.as_str()),
        };
        let Some(concept) =
            self.terminology
                .first_match_in(&system, &code, &scope, self.step.maps.as_deref())
        else {
            let display = rep.component(2).text();
            let display = (!display.is_empty()).then(|| display.into_owned());
            self.note_unmapped(
                field,
                system.into_owned(),
                code.into_owned(),
                display,
                reason,
            );
            return None;
        };
        let target = [
            concept.code.as_str(),
            concept.display.as_deref().unwrap_or_default(),
            v2_name(&concept.system),
        ];
        let Some(after) = self.rewritten(rep, target) else {
            self.note_unmapped(
                field,
                system.into_owned(),
                code.into_owned(),
                {
                    let display = rep.component(2).text();
                    (!display.is_empty()).then(|| display.into_owned())
                },
                UnmappedReason::NoRoomForOriginal,
            );
            return None;
        };
        Some(Edit {
            repetition: 0,
            after,
            before: self.record.then(|| rep.raw().to_vec()),
            report_unwritten: true,
        })
    }

    /// Notes the code at `at` as unmapped for want of room: its edit could
    /// not be written.
    fn unmapped_at(&mut self, message: &OwnedMessage, field: &FieldPath, at: &Path) {
        let code = Self::component_text(message, at, 1);
        let system = Self::component_text(message, at, 3);
        let display = Some(Self::component_text(message, at, 2)).filter(|d| !d.is_empty());
        self.note_unmapped(
            field,
            system,
            code,
            display,
            UnmappedReason::NoRoomForOriginal,
        );
    }

    /// Lists an edit written at `at`, when changes are recorded.
    fn record(&mut self, at: &Path, before: Option<Vec<u8>>, after: Vec<u8>) {
        if !self.record {
            return;
        }
        self.changes.push(Change {
            path: path_label(at),
            before: lossy(before.unwrap_or_default()),
            after: lossy(after),
        });
    }

    fn note_unmapped(
        &mut self,
        field: &FieldPath,
        system: String,
        code: String,
        display: Option<String>,
        reason: UnmappedReason,
    ) {
        self.unmapped.push(UnmappedCode {
            sender: self.sender(),
            field: field.as_str().to_string(),
            system,
            code,
            display,
            reason,
        });
    }

    /// `rep` with `target` in components 1-3 and the original in 4-6 (and its
    /// version, component 7, in 8); an alternate already in 4-6 (with 8)
    /// moves to 10-12 (with 13). `None` when that place is taken too, or a
    /// target cannot be escaped.
    fn rewritten(&self, rep: Element<'_>, target: [&str; 3]) -> Option<Vec<u8>> {
        let ctx = rep.context();
        let d = ctx.delimiters;
        let sep = d.component?;
        let before = rep.raw();
        let encoded = target.map(|t| ctx.charset.encode(t));
        let plain = |e: &[u8]| !e.iter().any(|&b| self.special[usize::from(b)]);
        // The common case: at most components 1-3, the last not empty, and
        // targets that need no escaping. The original follows the target.
        if before.iter().filter(|&&b| b == sep).count() < 3
            && before.last().is_some_and(|&b| b != sep)
            && encoded.iter().all(|e| plain(e))
        {
            let mut after = Vec::with_capacity(
                encoded.iter().map(|e| e.len() + 1).sum::<usize>() + before.len(),
            );
            for e in &encoded {
                after.extend_from_slice(e);
                after.push(sep);
            }
            after.extend_from_slice(before);
            return Some(after);
        }
        // Slots 1-13 of the CWE, borrowed from `before`; targets escaped apart.
        let mut parts: [&[u8]; 13] = [&[]; 13];
        let mut extra: &[u8] = &[];
        for (i, part) in before.split(|&b| b == sep).enumerate() {
            match parts.get_mut(i) {
                Some(slot) => *slot = part,
                None => {
                    // Components past 13 stay as they were, after the 13th.
                    extra = component_tail(before, sep, 13);
                    break;
                }
            }
        }
        let taken =
            |parts: &[&[u8]; 13], at: &[usize]| at.iter().any(|&i| !parts[i - 1].is_empty());
        if taken(&parts, &[4, 5, 6, 8]) {
            if taken(&parts, &[10, 11, 12, 13]) {
                return None;
            }
            for (from, to) in [(4, 10), (5, 11), (6, 12), (8, 13)] {
                parts[to - 1] = std::mem::take(&mut parts[from - 1]);
            }
        }
        for (from, to) in [(1, 4), (2, 5), (3, 6), (7, 8)] {
            parts[to - 1] = std::mem::take(&mut parts[from - 1]);
        }
        let mut escaped: [Cow<'_, [u8]>; 3] = Default::default();
        for (slot, e) in escaped.iter_mut().zip(&encoded) {
            // Bytes `escape` would leave alone are used as they are.
            if plain(e) {
                *slot = Cow::Borrowed(e);
                continue;
            }
            *slot = hl7v2::escape::escape(e, &d).ok()?;
        }
        for (slot, e) in parts.iter_mut().zip(&escaped) {
            *slot = e;
        }
        let used = if extra.is_empty() {
            parts
                .iter()
                .rposition(|p| !p.is_empty())
                .map_or(0, |i| i + 1)
        } else {
            13
        };
        let mut after = Vec::with_capacity(before.len() + 32);
        for (i, part) in parts[..used].iter().enumerate() {
            if i > 0 {
                after.push(sep);
            }
            after.extend_from_slice(part);
        }
        if !extra.is_empty() {
            after.push(sep);
            after.extend_from_slice(extra);
        }
        Some(after)
    }

    /// Sets `path` (a repetition) to `target` keeping the original as
    /// [`Run::rewritten`] does; `false` when it could not.
    fn replace_keeping_original(
        &mut self,
        message: &mut OwnedMessage,
        path: &Path,
        target: [&str; 3],
    ) -> bool {
        let Some((before, after)) = message.get(path).and_then(|rep| {
            let after = self.rewritten(rep, target)?;
            Some((self.record.then(|| rep.raw().to_vec()), after))
        }) else {
            return false;
        };
        if message.set_raw(path, &after).is_err() {
            return false;
        }
        self.record(path, before, after);
        true
    }

    /// Converts OBX-5 where a conversion covers the OBX-3 code (its target
    /// or its kept original) and the OBX-6 unit; the original unit is kept
    /// in OBX-6.4-6, the original value in the change record.
    fn convert(&mut self, message: &mut OwnedMessage) {
        let count = message.segment_names().filter(|n| *n == b"OBX").count();
        for occurrence in 1..=count {
            let at = |field: usize| Path {
                segment: SegmentName::new(b"OBX").expect("a segment name"),
                occurrence,
                field: Some(field),
                repetition: Some(1),
                component: None,
                subcomponent: None,
                every_occurrence: false,
                every_repetition: false,
            };
            let (obx3, obx5, obx6) = (at(3), at(5), at(6));
            let codes = [(1, 3), (4, 6)].map(|(c, s)| {
                (
                    canonical(&Self::component_text(message, &obx3, s)).to_string(),
                    Self::component_text(message, &obx3, c),
                )
            });
            let unit = Self::component_text(message, &obx6, 1);
            let value = message.get_text(&obx5).unwrap_or_default();
            let Some(converted) = self.step.conversions.iter().find_map(|c| {
                let covers = c.code.as_ref().is_none_or(|k| codes.iter().any(|x| x == k));
                covers.then(|| c.apply(&value, &unit)).flatten()
            }) else {
                continue;
            };
            let new_value = converted.value.to_string();
            if message.set_text(&obx5, &new_value).is_err() {
                continue;
            }
            if self.record {
                self.changes.push(Change {
                    path: obx5.to_string(),
                    before: value,
                    after: new_value,
                });
            }
            let to = converted.unit.clone();
            self.replace_keeping_original(message, &obx6, [&to, &to, "UCUM"]);
            self.note_original(message, occurrence, &converted);
        }
    }

    /// Keeps a converted result's original value and unit in an NTE after the OBX
    /// (after the notes already there), which the FHIR conversion makes an
    /// `Observation.note`: `NTE|n|O|Original result: 95 mg/dL (converted to mmol/L
    /// by Corridor)|RE^Remark^HL70364`.
    fn note_original(
        &mut self,
        message: &mut OwnedMessage,
        occurrence: usize,
        converted: &units::Converted,
    ) {
        let names: Vec<&[u8]> = message.segment_names().collect();
        let Some(obx) = names
            .iter()
            .enumerate()
            .filter(|(_, n)| **n == b"OBX")
            .nth(occurrence - 1)
            .map(|(i, _)| i)
        else {
            return;
        };
        let notes = names[obx + 1..]
            .iter()
            .take_while(|n| **n == b"NTE")
            .count();
        let at = obx + 1 + notes;
        let nte_occurrence = names[..at].iter().filter(|n| **n == b"NTE").count() + 1;
        let text = original_note(converted);
        let d = message.delimiters();
        let encoded = message.charset().encode(&text);
        let Ok(escaped) = hl7v2::escape::escape(&encoded, &d) else {
            return;
        };
        let set_id = (notes + 1).to_string();
        // NTE-2 `O`: another system is the source of the comment (table 0105); NTE-4
        // `RE`: a remark (table 0364).
        let comment_type = match d.component {
            Some(c) => [&b"RE"[..], b"Remark", b"HL70364"].join(&c),
            None => b"RE".to_vec(),
        };
        let fields: [&[u8]; 4] = [set_id.as_bytes(), b"O", &escaped, &comment_type];
        if message.insert_segment(at, "NTE", &fields).is_err() {
            return;
        }
        if !self.record {
            return;
        }
        let after = fields
            .iter()
            .map(|f| String::from_utf8_lossy(f))
            .collect::<Vec<_>>()
            .join(&char::from(d.field).to_string());
        self.changes.push(Change {
            path: format!("NTE[{nte_occurrence}]"),
            before: String::new(),
            after: format!("NTE{}{after}", char::from(d.field)),
        });
    }
}

/// `e.text()`, read without the unescaping and decoding machinery when `e`
/// is short plain ASCII in an ASCII-compatible character set (then its text
/// is its bytes); anything else goes through `Element::text`.
fn text<'a>(e: &Element<'a>) -> Cow<'a, str> {
    let raw = e.raw();
    let ctx = e.context();
    let compatible = matches!(
        ctx.charset,
        Charset::Ascii | Charset::Utf8 | Charset::Latin1
    );
    let escape = ctx.delimiters.escape;
    if compatible
        && raw.len() <= 64
        && raw
            .iter()
            .all(|&b| b.is_ascii() && b != 0x1B && Some(b) != escape)
        && let Ok(text) = std::str::from_utf8(raw)
    {
        return Cow::Borrowed(text);
    }
    e.text()
}

/// The text of the NTE that keeps a converted result's original.
fn original_note(c: &units::Converted) -> String {
    format!(
        "Original result: {} {} (converted to {} by Corridor)",
        c.original_value.trim(),
        c.original_unit.trim(),
        c.unit
    )
}

/// The bytes after the `n`th separator of `raw` (components `n + 1` on).
fn component_tail(raw: &[u8], sep: u8, n: usize) -> &[u8] {
    let mut seen = 0;
    for (i, &b) in raw.iter().enumerate() {
        if b == sep {
            seen += 1;
            if seen == n {
                return &raw[i + 1..];
            }
        }
    }
    &[]
}

/// The bytes `hl7v2::escape::escape` escapes (or refuses) under `d`: the
/// delimiters, the truncation character, CR and LF.
fn special_bytes(d: &Delimiters) -> [bool; 256] {
    let mut special = [false; 256];
    let bytes = [
        Some(d.field),
        d.component,
        d.repetition,
        d.escape,
        d.subcomponent,
        d.truncation,
        Some(b'\r'),
        Some(b'\n'),
    ];
    for b in bytes.into_iter().flatten() {
        special[usize::from(b)] = true;
    }
    special
}

/// The text of raw bytes, as `String::from_utf8_lossy` gives it, without a
/// copy when they are UTF-8 already.
fn lossy(bytes: Vec<u8>) -> String {
    String::from_utf8(bytes).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())
}

/// `path.to_string()` for the paths the step edits (a segment occurrence,
/// a field and a repetition), written without the formatting machinery;
/// any other path goes through `Display`.
fn path_label(path: &Path) -> String {
    let (Some(field), None, false, false) = (
        path.field,
        path.component,
        path.every_occurrence,
        path.every_repetition,
    ) else {
        return path.to_string();
    };
    let mut out = String::with_capacity(16);
    out.push_str(path.segment.as_str());
    if path.occurrence != 1 {
        out.push('[');
        push_number(&mut out, path.occurrence);
        out.push(']');
    }
    out.push('-');
    push_number(&mut out, field);
    if let Some(r) = path.repetition {
        out.push('[');
        push_number(&mut out, r);
        out.push(']');
    }
    out
}

/// Appends `n` in decimal.
fn push_number(out: &mut String, n: usize) {
    if n < 10 {
        out.push(char::from(b'0' + n as u8));
    } else {
        let _ = write!(out, "{n}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_labels_are_what_display_writes() {
        for text in [
            "OBX-3",
            "OBX-3[1]",
            "OBX[2]-3[1]",
            "OBX[12]-6[3]",
            "OBX[1]-13[10]",
            "OBX-3.2",
            "OBX[*]-3",
            "PID-3[*]",
            "MSH-4.1",
        ] {
            let path: Path = text.parse().expect("a valid path");
            assert_eq!(path_label(&path), path.to_string(), "{text}");
        }
        let built = Path {
            segment: SegmentName::new(b"OBX").expect("a segment name"),
            occurrence: 10,
            field: Some(6),
            repetition: Some(1),
            component: None,
            subcomponent: None,
            every_occurrence: false,
            every_repetition: false,
        };
        assert_eq!(path_label(&built), "OBX[10]-6[1]");
        assert_eq!(path_label(&built), built.to_string());
        for (text, field) in [("MSH-3.1", 3), ("MSH-4.1", 4)] {
            let parsed: Path = text.parse().expect("a valid path");
            let message =
                OwnedMessage::parse(b"MSH|^~\\&|LAB^X|HOSP\rPID|1\r").expect("a valid message");
            assert_eq!(
                msh_text(&message, field),
                message.get_text(&parsed).unwrap_or_default()
            );
        }
    }

    #[test]
    fn special_bytes_are_what_escape_escapes() {
        let weird = Delimiters {
            field: b'#',
            component: Some(b'A'),
            repetition: None,
            escape: Some(b'/'),
            subcomponent: Some(b'&'),
            truncation: Some(b'%'),
        };
        for d in [Delimiters::STANDARD, weird] {
            let special = special_bytes(&d);
            for b in 0..=255u8 {
                let left_alone = matches!(hl7v2::escape::escape(&[b], &d), Ok(Cow::Borrowed(_)));
                assert_eq!(special[usize::from(b)], !left_alone, "{b}");
            }
        }
    }

    #[test]
    fn lossy_is_from_utf8_lossy() {
        for bytes in [&b"mg/dl^mg/dl^L"[..], b"caf\xe9", b"", b"\xff\xfe"] {
            assert_eq!(
                lossy(bytes.to_vec()),
                String::from_utf8_lossy(bytes).into_owned()
            );
        }
    }
}
