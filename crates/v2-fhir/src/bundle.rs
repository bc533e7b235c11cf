//! The transaction Bundle and its entries.

use serde_json::{Map, Value, json};

/// One resource of the Bundle, with what a store needs to file it.
#[derive(Clone, Debug, PartialEq)]
pub struct Entry {
    /// `Patient`, `Observation`, ...
    pub resource_type: &'static str,
    /// The stable id (also in `resource.id`).
    pub id: String,
    /// The id of the Patient this resource belongs to, when there is one
    /// (the Patient itself carries its own id).
    pub patient_id: Option<String>,
    /// The resource as FHIR JSON.
    pub resource: Value,
}

impl Entry {
    /// `Type/id`.
    pub fn reference(&self) -> String {
        format!("{}/{}", self.resource_type, self.id)
    }
}

/// A FHIR R4 transaction Bundle: every entry is a `PUT Type/id`.
#[derive(Clone, Debug, PartialEq)]
pub struct Bundle {
    pub(crate) id: String,
    pub(crate) timestamp: Option<String>,
    pub(crate) identifier: Value,
    pub(crate) entries: Vec<Entry>,
    pub(crate) patient_id: Option<String>,
}

impl Bundle {
    /// The Bundle's own id (stable for a message: sender and control id).
    pub fn id(&self) -> &str {
        &self.id
    }

    pub fn entries(&self) -> &[Entry] {
        &self.entries
    }

    /// Consumes the Bundle, giving its entries.
    pub fn into_entries(self) -> Vec<Entry> {
        self.entries
    }

    /// The id of the message's Patient, when it has one.
    pub fn patient_id(&self) -> Option<&str> {
        self.patient_id.as_deref()
    }

    /// The entries of one resource type.
    pub fn of_type<'a>(&'a self, resource_type: &'a str) -> impl Iterator<Item = &'a Entry> + 'a {
        self.entries
            .iter()
            .filter(move |e| e.resource_type == resource_type)
    }

    /// The Bundle as FHIR JSON.
    pub fn to_json(&self) -> Value {
        let entries: Vec<Value> = self
            .entries
            .iter()
            .map(|e| {
                json!({
                    "fullUrl": format!("urn:uuid:{}", e.id),
                    "resource": e.resource,
                    "request": { "method": "PUT", "url": e.reference() },
                })
            })
            .collect();
        let mut bundle = Map::new();
        bundle.insert("resourceType".into(), "Bundle".into());
        bundle.insert("id".into(), self.id.clone().into());
        if !self.identifier.is_null() {
            bundle.insert("identifier".into(), self.identifier.clone());
        }
        bundle.insert("type".into(), "transaction".into());
        if let Some(ts) = &self.timestamp {
            bundle.insert("timestamp".into(), ts.clone().into());
        }
        bundle.insert("entry".into(), Value::Array(entries));
        Value::Object(bundle)
    }

    /// The Bundle as compact JSON text (the same as `to_json().to_string()`,
    /// without copying the resources).
    pub fn to_json_string(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }
}

/// Writes the entries in place; keys in the order `to_json` gives them
/// (sorted), so both spellings are byte-identical.
impl serde::Serialize for Bundle {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;

        struct Request<'a>(&'a Entry);
        impl serde::Serialize for Request<'_> {
            fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                let mut map = serializer.serialize_map(Some(2))?;
                map.serialize_entry("method", "PUT")?;
                map.serialize_entry("url", &self.0.reference())?;
                map.end()
            }
        }
        struct EntryJson<'a>(&'a Entry);
        impl serde::Serialize for EntryJson<'_> {
            fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                let mut map = serializer.serialize_map(Some(3))?;
                map.serialize_entry("fullUrl", &format!("urn:uuid:{}", self.0.id))?;
                map.serialize_entry("request", &Request(self.0))?;
                map.serialize_entry("resource", &self.0.resource)?;
                map.end()
            }
        }
        struct Entries<'a>(&'a [Entry]);
        impl serde::Serialize for Entries<'_> {
            fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.collect_seq(self.0.iter().map(EntryJson))
            }
        }

        let mut map = serializer.serialize_map(None)?;
        map.serialize_entry("entry", &Entries(&self.entries))?;
        map.serialize_entry("id", &self.id)?;
        if !self.identifier.is_null() {
            map.serialize_entry("identifier", &self.identifier)?;
        }
        map.serialize_entry("resourceType", "Bundle")?;
        if let Some(ts) = &self.timestamp {
            map.serialize_entry("timestamp", ts)?;
        }
        map.serialize_entry("type", "transaction")?;
        map.end()
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn serialized_text_equals_the_json_value_text() {
        let bytes = b"MSH|^~\\&|A|B|C|D|20240102120000+0100||ADT^A01|X1|P|2.5.1\rPID|1||1^^^H^MR||DOE^J\rPV1|1|I\r";
        let message = hl7v2::Message::parse(bytes).unwrap();
        let bundle = crate::Converter::new(crate::Options::default())
            .convert(&message)
            .unwrap();
        assert_eq!(bundle.to_json_string(), bundle.to_json().to_string());
    }
}
