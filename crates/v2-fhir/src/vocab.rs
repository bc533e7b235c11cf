//! Vocabulary: the guide's concept maps (`mappings/codesystems/*.csv`),
//! embedded in the binary and parsed once, on first use.

use std::collections::HashMap;
use std::sync::OnceLock;

/// One target concept of a concept map row.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Concept {
    pub code: String,
    pub display: Option<String>,
    pub system: String,
}

macro_rules! concept_maps {
    ($($variant:ident => $file:literal,)*) => {
        /// The concept maps of the guide that the converter applies, each named
        /// after its CSV in `mappings/codesystems/`.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        pub enum ConceptMap { $($variant,)* }

        const ALL: &[ConceptMap] = &[$(ConceptMap::$variant,)*];

        impl ConceptMap {
            /// The CSV file this map comes from.
            pub fn file_name(self) -> &'static str {
                match self { $(ConceptMap::$variant => concat!("HL7 Concept Map_ ", $file, " - Sheet1.csv"),)* }
            }

            fn csv(self) -> &'static str {
                match self {
                    $(ConceptMap::$variant => include_str!(concat!(
                        "../mappings/codesystems/HL7 Concept Map_ ", $file, " - Sheet1.csv"
                    )),)*
                }
            }
        }
    };
}

concept_maps! {
    AdministrativeSex => "AdministrativeSex",
    AddressTypeUse => "AddressType[Use]",
    AddressTypeType => "AddressType[Type]",
    AllergenType => "AllergenType[AllergyIntoleranceCategory]",
    AllergySeverityCriticality => "AllergySeverity[AllergyIntolerance.criticality]",
    AllergySeverityReaction => "AllergySeverity[AllergyIntolerance.reaction.severity]",
    AllergyType => "AllergyType",
    CompletionStatus => "CompletionStatus",
    ContactRole => "ContactRole",
    DiagnosisType => "DiagnosisType",
    EncounterPriority => "EncounterPriority",
    EventEncounterStatus => "Event[EncounterStatus]",
    FillerStatusCodesAppointment => "FillerStatusCodes[Appointment]",
    IdentifierType => "IdentifierType",
    InterpretationCodes => "InterpretationCodes",
    MaritalStatus => "MaritalStatus",
    NameType => "NameType",
    ObservationResultStatus => "ObservationResultStatusCodesInterpretation",
    OrderControlCodeStatus => "OrderControlCode[ServiceRequest.status]",
    OrderStatus => "OrderStatus",
    PatientClassEncounterClass => "PatientClass[EncounterClass]",
    PatientClassEncounterStatus => "PatientClass[EncounterStatus]",
    ProcessingId => "ProcessingID",
    Relationship => "Relationship",
    ResultStatus => "ResultStatus[Non-Queries]",
    TelecommunicationEquipmentType => "TelecommunicationEquipmentType",
    TelecommunicationUseCode => "TelecommunicationUseCode",
    YesNoIndicator => "YesNoIndicator",
}

type Table = HashMap<String, Concept>;

fn tables() -> &'static [OnceLock<Table>] {
    static TABLES: OnceLock<Vec<OnceLock<Table>>> = OnceLock::new();
    TABLES.get_or_init(|| ALL.iter().map(|_| OnceLock::new()).collect())
}

impl ConceptMap {
    /// The FHIR concept the guide maps the v2 `code` to, if it maps it.
    pub fn lookup(self, code: &str) -> Option<&'static Concept> {
        // Variants are numbered in declaration order, as ALL lists them.
        let index = self as usize;
        tables()[index]
            .get_or_init(|| parse_concept_map(self.csv()))
            .get(code.trim())
    }

    /// Every v2 code the map knows, for tests and documentation.
    pub fn len(self) -> usize {
        let index = self as usize;
        tables()[index]
            .get_or_init(|| parse_concept_map(self.csv()))
            .len()
    }

    pub fn is_empty(self) -> bool {
        self.len() == 0
    }

    /// The v2 code the map sends to the FHIR `code` (read backwards, for FHIR to
    /// v2): the first in code order when several do.
    pub fn v2_code_of(self, code: &str) -> Option<&'static str> {
        let index = self as usize;
        tables()[index]
            .get_or_init(|| parse_concept_map(self.csv()))
            .iter()
            .filter(|(_, concept)| concept.code == code)
            .map(|(v2, _)| v2.as_str())
            .min()
    }
}

