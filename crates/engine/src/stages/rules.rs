//! The rules stage: clinical screening rules (`crates/rules`) on each message, after the
//! FHIR stage, against the message and the patient's recent record in the clinical
//! repository.
//!
//! It runs on every channel whose repository is on (`[channels.NAME.fhir] repository =
//! true`) unless `[rules] enabled = false` or the channel's own `[channels.NAME.rules]
//! enabled = false`. The patient is the patient index's enterprise id when the index is
//! on (so results from several senders combine: every repository Patient carrying that
//! id, and every Patient merged into one of them, is one record), else the message's
//! repository Patient.
//!
//! The record ([`RepositoryHistory`]) is read from the repository's current resources
//! (Observation, AllergyIntolerance, DiagnosticReport and ServiceRequest) and overlaid
//! with the Bundles of messages this engine decided but whose batch is not written yet
//! ([`Recent`]), so the second of two messages in one batch sees the first.
//!
//! Custom rules (`[[rules.custom]]`, scripts in the channel scripts' sandbox) run after
//! the built-in ones with the message and the record's resources; one that fails
//! leaves the message errored, naming the rule and the script's line, as a failed read
//! of the record does. Times without an offset are read as the FHIR conversion reads
//! them: MSH-7's offset, else the channel's `fhir.timezone`.
//!
//! The alerts that fire (after suppression against the patient's stored alerts and the
//! ones of the same not yet written batch) are written in the transaction that records
//! the message processed: a row each in `rules_alerts` (see `rules::stored`) and, with
//! `[rules] destinations`, an ORU^R01 each in the journal of the alerts channel
//! ([`ALERTS_CHANNEL`]), which routes it to those destinations through the ordinary
//! durable queues.
//!
//! ```toml
//! [rules]                      # all optional
//! enabled = true               # false: no rule runs anywhere
//! destinations = [ { name = "pager", type = "mllp", host = "10.0.0.9", port = 2575 } ]
//! [rules.critical_values]      # every table of rules::RulesConfig: the defaults
//! suppress_for = "6h"          # of every channel
//!
//! [channels.lab.rules]         # a channel's own choice replaces [rules]' rule tables
//! duplicate_test = { enabled = false }
//! ```

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};

use delivery::DestinationConfig;
use rules::config::{
    AllergyMedicationConfig, CriticalValuesConfig, DeltaCheckConfig, DuplicateTestConfig,
    SepsisScreenConfig,
};
use rules::{Alert, ClinicalFacts, Rules, RulesConfig, Timestamp};
use serde::Deserialize;
use store::{Journal, MessageState, NewMessage, Store, UnixMicros};
use tokio::sync::Notify;

use crate::stage::{Commit, Stage, StageOutcome, Work};

pub use rules::repository::{PatientKey, RepositoryHistory};

/// The synthetic channel whose messages are the alerts (with `[rules] destinations`).
pub const ALERTS_CHANNEL: &str = "rules-alerts";

/// How far back the record is read: the longest window a rule looks back over (delta
/// checks and retesting intervals are days; suppression windows too).
pub const LOOKBACK_SECONDS: i64 = 31 * 86_400;

/// `[rules]`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RulesSection {
    /// `false` turns every rule off on every channel.
    #[serde(default = "yes")]
    pub enabled: bool,
    /// Where alerts are delivered: destinations of the alerts channel, as a channel's.
    #[serde(default)]
    pub destinations: Vec<DestinationConfig>,
    #[serde(default)]
    pub critical_values: Option<CriticalValuesConfig>,
    #[serde(default)]
    pub delta_check: Option<DeltaCheckConfig>,
    #[serde(default)]
    pub sepsis_screen: Option<SepsisScreenConfig>,
    #[serde(default)]
    pub allergy_medication: Option<AllergyMedicationConfig>,
    #[serde(default)]
    pub duplicate_test: Option<DuplicateTestConfig>,
    /// `[[rules.custom]]`: custom rules, scripts in the JavaScript sandbox.
    #[serde(default)]
    pub custom: Option<Vec<rules::CustomRuleConfig>>,
}

