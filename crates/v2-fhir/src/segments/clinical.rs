//! AL1 and IAM to AllergyIntolerance, DG1 to Condition (and
//! Encounter.diagnosis), PR1 to Procedure.

use hl7v2::{Element, Segment};
use serde_json::Value;

use crate::convert::Ctx;
use crate::datatypes::{self as dt, comp, reps, text};
use crate::error::ConvertError;
use crate::ids::stable_id;
use crate::json::{Obj, string};
use crate::vocab::ConceptMap;

fn status_concept(system: &str, code: &str) -> Value {
    Obj::new()
        .with(
            "coding",
            vec![Obj::new().with("system", system).with("code", code).build()],
        )
        .build()
}

/// The key of a coded element: its code and system, else its text.
fn code_key(e: Option<Element<'_>>) -> String {
    e.map(|e| {
        format!(
            "{}|{}|{}",
            comp(e, 3),
            comp(e, 1),
            if comp(e, 1).is_empty() {
                comp(e, 2)
            } else {
                "".into()
            }
        )
    })
    .unwrap_or_default()
}

fn patient_key(ctx: &Ctx<'_>) -> String {
    ctx.patient
        .map(|p| ctx.entries[p].id.clone())
        .unwrap_or_else(|| ctx.message_key())
}

/// Shared by AL1 and IAM: allergen type (field 2), code (3), severity (4),
/// reactions (5).
fn allergy_common(ctx: &Ctx<'_>, seg: &Segment<'_>, a: &mut Obj) {
    let o = ctx.options;
    let f = |n: usize| seg.field(n);
    let allergen_type = f(2).map(|e| comp(e, 1)).unwrap_or_default();
    // AL1-2: category (AllergenType[AllergyIntoleranceCategory]), type (AllergyType)
    if let Some(c) = ConceptMap::AllergenType.lookup(&allergen_type) {
        a.push("category", c.code.as_str());
    }
    if let Some(c) = ConceptMap::AllergyType.lookup(&allergen_type) {
        a.set("type", c.code.as_str());
    }
    // AL1-3: code
    if let Some(code) = f(3) {
        a.set("code", dt::codeable_concept(code, o));
    }
    // AL1-4: criticality (AllergySeverity[...criticality]) else reaction.severity
    let severity = f(4).map(|e| comp(e, 1)).unwrap_or_default();
    let criticality = ConceptMap::AllergySeverityCriticality.lookup(&severity);
    if let Some(c) = criticality {
        a.set("criticality", c.code.as_str());
    }
    // AL1-5: reaction.manifestation.text (one reaction per repetition)
    let reaction_severity = if criticality.is_none() {
        ConceptMap::AllergySeverityReaction
            .lookup(&severity)
            .map(|c| c.code.as_str())
    } else {
        None
    };
    for r in reps(f(5)) {
        let manifestation = if comp(r, 1).is_empty() || comp(r, 3).is_empty() {
            Obj::new()
                .with("text", string(&text(r).replace(['^', '&'], " ")))
                .build()
        } else {
            dt::codeable_concept(r, o)
        };
        if manifestation.is_null() {
            continue;
        }
        let mut reaction = Obj::new().with("manifestation", vec![manifestation]);
        if let Some(s) = reaction_severity {
            reaction.set("severity", s);
        }
        a.push("reaction", reaction);
    }
}

/// `AL1[AllergyIntolerance]`.
pub fn al1(ctx: &mut Ctx<'_>, seg: &Segment<'_>) -> Result<(), ConvertError> {
    let mut a = Obj::new();
    a.set(
        "clinicalStatus",
        status_concept(
            "http://terminology.hl7.org/CodeSystem/allergyintolerance-clinical",
            "active",
        ),
    );
    allergy_common(ctx, seg, &mut a);
    // AL1-6: onsetDateTime
    if let Some(d) = seg.field(6) {
        a.set(
            "onsetDateTime",
            dt::date_time_value(&comp(d, 1), ctx.options),
        );
    }
    // One allergy per patient and allergen: a repeated AL1 updates it.
    let key = format!("{}|{}", patient_key(ctx), code_key(seg.field(3)));
    let id = stable_id("AllergyIntolerance", &[&key]);
    let i = ctx.add("AllergyIntolerance", id, a);
    ctx.note_target = Some((i, "note"));
    Ok(())
}

