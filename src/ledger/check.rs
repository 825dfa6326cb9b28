//! `check-ledger`: recompute every balance and total from the ledger rows and compare with what Bursar reports.
use std::fmt;

use chrono::NaiveDate;
use sea_orm::{ConnectionTrait, DatabaseConnection, FromQueryResult, Statement};

use super::dashboard;
use crate::{domain::Money, entities::money::DbMoney};

#[derive(Debug, Default)]
pub struct LedgerReport {
    pub students: i64,
    pub charges: i64,
    pub payments: i64,
    pub voided_charges: i64,
    pub voided_payments: i64,
    pub total_charged: Money,
    pub total_paid: Money,
    /// Every disagreement found, described for a person.
    pub mismatches: Vec<String>,
}

impl LedgerReport {
    pub fn is_clean(&self) -> bool {
        self.mismatches.is_empty()
    }
}

impl fmt::Display for LedgerReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "students:      {}", self.students)?;
        writeln!(
            f,
            "charges:       {} ({} voided)",
            self.charges, self.voided_charges
        )?;
        writeln!(
            f,
            "payments:      {} ({} voided)",
            self.payments, self.voided_payments
        )?;
        writeln!(f, "total charged: {}", self.total_charged.grouped())?;
        writeln!(f, "total paid:    {}", self.total_paid.grouped())?;
        writeln!(
            f,
            "outstanding:   {}",
            (self.total_charged - self.total_paid).grouped()
        )?;
        if self.is_clean() {
            write!(f, "ledger OK: every balance and total matches the entries")
        } else {
            writeln!(f, "LEDGER MISMATCH: {} problem(s)", self.mismatches.len())?;
            for problem in self.mismatches.iter().take(50) {
                writeln!(f, "  - {problem}")?;
            }
            if self.mismatches.len() > 50 {
                writeln!(f, "  … and {} more", self.mismatches.len() - 50)?;
            }
            Ok(())
        }
    }
}

#[derive(FromQueryResult)]
struct Counts {
    students: i64,
    charges: i64,
    payments: i64,
    voided_charges: i64,
    voided_payments: i64,
    charged: DbMoney,
    paid: DbMoney,
}

#[derive(FromQueryResult)]
struct StudentMismatch {
    id: i64,
    admission_no: String,
    charged_total: DbMoney,
    paid_total: DbMoney,
    balance: DbMoney,
    charged: DbMoney,
    paid: DbMoney,
}

#[derive(FromQueryResult)]
struct DayMismatch {
    day: NaiveDate,
    charged: DbMoney,
    paid: DbMoney,
    stored_charged: DbMoney,
    stored_paid: DbMoney,
}

#[derive(FromQueryResult)]
struct ReceiptYear {
    year: String,
    issued: i64,
    counter: Option<i64>,
    distinct_numbers: i64,
    payments: i64,
}

const COUNTS: &str = "
SELECT
  (SELECT COUNT(*) FROM students) AS students,
  (SELECT COUNT(*) FROM charges) AS charges,
  (SELECT COUNT(*) FROM payments) AS payments,
  (SELECT COUNT(*) FROM charges WHERE voided_at IS NOT NULL) AS voided_charges,
  (SELECT COUNT(*) FROM payments WHERE voided_at IS NOT NULL) AS voided_payments,
  (SELECT COALESCE(SUM(amount), 0) FROM charges WHERE voided_at IS NULL) AS charged,
  (SELECT COALESCE(SUM(amount), 0) FROM payments WHERE voided_at IS NULL) AS paid";

/// Students whose stored totals differ from their entries (M4).
const STUDENTS: &str = "
SELECT s.id, s.admission_no, s.charged_total, s.paid_total, s.balance,
       COALESCE(c.total, 0) AS charged, COALESCE(p.total, 0) AS paid
FROM students s
LEFT JOIN (SELECT student_id, SUM(amount) AS total FROM charges WHERE voided_at IS NULL GROUP BY student_id) c
  ON c.student_id = s.id
LEFT JOIN (SELECT student_id, SUM(amount) AS total FROM payments WHERE voided_at IS NULL GROUP BY student_id) p
  ON p.student_id = s.id
WHERE s.charged_total <> COALESCE(c.total, 0)
   OR s.paid_total <> COALESCE(p.total, 0)
   OR s.balance <> s.charged_total - s.paid_total
ORDER BY s.id";

/// Days whose stored totals differ from their entries.
const DAYS: &str = "
WITH c AS (SELECT posted_on AS day, SUM(amount) AS total FROM charges WHERE voided_at IS NULL GROUP BY posted_on),
     p AS (SELECT paid_on AS day, SUM(amount) AS total FROM payments WHERE voided_at IS NULL GROUP BY paid_on),
     days AS (SELECT day FROM c UNION SELECT day FROM p UNION SELECT day FROM ledger_daily)
SELECT days.day AS day,
       COALESCE(c.total, 0) AS charged, COALESCE(p.total, 0) AS paid,
       COALESCE(d.charged, 0) AS stored_charged, COALESCE(d.paid, 0) AS stored_paid
