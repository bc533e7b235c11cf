//! Live reload: the configuration file read again and applied without a restart
//! (`SIGHUP`, `POST /api/config/reload`).
//!
//! The new file is read and checked whole first; a file with an error, or one that
//! changes a setting outside `[channels]` (those need a restart), is refused and the
//! running configuration stays. Channels are then compared with the running ones, as
//! read from the file:
//!
//! - an unchanged channel is left alone: its source (and its connections) and its
//!   processor keep running;
//! - a changed channel's processor finishes the batch it is on and records it, then
//!   its successor, built from the new configuration, takes the messages still
//!   `received`: each message is processed once, under the old configuration or the
//!   new. Its source keeps running (connections kept) unless the source, the
//!   validation or whether the channel is an archive changed; then it is stopped (what
//!   it was storing is stored and answered) and started again;
//! - an added channel is started; a removed one's source is stopped and its processor
//!   finishes its batch. What it had not processed stays `received` in the journal, and
//!   what its destinations had not taken stays queued, until a channel of that name
//!   returns.
//!
//! Everything that can fail is done before anything running changes: the pipelines,
//! destinations and validations of added and changed channels are built, the sources
//! that must start are started (those that must stop first are stopped, and started
//! again if another one cannot start or the history cannot be written), and the new
//! configuration is recorded in the history. Only then are processors and destination
//! workers swapped.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock, PoisonError, RwLock};
use std::time::Duration;

use store::Store;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tracing::{error, info, warn};

use crate::config::{ChannelConfig, Config, ConfigError, ConfigErrors};
use crate::metrics::Metrics;
use crate::pipeline::{ChannelPipeline, Processor, Processors, Services};
use crate::sources::{ChannelSource, Intakes, Listener, RunningSource, Sources, Wakes};
use crate::start_error::StartError;

/// How long stopping a source during a reload waits for its busy connections.
pub(crate) const SOURCE_GRACE: Duration = Duration::from_secs(30);

/// Where the configuration comes from: its file, and the data directory given on the
/// command line (`corridor run --data`), which wins over `[data] dir`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigFile {
    /// The file.
    pub path: PathBuf,
    /// `--data`, when given.
    pub data_dir: Option<PathBuf>,
}

impl ConfigFile {
    /// The file at `path`, without a data directory override.
    pub fn new(path: impl Into<PathBuf>) -> ConfigFile {
        ConfigFile {
            path: path.into(),
            data_dir: None,
        }
    }

    /// Reads and checks the file: the configuration and the text it was read from.
    /// Errors start with the file's name and name each key.
    pub fn read(&self) -> Result<(Config, String), ConfigErrors> {
        let name = self.path.display().to_string();
        let text = std::fs::read_to_string(&self.path).map_err(|error| ConfigErrors {
            source_name: Some(name.clone()),
            errors: vec![ConfigError {
                key: ".".to_owned(),
                message: format!("cannot read the file: {error}"),
                line: None,
            }],
        })?;
        let base_dir = match self.path.parent() {
            Some(dir) if !dir.as_os_str().is_empty() => dir,
            _ => Path::new("."),
        };
        let mut config = Config::from_toml_in(&text, base_dir).map_err(|mut errors| {
            errors.source_name = Some(name);
            errors
        })?;
        if let Some(dir) = &self.data_dir {
            config.data.dir = dir.clone();
        }
        Ok((config, text))
    }
}

/// The listeners of the running sources, for `Engine::listeners` and `/health`,
/// updated by each reload.
#[derive(Default)]
pub(crate) struct LiveListeners {
    mllp: RwLock<Vec<Listener>>,
    http: RwLock<Vec<Listener>>,
    mllp_stats: RwLock<Vec<(String, mllp::StatsReader)>>,
}

impl LiveListeners {
    pub(crate) fn update(&self, sources: &Sources) {
        *self.mllp.write().unwrap_or_else(PoisonError::into_inner) = sources.mllp_listeners();
        *self.http.write().unwrap_or_else(PoisonError::into_inner) = sources.http_listeners();
        *self
            .mllp_stats
            .write()
            .unwrap_or_else(PoisonError::into_inner) = sources.mllp_stats();
    }

