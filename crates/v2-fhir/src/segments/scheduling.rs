//! SCH to Appointment (`SCH[Appointment]`), AIS/AIG, AIL and AIP to its
//! service type and participants (`AIS[Appointment]`, `AIL[Appointment]`,
//! `AIP[Appointment]`).

use hl7v2::Segment;
use serde_json::Value;

use crate::convert::Ctx;
use crate::datatypes::{self as dt, comp, reps, sub};
use crate::error::ConvertError;
use crate::json::Obj;
use crate::vocab::ConceptMap;

/// The appointment status a trigger event implies when SCH-25 says nothing.
fn status_of_event(event: &str) -> &'static str {
    match event {
        "S12" | "S13" | "S14" => "booked",
        "S15" | "S16" => "cancelled",
        "S17" => "entered-in-error",
        "S26" => "noshow",
        _ => "proposed",
    }
}

/// `SCH[Appointment]`.
pub fn sch(ctx: &mut Ctx<'_>, seg: &Segment<'_>) -> Result<(), ConvertError> {
    let o = ctx.options;
    let f = |n: usize| seg.field(n);
    let mut a = Obj::new();
    // SCH-2 filler, SCH-1 placer appointment id
    let mut key = None;
    for (n, kind) in [(2, "FILL"), (1, "PLAC")] {
        if let Some(ei) = f(n) {
            let id = dt::typed_identifier(ei, kind, o);
            if !id.is_null() {
                if key.is_none() {
                    key = Some(format!(
                        "{kind}|{}|{}",
                        id["system"].as_str().unwrap_or(""),
                        comp(ei, 1)
                    ));
                }
                a.push("identifier", id);
            }
        }
    }
    // SCH-25: status (FillerStatusCodes[Appointment]), else by event
    let status = f(25)
        .and_then(|e| ConceptMap::FillerStatusCodesAppointment.lookup(&comp(e, 1)))
        .map(|c| c.code.as_str())
        .unwrap_or_else(|| status_of_event(&ctx.event));
    a.set("status", status);
    // SCH-6 event reason, SCH-7 appointment reason: reasonCode
    for n in [7, 6] {
        if let Some(r) = f(n) {
            a.push("reasonCode", dt::codeable_concept(r, o));
        }
    }
    // SCH-8: appointmentType
    if let Some(t) = f(8) {
        a.set("appointmentType", dt::codeable_concept(t, o));
    }
    // SCH-11 (TQ.4 start, TQ.5 end): start and end, instants
    if let Some(tq) = f(11) {
        let start = crate::datetime::to_instant(&sub(tq, 4, 1), o.timezone.as_ref());
        let end = crate::datetime::to_instant(&sub(tq, 5, 1), o.timezone.as_ref());
        a.set("start", start.map(Value::from).unwrap_or(Value::Null));
        a.set("end", end.map(Value::from).unwrap_or(Value::Null));
    }
    // SCH-9/SCH-10: minutesDuration when in minutes
    let duration = f(9).map(|e| comp(e, 1)).and_then(|d| d.parse::<u32>().ok());
    let units = f(10).map(|e| comp(e, 1)).unwrap_or_default();
    if let Some(d) = duration.filter(|d| *d > 0) {
        if units.is_empty() || units.eq_ignore_ascii_case("min") || units.eq_ignore_ascii_case("M")
        {
            a.set("minutesDuration", d);
        }
    }
    let key = key.unwrap_or_else(|| ctx.message_key());
    let id = ctx.record_id("Appointment", &[&key]);
    if ctx.patient.is_none() {
        ctx.appointment_key = Some(key);
    }
    let i = ctx.add("Appointment", id, a);
    ctx.appointment = Some(i);
    ctx.note_target = Some((i, "comment"));
    Ok(())
}

fn participant_status(code: &str) -> &'static str {
    match code {
        "Cancelled" | "Deleted" | "Discontinued" => "declined",
        "Pending" | "Waitlist" => "tentative",
        _ => "accepted",
    }
}

/// `AIS[Appointment]`: AIS-3 serviceType, AIS-4 start when SCH had none.
pub fn ais(ctx: &mut Ctx<'_>, seg: &Segment<'_>) -> Result<(), ConvertError> {
    let Some(a) = ctx.appointment else {
        return Ok(());
    };
    let o = ctx.options;
    if let Some(s) = seg.field(3) {
        ctx.push_on(a, "serviceType", dt::codeable_concept(s, o));
    }
    if let Some(start) = seg
        .field(4)
        .and_then(|e| crate::datetime::to_instant(&comp(e, 1), o.timezone.as_ref()))
    {
        ctx.set_on(a, "start", start);
    }
    Ok(())
}

/// `AIL[Appointment]`: AIL-3 location as a participant.
pub fn ail(ctx: &mut Ctx<'_>, seg: &Segment<'_>) -> Result<(), ConvertError> {
    let Some(a) = ctx.appointment else {
        return Ok(());
    };
    let status = participant_status(&seg.field(12).map(|e| comp(e, 1)).unwrap_or_default());
    for pl in reps(seg.field(3)).collect::<Vec<_>>() {
        if let Some(r) = ctx.location(pl) {
            ctx.push_on(
                a,
                "participant",
                Obj::new().with("actor", r).with("status", status),
            );
        }
    }
    Ok(())
}

/// `AIP[Appointment]`: AIP-3 personnel as a participant, AIP-4 its role.
pub fn aip(ctx: &mut Ctx<'_>, seg: &Segment<'_>) -> Result<(), ConvertError> {
    let Some(a) = ctx.appointment else {
        return Ok(());
    };
    let o = ctx.options;
    let status = participant_status(&seg.field(12).map(|e| comp(e, 1)).unwrap_or_default());
    let role = seg
        .field(4)
        .map(|e| dt::codeable_concept(e, o))
        .unwrap_or(Value::Null);
    for xcn in reps(seg.field(3)).collect::<Vec<_>>() {
        if let Some(r) = ctx.practitioner(xcn) {
            let mut p = Obj::new().with("actor", r).with("status", status);
            p.push("type", role.clone());
            ctx.push_on(a, "participant", p);
        }
    }
    Ok(())
}