fn yes() -> bool {
    true
}

impl Default for RulesSection {
    fn default() -> RulesSection {
        RulesSection {
            enabled: true,
            destinations: Vec::new(),
            critical_values: None,
            delta_check: None,
            sepsis_screen: None,
            allergy_medication: None,
            duplicate_test: None,
            custom: None,
        }
    }
}

impl RulesSection {
    /// The rule settings every channel starts from.
    pub fn defaults(&self) -> RulesConfig {
        let mut config = RulesConfig::default();
        if let Some(c) = &self.critical_values {
            config.critical_values = c.clone();
        }
        if let Some(c) = &self.delta_check {
            config.delta_check = c.clone();
        }
        if let Some(c) = &self.sepsis_screen {
            config.sepsis_screen = c.clone();
        }
        if let Some(c) = &self.allergy_medication {
            config.allergy_medication = c.clone();
        }
        if let Some(c) = &self.duplicate_test {
            config.duplicate_test = c.clone();
        }
        if let Some(c) = &self.custom {
            config.custom = c.clone();
        }
        config
    }

    /// The alerts channel's destinations: `destinations`, an `http` one without `body`
    /// sending the alert as JSON (`body = "json_payload"` with the payload
    /// [`AlertPayloads`] makes); `body = "hl7"` or `"json"` sends the ORU^R01 as on a
    /// channel.
    pub fn alert_destinations(&self) -> Vec<DestinationConfig> {
        self.destinations
            .iter()
            .cloned()
            .map(|mut d| {
                if let delivery::DestinationSettings::Http(http) = &mut d.settings
                    && http.body.is_none()
                {
                    http.body = Some(delivery::HttpBody::JsonPayload);
                }
                d
            })
            .collect()
    }

    /// The settings the CDS Hooks services answer with: `[rules]`' tables, and no rule
    /// when `[rules] enabled = false` (the services then answer with no cards).
    pub fn cds_settings(&self) -> RulesConfig {
        let mut config = self.defaults();
        config.enabled = self.enabled;
        config
    }

    /// The settings of a channel: its own `[channels.NAME.rules]`, else `[rules]`'.
    pub fn for_channel(&self, own: Option<&RulesConfig>) -> RulesConfig {
        own.cloned().unwrap_or_else(|| self.defaults())
    }

    /// Problems with `[rules]`, as (key, message); custom rules' scripts are read
    /// (relative to `base_dir`) and compiled.
    pub fn check(&self, base_dir: &std::path::Path) -> Vec<(String, String)> {
        let mut errors = Vec::new();
        if let Err(e) = Rules::load(&self.defaults(), base_dir) {
            errors.push(config_error("rules", &e));
        }
        let mut names = std::collections::HashSet::new();
        for (i, d) in self.destinations.iter().enumerate() {
            if !names.insert(d.name.as_str()) {
                errors.push((
                    format!("rules.destinations[{i}].name"),
                    format!("{:?} is used by another alert destination", d.name),
                ));
            }
            if let Err(invalid) = d.validate() {
                errors.push((format!("rules.destinations[{i}]"), invalid.to_string()));
            }
        }
        errors
    }
}

/// A rules configuration error as (key, message), the key under `at`.
pub fn config_error(at: &str, error: &rules::ConfigError) -> (String, String) {
    // The rules crate names the key first: "critical_values.limits[0].high: ...".
    match error.0.split_once(": ") {
        Some((key, message)) if !key.contains(' ') => (format!("{at}.{key}"), message.to_owned()),
        _ => (at.to_owned(), error.0.clone()),
    }
}

/// Problems with `[channels.NAME.rules]`; `at` is `channels.NAME`. Custom rules'
/// scripts are read (relative to `base_dir`) and compiled.
pub fn check_channel(
    config: &RulesConfig,
    at: &str,
    base_dir: &std::path::Path,
) -> Vec<(String, String)> {
    match Rules::load(config, base_dir).map(drop) {
        Ok(()) => Vec::new(),
        Err(e) => vec![config_error(&format!("{at}.rules"), &e)],
    }
}

