//! Field-level validation (required fields, repetitions, components, data
//! type formats, table values, lengths) combined with the structural check.

use super::text::{push_num, push_padded};
use super::types::{Check, Slot, named_check};
use super::value::{check_date, check_date_time, check_number, check_sequence_id, check_time};
use super::{
    ErrorCode, FieldPosition, Finding, FindingKind, SegmentSequence, Severity, StructureMatcher,
    StructureOptions, unknown_structure, with_matcher,
};
use crate::{MessageStructure, SegmentDef, VersionSpec};

/// The delimiters a message declares in MSH-1 and MSH-2.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Separators {
    pub field: char,
    pub component: char,
    pub repetition: char,
    pub escape: char,
    pub subcomponent: char,
}

impl Default for Separators {
    /// `|^~\&`, the separators nearly every sender uses.
    fn default() -> Self {
        Separators {
            field: '|',
            component: '^',
            repetition: '~',
            escape: '\\',
            subcomponent: '&',
        }
    }
}

/// A message as the field validator sees it: segment ids plus the raw text
/// of each field. A parser implements this over its own message type.
pub trait MessageFields: SegmentSequence {
    fn separators(&self) -> Separators;
    /// The raw (still escaped) text of field `field` (1-based) of the segment
    /// at `segment`; `None` when the segment has fewer fields. For MSH, field
    /// 1 is the field separator and field 2 the encoding characters.
    fn field(&self, segment: usize, field: usize) -> Option<&str>;

    /// Appends the raw text of every field of the segment at `segment`, from
    /// field 1 on, to `out`: what [`MessageFields::field`] returns for 1, 2,
    /// ... up to the first `None`. A parser can do this in one pass over the
    /// segment instead of finding it again for each field.
    fn segment_fields<'s>(&'s self, segment: usize, out: &mut Vec<&'s str>) {
        let mut n = 1;
        while let Some(text) = self.field(segment, n) {
            out.push(text);
            n += 1;
        }
    }
}

/// A minimal message view that splits text into segments and fields:
/// enough for tools and tests (the `hl7v2` crate is the real parser).
#[derive(Debug, Clone)]
pub struct SplitMessage<'a> {
    separators: Separators,
    /// Per segment: the id, then fields 1, 2, ... (MSH-1 included).
    segments: Vec<Vec<&'a str>>,
}

impl<'a> SplitMessage<'a> {
    /// Splits one message; segments end in CR, LF or CRLF. `None` when the
    /// text does not start with an MSH segment with its delimiters.
    pub fn parse(text: &'a str) -> Option<SplitMessage<'a>> {
        let text = text.trim_start_matches('\u{feff}');
        let mut lines = text.split(['\r', '\n']).filter(|l| !l.trim().is_empty());
        let msh = lines.next()?;
        let rest = msh.strip_prefix("MSH")?;
        let mut chars = rest.chars();
        let field = chars.next()?;
        let encoding: Vec<char> = chars.take_while(|c| *c != field).take(4).collect();
        let get = |i: usize, default: char| encoding.get(i).copied().unwrap_or(default);
        let separators = Separators {
            field,
            component: get(0, '^'),
            repetition: get(1, '~'),
            escape: get(2, '\\'),
            subcomponent: get(3, '&'),
        };
        let split_segment = |line: &'a str| -> Vec<&'a str> {
            let mut parts: Vec<&'a str> = line.split(field).collect();
            if parts.first() == Some(&"MSH") {
                // MSH-1 is the separator itself, so every later field shifts by one.
                parts.insert(1, &line[3..3 + field.len_utf8()]);
            }
            parts
        };
        let mut segments = vec![split_segment(msh)];
        segments.extend(lines.map(split_segment));
        Some(SplitMessage {
            separators,
            segments,
        })
    }
}

impl SegmentSequence for SplitMessage<'_> {
    fn segment_count(&self) -> usize {
        self.segments.len()
    }

    fn segment_id(&self, index: usize) -> &str {
        self.segments[index][0]
    }
}

