//! Login and logout over HTML and the API, throttling, CSRF, health checks, and secrets kept out of logs.
use bursar::domain::Role;
use reqwest::{StatusCode, header};
use serde_json::{Value, json};

use crate::{
    both_backends,
    helpers::{Backend, Browser, TestEnv, location, log_dir, plain_client, set_session_cookie},
};

both_backends!(root_and_protected_pages_send_strangers_to_login);
async fn root_and_protected_pages_send_strangers_to_login(backend: Backend) {
    let env = TestEnv::new(backend).await;
    let app = env.spawn().await;
    let client = plain_client();
    let root = client.get(app.url("/")).send().await.unwrap();
    assert_eq!(root.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&root), "/login/");
    let dashboard = client.get(app.url("/dashboard/")).send().await.unwrap();
    assert_eq!(dashboard.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&dashboard), "/login/?next=%2Fdashboard%2F");

    let creds = env.create_user(Role::Viewer).await;
    let browser = Browser::new();
    browser.sign_in(&app, &creds).await;
    let root = browser.get(&app, "/").await;
    assert_eq!(location(&root), "/dashboard/");
    // Signed in, the login page sends you on.
    assert_eq!(location(&browser.get(&app, "/login/").await), "/dashboard/");
}

both_backends!(login_honours_a_safe_next_only);
async fn login_honours_a_safe_next_only(backend: Backend) {
    let env = TestEnv::new(backend).await;
    let app = env.spawn().await;
    let creds = env.create_user(Role::Viewer).await;
    for (next, expected) in [
        ("/account/password", "/account/password"),
        ("https://evil.example/", "/dashboard/"),
        ("//evil.example", "/dashboard/"),
    ] {
        let browser = Browser::new();
        let token = browser.csrf_from(&app, "/login/").await;
        let response = browser
            .post_form(
                &app,
                "/login/",
                &[
                    ("csrf_token", &token),
                    ("username", &creds.username),
                    ("password", &creds.password),
                    ("next", next),
                ],
            )
            .await;
        assert_eq!(response.status(), StatusCode::SEE_OTHER);
        assert_eq!(location(&response), expected, "next={next}");
    }
}

both_backends!(wrong_password_shows_the_form_again_with_one_message);
async fn wrong_password_shows_the_form_again_with_one_message(backend: Backend) {
    let env = TestEnv::new(backend).await;
    let app = env.spawn().await;
    let creds = env.create_user(Role::Viewer).await;
    for username in [creds.username.as_str(), "nobody-by-that-name"] {
        let browser = Browser::new();
        let token = browser.csrf_from(&app, "/login/").await;
        let response = browser
            .post_form(
                &app,
                "/login/",
                &[
                    ("csrf_token", &token),
                    ("username", username),
                    ("password", "wrong password"),
                ],
            )
            .await;
        assert_eq!(response.status(), StatusCode::OK);
        assert!(location(&response).is_empty(), "no redirect on failure");
        let page = response.text().await.unwrap();
        assert!(
            page.contains("The username or password is not right."),
            "{page}"
        );
    }
}

both_backends!(every_post_needs_the_csrf_token);
async fn every_post_needs_the_csrf_token(backend: Backend) {
    let env = TestEnv::new(backend).await;
    let app = env.spawn().await;
    let creds = env.create_user(Role::Admin).await;
    let browser = Browser::new();
    browser.csrf_from(&app, "/login/").await;

    // The login form itself.
    let response = browser
        .post_form(
            &app,
            "/login/",
            &[("username", &creds.username), ("password", &creds.password)],
        )
        .await;
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    let response = browser
        .post_form(
            &app,
            "/login/",
            &[
                ("csrf_token", "forged"),
                ("username", &creds.username),
                ("password", &creds.password),
            ],
        )
        .await;
    assert_eq!(response.status(), StatusCode::FORBIDDEN);

    browser.sign_in(&app, &creds).await;
    let filler = "x".repeat(12);
    for path in ["/logout/", "/account/password"] {
        for token in [None, Some("forged")] {
            let mut form = vec![
                ("current_password", creds.password.as_str()),
                ("new_password", filler.as_str()),
            ];
            if let Some(token) = token {
                form.push(("csrf_token", token));
            }
            let response = browser.post_form(&app, path, &form).await;
            assert_eq!(
                response.status(),
                StatusCode::FORBIDDEN,
                "{path} with {token:?}"
            );
            assert!(
                response.text().await.unwrap().contains("<html"),
                "403 is a page in the site's look"
            );
        }
    }
    assert_eq!(
        browser.get(&app, "/dashboard/").await.status(),
        StatusCode::OK,
        "still signed in"
    );

    // API: mutating calls need X-CSRF-Token.
    let response = browser
        .client
        .post(app.url("/api/v1/logout"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], "csrf_failed");
}

