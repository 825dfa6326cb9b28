//! Deterministic demo data, fast enough for 100,000 students and a million payments (COPY on PostgreSQL).
use std::{
    collections::BTreeMap,
    fmt::Write as _,
    time::{Duration, Instant},
};

use anyhow::{Context, bail};
use chrono::{DateTime, Datelike, Days, NaiveDate, NaiveTime, Utc};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use sea_orm::{
    ConnectionTrait, DatabaseConnection, DbBackend, Statement, TransactionTrait,
    sea_query::{Alias, Query, Value},
};
use serde_json::json;

use super::{
    audit::{self, AuditEntry},
    sql::money,
    today,
};
use crate::domain::{Money, ledger::PaymentMethod};

#[derive(Clone, Copy, Debug)]
pub struct SeedOptions {
    pub students: u64,
    pub payments_per_student: u64,
    pub seed: u64,
}

#[derive(Debug)]
pub struct SeedSummary {
    pub students: u64,
    pub charges: u64,
    pub payments: u64,
    pub elapsed: Duration,
}

const FIRST_NAMES: &[&str] = &[
    "Amina", "Brian", "Chloe", "Daniel", "Esther", "Farah", "George", "Hana", "Isaac", "Joy",
    "Kofi", "Lina", "Moses", "Nadia", "Omar", "Priya", "Quentin", "Rosa", "Samuel", "Tendai",
    "Uma", "Victor", "Wanjiru", "Xavier", "Yara", "Zane", "Abebe", "Beatrice", "Chidi", "Deborah",
    "Emeka", "Fatima", "Grace", "Hassan", "Irene", "James", "Kemi", "Leo", "Mariam", "Noah",
];
const LAST_NAMES: &[&str] = &[
    "Achieng",
    "Bello",
    "Chen",
    "Dlamini",
    "Eze",
    "Fischer",
    "Garcia",
    "Haddad",
    "Ibrahim",
    "Jensen",
    "Kamau",
    "Lopez",
    "Mensah",
    "Nakamura",
    "Okafor",
    "Patel",
    "Quispe",
    "Rossi",
    "Silva",
    "Tanaka",
    "Usman",
    "Varga",
    "Wekesa",
    "Xu",
    "Yilmaz",
    "Zulu",
    "Adeyemi",
    "Banda",
    "Cohen",
    "Diallo",
    "Evans",
    "Fofana",
    "Gupta",
    "Hoang",
    "Ivanova",
    "Juma",
    "Kariuki",
    "Lindqvist",
    "Moyo",
    "Njoroge",
];
const STREAMS: &[&str] = &["East", "West"];

struct SeedStudent {
    id: i64,
    admission_no: String,
    first_name: &'static str,
    last_name: &'static str,
    class_name: String,
    guardian_name: String,
    guardian_phone: String,
    guardian_email: String,
    status: &'static str,
    charged: Money,
    paid: Money,
}

struct SeedCharge {
    id: i64,
    student_id: i64,
    amount: Money,
    description: String,
    due_on: NaiveDate,
    posted_on: NaiveDate,
}

struct SeedPayment {
    id: i64,
    student_id: i64,
    amount: Money,
    method: PaymentMethod,
    reference: String,
    paid_on: NaiveDate,
    receipt_no: String,
}

#[derive(Default)]
struct Chunk {
    students: Vec<SeedStudent>,
    charges: Vec<SeedCharge>,
    payments: Vec<SeedPayment>,
}

/// Everything generated so far that is written once at the end.
#[derive(Default)]
struct Running {
    next_charge: i64,
    next_payment: i64,
    receipts: BTreeMap<i32, i64>,
    days: BTreeMap<NaiveDate, (Money, Money)>,
}

fn at_nine(day: NaiveDate) -> DateTime<Utc> {
    day.and_time(NaiveTime::from_hms_opt(9, 0, 0).expect("valid"))
        .and_utc()
}

