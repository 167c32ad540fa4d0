use ghl_workflow_debugger::repository::postgres::database;

use crate::helpers::{base_environment, settings_from, TestDatabase};

#[tokio::test]
async fn migrations_create_the_schema_and_are_idempotent() {
    let db = TestDatabase::create().await;
    let settings = settings_from(&base_environment(&db.url));
    let pool = database::connect_lazy(&settings.database).unwrap();

    database::migrate(&pool, &settings.database).await.unwrap();
    database::migrate(&pool, &settings.database).await.unwrap();

    let tables: Vec<String> = sqlx::query_scalar(
        "select table_name::text from information_schema.tables where table_schema = 'public' order by 1",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    for expected in [
        "analyses",
        "api_keys",
        "locations",
        "subscriptions",
        "webhook_events",
        "workflows",
    ] {
        assert!(
            tables.iter().any(|t| t == expected),
            "{expected} missing from {tables:?}"
        );
    }
    pool.close().await;
}

#[tokio::test]
async fn schema_constraints_reject_bad_rows() {
    let db = TestDatabase::create().await;
    let settings = settings_from(&base_environment(&db.url));
    let pool = database::connect_lazy(&settings.database).unwrap();
    database::migrate(&pool, &settings.database).await.unwrap();
    sqlx::query("insert into locations (id, name) values ('loc1', 'L')")
        .execute(&pool)
        .await
        .unwrap();

    let bad_rows = [
        "insert into locations (id, name) values ('has space', 'x')",
        "insert into workflows (location_id, id, name, status, version, definition) values ('loc1', 'w', 'n', 'live', 1, '{}')",
        "insert into workflows (location_id, id, name, status, version, definition) values ('nope', 'w', 'n', 'draft', 1, '{}')",
        "insert into subscriptions (location_id, plan) values ('loc1', 'platinum')",
        "insert into api_keys (location_id, key_hash) values ('loc1', 'short')",
        "insert into analyses (location_id, workflow_id, workflow_version, rules_version, health_score, issues_found, result) values ('loc1', 'w', 1, 'r', 101, 0, '{}')",
    ];
    for sql in bad_rows {
        assert!(
            sqlx::query(sql).execute(&pool).await.is_err(),
            "accepted: {sql}"
        );
    }
    pool.close().await;
}
