//! One identifier system everywhere: how an assigning authority (an HD: CX.4,
//! EI.2-4) or, when a patient identifier has none, the sending application
//! and facility become a FHIR `Identifier.system`, and back.
//!
//! Decided here once and used by the FHIR conversion (every `Identifier` it
//! writes), by FHIR back to v2 (CX.4), and by the patient index (which keys
//! a source record by the authority's [name](authority_name) and answers its
//! PIXm and PDQm queries with [`system_of`] that name). So the identifier a
//! FHIR client reads on `/fhir/Patient` is the one `$ihe-pix` and
//! `/mpi/fhir/Patient?identifier=` take.
//!
//! | the authority (HD) | its name | its system |
//! | --- | --- | --- |
//! | universal id of type `UUID` | `urn:uuid:<id in lower case>` | the same |
//! | universal id of type `URI`/`URL` | the id | the same |
//! | universal id that is an OID (`HOSP&1.2.3&ISO`) | `1.2.3` | `urn:oid:1.2.3`, or the usual URI of a known OID (`2.16.840.1.113883.4.1` is `http://hl7.org/fhir/sid/us-ssn`) |
//! | namespace that is an OID | the OID | as above |
//! | namespace (else universal id) that is a URI (`://` or `urn:`) | itself | itself |
//! | namespace (else universal id), any other text (`HOSP`) | itself | `{base}/HOSP` (percent-encoded) |
//! | none: a PID-3 identifier without CX.4 | the sender, `MSH-3@MSH-4` (`ADT@NORTH`) | `{base}/ADT%40NORTH` |
//!
//! `base` is the identifier base (`urn:corridor:id` unless configured).
//! [`name_of`] undoes [`system_of`]: `name_of(system_of(n)) == n` for every
//! name, and `system_of(name_of(s)) == s` for every system.

use std::borrow::Cow;

use crate::datatypes::{is_oid, oid_uri, url_segment};

/// The identifier base when none is configured.
pub const DEFAULT_BASE: &str = "urn:corridor:id";

/// The name of an assigning authority given as an HD's three parts
/// (namespace id, universal id, universal id type), or `None` when all are
/// empty. The universal id comes first when it is a UUID, a URI or an OID:
/// it is what makes the authority unique.
pub fn authority_name<'a>(
    namespace: &'a str,
    universal_id: &'a str,
    universal_type: &str,
) -> Option<Cow<'a, str>> {
    let (ns, uid, kind) = (namespace.trim(), universal_id.trim(), universal_type.trim());
    if !uid.is_empty() {
        let is_kind = |k: &str| kind.eq_ignore_ascii_case(k);
        if is_kind("UUID") {
            let mut name = String::with_capacity(9 + uid.len());
            name.push_str("urn:uuid:");
            name.push_str(&uid.to_ascii_lowercase());
            return Some(Cow::Owned(name));
        }
        if is_kind("URI") || is_kind("URL") || is_oid(uid) {
            return Some(Cow::Borrowed(uid));
        }
    }
    if is_oid(ns) {
        return Some(Cow::Borrowed(ns));
    }
    let name = if ns.is_empty() { uid } else { ns };
    (!name.is_empty()).then_some(Cow::Borrowed(name))
}

/// The name of a sender, for identifiers sent without an authority:
/// `MSH-3@MSH-4` (first components), either alone when the other is empty,
/// `unknown-sender` when both are.
pub fn sender_name(application: &str, facility: &str) -> String {
    let (app, facility) = (application.trim(), facility.trim());
    match (app.is_empty(), facility.is_empty()) {
        (false, false) => format!("{app}@{facility}"),
        (false, true) => app.to_string(),
        (true, false) => facility.to_string(),
        (true, true) => "unknown-sender".to_string(),
    }
}

/// True when `s` is already a URI: it is its own system.
fn is_uri(s: &str) -> bool {
    s.contains("://") || s.starts_with("urn:")
}

/// The FHIR identifier system of an authority's name.
pub fn system_of(name: &str, base: &str) -> String {
    let name = name.trim();
    if let Some(uri) = oid_uri(name) {
        return uri;
    }
    if is_uri(name) {
        return name.to_string();
    }
    let mut uri = String::with_capacity(base.len() + 1 + name.len());
    uri.push_str(base);
    uri.push('/');
    uri.push_str(&url_segment(name));
    uri
}

/// The authority's name of a FHIR identifier system: the inverse of
/// [`system_of`]. A system it did not make (`http://example.org/ids`) is
/// its own name.
pub fn name_of(system: &str, base: &str) -> String {
    let system = system.trim();
    if let Some(rest) = system
        .strip_prefix(base)
        .and_then(|r| r.strip_prefix('/'))
        .filter(|r| !r.is_empty() && !r.contains('/'))
        && let Some(name) = percent_decode(rest)
    {
        return name;
    }
    if let Some(oid) = system.strip_prefix("urn:oid:").filter(|o| is_oid(o)) {
        return oid.to_string();
    }
    if let Some(oid) = known_oid(system) {
        return oid;
    }
    system.to_string()
}

