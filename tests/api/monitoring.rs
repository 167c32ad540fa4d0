//! The monitoring kit in `deploy/`: the alert rules pass `promtool check rules` and their
//! unit tests (`promtool test rules`), the scrape config passes `promtool check config`, and
//! every metric the Grafana dashboard and the rules name exists in the service's `/metrics`.
//!
//! Without `promtool` (Debian's `prometheus` package) the promtool test says so and passes,
//! except on CI (`CI` set), where it fails.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

use crate::helpers::{sample_workflow, spawn_app_with};

fn deploy(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("deploy")
        .join(path)
}

fn promtool() -> Option<PathBuf> {
    let found = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join("promtool"))
            .find(|candidate| candidate.is_file())
    });
    if found.is_none() {
        assert!(
            std::env::var_os("CI").is_none(),
            "promtool is not installed: `apt-get install -y prometheus` (the CI runs this test)"
        );
        eprintln!("SKIPPED the promtool checks: promtool is not installed (apt-get install -y prometheus)");
    }
    found
}

fn run(promtool: &Path, args: &[&str], dir: &Path) {
    let output = Command::new(promtool)
        .args(args)
        .current_dir(dir)
        .output()
        .expect("promtool runs");
    assert!(
        output.status.success(),
        "promtool {args:?} failed:\n{}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

#[test]
fn the_alert_rules_and_the_scrape_config_pass_promtool_and_the_rule_unit_tests() {
    let Some(promtool) = promtool() else { return };
    let dir = deploy("prometheus");

    run(&promtool, &["check", "rules", "alerts.yml"], &dir);
    run(&promtool, &["test", "rules", "alerts.test.yml"], &dir);

    // The scrape config names the token file where the container mounts it; check a copy
    // that points at a real file.
    let scratch = std::env::temp_dir().join(format!("gwd-prom-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&scratch).unwrap();
    let token = scratch.join("metrics-token");
    std::fs::write(&token, "change-me\n").unwrap();
    let config = std::fs::read_to_string(dir.join("prometheus.yml")).unwrap();
    assert!(config.contains("credentials_file: /etc/prometheus/metrics-token"));
    std::fs::write(
        scratch.join("prometheus.yml"),
        config.replace("/etc/prometheus/metrics-token", token.to_str().unwrap()),
    )
    .unwrap();
    std::fs::copy(dir.join("alerts.yml"), scratch.join("alerts.yml")).unwrap();
    run(&promtool, &["check", "config", "prometheus.yml"], &scratch);
    let _ = std::fs::remove_dir_all(&scratch);
}

/// The `expr` values of a rules file: inline (`expr: …`) or a block (`expr: |` and the lines
/// indented below it). Commented lines are skipped.
fn rule_expressions(yaml: &str) -> Vec<String> {
    let lines: Vec<&str> = yaml.lines().collect();
    let mut expressions = Vec::new();
    let mut n = 0;
    while n < lines.len() {
        let line = lines[n];
        let trimmed = line.trim_start();
        n += 1;
        if trimmed.starts_with('#') {
            continue;
        }
        let Some(rest) = trimmed.strip_prefix("expr:") else {
            continue;
        };
        let rest = rest.trim();
        if rest == "|" || rest == ">" {
            let indent = line.len() - trimmed.len();
            let mut block = String::new();
            while n < lines.len() {
                let next = lines[n];
                let next_indent = next.len() - next.trim_start().len();
                if !next.trim().is_empty() && next_indent <= indent {
                    break;
                }
                block.push_str(next);
                block.push('\n');
                n += 1;
            }
            expressions.push(block);
        } else {
            expressions.push(rest.trim_matches('\'').to_owned());
        }
    }
    expressions
}

/// Metric names in a PromQL expression: identifiers that are not functions, keywords,
/// grouping labels, label matchers, strings, ranges or `$variables`.
fn metric_names(expression: &str) -> BTreeSet<String> {
    // Aggregations may put their grouping first (`sum by (x) (…)`), so they are not always
    // followed by a parenthesis.
    const KEYWORDS: [&str; 23] = [
        "sum",
        "min",
        "max",
        "avg",
        "group",
        "stddev",
        "stdvar",
        "count",
        "count_values",
        "bottomk",
        "topk",
        "quantile",
        "and",
        "or",
        "unless",
        "by",
        "without",
        "on",
        "ignoring",
        "bool",
        "offset",
        "group_left",
        "group_right",
    ];
    const GROUPINGS: [&str; 6] = [
        "by",
        "without",
        "on",
        "ignoring",
        "group_left",
        "group_right",
    ];
    let chars: Vec<char> = expression.chars().collect();
    let mut names = BTreeSet::new();
    let mut n = 0;
    let mut skip_group = false;
    while n < chars.len() {
        let c = chars[n];
        match c {
            '"' | '\'' | '`' => {
                n += 1;
                while n < chars.len() && chars[n] != c {
                    n += if chars[n] == '\\' { 2 } else { 1 };
                }
                n += 1;
            }
            '{' | '[' => {
                let close = if c == '{' { '}' } else { ']' };
                while n < chars.len() && chars[n] != close {
                    n += 1;
                }
                n += 1;
            }
            '(' if skip_group => {
                while n < chars.len() && chars[n] != ')' {
                    n += 1;
                }
                n += 1;
                skip_group = false;
            }
            '$' => {
                n += 1;
                while n < chars.len() && (chars[n].is_alphanumeric() || chars[n] == '_') {
                    n += 1;
                }
            }
            c if c.is_ascii_alphabetic() || c == '_' || c == ':' => {
                let start = n;
                while n < chars.len()
                    && (chars[n].is_ascii_alphanumeric() || chars[n] == '_' || chars[n] == ':')
                {
                    n += 1;
                }
                let word: String = chars[start..n].iter().collect();
                let mut after = n;
                while after < chars.len() && chars[after].is_whitespace() {
                    after += 1;
                }
                let is_call = after < chars.len() && chars[after] == '(';
                if GROUPINGS.contains(&word.as_str()) {
                    skip_group = true;
                } else if !is_call && !KEYWORDS.contains(&word.as_str()) {
                    names.insert(word);
                }
            }
            c if c.is_ascii_digit() => {
                // Numbers and durations (5m, 1e-9) are not names.
                while n < chars.len() && (chars[n].is_ascii_alphanumeric() || chars[n] == '.') {
                    n += 1;
                }
            }
            _ => n += 1,
        }
    }
    names
}

#[test]
fn metric_names_are_told_apart_from_functions_labels_and_keywords() {
    let names = metric_names(
        r#"histogram_quantile(0.99, sum by (endpoint, le) (rate(http_http_requests_duration_seconds_bucket{instance=~"$instance", status=~"5.."}[$__rate_interval]))) > 0.5 and on (instance) cache_breaker_state == bool 1"#,
    );
    assert_eq!(
        names.into_iter().collect::<Vec<_>>(),
        [
            "cache_breaker_state",
            "http_http_requests_duration_seconds_bucket"
        ]
    );
}

fn dashboard_expressions(dashboard: &Value, out: &mut Vec<String>) {
    match dashboard {
        Value::Object(map) => {
            for (key, value) in map {
                match (key.as_str(), value) {
                    ("expr", Value::String(expr)) => out.push(expr.clone()),
                    _ => dashboard_expressions(value, out),
                }
            }
        }
        Value::Array(items) => items
            .iter()
            .for_each(|item| dashboard_expressions(item, out)),
        _ => {}
    }
}

/// Every name `/metrics` exposes, with a histogram's `_bucket`, `_sum` and `_count`.
fn exposed_names(text: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    for line in text.lines() {
        if let Some(typed) = line.strip_prefix("# TYPE ") {
            let mut parts = typed.split_whitespace();
            let (Some(name), Some(kind)) = (parts.next(), parts.next()) else {
                continue;
            };
            names.insert(name.to_owned());
            if kind == "histogram" || kind == "summary" {
                for suffix in ["_bucket", "_sum", "_count"] {
                    names.insert(format!("{name}{suffix}"));
                }
            }
        } else if !line.starts_with('#') && !line.is_empty() {
            let end = line.find(['{', ' ']).unwrap_or(line.len());
            names.insert(line[..end].to_owned());
        }
    }
    names
}

#[tokio::test]
async fn every_metric_named_in_the_grafana_dashboard_and_the_alert_rules_exists_in_metrics() {
    // Arrange: an app whose labelled series have all been touched once (a labelled family
    // without a series is not exposed at all).
    let app = spawn_app_with(|env| {
        env.insert("RATE_LIMIT_ENABLED".into(), "true".into());
    })
    .await;
    let key = app.create_location("locMetricNames").await;
    let put = app.put_workflow(&key, "wf-m", &sample_workflow("M")).await;
    assert_eq!(put.status(), 201);
    assert_eq!(app.api_get(&key, "/api/workflows/wf-m").await.status(), 200);
    let exposed = exposed_names(&app.get("/metrics").await.text().await.unwrap());

    let mut expressions = Vec::new();
    let dashboard: Value = serde_json::from_str(
        &std::fs::read_to_string(deploy("grafana/ghl-workflow-debugger.json")).unwrap(),
    )
    .unwrap();
    dashboard_expressions(&dashboard, &mut expressions);
    let from_dashboard = expressions.len();
    expressions.extend(rule_expressions(
        &std::fs::read_to_string(deploy("prometheus/alerts.yml")).unwrap(),
    ));
    assert!(from_dashboard >= 15, "the dashboard's queries were found");
    assert!(
        expressions.len() >= from_dashboard + 6,
        "the rules were found"
    );

    let mut used = BTreeSet::new();
    for expression in &expressions {
        used.extend(metric_names(expression));
    }
    for expected in [
        "cache_operations_total",
        "cache_breaker_state",
        "http_http_requests_duration_seconds_bucket",
        "rate_limit_decisions_total",
        "cache_invalidation_acks_total",
        "database_replica_lag_seconds",
        "database_replica_lag_limit_seconds",
        "database_reads_total",
    ] {
        assert!(
            used.contains(expected),
            "{expected} is charted or alerted on"
        );
    }
    let missing: Vec<_> = used.difference(&exposed).collect();
    assert!(
        missing.is_empty(),
        "named in deploy/ but not in /metrics: {missing:?}"
    );
}
