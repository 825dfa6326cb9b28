//! Short free-text fields (names, descriptions, references): trimmed, bounded, no control characters.

/// Trims `input` and checks its length in characters. `min` 0 makes the field optional.
pub fn bounded(input: &str, label: &str, min: usize, max: usize) -> Result<String, String> {
    let text = input.trim();
    if text.chars().any(char::is_control) {
        return Err(format!("{label} cannot contain control characters."));
    }
    let count = text.chars().count();
    if count < min {
        return Err(if min == 1 {
            format!("{label} is required.")
        } else {
            format!("{label} needs at least {min} characters.")
        });
    }
    if count > max {
        return Err(format!("{label} has at most {max} characters."));
    }
    Ok(text.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trims_and_bounds() {
        assert_eq!(bounded("  Ann ", "Name", 1, 10).unwrap(), "Ann");
        assert!(
            bounded("   ", "Name", 1, 10)
                .unwrap_err()
                .contains("required")
        );
        assert!(bounded("x".repeat(11).as_str(), "Name", 1, 10).is_err());
        assert!(bounded("a\u{0}b", "Name", 1, 10).is_err());
        assert_eq!(bounded("", "Phone", 0, 10).unwrap(), "");
        assert_eq!(bounded("Zoë 😀", "Name", 1, 5).unwrap(), "Zoë 😀");
    }
}
