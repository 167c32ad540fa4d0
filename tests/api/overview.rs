//! The location overview: `GET /api/workflows?include=analysis` (scores, sorts, filters) and
//! `GET /api/summary`. Every location here is on the free plan: counts and scores show on it.

use serde_json::{json, Value};

use crate::helpers::{sample_workflow, spawn_app, spawn_sibling, TestApp};

/// A workflow that adds `adds` when `on` is added: two of them with crossed tags are a
/// location-wide cascade loop.
fn tagger(name: &str, on: &str, adds: &str) -> Value {
    json!({
        "name": name, "status": "published",
        "settings": { "timeWindow": { "start": "08:00", "end": "20:00", "days": ["mon"], "timezone": "UTC" } },
        "triggers": [ { "id": "t1", "type": "contact_tag_added", "filters": { "tag": on } } ],
        "start": "s1",
        "steps": [ { "id": "s1", "type": "add_tag", "config": { "tag": adds } } ]
    })
}

/// A workflow with `defects` webhooks to a private plain-http address (each a finding).
fn broken(name: &str, defects: usize) -> Value {
    let steps: Vec<Value> = (0..=defects)
        .map(|i| {
            let next = (i < defects).then(|| format!("s{}", i + 1));
            if i == defects {
                json!({"id": format!("s{i}"), "type": "add_tag", "config": {"tag": "done"}})
            } else {
                json!({"id": format!("s{i}"), "type": "webhook", "next": next,
                       "config": {"url": format!("http://10.0.0.{}/hook", i + 1)}})
            }
        })
        .collect();
    json!({
        "name": name, "status": if defects.is_multiple_of(2) { "draft" } else { "published" },
        "triggers": [ { "id": "t1", "type": "form_submitted" } ],
        "start": "s0", "steps": steps
    })
}

