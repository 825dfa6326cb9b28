//! The middleware around every route: reads the cookie, hands the request a session, saves it after.
use std::{sync::Arc, time::Duration};

use axum::{
    Json,
    extract::{Request, State},
    http::{HeaderMap, HeaderValue, Method, StatusCode, header},
    middleware::Next,
    response::{IntoResponse, Redirect, Response},
};
use cookie::{Cookie, SameSite};
use serde_json::json;
use tower_sessions::{Expiry, SessionManagerLayer};
use tower_sessions_redis_store::RedisStore;

use super::{
    COOKIE_NAME, Gone, OptimisticSession, SessionId,
    handle::{CookieAction, Finish},
    metrics::SessionMetrics,
    store::SessionStore,
};

/// What the optimistic session middleware needs (cheap to clone).
#[derive(Clone)]
pub struct SessionConfig {
    pub store: Arc<dyn SessionStore>,
    pub metrics: Arc<SessionMetrics>,
    pub idle: Duration,
    pub cookie_secure: bool,
    pub instance: Arc<str>,
}

/// The first well-formed `bursar_session` cookie, if any. A malformed value
/// is ignored: the request is simply anonymous (S1).
pub fn session_id_from_cookies(headers: &HeaderMap) -> Option<SessionId> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(Cookie::split_parse)
        .filter_map(Result::ok)
        .filter(|c| c.name() == COOKIE_NAME)
        .find_map(|c| c.value().parse::<SessionId>().ok())
}

fn session_cookie(id: Option<SessionId>, config: &SessionConfig) -> HeaderValue {
    let builder = Cookie::build((COOKIE_NAME, id.map(|id| id.to_string()).unwrap_or_default()))
        .http_only(true)
        .same_site(SameSite::Lax)
        .path("/")
        .secure(config.cookie_secure);
    let cookie = match id {
        Some(_) => builder.max_age(time::Duration::seconds(config.idle.as_secs() as i64)),
        None => builder
            .max_age(time::Duration::ZERO)
            .expires(time::OffsetDateTime::UNIX_EPOCH),
    };
    HeaderValue::from_str(&cookie.build().to_string()).expect("cookie header is ASCII")
}

fn is_api(path: &str) -> bool {
    path.starts_with("/api/")
}

/// The answer to a request whose session went away while it ran (S5).
fn interrupted_response(path: &str) -> Response {
    if is_api(path) {
        (
            StatusCode::UNAUTHORIZED,
            Json(json!({"error": {
                "code": "session_interrupted",
                "message": "Your session ended while this request was running. Please sign in again."
            }})),
        )
            .into_response()
    } else {
        Redirect::to("/login/").into_response()
    }
}

/// The optimistic session middleware.
pub async fn optimistic_sessions(
    State(config): State<SessionConfig>,
    mut request: Request,
    next: Next,
) -> Response {
    let session = OptimisticSession::new(
        config.store.clone(),
        config.metrics.clone(),
        config.idle,
        session_id_from_cookies(request.headers()),
    );
    request.extensions_mut().insert(session.clone());
    let method = request.method().clone();
    let path = request.uri().path().to_string();

    let mut response = next.run(request).await;

    let finish = match session.finish().await {
        Ok(finish) => finish,
        Err(err) => {
            tracing::error!(target: "bursar::session", error = %err, "could not save the session");
            return crate::error::AppError::from(err).into_response();
        }
    };
    let Finish {
        mut cookie,
        interrupted,
    } = finish;
    if let Some(why) = interrupted {
        config.metrics.interrupted(why);
        let session_hash = session.log_hash().await.unwrap_or_default();
        tracing::warn!(
            target: "bursar::session",
            event = "session_interrupted",
            method = %method,
            path = %path,
            instance = %config.instance,
            session = session_hash,
            reason = why.as_str(),
            "session interrupted: it ended while the request was in flight"
        );
        // The login page itself is served as asked (redirecting it to
        // itself would loop); everything else goes to the login page.
        let is_login_page = method == Method::GET && path == "/login/";
        if !is_login_page {
            response = interrupted_response(&path);
        }
        // After a login elsewhere the browser may already hold the new
        // cookie; clearing would sign that tab out too.
        if why == Gone::Cycled && cookie == CookieAction::Clear {
            cookie = CookieAction::Keep;
        }
    }
    match cookie {
        CookieAction::Keep => {}
        CookieAction::Set(id) => {
            response
                .headers_mut()
                .append(header::SET_COOKIE, session_cookie(Some(id), &config));
        }
        CookieAction::Clear => {
            response
                .headers_mut()
                .append(header::SET_COOKIE, session_cookie(None, &config));
        }
    }
    response
}

/// tower-sessions' own layer over tower-sessions-redis-store, configured to
/// match Bursar's cookie rules but otherwise unchanged.
pub fn stock_layer(
    pool: fred::prelude::Pool,
    idle: Duration,
    cookie_secure: bool,
) -> SessionManagerLayer<RedisStore<fred::prelude::Pool>> {
    SessionManagerLayer::new(RedisStore::new(pool))
        .with_name(COOKIE_NAME)
        .with_http_only(true)
        .with_same_site(tower_sessions::cookie::SameSite::Lax)
        .with_path("/")
        .with_secure(cookie_secure)
        .with_expiry(Expiry::OnInactivity(time::Duration::seconds(
            idle.as_secs() as i64,
        )))
}
