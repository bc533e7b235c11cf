//! ORC, OBR, OBX, NTE, SPM and TQ1: orders (ServiceRequest), results
//! (DiagnosticReport, Observation), specimens and notes.

use hl7v2::{Element, Segment};
use serde_json::Value;

use crate::convert::{Ctx, Kind};
use crate::datatypes::{self as dt, comp, reps, sub, text};
use crate::error::ConvertError;
use crate::ids::stable_id;
use crate::json::{Obj, string};
use crate::segments::close_group;
use crate::segments::pharmacy::add_timing;
use crate::vocab::ConceptMap;

/// ORC starts an order group; the OBR, RXO/RXE or RXA after it completes it.
pub fn orc<'m>(ctx: &mut Ctx<'m>, seg: &Segment<'m>) -> Result<(), ConvertError> {
    finish_orc_only(ctx);
    close_group(ctx);
    ctx.group.orc = Some(seg.clone());
    ctx.note_target = None;
    Ok(())
}

/// An order message with an ORC and nothing after it (a cancel, a status
/// change) still says something about the order: a ServiceRequest from the
/// ORC alone.
pub fn finish_orc_only(ctx: &mut Ctx<'_>) {
    let g = &ctx.group;
    if ctx.kind == Kind::Order
        && g.orc.is_some()
        && g.service_request.is_none()
        && g.medication.is_none()
    {
        service_request(ctx, None);
    }
}

/// The identifiers and key of an order: placer (ORC-2 / OBR-2 / RXx) and
/// filler (ORC-3 / OBR-3) numbers, the filler's first as the key.
pub fn order_identifiers(ctx: &Ctx<'_>, other: Option<&Segment<'_>>) -> (Vec<Value>, String) {
    let o = ctx.options;
    let orc = ctx.group.orc.as_ref();
    let pick = |n: usize| -> Option<Element<'_>> {
        orc.and_then(|s| s.field(n))
            .filter(|e| !comp(*e, 1).is_empty())
            .or_else(|| {
                other
                    .and_then(|s| s.field(n))
                    .filter(|e| !comp(*e, 1).is_empty())
            })
    };
    let placer = pick(2);
    let filler = pick(3);
    let mut ids = Vec::new();
    let mut key = None;
    // ORC-3/OBR-3: identifier (FILL); ORC-2/OBR-2: identifier (PLAC)
    for (e, kind) in [(filler, "FILL"), (placer, "PLAC")] {
        if let Some(e) = e {
            let id = dt::typed_identifier(e, kind, o);
            if !id.is_null() {
                if key.is_none() {
                    key = Some(format!(
                        "{}|{}|{}",
                        kind,
                        id["system"].as_str().unwrap_or(""),
                        comp(e, 1)
                    ));
                }
                ids.push(id);
            }
        }
    }
    (ids, key.unwrap_or_else(|| ctx.message_key()))
}

/// OBR-5/TQ1-9/ORC-7.6 priority (table 0027) to request-priority.
pub fn priority(code: &str) -> Option<&'static str> {
    match code.trim().to_ascii_uppercase().as_str() {
        "S" => Some("stat"),
        "A" => Some("asap"),
        "R" => Some("routine"),
        "T" | "C" => Some("urgent"),
        _ => None,
    }
}

