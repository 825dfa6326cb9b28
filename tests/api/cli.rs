//! The binary itself: first start creates `admin` and shows its password once; create-user; migrate.
use std::{
    io::{BufRead, BufReader, Write},
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use reqwest::StatusCode;

use crate::helpers::{Browser, Credentials, TestApp, free_port, location};

const BIN: &str = env!("CARGO_BIN_EXE_bursar");

struct Embedded {
    dir: tempfile::TempDir,
}

impl Embedded {
    fn new() -> Self {
        Embedded {
            dir: tempfile::tempdir().unwrap(),
        }
    }

    fn command(&self) -> Command {
        let mut command = Command::new(BIN);
        command
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env(
                "DATABASE_URL",
                format!(
                    "sqlite://{}?mode=rwc",
                    self.dir.path().join("bursar.db").display()
                ),
            )
            .env("BURSAR_LOG_DIR", self.dir.path().join("logs"))
            .env("BURSAR_LOG_ROTATION", "never");
        command
    }

    fn logs(&self) -> String {
        let mut all = String::new();
        for entry in std::fs::read_dir(self.dir.path().join("logs"))
            .into_iter()
            .flatten()
            .flatten()
        {
            all.push_str(&std::fs::read_to_string(entry.path()).unwrap_or_default());
        }
        all
    }
}

/// A running `bursar` process and what it printed.
struct Server {
    child: std::process::Child,
    app: TestApp,
    stdout: Vec<String>,
}

fn serve(embedded: &Embedded, args: &[&str]) -> Server {
    let port = free_port();
    let mut child = embedded
        .command()
        .args(args)
        .env("BURSAR_BIND", format!("127.0.0.1:{port}"))
        .env("BURSAR_INSTANCE_ID", format!("cli-{port}"))
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut lines = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        while let Ok(line) = rx.try_recv() {
            lines.push(line);
        }
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            std::thread::sleep(Duration::from_millis(100));
            while let Ok(line) = rx.try_recv() {
                lines.push(line);
            }
            return Server {
                child,
                app: TestApp::external(format!("http://127.0.0.1:{port}"), format!("cli-{port}")),
                stdout: lines,
            };
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = child.kill();
    let _ = child.wait();
    panic!("bursar did not start listening: {lines:?}");
}

impl Server {
    /// SIGTERM, then the exit status.
    fn terminate(mut self) -> std::process::ExitStatus {
        Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(35);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "bursar did not stop after SIGTERM"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn first_start_creates_admin_and_shows_the_password_once_on_the_console_only() {
    let embedded = Embedded::new();
    // No subcommand: `bursar` serves.
    let server = serve(&embedded, &[]);
    let password = server
        .stdout
        .iter()
        .find_map(|l| l.trim().strip_prefix("Password: ").map(str::to_string))
        .unwrap_or_else(|| panic!("no password printed: {:?}", server.stdout));
    assert!(password.len() >= 16);

    let admin = Credentials {
        username: "admin".into(),
        password: password.clone(),
    };
    let browser = Browser::new();
    browser.sign_in(&server.app, &admin).await;
    assert_eq!(
        browser.get(&server.app, "/dashboard/").await.status(),
        StatusCode::OK
    );

    let status = server.terminate();
    assert!(status.success(), "SIGTERM ends bursar cleanly: {status:?}");
    let logs = embedded.logs();
    assert!(
        logs.contains("Bursar is listening"),
        "the file log was written and flushed"
    );
    assert!(
        !logs.contains(&password),
        "the admin password reached a log file"
    );

    // A second start finds users and prints no password.
    let again = serve(&embedded, &["serve"]);
    assert!(
        again.stdout.iter().all(|l| !l.contains("Password:")),
        "{:?}",
        again.stdout
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_user_reads_the_password_from_standard_input() {
    let embedded = Embedded::new();
    let status = embedded
        .command()
        .arg("migrate")
        .stdout(Stdio::null())
        .status()
        .unwrap();
    assert!(status.success());

    let mut child = embedded
        .command()
        .args(["create-user", "Jane.Bursar", "--role", "bursar"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"a long enough secret\nignored second line\n")
        .unwrap();
    let output = child.wait_with_output().unwrap();
    assert!(output.status.success(), "{output:?}");

    // Too short, bad role, taken name: refused with a message, non-zero exit.
    for (args, input) in [
        (vec!["create-user", "shorty", "--role", "viewer"], "short\n"),
        (
            vec!["create-user", "someone", "--role", "janitor"],
            "a long enough secret\n",
        ),
        (
            vec!["create-user", "jane.bursar", "--role", "viewer"],
            "a long enough secret\n",
        ),
    ] {
        let mut child = embedded
            .command()
            .args(&args)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(input.as_bytes())
            .unwrap();
        let output = child.wait_with_output().unwrap();
        assert!(!output.status.success(), "{args:?} should fail");
        assert!(!output.stderr.is_empty(), "{args:?} says why");
    }

    let server = serve(&embedded, &[]);
    let jane = Credentials {
        username: "jane.bursar".into(),
        password: "a long enough secret".into(),
    };
    let response = Browser::new().login(&server.app, &jane).await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&response), "/dashboard/");
    assert!(!embedded.logs().contains("a long enough secret"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn seed_then_check_ledger_and_notice_tampering() {
    let embedded = Embedded::new();
    let seeded = embedded
        .command()
        .args([
            "seed",
            "--students",
            "40",
            "--payments-per-student",
            "3",
            "--seed",
            "7",
        ])
        .output()
        .unwrap();
    assert!(seeded.status.success(), "{seeded:?}");
    let said = String::from_utf8_lossy(&seeded.stdout);
    assert!(
        said.contains("Seeded 40 students, 120 charges and 120 payments"),
        "{said}"
    );

    let again = embedded
        .command()
        .args(["seed", "--students", "1"])
        .output()
        .unwrap();
    assert!(!again.status.success(), "seeding twice is refused");

    let clean = embedded.command().arg("check-ledger").output().unwrap();
    let report = String::from_utf8_lossy(&clean.stdout);
    assert!(clean.status.success(), "{report}");
    assert!(
        report.contains("students:      40") && report.contains("ledger OK"),
        "{report}"
    );

    let url = format!(
        "sqlite://{}?mode=rwc",
        embedded.dir.path().join("bursar.db").display()
    );
    let db = sea_orm::Database::connect(&url).await.unwrap();
    use sea_orm::ConnectionTrait;
    db.execute_unprepared("UPDATE payments SET amount = amount + 1 WHERE id = 7")
        .await
        .unwrap();
    db.close().await.unwrap();
    let drifted = embedded.command().arg("check-ledger").output().unwrap();
    let report = String::from_utf8_lossy(&drifted.stdout);
    assert_eq!(drifted.status.code(), Some(1), "{report}");
    assert!(report.contains("LEDGER MISMATCH"), "{report}");
}
