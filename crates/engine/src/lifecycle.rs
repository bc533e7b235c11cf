//! Starting and stopping everything a configuration describes.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use store::Store;
use tokio::task::JoinHandle;
use tracing::{error, info, warn};

use crate::config::Config;
use crate::http_serve::HttpServer;
use crate::intake::migrate;
use crate::metrics::Metrics;
use crate::pipeline::{ChannelPipeline, Processors, Services};
use crate::reload::{ApiControl, ConfigFile, Control, LiveListeners, Running};
use crate::sources::{Intakes, Listener, Sources, Wakes};
use crate::start_error::StartError;

/// A running engine: listeners, the HTTP server and the store.
///
/// ```no_run
/// # async fn example() -> Result<(), engine::StartError> {
/// let engine = engine::Engine::start(engine::Config::default_config()).await?;
/// for listener in engine.listeners() {
///     println!("{} listening on {}", listener.channel, listener.addr);
/// }
/// engine.shutdown().await;
/// # Ok(()) }
/// ```
pub struct Engine {
    /// The admin token created at this start, on a database without users.
    first_admin: Option<access::FirstAdmin>,
    http: Option<HttpServer>,
    /// The running channels (sources, processors, destinations) and what reloads them.
    control: Arc<Control>,
    /// The audit trail's own retention (`[audit]`), apart from messages'.
    audit_retention: crate::audit_retention::AuditRetention,
    /// Writes each channel's volume and latency of the minute just ended.
    minutes: crate::minutes::MinuteWriter,
    /// The `[[alerts]]` evaluation and notifiers, when any alert is configured.
    alerting: Option<alerts::Alerting>,
    /// The terminology in force, and the task that puts new loads in force.
    terminology: (terminology::TerminologyService, JoinHandle<()>),
}

/// How long shutdown waits for connections still busy before dropping them
/// (their senders got no ACK and will resend).
const SHUTDOWN_GRACE: Duration = Duration::from_secs(30);

impl Engine {
    /// Checks `config`, opens the store in `config.data.dir`, binds every
    /// listener and the HTTP server, and starts serving. Returns once every
    /// socket is listening.
    pub async fn start(config: Config) -> Result<Engine, StartError> {
        Engine::start_with(config, None, None).await
    }

    /// Reads `file` and starts what it describes, like [`Engine::start`]; the file is
    /// kept for reloads (`SIGHUP`, `POST /api/config/reload`, [`Engine::reload`]), and
    /// its text is recorded in the configuration history when it differs from the last
    /// one recorded.
    pub async fn start_from_file(file: ConfigFile) -> Result<Engine, StartError> {
        let (config, text) = file.read()?;
        Engine::start_with(config, Some(file), Some(text)).await
    }

