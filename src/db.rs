//! Database connections and migrations (PostgreSQL in production, SQLite embedded).
use std::time::Duration;

use anyhow::Context;
use migration::{Migrator, MigratorTrait};
use sea_orm::{
    ConnectOptions, ConnectionTrait, Database, DatabaseConnection, DbBackend, Statement,
};

use crate::config::{Settings, redact_url};

/// Any number that is ours alone: the advisory lock serialising migrations
/// when several instances start at once.
const MIGRATION_LOCK: i64 = 0x6275_7273_6172; // "bursar"

fn options(url: &str, max_connections: u32) -> ConnectOptions {
    let mut opt = ConnectOptions::new(url.to_string());
    opt.max_connections(max_connections)
        .min_connections(1)
        .connect_timeout(Duration::from_secs(5))
        .acquire_timeout(Duration::from_secs(5))
        // Statements are logged (without their values) only when slow.
        .sqlx_logging(true)
        .sqlx_logging_level(log::LevelFilter::Trace)
        .sqlx_slow_statements_logging_settings(log::LevelFilter::Warn, Duration::from_millis(500))
        // Searches bind their `LIKE 'abc%'` patterns as parameters; a cached
        // generic plan cannot see the prefix and scans the whole table, so
        // every execution is planned with its own values.
        .map_sqlx_postgres_opts(|o| o.options([("plan_cache_mode", "force_custom_plan")]))
        .map_sqlx_sqlite_opts(|o| {
            o.journal_mode(sea_orm::sqlx::sqlite::SqliteJournalMode::Wal)
                .busy_timeout(Duration::from_secs(10))
                .foreign_keys(true)
        });
    opt
}

/// Opens the application's connection pool.
pub async fn connect(settings: &Settings) -> anyhow::Result<DatabaseConnection> {
    let pool = if settings.is_embedded_database() {
        settings.db_pool_size.min(4)
    } else {
        settings.db_pool_size
    };
    Database::connect(options(&settings.database_url, pool))
        .await
        .with_context(|| {
            format!(
                "failed to connect to {}",
                redact_url(&settings.database_url)
            )
        })
}

/// Applies pending migrations. On PostgreSQL one connection holds an advisory
/// lock for the whole run, so instances starting together take turns and
/// all but the first find nothing to do.
pub async fn migrate(settings: &Settings) -> anyhow::Result<()> {
    let db = Database::connect(options(&settings.database_url, 1))
        .await
        .with_context(|| {
            format!(
                "failed to connect to {}",
                redact_url(&settings.database_url)
            )
        })?;
    let postgres = db.get_database_backend() == DbBackend::Postgres;
    if postgres {
        db.execute_raw(Statement::from_sql_and_values(
            DbBackend::Postgres,
            "SELECT pg_advisory_lock($1)",
            [MIGRATION_LOCK.into()],
        ))
        .await
        .context("failed to take the migration lock")?;
    }
    let outcome = Migrator::up(&db, None)
        .await
        .context("failed to apply migrations");
    if postgres {
        let _ = db
            .execute_raw(Statement::from_sql_and_values(
                DbBackend::Postgres,
                "SELECT pg_advisory_unlock($1)",
                [MIGRATION_LOCK.into()],
            ))
            .await;
    }
    let _ = db.close().await;
    outcome
}

/// Answers when the database does.
pub async fn ping(db: &DatabaseConnection) -> Result<(), sea_orm::DbErr> {
    db.ping().await
}
