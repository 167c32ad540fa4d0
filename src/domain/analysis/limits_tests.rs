//! Engine-level tests of the time budget and of the per-rule issue cap.

use super::budget::tests::ticking;
use super::budget::CHECK_EVERY;
use super::*;
use crate::domain::plan::Plan;
use chrono::TimeZone;
use serde_json::{json, Value};
use std::cell::Cell;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 28, 12, 0, 0)
        .single()
        .expect("valid date")
}

fn doc(v: Value) -> WorkflowDocument {
    WorkflowDocument::from_json(&v).expect("test document parses")
}

/// `n` connected steps; `broken` e-mails without subject or body (one
/// `missing-required-field` each), the others complete.
fn emails(n: usize, broken: usize) -> WorkflowDocument {
    let steps: Vec<Value> = (0..n)
        .map(|i| {
            let next = if i + 1 < n {
                json!(format!("s{}", i + 1))
            } else {
                Value::Null
            };
            let config = if i < broken {
                json!({"to": "{{contact.email}}"})
            } else {
                json!({"to": "{{contact.email}}", "subject": "Hi", "body": "Hello"})
            };
            json!({"id": format!("s{i}"), "type": "send_email", "config": config, "next": next})
        })
        .collect();
    doc(json!({"name": "mail", "status": "published", "start": "s0",
        "triggers": [{"id": "t", "type": "form_submitted"}], "steps": steps}))
}

#[test]
fn a_spent_budget_abandons_the_analysis_as_too_complex() {
    let limit = Duration::from_millis(5);
    let budget = Budget::new(limit, ticking(Duration::from_millis(1)));

    let result = analyze_workflow_within("big", 1, &emails(2_000, 0), now(), &budget);

    assert_eq!(result, Err(AnalysisAbandoned::TooComplex { budget: limit }));
}

#[test]
fn a_budget_that_lasts_gives_the_report_of_an_unlimited_analysis() {
    for document in [emails(3, 1), emails(300, 120)] {
        let budget = Budget::new(Duration::from_secs(3600), || Duration::ZERO);

        let within = analyze_workflow_within("w", 2, &document, now(), &budget);

        assert_eq!(within, Ok(analyze_workflow("w", 2, &document, now())));
    }
}

#[test]
fn a_cancelled_analysis_stops_at_its_first_check() {
    let cancel = AtomicBool::new(true);
    let reads = Cell::new(0);
    let budget = Budget::new(Duration::from_secs(3600), || {
        reads.set(reads.get() + 1);
        Duration::ZERO
    })
    .cancelled_by(&cancel);

    let result = analyze_workflow_within("w", 1, &emails(500, 0), now(), &budget);

    assert_eq!(result, Err(AnalysisAbandoned::Cancelled));
    assert_eq!(reads.get(), 0, "the flag is read before the clock");
}

#[test]
fn the_engine_checks_its_budget_in_proportion_to_the_steps() {
    let reads_for = |n: usize| {
        let reads = Cell::new(0usize);
        let budget = Budget::new(Duration::from_secs(3600), || {
            reads.set(reads.get() + 1);
            Duration::ZERO
        });
        analyze_workflow_within("w", 1, &emails(n, 0), now(), &budget).expect("within");
        reads.get()
    };
    let rules = rules::rule_set().len();

    let (small, large) = (reads_for(CHECK_EVERY * 10), reads_for(CHECK_EVERY * 40));

    // Between every rule and every CHECK_EVERY steps: often enough to stop within a stride,
    // rarely enough to cost nothing.
    assert!(small >= 10 && small <= 10 + rules + 8, "{small}");
    assert!(large >= 40 && large <= 40 + rules + 8, "{large}");
}

#[test]
fn a_normal_report_has_no_omitted_issues_field() {
    let report = analyze_workflow("w", 1, &emails(5, 2), now());

    let json = serde_json::to_value(&report).expect("serializes");

    assert!(report.issues_omitted.is_empty());
    assert!(json.get("issuesOmitted").is_none());
    assert_eq!(report.issues.len() as u32, report.issues_summary.total);
}

#[test]
fn a_rule_firing_on_every_step_lists_fifty_and_counts_the_rest() {
    let broken = 400;

    let report = analyze_workflow("w", 1, &emails(broken + 10, broken), now());

    let listed = report
        .issues
        .iter()
        .filter(|i| i.rule == "missing-required-field")
        .count();
    assert_eq!(listed, MAX_ISSUES_PER_RULE);
    assert!(report.issues_omitted.contains(&OmittedIssues {
        rule: "missing-required-field".to_owned(),
        severity: Severity::Critical,
        count: (broken - MAX_ISSUES_PER_RULE) as u32,
    }));
    // The summary, the score and the recommendations count every finding.
    let omitted: u32 = report.issues_omitted.iter().map(|o| o.count).sum();
    assert!(report.issues_summary.critical >= broken as u32);
    assert_eq!(
        report.issues_summary.total,
        report.issues.len() as u32 + omitted
    );
    assert_eq!(report.health_score, 0);
    assert!(report
        .recommendations
        .iter()
        .any(|r| r.contains(&format!("{broken} issue"))));
    // The first findings of the rule, in step order.
    let first = report
        .issues
        .iter()
        .find(|i| i.rule == "missing-required-field")
        .expect("listed");
    assert_eq!(first.step_ids, vec!["s0"]);
}

#[test]
fn location_findings_keep_the_omitted_counts_and_the_free_plan_counts_them_hidden() {
    let broken = 120;
    let mut report = analyze_workflow("w", 1, &emails(broken, broken), now());
    let before = report.issues_summary;
    let mut finding = Issue::new(
        "workflow-cascade-loop",
        Severity::Critical,
        "loop",
        "loop",
        vec!["s0".to_owned()],
        "fix",
    );
    finding.workflow_ids = vec!["w".to_owned(), "x".to_owned()];

    report.add_location_findings(vec![finding]);

    assert_eq!(report.issues_summary.total, before.total + 1);
    assert_eq!(report.issues_summary.critical, before.critical + 1);
    let free = report.clone().for_plan(Plan::Free);
    let upgrade = free.upgrade.expect("free plan");
    assert_eq!(upgrade.hidden as u32, report.issues_summary.total - 3);
    assert!(free.issues_omitted.is_empty());
}
