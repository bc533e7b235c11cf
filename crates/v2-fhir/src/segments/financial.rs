//! PID-18 to Account (`PID[Account]`), IN1 to Coverage (`IN1[Coverage]`),
//! GT1 to the Account's guarantor, FT1 to ChargeItem. GT1 and FT1 have no
//! guide tables yet; the choices are in the crate docs.

use hl7v2::{Element, Segment};
use serde_json::Value;

use crate::convert::Ctx;
use crate::datatypes::{self as dt, comp, reps, text};
use crate::error::ConvertError;
use crate::ids::stable_id;
use crate::json::Obj;
use crate::segments::patient::cx_key;
use crate::vocab::ConceptMap;

/// PID-18 patient account number: an Account for the patient.
pub fn account(ctx: &mut Ctx<'_>, cx: Element<'_>) {
    let Some(key) = cx_key(cx, ctx) else { return };
    let mut a = Obj::new();
    let mut identifier = match dt::identifier_cx(cx, ctx.options) {
        Value::Object(m) => Obj(m),
        _ => return,
    };
    if !identifier.has("type") {
        identifier.set("type", dt::identifier_type("AN"));
    }
    a.push("identifier", identifier);
    a.set("status", "active");
    let id = ctx.record_id("Account", &[&key]);
    let i = ctx.add("Account", id, a);
    ctx.account = Some(i);
}

/// IN1-17 (table 0063) to subscriber-relationship.
fn subscriber_relationship(code: &str) -> Option<&'static str> {
    match code {
        "SEL" => Some("self"),
        "SPO" | "DOM" => Some("spouse"),
        "CHD" | "FCH" | "SCH" | "GCH" => Some("child"),
        "" => None,
        _ => Some("other"),
    }
}

fn coverage_class(kind: &str, value: &str, name: &str) -> Value {
    if value.is_empty() {
        return Value::Null;
    }
    Obj::new()
        .with(
            "type",
            Obj::new().with(
                "coding",
                vec![
                    Obj::new()
                        .with(
                            "system",
                            "http://terminology.hl7.org/CodeSystem/coverage-class",
                        )
                        .with("code", kind)
                        .build(),
                ],
            ),
        )
        .with("value", value)
        .with("name", crate::json::string(name))
        .build()
}

