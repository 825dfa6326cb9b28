//! spawn_app and friends: real servers on random ports, a fresh database and Redis prefix per test.
use std::{
    path::PathBuf,
    sync::{Arc, OnceLock},
    time::Duration,
};

use bursar::{
    config::{LogFormat, LogRotation, LogSettings, Settings},
    domain::{Role, Username},
    repo::users,
    startup::Application,
    telemetry::{self, Console},
};
use fred::prelude::{Builder, ClientLike, Config as RedisConfig, KeysInterface};
use reqwest::{StatusCode, header};
use sea_orm::{ConnectionTrait, Database, DatabaseConnection};
use tokio::sync::oneshot;

/// The two deployments every shared test runs against.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    /// PostgreSQL + Redis, several instances.
    PgRedis,
    /// SQLite + the in-process session store, one instance.
    Embedded,
}

pub fn pg_admin_url() -> String {
    std::env::var("BURSAR_TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

pub fn redis_url() -> String {
    std::env::var("BURSAR_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into())
}

/// Log files of this test process (one directory per process, so parallel
/// test processes never share a file).
pub fn log_dir() -> PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = std::env::temp_dir()
            .join("bursar-test-logs")
            .join(std::process::id().to_string());
        let settings = LogSettings {
            dir: dir.clone(),
            rotation: LogRotation::Never,
            keep: 5,
            format: LogFormat::Text,
        };
        let console = if std::env::var_os("TEST_LOG").is_some() {
            Console::On
        } else {
            Console::Off
        };
        // Keep the writers for the whole process: leak the guard on purpose.
        match telemetry::init(&settings, console) {
            Ok(guard) => std::mem::forget(guard),
            Err(err) => panic!("test telemetry: {err:#}"),
        }
        dir
    })
    .clone()
}

/// Every line of the log files whose names start with `prefix`.
pub fn log_lines(prefix: &str) -> Vec<String> {
    let Ok(entries) = std::fs::read_dir(log_dir()) else {
        return Vec::new();
    };
    let mut lines = Vec::new();
    for entry in entries.flatten() {
        if entry.file_name().to_string_lossy().starts_with(prefix) {
            let text = std::fs::read_to_string(entry.path()).unwrap_or_default();
            lines.extend(text.lines().map(str::to_string));
        }
    }
    lines
}

/// Waits (the writer is asynchronous) until `count_of` lines match, or 5 s pass.
pub async fn wait_for_log_lines(
    prefix: &str,
    wanted: usize,
    matches: impl Fn(&str) -> bool,
) -> usize {
    let mut found = 0;
    for _ in 0..50 {
        found = log_lines(prefix).iter().filter(|l| matches(l)).count();
        if found >= wanted {
            // Give a straggler the chance to show up, so "exactly" means exactly.
            tokio::time::sleep(Duration::from_millis(200)).await;
            return log_lines(prefix).iter().filter(|l| matches(l)).count();
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    found
}

/// A port nobody listens on right now.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .expect("a free port")
        .local_addr()
        .expect("address")
        .port()
}

fn unique(tag: &str) -> String {
    format!("{tag}{}", &uuid::Uuid::new_v4().simple().to_string()[..12])
}

/// Drops the test's database and Redis keys when the last app using them is gone.
struct Cleanup {
    pg_database: Option<String>,
    redis_prefix: Option<String>,
    _sqlite_dir: Option<tempfile::TempDir>,
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        let database = self.pg_database.take();
        let prefix = self.redis_prefix.take();
        // Drop runs inside the test's runtime; do the async clean-up on a
        // runtime of its own.
        let _ = std::thread::spawn(move || {
            let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                return;
            };
            rt.block_on(async move {
                if let Some(name) = database
                    && let Ok(db) = Database::connect(pg_admin_url()).await
                {
                    let _ = db
                        .execute_unprepared(&format!(
                            "DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"
                        ))
                        .await;
                    let _ = db.close().await;
                }
                if let Some(prefix) = prefix {
                    delete_redis_keys(&redis_url(), &format!("{prefix}:*")).await;
                }
            });
        })
        .join();
    }
}

