//! `corridor run [--config FILE] [--data DIR]`: runs the engine until SIGTERM or Ctrl-C,
//! or until an fsync of its database fails (then it exits with status 3 at once, for a
//! supervisor to restart it). SIGHUP reads the configuration file again and applies it
//! without a restart (`docs/configuration.md`, "Reloading").

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use anyhow::Context as _;
use tracing::info;

/// The exit status after a failed fsync of the database: the store took no more writes,
/// and a new process recovers the database from what is on disk.
const EXIT_DISK_SYNC_FAILED: i32 = 3;

#[derive(clap::Args)]
pub struct Args {
    /// Configuration file (TOML). Without it: one channel `default` with an
    /// MLLP listener on 127.0.0.1:2575, HTTP on 127.0.0.1:8080.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Data directory (the database); wins over `[data] dir`.
    #[arg(long, value_name = "DIR")]
    pub data: Option<PathBuf>,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let started = Instant::now();
    init_logging();
    let file = args.config.as_ref().map(|path| engine::ConfigFile {
        path: path.clone(),
        data_dir: args.data.clone(),
    });
    let mut config = match &file {
        Some(file) => match file.read() {
            Ok((config, _)) => config,
            Err(errors) => {
                eprintln!("{errors}");
                eprintln!("corridor: the configuration is invalid; nothing was started");
                return Ok(ExitCode::from(1));
            }
        },
        None => engine::Config::default_config(),
    };
    if let Some(dir) = args.data {
        config.data.dir = dir;
    }
    if let Some(depth) = config.data.check_at_start.depth() {
        if !database_is_sound(&config.data.dir, depth) {
            eprintln!("corridor: the database failed its check at start; nothing was started");
            return Ok(ExitCode::from(1));
        }
    }
    let mut runtime = tokio::runtime::Builder::new_multi_thread();
    // Tuning knob for load runs: the network threads share the machine with
    // the database writer, so fewer can be faster on small machines.
    if let Some(threads) = std::env::var("CORRIDOR_WORKER_THREADS")
        .ok()
        .and_then(|t| t.parse::<usize>().ok())
        .filter(|&t| t > 0)
    {
        runtime.worker_threads(threads);
    }
    let runtime = runtime
        .enable_all()
        .thread_name("corridor")
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(serve(config, file, started))
}

async fn serve(
    config: engine::Config,
    file: Option<engine::ConfigFile>,
    started: Instant,
) -> anyhow::Result<ExitCode> {
    let data_dir = config.data.dir.clone();
    let starting = match file {
        // Read again so that the text recorded in the history is the one started.
        Some(file) => engine::Engine::start_from_file(file).await,
        None => engine::Engine::start(config).await,
    };
    let engine = match starting {
        Ok(engine) => engine,
        Err(error) => {
            eprintln!("corridor: {error}");
            return Ok(ExitCode::from(1));
        }
    };
    info!(
        listeners = %listeners_text(&engine),
        http = %engine.http_addr().map_or("off".to_owned(), |a| format!("http://{a}")),
        data = %data_dir.display(),
        startup_ms = started.elapsed().as_millis() as u64,
        "corridor is listening"
    );
    if let (Some(first), Some(addr)) = (engine.first_admin(), engine.http_addr()) {
        // Printed once, on stderr only (never logged): the database had no user.
        eprintln!(
            "corridor: no user existed, so the user `admin` was created with this API token \
             (shown once):\n\n    {secret}\n\nUse it as a bearer token, for example:\n\n    \
             curl -H \"Authorization: Bearer {secret}\" http://{addr}/api/stats\n\n\
             It is also in {path} (readable only by its owner). Create real users and \
             tokens with `corridor user add` and `corridor token create`, then delete that file.",
            secret = first.secret,
            path = first.path.display(),
        );
    }
    let stop = wait_for_stop_signal();
    tokio::pin!(stop);
    let mut reloads = ReloadSignal::new()?;
    loop {
        tokio::select! {
            stop = &mut stop => {
                stop?;
                break;
            }
            () = reloads.next() => {
                info!(signal = "SIGHUP", "reloading the configuration");
                // The outcome is logged by the engine (and recorded in the audit trail).
                if engine.reload_on_signal().await.is_ok() {
                    info!(listeners = %listeners_text(&engine), "listening after the reload");
                }
            }
            _ = engine.store().sync_failed() => {
            // The store logged the failure and refuses every write, so every message
            // gets a NAK until the process is gone. A clean shutdown would only wait for
            // work that can no longer be stored, and for threads a sick disk may hold;
            // the next process recovers the database from what is on disk.
            info!(
                exit_status = EXIT_DISK_SYNC_FAILED,
                "exiting at once, without a clean shutdown, so that a supervisor restarts corridor"
            );
                std::process::exit(EXIT_DISK_SYNC_FAILED);
            }
        }
    }
    info!("stopping: no new connections; finishing and acknowledging messages in flight");
    engine.shutdown().await;
    info!("stopped");
    Ok(ExitCode::SUCCESS)
}

