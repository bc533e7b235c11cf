//! HL7 v2 to FHIR R4 conversion, following the HL7 v2-to-FHIR implementation
//! guide (<http://hl7.org/fhir/uv/v2mappings>).
//!
//! One message in, one FHIR R4 transaction [`Bundle`] out. Resource ids are
//! stable hashes of business identifiers (a Patient's id comes from its
//! PID-3 identifier, an Encounter's from PV1-19, an Observation's from its
//! order's filler number and OBX sequence), and every entry is a `PUT` by
//! that id: sending the same message twice, or an A08 after the A01, updates
//! the same resources rather than creating new ones. A `MessageHeader` and a
//! `Provenance` record which message each resource came from.
//!
//! ```
//! use v2_fhir::{Converter, Options};
//!
//! let bytes = b"MSH|^~\\&|LAB|HOSP|EHR|HOSP|20240102120000+0100||ORU^R01|MSG1|P|2.5.1\r\
//!               PID|1||123^^^HOSP^MR||DOE^JANE||19800101|F\r\
//!               OBR|1||F1^LAB|718-7^Hemoglobin^LN|||20240102110000+0100\r\
//!               OBX|1|NM|718-7^Hemoglobin^LN||13.2|g/dL^^UCUM|||||F\r";
//! let message = hl7v2::Message::parse(bytes)?;
//! let bundle = Converter::new(Options::default()).convert(&message)?;
//! let observation = bundle.entries().iter().find(|e| e.resource_type == "Observation").unwrap();
//! assert_eq!(observation.resource["valueQuantity"]["code"], "g/dL");
//! assert_eq!(observation.resource["subject"]["reference"], format!("Patient/{}", bundle.patient_id().unwrap()));
//! let json = bundle.to_json_string();
//! assert!(json.contains("\"type\":\"transaction\""));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # The mapping and where it comes from
//!
//! The guide's tables are in `mappings/` (see `mappings/SOURCES.md`). The
//! vocabulary concept maps (`mappings/codesystems/*.csv`) are embedded and
//! applied as they are ([`vocab::ConceptMap`]); the segment and data type rules
//! are code in `src/segments/` and `src/datatypes.rs`, each naming the table row
//! it implements (`PID[Patient] PID-5`).
//!
//! Messages are dispatched by MSH-9 (structure first, then type): the ADT
//! family (A01-A13, A28, A31, A40 merge, A60 and any other ADT event by its
//! segments), ORM^O01, OML^O21 (and other OML), OMG^O19, ORU^R01, OUL,
//! RDE^O11/O25, RDS^O13, RAS^O17, VXU^V04, SIU^S12-S26, MDM^T01-T11,
//! DFT^P03, BAR^P01-P12, REF/RRI^I12-I15, PPR^PC1-PC3 and ACK
//! ([`Converter::supports`]). No type is refused: any other (queries,
//! responses, site types) is converted from the segments that have a map
//! (patient, encounter, observations, ...), with an `OperationOutcome` entry
//! naming its type and each segment not converted. Such a message may list
//! several patients (a query response): each PID is a Patient, and the
//! records after it are that patient's.
//! [`Converter::coverage`] reports, for one message, which segments and
//! fields reach the Bundle. [`to_v2`] goes back: FHIR R4 JSON to v2
//! messages.
//!
//! # Choices where the guide is silent or under construction
//!
//! - **Dates and times** keep the sender's precision and offset, and a time
//!   is never dropped. A time sent without an offset takes MSH-7's offset
//!   when MSH-7 has one, else the configured [`Options::timezone`] (a fixed
//!   offset, or an IANA zone whose offset at that local time is used,
//!   daylight saving included), else UTC: then Provenance.recorded carries
//!   the extension `{identifier_base}/StructureDefinition/assumed-utc`,
//!   saying every time of the message sent without an offset was read as
//!   UTC. `HHMM` becomes `HH:MM:00` because FHIR requires seconds. Years
//!   `0000` (placeholder dates) are not dates and are left out.
//! - **Identifier systems**: assigning authorities with an OID (`&1.2.3&ISO`,
//!   or an OID namespace) become `urn:oid:`, UUIDs `urn:uuid:`, URIs stay as
//!   they are, other names go under [`Options::identifier_base`]. Local code
//!   systems go under `{identifier_base}/CodeSystem/{name}`.
//! - **Ids** are UUID v5 of the resource type and its business key, so they
//!   are the same on every run and every node. Order numbers, visit numbers
//!   and the like are unique only per patient (senders use placeholders such
//!   as `9999`), so the records of a patient (orders, results, doses,
//!   encounters, ...) are keyed within the Patient's id: two patients never
//!   share one. One v2 record is one resource: each RXA under one ORC-3 is
//!   its own Immunization (keyed on RXA-3 and RXA-5 too), and a key repeated
//!   in a message (two OBRs with one filler number) is numbered by its place.
//!   An Appointment (SCH comes before PID in SIU) is keyed within its
//!   patient once the PID is read. A record whose id would still repeat
//!   fails the conversion
//!   ([`ConvertErrorKind::DuplicateRecord`]) rather than merge. Resources
//!   with no business key (a note-less allergy with no code) are keyed on
//!   the patient and the segment's content. An Encounter without PV1-19 is
//!   the patient's encounter of that class and admit time (PV1-2, PV1-44).
//! - **Units**: `Quantity.code`/`system` are set only when the unit's coding
//!   system is sent (UCUM); otherwise the unit is kept as `unit` text.
//! - **RDE/RAS, DFT/BAR, ACK, MDM^T01** have no guide tables yet: RXE maps
//!   like RXO to MedicationRequest, RXA in RAS to MedicationAdministration,
//!   FT1 to ChargeItem, PID-18 to Account, GT1 to a guarantor RelatedPerson
//!   (or the Patient when GT1-11 is `SEL`), MSA/ERR to MessageHeader.response
//!   and an OperationOutcome.
//! - **NK1** becomes `Patient.contact` (the guide's `NK1[Patient]` map).
//! - **Insurance**: IN1-16 to IN1-19, IN1-43 and IN1-49 make the
//!   Coverage's subscriber (the Patient when IN1-17 is `SEL`, else a
//!   RelatedPerson); IN2-1/2/6/8 add the insured's employee, SSN, Medicare
//!   and Medicaid numbers to it, IN2-61 the patient's member number to the
//!   Patient; IN3 (certification) is a CareTeam (`IN3[CareTeam]`) the
//!   Coverage points to by the extension
//!   `{identifier_base}/StructureDefinition/coverage-certification`. GT1-12
//!   is the guarantor's SSN.
//! - **ACC, PDA, DB1** (no guide tables) are Observations of the patient:
//!   the accident (LOINC 11374-6, ACC-2 the value), each cause of death
//!   (LOINC 69453-9) and the autopsy (LOINC 85699-7), the disability
//!   (`code.text` "Disability"); the parts no code names are components
//!   known by their text. PDA marks the Patient `deceasedBoolean` unless
//!   PID-29/30 said more.
//! - **ROL and PRT** (`ROL[Patient-GeneralPractitioner]`,
//!   `ROL[Encounter-PractitionerRole]`, `PRT[PractitionerRole]`): a
//!   primary care provider (`PP`, `FHCP`) is `Patient.generalPractitioner`;
//!   a PRT ordering provider (`OP`, `OPO`) the order's requester, other PRT
//!   roles perform the order's latest result (else the order); other ROL
//!   roles, and PRT outside orders, are Encounter participants.
//! - **REF/RRI**: RF1 is a ServiceRequest categorized as a referral (SNOMED
//!   CT 3457005); PRD providers are Practitioners, the referring one
//!   (`RP`) its requester, the others its performers.
//! - **PPR**: PRB is a problem-list Condition. **RDS**: RXD is a
//!   MedicationDispense authorized by the order's MedicationRequest; an
//!   RXO and an RXE of one order are one MedicationRequest.
//! - **OBX of type ED** in a result becomes `DiagnosticReport.presentedForm`
//!   (R4 Observation has no attachment value); in MDM, OBX text lines are
//!   joined into one `text/plain` attachment of the DocumentReference.
//! - **Notes** (NTE) go to what they follow: Observation, ServiceRequest
//!   (R4 DiagnosticReport has no note), Specimen, AllergyIntolerance,
//!   MedicationRequest, Immunization, Appointment.comment.
//! - **Repeated OBX keys** (same set id and code under one order) get their
//!   own Observation, numbered by their place among the twins.
//! - **MRG** (A40 and friends): the surviving patient gets a `replaces` link to
//!   the merged one, which is written `active: false` with a `replaced-by`
//!   link. An A40 with several PID/MRG pairs merges each pair; the first PID
//!   is the message's subject (Bundle::patient_id).
//! - **A37** (unlink; the guide has no map for it): each of its two PIDs
//!   becomes a Patient written `active: true` and without `link`, so applied
//!   after an A40 of the same pair the `replaces`/`replaced-by` links are gone
//!   and both patients are active again; the repository also forgets the
//!   merge (see the `fhir-repo` crate). The first PID is the subject.
//! - **Status defaults** where the v2 code is absent or unmapped: Observation
//!   and DiagnosticReport `unknown`, Encounter from the event (A03 finished,
//!   ...) else from the patient class, Procedure `completed`, Coverage and
//!   Account `active`, ChargeItem `billable`, DocumentReference `current`.
//! - **Decimals** become JSON numbers: `7.50` prints as `7.5`.
//! - **Code and identifier systems sent as OIDs** take the URI FHIR names
//!   them by (`2.16.840.1.113883.6.1` is `http://loinc.org`; SNOMED CT, UCUM,
//!   RxNorm, ICD, CPT, NDC, CVX, MVX, NPI, SSN likewise; `...12.N` is the v2
//!   table N); other OIDs stay `urn:oid:`.
//! - **Bounded results** (`>60`, `<=0.5`) in an NM value, or an ST value with
//!   units, are a Quantity with its comparator and units.
//! - **Microbiology**: OBX-4 becomes the `observation-v2-subid` extension; a
//!   child order (OBR-29 names its parent order) is `basedOn` the parent's
//!   ServiceRequest (by reference when in the message, else by identifier),
//!   and when OBR-26 names an isolate of the message (OBX-3 and OBX-4) its
//!   results are `derivedFrom` that Observation, which lists them in
//!   `hasMember`.
//! - **Medication timing**: RXE-1 (TQ: interval, start, end, priority) and
//!   TQ1 (TQ1-2 dose, TQ1-3 repeat pattern, TQ1-6 service duration, TQ1-7/8
//!   bounds, TQ1-9 priority) fill the one dosage instruction's Timing: the
//!   table 0335 code, and frequency/period for the patterns that say them
//!   (`BID`, `Q6H`, `QAM`, `3ID`, ...); `PRN` sets asNeededBoolean.
//! - **PID-10/PID-22** become the US Core race and ethnicity extensions (the
//!   guide leaves them to the realm), PID-23 `patient-birthPlace`; PV1-15/16
//!   `hospitalization.specialArrangement`/`specialCourtesy`; OBR-13
//!   `supportingInfo` (its text: R4 has no CodeableReference); OBR-17 the
//!   requester's `order-callback-phone-number`; OBX-18 a Device; OBX-19 the
//!   `observation-analysis-date-time` extension; OBX-23/24/25 the
//!   performing Organization with its address and its medical director as
//!   a PractitionerRole (code MDIR).
//! - **Money** sent without its denomination (MO.2) takes the currency of
//!   the country the message is from (MSH-17), when it has one.