async fn delete_redis_keys(url: &str, pattern: &str) {
    let Ok(config) = RedisConfig::from_url(url) else {
        return;
    };
    let Ok(client) = Builder::from_config(config).build() else {
        return;
    };
    if client.init().await.is_err() {
        return;
    }
    let mut cursor = "0".to_string();
    loop {
        let Ok((next, keys)): Result<(String, Vec<String>), _> = client
            .custom(
                fred::cmd!("SCAN"),
                vec![
                    cursor.clone(),
                    "MATCH".into(),
                    pattern.into(),
                    "COUNT".into(),
                    "1000".into(),
                ],
            )
            .await
        else {
            break;
        };
        if !keys.is_empty() {
            let _: Result<i64, _> = client.del(keys).await;
        }
        if next == "0" {
            break;
        }
        cursor = next;
    }
    let _ = client.quit().await;
}

/// One test's deployment: a fresh database and Redis prefix, shared by
/// every instance the test starts.
#[derive(Clone)]
pub struct TestEnv {
    pub backend: Backend,
    pub database_url: String,
    pub redis_url: Option<String>,
    pub redis_prefix: String,
    _cleanup: Arc<Cleanup>,
}

impl TestEnv {
    pub async fn new(backend: Backend) -> Self {
        log_dir();
        let redis_prefix = unique("bt");
        let (database_url, redis, cleanup) = match backend {
            Backend::PgRedis => {
                let name = unique("bursar_test_");
                let admin = Database::connect(pg_admin_url())
                    .await
                    .expect("PostgreSQL must be running for the tests");
                admin
                    .execute_unprepared(&format!("CREATE DATABASE \"{name}\""))
                    .await
                    .expect("create the test database");
                let _ = admin.close().await;
                let base = pg_admin_url();
                let url = format!(
                    "{}/{}",
                    &base[..base.rfind('/').expect("database URL has a path")],
                    name
                );
                let cleanup = Cleanup {
                    pg_database: Some(name),
                    redis_prefix: Some(redis_prefix.clone()),
                    _sqlite_dir: None,
                };
                (url, Some(redis_url()), cleanup)
            }
            Backend::Embedded => {
                let dir = tempfile::tempdir().expect("temp dir");
                let url = format!(
                    "sqlite://{}?mode=rwc",
                    dir.path().join("bursar.db").display()
                );
                (
                    url,
                    None,
                    Cleanup {
                        pg_database: None,
                        redis_prefix: None,
                        _sqlite_dir: Some(dir),
                    },
                )
            }
        };
        let env = TestEnv {
            backend,
            database_url,
            redis_url: redis,
            redis_prefix,
            _cleanup: Arc::new(cleanup),
        };
        bursar::db::migrate(&env.settings("migrate"))
            .await
            .expect("migrations apply");
        env
    }

    pub fn settings(&self, instance: &str) -> Settings {
        let mut settings = Settings::from_lookup(|_| None).expect("defaults parse");
        settings.database_url = self.database_url.clone();
        settings.redis_url = self.redis_url.clone();
        settings.redis_prefix = self.redis_prefix.clone();
        settings.bind = "127.0.0.1:0".into();
        settings.instance_id = instance.to_string();
        settings.log.dir = log_dir();
        settings.db_pool_size = 5;
        settings.migrate = false;
        settings.test_hooks = true;
        settings
    }

    pub async fn db(&self) -> DatabaseConnection {
        Database::connect(&self.database_url)
            .await
            .expect("connect to the test database")
    }

    /// Creates a user directly in the database and returns its password.
    pub async fn create_user(&self, role: Role) -> Credentials {
        let username = unique(&format!("{}-", role.as_str()));
        let password = format!("pw-{}", uuid::Uuid::new_v4().simple());
        let hash = bursar::auth::password::hash_password(password.clone())
            .await
            .expect("hash");
        let db = self.db().await;
        users::create(&db, &Username::parse(&username).expect("valid"), hash, role)
            .await
            .expect("insert user")
            .expect("username is new");
        let _ = db.close().await;
        Credentials { username, password }
    }

    pub async fn spawn(&self) -> TestApp {
        self.spawn_with(|_| {}).await
    }

    pub async fn spawn_with(&self, tweak: impl FnOnce(&mut Settings)) -> TestApp {
        let instance = unique("inst-");
        let mut settings = self.settings(&instance);
        tweak(&mut settings);
        TestApp::start(settings).await
    }

    /// `n` instances on one database and one Redis; the embedded backend
    /// can only run one (its sessions live in that process).
    pub async fn spawn_many(&self, n: usize) -> Vec<TestApp> {
        let n = if self.backend == Backend::Embedded {
            1
        } else {
            n
        };
        let mut apps = Vec::with_capacity(n);
        for _ in 0..n {
            apps.push(self.spawn().await);
        }
        apps
    }
}

