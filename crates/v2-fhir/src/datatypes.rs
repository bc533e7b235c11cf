//! HL7 v2 data types to FHIR data types, after the guide's `datatypes/*.csv`
//! tables. Each function names the table it implements.

use std::borrow::Cow;

use hl7v2::{Element, Level};
use serde_json::Value;

use crate::Options;
use crate::datetime;
use crate::json::{Obj, string};
use crate::vocab::ConceptMap;

/// The trimmed, unescaped text of an element; `""` (null) reads as empty.
/// Borrowed from the message unless unescaping or decoding had to copy.
pub fn text<'a>(e: Element<'a>) -> Cow<'a, str> {
    if e.is_null() || e.is_empty() {
        return Cow::Borrowed("");
    }
    match e.text() {
        Cow::Borrowed(b) => Cow::Borrowed(b.trim()),
        Cow::Owned(o) => {
            let trimmed = o.trim();
            if trimmed.len() == o.len() {
                Cow::Owned(o)
            } else {
                Cow::Owned(trimmed.to_string())
            }
        }
    }
}

/// Component `n` of `e` as text.
pub fn comp<'a>(e: Element<'a>, n: usize) -> Cow<'a, str> {
    text(e.component(n))
}

/// Subcomponent `s` of component `n` as text.
pub fn sub<'a>(e: Element<'a>, n: usize, s: usize) -> Cow<'a, str> {
    text(e.component(n).subcomponent(s))
}

/// The first [`Parts::MAX`] components of an element (of its first
/// repetition, for a field), split in one pass: `parts.comp(n)` is
/// `comp(e, n)` without walking the element again for each component.
#[derive(Clone, Copy)]
pub struct Parts<'a> {
    parts: [Element<'a>; Parts::MAX],
}

impl<'a> Parts<'a> {
    /// Enough for every component the maps read together (CWE.1-CWE.10).
    pub const MAX: usize = 12;

    pub fn of(e: Element<'a>) -> Parts<'a> {
        let ctx = e.context();
        match e.level() {
            Level::Field | Level::Repetition => {
                let repetition = if e.level() == Level::Field {
                    e.repetition(1)
                } else {
                    e
                };
                let mut parts = [Element::new(&[], Level::Component, ctx); Parts::MAX];
                for (slot, c) in parts.iter_mut().zip(repetition.children()) {
                    *slot = c;
                }
                Parts { parts }
            }
            // A component or subcomponent is its own first component.
            level => {
                let mut parts = [Element::new(&[], level, ctx); Parts::MAX];
                parts[0] = e;
                Parts { parts }
            }
        }
    }

    /// Component `n` (1-based), empty beyond [`Parts::MAX`] as beyond the
    /// last one sent.
    pub fn element(&self, n: usize) -> Element<'a> {
        match n.checked_sub(1).and_then(|i| self.parts.get(i)) {
            Some(e) => *e,
            None => Element::new(&[], self.parts[0].level(), self.parts[0].context()),
        }
    }

    /// Component `n` as text, like [`comp`].
    pub fn comp(&self, n: usize) -> Cow<'a, str> {
        text(self.element(n))
    }

    /// Subcomponent `s` of component `n` as text, like [`sub`].
    pub fn sub(&self, n: usize, s: usize) -> Cow<'a, str> {
        text(self.element(n).subcomponent(s))
    }
}

/// The non-empty repetitions of a field.
pub fn reps<'a>(field: Option<Element<'a>>) -> impl Iterator<Item = Element<'a>> + 'a {
    // Element::children borrows the element itself (edition 2024 captures),
    // so walk by index on a copy.
    field
        .into_iter()
        .flat_map(|f| (1..=f.child_count()).map(move |n| f.repetition(n)))
        .filter(|r| {
            !r.is_empty()
                && !r.is_null()
                && r.raw()
                    .iter()
                    .any(|b| !b.is_ascii_whitespace() && !is_separator(*b, r))
        })
}

fn is_separator(b: u8, e: &Element<'_>) -> bool {
    let d = e.context().delimiters;
    Some(b) == d.component || Some(b) == d.subcomponent
}