/// `OBR[ServiceRequest]` and `ORC[ServiceRequest]`.
fn service_request(ctx: &mut Ctx<'_>, obr: Option<&Segment<'_>>) -> usize {
    let o = ctx.options;
    let orc = ctx.group.orc.clone();
    let (ids, key) = order_identifiers(ctx, obr);
    let mut sr = Obj::new();
    sr.extend("identifier", ids);
    // ORC-4: requisition (placer group number)
    if let Some(g) = orc.as_ref().and_then(|s| s.field(4)) {
        sr.set("requisition", dt::typed_identifier(g, "PGN", o));
    }
    // ORC-5 order status (OrderStatus), else ORC-1 (OrderControlCode)
    let order_status = orc
        .as_ref()
        .and_then(|s| s.field(5))
        .map(|e| comp(e, 1))
        .unwrap_or_default();
    let control = orc
        .as_ref()
        .and_then(|s| s.field(1))
        .map(|e| comp(e, 1))
        .unwrap_or_default();
    let status = ConceptMap::OrderStatus
        .lookup(&order_status)
        .or_else(|| ConceptMap::OrderControlCodeStatus.lookup(&control))
        .map(|c| c.code.as_str())
        .unwrap_or(if ctx.kind == Kind::Order {
            "active"
        } else {
            "unknown"
        });
    sr.set("status", status);
    sr.set("intent", "order");
    if let Some(obr) = obr {
        // OBR-4: code
        if let Some(code) = obr.field(4) {
            sr.set("code", dt::codeable_concept(code, o));
        }
        // OBR-5 / OBR-27.6: priority
        let p = obr.field(5).map(|e| comp(e, 1)).unwrap_or_default();
        let p = if p.is_empty() {
            obr.field(27).map(|e| comp(e, 6)).unwrap_or_default()
        } else {
            p
        };
        if let Some(p) = priority(&p) {
            sr.set("priority", p);
        }
        // OBR-6 requested date/time: occurrenceDateTime
        sr.set(
            "occurrenceDateTime",
            obr.field(6)
                .map(|e| dt::date_time_value(&comp(e, 1), o))
                .unwrap_or(Value::Null),
        );
        // OBR-31: reasonCode
        for r in reps(obr.field(31)) {
            sr.push("reasonCode", dt::codeable_concept(r, o));
        }
        // OBR-13: relevant clinical information, as supportingInfo's text (R4
        // has no CodeableReference for the guide's R5 extension).
        for info in reps(obr.field(13)) {
            let shown = [comp(info, 2), comp(info, 1)]
                .into_iter()
                .find(|t| !t.is_empty())
                .unwrap_or_default();
            sr.push("supportingInfo", Obj::new().with("display", &*shown));
        }
    }
    if let Some(orc) = orc.as_ref() {
        // ORC-7.6 priority (TQ)
        if !sr.has("priority") {
            if let Some(p) = orc
                .field(7)
                .map(|e| comp(e, 6))
                .as_deref()
                .and_then(priority)
            {
                sr.set("priority", p);
            }
        }
        // ORC-9: authoredOn
        sr.set(
            "authoredOn",
            orc.field(9)
                .map(|e| dt::date_time_value(&comp(e, 1), o))
                .unwrap_or(Value::Null),
        );
    }
    // Two OBRs under one order number (a case notification's subject and
    // notification) are two requests: the second is numbered.
    let (key, id) = ctx.unused_record_key("ServiceRequest", key);
    let i = ctx.add("ServiceRequest", id, sr);
    // ORC-12 / OBR-16: requester
    let requester = ctx
        .practitioner_field(orc.as_ref().and_then(|s| s.field(12)))
        .or_else(|| ctx.practitioner_field(obr.and_then(|s| s.field(16))));
    if let Some(mut r) = requester {
        // OBR-17: the number to call back about the order, on the requester.
        if let Some(xtn) = reps(obr.and_then(|s| s.field(17))).next() {
            let phone = dt::contact_point(xtn, None);
            if let (Value::Object(r), false) = (&mut r, phone.is_null()) {
                r.insert(
                    "extension".into(),
                    Value::Array(vec![
                        Obj::new()
                            .with(
                                "url",
                                "http://hl7.org/fhir/StructureDefinition/servicerequest-order-callback-phone-number",
                            )
                            .with("valueContactPoint", phone)
                            .build(),
                    ]),
                );
            }
        }
        ctx.set_on(i, "requester", r);
    }
    ctx.group.service_request = Some(i);
    ctx.group.key = key;
    i
}

