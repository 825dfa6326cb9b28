//! Charges and payments: appended, never edited (M3); voided with a reason; each with its totals in one transaction.
use chrono::{DateTime, Datelike, NaiveDate, Utc};
use sea_orm::{
    ColumnTrait, ConnectionTrait, DatabaseConnection, DatabaseTransaction, EntityTrait,
    FromQueryResult, QueryFilter, QueryOrder, TransactionTrait,
    sea_query::{Alias, Expr, ExprTrait, OnConflict, Query},
};
use serde::Serialize;
use serde_json::json;

use super::{
    LedgerError,
    audit::{self, AuditEntry},
    sql::{LedgerDaily, ReceiptCounters, money},
    today,
};
use crate::{
    domain::{Amount, Money, ledger::PaymentMethod},
    entities::{
        charges::{self, Entity as Charges},
        payments::{self, Entity as Payments},
        students::{self, Entity as Students},
    },
    repo::is_unique_violation,
};

pub type Charge = charges::Model;
pub type Payment = payments::Model;

pub struct NewCharge {
    pub amount: Amount,
    pub description: String,
    pub due_on: Option<NaiveDate>,
}

pub struct NewPayment {
    pub amount: Amount,
    pub method: PaymentMethod,
    pub reference: String,
    pub paid_on: NaiveDate,
    pub idempotency_key: String,
}

#[derive(Clone, Debug, Serialize)]
pub struct ChargeView {
    pub id: i64,
    pub student_id: i64,
    pub amount: Money,
    pub description: String,
    pub due_on: Option<NaiveDate>,
    pub posted_on: NaiveDate,
    pub created_at: DateTime<Utc>,
    pub voided: bool,
    pub voided_at: Option<DateTime<Utc>>,
    pub void_reason: Option<String>,
}

impl From<&Charge> for ChargeView {
    fn from(c: &Charge) -> Self {
        ChargeView {
            id: c.id,
            student_id: c.student_id,
            amount: c.amount.0,
            description: c.description.clone(),
            due_on: c.due_on,
            posted_on: c.posted_on,
            created_at: c.created_at,
            voided: c.voided_at.is_some(),
            voided_at: c.voided_at,
            void_reason: c.void_reason.clone(),
        }
    }
}

#[derive(Clone, Debug, Serialize)]
pub struct PaymentView {
    pub id: i64,
    pub student_id: i64,
    pub receipt_no: String,
    pub amount: Money,
    pub method: String,
    pub reference: String,
    pub paid_on: NaiveDate,
    pub created_at: DateTime<Utc>,
    pub voided: bool,
    pub voided_at: Option<DateTime<Utc>>,
    pub void_reason: Option<String>,
}

impl From<&Payment> for PaymentView {
    fn from(p: &Payment) -> Self {
        PaymentView {
            id: p.id,
            student_id: p.student_id,
            receipt_no: p.receipt_no.clone(),
            amount: p.amount.0,
            method: p.method.clone(),
            reference: p.reference.clone(),
            paid_on: p.paid_on,
            created_at: p.created_at,
            voided: p.voided_at.is_some(),
            voided_at: p.voided_at,
            void_reason: p.void_reason.clone(),
        }
    }
}

/// Adds `charged` and `paid` to a student's cached totals. Run first in each
/// transaction: the write takes the student's row lock (PostgreSQL) or the
/// database's write lock (SQLite) before anything is read, so concurrent
/// entries for one student queue up instead of overwriting each other.
async fn add_to_student(
    txn: &DatabaseTransaction,
    student_id: i64,
    charged: Money,
    paid: Money,
) -> Result<(), LedgerError> {
    let backend = txn.get_database_backend();
    let statement = Query::update()
        .table(Students)
        .value(
            students::Column::ChargedTotal,
            Expr::col(students::Column::ChargedTotal).add(money(backend, charged)),
        )
        .value(
            students::Column::PaidTotal,
            Expr::col(students::Column::PaidTotal).add(money(backend, paid)),
        )
        .value(
            students::Column::Balance,
            Expr::col(students::Column::Balance).add(money(backend, charged - paid)),
        )
        .value(students::Column::UpdatedAt, Utc::now())
        .and_where(students::Column::Id.eq(student_id))
        .to_owned();
    if txn.execute(&statement).await?.rows_affected() == 0 {
        return Err(LedgerError::NotFound);
    }
    Ok(())
}

