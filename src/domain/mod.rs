//! Parsed values: input becomes one of these at the edge, or is rejected with a message.
pub mod ledger;
pub mod money;
pub mod password;
pub mod role;
pub mod student;
pub mod text;
pub mod username;

pub use money::{Amount, Money};
pub use password::NewPassword;
pub use role::Role;
pub use username::Username;
