//! Students and the ledger: charges, payments, receipts, daily totals, and the audit log.
//!
//! Money is exact everywhere (M1): `NUMERIC(20,2)` on PostgreSQL, integer
//! minor units (cents) on SQLite, whose own NUMERIC would store floats.
use sea_orm_migration::{prelude::*, schema::*, sea_orm::DbBackend};

use crate::m20261204_000001_create_users::Users;

#[derive(DeriveMigrationName)]
pub struct Migration;

/// A money column, exact on both databases, defaulting to zero.
fn money(manager: &SchemaManager, column: impl IntoIden) -> ColumnDef {
    let mut def = ColumnDef::new(column);
    match manager.get_database_backend() {
        DbBackend::Sqlite => def.big_integer(),
        _ => def.decimal_len(20, 2),
    };
    def.not_null().default(0).to_owned()
}

fn index(name: &str, table: impl IntoIden, columns: &[&'static str]) -> IndexCreateStatement {
    let mut statement = Index::create();
    statement.name(name).table(table).if_not_exists();
    for column in columns {
        statement.col(Alias::new(*column));
    }
    statement.to_owned()
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Students::Table)
                    .if_not_exists()
                    .col(big_pk_auto(Students::Id))
                    .col(string_len_uniq(Students::AdmissionNo, 32))
                    .col(string_len(Students::FirstName, 100))
                    .col(string_len(Students::LastName, 100))
                    .col(string_len(Students::ClassName, 50))
                    .col(string_len(Students::GuardianName, 200).default(""))
                    .col(string_len(Students::GuardianPhone, 30).default(""))
                    .col(string_len(Students::GuardianEmail, 200).default(""))
                    .col(string_len(Students::Status, 10).default("active"))
                    // Kept equal to the ledger's sums in the same transaction as
                    // every entry, so lists sort and page by balance without
                    // adding up a million rows; check-ledger verifies them.
                    .col(money(manager, Students::ChargedTotal))
                    .col(money(manager, Students::PaidTotal))
                    .col(money(manager, Students::Balance))
                    .col(timestamp_with_time_zone(Students::CreatedAt))
                    .col(timestamp_with_time_zone(Students::UpdatedAt))
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(Charges::Table)
                    .if_not_exists()
                    .col(big_pk_auto(Charges::Id))
                    .col(big_integer(Charges::StudentId))
                    .col(money(manager, Charges::Amount))
                    .col(string_len(Charges::Description, 200))
                    .col(date_null(Charges::DueOn))
                    // The accounting day the charge counts on (its day in `ledger_daily`).
                    .col(date(Charges::PostedOn))
                    .col(big_integer(Charges::CreatedBy))
                    .col(timestamp_with_time_zone(Charges::CreatedAt))
                    .col(timestamp_with_time_zone_null(Charges::VoidedAt))
                    .col(big_integer_null(Charges::VoidedBy))
                    .col(string_len_null(Charges::VoidReason, 500))
                    .foreign_key(
                        ForeignKey::create()
                            .from(Charges::Table, Charges::StudentId)
                            .to(Students::Table, Students::Id),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .from(Charges::Table, Charges::CreatedBy)
                            .to(Users::Table, Users::Id),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .from(Charges::Table, Charges::VoidedBy)
                            .to(Users::Table, Users::Id),
                    )
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(Payments::Table)
                    .if_not_exists()
                    .col(big_pk_auto(Payments::Id))
                    .col(big_integer(Payments::StudentId))
                    .col(money(manager, Payments::Amount))
                    .col(string_len(Payments::Method, 10))
                    .col(string_len(Payments::Reference, 100).default(""))
                    .col(date(Payments::PaidOn))
                    .col(string_len_uniq(Payments::ReceiptNo, 20))
                    // The database, not luck, makes a repeated submission
                    // record one payment (M6).
                    .col(string_len_uniq(Payments::IdempotencyKey, 100))
                    .col(big_integer(Payments::CreatedBy))
                    .col(timestamp_with_time_zone(Payments::CreatedAt))
                    .col(timestamp_with_time_zone_null(Payments::VoidedAt))
                    .col(big_integer_null(Payments::VoidedBy))
                    .col(string_len_null(Payments::VoidReason, 500))
                    .foreign_key(
                        ForeignKey::create()
                            .from(Payments::Table, Payments::StudentId)
                            .to(Students::Table, Students::Id),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .from(Payments::Table, Payments::CreatedBy)
                            .to(Users::Table, Users::Id),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .from(Payments::Table, Payments::VoidedBy)
                            .to(Users::Table, Users::Id),
                    )
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(ReceiptCounters::Table)
                    .if_not_exists()
                    .col(integer(ReceiptCounters::Year).primary_key())
                    .col(big_integer(ReceiptCounters::LastSeq))
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(LedgerDaily::Table)
                    .if_not_exists()
                    .col(date(LedgerDaily::Day).primary_key())
                    .col(money(manager, LedgerDaily::Charged))
                    .col(money(manager, LedgerDaily::Paid))
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(AuditLog::Table)
                    .if_not_exists()
                    .col(big_pk_auto(AuditLog::Id))
                    .col(big_integer_null(AuditLog::UserId))
                    .col(string_len(AuditLog::Action, 40))
                    .col(string_len(AuditLog::Entity, 20))
                    .col(big_integer_null(AuditLog::EntityId))
                    .col(text_null(AuditLog::Before))
                    .col(text_null(AuditLog::After))
                    .col(timestamp_with_time_zone(AuditLog::CreatedAt))
                    .foreign_key(
                        ForeignKey::create()
                            .from(AuditLog::Table, AuditLog::UserId)
                            .to(Users::Table, Users::Id),
                    )
                    .to_owned(),
            )
            .await?;

        for statement in [
            index(
                "students_name",
                Students::Table,
                &["last_name", "first_name", "id"],
            ),
            index(
                "students_class_name",
                Students::Table,
                &["class_name", "last_name", "first_name"],
            ),
            index("students_status", Students::Table, &["status"]),
            index("students_balance", Students::Table, &["balance", "id"]),
            index("charges_student", Charges::Table, &["student_id", "id"]),
            index("payments_student", Payments::Table, &["student_id", "id"]),
            index("payments_paid_on", Payments::Table, &["paid_on", "id"]),
            index("payments_created_at", Payments::Table, &["created_at"]),
            index("payments_method", Payments::Table, &["method", "paid_on"]),
            index(
                "audit_log_entity",
                AuditLog::Table,
                &["entity", "entity_id"],
            ),
            index("audit_log_created_at", AuditLog::Table, &["created_at"]),
        ] {
            manager.create_index(statement).await?;
        }

        // Case-insensitive prefix search by name or admission number (SQLite
        // scans: an embedded school is small).
        if manager.get_database_backend() == DbBackend::Postgres {
            let db = manager.get_connection();
            for sql in [
                "CREATE INDEX IF NOT EXISTS students_last_name_prefix ON students (lower(last_name) text_pattern_ops)",
                "CREATE INDEX IF NOT EXISTS students_first_name_prefix ON students (lower(first_name) text_pattern_ops)",
                "CREATE INDEX IF NOT EXISTS students_admission_no_prefix ON students (admission_no text_pattern_ops)",
                "CREATE INDEX IF NOT EXISTS payments_reference_prefix ON payments (lower(reference) text_pattern_ops)",
            ] {
                db.execute_unprepared(sql).await?;
            }
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for table in [
            AuditLog::Table.into_iden(),
            LedgerDaily::Table.into_iden(),
            ReceiptCounters::Table.into_iden(),
            Payments::Table.into_iden(),
            Charges::Table.into_iden(),
            Students::Table.into_iden(),
        ] {
            manager
                .drop_table(Table::drop().table(table).if_exists().to_owned())
                .await?;
        }
        Ok(())
    }
}