/// What one decided message left for those after it, until its batch is written.
struct Pending {
    message: i64,
    bundle: Option<Arc<v2_fhir::Bundle>>,
    alerts: Vec<Alert>,
}

/// Messages decided but not written yet, per patient: the newest few of each patient
/// (a batch is at most 512 messages). The processor forgets a batch's messages once its
/// write has committed ([`Recent::forget`]): from then on the repository holds what they
/// wrote, and a message decided later reads it there instead of laying it over again.
#[derive(Default)]
pub struct Recent {
    patients: Mutex<HashMap<PatientKey, VecDeque<Pending>>>,
}

/// How many decided messages are kept per patient, and how many patients.
const RECENT_PER_PATIENT: usize = 64;
const RECENT_PATIENTS: usize = 8192;

impl Recent {
    pub fn new() -> Arc<Recent> {
        Arc::new(Recent::default())
    }

    fn remember(&self, key: &PatientKey, pending: Pending) {
        let mut patients = self.patients.lock().unwrap_or_else(|p| p.into_inner());
        if patients.len() >= RECENT_PATIENTS && !patients.contains_key(key) {
            // Drop the patient whose newest message is oldest: it is long written.
            if let Some(oldest) = patients
                .iter()
                .min_by_key(|(_, q)| q.back().map_or(0, |p| p.message))
                .map(|(k, _)| k.clone())
            {
                patients.remove(&oldest);
            }
        }
        let queue = patients.entry(key.clone()).or_default();
        // A message processed again replaces what it left before.
        queue.retain(|p| p.message != pending.message);
        queue.push_back(pending);
        while queue.len() > RECENT_PER_PATIENT {
            queue.pop_front();
        }
    }

    /// Drops what `messages` left: their batch is written, so the store holds it.
    pub fn forget(&self, messages: &[i64]) {
        if messages.is_empty() {
            return;
        }
        let written: std::collections::HashSet<i64> = messages.iter().copied().collect();
        let mut patients = self.patients.lock().unwrap_or_else(|p| p.into_inner());
        patients.retain(|_, queue| {
            queue.retain(|p| !written.contains(&p.message));
            !queue.is_empty()
        });
    }

    /// How many decided messages are kept, over all patients.
    pub fn kept(&self) -> usize {
        let patients = self.patients.lock().unwrap_or_else(|p| p.into_inner());
        patients.values().map(VecDeque::len).sum()
    }

    /// The Bundles and alerts of the patient's messages before `message`.
    fn before(
        &self,
        key: &PatientKey,
        message: i64,
    ) -> (Vec<(i64, Arc<v2_fhir::Bundle>)>, Vec<Alert>) {
        let patients = self.patients.lock().unwrap_or_else(|p| p.into_inner());
        let mut bundles = Vec::new();
        let mut alerts = Vec::new();
        if let Some(queue) = patients.get(key) {
            for p in queue.iter().filter(|p| p.message < message) {
                if let Some(b) = &p.bundle {
                    bundles.push((p.message, b.clone()));
                }
                alerts.extend(p.alerts.iter().cloned());
            }
        }
        (bundles, alerts)
    }
}

/// The alerts channel's payloads for `fhir` and JSON webhook destinations, read from
/// the alert's row: for `fhir`, the ORU the router made into a Bundle of Observations
/// is replaced by the alert as a `DetectedIssue` transaction Bundle
/// (`rules::stored::detected_issue_bundle`); for an `http` destination sending
/// `json_payload` (the default for `[rules]`' `http` destinations), by the alert as
/// JSON (`rules::stored::alert_json`).
pub struct AlertPayloads {
    pub store: Store,
    /// The `fhir` destinations of `[rules]`.
    pub fhir: std::collections::HashSet<String>,
    /// The `http` destinations of `[rules]` that send the alert as JSON.
    pub json: std::collections::HashSet<String>,
    /// The system of the enterprise identifier a DetectedIssue names its patient by.
    pub patient_system: String,
}

