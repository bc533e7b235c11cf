//! `corridor test [--config FILE] [DIR]`: runs a channel's fixtures (a message in, what
//! must come out) through its real pipeline in process; prints each case and a summary,
//! exit 0 when all pass and 1 when one fails.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;

#[derive(clap::Args)]
pub struct Args {
    /// Configuration file (TOML); without it, DIR/corridor.toml.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// The directory holding the cases (directories with in.hl7), searched recursively.
    #[arg(value_name = "DIR", default_value = ".")]
    pub dir: PathBuf,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let config_path = args
        .config
        .unwrap_or_else(|| args.dir.join("corridor.toml"));
    let config = match engine::Config::load(&config_path) {
        Ok(config) => config,
        Err(errors) => {
            eprintln!("{errors}");
            return Ok(ExitCode::from(1));
        }
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the runtime")?;
    let reports = match runtime.block_on(engine::channel_test::run_cases(&config, &args.dir)) {
        Ok(reports) => reports,
        Err(error) => {
            eprintln!("corridor: {error}");
            return Ok(ExitCode::from(1));
        }
    };
    let failed = reports.iter().filter(|r| !r.passed()).count();
    for report in &reports {
        if report.passed() {
            println!("pass {}", report.name);
        } else {
            println!("FAIL {}", report.name);
            for failure in &report.failures {
                println!("    {failure}");
            }
        }
    }
    println!(
        "{} case{}: {} passed, {failed} failed",
        reports.len(),
        if reports.len() == 1 { "" } else { "s" },
        reports.len() - failed
    );
    Ok(if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}