/// The code-system URI for a v2 coding-system name (HL7 table 0396), as the
/// guide's `CWE[CodeableConcept]` CWE.3 rule asks: well-known systems by
/// their FHIR URI, `HL7nnnn` as the v2 table's code system, a URI or OID as
/// itself, anything else (local codes) under the configured base.
pub fn code_system_uri(name: &str, options: &Options) -> String {
    let n = name.trim();
    // Names are short: upper-case them on the stack, not the heap.
    let mut buffer = [0u8; 16];
    let upper = if n.len() <= buffer.len() {
        buffer[..n.len()].copy_from_slice(n.as_bytes());
        buffer[..n.len()].make_ascii_uppercase();
        std::str::from_utf8(&buffer[..n.len()]).unwrap_or("")
    } else {
        ""
    };
    let known = match upper {
        "LN" | "LOINC" => Some("http://loinc.org"),
        "SCT" | "SNM" | "SNOMED" | "SNOMEDCT" | "SNOMED-CT" => Some("http://snomed.info/sct"),
        "I10" | "I10C" | "ICD10CM" | "ICD-10-CM" => Some("http://hl7.org/fhir/sid/icd-10-cm"),
        "I10P" | "ICD10PCS" => Some("http://www.cms.gov/Medicare/Coding/ICD10"),
        "I9" | "I9C" | "I9CDX" | "ICD9CM" => Some("http://hl7.org/fhir/sid/icd-9-cm"),
        "ICD10" | "I10WHO" => Some("http://hl7.org/fhir/sid/icd-10"),
        "CVX" => Some("http://hl7.org/fhir/sid/cvx"),
        "MVX" => Some("http://terminology.hl7.org/CodeSystem/MVX"),
        "UCUM" => Some("http://unitsofmeasure.org"),
        "NDC" => Some("http://hl7.org/fhir/sid/ndc"),
        "RXNORM" | "RXN" => Some("http://www.nlm.nih.gov/research/umls/rxnorm"),
        "C4" | "CPT" | "CPT4" => Some("http://www.ama-assn.org/go/cpt"),
        "HCPCS" | "HCPT" => Some("http://www.cms.gov/Medicare/Coding/HCPCSReleaseCodeSets"),
        "NUCC" => Some("http://nucc.org/provider-taxonomy"),
        "CDCREC" => Some("urn:oid:2.16.840.1.113883.6.238"),
        "PHINQUESTION" => Some("urn:oid:2.16.840.1.114222.4.5.232"),
        "ISO3166_1" | "ISO3166-1" => Some("urn:iso:std:iso:3166"),
        "ISO639" => Some("urn:ietf:bcp:47"),
        "NCIT" => Some("http://ncithesaurus-stage.nci.nih.gov"),
        "UMLS" => Some("http://www.nlm.nih.gov/research/umls"),
        _ => None,
    };
    if let Some(uri) = known {
        return uri.to_string();
    }
    if let Some(table) = upper.strip_prefix("HL7") {
        if table.len() == 4 && table.bytes().all(|b| b.is_ascii_digit()) {
            return format!("http://terminology.hl7.org/CodeSystem/v2-{table}");
        }
    }
    if let Some(uri) = oid_uri(n.strip_prefix("urn:oid:").unwrap_or(n)) {
        return uri;
    }
    if n.contains("://") || n.starts_with("urn:") {
        return n.to_string();
    }
    format!("{}/CodeSystem/{}", options.identifier_base, url_segment(n))
}

/// The URI FHIR names a system by when it has one, for a system given as its
/// OID (senders that follow the CDC guides send `2.16.840.1.113883.6.1` for
/// LOINC): `http://loinc.org`, not `urn:oid:...`, so a search by the usual
/// URI finds it. Other OIDs are `urn:oid:`; `None` when `oid` is not one.
pub fn oid_uri(oid: &str) -> Option<String> {
    if !is_oid(oid) {
        return None;
    }
    let known = match oid {
        "2.16.840.1.113883.6.1" => "http://loinc.org",
        "2.16.840.1.113883.6.96" => "http://snomed.info/sct",
        "2.16.840.1.113883.6.8" => "http://unitsofmeasure.org",
        "2.16.840.1.113883.6.88" => "http://www.nlm.nih.gov/research/umls/rxnorm",
        "2.16.840.1.113883.6.90" => "http://hl7.org/fhir/sid/icd-10-cm",
        "2.16.840.1.113883.6.3" => "http://hl7.org/fhir/sid/icd-10",
        "2.16.840.1.113883.6.103" => "http://hl7.org/fhir/sid/icd-9-cm",
        "2.16.840.1.113883.6.12" => "http://www.ama-assn.org/go/cpt",
        "2.16.840.1.113883.6.69" => "http://hl7.org/fhir/sid/ndc",
        "2.16.840.1.113883.6.101" => "http://nucc.org/provider-taxonomy",
        "2.16.840.1.113883.12.292" => "http://hl7.org/fhir/sid/cvx",
        "2.16.840.1.113883.12.227" => "http://terminology.hl7.org/CodeSystem/MVX",
        "2.16.840.1.113883.4.6" => "http://hl7.org/fhir/sid/us-npi",
        "2.16.840.1.113883.4.1" => "http://hl7.org/fhir/sid/us-ssn",
        _ => {
            // 2.16.840.1.113883.12.N is HL7 v2 table N.
            let table = oid
                .strip_prefix("2.16.840.1.113883.12.")
                .and_then(|t| t.parse::<u16>().ok())
                .filter(|t| *t < 10_000);
            return Some(match table {
                Some(t) => format!("http://terminology.hl7.org/CodeSystem/v2-{t:04}"),
                None => concat("urn:oid:", oid),
            });
        }
    };
    Some(known.to_string())
}