/// `OBR[ServiceRequest]`, and in results `OBR[DiagnosticReport]` based on it.
pub fn obr(ctx: &mut Ctx<'_>, seg: &Segment<'_>) -> Result<(), ConvertError> {
    let o = ctx.options;
    if ctx.group.service_request.is_some() || ctx.group.report.is_some() {
        // A second OBR under one ORC (or with none) starts its own group.
        close_group(ctx);
    }
    let sr = service_request(ctx, Some(seg));
    link_to_parent(ctx, seg, sr);
    ctx.note_target = Some((sr, "note"));
    if !matches!(ctx.kind, Kind::Result) {
        ctx.group.orc = None;
        return Ok(());
    }
    let f = |n: usize| seg.field(n);
    let mut dr = Obj::new();
    let identifiers = ctx.entries[sr].resource.get("identifier").cloned();
    dr.set("identifier", identifiers.unwrap_or(Value::Null));
    dr.push("basedOn", ctx.reference_to(sr));
    // OBR-25: status (ResultStatus)
    let status = f(25)
        .and_then(|e| ConceptMap::ResultStatus.lookup(&comp(e, 1)))
        .map(|c| c.code.as_str())
        .unwrap_or("unknown");
    dr.set("status", status);
    // OBR-24: category (diagnostic service section, table 0074)
    if let Some(c) = f(24) {
        dr.push("category", dt::table_concept(&comp(c, 1), "0074", None));
    }
    // OBR-4: code (required: the text "unknown" when absent)
    let code = f(4)
        .map(|e| dt::codeable_concept(e, o))
        .unwrap_or(Value::Null);
    dr.set(
        "code",
        if code.is_null() {
            Obj::new().with("text", "unknown").build()
        } else {
            code
        },
    );
    // OBR-7 / OBR-8: effectiveDateTime or effectivePeriod
    let start = f(7)
        .map(|e| dt::date_time_value(&comp(e, 1), o))
        .unwrap_or(Value::Null);
    let end = f(8)
        .map(|e| dt::date_time_value(&comp(e, 1), o))
        .unwrap_or(Value::Null);
    if end.is_null() {
        dr.set("effectiveDateTime", start);
    } else {
        dr.set(
            "effectivePeriod",
            Obj::new().with("start", start).with("end", end),
        );
    }
    // OBR-22: issued (an instant)
    if let Some(issued) =
        f(22).and_then(|e| crate::datetime::to_instant(&comp(e, 1), o.timezone.as_ref()))
    {
        dr.set("issued", issued);
    }
    let key = ctx.group.key.clone();
    let id = ctx.record_id("DiagnosticReport", &[&key]);
    let i = ctx.add("DiagnosticReport", id, dr);
    // OBR-32: resultsInterpreter (NDL.1 is a CNN in subcomponents)
    if let Some(ndl) = f(32) {
        let family = sub(ndl, 1, 2);
        let given = sub(ndl, 1, 3);
        let idv = sub(ndl, 1, 1);
        if !(family.is_empty() && idv.is_empty()) {
            let mut p = Obj::new();
            p.push(
                "name",
                Obj::new().with("family", string(&family)).with(
                    "given",
                    if given.is_empty() {
                        Value::Null
                    } else {
                        vec![Value::from(given)].into()
                    },
                ),
            );
            if !idv.is_empty() {
                p.push("identifier", Obj::new().with("value", &*idv));
            }
            let pid = stable_id("Practitioner", &[&format!("ndl|{idv}|{family}")]);
            let pi = ctx.add("Practitioner", pid, p);
            let r = ctx.reference_to(pi);
            ctx.push_on(i, "resultsInterpreter", r);
        }
    }
    ctx.group.report = Some(i);
    ctx.group.orc = None;
    Ok(())
}

/// OBX-2 value type and OBX-5 to `value[x]`.
fn observation_value(ctx: &Ctx<'_>, seg: &Segment<'_>, obs: &mut Obj) {
    let o = ctx.options;
    let value_type = seg.field(2).map(|e| comp(e, 1)).unwrap_or_default();
    let Some(field) = seg.field(5) else { return };
    let first = field.repetition(1);
    if text(first).is_empty() {
        return;
    }
    let units = seg.field(6);
    // `>60` mL/min/1.73m2 (an eGFR) is a bounded quantity, whether the
    // sender calls it NM or, having units, ST.
    let has_units = units.is_some_and(|u| !comp(u, 1).is_empty());
    if value_type == "NM" || (has_units && matches!(&*value_type, "ST" | "TX" | "")) {
        if let Some(q) = bounded_quantity(&text(first), units, o) {
            obs.set("valueQuantity", q);
            return;
        }
    }
    match &*value_type {
        "NM" => match dt::decimal(&comp(first, 1)) {
            Some(v) => {
                obs.set("valueQuantity", dt::quantity(v, units, o));
            }
            None => {
                obs.text("valueString", &text(first));
            }
        },
        "SN" => structured_numeric(first, units, obs, o),
        "CQ" => match dt::decimal(&comp(first, 1)) {
            Some(v) => {
                obs.set(
                    "valueQuantity",
                    dt::quantity(
                        v,
                        Some(first.component(2)).filter(|u| !u.is_empty()).or(units),
                        o,
                    ),
                );
            }
            None => {
                obs.text("valueString", &text(first));
            }
        },
        "CE" | "CWE" | "CNE" | "CF" | "IS" | "ID" => {
            let cc = if matches!(&*value_type, "IS" | "ID") {
                Obj::new().with("text", string(&text(first))).build()
            } else {
                dt::codeable_concept(first, o)
            };
            obs.set("valueCodeableConcept", cc);
        }
        "DT" | "DTM" | "TS" => {
            let v = dt::date_time_value(&comp(first, 1), o);
            if v.is_null() {
                obs.text("valueString", &text(first));
            } else {
                obs.set("valueDateTime", v);
            }
        }
        "TM" => {
            let t = comp(first, 1);
            let digits: String = t.chars().take_while(|c| c.is_ascii_digit()).collect();
            if digits.len() >= 4 && digits.len() % 2 == 0 {
                let hh = &digits[0..2];
                let mm = &digits[2..4];
                let ss = digits.get(4..6).unwrap_or("00");
                obs.set("valueTime", format!("{hh}:{mm}:{ss}"));
            } else {
                obs.text("valueString", &t);
            }
        }
        "NR" => {
            let mut range = Obj::new();
            range.set(
                "low",
                dt::decimal(&comp(first, 1))
                    .map(|v| dt::quantity(v, units, o))
                    .unwrap_or(Value::Null),
            );
            range.set(
                "high",
                dt::decimal(&comp(first, 2))
                    .map(|v| dt::quantity(v, units, o))
                    .unwrap_or(Value::Null),
            );
            obs.set("valueRange", range);
        }
        _ => {
            // ST, TX, FT and anything else readable: the text, repetitions
            // on their own lines.
            let formatting = hl7v2::Formatting::Render;
            let lines: Vec<String> = field
                .children()
                .map(|r| r.text_with(formatting).trim_end().to_string())
                .collect();
            let joined = lines.join("\n");
            let joined = if matches!(&*value_type, "ST" | "TX" | "FT" | "") {
                joined
            } else {
                joined
                    .replace(['^', '&'], " ")
                    .split_whitespace()
                    .collect::<Vec<_>>()
                    .join(" ")
            };
            obs.text("valueString", &joined);
        }
    }
}