impl AlertPayloads {
    /// Replaces the payloads of the `fhir` destinations of the alerts channel's message
    /// `message`.
    pub fn reshape(&self, message: store::MessageId, routed: &mut delivery::Routed) {
        use delivery::RouteOutcome;
        let wanted = |e: &delivery::RoutedEntry| {
            (self.fhir.contains(&*e.destination) || self.json.contains(&*e.destination))
                && matches!(e.outcome, RouteOutcome::Payload(_))
        };
        if !routed.entries.iter().any(wanted) {
            return;
        }
        let alert = self
            .store
            .read(|conn| rules::stored::by_delivery_message_in(conn, message.0));
        for entry in routed.entries.iter_mut() {
            if !wanted(entry) {
                continue;
            }
            let fhir = self.fhir.contains(&*entry.destination);
            entry.outcome = match &alert {
                Ok(Some(alert)) if fhir => RouteOutcome::Payload(bytes::Bytes::from(
                    rules::stored::detected_issue_bundle(alert, &self.patient_system).to_string(),
                )),
                Ok(Some(alert)) => RouteOutcome::Payload(bytes::Bytes::from(
                    rules::stored::alert_json(alert, &self.patient_system).to_string(),
                )),
                Ok(None) => RouteOutcome::Errored {
                    step: "alert".into(),
                    error: "no stored alert has this message as its delivery".into(),
                },
                Err(e) => RouteOutcome::Errored {
                    step: "alert".into(),
                    error: format!("reading the alert failed: {e}"),
                },
            };
        }
    }
}

/// Where the alerts of a message go, besides their table.
#[derive(Clone)]
pub struct AlertOutput {
    /// Rung after a batch with alerts is written, so the alerts channel takes them.
    pub wake: Arc<Notify>,
}

/// What every channel's rules stage shares: the store, the decided messages not yet
/// written, and the alerts channel.
#[derive(Clone)]
pub struct RulesContext {
    pub section: RulesSection,
    /// The configuration file's directory: custom rules' `script_file` is relative to it.
    pub base_dir: std::path::PathBuf,
    pub store: Store,
    pub recent: Arc<Recent>,
    pub output: Option<AlertOutput>,
}

impl RulesContext {
    /// The stage for channel `channel`, or `None` where no rule runs (its repository is
    /// off, or `[rules]` or the channel's own settings turn the rules off).
    pub fn stage_for(
        &self,
        channel: &crate::config::ChannelConfig,
        enterprise_system: Option<String>,
    ) -> Result<Option<RulesStage>, rules::ConfigError> {
        let repository = channel.fhir.as_ref().is_some_and(|f| f.repository);
        if !repository || !self.section.enabled {
            return Ok(None);
        }
        let config = self.section.for_channel(channel.rules.as_ref());
        if !config.enabled {
            return Ok(None);
        }
        // Times without an offset are read as the FHIR conversion reads them: MSH-7's
        // offset, else the channel's `fhir.timezone` (checked with the configuration).
        let zone = match channel.fhir.as_ref().and_then(|f| f.timezone.as_deref()) {
            Some(text) => Some(
                text.parse::<datetime::Zone>()
                    .map_err(|e| rules::ConfigError(format!("fhir.timezone: {e}")))?,
            ),
            None => None,
        };
        RulesStage::load(
            &config,
            &self.base_dir,
            zone,
            self.store.clone(),
            enterprise_system,
            self.recent.clone(),
            self.output.clone(),
        )
        .map(Some)
    }
}

/// Runs one channel's rules.
pub struct RulesStage {
    rules: Rules,
    /// The channel's `fhir.timezone`: where times without an offset are read when
    /// MSH-7 has none.
    zone: Option<datetime::Zone>,
    store: Store,
    enterprise_system: Option<String>,
    recent: Arc<Recent>,
    output: Option<AlertOutput>,
}