/// True for a dotted-decimal ISO object identifier.
pub fn is_oid(s: &str) -> bool {
    s.len() > 2
        && s.contains('.')
        && s.split('.')
            .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
        && matches!(s.as_bytes()[0], b'0'..=b'2')
}

/// A name made safe for a URI path segment.
pub fn url_segment(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    push_url_segment(&mut out, s);
    out
}

/// Appends `s` made safe for a URI path segment (percent-encoded UTF-8).
fn push_url_segment(out: &mut String, s: &str) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    for c in s.trim().chars() {
        if c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_' | '~') {
            out.push(c);
        } else {
            let mut utf8 = [0u8; 4];
            for b in c.encode_utf8(&mut utf8).bytes() {
                out.push('%');
                out.push(char::from(HEX[usize::from(b >> 4)]));
                out.push(char::from(HEX[usize::from(b & 0xF)]));
            }
        }
    }
}

/// `HD[uri]`: a hierarchic designator as a URI, by the one mapping of
/// [`crate::identity`]: the universal id when it is an OID, UUID or URI,
/// else the namespace under the configured base.
pub fn hd_uri(
    hd_namespace: &str,
    universal_id: &str,
    universal_type: &str,
    options: &Options,
) -> Option<String> {
    crate::identity::authority_name(hd_namespace, universal_id, universal_type)
        .map(|name| crate::identity::system_of(&name, &options.identifier_base))
}

/// `a` followed by `b`, in one allocation.
fn concat(a: &str, b: &str) -> String {
    let mut s = String::with_capacity(a.len() + b.len());
    s.push_str(a);
    s.push_str(b);
    s
}

/// `HD[uri]` for a whole HD element (components 1, 2, 3).
pub fn hd_element_uri(hd: Element<'_>, options: &Options) -> Option<String> {
    let hd = Parts::of(hd);
    hd_uri(&hd.comp(1), &hd.comp(2), &hd.comp(3), options)
}

/// `HD[uri]` for an HD spread over subcomponents of one component.
pub fn hd_sub_uri(e: Element<'_>, n: usize, options: &Options) -> Option<String> {
    let component = e.component(n);
    if component.is_empty() {
        return None;
    }
    let mut subs = component.children().map(text);
    let namespace = subs.next().unwrap_or_default();
    let universal_id = subs.next().unwrap_or_default();
    let universal_type = subs.next().unwrap_or_default();
    hd_uri(&namespace, &universal_id, &universal_type, options)
}

/// One coding from the triplet starting at component `at` (1 or 4, or 10
/// for CWE's second alternate): `CWE[Coding]`.
fn coding_at(e: &Parts<'_>, at: usize, version_at: Option<usize>, options: &Options) -> Value {
    let code = e.comp(at);
    if code.is_empty() {
        return Value::Null;
    }
    let display = e.comp(at + 1);
    let system = e.comp(at + 2);
    let mut c = Obj::new();
    if !system.is_empty() {
        c.set("system", code_system_uri(&system, options));
    }
    if let Some(v) = version_at {
        c.text("version", &e.comp(v));
    }
    c.set("code", code_value(&code));
    c.text("display", &display);
    c.build()
}

/// FHIR codes may not have leading/trailing or doubled whitespace.
pub fn code_value(code: &str) -> Value {
    let code = code.trim();
    // Usual case: nothing to normalize, no copy beyond the value itself.
    if !code.contains("  ") && !code.contains(|c: char| c.is_whitespace() && c != ' ') {
        return string(code);
    }
    let normalized = code.split_whitespace().collect::<Vec<_>>().join(" ");
    string(&normalized)
}

