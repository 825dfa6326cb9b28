//! Bursar's load test on Goose: staff browsing, bursars posting payments (with
//! deliberate double submits), and session churn (tabs racing a logout), then
//! the invariants: no 5xx, `check-ledger` clean, no duplicate payment, every
//! balance equal to its charges minus the accepted payments, no session back
//! from the dead, every interruption logged. Exits 1 if any fails.
//!
//! ```sh
//! DATABASE_URL=postgres://… BURSAR_LOADTEST_LOGS=cluster/logs \
//!   loadtest --host http://127.0.0.1:8080 --users 20 --increase-rate 10 \
//!            --run-time 20s --report-file loadtest-report.html
//! ```
//!
//! It writes its own users and students into the database it is given (the
//! one the instances behind `--host` use), so it can check every figure after.
use std::{
    collections::{HashMap, HashSet},
    path::{Path, PathBuf},
    process::ExitCode,
    str::FromStr,
    sync::{
        Mutex, OnceLock,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use bursar::{
    config::Settings,
    db,
    domain::{Amount, Role, Username, student::StudentInput},
    ledger::{
        self,
        entries::{NewCharge, post_charge},
    },
    repo::users,
};
use futures_util::future::join_all;
use goose::prelude::*;
use rand::Rng;
use rust_decimal::Decimal;
use sea_orm::{ConnectionTrait, DatabaseConnection, Statement};
use serde_json::{Value, json};

/// What every simulated user shares: the accounts and students made for this run.
struct Run {
    id: String,
    bursar: (String, String),
    viewer: (String, String),
    students: Vec<i64>,
    charge: Decimal,
}

static RUN: OnceLock<Run> = OnceLock::new();

fn run() -> &'static Run {
    RUN.get().expect("set up before the attack")
}

/// Payments the service accepted: the sum per student, and their keys.
#[derive(Default)]
struct Accepted {
    sums: HashMap<i64, Decimal>,
    keys: HashSet<String>,
}

static ACCEPTED: Mutex<Option<Accepted>> = Mutex::new(None);

#[derive(Default)]
struct Tally {
    double_submits: AtomicUsize,
    double_submit_mismatches: AtomicUsize,
    churn_rounds: AtomicUsize,
    churn_requests: AtomicUsize,
    churn_interrupted: AtomicUsize,
    churn_server_errors: AtomicUsize,
    churn_resurrections: AtomicUsize,
}

static TALLY: OnceLock<Tally> = OnceLock::new();

fn tally() -> &'static Tally {
    TALLY.get_or_init(Tally::default)
}

#[derive(Clone)]
struct Csrf(String);

fn failed(user: &GooseUser, message: &str) -> Box<TransactionError> {
    Box::new(TransactionError::Custom(format!(
        "{message} ({})",
        user.weighted_users_index
    )))
}

async fn api_login(user: &mut GooseUser, account: &(String, String)) -> TransactionResult {
    let response = user
        .post_json(
            "/api/v1/login",
            &json!({"username": account.0, "password": account.1}),
        )
        .await?;
    let body: Value = match response.response {
        Ok(r) if r.status().is_success() => r
            .json()
            .await
            .map_err(|_| failed(user, "login answer unreadable"))?,
        _ => return Err(failed(user, "login refused")),
    };
    let token = body["csrf_token"].as_str().unwrap_or_default().to_string();
    user.set_session_data(Csrf(token));
    Ok(())
}

async fn login_viewer(user: &mut GooseUser) -> TransactionResult {
    api_login(user, &run().viewer).await
}

async fn login_bursar(user: &mut GooseUser) -> TransactionResult {
    api_login(user, &run().bursar).await
}

fn random_student() -> i64 {
    let students = &run().students;
    students[rand::rng().random_range(0..students.len())]
}

/// Two or three letters, as staff type them into the search box.
fn search_term() -> String {
    const STARTS: [&str; 12] = [
        "ka", "mo", "an", "ch", "ba", "lo", "ng", "ok", "ad", "zu", "wa", "pat",
    ];
    STARTS[rand::rng().random_range(0..STARTS.len())].to_string()
}

async fn dashboard(user: &mut GooseUser) -> TransactionResult {
    user.get("/dashboard/").await?;
    Ok(())
}

async fn search_students(user: &mut GooseUser) -> TransactionResult {
    user.get_named(&format!("/students/?q={}", search_term()), "/students/?q=…")
        .await?;
    Ok(())
}

