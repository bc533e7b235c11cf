//! HL7 v2 to FHIR R4 conversion, following the HL7 v2-to-FHIR implementation guide.
