//! `spawn_app`: the real application on a random port, with a fresh database per test.

use std::collections::HashMap;

use ghl_workflow_debugger::config::Settings;
use ghl_workflow_debugger::startup::Application;
use sqlx::postgres::PgConnectOptions;
use sqlx::{ConnectOptions, Connection};
use url::Url;

/// The server tests create their databases on; override with `TEST_DATABASE_URL`.
pub fn admin_database_url() -> Url {
    let raw = std::env::var("TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned());
    Url::parse(&raw).expect("TEST_DATABASE_URL is a URL")
}

/// The Redis tests share; each test uses its own key prefix. Override with `TEST_REDIS_URL`.
pub fn test_redis_url() -> String {
    std::env::var("TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".to_owned())
}

pub fn unique_name(prefix: &str) -> String {
    format!("{prefix}_{}", uuid::Uuid::new_v4().simple())
}

/// A fresh, empty database; dropped when the guard goes.
pub struct TestDatabase {
    pub name: String,
    pub url: Url,
}

impl TestDatabase {
    pub async fn create() -> Self {
        let name = unique_name("gwd_test");
        let mut admin = admin_connection().await;
        sqlx::query(&format!(r#"create database "{name}""#))
            .execute(&mut admin)
            .await
            .expect("create test database");
        let mut url = admin_database_url();
        url.set_path(&name);
        Self { name, url }
    }
}

async fn admin_connection() -> sqlx::PgConnection {
    let options = PgConnectOptions::from_url(&admin_database_url()).expect("admin options");
    options
        .connect()
        .await
        .expect("connect to the admin database")
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        let name = self.name.clone();
        // Drop runs inside the test's runtime; a separate thread with its own runtime can block.
        let _ = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            runtime.block_on(async {
                let mut admin = admin_connection().await;
                let _ = sqlx::query(&format!(r#"drop database if exists "{name}" with (force)"#))
                    .execute(&mut admin)
                    .await;
                let _ = admin.close().await;
            });
        })
        .join();
    }
}

pub struct TestApp {
    pub address: String,
    pub client: reqwest::Client,
    pub database: Option<TestDatabase>,
    /// The environment it was started with, to start a second instance beside it.
    pub env: HashMap<String, String>,
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.address, path)
    }

    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.send(self.client.get(self.url(path))).await
    }

    /// Sends `request` and checks the answer against the OpenAPI document (`contract.rs`):
    /// every helper below goes through here, so every test checks the responses it gets.
    pub async fn send(&self, request: reqwest::RequestBuilder) -> reqwest::Response {
        let request = request.build().expect("a valid request");
        let method = request.method().as_str().to_owned();
        let path = request.url().path().to_owned();
        let response = self.client.execute(request).await.expect("request");
        crate::contract::checked(&method, &path, response).await
    }
}

/// Environment every test app starts from: loopback, one worker, rate limits off.
pub fn base_environment(database_url: &Url) -> HashMap<String, String> {
    let prefix = unique_name("gwdtest");
    [
        ("DATABASE_URL", database_url.as_str()),
        ("HOST", "127.0.0.1"),
        ("PORT", "0"),
        ("WORKERS", "1"),
        ("RATE_LIMIT_ENABLED", "false"),
        ("CACHE_PREFIX", prefix.as_str()),
        ("REDIS_URL", test_redis_url().as_str()),
        ("SHUTDOWN_TIMEOUT_SECS", "1"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect()
}

pub fn settings_from(env: &HashMap<String, String>) -> Settings {
    Settings::from_lookup(|name| env.get(name).cloned()).expect("valid test settings")
}

pub async fn spawn_app() -> TestApp {
    spawn_app_with(|_| {}).await
}

/// Spawns the app on a fresh database; `customize` may change any environment variable.
pub async fn spawn_app_with(customize: impl FnOnce(&mut HashMap<String, String>)) -> TestApp {
    let database = TestDatabase::create().await;
    let mut env = base_environment(&database.url);
    customize(&mut env);
    let mut app = start(settings_from(&env), Some(database)).await;
    app.env = env;
    app
}

/// Another instance on the same database, Redis and key prefix (a second server behind the
/// same load balancer).
pub async fn spawn_sibling(app: &TestApp) -> TestApp {
    let mut sibling = start(settings_from(&app.env), None).await;
    sibling.env = app.env.clone();
    sibling
}

/// Spawns the app against settings as given (e.g. a database that is down).
pub async fn start(settings: Settings, database: Option<TestDatabase>) -> TestApp {
    let application = Application::build(settings)
        .await
        .expect("application builds");
    let port = application.port();
    tokio::spawn(application.run_until_stopped());
    TestApp {
        address: format!("http://127.0.0.1:{port}"),
        client: reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .expect("client"),
        database,
        env: HashMap::new(),
    }
}

impl TestApp {
    /// Creates a location through the operator route and returns its API key.
    pub async fn create_location(&self, id: &str) -> String {
        let response = self
            .send(
                self.client
                    .post(self.url("/internal/locations"))
                    .json(&serde_json::json!({"id": id, "name": format!("Location {id}")})),
            )
            .await;
        assert_eq!(response.status(), 201, "creating location {id}");
        let body: serde_json::Value = response.json().await.expect("json");
        body["data"]["apiKey"].as_str().expect("apiKey").to_owned()
    }

    pub async fn api_get(&self, key: &str, path: &str) -> reqwest::Response {
        self.send(self.client.get(self.url(path)).bearer_auth(key))
            .await
    }

    /// `api_get`'s body as JSON, whatever the status (assert the status with `api_get`).
    /// Empties every cache tier through the operator route (what a restart with new data does).
    pub async fn flush_cache(&self) {
        let flushed = self
            .send(self.client.post(self.url("/internal/cache/flush")))
            .await;
        assert_eq!(flushed.status(), 200);
    }

    pub async fn api_get_json(&self, key: &str, path: &str) -> serde_json::Value {
        self.api_get(key, path).await.json().await.expect("json")
    }

    pub async fn put_workflow(
        &self,
        key: &str,
        id: &str,
        document: &serde_json::Value,
    ) -> reqwest::Response {
        self.send(
            self.client
                .put(self.url(&format!("/api/workflows/{id}")))
                .bearer_auth(key)
                .json(document),
        )
        .await
    }

    pub async fn delete_workflow(&self, key: &str, id: &str) -> reqwest::Response {
        self.send(
            self.client
                .delete(self.url(&format!("/api/workflows/{id}")))
                .bearer_auth(key),
        )
        .await
    }

    pub fn database_url(&self) -> &str {
        self.database.as_ref().expect("test database").url.as_str()
    }
}

/// A small valid §7 document.
pub fn sample_workflow(name: &str) -> serde_json::Value {
    serde_json::json!({
        "name": name,
        "status": "published",
        "settings": { "allowReentry": false, "stopOnResponse": true,
                      "timeWindow": { "start": "08:00", "end": "20:00", "days": ["mon","tue","wed","thu","fri"], "timezone": "America/Chicago" } },
        "triggers": [ { "id": "t1", "type": "contact_tag_added", "name": "Tag lead added", "filters": { "tag": "lead" } } ],
        "start": "s1",
        "steps": [
            { "id": "s1", "type": "send_email", "name": "Welcome", "config": { "subject": "Hi {{contact.first_name}}", "body": "Welcome!", "to": "{{contact.email}}" }, "next": "s2" },
            { "id": "s2", "type": "wait", "config": { "duration": "1d" }, "next": "s3" },
            { "id": "s3", "type": "add_tag", "config": { "tag": "engaged" } }
        ]
    })
}
