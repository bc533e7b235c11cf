//! The suggested conformance profile (the validator's TOML form, see
//! `hl7v2_spec::validate::Profile::from_toml`).

use std::fmt::Write as _;

use hl7v2_spec::validate::FindingKind;

use crate::Profiler;

/// The profile's name of a kind of finding (its `[severity]` key).
pub(crate) fn kind_name(kind: FindingKind) -> &'static str {
    match kind {
        FindingKind::UnexpectedSegment => "unexpected_segment",
        FindingKind::SegmentOutOfOrder => "segment_out_of_order",
        FindingKind::MissingSegment => "missing_segment",
        FindingKind::TooManyRepetitions => "too_many_repetitions",
        FindingKind::UnknownStructure => "unknown_structure",
        FindingKind::RequiredFieldMissing => "required_field_missing",
        FindingKind::RequiredComponentMissing => "required_component_missing",
        FindingKind::TooManyFieldRepetitions => "too_many_field_repetitions",
        FindingKind::InvalidFormat => "invalid_format",
        FindingKind::NotInTable => "not_in_table",
        FindingKind::TooLong => "too_long",
        FindingKind::ProfileRule => "profile_rule",
        #[allow(unreachable_patterns)]
        _ => "other",
    }
}

/// Values safe to list in `allowed` as they are written (no escapes, no separators).
fn plain(value: &str) -> bool {
    !value.is_empty()
        && value
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, ' ' | '.' | '-' | '_'))
}

/// How many fields past the last one seen a Z-segment's profile forbids.
const Z_SLACK: usize = 10;
/// Value sets are suggested for coded fields with at most this many values.
const MAX_VALUE_SET: usize = 20;

pub(crate) fn profile(p: &Profiler, name: &str) -> String {
    let mut t = String::new();
    let _ = writeln!(
        t,
        "# Suggested by `corridor profile` from {} messages.",
        p.messages
    );
    let _ = writeln!(
        t,
        "# Fields always present are required; fields never seen are forbidden; coded\n\
         # fields with few values have their value set; kinds of deviation the feed\n\
         # already shows are warnings. Review before use."
    );
    let _ = writeln!(t, "name = {}", toml_string(name));
    let relaxed: std::collections::BTreeSet<&str> = p
        .deviations
        .keys()
        .filter(|(kind, severity)| {
            *severity == "error" && *kind != "profile_rule" && *kind != "other"
        })
        .map(|(kind, _)| *kind)
        .collect();
    if !relaxed.is_empty() {
        t.push_str("\n[severity]\n");
        for kind in &relaxed {
            let _ = writeln!(t, "{kind} = \"warning\"");
        }
    }
    for (id, s) in &p.segments {
        if id.len() != 3
            || !id
                .bytes()
                .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit())
        {
            let _ = writeln!(
                t,
                "\n# {:?}: {} lines that are not segments",
                id, s.occurrences
            );
            continue;
        }
        let defined = s.types.keys().max().copied().unwrap_or(0);
        let seen = s.fields.last();
        let bound = if defined > 0 {
            defined.max(seen)
        } else {
            seen + Z_SLACK
        };
        let _ = writeln!(
            t,
            "\n# {id}: {} occurrences in {} of {} messages",
            s.occurrences, s.messages, p.messages
        );
        for n in 1..=bound {
            if id == "MSH" && n <= 2 {
                continue;
            }
            let path = format!("{id}-{n}");
            match s.fields.get(&n) {
                None => {
                    let _ = writeln!(
                        t,
                        "[[rule]]\npath = \"{path}\"\nforbidden = true\nmessage = \"{path} was never seen in this feed\""
                    );
                }
                Some(f) => {
                    let _ = writeln!(
                        t,
                        "# {path}: populated {}/{}, lengths {}-{}",
                        f.populated, s.occurrences, f.min_length, f.max_length
                    );
                    if f.populated == s.occurrences && s.messages == p.messages {
                        let _ = writeln!(t, "[[rule]]\npath = \"{path}\"\nrequired = true");
                    }
                    let coded = crate::report::is_coded(s.types.get(&n).copied());
                    if coded
                        && f.overflow == 0
                        && f.repeated == 0
                        && f.values.len() <= MAX_VALUE_SET
                        && f.values.keys().all(|v| plain(v))
                    {
                        let mut values: Vec<&String> = f.values.keys().collect();
                        values.sort();
                        let list: Vec<String> = values.iter().map(|v| toml_string(v)).collect();
                        let _ = writeln!(
                            t,
                            "[[rule]]\npath = \"{path}.1\"\nallowed = [{}]\nseverity = \"warning\"",
                            list.join(", ")
                        );
                    }
                }
            }
        }
    }
    t
}

fn toml_string(text: &str) -> String {
    let mut out = String::from("\"");
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if c.is_control() => {
                let _ = write!(out, "\\u{:04X}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}
