//! The search keys of a message (`store::search`): read once, when its channel
//! processes it, from the bytes as stored. A few fields, so processing stays cheap.

use hl7v2::Message;
use store::search::SearchKind;

/// PID-3.1 of each repetition, PID-5 family and given names of each repetition, and
/// the order numbers ORC-2.1, ORC-3.1, OBR-2.1, OBR-3.1 and OBR-20.
pub(crate) fn search_keys(raw: &[u8]) -> Vec<(SearchKind, String)> {
    let Ok(message) = Message::parse(raw) else {
        return Vec::new();
    };
    let mut keys = Vec::new();
    let mut push = |kind: SearchKind, text: std::borrow::Cow<'_, str>| {
        let text = text.trim();
        if !text.is_empty()
            && !keys
                .iter()
                .any(|(k, v): &(SearchKind, String)| *k == kind && v == text)
        {
            keys.push((kind, text.to_owned()));
        }
    };
    for segment in message.segments() {
        match segment.name() {
            b"PID" => {
                if let Some(ids) = segment.field(3) {
                    for repetition in ids.children() {
                        push(SearchKind::PatientId, repetition.component(1).text());
                    }
                }
                if let Some(names) = segment.field(5) {
                    for repetition in names.children() {
                        push(
                            SearchKind::PatientName,
                            repetition.component(1).subcomponent(1).text(),
                        );
                        push(SearchKind::PatientName, repetition.component(2).text());
                    }
                }
            }
            b"ORC" | b"OBR" => {
                for n in [2, 3] {
                    if let Some(field) = segment.field(n) {
                        push(SearchKind::Order, field.component(1).text());
                    }
                }
                if segment.name() == b"OBR" {
                    if let Some(field) = segment.field(20) {
                        push(SearchKind::Order, field.text());
                    }
                }
            }
            _ => {}
        }
    }
    keys
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patient_names_and_order_numbers_are_read() {
        let raw = b"MSH|^~\\&|LAB|H|EHR|H|2024||ORU^R01|C1|P|2.5.1\r\
PID|1||MRN1^^^H~SSN9^^^SS||DOE^JANE~SMITH^JANE\r\
ORC|RE|PL1|FI1\r\
OBR|1|PL1|FI2|CBC||||||||||||||||ACC77\r";
        let keys = search_keys(raw);
        let of = |kind| {
            keys.iter()
                .filter(|(k, _)| *k == kind)
                .map(|(_, v)| v.as_str())
                .collect::<Vec<_>>()
        };
        assert_eq!(of(SearchKind::PatientId), ["MRN1", "SSN9"]);
        assert_eq!(of(SearchKind::PatientName), ["DOE", "JANE", "SMITH"]);
        assert_eq!(of(SearchKind::Order), ["PL1", "FI1", "FI2", "ACC77"]);
        assert!(search_keys(b"not a message").is_empty());
    }
}