/// A value written as a comparator and a number (`>60`, `<= 0.5`) as a
/// Quantity with its comparator and units.
fn bounded_quantity(value: &str, units: Option<Element<'_>>, o: &crate::Options) -> Option<Value> {
    let value = value.trim();
    let comparator = ["<=", ">=", "<", ">"]
        .into_iter()
        .find(|c| value.starts_with(c))?;
    let number = dt::decimal(value[comparator.len()..].trim())?;
    let mut q = match dt::quantity(number, units, o) {
        Value::Object(m) => Obj(m),
        _ => return None,
    };
    q.set("comparator", comparator);
    Some(q.build())
}

/// `SN[Quantity]`, `SN[Range]`, `SN[Ratio]`: comparator, numbers and the
/// separator between them.
fn structured_numeric(
    sn: Element<'_>,
    units: Option<Element<'_>>,
    obs: &mut Obj,
    o: &crate::Options,
) {
    let comparator = comp(sn, 1);
    let n1 = dt::decimal(&comp(sn, 2));
    let separator = comp(sn, 3);
    let n2 = dt::decimal(&comp(sn, 4));
    match (&*separator, n1, n2) {
        (":" | "/", Some(a), Some(b)) => {
            obs.set(
                "valueRatio",
                Obj::new()
                    .with("numerator", Obj::new().with("value", a))
                    .with("denominator", Obj::new().with("value", b)),
            );
        }
        ("-", a, b) if a.is_some() || b.is_some() => {
            obs.set(
                "valueRange",
                Obj::new()
                    .with(
                        "low",
                        a.map(|v| dt::quantity(v, units, o)).unwrap_or(Value::Null),
                    )
                    .with(
                        "high",
                        b.map(|v| dt::quantity(v, units, o)).unwrap_or(Value::Null),
                    ),
            );
        }
        ("" | "+", Some(a), None) => {
            let mut q = match dt::quantity(a, units, o) {
                Value::Object(m) => Obj(m),
                _ => Obj::new(),
            };
            if matches!(&*comparator, "<" | ">" | "<=" | ">=") {
                q.set("comparator", &*comparator);
            }
            obs.set("valueQuantity", q);
        }
        _ => {
            let t = [comparator, comp(sn, 2), separator, comp(sn, 4)].concat();
            obs.text("valueString", &t);
        }
    }
}

