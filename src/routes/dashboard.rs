//! `/dashboard/`: the school's figures at a glance.
use axum::{Router, extract::State, response::Html, routing::get};
use serde::Serialize;
use serde_json::{Value, json};

use super::{
    page::Page,
    students::{RecentStudent, RecentStudents},
};
use crate::{
    domain::Money,
    error::AppError,
    ledger::dashboard::{self, MonthTotal},
    state::AppState,
};

pub fn router() -> Router<AppState> {
    Router::new().route("/dashboard/", get(show))
}

/// One bar of the monthly collections chart, laid out on the server.
#[derive(Serialize)]
struct Bar {
    x: u32,
    y: u32,
    height: u32,
    label: String,
    amount: String,
}

const CHART_HEIGHT: u32 = 160;
const BAR_PITCH: u32 = 44;

fn bars(months: &[MonthTotal]) -> Vec<Bar> {
    let top = months.iter().map(|m| m.paid).max().unwrap_or(Money::ZERO);
    months
        .iter()
        .enumerate()
        .map(|(i, m)| {
            // Integer arithmetic on minor units: the chart is exact too.
            let height = if top.is_positive() && m.paid.is_positive() {
                ((m.paid.minor_units().max(0) as i128 * i128::from(CHART_HEIGHT))
                    / top.minor_units() as i128)
                    .max(1) as u32
            } else {
                0
            };
            Bar {
                x: i as u32 * BAR_PITCH + 8,
                y: CHART_HEIGHT - height + 10,
                height,
                label: m.label.split(' ').next().unwrap_or_default().to_string(),
                amount: m.paid.grouped(),
            }
        })
        .collect()
}

/// The dashboard's own content: the figures and the chart.
pub async fn content(state: &AppState, recent: Vec<RecentStudent>) -> Result<Value, AppError> {
    let figures = dashboard::load(&state.db, 12).await?;
    let chart = bars(&figures.monthly);
    Ok(json!({
        "title": "Dashboard",
        "nav": "dashboard",
        "figures": figures,
        "chart_width": chart.len() as u32 * BAR_PITCH + 16,
        "chart_height": CHART_HEIGHT + 40,
        "chart": chart,
        "recent_students": recent,
    }))
}

async fn show(State(state): State<AppState>, page: Page) -> Result<Html<String>, AppError> {
    let recent = page
        .session
        .get::<RecentStudents>()
        .await?
        .unwrap_or_default();
    page.render("dashboard.html", content(&state, recent).await?)
        .await
}
