//! Who is signed in: password hashing, login throttling, the `CurrentUser` extractor, CSRF.
pub mod csrf;
pub mod login;
pub mod password;
pub mod throttle;
pub mod user;

pub use csrf::{CsrfForm, CsrfHeader, CsrfToken};
pub use throttle::LoginThrottle;
pub use user::{CurrentUser, MaybeUser};