/// Student `index` (0-based) with its charges and payments. Each student has
/// a random generator of its own, derived from the seed, so the data is the
/// same whatever the chunking.
fn generate(
    index: u64,
    options: &SeedOptions,
    today: NaiveDate,
    running: &mut Running,
    chunk: &mut Chunk,
) {
    let mut rng = ChaCha8Rng::seed_from_u64(
        options
            .seed
            .wrapping_mul(0x9E37_79B9_7F4A_7C15)
            .wrapping_add(index),
    );
    let id = index as i64 + 1;
    let first_name = FIRST_NAMES[rng.random_range(0..FIRST_NAMES.len())];
    let last_name = LAST_NAMES[rng.random_range(0..LAST_NAMES.len())];
    let grade = rng.random_range(1..=8u32);
    let guardian_first = FIRST_NAMES[rng.random_range(0..FIRST_NAMES.len())];
    let mut student = SeedStudent {
        id,
        admission_no: format!("ADM{:06}", index + 1),
        first_name,
        last_name,
        class_name: format!(
            "Grade {grade} {}",
            STREAMS[rng.random_range(0..STREAMS.len())]
        ),
        guardian_name: format!("{guardian_first} {last_name}"),
        guardian_phone: format!(
            "+254 7{:02} {:03} {:03}",
            rng.random_range(0..100),
            rng.random_range(0..1000),
            rng.random_range(0..1000)
        ),
        guardian_email: format!(
            "{}.{}{}@example.org",
            guardian_first.to_lowercase(),
            last_name.to_lowercase(),
            index + 1
        ),
        status: if rng.random_ratio(1, 20) {
            "left"
        } else {
            "active"
        },
        charged: Money::ZERO,
        paid: Money::ZERO,
    };

    // Three terms of tuition over the past year, dearer in higher grades.
    let fee = Money::from_minor(1_200_000 + i64::from(grade) * 150_000);
    for (term, days_ago) in [(1, 330u64), (2, 210), (3, 90)] {
        running.next_charge += 1;
        let posted_on = today.checked_sub_days(Days::new(days_ago)).unwrap_or(today);
        chunk.charges.push(SeedCharge {
            id: running.next_charge,
            student_id: id,
            amount: fee,
            description: format!("Term {term} tuition"),
            due_on: posted_on
                .checked_add_days(Days::new(30))
                .unwrap_or(posted_on),
            posted_on,
        });
        student.charged = student.charged + fee;
        running.days.entry(posted_on).or_default().0 =
            running.days.entry(posted_on).or_default().0 + fee;
    }

    for _ in 0..options.payments_per_student {
        running.next_payment += 1;
        let paid_on = today
            .checked_sub_days(Days::new(rng.random_range(0..365)))
            .unwrap_or(today);
        let amount = Money::from_minor(rng.random_range(50_000..=400_000));
        let method = PaymentMethod::ALL[rng.random_range(0..PaymentMethod::ALL.len())];
        let reference = match method {
            PaymentMethod::Mobile => format!("MP{:08}", rng.random_range(0..100_000_000u32)),
            PaymentMethod::Bank => format!("TRF-{:06}", rng.random_range(0..1_000_000u32)),
            PaymentMethod::Cheque => format!("CHQ {:06}", rng.random_range(0..1_000_000u32)),
            _ => String::new(),
        };
        let seq = running.receipts.entry(paid_on.year()).or_default();
        *seq += 1;
        chunk.payments.push(SeedPayment {
            id: running.next_payment,
            student_id: id,
            amount,
            method,
            reference,
            paid_on,
            receipt_no: format!("R{}-{:06}", paid_on.year(), seq),
        });
        student.paid = student.paid + amount;
        running.days.entry(paid_on).or_default().1 =
            running.days.entry(paid_on).or_default().1 + amount;
    }
    chunk.students.push(student);
}

/// Students per batch: big enough for speed, small enough for memory.
const CHUNK: u64 = 5_000;

/// Where generated rows go: COPY inside one PostgreSQL transaction, or
/// batched INSERTs inside one SQLite transaction. Either way a failure
/// leaves the database as it was.
enum Sink {
    Postgres(sea_orm::sqlx::Transaction<'static, sea_orm::sqlx::Postgres>),
    Other(sea_orm::DatabaseTransaction, DbBackend),
}

impl Sink {
    async fn write(&mut self, chunk: &Chunk, user_id: i64) -> anyhow::Result<()> {
        match self {
            Sink::Postgres(tx) => copy_chunk(tx, chunk, user_id).await,
            Sink::Other(txn, backend) => insert_chunk(txn, *backend, chunk, user_id).await,
        }
    }

