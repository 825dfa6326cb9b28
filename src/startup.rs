//! Builds an instance (database, Redis, sessions, router, listener) and runs it until told to stop.
use std::{future::Future, net::SocketAddr, sync::Arc, time::Duration};

use anyhow::{Context, bail};
use axum::{
    Router,
    extract::{DefaultBodyLimit, Request},
    http::{HeaderName, HeaderValue, header},
    middleware,
    response::{IntoResponse, Response},
};
use fred::{
    prelude::{Builder, ClientLike, Config as RedisConfig, Pool, ReconnectPolicy, TcpConfig},
    types::config::UnresponsiveConfig,
};
use sea_orm::DatabaseConnection;
use tokio::net::TcpListener;
use tower_http::{
    catch_panic::CatchPanicLayer,
    request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer},
    set_header::SetResponseHeaderLayer,
    timeout::TimeoutLayer,
    trace::TraceLayer,
};
use tracing::{Span, field::Empty};

use crate::{
    auth::{LoginThrottle, password},
    config::{SessionStoreKind, Settings, redact_url},
    db,
    domain::{Role, Username},
    error,
    metrics::{self, Metrics},
    repo::users,
    routes,
    session::{
        layer::{SessionConfig, optimistic_sessions, stock_layer},
        memory::MemorySessionStore,
        redis::RedisSessionStore,
        store::SessionStore,
    },
    state::AppState,
};

/// The longest a request may run; also the most graceful shutdown waits.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// Bodies above this get 413 (CSV import raises it on its own route).
pub const BODY_LIMIT: usize = 1024 * 1024;
/// A Redis command that has not answered by then fails, so a request that
/// needs the session answers 503 within 2 s when Redis is down or slow (S7).
const REDIS_COMMAND_TIMEOUT: Duration = Duration::from_millis(1500);

static REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");
static INSTANCE: HeaderName = HeaderName::from_static("x-bursar-instance");

pub struct Application {
    listener: TcpListener,
    router: Router,
    redis: Option<Pool>,
    port: u16,
}

