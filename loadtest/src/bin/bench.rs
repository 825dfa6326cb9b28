//! `scripts/bench`: Bursar's benchmark, every candidate measured side by side in one run, one table.
//!
//! (a) Redis commands per read and per write, optimistic vs stock store;
//! (b) an authenticated page's throughput and latency with each store and
//!     with no session at all; (c) one vs three instances behind HAProxy;
//! (d) the session races; (e) 100,000 students and 1,000,000 payments:
//!     seeding, check-ledger, search and dashboard latency; (f) memory per
//!     instance, idle and under load.
use std::{
    io::{BufRead, BufReader, Write},
    path::{Path, PathBuf},
    process::{Command, Stdio},
    sync::mpsc,
    time::{Duration, Instant},
};

use bursar::{
    config::{SessionStoreKind, Settings},
    startup::Application,
};
use futures_util::future::join_all;
use serde_json::{Value, json};

fn env_or(name: &str, default: &str) -> String {
    std::env::var(name)
        .ok()
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| default.to_string())
}

struct Config {
    root: PathBuf,
    bin: PathBuf,
    admin_url: String,
    redis_url: String,
    students: u64,
    payments: u64,
    seconds: u64,
    trials: usize,
}

/// Throughput and latency from one wrk run.
#[derive(Clone, Copy, Default)]
struct Load {
    rps: f64,
    p50: f64,
    p99: f64,
    non_2xx: u64,
}

fn millis(text: &str) -> f64 {
    let text = text.trim();
    let (number, factor) = if let Some(n) = text.strip_suffix("us") {
        (n, 0.001)
    } else if let Some(n) = text.strip_suffix("ms") {
        (n, 1.0)
    } else if let Some(n) = text.strip_suffix('s') {
        (n, 1000.0)
    } else {
        (text, 1.0)
    };
    number.parse::<f64>().unwrap_or(f64::NAN) * factor
}

/// `wrk` against `url` with the cookie, `clients` connections for `seconds`.
fn wrk(url: &str, cookie: Option<&str>, clients: u32, seconds: u64) -> Load {
    let mut command = Command::new("wrk");
    command.args([
        "-t",
        &clients.min(2).to_string(),
        "-c",
        &clients.to_string(),
        "-d",
        &format!("{seconds}s"),
        "--latency",
    ]);
    if let Some(cookie) = cookie {
        command.args(["-H", &format!("Cookie: {cookie}")]);
    }
    let output = command
        .arg(url)
        .output()
        .expect("wrk must be installed (Debian package wrk)");
    let text = String::from_utf8_lossy(&output.stdout);
    let mut load = Load::default();
    for line in text.lines() {
        let line = line.trim();
        if let Some(rest) = line.strip_prefix("Requests/sec:") {
            load.rps = rest.trim().parse().unwrap_or(0.0);
        } else if let Some(rest) = line.strip_prefix("50%") {
            load.p50 = millis(rest);
        } else if let Some(rest) = line.strip_prefix("99%") {
            load.p99 = millis(rest);
        } else if let Some(rest) = line.strip_prefix("Non-2xx or 3xx responses:") {
            load.non_2xx = rest.trim().parse().unwrap_or(0);
        }
    }
    load
}

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client")
}

/// Signs in through the API; the session cookie (`bursar_session=…`) and CSRF token.
async fn sign_in(base: &str, user: &str, password: &str) -> (String, String) {
    let response = client()
        .post(format!("{base}/api/v1/login"))
        .json(&json!({"username": user, "password": password}))
        .send()
        .await
        .expect("login");
    assert!(
        response.status().is_success(),
        "bench login failed: {}",
        response.status()
    );
    let cookie = response
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|c| c.starts_with("bursar_session="))
        .and_then(|c| c.split(';').next())
        .expect("session cookie")
        .to_string();
    let body: Value = response.json().await.expect("json");
    (
        cookie,
        body["csrf_token"].as_str().unwrap_or_default().to_string(),
    )
}

/// Top-level Redis commands naming `needle` while `action` runs (MONITOR;
/// commands run inside a Lua script are not round trips and are left out).
async fn redis_commands(
    redis_url: &str,
    needle: &str,
    action: impl std::future::Future<Output = ()>,
) -> usize {
    let mut monitor = Command::new("redis-cli")
        .args(["-u", redis_url, "monitor"])
        .stdout(Stdio::piped())
        .spawn()
        .expect("redis-cli must be installed");
    let stdout = monitor.stdout.take().expect("stdout");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let _ = rx.recv_timeout(Duration::from_secs(5)); // "OK"
    action.await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let _ = monitor.kill();
    let _ = monitor.wait();
    rx.try_iter()
        .filter(|l| l.contains(needle) && !l.contains(" lua]"))
        .count()
}