/// `CWE[CodeableConcept]` (also CE, CNE, CF): the primary and alternate
/// codings, the original text (CWE.9) or, without codes, the display as text.
pub fn codeable_concept(e: Element<'_>, options: &Options) -> Value {
    let e = Parts::of(e);
    let mut cc = Obj::new();
    cc.push("coding", coding_at(&e, 1, Some(7), options));
    cc.push("coding", coding_at(&e, 4, Some(8), options));
    cc.push("coding", coding_at(&e, 10, None, options));
    let original = e.comp(9);
    if !original.is_empty() {
        cc.text("text", &original);
    } else if !cc.has("coding") {
        // No code at all: CWE.2 (or a bare CWE.1 with no system) is text.
        let shown = e.comp(2);
        let bare = e.comp(1);
        cc.text("text", if shown.is_empty() { &bare } else { &shown });
    }
    cc.build()
}

/// A CodeableConcept whose coding goes through one of the guide's concept
/// maps, keeping the v2 coding beside the mapped one.
pub fn mapped_concept(e: Element<'_>, map: ConceptMap, v2_table: &str, options: &Options) -> Value {
    let code = comp(e, 1);
    if code.is_empty() {
        return codeable_concept(e, options);
    }
    let mut cc = Obj::new();
    if let Some(concept) = map.lookup(&code) {
        cc.push("coding", concept_coding(concept));
    }
    let system = comp(e, 3);
    let v2_system = if system.is_empty() {
        format!("http://terminology.hl7.org/CodeSystem/v2-{v2_table}")
    } else {
        code_system_uri(&system, options)
    };
    let v2 = Obj::new()
        .with("system", v2_system)
        .with("code", code_value(&code))
        .with("display", string(&comp(e, 2)))
        .build();
    if !cc
        .get("coding")
        .is_some_and(|c| c.as_array().is_some_and(|a| a.contains(&v2)))
    {
        cc.push("coding", v2);
    }
    cc.text("text", &comp(e, 9));
    cc.build()
}

/// A Coding from a concept map row.
pub fn concept_coding(concept: &crate::vocab::Concept) -> Value {
    Obj::new()
        .with("system", concept.system.as_str())
        .with("code", concept.code.as_str())
        .with(
            "display",
            concept
                .display
                .as_deref()
                .map(string)
                .unwrap_or(Value::Null),
        )
        .build()
}

/// `ID[CodeableConcept]`/`IS[CodeableConcept]`: a bare code of a v2 table.
pub fn table_concept(code: &str, table: &str, map: Option<ConceptMap>) -> Value {
    let code = code.trim();
    if code.is_empty() {
        return Value::Null;
    }
    let mut cc = Obj::new();
    if let Some(concept) = map.and_then(|m| m.lookup(code)) {
        cc.push("coding", concept_coding(concept));
    }
    let v2 = Obj::new()
        .with(
            "system",
            format!("http://terminology.hl7.org/CodeSystem/v2-{table}"),
        )
        .with("code", code_value(code))
        .build();
    if !cc
        .get("coding")
        .is_some_and(|c| c.as_array().is_some_and(|a| a.contains(&v2)))
    {
        cc.push("coding", v2);
    }
    cc.build()
}

/// A coded element: as a CodeableConcept when it names its system, else
/// as a code of the v2 table it is drawn from.
pub fn coded(e: Element<'_>, table: &str, options: &Options) -> Value {
    if comp(e, 3).is_empty() {
        let code = comp(e, 1);
        let mut cc = match table_concept(&code, table, None) {
            Value::Object(m) => Obj(m),
            _ => return codeable_concept(e, options),
        };
        cc.text("text", &comp(e, 2));
        cc.build()
    } else {
        codeable_concept(e, options)
    }
}

/// `CX[Identifier]`: CX.1 value, CX.4 assigning authority as system, CX.5
/// identifier type (IdentifierType map), CX.7/CX.8 period, CX.6 assigner.
pub fn identifier_cx(cx: Element<'_>, options: &Options) -> Value {
    let cx = Parts::of(cx);
    let value = cx.comp(1);
    if value.is_empty() {
        return Value::Null;
    }
    let mut id = Obj::new();
    let type_code = cx.comp(5);
    id.set("type", identifier_type(&type_code));
    let system = hd_sub_uri(cx.element(4), 1, options)
        .or_else(|| hd_sub_uri(cx.element(9), 1, options))
        .or_else(|| hd_sub_uri(cx.element(10), 1, options));
    id.set("system", system.map(Value::from).unwrap_or(Value::Null));
    id.text("value", &value);
    let mut period = Obj::new();
    period.set("start", date_time_value(&cx.comp(7), options));
    period.set("end", date_time_value(&cx.comp(8), options));
    id.set("period", period);
    let assigner = cx.sub(6, 1);
    if !assigner.is_empty() {
        id.set("assigner", Obj::new().with("display", &*assigner));
    }
    id.build()
}

