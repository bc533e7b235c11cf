//! `corridor db check [--data DIR | --config FILE] [--quick]`: reads every page of the
//! engine's database and names what is damaged; exit 0 when sound, 1 when not.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use store::IntegrityCheck;

#[derive(clap::Args)]
pub struct Args {
    #[command(subcommand)]
    command: Command,
}

#[derive(clap::Subcommand)]
enum Command {
    /// Check the database for damage (SQLite's integrity_check and foreign_key_check).
    Check {
        /// Data directory (the database), as given to `corridor run --data`.
        #[arg(long, value_name = "DIR")]
        data: Option<PathBuf>,
        /// Configuration file: its `[data] dir` is checked.
        #[arg(long, value_name = "FILE")]
        config: Option<PathBuf>,
        /// Only SQLite's quick_check: page structure, without comparing indexes to tables.
        #[arg(long)]
        quick: bool,
    },
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    match args.command {
        Command::Check {
            data,
            config,
            quick,
        } => {
            let dir = match (data, config) {
                (Some(dir), _) => dir,
                (None, Some(file)) => match engine::Config::load(&file) {
                    Ok(config) => config.data.dir,
                    Err(errors) => {
                        eprintln!("{errors}");
                        return Ok(ExitCode::from(1));
                    }
                },
                (None, None) => engine::Config::default_config().data.dir,
            };
            let depth = if quick {
                IntegrityCheck::Quick
            } else {
                IntegrityCheck::Full
            };
            check(&dir, depth)
        }
    }
}

/// Prints the verdict on the database in `dir`; exit 1 when it is damaged or missing.
fn check(dir: &Path, depth: IntegrityCheck) -> anyhow::Result<ExitCode> {
    let path = dir.join(store::Store::DATABASE_FILE);
    if !path.is_file() {
        eprintln!("{}: no database here", path.display());
        return Ok(ExitCode::from(1));
    }
    match store::check_integrity(dir, depth) {
        Ok(problems) if problems.is_empty() => {
            println!("{}: ok", path.display());
            Ok(ExitCode::SUCCESS)
        }
        Ok(problems) => {
            print_damage(&path, &problems);
            Ok(ExitCode::from(1))
        }
        Err(error) => {
            eprintln!("{}: cannot be checked: {error}", path.display());
            Ok(ExitCode::from(1))
        }
    }
}

/// The problems SQLite found, then what to do about them.
pub fn print_damage(path: &Path, problems: &[String]) {
    eprintln!("{}: the database is damaged:", path.display());
    for problem in problems {
        eprintln!("  {problem}");
    }
    eprintln!(
        "restore it from a backup, or salvage what can be read with `sqlite3 {} .recover`",
        path.display()
    );
}