both_backends!(api_login_session_and_logout);
async fn api_login_session_and_logout(backend: Backend) {
    let env = TestEnv::new(backend).await;
    let app = env.spawn().await;
    let creds = env.create_user(Role::Bursar).await;
    let browser = Browser::new();

    // A form post cannot sign in through the API.
    let response = browser
        .client
        .post(app.url("/api/v1/login"))
        .form(&[("username", &creds.username), ("password", &creds.password)])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);

    let response = browser
        .client
        .post(app.url("/api/v1/login"))
        .json(&json!({"username": creds.username, "password": "wrong"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], "invalid_credentials");

    let response = browser
        .client
        .post(app.url("/api/v1/login"))
        .json(&json!({"username": creds.username.to_uppercase(), "password": creds.password}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert!(set_session_cookie(&response).is_some());
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["user"], creds.username.as_str());
    assert_eq!(body["role"], "bursar");
    let token = body["csrf_token"].as_str().unwrap().to_string();

    let session: Value = browser
        .client
        .get(app.url("/api/v1/session"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(session["user"], creds.username.as_str());
    assert_eq!(
        session["csrf_token"],
        token.as_str(),
        "one token per session"
    );

    // The API's token is valid in HTML forms too.
    let page = browser.get(&app, "/dashboard/").await.text().await.unwrap();
    assert!(page.contains(&token));

    let response = browser
        .client
        .post(app.url("/api/v1/logout"))
        .header("x-csrf-token", &token)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let response = browser
        .client
        .get(app.url("/api/v1/session"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], "unauthorized");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn throttling_is_shared_by_every_instance() {
    let env = TestEnv::new(Backend::PgRedis).await;
    let apps = env.spawn_many(2).await;
    throttle_after_five_failures(&env, &apps).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn throttling_works_embedded() {
    let env = TestEnv::new(Backend::Embedded).await;
    let apps = env.spawn_many(1).await;
    throttle_after_five_failures(&env, &apps).await;
}

async fn throttle_after_five_failures(env: &TestEnv, apps: &[crate::helpers::TestApp]) {
    let creds = env.create_user(Role::Viewer).await;
    let other = env.create_user(Role::Viewer).await;
    let api_login = |app: &crate::helpers::TestApp, password: &str| {
        plain_client()
            .post(app.url("/api/v1/login"))
            .json(&json!({"username": creds.username, "password": password}))
            .send()
    };
    for attempt in 0..5 {
        let app = &apps[attempt % apps.len()];
        assert_eq!(
            api_login(app, "wrong").await.unwrap().status(),
            StatusCode::UNAUTHORIZED,
            "attempt {attempt}"
        );
    }
    // The sixth attempt is refused on every instance, even with the right password.
    for app in apps {
        let response = api_login(app, &creds.password).await.unwrap();
        assert_eq!(
            response.status(),
            StatusCode::TOO_MANY_REQUESTS,
            "{}",
            app.instance
        );
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["error"]["code"], "too_many_requests");
        // The HTML form says so too, with 429.
        let browser = Browser::new();
        let token = browser.csrf_from(app, "/login/").await;
        let response = browser
            .post_form(
                app,
                "/login/",
                &[
                    ("csrf_token", &token),
                    ("username", &creds.username),
                    ("password", &creds.password),
                ],
            )
            .await;
        assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
        assert!(
            response
                .text()
                .await
                .unwrap()
                .contains("Too many failed attempts")
        );
    }
    // Another user from the same address is still welcome (5 < 30).
    Browser::new().sign_in(&apps[0], &other).await;
}

both_backends!(health_checks_and_error_pages);
async fn health_checks_and_error_pages(backend: Backend) {
    let env = TestEnv::new(backend).await;
    let app = env.spawn().await;
    let client = plain_client();
    let live = client.get(app.url("/health/live")).send().await.unwrap();
    assert_eq!(live.status(), StatusCode::OK);
    let ready = client.get(app.url("/health/ready")).send().await.unwrap();
    assert_eq!(ready.status(), StatusCode::OK);
    let body: Value = ready.json().await.unwrap();
    assert_eq!(body["status"], "ready");

    let missing = client.get(app.url("/no/such/page")).send().await.unwrap();
    assert_eq!(missing.status(), StatusCode::NOT_FOUND);
    assert!(
        missing.headers()[header::CONTENT_TYPE]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
    assert!(
        missing
            .text()
            .await
            .unwrap()
            .contains("There is nothing at this address")
    );
    let missing_api = client.get(app.url("/api/v1/nothing")).send().await.unwrap();
    assert_eq!(missing_api.status(), StatusCode::NOT_FOUND);
    let body: Value = missing_api.json().await.unwrap();
    assert_eq!(body["error"]["code"], "not_found");

    let response = client
        .get(app.url("/health/live"))
        .header("x-request-id", "trace-me-42")
        .send()
        .await
        .unwrap();
    assert_eq!(response.headers()["x-request-id"], "trace-me-42");
    assert_eq!(
        response.headers()["x-bursar-instance"],
        app.instance.as_str()
    );
    assert_eq!(response.headers()["x-frame-options"], "DENY");
    assert_eq!(response.headers()["x-content-type-options"], "nosniff");
    assert!(response.headers().contains_key("content-security-policy"));
    assert!(response.headers().contains_key("referrer-policy"));
    let generated = client.get(app.url("/health/live")).send().await.unwrap();
    assert!(!generated.headers()["x-request-id"].is_empty());

    // Oversized bodies get 413, in the site's look.
    let huge = "a".repeat(2 * 1024 * 1024);
    let response = client
        .post(app.url("/login/"))
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(format!("username={huge}"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::PAYLOAD_TOO_LARGE);
}

both_backends!(no_password_session_id_or_csrf_token_reaches_a_log);
async fn no_password_session_id_or_csrf_token_reaches_a_log(backend: Backend) {
    let env = TestEnv::new(backend).await;
    let app = env.spawn().await;
    let creds = env.create_user(Role::Bursar).await;
    let browser = Browser::new();
    let mut secrets = vec![creds.password.clone()];

    // A failed attempt, a password typed into the username box, a login,
    // a password change, a logout.
    let token = browser.csrf_from(&app, "/login/").await;
    secrets.push(token.clone());
    secrets.push(browser.session_cookie(&app).unwrap());
    browser
        .post_form(
            &app,
            "/login/",
            &[
                ("csrf_token", &token),
                ("username", &creds.username),
                ("password", "wrong-pass-7731"),
            ],
        )
        .await;
    secrets.push("wrong-pass-7731".into());
    browser
        .post_form(
            &app,
            "/login/",
            &[
                ("csrf_token", &token),
                ("username", "typed-my-secret-0042"),
                ("password", "x"),
            ],
        )
        .await;
    browser.sign_in(&app, &creds).await;
    let cookie = browser.session_cookie(&app).unwrap();
    secrets.push(cookie.trim_start_matches("bursar_session=").to_string());
    let token = browser.csrf_from(&app, "/account/password").await;
    secrets.push(token.clone());
    browser
        .post_form(
            &app,
            "/account/password",
            &[
                ("csrf_token", &token),
                ("current_password", &creds.password),
                ("new_password", "fresh secret 9931"),
                ("confirm_password", "fresh secret 9931"),
            ],
        )
        .await;
    secrets.push("fresh secret 9931".into());
    browser.logout(&app).await;

    // Let the log writer catch up, then read every log file of this process.
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    let mut seen_request_lines = false;
    for entry in std::fs::read_dir(log_dir()).unwrap().flatten() {
        let text = std::fs::read_to_string(entry.path()).unwrap_or_default();
        seen_request_lines |= text.contains(&app.instance);
        for secret in &secrets {
            let bare = secret.trim_start_matches("bursar_session=");
            assert!(
                !text.contains(bare),
                "{} leaked into {}",
                bare,
                entry.path().display()
            );
        }
        assert!(
            !text.contains("typed-my-secret-0042"),
            "a mistyped username reached {}",
            entry.path().display()
        );
    }
    assert!(
        seen_request_lines,
        "the test must actually have read this instance's log lines"
    );
}