/// The CodeableConcept of an identifier type code (table 0203).
pub fn identifier_type(code: &str) -> Value {
    let code = code.trim();
    if code.is_empty() {
        return Value::Null;
    }
    match ConceptMap::IdentifierType.lookup(code) {
        Some(concept) => Obj::new()
            .with("coding", vec![concept_coding(concept)])
            .build(),
        None => Obj::new()
            .with(
                "coding",
                vec![
                    Obj::new()
                        .with("system", "http://terminology.hl7.org/CodeSystem/v2-0203")
                        .with("code", code_value(code))
                        .build(),
                ],
            )
            .build(),
    }
}

/// `EI[Identifier-System]`: EI.1 value, EI.2-EI.4 as the system.
pub fn identifier_ei(ei: Element<'_>, options: &Options) -> Value {
    let value = comp(ei, 1);
    if value.is_empty() {
        return Value::Null;
    }
    Obj::new()
        .with(
            "system",
            hd_uri(&comp(ei, 2), &comp(ei, 3), &comp(ei, 4), options)
                .map(Value::from)
                .unwrap_or(Value::Null),
        )
        .with("value", &*value)
        .build()
}

/// An identifier with a given type code (PLAC, FILL, VN, ...).
pub fn typed_identifier(ei: Element<'_>, type_code: &str, options: &Options) -> Value {
    let mut id = match identifier_ei(ei, options) {
        Value::Object(o) => Obj(o),
        _ => return Value::Null,
    };
    id.set("type", identifier_type(type_code));
    id.build()
}

/// `XPN[HumanName]`: XPN.1 family (FN.1), XPN.2 and XPN.3 given, XPN.4
/// suffix, XPN.5 prefix, XPN.6 degree as suffix, XPN.7 use (NameType map).
pub fn human_name(xpn: Element<'_>) -> Value {
    let xpn = Parts::of(xpn);
    let mut name = Obj::new();
    name.text("family", &xpn.sub(1, 1));
    name.push("given", string(&xpn.comp(2)));
    for middle in xpn.comp(3).split(' ') {
        name.push("given", string(middle));
    }
    name.push("prefix", string(&xpn.comp(5)));
    name.push("suffix", string(&xpn.comp(4)));
    name.push("suffix", string(&xpn.comp(6)));
    if name.is_empty() {
        return Value::Null;
    }
    if let Some(use_) = ConceptMap::NameType.lookup(&xpn.comp(7)) {
        name.set("use", use_.code.as_str());
    }
    name.build()
}

/// `XCN` name parts (XCN.2 family, XCN.3 given, ...), as a HumanName.
pub fn xcn_name(xcn: Element<'_>) -> Value {
    let xcn = Parts::of(xcn);
    let mut name = Obj::new();
    name.text("family", &xcn.sub(2, 1));
    name.push("given", string(&xcn.comp(3)));
    for middle in xcn.comp(4).split(' ') {
        name.push("given", string(middle));
    }
    name.push("prefix", string(&xcn.comp(6)));
    name.push("suffix", string(&xcn.comp(5)));
    name.push("suffix", string(&xcn.comp(7)));
    name.build()
}

/// `XAD[Address]`: XAD.1 (SAD.1) and XAD.2 lines, XAD.3 city, XAD.4 state,
/// XAD.5 postal code, XAD.6 country, XAD.7 use and type, XAD.9 district.
pub fn address(xad: Element<'_>) -> Value {
    let xad = Parts::of(xad);
    let mut a = Obj::new();
    a.push("line", string(&xad.sub(1, 1)));
    a.push("line", string(&xad.comp(2)));
    a.text("city", &xad.comp(3));
    a.text("district", &xad.comp(9));
    a.text("state", &xad.comp(4));
    a.text("postalCode", &xad.comp(5));
    a.text("country", &xad.comp(6));
    if a.is_empty() {
        return Value::Null;
    }
    let kind = xad.comp(7);
    if let Some(u) = ConceptMap::AddressTypeUse.lookup(&kind) {
        a.set("use", u.code.as_str());
    }
    if let Some(t) = ConceptMap::AddressTypeType.lookup(&kind) {
        a.set("type", t.code.as_str());
    }
    a.build()
}

