//! `charges`: fees posted to a student. Append-only; a mistake is voided, never edited.
use sea_orm::entity::prelude::*;

use super::money::DbMoney;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "charges")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    pub student_id: i64,
    pub amount: DbMoney,
    pub description: String,
    pub due_on: Option<Date>,
    pub posted_on: Date,
    pub created_by: i64,
    pub created_at: DateTimeUtc,
    pub voided_at: Option<DateTimeUtc>,
    pub voided_by: Option<i64>,
    pub void_reason: Option<String>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
