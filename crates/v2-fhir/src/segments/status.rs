//! The patient's state around an encounter: ACC (accident), PDA (death and
//! autopsy) and DB1 (disability). The guide has no tables for them yet;
//! each becomes an Observation of the patient (LOINC codes where LOINC has
//! one) and the choices are listed in the crate docs.

use hl7v2::Segment;
use serde_json::Value;

use crate::convert::Ctx;
use crate::datatypes::{self as dt, comp, reps, text};
use crate::error::ConvertError;
use crate::json::{Obj, string};

const LOINC: &str = "http://loinc.org";

fn loinc(code: &str, display: &str) -> Value {
    Obj::new()
        .with(
            "coding",
            vec![
                Obj::new()
                    .with("system", LOINC)
                    .with("code", code)
                    .with("display", display)
                    .build(),
            ],
        )
        .with("text", display)
        .build()
}

/// A component known by its name only (no code system names these parts).
fn component(name: &str, value_key: &str, value: Value) -> Value {
    if crate::json::is_blank(&value) {
        return Value::Null;
    }
    Obj::new()
        .with("code", Obj::new().with("text", name))
        .with(value_key, value)
        .build()
}

/// A Y/N indicator (table 0136) as a boolean.
fn indicator(seg: &Segment<'_>, n: usize) -> Value {
    match seg.field(n).map(|e| comp(e, 1)).as_deref() {
        Some("Y") => Value::Bool(true),
        Some("N") => Value::Bool(false),
        _ => Value::Null,
    }
}

/// Adds the Observation `what` (a name for its key) of this segment.
fn add_observation(ctx: &mut Ctx<'_>, what: &str, mut o: Obj) -> usize {
    o.set("status", "final");
    let key = format!("{what}|{}", ctx.message_key());
    let (_, id) = ctx.unused_record_key("Observation", key);
    ctx.add("Observation", id, o)
}

/// ACC: the accident as an Observation (LOINC 11374-6): ACC-1 effective,
/// ACC-2 accident code (table 0050) as the value, else ACC-8 description;
/// ACC-3 location, ACC-4 auto accident state, ACC-5 job related, ACC-6
/// death, ACC-10 police notified and ACC-11 address as components; ACC-7
/// entered by as performer.
pub fn acc(ctx: &mut Ctx<'_>, seg: &Segment<'_>) -> Result<(), ConvertError> {
    let opts = ctx.options;
    let f = |n: usize| seg.field(n);
    let mut o = Obj::new();
    o.set("code", loinc("11374-6", "Injury incident description"));
    o.set(
        "effectiveDateTime",
        f(1).map(|e| dt::date_time_value(&comp(e, 1), opts))
            .unwrap_or(Value::Null),
    );
    let description = f(8).map(text).unwrap_or_default();
    let code = f(2)
        .map(|e| dt::coded(e, "0050", opts))
        .unwrap_or(Value::Null);
    if code.is_null() {
        o.set("valueString", string(&description));
    } else {
        o.set("valueCodeableConcept", code);
        if !description.trim().is_empty() {
            o.push("note", Obj::new().with("text", string(&description)));
        }
    }
    o.push(
        "component",
        component(
            "Accident location",
            "valueString",
            string(&f(3).map(text).unwrap_or_default()),
        ),
    );
    o.push(
        "component",
        component(
            "Auto accident state",
            "valueCodeableConcept",
            f(4).map(|e| dt::codeable_concept(e, opts))
                .unwrap_or(Value::Null),
        ),
    );
    o.push(
        "component",
        component("Job related", "valueBoolean", indicator(seg, 5)),
    );
    o.push(
        "component",
        component("Death", "valueBoolean", indicator(seg, 6)),
    );
    o.push(
        "component",
        component("Police notified", "valueBoolean", indicator(seg, 10)),
    );
    let address = reps(f(11)).next().map(dt::address).unwrap_or(Value::Null);
    let address_text = match &address {
        Value::Object(a) => a
            .values()
            .filter_map(|v| match v {
                Value::String(s) => Some(s.clone()),
                Value::Array(items) => Some(
                    items
                        .iter()
                        .filter_map(Value::as_str)
                        .collect::<Vec<_>>()
                        .join(" "),
                ),
                _ => None,
            })
            .collect::<Vec<_>>()
            .join(", "),
        _ => String::new(),
    };
    o.push(
        "component",
        component("Accident address", "valueString", string(&address_text)),
    );
    if o.get("valueString").is_none()
        && o.get("valueCodeableConcept").is_none()
        && o.get("component").is_none()
        && o.get("effectiveDateTime").is_none()
    {
        return Ok(());
    }
    let i = add_observation(ctx, "accident", o);
    if let Some(r) = ctx.practitioner_field(f(7)) {
        ctx.push_on(i, "performer", r);
    }
    ctx.note_target = Some((i, "note"));
    Ok(())
}

