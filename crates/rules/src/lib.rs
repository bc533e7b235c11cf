//! Clinical screening rules over HL7 v2 messages: critical values, delta
//! checks, a sepsis screen (SIRS with lactate, qSOFA), allergy against
//! medication orders, and duplicate test orders.
//!
//! The crate reads facts out of a message ([`extract`]), looks at the
//! patient's recent record through [`PatientHistory`] (the engine
//! implements it over the clinical repository), and hands back [`Alert`]s
//! with their evidence. It knows nothing of the engine or HTTP; [`stored`]
//! holds the alerts' table, which the engine writes in its processing
//! transaction, and [`render`] the ORU^R01 an alert is delivered as.
//!
//! These are screening alerts. Their thresholds are defaults that cite
//! public sources (see `docs/rules.md`); each hospital sets and owns its own.
//!
//! ```
//! use rules::{InMemoryHistory, PatientId, Rules, RulesConfig, Timestamp, extract};
//!
//! let bytes = b"MSH|^~\\&|LAB|HOSP|EHR|HOSP|20240102103000||ORU^R01|MSG1|P|2.5.1\r\
//!               PID|1||123^^^HOSP^MR||DOE^JANE\r\
//!               OBR|1||F1|2823-3^Potassium^LN|||20240102101500\r\
//!               OBX|1|NM|2823-3^Potassium^LN||6.4|mmol/L|3.5-5.1|HH|||F\r";
//! let message = hl7v2::Message::parse(bytes)?;
//! let facts = extract(&message);
//!
//! let rules = Rules::new(&RulesConfig::default())?;
//! let patient = PatientId("E42".into());
//! let now = Timestamp::parse_hl7("20240102103001").unwrap();
//! let alerts = rules.evaluate_and_suppress(&patient, &facts, &InMemoryHistory::new(), now, &[]);
//!
//! assert_eq!(alerts.len(), 1);
//! assert_eq!(alerts[0].rule.as_str(), "critical-value");
//! assert_eq!(alerts[0].key, "2823-3:high");
//! assert_eq!(alerts[0].summary,
//!     "Critical high result: Potassium [Moles/volume] in Serum or Plasma 6.4 mmol/L (critical >6.1 mmol/L)");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod alert;
mod checks;
pub mod config;
pub mod custom;
mod extract;
mod facts;
mod history;
pub mod render;
pub mod repository;
pub mod scenario;
pub mod stored;
mod time;
pub mod units;

pub use alert::{Alert, AlertKind, Evidence, Severity, Suppression};
pub use checks::{
    AllergyMedication, CriticalValues, DeltaCheck, DuplicateTest, Rule, RuleInput, Rules,
    SepsisScreen,
};
pub use config::{ConfigError, RulesConfig};
pub use custom::{CustomRule, CustomRuleConfig, RuleError};
pub use extract::{extract, extract_in, message_zone};
pub use facts::{
    AbnormalFlag, Allergy, AllergyStatus, ClinicalFacts, Code, Finding, LOINC, MedicationOrder,
    Observation, ObservationStatus, ObservationValue, OrderState, PatientId, RXNORM, Source,
    TestOrder,
};
pub use history::{InMemoryHistory, PatientHistory};
pub use time::{Timestamp, Window};
