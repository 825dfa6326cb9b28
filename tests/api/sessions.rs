//! The stability suite's session part, S1 (cookies) and S6 (login, logout, account changes).
use bursar::domain::Role;
use reqwest::{StatusCode, header};

use crate::{
    both_backends,
    helpers::{Backend, Browser, TestEnv, location, plain_client, set_session_cookie},
};

both_backends!(session_persists_across_instances_and_logout_ends_it_everywhere);
async fn session_persists_across_instances_and_logout_ends_it_everywhere(backend: Backend) {
    let env = TestEnv::new(backend).await;
    let apps = env.spawn_many(2).await;
    let creds = env.create_user(Role::Viewer).await;
    let browser = Browser::new();

    browser.sign_in(&apps[0], &creds).await;
    let dashboard = browser.get(&apps[0], "/dashboard/").await;
    assert_eq!(dashboard.status(), StatusCode::OK);
    assert!(dashboard.text().await.unwrap().contains(&creds.username));

    for i in 0..100 {
        let app = &apps[i % apps.len()];
        let response = browser.get(app, "/dashboard/").await;
        assert_eq!(
            response.status(),
            StatusCode::OK,
            "request {i} on {}",
            app.instance
        );
        assert_eq!(
            response.headers()["x-bursar-instance"],
            app.instance.as_str()
        );
        assert!(
            response.text().await.unwrap().contains(&creds.username),
            "request {i}"
        );
    }

    let old_cookie = browser.session_cookie(&apps[0]).expect("signed in");
    let logout = browser.logout(apps.last().unwrap()).await;
    assert_eq!(logout.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&logout), "/login/");
    let cleared = set_session_cookie(&logout).expect("logout clears the cookie");
    assert!(cleared.contains("Max-Age=0"), "{cleared}");

    // The old cookie, replayed by hand, works on no instance.
    for app in &apps {
        let response = plain_client()
            .get(app.url("/dashboard/"))
            .header(header::COOKIE, &old_cookie)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::SEE_OTHER, "{}", app.instance);
        assert!(location(&response).starts_with("/login/"));
        let api = plain_client()
            .get(app.url("/api/v1/session"))
            .header(header::COOKIE, &old_cookie)
            .send()
            .await
            .unwrap();
        assert_eq!(api.status(), StatusCode::UNAUTHORIZED);
    }
}

both_backends!(cookie_has_the_required_flags);
async fn cookie_has_the_required_flags(backend: Backend) {
    let env = TestEnv::new(backend).await;
    let app = env.spawn().await;
    let creds = env.create_user(Role::Viewer).await;
    let browser = Browser::new();
    let response = browser.login(&app, &creds).await;
    let cookie = set_session_cookie(&response).expect("login sets the cookie");
    for flag in ["HttpOnly", "SameSite=Lax", "Path=/"] {
        assert!(cookie.contains(flag), "{flag} missing from {cookie}");
    }
    assert!(
        !cookie.contains("Secure"),
        "Secure is off by default: {cookie}"
    );
    let id = cookie
        .trim_start_matches("bursar_session=")
        .split(';')
        .next()
        .unwrap();
    assert!(id.len() >= 22, "an id carries at least 128 bits: {id}");

    let secure = env.spawn_with(|s| s.cookie_secure = true).await;
    let response = Browser::new().login(&secure, &creds).await;
    assert!(set_session_cookie(&response).unwrap().contains("Secure"));
}

both_backends!(malformed_forged_and_expired_cookies_are_anonymous);
async fn malformed_forged_and_expired_cookies_are_anonymous(backend: Backend) {
    let env = TestEnv::new(backend).await;
    let app = env
        .spawn_with(|s| s.session_idle = std::time::Duration::from_secs(2))
        .await;
    let forged_id = "AAAAAAAAAAAAAAAAAAAAAA";
    for cookie in [
        "bursar_session=garbage".to_string(),
        "bursar_session=".to_string(),
        format!("bursar_session={forged_id}"),
        format!("bursar_session={}", "x".repeat(5000)),
        "bursar_session=%00%ff;;;=".to_string(),
    ] {
        for path in ["/dashboard/", "/login/", "/api/v1/session"] {
            let response = plain_client()
                .get(app.url(path))
                .header(header::COOKIE, &cookie)
                .send()
                .await
                .unwrap();
            let status = response.status();
            assert!(
                matches!(
                    status,
                    StatusCode::OK | StatusCode::SEE_OTHER | StatusCode::UNAUTHORIZED
                ),
                "{path} with {cookie:.40}: {status}"
            );
            if path == "/dashboard/" {
                assert!(location(&response).starts_with("/login/"));
            }
        }
    }

    let creds = env.create_user(Role::Viewer).await;
    let browser = Browser::new();
    browser.sign_in(&app, &creds).await;
    let cookie = browser.session_cookie(&app).unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(2600)).await;
    let response = plain_client()
        .get(app.url("/dashboard/"))
        .header(header::COOKIE, &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(
        response.status(),
        StatusCode::SEE_OTHER,
        "an expired session is no session"
    );
    assert!(location(&response).starts_with("/login/"));
}

