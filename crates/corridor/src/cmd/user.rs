//! `corridor user add|list|disable|passwd`: the local users who sign in to the console
//! and API (`docs/security.md`).

use std::io::{BufRead, IsTerminal};
use std::process::ExitCode;

use access::audit::{ActionKind, AuditRecord};
use access::{Access, Role};

use super::data_dir::{DataDirArgs, parse_role, time_or_dash};

#[derive(clap::Args)]
pub struct Args {
    #[command(subcommand)]
    command: UserCommand,
}

#[derive(clap::Subcommand)]
enum UserCommand {
    /// Add a user with a role.
    Add {
        #[command(flatten)]
        data: DataDirArgs,
        /// The login name.
        name: String,
        /// viewer, analyst, operator, steward or admin.
        #[arg(long, value_parser = parse_role)]
        role: Role,
        /// Read the password from the first line of standard input.
        #[arg(long, conflicts_with = "no_password")]
        password_stdin: bool,
        /// No password: the user signs in only with tokens made for it.
        #[arg(long)]
        no_password: bool,
    },
    /// List the users.
    List {
        #[command(flatten)]
        data: DataDirArgs,
    },
    /// Disable a user: no more logins, and its tokens stop working.
    Disable {
        #[command(flatten)]
        data: DataDirArgs,
        /// The login name.
        name: String,
    },
    /// Set a user's password.
    Passwd {
        #[command(flatten)]
        data: DataDirArgs,
        /// The login name.
        name: String,
        /// Read the password from the first line of standard input.
        #[arg(long)]
        password_stdin: bool,
    },
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    match args.command {
        UserCommand::Add {
            data,
            name,
            role,
            password_stdin,
            no_password,
        } => {
            let password = if no_password {
                None
            } else {
                Some(read_password(password_stdin)?)
            };
            let access = Access::open_blocking(data.open_store()?)?;
            let record = AuditRecord::cli("user.add", ActionKind::Create, &format!("user/{name}"))
                .detail(format!("role {role}"));
            let user = access
                .add_user(&name, role, password.as_deref(), Some(record))
                .wait()?;
            eprintln!("added user {} with role {}", user.name, user.role);
        }
        UserCommand::List { data } => {
            let access = Access::open_blocking(data.open_store()?)?;
            println!("NAME\tROLE\tPASSWORD\tSTATE\tCREATED");
            for user in access.list_users()? {
                println!(
                    "{}\t{}\t{}\t{}\t{}",
                    user.name,
                    user.role,
                    if user.has_password { "set" } else { "none" },
                    if user.disabled { "disabled" } else { "enabled" },
                    time_or_dash(Some(user.created_at)),
                );
            }
        }
        UserCommand::Disable { data, name } => {
            let access = Access::open_blocking(data.open_store()?)?;
            let record =
                AuditRecord::cli("user.disable", ActionKind::Update, &format!("user/{name}"));
            access.disable_user(&name, Some(record)).wait()?;
            eprintln!("disabled user {name}; its tokens no longer work");
        }
        UserCommand::Passwd {
            data,
            name,
            password_stdin,
        } => {
            let password = read_password(password_stdin)?;
            let access = Access::open_blocking(data.open_store()?)?;
            let record =
                AuditRecord::cli("user.passwd", ActionKind::Update, &format!("user/{name}"));
            access.set_password(&name, &password, Some(record)).wait()?;
            eprintln!("password of {name} changed");
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// The password from standard input's first line, or asked twice on the terminal.
fn read_password(from_stdin: bool) -> anyhow::Result<String> {
    if from_stdin {
        let mut line = String::new();
        std::io::stdin().lock().read_line(&mut line)?;
        let password = line.strip_suffix('\n').unwrap_or(&line);
        return Ok(password.strip_suffix('\r').unwrap_or(password).to_owned());
    }
    if !std::io::stdin().is_terminal() {
        anyhow::bail!(
            "no terminal to ask for the password on: use --password-stdin (or --no-password)"
        );
    }
    let first = rpassword::prompt_password("password: ")?;
    let again = rpassword::prompt_password("again: ")?;
    if first != again {
        anyhow::bail!("the passwords differ");
    }
    Ok(first)
}
