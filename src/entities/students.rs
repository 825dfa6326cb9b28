//! `students`: one row per student, with cached ledger totals.
use sea_orm::entity::prelude::*;

use super::money::DbMoney;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "students")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    #[sea_orm(unique)]
    pub admission_no: String,
    pub first_name: String,
    pub last_name: String,
    pub class_name: String,
    pub guardian_name: String,
    pub guardian_phone: String,
    pub guardian_email: String,
    pub status: String,
    pub charged_total: DbMoney,
    pub paid_total: DbMoney,
    pub balance: DbMoney,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
