//! `corridor mpi load|export`: moves a source system's patient list into the master
//! patient index in the engine's data directory, and lists where every source record
//! stands.
//!
//! `load` feeds the records one at a time through the same matcher as live messages.
//! The list's columns are `mpi::patient_list`'s. A bad row is reported with its file
//! and line and skipped; the others load. When the index has no match model yet, one is estimated
//! (EM, without labels) from the records being loaded and stored, so live messages are
//! scored with it too. `load` owns the index while it runs, so it refuses the data
//! directory of a running engine.
//!
//! `export` only reads: it rebuilds the index from one consistent snapshot of the
//! store's event log, so it runs beside a running engine and lists every decision that
//! engine had committed when the export began.

use std::io::BufWriter;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use mpi::patient_list::{ListError, write_export};
use mpi::{MatchModel, MpiConfig, MpiService, PatientRecord, TrainingOptions};

#[derive(clap::Args)]
pub struct Args {
    #[command(subcommand)]
    command: MpiCommand,
}

#[derive(clap::Subcommand)]
enum MpiCommand {
    /// Load source records from CSV files, one record at a time through the matcher.
    Load(LoadArgs),
    /// Write `source,id,enterprise_id,status` for every source record (runs beside a
    /// running engine: reads one consistent snapshot).
    Export(ExportArgs),
}

#[derive(clap::Args)]
struct Common {
    /// Data directory (the database), as given to `corridor run --data`.
    #[arg(long, value_name = "DIR")]
    data: Option<PathBuf>,
    /// Configuration file: its `[mpi]` thresholds and `[data] dir` are used.
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
}

#[derive(clap::Args)]
struct LoadArgs {
    #[command(flatten)]
    common: Common,
    /// The source system these records come from (the `source` of each record).
    #[arg(long, value_name = "NAME")]
    source: String,
    /// CSV files with a header row.
    #[arg(required = true, value_name = "FILE.csv")]
    files: Vec<PathBuf>,
}

#[derive(clap::Args)]
struct ExportArgs {
    #[command(flatten)]
    common: Common,
    /// Where to write the CSV (`-` for standard output).
    #[arg(value_name = "FILE.csv")]
    out: PathBuf,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    match args.command {
        MpiCommand::Load(a) => load(a),
        MpiCommand::Export(a) => export(a),
    }
}

/// The data directory's store and the `[mpi]` settings of the configuration.
fn open_store(common: &Common) -> anyhow::Result<(store::Store, MpiConfig)> {
    let config = match &common.config {
        Some(path) => match engine::Config::load(path) {
            Ok(config) => config,
            Err(errors) => anyhow::bail!("{errors}"),
        },
        None => engine::Config::default_config(),
    };
    let dir = common.data.clone().unwrap_or(config.data.dir.clone());
    let store = store::Store::open(&dir)
        .map_err(|e| anyhow::anyhow!("cannot open the data directory {}: {e}", dir.display()))?;
    let mpi_config = MpiConfig {
        enabled: true,
        ..config.mpi
    };
    Ok((store, mpi_config))
}

/// Opens the index to change it (its lock held while the service lives).
fn open(common: &Common) -> anyhow::Result<MpiService> {
    let (store, mpi_config) = open_store(common)?;
    let started = Instant::now();
    let service = MpiService::open_blocking(store, mpi_config)?;
    let records = service.read(|mpi| mpi.len());
    eprintln!(
        "index rebuilt from the store: {records} source records in {:.1}s",
        started.elapsed().as_secs_f64()
    );
    Ok(service)
}

/// Reads one file; bad rows are reported on stderr and counted.
fn read_file(path: &Path, source: &str, out: &mut Vec<PatientRecord>) -> anyhow::Result<usize> {
    let text = std::fs::read(path).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
    let mut bad = 0;
    mpi::patient_list::read_patient_list(
        &String::from_utf8_lossy(&text),
        source,
        out,
        |line, why| {
            eprintln!("{}:{line}: {why}; row skipped", path.display());
            bad += 1;
        },
    )
    .map_err(|e| match e {
        ListError::Empty => anyhow::anyhow!("{}: {e}", path.display()),
        ListError::Header { line, why } => anyhow::anyhow!("{}:{line}: {why}", path.display()),
    })?;
    Ok(bad)
}

