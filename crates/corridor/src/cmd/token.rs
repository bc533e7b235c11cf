//! `corridor token create|list|revoke`: API tokens for people and systems
//! (`Authorization: Bearer crd_...`).

use std::process::ExitCode;

use access::audit::{ActionKind, AuditRecord};
use access::{Access, Role};

use super::data_dir::{DataDirArgs, parse_role, time_or_dash};

#[derive(clap::Args)]
pub struct Args {
    #[command(subcommand)]
    command: TokenCommand,
}

#[derive(clap::Subcommand)]
enum TokenCommand {
    /// Create a token and print it once (on standard output, alone on its line).
    Create {
        #[command(flatten)]
        data: DataDirArgs,
        /// The user the token acts for.
        #[arg(long, value_name = "NAME")]
        user: String,
        /// Days until it expires (1 to 3650); without it, it never expires.
        #[arg(long, value_name = "DAYS")]
        expires: Option<u32>,
        /// A narrower role than the user's.
        #[arg(long, value_parser = parse_role)]
        role: Option<Role>,
        /// SMART scopes limiting its FHIR reads, space-separated
        /// (`"system/Patient.read system/Observation.read"`).
        #[arg(long, value_name = "SCOPES")]
        scopes: Option<String>,
    },
    /// List the tokens (never their secrets).
    List {
        #[command(flatten)]
        data: DataDirArgs,
    },
    /// Revoke a token: refused from the next request on.
    Revoke {
        #[command(flatten)]
        data: DataDirArgs,
        /// The token's id, as `token list` shows it.
        id: i64,
    },
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    match args.command {
        TokenCommand::Create {
            data,
            user,
            expires,
            role,
            scopes,
        } => {
            let access = Access::open_blocking(data.open_store()?)?;
            // The token's id is known only once it is written: the record names the
            // user and the role asked for, and `token list` the id.
            let record =
                AuditRecord::cli("token.create", ActionKind::Create, &format!("user/{user}"))
                    .detail(format!(
                        "role {}, expires in {} days, scopes {}",
                        role.map_or("(owner's)", Role::as_str),
                        expires.map_or_else(|| "never".to_owned(), |d| d.to_string()),
                        scopes.as_deref().unwrap_or("(none)")
                    ));
            let token = access
                .create_scoped_token(&user, expires, role, scopes.as_deref(), Some(record))
                .wait()?;
            println!("{}", token.secret);
            eprintln!(
                "token {} for {} with role {}, expires {}. It is shown only now: \
                 send it as `Authorization: Bearer TOKEN`.",
                token.id,
                token.user,
                token.role,
                token
                    .expires_at
                    .map_or_else(|| "never".to_owned(), access::audit::rfc3339),
            );
        }
        TokenCommand::List { data } => {
            let access = Access::open_blocking(data.open_store()?)?;
            println!("ID\tUSER\tTOKEN\tROLE\tCREATED\tEXPIRES\tSTATE\tSCOPES");
            for token in access.list_tokens()? {
                println!(
                    "{}\t{}\t{}...\t{}\t{}\t{}\t{}\t{}",
                    token.id,
                    token.user,
                    token.hint,
                    token.role.map_or("(owner's)", Role::as_str),
                    time_or_dash(Some(token.created_at)),
                    time_or_dash(token.expires_at),
                    if token.revoked_at.is_some() {
                        "revoked"
                    } else {
                        "active"
                    },
                    token.scopes.as_deref().unwrap_or("-"),
                );
            }
        }
        TokenCommand::Revoke { data, id } => {
            let access = Access::open_blocking(data.open_store()?)?;
            let record =
                AuditRecord::cli("token.revoke", ActionKind::Update, &format!("token/{id}"));
            access.revoke_token(id, Some(record)).wait()?;
            eprintln!("revoked token {id}");
        }
    }
    Ok(ExitCode::SUCCESS)
}