impl Application {
    pub async fn build(settings: Settings) -> anyhow::Result<Self> {
        if settings.migrate {
            db::migrate(&settings).await?;
        }
        let db = db::connect(&settings).await?;
        create_first_admin(&db).await?;
        if settings.demo {
            seed_demo(&db).await?;
        }

        let redis = match &settings.redis_url {
            Some(url) => Some(connect_redis(url, &settings).await?),
            None => {
                tracing::info!(
                    "no REDIS_URL: sessions and login throttling live in this process; run a single instance"
                );
                None
            }
        };
        if settings.is_embedded_database() {
            tracing::info!(database = %redact_url(&settings.database_url), "using the embedded SQLite database");
        }

        let metrics = Arc::new(Metrics::new());
        let session_store: Option<Arc<dyn SessionStore>> = match (settings.session_store, &redis) {
            (SessionStoreKind::Optimistic, Some(pool)) => Some(Arc::new(RedisSessionStore::new(
                pool.clone(),
                &settings.redis_prefix,
            ))),
            (SessionStoreKind::Optimistic, None) => {
                let store = MemorySessionStore::new();
                store.spawn_sweeper();
                Some(Arc::new(store))
            }
            (SessionStoreKind::Stock, Some(_)) => {
                tracing::warn!(
                    "BURSAR_SESSION_STORE=stock: using tower-sessions-redis-store, for comparison only"
                );
                None
            }
            (SessionStoreKind::Stock, None) => bail!("BURSAR_SESSION_STORE=stock needs REDIS_URL"),
        };
        let throttle = Arc::new(match &redis {
            Some(pool) => LoginThrottle::redis(
                pool.clone(),
                &settings.redis_prefix,
                metrics.redis_errors.clone(),
            ),
            None => LoginThrottle::memory(),
        });
        password::warm_up().await;

        let listener = TcpListener::bind(&settings.bind)
            .await
            .with_context(|| format!("failed to listen on {}", settings.bind))?;
        let port = listener.local_addr()?.port();

        let settings = Arc::new(settings);
        let state = AppState {
            db,
            settings: settings.clone(),
            throttle,
            metrics: metrics.clone(),
            redis: redis.clone(),
            session_store: session_store.clone(),
        };
        let router = build_router(state, session_store, redis.clone());
        tracing::info!(
            instance = %settings.instance_id,
            address = %listener.local_addr()?,
            sessions = ?settings.session_store,
            "Bursar is listening"
        );
        Ok(Self {
            listener,
            router,
            redis,
            port,
        })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Runs until ctrl-c or SIGTERM.
    pub async fn run_until_stopped(self) -> anyhow::Result<()> {
        self.run_until(shutdown_signal()).await
    }

    /// Runs until `stop` completes; then stops accepting, lets in-flight
    /// requests finish (for at most [`REQUEST_TIMEOUT`]), and closes the
    /// Redis connections last.
    pub async fn run_until(
        self,
        stop: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let (stopping_tx, stopping_rx) = tokio::sync::watch::channel(false);
        let graceful = async move {
            stop.await;
            tracing::info!("shutting down: finishing in-flight requests");
            let _ = stopping_tx.send(true);
        };
        let server = axum::serve(
            self.listener,
            self.router
                .into_make_service_with_connect_info::<SocketAddr>(),
        )
        .with_graceful_shutdown(graceful);
        let deadline = async move {
            let mut rx = stopping_rx;
            let _ = rx.wait_for(|stopping| *stopping).await;
            tokio::time::sleep(REQUEST_TIMEOUT).await;
        };
        tokio::select! {
            served = server => served.context("server failed")?,
            () = deadline => tracing::warn!("requests still running after the grace period; stopping anyway"),
        }
        if let Some(redis) = self.redis {
            let _ = redis.quit().await;
        }
        tracing::info!("stopped");
        Ok(())
    }
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
}

/// Connects to Redis, retrying for ever in the background: if Redis is down
/// at start, or goes down later, requests that need it answer 503 until it
/// is back, and the instance never needs a restart (S7).
pub async fn connect_redis(url: &str, settings: &Settings) -> anyhow::Result<Pool> {
    let mut config = RedisConfig::from_url(url)
        .with_context(|| format!("REDIS_URL is not valid: {}", redact_url(url)))?;
    config.fail_fast = false;
    let pool = Builder::from_config(config)
        .with_connection_config(|c| {
            c.connection_timeout = Duration::from_secs(2);
            c.internal_command_timeout = Duration::from_secs(2);
            // A command is sent once: replaying a session script after a
            // broken connection could apply it twice.
            c.max_command_attempts = 1;
            c.unresponsive = UnresponsiveConfig {
                max_timeout: Some(Duration::from_secs(2)),
                interval: Duration::from_millis(500),
            };
            c.tcp = TcpConfig {
                nodelay: Some(true),
                ..Default::default()
            };
        })
        .with_performance_config(|p| {
            p.default_command_timeout = REDIS_COMMAND_TIMEOUT;
        })
        .set_policy(ReconnectPolicy::new_constant(0, 250))
        .build_pool(settings.redis_pool_size)
        .context("failed to set up the Redis client")?;
    pool.connect();
    match tokio::time::timeout(Duration::from_secs(5), pool.wait_for_connect()).await {
        Ok(Ok(())) => tracing::info!(redis = %redact_url(url), "connected to Redis"),
        _ => {
            tracing::warn!(redis = %redact_url(url), "Redis is not answering yet; requests that need it get 503 until it does")
        }
    }
    Ok(pool)
}

/// On the very first start there is nobody to sign in as: create `admin`
/// with a random password, shown once on the console and never logged.
pub async fn create_first_admin(db: &DatabaseConnection) -> anyhow::Result<()> {
    if users::count(db).await? > 0 {
        return Ok(());
    }
    let username = Username::parse("admin").expect("valid");
    let password = password::generate_password();
    let hash = password::hash_password(password.clone()).await?;
    // Instances starting together race here; the unique username decides,
    // and only the winner prints a password.
    if users::create(db, &username, hash, Role::Admin)
        .await?
        .is_some()
    {
        println!();
        println!("  Created the first user: admin");
        println!("  Password: {password}");
        println!("  It is shown only this once. Sign in and change it at /account/password.");
        println!();
    }
    Ok(())
}

/// `serve --demo`: a few hundred students with a year of charges and
/// payments, unless the school already has students.
async fn seed_demo(db: &DatabaseConnection) -> anyhow::Result<()> {
    use sea_orm::{EntityTrait, PaginatorTrait};
    if crate::entities::students::Entity::find().count(db).await? > 0 {
        return Ok(());
    }
    let Some(user) = users::first(db).await? else {
        return Ok(());
    };
    let options = crate::ledger::seed::SeedOptions {
        students: 300,
        payments_per_student: 4,
        seed: 2026,
    };
    match crate::ledger::seed::seed(db, user.id, options).await {
        Ok(summary) => tracing::info!(
            students = summary.students,
            payments = summary.payments,
            "seeded demo data"
        ),
        // Another instance seeding at the same moment wins; that is fine.
        Err(err) => tracing::warn!(error = %err, "demo data not seeded"),
    }
    Ok(())
}

fn security_headers(router: Router) -> Router {
    const HEADERS: [(&str, &str); 5] = [
        (
            "content-security-policy",
            "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
        ),
        ("x-frame-options", "DENY"),
        ("x-content-type-options", "nosniff"),
        ("referrer-policy", "same-origin"),
        ("cache-control", "no-store"),
    ];
    HEADERS.iter().fold(router, |router, (name, value)| {
        router.layer(SetResponseHeaderLayer::if_not_present(
            HeaderName::from_static(name),
            HeaderValue::from_static(value),
        ))
    })
}

fn build_router(
    state: AppState,
    session_store: Option<Arc<dyn SessionStore>>,
    redis: Option<Pool>,
) -> Router {
    let settings = state.settings.clone();
    let instance: Arc<str> = settings.instance_id.as_str().into();
    let metrics_state = state.metrics.clone();

    let routes = routes::router(settings.test_hooks)
        .fallback(|| async { error::AppError::NotFound })
        .layer(middleware::from_fn_with_state(
            metrics_state,
            metrics::track,
        ));

    // Sessions wrap the routes; error pages wrap the sessions, so a 503 from
    // a failed session save is rendered like any other.
    let routes = match (session_store, redis) {
        (Some(store), _) => routes.layer(middleware::from_fn_with_state(
            SessionConfig {
                store,
                metrics: state.metrics.sessions.clone(),
                idle: settings.session_idle,
                cookie_secure: settings.cookie_secure,
                instance: instance.clone(),
            },
            optimistic_sessions,
        )),
        (None, Some(pool)) => routes.layer(stock_layer(
            pool,
            settings.session_idle,
            settings.cookie_secure,
        )),
        (None, None) => unreachable!("startup refuses the stock store without Redis"),
    };

    let span_instance = instance.clone();
    let router = routes
        .with_state(state)
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        .layer(CatchPanicLayer::custom(|_| {
            error::AppError::Internal(anyhow::anyhow!("a handler panicked")).into_response()
        }))
        .layer(TimeoutLayer::with_status_code(
            axum::http::StatusCode::SERVICE_UNAVAILABLE,
            REQUEST_TIMEOUT,
        ))
        .layer(middleware::from_fn(error::render_errors));
    security_headers(router)
        .layer(SetResponseHeaderLayer::overriding(
            INSTANCE.clone(),
            HeaderValue::from_str(&instance).unwrap_or(HeaderValue::from_static("bursar")),
        ))
        .layer(PropagateRequestIdLayer::new(REQUEST_ID.clone()))
        .layer(
            TraceLayer::new_for_http()
                .make_span_with(move |request: &Request| {
                    // The matched route is only known after routing: the
                    // metrics middleware records it into this span.
                    let request_id = request
                        .headers()
                        .get(&REQUEST_ID)
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or_default();
                    tracing::info_span!(
                        "request",
                        request_id = %request_id,
                        method = %request.method(),
                        route = Empty,
                        instance = %span_instance,
                        status = Empty,
                        latency_ms = Empty,
                    )
                })
                .on_request(())
                .on_response(|response: &Response, latency: Duration, span: &Span| {
                    span.record("status", response.status().as_u16());
                    span.record("latency_ms", (latency.as_secs_f64() * 1e6).round() / 1e3);
                    tracing::info!(target: "bursar::http", "request finished");
                })
                .on_failure(()),
        )
        .layer(SetRequestIdLayer::new(REQUEST_ID.clone(), MakeRequestUuid))
        .layer(SetResponseHeaderLayer::if_not_present(
            header::VARY,
            HeaderValue::from_static("cookie"),
        ))
}