impl MessageFields for SplitMessage<'_> {
    fn separators(&self) -> Separators {
        self.separators
    }

    fn field(&self, segment: usize, field: usize) -> Option<&str> {
        self.segments.get(segment)?.get(field).copied()
    }
}

/// What [`validate_message`] checks and how loudly.
///
/// The default reports as errors what stops a receiver from reading the
/// message: segments out of order, unexpected or missing, repetitions over
/// the limit, values that are not the data type (dates, numbers), an unknown
/// message type. What the base standard requires but real senders often
/// leave out (R fields, coded values outside the HL7 table) is a warning, as
/// are lengths. [`ValidationOptions::strict`] makes those errors too; a
/// [`crate::validate::Profile`] can set any kind's severity.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ValidationOptions {
    pub structure: StructureOptions,
    /// How to report an empty field the standard marks R; `None` ignores them.
    pub required_fields: Option<Severity>,
    /// How to report an empty required component of a valued field.
    pub required_components: Option<Severity>,
    /// How to report an ID value that is not in its HL7 table (coding-system
    /// names, table 0396, are never more than a warning).
    pub table_values: Option<Severity>,
    /// Report values longer than their maximum length (as warnings).
    pub lengths: bool,
}

impl Default for ValidationOptions {
    fn default() -> Self {
        ValidationOptions {
            structure: StructureOptions::default(),
            required_fields: Some(Severity::Warning),
            required_components: Some(Severity::Warning),
            table_values: Some(Severity::Warning),
            lengths: true,
        }
    }
}

impl ValidationOptions {
    /// The base standard to the letter: R fields and components and HL7
    /// table values are errors.
    pub fn strict() -> Self {
        ValidationOptions {
            required_fields: Some(Severity::Error),
            required_components: Some(Severity::Error),
            table_values: Some(Severity::Error),
            ..ValidationOptions::default()
        }
    }
}

/// Validates a whole message: resolves its structure from MSH-9, checks the
/// segment order, and checks every field of every segment the version
/// defines. Findings are ordered by segment.
///
/// When no structure fits MSH-9, the only finding is a
/// [`FindingKind::UnknownStructure`] (code 200 or 201).
pub fn validate_message<M: MessageFields + ?Sized>(
    spec: &VersionSpec,
    message: &M,
    options: &ValidationOptions,
) -> Vec<Finding> {
    validate_message_with(spec, message, options, &Overrides::default(), |_| {})
}

/// What a profile changes about validation.
#[derive(Default)]
pub(crate) struct Overrides<'s> {
    /// Segment definitions from the profile.
    pub(crate) segments: &'s [SegmentDef],
    /// True when they replace the standard's (a conformance profile); false
    /// when they only add segments the standard lacks (Z-segments).
    pub(crate) segments_replace_base: bool,
    /// The profile's own message structure, compiled.
    pub(crate) matcher: Option<&'s StructureMatcher>,
}

