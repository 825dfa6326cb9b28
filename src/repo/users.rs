//! Queries on `users`.
use chrono::Utc;
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, DatabaseConnection, EntityTrait,
    PaginatorTrait, QueryFilter, QueryOrder,
};

use super::is_unique_violation;
use crate::{
    domain::{Role, Username},
    entities::users::{self, Entity as Users},
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

/// Inserts a user. `Ok(None)`: the username is taken (compared case-insensitively).
pub async fn create(
    db: &DatabaseConnection,
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
    match row.insert(db).await {
        Ok(user) => Ok(Some(user)),
        Err(err) if is_unique_violation(&err) => Ok(None),
        Err(err) => Err(err),
    }
}

pub async fn set_password_hash(
    db: &DatabaseConnection,
    user: &User,
    password_hash: String,
) -> Result<User, sea_orm::DbErr> {
    let mut row: users::ActiveModel = user.clone().into();
    row.password_hash = Set(password_hash);
    row.updated_at = Set(Utc::now());
    row.update(db).await
}

pub async fn set_role(
    db: &DatabaseConnection,
    user: &User,
    role: Role,
) -> Result<User, sea_orm::DbErr> {
    let mut row: users::ActiveModel = user.clone().into();
    row.role = Set(role.as_str().to_string());
    row.updated_at = Set(Utc::now());
    row.update(db).await
}

pub async fn set_active(
    db: &DatabaseConnection,
    user: &User,
    active: bool,
) -> Result<User, sea_orm::DbErr> {
    let mut row: users::ActiveModel = user.clone().into();
    row.active = Set(active);
    row.updated_at = Set(Utc::now());
    row.update(db).await
}
