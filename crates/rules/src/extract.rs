//! Reading clinical facts out of an HL7 v2 message: OBX results with their
//! OBR's context, AL1/IAM allergies, RXO/RXE/RXD pharmacy orders with their
//! RXC components, and ORC/OBR test orders.

use std::collections::HashMap;

use hl7v2::{Message, Segment};

use crate::facts::{
    AbnormalFlag, Allergy, AllergyStatus, ClinicalFacts, Code, Finding, LOINC, MedicationOrder,
    Observation, ObservationStatus, ObservationValue, OrderState, Source, TestOrder,
};
use crate::time::Timestamp;
use crate::units::{Quantity, to_rule_unit};
use datetime::Zone;

/// The OBR (and ORC) a result or order sits under.
#[derive(Default)]
struct OrderContext {
    order_code: Option<Code>,
    observed_at: Option<Timestamp>,
    requested_at: Option<Timestamp>,
    order_control: Option<String>,
    transaction_at: Option<Timestamp>,
    /// ORC-2, the placer order number of the order group.
    orc_placer: Option<String>,
    /// OBR-2, else ORC-2.
    placer: Option<String>,
}

/// Reads every fact the rules use from `message`. Values that cannot be
/// read (a number that is not one, an unknown unit for a code the rules
/// compare) become [`Finding`]s, never panics. Times without an offset take
/// MSH-7's, else UTC: [`extract_in`] with no configured zone.
pub fn extract(message: &Message<'_>) -> ClinicalFacts {
    extract_in(message, None)
}

/// The zone a message's times without an offset are read in, by the rule the
/// FHIR conversion follows (`v2_fhir`): MSH-7's offset when it has one, else
/// `configured` (the channel's `fhir.timezone`), else UTC (`None`).
pub fn message_zone(message: &Message<'_>, configured: Option<&Zone>) -> Option<Zone> {
    let msh7 = message.get_str("MSH-7").ok().flatten();
    msh7.as_deref()
        .and_then(datetime::hl7::parse)
        .and_then(|t| t.offset)
        .map(Zone::Fixed)
        .or_else(|| configured.cloned())
}

