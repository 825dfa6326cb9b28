//! Prometheus metrics, one registry per application instance, served on `/metrics`.
use std::{sync::Arc, time::Instant};

use axum::{
    extract::{MatchedPath, Request, State},
    http::header,
    middleware::Next,
    response::{IntoResponse, Response},
};
use prometheus_client::{
    encoding::{EncodeLabelSet, text::encode},
    metrics::{counter::Counter, family::Family, gauge::Gauge, histogram::Histogram},
    registry::Registry,
};
use sea_orm::{DatabaseConnection, DbBackend};

use crate::{error::ErrorInfo, session::metrics::SessionMetrics};

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    pub method: String,
    pub route: String,
    pub status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RouteLabels {
    pub route: String,
}

pub struct Metrics {
    registry: Registry,
    pub requests: Family<RequestLabels, Counter>,
    pub latency: Family<RouteLabels, Histogram>,
    pub sessions: Arc<SessionMetrics>,
    /// Requests that failed because the database did.
    pub db_errors: Counter,
    /// Failed or timed-out Redis calls, from sessions and login throttling.
    pub redis_errors: Counter,
    pub db_pool_connections: Gauge,
    pub db_pool_idle: Gauge,
}

fn latency_histogram() -> Histogram {
    Histogram::new([
        0.001, 0.0025, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
    ])
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::default();
        let requests = Family::<RequestLabels, Counter>::default();
        registry.register(
            "bursar_http_requests",
            "HTTP requests by method, matched route and status",
            requests.clone(),
        );
        let latency = Family::<RouteLabels, Histogram>::new_with_constructor(
            latency_histogram as fn() -> Histogram,
        );
        registry.register(
            "bursar_http_request_duration_seconds",
            "HTTP request latency by matched route",
            latency.clone(),
        );
        let db_errors = Counter::default();
        registry.register(
            "bursar_db_errors",
            "Requests that failed because the database did",
            db_errors.clone(),
        );
        let sessions = Arc::new(SessionMetrics::register(&mut registry));
        // Session store failures are Redis failures when sessions live in
        // Redis (in-process stores do not fail); login throttling adds its own.
        let redis_errors = sessions.store_errors.clone();
        registry.register(
            "bursar_redis_errors",
            "Redis calls that failed or timed out",
            redis_errors.clone(),
        );
        let db_pool_connections = Gauge::default();
        registry.register(
            "bursar_db_pool_connections",
            "Open connections in this instance's database pool",
            db_pool_connections.clone(),
        );
        let db_pool_idle = Gauge::default();
        registry.register(
            "bursar_db_pool_idle",
            "Idle connections in this instance's database pool",
            db_pool_idle.clone(),
        );
        Self {
            registry,
            requests,
            latency,
            sessions,
            db_errors,
            redis_errors,
            db_pool_connections,
            db_pool_idle,
        }
    }

    pub fn encode(&self) -> String {
        let mut out = String::new();
        encode(&mut out, &self.registry).expect("writing to a String cannot fail");
        out
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

/// Counts every request and times it, labelled with its matched route (never
/// the raw path, which would make a series per student).
pub async fn track(State(metrics): State<Arc<Metrics>>, request: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = request.method().to_string();
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_string())
        .unwrap_or_else(|| "unmatched".into());
    tracing::Span::current().record("route", route.as_str());
    let response = next.run(request).await;
    if response
        .extensions()
        .get::<Arc<ErrorInfo>>()
        .is_some_and(|e| e.database_failed)
    {
        metrics.db_errors.inc();
    }
    metrics
        .requests
        .get_or_create(&RequestLabels {
            method,
            route: route.clone(),
            status: response.status().as_u16(),
        })
        .inc();
    metrics
        .latency
        .get_or_create(&RouteLabels { route })
        .observe(started.elapsed().as_secs_f64());
    response
}

/// The Prometheus text; the pool gauges are read as it is asked for.
pub async fn serve(
    State(metrics): State<Arc<Metrics>>,
    State(db): State<DatabaseConnection>,
) -> impl IntoResponse {
    let (size, idle) = match db.get_database_backend() {
        DbBackend::Postgres => {
            let pool = db.get_postgres_connection_pool();
            (pool.size(), pool.num_idle())
        }
        _ => {
            let pool = db.get_sqlite_connection_pool();
            (pool.size(), pool.num_idle())
        }
    };
    metrics.db_pool_connections.set(i64::from(size));
    metrics.db_pool_idle.set(idle as i64);
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        metrics.encode(),
    )
}