/// Adds to the day's totals, creating the day's row on first use.
async fn add_to_day(
    txn: &DatabaseTransaction,
    day: NaiveDate,
    charged: Money,
    paid: Money,
) -> Result<(), sea_orm::DbErr> {
    let backend = txn.get_database_backend();
    let excluded = Alias::new("excluded");
    let statement = Query::insert()
        .into_table(LedgerDaily::Table)
        .columns([LedgerDaily::Day, LedgerDaily::Charged, LedgerDaily::Paid])
        .values_panic([
            day.into(),
            money(backend, charged).into(),
            money(backend, paid).into(),
        ])
        .on_conflict(
            OnConflict::column(LedgerDaily::Day)
                .value(
                    LedgerDaily::Charged,
                    Expr::col((LedgerDaily::Table, LedgerDaily::Charged))
                        .add(Expr::col((excluded.clone(), LedgerDaily::Charged))),
                )
                .value(
                    LedgerDaily::Paid,
                    Expr::col((LedgerDaily::Table, LedgerDaily::Paid))
                        .add(Expr::col((excluded, LedgerDaily::Paid))),
                )
                .to_owned(),
        )
        .to_owned();
    txn.execute(&statement).await?;
    Ok(())
}

pub async fn post_charge(
    db: &DatabaseConnection,
    user_id: i64,
    student_id: i64,
    new: &NewCharge,
) -> Result<Charge, LedgerError> {
    let backend = db.get_database_backend();
    let amount = new.amount.money();
    let posted_on = today();
    let txn = db.begin().await?;
    add_to_student(&txn, student_id, amount, Money::ZERO).await?;
    let insert = Query::insert()
        .into_table(Charges)
        .columns([
            charges::Column::StudentId,
            charges::Column::Amount,
            charges::Column::Description,
            charges::Column::DueOn,
            charges::Column::PostedOn,
            charges::Column::CreatedBy,
            charges::Column::CreatedAt,
        ])
        .values_panic([
            student_id.into(),
            money(backend, amount).into(),
            new.description.clone().into(),
            new.due_on.into(),
            posted_on.into(),
            user_id.into(),
            Utc::now().into(),
        ])
        .returning_all()
        .to_owned();
    let charge = inserted::<Charge>(&txn, &insert).await?;
    add_to_day(&txn, posted_on, amount, Money::ZERO).await?;
    audit::record(
        &txn,
        AuditEntry {
            user_id: Some(user_id),
            action: "charge.post",
            entity: "charge",
            entity_id: Some(charge.id),
            before: None,
            after: Some(json!(ChargeView::from(&charge))),
        },
    )
    .await?;
    txn.commit().await?;
    Ok(charge)
}

async fn inserted<M: FromQueryResult>(
    txn: &DatabaseTransaction,
    statement: &sea_orm::sea_query::InsertStatement,
) -> Result<M, sea_orm::DbErr> {
    let row = txn
        .query_one(statement)
        .await?
        .ok_or_else(|| sea_orm::DbErr::RecordNotInserted)?;
    M::from_query_result(&row, "")
}

/// What recording a payment did.
pub enum Recorded {
    /// A new payment.
    New(Payment),
    /// The idempotency key was seen before: this is that payment, unchanged.
    Replayed(Payment),
}

impl Recorded {
    pub fn payment(&self) -> &Payment {
        match self {
            Recorded::New(p) | Recorded::Replayed(p) => p,
        }
    }
}

pub async fn find_by_idempotency_key(
    db: &impl ConnectionTrait,
    key: &str,
) -> Result<Option<Payment>, sea_orm::DbErr> {
    Payments::find()
        .filter(payments::Column::IdempotencyKey.eq(key))
        .one(db)
        .await
}

/// A repeated key must repeat the same payment; anything else is a client bug.
fn replay(existing: Payment, student_id: i64, new: &NewPayment) -> Result<Recorded, LedgerError> {
    let same = existing.student_id == student_id
        && existing.amount.0 == new.amount.money()
        && existing.method == new.method.as_str()
        && existing.reference == new.reference
        && existing.paid_on == new.paid_on;
    if same {
        Ok(Recorded::Replayed(existing))
    } else {
        Err(LedgerError::Conflict(format!(
            "This idempotency key was already used for a different payment (receipt {}).",
            existing.receipt_no
        )))
    }
}

/// `R2026-000123`: the year's next number, taken under the counter row's
/// lock, so numbers are unique and increase in commit order on every instance.
async fn next_receipt_no(txn: &DatabaseTransaction, year: i32) -> Result<String, LedgerError> {
    let statement = Query::insert()
        .into_table(ReceiptCounters::Table)
        .columns([ReceiptCounters::Year, ReceiptCounters::LastSeq])
        .values_panic([year.into(), 1i64.into()])
        .on_conflict(
            OnConflict::column(ReceiptCounters::Year)
                .value(
                    ReceiptCounters::LastSeq,
                    Expr::col((ReceiptCounters::Table, ReceiptCounters::LastSeq)).add(1),
                )
                .to_owned(),
        )
        .returning_col(ReceiptCounters::LastSeq)
        .to_owned();
    let row = txn
        .query_one(&statement)
        .await?
        .ok_or(sea_orm::DbErr::RecordNotInserted)?;
    let seq: i64 = row.try_get("", "last_seq")?;
    Ok(format!("R{year}-{seq:06}"))
}