/// [`extract`], with times sent without an offset read in the zone
/// [`message_zone`] gives for `configured`, so the message's facts and the
/// repository's resources (converted by the same rule) name the same instants.
pub fn extract_in(message: &Message<'_>, configured: Option<&Zone>) -> ClinicalFacts {
    let zone = message_zone(message, configured);
    let zone = zone.as_ref();
    let time = |segment: &Segment<'_>, field: usize| {
        Timestamp::parse_hl7_in(&component(segment, field, 1), zone)
    };
    let control_id = message.control_id().into_owned();
    let message_time = message
        .get_str("MSH-7")
        .ok()
        .flatten()
        .and_then(|t| Timestamp::parse_hl7_in(&t, zone));
    let message_type = message
        .get_str("MSH-9.1")
        .ok()
        .flatten()
        .map(|t| t.into_owned())
        .unwrap_or_default();
    let mut facts = ClinicalFacts::default();
    let mut seen: HashMap<String, usize> = HashMap::new();
    let mut context = OrderContext::default();
    // The medication order that RXC components belong to.
    let mut current_medication: Option<usize> = None;

    for segment in message.segments() {
        let name = segment.name_str().to_owned();
        let occurrence = {
            let n = seen.entry(name.clone()).or_insert(0);
            *n += 1;
            *n
        };
        let at = |field: usize| Source {
            control_id: control_id.clone(),
            segment: format!("{name}[{occurrence}]"),
            field: format!("{name}[{occurrence}]-{field}"),
        };
        match name.as_str() {
            "ORC" => {
                context = OrderContext {
                    order_control: non_empty(component(&segment, 1, 1)),
                    transaction_at: time(&segment, 9),
                    orc_placer: non_empty(component(&segment, 2, 1)),
                    ..OrderContext::default()
                };
                current_medication = None;
            }
            "OBR" => {
                context.order_code = coded(&segment, 4);
                context.observed_at = time(&segment, 7);
                context.requested_at = time(&segment, 6);
                // OBR-2, else the ORC's: never an earlier OBR's.
                context.placer =
                    non_empty(component(&segment, 2, 1)).or_else(|| context.orc_placer.clone());
                if let Some(code) = context.order_code.clone() {
                    let state = match (message_type.as_str(), context.order_control.as_deref()) {
                        (_, Some("CA" | "OC" | "CR" | "DC" | "OD")) => OrderState::Cancelled,
                        ("ORU" | "OUL", _) => OrderState::Resulted,
                        _ => OrderState::Ordered,
                    };
                    facts.test_orders.push(TestOrder {
                        code,
                        time: context
                            .transaction_at
                            .or(context.requested_at)
                            .or(context.observed_at)
                            .or(message_time),
                        placer_order_number: context.placer.clone(),
                        state,
                        source: at(4),
                    });
                }
            }
            "OBX" => match observation(&segment, &context, time(&segment, 14), message_time, at(5))
            {
                Ok((obs, finding)) => {
                    facts.findings.extend(finding);
                    facts.observations.push(obs);
                }
                Err(finding) => facts.findings.push(finding),
            },
            "AL1" => {
                if let Some(code) = coded(&segment, 3) {
                    facts.allergies.push(Allergy {
                        code,
                        group: None,
                        allergy_type: component(&segment, 2, 1),
                        status: AllergyStatus::Active,
                        source: at(3),
                    });
                }
            }
            "IAM" => {
                if let Some(code) = coded(&segment, 3) {
                    let deleted = component(&segment, 6, 1) == "D";
                    let in_error = component(&segment, 17, 1) == "E";
                    facts.allergies.push(Allergy {
                        code,
                        group: coded(&segment, 10),
                        allergy_type: component(&segment, 2, 1),
                        status: if deleted || in_error {
                            AllergyStatus::Inactive
                        } else {
                            AllergyStatus::Active
                        },
                        source: at(3),
                    });
                }
            }
            // The give code of a pharmacy order (RXO-1), encoded order
            // (RXE-2) or dispense (RXD-2).
            "RXO" | "RXE" | "RXD" => {
                let field = if name == "RXO" { 1 } else { 2 };
                if let Some(code) = coded(&segment, field) {
                    // An RDE's RXO echoes the order its RXE encodes: one
                    // medication, read from the RXE.
                    if name == "RXE"
                        && let Some(i) = current_medication
                        && facts.medication_orders[i].source.segment.starts_with("RXO")
                    {
                        facts.medication_orders[i].code = code;
                        facts.medication_orders[i].source = at(field);
                        continue;
                    }
                    current_medication = Some(facts.medication_orders.len());
                    facts.medication_orders.push(MedicationOrder {
                        code,
                        ingredients: Vec::new(),
                        order_control: context.order_control.clone(),
                        time: context.transaction_at.or(message_time),
                        source: at(field),
                    });
                }
            }
            "RXC" => {
                if let (Some(i), Some(code)) = (current_medication, coded(&segment, 2)) {
                    facts.medication_orders[i].ingredients.push(code);
                }
            }
            _ => {}
        }
    }
    facts
}