mod bundle;
mod convert;
pub mod coverage;
pub mod datatypes;
pub mod datetime;
mod error;
pub mod identity;
mod ids;
mod json;
pub mod merge;
mod segments;
pub mod to_v2;
pub mod vocab;

pub use bundle::{Bundle, Entry};
pub use coverage::{Coverage, SegmentCoverage, SegmentStatus};
pub use datetime::{UtcOffset, Zone};
pub use error::{ConvertError, ConvertErrorKind};

/// A business identifier: the enterprise patient id the MPI adds.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Identifier {
    pub system: String,
    pub value: String,
}

/// How to convert.
#[derive(Clone, Debug)]
pub struct Options {
    /// The zone of times the message sends without an offset, when MSH-7
    /// has none either (MSH-7's offset comes first: it is the sender's own
    /// word). Without either, such times are read as UTC and the
    /// Provenance says so. See [`datetime`].
    pub timezone: Option<Zone>,
    /// Base URI for identifier systems of assigning authorities that are
    /// neither OIDs nor URIs, and for local code systems.
    pub identifier_base: String,
    /// An enterprise identifier added to the Patient (the MPI's link), for
    /// every message converted with these options. See also
    /// [`Converter::convert_with_enterprise_id`].
    pub enterprise_identifier: Option<Identifier>,
}