/// `IN1[Coverage]`.
pub fn in1(ctx: &mut Ctx<'_>, seg: &Segment<'_>) -> Result<(), ConvertError> {
    let o = ctx.options;
    let f = |n: usize| seg.field(n);
    let mut c = Obj::new();
    c.set("status", "active");
    // IN1-36: identifier (policy number, type MB) and subscriberId
    let policy = f(36).map(|e| comp(e, 1)).unwrap_or_default();
    if !policy.is_empty() {
        c.push(
            "identifier",
            Obj::new()
                .with("type", dt::identifier_type("MB"))
                .with("value", &*policy),
        );
    }
    let subscriber = f(49)
        .map(|e| comp(e, 1))
        .filter(|s| !s.is_empty())
        .unwrap_or(policy.clone());
    c.text("subscriberId", &subscriber);
    // IN1-15: type (plan type, table 0086)
    if let Some(t) = f(15) {
        c.set("type", dt::table_concept(&comp(t, 1), "0086", None));
    }
    // IN1-17: relationship
    if let Some(r) = subscriber_relationship(&f(17).map(|e| comp(e, 1)).unwrap_or_default()) {
        c.set(
            "relationship",
            Obj::new().with(
                "coding",
                vec![
                    Obj::new()
                        .with(
                            "system",
                            "http://terminology.hl7.org/CodeSystem/subscriber-relationship",
                        )
                        .with("code", r)
                        .build(),
                ],
            ),
        );
    }
    // IN1-12/IN1-13: period
    let mut period = Obj::new();
    period.set(
        "start",
        f(12)
            .map(|e| dt::date_time_value(&comp(e, 1), o))
            .unwrap_or(Value::Null),
    );
    period.set(
        "end",
        f(13)
            .map(|e| dt::date_time_value(&comp(e, 1), o))
            .unwrap_or(Value::Null),
    );
    c.set("period", period);
    // IN1-2: class (plan); IN1-8/IN1-9: class (group)
    let plan = f(2).map(|e| comp(e, 1)).unwrap_or_default();
    let plan_name = f(2).map(|e| comp(e, 2)).unwrap_or_default();
    c.push("class", coverage_class("plan", &plan, &plan_name));
    let group = f(8).map(|e| comp(e, 1)).unwrap_or_default();
    let group_name = f(9).map(|e| comp(e, 1)).unwrap_or_default();
    c.push("class", coverage_class("group", &group, &group_name));
    // IN1-1: order
    if let Some(n) = f(1)
        .map(text)
        .and_then(|t| t.parse::<u32>().ok())
        .filter(|n| *n > 0)
    {
        c.set("order", n);
    }
    // IN1-3 company id, IN1-4 company name: payor
    let company_id = f(3)
        .map(|e| dt::identifier_cx(e.repetition(1), o))
        .unwrap_or(Value::Null);
    let company_name = f(4).map(|e| comp(e, 1)).unwrap_or_default();
    let payor = ctx.organization(&company_name, company_id.clone());
    let patient = ctx
        .patient
        .map(|p| ctx.entries[p].id.clone())
        .unwrap_or_default();
    let key = if policy.is_empty() {
        format!("{patient}|{}|{}|{plan}", company_id, company_name)
    } else {
        format!("{}|{company_name}|{policy}", company_id)
    };
    let id = ctx.record_id("Coverage", &[&key]);
    let i = ctx.add("Coverage", id, c);
    ctx.coverage = Some(i);
    if let Some(p) = payor {
        ctx.push_on(i, "payor", p);
    }
    // IN1-16 to IN1-19, IN1-43, IN1-49: the subscriber, the Patient itself
    // when IN1-17 is SEL, else a RelatedPerson.
    ctx.insured = insured(ctx, seg);
    if let Some(s) = ctx.insured {
        let r = ctx.reference_to(s);
        ctx.set_on(i, "subscriber", r);
    }
    if let Some(a) = ctx.account {
        let r = ctx.reference_to(i);
        ctx.push_on(a, "coverage", Obj::new().with("coverage", r));
    }
    Ok(())
}

/// GT1: the guarantor of the Account: the Patient when GT1-11 is `SEL`,
/// else a RelatedPerson (GT1-2 number and GT1-12 SSN as identifiers, GT1-3
/// name, GT1-5 address, GT1-6/7 phones, GT1-8 birth date, GT1-9 sex, GT1-11
/// relationship).
pub fn gt1(ctx: &mut Ctx<'_>, seg: &Segment<'_>) -> Result<(), ConvertError> {
    let o = ctx.options;
    let f = |n: usize| seg.field(n);
    let relationship = f(11).map(|e| comp(e, 1)).unwrap_or_default();
    let party = if relationship == "SEL" {
        ctx.patient_reference()
    } else {
        let mut rp = Obj::new();
        for cx in reps(f(2)) {
            rp.push("identifier", dt::identifier_cx(cx, o));
        }
        // GT1-12: the guarantor's SSN
        let ssn = f(12).map(|e| comp(e, 1)).unwrap_or_default();
        if !ssn.trim().is_empty() {
            rp.push(
                "identifier",
                Obj::new()
                    .with("type", dt::identifier_type("SS"))
                    .with("system", "http://hl7.org/fhir/sid/us-ssn")
                    .with("value", ssn.trim()),
            );
        }
        for xpn in reps(f(3)) {
            rp.push("name", dt::human_name(xpn));
        }
        for xad in reps(f(5)) {
            rp.push("address", dt::address(xad));
        }
        for (n, use_) in [(6, Some("home")), (7, Some("work"))] {
            for xtn in reps(f(n)) {
                rp.push("telecom", dt::contact_point(xtn, use_));
            }
        }
        rp.set(
            "birthDate",
            f(8).map(|e| dt::date_value(&comp(e, 1)))
                .unwrap_or(Value::Null),
        );
        if let Some(c) = f(9).and_then(|e| ConceptMap::AdministrativeSex.lookup(&comp(e, 1))) {
            rp.set("gender", c.code.as_str());
        }
        if let Some(rel) = f(11) {
            rp.push(
                "relationship",
                dt::mapped_concept(rel, ConceptMap::Relationship, "0063", o),
            );
        }
        if rp.is_empty() {
            return Ok(());
        }
        let Some(patient) = ctx.patient_reference() else {
            return Ok(());
        };
        let patient_id = ctx
            .patient
            .map(|p| ctx.entries[p].id.clone())
            .unwrap_or_default();
        let key = reps(f(2))
            .find_map(|cx| cx_key(cx, ctx))
            .unwrap_or_else(|| {
                format!(
                    "{patient_id}|guarantor|{}",
                    f(3).map(text).unwrap_or_default()
                )
            });
        rp.set("patient", patient);
        let id = stable_id("RelatedPerson", &[&key]);
        let i = ctx.add("RelatedPerson", id, rp);
        Some(ctx.reference_to(i))
    };
    if let (Some(a), Some(party)) = (ctx.account, party) {
        ctx.push_on(a, "guarantor", Obj::new().with("party", party));
    }
    Ok(())
}

