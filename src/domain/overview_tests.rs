use super::*;
use crate::domain::analysis::{analyze_workflow, Issue, Severity};
use crate::domain::workflow::WorkflowDocument;
use chrono::TimeZone;
use serde_json::json;

fn row(id: &str, name: &str, minute: u32, score: Option<u32>) -> OverviewRow {
    OverviewRow {
        id: id.to_owned(),
        name: name.to_owned(),
        status: "published".to_owned(),
        version: 1,
        step_count: 1,
        trigger_count: 1,
        updated_at: Utc
            .with_ymd_and_hms(2026, 12, 1, 12, minute, 0)
            .single()
            .expect("date"),
        analysis: score.map(|score| RowAnalysis {
            health_score: score,
            grade: grade(score).to_owned(),
            issues_summary: IssuesSummary {
                critical: u32::from(score < 50),
                total: u32::from(score < 50),
                ..IssuesSummary::default()
            },
            rules_version: "r".to_owned(),
            analyzed_at: String::new(),
        }),
        analysis_status: if score.is_some() {
            AnalysisStatus::Done
        } else {
            AnalysisStatus::Pending
        },
    }
}

fn ids(rows: &[OverviewRow], order: &[u32]) -> Vec<String> {
    order.iter().map(|i| rows[*i as usize].id.clone()).collect()
}

#[test]
fn sorts_break_ties_by_id_and_put_rows_without_a_score_last() {
    let rows = vec![
        row("c", "same", 1, Some(40)),
        row("a", "same", 1, Some(40)),
        row("b", "other", 3, None),
        row("d", "zed", 2, Some(90)),
    ];
    assert_eq!(
        ids(&rows, &Sort::HealthScore.order(&rows)),
        ["a", "c", "d", "b"]
    );
    assert_eq!(
        ids(&rows, &Sort::HealthScoreDesc.order(&rows)),
        ["d", "a", "c", "b"]
    );
    assert_eq!(ids(&rows, &Sort::Name.order(&rows)), ["b", "a", "c", "d"]);
    assert_eq!(
        ids(&rows, &Sort::UpdatedAtDesc.order(&rows)),
        ["b", "d", "a", "c"]
    );
}

#[test]
fn filters_on_the_analysis_leave_out_rows_without_one() {
    let rows = [
        row("a", "a", 1, Some(40)),
        row("b", "b", 1, None),
        row("c", "c", 1, Some(95)),
    ];
    let mut errors = Vec::new();
    let filter = RowFilter {
        grades: RowFilter::parse_grades("high risk,EXCELLENT", &mut errors),
        ..RowFilter::default()
    };
    assert!(errors.is_empty());
    let kept: Vec<&str> = rows
        .iter()
        .filter(|r| filter.keeps(r))
        .map(|r| r.id.as_str())
        .collect();
    assert_eq!(kept, ["a", "c"]);

    let severe = RowFilter {
        min_severity: Some(Severity::High),
        ..RowFilter::default()
    };
    let kept: Vec<&str> = rows
        .iter()
        .filter(|r| severe.keeps(r))
        .map(|r| r.id.as_str())
        .collect();
    assert_eq!(kept, ["a"]);

    RowFilter::parse_grades("Good,Bad", &mut errors);
    assert_eq!(errors.len(), 1);
}

#[test]
fn location_findings_count_as_add_location_findings_counts_them() {
    let document = WorkflowDocument::from_json(&json!({
        "name": "n", "status": "published", "start": "s1",
        "triggers": [{"id": "t", "type": "contact_tag_added", "filters": {"tag": "x"}}],
        "steps": [{"id": "s1", "type": "webhook", "config": {"url": "http://10.0.0.1/x"}}]
    }))
    .expect("document");
    let report = analyze_workflow("wf", 1, &document, Utc::now());
    let findings: Vec<Issue> = [Severity::Critical, Severity::Low, Severity::Medium]
        .into_iter()
        .map(|severity| {
            let mut issue = Issue::new("cascade_loop", severity, "t", "m", vec![], "f");
            issue.workflow_ids = vec!["wf".to_owned()];
            issue
        })
        .collect();
    let row = RowAnalysis {
        health_score: report.health_score,
        grade: report.grade.clone(),
        issues_summary: report.issues_summary,
        rules_version: report.rules_version.clone(),
        analyzed_at: report.analyzed_at.clone(),
    }
    .with_location_findings(&findings.iter().collect::<Vec<_>>());
    let mut full = report;
    full.add_location_findings(findings);

    assert_eq!(row.issues_summary, full.issues_summary);
    assert_eq!(row.health_score, full.health_score);
    assert_eq!(row.grade, full.grade);
}

#[test]
fn the_summary_counts_grades_statuses_and_names_the_worst_five() {
    let overview = Overview {
        rules_version: "r".to_owned(),
        rows: (0..8)
            .map(|n| row(&format!("w{n}"), "x", n, (n != 3).then_some(30 + n * 10)))
            .collect(),
        location_findings: Some(2),
    };
    let summary = overview.summary();
    assert_eq!(summary.workflows.total, 8);
    assert_eq!(summary.workflows.by_status["published"], 8);
    assert_eq!(summary.pending_analyses, 1);
    assert_eq!(summary.workflows.by_grade.values().sum::<usize>(), 7);
    assert_eq!(summary.issues_by_severity.critical, 2);
    let worst: Vec<&str> = summary
        .worst_workflows
        .iter()
        .map(|w| w.id.as_str())
        .collect();
    assert_eq!(worst, ["w0", "w1", "w2", "w4", "w5"]);
}
