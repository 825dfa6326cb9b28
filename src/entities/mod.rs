//! SeaORM entities: the shape of each table, nothing more.
pub mod users;