async fn student_page(user: &mut GooseUser) -> TransactionResult {
    user.get_named(
        &format!("/students/{}/", random_student()),
        "/students/{id}/",
    )
    .await?;
    Ok(())
}

async fn payments_list(user: &mut GooseUser) -> TransactionResult {
    user.get_named("/payments/?q=", "/payments/").await?;
    Ok(())
}

/// One payment with a fresh idempotency key; one in five is submitted twice
/// (a double click) and must come back with the same receipt.
async fn record_payment(user: &mut GooseUser) -> TransactionResult {
    let student = random_student();
    let cents: i64 = rand::rng().random_range(100..5_000);
    let amount = format!("{}.{:02}", cents / 100, cents % 100);
    let key = format!("lt-{}-{}", run().id, uuid::Uuid::new_v4());
    let csrf = user
        .get_session_data::<Csrf>()
        .map(|c| c.0.clone())
        .unwrap_or_default();
    let submits = if rand::rng().random_ratio(1, 5) { 2 } else { 1 };
    let mut receipts = Vec::new();
    for _ in 0..submits {
        let builder = user
            .get_request_builder(
                &GooseMethod::Post,
                &format!("/api/v1/students/{student}/payments"),
            )?
            .header("x-csrf-token", &csrf)
            .header("idempotency-key", &key)
            .json(&json!({"amount": amount, "method": "mobile", "reference": "LOADTEST"}));
        let request = GooseRequest::builder()
            .set_request_builder(builder)
            .name("/api/v1/students/{id}/payments")
            .build();
        let response = user.request(request).await?;
        if let Ok(r) = response.response
            && (r.status().as_u16() == 201 || r.status().as_u16() == 200)
            && let Ok(body) = r.json::<Value>().await
        {
            receipts.push(body["receipt_no"].as_str().unwrap_or_default().to_string());
        }
    }
    if submits == 2 {
        tally().double_submits.fetch_add(1, Ordering::Relaxed);
        if receipts.len() == 2 && receipts[0] != receipts[1] {
            tally()
                .double_submit_mismatches
                .fetch_add(1, Ordering::Relaxed);
        }
    }
    if !receipts.is_empty() {
        let mut accepted = ACCEPTED.lock().expect("not poisoned");
        let accepted = accepted.get_or_insert_with(Default::default);
        *accepted.sums.entry(student).or_default() += Decimal::from_str(&amount).expect("decimal");
        accepted.keys.insert(key);
    }
    Ok(())
}

