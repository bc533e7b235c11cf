//! PV1 and PV2 to Encounter (`PV1[Encounter]`, `PV2[Encounter]`).

use hl7v2::Segment;
use serde_json::Value;

use crate::convert::Ctx;
use crate::datatypes::{self as dt, comp, reps};
use crate::error::ConvertError;
use crate::json::Obj;
use crate::segments::patient::cx_key;
use crate::vocab::ConceptMap;

/// The participant type coding (v3-ParticipationType) of a PV1 doctor field.
fn participant_type(code: &str, display: &str) -> Value {
    Obj::new()
        .with(
            "coding",
            vec![
                Obj::new()
                    .with(
                        "system",
                        "http://terminology.hl7.org/CodeSystem/v3-ParticipationType",
                    )
                    .with("code", code)
                    .with("display", display)
                    .build(),
            ],
        )
        .build()
}

/// `PV1[Encounter]`.
pub fn pv1(ctx: &mut Ctx<'_>, seg: &Segment<'_>) -> Result<(), ConvertError> {
    if ctx.encounter.is_some() {
        return Ok(());
    }
    let o = ctx.options;
    let f = |n: usize| seg.field(n);
    let mut e = Obj::new();
    // PV1-19: identifier (visit number, type VN); PV1-50: alternate visit id
    let mut key = None;
    for n in [19, 50] {
        for cx in reps(f(n)) {
            let mut id = match dt::identifier_cx(cx, o) {
                Value::Object(m) => Obj(m),
                _ => continue,
            };
            if !id.has("type") {
                id.set("type", dt::identifier_type("VN"));
            }
            e.push("identifier", id);
            if key.is_none() {
                key = cx_key(cx, ctx);
            }
        }
    }
    // Status: from the event (Event[EncounterStatus]) unless it says
    // unknown (A08), then a discharge date says finished, then the class
    // (PatientClass[EncounterStatus]).
    let class = f(2).map(|e| comp(e, 1)).unwrap_or_default();
    let discharged = f(45).map(|e| comp(e, 1)).is_some_and(|d| !d.is_empty());
    let status = ConceptMap::EventEncounterStatus
        .lookup(&ctx.event)
        .map(|c| c.code.as_str())
        .filter(|s| *s != "unknown")
        .or(discharged.then_some("finished"))
        .or_else(|| {
            ConceptMap::PatientClassEncounterStatus
                .lookup(&class)
                .map(|c| c.code.as_str())
        })
        .unwrap_or("unknown");
    e.set("status", status);
    // PV1-2: class (PatientClass[EncounterClass]); FHIR requires one.
    let class_coding = match ConceptMap::PatientClassEncounterClass.lookup(&class) {
        Some(c) => dt::concept_coding(c),
        None if !class.is_empty() => Obj::new()
            .with("system", "http://terminology.hl7.org/CodeSystem/v2-0004")
            .with("code", dt::code_value(&class))
            .build(),
        None => Obj::new()
            .with(
                "system",
                "http://terminology.hl7.org/CodeSystem/v3-NullFlavor",
            )
            .with("code", "UNK")
            .with("display", "unknown")
            .build(),
    };
    e.set("class", class_coding);
    // PV1-4: type (admission type, table 0007); PV1-18: type (patient type)
    if let Some(t) = f(4) {
        e.push("type", dt::table_concept(&comp(t, 1), "0007", None));
    }
    if let Some(t) = f(18) {
        e.push("type", dt::table_concept(&comp(t, 1), "0018", None));
    }
    // PV1-10: serviceType (hospital service, table 0069)
    if let Some(s) = f(10) {
        e.set("serviceType", dt::table_concept(&comp(s, 1), "0069", None));
    }
    // PV1-44/45: period
    let mut period = Obj::new();
    let admit = f(44).map(|x| comp(x, 1)).unwrap_or_default();
    period.set("start", dt::date_time_value(&admit, o));
    period.set(
        "end",
        f(45)
            .map(|x| dt::date_time_value(&comp(x, 1), o))
            .unwrap_or(Value::Null),
    );
    e.set("period", period);
    // PV1-14 admitSource, PV1-13 reAdmission, PV1-36 dischargeDisposition
    let mut hosp = Obj::new();
    if let Some(s) = f(14) {
        hosp.set("admitSource", dt::table_concept(&comp(s, 1), "0023", None));
    }
    if let Some(s) = f(13) {
        hosp.set("reAdmission", dt::table_concept(&comp(s, 1), "0092", None));
    }
    if let Some(s) = f(36) {
        hosp.set(
            "dischargeDisposition",
            dt::table_concept(&comp(s, 1), "0112", None),
        );
    }
    // PV1-15 specialArrangement (ambulatory status), PV1-16 specialCourtesy (VIP)
    for s in reps(f(15)) {
        hosp.push("specialArrangement", dt::coded(s, "0009", o));
    }
    for s in reps(f(16)) {
        hosp.push("specialCourtesy", dt::coded(s, "0099", o));
    }
    e.set("hospitalization", hosp);
    // Without a visit number the patient's encounter of this class that
    // began at PV1-44 (or its one such encounter without an admit time) is
    // meant: an A08 after the A01 updates it instead of adding another.
    let key = key.unwrap_or_else(|| match ctx.patient {
        Some(_) => format!("unnumbered|{class}|{admit}"),
        None => ctx.message_key(),
    });
    let id = ctx.record_id("Encounter", &[&key]);
    let i = ctx.add("Encounter", id, e);
    ctx.encounter = Some(i);
    // PV1-3: location (active); PV1-6: prior location (completed)
    for (n, loc_status) in [(3, "active"), (6, "completed"), (11, "active")] {
        if let Some(pl) = f(n) {
            if let Some(r) = ctx.location(pl) {
                ctx.push_on(
                    i,
                    "location",
                    Obj::new().with("location", r).with("status", loc_status),
                );
            }
        }
    }
    // PV1-7 attending, PV1-8 referring, PV1-9 consulting, PV1-17 admitting
    for (n, code, display) in [
        (7, "ATND", "attender"),
        (8, "REF", "referrer"),
        (9, "CON", "consultant"),
        (17, "ADM", "admitter"),
    ] {
        for xcn in reps(f(n)).collect::<Vec<_>>() {
            if let Some(r) = ctx.practitioner(xcn) {
                ctx.push_on(
                    i,
                    "participant",
                    Obj::new()
                        .with("type", vec![participant_type(code, display)])
                        .with("individual", r),
                );
            }
        }
    }
    // PV1-39: serviceProvider (servicing facility)
    let facility = f(39).map(|x| comp(x, 1)).unwrap_or_default();
    if let Some(r) = ctx.organization(&facility, Value::Null) {
        ctx.set_on(i, "serviceProvider", r);
    }
    Ok(())
}

/// `PV2[Encounter]`: PV2-3 reasonCode, PV2-11 length, PV2-25 priority.
pub fn pv2(ctx: &mut Ctx<'_>, seg: &Segment<'_>) -> Result<(), ConvertError> {
    let Some(i) = ctx.encounter else {
        return Ok(());
    };
    let o = ctx.options;
    if let Some(reason) = seg.field(3) {
        ctx.push_on(i, "reasonCode", dt::codeable_concept(reason, o));
    }
    if let Some(days) = seg.field(11).and_then(|e| dt::decimal(&comp(e, 1))) {
        ctx.set_on(
            i,
            "length",
            Obj::new()
                .with("value", days)
                .with("unit", "days")
                .with("system", "http://unitsofmeasure.org")
                .with("code", "d"),
        );
    }
    if let Some(p) = seg.field(25) {
        let code = comp(p, 1);
        if let Some(c) = ConceptMap::EncounterPriority.lookup(&code) {
            ctx.set_on(
                i,
                "priority",
                Obj::new().with("coding", vec![dt::concept_coding(c)]),
            );
        }
    }
    Ok(())
}