pub struct Credentials {
    pub username: String,
    pub password: String,
}

pub struct TestApp {
    pub address: String,
    pub instance: String,
    stop: Option<oneshot::Sender<()>>,
}

impl TestApp {
    pub async fn start(settings: Settings) -> Self {
        let instance = settings.instance_id.clone();
        let app = Application::build(settings)
            .await
            .expect("the application starts");
        let address = format!("http://127.0.0.1:{}", app.port());
        let (stop, stopped) = oneshot::channel::<()>();
        tokio::spawn(app.run_until(async move {
            let _ = stopped.await;
        }));
        TestApp {
            address,
            instance,
            stop: Some(stop),
        }
    }

    /// A server this test did not start in-process (a child process).
    pub fn external(address: String, instance: String) -> Self {
        TestApp {
            address,
            instance,
            stop: None,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.address, path)
    }

    /// Reads a counter from this instance's `/metrics`.
    pub async fn metric(&self, name: &str) -> f64 {
        let body = plain_client()
            .get(self.url("/metrics"))
            .send()
            .await
            .expect("metrics")
            .text()
            .await
            .expect("body");
        body.lines()
            .filter(|l| !l.starts_with('#'))
            .filter_map(|l| {
                let (series, value) = l.rsplit_once(' ')?;
                let series_name = series.split('{').next()?;
                (series_name == name)
                    .then(|| value.parse::<f64>().ok())
                    .flatten()
            })
            .sum()
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// A client that follows no redirects and keeps no cookies: tests set the
/// Cookie header themselves where it matters.
pub fn plain_client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(30))
        .build()
        .expect("client")
}

/// A browser: keeps its cookies (for every instance, as a browser would for
/// one site behind a load balancer) and follows no redirects.
#[derive(Clone)]
pub struct Browser {
    pub client: reqwest::Client,
    jar: Arc<reqwest::cookie::Jar>,
}

impl Default for Browser {
    fn default() -> Self {
        Self::new()
    }
}

impl Browser {
    pub fn new() -> Self {
        let jar = Arc::new(reqwest::cookie::Jar::default());
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .cookie_provider(jar.clone())
            .timeout(Duration::from_secs(30))
            .build()
            .expect("client");
        Browser { client, jar }
    }

    /// A client with this browser's cookies that never reuses a connection:
    /// for requests the server may answer before reading them whole (413),
    /// after which it closes the connection.
    pub fn unpooled(&self) -> reqwest::Client {
        reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .cookie_provider(self.jar.clone())
            .pool_max_idle_per_host(0)
            .timeout(Duration::from_secs(30))
            .build()
            .expect("client")
    }

    /// The `bursar_session=…` pair this browser would send.
    pub fn session_cookie(&self, app: &TestApp) -> Option<String> {
        use reqwest::cookie::CookieStore;
        let url = app.address.parse().expect("url");
        let header = self.jar.cookies(&url)?;
        header
            .to_str()
            .ok()?
            .split(';')
            .map(str::trim)
            .find(|c| c.starts_with("bursar_session="))
            .map(str::to_string)
    }

    pub async fn get(&self, app: &TestApp, path: &str) -> reqwest::Response {
        self.client.get(app.url(path)).send().await.expect("GET")
    }

    pub async fn post_form(
        &self,
        app: &TestApp,
        path: &str,
        form: &[(&str, &str)],
    ) -> reqwest::Response {
        self.client
            .post(app.url(path))
            .form(form)
            .send()
            .await
            .expect("POST")
    }

    /// The CSRF token of the form on `path`.
    pub async fn csrf_from(&self, app: &TestApp, path: &str) -> String {
        let page = self.get(app, path).await.text().await.expect("page");
        csrf_in(&page).unwrap_or_else(|| panic!("no csrf_token on {path}"))
    }

    /// Signs in through the login form; returns the response (303 on success).
    pub async fn login(&self, app: &TestApp, creds: &Credentials) -> reqwest::Response {
        let token = self.csrf_from(app, "/login/").await;
        self.post_form(
            app,
            "/login/",
            &[
                ("csrf_token", &token),
                ("username", &creds.username),
                ("password", &creds.password),
            ],
        )
        .await
    }

