//! FHIR data types to v2 ones: CWE, CX, EI, XPN, XCN, XAD, XTN, DTM, and
//! the escaping of text.

use serde_json::Value;

use super::ToV2Options;
use crate::Options;
use crate::datatypes::code_system_uri;
use crate::vocab::ConceptMap;

pub(super) fn array(v: &Value) -> std::slice::Iter<'_, Value> {
    match v {
        Value::Array(items) => items.iter(),
        _ => [].iter(),
    }
}

/// The v2 code whose forward mapping gives `fhir`, among `candidates`.
pub(super) fn reverse(
    map: ConceptMap,
    candidates: &[&'static str],
    fhir: &str,
) -> Option<&'static str> {
    candidates
        .iter()
        .copied()
        .find(|c| map.lookup(c).is_some_and(|concept| concept.code == fhir))
}

/// A segment from its fields, empty ones at the end left out.
pub(super) fn trimmed(mut f: Vec<String>) -> String {
    while f.len() > 1 && f.last().is_some_and(String::is_empty) {
        f.pop();
    }
    f.join("|")
}

pub(super) fn fields(f: &[&str]) -> String {
    f.join("|")
}

pub(super) fn join_reps(values: impl Iterator<Item = String>) -> String {
    values
        .filter(|v| !v.is_empty())
        .collect::<Vec<_>>()
        .join("~")
}

/// Escapes the v2 delimiters in text (`|^~\&`).
pub(super) fn escape(s: &str) -> String {
    if !s.contains(['|', '^', '~', '\\', '&', '\r', '\n']) {
        return s.to_string();
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\E\\"),
            '|' => out.push_str("\\F\\"),
            '^' => out.push_str("\\S\\"),
            '&' => out.push_str("\\T\\"),
            '~' => out.push_str("\\R\\"),
            '\r' | '\n' => out.push_str("\\.br\\"),
            _ => out.push(c),
        }
    }
    out
}

pub(super) fn number(v: &Value) -> String {
    match v {
        Value::Number(n) => n.to_string(),
        _ => String::new(),
    }
}

/// A FHIR date, dateTime or instant as a v2 DTM:
/// `2024-01-02T11:00:00+01:00` is `20240102110000+0100`.
pub fn dtm(fhir: &str) -> String {
    let fhir = fhir.trim();
    let (date, rest) = fhir.split_once('T').unwrap_or((fhir, ""));
    let mut out: String = date.chars().filter(|c| *c != '-').collect();
    if rest.is_empty() {
        return out;
    }
    let zone_at = rest.find(['+', '-', 'Z']).unwrap_or(rest.len());
    let (time, zone) = rest.split_at(zone_at);
    out.extend(time.chars().filter(|c| *c != ':'));
    match zone {
        "" => {}
        "Z" => out.push_str("+0000"),
        z => out.extend(z.chars().filter(|c| *c != ':')),
    }
    out
}

/// The v2 coding-system name of a FHIR system URI: the name whose forward
/// mapping gives it, `HL7nnnn` for v2 tables, a local name under the base.
pub(super) fn system_name(uri: &str, options: &ToV2Options) -> String {
    const NAMES: &[&str] = &[
        "LN",
        "SCT",
        "I10",
        "I10P",
        "I9CDX",
        "ICD10",
        "CVX",
        "MVX",
        "UCUM",
        "NDC",
        "RXNORM",
        "C4",
        "HCPCS",
        "NUCC",
        "CDCREC",
        "PHINQUESTION",
    ];
    let forward = Options {
        identifier_base: options.identifier_base.clone(),
        ..Options::default()
    };
    if let Some(name) = NAMES.iter().find(|n| code_system_uri(n, &forward) == uri) {
        return (*name).to_string();
    }
    if let Some(table) = uri.strip_prefix("http://terminology.hl7.org/CodeSystem/v2-") {
        return format!("HL7{table}");
    }
    let local = format!("{}/CodeSystem/", options.identifier_base);
    if let Some(name) = uri.strip_prefix(&local) {
        return name.to_string();
    }
    uri.strip_prefix("urn:oid:").unwrap_or(uri).to_string()
}

/// `CodeableConcept` to CWE: the first coding's code, display and system
/// (the text when there is no coding).
pub(super) fn cwe(cc: &Value, options: &ToV2Options) -> String {
    let coding = &cc["coding"][0];
    let code = coding["code"].as_str().unwrap_or("");
    if code.is_empty() {
        // Text alone: CWE.2, the text of a concept without a code.
        let text = escape(cc["text"].as_str().unwrap_or(""));
        return if text.is_empty() {
            text
        } else {
            format!("^{text}")
        };
    }
    let display = coding["display"]
        .as_str()
        .or(cc["text"].as_str())
        .unwrap_or("");
    let system = coding["system"]
        .as_str()
        .map(|s| system_name(s, options))
        .unwrap_or_default();
    let mut out = format!("{}^{}^{}", escape(code), escape(display), escape(&system));
    while out.ends_with('^') {
        out.pop();
    }
    out
}

