//! What a student record must look like before it is stored.
use std::{collections::BTreeMap, fmt, str::FromStr};

use serde::{Deserialize, Serialize};

use super::text::bounded;

/// A school's admission number: 1–32 letters, digits, `-`, `/` or `.`,
/// stored upper-case so that `adm-001` and `ADM-001` are the same student.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize)]
pub struct AdmissionNo(String);

impl AdmissionNo {
    pub fn parse(input: &str) -> Result<Self, String> {
        let text = input.trim().to_uppercase();
        if text.is_empty() {
            return Err("Admission number is required.".into());
        }
        if text.chars().count() > 32 {
            return Err("Admission number has at most 32 characters.".into());
        }
        if !text
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '/' | '.'))
        {
            return Err(
                "Use only letters, digits, '-', '/' and '.' in an admission number.".into(),
            );
        }
        Ok(Self(text))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for AdmissionNo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StudentStatus {
    Active,
    Left,
}

impl StudentStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            StudentStatus::Active => "active",
            StudentStatus::Left => "left",
        }
    }
}

impl FromStr for StudentStatus {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.trim().to_ascii_lowercase().as_str() {
            "active" => Ok(StudentStatus::Active),
            "left" => Ok(StudentStatus::Left),
            _ => Err("Status must be active or left.".into()),
        }
    }
}

/// The fields of a student form or API body, as typed.
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
#[serde(default)]
pub struct StudentInput {
    pub admission_no: String,
    pub first_name: String,
    pub last_name: String,
    pub class_name: String,
    pub guardian_name: String,
    pub guardian_phone: String,
    pub guardian_email: String,
    pub status: String,
}

/// A student record that passed every check.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StudentFields {
    pub admission_no: AdmissionNo,
    pub first_name: String,
    pub last_name: String,
    pub class_name: String,
    pub guardian_name: String,
    pub guardian_phone: String,
    pub guardian_email: String,
    pub status: StudentStatus,
}

/// Field name → message, in form order.
pub type FieldErrors = BTreeMap<String, String>;

fn phone(input: &str) -> Result<String, String> {
    let text = bounded(input, "Guardian phone", 0, 30)?;
    if !text
        .chars()
        .all(|c| c.is_ascii_digit() || matches!(c, '+' | '-' | ' ' | '(' | ')' | '.'))
    {
        return Err("A phone number has digits, spaces and + - ( ) only.".into());
    }
    Ok(text)
}

fn email(input: &str) -> Result<String, String> {
    let text = bounded(input, "Guardian email", 0, 200)?;
    if text.is_empty() {
        return Ok(text);
    }
    let valid = match text.split_once('@') {
        Some((local, domain)) => {
            !local.is_empty()
                && domain.contains('.')
                && !domain.starts_with('.')
                && !domain.ends_with('.')
                && !text.contains(char::is_whitespace)
                && !domain.contains('@')
        }
        None => false,
    };
    if valid {
        Ok(text)
    } else {
        Err("This is not an email address.".into())
    }
}

impl StudentInput {
    /// Checks every field and reports every problem at once.
    pub fn parse(&self) -> Result<StudentFields, FieldErrors> {
        let mut errors = FieldErrors::new();
        let mut check = |field: &str, outcome: Result<String, String>| match outcome {
            Ok(value) => value,
            Err(message) => {
                errors.insert(field.to_string(), message);
                String::new()
            }
        };
        let admission_no = check(
            "admission_no",
            AdmissionNo::parse(&self.admission_no).map(|a| a.0),
        );
        let first_name = check(
            "first_name",
            bounded(&self.first_name, "First name", 1, 100),
        );
        let last_name = check("last_name", bounded(&self.last_name, "Last name", 1, 100));
        let class_name = check("class_name", bounded(&self.class_name, "Class", 1, 50));
        let guardian_name = check(
            "guardian_name",
            bounded(&self.guardian_name, "Guardian name", 0, 200),
        );
        let guardian_phone = check("guardian_phone", phone(&self.guardian_phone));
        let guardian_email = check("guardian_email", email(&self.guardian_email));
        let status = if self.status.trim().is_empty() {
            StudentStatus::Active
        } else {
            match self.status.parse() {
                Ok(status) => status,
                Err(message) => {
                    errors.insert("status".into(), message);
                    StudentStatus::Active
                }
            }
        };
        if !errors.is_empty() {
            return Err(errors);
        }
        Ok(StudentFields {
            admission_no: AdmissionNo(admission_no),
            first_name,
            last_name,
            class_name,
            guardian_name,
            guardian_phone,
            guardian_email,
            status,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input() -> StudentInput {
        StudentInput {
            admission_no: " adm-001 ".into(),
            first_name: "Ann".into(),
            last_name: "O'Neil".into(),
            class_name: "Grade 4".into(),
            guardian_email: "parent@example.org".into(),
            guardian_phone: "+254 700 000-000".into(),
            ..Default::default()
        }
    }

    #[test]
    fn parses_a_good_record() {
        let fields = input().parse().unwrap();
        assert_eq!(fields.admission_no.as_str(), "ADM-001");
        assert_eq!(fields.status, StudentStatus::Active);
    }

    #[test]
    fn reports_every_bad_field() {
        let bad = StudentInput {
            admission_no: "no spaces allowed".into(),
            first_name: "".into(),
            class_name: "x".repeat(51),
            guardian_email: "not-an-email".into(),
            guardian_phone: "call me".into(),
            status: "graduated".into(),
            ..input()
        };
        let errors = bad.parse().unwrap_err();
        for field in [
            "admission_no",
            "first_name",
            "class_name",
            "guardian_email",
            "guardian_phone",
            "status",
        ] {
            assert!(
                errors.contains_key(field),
                "{field} not reported: {errors:?}"
            );
        }
        assert!(!errors.contains_key("last_name"));
    }
}