/// `XTN[ContactPoint]`: XTN.4 email or the phone parts XTN.5-XTN.8 (or the
/// unformatted XTN.1/XTN.12), XTN.2 use, XTN.3 equipment as system.
pub fn contact_point(xtn: Element<'_>, default_use: Option<&str>) -> Value {
    let xtn = Parts::of(xtn);
    let equipment = xtn.comp(3);
    let email = xtn.comp(4);
    let mut cp = Obj::new();
    let value;
    let system;
    let mut equipment_use = None;
    if !email.is_empty() || equipment.eq_ignore_ascii_case("Internet") || equipment == "X.400" {
        value = if email.is_empty() { xtn.comp(1) } else { email };
        system = Some("email");
    } else {
        let mut phone = String::new();
        let country = xtn.comp(5);
        let area = xtn.comp(6);
        let local = xtn.comp(7);
        if !local.is_empty() {
            if !country.is_empty() {
                phone.push('+');
                phone.push_str(country.trim_start_matches('+'));
                phone.push(' ');
            }
            if !area.is_empty() {
                phone.push('(');
                phone.push_str(&area);
                phone.push_str(") ");
            }
            phone.push_str(&local);
            let ext = xtn.comp(8);
            if !ext.is_empty() {
                phone.push_str(" ext. ");
                phone.push_str(&ext);
            }
        } else {
            let unformatted = xtn.comp(12);
            phone = if unformatted.is_empty() {
                xtn.comp(1).into_owned()
            } else {
                unformatted.into_owned()
            };
        }
        value = Cow::Owned(phone);
        // The guide maps most equipment to a system, but CP (cell phone) to
        // the use `mobile`: a phone.
        match ConceptMap::TelecommunicationEquipmentType.lookup(&equipment) {
            Some(c) if c.system.ends_with("contact-point-system") => system = Some(c.code.as_str()),
            Some(c) if c.system.ends_with("contact-point-use") => {
                system = Some("phone");
                equipment_use = Some(c.code.as_str());
            }
            _ => system = Some("phone"),
        }
    }
    if value.trim().is_empty() {
        return Value::Null;
    }
    cp.set("system", system.map(Value::from).unwrap_or(Value::Null));
    cp.text("value", &value);
    let use_ = ConceptMap::TelecommunicationUseCode
        .lookup(&xtn.comp(2))
        .filter(|c| c.system.ends_with("contact-point-use"))
        .map(|c| c.code.as_str())
        .or(equipment_use)
        .or(default_use);
    cp.set("use", use_.map(Value::from).unwrap_or(Value::Null));
    cp.build()
}

/// `DTM[dateTime]` for a value, per the offset rule in [`crate::datetime`].
pub fn date_time_value(v2: &str, options: &Options) -> Value {
    datetime::to_date_time(first_component(v2), options.timezone.as_ref())
        .map(Value::from)
        .unwrap_or(Value::Null)
}

/// `DTM[date]`.
pub fn date_value(v2: &str) -> Value {
    datetime::to_date(first_component(v2))
        .map(Value::from)
        .unwrap_or(Value::Null)
}

/// TS has the time in its first component; callers sometimes pass the text
/// of the whole field.
fn first_component(v: &str) -> &str {
    v.split('^').next().unwrap_or("").trim()
}

/// A v2 numeric value as a FHIR decimal (JSON number), if it is one.
pub fn decimal(v: &str) -> Option<Value> {
    let t = v.trim();
    let t = t.strip_prefix('+').unwrap_or(t);
    let ok = !t.is_empty()
        && t.bytes().filter(|b| *b == b'.').count() <= 1
        && t.trim_start_matches('-')
            .bytes()
            .all(|b| b.is_ascii_digit() || b == b'.')
        && t.bytes().any(|b| b.is_ascii_digit());
    if !ok {
        return None;
    }
    if !t.contains('.') {
        if let Ok(i) = t.parse::<i64>() {
            return Some(Value::from(i));
        }
    }
    let f: f64 = t.parse().ok()?;
    serde_json::Number::from_f64(f).map(Value::Number)
}

/// `CWE[Quantity]` with a value: the unit's text in `unit`, and code and
/// system only when the unit's coding system is known (UCUM in practice).
pub fn quantity(value: Value, units: Option<Element<'_>>, options: &Options) -> Value {
    let mut q = Obj::new();
    q.set("value", value);
    if let Some(u) = units {
        let code = comp(u, 1);
        let display = comp(u, 2);
        let system = comp(u, 3);
        q.text("unit", if display.is_empty() { &code } else { &display });
        if !code.is_empty() && !system.is_empty() {
            q.set("system", code_system_uri(&system, options));
            q.set("code", code_value(&code));
        }
    }
    q.build()
}

