//! S7: Redis stops, slows down and comes back while the instance keeps running.
use std::{
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use bursar::domain::Role;
use reqwest::StatusCode;
use serde_json::Value;

use crate::helpers::{Backend, Browser, TestEnv, location, plain_client};

/// A redis-server of the test's own, on a free port.
struct OwnRedis {
    port: u16,
    child: Option<Child>,
}

impl OwnRedis {
    fn start_on(port: u16) -> Self {
        let child = Command::new("redis-server")
            .args([
                "--port",
                &port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server must be installed for the outage test");
        let redis = OwnRedis {
            port,
            child: Some(child),
        };
        let deadline = Instant::now() + Duration::from_secs(5);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "redis-server did not start on {port}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        redis
    }

    fn start() -> Self {
        let port = crate::helpers::free_port();
        Self::start_on(port)
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    fn cli(&self, args: &[&str]) {
        let status = Command::new("redis-cli")
            .args(["-p", &self.port.to_string()])
            .args(args)
            .stdout(Stdio::null())
            .status()
            .expect("redis-cli");
        assert!(status.success());
    }
}

impl Drop for OwnRedis {
    fn drop(&mut self) {
        self.stop();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn s7_redis_down_means_503_quickly_and_service_resumes_without_restart() {
    let mut redis = OwnRedis::start();
    let mut env = TestEnv::new(Backend::PgRedis).await;
    env.redis_url = Some(redis.url());
    let app = env.spawn().await;
    let creds = env.create_user(Role::Viewer).await;
    let browser = Browser::new();
    browser.sign_in(&app, &creds).await;
    assert_eq!(
        browser.get(&app, "/dashboard/").await.status(),
        StatusCode::OK
    );

    redis.stop();
    for path in ["/dashboard/", "/api/v1/session", "/login/"] {
        let started = Instant::now();
        let response = browser.get(&app, path).await;
        let took = started.elapsed();
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE, "{path}");
        assert!(took < Duration::from_secs(2), "{path} took {took:?}");
        if path.starts_with("/api/") {
            let body: Value = response.json().await.unwrap();
            assert_eq!(body["error"]["code"], "unavailable");
        } else {
            assert!(
                response
                    .text()
                    .await
                    .unwrap()
                    .contains("temporarily unavailable")
            );
        }
    }
    let live = plain_client()
        .get(app.url("/health/live"))
        .send()
        .await
        .unwrap();
    assert_eq!(live.status(), StatusCode::OK);
    assert!(
        app.metric("bursar_redis_errors_total").await >= 1.0,
        "Redis failures are counted"
    );
    let ready = plain_client()
        .get(app.url("/health/ready"))
        .send()
        .await
        .unwrap();
    assert_eq!(ready.status(), StatusCode::SERVICE_UNAVAILABLE);

    // Redis returns (empty: it keeps nothing on disk). The same instance
    // serves again: the old session is gone, so sign in anew.
    let _redis = OwnRedis::start_on(redis.port);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let ready = plain_client()
            .get(app.url("/health/ready"))
            .send()
            .await
            .unwrap();
        if ready.status() == StatusCode::OK {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the instance never became ready again"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let response = browser.get(&app, "/dashboard/").await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    assert!(location(&response).starts_with("/login/"));
    browser.sign_in(&app, &creds).await;
    assert_eq!(
        browser.get(&app, "/dashboard/").await.status(),
        StatusCode::OK
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn s7_slow_redis_means_503_within_two_seconds() {
    let redis = OwnRedis::start();
    let mut env = TestEnv::new(Backend::PgRedis).await;
    env.redis_url = Some(redis.url());
    let app = env.spawn().await;
    let creds = env.create_user(Role::Viewer).await;
    let browser = Browser::new();
    browser.sign_in(&app, &creds).await;

    redis.cli(&["CLIENT", "PAUSE", "4000", "ALL"]);
    let started = Instant::now();
    let response = browser.get(&app, "/dashboard/").await;
    let took = started.elapsed();
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(took < Duration::from_secs(2), "took {took:?}");

    tokio::time::sleep(Duration::from_millis(4500)).await;
    assert_eq!(
        browser.get(&app, "/dashboard/").await.status(),
        StatusCode::OK,
        "the session survived the pause"
    );
}
