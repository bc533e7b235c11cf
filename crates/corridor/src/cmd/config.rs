//! `corridor config check FILE`: reads a configuration and reports every
//! problem, naming the key; exit 0 when valid, 1 when not.

use std::path::PathBuf;
use std::process::ExitCode;

#[derive(clap::Args)]
pub struct Args {
    #[command(subcommand)]
    command: Command,
}

#[derive(clap::Subcommand)]
enum Command {
    /// Check a configuration file; print each problem with the key it is about.
    Check {
        /// The configuration file (TOML).
        file: PathBuf,
    },
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    match args.command {
        Command::Check { file } => match engine::Config::load(&file) {
            Ok(config) => {
                let destinations: usize =
                    config.channels.values().map(|c| c.destinations.len()).sum();
                println!(
                    "{}: valid ({} channel{}, {} destination{})",
                    file.display(),
                    config.channels.len(),
                    if config.channels.len() == 1 { "" } else { "s" },
                    destinations,
                    if destinations == 1 { "" } else { "s" }
                );
                Ok(ExitCode::SUCCESS)
            }
            Err(errors) => {
                eprintln!("{errors}");
                Ok(ExitCode::from(1))
            }
        },
    }
}
