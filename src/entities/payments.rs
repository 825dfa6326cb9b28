//! `payments`: money received, each with a receipt number. Append-only; voided, never edited.
use sea_orm::entity::prelude::*;

use super::money::DbMoney;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "payments")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    pub student_id: i64,
    pub amount: DbMoney,
    pub method: String,
    pub reference: String,
    pub paid_on: Date,
    #[sea_orm(unique)]
    pub receipt_no: String,
    #[sea_orm(unique)]
    pub idempotency_key: String,
    pub created_by: i64,
    pub created_at: DateTimeUtc,
    pub voided_at: Option<DateTimeUtc>,
    pub voided_by: Option<i64>,
    pub void_reason: Option<String>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