fn observation(
    segment: &Segment<'_>,
    context: &OrderContext,
    observed_at: Option<Timestamp>,
    message_time: Option<Timestamp>,
    source: Source,
) -> Result<(Observation, Option<Finding>), Finding> {
    let problem = |text: String| Finding {
        source: source.clone(),
        problem: text,
    };
    let code = coded(segment, 3).ok_or_else(|| problem("OBX-3 has no code".to_owned()))?;
    let value_type = component(segment, 2, 1);
    let Some(raw) = segment.field(5).map(|f| f.repetition(1)) else {
        return Err(problem("OBX-5 is absent".to_owned()));
    };
    let unit = {
        let (id, text) = (component(segment, 6, 1), component(segment, 6, 2));
        if id.is_empty() {
            text
        } else if id.ends_with("10") && text.starts_with(|c: char| c.is_ascii_digit()) {
            // `10^9/L` sent without escaping its caret reads as the
            // components `10` and `9/L`: senders do this, and the unit is
            // not in doubt.
            format!("{id}^{text}")
        } else {
            id
        }
    };
    let mut finding = None;
    let value = match value_type.as_str() {
        // SN: comparator ^ number (`>^6.5`); the number is the value.
        "SN" => {
            let number = raw.component(2).text();
            match parse_number(&number) {
                Some(value) => ObservationValue::Quantity(Quantity { value, unit }),
                None => return Err(problem(format!("OBX-5 `{}` is not a number", raw.text()))),
            }
        }
        "NM" => {
            let text = raw.text();
            match parse_number(&text) {
                Some(value) => ObservationValue::Quantity(Quantity { value, unit }),
                None if text.trim().is_empty() || raw.is_null() => {
                    ObservationValue::Text(String::new())
                }
                None => return Err(problem(format!("OBX-5 `{text}` is not a number"))),
            }
        }
        _ => ObservationValue::Text(raw.text().into_owned()),
    };
    let normalised = match (&value, code.system.as_str()) {
        (ObservationValue::Quantity(q), LOINC) => {
            match to_rule_unit(&code.code, q.value, &q.unit) {
                Ok(Some(n)) => Some(n),
                Ok(None) => Some(q.clone()),
                Err(text) => {
                    finding = Some(problem(text));
                    None
                }
            }
        }
        (ObservationValue::Quantity(q), _) => Some(q.clone()),
        _ => None,
    };
    let flags = segment
        .field(8)
        .map(|f| {
            f.children()
                .map(|r| r.component(1).text().trim().to_owned())
                .filter(|t| !t.is_empty())
                .map(|t| AbnormalFlag::from_hl7(&t))
                .collect()
        })
        .unwrap_or_default();
    let observation = Observation {
        code,
        value,
        normalised,
        flags,
        effective: observed_at.or(context.observed_at).or(message_time),
        status: ObservationStatus::from_hl7(&component(segment, 11, 1)),
        order_code: context.order_code.clone(),
        source,
    };
    Ok((observation, finding))
}

/// A decimal number as v2 writes it (`6.5`, `+6.5`, `.5`); `<`/`>` prefixes
/// on a text value are dropped, the bound read as the value.
fn parse_number(text: &str) -> Option<f64> {
    let t = text.trim().trim_start_matches(['<', '>', '=']).trim();
    if t.is_empty()
        || !t
            .bytes()
            .all(|b| b.is_ascii_digit() || matches!(b, b'.' | b'-' | b'+'))
    {
        return None;
    }
    t.parse::<f64>().ok().filter(|v| v.is_finite())
}

/// Field `field`, first repetition, component `n`, as text.
fn component(segment: &Segment<'_>, field: usize, n: usize) -> String {
    segment
        .field(field)
        .map(|f| f.repetition(1).component(n).text().trim().to_owned())
        .unwrap_or_default()
}

fn non_empty(text: String) -> Option<String> {
    (!text.is_empty()).then_some(text)
}

/// A CE/CWE field: the first triplet, or the alternate one (components
/// 4-6) when it is LOINC or RxNorm and the first is not, so results coded
/// locally with a standard alternate are still recognised.
fn coded(segment: &Segment<'_>, field: usize) -> Option<Code> {
    let primary = Code::new(
        &component(segment, field, 3),
        &component(segment, field, 1),
        &component(segment, field, 2),
    );
    let alternate = Code::new(
        &component(segment, field, 6),
        &component(segment, field, 4),
        &component(segment, field, 5),
    );
    let standard = |c: &Code| c.system == LOINC || c.system == crate::facts::RXNORM;
    if !alternate.code.is_empty() && standard(&alternate) && !standard(&primary) {
        return Some(alternate);
    }
    if primary.code.is_empty() && primary.text.is_empty() {
        return None;
    }
    Some(primary)
}
