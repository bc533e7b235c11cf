//! TXA to DocumentReference (`TXA[DocumentReference]`), and the OBX of an
//! MDM message as its content (`OBX[DocumentReference]`): text lines are
//! gathered into one `text/plain` attachment, ED values become attachments
//! of their own (`ED[Attachment]`).

use hl7v2::{Element, Segment};
use serde_json::Value;

use crate::convert::Ctx;
use crate::datatypes::{self as dt, comp, reps};
use crate::error::ConvertError;
use crate::json::Obj;

/// `TXA[DocumentReference]`.
pub fn txa(ctx: &mut Ctx<'_>, seg: &Segment<'_>) -> Result<(), ConvertError> {
    let o = ctx.options;
    let f = |n: usize| seg.field(n);
    let mut d = Obj::new();
    // TXA-12: masterIdentifier (unique document number); TXA-16: identifier
    let master = f(12)
        .map(|e| dt::identifier_ei(e, o))
        .unwrap_or(Value::Null);
    d.set("masterIdentifier", master.clone());
    if let Some(file) = f(16) {
        d.push("identifier", dt::identifier_ei(file, o));
    }
    // TXA-19 availability (table 0273) to status
    let status = match f(19).map(|e| comp(e, 1)).as_deref() {
        Some("CA") => "entered-in-error",
        Some("OB") => "superseded",
        _ => "current",
    };
    d.set("status", status);
    // TXA-17 completion status (table 0271) to docStatus
    match f(17).map(|e| comp(e, 1)).as_deref() {
        Some("AU") | Some("LA") => {
            d.set("docStatus", "final");
        }
        Some("DI") | Some("DO") | Some("IN") | Some("IP") | Some("PA") => {
            d.set("docStatus", "preliminary");
        }
        _ => {}
    }
    // TXA-2: type
    if let Some(t) = f(2) {
        d.set("type", dt::codeable_concept(t, o));
    }
    // TXA-4 activity date/time (else TXA-6 origination): date, an instant
    let date = [4, 6].into_iter().find_map(|n| {
        f(n).and_then(|e| crate::datetime::to_instant(&comp(e, 1), o.timezone.as_ref()))
    });
    d.set("date", date.map(Value::from).unwrap_or(Value::Null));
    // TXA-18: securityLabel (table 0272 to v3-Confidentiality)
    let confidentiality = match f(18).map(|e| comp(e, 1)).as_deref() {
        Some("V") => Some("V"),
        Some("R") => Some("R"),
        Some("U") => Some("N"),
        _ => None,
    };
    if let Some(c) = confidentiality {
        d.push(
            "securityLabel",
            Obj::new().with(
                "coding",
                vec![
                    Obj::new()
                        .with(
                            "system",
                            "http://terminology.hl7.org/CodeSystem/v3-Confidentiality",
                        )
                        .with("code", c)
                        .build(),
                ],
            ),
        );
    }
    let key = if master.is_null() {
        ctx.message_key()
    } else {
        master.to_string()
    };
    let id = ctx.record_id("DocumentReference", &[&key]);
    let i = ctx.add("DocumentReference", id, d);
    // TXA-9 originator and TXA-5 primary activity provider: author;
    // TXA-22: authenticator
    for n in [9, 5] {
        for xcn in reps(f(n)).collect::<Vec<_>>() {
            if let Some(r) = ctx.practitioner(xcn) {
                ctx.push_on(i, "author", r);
            }
        }
    }
    if let Some(r) = ctx.practitioner_field(f(22)) {
        ctx.set_on(i, "authenticator", r);
    }
    ctx.document = Some(i);
    ctx.note_target = None;
    Ok(())
}