fn rows(page: &Value) -> Vec<Value> {
    page["data"]["workflows"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

fn pending(page: &Value) -> usize {
    rows(page)
        .iter()
        .filter(|row| row["analysisStatus"] == "pending")
        .count()
}

/// Asks until no row is pending (no write in between); every answer is passed to `check`.
async fn until_analyzed(
    app: &TestApp,
    key: &str,
    path: &str,
    mut check: impl FnMut(&Value),
) -> Value {
    for _ in 0..300 {
        let page = app.api_get_json(key, path).await;
        assert_eq!(page["success"], true, "{page}");
        check(&page);
        if pending(&page) == 0 {
            return page;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!("{path} still has pending analyses");
}

const ALL: &str = "/api/workflows?include=analysis&limit=100";

#[tokio::test]
async fn pending_scores_fill_in_without_a_write_and_equal_each_workflows_analysis() {
    let app = spawn_app().await;
    let key = app.create_location("locA").await;
    app.put_workflow(&key, "healthy", &sample_workflow("Healthy"))
        .await;
    app.put_workflow(&key, "broken1", &broken("One", 1)).await;
    app.put_workflow(&key, "broken2", &broken("Two", 2)).await;
    app.put_workflow(&key, "loopA", &tagger("A", "y", "x"))
        .await;
    app.put_workflow(&key, "loopB", &tagger("B", "x", "y"))
        .await;

    // Nothing was analyzed yet: every row is pending, and the summary says so.
    let first = app.api_get(&key, ALL).await;
    assert_eq!(first.status(), 200);
    assert!(first.headers().contains_key("x-cache-status"));
    let first: Value = first.json().await.unwrap();
    assert_eq!(pending(&first), 5, "{first}");
    assert!(rows(&first).iter().all(|row| row["analysis"].is_null()));

    let page = until_analyzed(&app, &key, ALL, |_| {}).await;
    let listed = rows(&page);
    assert_eq!(listed.len(), 5);
    let mut issues = [0u64; 5];
    for row in &listed {
        let id = row["id"].as_str().unwrap();
        let analysis = app
            .api_get_json(&key, &format!("/api/workflows/{id}/analysis"))
            .await;
        let analysis = &analysis["data"];
        assert_eq!(row["analysisStatus"], "done");
        for field in [
            "healthScore",
            "grade",
            "issuesSummary",
            "rulesVersion",
            "analyzedAt",
        ] {
            assert_eq!(row["analysis"][field], analysis[field], "{id} {field}");
        }
        for (n, level) in ["critical", "high", "medium", "low", "total"]
            .iter()
            .enumerate()
        {
            issues[n] += analysis["issuesSummary"][level].as_u64().unwrap();
        }
    }
    // The cascade loop's findings are in both workflows' numbers, as their analyses say.
    let loop_a = listed.iter().find(|row| row["id"] == "loopA").unwrap();
    assert!(loop_a["analysis"]["healthScore"].as_u64().unwrap() < 100);

    let summary = app.api_get(&key, "/api/summary").await;
    assert_eq!(summary.status(), 200);
    assert!(summary.headers().contains_key("x-cache-status"));
    let summary: Value = summary.json().await.unwrap();
    let summary = &summary["data"];
    assert_eq!(summary["pendingAnalyses"], 0);
    assert_eq!(summary["workflows"]["total"], 5);
    assert_eq!(summary["workflows"]["byStatus"]["draft"], 1);
    assert_eq!(summary["workflows"]["byStatus"]["published"], 4);
    let graded: u64 = summary["workflows"]["byGrade"]
        .as_object()
        .unwrap()
        .values()
        .map(|n| n.as_u64().unwrap())
        .sum();
    assert_eq!(graded, 5);
    for (n, level) in ["critical", "high", "medium", "low", "total"]
        .iter()
        .enumerate()
    {
        assert_eq!(summary["issuesBySeverity"][level], issues[n], "{level}");
    }
    let location = app.api_get_json(&key, "/api/analysis/location").await;
    assert_eq!(
        summary["locationFindings"],
        location["data"]["issuesSummary"]["total"]
    );
    assert!(summary["locationFindings"].as_u64().unwrap() > 0);
    let mut by_score: Vec<(u64, String)> = listed
        .iter()
        .map(|row| {
            (
                row["analysis"]["healthScore"].as_u64().unwrap(),
                row["id"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    by_score.sort();
    let worst: Vec<(u64, String)> = summary["worstWorkflows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| {
            (
                w["healthScore"].as_u64().unwrap(),
                w["id"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(worst, by_score);

    // Served from the cache the second time.
    let again = app.api_get(&key, "/api/summary").await;
    assert_eq!(again.headers()["x-cache-status"], "HIT");

    // Analyzed again once its cached copy is gone, a version keeps its recorded analysis.
    let flushed = app
        .send(app.client.post(app.url("/internal/cache/flush")))
        .await;
    assert_eq!(flushed.status(), 200);
    let recomputed = app
        .api_get_json(&key, "/api/workflows/broken1/analysis")
        .await;
    let row = listed.iter().find(|row| row["id"] == "broken1").unwrap();
    assert_eq!(
        row["analysis"]["analyzedAt"],
        recomputed["data"]["analyzedAt"]
    );
}

/// Every page of `path` (limit 2) put together.
async fn all_pages(app: &TestApp, key: &str, path: &str) -> Vec<String> {
    let mut ids = Vec::new();
    for page in 1.. {
        let separator = if path.contains('?') { '&' } else { '?' };
        let body = app
            .api_get_json(key, &format!("{path}{separator}limit=2&page={page}"))
            .await;
        assert_eq!(body["success"], true, "{body}");
        ids.extend(
            rows(&body)
                .iter()
                .map(|row| row["id"].as_str().unwrap().to_owned()),
        );
        if body["data"]["pagination"]["hasMore"] != true {
            assert_eq!(body["data"]["pagination"]["total"], ids.len());
            return ids;
        }
    }
    unreachable!()
}

#[tokio::test]
async fn each_sort_and_filter_pages_through_in_a_stable_order() {
    let app = spawn_app().await;
    let key = app.create_location("locA").await;
    // Equal scores (b1, b2 and c1, c2) must come out by id.
    for (id, defects) in [
        ("c2", 1),
        ("a0", 0),
        ("b2", 2),
        ("c1", 1),
        ("d4", 4),
        ("b1", 2),
    ] {
        app.put_workflow(&key, id, &broken(&format!("Name {defects}"), defects))
            .await;
    }
    let page = until_analyzed(&app, &key, ALL, |_| {}).await;
    let listed = rows(&page);
    let score = |row: &Value| row["analysis"]["healthScore"].as_u64().unwrap();
    let id = |row: &Value| row["id"].as_str().unwrap().to_owned();

    let mut expected = listed.clone();
    expected.sort_by(|a, b| score(a).cmp(&score(b)).then(id(a).cmp(&id(b))));
    let worst_first: Vec<String> = expected.iter().map(id).collect();
    assert_eq!(
        all_pages(
            &app,
            &key,
            "/api/workflows?include=analysis&sort=healthScore"
        )
        .await,
        worst_first
    );
    expected.sort_by(|a, b| score(b).cmp(&score(a)).then(id(a).cmp(&id(b))));
    let best_first: Vec<String> = expected.iter().map(id).collect();
    assert_eq!(
        all_pages(&app, &key, "/api/workflows?sort=-healthScore").await,
        best_first
    );
    expected.sort_by(|a, b| {
        a["name"]
            .as_str()
            .cmp(&b["name"].as_str())
            .then(id(a).cmp(&id(b)))
    });
    let by_name: Vec<String> = expected.iter().map(id).collect();
    assert_eq!(
        all_pages(&app, &key, "/api/workflows?sort=name").await,
        by_name
    );
    // The default order is the plain list's: most recently updated first.
    let plain = all_pages(&app, &key, "/api/workflows").await;
    assert_eq!(
        all_pages(
            &app,
            &key,
            "/api/workflows?include=analysis&sort=-updatedAt"
        )
        .await,
        ["b1", "d4", "c1", "b2", "a0", "c2"]
    );
    assert_eq!(plain, ["b1", "d4", "c1", "b2", "a0", "c2"]);

    // Without include=analysis the rows are the plain list's summaries, field for field.
    let by_id = |mut rows: Vec<Value>| {
        rows.sort_by(|a, b| a["id"].as_str().cmp(&b["id"].as_str()));
        rows
    };
    let plain_rows = rows(&app.api_get_json(&key, "/api/workflows?limit=100").await);
    let sorted_rows = rows(
        &app.api_get_json(&key, "/api/workflows?sort=-healthScore&limit=100")
            .await,
    );
    assert_eq!(by_id(sorted_rows), by_id(plain_rows));

    // Filters, with a status on top.
    let grade = listed[0]["analysis"]["grade"].as_str().unwrap().to_owned();
    let mut with_grade: Vec<String> = listed
        .iter()
        .filter(|row| row["analysis"]["grade"] == grade.as_str())
        .map(id)
        .collect();
    with_grade.sort();
    let path = format!(
        "/api/workflows?include=analysis&sort=name&grade={}",
        grade.to_uppercase().replace(' ', "%20")
    );
    let mut got = all_pages(&app, &key, &path).await;
    got.sort();
    assert_eq!(got, with_grade);

    for level in ["critical", "high", "medium", "low"] {
        let severities: &[&str] = match level {
            "critical" => &["critical"],
            "high" => &["critical", "high"],
            "medium" => &["critical", "high", "medium"],
            _ => &["critical", "high", "medium", "low"],
        };
        let mut wanted: Vec<(u64, String)> = listed
            .iter()
            .filter(|row| {
                severities
                    .iter()
                    .any(|s| row["analysis"]["issuesSummary"][s].as_u64().unwrap() > 0)
            })
            .filter(|row| row["status"] == "published")
            .map(|row| (score(row), id(row)))
            .collect();
        wanted.sort();
        let wanted: Vec<String> = wanted.into_iter().map(|(_, id)| id).collect();
        let path = format!("/api/workflows?sort=healthScore&status=published&minSeverity={level}");
        assert_eq!(all_pages(&app, &key, &path).await, wanted, "{level}");
    }
}

#[tokio::test]
async fn bad_overview_parameters_are_422_naming_the_field() {
    let app = spawn_app().await;
    let key = app.create_location("locA").await;
    for (query, field) in [
        ("include=issues", "include"),
        ("sort=score", "sort"),
        ("grade=Bad", "grade"),
        ("minSeverity=urgent", "minSeverity"),
    ] {
        let response = app.api_get(&key, &format!("/api/workflows?{query}")).await;
        assert_eq!(response.status(), 422, "{query}");
        let body: Value = response.json().await.unwrap();
        assert_eq!(
            body["error"]["details"]["errors"][0]["field"], field,
            "{query}"
        );
    }
}

#[tokio::test]
async fn a_fixing_write_changes_the_row_and_the_totals_at_once_on_another_instance() {
    let app = spawn_app().await;
    let sibling = spawn_sibling(&app).await;
    let key = app.create_location("locA").await;
    app.put_workflow(&key, "ok", &sample_workflow("Fine")).await;
    app.put_workflow(&key, "fixme", &broken("Fix me", 3)).await;
    let before = until_analyzed(&sibling, &key, ALL, |_| {}).await;
    let old_score = rows(&before)
        .iter()
        .find(|row| row["id"] == "fixme")
        .unwrap()["analysis"]["healthScore"]
        .clone();
    let old_summary = sibling.api_get_json(&key, "/api/summary").await;
    assert_eq!(old_summary["data"]["worstWorkflows"][0]["id"], "fixme");
    assert_eq!(
        old_summary["data"]["worstWorkflows"][0]["healthScore"],
        old_score
    );
    // Both pages are cached on the sibling now.
    assert_eq!(
        sibling.api_get(&key, ALL).await.headers()["x-cache-status"],
        "HIT"
    );

    let fixed = app
        .put_workflow(&key, "fixme", &sample_workflow("Fixed"))
        .await;
    assert_eq!(fixed.status(), 200);

    // From the first answer on: the new version, never the old score.
    let no_old_score = |page: &Value| {
        let row = rows(page)
            .into_iter()
            .find(|row| row["id"] == "fixme")
            .unwrap();
        assert_eq!(row["version"], 2, "{page}");
        assert_eq!(row["name"], "Fixed");
        assert_ne!(row["analysis"]["healthScore"], old_score, "{page}");
    };
    let summary = sibling.api_get_json(&key, "/api/summary").await;
    assert!(
        summary["data"]["worstWorkflows"]
            .as_array()
            .unwrap()
            .iter()
            .all(|w| w["id"] != "fixme" || w["healthScore"] != old_score),
        "{summary}"
    );
    let after = until_analyzed(&sibling, &key, ALL, no_old_score).await;
    let row = rows(&after)
        .into_iter()
        .find(|row| row["id"] == "fixme")
        .unwrap();
    let analysis = sibling
        .api_get_json(&key, "/api/workflows/fixme/analysis")
        .await;
    assert_eq!(
        row["analysis"]["healthScore"],
        analysis["data"]["healthScore"]
    );
    let ok = sibling
        .api_get_json(&key, "/api/workflows/ok/analysis")
        .await;
    let summary = sibling.api_get_json(&key, "/api/summary").await;
    assert_eq!(summary["data"]["pendingAnalyses"], 0);
    assert_eq!(
        summary["data"]["issuesBySeverity"]["total"]
            .as_u64()
            .unwrap(),
        ok["data"]["issuesSummary"]["total"].as_u64().unwrap()
            + analysis["data"]["issuesSummary"]["total"].as_u64().unwrap(),
        "{summary}"
    );
}

#[tokio::test]
async fn overview_pages_are_per_location() {
    let app = spawn_app().await;
    let key_a = app.create_location("locA").await;
    let key_b = app.create_location("locB").await;
    app.put_workflow(&key_a, "wf1", &broken("A's", 3)).await;
    app.put_workflow(&key_b, "wf1", &sample_workflow("B's"))
        .await;
    app.put_workflow(&key_b, "wf2", &sample_workflow("B's other"))
        .await;

    let a = until_analyzed(&app, &key_a, ALL, |_| {}).await;
    let b = until_analyzed(&app, &key_b, ALL, |_| {}).await;
    // Asked again: from the cache, still each location's own.
    let a_again = app.api_get_json(&key_a, ALL).await;
    let b_again = app.api_get_json(&key_b, ALL).await;

    for page in [&a, &a_again] {
        let names: Vec<Value> = rows(page).iter().map(|r| r["name"].clone()).collect();
        assert_eq!(names, [json!("A's")]);
    }
    for page in [&b, &b_again] {
        assert_eq!(rows(page).len(), 2);
        assert!(rows(page)
            .iter()
            .all(|r| r["name"].as_str().unwrap().starts_with("B's")));
    }
    let summary_a = app.api_get_json(&key_a, "/api/summary").await;
    let summary_b = app.api_get_json(&key_b, "/api/summary").await;
    assert_eq!(summary_a["data"]["workflows"]["total"], 1);
    assert_eq!(summary_b["data"]["workflows"]["total"], 2);
    assert_eq!(summary_b["data"]["issuesBySeverity"]["total"], 0);
    assert!(
        summary_a["data"]["issuesBySeverity"]["total"]
            .as_u64()
            .unwrap()
            > 0
    );
    // Naming the other location is refused, not answered with its pages.
    let other = app.api_get(&key_a, "/api/summary?locationId=locB").await;
    assert_eq!(other.status(), 403);
}
