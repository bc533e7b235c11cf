//! Stable resource ids: UUID v5 of the resource type and a business key.

use uuid::Uuid;

/// Corridor's namespace for resource ids (itself a v5 UUID of a URL),
/// computed once.
fn namespace() -> &'static Uuid {
    static NAMESPACE: std::sync::OnceLock<Uuid> = std::sync::OnceLock::new();
    NAMESPACE.get_or_init(|| {
        Uuid::new_v5(
            &Uuid::NAMESPACE_URL,
            b"https://corridor-hl7.org/fhir/resource-id",
        )
    })
}

/// The id of the `resource_type` known by `key` parts.
pub fn stable_id(resource_type: &str, key: &[&str]) -> String {
    let mut name = String::with_capacity(64);
    name.push_str(resource_type);
    for part in key {
        name.push('|');
        name.push_str(part);
    }
    let mut buffer = uuid::Uuid::encode_buffer();
    Uuid::new_v5(namespace(), name.as_bytes())
        .hyphenated()
        .encode_lower(&mut buffer)
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_key_same_id_and_parts_do_not_run_together() {
        assert_eq!(
            stable_id("Patient", &["a", "b"]),
            stable_id("Patient", &["a", "b"])
        );
        assert_ne!(
            stable_id("Patient", &["a", "b"]),
            stable_id("Patient", &["ab"])
        );
        assert_ne!(stable_id("Patient", &["a"]), stable_id("Encounter", &["a"]));
    }
}