impl<'s> Overrides<'s> {
    fn segment(&self, spec: &'s VersionSpec, id: &str) -> Option<&'s SegmentDef> {
        let own = || self.segments.iter().find(|s| s.id == id);
        if self.segments_replace_base {
            own().or_else(|| spec.segment(id))
        } else {
            spec.segment(id).or_else(own)
        }
    }
}

/// [`validate_message`] with a profile's segment definitions and structure,
/// and further field findings (profile rules).
pub(crate) fn validate_message_with<'s, M: MessageFields + ?Sized>(
    spec: &'s VersionSpec,
    message: &M,
    options: &ValidationOptions,
    overrides: &Overrides<'s>,
    extra_findings: impl FnOnce(&mut Vec<FieldFinding>),
) -> Vec<Finding> {
    let checked = match check_fields(spec, message, options, overrides, true, extra_findings) {
        Ok(checked) => checked,
        Err(findings) => return findings,
    };
    let Checked {
        ids,
        field_findings,
        structure,
    } = checked;
    let mut wanted: Vec<usize> = field_findings.iter().map(|f| f.segment).collect();
    wanted.dedup();
    let (mut findings, paths) = match (overrides.matcher, structure) {
        (Some(m), _) => m.validate_with_paths(&ids[..], options.structure, &wanted),
        (None, Some(structure)) => with_matcher(spec, structure, |m| {
            m.validate_with_paths(&ids[..], options.structure, &wanted)
        }),
        (None, None) => (Vec::new(), vec![String::new(); wanted.len()]),
    };
    // Which occurrence of its id each segment with findings is (ERR-2.2),
    // counted in one pass over the segments.
    let mut occurrences = Vec::with_capacity(wanted.len());
    if let Some(&last) = wanted.last() {
        let mut seen: Vec<(&str, usize)> = Vec::new();
        let mut next = wanted.iter().peekable();
        for (index, &id) in ids.iter().enumerate().take(last + 1) {
            let count = match seen.iter_mut().find(|(s, _)| *s == id) {
                Some((_, n)) => {
                    *n += 1;
                    *n
                }
                None => {
                    seen.push((id, 1));
                    1
                }
            };
            if next.next_if(|&&w| w == index).is_some() {
                occurrences.push(count);
            }
        }
    }
    findings.reserve(field_findings.len());
    for f in field_findings {
        let at = wanted.binary_search(&f.segment).unwrap_or(0);
        let base = paths.get(at).map(String::as_str).unwrap_or_default();
        let mut path = String::with_capacity(base.len() + 12);
        path.push_str(base);
        f.at.push_suffix(&mut path);
        findings.push(Finding {
            kind: f.kind,
            code: f.code,
            severity: f.severity,
            path,
            segment_index: Some(f.segment),
            segment_id: ids.get(f.segment).copied().unwrap_or_default().to_string(),
            segment_sequence: occurrences.get(at).copied(),
            field: Some(f.at),
            message: f.message,
        });
    }
    findings.sort_by_key(|f| f.segment_index.unwrap_or(usize::MAX));
    findings
}

/// Where a [`Deviation`] is, as far as counting deviations by place needs it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Place<'a> {
    /// A field finding: its segment's id and the field's position (the
    /// finding's path ends `.{segment}-{field}` or `.{segment}[n]-{field}...`).
    Field { segment: &'a str, field: u16 },
    /// Any other finding, with its whole [`Finding::path`].
    Path(&'a str),
}

/// A finding as [`deviations`] hands it out: its kind and severity and where.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Deviation<'a> {
    pub kind: FindingKind,
    pub severity: Severity,
    pub place: Place<'a>,
}

