//! SeaORM entities: the shape of each table, nothing more.
pub mod audit_log;
pub mod charges;
pub mod money;
pub mod payments;
pub mod students;
pub mod users;
