use serde_json::Value;

use crate::helpers::spawn_app;

#[tokio::test]
async fn a_location_without_a_subscription_is_on_the_free_plan() {
    let app = spawn_app().await;
    let key = app.create_location("locA").await;

    let response = app.api_get(&key, "/api/subscription").await;

    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    let data = &body["data"];
    assert_eq!(data["locationId"], "locA");
    assert_eq!(data["plan"], "free");
    assert_eq!(data["status"], "active");
    assert_eq!(data["features"]["fullAnalysis"], false);
    assert_eq!(data["limits"]["requestsPerMinute"], 20);
    assert_eq!(data["limits"]["analysesPerHour"], 10);
}