/// `RPT[Timing]` (and TQ's RI.1): a repeat pattern of table 0335 (`BID`,
/// `Q6H`, `QAM`, `PRN`, ...) as `Timing.code`, with the frequency, period
/// and time of day the code itself says. The flag is true for an as-needed
/// pattern (PRN).
pub fn repeat_pattern(code: &str, display: &str) -> (Obj, bool) {
    let mut timing = Obj::new();
    let code = code.trim();
    if code.is_empty() {
        return (timing, false);
    }
    let upper = code.to_ascii_uppercase();
    let as_needed = upper.contains("PRN");
    let pattern = upper.replace("PRN", "");
    let pattern = pattern.trim();
    let mut repeat = Obj::new();
    let every = |repeat: &mut Obj, times: u32, period: u32, unit: &str| {
        repeat.set("frequency", times);
        repeat.set("period", period);
        repeat.set("periodUnit", unit);
    };
    match pattern {
        "QD" | "Q1D" | "DAILY" | "QDAY" => every(&mut repeat, 1, 1, "d"),
        "BID" => every(&mut repeat, 2, 1, "d"),
        "TID" => every(&mut repeat, 3, 1, "d"),
        "QID" => every(&mut repeat, 4, 1, "d"),
        "QOD" => every(&mut repeat, 1, 2, "d"),
        "QAM" | "QPM" | "QHS" => {
            every(&mut repeat, 1, 1, "d");
            let when = match pattern {
                "QAM" => "MORN",
                "QPM" => "EVE",
                _ => "HS",
            };
            repeat.push("when", when);
        }
        "ONCE" => {
            repeat.set("count", 1);
        }
        p => {
            let unit_of = |u: char| match u {
                'S' => Some("s"),
                'M' => Some("min"),
                'H' => Some("h"),
                'D' => Some("d"),
                'W' => Some("wk"),
                'L' => Some("mo"),
                _ => None,
            };
            if let Some(rest) = p.strip_prefix('Q') {
                // Q<n><unit>: once every n units
                if let Some((at, u)) = rest.char_indices().last() {
                    if let (Ok(n), Some(unit)) = (rest[..at].parse::<u32>(), unit_of(u)) {
                        every(&mut repeat, 1, n, unit);
                    }
                }
            } else if let Some(n) = p.strip_suffix("ID").and_then(|n| n.parse::<u32>().ok()) {
                // <n>ID: n times a day
                every(&mut repeat, n, 1, "d");
            }
        }
    }
    timing.set(
        "code",
        Obj::new()
            .with(
                "coding",
                vec![
                    Obj::new()
                        .with("system", "http://terminology.hl7.org/CodeSystem/v2-0335")
                        .with("code", code_value(code))
                        .with("display", string(display))
                        .build(),
                ],
            )
            .with(
                "text",
                string(if display.is_empty() { code } else { display }),
            ),
    );
    timing.set("repeat", repeat);
    (timing, as_needed)
}

/// `CQ[Duration]`: a service duration (TQ1-6) in UCUM units of time.
pub fn duration(value: Value, unit: &str) -> Value {
    let ucum = match unit.trim().to_ascii_lowercase().as_str() {
        "s" | "sec" | "second" | "seconds" => Some("s"),
        "min" | "m" | "minute" | "minutes" => Some("min"),
        "h" | "hr" | "hour" | "hours" => Some("h"),
        "d" | "day" | "days" => Some("d"),
        "wk" | "w" | "week" | "weeks" => Some("wk"),
        "mo" | "month" | "months" => Some("mo"),
        "a" | "y" | "year" | "years" => Some("a"),
        _ => None,
    };
    let mut q = Obj::new().with("value", value);
    q.text("unit", unit);
    if let Some(code) = ucum {
        q.set("system", "http://unitsofmeasure.org");
        q.set("code", code);
    }
    q.build()
}