/// OBX-7 "low-high", "<x", ">x" or free text to a referenceRange.
fn reference_range(range: &str, units: Option<Element<'_>>, o: &crate::Options) -> Value {
    let r = range.trim();
    if r.is_empty() {
        return Value::Null;
    }
    let q = |v: &str| {
        dt::decimal(v)
            .map(|n| dt::quantity(n, units, o))
            .unwrap_or(Value::Null)
    };
    let mut rr = Obj::new();
    if let Some(rest) = r.strip_prefix("<=").or_else(|| r.strip_prefix('<')) {
        rr.set("high", q(rest));
    } else if let Some(rest) = r.strip_prefix(">=").or_else(|| r.strip_prefix('>')) {
        rr.set("low", q(rest));
    } else if let Some((a, b)) = r
        .get(1..)
        .and_then(|tail| tail.split_once('-'))
        .map(|(a, b)| (&r[..a.len() + 1], b))
    {
        rr.set("low", q(a));
        rr.set("high", q(b));
    }
    if rr.is_empty() {
        rr.text("text", r);
    }
    rr.build()
}

/// `OBX[Observation]`.
pub fn obx<'m>(ctx: &mut Ctx<'m>, seg: &Segment<'m>) -> Result<(), ConvertError> {
    let o = ctx.options;
    let f = |n: usize| seg.field(n);
    let value_type = f(2).map(|e| comp(e, 1)).unwrap_or_default();
    // An ED result is a document: DiagnosticReport.presentedForm (R4
    // Observation has no attachment value).
    if value_type == "ED" {
        if let (Some(report), Some(v)) = (ctx.group.report, f(5)) {
            let attachment = crate::segments::documents::ed_attachment(v.repetition(1));
            ctx.push_on(report, "presentedForm", attachment);
            return Ok(());
        }
    }
    let mut obs = Obj::new();
    // OBX-11: status (ObservationResultStatusCodesInterpretation)
    let status = f(11)
        .and_then(|e| ConceptMap::ObservationResultStatus.lookup(&comp(e, 1)))
        .map(|c| c.code.as_str())
        .unwrap_or("unknown");
    obs.set("status", status);
    if ctx.kind == Kind::Result {
        obs.push(
            "category",
            Obj::new().with(
                "coding",
                vec![
                    Obj::new()
                        .with(
                            "system",
                            "http://terminology.hl7.org/CodeSystem/observation-category",
                        )
                        .with("code", "laboratory")
                        .with("display", "Laboratory")
                        .build(),
                ],
            ),
        );
    }
    // OBX-3: code (required)
    let code = f(3)
        .map(|e| dt::codeable_concept(e, o))
        .unwrap_or(Value::Null);
    obs.set(
        "code",
        if code.is_null() {
            Obj::new().with("text", "unknown").build()
        } else {
            code
        },
    );
    // OBX-2/OBX-5: value[x], OBX-6 units
    observation_value(ctx, seg, &mut obs);
    // OBX-7: referenceRange
    if let Some(r) = f(7) {
        obs.push("referenceRange", reference_range(&text(r), f(6), o));
    }
    // OBX-8: interpretation (InterpretationCodes)
    for code in reps(f(8)) {
        obs.push(
            "interpretation",
            dt::mapped_concept(code, ConceptMap::InterpretationCodes, "0078", o),
        );
    }
    // OBX-14: effectiveDateTime, else the report's time (OBR-7)
    let effective = f(14)
        .map(|e| dt::date_time_value(&comp(e, 1), o))
        .unwrap_or(Value::Null);
    let effective = if effective.is_null() {
        ctx.group
            .report
            .and_then(|r| ctx.entries[r].resource.get("effectiveDateTime").cloned())
            .unwrap_or(Value::Null)
    } else {
        effective
    };
    obs.set("effectiveDateTime", effective);
    // OBX-19: the time of the analysis (an extension: `issued` is when the
    // result was released)
    let analysed = f(19)
        .map(|e| dt::date_time_value(&comp(e, 1), o))
        .unwrap_or(Value::Null);
    if !analysed.is_null() {
        obs.push(
            "extension",
            Obj::new()
                .with(
                    "url",
                    "http://hl7.org/fhir/StructureDefinition/observation-analysis-date-time",
                )
                .with("valueDateTime", analysed),
        );
    }
    // OBX-17: method
    if let Some(m) = reps(f(17)).next() {
        obs.set("method", dt::codeable_concept(m, o));
    }
    // OBX-4: the sub-id that ties a micro result's observations (an isolate,
    // its susceptibilities) together (OG[Extension-Subidentifier]).
    let sub_id = f(4).map(text).unwrap_or_default();
    if !sub_id.is_empty() {
        obs.push(
            "extension",
            Obj::new()
                .with(
                    "url",
                    "http://hl7.org/fhir/StructureDefinition/observation-v2-subid",
                )
                .with("valueString", &*sub_id),
        );
    }
    if let Some(parent) = ctx.group.parent_observation {
        obs.push("derivedFrom", ctx.reference_to(parent));
    }
    if let Some(sr) = ctx.group.service_request {
        obs.push("basedOn", ctx.reference_to(sr));
    }
    if let Some(m) = ctx.group.medication {
        if ctx.entries[m].resource_type == "Immunization"
            || ctx.entries[m].resource_type == "MedicationAdministration"
        {
            obs.push("partOf", ctx.reference_to(m));
        }
    }
    // Key: the order (filler number) and the OBX's set id, code and sub-id;
    // outside an order, the message and segment.
    let group_key = if ctx.group.key.is_empty() {
        ctx.message_key()
    } else {
        ctx.group.key.clone()
    };
    let key = format!(
        "{}|{}|{}|{}",
        group_key,
        f(1).map(text).unwrap_or_default(),
        f(3).map(|e| comp(e, 1)).unwrap_or_default(),
        f(4).map(text).unwrap_or_default()
    );
    // Senders repeat set ids and codes (two OBX|1 for one test): each OBX
    // is its own Observation, numbered by its place among its twins.
    let (_, id) = ctx.unused_record_key("Observation", key);
    let i = ctx.add("Observation", id, obs);
    // OBX-16 responsible observer, OBX-23 performing organization: performer
    if let Some(r) = ctx.practitioner_field(f(16)) {
        ctx.push_on(i, "performer", r);
    }
    // OBX-23 performing organization, OBX-24 its address, OBX-25 its
    // medical director (a PractitionerRole of the organization)
    let lab = reps(f(23)).next().and_then(|xon| ctx.organization_xon(xon));
    if let Some(lab) = &lab {
        if let Some(org) = ctx.referenced(lab) {
            if let Some(xad) = reps(f(24)).next() {
                ctx.push_on(org, "address", dt::address(xad));
            }
        }
    }
    let director = ctx.practitioner_field(f(25));
    match (director, lab) {
        (Some(director), lab) => {
            let role = ctx.practitioner_role(director, lab, "MDIR", "Medical Director");
            ctx.push_on(i, "performer", role);
        }
        (None, Some(lab)) => ctx.push_on(i, "performer", lab),
        (None, None) => {}
    }
    // OBX-18: the equipment that made the result
    if let Some(ei) = reps(f(18)).next() {
        if let Some(device) = ctx.device(ei) {
            ctx.set_on(i, "device", device);
        }
    }
    if let Some(parent) = ctx.group.parent_observation {
        let r = ctx.reference_to(i);
        ctx.push_on(parent, "hasMember", r);
    }
    if let Some(request) = ctx.group.service_request {
        ctx.results.push(crate::convert::ResultKey {
            request,
            obx: seg.clone(),
            observation: i,
        });
    }
    ctx.group.observations.push(i);
    ctx.note_target = Some((i, "note"));
    Ok(())
}

