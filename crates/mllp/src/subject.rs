//! Reads a certificate's subject as an RFC 4514 string ("CN=lab-1,O=Hospital").
//!
//! Only the few DER structures on the way to the subject are walked; every
//! length is checked, so a malformed certificate yields `None`, never a panic.

use std::fmt::Write;

/// The subject distinguished name of a DER certificate, RFC 4514 style:
/// most specific RDN first, `,` between RDNs, `+` inside multi-valued RDNs.
pub fn subject_of_certificate(cert_der: &[u8]) -> Option<String> {
    let (certificate, _) = expect(cert_der, SEQUENCE)?;
    let (mut tbs, _) = expect(certificate, SEQUENCE)?;
    if tbs.first() == Some(&EXPLICIT_VERSION) {
        tbs = read(tbs)?.2;
    }
    let (_serial, rest) = expect(tbs, INTEGER)?;
    let (_signature_algorithm, rest) = expect(rest, SEQUENCE)?;
    let (_issuer, rest) = expect(rest, SEQUENCE)?;
    let (_validity, rest) = expect(rest, SEQUENCE)?;
    let (subject, _) = expect(rest, SEQUENCE)?;
    name_to_rfc4514(subject)
}

const INTEGER: u8 = 0x02;
const OBJECT_IDENTIFIER: u8 = 0x06;
const SEQUENCE: u8 = 0x30;
const SET: u8 = 0x31;
const EXPLICIT_VERSION: u8 = 0xA0;

/// One TLV: (tag, content, rest). Single-byte tags only, which is all a Name uses.
fn read(input: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, rest) = input.split_first()?;
    if tag & 0x1F == 0x1F {
        return None;
    }
    let (&first, rest) = rest.split_first()?;
    let (len, rest) = if first < 0x80 {
        (usize::from(first), rest)
    } else {
        let count = usize::from(first & 0x7F);
        if count == 0 || count > 4 || rest.len() < count {
            return None;
        }
        let (len_bytes, rest) = rest.split_at(count);
        let len = len_bytes
            .iter()
            .fold(0usize, |acc, &b| (acc << 8) | usize::from(b));
        (len, rest)
    };
    if rest.len() < len {
        return None;
    }
    let (content, rest) = rest.split_at(len);
    Some((tag, content, rest))
}

fn expect(input: &[u8], tag: u8) -> Option<(&[u8], &[u8])> {
    let (found, content, rest) = read(input)?;
    (found == tag).then_some((content, rest))
}

fn name_to_rfc4514(mut name: &[u8]) -> Option<String> {
    let mut rdns = Vec::new();
    while !name.is_empty() {
        let (mut set, rest) = expect(name, SET)?;
        name = rest;
        let mut attributes = Vec::new();
        while !set.is_empty() {
            let (attribute, rest) = expect(set, SEQUENCE)?;
            set = rest;
            let (oid, value) = expect(attribute, OBJECT_IDENTIFIER)?;
            attributes.push(attribute_to_string(oid, value)?);
        }
        rdns.push(attributes.join("+"));
    }
    rdns.reverse();
    Some(rdns.join(","))
}

fn attribute_to_string(oid: &[u8], value_tlv: &[u8]) -> Option<String> {
    let dotted = oid_to_dotted(oid)?;
    let short_name = match dotted.as_str() {
        "2.5.4.3" => Some("CN"),
        "2.5.4.5" => Some("SERIALNUMBER"),
        "2.5.4.6" => Some("C"),
        "2.5.4.7" => Some("L"),
        "2.5.4.8" => Some("ST"),
        "2.5.4.9" => Some("STREET"),
        "2.5.4.10" => Some("O"),
        "2.5.4.11" => Some("OU"),
        "0.9.2342.19200300.100.1.1" => Some("UID"),
        "0.9.2342.19200300.100.1.25" => Some("DC"),
        _ => None,
    };
    let (tag, content, _) = read(value_tlv)?;
    let text = match short_name {
        Some(_) => directory_string(tag, content),
        None => None,
    };
    let mut out = String::new();
    match (short_name, text) {
        (Some(name), Some(text)) => {
            out.push_str(name);
            out.push('=');
            escape_value(&text, &mut out);
        }
        // RFC 4514 2.4: types without a short name, or values that are not
        // strings, are written as the hex of their DER encoding.
        (name, _) => {
            out.push_str(name.unwrap_or(&dotted));
            out.push_str("=#");
            let encoded_len = value_tlv.len() - read(value_tlv)?.2.len();
            for byte in &value_tlv[..encoded_len] {
                let _ = write!(out, "{byte:02x}");
            }
        }
    }
    Some(out)
}