/// `OBX[DocumentReference]`: the document's content.
pub fn obx<'m>(ctx: &mut Ctx<'m>, seg: &Segment<'m>) -> Result<(), ConvertError> {
    let Some(d) = ctx.document else {
        return crate::segments::orders::obx(ctx, seg);
    };
    let value_type = seg.field(2).map(|e| comp(e, 1)).unwrap_or_default();
    let Some(value) = seg.field(5) else {
        return Ok(());
    };
    if value_type == "ED" {
        for rep in value.children() {
            let attachment = ed_attachment(rep);
            if !attachment.is_null() {
                ctx.push_on(d, "content", Obj::new().with("attachment", attachment));
            }
        }
        return Ok(());
    }
    if value_type == "RP" {
        let url = comp(value, 1);
        if !url.is_empty() {
            ctx.push_on(
                d,
                "content",
                Obj::new().with("attachment", Obj::new().with("url", &*url)),
            );
        }
        return Ok(());
    }
    let lines: Vec<String> = value
        .children()
        .map(|r| r.text_with(hl7v2::Formatting::Render).to_string())
        .collect();
    ctx.document_text.push(lines.join("\n"));
    Ok(())
}

/// Gathered text lines become one `text/plain` attachment.
pub fn finish(ctx: &mut Ctx<'_>) {
    let Some(d) = ctx.document else { return };
    if !ctx.document_text.is_empty() {
        let text = ctx.document_text.join("\n");
        ctx.document_text.clear();
        let attachment = Obj::new()
            .with("contentType", "text/plain; charset=utf-8")
            .with("data", base64(text.as_bytes()));
        ctx.push_on(d, "content", Obj::new().with("attachment", attachment));
    }
    // FHIR requires content: a document announced without its text (T01)
    // is described by its type.
    if ctx.entries[d].resource.get("content").is_none() {
        let title = ctx.entries[d].resource["type"]["text"]
            .as_str()
            .or(ctx.entries[d].resource["type"]["coding"][0]["display"].as_str())
            .unwrap_or("document")
            .to_string();
        ctx.push_on(
            d,
            "content",
            Obj::new().with("attachment", Obj::new().with("title", title)),
        );
    }
}

/// `ED[Attachment]`: ED.2/ED.3 type and subtype as contentType, ED.4
/// encoding, ED.5 data (Base64 kept, Hex and text encoded).
pub fn ed_attachment(ed: Element<'_>) -> Value {
    let kind = comp(ed, 2);
    let subtype = comp(ed, 3);
    let encoding = comp(ed, 4);
    let raw = ed.component(5);
    let data = match encoding.to_ascii_uppercase().as_str() {
        "BASE64" => {
            let t: String = raw.text().chars().filter(|c| !c.is_whitespace()).collect();
            t
        }
        "HEX" => {
            let t = raw.text();
            let bytes: Vec<u8> = (0..t.len() / 2)
                .filter_map(|i| {
                    t.get(i * 2..i * 2 + 2)
                        .and_then(|h| u8::from_str_radix(h, 16).ok())
                })
                .collect();
            base64(&bytes)
        }
        _ => base64(raw.text().as_bytes()),
    };
    let content_type = match (
        kind.to_ascii_lowercase().as_str(),
        subtype.to_ascii_lowercase(),
    ) {
        ("", _) => None,
        ("application" | "text" | "image" | "audio" | "video" | "multipart", s)
            if !s.is_empty() =>
        {
            Some(format!("{}/{}", kind.to_ascii_lowercase(), s))
        }
        ("ap", s) if !s.is_empty() => Some(format!("application/{s}")),
        ("tx" | "text", _) => Some("text/plain".to_string()),
        ("im" | "image", s) if !s.is_empty() => Some(format!("image/{s}")),
        _ if subtype.eq_ignore_ascii_case("pdf") => Some("application/pdf".to_string()),
        _ => None,
    };
    Obj::new()
        .with(
            "contentType",
            content_type.map(Value::from).unwrap_or(Value::Null),
        )
        .with("data", data)
        .build()
}

/// RFC 4648 base64 with padding.
pub fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        out.push(ALPHABET[(n >> 18) as usize & 63] as char);
        out.push(ALPHABET[(n >> 12) as usize & 63] as char);
        out.push(if chunk.len() > 1 {
            ALPHABET[(n >> 6) as usize & 63] as char
        } else {
            '='
        });
        out.push(if chunk.len() > 2 {
            ALPHABET[n as usize & 63] as char
        } else {
            '='
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::base64;

    #[test]
    fn base64_matches_rfc_4648_vectors() {
        for (input, expected) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ] {
            assert_eq!(base64(input.as_bytes()), expected);
        }
    }
}
