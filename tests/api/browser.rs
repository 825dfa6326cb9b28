//! The front desk's main flow in headless Chromium: sign in, add a student, charge, pay, read the receipt.
use std::{
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use bursar::domain::Role;
use fantoccini::{Client, ClientBuilder, Locator};

use crate::helpers::{Backend, TestEnv};

/// chromedriver from Debian's chromium-driver package, on a free port.
struct Chromedriver {
    child: Child,
    port: u16,
}

impl Chromedriver {
    fn start() -> Self {
        let port = crate::helpers::free_port();
        let child = Command::new("chromedriver")
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect(
                "chromedriver must be installed (Debian packages chromium and chromium-driver)",
            );
        let deadline = Instant::now() + Duration::from_secs(15);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "chromedriver did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
        Chromedriver { child, port }
    }
}

impl Drop for Chromedriver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn browser(driver: &Chromedriver, profile: &std::path::Path) -> Client {
    let mut capabilities = serde_json::Map::new();
    capabilities.insert(
        "goog:chromeOptions".into(),
        serde_json::json!({
            "binary": "/usr/bin/chromium",
            "args": [
                "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-quic",
                "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync",
                "--window-size=1280,1000", format!("--user-data-dir={}", profile.display()),
            ],
        }),
    );
    ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
        .capabilities(capabilities)
        .connect(&format!("http://127.0.0.1:{}", driver.port))
        .await
        .expect("a Chromium session")
}

async fn fill(client: &Client, css: &str, text: &str) {
    let field = client
        .find(Locator::Css(css))
        .await
        .unwrap_or_else(|e| panic!("{css}: {e}"));
    field.clear().await.unwrap();
    field.send_keys(text).await.unwrap();
}

async fn click(client: &Client, css: &str) {
    client
        .find(Locator::Css(css))
        .await
        .unwrap_or_else(|e| panic!("{css}: {e}"))
        .click()
        .await
        .unwrap();
}

/// The element's text; a page still loading (element missing or replaced
/// under us) is waited out.
async fn text(client: &Client, css: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let found = match client.find(Locator::Css(css)).await {
            Ok(element) => element.text().await.map_err(|e| e.to_string()),
            Err(e) => Err(e.to_string()),
        };
        match found {
            Ok(text) => return text,
            Err(e) if Instant::now() >= deadline => panic!("{css}: {e}"),
            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
}

/// Waits for the browser to land on a page whose path satisfies `check`.
async fn wait_for_path(client: &Client, check: impl Fn(&str) -> bool) -> String {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let url = client.current_url().await.unwrap();
        if check(url.path()) {
            return url.path().to_string();
        }
        if Instant::now() >= deadline {
            let source = client.source().await.unwrap_or_default();
            panic!(
                "stuck at {url}: {}",
                source.chars().take(3000).collect::<String>()
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn front_desk_flow_in_headless_chromium() {
    let env = TestEnv::new(Backend::PgRedis).await;
    let app = env.spawn().await;
    let creds = env.create_user(Role::Bursar).await;
    let driver = Chromedriver::start();
    let profile = tempfile::tempdir().unwrap();
    let client = browser(&driver, profile.path()).await;

    client.goto(&app.url("/")).await.unwrap();
    wait_for_path(&client, |p| p == "/login/").await;
    fill(&client, "input[name=username]", &creds.username).await;
    fill(&client, "input[name=password]", &creds.password).await;
    click(&client, "form[action='/login/'] button[type=submit]").await;
    wait_for_path(&client, |p| p == "/dashboard/").await;
    assert!(
        text(&client, ".signed-in-user")
            .await
            .contains(&creds.username)
    );

    click(&client, "nav a[href='/students/']").await;
    wait_for_path(&client, |p| p == "/students/").await;
    click(&client, "a[href='/students/new']").await;
    wait_for_path(&client, |p| p == "/students/new").await;
    fill(&client, "input[name=admission_no]", "web-001").await;
    fill(&client, "input[name=class_name]", "Grade 5 East").await;
    fill(&client, "input[name=first_name]", "Wanjiru").await;
    fill(&client, "input[name=last_name]", "Kamau").await;
    fill(&client, "input[name=guardian_phone]", "+254 700 123 456").await;
    click(&client, "form[action='/students/'] button[type=submit]").await;
    let student_path = wait_for_path(&client, |p| {
        p.starts_with("/students/") && p.ends_with('/') && p != "/students/"
    })
    .await;
    assert_eq!(text(&client, "h1").await, "Wanjiru Kamau");

    fill(&client, "#charge-form input[name=amount]", "1500").await;
    fill(
        &client,
        "#charge-form input[name=description]",
        "Term 1 tuition",
    )
    .await;
    click(&client, "#charge-form button[type=submit]").await;
    wait_for_path(&client, |p| p == student_path).await;
    let deadline = Instant::now() + Duration::from_secs(10);
    while !text(&client, "#balance").await.contains("1,500.00") {
        assert!(Instant::now() < deadline, "the charge never showed");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    fill(&client, "#payment-form input[name=amount]", "1000.50").await;
    client
        .find(Locator::Css("#payment-form select[name=method]"))
        .await
        .unwrap()
        .select_by_value("mobile")
        .await
        .unwrap();
    fill(&client, "#payment-form input[name=reference]", "MP12345").await;
    click(&client, "#payment-form button[type=submit]").await;
    wait_for_path(&client, |p| {
        p.starts_with("/payments/") && p.ends_with("/receipt/")
    })
    .await;

    let receipt_no = text(&client, "#receipt-no").await;
    assert!(
        receipt_no.starts_with('R') && receipt_no.len() == 12 && receipt_no.as_bytes()[5] == b'-',
        "{receipt_no}"
    );
    assert!(text(&client, "#receipt-amount").await.ends_with("1,000.50"));
    assert!(text(&client, "#receipt-balance").await.ends_with("499.50"));
    let screenshot = client.screenshot().await.unwrap();
    let _ = std::fs::write(std::env::temp_dir().join("bursar-receipt.png"), screenshot);

    client.goto(&app.url(&student_path)).await.unwrap();
    assert!(text(&client, "#balance").await.ends_with("499.50"));
    let statement = text(&client, "table.statement").await;
    assert!(
        statement.contains("Term 1 tuition") && statement.contains(&receipt_no),
        "{statement}"
    );
    client.close().await.unwrap();
}