/// Reads a concept map CSV. The guide's sheets share a shape but not exact
/// column positions: row 2 names the columns, the first `Code` is the v2
/// code, the next `Code` after the condition columns is the FHIR code, and
/// the last `Code System` is the FHIR system.
fn parse_concept_map(csv: &str) -> Table {
    let mut rows = csv_rows(csv).into_iter();
    let _group_header = rows.next();
    let Some(header) = rows.next() else {
        return Table::new();
    };
    let position = |name: &str| {
        header
            .iter()
            .position(|h| h.trim().eq_ignore_ascii_case(name))
    };
    let v2_code = position("Code").unwrap_or(0);
    let fhir_code = header
        .iter()
        .enumerate()
        .skip(v2_code + 1)
        .find(|(_, h)| h.trim().eq_ignore_ascii_case("Code"))
        .map(|(i, _)| i);
    let display = position("Display");
    let system = header
        .iter()
        .rposition(|h| h.trim().eq_ignore_ascii_case("Code System"));
    let (Some(fhir_code), Some(system)) = (fhir_code, system) else {
        return Table::new();
    };
    let mut table = Table::new();
    for row in rows {
        let cell = |i: usize| row.get(i).map(|s| s.trim()).unwrap_or("");
        let (code, target, uri) = (cell(v2_code), cell(fhir_code), cell(system));
        if code.is_empty() || target.is_empty() || !uri.contains(':') {
            continue;
        }
        // Some sheets put the display one column early (an empty column
        // between code and display is not always kept).
        let shown = display
            .map(cell)
            .filter(|d| !d.is_empty())
            .or_else(|| Some(cell(fhir_code + 1)).filter(|d| !d.is_empty()));
        // First row wins: later rows for the same code carry conditions.
        table.entry(code.to_string()).or_insert_with(|| Concept {
            code: target.to_string(),
            display: shown.map(str::to_string),
            system: uri.to_string(),
        });
    }
    table
}

/// A small RFC 4180 reader: quoted cells, doubled quotes, CRLF or LF.
fn csv_rows(text: &str) -> Vec<Vec<String>> {
    let mut rows = Vec::new();
    let mut row = Vec::new();
    let mut cell = String::new();
    let mut quoted = false;
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match (quoted, c) {
            (true, '"') if chars.peek() == Some(&'"') => {
                cell.push('"');
                chars.next();
            }
            (true, '"') => quoted = false,
            (true, c) => cell.push(c),
            (false, '"') => quoted = true,
            (false, ',') => row.push(std::mem::take(&mut cell)),
            (false, '\r') => {}
            (false, '\n') => {
                row.push(std::mem::take(&mut cell));
                rows.push(std::mem::take(&mut row));
            }
            (false, c) => cell.push(c),
        }
    }
    if !cell.is_empty() || !row.is_empty() {
        row.push(cell);
        rows.push(row);
    }
    rows
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_embedded_concept_map_parses_with_rows() {
        for map in ALL {
            assert!(!map.is_empty(), "{} has no usable rows", map.file_name());
        }
    }

    #[test]
    fn variants_are_numbered_as_all_lists_them() {
        for (i, map) in ALL.iter().enumerate() {
            assert_eq!(*map as usize, i);
        }
    }

    #[test]
    fn administrative_sex_follows_the_guide() {
        let f = ConceptMap::AdministrativeSex.lookup("F").unwrap();
        assert_eq!(f.code, "female");
        assert_eq!(f.system, "http://hl7.org/fhir/administrative-gender");
        assert_eq!(
            ConceptMap::AdministrativeSex.lookup("A").unwrap().code,
            "other"
        );
    }

    #[test]
    fn patient_class_display_is_found_in_a_shifted_column() {
        let e = ConceptMap::PatientClassEncounterClass.lookup("E").unwrap();
        assert_eq!(e.code, "EMER");
        assert_eq!(e.display.as_deref(), Some("emergency"));
        assert_eq!(e.system, "http://terminology.hl7.org/CodeSystem/v3-ActCode");
    }

    #[test]
    fn order_status_sheet_without_spacer_column_maps() {
        let cm = ConceptMap::OrderStatus.lookup("CM").unwrap();
        assert_eq!(cm.code, "completed");
        assert_eq!(cm.system, "http://hl7.org/fhir/request-status");
    }

    #[test]
    fn unmapped_codes_have_no_concept() {
        assert!(ConceptMap::ObservationResultStatus.lookup("I").is_none());
        assert_eq!(
            ConceptMap::ObservationResultStatus
                .lookup("F")
                .unwrap()
                .code,
            "final"
        );
    }
}