FROM days
LEFT JOIN c ON c.day = days.day
LEFT JOIN p ON p.day = days.day
LEFT JOIN ledger_daily d ON d.day = days.day
WHERE COALESCE(c.total, 0) <> COALESCE(d.charged, 0) OR COALESCE(p.total, 0) <> COALESCE(d.paid, 0)
ORDER BY days.day";

/// Per receipt year: the highest number issued, the counter, and whether
/// any number repeats (M5).
const RECEIPTS: &str = "
SELECT r.year AS year, r.issued AS issued, rc.last_seq AS counter,
       r.distinct_numbers AS distinct_numbers, r.payments AS payments
FROM (SELECT substr(receipt_no, 2, 4) AS year,
             MAX(CAST(substr(receipt_no, 7) AS BIGINT)) AS issued,
             COUNT(DISTINCT receipt_no) AS distinct_numbers,
             COUNT(*) AS payments
      FROM payments GROUP BY substr(receipt_no, 2, 4)) r
LEFT JOIN receipt_counters rc ON CAST(rc.year AS TEXT) = r.year
ORDER BY r.year";

/// Entries that cannot be right: not positive, half-voided, or belonging to
/// no student (bulk loads may skip the foreign-key checks).
const BAD_ROWS: &str = "
SELECT 'charge ' || CAST(c.id AS TEXT) AS what FROM charges c LEFT JOIN students s ON s.id = c.student_id
 WHERE c.amount <= 0 OR (c.voided_at IS NULL) <> (c.void_reason IS NULL) OR s.id IS NULL
UNION ALL
SELECT 'payment ' || CAST(p.id AS TEXT) AS what FROM payments p LEFT JOIN students s ON s.id = p.student_id
 WHERE p.amount <= 0 OR (p.voided_at IS NULL) <> (p.void_reason IS NULL) OR s.id IS NULL";

#[derive(FromQueryResult)]
struct BadRow {
    what: String,
}

async fn all<M: FromQueryResult>(
    db: &DatabaseConnection,
    sql: &str,
) -> Result<Vec<M>, sea_orm::DbErr> {
    let rows = db
        .query_all_raw(Statement::from_string(db.get_database_backend(), sql))
        .await?;
    rows.iter()
        .map(|row| M::from_query_result(row, ""))
        .collect()
}

/// Recomputes everything from the entries. A clean report means every
/// student's balance, every day's totals, the dashboard's figures and the
/// receipt numbering agree with the charges and payments themselves.
pub async fn check(db: &DatabaseConnection) -> Result<LedgerReport, sea_orm::DbErr> {
    let counts = all::<Counts>(db, COUNTS)
        .await?
        .pop()
        .ok_or(sea_orm::DbErr::RecordNotFound("counts".into()))?;
    let mut report = LedgerReport {
        students: counts.students,
        charges: counts.charges,
        payments: counts.payments,
        voided_charges: counts.voided_charges,
        voided_payments: counts.voided_payments,
        total_charged: counts.charged.0,
        total_paid: counts.paid.0,
        mismatches: Vec::new(),
    };

    for s in all::<StudentMismatch>(db, STUDENTS).await? {
        report.mismatches.push(format!(
            "student {} ({}): stored charged {} paid {} balance {}, but the entries say charged {} paid {} balance {}",
            s.id,
            s.admission_no,
            s.charged_total.0,
            s.paid_total.0,
            s.balance.0,
            s.charged.0,
            s.paid.0,
            s.charged.0 - s.paid.0
        ));
    }
    for d in all::<DayMismatch>(db, DAYS).await? {
        report.mismatches.push(format!(
            "day {}: stored charged {} paid {}, but the entries say charged {} paid {}",
            d.day, d.stored_charged.0, d.stored_paid.0, d.charged.0, d.paid.0
        ));
    }
    for r in all::<ReceiptYear>(db, RECEIPTS).await? {
        if r.distinct_numbers != r.payments {
            report.mismatches.push(format!(
                "receipts {}: {} payments share {} numbers",
                r.year, r.payments, r.distinct_numbers
            ));
        }
        if r.counter.is_none_or(|c| c < r.issued) {
            report.mismatches.push(format!(
                "receipts {}: number {} was issued but the counter stands at {:?}",
                r.year, r.issued, r.counter
            ));
        }
    }
    for bad in all::<BadRow>(db, BAD_ROWS).await? {
        report.mismatches.push(format!(
            "{}: amount not positive, void fields inconsistent, or no such student",
            bad.what
        ));
    }

    let shown = dashboard::load(db, 1).await?;
    if shown.total_charged != report.total_charged || shown.total_paid != report.total_paid {
        report.mismatches.push(format!(
            "dashboard shows charged {} paid {}, but the entries say charged {} paid {}",
            shown.total_charged, shown.total_paid, report.total_charged, report.total_paid
        ));
    }
    Ok(report)
}