/// A viewer with four tabs open signs out while the tabs load pages that
/// remember their filter: tabs that lose must be sent to the login page,
/// never get an error, and the session must stay gone.
async fn session_churn(user: &mut GooseUser) -> TransactionResult {
    let base = user.base_url.as_str().trim_end_matches('/').to_string();
    let client = reqwest::Client::builder()
        .cookie_store(true)
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(30))
        .build()
        .map_err(|_| failed(user, "client"))?;
    let (name, password) = &run().viewer;
    let login = client
        .post(format!("{base}/api/v1/login"))
        .json(&json!({"username": name, "password": password}))
        .send()
        .await;
    let Ok(login) = login else {
        return Err(failed(user, "churn login"));
    };
    let token = login
        .json::<Value>()
        .await
        .ok()
        .and_then(|b| b["csrf_token"].as_str().map(str::to_string))
        .unwrap_or_default();

    let tabs = (0..4).map(|i| {
        let path = if i % 2 == 0 {
            format!("/students/?q={}", search_term())
        } else {
            format!("/payments/?q={}", search_term())
        };
        client.get(format!("{base}{path}")).send()
    });
    let logout = async {
        let pause = rand::rng().random_range(0..15);
        tokio::time::sleep(Duration::from_millis(pause)).await;
        client
            .post(format!("{base}/api/v1/logout"))
            .header("x-csrf-token", &token)
            .send()
            .await
    };
    let (tabs, logout) = tokio::join!(join_all(tabs), logout);
    let t = tally();
    t.churn_rounds.fetch_add(1, Ordering::Relaxed);
    for response in tabs.into_iter().chain(std::iter::once(logout)) {
        t.churn_requests.fetch_add(1, Ordering::Relaxed);
        match response {
            Ok(r) if r.status().is_server_error() => {
                t.churn_server_errors.fetch_add(1, Ordering::Relaxed);
            }
            Ok(r) if r.status().as_u16() == 303 => {
                if r.headers().get("location").and_then(|l| l.to_str().ok()) == Some("/login/") {
                    t.churn_interrupted.fetch_add(1, Ordering::Relaxed);
                }
            }
            Ok(_) => {}
            Err(_) => {
                t.churn_server_errors.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
    // The old session must not answer anywhere any more.
    if let Ok(r) = client.get(format!("{base}/api/v1/session")).send().await
        && r.status().is_success()
    {
        t.churn_resurrections.fetch_add(1, Ordering::Relaxed);
    }
    Ok(())
}

fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

async fn set_up(db: &DatabaseConnection, students: usize) -> anyhow::Result<Run> {
    let id = uuid::Uuid::new_v4().simple().to_string()[..8].to_string();
    let password = format!("loadtest-{}", uuid::Uuid::new_v4().simple());
    let mut accounts = Vec::new();
    for role in [Role::Bursar, Role::Viewer] {
        let name = format!("lt-{id}-{}", role.as_str());
        let hash = bursar::auth::password::hash_password(password.clone()).await?;
        let user = users::create(
            db,
            &Username::parse(&name).map_err(anyhow::Error::msg)?,
            hash,
            role,
        )
        .await?
        .ok_or_else(|| anyhow::anyhow!("user {name} exists"))?;
        accounts.push((user.id, (name, password.clone())));
    }
    let bursar_id = accounts[0].0;
    let charge = Decimal::from_str("10000.00")?;
    let mut ids = Vec::with_capacity(students);
    for n in 0..students {
        let input = StudentInput {
            admission_no: format!("LT{id}-{n}"),
            first_name: "Load".into(),
            last_name: format!("Test{n:04}"),
            class_name: "Load test".into(),
            ..StudentInput::default()
        };
        let fields = input.parse().map_err(|e| anyhow::anyhow!("{e:?}"))?;
        let student = ledger::students::create(db, bursar_id, &fields).await?;
        let new = NewCharge {
            amount: Amount::parse("10000.00").map_err(anyhow::Error::msg)?,
            description: "Load test fees".into(),
            due_on: None,
        };
        post_charge(db, bursar_id, student.id, &new).await?;
        ids.push(student.id);
    }
    Ok(Run {
        id,
        bursar: accounts[0].1.clone(),
        viewer: accounts[1].1.clone(),
        students: ids,
        charge,
    })
}

/// `session_interrupted` lines for the pages the churn scenario loads.
fn interruption_lines(dir: &Path) -> usize {
    let mut count = 0;
    let mut dirs = vec![dir.to_path_buf()];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
            let path: PathBuf = entry.path();
            if path.is_dir() {
                dirs.push(path);
            } else if entry
                .file_name()
                .to_string_lossy()
                .starts_with("sessions.log")
            {
                let text = std::fs::read_to_string(&path).unwrap_or_default();
                count += text
                    .lines()
                    .filter(|l| {
                        l.contains("session_interrupted")
                            && (l.contains("path=/students/ ") || l.contains("path=/payments/ "))
                    })
                    .count();
            }
        }
    }
    count
}

#[tokio::main]
async fn main() -> ExitCode {
    match attack().await {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(err) => {
            eprintln!("loadtest: {err:#}");
            ExitCode::from(2)
        }
    }
}

