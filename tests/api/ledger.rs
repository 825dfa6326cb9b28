//! Money rules M2–M7 against real servers: exact balances, idempotent payments, receipts, voids, check-ledger.
use std::{collections::HashSet, str::FromStr};

use bursar::domain::Role;
use futures::future::join_all;
use reqwest::{StatusCode, header};
use rust_decimal::Decimal;
use serde_json::{Value, json};

use crate::{
    both_backends,
    helpers::{Api, Backend, Browser, TestEnv, csrf_in, location, plain_client},
};

fn dec(text: &str) -> Decimal {
    Decimal::from_str(text).expect("decimal")
}

fn money(value: &Value) -> Decimal {
    dec(value
        .as_str()
        .unwrap_or_else(|| panic!("money must be a string: {value}")))
}

async fn ledger_is_clean(env: &TestEnv) {
    let db = env.db().await;
    let report = bursar::ledger::check::check(&db)
        .await
        .expect("check-ledger runs");
    assert!(report.is_clean(), "check-ledger found drift:\n{report}");
}

both_backends!(mixed_workload_over_two_instances_leaves_exact_balances);
async fn mixed_workload_over_two_instances_leaves_exact_balances(backend: Backend) {
    let env = TestEnv::new(backend).await;
    let apps = env.spawn_many(2).await;
    let bursar = env.create_user(Role::Bursar).await;
    let clients = [
        Api::sign_in(&apps[0], &bursar).await,
        Api::sign_in(apps.last().unwrap(), &bursar).await,
    ];
    const STUDENTS: usize = 8;
    let mut ids = Vec::new();
    for s in 0..STUDENTS {
        ids.push(
            clients[s % 2]
                .create_student(
                    &apps[s % apps.len()],
                    &format!("MIX-{s}"),
                    &format!("Mixed{s}"),
                )
                .await,
        );
    }

    // Every student: three charges and five payments, one charge and one
    // payment voided, every payment submitted twice (double click), all
    // spread over both instances and run concurrently.
    let work = ids.iter().enumerate().map(|(s, &id)| {
        let (clients, apps, bursar) = (&clients, &apps, &bursar);
        async move {
            let mut expected = Decimal::ZERO;
            let charges = ["1500.00", "249.99", "0.01"];
            let mut charge_ids = Vec::new();
            for (i, amount) in charges.iter().enumerate() {
                let response = clients[i % 2]
                    .charge(&apps[(s + i) % apps.len()], id, amount)
                    .await;
                assert_eq!(response.status(), StatusCode::CREATED);
                charge_ids.push(
                    response.json::<Value>().await.unwrap()["id"]
                        .as_i64()
                        .unwrap(),
                );
                expected += dec(amount);
            }
            let payments = ["100.10", "0.20", "33.33", "999.99", "0.01"];
            let mut payment_ids = Vec::new();
            for (i, amount) in payments.iter().enumerate() {
                let key = format!("mix-{s}-{i}-{}", uuid::Uuid::new_v4());
                let (first, second) = tokio::join!(
                    clients[0].pay(&apps[0], id, amount, &key),
                    clients[1].pay(apps.last().unwrap(), id, amount, &key),
                );
                let statuses = [first.status(), second.status()];
                assert!(statuses.contains(&StatusCode::CREATED), "{statuses:?}");
                let (a, b): (Value, Value) =
                    (first.json().await.unwrap(), second.json().await.unwrap());
                assert_eq!(a, b, "a double submit answers with the same payment");
                payment_ids.push(a["id"].as_i64().unwrap());
                expected -= dec(amount);
            }
            // Voids: one charge and one payment, through the HTML forms.
            let browser_app = &apps[s % apps.len()];
            let browser = Browser::new();
            browser.sign_in(browser_app, bursar).await;
            let token = browser
                .csrf_from(browser_app, &format!("/students/{id}/"))
                .await;
            let voided = browser
                .post_form(
                    browser_app,
                    &format!("/charges/{}/void", charge_ids[1]),
                    &[("csrf_token", &token), ("reason", "posted twice")],
                )
                .await;
            assert_eq!(voided.status(), StatusCode::SEE_OTHER);
            expected -= dec(charges[1]);
            let voided = browser
                .post_form(
                    browser_app,
                    &format!("/payments/{}/void", payment_ids[2]),
                    &[("csrf_token", &token), ("reason", "cheque bounced")],
                )
                .await;
            assert_eq!(voided.status(), StatusCode::SEE_OTHER);
            expected += dec(payments[2]);
            (id, expected)
        }
    });
    let expected: Vec<(i64, Decimal)> = join_all(work).await;

    for (id, balance) in expected {
        for (i, app) in apps.iter().enumerate() {
            let student = clients[i % 2].student(app, id).await;
            assert_eq!(
                money(&student["balance"]),
                balance,
                "student {id} on {}",
                app.instance
            );
            assert_eq!(
                money(&student["charged"]) - money(&student["paid"]),
                balance
            );
        }
    }
    ledger_is_clean(&env).await;
}

