//! Parsed values: input becomes one of these at the edge, or is rejected with a message.
pub mod password;
pub mod role;
pub mod username;

pub use password::NewPassword;
pub use role::Role;
pub use username::Username;
