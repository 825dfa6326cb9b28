//! What ops rely on: graceful SIGTERM, rolling restarts through the balancer, and metrics that move.
use std::{
    process::{Child, Command, Stdio},
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use bursar::domain::Role;
use reqwest::StatusCode;
use sea_orm::{ConnectionTrait, TransactionTrait};
use serde_json::{Value, json};

use crate::helpers::{
    Api, Backend, Browser, Credentials, TestApp, TestEnv, free_port, plain_client,
};

const BIN: &str = env!("CARGO_BIN_EXE_bursar");

/// A `bursar serve` process on the test's database and Redis prefix.
struct Process {
    child: Child,
    app: TestApp,
    _logs: tempfile::TempDir,
}

impl Process {
    fn start(env: &TestEnv) -> Self {
        let port = free_port();
        let logs = tempfile::tempdir().unwrap();
        let child = Command::new(BIN)
            .arg("serve")
            .env("DATABASE_URL", &env.database_url)
            .env("REDIS_URL", env.redis_url.as_deref().unwrap_or_default())
            .env("BURSAR_REDIS_PREFIX", &env.redis_prefix)
            .env("BURSAR_BIND", format!("127.0.0.1:{port}"))
            .env("BURSAR_INSTANCE_ID", format!("proc-{port}"))
            .env("BURSAR_LOG_DIR", logs.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(30);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "bursar did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
        Process {
            child,
            app: TestApp::external(format!("http://127.0.0.1:{port}"), format!("proc-{port}")),
            _logs: logs,
        }
    }

    fn signal(&self, name: &str) {
        Command::new("kill")
            .args([&format!("-{name}"), &self.child.id().to_string()])
            .status()
            .unwrap();
    }

    async fn wait_exit(&mut self, within: Duration) -> std::process::ExitStatus {
        let deadline = Instant::now() + within;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(Instant::now() < deadline, "still running");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sigterm_lets_the_request_in_flight_finish_then_exits_cleanly() {
    let env = TestEnv::new(Backend::PgRedis).await;
    let creds = env.create_user(Role::Bursar).await;
    let mut process = Process::start(&env);
    let api = Api::sign_in(&process.app, &creds).await;

    // Hold the students table so that creating a student waits: a request
    // that is genuinely slow, in flight when the signal arrives.
    let db = env.db().await;
    let lock = db.begin().await.unwrap();
    lock.execute_unprepared("LOCK TABLE students IN EXCLUSIVE MODE")
        .await
        .unwrap();
    let slow = {
        let client = api.browser.client.clone();
        let url = process.app.url("/api/v1/students");
        let csrf = api.csrf.clone();
        tokio::spawn(async move {
            client
                .post(url)
                .header("x-csrf-token", csrf)
                .json(&json!({"admission_no": "SLOW-1", "first_name": "Slow", "last_name": "Request", "class_name": "G1"}))
                .send()
                .await
        })
    };
    tokio::time::sleep(Duration::from_millis(500)).await;
    process.signal("TERM");
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert!(
        process.child.try_wait().unwrap().is_none(),
        "it waits for the request in flight"
    );
    assert!(
        plain_client()
            .get(process.app.url("/health/live"))
            .send()
            .await
            .is_err(),
        "it no longer accepts new connections"
    );

    lock.commit().await.unwrap();
    let response = slow
        .await
        .unwrap()
        .expect("the request in flight is answered");
    assert_eq!(response.status(), StatusCode::CREATED);
    let status = process.wait_exit(Duration::from_secs(10)).await;
    assert!(status.success(), "exit status {status:?}");
}

/// `scripts/cluster` on free ports, torn down however the test ends.
struct Cluster {
    dir: tempfile::TempDir,
    lb_port: u16,
    env: Vec<(String, String)>,
}

impl Cluster {
    fn run(&self, args: &[&str]) -> std::process::Output {
        let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/cluster");
        Command::new(script)
            .arg("--dir")
            .arg(self.dir.path())
            .args(args)
            .envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .output()
            .unwrap()
    }

    fn up(env: &TestEnv, instances: usize) -> Self {
        let lb_port = free_port();
        // Room for the instances' ports: a free block well away from others.
        let base = 20_000 + (free_port() % 20_000);
        let cluster = Cluster {
            dir: tempfile::tempdir().unwrap(),
            lb_port,
            env: vec![
                ("DATABASE_URL".into(), env.database_url.clone()),
                (
                    "REDIS_URL".into(),
                    env.redis_url.clone().unwrap_or_default(),
                ),
                ("BURSAR_REDIS_PREFIX".into(), env.redis_prefix.clone()),
                ("BURSAR_BIN".into(), BIN.into()),
                ("BURSAR_CLUSTER_NAME".into(), format!("c{lb_port}")),
            ],
        };
        let output = cluster.run(&[
            "-n",
            &instances.to_string(),
            "-p",
            &lb_port.to_string(),
            "--base-port",
            &base.to_string(),
            "up",
        ]);
        assert!(
            output.status.success(),
            "cluster up: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        let said = String::from_utf8_lossy(&output.stdout);
        assert!(
            said.contains(&format!("http://127.0.0.1:{lb_port}")),
            "it prints the balancer's address: {said}"
        );
        cluster
    }

    fn app(&self) -> TestApp {
        TestApp::external(
            format!("http://127.0.0.1:{}", self.lb_port),
            "balancer".into(),
        )
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let _ = self.run(&["down"]);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn rolling_restart_behind_the_balancer_fails_no_request_and_keeps_the_user_signed_in() {
    let env = TestEnv::new(Backend::PgRedis).await;
    let creds: Credentials = env.create_user(Role::Viewer).await;
    let cluster = Cluster::up(&env, 3);
    let status = cluster.run(&["status"]);
    assert!(status.status.success());
    assert_eq!(
        String::from_utf8_lossy(&status.stdout)
            .matches("\"status\":\"ready\"")
            .count(),
        3
    );

    let lb = cluster.app();
    let browser = Browser::new();
    browser.sign_in(&lb, &creds).await;

    // A client requesting all the time, as staff do.
    let stop = Arc::new(AtomicBool::new(false));
    let (ok, failed) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let mut clients = Vec::new();
    for _ in 0..3 {
        let (browser, url, stop, ok, failed, user) = (
            browser.clone(),
            lb.url("/dashboard/"),
            stop.clone(),
            ok.clone(),
            failed.clone(),
            creds.username.clone(),
        );
        clients.push(tokio::spawn(async move {
            let mut failures = Vec::new();
            while !stop.load(Ordering::Relaxed) {
                match browser.client.get(&url).send().await {
                    Ok(r) if r.status() == StatusCode::OK => {
                        let page = r.text().await.unwrap_or_default();
                        if page.contains(&user) {
                            ok.fetch_add(1, Ordering::Relaxed);
                        } else {
                            failed.fetch_add(1, Ordering::Relaxed);
                            failures.push("a page without the user".to_string());
                        }
                    }
                    Ok(r) => {
                        failed.fetch_add(1, Ordering::Relaxed);
                        failures.push(format!("status {}", r.status()));
                    }
                    Err(e) => {
                        failed.fetch_add(1, Ordering::Relaxed);
                        failures.push(format!("error {e}"));
                    }
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            failures
        }));
    }
    for i in 1..=3 {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let restarted = tokio::task::spawn_blocking({
            let dir = cluster.dir.path().to_path_buf();
            let env = cluster.env.clone();
            move || {
                Command::new(
                    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/cluster"),
                )
                .arg("--dir")
                .arg(dir)
                .args(["restart", &i.to_string()])
                .envs(env)
                .output()
                .unwrap()
            }
        })
        .await
        .unwrap();
        assert!(
            restarted.status.success(),
            "restart {i}: {}",
            String::from_utf8_lossy(&restarted.stderr)
        );
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    stop.store(true, Ordering::Relaxed);
    let mut failures = Vec::new();
    for client in clients {
        failures.extend(client.await.unwrap());
    }
    let (ok, failed) = (ok.load(Ordering::Relaxed), failed.load(Ordering::Relaxed));
    println!("rolling restart of 3 instances: {ok} requests answered, {failed} failed");
    assert!(ok > 100, "the client kept requesting ({ok})");
    assert_eq!(failed, 0, "{failures:?}");
    assert_eq!(
        browser.get(&lb, "/dashboard/").await.status(),
        StatusCode::OK,
        "still signed in"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn metrics_name_every_series_and_they_move() {
    let env = TestEnv::new(Backend::PgRedis).await;
    let app = env.spawn().await;
    let creds = env.create_user(Role::Bursar).await;
    let metrics = || async {
        plain_client()
            .get(app.url("/metrics"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    };
    // Families appear once they have a series: make one request first.
    plain_client()
        .get(app.url("/health/live"))
        .send()
        .await
        .unwrap();
    let before = metrics().await;
    for series in [
        "bursar_http_requests counter",
        "bursar_http_request_duration_seconds histogram",
        "bursar_session_loads counter",
        "bursar_session_saves counter",
        "bursar_session_conflicts counter",
        "bursar_session_interruptions counter",
        "bursar_db_errors counter",
        "bursar_redis_errors counter",
        "bursar_db_pool_connections gauge",
        "bursar_db_pool_idle gauge",
    ] {
        assert!(
            before.contains(&format!("# TYPE {series}")),
            "{series} missing from /metrics:\n{before}"
        );
    }

    let api = Api::sign_in(&app, &creds).await;
    for _ in 0..3 {
        assert_eq!(
            api.get(&app, "/api/v1/dashboard").await.status(),
            StatusCode::OK
        );
    }
    let after = metrics().await;
    let dashboard =
        "bursar_http_requests_total{method=\"GET\",route=\"/api/v1/dashboard\",status=\"200\"} 3";
    assert!(after.contains(dashboard), "{after}");
    assert!(
        after.contains("bursar_http_request_duration_seconds_count{route=\"/api/v1/dashboard\"} 3")
    );
    assert!(app.metric("bursar_session_loads_total").await >= 3.0);
    assert!(
        app.metric("bursar_session_saves_total").await >= 1.0,
        "the login saved a session"
    );
    assert!(app.metric("bursar_db_pool_connections").await >= 1.0);

    // A database that fails is counted (here: a table pulled away).
    let db = env.db().await;
    db.execute_unprepared("ALTER TABLE ledger_daily RENAME TO ledger_daily_away")
        .await
        .unwrap();
    let response = api.get(&app, "/api/v1/dashboard").await;
    assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
    let body: Value = response.json().await.unwrap();
    assert_eq!(
        body["error"]["code"], "internal",
        "no detail of the failure leaks: {body}"
    );
    db.execute_unprepared("ALTER TABLE ledger_daily_away RENAME TO ledger_daily")
        .await
        .unwrap();
    assert_eq!(app.metric("bursar_db_errors_total").await, 1.0);
}