#[derive(DeriveIden)]
pub enum Students {
    Table,
    Id,
    AdmissionNo,
    FirstName,
    LastName,
    ClassName,
    GuardianName,
    GuardianPhone,
    GuardianEmail,
    Status,
    ChargedTotal,
    PaidTotal,
    Balance,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden)]
pub enum Charges {
    Table,
    Id,
    StudentId,
    Amount,
    Description,
    DueOn,
    PostedOn,
    CreatedBy,
    CreatedAt,
    VoidedAt,
    VoidedBy,
    VoidReason,
}

#[derive(DeriveIden)]
pub enum Payments {
    Table,
    Id,
    StudentId,
    Amount,
    Method,
    Reference,
    PaidOn,
    ReceiptNo,
    IdempotencyKey,
    CreatedBy,
    CreatedAt,
    VoidedAt,
    VoidedBy,
    VoidReason,
}

#[derive(DeriveIden)]
pub enum ReceiptCounters {
    Table,
    Year,
    LastSeq,
}

#[derive(DeriveIden)]
pub enum LedgerDaily {
    Table,
    Day,
    Charged,
    Paid,
}

#[derive(DeriveIden)]
pub enum AuditLog {
    Table,
    Id,
    UserId,
    Action,
    Entity,
    EntityId,
    Before,
    After,
    CreatedAt,
}