    async fn start_with(
        config: Config,
        file: Option<ConfigFile>,
        text: Option<String>,
    ) -> Result<Engine, StartError> {
        let loaded = config.clone();
        let mut config = config;
        let errors = config.check();
        if !errors.is_empty() {
            return Err(StartError::Config(crate::config::ConfigErrors {
                source_name: None,
                errors,
            }));
        }
        crate::open_files::fit_listeners(&mut config).map_err(StartError::OpenFiles)?;
        let started = Instant::now();
        let dir = config.data.dir.clone();
        let store = Store::open(&dir).map_err(|source| StartError::Store {
            dir: dir.clone(),
            source,
        })?;
        migrate(&store).await.map_err(|source| StartError::Store {
            dir: dir.clone(),
            source,
        })?;
        quarantine::Quarantine::migrate(&store)
            .await
            .map_err(|source| StartError::Store {
                dir: dir.clone(),
                source,
            })?;
        crate::config_history::migrate(&store)
            .await
            .map_err(|source| StartError::Store {
                dir: dir.clone(),
                source,
            })?;
        if let Some(text) = &text {
            crate::config_history::record(&store, "start", text, true)
                .await
                .map_err(|source| StartError::Store {
                    dir: dir.clone(),
                    source,
                })?;
        }
        // One patient index for the engine, rebuilt from its log; every channel feeds it.
        let patient_index = if config.mpi.enabled {
            Some(mpi::MpiService::open(store.clone(), config.mpi.clone()).await?)
        } else {
            None
        };
        // The clinical repository's tables, when a channel stores FHIR resources.
        let repository = config
            .channels
            .values()
            .any(|c| c.fhir.as_ref().is_some_and(|f| f.repository));
        if repository {
            fhir_repo::migrate(&store)
                .await
                .map_err(|source| StartError::Store {
                    dir: dir.clone(),
                    source,
                })?;
        }
        // The terminology in force, shared by every channel's map stage and the API.
        let terminology = crate::terminology_service::open(&config, &store).await?;
        let terminology_reload = crate::terminology_service::spawn_reload(
            terminology.clone(),
            config.terminology.reload_interval.0,
        );
        // The clinical rules' alerts table, and the alerts channel when alerts have
        // destinations (its messages are the alerts; see `stages::rules`).
        let alert_destinations =
            repository && config.rules.enabled && !config.rules.destinations.is_empty();
        if repository && config.rules.enabled {
            rules::stored::migrate(&store)
                .await
                .map_err(|source| StartError::Store {
                    dir: dir.clone(),
                    source,
                })?;
        }
        let alerts_channel = crate::stages::rules::ALERTS_CHANNEL;
        // `http` destinations of `[rules]` get the alert as JSON unless `body` says
        // otherwise.
        let rules_destinations = config.rules.alert_destinations();
        let metrics = Metrics::new(
            config
                .channels
                .keys()
                .map(String::as_str)
                .chain(alert_destinations.then_some(alerts_channel)),
        );
        // Each channel's validation, with its profiles loaded once (a bad one fails here).
        let validations = crate::sources::channel_validations(&config)?;

        let delivery = Arc::new(
            delivery::Delivery::start(
                store.clone(),
                config
                    .channels
                    .iter()
                    .map(|(name, c)| (name.as_str(), c.destinations.as_slice()))
                    .chain(
                        alert_destinations
                            .then_some((alerts_channel, rules_destinations.as_slice())),
                    ),
                &config.base_dir,
            )
            .await?,
        );
        let wakes = Wakes::default();
        let mut archives = HashSet::new();
        let mut pipelines = Vec::new();
        let alerts_wake = alert_destinations.then(|| wakes.of(alerts_channel));
        let rules = Arc::new(crate::stages::rules::RulesContext {
            section: config.rules.clone(),
            base_dir: config.base_dir.clone(),
            store: store.clone(),
            recent: crate::stages::rules::Recent::new(),
            output: alerts_wake
                .clone()
                .map(|wake| crate::stages::rules::AlertOutput { wake }),
        });
        if let Some(wake) = &alerts_wake {
            let router =
                delivery::Router::compile(alerts_channel, &rules_destinations, &config.base_dir)
                    .map_err(|e| StartError::Steps {
                        channel: alerts_channel.to_owned(),
                        reason: e.to_string(),
                    })?;
            pipelines.push((
                ChannelPipeline {
                    channel: Arc::from(alerts_channel),
                    stages: Vec::new(),
                    router,
                    ordering_key: None,
                    metrics: metrics.channel(alerts_channel).unwrap_or_default(),
                    enterprise_system: None,
                    after_write: None,
                    recent: None,
                    alert_payloads: Some(Arc::new(crate::stages::rules::AlertPayloads {
                        store: store.clone(),
                        fhir: rules_destinations
                            .iter()
                            .filter(|d| d.kind() == delivery::DestinationKind::Fhir)
                            .map(|d| d.name.clone())
                            .collect(),
                        json: rules_destinations
                            .iter()
                            .filter(|d| {
                                matches!(
                                    &d.settings,
                                    delivery::DestinationSettings::Http(http)
                                        if http.body == Some(delivery::HttpBody::JsonPayload)
                                )
                            })
                            .map(|d| d.name.clone())
                            .collect(),
                        patient_system: config.mpi.enterprise_system.clone(),
                    })),
                    hand_over: Some(wakes.clone()),
                },
                wake.clone(),
            ));
        }
        for (name, channel) in &config.channels {
            let pipeline = ChannelPipeline::build(
                name,
                channel,
                &config,
                &validations,
                Services {
                    patient_index: patient_index.as_ref(),
                    rules: Some(rules.as_ref()),
                    terminology: terminology.shared(),
                },
                metrics.channel(name).unwrap_or_default(),
            )?;
            if pipeline.is_archive() {
                archives.insert(name.clone());
            }
            let pipeline = ChannelPipeline {
                hand_over: Some(wakes.clone()),
                ..pipeline
            };
            pipelines.push((pipeline, wakes.of(name)));
        }
        // The channels an operator paused or stopped stay so across a restart.
        let states = Arc::new(
            crate::channel_control::ChannelStates::open(&store)
                .await
                .map_err(|source| StartError::Store {
                    dir: dir.clone(),
                    source,
                })?,
        );
        states.log_at_start(config.channels.keys(), &delivery);
        let processors = Processors::start(store.clone(), delivery.clone(), pipelines, &states);
        let intakes = Intakes {
            store: store.clone(),
            metrics: metrics.clone(),
            wakes: wakes.clone(),
            validations,
            archives,
        };

        let alerting = if config.alerts.is_empty() {
            None
        } else {
            Some(start_alerting(&config, &store, &metrics, &delivery).await?)
        };
        let alerts_handle = alerting.as_ref().map(alerts::Alerting::alerts);

        // Every channel's source, through its intake.
        let sources = Sources::start(&config, &intakes, |name| states.stopped(name)).await?;
        let application_ack_targets = crate::reload::application_ack_targets(&config);
        let (stop_application_acks, stop) = tokio::sync::watch::channel(false);
        let application_acks =
            crate::application_ack::spawn(store.clone(), application_ack_targets, stop);
        let control = Arc::new(Control {
            running: tokio::sync::Mutex::new(None),
            store: store.clone(),
            delivery: delivery.clone(),
            metrics: metrics.clone(),
            wakes,
            patient_index: patient_index.clone(),
            rules: rules.clone(),
            terminology: terminology.shared().clone(),
            repository,
            file,
            listeners: LiveListeners::default(),
            audit: std::sync::OnceLock::new(),
            states,
        });
        control.listeners.update(&sources);
        let validations_for_api = intakes.validations.clone();
        *control.running.lock().await = Some(Running {
            loaded,
            config: config.clone(),
            sources,
            processors,
            intakes,
            application_acks: (stop_application_acks, application_acks),
        });

        let mut http = None;
        let mut first_admin = None;
        if config.http.enabled {
            let listener = tokio::net::TcpListener::bind(config.http.listen.0)
                .await
                .map_err(|err| StartError::Listen {
                    key: "http.listen".to_owned(),
                    addr: config.http.listen.0,
                    reason: err.to_string(),
                })?;
            let addr = listener.local_addr().unwrap_or(config.http.listen.0);
            let status = Arc::new(crate::http::Status {
                metrics: metrics.clone(),
                control: control.clone(),
                started,
                store: store.clone(),
                delivery: delivery.clone(),
                alerts: alerts_handle.clone(),
                patient_index: patient_index.clone(),
            });
            let wake_channel = {
                let wakes = control.wakes.clone();
                Arc::new(move |channel: &str| wakes.wake(channel)) as api::WakeChannel
            };
            // The quarantine revalidates edits with each channel's own settings (as
            // they were at start).
            let validators = validations_for_api
                .iter()
                .fold(quarantine::Validators::new(), |all, (name, (_, v))| {
                    all.with_shared(name.clone(), v.clone())
                });
            let auth = access_control(&config, &store, &dir).await?;
            first_admin = auth.1;
            let _ = control.audit.set(auth.2);
            // HTTPS when `[http] tls_cert` is set (mutual TLS with `tls_client_ca`).
            let tls = match config.http.tls(&config.base_dir) {
                None => None,
                Some(settings) => {
                    Some(
                        mllp::server_acceptor(&settings).map_err(|e| StartError::Access {
                            key: "http.tls_cert".to_owned(),
                            reason: e.to_string(),
                        })?,
                    )
                }
            };
            let scheme = if tls.is_some() { "https" } else { "http" };
            // Console sessions: their cookie is `Secure` (and `__Host-` named) under HTTPS.
            let auth_layer = auth.0.with_sessions(
                config.http.session_policy(),
                access::ThrottlePolicy::default(),
                tls.is_some(),
            );
            let app = api::router_with(
                api::Api {
                    store: store.clone(),
                    delivery: Some(delivery.clone()),
                    wake_channel,
                    quarantine: Some(quarantine::Quarantine::new(store.clone(), validators)),
                    patient_index: patient_index.clone(),
                    fhir_base: repository.then(|| format!("{scheme}://{addr}/fhir")),
                    status: Some(status),
                    auth: auth_layer,
                    alerts: alerts_handle.clone(),
                    config: Some(Arc::new(ApiControl(control.clone()))),
                    terminology: Some(terminology.clone()),
                    cds_rules: Some(Arc::new(
                        api::cds_screening_rules(&config.rules.cds_settings()).map_err(|e| {
                            let (key, reason) = crate::stages::rules::config_error("rules", &e);
                            StartError::Rules { key, reason }
                        })?,
                    )),
                    queue_thresholds: config.console.queue_thresholds(),
                    destination_thresholds: config.console.destination_thresholds(),
                },
                config.http.policy(),
            );
            let server = HttpServer::spawn_tls("http", listener, app, config.http.limits(), tls)
                .map_err(|err| StartError::Listen {
                    key: "http.listen".to_owned(),
                    addr,
                    reason: err.to_string(),
                })?;
            http = Some(server);
        }

        let audit = access::audit::Audit::open(store.clone())
            .await
            .map_err(|e| StartError::Access {
                key: "data.dir".to_owned(),
                reason: e.to_string(),
            })?;
        let audit_retention = crate::audit_retention::AuditRetention::spawn(
            audit,
            config.audit.retention.0,
            config.audit.prune_interval.0,
        );

        let minutes = crate::minutes::MinuteWriter::spawn(store.clone());

        Ok(Engine {
            first_admin,
            http,
            control,
            audit_retention,
            minutes,
            alerting,
            terminology: (terminology, terminology_reload),
        })
    }

