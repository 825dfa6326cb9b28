//! `POST /students/import`: a CSV of students, added all together or not at all.
use std::collections::{HashMap, HashSet};

use axum::{
    extract::{FromRequest, Multipart, Request, State},
    http::header,
    response::{Html, IntoResponse, Redirect, Response},
};
use serde_json::json;

use crate::{
    auth::csrf::{form_bytes, verify},
    domain::{Role, student::StudentInput},
    error::AppError,
    ledger::{LedgerError, students},
    routes::page::Page,
    state::AppState,
};

const COLUMNS: [&str; 8] = [
    "admission_no",
    "first_name",
    "last_name",
    "class_name",
    "guardian_name",
    "guardian_phone",
    "guardian_email",
    "status",
];
const REQUIRED: [&str; 4] = ["admission_no", "first_name", "last_name", "class_name"];
const MAX_ROWS: usize = 50_000;

pub async fn page(page: Page) -> Result<Html<String>, AppError> {
    page.require(Role::Bursar)?;
    page.render(
        "students/import.html",
        json!({"title": "Import students", "nav": "students", "errors": [], "columns": COLUMNS}),
    )
    .await
}

/// The CSV and the CSRF token, from a file upload or a pasted text field.
async fn read_upload(request: Request, state: &AppState) -> Result<(String, String), AppError> {
    let content_type = request
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    let unreadable = || AppError::BadRequest("The upload could not be read.".into());
    if content_type.starts_with("multipart/form-data") {
        let mut multipart = Multipart::from_request(request, state)
            .await
            .map_err(|_| unreadable())?;
        let (mut token, mut csv) = (String::new(), String::new());
        while let Some(field) = multipart.next_field().await.map_err(|e| {
            if e.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE {
                AppError::PayloadTooLarge
            } else {
                unreadable()
            }
        })? {
            let name = field.name().unwrap_or_default().to_string();
            let bytes = field.bytes().await.map_err(|e| {
                if e.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE {
                    AppError::PayloadTooLarge
                } else {
                    unreadable()
                }
            })?;
            match name.as_str() {
                "csrf_token" => token = String::from_utf8_lossy(&bytes).into_owned(),
                "file" | "csv" if !bytes.is_empty() => {
                    csv = String::from_utf8(bytes.to_vec())
                        .map_err(|_| AppError::BadRequest("The file must be UTF-8 text.".into()))?
                }
                _ => {}
            }
        }
        Ok((token, csv))
    } else {
        let bytes = form_bytes(request, state).await?;
        let pairs: HashMap<String, String> =
            serde_urlencoded::from_bytes(&bytes).map_err(|_| unreadable())?;
        Ok((
            pairs.get("csrf_token").cloned().unwrap_or_default(),
            pairs.get("csv").cloned().unwrap_or_default(),
        ))
    }
}

/// Our own exports guard formulas with a leading apostrophe; take it off
/// again so that an export can be imported back.
fn unguard(cell: &str) -> &str {
    match cell.strip_prefix('\'') {
        Some(rest) if rest.starts_with(['=', '+', '-', '@']) => rest,
        _ => cell,
    }
}

/// Parses the file, reporting problems by line number (the header is line 1).
fn parse(
    csv_text: &str,
) -> Result<Vec<(usize, crate::domain::student::StudentFields)>, Vec<String>> {
    let mut reader = csv::ReaderBuilder::new()
        .flexible(false)
        .trim(csv::Trim::All)
        .from_reader(csv_text.as_bytes());
    let header: Vec<String> = match reader.headers() {
        Ok(h) => h
            .iter()
            .map(|c| c.trim().trim_start_matches('\u{feff}').to_ascii_lowercase())
            .collect(),
        Err(_) => return Err(vec!["line 1: the header row could not be read.".into()]),
    };
    let missing: Vec<&str> = REQUIRED
        .iter()
        .copied()
        .filter(|r| !header.iter().any(|h| h == r))
        .collect();
    if !missing.is_empty() {
        return Err(vec![format!(
            "line 1: the header must name the columns {}; missing {}.",
            REQUIRED.join(", "),
            missing.join(", ")
        )]);
    }
    let mut errors = Vec::new();
    let mut rows = Vec::new();
    let mut seen: HashMap<String, usize> = HashMap::new();
    for (index, record) in reader.records().enumerate() {
        let line = index + 2;
        if rows.len() + errors.len() >= MAX_ROWS {
            errors.push(format!("The file has more than {MAX_ROWS} rows; split it."));
            break;
        }
        let record = match record {
            Ok(r) => r,
            Err(e) => {
                errors.push(format!(
                    "line {line}: {}",
                    e.to_string()
                        .split(':')
                        .next_back()
                        .unwrap_or("unreadable")
                        .trim()
                ));
                continue;
            }
        };
        let cell = |name: &str| {
            header
                .iter()
                .position(|h| h == name)
                .and_then(|i| record.get(i))
                .map(unguard)
                .unwrap_or("")
                .to_string()
        };
        let input = StudentInput {
            admission_no: cell("admission_no"),
            first_name: cell("first_name"),
            last_name: cell("last_name"),
            class_name: cell("class_name"),
            guardian_name: cell("guardian_name"),
            guardian_phone: cell("guardian_phone"),
            guardian_email: cell("guardian_email"),
            status: cell("status"),
        };
        match input.parse() {
            Ok(fields) => {
                if let Some(first) = seen.insert(fields.admission_no.as_str().to_string(), line) {
                    errors.push(format!(
                        "line {line}: admission_no {} is also on line {first}.",
                        fields.admission_no
                    ));
                } else {
                    rows.push((line, fields));
                }
            }
            Err(problems) => {
                for (field, message) in problems {
                    errors.push(format!("line {line}: {field}: {message}"));
                }
            }
        }
    }
    if rows.is_empty() && errors.is_empty() {
        errors.push("The file has no students in it.".into());
    }
    if errors.is_empty() {
        Ok(rows)
    } else {
        Err(errors)
    }
}

