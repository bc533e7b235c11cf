//! From an HL7 v2 message to the index: PID onto a [`PatientRecord`], and the ADT
//! events that merge or unmerge.
//!
//! **Which source record a PID is.** The record's key is the identifier in PID-3 that
//! names the patient within its issuer: the first repetition of type `MR` (else `PI`,
//! `PT`, else the first with a value), keyed by its assigning authority and its value.
//! The authority is named as the FHIR conversion names it ([`crate::identity`]): the
//! universal id CX-4.2 when it is an OID, UUID or URI, else the namespace CX-4.1, so
//! `MRN^^^HOSP&1.2.3&ISO` is source `1.2.3`, whose system is `urn:oid:1.2.3` on the
//! FHIR Patient and in the index's FHIR answers. The assigning authority,
//! not MSH-3/MSH-4, names the source because it is what makes the number unique: two
//! applications of one hospital sending the same MRN are one source record, and one
//! interface relaying several hospitals' patients keeps them apart. Only when that CX
//! carries no assigning authority does the source fall back to the sender,
//! `MSH-3@MSH-4` (e.g. `ADT@NORTH`), which the FHIR conversion also uses as that
//! identifier's system. Every PID-3 repetition with value, authority and
//! type is kept as an [`Identifier`]; a bare number is never linked on.
//!
//! Other fields: PID-5 (the legal name `L`, else the first: family XPN-1.1, given
//! XPN-2, middle XPN-3, suffix XPN-4), PID-7 (first 8 digits), PID-8, PID-11 (street XAD-1.1, other
//! designation XAD-2, city, state, postcode, country), PID-13 (XTN-1, else XTN-12, else
//! area code and local number), PID-19 (else a PID-3 repetition of type `SS`).

use crate::{Identifier, PatientRecord, Sex, SourceKey};
use hl7v2::{Element, Message, Segment};

/// What a message asks of the index.
#[derive(Debug, Clone, PartialEq)]
pub enum MessageAction {
    /// Add or update the patient (A01, A04, A05, A08, A28, A31 and any other message
    /// with a PID).
    Ingest(PatientRecord),
    /// A40, A34, A39 (and A18, A30, A35, A36): `survivor` (from PID) absorbs each record
    /// MRG-1 names.
    Merge {
        survivor: PatientRecord,
        retired: Vec<SourceKey>,
    },
    /// A37: undo the merge (or link) of `retired` (MRG-1, or the second PID) into
    /// `survivor`.
    Unmerge {
        survivor: PatientRecord,
        retired: Vec<SourceKey>,
    },
}

/// Why a message could not be read for the index.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum MappingError {
    #[error("PID-3 holds no patient identifier")]
    NoIdentifier,
    #[error("MRG-1 holds no prior patient identifier")]
    NoPriorIdentifier,
}

fn text(e: Element<'_>) -> Option<String> {
    let t = e.text();
    let t = t.trim();
    (!t.is_empty() && t != "\"\"").then(|| t.to_string())
}

/// The authority of a CX (or other HD-valued component), named as the FHIR
/// conversion names it ([`crate::identity::authority_name`]): the universal id when
/// it is an OID, UUID or URI, else the namespace.
fn authority(cx: Element<'_>) -> Option<String> {
    let hd = cx.component(4);
    let part = |n| text(hd.subcomponent(n)).unwrap_or_default();
    let (namespace, universal_id, kind) = (part(1), part(2), part(3));
    crate::identity::authority_name(&namespace, &universal_id, &kind).map(|n| n.into_owned())
}

fn cx_list(field: Option<Element<'_>>) -> Vec<(String, Option<String>, Option<String>)> {
    let Some(field) = field else {
        return Vec::new();
    };
    field
        .children()
        .filter_map(|rep| {
            let value = text(rep.component(1))?;
            Some((value, authority(rep), text(rep.component(5))))
        })
        .collect()
}

/// The sender, `MSH-3@MSH-4`, the source of last resort.
fn sender(message: &Message<'_>) -> String {
    let msh = message.find_segment(b"MSH", 1);
    let part = |n| {
        msh.as_ref()
            .and_then(|s| s.field(n))
            .and_then(|f| text(f.component(1)))
            .unwrap_or_default()
    };
    crate::identity::sender_name(&part(3), &part(4))
}

/// Picks the CX that keys the source record: MR, else PI, else PT, else the first.
fn key_of(cxs: &[(String, Option<String>, Option<String>)], fallback: &str) -> Option<SourceKey> {
    let pick = ["MR", "PI", "PT"]
        .iter()
        .find_map(|t| cxs.iter().find(|c| c.2.as_deref() == Some(t)))
        .or_else(|| cxs.first())?;
    Some(SourceKey::new(
        pick.1.clone().unwrap_or_else(|| fallback.to_string()),
        pick.0.clone(),
    ))
}

