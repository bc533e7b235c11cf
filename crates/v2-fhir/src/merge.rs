//! How a message updates a resource that several messages describe in part.
//!
//! A VXU's PID carries the MR and the name, not the SSN the ADT recorded; an A40
//! says who replaced the retired Patient, not who it was; a late result's PV1 knows
//! the patient class, not whether the visit ended. Such a resource ([`SHARED`]) is
//! updated, never replaced: [`merge_into`] takes the message's elements over the
//! current version and keeps the rest. Every other resource is one v2 record,
//! replaced whole by the message that sends it again.
//!
//! Pure functions over `serde_json::Value`: the repository (`fhir-repo`) merges into
//! its stored version, the `fhir` destination (`delivery`) into the version a FHIR
//! server holds, by the same rules.

use serde_json::Value;

use crate::Bundle;

/// Resources that several messages describe in part (a VXU's PID, an A40's retired
/// Patient, an ORU's PV1): an update merges into the current version.
pub const SHARED: &[&str] = &[
    "Patient",
    "Encounter",
    "Practitioner",
    "Organization",
    "Location",
    "RelatedPerson",
    "Account",
    "Coverage",
];

/// Whether a resource type is one of [`SHARED`].
pub fn is_shared(resource_type: &str) -> bool {
    SHARED.contains(&resource_type)
}

/// The choice elements (`[x]`) of the shared resources, by their stem.
const CHOICES: &[&str] = &["deceased", "multipleBirth"];

const EVENT_SYSTEM: &str = "http://terminology.hl7.org/CodeSystem/v2-0003";

/// What a Bundle's message says about the shared resources it updates.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Update {
    /// The Patients of an unlink (A37): links between them are removed.
    unlinked: Vec<String>,
    /// An ADT event: the registration system's word on the patient and the
    /// visit. Another message's PV1 (a late result's) gives the Encounter a
    /// status from its patient class alone, which must not reopen a finished
    /// visit, and its NK1 (a VXU's mother) names some of the contacts, not
    /// all of them.
    from_adt: bool,
}

impl Update {
    /// What a converted message says.
    pub fn of(bundle: &Bundle) -> Update {
        let event = bundle
            .of_type("MessageHeader")
            .map(|h| &h.resource["eventCoding"])
            .find(|c| c["system"] == EVENT_SYSTEM)
            .and_then(|c| c["code"].as_str())
            .unwrap_or_default();
        let patients = bundle.of_type("Patient").map(|e| e.id.clone()).collect();
        Update::from_event(event, patients)
    }

    /// What a transaction Bundle as FHIR JSON says (the same as [`Update::of`] on the
    /// Bundle it was made from).
    pub fn of_json(bundle: &Value) -> Update {
        let resources: Vec<&Value> = bundle["entry"]
            .as_array()
            .map(|entries| entries.iter().map(|e| &e["resource"]).collect())
            .unwrap_or_default();
        let event = resources
            .iter()
            .filter(|r| r["resourceType"] == "MessageHeader")
            .map(|h| &h["eventCoding"])
            .find(|c| c["system"] == EVENT_SYSTEM)
            .and_then(|c| c["code"].as_str())
            .unwrap_or_default();
        let patients = resources
            .iter()
            .filter(|r| r["resourceType"] == "Patient")
            .filter_map(|r| r["id"].as_str().map(str::to_owned))
            .collect();
        Update::from_event(event, patients)
    }

    fn from_event(event: &str, patients: Vec<String>) -> Update {
        Update {
            unlinked: if event == "A37" { patients } else { Vec::new() },
            from_adt: event.starts_with('A'),
        }
    }

    /// The Patients an unlink (A37) separates; empty for any other message.
    pub fn unlinked(&self) -> &[String] {
        &self.unlinked
    }
}

