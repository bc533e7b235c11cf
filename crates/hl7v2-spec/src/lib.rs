//! HL7 v2 message structures, segments, data types and tables per version, and validation.