/// Maps one PID segment onto a source record.
pub fn record_from_pid(
    pid: &Segment<'_>,
    fallback_source: &str,
) -> Result<PatientRecord, MappingError> {
    let cxs = cx_list(pid.field(3));
    let key = key_of(&cxs, fallback_source).ok_or(MappingError::NoIdentifier)?;
    let mut r = PatientRecord::new(key.source, key.id);
    for (value, auth, type_code) in &cxs {
        if let (Some(a), Some(t)) = (auth, type_code) {
            let id = Identifier::new(value.clone(), a.clone(), t.clone());
            if !r.identifiers.contains(&id) {
                r.identifiers.push(id);
            }
        }
    }
    if let Some(names) = pid.field(5) {
        let reps: Vec<Element<'_>> = names.children().collect();
        let legal = reps
            .iter()
            .find(|n| text(n.component(7)).as_deref() == Some("L"))
            .or_else(|| reps.iter().find(|n| !n.is_empty()));
        if let Some(n) = legal {
            r.family = text(n.component(1).subcomponent(1));
            r.given = text(n.component(2));
            r.middle = text(n.component(3));
            r.suffix = text(n.component(4));
        }
    }
    r.birth_date = pid.field(7).and_then(|f| text(f.component(1))).map(|d| {
        let digits: String = d.chars().filter(char::is_ascii_digit).take(8).collect();
        if digits.is_empty() { d } else { digits }
    });
    r.sex = pid
        .field(8)
        .and_then(|f| text(f.component(1)))
        .map(|s| Sex::from_code(&s));
    if let Some(address) = pid.field(11).map(|f| f.repetition(1)) {
        r.street = text(address.component(1).subcomponent(1));
        r.street2 = text(address.component(2));
        r.city = text(address.component(3));
        r.state = text(address.component(4));
        r.postcode = text(address.component(5));
        r.country = text(address.component(6));
    }
    if let Some(phone) = pid.field(13).map(|f| f.repetition(1)) {
        r.phone = text(phone.component(1))
            .or_else(|| text(phone.component(12)))
            .or_else(
                || match (text(phone.component(6)), text(phone.component(7))) {
                    (Some(a), Some(l)) => Some(format!("{a}{l}")),
                    (a, l) => a.or(l),
                },
            );
    }
    r.ssn = pid
        .field(19)
        .and_then(|f| text(f.component(1)))
        .or_else(|| {
            cxs.iter()
                .find(|c| c.2.as_deref() == Some("SS"))
                .map(|c| c.0.clone())
        });
    Ok(r)
}

/// The trigger event (MSH-9.2), e.g. `A40`.
pub fn trigger_event(message: &Message<'_>) -> String {
    message
        .find_segment(b"MSH", 1)
        .and_then(|s| s.field(9))
        .and_then(|f| text(f.component(2)))
        .unwrap_or_default()
}

/// What `message` asks of the index, or `None` when it has no PID.
pub fn action_of(message: &Message<'_>) -> Result<Option<MessageAction>, MappingError> {
    let Some(pid) = message.find_segment(b"PID", 1) else {
        return Ok(None);
    };
    let fallback = sender(message);
    let survivor = record_from_pid(&pid, &fallback)?;
    let prior_of = |mrg: &Segment<'_>| -> Result<Vec<SourceKey>, MappingError> {
        let cxs = cx_list(mrg.field(1));
        let key = key_of(&cxs, &survivor.source).ok_or(MappingError::NoPriorIdentifier)?;
        Ok(vec![key])
    };
    match trigger_event(message).as_str() {
        "A40" | "A34" | "A39" | "A18" | "A30" | "A35" | "A36" | "A41" | "A42" => {
            let mut retired = Vec::new();
            let mut n = 1;
            while let Some(mrg) = message.find_segment(b"MRG", n) {
                retired.extend(prior_of(&mrg)?);
                n += 1;
            }
            if retired.is_empty() {
                return Err(MappingError::NoPriorIdentifier);
            }
            Ok(Some(MessageAction::Merge { survivor, retired }))
        }
        "A37" => {
            let mut retired = Vec::new();
            if let Some(mrg) = message.find_segment(b"MRG", 1) {
                retired.extend(prior_of(&mrg)?);
            } else if let Some(second) = message.find_segment(b"PID", 2) {
                retired.push(record_from_pid(&second, &fallback)?.key());
            }
            if retired.is_empty() {
                return Err(MappingError::NoPriorIdentifier);
            }
            Ok(Some(MessageAction::Unmerge { survivor, retired }))
        }
        _ => Ok(Some(MessageAction::Ingest(survivor))),
    }
}
