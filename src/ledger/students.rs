//! Student records: create, edit, find, list with balances, import.
use chrono::Utc;
use sea_orm::{
    ActiveModelTrait,
    ActiveValue::Set,
    ColumnTrait, Condition, ConnectionTrait, DatabaseConnection, EntityTrait, FromQueryResult,
    Order, PaginatorTrait, QueryFilter, QueryOrder, QuerySelect, QueryTrait, TransactionTrait,
    sea_query::{Alias, Asterisk, Expr, ExprTrait, Func, LikeExpr, Query},
};
use serde::Serialize;
use serde_json::json;

use super::{
    LedgerError,
    audit::{self, AuditEntry},
    sql::like_prefix,
};
use crate::{
    domain::{
        Money,
        student::{StudentFields, StudentStatus},
    },
    entities::students::{self, Column, Entity as Students},
    repo::is_unique_violation,
};

pub type Student = students::Model;

/// A student as pages, the API and exports show it.
#[derive(Clone, Debug, Serialize)]
pub struct StudentView {
    pub id: i64,
    pub admission_no: String,
    pub first_name: String,
    pub last_name: String,
    pub full_name: String,
    pub class_name: String,
    pub guardian_name: String,
    pub guardian_phone: String,
    pub guardian_email: String,
    pub status: String,
    pub charged: Money,
    pub paid: Money,
    pub balance: Money,
}

impl From<&Student> for StudentView {
    fn from(s: &Student) -> Self {
        StudentView {
            id: s.id,
            admission_no: s.admission_no.clone(),
            first_name: s.first_name.clone(),
            last_name: s.last_name.clone(),
            full_name: format!("{} {}", s.first_name, s.last_name),
            class_name: s.class_name.clone(),
            guardian_name: s.guardian_name.clone(),
            guardian_phone: s.guardian_phone.clone(),
            guardian_email: s.guardian_email.clone(),
            status: s.status.clone(),
            charged: s.charged_total.0,
            paid: s.paid_total.0,
            balance: s.balance.0,
        }
    }
}

fn taken() -> LedgerError {
    LedgerError::field(
        "admission_no",
        "Another student already has this admission number.",
    )
}

fn audit_view(s: &Student) -> serde_json::Value {
    json!(StudentView::from(s))
}

pub async fn create(
    db: &DatabaseConnection,
    user_id: i64,
    fields: &StudentFields,
) -> Result<Student, LedgerError> {
    let txn = db.begin().await?;
    let student = insert(&txn, fields).await?;
    audit::record(
        &txn,
        AuditEntry {
            user_id: Some(user_id),
            action: "student.create",
            entity: "student",
            entity_id: Some(student.id),
            before: None,
            after: Some(audit_view(&student)),
        },
    )
    .await?;
    txn.commit().await?;
    Ok(student)
}

async fn insert(db: &impl ConnectionTrait, fields: &StudentFields) -> Result<Student, LedgerError> {
    let now = Utc::now();
    let row = students::ActiveModel {
        admission_no: Set(fields.admission_no.as_str().to_string()),
        first_name: Set(fields.first_name.clone()),
        last_name: Set(fields.last_name.clone()),
        class_name: Set(fields.class_name.clone()),
        guardian_name: Set(fields.guardian_name.clone()),
        guardian_phone: Set(fields.guardian_phone.clone()),
        guardian_email: Set(fields.guardian_email.clone()),
        status: Set(fields.status.as_str().to_string()),
        created_at: Set(now),
        updated_at: Set(now),
        ..Default::default()
    };
    row.insert(db).await.map_err(|e| {
        if is_unique_violation(&e) {
            taken()
        } else {
            e.into()
        }
    })
}