/// OBR-29 (parent order: EIP.1 placer, EIP.2 filler) and OBR-26 (parent
/// result: OBX-3 code and OBX-4 sub-id of the isolate): a susceptibility
/// order is based on its parent order and its results derive from the
/// isolate's observation.
fn link_to_parent(ctx: &mut Ctx<'_>, obr: &Segment<'_>, sr: usize) {
    let Some(parent_order) = obr.field(29) else {
        return;
    };
    let o = ctx.options;
    let numbers: Vec<(String, Value)> = [(2, "FILL"), (1, "PLAC")]
        .into_iter()
        .filter_map(|(n, kind)| {
            let value = sub(parent_order, n, 1);
            if value.is_empty() {
                return None;
            }
            let system = dt::hd_uri(
                &sub(parent_order, n, 2),
                &sub(parent_order, n, 3),
                &sub(parent_order, n, 4),
                o,
            );
            let identifier = Obj::new()
                .with("type", dt::identifier_type(kind))
                .with("system", system.map(Value::from).unwrap_or(Value::Null))
                .with("value", &*value)
                .build();
            Some((value.into_owned(), identifier))
        })
        .collect();
    let Some((_, identifier)) = numbers.first() else {
        return;
    };
    let parent_request = ctx.entries.iter().position(|e| {
        e.resource_type == "ServiceRequest"
            && e.resource["identifier"].as_array().is_some_and(|ids| {
                ids.iter()
                    .any(|id| numbers.iter().any(|(n, _)| id["value"] == n.as_str()))
            })
    });
    let based_on = match parent_request.filter(|p| *p != sr) {
        Some(p) => ctx.reference_to(p),
        None => Obj::new()
            .with("type", "ServiceRequest")
            .with("identifier", identifier.clone())
            .build(),
    };
    ctx.push_on(sr, "basedOn", based_on);
    let Some(parent_result) = obr.field(26) else {
        return;
    };
    let code = sub(parent_result, 1, 1);
    let sub_id = comp(parent_result, 2);
    let entries = &ctx.entries;
    let of_parent_order = |request: usize| {
        entries[request].resource["identifier"]
            .as_array()
            .is_some_and(|ids| {
                ids.iter()
                    .any(|id| numbers.iter().any(|(n, _)| id["value"] == n.as_str()))
            })
    };
    ctx.group.parent_observation = ctx
        .results
        .iter()
        .find(|r| {
            r.obx.field(3).map(|e| comp(e, 1)).unwrap_or_default() == code
                && r.obx.field(4).map(text).unwrap_or_default() == sub_id
                && of_parent_order(r.request)
        })
        .map(|r| r.observation);
}

