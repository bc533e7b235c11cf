//! ROL and PRT: people and organizations taking part in the patient's care
//! (`ROL[Encounter-PractitionerRole]`, `ROL[Patient-GeneralPractitioner]`,
//! `PRT[PractitionerRole]`).

use hl7v2::Segment;
use serde_json::Value;

use crate::convert::Ctx;
use crate::datatypes::{self as dt, comp, reps};
use crate::error::ConvertError;
use crate::ids::stable_id;
use crate::json::Obj;

/// Roles that make the person the patient's general practitioner: primary
/// care provider (tables 0443 and 0912) and family health care professional.
fn is_general_practitioner(role: &str) -> bool {
    matches!(role, "PP" | "FHCP")
}

/// A PractitionerRole of `practitioner` (and `organization`) with `code`,
/// `period` and `telecom`, keyed on all three references and the code.
fn practitioner_role(
    ctx: &mut Ctx<'_>,
    practitioner: Option<Value>,
    organization: Option<Value>,
    code: Value,
    period: Value,
    telecom: Vec<Value>,
) -> Value {
    let key = [
        practitioner
            .as_ref()
            .and_then(|p| p["reference"].as_str())
            .unwrap_or_default()
            .to_string(),
        organization
            .as_ref()
            .and_then(|o| o["reference"].as_str())
            .unwrap_or_default()
            .to_string(),
        code.to_string(),
    ];
    let key: Vec<&str> = key.iter().map(String::as_str).collect();
    let id = stable_id("PractitionerRole", &key);
    let mut role = Obj::new();
    role.set("practitioner", practitioner.unwrap_or(Value::Null));
    role.set("organization", organization.unwrap_or(Value::Null));
    role.push("code", code);
    role.set("period", period);
    role.extend("telecom", telecom);
    let i = ctx.add("PractitionerRole", id, role);
    ctx.reference_to(i)
}

/// Adds the address of a person to the Practitioner a reference names.
fn add_address(ctx: &mut Ctx<'_>, practitioner: &Option<Value>, address: Vec<Value>) {
    if let Some(i) = practitioner.as_ref().and_then(|p| ctx.referenced(p)) {
        for a in address {
            ctx.push_on(i, "address", a);
        }
    }
}

fn period(ctx: &Ctx<'_>, seg: &Segment<'_>, start: usize, end: usize) -> Value {
    let at = |n: usize| {
        seg.field(n)
            .map(|e| dt::date_time_value(&comp(e, 1), ctx.options))
            .unwrap_or(Value::Null)
    };
    Obj::new()
        .with("start", at(start))
        .with("end", at(end))
        .build()
}

/// ROL: ROL-4 person in ROL-3 role (table 0443) from ROL-5 to ROL-6. A
/// primary care provider is the Patient's generalPractitioner (a
/// PractitionerRole with ROL-14 organization and ROL-12 phones); other
/// roles take part in the Encounter (`participant`), when there is one.
pub fn rol(ctx: &mut Ctx<'_>, seg: &Segment<'_>) -> Result<(), ConvertError> {
    let o = ctx.options;
    let f = |n: usize| seg.field(n);
    let role_code = f(3).map(|e| comp(e, 1)).unwrap_or_default();
    let role = f(3).map(|e| dt::coded(e, "0443", o)).unwrap_or(Value::Null);
    let period = period(ctx, seg, 5, 6);
    let telecom: Vec<Value> = reps(f(12)).map(|x| dt::contact_point(x, None)).collect();
    let address: Vec<Value> = reps(f(11)).map(dt::address).collect();
    let practitioner = ctx.practitioner_field(f(4));
    add_address(ctx, &practitioner, address);
    let organization = f(14).and_then(|x| ctx.organization_xon(x.repetition(1)));
    if is_general_practitioner(&role_code) {
        let Some(p) = ctx.patient else { return Ok(()) };
        let r = practitioner_role(ctx, practitioner, organization, role, period, telecom);
        ctx.push_on(p, "generalPractitioner", r);
        return Ok(());
    }
    if let (Some(e), Some(who)) = (ctx.encounter, practitioner) {
        let mut participant = Obj::new();
        participant.push("type", role);
        participant.set("period", period);
        participant.set("individual", who);
        ctx.push_on(e, "participant", participant);
    }
    Ok(())
}

/// PRT: PRT-5 person (or PRT-8 organization, PRT-10 device) in PRT-4 role
/// (table 0912), as a PractitionerRole (PRT-6 specialty, PRT-9 location,
/// PRT-11/12 period, PRT-14 address, PRT-15 telecom). Where it goes: a
/// primary care provider is the Patient's generalPractitioner; the ordering
/// provider (OP) the order's requester; in an order, other roles perform
/// its last result (or the order when it has no result yet); outside
/// orders, they take part in the Encounter. A device performs nothing in
/// R4: it becomes the result's `device`.
pub fn prt(ctx: &mut Ctx<'_>, seg: &Segment<'_>) -> Result<(), ConvertError> {
    let o = ctx.options;
    let f = |n: usize| seg.field(n);
    let role_code = f(4).map(|e| comp(e, 1)).unwrap_or_default();
    let role = f(4).map(|e| dt::coded(e, "0912", o)).unwrap_or(Value::Null);
    let practitioner = ctx.practitioner_field(f(5));
    add_address(ctx, &practitioner, reps(f(14)).map(dt::address).collect());
    let organization = f(8).and_then(|x| ctx.organization_xon(x.repetition(1)));
    let device = reps(f(10)).next().and_then(|ei| ctx.device(ei));
    let last_result = ctx.group.observations.last().copied();
    if let (Some(d), Some(obs)) = (&device, last_result) {
        ctx.set_on(obs, "device", d.clone());
    }
    let who = match (&practitioner, &organization) {
        (None, None) => return Ok(()),
        (None, Some(org)) if !is_general_practitioner(&role_code) => org.clone(),
        _ => {
            let period = period(ctx, seg, 11, 12);
            let telecom = reps(f(15)).map(|x| dt::contact_point(x, None)).collect();
            let r = practitioner_role(
                ctx,
                practitioner.clone(),
                organization.clone(),
                role.clone(),
                period,
                telecom,
            );
            if let Some(i) = ctx.referenced(&r) {
                if let Some(s) = f(6) {
                    ctx.push_on(i, "specialty", dt::codeable_concept(s, o));
                }
                if let Some(l) = f(9).and_then(|pl| ctx.location(pl.repetition(1))) {
                    ctx.push_on(i, "location", l);
                }
            }
            r
        }
    };
    if is_general_practitioner(&role_code) {
        if let Some(p) = ctx.patient {
            ctx.push_on(p, "generalPractitioner", who);
        }
        return Ok(());
    }
    if let Some(request) = ctx.group.service_request {
        if matches!(role_code.as_ref(), "OP" | "OPO") {
            ctx.set_on(request, "requester", who);
        } else if let Some(obs) = last_result {
            ctx.push_on(obs, "performer", who);
        } else {
            ctx.push_on(request, "performer", who);
        }
        return Ok(());
    }
    if let Some(e) = ctx.encounter {
        if who["reference"]
            .as_str()
            .is_some_and(|r| r.starts_with("PractitionerRole/"))
        {
            let mut participant = Obj::new();
            participant.push("type", role);
            participant.set("individual", who);
            ctx.push_on(e, "participant", participant);
        }
    }
    Ok(())
}
