//! A staff username: 3–64 characters of letters, digits, `.`, `_` or `-`, compared case-insensitively.
use std::fmt;

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Username(String);

impl Username {
    /// Trims, lower-cases and checks a username as typed.
    pub fn parse(input: &str) -> Result<Self, String> {
        let name = input.trim().to_lowercase();
        if name.chars().count() < 3 {
            return Err("A username has at least 3 characters.".into());
        }
        if name.chars().count() > 64 {
            return Err("A username has at most 64 characters.".into());
        }
        if !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
        {
            return Err("Use only letters, digits, dots, dashes and underscores.".into());
        }
        Ok(Self(name))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Username {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_and_normalises() {
        assert_eq!(Username::parse("  Jane.Doe ").unwrap().as_str(), "jane.doe");
        assert_eq!(Username::parse("a_b-c9").unwrap().as_str(), "a_b-c9");
    }

    #[test]
    fn rejects_bad_names() {
        for bad in [
            "",
            "ab",
            "has space",
            "semi;colon",
            "<script>",
            "émile",
            &"x".repeat(65),
        ] {
            assert!(Username::parse(bad).is_err(), "{bad:?} accepted");
        }
    }
}
