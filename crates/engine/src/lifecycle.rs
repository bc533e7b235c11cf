//! Starting and stopping everything a configuration describes.

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use store::Store;
use tokio::sync::Notify;
use tokio::task::JoinHandle;
use tracing::{info, warn};

use crate::config::Config;
use crate::http_serve::HttpServer;
use crate::intake::migrate;
use crate::metrics::Metrics;
use crate::pipeline::{ChannelPipeline, Processors};
use crate::sources::{Intakes, Listener, Sources};
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
    listeners: Vec<Listener>,
    http: Option<HttpServer>,
    metrics: Metrics,
    store: Store,
    /// The sender of owed application acknowledgements, and its stop signal.
    application_acks: (tokio::sync::watch::Sender<bool>, JoinHandle<()>),
    processors: Processors,
    delivery: Arc<delivery::Delivery>,
    /// Every channel's source, and the retention task.
    sources: Sources,
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
    pub async fn start(mut config: Config) -> Result<Engine, StartError> {
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
        let metrics = Metrics::new(config.channels.keys().map(String::as_str));
        // Each channel's validation, with its profiles loaded once (a bad one fails here).
        let validations = crate::sources::channel_validations(&config)?;

        let delivery = Arc::new(
            delivery::Delivery::start(
                store.clone(),
                config
                    .channels
                    .iter()
                    .map(|(name, c)| (name.as_str(), c.destinations.as_slice())),
                &config.base_dir,
            )
            .await?,
        );
        let mut wakes: HashMap<String, Arc<Notify>> = HashMap::new();
        let mut archives = HashSet::new();
        let mut pipelines = Vec::new();
        for (name, channel) in &config.channels {
            let pipeline = ChannelPipeline::build(
                name,
                channel,
                &config,
                &validations,
                patient_index.as_ref(),
                terminology.shared(),
                metrics.channel(name).unwrap_or_default(),
            )?;
            if pipeline.is_archive() {
                archives.insert(name.clone());
            }
            let wake = Arc::new(Notify::new());
            wakes.insert(name.clone(), wake.clone());
            pipelines.push((pipeline, wake));
        }
        let processors = Processors::start(store.clone(), delivery.clone(), pipelines);
        let intakes = Intakes {
            store: store.clone(),
            metrics: metrics.clone(),
            wakes: Arc::new(wakes),
            validations,
            archives,
        };

        // Every channel's source, through its intake.
        let sources = Sources::start(&config, &intakes).await?;
        let listeners = sources.mllp_listeners();

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
                listeners: listeners
                    .iter()
                    .map(|l| (l.channel.clone(), l.addr))
                    .collect(),
                started,
                store: store.clone(),
                delivery: delivery.clone(),
                mllp_stats: sources.mllp_stats(),
            });
            let wake_channel = {
                let wakes = intakes.wakes.clone();
                Arc::new(move |channel: &str| {
                    if let Some(wake) = wakes.get(channel) {
                        wake.notify_one();
                    }
                }) as api::WakeChannel
            };
            // The quarantine revalidates edits with each channel's own settings.
            let validators = intakes
                .validations
                .iter()
                .fold(quarantine::Validators::new(), |all, (name, (_, v))| {
                    all.with_shared(name.clone(), v.clone())
                });
            let auth = access_control(&config, &store, &dir).await?;
            first_admin = auth.1;
            let app = api::router(api::Api {
                store: store.clone(),
                delivery: Some(delivery.clone()),
                wake_channel,
                quarantine: Some(quarantine::Quarantine::new(store.clone(), validators)),
                patient_index: patient_index.clone(),
                fhir_base: repository.then(|| format!("http://{addr}/fhir")),
                status: Some(status),
                auth: auth.0,
                terminology: Some(terminology.clone()),
            });
            let server =
                HttpServer::spawn("http", listener, app, config.http.limits()).map_err(|err| {
                    StartError::Listen {
                        key: "http.listen".to_owned(),
                        addr,
                        reason: err.to_string(),
                    }
                })?;
            http = Some(server);
        }

        let application_ack_targets = config
            .channels
            .iter()
            .filter_map(|(name, c)| Some((name.clone(), c.source.application_ack_to.clone()?)))
            .collect();
        let (stop_application_acks, stop) = tokio::sync::watch::channel(false);
        let application_acks =
            crate::application_ack::spawn(store.clone(), application_ack_targets, stop);

        Ok(Engine {
            first_admin,
            listeners,
            http,
            metrics,
            store,
            application_acks: (stop_application_acks, application_acks),
            processors,
            delivery,
            sources,
            terminology: (terminology, terminology_reload),
        })
    }

    /// The terminology in force (its stored loads and the snapshot channels read).
    pub fn terminology(&self) -> &terminology::TerminologyService {
        &self.terminology.0
    }

    /// The HTTP sources (`type = "http"`), one per channel that has one.
    pub fn http_sources(&self) -> Vec<Listener> {
        self.sources.http_listeners()
    }

    /// The MLLP listeners, one per channel.
    pub fn listeners(&self) -> &[Listener] {
        &self.listeners
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
        &self.metrics
    }

    /// The store the engine writes to.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// Stops accepting, lets every frame already received be stored and
    /// acknowledged, closes connections, stops the HTTP server, and waits for
    /// the store's last commit.
    pub async fn shutdown(self) {
        let Engine {
            http,
            store,
            metrics,
            application_acks,
            processors,
            delivery,
            sources,
            terminology,
            ..
        } = self;
        terminology.1.abort();
        // The sources stop taking messages; what they were storing is stored (and
        // answered) first.
        sources.shutdown(SHUTDOWN_GRACE).await;
        // What was received is processed and queued before the pipeline stops; what
        // the destinations have not taken yet stays queued for the next start.
        processors.shutdown().await;
        if let Some(server) = http {
            server.shutdown().await;
        }
        match Arc::try_unwrap(delivery) {
            Ok(delivery) => {
                if !delivery.shutdown_within(SHUTDOWN_GRACE).await {
                    warn!(
                        "deliveries still waiting for an answer were cut off; they are sent again at the next start"
                    );
                }
            }
            Err(_) => warn!("the destination workers are still shared; not waiting for them"),
        }
        let _ = application_acks.0.send(true);
        let _ = application_acks.1.await;
        // Dropping the last clone joins the writer thread after its last commit.
        let _ = tokio::task::spawn_blocking(move || drop(store)).await;
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

/// The HTTP port's access control from `[http]`: the users and tokens, the OIDC
/// issuer, the audit trail; on a database without users, the first admin token.
async fn access_control(
    config: &Config,
    store: &Store,
    dir: &std::path::Path,
) -> Result<(api::Auth, Option<access::FirstAdmin>), StartError> {
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
                api::Auth::off(Some(audit)).with_public_metrics(config.http.metrics_public),
                None,
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
            api::Auth::required(users.clone(), oidc, audit)
                .with_public_metrics(config.http.metrics_public)
        }
    };
    let first = users
        .ensure_first_admin(dir)
        .await
        .map_err(|e| failed("data.dir", e.to_string()))?;
    Ok((auth, first))
}
