//! S3: Redis round trips per request, counted with MONITOR; no write for a request that changes nothing.
use std::time::Duration;

use bursar::{config::SessionStoreKind, domain::Role};
use reqwest::StatusCode;
use tokio::{
    io::{AsyncBufReadExt, AsyncWriteExt, BufReader},
    net::TcpStream,
    sync::mpsc,
};

use crate::{
    both_backends,
    helpers::{Backend, Browser, TestApp, TestEnv, redis_url},
};

/// Top-level commands Redis executes, as MONITOR shows them (commands run
/// inside a Lua script are shown with `[0 lua]` and are not round trips).
struct Monitor {
    lines: mpsc::UnboundedReceiver<String>,
}

impl Monitor {
    async fn start() -> Self {
        let url = redis_url();
        let address = url
            .trim_start_matches("redis://")
            .trim_end_matches('/')
            .to_string();
        let mut stream = TcpStream::connect(address)
            .await
            .expect("Redis for MONITOR");
        stream.write_all(b"MONITOR\r\n").await.unwrap();
        let (tx, rx) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            let mut reader = BufReader::new(stream).lines();
            while let Ok(Some(line)) = reader.next_line().await {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut monitor = Monitor { lines: rx };
        // Wait for "+OK" so that nothing sent after this is missed.
        let ok = tokio::time::timeout(Duration::from_secs(5), monitor.lines.recv())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(ok, "+OK");
        monitor
    }

    /// Top-level commands seen so far that mention `needle`.
    async fn commands_mentioning(&mut self, needle: &str) -> Vec<String> {
        tokio::time::sleep(Duration::from_millis(300)).await;
        let mut found = Vec::new();
        while let Ok(line) = self.lines.try_recv() {
            if line.contains(needle) && !line.contains(" lua]") {
                found.push(line);
            }
        }
        found
    }
}

fn session_id(browser: &Browser, app: &TestApp) -> String {
    browser
        .session_cookie(app)
        .unwrap()
        .trim_start_matches("bursar_session=")
        .to_string()
}

/// (commands for a read-only authenticated page, commands for a session write)
async fn round_trips(kind: SessionStoreKind) -> (Vec<String>, Vec<String>) {
    let env = TestEnv::new(Backend::PgRedis).await;
    let app = env.spawn_with(|s| s.session_store = kind).await;
    let creds = env.create_user(Role::Viewer).await;
    let browser = Browser::new();
    browser.sign_in(&app, &creds).await;
    // One read first, so that anything lazily created at first use exists.
    assert_eq!(
        browser.get(&app, "/dashboard/").await.status(),
        StatusCode::OK
    );
    let id = session_id(&browser, &app);

    let mut monitor = Monitor::start().await;
    assert_eq!(
        browser.get(&app, "/dashboard/").await.status(),
        StatusCode::OK
    );
    let read = monitor.commands_mentioning(&id).await;

    let response = browser
        .client
        .post(app.url("/_test/session/a"))
        .query(&[("value", "1")])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let write = monitor.commands_mentioning(&id).await;
    (read, write)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn s3_optimistic_store_reads_in_one_round_trip_and_writes_in_two() {
    let (read, write) = round_trips(SessionStoreKind::Optimistic).await;
    println!(
        "optimistic: read {} command(s) {read:#?}\nwrite {} command(s) {write:#?}",
        read.len(),
        write.len()
    );
    assert_eq!(read.len(), 1, "{read:#?}");
    assert!(read[0].contains("\"HGETALL\""), "{read:#?}");
    assert_eq!(write.len(), 2, "{write:#?}");
    assert!(
        write[0].contains("\"HGETALL\"") && write[1].contains("\"EVALSHA\""),
        "{write:#?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn s3_stock_store_round_trips_reported() {
    let (read, write) = round_trips(SessionStoreKind::Stock).await;
    println!(
        "STOCK tower-sessions-redis-store: read {} command(s), write {} command(s)",
        read.len(),
        write.len()
    );
    println!("  read:  {read:?}\n  write: {write:?}");
    assert!(!read.is_empty(), "the stock store was exercised");
}

both_backends!(a_request_that_changes_nothing_writes_nothing);
async fn a_request_that_changes_nothing_writes_nothing(backend: Backend) {
    let env = TestEnv::new(backend).await;
    let app = env.spawn().await;
    let creds = env.create_user(Role::Viewer).await;
    let browser = Browser::new();
    browser.sign_in(&app, &creds).await;
    browser.get(&app, "/dashboard/").await;

    let (loads, saves) = (
        app.metric("bursar_session_loads_total").await,
        app.metric("bursar_session_saves_total").await,
    );
    for _ in 0..10 {
        assert_eq!(
            browser.get(&app, "/dashboard/").await.status(),
            StatusCode::OK
        );
    }
    assert_eq!(app.metric("bursar_session_loads_total").await, loads + 10.0);
    assert_eq!(
        app.metric("bursar_session_saves_total").await,
        saves,
        "reads never save"
    );

    browser
        .client
        .post(app.url("/_test/session/a"))
        .query(&[("value", "1")])
        .send()
        .await
        .unwrap();
    assert_eq!(app.metric("bursar_session_saves_total").await, saves + 1.0);
    // Writing the value it already has changes nothing, so saves nothing.
    browser
        .client
        .post(app.url("/_test/session/a"))
        .query(&[("value", "1")])
        .send()
        .await
        .unwrap();
    assert_eq!(app.metric("bursar_session_saves_total").await, saves + 1.0);
}

/// Sliding expiry is refreshed only once less than half the idle timeout is left.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn expiry_slides_only_after_half_the_idle_time() {
    let env = TestEnv::new(Backend::PgRedis).await;
    let app = env
        .spawn_with(|s| s.session_idle = Duration::from_secs(4))
        .await;
    let creds = env.create_user(Role::Viewer).await;
    let browser = Browser::new();
    browser.sign_in(&app, &creds).await;
    let saves = app.metric("bursar_session_saves_total").await;
    let early = browser.get(&app, "/dashboard/").await;
    assert!(
        crate::helpers::set_session_cookie(&early).is_none(),
        "no refresh with most of the timeout left"
    );
    assert_eq!(app.metric("bursar_session_saves_total").await, saves);

    tokio::time::sleep(Duration::from_millis(2300)).await;
    let late = browser.get(&app, "/dashboard/").await;
    assert_eq!(late.status(), StatusCode::OK);
    assert!(
        crate::helpers::set_session_cookie(&late).is_some(),
        "the cookie slides with the session"
    );
    assert_eq!(app.metric("bursar_session_saves_total").await, saves + 1.0);

    // Active use keeps the session alive past the original timeout.
    tokio::time::sleep(Duration::from_millis(2300)).await;
    assert_eq!(
        browser.get(&app, "/dashboard/").await.status(),
        StatusCode::OK
    );
}