both_backends!(one_idempotency_key_posted_twenty_times_records_one_payment);
async fn one_idempotency_key_posted_twenty_times_records_one_payment(backend: Backend) {
    let env = TestEnv::new(backend).await;
    let apps = env.spawn_many(2).await;
    let bursar = env.create_user(Role::Bursar).await;
    let clients = [
        Api::sign_in(&apps[0], &bursar).await,
        Api::sign_in(apps.last().unwrap(), &bursar).await,
    ];
    let id = clients[0].create_student(&apps[0], "IDEM-1", "Idem").await;
    clients[0].charge(&apps[0], id, "5000").await;

    let key = format!("idem-{}", uuid::Uuid::new_v4());
    let posts = (0..20).map(|i| clients[i % 2].pay(&apps[i % apps.len()], id, "1234.56", &key));
    let responses = join_all(posts).await;
    let mut receipts = HashSet::new();
    let mut created = 0;
    for response in responses {
        match response.status() {
            StatusCode::CREATED => created += 1,
            StatusCode::OK => {}
            other => panic!("unexpected {other}"),
        }
        let body: Value = response.json().await.unwrap();
        receipts.insert(body["receipt_no"].as_str().unwrap().to_string());
    }
    assert_eq!(created, 1, "exactly one request records the payment");
    assert_eq!(
        receipts.len(),
        1,
        "every answer carries the same receipt: {receipts:?}"
    );
    let student = clients[1].student(&apps[0], id).await;
    assert_eq!(money(&student["paid"]), dec("1234.56"));
    assert_eq!(money(&student["balance"]), dec("3765.44"));

    // The same key for a different payment is refused, and records nothing.
    let reused = clients[0].pay(&apps[0], id, "1.00", &key).await;
    assert_eq!(reused.status(), StatusCode::CONFLICT);
    assert_eq!(
        money(&clients[0].student(&apps[0], id).await["paid"]),
        dec("1234.56")
    );

    // The form's hidden key works the same way: a double click is one payment.
    let browser = Browser::new();
    browser.sign_in(&apps[0], &bursar).await;
    let page = browser
        .get(&apps[0], &format!("/students/{id}/"))
        .await
        .text()
        .await
        .unwrap();
    let token = csrf_in(&page).unwrap();
    let form_key = hidden_value(&page, "idempotency_key");
    let form = [
        ("csrf_token", token.as_str()),
        ("amount", "10"),
        ("method", "bank"),
        ("reference", "TRF-1"),
        ("idempotency_key", form_key.as_str()),
    ];
    let path = format!("/students/{id}/payments/");
    let (first, second) = tokio::join!(
        browser.post_form(&apps[0], &path, &form),
        browser.post_form(apps.last().unwrap(), &path, &form),
    );
    assert_eq!(first.status(), StatusCode::SEE_OTHER);
    assert_eq!(second.status(), StatusCode::SEE_OTHER);
    assert_eq!(
        location(&first),
        location(&second),
        "both land on the same receipt"
    );
    assert!(location(&first).starts_with("/payments/") && location(&first).ends_with("/receipt/"));
    assert_eq!(
        money(&clients[0].student(&apps[0], id).await["paid"]),
        dec("1244.56")
    );
    ledger_is_clean(&env).await;
}