/// Changes a student's details. The ledger totals are never touched here.
pub async fn update(
    db: &DatabaseConnection,
    user_id: i64,
    id: i64,
    fields: &StudentFields,
) -> Result<Student, LedgerError> {
    let txn = db.begin().await?;
    let before = Students::find_by_id(id)
        .one(&txn)
        .await?
        .ok_or(LedgerError::NotFound)?;
    let mut row: students::ActiveModel = before.clone().into();
    row.admission_no = Set(fields.admission_no.as_str().to_string());
    row.first_name = Set(fields.first_name.clone());
    row.last_name = Set(fields.last_name.clone());
    row.class_name = Set(fields.class_name.clone());
    row.guardian_name = Set(fields.guardian_name.clone());
    row.guardian_phone = Set(fields.guardian_phone.clone());
    row.guardian_email = Set(fields.guardian_email.clone());
    row.status = Set(fields.status.as_str().to_string());
    row.updated_at = Set(Utc::now());
    // Only the columns set above are written: a payment committing meanwhile
    // keeps its effect on the totals.
    let after = row.update(&txn).await.map_err(|e| {
        if is_unique_violation(&e) {
            taken()
        } else {
            LedgerError::from(e)
        }
    })?;
    audit::record(
        &txn,
        AuditEntry {
            user_id: Some(user_id),
            action: "student.update",
            entity: "student",
            entity_id: Some(id),
            before: Some(audit_view(&before)),
            after: Some(audit_view(&after)),
        },
    )
    .await?;
    txn.commit().await?;
    Ok(after)
}

pub async fn get(db: &impl ConnectionTrait, id: i64) -> Result<Student, LedgerError> {
    Students::find_by_id(id)
        .one(db)
        .await?
        .ok_or(LedgerError::NotFound)
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum StudentSort {
    #[default]
    Name,
    AdmissionNo,
    Balance,
}

impl StudentSort {
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "name" => Some(StudentSort::Name),
            "admission_no" => Some(StudentSort::AdmissionNo),
            "balance" => Some(StudentSort::Balance),
            _ => None,
        }
    }
}

/// Which students to list, already validated.
#[derive(Clone, Debug, Default)]
pub struct StudentQuery {
    pub q: String,
    pub class_name: Option<String>,
    pub status: Option<StudentStatus>,
    pub sort: StudentSort,
    pub descending: bool,
    pub page: u64,
    pub per_page: u64,
}

/// Each word of `q` must start the first name, the last name or the
/// admission number (case-insensitive; `%` and `_` are literal).
fn search(q: &str) -> Condition {
    let mut all = Condition::all();
    for word in q.split_whitespace().take(6) {
        let lower = like_prefix(&word.to_lowercase());
        let upper = like_prefix(&word.to_uppercase());
        all = all.add(
            Condition::any()
                .add(
                    Expr::expr(Func::lower(Expr::col(Column::LastName)))
                        .like(LikeExpr::new(lower.clone()).escape('\\')),
                )
                .add(
                    Expr::expr(Func::lower(Expr::col(Column::FirstName)))
                        .like(LikeExpr::new(lower).escape('\\')),
                )
                .add(Expr::col(Column::AdmissionNo).like(LikeExpr::new(upper).escape('\\'))),
        );
    }
    all
}

/// The students the filter selects, in no particular order.
fn matching(query: &StudentQuery) -> sea_orm::Select<Students> {
    let mut select = Students::find().filter(search(&query.q));
    if let Some(class_name) = &query.class_name {
        select = select.filter(Column::ClassName.eq(class_name.as_str()));
    }
    if let Some(status) = query.status {
        select = select.filter(Column::Status.eq(status.as_str()));
    }
    select
}

/// The sort, as columns; `id` last, so that pages never overlap.
fn sort_keys(query: &StudentQuery) -> (Vec<Column>, Order) {
    let order = if query.descending {
        Order::Desc
    } else {
        Order::Asc
    };
    let columns = match query.sort {
        StudentSort::Name => vec![Column::LastName, Column::FirstName, Column::Id],
        StudentSort::AdmissionNo => vec![Column::AdmissionNo],
        StudentSort::Balance => vec![Column::Balance, Column::Id],
    };
    (columns, order)
}

/// Up to this many matches, a search sorts its matches rather than walking
/// the sort order's index (see `list`).
const SORT_MATCHES_BELOW: u64 = 20_000;

