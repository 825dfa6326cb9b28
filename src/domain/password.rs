//! A new password as chosen by a person: long enough, not absurdly long. Never logged.
use std::fmt;

pub struct NewPassword(String);

pub const MIN_PASSWORD_CHARS: usize = 10;
/// argon2 hashes any length, but a megabyte "password" is an attack, not a choice.
pub const MAX_PASSWORD_BYTES: usize = 1024;

impl NewPassword {
    pub fn parse(input: String) -> Result<Self, String> {
        if input.chars().count() < MIN_PASSWORD_CHARS {
            return Err(format!(
                "A password has at least {MIN_PASSWORD_CHARS} characters."
            ));
        }
        if input.len() > MAX_PASSWORD_BYTES {
            return Err(format!(
                "A password has at most {MAX_PASSWORD_BYTES} bytes."
            ));
        }
        if input.trim().is_empty() {
            return Err("A password cannot be only spaces.".into());
        }
        Ok(Self(input))
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for NewPassword {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("NewPassword(***)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn length_rules() {
        assert!(NewPassword::parse("short".into()).is_err());
        assert!(NewPassword::parse(" ".repeat(12)).is_err());
        assert!(NewPassword::parse("x".repeat(2000)).is_err());
        assert!(NewPassword::parse("correct horse".into()).is_ok());
    }

    #[test]
    fn debug_hides_the_password() {
        let p = NewPassword::parse("correct horse battery".into()).unwrap();
        assert!(!format!("{p:?}").contains("horse"));
    }
}
