//! PID, PD1, NK1 and MRG to Patient (`PID[Patient]`, `PD1[Patient]`,
//! `NK1[Patient]`), and MRG as Patient links.

use hl7v2::{Element, Segment};
use serde_json::Value;

use crate::convert::{Ctx, Kind};
use crate::datatypes::{self as dt, comp, reps, text};
use crate::error::ConvertError;
use crate::ids::stable_id;
use crate::json::{Obj, string};
use crate::vocab::ConceptMap;

/// The business key of a CX identifier: system and value.
pub fn cx_key(cx: Element<'_>, ctx: &Ctx<'_>) -> Option<String> {
    let value = comp(cx, 1);
    if value.is_empty() {
        return None;
    }
    let system = dt::hd_sub_uri(cx, 4, ctx.options).unwrap_or_default();
    Some(format!("{system}|{value}"))
}

/// `CX[Identifier]` of a patient identifier (PID-3, MRG-1): without an
/// assigning authority its system is the sender's (`MSH-3@MSH-4`), as the
/// patient index names it ([`crate::identity`]), so the identifier the FHIR
/// API shows is the one the index answers for.
fn patient_identifier(cx: Element<'_>, ctx: &Ctx<'_>) -> Value {
    let mut id = dt::identifier_cx(cx, ctx.options);
    if let Value::Object(fields) = &mut id
        && !fields.contains_key("system")
    {
        let msh = ctx.msg.find_segment(b"MSH", 1);
        let part = |n: usize| {
            msh.as_ref()
                .and_then(|s| s.field(n))
                .map(|f| comp(f, 1).into_owned())
                .unwrap_or_default()
        };
        let sender = crate::identity::sender_name(&part(3), &part(4));
        let system = crate::identity::system_of(&sender, &ctx.options.identifier_base);
        fields.insert("system".into(), Value::from(system));
    }
    id
}

/// The Patient id for a PID: from the first PID-3 identifier with a value,
/// else PID-2 or PID-4 (older versions), else name, birth date and sex.
fn patient_key(ctx: &Ctx<'_>, seg: &Segment<'_>) -> String {
    for n in [3, 2, 4] {
        if let Some(key) = reps(seg.field(n)).find_map(|cx| cx_key(cx, ctx)) {
            return key;
        }
    }
    let name = seg.field(5).map(text).unwrap_or_default();
    let birth = seg.field(7).map(text).unwrap_or_default();
    if !name.is_empty() {
        let sex = seg.field(8).map(text).unwrap_or_default();
        return format!("demographics|{name}|{birth}|{sex}");
    }
    ctx.message_key()
}

fn extension(url: &str, value_key: &str, value: Value) -> Value {
    if value.is_null() {
        return Value::Null;
    }
    Obj::new().with("url", url).with(value_key, value).build()
}

/// A US Core race or ethnicity extension from a repeating CWE field: OMB
/// codes as `ombCategory`, others as `detailed`, and the text the
/// extension requires (the displays, else the codes).
fn us_core_category(
    field: Option<Element<'_>>,
    url: &str,
    omb_codes: &[&str],
    o: &crate::Options,
) -> Value {
    let mut parts = Vec::new();
    let mut shown = Vec::new();
    for rep in reps(field) {
        let cc = dt::codeable_concept(rep, o);
        if let Some(coding) = cc["coding"].as_array().and_then(|c| c.first()) {
            let code = coding["code"].as_str().unwrap_or_default();
            let slot = if omb_codes.contains(&code) {
                "ombCategory"
            } else {
                "detailed"
            };
            parts.push(
                Obj::new()
                    .with("url", slot)
                    .with("valueCoding", coding.clone())
                    .build(),
            );
        }
        let label = cc["text"]
            .as_str()
            .or_else(|| cc["coding"][0]["display"].as_str())
            .or_else(|| cc["coding"][0]["code"].as_str())
            .unwrap_or_default()
            .to_string();
        if !label.is_empty() {
            shown.push(label);
        }
    }
    if shown.is_empty() {
        return Value::Null;
    }
    parts.push(
        Obj::new()
            .with("url", "text")
            .with("valueString", shown.join(", "))
            .build(),
    );
    Obj::new().with("url", url).with("extension", parts).build()
}