/// What [`validate_message`] finds, for counting: every finding's kind,
/// severity and place, without the group paths, occurrences and owned text a
/// [`Finding`] carries for a field finding (feed profiling counts findings
/// by segment and field over many messages and needs none of them).
/// The findings are the same as `validate_message`'s, not in its order.
pub fn deviations<M: MessageFields + ?Sized>(
    spec: &VersionSpec,
    message: &M,
    options: &ValidationOptions,
    mut each: impl FnMut(Deviation<'_>),
) {
    let overrides = Overrides::default();
    let checked = match check_fields(spec, message, options, &overrides, false, |_| {}) {
        Ok(checked) => checked,
        Err(findings) => {
            for f in &findings {
                each(Deviation {
                    kind: f.kind,
                    severity: f.severity,
                    place: Place::Path(&f.path),
                });
            }
            return;
        }
    };
    if let Some(structure) = checked.structure {
        let findings = with_matcher(spec, structure, |m| {
            m.validate_with_paths(&checked.ids[..], options.structure, &[])
                .0
        });
        for f in &findings {
            each(Deviation {
                kind: f.kind,
                severity: f.severity,
                place: Place::Path(&f.path),
            });
        }
    }
    for f in &checked.field_findings {
        each(Deviation {
            kind: f.kind,
            severity: f.severity,
            place: Place::Field {
                segment: checked.ids.get(f.segment).copied().unwrap_or_default(),
                field: f.at.field,
            },
        });
    }
}

/// The field findings of a message whose structure is known.
struct Checked<'m, 's> {
    /// Every segment id, read once: the structure matcher and the findings
    /// read them again and again.
    ids: Vec<&'m str>,
    /// Sorted by segment.
    field_findings: Vec<FieldFinding>,
    /// The standard's structure (`None` when a profile's matcher replaces it).
    structure: Option<&'s MessageStructure>,
}

/// Resolves the message's structure from MSH-9 and checks every field of every
/// segment the version (or profile) defines. `Err` holds the findings when
/// no structure fits: the unknown structure and any bad delimiters.
fn check_fields<'s, 'm, M: MessageFields + ?Sized>(
    spec: &'s VersionSpec,
    message: &'m M,
    options: &ValidationOptions,
    overrides: &Overrides<'s>,
    messages: bool,
    extra_findings: impl FnOnce(&mut Vec<FieldFinding>),
) -> Result<Checked<'m, 's>, Vec<Finding>> {
    let seps = message.separators();
    let msh9 = message.field(0, 9).unwrap_or("");
    let mut parts = msh9.split(seps.component);
    let (msg_type, trigger, structure_id) = (
        parts.next().unwrap_or(""),
        parts.next().unwrap_or(""),
        parts.next(),
    );
    let structure = match overrides.matcher {
        Some(_) => None,
        None => match spec.structure_for(msg_type, trigger, structure_id) {
            Some(found) => Some(found.structure),
            None => {
                // Bad delimiters are the likelier cause; say so first.
                let mut early = Vec::new();
                check_encoding_characters(message, &mut early);
                let mut findings: Vec<Finding> = early
                    .into_iter()
                    .map(|f| Finding {
                        kind: f.kind,
                        code: f.code,
                        severity: f.severity,
                        path: format!("MSH{}", f.at.suffix()),
                        segment_index: Some(0),
                        segment_id: "MSH".to_string(),
                        segment_sequence: Some(1),
                        field: Some(f.at),
                        message: f.message,
                    })
                    .collect();
                findings.push(unknown_structure(spec, msg_type, trigger));
                return Err(findings);
            }
        },
    };

    let ids: Vec<&str> = (0..message.segment_count())
        .map(|i| message.segment_id(i))
        .collect();
    let mut field_findings = Vec::new();
    let mut fields = Vec::with_capacity(32);
    let tree = spec.type_tree();
    let mut scratch = Vec::new();
    for (index, &id) in ids.iter().enumerate() {
        if let Some(def) = overrides.segment(spec, id) {
            fields.clear();
            message.segment_fields(index, &mut fields);
            let (slots, required_reach) = tree.field_slots(spec, def, &mut scratch);
            let mut check = FieldCheck {
                spec,
                fields: &fields,
                seps,
                options,
                segment: index,
                messages,
                out: &mut field_findings,
            };
            check.segment(def, slots, required_reach);
        }
    }
    check_encoding_characters(message, &mut field_findings);
    extra_findings(&mut field_findings);
    field_findings.sort_by_key(|f| f.segment);
    Ok(Checked {
        ids,
        field_findings,
        structure,
    })
}

/// A field finding before its segment's group path is known.
pub(crate) struct FieldFinding {
    pub(crate) segment: usize,
    pub(crate) kind: FindingKind,
    pub(crate) code: ErrorCode,
    pub(crate) severity: Severity,
    pub(crate) at: FieldPosition,
    pub(crate) message: String,
}

struct FieldCheck<'a> {
    spec: &'a VersionSpec,
    /// The segment's fields, from field 1 ([`MessageFields::segment_fields`]).
    fields: &'a [&'a str],
    seps: Separators,
    options: &'a ValidationOptions,
    segment: usize,
    /// Write each finding's sentence (not when only counting findings).
    messages: bool,
    out: &'a mut Vec<FieldFinding>,
}

