//! Channel tests as code (`corridor test`): a fixture is a message in and what must come
//! out, checked by running the channel's real intake and pipeline in process.
//!
//! A case is a directory holding `in.hl7` (the message the channel receives),
//! `expect.toml` (the final state, the reason and the channel) and one file per
//! destination that must receive something: `out/NAME.hl7`, the message destination
//! `NAME` receives, or `out/NAME.json`, FHIR resources the Bundle a `fhir` destination
//! receives must hold (each a subset of one of its resources). A destination without a
//! file must receive nothing. `docs/channel-tests.md` documents the format.
//!
//! Each case gets a store of its own in a temporary directory (never the configured
//! data directory): the message goes through the channel's [`Intake`] (validation
//! before the ACK included), then one round of the channel's processor, built by the
//! same code `corridor run` uses, and what the journal and the destination queues hold
//! afterwards is compared with the expectation. Nothing is sent: the destinations'
//! workers are not started, and no socket is opened.

mod diff;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use bytes::Bytes;
use serde::Deserialize;
use store::{Journal, MessageState, Store};

pub use diff::{json_subset_difference, message_differences};

use crate::config::Config;
use crate::intake::{IntakeStatus, Origin};
use crate::metrics::Metrics;
use crate::pipeline::{ChannelPipeline, Round, Services, process_batch};
use crate::sources::{Intakes, Validations, channel_validations};
use crate::start_error::StartError;

/// Why the cases could not be run at all (a problem of one case fails that case instead).
#[derive(Debug, thiserror::Error)]
pub enum ChannelTestError {
    /// The configuration's channels cannot be built.
    #[error("{0}")]
    Start(#[from] StartError),
    /// The fixture directory cannot be read.
    #[error("{path}: {source}")]
    Read {
        /// The directory or file.
        path: PathBuf,
        /// What went wrong.
        source: std::io::Error,
    },
    /// The directory holds no case.
    #[error("{0}: no case found (a case is a directory holding in.hl7)")]
    NoCases(PathBuf),
}

/// What a case expects, as written in its `expect.toml`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Expectation {
    /// The channel the message enters; may be left out when there is one channel.
    channel: Option<String>,
    /// The message's final state.
    state: ExpectedState,
    /// Words the state's reason must contain.
    reason: Option<String>,
    /// Paths left out of the message comparison (`MSH-7`, `PID-5.1`).
    #[serde(default)]
    ignore: Vec<String>,
    /// The clinical alerts the message must fire, exactly (rule and condition key);
    /// `alerts = []` says none. Left out, alerts are not compared.
    alerts: Option<Vec<ExpectedAlert>>,
}

/// One alert a case expects: `{ rule = "critical-value", key = "2823-3:high" }`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Deserialize)]
#[serde(deny_unknown_fields)]
struct ExpectedAlert {
    rule: String,
    key: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
enum ExpectedState {
    Processed,
    Filtered,
    Quarantined,
    Errored,
    Rejected,
}

impl ExpectedState {
    fn as_str(self) -> &'static str {
        match self {
            ExpectedState::Processed => "processed",
            ExpectedState::Filtered => "filtered",
            ExpectedState::Quarantined => "quarantined",
            ExpectedState::Errored => "errored",
            ExpectedState::Rejected => "rejected",
        }
    }
}

/// The result of one case.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CaseReport {
    /// The case's directory, relative to the directory the cases were found in.
    pub name: String,
    /// What differed from the expectation, one line each (`ehr: PID-5.1: expected
    /// "DOE", got "Doe"`); empty when the case passed.
    pub failures: Vec<String>,
}

impl CaseReport {
    /// True when the channel did what the case expects.
    pub fn passed(&self) -> bool {
        self.failures.is_empty()
    }
}

/// The case directories under `root` (directories holding `in.hl7`), sorted by path.
pub fn find_cases(root: &Path) -> Result<Vec<PathBuf>, ChannelTestError> {
    let mut cases = Vec::new();
    let mut pending = vec![root.to_path_buf()];
    while let Some(dir) = pending.pop() {
        let read = |source| ChannelTestError::Read {
            path: dir.clone(),
            source,
        };
        if dir.join("in.hl7").is_file() {
            cases.push(dir.clone());
            continue;
        }
        for entry in std::fs::read_dir(&dir).map_err(read)? {
            let entry = entry.map_err(read)?;
            // Links are not followed: a case tree is plain directories.
            if entry.file_type().map_err(read)?.is_dir() {
                pending.push(entry.path());
            }
        }
    }
    cases.sort();
    if cases.is_empty() {
        return Err(ChannelTestError::NoCases(root.to_path_buf()));
    }
    Ok(cases)
}