/// Records a payment once per idempotency key (M6), with its receipt number,
/// the student's totals and the day's totals in one transaction (M5, M7).
pub async fn record_payment(
    db: &DatabaseConnection,
    user_id: i64,
    student_id: i64,
    new: &NewPayment,
) -> Result<Recorded, LedgerError> {
    if let Some(existing) = find_by_idempotency_key(db, &new.idempotency_key).await? {
        return replay(existing, student_id, new);
    }
    let backend = db.get_database_backend();
    let amount = new.amount.money();
    let txn = db.begin().await?;
    add_to_student(&txn, student_id, Money::ZERO, amount).await?;
    let receipt_no = next_receipt_no(&txn, today().year()).await?;
    let insert = Query::insert()
        .into_table(Payments)
        .columns([
            payments::Column::StudentId,
            payments::Column::Amount,
            payments::Column::Method,
            payments::Column::Reference,
            payments::Column::PaidOn,
            payments::Column::ReceiptNo,
            payments::Column::IdempotencyKey,
            payments::Column::CreatedBy,
            payments::Column::CreatedAt,
        ])
        .values_panic([
            student_id.into(),
            money(backend, amount).into(),
            new.method.as_str().into(),
            new.reference.clone().into(),
            new.paid_on.into(),
            receipt_no.into(),
            new.idempotency_key.clone().into(),
            user_id.into(),
            Utc::now().into(),
        ])
        .returning_all()
        .to_owned();
    let payment = match inserted::<Payment>(&txn, &insert).await {
        Ok(payment) => payment,
        Err(err) if is_unique_violation(&err) => {
            // Another request with this key committed first: undo ours
            // (totals and receipt number included) and answer with theirs.
            txn.rollback().await?;
            let existing = find_by_idempotency_key(db, &new.idempotency_key)
                .await?
                .ok_or(LedgerError::Db(err))?;
            return replay(existing, student_id, new);
        }
        Err(err) => return Err(err.into()),
    };
    add_to_day(&txn, new.paid_on, Money::ZERO, amount).await?;
    audit::record(
        &txn,
        AuditEntry {
            user_id: Some(user_id),
            action: "payment.record",
            entity: "payment",
            entity_id: Some(payment.id),
            before: None,
            after: Some(json!(PaymentView::from(&payment))),
        },
    )
    .await?;
    txn.commit().await?;
    Ok(Recorded::New(payment))
}

/// What voiding did.
pub enum Voided<T> {
    Now(T),
    /// It was voided before; nothing changed.
    Already(T),
}

pub async fn void_charge(
    db: &DatabaseConnection,
    user_id: i64,
    charge_id: i64,
    reason: &str,
) -> Result<Voided<Charge>, LedgerError> {
    let txn = db.begin().await?;
    let now = Utc::now();
    let marked = Query::update()
        .table(Charges)
        .value(charges::Column::VoidedAt, now)
        .value(charges::Column::VoidedBy, user_id)
        .value(charges::Column::VoidReason, reason)
        .and_where(charges::Column::Id.eq(charge_id))
        .and_where(charges::Column::VoidedAt.is_null())
        .to_owned();
    let changed = txn.execute(&marked).await?.rows_affected();
    let charge = Charges::find_by_id(charge_id)
        .one(&txn)
        .await?
        .ok_or(LedgerError::NotFound)?;
    if changed == 0 {
        return Ok(Voided::Already(charge));
    }
    let amount = charge.amount.0;
    add_to_student(&txn, charge.student_id, -amount, Money::ZERO).await?;
    add_to_day(&txn, charge.posted_on, -amount, Money::ZERO).await?;
    let mut before = ChargeView::from(&charge);
    (before.voided, before.voided_at, before.void_reason) = (false, None, None);
    audit::record(
        &txn,
        AuditEntry {
            user_id: Some(user_id),
            action: "charge.void",
            entity: "charge",
            entity_id: Some(charge.id),
            before: Some(json!(before)),
            after: Some(json!(ChargeView::from(&charge))),
        },
    )
    .await?;
    txn.commit().await?;
    Ok(Voided::Now(charge))
}

