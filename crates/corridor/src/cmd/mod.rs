//! One module per subcommand: each has an `Args` struct and a
//! `run(Args) -> anyhow::Result<ExitCode>` function.

pub mod audit;
pub mod config;
pub mod data_dir;
pub mod db;
pub mod fhir;
pub mod get;
pub mod mpi;
pub mod parse;
pub mod profile;
pub mod run;
pub mod send;
pub mod terminology;
pub mod test;
pub mod token;
pub mod user;
pub mod v2;
pub mod validate;