/// Records the match model is estimated on: the first of the list.
const MODEL_SAMPLE: usize = 50_000;

/// Records fed between two writes of their events.
const BATCH: usize = 5_000;

fn load(args: LoadArgs) -> anyhow::Result<ExitCode> {
    if args.source.trim().is_empty() {
        anyhow::bail!("--source needs a name");
    }
    let service = open(&args.common)?;
    let mut records = Vec::new();
    let mut bad = 0;
    let mut failed_files = 0;
    for file in &args.files {
        match read_file(file, args.source.trim(), &mut records) {
            Ok(n) => bad += n,
            Err(e) => {
                eprintln!("{e}; file skipped");
                failed_files += 1;
            }
        }
    }
    if !service.has_stored_model()? && records.len() >= 500 {
        // EM on the first records of the list: quick on millions. A contiguous part
        // keeps the duplicates that sit near each other, which a strided sample would
        // split (EM needs some matching pairs to learn what a match looks like).
        let sample: Vec<PatientRecord> = records.iter().take(MODEL_SAMPLE).cloned().collect();
        eprintln!(
            "estimating the match model from {} of {} records",
            sample.len(),
            records.len()
        );
        let (model, _report) = MatchModel::estimate(&sample, &TrainingOptions::default());
        service.set_model_blocking(model)?;
    }
    let total = records.len();
    let started = Instant::now();
    let mut last_progress = Instant::now();
    let mut counts = [0usize; 3];
    let mut unwritten = 0usize;
    let mut refused = 0;
    for (n, record) in records.into_iter().enumerate() {
        let (decision, events) = service.with_index(|mpi| mpi.ingest(record));
        match decision {
            Ok(d) => {
                counts[match d.outcome {
                    mpi::Outcome::Link => 0,
                    mpi::Outcome::PossibleMatch => 1,
                    mpi::Outcome::New => 2,
                }] += 1
            }
            Err(e) => {
                eprintln!("record {} refused: {e}", n + 1);
                refused += 1;
            }
        }
        unwritten += events.len();
        if unwritten >= BATCH {
            unwritten = 0;
            // Writes every event the store lacks, in order (the service keeps them).
            let s = service.clone();
            service
                .store()
                .write(move |conn| s.persist_in(conn))
                .wait()?;
        }
        if last_progress.elapsed() >= Duration::from_secs(2) {
            last_progress = Instant::now();
            let rate = (n + 1) as f64 / started.elapsed().as_secs_f64();
            eprintln!("loaded {}/{total} records ({rate:.0}/s)", n + 1);
        }
    }
    if unwritten > 0 {
        let s = service.clone();
        service
            .store()
            .write(move |conn| s.persist_in(conn))
            .wait()?;
    }
    let secs = started.elapsed().as_secs_f64();
    eprintln!(
        "loaded {total} records in {secs:.1}s ({:.0}/s): {} linked, {} for review, {} new; {} bad rows, {} refused, {} files skipped",
        total as f64 / secs.max(1e-9),
        counts[0],
        counts[1],
        counts[2],
        bad,
        refused,
        failed_files
    );
    Ok(if bad + refused + failed_files > 0 {
        ExitCode::from(2)
    } else {
        ExitCode::SUCCESS
    })
}

fn export(args: ExportArgs) -> anyhow::Result<ExitCode> {
    let (store, mpi_config) = open_store(&args.common)?;
    let started = Instant::now();
    let index = store
        .read(|conn| mpi::persist::load_snapshot(conn, mpi_config.matcher()))
        .map_err(|e| anyhow::anyhow!("cannot read the patient index: {e}"))?;
    match &index {
        Some(index) => eprintln!(
            "index rebuilt from a snapshot of the store: {} source records in {:.1}s",
            index.len(),
            started.elapsed().as_secs_f64()
        ),
        None => eprintln!("the data directory has no patient index yet"),
    }
    let n = if args.out.as_os_str() == "-" {
        write_export(
            &mut BufWriter::new(std::io::stdout().lock()),
            index.as_ref(),
        )?
    } else {
        let file = std::fs::File::create(&args.out)
            .map_err(|e| anyhow::anyhow!("cannot write {}: {e}", args.out.display()))?;
        write_export(&mut BufWriter::new(file), index.as_ref())?
    };
    eprintln!("exported {n} source records");
    Ok(ExitCode::SUCCESS)
}
