//! MSH to MessageHeader (`MSH[MessageHeader]`), MSH and EVN to Provenance
//! (`MSH[Provenance-Source]`, `EVN[Provenance]`), MSA and ERR to the
//! MessageHeader's response (`MSA[MessageHeader]`).

use hl7v2::Segment;
use serde_json::Value;

use crate::convert::{Ctx, Kind};
use crate::datatypes::{self as dt, comp, text};
use crate::error::ConvertError;
use crate::ids::stable_id;
use crate::json::{Obj, reference, string};

/// EVN: EVN-2 recorded date/time and EVN-6 event occurred for the
/// Provenance, EVN-5 operator as an agent.
pub fn evn(ctx: &mut Ctx<'_>, seg: &Segment<'_>) -> Result<(), ConvertError> {
    let recorded = seg.field(6).map(|e| comp(e, 1)).filter(|s| !s.is_empty());
    let recorded = recorded.or_else(|| seg.field(2).map(|e| comp(e, 1)).filter(|s| !s.is_empty()));
    ctx.recorded = recorded.map(|r| r.into_owned());
    if let Some(op) = ctx.practitioner_field(seg.field(5)) {
        ctx.operator = Some(op);
    }
    Ok(())
}

/// MSA: the acknowledgement becomes MessageHeader.response in `finish`.
pub fn msa(_ctx: &mut Ctx<'_>, _seg: &Segment<'_>) -> Result<(), ConvertError> {
    Ok(())
}

/// ERR (in an ACK): an OperationOutcome issue per ERR segment.
pub fn err(ctx: &mut Ctx<'_>, seg: &Segment<'_>) -> Result<(), ConvertError> {
    if ctx.kind != Kind::Ack {
        return Ok(());
    }
    let f = |n: usize| seg.field(n);
    let severity = match f(4).map(|e| comp(e, 1)).as_deref() {
        Some("W") => "warning",
        Some("I") => "information",
        Some("F") => "fatal",
        _ => "error",
    };
    let mut issue = Obj::new()
        .with("severity", severity)
        .with("code", "processing");
    // ERR-3 error code (table 0357), ERR-8 user message, ERR-1 (v2.4 and
    // older: code and location in one field)
    let code = f(3)
        .map(|e| dt::codeable_concept(e, ctx.options))
        .unwrap_or(Value::Null);
    let message = f(8).map(text).unwrap_or_default();
    let mut details = match code {
        Value::Object(m) => Obj(m),
        _ => Obj::new(),
    };
    if !message.is_empty() {
        details.0.remove("text");
        details.text("text", &message);
    }
    issue.set("details", details);
    let location = f(2).map(text).unwrap_or_default();
    let legacy = f(1).map(text).unwrap_or_default();
    let diagnostics = [location, legacy]
        .into_iter()
        .filter(|s| !s.is_empty())
        .collect::<Vec<_>>()
        .join(" ");
    issue.text("diagnostics", &diagnostics);
    let id = stable_id("OperationOutcome", &[&ctx.sender, &ctx.msg.control_id()]);
    let i = ctx.add("OperationOutcome", id, Obj::new());
    ctx.push_on(i, "issue", issue);
    Ok(())
}

/// An `id`-typed value: FHIR ids are `[A-Za-z0-9-.]{1,64}`.
fn fhir_id(s: &str) -> Option<String> {
    let cleaned: String = s
        .trim()
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '.' {
                c
            } else {
                '-'
            }
        })
        .take(64)
        .collect();
    (!cleaned.is_empty()).then_some(cleaned)
}

/// `HD[MessageHeader.source-endpoint]`: the application's URI.
fn endpoint(ctx: &Ctx<'_>, field: usize, fallback: &str) -> String {
    let msh = ctx.msg.segment(0);
    msh.field(field)
        .and_then(|e| dt::hd_element_uri(e, ctx.options))
        .unwrap_or_else(|| format!("{}/application/{}", ctx.options.identifier_base, fallback))
}