/// `PID[Patient]`.
pub fn pid(ctx: &mut Ctx<'_>, seg: &Segment<'_>) -> Result<(), ConvertError> {
    let merges = ctx.msg.find_segment(b"MRG", 1).is_some();
    // A37 (unlink) names the two patients it separates, each in its own PID:
    // both are written, active, without links.
    let unlinks = ctx.event == "A37";
    // A response may list several patients (RSP^K22, ...), each its own.
    let lists = ctx.kind == Kind::Other;
    if ctx.patient.is_some() && !merges && !unlinks && !lists {
        // A second PID (A17 swaps two patients' beds) belongs to a second
        // person; only the first is the message's subject.
        return Ok(());
    }
    let o = ctx.options;
    let f = |n: usize| seg.field(n);
    let mut p = Obj::new();
    // PID-2, PID-3, PID-4: identifier[1..3]
    for n in [2, 3, 4] {
        for cx in reps(f(n)) {
            let id = if n == 3 {
                patient_identifier(cx, ctx)
            } else {
                dt::identifier_cx(cx, o)
            };
            if !p
                .get("identifier")
                .is_some_and(|a| a.as_array().is_some_and(|a| a.contains(&id)))
            {
                p.push("identifier", id);
            }
        }
    }
    // PID-19: identifier[4], SSN
    let ssn = f(19).map(|e| comp(e, 1)).unwrap_or_default();
    if !ssn.is_empty() {
        p.push(
            "identifier",
            Obj::new()
                .with("type", dt::identifier_type("SS"))
                .with("system", "http://hl7.org/fhir/sid/us-ssn")
                .with("value", &*ssn),
        );
    }
    // PID-20: identifier[5], driver's license (DLN.1, DLN.2 issuing state)
    if let Some(dln) = f(20) {
        let number = comp(dln, 1);
        if !number.is_empty() {
            let state = comp(dln, 2);
            let system = if state.is_empty() {
                Value::Null
            } else {
                Value::from(format!(
                    "{}/drivers-license/{}",
                    o.identifier_base,
                    dt::url_segment(&state)
                ))
            };
            p.push(
                "identifier",
                Obj::new()
                    .with("type", dt::identifier_type("DL"))
                    .with("system", system)
                    .with("value", &*number),
            );
        }
    }
    // PID-5: name[1]; PID-9: name[2]
    for n in [5, 9] {
        for xpn in reps(f(n)) {
            p.push("name", dt::human_name(xpn));
        }
    }
    // PID-6: extension patient-mothersMaidenName
    if let Some(xpn) = f(6) {
        p.push(
            "extension",
            extension(
                "http://hl7.org/fhir/StructureDefinition/patient-mothersMaidenName",
                "valueString",
                string(&dt::sub(xpn, 1, 1)),
            ),
        );
    }
    // PID-7: birthDate, and the birthTime extension when a time is sent
    if let Some(birth) = f(7) {
        let v = comp(birth, 1);
        if let Some(parsed) = crate::datetime::parse(&v) {
            let mut birth_date = parsed.date();
            if parsed.hour.is_some() {
                let time = parsed.date_time(o.timezone.as_ref());
                if time.contains('T') {
                    p.set(
                        "_birthDate",
                        Obj::new().with(
                            "extension",
                            vec![extension(
                                "http://hl7.org/fhir/StructureDefinition/patient-birthTime",
                                "valueDateTime",
                                Value::from(time),
                            )],
                        ),
                    );
                }
            }
            birth_date.truncate(10);
            p.set("birthDate", birth_date);
        }
    }
    // PID-8: gender (AdministrativeSex)
    if let Some(sex) = f(8) {
        if let Some(c) = ConceptMap::AdministrativeSex.lookup(&comp(sex, 1)) {
            p.set("gender", c.code.as_str());
        }
    }
    // PID-11: address[1]; PID-12: address[1].district
    for xad in reps(f(11)) {
        p.push("address", dt::address(xad));
    }
    let county = f(12).map(|e| comp(e, 1)).unwrap_or_default();
    if !county.is_empty() {
        if let Some(Value::Array(addresses)) = p.0.get_mut("address") {
            if let Some(Value::Object(first)) = addresses.first_mut() {
                first.entry("district").or_insert(Value::from(county));
            }
        }
    }
    // PID-13: telecom (home), PID-14: telecom (work), PID-40: telecom
    for (n, use_) in [(13, Some("home")), (14, Some("work")), (40, None)] {
        for xtn in reps(f(n)) {
            p.push("telecom", dt::contact_point(xtn, use_));
        }
    }
    // PID-15: communication.language
    if let Some(lang) = f(15) {
        let cc = dt::codeable_concept(lang, o);
        if !cc.is_null() {
            p.push("communication", Obj::new().with("language", cc));
        }
    }
    // PID-16: maritalStatus (MaritalStatus)
    if let Some(ms) = f(16) {
        p.set(
            "maritalStatus",
            dt::mapped_concept(ms, ConceptMap::MaritalStatus, "0002", o),
        );
    }
    // PID-17: extension patient-religion
    if let Some(rel) = f(17) {
        p.push(
            "extension",
            extension(
                "http://hl7.org/fhir/StructureDefinition/patient-religion",
                "valueCodeableConcept",
                dt::codeable_concept(rel, o),
            ),
        );
    }
    // PID-10 race, PID-22 ethnic group: the US Core extensions (the guide
    // leaves the extension to the realm).
    p.push(
        "extension",
        us_core_category(
            f(10),
            "http://hl7.org/fhir/us/core/StructureDefinition/us-core-race",
            &[
                "1002-5", "2028-9", "2054-5", "2076-8", "2106-3", "UNK", "ASKU",
            ],
            o,
        ),
    );
    p.push(
        "extension",
        us_core_category(
            f(22),
            "http://hl7.org/fhir/us/core/StructureDefinition/us-core-ethnicity",
            &["2135-2", "2186-5", "UNK", "ASKU"],
            o,
        ),
    );
    // PID-23: extension patient-birthPlace
    let birth_place = f(23).map(text).unwrap_or_default();
    if !birth_place.is_empty() {
        p.push(
            "extension",
            extension(
                "http://hl7.org/fhir/StructureDefinition/patient-birthPlace",
                "valueAddress",
                Obj::new().with("text", &*birth_place).build(),
            ),
        );
    }
    // PID-24: multipleBirthBoolean; PID-25: multipleBirthInteger
    let birth_order = f(25).map(text).unwrap_or_default();
    match birth_order.parse::<i64>() {
        Ok(n) => {
            p.set("multipleBirthInteger", n);
        }
        Err(_) => match f(24).map(text).as_deref() {
            Some("Y") => {
                p.set("multipleBirthBoolean", true);
            }
            Some("N") => {
                p.set("multipleBirthBoolean", false);
            }
            _ => {}
        },
    }
    // PID-29: deceasedDateTime; PID-30: deceasedBoolean
    let death = f(29)
        .map(|e| dt::date_time_value(&comp(e, 1), o))
        .unwrap_or(Value::Null);
    if !death.is_null() {
        p.set("deceasedDateTime", death);
    } else {
        match f(30).map(text).as_deref() {
            Some("Y") => {
                p.set("deceasedBoolean", true);
            }
            Some("N") => {
                p.set("deceasedBoolean", false);
            }
            _ => {}
        }
    }
    if unlinks {
        p.set("active", true);
    }
    let key = patient_key(ctx, seg);
    let id = stable_id("Patient", &[&key]);
    let i = ctx.add("Patient", id, p);
    ctx.latest_pid = Some(i);
    if ctx.patient.is_some() {
        if ctx.kind == Kind::Other {
            // A response listing several patients (RSP^K22, ...): what
            // came before is the previous patient's, what follows this one's.
            crate::convert::link_to_patient_and_encounter(ctx);
            crate::segments::close_group(ctx);
            ctx.patient = Some(i);
            ctx.encounter = None;
            ctx.note_target = None;
        }
        // Else a further PID/MRG pair of a merge message (its own
        // survivor), or the second patient of an unlink.
        return Ok(());
    }
    ctx.patient = Some(i);
    ctx.note_target = None;
    // PID-18: the patient account (guide: PID[Account]), for the messages
    // that carry visits and charges.
    if matches!(ctx.kind, Kind::Adt | Kind::Financial) {
        if let Some(account) = f(18).filter(|e| !comp(*e, 1).is_empty()) {
            crate::segments::financial::account(ctx, account);
        }
    }
    Ok(())
}

