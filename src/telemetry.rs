//! The tracing subscriber: console plus rotating files (`bursar.log*`, `sessions.log*`).
use std::io::IsTerminal;

use anyhow::Context;
use tracing::{Level, Subscriber};
use tracing_appender::{
    non_blocking::{NonBlockingBuilder, WorkerGuard},
    rolling::{RollingFileAppender, Rotation},
};
use tracing_subscriber::{
    EnvFilter, Layer, Registry,
    field::RecordFields,
    filter::{FilterFn, LevelFilter, Targets},
    fmt::{
        FormatFields,
        format::{DefaultFields, Writer},
    },
    layer::SubscriberExt,
    registry::LookupSpan,
};

use crate::config::{LogFormat, LogRotation, LogSettings};

/// Target of the session layer's events; `sessions.log` collects its warnings.
pub const SESSION_TARGET: &str = "bursar::session";

/// Keeps the background log writers alive; dropping it flushes them.
/// Hold it for as long as the process runs.
#[must_use = "dropping the guard stops the log writers"]
pub struct TelemetryGuard {
    _writers: Vec<WorkerGuard>,
}

/// Field formatting for one output. tracing-subscriber caches formatted span
/// fields per formatter *type*, so outputs sharing a type would share (and
/// duplicate, and colour) each other's fields; a distinct `N` per output
/// keeps them apart.
struct Fields<const N: u8>(DefaultFields);

impl<const N: u8> Fields<N> {
    fn new() -> Self {
        Fields(DefaultFields::new())
    }
}

impl<'writer, const N: u8> FormatFields<'writer> for Fields<N> {
    fn format_fields<R: RecordFields>(
        &self,
        writer: Writer<'writer>,
        fields: R,
    ) -> std::fmt::Result {
        self.0.format_fields(writer, fields)
    }
}

/// Where log lines go besides the files.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Console {
    On,
    Off,
}

/// Builds the subscriber and installs it as the global default.
pub fn init(settings: &LogSettings, console: Console) -> anyhow::Result<TelemetryGuard> {
    let (subscriber, guard) = build(settings, console)?;
    tracing::subscriber::set_global_default(subscriber)
        .context("failed to install the tracing subscriber")?;
    Ok(guard)
}

fn rolling(settings: &LogSettings, name: &str) -> anyhow::Result<RollingFileAppender> {
    let rotation = match settings.rotation {
        LogRotation::Hourly => Rotation::HOURLY,
        LogRotation::Daily => Rotation::DAILY,
        LogRotation::Never => Rotation::NEVER,
    };
    RollingFileAppender::builder()
        .rotation(rotation)
        .filename_prefix(name)
        .max_log_files(settings.keep)
        .build(&settings.dir)
        .with_context(|| format!("failed to open {name} in {}", settings.dir.display()))
}

/// Libraries whose INFO lines are noise in production logs.
fn file_targets() -> Targets {
    Targets::new()
        .with_default(Level::INFO)
        .with_target("sqlx", Level::WARN)
        .with_target("sea_orm", Level::WARN)
        .with_target("sea_orm_migration", Level::WARN)
        .with_target("fred", Level::WARN)
        .with_target("tower_sessions", Level::WARN)
}

pub fn build(
    settings: &LogSettings,
    console: Console,
) -> anyhow::Result<(
    impl Subscriber + Send + Sync + for<'a> LookupSpan<'a>,
    TelemetryGuard,
)> {
    std::fs::create_dir_all(&settings.dir)
        .with_context(|| format!("failed to create log directory {}", settings.dir.display()))?;

    let (main_writer, main_guard) = NonBlockingBuilder::default()
        .thread_name("bursar-log")
        .finish(rolling(settings, "bursar.log")?);
    // Interruptions are rare and each one matters: never drop them.
    let (sessions_writer, sessions_guard) = NonBlockingBuilder::default()
        .lossy(false)
        .thread_name("bursar-sessions-log")
        .finish(rolling(settings, "sessions.log")?);

    let main_file = tracing_subscriber::fmt::layer()
        .fmt_fields(Fields::<1>::new())
        .with_ansi(false)
        .with_writer(main_writer)
        .with_filter(file_targets());
    let sessions_file = tracing_subscriber::fmt::layer()
        .fmt_fields(Fields::<2>::new())
        .with_ansi(false)
        .with_writer(sessions_writer)
        // Spans pass so each line carries its request's id and route.
        .with_filter(FilterFn::new(|meta| {
            meta.is_span() || (meta.target() == SESSION_TARGET && *meta.level() <= Level::WARN)
        }));

    let console_layer = (console == Console::On).then(|| {
        let filter = EnvFilter::builder()
            .with_default_directive(LevelFilter::INFO.into())
            .from_env_lossy()
            .add_directive("sqlx=warn".parse().expect("static directive"))
            .add_directive("sea_orm=warn".parse().expect("static directive"))
            .add_directive("sea_orm_migration=warn".parse().expect("static directive"));
        match settings.format {
            LogFormat::Text => tracing_subscriber::fmt::layer()
                .fmt_fields(Fields::<0>::new())
                .with_ansi(std::io::stdout().is_terminal())
                .with_filter(filter)
                .boxed(),
            LogFormat::Json => tracing_subscriber::fmt::layer()
                .json()
                .with_current_span(true)
                .with_filter(filter)
                .boxed(),
        }
    });

    let subscriber = Registry::default()
        .with(console_layer)
        .with(main_file)
        .with(sessions_file);
    Ok((
        subscriber,
        TelemetryGuard {
            _writers: vec![main_guard, sessions_guard],
        },
    ))
}