fn oid_to_dotted(oid: &[u8]) -> Option<String> {
    let mut arcs = Vec::new();
    let mut value: u64 = 0;
    for &byte in oid {
        value = value.checked_mul(128)? | u64::from(byte & 0x7F);
        if byte & 0x80 == 0 {
            arcs.push(value);
            value = 0;
        }
    }
    let (&first, rest) = arcs.split_first()?;
    let (a, b) = match first {
        0..40 => (0, first),
        40..80 => (1, first - 40),
        _ => (2, first - 80),
    };
    let mut out = format!("{a}.{b}");
    for arc in rest {
        let _ = write!(out, ".{arc}");
    }
    Some(out)
}

fn directory_string(tag: u8, content: &[u8]) -> Option<String> {
    match tag {
        // UTF8String
        0x0C => std::str::from_utf8(content).ok().map(str::to_owned),
        // PrintableString, IA5String, VisibleString; TeletexString read as Latin-1
        0x13 | 0x16 | 0x1A | 0x14 => Some(content.iter().map(|&b| char::from(b)).collect()),
        // BMPString: UTF-16 big endian
        0x1E if content.len() % 2 == 0 => {
            let units: Vec<u16> = content
                .chunks_exact(2)
                .map(|pair| u16::from_be_bytes([pair[0], pair[1]]))
                .collect();
            String::from_utf16(&units).ok()
        }
        // UniversalString: UTF-32 big endian
        0x1C if content.len() % 4 == 0 => content
            .chunks_exact(4)
            .map(|quad| char::from_u32(u32::from_be_bytes([quad[0], quad[1], quad[2], quad[3]])))
            .collect(),
        _ => None,
    }
}

/// RFC 4514 2.4 escaping of an attribute value.
fn escape_value(value: &str, out: &mut String) {
    let last = value.chars().count().saturating_sub(1);
    for (i, c) in value.chars().enumerate() {
        match c {
            ',' | '+' | '"' | '\\' | '<' | '>' | ';' => {
                out.push('\\');
                out.push(c);
            }
            '#' if i == 0 => out.push_str("\\#"),
            ' ' if i == 0 || i == last => out.push_str("\\ "),
            '\0' => out.push_str("\\00"),
            _ => out.push(c),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn certificate_with(dn: rcgen::DistinguishedName) -> Vec<u8> {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(vec!["lab-1.example".into()]).unwrap();
        params.distinguished_name = dn;
        params.self_signed(&key).unwrap().der().to_vec()
    }

    #[test]
    fn subject_lists_most_specific_rdn_first() {
        let mut dn = rcgen::DistinguishedName::new();
        dn.push(rcgen::DnType::CountryName, "NL");
        dn.push(rcgen::DnType::OrganizationName, "Hospital");
        dn.push(rcgen::DnType::CommonName, "lab-1");
        let subject = subject_of_certificate(&certificate_with(dn)).unwrap();
        assert_eq!(subject, "CN=lab-1,O=Hospital,C=NL");
    }

    #[test]
    fn special_characters_in_values_are_escaped() {
        let mut dn = rcgen::DistinguishedName::new();
        dn.push(rcgen::DnType::OrganizationName, "Saint Mary's, Inc+Co");
        dn.push(rcgen::DnType::CommonName, " #lab ");
        let subject = subject_of_certificate(&certificate_with(dn)).unwrap();
        assert_eq!(subject, r"CN=\ #lab\ ,O=Saint Mary's\, Inc\+Co");
    }

    #[test]
    fn truncated_certificate_yields_no_subject() {
        let mut dn = rcgen::DistinguishedName::new();
        dn.push(rcgen::DnType::CommonName, "lab-1");
        let der = certificate_with(dn);
        for cut in [0, 1, 10, der.len() / 3] {
            assert_eq!(subject_of_certificate(&der[..cut]), None);
        }
    }

    #[test]
    fn oid_arcs_decode_including_multi_byte_arcs() {
        // 1.2.840.113549.1.9.1 (emailAddress)
        let oid = [0x2A, 0x86, 0x48, 0x86, 0xF7, 0x0D, 0x01, 0x09, 0x01];
        assert_eq!(oid_to_dotted(&oid).unwrap(), "1.2.840.113549.1.9.1");
    }
}