impl RulesStage {
    /// The stage for a channel with settings `config` (checked first), times without
    /// an offset read as UTC when MSH-7 has none, custom rules' scripts relative to the
    /// working directory.
    pub fn new(
        config: &RulesConfig,
        store: Store,
        enterprise_system: Option<String>,
        recent: Arc<Recent>,
        output: Option<AlertOutput>,
    ) -> Result<RulesStage, rules::ConfigError> {
        RulesStage::load(
            config,
            std::path::Path::new("."),
            None,
            store,
            enterprise_system,
            recent,
            output,
        )
    }

    /// The stage for a channel with settings `config` (checked first): custom rules'
    /// scripts relative to `base_dir`, times without an offset in `zone` when MSH-7 has
    /// no offset.
    pub fn load(
        config: &RulesConfig,
        base_dir: &std::path::Path,
        zone: Option<datetime::Zone>,
        store: Store,
        enterprise_system: Option<String>,
        recent: Arc<Recent>,
        output: Option<AlertOutput>,
    ) -> Result<RulesStage, rules::ConfigError> {
        Ok(RulesStage {
            rules: Rules::load(config, base_dir)?,
            zone,
            store,
            enterprise_system,
            recent,
            output,
        })
    }

    fn patient(&self, work: &Work) -> Option<PatientKey> {
        match (&self.enterprise_system, &work.enterprise_id) {
            (Some(system), Some(id)) => Some(PatientKey::Enterprise {
                system: system.clone(),
                id: id.clone(),
            }),
            _ => work
                .fhir
                .as_ref()
                .and_then(|b| b.patient_id())
                .map(|id| PatientKey::Patient(id.to_owned())),
        }
    }
}

fn has_facts(facts: &ClinicalFacts) -> bool {
    !(facts.observations.is_empty()
        && facts.allergies.is_empty()
        && facts.medication_orders.is_empty()
        && facts.test_orders.is_empty())
}

impl Stage for RulesStage {
    fn name(&self) -> &str {
        "rules"
    }

    fn run(&self, work: &mut Work) -> StageOutcome {
        let Some(key) = self.patient(work) else {
            return StageOutcome::proceed();
        };
        let bytes = work.message.to_bytes();
        let message = match StageOutcome::parse(&bytes, self.name()) {
            Ok(message) => message,
            Err(stop) => return stop,
        };
        let facts = rules::extract_in(&message, self.zone.as_ref());
        let zone = rules::message_zone(&message, self.zone.as_ref());
        let now = message
            .get_str("MSH-7")
            .ok()
            .flatten()
            .and_then(|t| Timestamp::parse_hl7_in(&t, zone.as_ref()))
            .unwrap_or(Timestamp::from_unix_seconds(work.received_at.0 / 1_000_000));
        let id = work.id.0;
        let (bundles, recent_alerts) = self.recent.before(&key, id);
        let alerts = if (has_facts(&facts) || self.rules.has_custom())
            && !self.rules.kinds().is_empty()
        {
            let patient = key.alert_patient();
            let since = now.minus(rules::Window::seconds_of(LOOKBACK_SECONDS));
            let read = self.store.read(|conn| {
                let own = work.fhir.as_deref().and_then(|b| b.patient_id());
                let history = RepositoryHistory::load(conn, &key, own, id, since)?;
                let stored = rules::stored::recent_in(conn, &patient, since)?;
                Ok((history, stored))
            });
            let (mut history, mut previous) = match read {
                Ok(read) => read,
                Err(error) => {
                    // Processing again later may work (the store was busy or failing):
                    // the message stays visible as errored, to be reprocessed.
                    return StageOutcome::Stop {
                        state: MessageState::Errored,
                        reason: format!("rules: reading the patient's record failed: {error}"),
                        commit: None,
                    };
                }
            };
            // Newest first, each resource once: a resource several unwritten messages
            // wrote is laid over in its latest version only, not copied once a message.
            let mut laid = std::collections::HashSet::new();
            for (message, bundle) in bundles.iter().rev() {
                history.overlay(
                    *message,
                    bundle
                        .entries()
                        .iter()
                        .rev()
                        .filter(|e| {
                            RepositoryHistory::reads(e.resource_type)
                                && laid.insert((e.resource_type, e.id.as_str()))
                        })
                        .map(|e| (e.resource_type, e.id.as_str(), &e.resource)),
                );
            }
            previous.extend(recent_alerts);
            match self.rules.evaluate_message(
                &patient,
                &facts,
                &work.message,
                &history,
                now,
                &previous,
            ) {
                Ok(alerts) => alerts,
                Err(error) => {
                    // Like a failed read of the record: the message stays visible as
                    // errored with the rule and the script's line, to be reprocessed
                    // once the script is fixed. Never the values (the script's words
                    // are its author's, not the message's).
                    tracing::warn!(message = ?work.id, channel = %work.channel, rule = %error.rule, "custom rule failed");
                    return StageOutcome::Stop {
                        state: MessageState::Errored,
                        reason: format!("rules: {error}"),
                        commit: None,
                    };
                }
            }
        } else {
            Vec::new()
        };
        self.recent.remember(
            &key,
            Pending {
                message: id,
                bundle: work.fhir.clone(),
                alerts: alerts.clone(),
            },
        );
        if alerts.is_empty() {
            return StageOutcome::proceed();
        }
        for alert in &alerts {
            // No PHI: the rule and condition key, never the patient or the values.
            tracing::info!(message = ?work.id, channel = %work.channel, rule = alert.rule.as_str(), key = %alert.key, "alert fired");
        }
        let channel = work.channel.clone();
        let deliver = self.output.is_some();
        let commit: Commit = Box::new(move |conn: &rusqlite::Connection| {
            for (seq, alert) in alerts.iter().enumerate() {
                let seq = u32::try_from(seq).unwrap_or(u32::MAX);
                let delivery_message = if deliver {
                    Some(append_alert_message(conn, id, seq, alert)?)
                } else {
                    None
                };
                rules::stored::insert_in(
                    conn,
                    &rules::stored::NewAlert {
                        message_id: id,
                        seq,
                        channel: &channel,
                        alert,
                        delivery_message,
                    },
                )?;
            }
            Ok(())
        });
        StageOutcome::Continue {
            commit: Some(commit),
        }
    }
}