/// Adds the MessageHeader and the Provenance once every resource is known.
pub fn finish(ctx: &mut Ctx<'_>) {
    let o = ctx.options;
    let msh = ctx.msg.segment(0);
    let f = |n: usize| msh.field(n);
    let control_id = ctx.msg.control_id().to_string();
    let mut header = Obj::new();
    // MSH-9: eventCoding (event, table 0003; else message type, table 0076)
    let code = f(9).map(|e| comp(e, 1)).unwrap_or_default();
    let event = f(9).map(|e| comp(e, 2)).unwrap_or_default();
    let coding = if event.is_empty() {
        Obj::new()
            .with("system", "http://terminology.hl7.org/CodeSystem/v2-0076")
            .with(
                "code",
                dt::code_value(if code.is_empty() { "ACK" } else { &code }),
            )
    } else {
        Obj::new()
            .with("system", "http://terminology.hl7.org/CodeSystem/v2-0003")
            .with("code", dt::code_value(&event))
    };
    header.set("eventCoding", coding);
    // MSH-5/MSH-6: destination; MSH-3/MSH-4: source
    let receiving_app = f(5).map(|e| comp(e, 1)).unwrap_or_default();
    let receiving_facility = f(6).map(|e| comp(e, 1)).unwrap_or_default();
    if !receiving_app.is_empty() || !receiving_facility.is_empty() {
        let fallback = dt::url_segment(if receiving_app.is_empty() {
            "receiver"
        } else {
            &receiving_app
        });
        let receiver = ctx.organization(&receiving_facility, Value::Null);
        header.push(
            "destination",
            Obj::new()
                .with("name", string(&receiving_app))
                .with("endpoint", endpoint(ctx, 5, &fallback))
                .with("receiver", receiver.unwrap_or(Value::Null)),
        );
    }
    let sending_app = f(3).map(|e| comp(e, 1)).unwrap_or_default();
    let fallback = dt::url_segment(if sending_app.is_empty() {
        "sender"
    } else {
        &sending_app
    });
    let source_endpoint = endpoint(ctx, 3, &fallback);
    header.set(
        "source",
        Obj::new()
            .with("name", string(&sending_app))
            .with("endpoint", source_endpoint.as_str()),
    );
    let sending_facility = f(4).map(|e| comp(e, 1)).unwrap_or_default();
    let sender = ctx.organization(&sending_facility, Value::Null);
    header.set("sender", sender.unwrap_or(Value::Null));
    // MSA: response (MSA-1 AA/CA ok, AE/CE transient-error, AR/CR fatal-error)
    if let Some(msa) = ctx.msg.find_segment(b"MSA", 1) {
        let ack = msa.field(1).map(|e| comp(e, 1)).unwrap_or_default();
        let status = match &*ack {
            "AA" | "CA" => "ok",
            "AR" | "CR" => "fatal-error",
            _ => "transient-error",
        };
        if let Some(id) = msa.field(2).and_then(|e| fhir_id(&comp(e, 1))) {
            let mut response = Obj::new().with("identifier", id).with("code", status);
            if let Some(oo) = ctx
                .entries
                .iter()
                .position(|e| e.resource_type == "OperationOutcome")
            {
                response.set("details", ctx.reference_to(oo));
            }
            header.set("response", response);
        }
    }
    let mut focus: Vec<Value> = Vec::new();
    for e in &ctx.entries {
        if !matches!(
            e.resource_type,
            "Practitioner"
                | "PractitionerRole"
                | "Organization"
                | "Location"
                | "Device"
                | "OperationOutcome"
        ) {
            focus.push(reference(e.resource_type, &e.id));
        }
    }
    header.set("focus", focus);
    let header_id = stable_id("MessageHeader", &[&ctx.sender, &control_id]);
    ctx.add("MessageHeader", header_id, header);
    // Everything the message produced, the MessageHeader included (an ACK
    // produces nothing else).
    let targets: Vec<Value> = (0..ctx.entries.len())
        .map(|i| ctx.reference_to(i))
        .collect();

    // Provenance: what the message produced, when, from whom.
    let msh7 = f(7).map(|e| comp(e, 1)).unwrap_or_default();
    let parsed = crate::datetime::parse(&msh7);
    let mut provenance = Obj::new();
    let recorded = parsed.as_ref().and_then(|p| p.instant(o.timezone.as_ref()));
    // MSH-7 without an offset and no zone configured: this message's times
    // without an offset were all read as UTC.
    let assumed_utc = o.timezone.is_none();
    let Some(recorded) = recorded else {
        // No usable MSH-7: nothing to say when; the MessageHeader still
        // says where from.
        return;
    };
    provenance.set("target", targets);
    provenance.set("recorded", recorded);
    if assumed_utc {
        provenance.set(
            "_recorded",
            Obj::new().with(
                "extension",
                vec![
                    Obj::new()
                        .with(
                            "url",
                            format!("{}/StructureDefinition/assumed-utc", o.identifier_base),
                        )
                        .with("valueBoolean", true)
                        .build(),
                ],
            ),
        );
    }
    if let Some(occurred) = ctx.recorded.as_deref().map(|r| dt::date_time_value(r, o)) {
        provenance.set("occurredDateTime", occurred);
    }
    // EVN-1 / MSH-9.2: activity
    if !ctx.event.is_empty() {
        provenance.set(
            "activity",
            Obj::new().with(
                "coding",
                vec![
                    Obj::new()
                        .with("system", "http://terminology.hl7.org/CodeSystem/v2-0003")
                        .with("code", dt::code_value(&ctx.event))
                        .build(),
                ],
            ),
        );
    }
    let author_type = |code: &str| {
        Obj::new().with(
            "coding",
            vec![
                Obj::new()
                    .with(
                        "system",
                        "http://terminology.hl7.org/CodeSystem/provenance-participant-type",
                    )
                    .with("code", code)
                    .build(),
            ],
        )
    };
    let source_display = [&*sending_app, &*sending_facility]
        .into_iter()
        .filter(|s| !s.is_empty())
        .collect::<Vec<_>>()
        .join(" at ");
    let who = match ctx.entries.iter().position(|e| {
        e.resource_type == "Organization"
            && !sending_facility.is_empty()
            && e.resource["name"] == *sending_facility
    }) {
        Some(org) => {
            let mut r = match ctx.reference_to(org) {
                Value::Object(m) => Obj(m),
                _ => Obj::new(),
            };
            r.text("display", &source_display);
            r.build()
        }
        None => Obj::new()
            .with(
                "display",
                if source_display.is_empty() {
                    "unknown sender".to_string()
                } else {
                    source_display
                },
            )
            .build(),
    };
    provenance.push(
        "agent",
        Obj::new()
            .with("type", author_type("author"))
            .with("who", who),
    );
    if let Some(op) = ctx.operator.clone() {
        provenance.push(
            "agent",
            Obj::new()
                .with("type", author_type("enterer"))
                .with("who", op),
        );
    }
    let message_type = f(9).map(text).unwrap_or_default();
    provenance.push(
        "entity",
        Obj::new().with("role", "source").with(
            "what",
            Obj::new()
                .with(
                    "identifier",
                    Obj::new()
                        .with("system", source_endpoint)
                        .with("value", string(&control_id)),
                )
                .with(
                    "display",
                    format!("HL7 v2 {} message", message_type.replace('^', " ")),
                ),
        ),
    );
    let id = stable_id("Provenance", &[&ctx.sender, &control_id]);
    ctx.add("Provenance", id, provenance);
}

