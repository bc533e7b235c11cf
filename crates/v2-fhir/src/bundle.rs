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

    /// The Bundle as compact JSON text.
    pub fn to_json_string(&self) -> String {
        self.to_json().to_string()
    }
}

impl serde::Serialize for Bundle {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.to_json().serialize(serializer)
    }
}