    /// The per-day totals, the receipt counters and the audit entry, then commit.
    async fn finish(
        self,
        running: &Running,
        user_id: i64,
        summary: serde_json::Value,
    ) -> anyhow::Result<()> {
        match self {
            Sink::Postgres(mut tx) => {
                let mut days = String::new();
                for (day, (charged, paid)) in &running.days {
                    writeln!(days, "{day}\t{charged}\t{paid}")?;
                }
                let mut receipts = String::new();
                for (year, last) in &running.receipts {
                    writeln!(receipts, "{year}\t{last}")?;
                }
                copy(
                    &mut tx,
                    "COPY ledger_daily (day, charged, paid) FROM STDIN",
                    days,
                )
                .await?;
                copy(
                    &mut tx,
                    "COPY receipt_counters (year, last_seq) FROM STDIN",
                    receipts,
                )
                .await?;
                // The rows were written with explicit ids: move the sequences past them.
                sea_orm::sqlx::query(
                    "SELECT setval(pg_get_serial_sequence('students', 'id'), GREATEST((SELECT MAX(id) FROM students), 1)),
                            setval(pg_get_serial_sequence('charges', 'id'), GREATEST((SELECT MAX(id) FROM charges), 1)),
                            setval(pg_get_serial_sequence('payments', 'id'), GREATEST((SELECT MAX(id) FROM payments), 1))",
                )
                .execute(&mut *tx)
                .await?;
                sea_orm::sqlx::query(
                    "INSERT INTO audit_log (user_id, action, entity, after, created_at) VALUES ($1, 'seed', 'database', $2, now())",
                )
                .bind(user_id)
                .bind(summary.to_string())
                .execute(&mut *tx)
                .await?;
                tx.commit().await?;
            }
            Sink::Other(txn, backend) => {
                for (day, (charged, paid)) in &running.days {
                    let statement = Query::insert()
                        .into_table(Alias::new("ledger_daily"))
                        .columns([Alias::new("day"), Alias::new("charged"), Alias::new("paid")])
                        .values_panic([
                            (*day).into(),
                            money(backend, *charged).into(),
                            money(backend, *paid).into(),
                        ])
                        .to_owned();
                    txn.execute(&statement).await?;
                }
                for (year, last) in &running.receipts {
                    let statement = Query::insert()
                        .into_table(Alias::new("receipt_counters"))
                        .columns([Alias::new("year"), Alias::new("last_seq")])
                        .values_panic([(*year).into(), (*last).into()])
                        .to_owned();
                    txn.execute(&statement).await?;
                }
                audit::record(
                    &txn,
                    AuditEntry {
                        user_id: Some(user_id),
                        action: "seed",
                        entity: "database",
                        entity_id: None,
                        before: None,
                        after: Some(summary),
                    },
                )
                .await?;
                txn.commit().await?;
            }
        }
        Ok(())
    }
}

/// Fills an empty database with `options.students` students, three charges
/// each and `payments_per_student` payments each, all attributed to `user_id`.
pub async fn seed(
    db: &DatabaseConnection,
    user_id: i64,
    options: SeedOptions,
) -> anyhow::Result<SeedSummary> {
    let started = Instant::now();
    let backend = db.get_database_backend();
    let existing = db
        .query_one_raw(Statement::from_string(
            backend,
            "SELECT (SELECT COUNT(*) FROM students) + (SELECT COUNT(*) FROM payments) + (SELECT COUNT(*) FROM charges) AS n",
        ))
        .await?
        .map(|row| row.try_get::<i64>("", "n"))
        .transpose()?
        .unwrap_or(0);
    if existing > 0 {
        bail!("seed fills an empty database; this one already has students or ledger entries");
    }
    let today = today();
    let mut running = Running::default();
    let mut sink = match backend {
        DbBackend::Postgres => {
            let mut tx = db.get_postgres_connection_pool().begin().await?;
            // The rows are generated consistent (and check-ledger proves it),
            // so a superuser skips the foreign-key triggers, which would
            // otherwise fire twice for each of 1.3 million rows. Anyone else
            // seeds with the checks on, only slower.
            let superuser: bool = sea_orm::sqlx::query_scalar(
                "SELECT rolsuper FROM pg_roles WHERE rolname = current_user",
            )
            .fetch_one(&mut *tx)
            .await?;
            if superuser {
                sea_orm::sqlx::query("SET LOCAL session_replication_role = replica")
                    .execute(&mut *tx)
                    .await?;
            }
            Sink::Postgres(tx)
        }
        _ => Sink::Other(db.begin().await?, backend),
    };
    let mut summary = SeedSummary {
        students: 0,
        charges: 0,
        payments: 0,
        elapsed: Duration::ZERO,
    };
    let mut start = 0;
    while start < options.students {
        let end = (start + CHUNK).min(options.students);
        let mut chunk = Chunk::default();
        for index in start..end {
            generate(index, &options, today, &mut running, &mut chunk);
        }
        summary.students += chunk.students.len() as u64;
        summary.charges += chunk.charges.len() as u64;
        summary.payments += chunk.payments.len() as u64;
        sink.write(&chunk, user_id).await?;
        start = end;
    }
    let described = json!({
        "students": summary.students, "charges": summary.charges, "payments": summary.payments, "seed": options.seed,
    });
    sink.finish(&running, user_id, described).await?;
    if backend == DbBackend::Postgres {
        // Fresh statistics everywhere, and for students (whose lists are
        // counted on every page) a visibility map, so that counts come from
        // indexes alone. Vacuuming the million payments would double the
        // seeding time; autovacuum gets to them. One statement each: VACUUM
        // cannot run in the implicit transaction of a multi-statement query.
        for statement in [
            "VACUUM ANALYZE students",
            "ANALYZE charges",
            "ANALYZE payments",
            "ANALYZE ledger_daily",
        ] {
            db.execute_unprepared(statement)
                .await
                .context("statistics after seeding")?;
        }
    }
    summary.elapsed = started.elapsed();
    Ok(summary)
}

async fn copy(
    tx: &mut sea_orm::sqlx::Transaction<'static, sea_orm::sqlx::Postgres>,
    statement: &str,
    data: String,
) -> anyhow::Result<()> {
    let mut copy = tx
        .copy_in_raw(statement)
        .await
        .with_context(|| format!("starting {statement}"))?;
    copy.send(data.into_bytes())
        .await
        .with_context(|| format!("sending {statement}"))?;
    copy.finish()
        .await
        .with_context(|| format!("finishing {statement}"))?;
    Ok(())
}

/// Text-format COPY escaping for the characters our generated text could hold.
fn copy_text(out: &mut String, text: &str) {
    for c in text.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\t' => out.push_str("\\t"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            c => out.push(c),
        }
    }
}