/// Runs every case under `root` against the channels of `config`, in path order.
pub async fn run_cases(config: &Config, root: &Path) -> Result<Vec<CaseReport>, ChannelTestError> {
    let errors = config.check();
    if !errors.is_empty() {
        return Err(StartError::Config(crate::config::ConfigErrors {
            source_name: None,
            errors,
        })
        .into());
    }
    let validations = channel_validations(config)?;
    let mut reports = Vec::new();
    for case in find_cases(root)? {
        let name = case
            .strip_prefix(root)
            .unwrap_or(&case)
            .display()
            .to_string();
        let failures = match run_case(config, &validations, &case).await {
            Ok(failures) => failures,
            Err(failure) => vec![failure],
        };
        reports.push(CaseReport { name, failures });
    }
    Ok(reports)
}

/// What the channel did with a case's message.
struct Outcome {
    state: String,
    reason: Option<String>,
    /// Per destination, what it was given: its bytes, or why none.
    deliveries: BTreeMap<String, Result<Vec<u8>, String>>,
    /// The alerts the message fired (rule, key), sorted.
    alerts: Vec<ExpectedAlert>,
}

async fn run_case(
    config: &Config,
    validations: &Validations,
    case: &Path,
) -> Result<Vec<String>, String> {
    let expect_path = case.join("expect.toml");
    let text = std::fs::read_to_string(&expect_path)
        .map_err(|e| format!("{}: {e}", expect_path.display()))?;
    let expect: Expectation =
        toml::from_str(&text).map_err(|e| format!("{}: {e}", expect_path.display()))?;
    let input = std::fs::read(case.join("in.hl7")).map_err(|e| format!("in.hl7: {e}"))?;
    let channel_name = match (&expect.channel, config.channels.len()) {
        (Some(name), _) => name.clone(),
        (None, 1) => config.channels.keys().next().cloned().unwrap_or_default(),
        (None, _) => {
            return Err("expect.toml: channel: name the channel the message enters".into());
        }
    };
    let channel = config
        .channels
        .get(&channel_name)
        .ok_or_else(|| format!("expect.toml: channel: no channel named {channel_name:?}"))?;
    let expected_out = expected_outputs(case, channel)?;

    let outcome = run_message(config, validations, &channel_name, input)
        .await
        .map_err(|e| format!("running the case failed: {e}"))?;

    let mut failures = Vec::new();
    if outcome.state != expect.state.as_str() {
        failures.push(format!(
            "state: expected {}, got {}{}",
            expect.state.as_str(),
            outcome.state,
            outcome
                .reason
                .as_deref()
                .map(|r| format!(" ({r})"))
                .unwrap_or_default()
        ));
    }
    if let Some(words) = &expect.reason {
        let got = outcome.reason.as_deref().unwrap_or("");
        if !got.contains(words.as_str()) {
            failures.push(format!(
                "reason: expected it to contain {words:?}, got {got:?}"
            ));
        }
    }
    if let Some(expected) = &expect.alerts {
        let mut expected = expected.clone();
        expected.sort();
        if expected != outcome.alerts {
            let show = |alerts: &[ExpectedAlert]| {
                alerts
                    .iter()
                    .map(|a| format!("{} {}", a.rule, a.key))
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            failures.push(format!(
                "alerts: expected [{}], got [{}]",
                show(&expected),
                show(&outcome.alerts)
            ));
        }
    }
    for destination in channel.destinations.iter().map(|d| d.name.as_str()) {
        let got = outcome.deliveries.get(destination);
        match (expected_out.get(destination), got) {
            (None, None | Some(Err(_))) => {}
            (None, Some(Ok(_))) => {
                failures.push(format!("{destination}: received a message, expected none"));
            }
            (Some(_), None) => failures.push(format!(
                "{destination}: expected a message, received none (the message was {})",
                outcome.state
            )),
            (Some(_), Some(Err(why))) => failures.push(format!(
                "{destination}: expected a message, received none ({why})"
            )),
            (Some(Expected::Message(expected)), Some(Ok(bytes))) => {
                let expected = hl7v2::Message::parse(expected)
                    .map_err(|e| format!("out/{destination}.hl7: {e}"))?;
                match hl7v2::Message::parse(bytes) {
                    Ok(actual) => failures.extend(
                        message_differences(&expected, &actual, &expect.ignore)
                            .into_iter()
                            .map(|d| format!("{destination}: {d}")),
                    ),
                    Err(e) => failures.push(format!(
                        "{destination}: received something that is not an HL7 v2 message: {e}"
                    )),
                }
            }
            (Some(Expected::Resources(expected)), Some(Ok(bytes))) => {
                failures.extend(
                    resource_differences(expected, bytes)
                        .into_iter()
                        .map(|d| format!("{destination}: {d}")),
                );
            }
        }
    }
    Ok(failures)
}

/// What a case's `out/` says one destination receives.
enum Expected {
    /// `out/NAME.hl7`.
    Message(Vec<u8>),
    /// `out/NAME.json`: resources the Bundle holds.
    Resources(Vec<serde_json::Value>),
}

/// Reads `out/`: one file per destination of `channel` that receives a message.
fn expected_outputs(
    case: &Path,
    channel: &crate::config::ChannelConfig,
) -> Result<BTreeMap<String, Expected>, String> {
    let mut out = BTreeMap::new();
    let dir = case.join("out");
    let entries = match std::fs::read_dir(&dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
        Err(e) => return Err(format!("out: {e}")),
    };
    for entry in entries {
        let path = entry.map_err(|e| format!("out: {e}"))?.path();
        let file = path
            .file_name()
            .map(|f| f.to_string_lossy().into_owned())
            .unwrap_or_default();
        let (stem, ext) = file.rsplit_once('.').unwrap_or((file.as_str(), ""));
        if !channel.destinations.iter().any(|d| d.name == stem) {
            return Err(format!(
                "out/{file}: the channel has no destination named {stem:?}"
            ));
        }
        let bytes = std::fs::read(&path).map_err(|e| format!("out/{file}: {e}"))?;
        let expected = match ext {
            "hl7" => Expected::Message(bytes),
            "json" => {
                let value: serde_json::Value =
                    serde_json::from_slice(&bytes).map_err(|e| format!("out/{file}: {e}"))?;
                Expected::Resources(match value {
                    serde_json::Value::Array(resources) => resources,
                    one => vec![one],
                })
            }
            _ => return Err(format!("out/{file}: name it NAME.hl7 or NAME.json")),
        };
        if out.insert(stem.to_owned(), expected).is_some() {
            return Err(format!(
                "out/{file}: a second file for destination {stem:?}"
            ));
        }
    }
    Ok(out)
}

/// For each expected resource, why no resource of the Bundle `bytes` holds it.
fn resource_differences(expected: &[serde_json::Value], bytes: &[u8]) -> Vec<String> {
    let bundle: serde_json::Value = match serde_json::from_slice(bytes) {
        Ok(bundle) => bundle,
        Err(e) => return vec![format!("received something that is not JSON: {e}")],
    };
    let resources: Vec<&serde_json::Value> = bundle
        .get("entry")
        .and_then(|e| e.as_array())
        .map(|entries| entries.iter().filter_map(|e| e.get("resource")).collect())
        .unwrap_or_default();
    expected
        .iter()
        .enumerate()
        .filter_map(|(i, want)| {
            let kind = want.get("resourceType").and_then(|t| t.as_str());
            let candidates: Vec<_> = resources
                .iter()
                .filter(|r| {
                    kind.is_none() || r.get("resourceType").and_then(|t| t.as_str()) == kind
                })
                .collect();
            let misses: Vec<String> = candidates
                .iter()
                .map_while(|r| json_subset_difference(want, r, ""))
                .collect();
            if misses.len() < candidates.len() {
                return None;
            }
            let kind = kind.unwrap_or("resource");
            Some(match misses.first() {
                Some(miss) => format!("{kind} (expected resource {}): {miss}", i + 1),
                None => format!("{kind} (expected resource {}): none in the Bundle", i + 1),
            })
        })
        .collect()
}

/// Receives `input` on `channel_name` in a store of its own and runs the channel's
/// processor once over it.
async fn run_message(
    config: &Config,
    validations: &Validations,
    channel_name: &str,
    input: Vec<u8>,
) -> Result<Outcome, Box<dyn std::error::Error + Send + Sync>> {
    let dir = tempfile::tempdir()?;
    let store = Store::open(dir.path())?;
    crate::intake::migrate(&store).await?;
    quarantine::Quarantine::migrate(&store).await?;
    delivery::migrate(&store).await?;
    let channel = &config.channels[channel_name];
    if channel.fhir.as_ref().is_some_and(|f| f.repository) {
        fhir_repo::migrate(&store).await?;
    }
    let patient_index = if config.mpi.enabled {
        Some(mpi::MpiService::open(store.clone(), config.mpi.clone()).await?)
    } else {
        None
    };
    // The clinical rules run as in `corridor run`; their alerts are stored, not delivered.
    let rules = crate::stages::rules::RulesContext {
        section: config.rules.clone(),
        base_dir: config.base_dir.clone(),
        store: store.clone(),
        recent: crate::stages::rules::Recent::new(),
        output: None,
    };
    rules::stored::migrate(&store).await?;
    let metrics = Metrics::new([channel_name]);
    let terminology = crate::terminology_service::open(config, &store).await?;
    let pipeline = ChannelPipeline::build(
        channel_name,
        channel,
        config,
        validations,
        Services {
            patient_index: patient_index.as_ref(),
            rules: Some(&rules),
            terminology: terminology.shared(),
        },
        metrics.channel(channel_name).unwrap_or_default(),
    )?;
    let mut archives = std::collections::HashSet::new();
    if pipeline.is_archive() {
        archives.insert(channel_name.to_owned());
    }
    let intakes = Intakes {
        store: store.clone(),
        metrics,
        wakes: Default::default(),
        validations: validations.clone(),
        archives,
    };
    let intake = intakes.intake(channel_name, channel);
    let answers = intake
        .receive(vec![Bytes::from(input)], &Origin::new("corridor-test"))
        .await;
    let id = match answers.first().map(|a| &a.status) {
        Some(IntakeStatus::Stored(id)) => {
            let id = *id;
            let (pipeline, worker_store) = (Arc::new(pipeline), store.clone());
            let round = tokio::task::spawn_blocking(move || {
                process_batch(&pipeline, &worker_store, &AtomicBool::new(false))
            })
            .await?;
            match round {
                Round::Processed(_) | Round::Idle => {}
                Round::ReadFailed(e) | Round::WriteFailed(_, e) => return Err(e.into()),
            }
            id
        }
        Some(IntakeStatus::Rejected { id, .. }) => *id,
        Some(IntakeStatus::Duplicate(_)) => {
            return Err("the message was taken for a duplicate".into());
        }
        Some(IntakeStatus::Failed) | None => {
            return Err("the store did not take the message".into());
        }
    };
    let outcome = store.read(|conn| {
        let Some(entry) = Journal::get_in(conn, id)?.map(|m| m.entry) else {
            return Ok(None);
        };
        let quarantined = conn
            .prepare_cached("SELECT 1 FROM quarantine WHERE message_id = ?1")?
            .exists([id.0])?;
        // A message validation refused before its ACK is held in the quarantine like
        // one refused after it.
        let state = match entry.state {
            MessageState::Rejected if quarantined => "quarantined".to_owned(),
            state => state.as_str().to_owned(),
        };
        let mut deliveries = BTreeMap::new();
        for queued in delivery::entries_of_message(conn, id)? {
            let given = match delivery::payload_of(conn, queued.id)? {
                Some(bytes) => Ok(bytes),
                None => Err(queued
                    .state_reason
                    .unwrap_or_else(|| queued.state.as_str().to_owned())),
            };
            deliveries.insert(queued.destination, given);
        }
        let mut alerts = Vec::new();
        let mut stmt =
            conn.prepare_cached("SELECT rule, key FROM rules_alerts WHERE message_id = ?1")?;
        for row in stmt.query_map([id.0], |r| {
            Ok(ExpectedAlert {
                rule: r.get(0)?,
                key: r.get(1)?,
            })
        })? {
            alerts.push(row?);
        }
        alerts.sort();
        Ok(Some(Outcome {
            state,
            // One line, as a report line holds it (a script's error spans several).
            reason: entry
                .state_reason
                .map(|r| r.split_whitespace().collect::<Vec<_>>().join(" ")),
            deliveries,
            alerts,
        }))
    })?;
    drop(patient_index);
    tokio::task::spawn_blocking(move || drop(store)).await?;
    drop(dir);
    outcome.ok_or_else(|| "the message is not in the journal".into())
}
