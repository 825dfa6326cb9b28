//! The school office's pages: remembered filters, escaping, CSV, roles, CSRF, import, users, bad input.
use bursar::domain::Role;
use futures::future::join_all;
use reqwest::{StatusCode, header};
use serde_json::{Value, json};

use crate::{
    both_backends,
    helpers::{Api, Backend, Browser, TestApp, TestEnv, location},
};

fn selected_option(page: &str, select: &str) -> Option<String> {
    let html = scraper::Html::parse_document(page);
    let selector =
        scraper::Selector::parse(&format!(r#"select[name="{select}"] option[selected]"#)).unwrap();
    html.select(&selector)
        .next()
        .and_then(|o| o.value().attr("value"))
        .map(str::to_string)
}

fn input_value(page: &str, name: &str) -> Option<String> {
    let html = scraper::Html::parse_document(page);
    let selector = scraper::Selector::parse(&format!(r#"input[name="{name}"]"#)).unwrap();
    html.select(&selector)
        .next()
        .and_then(|i| i.value().attr("value"))
        .map(str::to_string)
}

both_backends!(remembered_filters_written_together_on_two_instances_both_survive);
async fn remembered_filters_written_together_on_two_instances_both_survive(backend: Backend) {
    let env = TestEnv::new(backend).await;
    let apps = env.spawn_many(2).await;
    let viewer = env.create_user(Role::Viewer).await;
    let browser = Browser::new();
    browser.sign_in(&apps[0], &viewer).await;
    let methods = ["cash", "bank", "mobile", "card", "cheque"];
    for round in 0..30 {
        let (students_q, payments_q, method) = (
            format!("stu{round}"),
            format!("pay{round}"),
            methods[round % methods.len()],
        );
        let students_path =
            format!("/students/?q={students_q}&status=active&sort=balance&dir=desc");
        let payments_path = format!("/payments/?q={payments_q}&method={method}");
        let (a, b) = tokio::join!(
            browser.get(&apps[0], &students_path),
            browser.get(apps.last().unwrap(), &payments_path)
        );
        assert_eq!((a.status(), b.status()), (StatusCode::OK, StatusCode::OK));

        // Coming back without parameters, on the other instance, shows both.
        let students = browser
            .get(apps.last().unwrap(), "/students/")
            .await
            .text()
            .await
            .unwrap();
        assert_eq!(
            input_value(&students, "q").as_deref(),
            Some(students_q.as_str()),
            "round {round}: students.filter lost"
        );
        assert_eq!(
            selected_option(&students, "status").as_deref(),
            Some("active")
        );
        assert_eq!(
            selected_option(&students, "sort").as_deref(),
            Some("balance")
        );
        assert_eq!(selected_option(&students, "dir").as_deref(), Some("desc"));
        let payments = browser
            .get(&apps[0], "/payments/")
            .await
            .text()
            .await
            .unwrap();
        assert_eq!(
            input_value(&payments, "q").as_deref(),
            Some(payments_q.as_str()),
            "round {round}: payments.filter lost"
        );
        assert_eq!(
            selected_option(&payments, "method").as_deref(),
            Some(method)
        );
    }
    // "Clear" forgets the filter.
    browser.get(&apps[0], "/students/?q=").await;
    let students = browser
        .get(&apps[0], "/students/")
        .await
        .text()
        .await
        .unwrap();
    assert_eq!(input_value(&students, "q").as_deref(), Some(""));
}

both_backends!(hostile_names_are_escaped_on_every_page_and_neutralised_in_csv);
async fn hostile_names_are_escaped_on_every_page_and_neutralised_in_csv(backend: Backend) {
    let env = TestEnv::new(backend).await;
    let app = env.spawn().await;
    let bursar = env.create_user(Role::Bursar).await;
    let api = Api::sign_in(&app, &bursar).await;
    let script = "<script>alert(1)</script>";
    let attribute = "\"><img src=x onerror=alert(2)>";
    let response = api
        .post(
            &app,
            "/api/v1/students",
            json!({"admission_no": "XSS-1", "first_name": script, "last_name": attribute, "class_name": "<b>G1</b>", "guardian_name": "=1+1"}),
        )
        .await;
    assert_eq!(response.status(), StatusCode::CREATED);
    let id = response.json::<Value>().await.unwrap()["id"]
        .as_i64()
        .unwrap();
    api.create_student(&app, "CSV-1", "=1+1").await;
    api.charge(&app, id, "50").await;
    let payment: Value = api
        .browser
        .client
        .post(app.url(&format!("/api/v1/students/{id}/payments")))
        .header("x-csrf-token", &api.csrf)
        .header("idempotency-key", "xss-payment-0001")
        .json(&json!({"amount": "20", "method": "mobile", "reference": "@SUM(A1)<svg onload=alert(3)>"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();

    let browser = Browser::new();
    browser.sign_in(&app, &bursar).await;
    browser.get(&app, &format!("/students/{id}/")).await; // into "recently viewed"
    for path in [
        "/students/?q=".to_string(),
        "/students/?q=%3Cscript".to_string(),
        format!("/students/{id}/"),
        format!("/students/{id}/edit"),
        "/payments/?q=".to_string(),
        format!("/payments/{}/receipt/", payment["id"]),
        "/dashboard/".to_string(),
    ] {
        let page = browser.get(&app, &path).await.text().await.unwrap();
        for raw in [script, attribute, "<b>G1</b>", "<svg onload"] {
            assert!(!page.contains(raw), "{path} shows {raw} unescaped");
        }
        assert!(
            page.contains("&lt;script&gt;") || path.starts_with("/payments/?"),
            "{path} should show the escaped name"
        );
    }
    let api_student = api.student(&app, id).await;
    assert_eq!(
        api_student["first_name"], script,
        "the API returns data as stored; JSON is not HTML"
    );

    let students_csv = browser.get(&app, "/students.csv?q=").await;
    assert!(
        students_csv.headers()[header::CONTENT_TYPE]
            .to_str()
            .unwrap()
            .starts_with("text/csv")
    );
    let students_csv = students_csv.text().await.unwrap();
    assert!(students_csv.contains("'=1+1"), "{students_csv}");
    assert!(
        !students_csv.contains(",=1+1"),
        "a formula reached the CSV: {students_csv}"
    );
    let payments_csv = browser
        .get(&app, "/payments.csv?q=")
        .await
        .text()
        .await
        .unwrap();
    assert!(payments_csv.contains("'@SUM(A1)"), "{payments_csv}");
    assert!(payments_csv.lines().count() >= 2);
}

both_backends!(search_treats_sql_and_like_metacharacters_as_text);
async fn search_treats_sql_and_like_metacharacters_as_text(backend: Backend) {
    let env = TestEnv::new(backend).await;
    let app = env.spawn().await;
    let bursar = env.create_user(Role::Bursar).await;
    let api = Api::sign_in(&app, &bursar).await;
    for (adm, first, last) in [
        ("SQL-1", "Sean", "O'Brien"),
        ("SQL-2", "Per%cent", "Smith"),
        ("SQL-3", "Under_score", "Jones"),
        ("SQL-4", "Plain", "Name"),
    ] {
        let response = api
            .post(&app, "/api/v1/students", json!({"admission_no": adm, "first_name": first, "last_name": last, "class_name": "G"}))
            .await;
        assert_eq!(response.status(), StatusCode::CREATED);
    }
    let search = |q: &str| {
        let api = &api;
        let app = &app;
        let q = q.to_string();
        async move {
            let response = api
                .browser
                .client
                .get(app.url("/api/v1/students"))
                .query(&[("q", q.as_str())])
                .send()
                .await
                .unwrap();
            assert_eq!(response.status(), StatusCode::OK, "q={q}");
            let body: Value = response.json().await.unwrap();
            let mut found: Vec<String> = body["items"]
                .as_array()
                .unwrap()
                .iter()
                .map(|s| s["admission_no"].as_str().unwrap().to_string())
                .collect();
            found.sort();
            found
        }
    };
    assert_eq!(search("o'brien").await, ["SQL-1"]);
    // Names match from their start; % and _ are characters, not wildcards.
    assert_eq!(
        search("%").await,
        Vec::<String>::new(),
        "% must not match everyone"
    );
    assert_eq!(search("per%c").await, ["SQL-2"]);
    assert_eq!(
        search("_").await,
        Vec::<String>::new(),
        "_ must not match everyone"
    );
    assert_eq!(search("under_s").await, ["SQL-3"]);
    assert_eq!(
        search("unders").await,
        Vec::<String>::new(),
        "_ is not any one character"
    );
    assert_eq!(
        search("'; DROP TABLE students; --").await,
        Vec::<String>::new()
    );
    assert_eq!(search("\\").await, Vec::<String>::new());
    assert_eq!(
        search("sql-").await,
        ["SQL-1", "SQL-2", "SQL-3", "SQL-4"],
        "admission numbers match too"
    );
    assert_eq!(
        search("plain name").await,
        ["SQL-4"],
        "every word must match"
    );
    let browser = Browser::new();
    browser.sign_in(&app, &bursar).await;
    let page = browser
        .get(&app, "/students/?q=%27%3B+DROP+TABLE+students%3B+--")
        .await;
    assert_eq!(page.status(), StatusCode::OK);
    assert_eq!(search("").await.len(), 4, "the table is still there");
}

/// A mutating route, how to call it, and the least role that may.
struct Route {
    name: &'static str,
    api: bool,
    path: String,
    form: Vec<(&'static str, String)>,
    needs: Role,
}

/// Every mutating route with a plausible body, against fresh rows.
async fn mutating_routes(app: &TestApp, api: &Api, env: &TestEnv) -> Vec<Route> {
    let student = api
        .create_student(
            app,
            &format!("R-{}", &uuid::Uuid::new_v4().simple().to_string()[..12]),
            "Role",
        )
        .await;
    let charge: Value = api.charge(app, student, "10").await.json().await.unwrap();
    let payment: Value = api
        .pay(app, student, "5", &format!("role-{}", uuid::Uuid::new_v4()))
        .await
        .json()
        .await
        .unwrap();
    let target = env.create_user(Role::Viewer).await;
    let db = env.db().await;
    let target_id = bursar::repo::users::find_by_username(
        &db,
        &bursar::domain::Username::parse(&target.username).unwrap(),
    )
    .await
    .unwrap()
    .unwrap()
    .id;
    let s = |v: &str| v.to_string();
    let unique = uuid::Uuid::new_v4().simple().to_string();
    vec![
        Route {
            name: "create student",
            api: false,
            path: s("/students/"),
            form: vec![
                ("admission_no", format!("N-{}", &unique[..8])),
                ("first_name", s("A")),
                ("last_name", s("B")),
                ("class_name", s("C")),
            ],
            needs: Role::Bursar,
        },
        Route {
            name: "edit student",
            api: false,
            path: format!("/students/{student}/"),
            form: vec![
                ("admission_no", format!("E-{}", &unique[..8])),
                ("first_name", s("A")),
                ("last_name", s("B")),
                ("class_name", s("C")),
                ("status", s("active")),
            ],
            needs: Role::Bursar,
        },
        Route {
            name: "post charge",
            api: false,
            path: format!("/students/{student}/charges/"),
            form: vec![("amount", s("1")), ("description", s("Fee"))],
            needs: Role::Bursar,
        },
        Route {
            name: "record payment",
            api: false,
            path: format!("/students/{student}/payments/"),
            form: vec![
                ("amount", s("1")),
                ("method", s("cash")),
                ("idempotency_key", format!("form-{unique}")),
            ],
            needs: Role::Bursar,
        },
        Route {
            name: "void charge",
            api: false,
            path: format!("/charges/{}/void", charge["id"]),
            form: vec![("reason", s("test"))],
            needs: Role::Bursar,
        },
        Route {
            name: "void payment",
            api: false,
            path: format!("/payments/{}/void", payment["id"]),
            form: vec![("reason", s("test"))],
            needs: Role::Bursar,
        },
        Route {
            name: "import",
            api: false,
            path: s("/students/import"),
            form: vec![(
                "csv",
                format!(
                    "admission_no,first_name,last_name,class_name\nI-{},A,B,C\n",
                    &unique[..8]
                ),
            )],
            needs: Role::Bursar,
        },
        Route {
            name: "create user",
            api: false,
            path: s("/users/"),
            form: vec![
                ("username", format!("u{}", &unique[..10])),
                ("role", s("viewer")),
                ("password", s("long enough password")),
            ],
            needs: Role::Admin,
        },
        Route {
            name: "change role",
            api: false,
            path: format!("/users/{target_id}/role"),
            form: vec![("role", s("viewer"))],
            needs: Role::Admin,
        },
        Route {
            name: "deactivate",
            api: false,
            path: format!("/users/{target_id}/active"),
            form: vec![("active", s("true"))],
            needs: Role::Admin,
        },
        Route {
            name: "reset password",
            api: false,
            path: format!("/users/{target_id}/password"),
            form: vec![("password", s("another long password"))],
            needs: Role::Admin,
        },
        Route {
            name: "API create student",
            api: true,
            path: s("/api/v1/students"),
            form: vec![
                ("admission_no", format!("A-{}", &unique[..8])),
                ("first_name", s("A")),
                ("last_name", s("B")),
                ("class_name", s("C")),
            ],
            needs: Role::Bursar,
        },
        Route {
            name: "API charge",
            api: true,
            path: format!("/api/v1/students/{student}/charges"),
            form: vec![("amount", s("1")), ("description", s("Fee"))],
            needs: Role::Bursar,
        },
        Route {
            name: "API payment",
            api: true,
            path: format!("/api/v1/students/{student}/payments"),
            form: vec![("amount", s("1")), ("method", s("cash"))],
            needs: Role::Bursar,
        },
    ]
}

async fn call(app: &TestApp, browser: &Browser, route: &Route, token: Option<&str>) -> StatusCode {
    if route.api {
        let body: serde_json::Map<String, Value> = route
            .form
            .iter()
            .map(|(k, v)| (k.to_string(), json!(v)))
            .collect();
        let mut request = browser.client.post(app.url(&route.path)).json(&body);
        if let Some(token) = token {
            request = request.header("x-csrf-token", token);
        }
        request.send().await.unwrap().status()
    } else {
        let mut form: Vec<(&str, &str)> =
            route.form.iter().map(|(k, v)| (*k, v.as_str())).collect();
        if let Some(token) = token {
            form.push(("csrf_token", token));
        }
        browser.post_form(app, &route.path, &form).await.status()
    }
}

both_backends!(every_role_may_do_exactly_what_it_should);
async fn every_role_may_do_exactly_what_it_should(backend: Backend) {
    let env = TestEnv::new(backend).await;
    let app = env.spawn().await;
    let admin_creds = env.create_user(Role::Admin).await;
    let admin = Api::sign_in(&app, &admin_creds).await;
    for role in [Role::Viewer, Role::Bursar, Role::Admin] {
        let creds = env.create_user(role).await;
        let browser = Browser::new();
        browser.sign_in(&app, &creds).await;
        let token = browser.csrf_from(&app, "/dashboard/").await;
        for route in mutating_routes(&app, &admin, &env).await {
            let status = call(&app, &browser, &route, Some(&token)).await;
            if role >= route.needs {
                assert!(
                    status != StatusCode::FORBIDDEN && !status.is_server_error(),
                    "{role} → {}: {status}",
                    route.name
                );
                assert!(
                    status.is_success() || status.is_redirection(),
                    "{role} → {}: {status}",
                    route.name
                );
            } else {
                assert_eq!(
                    status,
                    StatusCode::FORBIDDEN,
                    "{role} must not {}",
                    route.name
                );
            }
        }
        for (path, needs) in [
            ("/students/new", Role::Bursar),
            ("/students/import", Role::Bursar),
            ("/users/", Role::Admin),
        ] {
            let status = browser.get(&app, path).await.status();
            assert_eq!(
                status == StatusCode::FORBIDDEN,
                role < needs,
                "{role} GET {path}: {status}"
            );
        }
        // Everyone reads.
        for path in [
            "/dashboard/",
            "/students/",
            "/payments/",
            "/api/v1/students",
            "/api/v1/dashboard",
        ] {
            assert_eq!(
                browser.get(&app, path).await.status(),
                StatusCode::OK,
                "{role} GET {path}"
            );
        }
    }
}

both_backends!(every_post_without_the_csrf_token_is_refused);
async fn every_post_without_the_csrf_token_is_refused(backend: Backend) {
    let env = TestEnv::new(backend).await;
    let app = env.spawn().await;
    let admin_creds = env.create_user(Role::Admin).await;
    let admin = Api::sign_in(&app, &admin_creds).await;
    let browser = Browser::new();
    browser.sign_in(&app, &admin_creds).await;
    for route in mutating_routes(&app, &admin, &env).await {
        for token in [None, Some("forged-token")] {
            assert_eq!(
                call(&app, &browser, &route, token).await,
                StatusCode::FORBIDDEN,
                "{} with {token:?}",
                route.name
            );
        }
    }
    // The multipart import checks it too.
    let form = reqwest::multipart::Form::new()
        .text("csrf_token", "forged")
        .part(
            "file",
            reqwest::multipart::Part::bytes(
                b"admission_no,first_name,last_name,class_name\nZ-1,A,B,C\n".to_vec(),
            )
            .file_name("s.csv"),
        );
    let response = browser
        .client
        .post(app.url("/students/import"))
        .multipart(form)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    // Nothing was written by any of them.
    let students: Value = admin
        .get(&app, "/api/v1/students?q=N-")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(students["total"], 0);
}

both_backends!(csv_import_is_all_or_nothing_with_line_numbers);
async fn csv_import_is_all_or_nothing_with_line_numbers(backend: Backend) {
    let env = TestEnv::new(backend).await;
    let app = env.spawn().await;
    let bursar = env.create_user(Role::Bursar).await;
    let api = Api::sign_in(&app, &bursar).await;
    api.create_student(&app, "TAKEN-1", "Existing").await;
    let browser = Browser::new();
    browser.sign_in(&app, &bursar).await;
    let upload = |csv: &'static str| {
        let browser = browser.clone();
        let app = &app;
        async move {
            let token = browser.csrf_from(app, "/students/import").await;
            let form = reqwest::multipart::Form::new()
                .text("csrf_token", token)
                .part(
                    "file",
                    reqwest::multipart::Part::bytes(csv.as_bytes().to_vec())
                        .file_name("students.csv")
                        .mime_str("text/csv")
                        .unwrap(),
                );
            browser
                .client
                .post(app.url("/students/import"))
                .multipart(form)
                .send()
                .await
                .unwrap()
        }
    };
    let count = || async {
        api.get(&app, "/api/v1/students")
            .await
            .json::<Value>()
            .await
            .unwrap()["total"]
            .as_u64()
            .unwrap()
    };
    assert_eq!(count().await, 1);

    let bad = upload("admission_no,first_name,last_name,class_name,guardian_email\nIMP-1,Ann,Lee,G1,ann@example.org\nIMP-2,,Ray,G1,\nIMP-1,Dup,Row,G2,\nIMP-4,Eve,Kay,G3,not-an-email\n").await;
    assert_eq!(bad.status(), StatusCode::BAD_REQUEST);
    let page = bad.text().await.unwrap();
    for expected in [
        "line 3: first_name",
        "line 4: admission_no IMP-1 is also on line 2",
        "line 5: guardian_email",
        "Nothing was imported",
    ] {
        assert!(page.contains(expected), "missing {expected:?}");
    }
    assert_eq!(count().await, 1, "nothing written");

    let taken = upload(
        "admission_no,first_name,last_name,class_name\nIMP-9,Ann,Lee,G1\ntaken-1,Bob,Ray,G1\n",
    )
    .await;
    assert_eq!(taken.status(), StatusCode::BAD_REQUEST);
    assert!(
        taken
            .text()
            .await
            .unwrap()
            .contains("line 3: admission_no TAKEN-1 already belongs to a student")
    );
    assert_eq!(count().await, 1, "nothing written");

    let good = upload("admission_no,first_name,last_name,class_name,status\nIMP-1,Ann,Lee,G1,active\nIMP-2,Bob,Ray,G1,left\nIMP-3,Cy,Dee,G2,\n").await;
    assert_eq!(good.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&good), "/students/");
    assert_eq!(count().await, 4);
    let left: Value = api
        .get(&app, "/api/v1/students?status=left")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(left["items"][0]["admission_no"], "IMP-2");

    // An export imports back into a fresh school (its formula guards included).
    let exported = browser
        .get(&app, "/students.csv?q=imp")
        .await
        .text()
        .await
        .unwrap();
    assert_eq!(exported.lines().count(), 4);
}

both_backends!(admins_manage_users_and_changes_take_effect);
async fn admins_manage_users_and_changes_take_effect(backend: Backend) {
    let env = TestEnv::new(backend).await;
    let app = env.spawn().await;
    let admin_creds = env.create_user(Role::Admin).await;
    let admin = Browser::new();
    admin.sign_in(&app, &admin_creds).await;
    let token = admin.csrf_from(&app, "/users/").await;

    let created = admin
        .post_form(
            &app,
            "/users/",
            &[
                ("csrf_token", &token),
                ("username", "New.Clerk"),
                ("role", "bursar"),
                ("password", "clerk password 1"),
            ],
        )
        .await;
    assert_eq!(created.status(), StatusCode::SEE_OTHER);
    let again = admin
        .post_form(
            &app,
            "/users/",
            &[
                ("csrf_token", &token),
                ("username", "new.clerk"),
                ("role", "viewer"),
                ("password", "clerk password 1"),
            ],
        )
        .await;
    assert_eq!(
        again.status(),
        StatusCode::CONFLICT,
        "usernames are unique case-insensitively"
    );
    let weak = admin
        .post_form(
            &app,
            "/users/",
            &[
                ("csrf_token", &token),
                ("username", "weakling"),
                ("role", "viewer"),
                ("password", "short"),
            ],
        )
        .await;
    assert_eq!(weak.status(), StatusCode::BAD_REQUEST);

    let clerk_creds = crate::helpers::Credentials {
        username: "new.clerk".into(),
        password: "clerk password 1".into(),
    };
    let clerk = Browser::new();
    clerk.sign_in(&app, &clerk_creds).await;
    let page = admin.get(&app, "/users/").await.text().await.unwrap();
    assert!(page.contains("new.clerk"));
    let db = env.db().await;
    let id = bursar::repo::users::find_by_username(
        &db,
        &bursar::domain::Username::parse("new.clerk").unwrap(),
    )
    .await
    .unwrap()
    .unwrap()
    .id;

    let demoted = admin
        .post_form(
            &app,
            &format!("/users/{id}/role"),
            &[("csrf_token", &token), ("role", "viewer")],
        )
        .await;
    assert_eq!(demoted.status(), StatusCode::SEE_OTHER);
    assert_eq!(
        clerk.get(&app, "/dashboard/").await.status(),
        StatusCode::SEE_OTHER,
        "a role change ends their session"
    );
    clerk.sign_in(&app, &clerk_creds).await;
    assert_eq!(
        clerk.get(&app, "/students/new").await.status(),
        StatusCode::FORBIDDEN,
        "now a viewer"
    );

    let off = admin
        .post_form(
            &app,
            &format!("/users/{id}/active"),
            &[("csrf_token", &token), ("active", "false")],
        )
        .await;
    assert_eq!(off.status(), StatusCode::SEE_OTHER);
    assert_eq!(
        clerk.get(&app, "/dashboard/").await.status(),
        StatusCode::SEE_OTHER
    );
    assert_eq!(
        clerk.login(&app, &clerk_creds).await.status(),
        StatusCode::OK,
        "deactivated: the form again"
    );

    admin
        .post_form(
            &app,
            &format!("/users/{id}/active"),
            &[("csrf_token", &token), ("active", "true")],
        )
        .await;
    let reset = admin
        .post_form(
            &app,
            &format!("/users/{id}/password"),
            &[("csrf_token", &token), ("password", "a fresh password 2")],
        )
        .await;
    assert_eq!(reset.status(), StatusCode::SEE_OTHER);
    assert_eq!(
        clerk.login(&app, &clerk_creds).await.status(),
        StatusCode::OK,
        "the old password no longer works"
    );
    clerk
        .sign_in(
            &app,
            &crate::helpers::Credentials {
                username: "new.clerk".into(),
                password: "a fresh password 2".into(),
            },
        )
        .await;

    // An admin cannot lock themselves out.
    let me = bursar::repo::users::find_by_username(
        &db,
        &bursar::domain::Username::parse(&admin_creds.username).unwrap(),
    )
    .await
    .unwrap()
    .unwrap()
    .id;
    let self_demote = admin
        .post_form(
            &app,
            &format!("/users/{me}/role"),
            &[("csrf_token", &token), ("role", "viewer")],
        )
        .await;
    assert_eq!(self_demote.status(), StatusCode::BAD_REQUEST);

    // Each change is in the audit log.
    use sea_orm::{EntityTrait, PaginatorTrait};
    let audited = bursar::entities::audit_log::Entity::find()
        .count(&db)
        .await
        .unwrap();
    assert!(audited >= 6, "{audited} audit rows");
}

both_backends!(students_can_be_added_edited_listed_and_paged);
async fn students_can_be_added_edited_listed_and_paged(backend: Backend) {
    let env = TestEnv::new(backend).await;
    let app = env.spawn().await;
    let bursar = env.create_user(Role::Bursar).await;
    let browser = Browser::new();
    browser.sign_in(&app, &bursar).await;
    let token = browser.csrf_from(&app, "/students/new").await;
    let fields = |adm: &'static str, first: &'static str| {
        vec![
            ("admission_no", adm),
            ("first_name", first),
            ("last_name", "Zed"),
            ("class_name", "Grade 2"),
            ("guardian_email", "p@example.org"),
        ]
    };
    let mut form = fields("adm-100", "Tom");
    form.push(("csrf_token", &token));
    let created = browser.post_form(&app, "/students/", &form).await;
    assert_eq!(created.status(), StatusCode::SEE_OTHER);
    let student_path = location(&created);
    assert!(student_path.starts_with("/students/") && student_path.ends_with('/'));
    let page = browser.get(&app, &student_path).await.text().await.unwrap();
    assert!(page.contains("ADM-100") && page.contains("Tom Zed"));

    let duplicate = browser.post_form(&app, "/students/", &form).await;
    assert_eq!(duplicate.status(), StatusCode::BAD_REQUEST);
    assert!(
        duplicate
            .text()
            .await
            .unwrap()
            .contains("Another student already has this admission number")
    );
    let mut bad = vec![
        ("admission_no", "has space"),
        ("first_name", ""),
        ("last_name", "X"),
        ("class_name", "G"),
        ("guardian_email", "nope"),
    ];
    bad.push(("csrf_token", &token));
    let refused = browser.post_form(&app, "/students/", &bad).await;
    assert_eq!(refused.status(), StatusCode::BAD_REQUEST);
    let text = refused.text().await.unwrap();
    assert!(
        text.contains("Admission number")
            && text.contains("First name is required")
            && text.contains("not an email")
    );

    let mut edit = vec![
        ("admission_no", "ADM-100"),
        ("first_name", "Thomas"),
        ("last_name", "Zed"),
        ("class_name", "Grade 3"),
        ("status", "left"),
    ];
    edit.push(("csrf_token", &token));
    let saved = browser.post_form(&app, &student_path, &edit).await;
    assert_eq!(saved.status(), StatusCode::SEE_OTHER);
    let page = browser.get(&app, &student_path).await.text().await.unwrap();
    assert!(page.contains("Thomas Zed") && page.contains("Grade 3") && page.contains("left"));

    let api = Api::sign_in(&app, &bursar).await;
    for i in 0..25 {
        let id = api
            .create_student(&app, &format!("PG-{i:03}"), &format!("Pager{i:02}"))
            .await;
        api.charge(&app, id, &format!("{}.{:02}", 100 + i, i)).await;
    }
    let page_one: Value = api
        .get(
            &app,
            "/api/v1/students?q=pg-&sort=balance&dir=desc&per_page=10",
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(page_one["total"], 25);
    let items = page_one["items"].as_array().unwrap();
    assert_eq!(items.len(), 10);
    assert_eq!(items[0]["balance"], "124.24", "highest balance first");
    let page_three: Value = api
        .get(
            &app,
            "/api/v1/students?q=pg-&sort=balance&dir=desc&per_page=10&page=3",
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(page_three["items"].as_array().unwrap().len(), 5);
    assert_eq!(page_three["items"][4]["balance"], "100.00");
    let html = browser
        .get(&app, "/students/?q=pg-&per_page=10&page=2")
        .await
        .text()
        .await
        .unwrap();
    assert!(html.contains("11–20 of 25"), "the page says where it is");
    for bad_query in [
        "per_page=500",
        "per_page=0",
        "page=0",
        "sort=evil",
        "dir=sideways",
        "status=graduated",
    ] {
        let response = browser.get(&app, &format!("/students/?{bad_query}")).await;
        assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{bad_query}");
        let response = api
            .get(&app, &format!("/api/v1/students?{bad_query}"))
            .await;
        assert_eq!(
            response.status(),
            StatusCode::BAD_REQUEST,
            "API {bad_query}"
        );
        assert!(response.json::<Value>().await.unwrap()["error"]["message"].is_string());
    }
}

both_backends!(nothing_a_client_sends_yields_a_server_error);
async fn nothing_a_client_sends_yields_a_server_error(backend: Backend) {
    let env = TestEnv::new(backend).await;
    let app = env.spawn().await;
    let bursar = env.create_user(Role::Admin).await;
    let api = Api::sign_in(&app, &bursar).await;
    let id = api.create_student(&app, "JUNK-1", "Junk").await;
    let browser = api.browser.clone();
    let token = api.csrf.clone();
    let junk_bodies: Vec<(&str, Vec<u8>)> = vec![
        ("application/json", b"{".to_vec()),
        ("application/json", b"[]".to_vec()),
        ("application/json", b"null".to_vec()),
        ("application/json", br#"{"amount": {"nested": [1,2,3]}, "method": 7}"#.to_vec()),
        ("application/json", br#"{"amount": "99999999999999999999999999999", "method": "cash"}"#.to_vec()),
        ("application/json", format!("{{\"amount\": \"1\", \"description\": \"{}\"}}", "x".repeat(5000)).into_bytes()),
        ("application/json", vec![0xff, 0xfe, 0x00]),
        ("application/x-www-form-urlencoded", b"amount=%ff%fe&csrf_token=%00".to_vec()),
        ("application/x-www-form-urlencoded", format!("csrf_token={token}&amount=1&amount=2&method=cash").into_bytes()),
        ("application/x-www-form-urlencoded", format!("csrf_token={token}&due_on=9999-99-99&amount=1&description=x").into_bytes()),
        ("application/x-www-form-urlencoded", format!("csrf_token={token}&paid_on=2999-01-01&amount=1&method=cash&idempotency_key=abcdefghij").into_bytes()),
        ("application/x-www-form-urlencoded", format!("csrf_token={token}&reason={}", "r".repeat(10_000)).into_bytes()),
        ("text/plain", b"hello".to_vec()),
        ("multipart/form-data; boundary=x", b"--x\r\nnonsense".to_vec()),
    ];
    let paths = [
        format!("/students/{id}/charges/"),
        format!("/students/{id}/payments/"),
        "/students/".to_string(),
        format!("/students/{id}/"),
        "/charges/1/void".to_string(),
        "/payments/1/void".to_string(),
        "/students/import".to_string(),
        "/users/".to_string(),
        "/users/1/role".to_string(),
        "/login/".to_string(),
        "/account/password".to_string(),
        "/api/v1/students".to_string(),
        format!("/api/v1/students/{id}/charges"),
        format!("/api/v1/students/{id}/payments"),
        "/api/v1/login".to_string(),
    ];
    let mut requests = Vec::new();
    for path in &paths {
        for (content_type, body) in &junk_bodies {
            requests.push(
                browser
                    .client
                    .post(app.url(path))
                    .header(header::CONTENT_TYPE, *content_type)
                    .header("x-csrf-token", &token)
                    .header("idempotency-key", "junk-junk-junk")
                    .body(body.clone())
                    .send(),
            );
        }
    }
    for path in [
        "/students/?q=%ff",
        "/students/?page=99999999999999999999",
        "/payments/?from=2026-13-45",
        "/students/%2e%2e/",
        "/api/v1/students/99999999999999999999",
        "/students.csv?per_page=x",
        "/payments/abc/receipt/",
        "/%00",
    ] {
        requests.push(browser.client.get(app.url(path)).send());
    }
    for response in join_all(requests).await {
        let response = response.unwrap();
        let status = response.status();
        let url = response.url().clone();
        assert!(!status.is_server_error(), "{url} answered {status}");
    }
    let student = api.student(&app, id).await;
    assert!(student["balance"].is_string());
}

both_backends!(recently_viewed_students_merge_across_tabs_and_instances);
async fn recently_viewed_students_merge_across_tabs_and_instances(backend: Backend) {
    let env = TestEnv::new(backend).await;
    let apps = env.spawn_many(2).await;
    let bursar = env.create_user(Role::Bursar).await;
    let api = Api::sign_in(&apps[0], &bursar).await;
    let mut ids = Vec::new();
    for i in 0..4 {
        ids.push(
            api.create_student(&apps[0], &format!("RV-{i}"), &format!("Viewed{i}"))
                .await,
        );
    }
    let browser = Browser::new();
    browser.sign_in(&apps[0], &bursar).await;
    // Four tabs open four students at once, on both instances.
    let paths: Vec<String> = ids.iter().map(|id| format!("/students/{id}/")).collect();
    let views = paths
        .iter()
        .enumerate()
        .map(|(i, path)| browser.get(&apps[i % apps.len()], path));
    for response in join_all(views).await {
        assert_eq!(response.status(), StatusCode::OK);
    }
    let dashboard = browser
        .get(apps.last().unwrap(), "/dashboard/")
        .await
        .text()
        .await
        .unwrap();
    for i in 0..4 {
        assert!(
            dashboard.contains(&format!("Viewed{i} Test")),
            "Viewed{i} lost from recently viewed"
        );
    }
    // At most five are kept, newest first.
    for i in 4..7 {
        let id = api
            .create_student(&apps[0], &format!("RV-{i}"), &format!("Viewed{i}"))
            .await;
        browser.get(&apps[0], &format!("/students/{id}/")).await;
    }
    let dashboard = browser
        .get(&apps[0], "/dashboard/")
        .await
        .text()
        .await
        .unwrap();
    let shown: Vec<usize> = (0..7)
        .filter(|i| dashboard.contains(&format!("Viewed{i} Test")))
        .collect();
    assert_eq!(shown.len(), 5, "{shown:?}");
    assert!(dashboard.find("Viewed6 Test") < dashboard.find("Viewed5 Test"));
}

both_backends!(bodies_over_the_limits_get_413);
async fn bodies_over_the_limits_get_413(backend: Backend) {
    let env = TestEnv::new(backend).await;
    let app = env.spawn().await;
    let bursar = env.create_user(Role::Bursar).await;
    let api = Api::sign_in(&app, &bursar).await;
    let id = api.create_student(&app, "BIG-1", "Big").await;
    let big_json = json!({"amount": "1", "description": "x".repeat(2 * 1024 * 1024)});
    let response = api
        .browser
        .unpooled()
        .post(app.url(&format!("/api/v1/students/{id}/charges")))
        .header("x-csrf-token", &api.csrf)
        .json(&big_json)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(
        response.json::<Value>().await.unwrap()["error"]["code"],
        "payload_too_large"
    );

    // An import may be up to 10 MiB: 3 MiB of rows is read (and here refused
    // for its content, not its size); 11 MiB is too large.
    let browser = api.browser.clone();
    let mut rows = String::from("admission_no,first_name,last_name,class_name\n");
    while rows.len() < 3 * 1024 * 1024 {
        rows.push_str("BAD ROW,with,a space,in the number\n");
    }
    let token = browser.csrf_from(&app, "/students/import").await;
    let upload = |csv: String, token: String| {
        let form = reqwest::multipart::Form::new()
            .text("csrf_token", token)
            .part(
                "file",
                reqwest::multipart::Part::bytes(csv.into_bytes()).file_name("s.csv"),
            );
        browser
            .unpooled()
            .post(app.url("/students/import"))
            .multipart(form)
            .send()
    };
    let response = upload(rows.clone(), token.clone()).await.unwrap();
    assert_eq!(
        response.status(),
        StatusCode::BAD_REQUEST,
        "3 MiB is within the import limit"
    );
    while rows.len() < 11 * 1024 * 1024 {
        rows.push_str("BAD ROW,with,a space,in the number\n");
    }
    let response = upload(rows, token).await.unwrap();
    assert_eq!(response.status(), StatusCode::PAYLOAD_TOO_LARGE);
}