/// `PD1[Patient]`: PD1-3 primary facility and PD1-4 primary care provider
/// as generalPractitioner.
pub fn pd1(ctx: &mut Ctx<'_>, seg: &Segment<'_>) -> Result<(), ConvertError> {
    let Some(p) = ctx.patient else { return Ok(()) };
    for xcn in reps(seg.field(4)).collect::<Vec<_>>() {
        if let Some(r) = ctx.practitioner(xcn) {
            ctx.push_on(p, "generalPractitioner", r);
        }
    }
    if let Some(xon) = reps(seg.field(3)).next() {
        if let Some(r) = ctx.organization_xon(xon) {
            ctx.push_on(p, "generalPractitioner", r);
        }
    }
    Ok(())
}

/// `NK1[Patient]`: a Patient.contact.
pub fn nk1(ctx: &mut Ctx<'_>, seg: &Segment<'_>) -> Result<(), ConvertError> {
    let Some(p) = ctx.patient else { return Ok(()) };
    let o = ctx.options;
    let f = |n: usize| seg.field(n);
    let mut contact = Obj::new();
    // NK1-3: relationship; NK1-7: contact role (ContactRole)
    if let Some(rel) = f(3) {
        contact.push(
            "relationship",
            dt::mapped_concept(rel, ConceptMap::Relationship, "0063", o),
        );
    }
    if let Some(role) = f(7) {
        contact.push(
            "relationship",
            dt::mapped_concept(role, ConceptMap::ContactRole, "0131", o),
        );
    }
    // NK1-2: name
    if let Some(xpn) = reps(f(2)).next() {
        contact.set("name", dt::human_name(xpn));
    }
    // NK1-5 (home), NK1-6 (work), NK1-40 telecom
    for (n, use_) in [(5, Some("home")), (6, Some("work")), (40, None)] {
        for xtn in reps(f(n)) {
            contact.push("telecom", dt::contact_point(xtn, use_));
        }
    }
    // NK1-4: address
    if let Some(xad) = reps(f(4)).next() {
        contact.set("address", dt::address(xad));
    }
    // NK1-15: gender
    if let Some(c) = f(15).and_then(|s| ConceptMap::AdministrativeSex.lookup(&comp(s, 1))) {
        contact.set("gender", c.code.as_str());
    }
    // NK1-8/NK1-9: period
    let mut period = Obj::new();
    period.set(
        "start",
        f(8).map(|e| dt::date_time_value(&comp(e, 1), o))
            .unwrap_or(Value::Null),
    );
    period.set(
        "end",
        f(9).map(|e| dt::date_time_value(&comp(e, 1), o))
            .unwrap_or(Value::Null),
    );
    contact.set("period", period);
    // NK1-13: organization
    if let Some(xon) = reps(f(13)).next() {
        if let Some(org) = ctx.organization_xon(xon) {
            contact.set("organization", org);
        }
    }
    // A contact of only a relationship says nothing (FHIR pat-1 needs a
    // name, telecom, address or organization).
    if ["name", "telecom", "address", "organization"]
        .iter()
        .any(|k| contact.has(k))
    {
        ctx.push_on(p, "contact", contact);
    }
    Ok(())
}