/// A message type the guide has no map for: what was converted and what
/// was not, as an OperationOutcome of the Bundle. Resources FHIR requires
/// a patient for are left out when the message names none.
pub fn not_covered(ctx: &mut Ctx<'_>) {
    let message_type = ctx
        .msg
        .segment(0)
        .field(9)
        .map(|f| text(f).into_owned())
        .unwrap_or_default();
    let mut dropped: Vec<&'static str> = Vec::new();
    if ctx.patient.is_none() {
        let mut keep = 0;
        for i in 0..ctx.entries.len() {
            let rt = ctx.entries[i].resource_type;
            if crate::convert::PATIENT_REQUIRED.contains(&rt) {
                if !dropped.contains(&rt) {
                    dropped.push(rt);
                }
                continue;
            }
            ctx.entries.swap(keep, i);
            ctx.origins.swap(keep, i);
            keep += 1;
        }
        ctx.entries.truncate(keep);
        ctx.origins.truncate(keep);
    }
    let segments: Vec<String> = ctx
        .skipped
        .iter()
        .filter_map(|&i| {
            ctx.msg
                .segments()
                .nth(i)
                .map(|s| format!("{} (segment {})", s.name_str(), i + 1))
        })
        .collect();
    let mut diagnostics = format!(
        "message type {message_type} has no map in the v2-to-FHIR guide: converted from the segments Corridor maps"
    );
    if !segments.is_empty() {
        diagnostics.push_str("; not converted: ");
        diagnostics.push_str(&segments.join(", "));
    }
    if !dropped.is_empty() {
        diagnostics.push_str("; left out for want of a PID (FHIR requires a patient): ");
        diagnostics.push_str(&dropped.join(", "));
    }
    let issue = Obj::new()
        .with("severity", "information")
        .with("code", "not-supported")
        .with("diagnostics", diagnostics);
    let id = stable_id("OperationOutcome", &[&ctx.sender, &ctx.msg.control_id()]);
    let i = ctx.add("OperationOutcome", id, Obj::new());
    ctx.push_on(i, "issue", issue);
}