struct InProcess {
    base: String,
    _stop: tokio::sync::oneshot::Sender<()>,
}

async fn start(
    config: &Config,
    database_url: &str,
    store: SessionStoreKind,
    prefix: &str,
) -> InProcess {
    let mut settings = Settings::from_lookup(|_| None).expect("defaults");
    settings.database_url = database_url.to_string();
    settings.redis_url = Some(config.redis_url.clone());
    settings.redis_prefix = prefix.to_string();
    settings.bind = "127.0.0.1:0".into();
    settings.instance_id = format!("bench-{prefix}");
    settings.session_store = store;
    settings.migrate = false;
    settings.test_hooks = true;
    settings.log.dir = std::env::temp_dir().join(format!("bursar-bench-logs-{prefix}"));
    let app = Application::build(settings)
        .await
        .expect("bench instance starts");
    let base = format!("http://127.0.0.1:{}", app.port());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(app.run_until(async move {
        let _ = stopped.await;
    }));
    InProcess { base, _stop: stop }
}

#[derive(Default)]
struct Races {
    trials: usize,
    lost: usize,
    server_errors: usize,
    resurrected: usize,
}

/// Two tabs write different session keys at once (S4), then a logout races
/// a writing request (S5), each `trials` times, with a 40 ms window.
async fn races(base: &str, user: &str, password: &str, trials: usize) -> Races {
    let mut races = Races {
        trials,
        ..Races::default()
    };
    let (cookie, _) = sign_in(base, user, password).await;
    for t in 0..trials {
        let write = |slot: &'static str, value: String| {
            client()
                .post(format!("{base}/_test/session/{slot}"))
                .query(&[("value", value.as_str()), ("delay_ms", "40")])
                .header("cookie", &cookie)
                .send()
        };
        let (a, b) = tokio::join!(write("a", format!("a{t}")), write("b", format!("b{t}")));
        for r in [&a, &b] {
            if r.as_ref().map_or(true, |r| r.status().is_server_error()) {
                races.server_errors += 1;
            }
        }
        let seen: Value = match client()
            .get(format!("{base}/_test/session"))
            .header("cookie", &cookie)
            .send()
            .await
        {
            Ok(r) => r.json().await.unwrap_or(Value::Null),
            Err(_) => Value::Null,
        };
        if seen["a"] != format!("a{t}").as_str() || seen["b"] != format!("b{t}").as_str() {
            races.lost += 1;
        }
    }
    let logouts = (0..trials).map(|t| async move {
        let (cookie, csrf) = sign_in(base, user, password).await;
        let writer = client()
            .post(format!("{base}/_test/session/a"))
            .query(&[("value", format!("v{t}")), ("delay_ms", "40".into())])
            .header("cookie", &cookie)
            .send();
        let logout = async {
            tokio::time::sleep(Duration::from_millis(10)).await;
            client()
                .post(format!("{base}/logout/"))
                .header("cookie", &cookie)
                .form(&[("csrf_token", &csrf)])
                .send()
                .await
        };
        let (writer, logout) = tokio::join!(writer, logout);
        let errors = [writer.map(|r| r.status()), logout.map(|r| r.status())]
            .iter()
            .filter(|s| s.as_ref().map_or(true, |s| s.is_server_error()))
            .count();
        let back = client()
            .get(format!("{base}/_test/session"))
            .header("cookie", &cookie)
            .send()
            .await;
        (
            errors,
            back.map(|r| r.status().is_success()).unwrap_or(false),
        )
    });
    for (errors, back) in join_all(logouts).await {
        races.server_errors += errors;
        races.resurrected += usize::from(back);
    }
    races
}

fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .map(str::to_string)
        })
        .and_then(|l| l.split_whitespace().nth(1).and_then(|n| n.parse().ok()))
        .unwrap_or(0)
}

struct Cluster {
    dir: tempfile::TempDir,
    env: Vec<(String, String)>,
    root: PathBuf,
    lb: String,
}