async fn attack() -> anyhow::Result<bool> {
    let database_url = env("DATABASE_URL")
        .ok_or_else(|| anyhow::anyhow!("set DATABASE_URL to the database behind --host"))?;
    let logs = env("BURSAR_LOADTEST_LOGS").map(PathBuf::from);
    let students: usize = env("BURSAR_LOADTEST_STUDENTS")
        .map(|n| n.parse())
        .transpose()?
        .unwrap_or(100);
    let mut settings = Settings::from_lookup(|_| None)?;
    settings.database_url = database_url;
    let db = db::connect(&settings).await?;
    let setup = set_up(&db, students.max(1)).await?;
    let charge = setup.charge;
    let _ = RUN.set(setup);
    let interrupted_before = logs.as_deref().map(interruption_lines).unwrap_or(0);

    let metrics = GooseAttack::initialize()?
        .register_scenario(
            scenario!("staff browsing")
                .set_weight(5)?
                .set_wait_time(Duration::from_millis(50), Duration::from_millis(300))?
                .register_transaction(transaction!(login_viewer).set_on_start())
                .register_transaction(transaction!(dashboard).set_weight(2)?)
                .register_transaction(transaction!(search_students).set_weight(3)?)
                .register_transaction(transaction!(student_page).set_weight(3)?)
                .register_transaction(transaction!(payments_list)),
        )
        .register_scenario(
            scenario!("bursar posting payments")
                .set_weight(3)?
                .set_wait_time(Duration::from_millis(50), Duration::from_millis(300))?
                .register_transaction(transaction!(login_bursar).set_on_start())
                .register_transaction(transaction!(record_payment).set_weight(3)?)
                .register_transaction(transaction!(student_page)),
        )
        .register_scenario(
            scenario!("session churn")
                .set_weight(1)?
                .set_wait_time(Duration::from_millis(50), Duration::from_millis(200))?
                .register_transaction(transaction!(session_churn)),
        )
        .execute()
        .await?;

    // Let the instances' log writers catch up before counting lines.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let t = tally();
    let mut failures = Vec::new();

    let server_errors: usize = metrics
        .requests
        .values()
        .flat_map(|r| r.status_code_counts.iter())
        .filter(|(status, _)| **status >= 500)
        .map(|(_, n)| *n)
        .sum::<usize>()
        + t.churn_server_errors.load(Ordering::Relaxed);
    let requests: usize = metrics
        .requests
        .values()
        .map(|r| r.success_count + r.fail_count)
        .sum();
    if server_errors > 0 {
        failures.push(format!("{server_errors} answers were 5xx (or no answer)"));
    }

    let report = ledger::check::check(&db).await?;
    if !report.is_clean() {
        failures.push(format!("check-ledger:\n{report}"));
    }

    let Accepted { sums, keys } = ACCEPTED
        .lock()
        .expect("not poisoned")
        .take()
        .unwrap_or_default();
    let stored = db
        .query_one_raw(Statement::from_string(
            db.get_database_backend(),
            format!(
                "SELECT COUNT(*) AS n FROM payments WHERE idempotency_key LIKE 'lt-{}-%'",
                run().id
            ),
        ))
        .await?
        .map(|row| row.try_get::<i64>("", "n"))
        .transpose()?
        .unwrap_or(0);
    if stored as usize != keys.len() {
        failures.push(format!(
            "{} payments accepted but {stored} stored",
            keys.len()
        ));
    }
    if t.double_submit_mismatches.load(Ordering::Relaxed) > 0 {
        failures.push(format!(
            "{} double submits got two receipts",
            t.double_submit_mismatches.load(Ordering::Relaxed)
        ));
    }
    let mut wrong_balances = 0;
    for id in &run().students {
        let student = ledger::students::get(&db, *id).await?;
        let expected = charge - sums.get(id).copied().unwrap_or_default();
        if student.balance.0.decimal() != expected {
            wrong_balances += 1;
        }
    }
    if wrong_balances > 0 {
        failures.push(format!(
            "{wrong_balances} students' balances differ from their charges minus accepted payments"
        ));
    }
    if t.churn_resurrections.load(Ordering::Relaxed) > 0 {
        failures.push(format!(
            "{} sessions answered after logout",
            t.churn_resurrections.load(Ordering::Relaxed)
        ));
    }
    let observed = t.churn_interrupted.load(Ordering::Relaxed);
    let logged = logs
        .as_deref()
        .map(|dir| interruption_lines(dir) - interrupted_before);
    match logged {
        Some(logged) if logged != observed => {
            failures.push(format!("{observed} requests were interrupted but {logged} session_interrupted lines were logged"))
        }
        _ => {}
    }

    println!();
    println!("Bursar load test — invariants");
    println!("  requests (Goose)            {requests}");
    println!("  5xx or unanswered           {server_errors}");
    println!(
        "  payments accepted           {} (stored {stored}), double submits {}",
        keys.len(),
        t.double_submits.load(Ordering::Relaxed)
    );
    println!(
        "  check-ledger                {}",
        if report.is_clean() {
            "clean"
        } else {
            "MISMATCH"
        }
    );
    println!(
        "  balances checked            {} students, {wrong_balances} wrong",
        run().students.len()
    );
    println!(
        "  session churn               {} rounds, {} requests, {} interrupted, {} resurrected",
        t.churn_rounds.load(Ordering::Relaxed),
        t.churn_requests.load(Ordering::Relaxed),
        observed,
        t.churn_resurrections.load(Ordering::Relaxed)
    );
    match logged {
        Some(logged) => println!("  interruptions logged        {logged}"),
        None => println!(
            "  interruptions logged        not checked (set BURSAR_LOADTEST_LOGS to the instances' log folder)"
        ),
    }
    if failures.is_empty() {
        println!("ALL INVARIANTS HOLD");
        Ok(true)
    } else {
        for failure in &failures {
            println!("FAILED: {failure}");
        }
        Ok(false)
    }
}
