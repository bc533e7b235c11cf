//! The clinical facts the rules read: observations, allergies, medication
//! orders and test orders. Each carries where it came from, so an alert's
//! evidence points at the message, segment and field that triggered it.

use serde::Serialize;

use crate::time::Timestamp;
use crate::units::Quantity;

/// The enterprise patient id an alert is about (given by the caller: the
/// patient index links the message's identifiers to it).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct PatientId(pub String);

/// A coded concept: a code in a code system, with the sender's text.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize)]
pub struct Code {
    /// The code system as HL7 v2 names it (`LN`, `RXNORM`, a local name).
    pub system: String,
    pub code: String,
    pub text: String,
}

/// The code system name for LOINC.
pub const LOINC: &str = "LN";
/// The code system name for RxNorm.
pub const RXNORM: &str = "RXNORM";

impl Code {
    /// A code, its system spelled the way v2 names it (`LOINC` and
    /// `http://loinc.org` become `LN`, `RxNorm` becomes `RXNORM`).
    pub fn new(system: &str, code: &str, text: &str) -> Code {
        let system = match system.trim().to_ascii_uppercase().as_str() {
            "LN" | "LOINC" | "HTTP://LOINC.ORG" => LOINC.to_owned(),
            "RXNORM" | "RXN" | "HTTP://WWW.NLM.NIH.GOV/RESEARCH/UMLS/RXNORM" => RXNORM.to_owned(),
            other => other.to_owned(),
        };
        Code {
            system,
            code: code.trim().to_owned(),
            text: text.trim().to_owned(),
        }
    }

    pub fn loinc(code: &str) -> Code {
        Code::new(LOINC, code, "")
    }

    pub fn is_loinc(&self, code: &str) -> bool {
        self.system == LOINC && self.code == code
    }

    /// Same system and code (the text does not matter).
    pub fn same_concept(&self, other: &Code) -> bool {
        self.system == other.system && self.code == other.code && !self.code.is_empty()
    }
}

/// Where a fact was read: the message control id (MSH-10), the segment
/// (`OBX[3]`) and the field that holds its value (`OBX[3]-5`).
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize)]
pub struct Source {
    pub control_id: String,
    pub segment: String,
    pub field: String,
}

/// An observation's value.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub enum ObservationValue {
    /// A number with the unit it was sent in.
    Quantity(Quantity),
    Text(String),
}

/// OBX-11, the observation result status (HL7 table 0085).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub enum ObservationStatus {
    Preliminary,
    Final,
    Corrected,
    /// `X`: the result cannot be obtained.
    Cancelled,
    /// `D`: delete the earlier result.
    Deleted,
    /// `W`: posted to the wrong patient.
    WrongPatient,
    /// Anything else, as sent (`R`, `S`, `I`, `N`, `U`, ...).
    Other(String),
}

impl ObservationStatus {
    pub fn from_hl7(code: &str) -> ObservationStatus {
        match code.trim() {
            "P" => ObservationStatus::Preliminary,
            "F" | "" => ObservationStatus::Final,
            "C" | "A" => ObservationStatus::Corrected,
            "X" => ObservationStatus::Cancelled,
            "D" => ObservationStatus::Deleted,
            "W" => ObservationStatus::WrongPatient,
            other => ObservationStatus::Other(other.to_owned()),
        }
    }

    /// A result a clinician would act on. `R` (entered, not verified) and
    /// `S` (partial) count: the laboratory calls critical values before
    /// verification too. In-process, cancelled, deleted and wrong-patient
    /// results carry no value to act on.
    pub fn is_actionable(&self) -> bool {
        match self {
            ObservationStatus::Preliminary
            | ObservationStatus::Final
            | ObservationStatus::Corrected => true,
            ObservationStatus::Other(code) => matches!(code.as_str(), "R" | "S"),
            _ => false,
        }
    }
}

/// OBX-8, the interpretation (HL7 table 0078).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub enum AbnormalFlag {
    Normal,
    Low,
    High,
    /// `LL`: below the lower panic limit.
    CriticalLow,
    /// `HH`: above the upper panic limit.
    CriticalHigh,
    Abnormal,
    /// `AA`: very abnormal (for results without a numeric scale).
    CriticallyAbnormal,
    /// `<`: below the absolute low-off instrument scale.
    BelowInstrumentScale,
    /// `>`: above the absolute high-off instrument scale.
    AboveInstrumentScale,
    Other(String),
}

impl AbnormalFlag {
    pub fn from_hl7(code: &str) -> AbnormalFlag {
        match code.trim() {
            "N" => AbnormalFlag::Normal,
            "L" => AbnormalFlag::Low,
            "H" => AbnormalFlag::High,
            "LL" => AbnormalFlag::CriticalLow,
            "HH" => AbnormalFlag::CriticalHigh,
            "A" => AbnormalFlag::Abnormal,
            "AA" => AbnormalFlag::CriticallyAbnormal,
            "<" => AbnormalFlag::BelowInstrumentScale,
            ">" => AbnormalFlag::AboveInstrumentScale,
            other => AbnormalFlag::Other(other.to_owned()),
        }
    }