/// FT1 to ChargeItem: FT1-7 code, FT1-4 occurrence, FT1-5 entered date,
/// FT1-10 quantity, FT1-11 price, FT1-19 reason, FT1-20 performer, FT1-29
/// product.
pub fn ft1(ctx: &mut Ctx<'_>, seg: &Segment<'_>) -> Result<(), ConvertError> {
    let o = ctx.options;
    let f = |n: usize| seg.field(n);
    let mut c = Obj::new();
    let transaction_id = f(2).map(text).unwrap_or_default();
    if !transaction_id.is_empty() {
        c.push("identifier", Obj::new().with("value", &*transaction_id));
    }
    c.set("status", "billable");
    let code = f(7)
        .map(|e| dt::codeable_concept(e, o))
        .unwrap_or(Value::Null);
    let code = if code.is_null() {
        let description = f(8).map(text).unwrap_or_default();
        Obj::new()
            .with(
                "text",
                if description.is_empty() {
                    "unknown".to_string()
                } else {
                    description.into_owned()
                },
            )
            .build()
    } else {
        code
    };
    c.set("code", code);
    if let Some(dr) = f(4) {
        let start = dt::date_time_value(&sub_first(dr, 1), o);
        let end = dt::date_time_value(&sub_first(dr, 2), o);
        if end.is_null() || end == start {
            c.set("occurrenceDateTime", start);
        } else {
            c.set(
                "occurrencePeriod",
                Obj::new().with("start", start).with("end", end),
            );
        }
    }
    c.set(
        "enteredDate",
        f(5).map(|e| dt::date_time_value(&comp(e, 1), o))
            .unwrap_or(Value::Null),
    );
    if let Some(q) = f(10).and_then(|e| dt::decimal(&comp(e, 1))) {
        c.set("quantity", Obj::new().with("value", q));
    }
    if let Some(price) = f(11) {
        if let Some(v) = dt::decimal(&dt::sub(price, 1, 1)) {
            let sent = dt::sub(price, 1, 2);
            let currency = if sent.len() == 3 && sent.bytes().all(|b| b.is_ascii_uppercase()) {
                Some(sent.into_owned())
            } else {
                message_currency(ctx).map(str::to_string)
            };
            c.set(
                "priceOverride",
                Obj::new()
                    .with("value", v)
                    .with("currency", currency.map(Value::from).unwrap_or(Value::Null)),
            );
        }
    }
    for r in reps(f(19)) {
        c.push("reason", dt::codeable_concept(r, o));
    }
    if let Some(p) = f(29) {
        c.set("productCodeableConcept", dt::codeable_concept(p, o));
    }
    if let Some(a) = ctx.account {
        c.push("account", ctx.reference_to(a));
    }
    let key = if transaction_id.is_empty() {
        ctx.message_key()
    } else {
        format!("{}|{}", ctx.sender, transaction_id)
    };
    let id = ctx.record_id("ChargeItem", &[&key]);
    let i = ctx.add("ChargeItem", id, c);
    if let Some(r) = ctx.practitioner_field(f(20)) {
        ctx.push_on(i, "performer", Obj::new().with("actor", r));
    }
    ctx.note_target = Some((i, "note"));
    Ok(())
}