/// `NTE[...]`: an Annotation (NTE-3 comment, NTE-5 entered by) on what the
/// NTE follows.
pub fn nte(ctx: &mut Ctx<'_>, seg: &Segment<'_>) -> Result<(), ConvertError> {
    let Some(comment) = seg.field(3) else {
        return Ok(());
    };
    let lines: Vec<String> = comment
        .children()
        .map(|r| {
            r.text_with(hl7v2::Formatting::Render)
                .trim_end()
                .to_string()
        })
        .collect();
    let joined = lines.join("\n");
    if joined.trim().is_empty() {
        return Ok(());
    }
    let mut note = Obj::new().with("text", joined.as_str());
    let author = seg.field(5).map(|e| {
        [sub(e, 3, 1), sub(e, 2, 1)]
            .into_iter()
            .filter(|s| !s.is_empty())
            .collect::<Vec<_>>()
            .join(" ")
    });
    if let Some(a) = author.filter(|a| !a.is_empty()) {
        note.set("authorString", a);
    }
    ctx.add_note(note.build());
    Ok(())
}

/// `SPM[Specimen]`.
pub fn spm(ctx: &mut Ctx<'_>, seg: &Segment<'_>) -> Result<(), ConvertError> {
    let o = ctx.options;
    let f = |n: usize| seg.field(n);
    let mut s = Obj::new();
    let mut key = None;
    // SPM-2: identifier (EIP.1 placer, EIP.2 filler, in subcomponents)
    if let Some(eip) = f(2) {
        for (n, kind) in [(2, "FILL"), (1, "PLAC")] {
            let value = sub(eip, n, 1);
            if value.is_empty() {
                continue;
            }
            let system = dt::hd_uri(&sub(eip, n, 2), &sub(eip, n, 3), &sub(eip, n, 4), o);
            if key.is_none() {
                key = Some(format!(
                    "{kind}|{}|{value}",
                    system.clone().unwrap_or_default()
                ));
            }
            s.push(
                "identifier",
                Obj::new()
                    .with("type", dt::identifier_type(kind))
                    .with("system", system.map(Value::from).unwrap_or(Value::Null))
                    .with("value", &*value),
            );
        }
    }
    // SPM-30: accessionIdentifier
    if let Some(cx) = reps(f(30)).next() {
        s.set("accessionIdentifier", dt::identifier_cx(cx, o));
    }
    // SPM-4: type
    if let Some(t) = f(4) {
        s.set("type", dt::codeable_concept(t, o));
    }
    // SPM-17 collection period, SPM-7 method, SPM-8 body site, SPM-12 quantity
    let mut collection = Obj::new();
    if let Some(dr) = f(17) {
        let start = dt::date_time_value(&sub(dr, 1, 1), o);
        let end = dt::date_time_value(&sub(dr, 2, 1), o);
        if end.is_null() {
            collection.set("collectedDateTime", start);
        } else {
            collection.set(
                "collectedPeriod",
                Obj::new().with("start", start).with("end", end),
            );
        }
    }
    if let Some(m) = f(7) {
        collection.set("method", dt::codeable_concept(m, o));
    }
    if let Some(b) = f(8) {
        collection.set("bodySite", dt::codeable_concept(b, o));
    }
    if let Some(q) = f(12) {
        if let Some(v) = dt::decimal(&comp(q, 1)) {
            collection.set("quantity", dt::quantity(v, Some(q.component(2)), o));
        }
    }
    s.set("collection", collection);
    // SPM-18: receivedTime
    s.set(
        "receivedTime",
        f(18)
            .map(|e| dt::date_time_value(&comp(e, 1), o))
            .unwrap_or(Value::Null),
    );
    // SPM-24: condition
    for c in reps(f(24)) {
        s.push("condition", dt::codeable_concept(c, o));
    }
    if let Some(sr) = ctx.group.service_request {
        s.push("request", ctx.reference_to(sr));
    }
    let key = key.unwrap_or_else(|| {
        let group = if ctx.group.key.is_empty() {
            ctx.message_key()
        } else {
            ctx.group.key.clone()
        };
        format!("{group}|{}", f(1).map(text).unwrap_or_default())
    });
    let id = ctx.record_id("Specimen", &[&key]);
    let i = ctx.add("Specimen", id.clone(), s);
    if !ctx.group.specimens.contains(&id) {
        ctx.group.specimens.push(id);
    }
    ctx.note_target = Some((i, "note"));
    Ok(())
}