    /// The flags that call a result critical (the `>`/`<` flags say the
    /// value is off the instrument's scale, beyond any panic limit).
    pub fn is_critical(&self) -> bool {
        matches!(
            self,
            AbnormalFlag::CriticalLow
                | AbnormalFlag::CriticalHigh
                | AbnormalFlag::CriticallyAbnormal
                | AbnormalFlag::BelowInstrumentScale
                | AbnormalFlag::AboveInstrumentScale
        )
    }

    pub fn as_hl7(&self) -> &str {
        match self {
            AbnormalFlag::Normal => "N",
            AbnormalFlag::Low => "L",
            AbnormalFlag::High => "H",
            AbnormalFlag::CriticalLow => "LL",
            AbnormalFlag::CriticalHigh => "HH",
            AbnormalFlag::Abnormal => "A",
            AbnormalFlag::CriticallyAbnormal => "AA",
            AbnormalFlag::BelowInstrumentScale => "<",
            AbnormalFlag::AboveInstrumentScale => ">",
            AbnormalFlag::Other(code) => code,
        }
    }
}

/// One result: an OBX, with its OBR's context.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Observation {
    pub code: Code,
    pub value: ObservationValue,
    /// The value in the unit the rules compare this code in (see
    /// [`crate::units::rule_unit`]); `None` for text, or a unit the rules
    /// cannot convert (which the extraction reports as a finding).
    pub normalised: Option<Quantity>,
    pub flags: Vec<AbnormalFlag>,
    /// OBX-14, else OBR-7, else MSH-7.
    pub effective: Option<Timestamp>,
    pub status: ObservationStatus,
    /// OBR-4, the test this result answers.
    pub order_code: Option<Code>,
    pub source: Source,
}

impl Observation {
    /// The normalised number, for an actionable result.
    pub fn actionable_number(&self) -> Option<f64> {
        self.status
            .is_actionable()
            .then(|| self.normalised.as_ref().map(|q| q.value))
            .flatten()
    }
}

/// Whether an allergy record still counts.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub enum AllergyStatus {
    Active,
    /// Deleted (IAM-6 `D`), or entered in error (IAM-17 `E`).
    Inactive,
}

/// An allergy or intolerance (AL1, IAM; the repository's AllergyIntolerance).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Allergy {
    /// The allergen (AL1-3, IAM-3).
    pub code: Code,
    /// IAM-10, the allergen group, when sent.
    pub group: Option<Code>,
    /// AL1-2/IAM-2 (table 0127: `DA` drug, `FA` food, `MA` miscellaneous...).
    pub allergy_type: String,
    pub status: AllergyStatus,
    pub source: Source,
}

/// A medication order or dispense (RXO, RXE, RXD, with RXC components).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct MedicationOrder {
    /// RXE-2, RXO-1 or RXD-2.
    pub code: Code,
    /// RXC-2 components, when the sender lists them.
    pub ingredients: Vec<Code>,
    /// ORC-1 (`NW`, `XO`, `CA`, ...), when there is an ORC.
    pub order_control: Option<String>,
    pub time: Option<Timestamp>,
    pub source: Source,
}

impl MedicationOrder {
    /// A cancellation or discontinuation gives the patient nothing.
    pub fn gives_medication(&self) -> bool {
        !matches!(
            self.order_control.as_deref(),
            Some("CA" | "DC" | "OC" | "OD" | "CR" | "DR" | "UA" | "UD")
        )
    }
}

/// What an OBR says about its test.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub enum OrderState {
    Ordered,
    Resulted,
    Cancelled,
}

/// A laboratory or other test order (ORC/OBR), or the test a result answers.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct TestOrder {
    /// OBR-4, the universal service identifier.
    pub code: Code,
    /// ORC-9, else OBR-6, OBR-7, MSH-7.
    pub time: Option<Timestamp>,
    /// OBR-2 or ORC-2: the same order sent again is not a duplicate.
    pub placer_order_number: Option<String>,
    pub state: OrderState,
    pub source: Source,
}

/// Something in a message the rules could not read (a number that is not
/// one, a unit that cannot be converted): reported, never a crash.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Finding {
    pub source: Source,
    pub problem: String,
}

/// Everything the rules read from one message.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct ClinicalFacts {
    pub observations: Vec<Observation>,
    pub allergies: Vec<Allergy>,
    pub medication_orders: Vec<MedicationOrder>,
    pub test_orders: Vec<TestOrder>,
    pub findings: Vec<Finding>,
}
