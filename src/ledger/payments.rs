//! Finding payments: the filtered list, exports, and what a receipt shows.
use std::collections::HashMap;

use chrono::NaiveDate;
use sea_orm::{
    ColumnTrait, Condition, DatabaseConnection, EntityTrait, PaginatorTrait, QueryFilter,
    QueryOrder, QuerySelect,
    sea_query::{Expr, ExprTrait, Func, LikeExpr, Query},
};
use serde::Serialize;

use super::{
    entries::{Payment, PaymentView},
    sql::like_prefix,
    students::{Student, StudentView},
};
use crate::{
    domain::ledger::PaymentMethod,
    entities::{
        payments::{self, Column, Entity as Payments},
        students::{self, Entity as Students},
    },
};

/// Which payments to list, already validated.
#[derive(Clone, Debug, Default)]
pub struct PaymentQuery {
    pub from: Option<NaiveDate>,
    pub to: Option<NaiveDate>,
    pub method: Option<PaymentMethod>,
    /// A receipt number, a reference, or a student's name or admission number (prefixes).
    pub q: String,
    pub page: u64,
    pub per_page: u64,
}

fn condition(query: &PaymentQuery) -> Condition {
    let mut all = Condition::all();
    if let Some(from) = query.from {
        all = all.add(Column::PaidOn.gte(from));
    }
    if let Some(to) = query.to {
        all = all.add(Column::PaidOn.lte(to));
    }
    if let Some(method) = query.method {
        all = all.add(Column::Method.eq(method.as_str()));
    }
    let q = query.q.trim();
    if !q.is_empty() {
        let lower = like_prefix(&q.to_lowercase());
        let upper = like_prefix(&q.to_uppercase());
        let mut students = Condition::all();
        for word in q.split_whitespace().take(6) {
            let lower = like_prefix(&word.to_lowercase());
            let upper = like_prefix(&word.to_uppercase());
            students = students.add(
                Condition::any()
                    .add(
                        Expr::expr(Func::lower(Expr::col(students::Column::LastName)))
                            .like(LikeExpr::new(lower.clone()).escape('\\')),
                    )
                    .add(
                        Expr::expr(Func::lower(Expr::col(students::Column::FirstName)))
                            .like(LikeExpr::new(lower).escape('\\')),
                    )
                    .add(
                        Expr::col(students::Column::AdmissionNo)
                            .like(LikeExpr::new(upper).escape('\\')),
                    ),
            );
        }
        all = all.add(
            Condition::any()
                .add(Expr::col(Column::ReceiptNo).like(LikeExpr::new(upper).escape('\\')))
                .add(
                    Expr::expr(Func::lower(Expr::col(Column::Reference)))
                        .like(LikeExpr::new(lower).escape('\\')),
                )
                .add(
                    Column::StudentId.in_subquery(
                        Query::select()
                            .column(students::Column::Id)
                            .from(Students)
                            .cond_where(students)
                            .to_owned(),
                    ),
                ),
        );
    }
    all
}

/// A payment with the student it belongs to.
#[derive(Clone, Debug, Serialize)]
pub struct PaymentRow {
    #[serde(flatten)]
    pub payment: PaymentView,
    pub student: Option<StudentView>,
}

async fn with_students(
    db: &DatabaseConnection,
    payments: Vec<Payment>,
) -> Result<Vec<PaymentRow>, sea_orm::DbErr> {
    let mut ids: Vec<i64> = payments.iter().map(|p| p.student_id).collect();
    ids.sort_unstable();
    ids.dedup();
    let students: HashMap<i64, Student> = Students::find()
        .filter(students::Column::Id.is_in(ids))
        .all(db)
        .await?
        .into_iter()
        .map(|s| (s.id, s))
        .collect();
    Ok(payments
        .iter()
        .map(|p| PaymentRow {
            payment: PaymentView::from(p),
            student: students.get(&p.student_id).map(StudentView::from),
        })
        .collect())
}

/// One page of payments, newest first, and how many match (three queries).
pub async fn list(
    db: &DatabaseConnection,
    query: &PaymentQuery,
) -> Result<(Vec<PaymentRow>, u64), sea_orm::DbErr> {
    let select = Payments::find().filter(condition(query));
    let total = select.clone().count(db).await?;
    let rows = select
        .order_by_desc(Column::Id)
        .offset(query.page.saturating_sub(1) * query.per_page)
        .limit(query.per_page)
        .all(db)
        .await?;
    Ok((with_students(db, rows).await?, total))
}

/// The next `batch` matching payments with an id below `before_id`, newest first: for exports.
pub async fn list_batch(
    db: &DatabaseConnection,
    query: &PaymentQuery,
    before_id: i64,
    batch: u64,
) -> Result<Vec<PaymentRow>, sea_orm::DbErr> {
    let rows = Payments::find()
        .filter(condition(query))
        .filter(Column::Id.lt(before_id))
        .order_by_desc(Column::Id)
        .limit(batch)
        .all(db)
        .await?;
    with_students(db, rows).await
}

/// The most recent payments, for the dashboard.
pub async fn recent(
    db: &DatabaseConnection,
    count: u64,
) -> Result<Vec<PaymentRow>, sea_orm::DbErr> {
    let rows = Payments::find()
        .order_by_desc(Column::Id)
        .limit(count)
        .all(db)
        .await?;
    with_students(db, rows).await
}

pub async fn find(
    db: &DatabaseConnection,
    id: i64,
) -> Result<Option<payments::Model>, sea_orm::DbErr> {
    Payments::find_by_id(id).one(db).await
}
