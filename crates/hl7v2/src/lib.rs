//! HL7 v2 messages: parsing, paths, escaping, editing and acknowledgements.
