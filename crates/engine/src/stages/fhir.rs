//! The FHIR stage (`[channels.NAME.fhir]`): every message of a type the converter
//! handles becomes a FHIR R4 transaction Bundle (`Work::fhir`), with the patient
//! index's enterprise id on the Patient when the index gave one. With
//! `repository = true` the Bundle is applied to the clinical repository in the
//! transaction that records the message processed (`fhir_repo::apply_bundle_in`), so
//! the repository holds a message's resources exactly when the journal says it was
//! processed.
//!
//! ```toml
//! [channels.lab.fhir]
//! repository = true            # store the resources (default false: convert only)
//! timezone = "America/Chicago" # zone of times sent without an offset when MSH-7 has
//!                              # none either: IANA name or fixed offset ("+01:00");
//!                              # default none: such times are read as UTC and the
//!                              # Provenance says so
//! identifier_base = "https://id.example.org"  # default "urn:corridor:id"
//! ```
//!
//! A message type the converter does not handle (a query, an unknown event) goes on
//! without a Bundle. A message of a handled type that fails to convert stops here as
//! `errored` with the converter's reason, so the repository never silently misses it;
//! it can be fixed and reprocessed.

use std::sync::Arc;

use serde::Deserialize;
use store::MessageState;
use v2_fhir::{Converter, Options, Zone};

use crate::stage::{Commit, Stage, StageOutcome, Work};

/// `[channels.NAME.fhir]`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FhirConfig {
    /// Store the resources in the clinical repository (served under `/fhir`).
    #[serde(default)]
    pub repository: bool,
    /// Zone of times sent without an offset (when MSH-7 has none): an IANA name such
    /// as `America/Chicago` or a fixed offset such as `+01:00` or `Z`.
    #[serde(default)]
    pub timezone: Option<String>,
    /// Base URI of identifier systems and local code systems.
    #[serde(default)]
    pub identifier_base: Option<String>,
}

impl FhirConfig {
    /// Problems with these settings, as (key, message); `at` is `channels.NAME`.
    pub fn check(&self, at: &str) -> Vec<(String, String)> {
        match self.options() {
            Ok(_) => Vec::new(),
            Err((key, message)) => vec![(format!("{at}.fhir.{key}"), message)],
        }
    }

    /// The converter's options; an error names the key.
    pub fn options(&self) -> Result<Options, (&'static str, String)> {
        let mut options = Options::default();
        if let Some(tz) = &self.timezone {
            options.timezone = Some(
                tz.parse::<Zone>()
                    .map_err(|e| ("timezone", e.to_string()))?,
            );
        }
        if let Some(base) = &self.identifier_base {
            if !base.contains(':') || base.trim() != base || base.is_empty() {
                return Err((
                    "identifier_base",
                    format!("{base:?} is not an absolute URI (e.g. \"https://id.example.org\")"),
                ));
            }
            options.identifier_base = base.trim_end_matches('/').to_owned();
        }
        Ok(options)
    }
}

/// Converts each message and, with the repository on, stores its resources.
pub struct FhirStage {
    converter: Converter,
    repository: bool,
    enterprise_system: Option<String>,
}

impl FhirStage {
    /// `enterprise_system` is the patient index's identifier system (`[mpi]`), used for
    /// `Work::enterprise_id`; without it the enterprise id is not added.
    pub fn new(options: Options, repository: bool, enterprise_system: Option<String>) -> FhirStage {
        FhirStage {
            converter: Converter::new(options),
            repository,
            enterprise_system,
        }
    }

    /// From a checked `[channels.NAME.fhir]`.
    pub fn from_config(
        config: &FhirConfig,
        enterprise_system: Option<String>,
    ) -> Result<FhirStage, String> {
        let options = config
            .options()
            .map_err(|(key, message)| format!("fhir.{key}: {message}"))?;
        Ok(FhirStage::new(
            options,
            config.repository,
            enterprise_system,
        ))
    }
}

impl Stage for FhirStage {
    fn name(&self) -> &str {
        "fhir"
    }