    /// The terminology in force (its stored loads and the snapshot channels read).
    pub fn terminology(&self) -> &terminology::TerminologyService {
        &self.terminology.0
    }

    /// Reads the configuration file again and applies it without a restart, recording
    /// it as applied by `by` (`SIGHUP`, or who asked); see `reload.rs`. A file with an
    /// error, or one changing a setting that needs a restart, is refused whole, each
    /// problem naming its key, and the running configuration stays.
    pub async fn reload(&self, by: &str) -> Result<api::ReloadApplied, api::ReloadRefused> {
        self.control.reload(by).await
    }

    /// [`Engine::reload`] on `SIGHUP`, recorded in the audit trail as the API's reloads
    /// are (the actor `corridor`, the action `SIGHUP config reload`).
    pub async fn reload_on_signal(&self) -> Result<api::ReloadApplied, api::ReloadRefused> {
        let outcome = self.control.reload("SIGHUP").await;
        if let Some(audit) = self.control.audit.get() {
            let record = access::audit::AuditRecord::system(
                "SIGHUP config reload",
                access::audit::ActionKind::Execute,
            );
            let record = match &outcome {
                Ok(applied) => match applied.version {
                    Some(n) => record.resource(format!("config/{n}")),
                    None => record.detail("unchanged"),
                },
                Err(refused) => access::audit::AuditRecord {
                    outcome: access::audit::Outcome::Failed,
                    ..record.detail(refused.summary())
                },
            };
            if let Err(e) = audit.append(record).await {
                error!(error = %e, "the audit record of a reload was not written");
            }
        }
        outcome
    }

