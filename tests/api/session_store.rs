//! The store contract (S2–S5) checked directly on both stores: versions, conflicts, delete-wins.
use std::{sync::Arc, time::Duration};

use bursar::session::{
    memory::MemorySessionStore,
    redis::RedisSessionStore,
    store::{Change, Gone, SaveOutcome, SessionId, SessionStore},
};
use fred::prelude::{Builder, ClientLike, Config, KeysInterface};

use crate::helpers::redis_url;

async fn redis_store() -> (Arc<dyn SessionStore>, fred::prelude::Pool, String) {
    let pool = Builder::from_config(Config::from_url(&redis_url()).unwrap())
        .build_pool(2)
        .unwrap();
    pool.init()
        .await
        .expect("Redis must be running for the tests");
    let prefix = format!("bt{}", &uuid::Uuid::new_v4().simple().to_string()[..10]);
    (
        Arc::new(RedisSessionStore::new(pool.clone(), &prefix)),
        pool,
        prefix,
    )
}

const TTL: Duration = Duration::from_secs(60);

fn set(key: &str, expected: u64, value: &str) -> Change {
    Change {
        key: key.into(),
        expected_version: expected,
        value: Some(value.into()),
    }
}

async fn contract(store: Arc<dyn SessionStore>) {
    let id = SessionId::default();
    assert!(store.load(&id).await.unwrap().is_none());
    assert!(
        store
            .create(&id, &[("a".into(), "\"1\"".into())], TTL)
            .await
            .unwrap()
    );
    assert!(
        !store.create(&id, &[], TTL).await.unwrap(),
        "create never overwrites"
    );

    let loaded = store.load(&id).await.unwrap().unwrap();
    assert_eq!(loaded.entries["a"].value.as_deref(), Some("\"1\""));
    assert_eq!(loaded.entries["a"].version, 1);
    assert!(loaded.expires_at_ms > 0);

    // Two writers loaded version 1 of `a`; the first wins, the second conflicts.
    let first = store
        .save(
            &id,
            &[set("a", 1, "\"first\""), set("b", 0, "\"new\"")],
            TTL,
        )
        .await
        .unwrap();
    assert_eq!(first, SaveOutcome::Saved { conflicts: vec![] });
    let second = store
        .save(
            &id,
            &[set("a", 1, "\"second\""), set("c", 0, "\"other\"")],
            TTL,
        )
        .await
        .unwrap();
    assert_eq!(
        second,
        SaveOutcome::Saved {
            conflicts: vec!["a".into()]
        }
    );
    let loaded = store.load(&id).await.unwrap().unwrap();
    assert_eq!(loaded.entries["a"].value.as_deref(), Some("\"first\""));
    assert_eq!(loaded.entries["a"].version, 2);
    assert_eq!(
        loaded.entries["c"].value.as_deref(),
        Some("\"other\""),
        "non-conflicting keys are written"
    );

    // A removal keeps the version, so a stale writer cannot bring the key back.
    let removed = store
        .save(
            &id,
            &[Change {
                key: "b".into(),
                expected_version: 1,
                value: None,
            }],
            TTL,
        )
        .await
        .unwrap();
    assert_eq!(removed, SaveOutcome::Saved { conflicts: vec![] });
    let stale = store
        .save(&id, &[set("b", 0, "\"zombie\"")], TTL)
        .await
        .unwrap();
    assert_eq!(
        stale,
        SaveOutcome::Saved {
            conflicts: vec!["b".into()]
        }
    );
    let entry = store.load_key(&id, "b").await.unwrap().unwrap();
    assert_eq!((entry.value, entry.version), (None, 2));

    // Delete wins: nothing can write into or recreate the session.
    store.delete(&id, Gone::Deleted).await.unwrap();
    assert!(store.load(&id).await.unwrap().is_none());
    assert!(store.load_key(&id, "a").await.unwrap().is_none());
    assert_eq!(store.gone_reason(&id).await.unwrap(), Gone::Deleted);
    assert_eq!(
        store
            .save(&id, &[set("a", 2, "\"late\"")], TTL)
            .await
            .unwrap(),
        SaveOutcome::Gone(Gone::Deleted)
    );
    assert_eq!(
        store.save(&id, &[], TTL).await.unwrap(),
        SaveOutcome::Gone(Gone::Deleted)
    );
    assert!(
        !store
            .create(&id, &[("a".into(), "\"again\"".into())], TTL)
            .await
            .unwrap(),
        "a tombstoned id stays dead"
    );
    assert!(store.load(&id).await.unwrap().is_none());

    let cycled = SessionId::default();
    store
        .create(&cycled, &[("a".into(), "1".into())], TTL)
        .await
        .unwrap();
    store.delete(&cycled, Gone::Cycled).await.unwrap();
    assert_eq!(
        store.save(&cycled, &[set("a", 1, "2")], TTL).await.unwrap(),
        SaveOutcome::Gone(Gone::Cycled)
    );

    let short = SessionId::default();
    store
        .create(
            &short,
            &[("a".into(), "1".into())],
            Duration::from_millis(300),
        )
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert!(store.load(&short).await.unwrap().is_none());
    assert_eq!(store.gone_reason(&short).await.unwrap(), Gone::Expired);
    assert_eq!(
        store.save(&short, &[set("a", 1, "2")], TTL).await.unwrap(),
        SaveOutcome::Gone(Gone::Expired)
    );
    assert!(
        store.load(&short).await.unwrap().is_none(),
        "an expired session is not recreated by a save"
    );

    store.ping().await.unwrap();
}

#[tokio::test]
async fn memory_store_honours_the_contract() {
    contract(Arc::new(MemorySessionStore::new())).await;
}

#[tokio::test]
async fn redis_store_honours_the_contract() {
    let (store, pool, prefix) = redis_store().await;
    contract(store).await;
    let keys: Vec<String> = pool
        .next()
        .custom(fred::cmd!("KEYS"), vec![format!("{prefix}:*")])
        .await
        .unwrap();
    assert!(!keys.is_empty());
    for key in &keys {
        assert!(
            key.starts_with(&format!("{prefix}:s:{{")),
            "every key lives under the prefix, hash-tagged: {key}"
        );
        let ttl: i64 = pool.ttl(key).await.unwrap();
        assert!(ttl > 0, "{key} has no expiry");
    }
    let _: i64 = pool.del(keys).await.unwrap();
}

#[tokio::test]
async fn redis_store_survives_a_script_flush() {
    let (store, pool, _) = redis_store().await;
    let id = SessionId::default();
    assert!(
        store
            .create(&id, &[("a".into(), "1".into())], TTL)
            .await
            .unwrap()
    );
    let _: () = pool
        .next()
        .custom(fred::cmd!("SCRIPT"), vec!["FLUSH"])
        .await
        .unwrap();
    assert_eq!(
        store.save(&id, &[set("a", 1, "2")], TTL).await.unwrap(),
        SaveOutcome::Saved { conflicts: vec![] }
    );
    store.delete(&id, Gone::Deleted).await.unwrap();
}