    fn run(&self, work: &mut Work) -> StageOutcome {
        let bytes = work.message.to_bytes();
        let message = match StageOutcome::parse(&bytes, self.name()) {
            Ok(message) => message,
            Err(stop) => return stop,
        };
        if !Converter::supports(&message) {
            return StageOutcome::proceed();
        }
        let enterprise = work.enterprise_identifier(self.enterprise_system.as_deref());
        let converted = match &enterprise {
            Some(id) => self.converter.convert_with_enterprise_id(&message, id),
            None => self.converter.convert(&message),
        };
        let bundle = match converted {
            Ok(bundle) => Arc::new(bundle),
            Err(error) => {
                return StageOutcome::Stop {
                    state: MessageState::Errored,
                    reason: format!("fhir: {error}"),
                    commit: None,
                };
            }
        };
        work.fhir = Some(Arc::clone(&bundle));
        let commit: Option<Commit> = self.repository.then(|| {
            let (id, received_at) = (work.id, work.received_at);
            Box::new(move |conn: &rusqlite::Connection| {
                fhir_repo::apply_bundle_in(conn, &bundle, id, received_at).map(|_| ())
            }) as Commit
        });
        StageOutcome::Continue { commit }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use store::{MessageId, Store, UnixMicros};

    const ORU: &[u8] = b"MSH|^~\\&|LAB|GHH|EHR|GHH|20240105120000||ORU^R01^ORU_R01|ORU-1|P|2.5.1\rPID|1||P100^^^GHH^MR||DOE^JANE\rOBR|1||F1^LAB|24331-1^Lipid^LN\rOBX|1|NM|718-7^Hemoglobin^LN||13.2|g/dL^^UCUM|||||F|||20240105110000\r";

    fn work(raw: &[u8]) -> Work {
        Work::new(
            MessageId(7),
            Arc::from("lab"),
            UnixMicros(1_767_268_800_000_000),
            hl7v2::OwnedMessage::parse(raw).unwrap(),
        )
    }

    #[test]
    fn configuration_errors_name_the_key() {
        let bad: FhirConfig = toml::from_str("timezone = \"Mars/Olympus\"").unwrap();
        let errors = bad.check("channels.lab");
        assert_eq!(errors.len(), 1);
        assert_eq!(errors[0].0, "channels.lab.fhir.timezone");
        let bad: FhirConfig = toml::from_str("identifier_base = \"nope\"").unwrap();
        assert_eq!(
            bad.check("channels.lab")[0].0,
            "channels.lab.fhir.identifier_base"
        );
        assert!(toml::from_str::<FhirConfig>("repo = true").is_err());
        let good: FhirConfig =
            toml::from_str("repository = true\ntimezone = \"+01:00\"\nidentifier_base = \"https://id.example.org/\"").unwrap();
        assert!(good.check("channels.lab").is_empty());
        let options = good.options().unwrap();
        assert_eq!(options.identifier_base, "https://id.example.org");
        assert_eq!(options.timezone.unwrap().to_string(), "+01:00");
        let named: FhirConfig = toml::from_str("timezone = \"America/Chicago\"").unwrap();
        assert!(named.check("channels.lab").is_empty());
    }

    #[test]
    fn a_channel_base_other_than_the_patient_index_base_is_refused_naming_the_key() {
        let text = |base: &str| {
            format!(
                "[mpi]\nenabled = true\nidentifier_base = \"https://id.example.org\"\n\
                 [channels.lab]\nsource = {{ type = \"mllp\", listen = \"127.0.0.1:0\" }}\n\
                 fhir = {{ identifier_base = \"{base}\" }}\n"
            )
        };
        let errors = crate::config::Config::from_toml(&text("urn:corridor:id")).unwrap_err();
        let keys: Vec<&str> = errors.errors.iter().map(|e| e.key.as_str()).collect();
        assert_eq!(keys, ["channels.lab.fhir.identifier_base"], "{errors}");
        assert!(crate::config::Config::from_toml(&text("https://id.example.org/")).is_ok());
        let errors = crate::config::Config::from_toml(
            "[mpi]\nidentifier_base = \"HOSP\"\n[channels.lab]\nsource = { type = \"mllp\", listen = \"127.0.0.1:0\" }\n",
        )
        .unwrap_err();
        assert_eq!(errors.errors[0].key, "mpi.identifier_base", "{errors}");
    }

    #[test]
    fn the_commit_stores_the_bundle_with_the_enterprise_id() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        fhir_repo::migrate_blocking(&store).unwrap();
        let config: FhirConfig = toml::from_str("repository = true\ntimezone = \"Z\"").unwrap();
        let stage =
            FhirStage::from_config(&config, Some("urn:corridor:enterprise".into())).unwrap();
        let mut work = work(ORU);
        work.enterprise_id = Some("E12".into());
        let StageOutcome::Continue {
            commit: Some(commit),
        } = stage.run(&mut work)
        else {
            panic!("the stage should go on with a commit");
        };
        let bundle = work.fhir.clone().unwrap();
        let patient_id = bundle.patient_id().unwrap().to_owned();
        store.write_blocking(move |conn| commit(conn)).unwrap();
        let patient = store
            .read(|c| fhir_repo::query::read_in(c, "Patient", &patient_id))
            .unwrap()
            .unwrap();
        assert!(
            patient["identifier"]
                .as_array()
                .unwrap()
                .iter()
                .any(|i| { i["system"] == "urn:corridor:enterprise" && i["value"] == "E12" })
        );
        let versions = store
            .read(|c| fhir_repo::query::history_in(c, "Patient", &patient_id))
            .unwrap();
        assert_eq!(versions[0].message_id, Some(7));
        // The observation time got the configured offset.
        let observation = bundle.of_type("Observation").next().unwrap();
        assert_eq!(
            observation.resource["effectiveDateTime"],
            "2024-01-05T11:00:00+00:00"
        );
    }

    #[test]
    fn without_the_repository_there_is_no_commit_and_unsupported_types_pass() {
        let stage = FhirStage::new(Options::default(), false, None);
        let mut oru = work(ORU);
        assert!(matches!(
            stage.run(&mut oru),
            StageOutcome::Continue { commit: None }
        ));
        assert!(oru.fhir.is_some());
        let mut query =
            work(b"MSH|^~\\&|A|B|C|D|20240101||QBP^Q22^QBP_Q21|Q1|P|2.5.1\rQPD|IHE PDQ Query\r");
        assert!(matches!(
            stage.run(&mut query),
            StageOutcome::Continue { commit: None }
        ));
        assert!(query.fhir.is_none());
    }
}