/// One page of students with their balances (two queries, whatever the page
/// size: the balance is a column kept by the ledger, M8), and how many match.
pub async fn list(
    db: &DatabaseConnection,
    query: &StudentQuery,
) -> Result<(Vec<Student>, u64), sea_orm::DbErr> {
    let total = matching(query).count(db).await?;
    let offset = query.page.saturating_sub(1) * query.per_page;
    let (columns, order) = sort_keys(query);
    if query.q.trim().is_empty() || total > SORT_MATCHES_BELOW {
        let mut select = matching(query);
        for column in columns {
            select = select.order_by(column, order.clone());
        }
        return Ok((
            select.offset(offset).limit(query.per_page).all(db).await?,
            total,
        ));
    }
    // A narrow search matches few students, often all with one surname
    // that sorts mid-alphabet. Walking the name index until 50 of them turn
    // up would read half the table; so the matches are found first (through
    // the prefix indexes) and only they are sorted. (A broad search matches
    // densely enough that walking the index finds a page at once.) A LIMIT on the inner query
    // keeps PostgreSQL from merging the two steps back together (SQLite
    // needs a LIMIT before any OFFSET; i64::MAX suits both).
    let mut found = matching(query).into_query();
    found.limit(i64::MAX as u64).offset(0);
    let alias = Alias::new("found");
    let mut page = Query::select();
    page.column(Asterisk).from_subquery(found, alias.clone());
    for column in columns {
        page.order_by((alias.clone(), column), order.clone());
    }
    page.limit(query.per_page).offset(offset);
    let rows = Student::find_by_statement(db.get_database_backend().build(&page))
        .all(db)
        .await?;
    Ok((rows, total))
}

/// Every matching student, in `batch`-sized pages: for exports.
pub async fn list_all_batched(
    db: &DatabaseConnection,
    query: &StudentQuery,
    after_id: i64,
    batch: u64,
) -> Result<Vec<Student>, sea_orm::DbErr> {
    let mut query = query.clone();
    query.sort = StudentSort::Name;
    Students::find()
        .filter(search(&query.q))
        .filter(Column::Id.gt(after_id))
        .apply_if(query.class_name.clone(), |s, c| {
            s.filter(Column::ClassName.eq(c))
        })
        .apply_if(query.status, |s, st| {
            s.filter(Column::Status.eq(st.as_str()))
        })
        .order_by_asc(Column::Id)
        .limit(batch)
        .all(db)
        .await
}

#[derive(FromQueryResult)]
struct ClassName {
    name: String,
}

/// The classes in use, for the filter's choices: one index probe per class
/// (a skip scan), not a pass over every student.
const CLASS_NAMES: &str = "
WITH RECURSIVE classes(name) AS (
  SELECT MIN(class_name) FROM students
  UNION ALL
  SELECT (SELECT MIN(class_name) FROM students WHERE class_name > classes.name) FROM classes WHERE classes.name IS NOT NULL
)
SELECT name FROM classes WHERE name IS NOT NULL";

pub async fn class_names(db: &DatabaseConnection) -> Result<Vec<String>, sea_orm::DbErr> {
    let statement = sea_orm::Statement::from_string(db.get_database_backend(), CLASS_NAMES);
    Ok(ClassName::find_by_statement(statement)
        .all(db)
        .await?
        .into_iter()
        .map(|c| c.name)
        .collect())
}

/// Which of these admission numbers are already taken.
pub async fn existing_admission_numbers(
    db: &DatabaseConnection,
    numbers: &[String],
) -> Result<Vec<String>, sea_orm::DbErr> {
    let mut taken = Vec::new();
    for chunk in numbers.chunks(500) {
        let rows = Students::find()
            .filter(Column::AdmissionNo.is_in(chunk.iter().cloned()))
            .all(db)
            .await?;
        taken.extend(rows.into_iter().map(|s| s.admission_no));
    }
    Ok(taken)
}

/// Inserts every row or none. `rows` pairs each record with its line in the
/// uploaded file, for the error message.
pub async fn import(
    db: &DatabaseConnection,
    user_id: i64,
    rows: &[(usize, StudentFields)],
) -> Result<usize, LedgerError> {
    let txn = db.begin().await?;
    for (line, fields) in rows {
        let student = insert(&txn, fields).await.map_err(|e| match e {
            LedgerError::Invalid(fields) => LedgerError::Invalid(
                fields
                    .into_iter()
                    .map(|(k, v)| (format!("line {line}"), format!("{k}: {v}")))
                    .collect(),
            ),
            other => other,
        })?;
        audit::record(
            &txn,
            AuditEntry {
                user_id: Some(user_id),
                action: "student.import",
                entity: "student",
                entity_id: Some(student.id),
                before: None,
                after: Some(audit_view(&student)),
            },
        )
        .await?;
    }
    txn.commit().await?;
    Ok(rows.len())
}