/// `TQ1[ServiceRequest]`, `TQ1[MedicationRequest]`: TQ1-7/TQ1-8 start and
/// end, TQ1-9 priority.
pub fn tq1(ctx: &mut Ctx<'_>, seg: &Segment<'_>) -> Result<(), ConvertError> {
    let o = ctx.options;
    let start = seg
        .field(7)
        .map(|e| dt::date_time_value(&comp(e, 1), o))
        .unwrap_or(Value::Null);
    let end = seg
        .field(8)
        .map(|e| dt::date_time_value(&comp(e, 1), o))
        .unwrap_or(Value::Null);
    let prio = seg.field(9).map(|e| comp(e, 1)).unwrap_or_default();
    if let Some(m) = ctx.group.medication {
        if ctx.entries[m].resource_type == "MedicationRequest" {
            // TQ1-3 repeat pattern (RPT.1, a CWE in subcomponents)
            let pattern = seg.field(3);
            let (mut timing, as_needed) = dt::repeat_pattern(
                &pattern.map(|e| sub(e, 1, 1)).unwrap_or_default(),
                &pattern.map(|e| sub(e, 1, 2)).unwrap_or_default(),
            );
            let mut repeat = match timing.0.remove("repeat") {
                Some(Value::Object(r)) => Obj(r),
                _ => Obj::new(),
            };
            // TQ1-7/TQ1-8 boundsPeriod, else TQ1-6 service duration
            let period = Obj::new()
                .with("start", start.clone())
                .with("end", end.clone())
                .build();
            if !period.is_null() {
                repeat.set("boundsPeriod", period);
            } else if let Some(d) = seg.field(6) {
                if let Some(v) = dt::decimal(&comp(d, 1)) {
                    repeat.set("boundsDuration", dt::duration(v, &sub(d, 2, 1)));
                }
            }
            timing.set("repeat", repeat);
            add_timing(ctx, m, timing, as_needed);
            // TQ1-2 quantity: the dose, when RXE/RXO gave none
            if let Some(q) = seg.field(2) {
                if let Some(v) = dt::decimal(&comp(q, 1)) {
                    let dose = dt::quantity(v, Some(q.component(2)).filter(|u| !u.is_empty()), o);
                    let dose_and_rate = serde_json::json!([{ "doseQuantity": dose }]);
                    let target = ctx.resource_mut(m);
                    match target.get_mut("dosageInstruction") {
                        Some(Value::Array(items)) => {
                            if let Some(Value::Object(dosage)) = items.first_mut() {
                                dosage.entry("doseAndRate").or_insert(dose_and_rate);
                            }
                        }
                        _ => {
                            target.insert(
                                "dosageInstruction".into(),
                                serde_json::json!([{ "doseAndRate": dose_and_rate }]),
                            );
                        }
                    }
                }
            }
            if let Some(p) = priority(&prio) {
                ctx.set_on(m, "priority", p);
            }
            return Ok(());
        }
    }
    if let Some(sr) = ctx.group.service_request {
        let has_occurrence = ctx.entries[sr].resource.get("occurrenceDateTime").is_some();
        if !has_occurrence {
            if end.is_null() {
                ctx.set_on(sr, "occurrenceDateTime", start);
            } else {
                ctx.set_on(
                    sr,
                    "occurrencePeriod",
                    Obj::new().with("start", start).with("end", end),
                );
            }
        }
        if let Some(p) = priority(&prio) {
            ctx.set_on(sr, "priority", p);
        }
    }
    Ok(())
}