/// PDA: the Patient is deceased (`deceasedBoolean` unless PID-29/30 said
/// more); each PDA-1 cause of death an Observation (LOINC 69453-9) with
/// PDA-4 signed date as effective, PDA-5 certifier as performer, PDA-2
/// location, PDA-3 certified and PDA-9 coroner as components; PDA-6 an
/// autopsy Observation (LOINC 85699-7, value from table 0136) with PDA-7
/// period and PDA-8 performer.
pub fn pda(ctx: &mut Ctx<'_>, seg: &Segment<'_>) -> Result<(), ConvertError> {
    let opts = ctx.options;
    let f = |n: usize| seg.field(n);
    if let Some(p) = ctx.patient {
        let patient = ctx.resource_mut(p);
        if !patient.contains_key("deceasedDateTime") && !patient.contains_key("deceasedBoolean") {
            patient.insert("deceasedBoolean".into(), Value::Bool(true));
        }
    }
    let signed = f(4)
        .map(|e| dt::date_time_value(&comp(e, 1), opts))
        .unwrap_or(Value::Null);
    let location = f(2).map(dt::location_text).unwrap_or_default();
    let causes: Vec<Value> = reps(f(1))
        .map(|e| dt::codeable_concept(e, opts))
        .filter(|v| !v.is_null())
        .collect();
    for (n, cause) in causes.into_iter().enumerate() {
        let mut o = Obj::new();
        o.set("code", loinc("69453-9", "Cause of death"));
        o.set("effectiveDateTime", signed.clone());
        o.set("valueCodeableConcept", cause);
        o.push(
            "component",
            component("Death location", "valueString", string(&location)),
        );
        o.push(
            "component",
            component("Death certified", "valueBoolean", indicator(seg, 3)),
        );
        o.push(
            "component",
            component("Coroner", "valueBoolean", indicator(seg, 9)),
        );
        let i = add_observation(ctx, &format!("cause-of-death|{n}"), o);
        if let Some(r) = ctx.practitioner_field(f(5)) {
            ctx.push_on(i, "performer", r);
        }
    }
    let autopsy = f(6).map(|e| comp(e, 1)).unwrap_or_default();
    if !autopsy.is_empty() {
        let mut o = Obj::new();
        o.set("code", loinc("85699-7", "Autopsy was performed"));
        o.set(
            "valueCodeableConcept",
            dt::table_concept(&autopsy, "0136", None),
        );
        if let Some(dr) = f(7) {
            o.set(
                "effectivePeriod",
                Obj::new()
                    .with("start", dt::date_time_value(&dt::sub(dr, 1, 1), opts))
                    .with("end", dt::date_time_value(&dt::sub(dr, 2, 1), opts)),
            );
        }
        let i = add_observation(ctx, "autopsy", o);
        if let Some(r) = ctx.practitioner_field(f(8)) {
            ctx.push_on(i, "performer", r);
        }
    }
    Ok(())
}

/// DB1: a disability as an Observation (`code.text` "Disability": LOINC
/// has no single code for it): DB1-4 indicator as the value, DB1-5/6 the
/// period, DB1-2 whose disability (table 0334), DB1-7 return to work and
/// DB1-8 unable to work as components.
pub fn db1(ctx: &mut Ctx<'_>, seg: &Segment<'_>) -> Result<(), ConvertError> {
    let opts = ctx.options;
    let f = |n: usize| seg.field(n);
    let mut o = Obj::new();
    o.set("code", Obj::new().with("text", "Disability"));
    o.set("valueBoolean", indicator(seg, 4));
    o.set(
        "effectivePeriod",
        Obj::new()
            .with(
                "start",
                f(5).map(|e| dt::date_time_value(&comp(e, 1), opts))
                    .unwrap_or(Value::Null),
            )
            .with(
                "end",
                f(6).map(|e| dt::date_time_value(&comp(e, 1), opts))
                    .unwrap_or(Value::Null),
            ),
    );
    o.push(
        "component",
        component(
            "Disabled person",
            "valueCodeableConcept",
            dt::table_concept(&f(2).map(|e| comp(e, 1)).unwrap_or_default(), "0334", None),
        ),
    );
    for (n, name) in [(7, "Return to work date"), (8, "Unable to work date")] {
        o.push(
            "component",
            component(
                name,
                "valueDateTime",
                f(n).map(|e| dt::date_time_value(&comp(e, 1), opts))
                    .unwrap_or(Value::Null),
            ),
        );
    }
    if o.get("valueBoolean").is_none()
        && o.get("effectivePeriod").is_none()
        && o.get("component").is_none()
    {
        return Ok(());
    }
    let i = add_observation(ctx, "disability", o);
    // DB1-3: the disabled person's identifier, as the Observation's.
    for cx in reps(f(3)) {
        ctx.push_on(i, "identifier", dt::identifier_cx(cx, opts));
    }
    Ok(())
}