/// MRG (A40, A34, ...): the surviving Patient `replaces` the merged one,
/// which is kept `active: false` with a `replaced-by` link.
pub fn mrg(ctx: &mut Ctx<'_>, seg: &Segment<'_>) -> Result<(), ConvertError> {
    let Some(p) = ctx.latest_pid else {
        return Ok(());
    };
    let prior: Vec<Element<'_>> = reps(seg.field(1)).chain(reps(seg.field(4))).collect();
    let Some(key) = prior.iter().find_map(|cx| cx_key(*cx, ctx)) else {
        return Ok(());
    };
    let old_id = stable_id("Patient", &[&key]);
    if old_id == ctx.entries[p].id {
        return Ok(());
    }
    let mut old = Obj::new();
    for cx in &prior {
        old.push("identifier", patient_identifier(*cx, ctx));
    }
    old.set("active", false);
    if let Some(xpn) = reps(seg.field(7)).next() {
        old.push("name", dt::human_name(xpn));
    }
    old.push(
        "link",
        Obj::new()
            .with("other", ctx.reference_to(p))
            .with("type", "replaced-by"),
    );
    let i = ctx.add("Patient", old_id, old);
    let r = ctx.reference_to(i);
    ctx.push_on(
        p,
        "link",
        Obj::new().with("other", r).with("type", "replaces"),
    );
    Ok(())
}