impl RulesStage {
    /// The alerts channel's notifier, rung after the batch that stored alerts is written.
    pub fn wake(&self) -> Option<Arc<Notify>> {
        self.output.as_ref().map(|o| o.wake.clone())
    }

    /// The decided messages not yet written, which the processor forgets once their
    /// batch is.
    pub fn recent(&self) -> Arc<Recent> {
        self.recent.clone()
    }
}

/// Appends the alert's ORU^R01 to the alerts channel's journal (state `received`), in
/// the caller's transaction; the alerts channel's processor queues it for the
/// destinations. The control id `ALERT-{message}-{seq}` is the same when a message is
/// processed again, and the alerts channel detects the repeat.
fn append_alert_message(
    conn: &rusqlite::Connection,
    message: i64,
    seq: u32,
    alert: &Alert,
) -> store::Result<i64> {
    let control_id = format!("ALERT-{message}-{seq}");
    let now = UnixMicros::now();
    let text = rules::render::alert_oru(
        alert,
        &control_id,
        Timestamp::from_unix_seconds(now.0 / 1_000_000),
    );
    let appended = Journal::append_in(
        conn,
        &NewMessage {
            channel: Arc::from(ALERTS_CHANNEL),
            raw: bytes::Bytes::from(text.into_bytes()),
            received_at: now,
            peer: Arc::from("rules"),
            tls_identity: None,
            sending_application: "CORRIDOR".to_owned(),
            sending_facility: "RULES".to_owned(),
            message_type: "ORU^R01^ORU_R01".to_owned(),
            control_id,
            version: "2.5.1".to_owned(),
            state: MessageState::Received,
            state_reason: None,
        },
        // Any earlier copy: a message processed again does not page twice.
        Some(std::time::Duration::from_secs(100 * 365 * 86_400)),
    )?;
    Ok(appended.id().0)
}

#[cfg(test)]
mod tests {
    use crate::Config;

