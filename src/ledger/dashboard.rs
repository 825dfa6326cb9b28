//! The school's figures: students, totals, collections today, this month and by month.
use chrono::{Datelike, Months, NaiveDate};
use sea_orm::{
    ColumnTrait, ConnectionTrait, DatabaseConnection, EntityTrait, FromQueryResult, PaginatorTrait,
    QueryFilter,
    sea_query::{Expr, ExprTrait, Func},
};
use serde::Serialize;

use super::{
    payments::{self, PaymentRow},
    sql::LedgerDaily,
    today,
};
use crate::{
    domain::Money,
    entities::{money::DbMoney, students},
};

#[derive(Clone, Debug, Serialize)]
pub struct MonthTotal {
    /// `2026-12`
    pub month: String,
    /// `Dec 2026`
    pub label: String,
    pub paid: Money,
}

#[derive(Clone, Debug, Serialize)]
pub struct Dashboard {
    pub active_students: u64,
    pub total_charged: Money,
    pub total_paid: Money,
    /// Charged minus paid, over everyone: what the school is owed, net of credit.
    pub outstanding: Money,
    pub collected_today: Money,
    pub collected_this_month: Money,
    pub today: NaiveDate,
    pub monthly: Vec<MonthTotal>,
    pub recent_payments: Vec<PaymentRow>,
}

#[derive(FromQueryResult)]
struct Totals {
    charged: DbMoney,
    paid: DbMoney,
}

#[derive(FromQueryResult)]
struct Day {
    day: NaiveDate,
    paid: DbMoney,
}

fn first_of_month(date: NaiveDate) -> NaiveDate {
    date.with_day(1).expect("day 1 exists")
}

/// Five small queries: students are counted on an index, and every sum
/// comes from the per-day totals, never from the payments themselves.
pub async fn load(db: &DatabaseConnection, months: u32) -> Result<Dashboard, sea_orm::DbErr> {
    let today = today();
    let active_students = students::Entity::find()
        .filter(students::Column::Status.eq("active"))
        .count(db)
        .await?;

    let zero = || Expr::val(0);
    let totals = sea_orm::sea_query::Query::select()
        .expr_as(
            Func::coalesce([Func::sum(Expr::col(LedgerDaily::Charged)).into(), zero()]),
            "charged",
        )
        .expr_as(
            Func::coalesce([Func::sum(Expr::col(LedgerDaily::Paid)).into(), zero()]),
            "paid",
        )
        .from(LedgerDaily::Table)
        .to_owned();
    let totals = match db.query_one(&totals).await? {
        Some(row) => Totals::from_query_result(&row, "")?,
        None => Totals {
            charged: DbMoney::default(),
            paid: DbMoney::default(),
        },
    };

    let start = first_of_month(today)
        .checked_sub_months(Months::new(months.saturating_sub(1)))
        .unwrap_or(today);
    let days_query = sea_orm::sea_query::Query::select()
        .columns([LedgerDaily::Day, LedgerDaily::Paid])
        .from(LedgerDaily::Table)
        .and_where(Expr::col(LedgerDaily::Day).gte(start))
        .order_by(LedgerDaily::Day, sea_orm::Order::Asc)
        .to_owned();
    let days: Vec<Day> = db
        .query_all(&days_query)
        .await?
        .iter()
        .map(|row| Day::from_query_result(row, ""))
        .collect::<Result<_, _>>()?;

    let mut monthly: Vec<MonthTotal> = (0..months)
        .filter_map(|i| start.checked_add_months(Months::new(i)))
        .map(|m| MonthTotal {
            month: m.format("%Y-%m").to_string(),
            label: m.format("%b %Y").to_string(),
            paid: Money::ZERO,
        })
        .collect();
    let mut collected_today = Money::ZERO;
    for day in &days {
        if day.day == today {
            collected_today = collected_today + day.paid.0;
        }
        let month = day.day.format("%Y-%m").to_string();
        if let Some(total) = monthly.iter_mut().find(|m| m.month == month) {
            total.paid = total.paid + day.paid.0;
        }
    }
    let this_month = today.format("%Y-%m").to_string();
    let collected_this_month = monthly
        .iter()
        .find(|m| m.month == this_month)
        .map_or(Money::ZERO, |m| m.paid);

    Ok(Dashboard {
        active_students,
        total_charged: totals.charged.0,
        total_paid: totals.paid.0,
        outstanding: totals.charged.0 - totals.paid.0,
        collected_today,
        collected_this_month,
        today,
        monthly,
        recent_payments: payments::recent(db, 8).await?,
    })
}