/// The assigning authority (HD) of an identifier system: the name
/// [`crate::identity::name_of`] gives it, as a namespace, or as a universal
/// id (`&1.2.3&ISO`, `&https://..&URI`) when that name is an OID or a URI.
pub(super) fn authority(system: &str, options: &ToV2Options) -> String {
    match system {
        "" => return String::new(),
        "http://hl7.org/fhir/sid/us-ssn" => return "USSSA".into(),
        "http://hl7.org/fhir/sid/us-npi" => return "NPI".into(),
        _ => {}
    }
    let name = crate::identity::name_of(system, &options.identifier_base);
    if crate::datatypes::is_oid(&name) {
        format!("&{name}&ISO")
    } else if let Some(uuid) = name.strip_prefix("urn:uuid:") {
        format!("&{}&UUID", escape(uuid))
    } else if name.contains("://") || name.starts_with("urn:") {
        format!("&{}&URI", escape(&name))
    } else {
        escape(&name)
    }
}

/// Identifier to CX: value, authority (CX.4), type (CX.5).
pub(super) fn cx(identifier: &Value, options: &ToV2Options) -> String {
    let value = identifier["value"].as_str().unwrap_or("");
    if value.is_empty() {
        return String::new();
    }
    let system = authority(identifier["system"].as_str().unwrap_or(""), options);
    let kind = identifier["type"]["coding"][0]["code"]
        .as_str()
        .unwrap_or("");
    let mut out = format!("{}^^^{}^{}", escape(value), system, escape(kind));
    while out.ends_with('^') {
        out.pop();
    }
    out
}

/// The identifier of `kind` (PLAC, FILL) of a request or report as an EI.
pub(super) fn typed_ei(r: &Value, kind: &str, options: &ToV2Options) -> String {
    array(&r["identifier"])
        .find(|i| i["type"]["coding"][0]["code"] == kind)
        .map(|i| {
            let value = escape(i["value"].as_str().unwrap_or(""));
            let namespace = authority(i["system"].as_str().unwrap_or(""), options);
            if namespace.is_empty() || namespace.starts_with('&') {
                let universal = namespace.trim_start_matches('&').replacen('&', "^", 1);
                if universal.is_empty() {
                    value
                } else {
                    format!("{value}^^{universal}")
                }
            } else {
                format!("{value}^{namespace}")
            }
        })
        .unwrap_or_default()
}

/// HumanName to XPN: family^given^middle^suffix^prefix.
pub(super) fn xpn(name: &Value) -> String {
    let given: Vec<&str> = array(&name["given"]).filter_map(Value::as_str).collect();
    let parts = [
        name["family"].as_str().unwrap_or("").to_string(),
        given.first().copied().unwrap_or("").to_string(),
        given.get(1..).map(|g| g.join(" ")).unwrap_or_default(),
        array(&name["suffix"])
            .filter_map(Value::as_str)
            .collect::<Vec<_>>()
            .join(" "),
        array(&name["prefix"])
            .filter_map(Value::as_str)
            .collect::<Vec<_>>()
            .join(" "),
    ];
    components(parts.iter().map(String::as_str))
}

/// Text parts as the components of one value: escaped, joined by `^`,
/// without the empty ones at the end.
fn components<'a>(parts: impl Iterator<Item = &'a str>) -> String {
    let mut out = parts.map(escape).collect::<Vec<_>>().join("^");
    while out.ends_with('^') {
        out.pop();
    }
    out
}

/// A Practitioner to XCN: id^family^given.
pub(super) fn xcn(practitioner: &Value) -> String {
    let id = practitioner["identifier"][0]["value"]
        .as_str()
        .unwrap_or("");
    let name = xpn(&practitioner["name"][0]);
    let mut out = format!("{}^{}", escape(id), name);
    while out.ends_with('^') {
        out.pop();
    }
    out
}

/// Address to XAD: line^other line^city^state^postal code^country.
pub(super) fn xad(address: &Value) -> String {
    let lines: Vec<&str> = array(&address["line"]).filter_map(Value::as_str).collect();
    let parts = [
        lines.first().copied().unwrap_or(""),
        lines.get(1).copied().unwrap_or(""),
        address["city"].as_str().unwrap_or(""),
        address["state"].as_str().unwrap_or(""),
        address["postalCode"].as_str().unwrap_or(""),
        address["country"].as_str().unwrap_or(""),
    ];
    components(parts.into_iter())
}

/// ContactPoint to XTN: a phone as `^PRN^PH^^^^^^^^^number` (XTN.12, the
/// unformatted number), an email as `^NET^Internet^address`.
pub(super) fn xtn(telecom: &Value) -> String {
    let value = escape(telecom["value"].as_str().unwrap_or(""));
    if value.is_empty() {
        return String::new();
    }
    let usage = match telecom["use"].as_str() {
        Some("work") => "WPN",
        _ => "PRN",
    };
    match telecom["system"].as_str() {
        Some("email") => format!("^NET^Internet^{value}"),
        Some("fax") => format!("^{usage}^FX^^^^^^^^^{value}"),
        _ => format!("^{usage}^PH^^^^^^^^^{value}"),
    }
}

/// MSH-10: unique per message of one translation.
pub(super) fn control_id(timestamp: &str, number: usize) -> String {
    let digits: String = timestamp
        .chars()
        .filter(char::is_ascii_digit)
        .take(14)
        .collect();
    format!("F{digits}{number:03}")
}