fn hidden_value(page: &str, name: &str) -> String {
    let html = scraper::Html::parse_document(page);
    let selector = scraper::Selector::parse(&format!(r#"input[name="{name}"]"#)).unwrap();
    html.select(&selector)
        .next()
        .and_then(|e| e.value().attr("value"))
        .unwrap_or_default()
        .to_string()
}

both_backends!(sixty_concurrent_payments_for_one_student_are_all_recorded_exactly);
async fn sixty_concurrent_payments_for_one_student_are_all_recorded_exactly(backend: Backend) {
    let env = TestEnv::new(backend).await;
    let apps = env.spawn_many(2).await;
    let bursar = env.create_user(Role::Bursar).await;
    let clients = [
        Api::sign_in(&apps[0], &bursar).await,
        Api::sign_in(apps.last().unwrap(), &bursar).await,
    ];
    let id = clients[0]
        .create_student(&apps[0], "CONC-1", "Concurrent")
        .await;
    clients[0].charge(&apps[0], id, "10000").await;

    // 60 different amounts, none of them exact in binary: 10.01, 10.03, … 11.19.
    let amounts: Vec<String> = (0..60)
        .map(|i| 1001 + 2 * i)
        .map(|cents| format!("{}.{:02}", cents / 100, cents % 100))
        .collect();
    let expected_paid: Decimal = amounts.iter().map(|a| dec(a)).sum();
    let keys: Vec<String> = (0..60)
        .map(|i| format!("conc-{i}-{}", uuid::Uuid::new_v4()))
        .collect();
    let posts = amounts
        .iter()
        .zip(&keys)
        .enumerate()
        .map(|(i, (amount, key))| clients[i % 2].pay(&apps[i % apps.len()], id, amount, key));
    let mut receipts = Vec::new();
    for response in join_all(posts).await {
        assert_eq!(response.status(), StatusCode::CREATED);
        let body: Value = response.json().await.unwrap();
        receipts.push((
            body["id"].as_i64().unwrap(),
            body["receipt_no"].as_str().unwrap().to_string(),
        ));
    }
    let distinct: HashSet<&String> = receipts.iter().map(|(_, r)| r).collect();
    assert_eq!(distinct.len(), 60, "60 distinct receipt numbers");
    // Readable and increasing: R2026-000123, in the order the payments were stored.
    receipts.sort();
    let pattern = |r: &str| r.len() >= 12 && r.starts_with('R') && r.as_bytes()[5] == b'-';
    assert!(receipts.iter().all(|(_, r)| pattern(r)), "{receipts:?}");
    let sequence: Vec<u64> = receipts
        .iter()
        .map(|(_, r)| r[6..].parse().unwrap())
        .collect();
    assert!(
        sequence.windows(2).all(|w| w[0] < w[1]),
        "receipt numbers increase: {sequence:?}"
    );

    let student = clients[1].student(&apps[0], id).await;
    assert_eq!(money(&student["paid"]), expected_paid);
    assert_eq!(money(&student["balance"]), dec("10000") - expected_paid);
    ledger_is_clean(&env).await;
}

const ACCEPTED: [(&str, &str); 4] = [
    ("10", "10.00"),
    ("10.5", "10.50"),
    ("10.50", "10.50"),
    (" 7 ", "7.00"),
];
const REJECTED: [&str; 10] = [
    "-1",
    "0",
    "0.00",
    "1e3",
    "10.005",
    "1,000",
    "NaN",
    "",
    "abc",
    "1000000000.01",
];

both_backends!(amounts_are_parsed_strictly_by_forms_and_api);
async fn amounts_are_parsed_strictly_by_forms_and_api(backend: Backend) {
    let env = TestEnv::new(backend).await;
    let app = env.spawn().await;
    let bursar = env.create_user(Role::Bursar).await;
    let api = Api::sign_in(&app, &bursar).await;
    let id = api.create_student(&app, "AMT-1", "Amounts").await;
    let browser = Browser::new();
    browser.sign_in(&app, &bursar).await;

    let mut charged = Decimal::ZERO;
    let mut paid = Decimal::ZERO;
    for (input, stored) in ACCEPTED {
        let response = api.charge(&app, id, input).await;
        assert_eq!(response.status(), StatusCode::CREATED, "{input:?}");
        assert_eq!(response.json::<Value>().await.unwrap()["amount"], stored);
        charged += dec(stored);
        let response = api
            .pay(
                &app,
                id,
                input,
                &format!("amt-api-{}", uuid::Uuid::new_v4()),
            )
            .await;
        assert_eq!(response.status(), StatusCode::CREATED, "{input:?}");
        assert_eq!(response.json::<Value>().await.unwrap()["amount"], stored);
        paid += dec(stored);

        let page = browser
            .get(&app, &format!("/students/{id}/"))
            .await
            .text()
            .await
            .unwrap();
        let token = csrf_in(&page).unwrap();
        let response = browser
            .post_form(
                &app,
                &format!("/students/{id}/charges/"),
                &[
                    ("csrf_token", &token),
                    ("amount", input),
                    ("description", "Form fee"),
                ],
            )
            .await;
        assert_eq!(
            response.status(),
            StatusCode::SEE_OTHER,
            "form charge {input:?}"
        );
        charged += dec(stored);
        let key = hidden_value(&page, "idempotency_key");
        let response = browser
            .post_form(
                &app,
                &format!("/students/{id}/payments/"),
                &[
                    ("csrf_token", &token),
                    ("amount", input),
                    ("method", "cash"),
                    ("idempotency_key", &key),
                ],
            )
            .await;
        assert_eq!(
            response.status(),
            StatusCode::SEE_OTHER,
            "form payment {input:?}"
        );
        paid += dec(stored);
    }
    let before = api.student(&app, id).await;
    assert_eq!(money(&before["charged"]), charged);
    assert_eq!(money(&before["paid"]), paid);

    for input in REJECTED {
        let response = api.charge(&app, id, input).await;
        assert_eq!(
            response.status(),
            StatusCode::UNPROCESSABLE_ENTITY,
            "API charge {input:?}"
        );
        let body: Value = response.json().await.unwrap();
        assert!(
            body["error"]["fields"]["amount"].is_string(),
            "the field is named: {body}"
        );
        let response = api
            .pay(
                &app,
                id,
                input,
                &format!("amt-bad-{}", uuid::Uuid::new_v4()),
            )
            .await;
        assert_eq!(
            response.status(),
            StatusCode::UNPROCESSABLE_ENTITY,
            "API payment {input:?}"
        );

        let page = browser
            .get(&app, &format!("/students/{id}/"))
            .await
            .text()
            .await
            .unwrap();
        let token = csrf_in(&page).unwrap();
        let response = browser
            .post_form(
                &app,
                &format!("/students/{id}/charges/"),
                &[
                    ("csrf_token", &token),
                    ("amount", input),
                    ("description", "Bad"),
                ],
            )
            .await;
        assert_eq!(
            response.status(),
            StatusCode::BAD_REQUEST,
            "form charge {input:?}"
        );
        let text = response.text().await.unwrap();
        assert!(
            text.contains("field-error"),
            "the form says what is wrong with {input:?}"
        );
        let key = hidden_value(&page, "idempotency_key");
        let response = browser
            .post_form(
                &app,
                &format!("/students/{id}/payments/"),
                &[
                    ("csrf_token", &token),
                    ("amount", input),
                    ("method", "cash"),
                    ("idempotency_key", &key),
                ],
            )
            .await;
        assert_eq!(
            response.status(),
            StatusCode::BAD_REQUEST,
            "form payment {input:?}"
        );
    }
    // A JSON number is not money: it could already have been a float.
    let response = api
        .post(
            &app,
            &format!("/api/v1/students/{id}/charges"),
            json!({"amount": 10.5, "description": "x"}),
        )
        .await;
    assert_eq!(response.status(), StatusCode::UNPROCESSABLE_ENTITY);

    let after = api.student(&app, id).await;
    assert_eq!(after, before, "no rejected amount wrote anything");
    ledger_is_clean(&env).await;
}

both_backends!(voids_need_a_reason_happen_once_and_need_the_bursar_role);
async fn voids_need_a_reason_happen_once_and_need_the_bursar_role(backend: Backend) {
    let env = TestEnv::new(backend).await;
    let app = env.spawn().await;
    let bursar = env.create_user(Role::Bursar).await;
    let viewer = env.create_user(Role::Viewer).await;
    let api = Api::sign_in(&app, &bursar).await;
    let id = api.create_student(&app, "VOID-1", "Voided").await;
    let charge: Value = api.charge(&app, id, "300").await.json().await.unwrap();
    let payment: Value = api
        .pay(&app, id, "120", "void-test-key-1")
        .await
        .json()
        .await
        .unwrap();
    let charge_id = charge["id"].as_i64().unwrap();
    let payment_id = payment["id"].as_i64().unwrap();

    let browser = Browser::new();
    browser.sign_in(&app, &bursar).await;
    let token = browser.csrf_from(&app, &format!("/students/{id}/")).await;
    for path in [
        format!("/charges/{charge_id}/void"),
        format!("/payments/{payment_id}/void"),
    ] {
        let response = browser
            .post_form(&app, &path, &[("csrf_token", &token), ("reason", "   ")])
            .await;
        assert_eq!(
            response.status(),
            StatusCode::BAD_REQUEST,
            "{path}: a blank reason"
        );
    }
    assert_eq!(money(&api.student(&app, id).await["balance"]), dec("180"));

    let onlooker = Browser::new();
    onlooker.sign_in(&app, &viewer).await;
    let viewer_token = onlooker.csrf_from(&app, &format!("/students/{id}/")).await;
    let response = onlooker
        .post_form(
            &app,
            &format!("/charges/{charge_id}/void"),
            &[("csrf_token", &viewer_token), ("reason", "nope")],
        )
        .await;
    assert_eq!(response.status(), StatusCode::FORBIDDEN);

    for _ in 0..2 {
        let response = browser
            .post_form(
                &app,
                &format!("/charges/{charge_id}/void"),
                &[("csrf_token", &token), ("reason", "wrong fee")],
            )
            .await;
        assert_eq!(response.status(), StatusCode::SEE_OTHER);
        assert_eq!(location(&response), format!("/students/{id}/"));
        assert_eq!(
            money(&api.student(&app, id).await["balance"]),
            dec("-120"),
            "voiding twice changes nothing"
        );
    }
    let response = browser
        .post_form(
            &app,
            &format!("/payments/{payment_id}/void"),
            &[("csrf_token", &token), ("reason", "bounced")],
        )
        .await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    let student = api.student(&app, id).await;
    assert_eq!(
        (
            money(&student["charged"]),
            money(&student["paid"]),
            money(&student["balance"])
        ),
        (dec("0"), dec("0"), dec("0"))
    );

    // The rows stay, marked void, with their reasons (M3).
    let page = browser
        .get(&app, &format!("/students/{id}/"))
        .await
        .text()
        .await
        .unwrap();
    assert!(
        page.contains("wrong fee") && page.contains("bounced"),
        "voided lines stay on the statement"
    );
    let receipt = browser
        .get(&app, &format!("/payments/{payment_id}/receipt/"))
        .await
        .text()
        .await
        .unwrap();
    assert!(receipt.contains("VOID"));
    ledger_is_clean(&env).await;
}

both_backends!(check_ledger_notices_drift);
async fn check_ledger_notices_drift(backend: Backend) {
    let env = TestEnv::new(backend).await;
    let app = env.spawn().await;
    let bursar = env.create_user(Role::Bursar).await;
    let api = Api::sign_in(&app, &bursar).await;
    let id = api.create_student(&app, "DRIFT-1", "Drift").await;
    api.charge(&app, id, "100").await;
    api.pay(&app, id, "40", "drift-key-0001").await;
    ledger_is_clean(&env).await;

    // Someone edits a stored balance behind the ledger's back.
    let db = env.db().await;
    use sea_orm::ConnectionTrait;
    db.execute_unprepared(&format!(
        "UPDATE students SET balance = balance + 1 WHERE id = {id}"
    ))
    .await
    .unwrap();
    let report = bursar::ledger::check::check(&db).await.unwrap();
    assert!(!report.is_clean());
    assert!(
        report.mismatches.iter().any(|m| m.contains("DRIFT-1")),
        "{report}"
    );
    db.execute_unprepared(&format!(
        "UPDATE students SET balance = balance - 1 WHERE id = {id}"
    ))
    .await
    .unwrap();
    // And a payment's day total.
    db.execute_unprepared("UPDATE ledger_daily SET paid = paid + 1")
        .await
        .unwrap();
    let report = bursar::ledger::check::check(&db).await.unwrap();
    assert!(
        report.mismatches.iter().any(|m| m.starts_with("day ")),
        "{report}"
    );
    assert!(
        report.mismatches.iter().any(|m| m.starts_with("dashboard")),
        "{report}"
    );
}

both_backends!(unknown_students_and_entries_are_404_and_write_nothing);
async fn unknown_students_and_entries_are_404_and_write_nothing(backend: Backend) {
    let env = TestEnv::new(backend).await;
    let app = env.spawn().await;
    let bursar = env.create_user(Role::Bursar).await;
    let api = Api::sign_in(&app, &bursar).await;
    assert_eq!(
        api.charge(&app, 999_999, "10").await.status(),
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        api.pay(&app, 999_999, "10", "missing-student-1")
            .await
            .status(),
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        api.get(&app, "/api/v1/students/999999").await.status(),
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        api.get(&app, "/api/v1/students/abc").await.status(),
        StatusCode::NOT_FOUND
    );
    let browser = Browser::new();
    browser.sign_in(&app, &bursar).await;
    for path in [
        "/students/999999/",
        "/students/0/",
        "/students/-1/",
        "/students/x/edit",
        "/payments/999999/receipt/",
    ] {
        let response = browser.get(&app, path).await;
        assert_eq!(response.status(), StatusCode::NOT_FOUND, "{path}");
        assert!(response.text().await.unwrap().contains("<html"));
    }
    let token = browser.csrf_from(&app, "/students/").await;
    let response = browser
        .post_form(
            &app,
            "/charges/999999/void",
            &[("csrf_token", &token), ("reason", "x")],
        )
        .await;
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
    let response = plain_client()
        .get(app.url("/students/"))
        .header(header::COOKIE, "bursar_session=x")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    ledger_is_clean(&env).await;
}