/// The OID whose usual URI `uri` is (the reverse of [`oid_uri`]'s table).
fn known_oid(uri: &str) -> Option<String> {
    const KNOWN: &[(&str, &str)] = &[
        ("http://loinc.org", "2.16.840.1.113883.6.1"),
        ("http://snomed.info/sct", "2.16.840.1.113883.6.96"),
        ("http://unitsofmeasure.org", "2.16.840.1.113883.6.8"),
        (
            "http://www.nlm.nih.gov/research/umls/rxnorm",
            "2.16.840.1.113883.6.88",
        ),
        (
            "http://hl7.org/fhir/sid/icd-10-cm",
            "2.16.840.1.113883.6.90",
        ),
        ("http://hl7.org/fhir/sid/icd-10", "2.16.840.1.113883.6.3"),
        (
            "http://hl7.org/fhir/sid/icd-9-cm",
            "2.16.840.1.113883.6.103",
        ),
        ("http://www.ama-assn.org/go/cpt", "2.16.840.1.113883.6.12"),
        ("http://hl7.org/fhir/sid/ndc", "2.16.840.1.113883.6.69"),
        (
            "http://nucc.org/provider-taxonomy",
            "2.16.840.1.113883.6.101",
        ),
        ("http://hl7.org/fhir/sid/cvx", "2.16.840.1.113883.12.292"),
        (
            "http://terminology.hl7.org/CodeSystem/MVX",
            "2.16.840.1.113883.12.227",
        ),
        ("http://hl7.org/fhir/sid/us-npi", "2.16.840.1.113883.4.6"),
        ("http://hl7.org/fhir/sid/us-ssn", "2.16.840.1.113883.4.1"),
    ];
    if let Some((_, oid)) = KNOWN.iter().find(|(u, _)| *u == uri) {
        return Some((*oid).to_string());
    }
    let table = uri.strip_prefix("http://terminology.hl7.org/CodeSystem/v2-")?;
    (table.len() == 4 && table.bytes().all(|b| b.is_ascii_digit()))
        .then(|| table.parse::<u16>().ok())
        .flatten()
        .map(|t| format!("2.16.840.1.113883.12.{t}"))
        // Tables the OID table above names by another URI keep that one.
        .filter(|oid| oid_uri(oid).is_some_and(|u| u == uri))
}

/// `%XX` sequences back to their bytes; `None` when that is not UTF-8 or a
/// sequence is broken.
fn percent_decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = s.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    const BASE: &str = "urn:corridor:id";

    #[test]
    fn an_authority_is_named_by_its_universal_id_first() {
        assert_eq!(authority_name("HOSP", "1.2.3", "ISO").unwrap(), "1.2.3");
        assert_eq!(authority_name("HOSP", "", "").unwrap(), "HOSP");
        assert_eq!(authority_name("", "LAB", "L").unwrap(), "LAB");
        assert_eq!(
            authority_name("X", "A0B1-C2", "UUID").unwrap(),
            "urn:uuid:a0b1-c2"
        );
        assert_eq!(
            authority_name("X", "https://id.example.org/mrn", "URI").unwrap(),
            "https://id.example.org/mrn"
        );
        assert_eq!(authority_name(" ", "", ""), None);
    }

    #[test]
    fn names_become_systems_and_back() {
        for (name, system) in [
            ("HOSP", "urn:corridor:id/HOSP"),
            ("ADT@NORTH", "urn:corridor:id/ADT%40NORTH"),
            ("St Mary's", "urn:corridor:id/St%20Mary%27s"),
            ("1.2.3", "urn:oid:1.2.3"),
            ("2.16.840.1.113883.4.1", "http://hl7.org/fhir/sid/us-ssn"),
            (
                "2.16.840.1.113883.12.203",
                "http://terminology.hl7.org/CodeSystem/v2-0203",
            ),
            ("https://id.example.org/mrn", "https://id.example.org/mrn"),
            ("urn:uuid:a0b1", "urn:uuid:a0b1"),
        ] {
            assert_eq!(system_of(name, BASE), system, "{name}");
            assert_eq!(name_of(system, BASE), name, "{system}");
        }
        // A system no name made is its own name, and its own system again.
        for system in ["http://example.org/ids", "urn:corridor:id/a/b"] {
            assert_eq!(system_of(&name_of(system, BASE), BASE), system);
        }
    }

    #[test]
    fn the_sender_names_identifiers_without_an_authority() {
        assert_eq!(sender_name("ADT", "NORTH"), "ADT@NORTH");
        assert_eq!(sender_name("", "NORTH"), "NORTH");
        assert_eq!(sender_name("", ""), "unknown-sender");
    }
}
