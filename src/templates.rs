//! Tera templates, compiled into the binary so a deployment is one file.
use std::sync::LazyLock;

use axum::{http::StatusCode, response::Html};
use serde::Serialize;
use tera::{Context, Tera};

/// Every template, by name. Names keep the `.html` suffix: Tera escapes
/// HTML by suffix, and that must never be switched off.
const TEMPLATES: &[(&str, &str)] = &[
    ("base.html", include_str!("../templates/base.html")),
    ("error.html", include_str!("../templates/error.html")),
    ("login.html", include_str!("../templates/login.html")),
    (
        "dashboard.html",
        include_str!("../templates/dashboard.html"),
    ),
    (
        "account/password.html",
        include_str!("../templates/account/password.html"),
    ),
    (
        "partials/pager.html",
        include_str!("../templates/partials/pager.html"),
    ),
    (
        "students/list.html",
        include_str!("../templates/students/list.html"),
    ),
    (
        "students/show.html",
        include_str!("../templates/students/show.html"),
    ),
    (
        "students/form.html",
        include_str!("../templates/students/form.html"),
    ),
    (
        "students/import.html",
        include_str!("../templates/students/import.html"),
    ),
    (
        "payments/list.html",
        include_str!("../templates/payments/list.html"),
    ),
    (
        "payments/receipt.html",
        include_str!("../templates/payments/receipt.html"),
    ),
    (
        "users/list.html",
        include_str!("../templates/users/list.html"),
    ),
];

/// `{{ amount | money }}`: "1234567.50" shown as "1,234,567.50". Money
/// reaches templates as exact decimal strings; this only groups digits.
fn money(text: &str, _: tera::Kwargs, _: &tera::State) -> String {
    match text.parse::<rust_decimal::Decimal>() {
        Ok(value) => crate::domain::Money::new(value).grouped(),
        Err(_) => text.to_string(),
    }
}

/// `{{ created_at | when }}`: an RFC 3339 timestamp as "2026-12-04 09:30 UTC".
fn when(text: &str, _: tera::Kwargs, _: &tera::State) -> String {
    chrono::DateTime::parse_from_rfc3339(text)
        .map(|t| {
            t.with_timezone(&chrono::Utc)
                .format("%Y-%m-%d %H:%M UTC")
                .to_string()
        })
        .unwrap_or_else(|_| text.to_string())
}

fn engine() -> Tera {
    let mut tera = Tera::new();
    tera.register_filter("money", money);
    tera.register_filter("when", when);
    tera.add_raw_templates(TEMPLATES.iter().copied())
        .expect("templates are checked by the unit test below");
    tera
}

static TERA: LazyLock<Tera> = LazyLock::new(engine);

/// Renders a page. A template error is a bug; it becomes a 500 with the cause logged.
pub fn render(
    name: &str,
    context: &impl Serialize,
) -> Result<Html<String>, crate::error::AppError> {
    let context = Context::from_serialize(context)
        .map_err(|e| anyhow::anyhow!("template context for {name}: {e}"))?;
    TERA.render(name, &context)
        .map(Html)
        .map_err(|e| crate::error::AppError::Internal(anyhow::anyhow!("rendering {name}: {e:?}")))
}

/// The site's error page. Falls back to plain text if the template itself fails.
pub fn error_page(status: StatusCode, message: &str) -> String {
    let mut context = Context::new();
    context.insert("status", &status.as_u16());
    context.insert("title", status.canonical_reason().unwrap_or("Error"));
    context.insert("message", message);
    TERA.render("error.html", &context).unwrap_or_else(|e| {
        tracing::error!(error = ?e, "error page failed to render");
        let mut escaped = Vec::new();
        let _ = tera::escape_html(message, &mut escaped);
        format!("{} {}", status.as_u16(), String::from_utf8_lossy(&escaped))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_template_file_is_registered() {
        let mut files = Vec::new();
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("templates");
        let mut dirs = vec![root.clone()];
        while let Some(dir) = dirs.pop() {
            for entry in std::fs::read_dir(dir).unwrap().flatten() {
                let path = entry.path();
                if path.is_dir() {
                    dirs.push(path);
                } else {
                    files.push(
                        path.strip_prefix(&root)
                            .unwrap()
                            .to_string_lossy()
                            .replace('\\', "/"),
                    );
                }
            }
        }
        for file in files {
            assert!(
                TEMPLATES.iter().any(|(name, _)| *name == file),
                "templates/{file} is not in TEMPLATES"
            );
        }
    }

    #[test]
    fn every_template_parses() {
        engine();
    }

    #[test]
    fn money_groups_digits_exactly() {
        let tera = engine();
        let out = tera.render_str(
            "{{ a | money }} {{ b | money }} {{ c | when }}",
            &Context::from_serialize(&serde_json::json!({
                "a": "1234567.50", "b": "-0.10", "c": "2026-12-04T17:20:08.549303Z"
            }))
            .unwrap(),
            true,
        );
        assert_eq!(out.unwrap(), "1,234,567.50 -0.10 2026-12-04 17:20 UTC");
    }

    #[test]
    fn error_page_escapes_its_message() {
        let page = error_page(StatusCode::NOT_FOUND, "<script>alert(1)</script>");
        assert!(page.contains("&lt;script&gt;"), "{page}");
        assert!(!page.contains("<script>alert"), "{page}");
    }
}