/// `IAM[AllergyIntolerance]` (A60): like AL1, plus IAM-6 action code, IAM-7
/// identifier, IAM-11 onset, IAM-13 reported date, IAM-17 clinical status.
pub fn iam(ctx: &mut Ctx<'_>, seg: &Segment<'_>) -> Result<(), ConvertError> {
    let o = ctx.options;
    let f = |n: usize| seg.field(n);
    let mut a = Obj::new();
    let action = f(6).map(|e| comp(e, 1)).unwrap_or_default();
    let clinical = match &*action {
        "D" => "inactive",
        _ => "active",
    };
    if action == "D" {
        a.set(
            "verificationStatus",
            status_concept(
                "http://terminology.hl7.org/CodeSystem/allergyintolerance-verification",
                "refuted",
            ),
        );
    }
    a.set(
        "clinicalStatus",
        status_concept(
            "http://terminology.hl7.org/CodeSystem/allergyintolerance-clinical",
            clinical,
        ),
    );
    allergy_common(ctx, seg, &mut a);
    // IAM-7: identifier
    let identifier = f(7).map(|e| dt::identifier_ei(e, o)).unwrap_or(Value::Null);
    a.push("identifier", identifier.clone());
    // IAM-11: onsetDateTime; IAM-12: onsetString; IAM-13: recordedDate
    let onset = f(11)
        .map(|e| dt::date_time_value(&comp(e, 1), o))
        .unwrap_or(Value::Null);
    if !onset.is_null() {
        a.set("onsetDateTime", onset);
    } else if let Some(e) = f(12) {
        a.text("onsetString", &text(e));
    }
    a.set(
        "recordedDate",
        f(13)
            .map(|e| dt::date_time_value(&comp(e, 1), o))
            .unwrap_or(Value::Null),
    );
    let key = if identifier.is_null() {
        format!("{}|{}", patient_key(ctx), code_key(f(3)))
    } else {
        identifier.to_string()
    };
    let id = stable_id("AllergyIntolerance", &[&key]);
    let i = ctx.add("AllergyIntolerance", id, a);
    // IAM-14: recorder (reported by)
    if let Some(xpn) = reps(f(14)).next() {
        let name = dt::human_name(xpn);
        if !name.is_null() {
            let rid = stable_id("RelatedPerson", &[&patient_key(ctx), &name.to_string()]);
            let mut rp = Obj::new();
            rp.push("name", name);
            if let Some(p) = ctx.patient_reference() {
                rp.set("patient", p);
                let r = ctx.add("RelatedPerson", rid, rp);
                let reference = ctx.reference_to(r);
                ctx.set_on(i, "asserter", reference);
            }
        }
    }
    ctx.note_target = Some((i, "note"));
    Ok(())
}

/// `DG1[Condition]`, and `DG1[Encounter]` (Encounter.diagnosis).
pub fn dg1(ctx: &mut Ctx<'_>, seg: &Segment<'_>) -> Result<(), ConvertError> {
    let o = ctx.options;
    let f = |n: usize| seg.field(n);
    let mut c = Obj::new();
    // DG1-3: code (DG1-4 description in older versions as text)
    let code = f(3)
        .map(|e| dt::codeable_concept(e, o))
        .unwrap_or(Value::Null);
    let code = if code.is_null() {
        Obj::new()
            .with("text", string(&f(4).map(text).unwrap_or_default()))
            .build()
    } else {
        code
    };
    c.set("code", code);
    c.push(
        "category",
        status_concept(
            "http://terminology.hl7.org/CodeSystem/condition-category",
            "encounter-diagnosis",
        ),
    );
    // DG1-5: onsetDateTime; DG1-19: recordedDate
    c.set(
        "onsetDateTime",
        f(5).map(|e| dt::date_time_value(&comp(e, 1), o))
            .unwrap_or(Value::Null),
    );
    c.set(
        "recordedDate",
        f(19)
            .map(|e| dt::date_time_value(&comp(e, 1), o))
            .unwrap_or(Value::Null),
    );
    // DG1-20: identifier
    let identifier = reps(f(20))
        .next()
        .map(|e| dt::identifier_ei(e, o))
        .unwrap_or(Value::Null);
    c.push("identifier", identifier.clone());
    let key = if identifier.is_null() {
        let encounter = ctx
            .encounter
            .map(|e| ctx.entries[e].id.clone())
            .unwrap_or_default();
        format!("{}|{}|{}", patient_key(ctx), encounter, code_key(f(3)))
    } else {
        identifier.to_string()
    };
    let id = ctx.record_id("Condition", &[&key]);
    let i = ctx.add("Condition", id, c);
    // DG1-16: asserter
    if let Some(r) = ctx.practitioner_field(f(16)) {
        ctx.set_on(i, "asserter", r);
    }
    // DG1[Encounter]: diagnosis.condition, .use (DiagnosisType), .rank (DG1-15)
    if let Some(e) = ctx.encounter {
        let mut d = Obj::new().with("condition", ctx.reference_to(i));
        if let Some(t) = f(6) {
            if let Some(concept) = ConceptMap::DiagnosisType.lookup(&comp(t, 1)) {
                d.set(
                    "use",
                    Obj::new().with("coding", vec![dt::concept_coding(concept)]),
                );
            }
        }
        if let Some(rank) = f(15)
            .map(text)
            .and_then(|r| r.parse::<u32>().ok())
            .filter(|r| *r > 0)
        {
            d.set("rank", rank);
        }
        ctx.push_on(e, "diagnosis", d);
    }
    ctx.note_target = Some((i, "note"));
    Ok(())
}

