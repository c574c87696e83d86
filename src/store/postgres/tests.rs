use sqlx::AssertSqlSafe;

use super::*;

/// The timeouts reach the server, and a URL's own settings win over them.
#[tokio::test]
async fn connections_carry_the_timeouts_unless_the_url_sets_them() {
    let Ok(base) = std::env::var("PARLEY_TEST_DATABASE_URL") else {
        eprintln!("skipping PostgreSQL settings test: PARLEY_TEST_DATABASE_URL is not set");
        return;
    };
    let schema = test_schema(&base).await.unwrap();
    let show = |store: &PostgresStore, setting: &'static str| {
        let pool = store.pool.clone();
        async move {
            let value: String = sqlx::query_scalar(AssertSqlSafe(format!("show {setting}")))
                .fetch_one(&pool)
                .await
                .unwrap();
            value
        }
    };
    let store = PostgresStore::connect(schema.url(), 2).await.unwrap();
    assert_eq!(show(&store, "statement_timeout").await, "5s");
    assert_eq!(
        show(&store, "idle_in_transaction_session_timeout").await,
        "10s"
    );
    assert_eq!(show(&store, "search_path").await, schema.name());
    store.close().await;

    let url = format!("{}&options[statement_timeout]=1min", schema.url());
    let store = PostgresStore::connect(&url, 2).await.unwrap();
    assert_eq!(show(&store, "statement_timeout").await, "1min");
    assert_eq!(show(&store, "search_path").await, schema.name());
    store.close().await;
    schema.drop_schema().await.unwrap();
}