/// The currency of amounts sent without a denomination (MO.2): the one of
/// the country the message says it is from (MSH-17, ISO 3166), when that
/// country has a single currency this table knows.
fn message_currency(ctx: &Ctx<'_>) -> Option<&'static str> {
    let country = ctx.msg.segment(0).field(17).map(|e| comp(e, 1))?;
    let currency = match country.to_ascii_uppercase().as_str() {
        "USA" | "US" => "USD",
        "CAN" | "CA" => "CAD",
        "GBR" | "GB" => "GBP",
        "AUS" | "AU" => "AUD",
        "NZL" | "NZ" => "NZD",
        "CHE" | "CH" => "CHF",
        "AUT" | "AT" | "BEL" | "BE" | "DEU" | "DE" | "ESP" | "ES" | "FIN" | "FI" | "FRA" | "FR"
        | "IRL" | "IE" | "ITA" | "IT" | "LUX" | "LU" | "NLD" | "NL" | "PRT" | "PT" => "EUR",
        _ => return None,
    };
    Some(currency)
}

/// The first subcomponent-level text of component `n` (DR inside a field).
fn sub_first(e: Element<'_>, n: usize) -> String {
    dt::sub(e, n, 1).into_owned()
}

/// `IN1[Coverage]` subscriber: the Patient when IN1-17 is `SEL`, else a
/// RelatedPerson of the patient (IN1-16 name, IN1-17 relationship, IN1-18
/// birth date, IN1-19 address, IN1-43 sex, IN1-49 identifier).
fn insured(ctx: &mut Ctx<'_>, seg: &Segment<'_>) -> Option<usize> {
    let o = ctx.options;
    let f = |n: usize| seg.field(n);
    let p = ctx.patient?;
    let relationship = f(17).map(|e| comp(e, 1)).unwrap_or_default();
    if relationship == "SEL" {
        return Some(p);
    }
    let mut rp = Obj::new();
    for xpn in reps(f(16)) {
        rp.push("name", dt::human_name(xpn));
    }
    if !rp.has("name") {
        return None;
    }
    for cx in reps(f(49)) {
        rp.push("identifier", dt::identifier_cx(cx, o));
    }
    if let Some(rel) = f(17) {
        rp.push(
            "relationship",
            dt::mapped_concept(rel, ConceptMap::Relationship, "0063", o),
        );
    }
    rp.set(
        "birthDate",
        f(18)
            .map(|e| dt::date_value(&comp(e, 1)))
            .unwrap_or(Value::Null),
    );
    for xad in reps(f(19)) {
        rp.push("address", dt::address(xad));
    }
    if let Some(c) = f(43).and_then(|e| ConceptMap::AdministrativeSex.lookup(&comp(e, 1))) {
        rp.set("gender", c.code.as_str());
    }
    rp.set("patient", ctx.reference_to(p));
    let key = reps(f(49))
        .find_map(|cx| cx_key(cx, ctx))
        .unwrap_or_else(|| {
            format!(
                "{}|insured|{}",
                ctx.entries[p].id,
                f(16).map(text).unwrap_or_default()
            )
        });
    let id = stable_id("RelatedPerson", &[&key]);
    Some(ctx.add("RelatedPerson", id, rp))
}

/// IN2: identifiers of the insured of the IN1 before it (IN2-1 employee
/// number, IN2-2 SSN, IN2-6 Medicare and IN2-8 Medicaid numbers), and
/// IN2-61 the patient's member number on the Patient.
pub fn in2(ctx: &mut Ctx<'_>, seg: &Segment<'_>) -> Result<(), ConvertError> {
    let o = ctx.options;
    let f = |n: usize| seg.field(n);
    if let Some(insured) = ctx.insured {
        for (n, type_code, system) in [
            (1, "EI", None),
            (2, "SS", Some("http://hl7.org/fhir/sid/us-ssn")),
            (6, "MC", None),
            (8, "MA", None),
        ] {
            let value = f(n).map(|e| comp(e, 1)).unwrap_or_default();
            if value.trim().is_empty() {
                continue;
            }
            let mut identifier = match f(n).map(|e| dt::identifier_cx(e.repetition(1), o)) {
                Some(Value::Object(m)) if n == 1 => Obj(m),
                _ => Obj::new().with("value", value.trim()),
            };
            if let Some(system) = system {
                identifier.set("system", system);
            }
            if !identifier.has("type") {
                identifier.set("type", dt::identifier_type(type_code));
            }
            ctx.push_on(insured, "identifier", identifier);
        }
    }
    if let Some(p) = ctx.patient {
        for cx in reps(f(61)) {
            let mut identifier = match dt::identifier_cx(cx, o) {
                Value::Object(m) => Obj(m),
                _ => continue,
            };
            if !identifier.has("type") {
                identifier.set("type", dt::identifier_type("MB"));
            }
            ctx.push_on(p, "identifier", identifier);
        }
    }
    Ok(())
}

/// `IN3[CareTeam]`: the certification of the IN1 before it as a CareTeam
/// of the patient: IN3-2 certification number, IN3-9/10 period, IN3-3
/// certifier, IN3-14 physician reviewer and IN3-21 case manager as
/// participants (their role as text: the guide names no code system).
pub fn in3(ctx: &mut Ctx<'_>, seg: &Segment<'_>) -> Result<(), ConvertError> {
    let o = ctx.options;
    let f = |n: usize| seg.field(n);
    let Some(patient) = ctx.patient_reference() else {
        return Ok(());
    };
    let mut team = Obj::new();
    let number = f(2).map(|e| dt::identifier_cx(e.repetition(1), o));
    team.push("identifier", number.clone().unwrap_or(Value::Null));
    team.set("subject", patient);
    team.set(
        "period",
        Obj::new()
            .with(
                "start",
                f(9).map(|e| dt::date_time_value(&comp(e, 1), o))
                    .unwrap_or(Value::Null),
            )
            .with(
                "end",
                f(10)
                    .map(|e| dt::date_time_value(&comp(e, 1), o))
                    .unwrap_or(Value::Null),
            ),
    );
    team.text("name", "Insurance certification");
    let key = match &number {
        Some(n) if !n.is_null() => n.to_string(),
        _ => ctx.message_key(),
    };
    let id = ctx.record_id("CareTeam", &[&key]);
    let i = ctx.add("CareTeam", id, team);
    for (n, role) in [
        (3, "certifier"),
        (14, "physician reviewer"),
        (21, "case manager"),
    ] {
        if let Some(member) = ctx.practitioner_field(f(n)) {
            ctx.push_on(
                i,
                "participant",
                Obj::new()
                    .with("role", vec![Obj::new().with("text", role).build()])
                    .with("member", member),
            );
        }
    }
    if let Some(c) = ctx.coverage {
        let r = ctx.reference_to(i);
        ctx.push_on(
            c,
            "extension",
            Obj::new()
                .with(
                    "url",
                    format!(
                        "{}/StructureDefinition/coverage-certification",
                        o.identifier_base
                    ),
                )
                .with("valueReference", r),
        );
    }
    Ok(())
}