impl<'a> FieldCheck<'a> {
    /// The raw text of field `seq` (1-based); empty when the segment lacks it.
    fn field(&self, seq: usize) -> &'a str {
        seq.checked_sub(1)
            .and_then(|i| self.fields.get(i))
            .copied()
            .unwrap_or("")
    }

    /// Records a finding; its sentence is written by `message` only when
    /// sentences are wanted.
    fn report(
        &mut self,
        kind: FindingKind,
        code: ErrorCode,
        severity: Severity,
        at: FieldPosition,
        message: impl FnOnce(&mut String),
    ) {
        let mut text = String::new();
        if self.messages {
            text.reserve(96);
            message(&mut text);
        }
        let message = text;
        self.out.push(FieldFinding {
            segment: self.segment,
            kind,
            code,
            severity,
            at,
            message,
        });
    }

    /// Checks the fields of a segment defined by `def`, whose fields resolve
    /// to `slots`; the first `required_reach` fields reach its last required one.
    fn segment(&mut self, def: &SegmentDef, slots: &[Slot], required_reach: usize) {
        let header = matches!(def.id, "MSH" | "BHS" | "FHS");
        let obx = def.id == "OBX";
        // Field n is `def.fields[n - 1]`: past the segment's last field and
        // its last required one, every field is empty and may be.
        let reach = if self.options.required_fields.is_some() {
            self.fields.len().max(required_reach)
        } else {
            self.fields.len()
        };
        for (fdef, &slot) in def.fields.iter().zip(slots).take(reach) {
            let raw = self.field(fdef.seq as usize);
            let at = FieldPosition {
                field: fdef.seq,
                repetition: 1,
                component: 0,
                subcomponent: 0,
            };
            if raw.is_empty() {
                if let (true, Some(severity)) =
                    (fdef.optionality.is_required(), self.options.required_fields)
                {
                    self.report(
                        FindingKind::RequiredFieldMissing,
                        ErrorCode::RequiredFieldMissing,
                        severity,
                        at,
                        |message| {
                            message.push_str("required field ");
                            push_label(message, fdef);
                            message.push_str(" is empty");
                        },
                    );
                }
                continue;
            }
            // The separators themselves, and the explicit null "".
            if (header && fdef.seq <= 2) || raw == "\"\"" {
                continue;
            }
            let slot = if obx && fdef.seq == 5 {
                // OBX-5's type is whatever OBX-2 names.
                let named = self.field(2);
                let named = pieces(named, self.seps.component).next().unwrap_or("");
                match named_check(self.spec, named) {
                    Some(check) => Slot { check, ..slot },
                    None => continue,
                }
            } else {
                slot
            };
            let mut count = 0;
            for (r, rep) in pieces(raw, self.seps.repetition).enumerate() {
                count += 1;
                if rep.is_empty() || rep == "\"\"" {
                    continue;
                }
                let at = FieldPosition {
                    repetition: r + 1,
                    ..at
                };
                // No more characters than bytes: only a long value is counted.
                if let Some(max) = fdef
                    .max_length
                    .filter(|max| self.options.lengths && rep.len() > *max as usize)
                {
                    let len = rep.chars().count();
                    if len > max as usize {
                        self.report(
                            FindingKind::TooLong,
                            ErrorCode::ValueTooLong,
                            Severity::Warning,
                            at,
                            |message| {
                                push_label(message, fdef);
                                message.push_str(" is ");
                                push_num(message, len);
                                message.push_str(" characters long; at most ");
                                push_num(message, max as usize);
                                message.push_str(" expected");
                            },
                        );
                    }
                }
                if slot.check != Check::Nothing {
                    self.value(slot, rep, 0, at, fdef.name);
                }
            }
            // A `varies` field's shape, repetition included, is set by the
            // message's own definition (QPD-3 by the query profile).
            let over = fdef.repetition.max().filter(|max| count > *max);
            if let Some(max) = over.filter(|_| fdef.data_type != "varies") {
                self.report(
                    FindingKind::TooManyFieldRepetitions,
                    ErrorCode::DataTypeError,
                    Severity::Error,
                    at,
                    |message| {
                        push_label(message, fdef);
                        message.push_str(" repeats ");
                        push_num(message, count as usize);
                        message.push_str(" times; at most ");
                        push_num(message, max as usize);
                        message.push_str(" allowed");
                    },
                );
            }
        }
    }

    /// Checks one value of the element `slot` resolves, found at nesting
    /// `level` (0 field, 1 component, 2 subcomponent).
    fn value(&mut self, slot: Slot, text: &str, level: u8, at: FieldPosition, name: &str) {
        if slot.check == Check::Nothing {
            return;
        }
        // A first character that is not white space settles it without a trim.
        let printable_start = text.as_bytes().first().is_some_and(|b| {
            b.is_ascii() && !matches!(b, b' ' | b'\t' | b'\n' | 0x0b | 0x0c | b'\r')
        });
        if !printable_start && text.trim().is_empty() {
            return; // padding, not a value to judge
        }
        let checked = match slot.check {
            Check::Nothing => return,
            Check::Coded => return self.coded(slot.table, text, at, name),
            Check::Composite(index) => return self.composite(index, text, level, at, name),
            Check::Date => check_date(text),
            Check::Time => check_time(text),
            Check::DateTime => check_date_time(text),
            Check::Number => check_number(text),
            Check::SequenceId => check_sequence_id(text),
        };
        if let Err(e) = checked {
            self.report(
                FindingKind::InvalidFormat,
                ErrorCode::DataTypeError,
                Severity::Error,
                at,
                |message| {
                    message.push_str(name);
                    message.push_str(": not a valid ");
                    message.push_str(e.data_type);
                    message.push_str(": ");
                    message.push_str(e.problem);
                },
            );
        }
    }

    /// Checks the components (or subcomponents) of a value of the composite
    /// data type at `index`.
    fn composite(&mut self, index: u32, text: &str, level: u8, at: FieldPosition, name: &str) {
        if level >= 2 {
            return; // a composite inside a subcomponent: no separator left to split on
        }
        let spec = self.spec;
        let dt = spec.datatypes.at(index);
        let tree = spec.type_tree();
        let slots = &tree.components[index as usize];
        // Components past the last one with a check or (when empty ones are
        // reported) the last required one cannot give a finding.
        let reach = tree.reach[index as usize];
        let reach = if self.options.required_components.is_some() {
            reach.checked.max(reach.required)
        } else {
            reach.checked
        };
        let sep = if level == 0 {
            self.seps.component
        } else {
            self.seps.subcomponent
        };
        let mut parts = pieces(text, sep);
        let components = dt.components.iter().zip(slots.iter());
        for (comp, &slot) in components.take(usize::from(reach)) {
            let part = parts.next().unwrap_or("");
            let at = if level == 0 {
                FieldPosition {
                    component: comp.seq as usize,
                    ..at
                }
            } else {
                FieldPosition {
                    subcomponent: comp.seq as usize,
                    ..at
                }
            };
            if part.is_empty() {
                if let (true, Some(severity)) = (
                    comp.optionality.is_required(),
                    self.options.required_components,
                ) {
                    self.report(
                        FindingKind::RequiredComponentMissing,
                        ErrorCode::RequiredFieldMissing,
                        severity,
                        at,
                        |message| {
                            message.push_str(name);
                            message.push_str(": required component ");
                            push_num(message, comp.seq as usize);
                            message.push_str(" (");
                            message.push_str(comp.name);
                            message.push_str(") is empty");
                        },
                    );
                }
                continue;
            }
            if slot.check != Check::Nothing {
                self.value(slot, part, level + 1, at, comp.name);
            }
        }
    }

    /// Checks an ID value against its HL7 table.
    fn coded(&mut self, table: u32, text: &str, at: FieldPosition, name: &str) {
        let Some(severity) = self.options.table_values else {
            return;
        };
        let Some(codes) = self.spec.type_tree().tables.get(table as usize) else {
            return; // no table, or one without values
        };
        if codes.codes.contains(text) {
            return;
        }
        let Some(t) = self.spec.table(codes.id) else {
            return;
        };
        if t.accepts_pattern(text) {
            return;
        }
        // Coding-system names (0396) grow with every guide and
        // local code system; a miss there is worth a warning only.
        let severity = if t.id == 396 {
            Severity::Warning
        } else {
            severity
        };
        self.report(
            FindingKind::NotInTable,
            ErrorCode::TableValueNotFound,
            severity,
            at,
            |message| {
                message.push_str(name);
                message.push_str(": value is not in HL7 table ");
                push_padded(message, t.id as usize, 4);
                message.push_str(" (");
                message.push_str(t.name);
                message.push(')');
            },
        );
    }
}