    pub(crate) fn mllp(&self) -> Vec<Listener> {
        self.mllp
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    pub(crate) fn http(&self) -> Vec<Listener> {
        self.http
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    pub(crate) fn mllp_stats(&self) -> Vec<(String, mllp::StatsReader)> {
        self.mllp_stats
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

/// What runs the channels of the configuration in force; replaced piece by piece by
/// a reload.
pub(crate) struct Running {
    /// The configuration as read from the file (before the listeners' caps were fitted
    /// to the open-file limit): what the next file is compared with.
    pub loaded: Config,
    /// The configuration in force.
    pub config: Config,
    pub sources: Sources,
    pub processors: Processors,
    pub intakes: Intakes,
    /// The sender of owed application acknowledgements, and its stop signal.
    pub application_acks: (watch::Sender<bool>, JoinHandle<()>),
}

/// The running channels and what a reload needs, shared by the engine, `SIGHUP` and
/// the API.
pub(crate) struct Control {
    /// `None` once the engine is stopping.
    pub running: tokio::sync::Mutex<Option<Running>>,
    pub store: Store,
    pub delivery: Arc<delivery::Delivery>,
    pub metrics: Metrics,
    pub wakes: Wakes,
    pub patient_index: Option<mpi::MpiService>,
    /// The clinical rules' context, shared by every channel's rules stage.
    pub rules: Arc<crate::stages::rules::RulesContext>,
    /// The terminology in force, read by every channel's map stage.
    pub terminology: Arc<terminology::SharedTerminology>,
    /// Whether the clinical repository's tables and routes were set up at start.
    pub repository: bool,
    pub file: Option<ConfigFile>,
    pub listeners: LiveListeners,
    /// The audit trail, for reloads by `SIGHUP` (the API's are audited by its guard).
    pub audit: OnceLock<access::audit::Audit>,
    /// The channels an operator paused or stopped (`channel_control.rs`); a reload
    /// keeps them so.
    pub states: Arc<crate::channel_control::ChannelStates>,
}

/// A channel's fate in a reload.
struct Plan {
    added: Vec<String>,
    removed: Vec<String>,
    /// Changed channels, with whether their source must start again.
    changed: Vec<(String, bool)>,
    unchanged: Vec<String>,
}

/// One refused problem.
fn problem(key: impl Into<String>, message: impl Into<String>) -> api::ConfigProblem {
    api::ConfigProblem {
        key: key.into(),
        message: message.into(),
        line: None,
    }
}

fn invalid(file: Option<&ConfigFile>, problems: Vec<api::ConfigProblem>) -> api::ReloadRefused {
    api::ReloadRefused::Invalid {
        file: file.map(|f| f.path.display().to_string()),
        problems,
    }
}

/// The problems of a file that does not read or check.
fn problems_of(errors: ConfigErrors) -> Vec<api::ConfigProblem> {
    errors
        .errors
        .into_iter()
        .map(|e| api::ConfigProblem {
            key: e.key,
            message: e.message,
            line: e.line,
        })
        .collect()
}

/// A start error of a channel's part, as a refused problem naming its key.
fn problems_of_start(error: StartError) -> Vec<api::ConfigProblem> {
    match error {
        StartError::Config(errors) => problems_of(errors),
        StartError::Steps { channel, reason } => {
            vec![problem(format!("channels.{channel}"), reason)]
        }
        StartError::Listen { key, addr, reason } => {
            vec![problem(key, format!("cannot listen on {addr}: {reason}"))]
        }
        StartError::Access { key, reason } => vec![problem(key, reason)],
        other => vec![problem("channels", other.to_string())],
    }
}

/// The settings outside `[channels]` that changed: they need a restart, each named by
/// its key.
pub(crate) fn restart_needed(running: &Config, next: &Config) -> Vec<api::ConfigProblem> {
    let restart = "cannot change while Corridor runs; restart it to apply this change";
    let mut problems = Vec::new();
    if running.data.dir != next.data.dir {
        problems.push(problem("data.dir", restart));
    } else if running.data != next.data {
        problems.push(problem("data", restart));
    }
    if running.http.listen != next.http.listen {
        problems.push(problem("http.listen", restart));
    }
    if running.http.enabled != next.http.enabled {
        problems.push(problem("http.enabled", restart));
    }
    if running.http.auth != next.http.auth {
        problems.push(problem("http.auth", restart));
    }
    if running.http.oidc != next.http.oidc {
        problems.push(problem("http.oidc", restart));
    }
    if problems.iter().all(|p| !p.key.starts_with("http")) && running.http != next.http {
        problems.push(problem("http", restart));
    }
    if running.mpi != next.mpi {
        problems.push(problem("mpi", restart));
    }
    if running.console != next.console {
        problems.push(problem("console", restart));
    }
    if problems.is_empty() {
        // Any other setting outside the channels (sections added later included).
        let mut same_channels = running.clone();
        same_channels.channels = next.channels.clone();
        if same_channels != *next {
            problems.push(problem(
                ".",
                "a setting outside [channels] changed; it cannot change while Corridor runs: restart it to apply this change",
            ));
        }
    }
    problems
}

/// Whether a channel stores FHIR resources in the repository.
fn uses_repository(channel: &ChannelConfig) -> bool {
    channel.fhir.as_ref().is_some_and(|f| f.repository)
}

fn plan(running: &Config, next: &Config) -> Plan {
    let mut plan = Plan {
        added: Vec::new(),
        removed: Vec::new(),
        changed: Vec::new(),
        unchanged: Vec::new(),
    };
    for (name, old) in &running.channels {
        match next.channels.get(name) {
            None => plan.removed.push(name.clone()),
            Some(new) if new == old => plan.unchanged.push(name.clone()),
            Some(new) => {
                let restart = new.source != old.source || new.validation != old.validation;
                plan.changed.push((name.clone(), restart));
            }
        }
    }
    for name in next.channels.keys() {
        if !running.channels.contains_key(name) {
            plan.added.push(name.clone());
        }
    }
    plan
}

/// A channel's new parts, built before anything running changes.
struct Prepared {
    pipeline: ChannelPipeline,
    destinations: delivery::PreparedChannel,
}

impl Control {
    /// The configuration file read again and applied; see the module's documentation.
    pub(crate) async fn reload(&self, by: &str) -> Result<api::ReloadApplied, api::ReloadRefused> {
        let Some(file) = &self.file else {
            return Err(api::ReloadRefused::Unavailable(
                "Corridor was started without --config: there is no configuration file to read again".to_owned(),
            ));
        };
        let read = {
            let file = file.clone();
            tokio::task::spawn_blocking(move || file.read())
                .await
                .map_err(|e| api::ReloadRefused::Failed(e.to_string()))?
        };
        let outcome = match read {
            Err(errors) => Err(invalid(Some(file), problems_of(errors))),
            Ok((loaded, text)) => {
                let mut running = self.running.lock().await;
                match running.as_mut() {
                    None => Err(api::ReloadRefused::Unavailable(
                        "Corridor is stopping".to_owned(),
                    )),
                    Some(running) => self.apply(running, loaded, &text, by).await,
                }
            }
        };
        match &outcome {
            Ok(applied) => info!(
                by,
                version = ?applied.version,
                added = ?applied.added,
                removed = ?applied.removed,
                changed = ?applied.changed,
                "configuration reloaded"
            ),
            Err(refused) => error!(by, error = %refused.summary(), "configuration reload refused"),
        }
        outcome
    }

    /// Keeps the counters of `channels` and of the clinical rules' alerts channel (not a
    /// channel of the file, so never added or removed by a reload), drops the others'.
    fn keep_metrics<'a>(&self, channels: impl IntoIterator<Item = &'a str>) {
        let alerts = crate::stages::rules::ALERTS_CHANNEL;
        let internal = self.metrics.channel(alerts).map(|_| alerts);
        self.metrics
            .keep_channels(channels.into_iter().chain(internal));
    }

    async fn apply(
        &self,
        running: &mut Running,
        loaded: Config,
        text: &str,
        by: &str,
    ) -> Result<api::ReloadApplied, api::ReloadRefused> {
        let file = self.file.as_ref();
        let refuse = |problems| invalid(file, problems);
        let restart = restart_needed(&running.loaded, &loaded);
        if !restart.is_empty() {
            return Err(refuse(restart));
        }
        if !self.repository {
            if let Some((name, _)) = loaded.channels.iter().find(|(_, c)| uses_repository(c)) {
                return Err(refuse(vec![problem(
                    format!("channels.{name}.fhir.repository"),
                    "the repository was not on at start: restart Corridor to turn it on",
                )]));
            }
        }
        let mut config = loaded.clone();
        crate::open_files::fit_listeners(&mut config).map_err(api::ReloadRefused::Failed)?;
        let plan = plan(&running.loaded, &loaded);
        let base = config.base_dir.clone();

        // 1. Build everything new; nothing running changes yet.
        let validations = crate::sources::channel_validations(&config)
            .map_err(|e| refuse(problems_of_start(e)))?;
        // New channels' counters are registered now (and dropped again if refused), so
        // each one's intake and pipeline share them.
        let previous_channels: Vec<String> = running.config.channels.keys().cloned().collect();
        self.keep_metrics(
            previous_channels
                .iter()
                .map(String::as_str)
                .chain(plan.added.iter().map(String::as_str)),
        );
        let restore_metrics = || self.keep_metrics(previous_channels.iter().map(String::as_str));
        let mut prepared: BTreeMap<String, Prepared> = BTreeMap::new();
        let building = plan
            .added
            .iter()
            .chain(plan.changed.iter().map(|(name, _)| name));
        for name in building {
            let channel = &config.channels[name];
            let built = ChannelPipeline::build(
                name,
                channel,
                &config,
                &validations,
                Services {
                    patient_index: self.patient_index.as_ref(),
                    rules: Some(self.rules.as_ref()),
                    terminology: &self.terminology,
                },
                self.metrics.channel(name).unwrap_or_default(),
            )
            .and_then(|pipeline| {
                let destinations = self
                    .delivery
                    .prepare(name, &channel.destinations, &base)
                    .map_err(StartError::Delivery)?;
                Ok(Prepared {
                    pipeline,
                    destinations,
                })
            });
            match built {
                Ok(p) => {
                    prepared.insert(name.clone(), p);
                }
                Err(e) => {
                    restore_metrics();
                    return Err(refuse(problems_of_start(e)));
                }
            }
        }
        let mut removed_destinations = Vec::new();
        for name in &plan.removed {
            match self.delivery.prepare(name, &[], &base) {
                Ok(p) => removed_destinations.push(p),
                Err(e) => {
                    restore_metrics();
                    return Err(api::ReloadRefused::Failed(e.to_string()));
                }
            }
        }
        // Archives: a channel with nothing to process stores its messages `processed`.
        let mut archives: HashSet<String> = running
            .intakes
            .archives
            .iter()
            .filter(|name| plan.unchanged.contains(name))
            .cloned()
            .collect();
        for (name, p) in &prepared {
            if p.pipeline.is_archive() {
                archives.insert(name.clone());
            }
        }
        let restarts: Vec<String> = plan
            .changed
            .iter()
            .filter(|(name, restart)| {
                *restart
                    || running.intakes.archives.contains(name.as_str()) != archives.contains(name)
            })
            .map(|(name, _)| name.clone())
            .collect();
        let intakes = Intakes {
            store: self.store.clone(),
            metrics: self.metrics.clone(),
            wakes: self.wakes.clone(),
            validations,
            archives,
        };

        // 2. Sources: those leaving (removed channels, restarted sources) stop first, so
        // an address can pass from one channel to another; then the new ones start. If
        // one cannot, the new ones stop and the old ones start again.
        let mut stopped: Vec<String> = Vec::new();
        for name in plan.removed.iter().chain(restarts.iter()) {
            if let Some(source) = running.sources.remove(name) {
                if !source.shutdown(SOURCE_GRACE).await {
                    warn!(channel = %name, "connections still busy after the grace period were dropped; their senders will resend");
                }
                stopped.push(name.clone());
            }
        }
        let mut started: Vec<String> = Vec::new();
        let mut failure = None;
        for name in plan.added.iter().chain(restarts.iter()) {
            if self.states.stopped(name) {
                // Stopped by an operator: it stays so until started.
                continue;
            }
            let channel = &config.channels[name];
            let intake = intakes.intake(name, channel);
            match ChannelSource::start(name, channel, intake, &base).await {
                Ok(source) => {
                    running.sources.insert(name, source);
                    started.push(name.clone());
                }
                Err(e) => {
                    failure = Some(e);
                    break;
                }
            }
        }
        if let Some(e) = failure {
            self.put_back_sources(running, &started, &stopped).await;
            restore_metrics();
            return Err(refuse(problems_of_start(e)));
        }

        // 3. Record it: a configuration is applied only once it is kept.
        let version = match crate::config_history::record(&self.store, by, text, true).await {
            Ok(version) => version,
            Err(e) => {
                self.put_back_sources(running, &started, &stopped).await;
                restore_metrics();
                return Err(api::ReloadRefused::Failed(format!(
                    "the configuration could not be recorded in the history: {e}"
                )));
            }
        };

        // 4. Processors and destination workers: nothing here can fail.
        for name in &plan.removed {
            if let Some(processor) = running.processors.remove(name) {
                processor.stop().await;
            }
            self.wakes.remove(name);
        }
        for destinations in removed_destinations {
            self.delivery.replace(destinations).await;
        }
        for (name, p) in prepared {
            if let Some(processor) = running.processors.remove(&name) {
                processor.stop().await;
            }
            self.delivery.replace(p.destinations).await;
            let pipeline = ChannelPipeline {
                hand_over: Some(self.wakes.clone()),
                ..p.pipeline
            };
            let processor = Processor::start(
                self.store.clone(),
                self.delivery.clone(),
                pipeline,
                self.wakes.of(&name),
                self.states.clone(),
            );
            running.processors.insert(&name, processor);
            // Messages left `received` by the one before are taken now.
            self.wakes.wake(&name);
        }
        let policies = |c: &Config| -> Vec<_> {
            c.channels
                .iter()
                .map(|(n, c)| (n.clone(), c.retention))
                .collect()
        };
        if policies(&running.config) != policies(&config) {
            running
                .sources
                .restart_retention(&self.store, &config)
                .await;
        }
        let targets = application_ack_targets(&config);
        if application_ack_targets(&running.config) != targets {
            let (stop, stopped) = watch::channel(false);
            let task = crate::application_ack::spawn(self.store.clone(), targets, stopped);
            let (old_stop, old_task) =
                std::mem::replace(&mut running.application_acks, (stop, task));
            let _ = old_stop.send(true);
            let _ = old_task.await;
        }
        self.keep_metrics(config.channels.keys().map(String::as_str));
        self.listeners.update(&running.sources);
        running.intakes = intakes;
        running.loaded = loaded;
        running.config = config;
        Ok(api::ReloadApplied {
            version,
            added: plan.added,
            removed: plan.removed,
            changed: plan.changed.into_iter().map(|(name, _)| name).collect(),
            unchanged: plan.unchanged,
        })
    }
}

/// Each channel's `application_ack_to`, for the channels that have one.
pub(crate) fn application_ack_targets(config: &Config) -> HashMap<String, String> {
    config
        .channels
        .iter()
        .filter_map(|(name, c)| Some((name.clone(), c.source.application_ack_to()?.to_owned())))
        .collect()
}

impl Control {
    /// Undoes the sources of a refused reload: those it started stop, those it stopped
    /// start again as they were.
    async fn put_back_sources(
        &self,
        running: &mut Running,
        started: &[String],
        stopped: &[String],
    ) {
        for name in started {
            if let Some(source) = running.sources.remove(name) {
                source.shutdown(SOURCE_GRACE).await;
            }
        }
        let base = running.config.base_dir.clone();
        for name in stopped {
            let Some(channel) = running.config.channels.get(name) else {
                continue;
            };
            let intake = running.intakes.intake(name, channel);
            match ChannelSource::start(name, channel, intake, &base).await {
                Ok(source) => running.sources.insert(name, source),
                Err(again) => {
                    error!(channel = %name, error = %again, "the channel's source could not be started again after a refused reload")
                }
            }
        }
        self.listeners.update(&running.sources);
    }
}

/// What the API's configuration routes call.
pub(crate) struct ApiControl(pub Arc<Control>);

impl api::ConfigControl for ApiControl {
    fn reload(&self, by: String) -> api::BoxFuture<Result<api::ReloadApplied, api::ReloadRefused>> {
        let control = self.0.clone();
        Box::pin(async move { control.reload(&by).await })
    }

    fn history(&self) -> Result<Vec<api::ConfigVersion>, String> {
        crate::config_history::list(&self.0.store).map_err(|e| e.to_string())
    }

    fn version(&self, n: i64) -> Result<Option<api::ConfigVersion>, String> {
        crate::config_history::get(&self.0.store, n).map_err(|e| e.to_string())
    }

    fn channel_states(&self) -> api::BoxFuture<Vec<api::ChannelControl>> {
        let control = self.0.clone();
        Box::pin(async move { control.channel_states().await })
    }

    fn set_channel_state(
        &self,
        channel: String,
        action: api::ChannelAction,
        by: String,
    ) -> api::BoxFuture<Result<api::ChannelControl, api::ControlRefused>> {
        let control = self.0.clone();
        Box::pin(async move { control.set_channel_state(&channel, action, &by).await })
    }

    fn set_destination_state(
        &self,
        channel: String,
        destination: String,
        action: api::ChannelAction,
        by: String,
    ) -> api::BoxFuture<Result<api::ChannelControl, api::ControlRefused>> {
        let control = self.0.clone();
        Box::pin(async move {
            control
                .set_destination_state(&channel, &destination, action, &by)
                .await
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(text: &str) -> Config {
        Config::from_toml(text).unwrap()
    }

    const BASE: &str = "[data]\ndir = \"/var/lib/corridor\"\n[http]\nlisten = \"127.0.0.1:8080\"\n";

    #[test]
    fn settings_outside_the_channels_are_named_when_they_change() {
        let channel = "[channels.a]\nsource = { type = \"mllp\", listen = \"127.0.0.1:0\" }\n";
        let running = config(&format!("{BASE}{channel}"));
        let moved = config(&format!("{BASE}{channel}").replace("/var/lib/corridor", "/srv/c"));
        let keys: Vec<_> = restart_needed(&running, &moved)
            .into_iter()
            .map(|p| p.key)
            .collect();
        assert_eq!(keys, ["data.dir"]);
        let port = config(&format!("{BASE}{channel}").replace(":8080", ":8081"));
        let keys: Vec<_> = restart_needed(&running, &port)
            .into_iter()
            .map(|p| p.key)
            .collect();
        assert_eq!(keys, ["http.listen"]);
        let mpi = config(&format!("{BASE}[mpi]\nenabled = true\n{channel}"));
        let keys: Vec<_> = restart_needed(&running, &mpi)
            .into_iter()
            .map(|p| p.key)
            .collect();
        assert_eq!(keys, ["mpi"]);
        // Channels may change freely.
        let more = config(&format!(
            "{BASE}{channel}[channels.b]\nsource = {{ type = \"mllp\", listen = \"127.0.0.1:0\" }}\n"
        ));
        assert!(restart_needed(&running, &more).is_empty());
    }

    #[test]
    fn channels_are_added_removed_changed_or_left_alone_and_only_source_changes_restart_the_source()
    {
        let running = config(&format!(
            "{BASE}[channels.same]\nsource = {{ type = \"mllp\", listen = \"127.0.0.1:0\" }}\n\
             [channels.steps]\nsource = {{ type = \"mllp\", listen = \"127.0.0.1:0\" }}\n\
             [channels.listen]\nsource = {{ type = \"mllp\", listen = \"127.0.0.1:0\" }}\n\
             [channels.gone]\nsource = {{ type = \"mllp\", listen = \"127.0.0.1:0\" }}\n"
        ));
        let next = config(&format!(
            "{BASE}[channels.same]\nsource = {{ type = \"mllp\", listen = \"127.0.0.1:0\" }}\n\
             [channels.steps]\nsource = {{ type = \"mllp\", listen = \"127.0.0.1:0\" }}\n\
             transforms = [ {{ set = \"MSH-5\", value = \"X\" }} ]\n\
             [channels.listen]\nsource = {{ type = \"mllp\", listen = \"127.0.0.1:0\", ack_mode = \"enhanced\" }}\n\
             [channels.new]\nsource = {{ type = \"mllp\", listen = \"127.0.0.1:0\" }}\n"
        ));
        let plan = plan(&running, &next);
        assert_eq!(plan.added, ["new"]);
        assert_eq!(plan.removed, ["gone"]);
        assert_eq!(plan.unchanged, ["same"]);
        assert_eq!(
            plan.changed,
            [("listen".to_owned(), true), ("steps".to_owned(), false)]
        );
    }
}
