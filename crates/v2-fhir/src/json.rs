//! Building FHIR JSON without empty values: FHIR forbids `""`, `[]` and `{}`,
//! so every setter drops them instead of every caller checking.

use serde_json::{Map, Value};

/// A JSON object under construction.
#[derive(Clone, Debug, Default)]
pub struct Obj(pub Map<String, Value>);

/// True for values FHIR does not allow to be present: null, blank strings,
/// empty arrays and empty objects.
pub fn is_blank(value: &Value) -> bool {
    match value {
        Value::Null => true,
        Value::String(s) => s.trim().is_empty(),
        Value::Array(a) => a.is_empty(),
        Value::Object(o) => o.is_empty(),
        _ => false,
    }
}

impl Obj {
    pub fn new() -> Obj {
        Obj(Map::new())
    }

    /// Sets `key` unless `value` is blank.
    pub fn set(&mut self, key: &str, value: impl Into<Value>) -> &mut Obj {
        let value = value.into();
        if !is_blank(&value) {
            self.0.insert(key.to_string(), value);
        }
        self
    }

    /// Builder form of [`Obj::set`].
    pub fn with(mut self, key: &str, value: impl Into<Value>) -> Obj {
        self.set(key, value);
        self
    }

    /// Sets `key` to a string, trimmed, unless it is blank.
    pub fn text(&mut self, key: &str, value: &str) -> &mut Obj {
        let value = value.trim();
        if !value.is_empty() {
            self.0
                .insert(key.to_string(), Value::String(value.to_string()));
        }
        self
    }

    /// Appends to the array at `key`, creating it.
    pub fn push(&mut self, key: &str, value: impl Into<Value>) -> &mut Obj {
        let value = value.into();
        if is_blank(&value) {
            return self;
        }
        match self.0.get_mut(key) {
            Some(Value::Array(items)) => items.push(value),
            _ => {
                self.0.insert(key.to_string(), Value::Array(vec![value]));
            }
        }
        self
    }

    /// Appends each non-blank value to the array at `key`.
    pub fn extend(&mut self, key: &str, values: impl IntoIterator<Item = Value>) -> &mut Obj {
        for value in values {
            self.push(key, value);
        }
        self
    }

    pub fn has(&self, key: &str) -> bool {
        self.0.contains_key(key)
    }

    pub fn get(&self, key: &str) -> Option<&Value> {
        self.0.get(key)
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The object, or `Null` when it holds nothing (so it is dropped by a
    /// parent's `set`).
    pub fn build(self) -> Value {
        if self.0.is_empty() {
            Value::Null
        } else {
            Value::Object(self.0)
        }
    }
}

impl From<Obj> for Value {
    fn from(obj: Obj) -> Value {
        obj.build()
    }
}

/// A string value, or `Null` when blank.
pub fn string(value: &str) -> Value {
    let value = value.trim();
    if value.is_empty() {
        Value::Null
    } else {
        Value::String(value.to_string())
    }
}

/// A FHIR reference to `Type/id`.
pub fn reference(resource_type: &str, id: &str) -> Value {
    let mut target = String::with_capacity(resource_type.len() + 1 + id.len());
    target.push_str(resource_type);
    target.push('/');
    target.push_str(id);
    let mut r = Map::new();
    r.insert("reference".into(), Value::String(target));
    Value::Object(r)
}
