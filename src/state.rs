//! The shared state every handler can extract from: cheap handles only.
use std::sync::Arc;

use axum::extract::FromRef;
use sea_orm::DatabaseConnection;

use crate::{
    auth::LoginThrottle, config::Settings, metrics::Metrics, session::store::SessionStore,
};

#[derive(Clone, FromRef)]
pub struct AppState {
    pub db: DatabaseConnection,
    pub settings: Arc<Settings>,
    pub throttle: Arc<LoginThrottle>,
    pub metrics: Arc<Metrics>,
    /// Redis, when configured: sessions (either store) and throttling.
    pub redis: Option<fred::prelude::Pool>,
    /// The optimistic store, when that is the one in use.
    pub session_store: Option<Arc<dyn SessionStore>>,
}