/// Every listener as `channel=mllp://addr`, `channel=mllps://addr` or
/// `channel=http://addr`, space-separated.
fn listeners_text(engine: &engine::Engine) -> String {
    let mut listeners: Vec<String> = engine
        .listeners()
        .iter()
        .map(|l| {
            format!(
                "{}={}{}",
                l.channel,
                if l.tls { "mllps://" } else { "mllp://" },
                l.addr
            )
        })
        .collect();
    listeners.extend(
        engine
            .http_sources()
            .iter()
            .map(|l| format!("{}=http://{}", l.channel, l.addr)),
    );
    listeners.join(" ")
}

/// `[data] check_at_start`: reads the whole database before anything uses it. A data
/// directory without a database yet (the first start) has nothing to check.
fn database_is_sound(dir: &std::path::Path, depth: store::IntegrityCheck) -> bool {
    let path = dir.join(store::Store::DATABASE_FILE);
    if !path.exists() {
        return true;
    }
    let checked = Instant::now();
    match store::check_integrity(dir, depth) {
        Ok(problems) if problems.is_empty() => {
            info!(database = %path.display(), check = ?depth, elapsed_ms = checked.elapsed().as_millis() as u64, "database check passed");
            true
        }
        Ok(problems) => {
            super::db::print_damage(&path, &problems);
            false
        }
        Err(error) => {
            eprintln!("{}: cannot be checked: {error}", path.display());
            false
        }
    }
}

/// SIGHUP, the request to read the configuration file again.
struct ReloadSignal {
    #[cfg(unix)]
    hangup: tokio::signal::unix::Signal,
}

impl ReloadSignal {
    #[cfg(unix)]
    fn new() -> anyhow::Result<ReloadSignal> {
        use tokio::signal::unix::{SignalKind, signal};
        Ok(ReloadSignal {
            hangup: signal(SignalKind::hangup()).context("cannot watch for SIGHUP")?,
        })
    }

    #[cfg(not(unix))]
    fn new() -> anyhow::Result<ReloadSignal> {
        Ok(ReloadSignal {})
    }

    /// Resolves at the next SIGHUP (never where there is none).
    #[cfg(unix)]
    async fn next(&mut self) {
        if self.hangup.recv().await.is_none() {
            std::future::pending::<()>().await;
        }
    }

    #[cfg(not(unix))]
    async fn next(&mut self) {
        std::future::pending::<()>().await;
    }
}

#[cfg(unix)]
async fn wait_for_stop_signal() -> anyhow::Result<()> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).context("cannot watch for SIGTERM")?;
    tokio::select! {
        _ = term.recv() => info!(signal = "SIGTERM", "stop requested"),
        result = tokio::signal::ctrl_c() => {
            result.context("cannot watch for Ctrl-C")?;
            info!(signal = "SIGINT", "stop requested");
        }
    }
    Ok(())
}

#[cfg(not(unix))]
async fn wait_for_stop_signal() -> anyhow::Result<()> {
    tokio::signal::ctrl_c()
        .await
        .context("cannot watch for Ctrl-C")?;
    info!(signal = "Ctrl-C", "stop requested");
    Ok(())
}

/// Logs to stderr; `RUST_LOG` chooses what (default `info`, which never
/// carries message content: ids, channels, peers, sizes and states only).
fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_target(false)
        .try_init();
}
