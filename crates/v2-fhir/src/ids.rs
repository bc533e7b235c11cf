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

/// The id of the `resource_type` known by `key` parts: the v5 UUID of
/// `Type|part|part...` in Corridor's namespace. The parts are hashed as they
/// are, without joining them into a string first.
pub fn stable_id(resource_type: &str, key: &[&str]) -> String {
    let mut hasher = sha1_smol::Sha1::new();
    hasher.update(namespace().as_bytes());
    hasher.update(resource_type.as_bytes());
    for part in key {
        hasher.update(b"|");
        hasher.update(part.as_bytes());
    }
    let digest = hasher.digest().bytes();
    let mut bytes = [0u8; 16];
    bytes.copy_from_slice(&digest[..16]);
    let mut buffer = Uuid::encode_buffer();
    let text = uuid::Builder::from_sha1_bytes(bytes)
        .into_uuid()
        .hyphenated()
        .encode_lower(&mut buffer);
    String::from(&*text)
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

    #[test]
    fn ids_are_v5_uuids_of_the_joined_key() {
        let expected = Uuid::new_v5(namespace(), b"Observation|FILL|urn:oid:1.2|9700123|1");
        assert_eq!(
            stable_id("Observation", &["FILL|urn:oid:1.2|9700123", "1"]),
            expected.hyphenated().to_string()
        );
        assert_eq!(
            stable_id("Bundle", &[]),
            Uuid::new_v5(namespace(), b"Bundle")
                .hyphenated()
                .to_string()
        );
    }
}
