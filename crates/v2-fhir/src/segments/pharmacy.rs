//! RXO/RXE to MedicationRequest (`RXO[MedicationRequest]`; RXE follows the
//! same rules, its map being under construction), RXR to routes
//! (`RXR[MedicationRequest]`, `RXR[Immunization]`), RXA to Immunization
//! (`RXA[Immunization]`, in VXU) or MedicationAdministration (elsewhere).

use hl7v2::Segment;
use serde_json::Value;

use crate::convert::{Ctx, Kind};
use crate::datatypes::{self as dt, comp, reps, sub, text};
use crate::error::ConvertError;
use crate::json::Obj;
use crate::segments::orders::order_identifiers;
use crate::vocab::ConceptMap;

/// ORC-5 (table 0038), else ORC-1 (table 0119), to MedicationRequest.status.
fn medication_request_status(ctx: &Ctx<'_>) -> &'static str {
    let orc = ctx.group.orc.as_ref();
    let status = orc
        .and_then(|s| s.field(5))
        .map(|e| comp(e, 1))
        .unwrap_or_default();
    let control = orc
        .and_then(|s| s.field(1))
        .map(|e| comp(e, 1))
        .unwrap_or_default();
    match &*status {
        "CA" => return "cancelled",
        "CM" => return "completed",
        "DC" => return "stopped",
        "ER" => return "entered-in-error",
        "HD" => return "on-hold",
        "IP" | "SC" | "A" => return "active",
        _ => {}
    }
    match &*control {
        "CA" | "OC" | "CR" => "cancelled",
        "DC" | "OD" | "DR" => "stopped",
        "HD" | "OH" => "on-hold",
        _ => "active",
    }
}

/// `RXO[MedicationRequest]` (RXO-1 code, RXO-2/RXO-4 dose, RXO-9
/// substitution) and RXE (RXE-2 code, RXE-3/RXE-5 dose, RXE-10/RXE-11
/// dispense amount, RXE-12 refills, RXE-9 substitution).
pub fn rxo_rxe(ctx: &mut Ctx<'_>, seg: &Segment<'_>) -> Result<(), ConvertError> {
    let o = ctx.options;
    let f = |n: usize| seg.field(n);
    let is_rxe = seg.name() == b"RXE";
    let (code_field, dose_field, unit_field) = if is_rxe { (2, 3, 5) } else { (1, 2, 4) };
    let (ids, key) = order_identifiers(ctx, None);
    let mut mr = Obj::new();
    mr.extend("identifier", ids);
    mr.set("status", medication_request_status(ctx));
    mr.set("intent", "order");
    let code = f(code_field)
        .map(|e| dt::codeable_concept(e, o))
        .unwrap_or(Value::Null);
    mr.set(
        "medicationCodeableConcept",
        if code.is_null() {
            Obj::new().with("text", "unknown").build()
        } else {
            code
        },
    );
    let mut dosage = Obj::new();
    if let Some(v) = f(dose_field).and_then(|e| dt::decimal(&comp(e, 1))) {
        let quantity = dt::quantity(v, f(unit_field), o);
        dosage.push("doseAndRate", Obj::new().with("doseQuantity", quantity));
    }
    // RXE-7 / RXO-6: provider's administration instructions
    let instructions = f(if is_rxe { 7 } else { 6 }).map(|e| {
        let t = comp(e, 2);
        if t.is_empty() { comp(e, 1) } else { t }
    });
    if let Some(t) = instructions {
        dosage.text("text", &t);
    }
    mr.push("dosageInstruction", dosage);
    if is_rxe {
        let mut dispense = Obj::new();
        if let Some(v) = f(10).and_then(|e| dt::decimal(&comp(e, 1))) {
            dispense.set("quantity", dt::quantity(v, f(11), o));
        }
        if let Some(n) = f(12).map(text).and_then(|t| t.parse::<u32>().ok()) {
            dispense.set("numberOfRepeatsAllowed", n);
        }
        mr.set("dispenseRequest", dispense);
    }
    // RXO-9 / RXE-9: substitution (table 0161: N never, G/T allowed)
    match f(9).map(|e| comp(e, 1)).as_deref() {
        Some("N") => {
            mr.set("substitution", Obj::new().with("allowedBoolean", false));
        }
        Some("G") | Some("T") => {
            mr.set("substitution", Obj::new().with("allowedBoolean", true));
        }
        _ => {}
    }
    if let Some(orc) = ctx.group.orc.as_ref() {
        mr.set(
            "authoredOn",
            orc.field(9)
                .map(|e| dt::date_time_value(&comp(e, 1), o))
                .unwrap_or(Value::Null),
        );
    }
    // RXO (the order as placed) and RXE (as the pharmacy encoded it) of one
    // order group are one request: the RXE fills what the RXO left out.
    let same_order = ctx
        .group
        .medication
        .filter(|&m| ctx.entries[m].resource_type == "MedicationRequest");
    let i = match same_order {
        Some(m) => {
            let existing = ctx.resource_mut(m);
            for (k, v) in mr.0 {
                existing.entry(k).or_insert(v);
            }
            m
        }
        None => {
            let id = ctx.record_id("MedicationRequest", &[&key]);
            ctx.add("MedicationRequest", id, mr)
        }
    };
    // RXE-1 (TQ, before TQ1 replaced it): TQ.2 interval, TQ.4 and TQ.5 start
    // and end, TQ.6 priority
    if let Some(tq) = f(1).filter(|_| is_rxe).map(|e| e.repetition(1)) {
        let (mut timing, as_needed) = dt::repeat_pattern(&sub(tq, 2, 1), "");
        let mut bounds = Obj::new();
        bounds.set("start", dt::date_time_value(&sub(tq, 4, 1), o));
        bounds.set("end", dt::date_time_value(&sub(tq, 5, 1), o));
        if !bounds.is_empty() {
            let mut repeat = match timing.0.remove("repeat") {
                Some(Value::Object(r)) => Obj(r),
                _ => Obj::new(),
            };
            repeat.set("boundsPeriod", bounds);
            timing.set("repeat", repeat);
        }
        add_timing(ctx, i, timing, as_needed);
        if let Some(p) = crate::segments::orders::priority(&comp(tq, 6)) {
            ctx.set_on(i, "priority", p);
        }
    }
    let orc_requester = ctx.group.orc.as_ref().and_then(|s| s.field(12));
    if let Some(r) = ctx.practitioner_field(orc_requester) {
        ctx.set_on(i, "requester", r);
    }
    ctx.group.medication = Some(i);
    ctx.group.key = key;
    ctx.note_target = Some((i, "note"));
    Ok(())
}

/// Puts a Timing into the MedicationRequest's dosage instruction (the one
/// RXO/RXE made), keeping what it has; `as_needed` sets asNeededBoolean.
pub fn add_timing(ctx: &mut Ctx<'_>, m: usize, timing: Obj, as_needed: bool) {
    if timing.is_empty() && !as_needed {
        return;
    }
    let target = ctx.resource_mut(m);
    let list = target
        .entry("dosageInstruction")
        .or_insert_with(|| Value::Array(Vec::new()));
    let Value::Array(items) = list else { return };
    if items.is_empty() {
        items.push(Value::Object(Default::default()));
    }
    let Some(Value::Object(dosage)) = items.first_mut() else {
        return;
    };
    if as_needed {
        dosage.insert("asNeededBoolean".into(), Value::Bool(true));
    }
    let existing = dosage
        .entry("timing")
        .or_insert_with(|| Value::Object(Default::default()));
    let Value::Object(existing) = existing else {
        return;
    };
    for (key, value) in timing.0 {
        match (existing.get_mut(&key), value) {
            (Some(Value::Object(old)), Value::Object(new)) => {
                for (k, v) in new {
                    old.entry(k).or_insert(v);
                }
            }
            (Some(_), _) => {}
            (None, value) => {
                existing.insert(key, value);
            }
        }
    }
    if existing.is_empty() {
        dosage.remove("timing");
    }
}

/// `RXR[...]`: RXR-1 route and RXR-2 site on the current medication.
pub fn rxr(ctx: &mut Ctx<'_>, seg: &Segment<'_>) -> Result<(), ConvertError> {
    let o = ctx.options;
    let Some(m) = ctx.group.medication else {
        return Ok(());
    };
    let route = seg
        .field(1)
        .map(|e| dt::codeable_concept(e, o))
        .unwrap_or(Value::Null);
    let site = seg
        .field(2)
        .map(|e| dt::codeable_concept(e, o))
        .unwrap_or(Value::Null);
    match ctx.entries[m].resource_type {
        "Immunization" => {
            ctx.set_on(m, "route", route);
            ctx.set_on(m, "site", site);
        }
        "MedicationAdministration" => {
            let target = ctx.resource_mut(m);
            let dosage = target
                .entry("dosage")
                .or_insert_with(|| Value::Object(Default::default()));
            if let Value::Object(d) = dosage {
                if !route.is_null() {
                    d.entry("route").or_insert(route);
                }
                if !site.is_null() {
                    d.entry("site").or_insert(site);
                }
            }
        }
        _ => {
            let target = ctx.resource_mut(m);
            let list = target
                .entry("dosageInstruction")
                .or_insert_with(|| Value::Array(vec![Value::Object(Default::default())]));
            if let Value::Array(items) = list {
                if items.is_empty() {
                    items.push(Value::Object(Default::default()));
                }
                if let Some(Value::Object(d)) = items.first_mut() {
                    if !route.is_null() {
                        d.entry("route").or_insert(route);
                    }
                    if !site.is_null() {
                        d.entry("site").or_insert(site);
                    }
                }
            }
        }
    }
    Ok(())
}

/// RXA to Immunization (VXU) or MedicationAdministration (RAS and others).
pub fn rxa(ctx: &mut Ctx<'_>, seg: &Segment<'_>) -> Result<(), ConvertError> {
    let o = ctx.options;
    let f = |n: usize| seg.field(n);
    let previous = ctx.group.medication;
    if previous.is_some_and(|m| {
        matches!(
            ctx.entries[m].resource_type,
            "Immunization" | "MedicationAdministration"
        )
    }) {
        // A second RXA in one order: its own group, same ORC.
        let orc = ctx.group.orc.clone();
        crate::segments::close_group(ctx);
        ctx.group.orc = orc;
    }
    let when = f(3).map(|e| comp(e, 1)).unwrap_or_default();
    let end = f(4).map(|e| comp(e, 1)).unwrap_or_default();
    let code_text = f(5)
        .map(|e| format!("{}|{}", comp(e, 3), comp(e, 1)))
        .unwrap_or_default();
    let has_order_ids = ctx.group.orc.as_ref().is_some_and(|s| {
        [2, 3]
            .iter()
            .any(|n| s.field(*n).is_some_and(|e| !comp(e, 1).is_empty()))
    });
    let (ids, order_key) = order_identifiers(ctx, None);
    // One resource per RXA: an ORC-3 covers several doses (a VXU's history),
    // so the dose's own time and vaccine complete the key.
    let key = if has_order_ids {
        format!("{order_key}|{when}|{code_text}")
    } else {
        format!("{code_text}|{when}")
    };
    let resource_type = if ctx.kind == Kind::Vaccination {
        "Immunization"
    } else {
        "MedicationAdministration"
    };
    let (key, id) = ctx.unused_record_key(resource_type, key);
    // RXA-20 completion status (CompletionStatus); RXA-21 action code D
    let completion = f(20).map(|e| comp(e, 1)).unwrap_or_default();
    let deleted = f(21).map(|e| comp(e, 1)).as_deref() == Some("D");
    let status = if deleted {
        "entered-in-error"
    } else {
        ConceptMap::CompletionStatus
            .lookup(&completion)
            .map(|c| c.code.as_str())
            .unwrap_or("completed")
    };
    let code = f(5)
        .map(|e| dt::codeable_concept(e, o))
        .unwrap_or(Value::Null);
    let code = if code.is_null() {
        Obj::new().with("text", "unknown").build()
    } else {
        code
    };
    let dose = f(6)
        .and_then(|e| dt::decimal(&comp(e, 1)))
        .filter(|v| v.as_f64() != Some(999.0))
        .map(|v| dt::quantity(v, f(7), o))
        .unwrap_or(Value::Null);
    let i = if ctx.kind == Kind::Vaccination {
        let mut im = Obj::new();
        im.extend("identifier", ids);
        im.set("status", status);
        // RXA-18: statusReason (refusal reason) when not given
        if status == "not-done" {
            if let Some(r) = reps(f(18)).next() {
                im.set("statusReason", dt::codeable_concept(r, o));
            }
        }
        im.set("vaccineCode", code);
        // RXA-3: occurrenceDateTime (FHIR requires an occurrence)
        let occurrence = dt::date_time_value(&when, o);
        if occurrence.is_null() {
            im.set("occurrenceString", "unknown");
        } else {
            im.set("occurrenceDateTime", occurrence);
        }
        // RXA-9: primarySource (NIP001 00 = new record) and reportOrigin
        if let Some(source) = reps(f(9)).next() {
            let c = comp(source, 1);
            if !c.is_empty() {
                im.set("primarySource", c == "00");
                if c != "00" {
                    im.set("reportOrigin", dt::codeable_concept(source, o));
                }
            }
        }
        // RXA-15 lotNumber, RXA-16 expirationDate, RXA-6/7 doseQuantity
        im.text("lotNumber", &f(15).map(|e| comp(e, 1)).unwrap_or_default());
        im.set(
            "expirationDate",
            f(16)
                .map(|e| dt::date_value(&comp(e, 1)))
                .unwrap_or(Value::Null),
        );
        im.set("doseQuantity", dose);
        let i = ctx.add("Immunization", id, im);
        // RXA-17: manufacturer (an Organization named by its MVX code)
        if let Some(m) = reps(f(17)).next() {
            let name = if comp(m, 2).is_empty() {
                comp(m, 1)
            } else {
                comp(m, 2)
            };
            let identifier = if comp(m, 1).is_empty() {
                Value::Null
            } else {
                Obj::new()
                    .with(
                        "system",
                        dt::code_system_uri(
                            &if comp(m, 3).is_empty() {
                                "MVX".into()
                            } else {
                                comp(m, 3)
                            },
                            o,
                        ),
                    )
                    .with("value", &*comp(m, 1))
                    .build()
            };
            if let Some(r) = ctx.organization(&name, identifier) {
                ctx.set_on(i, "manufacturer", r);
            }
        }
        i
    } else {
        let mut ma = Obj::new();
        ma.extend("identifier", ids);
        ma.set("status", status);
        ma.set("medicationCodeableConcept", code);
        // RXA-3/RXA-4: effective[x]; FHIR requires one, so the message time
        // stands in when RXA-3 is empty.
        let start = dt::date_time_value(&when, o);
        let start = if start.is_null() {
            ctx.msg
                .segment(0)
                .field(7)
                .map(|e| dt::date_time_value(&comp(e, 1), o))
                .unwrap_or(Value::Null)
        } else {
            start
        };
        let stop = dt::date_time_value(&end, o);
        if stop.is_null() || stop == start {
            ma.set("effectiveDateTime", start);
        } else {
            ma.set(
                "effectivePeriod",
                Obj::new().with("start", start).with("end", stop),
            );
        }
        ma.set("dosage", Obj::new().with("dose", dose));
        if let Some(mr) = previous.filter(|m| ctx.entries[*m].resource_type == "MedicationRequest")
        {
            ma.set("request", ctx.reference_to(mr));
        }
        ctx.add("MedicationAdministration", id, ma)
    };
    // RXA-10: performer (administering provider)
    for xcn in reps(f(10)).collect::<Vec<_>>() {
        if let Some(r) = ctx.practitioner(xcn) {
            let mut perf = Obj::new();
            if ctx.kind == Kind::Vaccination {
                perf.set(
                    "function",
                    Obj::new().with(
                        "coding",
                        vec![
                            Obj::new()
                                .with("system", "http://terminology.hl7.org/CodeSystem/v2-0443")
                                .with("code", "AP")
                                .with("display", "Administering Provider")
                                .build(),
                        ],
                    ),
                );
            }
            perf.set("actor", r);
            ctx.push_on(i, "performer", perf);
        }
    }
    ctx.group.medication = Some(i);
    ctx.group.key = key;
    ctx.note_target = Some((i, "note"));
    Ok(())
}

/// RXD (RDS dispenses) to MedicationDispense: RXD-2 medication, RXD-3
/// whenHandedOver, RXD-4/5 quantity, RXD-7 prescription number as
/// identifier, RXD-10 dispensing provider as performer, the order group's
/// MedicationRequest as authorizingPrescription.
pub fn rxd(ctx: &mut Ctx<'_>, seg: &Segment<'_>) -> Result<(), ConvertError> {
    let o = ctx.options;
    let f = |n: usize| seg.field(n);
    let mut d = Obj::new();
    d.set("status", "completed");
    let code = f(2)
        .map(|e| dt::codeable_concept(e, o))
        .unwrap_or(Value::Null);
    d.set(
        "medicationCodeableConcept",
        if code.is_null() {
            Obj::new().with("text", "unknown").build()
        } else {
            code
        },
    );
    d.set(
        "whenHandedOver",
        f(3).map(|e| dt::date_time_value(&comp(e, 1), o))
            .unwrap_or(Value::Null),
    );
    if let Some(v) = f(4).and_then(|e| dt::decimal(&comp(e, 1))) {
        d.set("quantity", dt::quantity(v, f(5), o));
    }
    let prescription = f(7).map(|e| comp(e, 1)).unwrap_or_default();
    d.push(
        "identifier",
        Obj::new().with("value", crate::json::string(&prescription)),
    );
    let request = ctx
        .group
        .medication
        .filter(|&m| ctx.entries[m].resource_type == "MedicationRequest");
    if let Some(m) = request {
        d.push("authorizingPrescription", ctx.reference_to(m));
    }
    let key = format!(
        "{}|{}|{}",
        ctx.group.key,
        prescription,
        f(1).map(text).unwrap_or_default()
    );
    let (_, id) = ctx.unused_record_key("MedicationDispense", key);
    let i = ctx.add("MedicationDispense", id, d);
    if let Some(r) = ctx.practitioner_field(f(10)) {
        ctx.push_on(i, "performer", Obj::new().with("actor", r));
    }
    ctx.note_target = Some((i, "note"));
    Ok(())
}
