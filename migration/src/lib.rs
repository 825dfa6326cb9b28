//! Schema migrations for Bursar: append-only, one file per change, each reversible.
pub use sea_orm_migration::prelude::*;

mod m20261204_000001_create_users;
mod m20261204_000002_create_ledger;

pub struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(m20261204_000001_create_users::Migration),
            Box::new(m20261204_000002_create_ledger::Migration),
        ]
    }
}
