//! Code system names: HL7 v2 writes `LN` (table 0396) where FHIR writes
//! `http://loinc.org`. Maps and lookups compare systems by their canonical
//! URI, so a map written either way serves a message written either way.

/// (v2 name, FHIR URI). From HL7 table 0396 and the FHIR terminology pages'
/// external code system URIs.
const ALIASES: [(&str, &str); 9] = [
    ("LN", "http://loinc.org"),
    ("UCUM", "http://unitsofmeasure.org"),
    ("SCT", "http://snomed.info/sct"),
    ("I10", "http://hl7.org/fhir/sid/icd-10"),
    ("I10C", "http://hl7.org/fhir/sid/icd-10-cm"),
    ("I9C", "http://hl7.org/fhir/sid/icd-9-cm"),
    ("RXNORM", "http://www.nlm.nih.gov/research/umls/rxnorm"),
    ("NDC", "http://hl7.org/fhir/sid/ndc"),
    ("CVX", "http://hl7.org/fhir/sid/cvx"),
];

/// The URI for a v2 name in the table; anything else as it is.
pub fn canonical(system: &str) -> &str {
    ALIASES
        .iter()
        .find(|(name, _)| *name == system)
        .map_or(system, |(_, uri)| uri)
}

/// The v2 name (for component 3 of a CWE) of a system in the table;
/// anything else as it is.
pub fn v2_name(system: &str) -> &str {
    ALIASES
        .iter()
        .find(|(_, uri)| *uri == system)
        .map_or(system, |(name, _)| name)
}
