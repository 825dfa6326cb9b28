//! Every route, one module per resource; `startup` only merges these routers.
pub mod account;
pub mod api;
pub mod assets;
pub mod dashboard;
pub mod health;
pub mod login;
pub mod page;
pub mod payments;
pub mod query;
pub mod students;
pub mod testing;
pub mod users;

use axum::Router;

use crate::state::AppState;

pub fn router(test_hooks: bool) -> Router<AppState> {
    let router = Router::new()
        .merge(health::router())
        .merge(assets::router())
        .merge(login::router())
        .merge(dashboard::router())
        .merge(account::router())
        .merge(students::router())
        .merge(payments::router())
        .merge(users::router())
        .nest("/api/v1", api::router());
    if test_hooks {
        router.merge(testing::router())
    } else {
        router
    }
}