/// `PL[Location]` as display text: point of care, room, bed, facility.
pub fn location_text(pl: Element<'_>) -> String {
    let parts: Vec<String> = [1, 2, 3, 4, 7, 8]
        .into_iter()
        .map(|n| sub(pl, n, 1).into_owned())
        .filter(|p| !p.is_empty())
        .collect();
    let described = comp(pl, 9);
    if !described.is_empty() {
        return described.into_owned();
    }
    parts.join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn field(msg: &str, path: &str) -> Value {
        let bytes = msg.as_bytes().to_vec();
        let message = hl7v2::Message::parse(&bytes).unwrap();
        let p: hl7v2::Path = path.parse().unwrap();
        let options = Options::default();
        let e = message.get(&p).unwrap();
        match path {
            p if p.starts_with("PID-3") => identifier_cx(e, &options),
            p if p.starts_with("PID-5") => human_name(e),
            p if p.starts_with("PID-11") => address(e),
            p if p.starts_with("PID-13") => contact_point(e, Some("home")),
            _ => codeable_concept(e, &options),
        }
    }

    const MSG: &str = "MSH|^~\\&|A|B|C|D|20240101||ADT^A01|1|P|2.5.1\rPID|1||123^^^HOSP&1.2.3&ISO^MR~456^^^CLINIC^PI||DOE^JANE^Q R^JR^DR^^L||||||1 MAIN ST^APT 2^TOWN^ST^12345^USA^H||^PRN^PH^^1^555^1234567\rOBX|1|NM|718-7^Hemoglobin^LN^HGB^Hgb^L||\r";

    #[test]
    fn cx_with_oid_authority_becomes_urn_oid_system_with_type() {
        let id = field(MSG, "PID-3");
        assert_eq!(id["system"], "urn:oid:1.2.3");
        assert_eq!(id["value"], "123");
        assert_eq!(
            id["type"]["coding"][0]["system"],
            "http://terminology.hl7.org/CodeSystem/v2-0203"
        );
        assert_eq!(id["type"]["coding"][0]["code"], "MR");
        let second = field(MSG, "PID-3[2]");
        assert_eq!(second["system"], "urn:corridor:id/CLINIC");
    }

    #[test]
    fn xpn_maps_every_part_and_the_name_type() {
        let name = field(MSG, "PID-5");
        assert_eq!(name["family"], "DOE");
        assert_eq!(name["given"], serde_json::json!(["JANE", "Q", "R"]));
        assert_eq!(name["prefix"], serde_json::json!(["DR"]));
        assert_eq!(name["suffix"], serde_json::json!(["JR"]));
        assert_eq!(name["use"], "official");
    }

    #[test]
    fn xad_and_xtn_map_to_address_and_contact_point() {
        let a = field(MSG, "PID-11");
        assert_eq!(a["line"], serde_json::json!(["1 MAIN ST", "APT 2"]));
        assert_eq!(a["postalCode"], "12345");
        assert_eq!(a["use"], "home");
        let t = field(MSG, "PID-13");
        assert_eq!(t["value"], "+1 (555) 1234567");
        assert_eq!(t["system"], "phone");
        assert_eq!(t["use"], "home");
    }

    #[test]
    fn a_cell_phone_is_a_phone_used_as_mobile() {
        let msg = "MSH|^~\\&|A|B|C|D|20240101||ADT^A01|1|P|2.5.1\rPID|1||1||X||||||||^^CP^^1^555^7654321\r";
        let t = field(msg, "PID-13");
        assert_eq!(t["system"], "phone");
        assert_eq!(t["use"], "mobile");
    }

    #[test]
    fn cwe_keeps_primary_and_alternate_codings_with_systems() {
        let cc = field(MSG, "OBX-3");
        assert_eq!(cc["coding"][0]["system"], "http://loinc.org");
        assert_eq!(cc["coding"][0]["code"], "718-7");
        assert_eq!(cc["coding"][1]["system"], "urn:corridor:id/CodeSystem/L");
    }

    #[test]
    fn code_systems_follow_the_usual_uris() {
        let o = Options::default();
        assert_eq!(code_system_uri("SCT", &o), "http://snomed.info/sct");
        assert_eq!(
            code_system_uri("I10", &o),
            "http://hl7.org/fhir/sid/icd-10-cm"
        );
        assert_eq!(
            code_system_uri("HL70078", &o),
            "http://terminology.hl7.org/CodeSystem/v2-0078"
        );
        assert_eq!(
            code_system_uri("1.2.840.10008.2.16.4", &o),
            "urn:oid:1.2.840.10008.2.16.4"
        );
    }

    #[test]
    fn decimals_are_numbers_and_other_text_is_not() {
        assert_eq!(decimal("7.5"), Some(serde_json::json!(7.5)));
        assert_eq!(decimal("+12"), Some(serde_json::json!(12)));
        assert_eq!(decimal("-0.25"), Some(serde_json::json!(-0.25)));
        assert_eq!(decimal("1.2.3"), None);
        assert_eq!(decimal("<5"), None);
        assert_eq!(decimal("."), None);
    }
}
