//! Staff roles: `viewer` reads; `bursar` also writes the ledger; `admin` also manages users.
use std::{fmt, str::FromStr};

use serde::{Deserialize, Serialize};

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Viewer,
    Bursar,
    Admin,
}

impl Role {
    pub const ALL: [Role; 3] = [Role::Admin, Role::Bursar, Role::Viewer];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Bursar => "bursar",
            Role::Admin => "admin",
        }
    }

    /// Students, charges, payments and voids.
    pub fn can_write(self) -> bool {
        self >= Role::Bursar
    }

    pub fn can_manage_users(self) -> bool {
        self == Role::Admin
    }
}

impl FromStr for Role {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.trim().to_ascii_lowercase().as_str() {
            "viewer" => Ok(Role::Viewer),
            "bursar" => Ok(Role::Bursar),
            "admin" => Ok(Role::Admin),
            _ => Err("The role must be admin, bursar or viewer.".into()),
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn permissions_grow_with_the_role() {
        assert!(!Role::Viewer.can_write());
        assert!(Role::Bursar.can_write() && !Role::Bursar.can_manage_users());
        assert!(Role::Admin.can_write() && Role::Admin.can_manage_users());
    }

    #[test]
    fn parses_names() {
        assert_eq!("Admin".parse::<Role>().unwrap(), Role::Admin);
        assert!("root".parse::<Role>().is_err());
    }
}