    fn errors(toml: &str) -> String {
        let text = format!(
            "[channels.lab]\nsource = {{ type = \"mllp\", listen = \"127.0.0.1:0\" }}\nfhir = {{ repository = true }}\n{toml}"
        );
        match Config::from_toml(&text) {
            Ok(_) => String::new(),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn configuration_errors_name_the_key() {
        assert_eq!(errors(""), "");
        assert_eq!(
            errors(
                "[channels.lab.rules]\nduplicate_test = { enabled = false }\n[rules]\nenabled = true\n"
            ),
            ""
        );
        let e = errors("[rules.sepsis_screen]\nlactate_at_least = -1.0\n");
        assert!(e.contains("rules.sepsis_screen.lactate_at_least"), "{e}");
        let e = errors("[channels.lab.rules.sepsis_screen]\nsirs_at_least = 9\n");
        assert!(
            e.contains("channels.lab.rules.sepsis_screen.sirs_at_least"),
            "{e}"
        );
        let e = errors("[channels.lab.rules]\nsepsis = {}\n");
        assert!(e.contains("sepsis"), "{e}");
        let e = errors("[rules]\ndestinations = [ { name = \"p\", type = \"mllp\" } ]\n");
        assert!(e.contains("rules.destinations[0]"), "{e}");
        let e = errors(
            "[rules]\ndestinations = [ { name = \"p\", type = \"mllp\", to = \"127.0.0.1:9\" } ]\n",
        );
        assert_eq!(e, "");
        let e = Config::from_toml(
            "[channels.adt]\nsource = { type = \"mllp\", listen = \"127.0.0.1:0\" }\n[rules]\ndestinations = [ { name = \"p\", type = \"mllp\", to = \"127.0.0.1:9\" } ]\n",
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("rules.destinations"), "{e}");
        let e = errors(
            "[channels.rules-alerts]\nsource = { type = \"mllp\", listen = \"127.0.0.1:0\" }\n",
        );
        assert!(e.contains("channels.rules-alerts"), "{e}");
    }

    #[test]
    fn cds_hooks_answer_with_rules_settings_and_nothing_when_rules_are_off() {
        let section: super::RulesSection = toml::from_str(
            "[duplicate_test]\nshipped_tests = false\ntests = [ { loinc = \"1988-5\", window = \"2h\", source = \"ours\" } ]\n",
        )
        .unwrap();
        let settings = section.cds_settings();
        assert!(settings.enabled);
        assert_eq!(settings.duplicate_test.tests.len(), 1);
        let off = super::RulesSection {
            enabled: false,
            ..section
        };
        let rules = api::cds_screening_rules(&off.cds_settings()).unwrap();
        assert!(rules.kinds().is_empty());
    }

    #[test]
    fn a_channel_without_the_repository_or_with_rules_off_has_no_stage() {
        let dir = tempfile::tempdir().unwrap();
        let store = store::Store::open(dir.path()).unwrap();
        let context = |section: super::RulesSection| super::RulesContext {
            section,
            base_dir: dir.path().to_path_buf(),
            store: store.clone(),
            recent: super::Recent::new(),
            output: None,
        };
        let text = "[channels.lab]\nsource = { type = \"mllp\", listen = \"127.0.0.1:0\" }\nfhir = { repository = true }\n[channels.adt]\nsource = { type = \"mllp\", listen = \"127.0.0.1:0\" }\n[channels.off]\nsource = { type = \"mllp\", listen = \"127.0.0.1:0\" }\nfhir = { repository = true }\nrules = { enabled = false }\n";
        let config = Config::from_toml(text).unwrap();
        let on = context(config.rules.clone());
        assert!(
            on.stage_for(&config.channels["lab"], None)
                .unwrap()
                .is_some()
        );
        assert!(
            on.stage_for(&config.channels["adt"], None)
                .unwrap()
                .is_none()
        );
        assert!(
            on.stage_for(&config.channels["off"], None)
                .unwrap()
                .is_none()
        );
        let off = context(super::RulesSection {
            enabled: false,
            ..Default::default()
        });
        assert!(
            off.stage_for(&config.channels["lab"], None)
                .unwrap()
                .is_none()
        );
    }
}
