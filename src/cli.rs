//! The command line: `serve` (default), `migrate`, `create-user`.
use std::{
    io::{BufRead, IsTerminal},
    process::ExitCode,
};

use anyhow::{Context, bail};
use clap::{Args, Parser, Subcommand};

use crate::{
    auth::password::hash_password,
    config::Settings,
    db,
    domain::{NewPassword, Role, Username},
    ledger::seed::SeedOptions,
    repo::users,
    startup::Application,
    telemetry::{self, Console},
};

#[derive(Parser)]
#[command(
    name = "bursar",
    version,
    about = "Student fees and payments for a school office"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Subcommand)]
pub enum Command {
    /// Run the web server (the default).
    Serve(ServeArgs),
    /// Apply pending database migrations and exit.
    Migrate(DatabaseArgs),
    /// Create a user; the password is the first line of standard input.
    CreateUser(CreateUserArgs),
    /// Fill an empty database with deterministic demo data.
    Seed(SeedArgs),
    /// Recompute every balance and total from the ledger; exit 1 on any mismatch.
    CheckLedger(DatabaseArgs),
}

#[derive(Args)]
pub struct SeedArgs {
    /// How many students.
    #[arg(long)]
    pub students: u64,
    /// Payments per student.
    #[arg(long, default_value_t = 3)]
    pub payments_per_student: u64,
    /// Random seed: the same seed gives the same data.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    #[command(flatten)]
    pub database: DatabaseArgs,
}

#[derive(Args, Default)]
pub struct DatabaseArgs {
    /// Overrides DATABASE_URL.
    #[arg(long)]
    pub database_url: Option<String>,
}

#[derive(Args, Default)]
pub struct ServeArgs {
    #[command(flatten)]
    pub database: DatabaseArgs,
    /// Overrides REDIS_URL.
    #[arg(long)]
    pub redis_url: Option<String>,
    /// Overrides BURSAR_BIND.
    #[arg(long)]
    pub bind: Option<String>,
    /// Overrides BURSAR_INSTANCE_ID.
    #[arg(long)]
    pub instance_id: Option<String>,
    /// Do not apply pending migrations at start.
    #[arg(long)]
    pub no_migrate: bool,
    /// Seed a few hundred demo students when the database has none.
    #[arg(long)]
    pub demo: bool,
}

#[derive(Args)]
pub struct CreateUserArgs {
    pub username: String,
    #[arg(long, value_parser = parse_role)]
    pub role: Role,
    #[command(flatten)]
    pub database: DatabaseArgs,
}

fn parse_role(s: &str) -> Result<Role, String> {
    s.parse()
}

impl DatabaseArgs {
    fn apply(&self, settings: &mut Settings) {
        if let Some(url) = &self.database_url {
            settings.database_url = url.clone();
        }
    }
}

impl ServeArgs {
    fn apply(&self, settings: &mut Settings) {
        self.database.apply(settings);
        if let Some(url) = &self.redis_url {
            settings.redis_url = Some(url.clone());
        }
        if let Some(bind) = &self.bind {
            settings.bind = bind.clone();
        }
        if let Some(id) = &self.instance_id {
            settings.instance_id = id.clone();
        }
        settings.migrate = !self.no_migrate;
        settings.demo = self.demo;
    }
}

pub async fn run(cli: Cli) -> ExitCode {
    let mut settings = match Settings::from_env() {
        Ok(settings) => settings,
        Err(err) => {
            eprintln!("bursar: {err:#}");
            return ExitCode::from(2);
        }
    };
    let command = cli.command.unwrap_or(Command::Serve(ServeArgs::default()));
    match &command {
        Command::Serve(args) => args.apply(&mut settings),
        Command::Migrate(args) => args.apply(&mut settings),
        Command::CreateUser(args) => args.database.apply(&mut settings),
        Command::Seed(args) => args.database.apply(&mut settings),
        Command::CheckLedger(args) => args.apply(&mut settings),
    }
    // The guard flushes the log files when `run` returns.
    let _telemetry = match telemetry::init(&settings.log, Console::On) {
        Ok(guard) => guard,
        Err(err) => {
            eprintln!("bursar: {err:#}");
            return ExitCode::from(2);
        }
    };
    let outcome = match command {
        Command::Serve(_) => serve(settings).await,
        Command::Migrate(_) => db::migrate(&settings).await.map(|()| {
            tracing::info!("migrations applied");
        }),
        Command::CreateUser(args) => create_user(&settings, &args).await,
        Command::Seed(args) => seed(&settings, &args).await,
        Command::CheckLedger(_) => match check_ledger(&settings).await {
            Ok(true) => Ok(()),
            Ok(false) => return ExitCode::FAILURE,
            Err(err) => Err(err),
        },
    };
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            tracing::error!(error = format!("{err:#}"), "bursar stopped with an error");
            eprintln!("bursar: {err:#}");
            ExitCode::FAILURE
        }
    }
}

async fn serve(settings: Settings) -> anyhow::Result<()> {
    tracing::info!(settings = ?settings, "starting");
    Application::build(settings)
        .await?
        .run_until_stopped()
        .await
}

/// The first line of standard input; typed at a terminal, it is not echoed.
fn read_password() -> anyhow::Result<String> {
    if std::io::stdin().is_terminal() {
        return rpassword::prompt_password("Password: ").context("failed to read the password");
    }
    let mut line = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut line)
        .context("failed to read the password from standard input")?;
    Ok(line.trim_end_matches(['\r', '\n']).to_string())
}

async fn create_user(settings: &Settings, args: &CreateUserArgs) -> anyhow::Result<()> {
    let username = Username::parse(&args.username).map_err(anyhow::Error::msg)?;
    let password = NewPassword::parse(read_password()?).map_err(anyhow::Error::msg)?;
    db::migrate(settings).await?;
    let db = db::connect(settings).await?;
    let hash = hash_password(password.expose().to_string()).await?;
    match users::create(&db, &username, hash, args.role).await? {
        Some(user) => {
            tracing::info!(user_id = user.id, username = %username, role = %args.role, "user created");
            println!("Created {} ({})", username, args.role);
            Ok(())
        }
        None => bail!("the username {username} is taken"),
    }
}

async fn seed(settings: &Settings, args: &SeedArgs) -> anyhow::Result<()> {
    db::migrate(settings).await?;
    let db = db::connect(settings).await?;
    crate::startup::create_first_admin(&db).await?;
    let user = users::first(&db)
        .await?
        .context("no user to attribute the data to")?;
    let options = SeedOptions {
        students: args.students,
        payments_per_student: args.payments_per_student,
        seed: args.seed,
    };
    let summary = crate::ledger::seed::seed(&db, user.id, options).await?;
    println!(
        "Seeded {} students, {} charges and {} payments in {:.1} s (seed {})",
        summary.students,
        summary.charges,
        summary.payments,
        summary.elapsed.as_secs_f64(),
        args.seed
    );
    Ok(())
}

/// Prints the report; `Ok(false)` when the ledger disagrees with itself.
async fn check_ledger(settings: &Settings) -> anyhow::Result<bool> {
    let db = db::connect(settings).await?;
    let started = std::time::Instant::now();
    let report = crate::ledger::check::check(&db).await?;
    println!("{report}");
    println!("checked in {:.2} s", started.elapsed().as_secs_f64());
    if !report.is_clean() {
        tracing::error!(
            problems = report.mismatches.len(),
            "check-ledger found mismatches"
        );
    }
    Ok(report.is_clean())
}