    /// Signs in and insists it worked.
    pub async fn sign_in(&self, app: &TestApp, creds: &Credentials) {
        let response = self.login(app, creds).await;
        assert_eq!(
            response.status(),
            StatusCode::SEE_OTHER,
            "login should redirect"
        );
        assert_eq!(location(&response), "/dashboard/");
    }

    pub async fn logout(&self, app: &TestApp) -> reqwest::Response {
        let token = self.csrf_from(app, "/dashboard/").await;
        self.post_form(app, "/logout/", &[("csrf_token", &token)])
            .await
    }
}

pub fn csrf_in(page: &str) -> Option<String> {
    let html = scraper::Html::parse_document(page);
    let selector = scraper::Selector::parse(r#"input[name="csrf_token"]"#).expect("selector");
    html.select(&selector)
        .next()
        .and_then(|e| e.value().attr("value"))
        .map(str::to_string)
}

pub fn location(response: &reqwest::Response) -> String {
    response
        .headers()
        .get(header::LOCATION)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string()
}

/// The `bursar_session=…` pair a response sets, if any.
pub fn set_session_cookie(response: &reqwest::Response) -> Option<String> {
    response
        .headers()
        .get_all(header::SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|c| c.starts_with("bursar_session="))
        .map(str::to_string)
}

/// Runs a test body against both backends, as two tests.
#[macro_export]
macro_rules! both_backends {
    ($name:ident) => {
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn pg_redis() {
                super::$name($crate::helpers::Backend::PgRedis).await;
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn embedded() {
                super::$name($crate::helpers::Backend::Embedded).await;
            }
        }
    };
}

/// A signed-in API client: the session cookie and its CSRF token.
pub struct Api {
    pub browser: Browser,
    pub csrf: String,
}

impl Api {
    pub async fn sign_in(app: &TestApp, creds: &Credentials) -> Api {
        let browser = Browser::new();
        let response = browser
            .client
            .post(app.url("/api/v1/login"))
            .json(&serde_json::json!({"username": creds.username, "password": creds.password}))
            .send()
            .await
            .expect("login");
        assert_eq!(response.status(), StatusCode::OK, "API login");
        let body: serde_json::Value = response.json().await.expect("json");
        Api {
            browser,
            csrf: body["csrf_token"].as_str().expect("token").to_string(),
        }
    }

    pub async fn get(&self, app: &TestApp, path: &str) -> reqwest::Response {
        self.browser
            .client
            .get(app.url(path))
            .send()
            .await
            .expect("GET")
    }

    pub async fn post(
        &self,
        app: &TestApp,
        path: &str,
        body: serde_json::Value,
    ) -> reqwest::Response {
        self.browser
            .client
            .post(app.url(path))
            .header("x-csrf-token", &self.csrf)
            .json(&body)
            .send()
            .await
            .expect("POST")
    }

    /// Creates a student and returns its id.
    pub async fn create_student(&self, app: &TestApp, admission_no: &str, first_name: &str) -> i64 {
        let response = self
            .post(
                app,
                "/api/v1/students",
                serde_json::json!({"admission_no": admission_no, "first_name": first_name, "last_name": "Test", "class_name": "Grade 4"}),
            )
            .await;
        assert_eq!(
            response.status(),
            StatusCode::CREATED,
            "create student {admission_no}"
        );
        response.json::<serde_json::Value>().await.expect("json")["id"]
            .as_i64()
            .expect("id")
    }

    pub async fn charge(&self, app: &TestApp, student: i64, amount: &str) -> reqwest::Response {
        self.post(
            app,
            &format!("/api/v1/students/{student}/charges"),
            serde_json::json!({"amount": amount, "description": "Fees"}),
        )
        .await
    }

    pub async fn pay(
        &self,
        app: &TestApp,
        student: i64,
        amount: &str,
        key: &str,
    ) -> reqwest::Response {
        self.browser
            .client
            .post(app.url(&format!("/api/v1/students/{student}/payments")))
            .header("x-csrf-token", &self.csrf)
            .header("idempotency-key", key)
            .json(&serde_json::json!({"amount": amount, "method": "cash", "reference": ""}))
            .send()
            .await
            .expect("POST payment")
    }

    /// The student as the API shows it.
    pub async fn student(&self, app: &TestApp, id: i64) -> serde_json::Value {
        let response = self.get(app, &format!("/api/v1/students/{id}")).await;
        assert_eq!(response.status(), StatusCode::OK);
        response.json().await.expect("json")
    }
}
