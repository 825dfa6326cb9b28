//! S4 and S5 under real concurrency: two instances, one session, the load–save window widened.
use std::time::Duration;

use bursar::{config::SessionStoreKind, domain::Role};
use futures::future::join_all;
use reqwest::{StatusCode, header};
use serde_json::{Value, json};

use crate::{
    both_backends,
    helpers::{
        Backend, Credentials, TestApp, TestEnv, location, log_lines, plain_client,
        wait_for_log_lines,
    },
};

const TRIALS: usize = 200;
const WORKERS: usize = 10;
/// How long the racing request sleeps between loading its session and saving it.
const WINDOW_MS: u64 = 40;
/// The writer's window in the logout race (the logout is sent 10 ms in).
const LOGOUT_WINDOW_MS: u64 = 150;

/// A signed-in session driven by hand: its cookie and CSRF token.
struct Tab {
    cookie: String,
    csrf: String,
}

async fn api_sign_in(app: &TestApp, creds: &Credentials) -> Tab {
    let response = plain_client()
        .post(app.url("/api/v1/login"))
        .json(&json!({"username": creds.username, "password": creds.password}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let cookie = crate::helpers::set_session_cookie(&response)
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_string();
    let body: Value = response.json().await.unwrap();
    Tab {
        cookie,
        csrf: body["csrf_token"].as_str().unwrap().to_string(),
    }
}

async fn write_key(
    app: &TestApp,
    tab: &Tab,
    slot: &str,
    value: &str,
    delay_ms: u64,
) -> reqwest::Response {
    write_key_at(app, tab, &format!("/_test/session/{slot}"), value, delay_ms).await
}

async fn write_key_at(
    app: &TestApp,
    tab: &Tab,
    path: &str,
    value: &str,
    delay_ms: u64,
) -> reqwest::Response {
    plain_client()
        .post(app.url(path))
        .query(&[("value", value), ("delay_ms", &delay_ms.to_string())])
        .header(header::COOKIE, &tab.cookie)
        .send()
        .await
        .unwrap()
}

async fn read_keys(app: &TestApp, tab: &Tab) -> reqwest::Response {
    plain_client()
        .get(app.url("/_test/session"))
        .header(header::COOKIE, &tab.cookie)
        .send()
        .await
        .unwrap()
}

async fn total(apps: &[TestApp], metric: &str) -> f64 {
    let mut sum = 0.0;
    for app in apps {
        sum += app.metric(metric).await;
    }
    sum
}

#[derive(Default, Debug)]
struct Figures {
    trials: usize,
    lost_updates: usize,
    five_xx: usize,
    resurrections: usize,
    interrupted: usize,
    /// Pairs where neither request saw the other's write: a real race.
    overlapped: usize,
    /// Racing writers answered with neither 200 nor the interruption.
    other_answers: usize,
}

fn sum(all: Vec<Figures>) -> Figures {
    all.into_iter().fold(Figures::default(), |acc, f| Figures {
        trials: acc.trials + f.trials,
        lost_updates: acc.lost_updates + f.lost_updates,
        five_xx: acc.five_xx + f.five_xx,
        resurrections: acc.resurrections + f.resurrections,
        interrupted: acc.interrupted + f.interrupted,
        overlapped: acc.overlapped + f.overlapped,
        other_answers: acc.other_answers + f.other_answers,
    })
}

/// Two requests on one session, one per instance, in flight together: the
/// first writes key `a`, the second key `second_slot`. With different keys
/// both values must survive (a lost update otherwise); with the same key one
/// of the two must be what is left.
async fn concurrent_pair(env: &TestEnv, apps: &[TestApp], second_slot: &str) -> Figures {
    let creds = env.create_user(Role::Viewer).await;
    let workers = (0..WORKERS).map(|w| {
        let creds = &creds;
        async move {
            let mut figures = Figures::default();
            let tab = api_sign_in(&apps[w % apps.len()], creds).await;
            for t in 0..TRIALS / WORKERS {
                let (first, second) = (format!("x-{w}-{t}"), format!("y-{w}-{t}"));
                let (r1, r2) = tokio::join!(
                    write_key(&apps[0], &tab, "a", &first, WINDOW_MS),
                    write_key(&apps[apps.len() - 1], &tab, second_slot, &second, WINDOW_MS),
                );
                figures.trials += 1;
                figures.five_xx += [r1.status(), r2.status()]
                    .iter()
                    .filter(|s| s.is_server_error())
                    .count();
                let (l1, l2): (Value, Value) = (
                    r1.json().await.unwrap_or(Value::Null),
                    r2.json().await.unwrap_or(Value::Null),
                );
                if l1["ok"] == true
                    && l2["ok"] == true
                    && l1["loaded"][second_slot] != second.as_str()
                    && l2["loaded"]["a"] != first.as_str()
                {
                    figures.overlapped += 1;
                }
                let seen: Value = read_keys(&apps[t % apps.len()], &tab)
                    .await
                    .json()
                    .await
                    .unwrap_or(Value::Null);
                let kept = if second_slot == "a" {
                    seen["a"] == first.as_str() || seen["a"] == second.as_str()
                } else {
                    seen["a"] == first.as_str() && seen[second_slot] == second.as_str()
                };
                if !kept {
                    figures.lost_updates += 1;
                }
            }
            figures
        }
    });
    sum(join_all(workers).await)
}

/// Logout on one instance while a session-writing request is in flight on
/// another: the session must stay gone.
async fn logout_race(env: &TestEnv, apps: &[TestApp]) -> Figures {
    let creds = env.create_user(Role::Viewer).await;
    let workers = (0..WORKERS).map(|w| {
        let creds = &creds;
        async move {
            let mut figures = Figures::default();
            for t in 0..TRIALS / WORKERS {
                let (writer_app, logout_app) = (&apps[t % apps.len()], &apps[(t + 1) % apps.len()]);
                let tab = api_sign_in(logout_app, creds).await;
                let logout = async {
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    plain_client()
                        .post(logout_app.url("/logout/"))
                        .header(header::COOKIE, &tab.cookie)
                        .form(&[("csrf_token", &tab.csrf)])
                        .send()
                        .await
                        .unwrap()
                };
                // Half the writers are pages, half API calls. The window is
                // wide, so that a busy machine still lets the logout land
                // inside it.
                let api = t % 2 == 1;
                let path = if api {
                    "/api/v1/_test/session/a"
                } else {
                    "/_test/session/a"
                };
                let value = format!("v-{w}-{t}");
                let (write, logout) = tokio::join!(
                    write_key_at(writer_app, &tab, path, &value, LOGOUT_WINDOW_MS),
                    logout
                );
                figures.trials += 1;
                figures.five_xx += [write.status(), logout.status()]
                    .iter()
                    .filter(|s| s.is_server_error())
                    .count();
                assert_eq!(logout.status(), StatusCode::SEE_OTHER);
                let status = write.status();
                let interrupted = if api {
                    status == StatusCode::UNAUTHORIZED
                        && write
                            .json::<Value>()
                            .await
                            .map(|b| b["error"]["code"] == "session_interrupted")
                            .unwrap_or(false)
                } else {
                    status == StatusCode::SEE_OTHER && location(&write) == "/login/"
                };
                // A writer either finished before the logout or lost to it.
                if interrupted {
                    figures.interrupted += 1;
                } else if status != StatusCode::OK {
                    figures.other_answers += 1;
                }
                // Does the old cookie still name a live session anywhere?
                for app in apps {
                    if read_keys(app, &tab).await.status() == StatusCode::OK {
                        figures.resurrections += 1;
                        break;
                    }
                }
            }
            figures
        }
    });
    sum(join_all(workers).await)
}

/// Interruption lines of the racing writers (the follow-up reads with the
/// old cookie are interruptions too, on another path).
fn interruption_lines(apps: &[TestApp]) -> impl Fn(&str) -> bool + '_ {
    move |line: &str| {
        line.contains("session_interrupted")
            && line.contains("/_test/session/a ")
            && line.contains("path=/")
            && apps
                .iter()
                .any(|a| line.contains(&format!("instance={}", a.instance)))
    }
}

both_backends!(s4_concurrent_writes_to_different_keys_both_survive);
async fn s4_concurrent_writes_to_different_keys_both_survive(backend: Backend) {
    let env = TestEnv::new(backend).await;
    let apps = env.spawn_many(2).await;
    let figures = concurrent_pair(&env, &apps, "b").await;
    println!("optimistic ({backend:?}), different keys: {figures:?}");
    assert_eq!(figures.trials, TRIALS);
    assert!(
        figures.overlapped > 0,
        "the requests never overlapped: {figures:?}"
    );
    assert_eq!(figures.lost_updates, 0, "{figures:?}");
    assert_eq!(figures.five_xx, 0);
    assert_eq!(
        total(&apps, "bursar_session_conflicts_total").await,
        0.0,
        "different keys never conflict"
    );
}

both_backends!(s4_concurrent_writes_to_one_key_keep_exactly_one_and_count_the_conflict);
async fn s4_concurrent_writes_to_one_key_keep_exactly_one_and_count_the_conflict(backend: Backend) {
    let env = TestEnv::new(backend).await;
    let apps = env.spawn_many(2).await;
    let figures = concurrent_pair(&env, &apps, "a").await;
    println!("optimistic ({backend:?}), same key: {figures:?}");
    assert_eq!(
        figures.lost_updates, 0,
        "one of the two values must be kept: {figures:?}"
    );
    assert_eq!(figures.five_xx, 0);
    assert!(
        figures.overlapped > 0,
        "the requests never overlapped: {figures:?}"
    );
    assert_eq!(
        total(&apps, "bursar_session_conflicts_total").await,
        figures.overlapped as f64,
        "every overlapping pair drops exactly one write, and counts it (sequential pairs conflict with nothing)"
    );
    let logged = wait_for_log_lines("bursar.log", figures.overlapped, |l| {
        l.contains("session_conflict")
            && l.contains("key=\"test.a\"")
            && apps.iter().any(|a| l.contains(&a.instance))
    })
    .await;
    assert_eq!(
        logged, figures.overlapped,
        "each conflict is logged at INFO with the key's name"
    );
}

both_backends!(s5_logout_wins_every_race);
async fn s5_logout_wins_every_race(backend: Backend) {
    let env = TestEnv::new(backend).await;
    let apps = env.spawn_many(2).await;
    let figures = logout_race(&env, &apps).await;
    println!("optimistic ({backend:?}), logout race: {figures:?}");
    assert_eq!(figures.trials, TRIALS);
    assert_eq!(
        figures.resurrections, 0,
        "a deleted session never comes back: {figures:?}"
    );
    assert_eq!(figures.five_xx, 0, "{figures:?}");
    assert!(
        figures.interrupted > 0,
        "no writer ever lost a race, so nothing was tested: {figures:?}"
    );
    assert_eq!(
        figures.other_answers, 0,
        "a writer finishes (200) or is interrupted (303/401): {figures:?}"
    );
    let logged = wait_for_log_lines(
        "sessions.log",
        figures.interrupted,
        interruption_lines(&apps),
    )
    .await;
    assert_eq!(
        logged, figures.interrupted,
        "one session_interrupted line per interrupted request"
    );
    let sample = log_lines("sessions.log")
        .into_iter()
        .find(|l| interruption_lines(&apps)(l))
        .unwrap();
    for field in [
        "event=\"session_interrupted\"",
        "method=POST",
        "path=/",
        "_test/session/a",
        "instance=",
        "reason=\"deleted\"",
        "session=",
        "WARN",
        "bursar::session",
    ] {
        assert!(sample.contains(field), "{field} missing from {sample}");
    }
    // Each follow-up read with the dead cookie (one per instance per trial)
    // is also a request whose session was gone: counted the same way.
    let follow_ups = (TRIALS * apps.len()) as f64;
    assert_eq!(
        total(&apps, "bursar_session_interruptions_total").await,
        figures.interrupted as f64 + follow_ups
    );
}

/// Concurrent tabs appending to one list (recently viewed students, say).
const APPENDS: usize = 12;

both_backends!(update_with_retry_merges_concurrent_appends);
async fn update_with_retry_merges_concurrent_appends(backend: Backend) {
    let env = TestEnv::new(backend).await;
    let apps = env.spawn_many(2).await;
    let creds = env.create_user(Role::Viewer).await;
    let tab = api_sign_in(&apps[0], &creds).await;
    let appends = (0..APPENDS).map(|i| {
        let app = &apps[i % apps.len()];
        plain_client()
            .post(app.url("/_test/session-list"))
            .query(&[("value", format!("v{i}")), ("delay_ms", "20".into())])
            .header(header::COOKIE, &tab.cookie)
            .send()
    });
    for response in join_all(appends).await {
        assert_eq!(response.unwrap().status(), StatusCode::OK);
    }
    let seen: Value = read_keys(&apps[0], &tab).await.json().await.unwrap();
    let mut list: Vec<String> = serde_json::from_value(seen["list"].clone()).unwrap();
    list.sort();
    let mut expected: Vec<String> = (0..APPENDS).map(|i| format!("v{i}")).collect();
    expected.sort();
    assert_eq!(list, expected, "every append survives");
    assert!(
        total(&apps, "bursar_session_update_retries_total").await > 0.0,
        "the appends really did collide"
    );
}

/// The same races against tower-sessions-redis-store, reported, not asserted:
/// this is the design Bursar's store replaces.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn stock_store_race_figures() {
    let env = TestEnv::new(Backend::PgRedis).await;
    let mut apps = Vec::new();
    for _ in 0..2 {
        apps.push(
            env.spawn_with(|s| s.session_store = SessionStoreKind::Stock)
                .await,
        );
    }
    let different = concurrent_pair(&env, &apps, "b").await;
    let same = concurrent_pair(&env, &apps, "a").await;
    let logout = logout_race(&env, &apps).await;
    println!(
        "STOCK tower-sessions-redis-store, {TRIALS} trials each, two instances, {WINDOW_MS} ms window:"
    );
    println!(
        "  different keys: lost updates {}/{} (pairs that truly overlapped: {}), 5xx {}",
        different.lost_updates, different.trials, different.overlapped, different.five_xx
    );
    println!("  same key:       5xx {}", same.five_xx);
    println!(
        "  logout race:    resurrections {}/{}, 5xx {}, redirected to login {}",
        logout.resurrections, logout.trials, logout.five_xx, logout.interrupted
    );
    assert_eq!(different.trials, TRIALS, "the workload ran");
}