both_backends!(login_cycles_the_id_and_the_old_one_is_useless);
async fn login_cycles_the_id_and_the_old_one_is_useless(backend: Backend) {
    let env = TestEnv::new(backend).await;
    let app = env.spawn().await;
    let creds = env.create_user(Role::Bursar).await;
    let browser = Browser::new();
    let token = browser.csrf_from(&app, "/login/").await;
    let before = browser
        .session_cookie(&app)
        .expect("the login form starts a session");

    browser.sign_in(&app, &creds).await;
    let after = browser.session_cookie(&app).unwrap();
    assert_ne!(before, after, "login must cycle the session id");

    let response = plain_client()
        .get(app.url("/dashboard/"))
        .header(header::COOKIE, &before)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    assert!(location(&response).starts_with("/login/"));
    let api = plain_client()
        .get(app.url("/api/v1/session"))
        .header(header::COOKIE, &before)
        .send()
        .await
        .unwrap();
    assert_eq!(api.status(), StatusCode::UNAUTHORIZED);

    // The pre-login CSRF token does not carry over either.
    let response = browser
        .post_form(&app, "/logout/", &[("csrf_token", &token)])
        .await;
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    assert_eq!(
        browser.get(&app, "/dashboard/").await.status(),
        StatusCode::OK
    );
}

both_backends!(password_change_ends_the_other_sessions_only);
async fn password_change_ends_the_other_sessions_only(backend: Backend) {
    let env = TestEnv::new(backend).await;
    let apps = env.spawn_many(2).await;
    let creds = env.create_user(Role::Bursar).await;
    let (office, home) = (Browser::new(), Browser::new());
    office.sign_in(&apps[0], &creds).await;
    home.sign_in(apps.last().unwrap(), &creds).await;

    let token = office.csrf_from(&apps[0], "/account/password").await;
    let changed = office
        .post_form(
            &apps[0],
            "/account/password",
            &[
                ("csrf_token", &token),
                ("current_password", &creds.password),
                ("new_password", "a brand new passphrase"),
                ("confirm_password", "a brand new passphrase"),
            ],
        )
        .await;
    assert_eq!(changed.status(), StatusCode::SEE_OTHER);

    for app in &apps {
        assert_eq!(
            office.get(app, "/dashboard/").await.status(),
            StatusCode::OK,
            "the changing session stays"
        );
    }
    let response = home.get(apps.last().unwrap(), "/dashboard/").await;
    assert_eq!(
        response.status(),
        StatusCode::SEE_OTHER,
        "the other session ends"
    );
    assert!(location(&response).starts_with("/login/"));
    // And it stays ended on every instance.
    for app in &apps {
        assert_eq!(
            home.get(app, "/dashboard/").await.status(),
            StatusCode::SEE_OTHER
        );
    }

    // A wrong current password changes nothing and says why.
    let token = office.csrf_from(&apps[0], "/account/password").await;
    let refused = office
        .post_form(
            &apps[0],
            "/account/password",
            &[
                ("csrf_token", &token),
                ("current_password", "not it at all"),
                ("new_password", "another new passphrase"),
                ("confirm_password", "another new passphrase"),
            ],
        )
        .await;
    assert_eq!(refused.status(), StatusCode::BAD_REQUEST);
    assert!(
        refused
            .text()
            .await
            .unwrap()
            .contains("not your current password")
    );
    let creds = crate::helpers::Credentials {
        username: creds.username,
        password: "a brand new passphrase".into(),
    };
    Browser::new().sign_in(&apps[0], &creds).await;
}

both_backends!(role_change_and_deactivation_end_sessions);
async fn role_change_and_deactivation_end_sessions(backend: Backend) {
    let env = TestEnv::new(backend).await;
    let app = env.spawn().await;
    let db = env.db().await;
    let creds = env.create_user(Role::Bursar).await;
    let username = bursar::domain::Username::parse(&creds.username).unwrap();

    let browser = Browser::new();
    browser.sign_in(&app, &creds).await;
    let user = bursar::repo::users::find_by_username(&db, &username)
        .await
        .unwrap()
        .unwrap();
    bursar::repo::users::set_role(&db, &user, Role::Viewer)
        .await
        .unwrap();
    assert_eq!(
        browser.get(&app, "/dashboard/").await.status(),
        StatusCode::SEE_OTHER,
        "role change ends the session"
    );

    browser.sign_in(&app, &creds).await;
    let user = bursar::repo::users::find_by_username(&db, &username)
        .await
        .unwrap()
        .unwrap();
    bursar::repo::users::set_active(&db, &user, false)
        .await
        .unwrap();
    assert_eq!(
        browser.get(&app, "/dashboard/").await.status(),
        StatusCode::SEE_OTHER,
        "deactivation ends the session"
    );
    assert_eq!(
        browser.login(&app, &creds).await.status(),
        StatusCode::OK,
        "a deactivated user cannot sign in"
    );
}
