//! Queries on `users`.
use chrono::Utc;
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, DatabaseConnection, DatabaseTransaction,
    EntityTrait, PaginatorTrait, QueryFilter, QueryOrder, TransactionTrait,
};

use super::is_unique_violation;
use crate::{
    domain::{Role, Username},
    entities::users::{self, Entity as Users},
    ledger::audit::{self, AuditEntry},
};

pub type User = users::Model;

impl User {
    /// The stored role; an unknown value (hand-edited row) reads as the least privileged.
    pub fn role(&self) -> Role {
        self.role.parse().unwrap_or(Role::Viewer)
    }
}

pub async fn find_by_id(db: &DatabaseConnection, id: i64) -> Result<Option<User>, sea_orm::DbErr> {
    Users::find_by_id(id).one(db).await
}

pub async fn find_by_username(
    db: &DatabaseConnection,
    username: &Username,
) -> Result<Option<User>, sea_orm::DbErr> {
    Users::find()
        .filter(users::Column::Username.eq(username.as_str()))
        .one(db)
        .await
}

pub async fn count(db: &DatabaseConnection) -> Result<u64, sea_orm::DbErr> {
    Users::find().count(db).await
}

/// The oldest account: who seeded data is attributed to.
pub async fn first(db: &DatabaseConnection) -> Result<Option<User>, sea_orm::DbErr> {
    Users::find().order_by_asc(users::Column::Id).one(db).await
}

pub async fn list(db: &DatabaseConnection) -> Result<Vec<User>, sea_orm::DbErr> {
    Users::find()
        .order_by_asc(users::Column::Username)
        .all(db)
        .await
}

/// What the audit log keeps of an account: never the password hash.
fn audit_view(user: &User) -> serde_json::Value {
    serde_json::json!({"id": user.id, "username": user.username, "role": user.role, "active": user.active})
}

async fn audited(
    txn: &DatabaseTransaction,
    actor: Option<i64>,
    action: &str,
    before: Option<&User>,
    after: &User,
) -> Result<(), sea_orm::DbErr> {
    audit::record(
        txn,
        AuditEntry {
            user_id: actor,
            action,
            entity: "user",
            entity_id: Some(after.id),
            before: before.map(audit_view),
            after: Some(audit_view(after)),
        },
    )
    .await
}

/// Inserts a user. `Ok(None)`: the username is taken (compared case-insensitively).
pub async fn create(
    db: &DatabaseConnection,
    username: &Username,
    password_hash: String,
    role: Role,
) -> Result<Option<User>, sea_orm::DbErr> {
    create_by(db, None, username, password_hash, role).await
}

/// Inserts a user on behalf of `actor` (`None`: the system).
pub async fn create_by(
    db: &DatabaseConnection,
    actor: Option<i64>,
    username: &Username,
    password_hash: String,
    role: Role,
) -> Result<Option<User>, sea_orm::DbErr> {
    let now = Utc::now();
    let row = users::ActiveModel {
        username: Set(username.as_str().to_string()),
        password_hash: Set(password_hash),
        role: Set(role.as_str().to_string()),
        active: Set(true),
        created_at: Set(now),
        updated_at: Set(now),
        ..Default::default()
    };
    let txn = db.begin().await?;
    let user = match row.insert(&txn).await {
        Ok(user) => user,
        Err(err) if is_unique_violation(&err) => return Ok(None),
        Err(err) => return Err(err),
    };
    audited(&txn, actor, "user.create", None, &user).await?;
    txn.commit().await?;
    Ok(Some(user))
}

/// One change to an account, audited in the same transaction.
pub enum Change {
    PasswordHash(String),
    Role(Role),
    Active(bool),
}

pub async fn change(
    db: &DatabaseConnection,
    actor: Option<i64>,
    user: &User,
    change: Change,
) -> Result<User, sea_orm::DbErr> {
    let mut row: users::ActiveModel = user.clone().into();
    let action = match change {
        Change::PasswordHash(hash) => {
            row.password_hash = Set(hash);
            "user.password"
        }
        Change::Role(role) => {
            row.role = Set(role.as_str().to_string());
            "user.role"
        }
        Change::Active(active) => {
            row.active = Set(active);
            if active {
                "user.activate"
            } else {
                "user.deactivate"
            }
        }
    };
    row.updated_at = Set(Utc::now());
    let txn = db.begin().await?;
    let after = row.update(&txn).await?;
    audited(&txn, actor, action, Some(user), &after).await?;
    txn.commit().await?;
    Ok(after)
}

pub async fn set_password_hash(
    db: &DatabaseConnection,
    user: &User,
    password_hash: String,
) -> Result<User, sea_orm::DbErr> {
    change(db, Some(user.id), user, Change::PasswordHash(password_hash)).await
}

pub async fn set_role(
    db: &DatabaseConnection,
    user: &User,
    role: Role,
) -> Result<User, sea_orm::DbErr> {
    change(db, None, user, Change::Role(role)).await
}

pub async fn set_active(
    db: &DatabaseConnection,
    user: &User,
    active: bool,
) -> Result<User, sea_orm::DbErr> {
    change(db, None, user, Change::Active(active)).await
}
