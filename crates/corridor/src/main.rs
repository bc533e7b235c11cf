//! `corridor`: the command line. It parses arguments and calls into the
//! crates; each subcommand lives in its own module under `cmd/`.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod cmd;
mod input;
mod output;

/// The binary's allocator is jemalloc: the pipeline allocates and frees many small JSON
/// values and strings per message on several threads, and glibc's malloc both spends a
/// quarter of the engine's instructions there and makes the threads wait on each other
/// for its arenas (ARCHITECTURE.md, BENCHMARKS.md "Alert latency").
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// Corridor, a real-time HL7 v2 interface engine.
#[derive(Parser)]
#[command(name = "corridor", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the engine.
    Run(cmd::run::Args),
    /// Send the messages of files to an MLLP listener and check each ACK.
    Send(cmd::send::Args),
    /// Print messages as a tree, or as JSON.
    Parse(cmd::parse::Args),
    /// Print the values at paths, one line per message and path.
    Get(cmd::get::Args),
    /// Validate messages against the standard and conformance profiles.
    Validate(cmd::validate::Args),
    /// Convert messages to FHIR R4 transaction Bundles.
    Fhir(cmd::fhir::Args),
    /// Make HL7 v2 messages from FHIR R4 resources or Bundles.
    V2(cmd::v2::Args),
    /// Check a configuration file.
    Config(cmd::config::Args),
    /// Load and export the master patient index.
    Mpi(cmd::mpi::Args),
    /// Check the database for damage.
    Db(cmd::db::Args),
    /// Run a channel's fixtures: a message in, what must come out.
    Test(cmd::test::Args),
    /// Manage the local users.
    User(cmd::user::Args),
    /// Manage API tokens.
    Token(cmd::token::Args),
    /// Verify and export the audit trail.
    Audit(cmd::audit::Args),
    /// Profile a feed: what its messages contain, and a suggested conformance profile.
    Profile(cmd::profile::Args),
    /// Load and list code maps and code systems; export unmapped codes.
    Terminology(cmd::terminology::Args),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Run(args) => cmd::run::run(args),
        Command::Send(args) => cmd::send::run(args),
        Command::Parse(args) => cmd::parse::run(args),
        Command::Get(args) => cmd::get::run(args),
        Command::Validate(args) => cmd::validate::run(args),
        Command::Fhir(args) => cmd::fhir::run(args),
        Command::V2(args) => cmd::v2::run(args),
        Command::Config(args) => cmd::config::run(args),
        Command::Mpi(args) => cmd::mpi::run(args),
        Command::Db(args) => cmd::db::run(args),
        Command::Test(args) => cmd::test::run(args),
        Command::User(args) => cmd::user::run(args),
        Command::Token(args) => cmd::token::run(args),
        Command::Audit(args) => cmd::audit::run(args),
        Command::Terminology(args) => cmd::terminology::run(args),
        Command::Profile(args) => cmd::profile::run(args),
    };
    match result {
        Ok(code) => code,
        // A reader that stops early (`corridor get ... | head`) is not an error.
        Err(error) if is_broken_pipe(&error) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("corridor: {error:#}");
            ExitCode::from(1)
        }
    }
}

fn is_broken_pipe(error: &anyhow::Error) -> bool {
    error
        .chain()
        .filter_map(|e| e.downcast_ref::<std::io::Error>())
        .any(|e| e.kind() == std::io::ErrorKind::BrokenPipe)
}