/// `PR1[Procedure]`.
pub fn pr1(ctx: &mut Ctx<'_>, seg: &Segment<'_>) -> Result<(), ConvertError> {
    let o = ctx.options;
    let f = |n: usize| seg.field(n);
    let mut p = Obj::new();
    p.set("status", "completed");
    // PR1-3: code; PR1-4: code.text when there is no code
    let code = f(3)
        .map(|e| dt::codeable_concept(e, o))
        .unwrap_or(Value::Null);
    let code = if code.is_null() {
        Obj::new()
            .with("text", string(&f(4).map(text).unwrap_or_default()))
            .build()
    } else {
        code
    };
    p.set("code", code);
    // PR1-5: performedDateTime; PR1-6: category (functional type)
    let when = f(5).map(|e| comp(e, 1)).unwrap_or_default();
    p.set("performedDateTime", dt::date_time_value(&when, o));
    if let Some(t) = f(6) {
        p.set("category", dt::table_concept(&comp(t, 1), "0230", None));
    }
    // PR1-19: identifier
    let identifier = reps(f(19))
        .next()
        .map(|e| dt::identifier_ei(e, o))
        .unwrap_or(Value::Null);
    p.push("identifier", identifier.clone());
    let key = if identifier.is_null() {
        format!("{}|{}|{}", patient_key(ctx), code_key(f(3)), when)
    } else {
        identifier.to_string()
    };
    let id = ctx.record_id("Procedure", &[&key]);
    let i = ctx.add("Procedure", id, p);
    // PR1-11 surgeon, PR1-12 procedure practitioner: performer.actor
    for n in [11, 12] {
        for xcn in reps(f(n)).collect::<Vec<_>>() {
            if let Some(r) = ctx.practitioner(xcn) {
                ctx.push_on(i, "performer", Obj::new().with("actor", r));
            }
        }
    }
    ctx.note_target = Some((i, "note"));
    Ok(())
}

/// PRB (problem messages, PPR) to Condition, a problem-list item: PRB-3
/// code, PRB-4 identifier, PRB-7 recordedDate, PRB-16 onset (PRB-17 as
/// text), PRB-9 abatement, PRB-14 life cycle status (A/active, I/inactive,
/// R/resolved) as clinicalStatus, else resolved when PRB-9 says when, else
/// active.
pub fn prb(ctx: &mut Ctx<'_>, seg: &Segment<'_>) -> Result<(), ConvertError> {
    let o = ctx.options;
    let f = |n: usize| seg.field(n);
    let at = |n: usize| {
        f(n).map(|e| dt::date_time_value(&comp(e, 1), o))
            .unwrap_or(Value::Null)
    };
    let mut c = Obj::new();
    let code = f(3)
        .map(|e| dt::codeable_concept(e, o))
        .unwrap_or(Value::Null);
    c.set("code", code);
    c.push(
        "category",
        status_concept(
            "http://terminology.hl7.org/CodeSystem/condition-category",
            "problem-list-item",
        ),
    );
    let abatement = at(9);
    let life_cycle = f(14).map(|e| comp(e, 1)).unwrap_or_default();
    let status = match life_cycle.to_ascii_lowercase().as_str() {
        "i" | "inactive" => "inactive",
        "r" | "resolved" => "resolved",
        "a" | "active" if abatement.is_null() => "active",
        _ if !abatement.is_null() => "resolved",
        _ => "active",
    };
    c.set(
        "clinicalStatus",
        status_concept(
            "http://terminology.hl7.org/CodeSystem/condition-clinical",
            status,
        ),
    );
    c.set("recordedDate", at(7));
    let onset = at(16);
    if onset.is_null() {
        c.set("onsetString", string(&f(17).map(text).unwrap_or_default()));
    } else {
        c.set("onsetDateTime", onset);
    }
    c.set("abatementDateTime", abatement);
    let identifier = f(4)
        .map(|e| dt::identifier_ei(e.repetition(1), o))
        .unwrap_or(Value::Null);
    c.push("identifier", identifier.clone());
    let key = if identifier.is_null() {
        format!("{}|problem|{}", patient_key(ctx), code_key(f(3)))
    } else {
        identifier.to_string()
    };
    let id = ctx.record_id("Condition", &[&key]);
    let i = ctx.add("Condition", id, c);
    ctx.note_target = Some((i, "note"));
    Ok(())
}