/// MSH-2 must hold distinct delimiters that are not the field separator,
/// letters or digits; otherwise every later field is read wrongly. Fewer
/// than four are tolerated (old senders omit the subcomponent separator).
fn check_encoding_characters<M: MessageFields + ?Sized>(message: &M, out: &mut Vec<FieldFinding>) {
    if message.segment_count() == 0 || message.segment_id(0) != "MSH" {
        return;
    }
    let field = message.field(0, 1).unwrap_or("|");
    let encoding = message.field(0, 2).unwrap_or("");
    let chars: Vec<char> = encoding.chars().collect();
    let distinct = chars
        .iter()
        .enumerate()
        .all(|(i, c)| !chars[..i].contains(c));
    let usable = chars
        .iter()
        .all(|c| !c.is_alphanumeric() && !field.contains(*c) && !c.is_whitespace());
    if chars.is_empty() || chars.len() > 5 || !distinct || !usable {
        out.push(FieldFinding {
            segment: 0,
            kind: FindingKind::InvalidFormat,
            code: ErrorCode::DataTypeError,
            severity: Severity::Error,
            at: FieldPosition {
                field: 2,
                repetition: 1,
                component: 0,
                subcomponent: 0,
            },
            message: "MSH-2 Encoding Characters must be different delimiters (four, or five \
                      from 2.7), none of them the field separator, a letter or a digit"
                .to_string(),
        });
    }
}