    /// The sources that listen for HTTP (`type = "http"` and `type = "fhir"`), one per
    /// channel that has one.
    pub fn http_sources(&self) -> Vec<Listener> {
        self.control.listeners.http()
    }

    /// The MLLP listeners, one per channel (as the last reload left them).
    pub fn listeners(&self) -> Vec<Listener> {
        self.control.listeners.mllp()
    }

    /// The HTTP server's address, when it runs.
    /// The admin token this start created because the database had no user: printed
    /// once by `corridor run`. None when users existed (or authentication is off).
    pub fn first_admin(&self) -> Option<&access::FirstAdmin> {
        self.first_admin.as_ref()
    }

    pub fn http_addr(&self) -> Option<SocketAddr> {
        self.http.as_ref().map(HttpServer::local_addr)
    }

    /// Counters and latency of every channel.
    pub fn metrics(&self) -> &Metrics {
        &self.control.metrics
    }

    /// The store the engine writes to.
    pub fn store(&self) -> &Store {
        &self.control.store
    }

    /// Stops accepting, lets every frame already received be stored and
    /// acknowledged, closes connections, stops the HTTP server, and waits for
    /// the store's last commit.
    pub async fn shutdown(self) {
        let Engine {
            http,
            control,
            audit_retention,
            minutes,
            alerting,
            terminology,
            ..
        } = self;
        terminology.1.abort();
        audit_retention.shutdown().await;
        minutes.shutdown().await;
        // No reload from here on.
        let running = control.running.lock().await.take();
        let (metrics, delivery) = (control.metrics.clone(), control.delivery.clone());
        let Some(Running {
            sources,
            processors,
            application_acks,
            ..
        }) = running
        else {
            return;
        };
        // The sources stop taking messages; what they were storing is stored (and
        // answered) first.
        sources.shutdown(SHUTDOWN_GRACE).await;
        // What was received is processed and queued before the pipeline stops; what
        // the destinations have not taken yet stays queued for the next start.
        processors.shutdown().await;
        if let Some(server) = http {
            server.shutdown().await;
        }
        // Before the destinations: its sampler holds them.
        if let Some(alerting) = alerting {
            alerting.shutdown().await;
        }
        if !delivery.stop_within(SHUTDOWN_GRACE).await {
            warn!(
                "deliveries still waiting for an answer were cut off; they are sent again at the next start"
            );
        }
        drop(delivery);
        let _ = application_acks.0.send(true);
        let _ = application_acks.1.await;
        // Dropping the last clone of the store joins the writer thread after its last
        // commit.
        let _ = tokio::task::spawn_blocking(move || drop(control)).await;
        for (channel, m) in metrics.channels() {
            let c = m.counts();
            info!(
                channel,
                received = c.received,
                rejected = c.rejected,
                duplicates = c.duplicates,
                "channel stopped"
            );
        }
    }
}