pub async fn upload(
    State(state): State<AppState>,
    page: Page,
    request: Request,
) -> Result<Response, AppError> {
    page.require(Role::Bursar)?;
    let (token, csv_text) = read_upload(request, &state).await?;
    verify(&page.session, &token).await?;
    let page = &page;
    let render_errors = |errors: Vec<String>| async move {
        page.render_invalid("students/import.html", json!({"title": "Import students", "nav": "students", "errors": errors, "columns": COLUMNS}))
            .await
    };
    let rows = match parse(&csv_text) {
        Ok(rows) => rows,
        Err(errors) => return render_errors(errors).await,
    };
    let numbers: Vec<String> = rows
        .iter()
        .map(|(_, f)| f.admission_no.as_str().to_string())
        .collect();
    let taken: HashSet<String> = students::existing_admission_numbers(&state.db, &numbers)
        .await?
        .into_iter()
        .collect();
    if !taken.is_empty() {
        let errors = rows
            .iter()
            .filter(|(_, f)| taken.contains(f.admission_no.as_str()))
            .map(|(line, f)| {
                format!(
                    "line {line}: admission_no {} already belongs to a student.",
                    f.admission_no
                )
            })
            .collect();
        return render_errors(errors).await;
    }
    match students::import(&state.db, page.user.id, &rows).await {
        Ok(count) => {
            page.flash(&format!("Imported {count} students.")).await?;
            Ok(Redirect::to("/students/").into_response())
        }
        Err(LedgerError::Invalid(fields)) => {
            let errors = fields
                .into_iter()
                .map(|(line, message)| format!("{line}: {message}"))
                .collect();
            render_errors(errors).await
        }
        Err(err) => Err(err.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reports_problems_by_line() {
        let csv = "admission_no,first_name,last_name,class_name\nA1,Ann,Lee,G1\nA1,Bob,Ray,G1\n,Cy,Di,G2\nA4,=cmd,Ok,G3\n";
        let errors = parse(csv).unwrap_err();
        assert!(
            errors
                .iter()
                .any(|e| e.starts_with("line 3:") && e.contains("also on line 2")),
            "{errors:?}"
        );
        assert!(
            errors.iter().any(|e| e.starts_with("line 4: admission_no")),
            "{errors:?}"
        );
        assert_eq!(errors.len(), 2, "{errors:?}");
    }

    #[test]
    fn needs_the_required_columns() {
        let errors = parse("name,class\nAnn,G1\n").unwrap_err();
        assert!(
            errors[0].contains("missing admission_no, first_name, last_name, class_name"),
            "{errors:?}"
        );
    }

    #[test]
    fn takes_back_its_own_formula_guard() {
        let rows = parse("admission_no,first_name,last_name,class_name,guardian_phone\nA1,Ann,Lee,G1,'+254 700\n").unwrap();
        assert_eq!(rows[0].1.guardian_phone, "+254 700");
    }

    #[test]
    fn the_header_is_not_case_sensitive_and_bom_is_ignored() {
        let rows =
            parse("\u{feff}Admission_No,First_Name,Last_Name,Class_Name\nA1,Ann,Lee,G1\n").unwrap();
        assert_eq!(rows.len(), 1);
    }
}