/// Appends [`crate::FieldDef::label`] (`PID-5 Patient Name`) to `out`.
fn push_label(out: &mut String, fdef: &crate::FieldDef) {
    out.push_str(fdef.segment);
    out.push('-');
    push_num(out, fdef.seq as usize);
    out.push(' ');
    out.push_str(fdef.name);
}

/// `text.split(sep)`, cheaper for the short values of a message: an ASCII
/// separator (every real one) is looked for byte by byte.
pub(crate) fn pieces(text: &str, sep: char) -> Pieces<'_> {
    Pieces {
        rest: Some(text),
        sep,
    }
}

pub(crate) struct Pieces<'a> {
    /// What is left to split; `None` once the last piece is out.
    rest: Option<&'a str>,
    sep: char,
}

impl<'a> Iterator for Pieces<'a> {
    type Item = &'a str;

    #[inline]
    fn next(&mut self) -> Option<&'a str> {
        let rest = self.rest?;
        let at = if self.sep.is_ascii() {
            let b = self.sep as u8;
            rest.bytes().position(|x| x == b)
        } else {
            rest.find(self.sep)
        };
        match at {
            Some(i) => {
                self.rest = rest.get(i + self.sep.len_utf8()..);
                rest.get(..i)
            }
            None => {
                self.rest = None;
                Some(rest)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::pieces;

    #[test]
    fn pieces_are_what_split_gives() {
        for text in [
            "", "^", "^^", "a", "a^", "^a", "a^b^^c", "é^ü^", "a€b€", "€", "~x~~y", "abc",
        ] {
            for sep in ['^', '~', '€', 'b'] {
                let ours: Vec<&str> = pieces(text, sep).collect();
                let std: Vec<&str> = text.split(sep).collect();
                assert_eq!(ours, std, "{text:?} split at {sep:?}");
            }
        }
    }
}