/// Starts `[[alerts]]` over the channels' counters and the destinations' queues.
async fn start_alerting(
    config: &Config,
    store: &Store,
    metrics: &Metrics,
    delivery: &Arc<delivery::Delivery>,
) -> Result<alerts::Alerting, StartError> {
    let (metrics, delivery) = (metrics.clone(), delivery.clone());
    let sampler: alerts::Sampler = Box::new(move || {
        let destinations = match delivery.stats() {
            Ok(stats) => stats,
            Err(error) => {
                warn!(%error, "the destination queues could not be read for the alerts");
                return None;
            }
        };
        let channels = metrics
            .channels()
            .into_iter()
            .map(|(name, m)| {
                let c = m.counts();
                alerts::ChannelSample {
                    channel: name.to_owned(),
                    received: c.received,
                    rejected: c.rejected,
                    errored: c.errored,
                }
            })
            .collect();
        Some(alerts::Snapshot {
            at: store::UnixMicros::now(),
            channels,
            destinations,
        })
    });
    alerts::Alerting::start(
        store.clone(),
        &config.alerting,
        &config.alerts,
        &config.alert_targets(),
        &config.base_dir,
        &config.data.dir,
        sampler,
    )
    .await
    .map_err(StartError::Alerts)
}

/// The HTTP port's access control from `[http]`: the users and tokens, the OIDC
/// issuer, the audit trail; on a database without users, the first admin token.
async fn access_control(
    config: &Config,
    store: &Store,
    dir: &std::path::Path,
) -> Result<(api::Auth, Option<access::FirstAdmin>, access::audit::Audit), StartError> {
    let failed = |key: &str, reason: String| StartError::Access {
        key: key.to_owned(),
        reason,
    };
    let users = access::Access::open(store.clone())
        .await
        .map_err(|e| failed("data.dir", e.to_string()))?;
    let audit = access::audit::Audit::open(store.clone())
        .await
        .map_err(|e| failed("data.dir", e.to_string()))?;
    let auth = match config.http.auth {
        crate::config::AuthSetting::Off => {
            warn!(
                listen = %config.http.listen.0,
                "http.auth is off: anyone who can reach the HTTP port reads PHI and makes changes"
            );
            return Ok((
                api::Auth::off(Some(audit.clone())).with_public_metrics(config.http.metrics_public),
                None,
                audit,
            ));
        }
        crate::config::AuthSetting::On => {
            let oidc = match &config.http.oidc {
                None => None,
                Some(settings) => {
                    let oidc_config = settings
                        .to_config(&config.base_dir)
                        .map_err(|(key, reason)| failed(&key, reason))?;
                    Some(
                        access::oidc::OidcVerifier::new(oidc_config)
                            .await
                            .map_err(|e| failed("http.oidc", e.to_string()))?,
                    )
                }
            };
            api::Auth::required(users.clone(), oidc, audit.clone())
                .with_public_metrics(config.http.metrics_public)
        }
    };
    let first = users
        .ensure_first_admin(dir)
        .await
        .map_err(|e| failed("data.dir", e.to_string()))?;
    Ok((auth, first, audit))
}
