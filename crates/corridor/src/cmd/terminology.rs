//! `corridor terminology load|list|unmapped`: the code maps and code systems kept in the
//! data directory. A load made here while `corridor run` runs on the same directory is
//! put in force by the engine at its next look (`[terminology] reload_interval`).

use std::path::PathBuf;
use std::process::ExitCode;

use terminology::{LoadFile, MapScope, TerminologyService};

use super::data_dir::{DataDirArgs, time_or_dash};

#[derive(clap::Args)]
pub struct Args {
    #[command(subcommand)]
    command: TerminologyCommand,
}

#[derive(clap::Subcommand)]
enum TerminologyCommand {
    /// Load FHIR ConceptMap/CodeSystem JSON, CSV maps or the LOINC table (Loinc.csv) as
    /// one versioned load; the newest load of each name is in force.
    Load {
        #[command(flatten)]
        data: DataDirArgs,
        /// The load's name (default: the first file's name); loading a name again
        /// replaces its content and keeps the earlier version in the history.
        #[arg(long, value_name = "NAME")]
        name: Option<String>,
        /// Scope the maps to one sender: `APP` (MSH-3) or `APP@FACILITY` (MSH-4).
        #[arg(long, value_name = "SENDER")]
        sender: Option<String>,
        /// Scope the maps to fields such as OBX-3 (repeat for more).
        #[arg(long, value_name = "FIELD")]
        field: Vec<String>,
        /// The files.
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
    /// List the loads, newest first.
    List {
        #[command(flatten)]
        data: DataDirArgs,
    },
    /// Print the codes channels met without a mapping, as the CSV map to fill in and
    /// load back.
    Unmapped {
        #[command(flatten)]
        data: DataDirArgs,
    },
}

fn service(data: &DataDirArgs) -> anyhow::Result<TerminologyService> {
    let store = data.open_store()?;
    TerminologyService::migrate_blocking(&store)?;
    Ok(TerminologyService::new(store, false))
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    match args.command {
        TerminologyCommand::Load {
            data,
            name,
            sender,
            field,
            files,
        } => {
            let mut loaded = Vec::new();
            for path in &files {
                let text = std::fs::read_to_string(path)
                    .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
                let file_name = path.file_name().map_or_else(
                    || path.display().to_string(),
                    |n| n.to_string_lossy().into_owned(),
                );
                loaded.push(LoadFile {
                    name: file_name,
                    text,
                });
            }
            let name = name.unwrap_or_else(|| loaded[0].name.clone());
            let scope = MapScope {
                sender,
                fields: field,
            };
            let service = service(&data)?;
            let record = service.load_blocking(&name, loaded, scope, "cli")?;
            println!(
                "loaded {} as version {}: {}",
                record.name, record.version, record.summary
            );
        }
        TerminologyCommand::List { data } => {
            let service = service(&data)?;
            println!("version\tname\tloaded_at\tby\tin_force\tscope\tfiles\tsummary");
            for load in service.list()? {
                let scope = match (&load.sender, load.fields.is_empty()) {
                    (None, true) => "-".to_owned(),
                    (sender, _) => format!(
                        "{}{}",
                        sender.as_deref().unwrap_or("*"),
                        if load.fields.is_empty() {
                            String::new()
                        } else {
                            format!(" {}", load.fields.join(","))
                        }
                    ),
                };
                println!(
                    "{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}",
                    load.version,
                    load.name,
                    time_or_dash(Some(load.loaded_at)),
                    load.loaded_by,
                    if load.in_force { "yes" } else { "no" },
                    scope,
                    load.files.join(","),
                    load.summary
                );
            }
        }
        TerminologyCommand::Unmapped { data } => {
            let service = service(&data)?;
            print!(
                "{}",
                terminology::stored::unmapped_csv(&service.unmapped()?)
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}