impl Default for Options {
    fn default() -> Options {
        Options {
            timezone: None,
            identifier_base: "urn:corridor:id".to_string(),
            enterprise_identifier: None,
        }
    }
}

/// Converts messages to Bundles. Cheap to share: it holds only its options.
#[derive(Clone, Debug)]
pub struct Converter {
    options: Options,
}

impl Converter {
    pub fn new(options: Options) -> Converter {
        Converter { options }
    }

    pub fn options(&self) -> &Options {
        &self.options
    }

    /// Converts one message to a transaction Bundle.
    pub fn convert(&self, message: &hl7v2::Message<'_>) -> Result<Bundle, ConvertError> {
        convert::convert(
            message,
            &self.options,
            self.options.enterprise_identifier.as_ref(),
        )
    }

    /// True when the message's type (MSH-9) has a map of its own (see the
    /// crate docs); [`Converter::convert`] converts the others too, from
    /// their segments, with an OperationOutcome naming what it left out.
    pub fn supports(message: &hl7v2::Message<'_>) -> bool {
        convert::kind_of_message(message).is_some()
    }

    /// Like [`Converter::convert`], adding `enterprise_id` to the Patient's
    /// identifiers (the MPI's enterprise identifier for this person).
    pub fn convert_with_enterprise_id(
        &self,
        message: &hl7v2::Message<'_>,
        enterprise_id: &Identifier,
    ) -> Result<Bundle, ConvertError> {
        convert::convert(message, &self.options, Some(enterprise_id))
    }
}