pub async fn void_payment(
    db: &DatabaseConnection,
    user_id: i64,
    payment_id: i64,
    reason: &str,
) -> Result<Voided<Payment>, LedgerError> {
    let txn = db.begin().await?;
    let marked = Query::update()
        .table(Payments)
        .value(payments::Column::VoidedAt, Utc::now())
        .value(payments::Column::VoidedBy, user_id)
        .value(payments::Column::VoidReason, reason)
        .and_where(payments::Column::Id.eq(payment_id))
        .and_where(payments::Column::VoidedAt.is_null())
        .to_owned();
    let changed = txn.execute(&marked).await?.rows_affected();
    let payment = Payments::find_by_id(payment_id)
        .one(&txn)
        .await?
        .ok_or(LedgerError::NotFound)?;
    if changed == 0 {
        return Ok(Voided::Already(payment));
    }
    let amount = payment.amount.0;
    add_to_student(&txn, payment.student_id, Money::ZERO, -amount).await?;
    add_to_day(&txn, payment.paid_on, Money::ZERO, -amount).await?;
    let mut before = PaymentView::from(&payment);
    (before.voided, before.voided_at, before.void_reason) = (false, None, None);
    audit::record(
        &txn,
        AuditEntry {
            user_id: Some(user_id),
            action: "payment.void",
            entity: "payment",
            entity_id: Some(payment.id),
            before: Some(json!(before)),
            after: Some(json!(PaymentView::from(&payment))),
        },
    )
    .await?;
    txn.commit().await?;
    Ok(Voided::Now(payment))
}

pub async fn charge(db: &impl ConnectionTrait, id: i64) -> Result<Charge, LedgerError> {
    Charges::find_by_id(id)
        .one(db)
        .await?
        .ok_or(LedgerError::NotFound)
}

pub async fn payment(db: &impl ConnectionTrait, id: i64) -> Result<Payment, LedgerError> {
    Payments::find_by_id(id)
        .one(db)
        .await?
        .ok_or(LedgerError::NotFound)
}

/// One line of a student's statement.
#[derive(Clone, Debug, Serialize)]
pub struct StatementLine {
    pub kind: &'static str,
    pub id: i64,
    pub date: NaiveDate,
    pub description: String,
    /// Charges add to what is owed, payments take away.
    pub charge: Option<Money>,
    pub payment: Option<Money>,
    pub receipt_no: Option<String>,
    pub voided: bool,
    pub void_reason: Option<String>,
    /// What the student owed after this line (voided lines change nothing).
    pub balance: Money,
}

/// Every charge and payment of a student in date order, with the running balance.
pub async fn statement(
    db: &DatabaseConnection,
    student_id: i64,
) -> Result<(Vec<Charge>, Vec<Payment>, Vec<StatementLine>), sea_orm::DbErr> {
    let charges = Charges::find()
        .filter(charges::Column::StudentId.eq(student_id))
        .order_by_asc(charges::Column::Id)
        .all(db)
        .await?;
    let payments = Payments::find()
        .filter(payments::Column::StudentId.eq(student_id))
        .order_by_asc(payments::Column::Id)
        .all(db)
        .await?;
    let mut lines: Vec<(NaiveDate, DateTime<Utc>, StatementLine)> =
        Vec::with_capacity(charges.len() + payments.len());
    for c in &charges {
        lines.push((
            c.posted_on,
            c.created_at,
            StatementLine {
                kind: "charge",
                id: c.id,
                date: c.posted_on,
                description: c.description.clone(),
                charge: Some(c.amount.0),
                payment: None,
                receipt_no: None,
                voided: c.voided_at.is_some(),
                void_reason: c.void_reason.clone(),
                balance: Money::ZERO,
            },
        ));
    }
    for p in &payments {
        let reference = if p.reference.is_empty() {
            String::new()
        } else {
            format!(" · {}", p.reference)
        };
        lines.push((
            p.paid_on,
            p.created_at,
            StatementLine {
                kind: "payment",
                id: p.id,
                date: p.paid_on,
                description: format!("Payment ({}){}", p.method, reference),
                charge: None,
                payment: Some(p.amount.0),
                receipt_no: Some(p.receipt_no.clone()),
                voided: p.voided_at.is_some(),
                void_reason: p.void_reason.clone(),
                balance: Money::ZERO,
            },
        ));
    }
    lines.sort_by_key(|(date, created, line)| (*date, *created, line.kind == "payment", line.id));
    let mut balance = Money::ZERO;
    let lines = lines
        .into_iter()
        .map(|(_, _, mut line)| {
            if !line.voided {
                balance =
                    balance + line.charge.unwrap_or_default() - line.payment.unwrap_or_default();
            }
            line.balance = balance;
            line
        })
        .collect();
    Ok((charges, payments, lines))
}
