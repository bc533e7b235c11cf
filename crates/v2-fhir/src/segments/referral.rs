//! REF/RRI referrals: RF1 to a ServiceRequest (the referral), PRD to its
//! requester and performers. The guide has no tables for them yet.

use hl7v2::Segment;
use serde_json::Value;

use crate::convert::Ctx;
use crate::datatypes::{self as dt, comp, reps, text};
use crate::error::ConvertError;
use crate::ids::stable_id;
use crate::json::Obj;

/// RF1 to ServiceRequest: RF1-1 status (table 0283), RF1-2 priority (0280),
/// RF1-3 referral type (0281) and RF1-5 category (0284) as category beside
/// SNOMED CT's "Patient referral", RF1-6 and RF1-11 identifiers, RF1-7/8
/// occurrence period, RF1-9 authoredOn, RF1-10 reason (0336).
pub fn rf1(ctx: &mut Ctx<'_>, seg: &Segment<'_>) -> Result<(), ConvertError> {
    let o = ctx.options;
    let f = |n: usize| seg.field(n);
    let at = |n: usize| {
        f(n).map(|e| dt::date_time_value(&comp(e, 1), o))
            .unwrap_or(Value::Null)
    };
    let mut r = Obj::new();
    let status = match f(1).map(|e| comp(e, 1)).as_deref() {
        Some("P") => "draft",
        Some("R") => "revoked",
        Some("E") => "completed",
        _ => "active",
    };
    r.set("status", status);
    r.set("intent", "order");
    if let Some(p) = match f(2).map(|e| comp(e, 1)).as_deref() {
        Some("S") => Some("stat"),
        Some("A") => Some("asap"),
        Some("R") => Some("routine"),
        _ => None,
    } {
        r.set("priority", p);
    }
    r.push(
        "category",
        Obj::new().with(
            "coding",
            vec![
                Obj::new()
                    .with("system", "http://snomed.info/sct")
                    .with("code", "3457005")
                    .with("display", "Patient referral")
                    .build(),
            ],
        ),
    );
    for (n, table) in [(3, "0281"), (5, "0284")] {
        if let Some(e) = f(n) {
            r.push("category", dt::coded(e, table, o));
        }
    }
    let originating = f(6)
        .map(|e| dt::typed_identifier(e, "PLAC", o))
        .unwrap_or(Value::Null);
    r.push("identifier", originating.clone());
    for ei in reps(f(11)) {
        r.push("identifier", dt::identifier_ei(ei, o));
    }
    r.set(
        "occurrencePeriod",
        Obj::new().with("start", at(7)).with("end", at(8)),
    );
    r.set("authoredOn", at(9));
    for reason in reps(f(10)) {
        r.push("reasonCode", dt::coded(reason, "0336", o));
    }
    let key = if originating.is_null() {
        ctx.message_key()
    } else {
        format!("referral|{originating}")
    };
    let id = ctx.record_id("ServiceRequest", &[&key]);
    let i = ctx.add("ServiceRequest", id, r);
    ctx.referral = Some(i);
    ctx.note_target = Some((i, "note"));
    Ok(())
}

/// PRD: a provider of the referral (PRD-2 name, PRD-3 address, PRD-5
/// telecom, PRD-7 identifier) as a Practitioner: the referring provider
/// (PRD-1 `RP`, table 0286) is the referral's requester, the others
/// (referred to, consulting, ...) its performers.
pub fn prd(ctx: &mut Ctx<'_>, seg: &Segment<'_>) -> Result<(), ConvertError> {
    let f = |n: usize| seg.field(n);
    let mut p = Obj::new();
    for xpn in reps(f(2)) {
        p.push("name", dt::human_name(xpn));
    }
    for xad in reps(f(3)) {
        p.push("address", dt::address(xad));
    }
    for xtn in reps(f(5)) {
        p.push("telecom", dt::contact_point(xtn, None));
    }
    let identifiers: Vec<String> = reps(f(7))
        .map(|pln| comp(pln, 1).trim().to_string())
        .filter(|v| !v.is_empty())
        .collect();
    for (n, value) in identifiers.iter().enumerate() {
        let type_code = f(7)
            .map(|e| comp(e.repetition(n + 1), 2).into_owned())
            .unwrap_or_default();
        // PLN.2: the kind of number, which names its system.
        let system = match type_code.trim() {
            "" => None,
            "NPI" => Some("http://hl7.org/fhir/sid/us-npi".to_string()),
            other => Some(format!(
                "{}/{}",
                ctx.options.identifier_base,
                dt::url_segment(other)
            )),
        };
        p.push(
            "identifier",
            Obj::new()
                .with("system", system.map(Value::from).unwrap_or(Value::Null))
                .with("value", value.as_str()),
        );
    }
    if p.is_empty() {
        return Ok(());
    }
    let key = match identifiers.first() {
        Some(v) => format!("prd|{v}"),
        None => format!("name|{}", f(2).map(text).unwrap_or_default()),
    };
    let id = stable_id("Practitioner", &[&key]);
    let i = ctx.add("Practitioner", id, p);
    let who = ctx.reference_to(i);
    let Some(referral) = ctx.referral else {
        return Ok(());
    };
    match f(1).map(|e| comp(e, 1)).as_deref() {
        Some("RP") | None | Some("") => ctx.set_on(referral, "requester", who),
        _ => ctx.push_on(referral, "performer", who),
    }
    Ok(())
}