async fn copy_chunk(
    tx: &mut sea_orm::sqlx::Transaction<'static, sea_orm::sqlx::Postgres>,
    chunk: &Chunk,
    user_id: i64,
) -> anyhow::Result<()> {
    let now = Utc::now();
    let mut students = String::with_capacity(chunk.students.len() * 200);
    for s in &chunk.students {
        write!(students, "{}\t", s.id)?;
        for field in [
            s.admission_no.as_str(),
            s.first_name,
            s.last_name,
            &s.class_name,
            &s.guardian_name,
            &s.guardian_phone,
            &s.guardian_email,
            s.status,
        ] {
            copy_text(&mut students, field);
            students.push('\t');
        }
        writeln!(
            students,
            "{}\t{}\t{}\t{}\t{}",
            s.charged,
            s.paid,
            s.charged - s.paid,
            now.to_rfc3339(),
            now.to_rfc3339()
        )?;
    }
    let mut charges = String::with_capacity(chunk.charges.len() * 120);
    for c in &chunk.charges {
        writeln!(
            charges,
            "{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}",
            c.id,
            c.student_id,
            c.amount,
            c.description,
            c.due_on,
            c.posted_on,
            user_id,
            at_nine(c.posted_on).to_rfc3339()
        )?;
    }
    let mut payments = String::with_capacity(chunk.payments.len() * 140);
    for p in &chunk.payments {
        write!(
            payments,
            "{}\t{}\t{}\t{}\t",
            p.id, p.student_id, p.amount, p.method
        )?;
        copy_text(&mut payments, &p.reference);
        writeln!(
            payments,
            "\t{}\t{}\tseed-{}\t{}\t{}",
            p.paid_on,
            p.receipt_no,
            p.id,
            user_id,
            (at_nine(p.paid_on) + chrono::Duration::seconds(p.id % 28_800)).to_rfc3339()
        )?;
    }
    let copies = [
        (
            "COPY students (id, admission_no, first_name, last_name, class_name, guardian_name, guardian_phone, guardian_email, status, charged_total, paid_total, balance, created_at, updated_at) FROM STDIN",
            students,
        ),
        (
            "COPY charges (id, student_id, amount, description, due_on, posted_on, created_by, created_at) FROM STDIN",
            charges,
        ),
        (
            "COPY payments (id, student_id, amount, method, reference, paid_on, receipt_no, idempotency_key, created_by, created_at) FROM STDIN",
            payments,
        ),
    ];
    for (statement, data) in copies {
        copy(tx, statement, data).await?;
    }
    Ok(())
}