/// A shared resource updated by a message that describes part of it: each element the
/// message sends replaces the stored one and elements it leaves out are kept. Three
/// elements combine instead: `identifier` (the union, by system and value),
/// `extension` (by url) and a Patient's `link` (by the other Patient), so a VXU's PID
/// never erases the SSN recorded from the ADT, nor a second merge the first. An unlink
/// (A37) removes the links between the Patients it names. An Encounter's status
/// changes only by an ADT event, and only an ADT replaces a Patient's contacts
/// (another message's contacts join them, by name and relationship).
///
/// `stored` is the current version without `meta`; a value that is not an object on
/// either side gives `incoming`.
pub fn merge_into(stored: Value, incoming: Value, resource_type: &str, update: &Update) -> Value {
    let (mut merged, incoming) = match (stored, incoming) {
        (Value::Object(stored), Value::Object(incoming)) => (stored, incoming),
        (_, incoming) => return incoming,
    };
    let unlinked = &update.unlinked;
    for (key, value) in incoming {
        if key == "status"
            && resource_type == "Encounter"
            && !update.from_adt
            && merged.contains_key("status")
        {
            continue;
        }
        // A choice element has one form: a death time replaces `deceasedBoolean`.
        if let Some(choice) = CHOICES.iter().find(|c| key.starts_with(*c)) {
            merged.retain(|k, _| !k.trim_start_matches('_').starts_with(choice));
        }
        let combined = match (key.as_str(), merged.remove(&key)) {
            ("identifier", Some(old)) => {
                union_by(value, old, |i| (i["system"].clone(), i["value"].clone()))
            }
            ("extension", Some(old)) => union_by(value, old, |e| (e["url"].clone(), Value::Null)),
            ("link", Some(old)) => union_by(value, old, |l| {
                (l["other"]["reference"].clone(), Value::Null)
            }),
            ("contact", Some(old)) if !update.from_adt => union_by(value, old, |c| {
                (c["name"].clone(), c["relationship"].clone())
            }),
            (_, _) => value,
        };
        merged.insert(key, combined);
    }
    if let Some(Value::Array(links)) = merged.get_mut("link") {
        links.retain(|l| {
            let other = l["other"]["reference"].as_str().unwrap_or_default();
            !unlinked
                .iter()
                .any(|p| other.strip_prefix("Patient/") == Some(p.as_str()))
        });
        if links.is_empty() {
            merged.remove("link");
        }
    }
    Value::Object(merged)
}

/// The incoming items, then the stored ones whose key none of them has.
fn union_by(incoming: Value, stored: Value, key: impl Fn(&Value) -> (Value, Value)) -> Value {
    let (Value::Array(mut items), Value::Array(old)) = (incoming.clone(), stored) else {
        return incoming;
    };
    let keys: Vec<(Value, Value)> = items.iter().map(&key).collect();
    items.extend(old.into_iter().filter(|o| !keys.contains(&key(o))));
    Value::Array(items)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn identifiers_combine_and_other_elements_are_replaced_or_kept() {
        let stored = json!({"resourceType": "Patient", "id": "p",
            "identifier": [{"system": "mr", "value": "1"}, {"system": "ssn", "value": "9"}],
            "gender": "female", "birthDate": "1962-03-20"});
        let incoming = json!({"resourceType": "Patient", "id": "p",
            "identifier": [{"system": "mr", "value": "1"}, {"system": "iis", "value": "5"}],
            "gender": "other"});
        let merged = merge_into(stored, incoming, "Patient", &Update::default());
        assert_eq!(
            merged["identifier"],
            json!([{"system": "mr", "value": "1"}, {"system": "iis", "value": "5"},
                   {"system": "ssn", "value": "9"}])
        );
        assert_eq!(merged["gender"], "other");
        assert_eq!(merged["birthDate"], "1962-03-20");
    }

    #[test]
    fn the_json_bundle_says_what_the_converted_one_says() {
        let bundle = json!({"resourceType": "Bundle", "type": "transaction", "entry": [
            {"resource": {"resourceType": "MessageHeader", "eventCoding":
                {"system": EVENT_SYSTEM, "code": "A37"}}},
            {"resource": {"resourceType": "Patient", "id": "a"}},
            {"resource": {"resourceType": "Patient", "id": "b"}}]});
        let update = Update::of_json(&bundle);
        assert_eq!(update.unlinked(), ["a", "b"]);
        assert!(update.from_adt);
        let stored = json!({"link": [{"other": {"reference": "Patient/b"}},
                                     {"other": {"reference": "Patient/c"}}]});
        let merged = merge_into(stored, json!({"active": true}), "Patient", &update);
        assert_eq!(
            merged["link"],
            json!([{"other": {"reference": "Patient/c"}}])
        );
        let oru = Update::of_json(&json!({"entry": [{"resource": {
            "resourceType": "MessageHeader",
            "eventCoding": {"system": EVENT_SYSTEM, "code": "R01"}}}]}));
        assert!(!oru.from_adt && oru.unlinked().is_empty());
    }
}