impl Cluster {
    fn cmd(&self, args: &[&str]) -> std::process::Output {
        Command::new(self.root.join("scripts/cluster"))
            .arg("--dir")
            .arg(self.dir.path())
            .args(args)
            .envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .output()
            .expect("scripts/cluster")
    }

    fn up(config: &Config, database_url: &str, instances: usize, port: u16) -> Cluster {
        let cluster = Cluster {
            dir: tempfile::tempdir().expect("tempdir"),
            env: vec![
                ("DATABASE_URL".into(), database_url.into()),
                ("REDIS_URL".into(), config.redis_url.clone()),
                (
                    "BURSAR_REDIS_PREFIX".into(),
                    format!("bench-cluster-{port}"),
                ),
                ("BURSAR_BIN".into(), config.bin.display().to_string()),
            ],
            root: config.root.clone(),
            lb: format!("http://127.0.0.1:{port}"),
        };
        let base = port + 100;
        let out = cluster.cmd(&[
            "-n",
            &instances.to_string(),
            "-p",
            &port.to_string(),
            "--base-port",
            &base.to_string(),
            "up",
        ]);
        assert!(
            out.status.success(),
            "cluster up: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        cluster
    }

    fn pids(&self) -> Vec<u32> {
        let mut pids = Vec::new();
        for entry in std::fs::read_dir(self.dir.path())
            .into_iter()
            .flatten()
            .flatten()
        {
            let name = entry.file_name().to_string_lossy().to_string();
            if name.starts_with("instance-")
                && name.ends_with(".pid")
                && let Some(pid) = std::fs::read_to_string(entry.path())
                    .ok()
                    .and_then(|p| p.trim().parse().ok())
            {
                pids.push(pid);
            }
        }
        pids
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let _ = self.cmd(&["down"]);
    }
}

/// Load through the balancer, and the largest resident size seen meanwhile.
fn load_with_memory(cluster: &Cluster, cookie: &str, seconds: u64) -> (Load, u64) {
    let pids = cluster.pids();
    let url = format!("{}/dashboard/", cluster.lb);
    let cookie = cookie.to_string();
    let handle = std::thread::spawn(move || wrk(&url, Some(&cookie), 16, seconds));
    let mut peak = 0;
    while !handle.is_finished() {
        peak = peak.max(pids.iter().map(|p| rss_kib(*p)).max().unwrap_or(0));
        std::thread::sleep(Duration::from_millis(200));
    }
    (handle.join().expect("wrk"), peak)
}

fn psql(admin_url: &str, sql: &str) {
    let status = Command::new("psql")
        .args([admin_url, "-qc", sql])
        .stdout(Stdio::null())
        .status()
        .expect("psql");
    assert!(status.success(), "psql: {sql}");
}

fn timed(bin: &Path, database_url: &str, args: &[&str]) -> f64 {
    let started = Instant::now();
    let output = Command::new(bin)
        .args(args)
        .env("DATABASE_URL", database_url)
        .env(
            "BURSAR_LOG_DIR",
            std::env::temp_dir().join("bursar-bench-cli"),
        )
        .output()
        .expect("bursar");
    assert!(
        output.status.success(),
        "bursar {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    started.elapsed().as_secs_f64()
}

fn ratio(a: f64, b: f64) -> String {
    if b > 0.0 {
        format!("{:.2}×", a / b)
    } else {
        "–".into()
    }
}

#[tokio::main]
async fn main() {
    let quick = std::env::var("BENCH_QUICK").is_ok();
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("repository")
        .to_path_buf();
    let config = Config {
        bin: PathBuf::from(env_or(
            "BURSAR_BIN",
            &root.join("target/release/bursar").display().to_string(),
        )),
        root,
        admin_url: env_or(
            "BURSAR_TEST_DATABASE_URL",
            "postgres://postgres@127.0.0.1:5432/postgres",
        ),
        redis_url: env_or("REDIS_URL", "redis://127.0.0.1:6379"),
        students: env_or("BENCH_STUDENTS", if quick { "10000" } else { "100000" })
            .parse()
            .expect("BENCH_STUDENTS"),
        payments: env_or("BENCH_PAYMENTS_PER_STUDENT", "10")
            .parse()
            .expect("BENCH_PAYMENTS_PER_STUDENT"),
        seconds: if quick { 4 } else { 10 },
        trials: if quick { 50 } else { 200 },
    };
    let pid = std::process::id();
    let name = format!("bursar_bench_{pid}");
    let database_url = format!(
        "{}/{name}",
        &config.admin_url[..config.admin_url.rfind('/').expect("a database in the URL")]
    );
    psql(&config.admin_url, &format!("CREATE DATABASE \"{name}\""));
    eprintln!(
        "bench: seeding {} students × {} payments…",
        config.students, config.payments
    );
    let seed_s = timed(
        &config.bin,
        &database_url,
        &[
            "seed",
            "--students",
            &config.students.to_string(),
            "--payments-per-student",
            &config.payments.to_string(),
        ],
    );
    let check_s = timed(&config.bin, &database_url, &["check-ledger"]);
    let password = "bench password 1";
    let mut create = Command::new(&config.bin)
        .args(["create-user", "bench", "--role", "viewer"])
        .env("DATABASE_URL", &database_url)
        .env(
            "BURSAR_LOG_DIR",
            std::env::temp_dir().join("bursar-bench-cli"),
        )
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .expect("create-user");
    create
        .stdin
        .take()
        .expect("stdin")
        .write_all(format!("{password}\n").as_bytes())
        .expect("password");
    assert!(create.wait().expect("create-user").success());

    // (a), (b), (d): one in-process instance per store, test routes on.
    eprintln!("bench: sessions…");
    // Measure a quiet database: vacuumed now, autovacuum has nothing to wake up for mid-run.
    psql(&database_url, "VACUUM ANALYZE");
    let mut stores = Vec::new();
    for (store, label) in [
        (SessionStoreKind::Optimistic, "optimistic"),
        (SessionStoreKind::Stock, "stock"),
    ] {
        let app = start(&config, &database_url, store, &format!("bench{pid}{label}")).await;
        let (cookie, _) = sign_in(&app.base, "bench", password).await;
        let id = cookie.trim_start_matches("bursar_session=").to_string();
        let dashboard = format!("{}/dashboard/", app.base);
        client()
            .get(&dashboard)
            .header("cookie", &cookie)
            .send()
            .await
            .expect("warm up");
        let reads = redis_commands(&config.redis_url, &id, async {
            client()
                .get(&dashboard)
                .header("cookie", &cookie)
                .send()
                .await
                .expect("read");
        })
        .await;
        let writes = redis_commands(&config.redis_url, &id, async {
            client()
                .get(format!("{}/students/?q=bench{pid}", app.base))
                .header("cookie", &cookie)
                .send()
                .await
                .expect("write");
        })
        .await;
        stores.push((app, cookie, reads, writes));
    }
    // (b) in interleaved rounds, so that a busy moment of this shared
    // machine falls on every candidate alike; the median round counts.
    let candidates = [
        (
            format!("{}/dashboard/", stores[0].0.base),
            Some(stores[0].1.clone()),
        ),
        (
            format!("{}/dashboard/", stores[1].0.base),
            Some(stores[1].1.clone()),
        ),
        (format!("{}/_test/dashboard", stores[0].0.base), None),
    ];
    let mut rounds: [Vec<Load>; 3] = Default::default();
    for _ in 0..3 {
        for (i, (url, cookie)) in candidates.iter().enumerate() {
            rounds[i].push(wrk(url, cookie.as_deref(), 8, config.seconds.div_ceil(2)));
        }
    }
    let [optimistic_load, stock_load, without] = rounds.map(|mut loads| {
        loads.sort_by(|a, b| a.rps.total_cmp(&b.rps));
        loads[loads.len() / 2]
    });
    let search = wrk(
        &format!("{}/students/?q=kam", stores[0].0.base),
        Some(&stores[0].1),
        1,
        config.seconds,
    );
    let dash_one = wrk(
        &format!("{}/dashboard/", stores[0].0.base),
        Some(&stores[0].1),
        1,
        config.seconds,
    );
    let optimistic_races = races(&stores[0].0.base, "bench", password, config.trials).await;
    let stock_races = races(&stores[1].0.base, "bench", password, config.trials).await;
    let per_store = [
        (
            "optimistic",
            stores[0].2,
            stores[0].3,
            optimistic_load,
            optimistic_races,
        ),
        ("stock", stores[1].2, stores[1].3, stock_load, stock_races),
    ];

    // (c), (f): the release binary behind HAProxy, one then three instances.
    eprintln!("bench: cluster…");
    let mut clusters = Vec::new();
    for (instances, port) in [(1usize, 28180u16), (3, 28280)] {
        let cluster = Cluster::up(&config, &database_url, instances, port);
        tokio::time::sleep(Duration::from_secs(2)).await;
        let idle: Vec<u64> = cluster.pids().iter().map(|p| rss_kib(*p)).collect();
        let (cookie, _) = sign_in(&cluster.lb, "bench", password).await;
        let (load, peak) = load_with_memory(&cluster, &cookie, config.seconds);
        clusters.push((
            instances,
            load,
            idle.iter().copied().max().unwrap_or(0),
            peak,
        ));
    }
    psql(
        &config.admin_url,
        &format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"),
    );

    let optimistic = &per_store[0];
    let stock = &per_store[1];
    let machine = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| {
            c.lines()
                .find(|l| l.starts_with("model name"))
                .map(|l| l.split(':').nth(1).unwrap_or("").trim().to_string())
        })
        .unwrap_or_default();
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(0);
    println!(
        "Bursar benchmark — {} · {cores} cores ({machine}) · PostgreSQL + Redis local",
        chrono_date()
    );
    println!();
    println!("| | measure | optimistic (Bursar) | stock store | no session | ratio |");
    println!("|---|---|---|---|---|---|");
    println!(
        "| a | Redis commands, authenticated read-only page | {} | {} | 0 | |",
        optimistic.1, stock.1
    );
    println!(
        "| a | Redis commands, request that changes the session | {} | {} | – | |",
        optimistic.2, stock.2
    );
    println!(
        "| b | `/dashboard/`, 8 clients: req/s | {:.0} | {:.0} | {:.0} | optimistic/none {}, optimistic/stock {} |",
        optimistic.3.rps,
        stock.3.rps,
        without.rps,
        ratio(optimistic.3.rps, without.rps),
        ratio(optimistic.3.rps, stock.3.rps)
    );
    println!(
        "| b | `/dashboard/`, 8 clients: p50 / p99 ms | {:.1} / {:.1} | {:.1} / {:.1} | {:.1} / {:.1} | |",
        optimistic.3.p50, optimistic.3.p99, stock.3.p50, stock.3.p99, without.p50, without.p99
    );
    println!(
        "| d | different keys at once, two tabs: lost updates | {} / {} | {} / {} | | |",
        optimistic.4.lost, optimistic.4.trials, stock.4.lost, stock.4.trials
    );
    println!(
        "| d | logout racing a write: resurrected sessions / 5xx | {} / {} | {} / {} | | |",
        optimistic.4.resurrected,
        optimistic.4.server_errors,
        stock.4.resurrected,
        stock.4.server_errors
    );
    println!();
    println!("| | measure | 1 instance | 3 instances | ratio |");
    println!("|---|---|---|---|---|");
    let (one, three) = (&clusters[0], &clusters[1]);
    println!(
        "| c | through HAProxy, `/dashboard/`, 16 clients: req/s | {:.0} | {:.0} | {} |",
        one.1.rps,
        three.1.rps,
        ratio(three.1.rps, one.1.rps)
    );
    println!(
        "| c | p50 / p99 ms | {:.1} / {:.1} | {:.1} / {:.1} | |",
        one.1.p50, one.1.p99, three.1.p50, three.1.p99
    );
    println!(
        "| c | non-2xx answers | {} | {} | |",
        one.1.non_2xx, three.1.non_2xx
    );
    println!(
        "| f | resident memory per instance, idle (MB) | {:.1} | {:.1} (largest) | |",
        one.2 as f64 / 1024.0,
        three.2 as f64 / 1024.0
    );
    println!(
        "| f | resident memory per instance, under load (MB) | {:.1} | {:.1} (largest) | |",
        one.3 as f64 / 1024.0,
        three.3 as f64 / 1024.0
    );
    println!();
    println!(
        "| | at {} students, {} payments | value |",
        config.students,
        config.students * config.payments
    );
    println!("|---|---|---|");
    println!("| e | `bursar seed` | {seed_s:.1} s |");
    println!("| e | `bursar check-ledger` | {check_s:.2} s |");
    println!(
        "| e | `/students/?q=kam`, one client: p50 / p99 | {:.1} / {:.1} ms |",
        search.p50, search.p99
    );
    println!(
        "| e | `/dashboard/`, one client: p50 / p99 | {:.1} / {:.1} ms |",
        dash_one.p50, dash_one.p99
    );
}

fn chrono_date() -> String {
    Command::new("date")
        .arg("+%Y-%m-%d")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default()
}