async fn insert_chunk(
    txn: &sea_orm::DatabaseTransaction,
    backend: DbBackend,
    chunk: &Chunk,
    user_id: i64,
) -> anyhow::Result<()> {
    let now = Utc::now();
    let column = |names: &[&str]| names.iter().map(|n| Alias::new(*n)).collect::<Vec<_>>();
    for students in chunk.students.chunks(500) {
        let mut statement = Query::insert();
        statement
            .into_table(Alias::new("students"))
            .columns(column(&[
                "id",
                "admission_no",
                "first_name",
                "last_name",
                "class_name",
                "guardian_name",
                "guardian_phone",
                "guardian_email",
                "status",
                "charged_total",
                "paid_total",
                "balance",
                "created_at",
                "updated_at",
            ]));
        for s in students {
            let values: Vec<Value> = vec![
                s.id.into(),
                s.admission_no.clone().into(),
                s.first_name.into(),
                s.last_name.into(),
                s.class_name.clone().into(),
                s.guardian_name.clone().into(),
                s.guardian_phone.clone().into(),
                s.guardian_email.clone().into(),
                s.status.into(),
                money(backend, s.charged),
                money(backend, s.paid),
                money(backend, s.charged - s.paid),
                now.into(),
                now.into(),
            ];
            statement.values_panic(values.into_iter().map(Into::into));
        }
        txn.execute(&statement).await?;
    }
    for charges in chunk.charges.chunks(500) {
        let mut statement = Query::insert();
        statement
            .into_table(Alias::new("charges"))
            .columns(column(&[
                "id",
                "student_id",
                "amount",
                "description",
                "due_on",
                "posted_on",
                "created_by",
                "created_at",
            ]));
        for c in charges {
            let values: Vec<Value> = vec![
                c.id.into(),
                c.student_id.into(),
                money(backend, c.amount),
                c.description.clone().into(),
                c.due_on.into(),
                c.posted_on.into(),
                user_id.into(),
                at_nine(c.posted_on).into(),
            ];
            statement.values_panic(values.into_iter().map(Into::into));
        }
        txn.execute(&statement).await?;
    }
    for payments in chunk.payments.chunks(500) {
        let mut statement = Query::insert();
        statement
            .into_table(Alias::new("payments"))
            .columns(column(&[
                "id",
                "student_id",
                "amount",
                "method",
                "reference",
                "paid_on",
                "receipt_no",
                "idempotency_key",
                "created_by",
                "created_at",
            ]));
        for p in payments {
            let values: Vec<Value> = vec![
                p.id.into(),
                p.student_id.into(),
                money(backend, p.amount),
                p.method.as_str().into(),
                p.reference.clone().into(),
                p.paid_on.into(),
                p.receipt_no.clone().into(),
                format!("seed-{}", p.id).into(),
                user_id.into(),
                (at_nine(p.paid_on) + chrono::Duration::seconds(p.id % 28_800)).into(),
            ];
            statement.values_panic(values.into_iter().map(Into::into));
        }
        txn.execute(&statement).await?;
    }
    Ok(())
}
