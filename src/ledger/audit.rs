//! The audit trail: one row per mutation, written in the mutation's own transaction.
use chrono::Utc;
use sea_orm::{ActiveModelTrait, ActiveValue::Set, ConnectionTrait};
use serde_json::Value;

use crate::entities::audit_log;

/// What changed and who changed it (`user_id` `None`: the system, e.g. seeding).
pub struct AuditEntry<'a> {
    pub user_id: Option<i64>,
    pub action: &'a str,
    pub entity: &'a str,
    pub entity_id: Option<i64>,
    pub before: Option<Value>,
    pub after: Option<Value>,
}

pub async fn record(
    db: &impl ConnectionTrait,
    entry: AuditEntry<'_>,
) -> Result<(), sea_orm::DbErr> {
    audit_log::ActiveModel {
        user_id: Set(entry.user_id),
        action: Set(entry.action.to_string()),
        entity: Set(entry.entity.to_string()),
        entity_id: Set(entry.entity_id),
        before: Set(entry.before.map(|v| v.to_string())),
        after: Set(entry.after.map(|v| v.to_string())),
        created_at: Set(Utc::now()),
        ..Default::default()
    }
    .insert(db)
    .await?;
    Ok(())
}
