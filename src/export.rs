//! CSV downloads streamed in batches, with spreadsheet formula injection neutralised.
use std::{borrow::Cow, future::Future, sync::Arc};

use axum::{
    body::{Body, Bytes},
    http::header,
    response::{IntoResponse, Response},
};
use futures_util::StreamExt;

/// A cell a spreadsheet would run as a formula (`=`, `+`, `-`, `@`, tab or
/// carriage return first) gets a leading apostrophe, so it shows as text.
pub fn safe_cell(text: &str) -> Cow<'_, str> {
    if text.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        Cow::Owned(format!("'{text}"))
    } else {
        Cow::Borrowed(text)
    }
}

/// Rows as CSV bytes.
pub fn encode(rows: &[Vec<String>]) -> Bytes {
    let mut writer = csv::Writer::from_writer(Vec::new());
    for row in rows {
        // Writing to memory cannot fail.
        let _ = writer.write_record(row);
    }
    Bytes::from(writer.into_inner().unwrap_or_default())
}

/// One batch of rows and where the next one starts; `None` when done.
pub type Batch<C> = Option<(Vec<Vec<String>>, C)>;

/// A CSV file built batch by batch as the client reads it, so a million
/// rows never sit in memory at once.
pub fn download<C, F, Fut>(filename: &str, header: &[&str], cursor: C, fetch: F) -> Response
where
    C: Send + 'static,
    F: Fn(C) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<Batch<C>, sea_orm::DbErr>> + Send + 'static,
{
    let head = encode(&[header.iter().map(|h| h.to_string()).collect()]);
    let fetch = Arc::new(fetch);
    let rows = futures_util::stream::unfold(Some(cursor), move |cursor| {
        let fetch = fetch.clone();
        async move {
            match fetch(cursor?).await {
                Ok(Some((rows, next))) if !rows.is_empty() => Some((Ok(encode(&rows)), Some(next))),
                Ok(_) => None,
                Err(err) => {
                    tracing::error!(error = %err, "export stopped by a database error");
                    Some((Err(std::io::Error::other(err)), None))
                }
            }
        }
    });
    let body = futures_util::stream::once(async move { Ok::<_, std::io::Error>(head) }).chain(rows);
    (
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8".to_string()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{filename}\""),
            ),
        ],
        Body::from_stream(body),
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formulas_are_neutralised() {
        for dangerous in [
            "=1+1",
            "+1",
            "-2",
            "@SUM(A1)",
            "\tx",
            "\rx",
            "=HYPERLINK(\"http://x\")",
        ] {
            assert!(safe_cell(dangerous).starts_with('\''), "{dangerous:?}");
        }
        assert_eq!(safe_cell("Ann"), "Ann");
        assert_eq!(safe_cell("O'Neil"), "O'Neil");
    }

    #[test]
    fn quotes_and_commas_are_escaped() {
        let bytes = encode(&[vec!["a,b".into(), "say \"hi\"".into()]]);
        assert_eq!(
            std::str::from_utf8(&bytes).unwrap(),
            "\"a,b\",\"say \"\"hi\"\"\"\n"
        );
    }
}
