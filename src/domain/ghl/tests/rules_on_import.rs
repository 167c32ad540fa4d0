//! Rules that read settings, waits, message text and webhooks, run on builder documents:
//! each finding names the GoHighLevel step id and the name the builder shows.

use super::*;
use crate::domain::analysis::{Issue, Severity};

/// The finding of `rule` that names step `id`, whose message names it by id and `name`.
fn finding<'a>(r: &'a AnalysisReport, rule: &str, id: &str, name: &str) -> &'a Issue {
    let issue = r
        .issues
        .iter()
        .find(|i| i.rule == rule && i.step_ids.iter().any(|s| s == id))
        .unwrap_or_else(|| panic!("no {rule} on {id} in {:#?}", r.issues));
    let label = format!("\"{id}\" ({name})");
    assert!(
        issue.message.contains(&label),
        "{label} not in {}",
        issue.message
    );
    issue
}

const TAG_STEP: &str = "6f1c2a3b-4d5e-4f60-8a7b-9c0d1e2f3a41";

/// A workflow triggered by tag `hot-lead` being added, whose step adds that tag again.
fn retagging(allow_multiple: bool) -> Value {
    let mut v = flat(json!([
        {"id": TAG_STEP, "type": "add_contact_tag", "name": "Tag as hot lead",
            "attributes": {"tags": ["hot-lead"]}}
    ]));
    v["allowMultiple"] = json!(allow_multiple);
    v["triggers"] = json!([{"id": "trig-tag", "type": "contact_tag", "active": true, "conditions": [
        {"field": "tagsAdded", "operator": "index-of-true", "value": "hot-lead", "title": "Tag Added"}]}]);
    v
}

#[test]
fn self_retrigger_fires_on_a_tag_trigger_and_its_own_tag_critical_with_allow_multiple() {
    let r = report(&imported(&retagging(true)));
    let issue = finding(&r, "self-retrigger", TAG_STEP, "Tag as hot lead");
    assert_eq!(issue.severity, Severity::Critical);
    assert!(issue.message.contains("\"trig-tag\""), "{}", issue.message);
    assert!(issue
        .message
        .contains("loop through the workflow endlessly"));

    // Without re-entry it is the latent problem it is.
    let r = report(&imported(&retagging(false)));
    let issue = finding(&r, "self-retrigger", TAG_STEP, "Tag as hot lead");
    assert_eq!(issue.severity, Severity::Medium);
}

#[test]
fn sms_outside_time_window_follows_the_workflow_window_setting() {
    const SMS: &str = "0a9b8c7d-6e5f-4a3b-9c2d-1e0f9a8b7c61";
    let templates =
        json!([{"id": SMS, "type": "sms", "name": "Text the lead", "attributes": {"body": "Hi"}}]);
    let mut v = flat(templates);
    let with_window = report(&imported(&v));
    assert!(!rules(&with_window).contains(&"sms-outside-time-window"));

    v.as_object_mut().map(|o| o.remove("window"));
    let r = report(&imported(&v));
    finding(&r, "sms-outside-time-window", SMS, "Text the lead");

    // A window without an end is no window.
    v["window"] = json!({"condition": "when", "start": "08:00", "days": [1, 2, 3]});
    let r = report(&imported(&v));
    finding(&r, "sms-outside-time-window", SMS, "Text the lead");
}

#[test]
fn excessive_wait_fires_on_a_builder_delay_over_thirty_days() {
    const LONG: &str = "1d2e3f4a-5b6c-4d7e-8f90-a1b2c3d4e5f6";
    const MONTHS: &str = "2e3f4a5b-6c7d-4e8f-9a01-b2c3d4e5f6a7";
    let r = report(&imported(&flat(json!([
        {"id": LONG, "type": "wait", "name": "Wait 45 days",
            "attributes": {"type": "time", "startAfter": {"when": "after", "type": "days", "value": 45}}, "next": MONTHS},
        {"id": MONTHS, "type": "wait", "name": "Wait 2 months",
            "attributes": {"type": "time", "startAfter": {"when": "after", "type": "months", "value": 2}}, "next": "ok"},
        {"id": "ok", "type": "wait", "name": "Wait 30 days",
            "attributes": {"type": "time", "startAfter": {"type": "days", "value": 30}}}
    ]))));
    let issue = finding(&r, "excessive-wait", LONG, "Wait 45 days");
    assert!(issue.message.contains("45 days"), "{}", issue.message);
    let issue = finding(&r, "excessive-wait", MONTHS, "Wait 2 months");
    assert!(issue.message.contains("60 days"), "{}", issue.message);
    assert!(!r
        .issues
        .iter()
        .any(|i| i.rule == "excessive-wait" && i.step_ids == ["ok"]));
}

#[test]
fn a_link_clicked_wait_without_a_timeout_waits_forever() {
    const CLICK: &str = "3f4a5b6c-7d8e-4f90-a1b2-c3d4e5f6a7b8";
    let r = report(&imported(&flat(json!([
        {"id": CLICK, "type": "wait", "name": "Wait for booking click", "attributes": {"type": "link_clicked"}}
    ]))));
    let issue = finding(
        &r,
        "event-wait-without-timeout",
        CLICK,
        "Wait for booking click",
    );
    assert!(issue.message.contains("wait forever"), "{}", issue.message);
}

#[test]
fn broken_merge_fields_are_found_in_an_email_subject_and_in_its_html() {
    const SUBJECT: &str = "4a5b6c7d-8e9f-4a01-b2c3-d4e5f6a7b8c9";
    const HTML: &str = "5b6c7d8e-9f0a-4b12-c3d4-e5f6a7b8c9d0";
    let r = report(&imported(&flat(json!([
        {"id": SUBJECT, "type": "email", "name": "Welcome email",
            "attributes": {"subject": "Welcome {{contact.first_name}", "html": "<p>Hello</p>"}, "next": "w"},
        {"id": "w", "type": "wait", "attributes": {"type": "time", "startAfter": {"type": "days", "value": 1}}, "next": HTML},
        {"id": HTML, "type": "email", "name": "Follow-up email",
            "attributes": {"subject": "Checking in", "html": "<p>Hi {{contcat.first_name}}</p>"}}
    ]))));
    let issue = finding(&r, "invalid-merge-field", SUBJECT, "Welcome email");
    assert!(
        issue.message.contains("config.subject"),
        "{}",
        issue.message
    );
    assert!(!issue.message.contains("config.html"), "{}", issue.message);
    let issue = finding(&r, "invalid-merge-field", HTML, "Follow-up email");
    assert!(issue.message.contains("config.html"), "{}", issue.message);
    assert!(
        !issue.message.contains("config.subject"),
        "{}",
        issue.message
    );
}

#[test]
fn a_webhook_url_that_is_not_absolute_is_invalid() {
    const HOOK: &str = "6c7d8e9f-0a1b-4c23-d4e5-f6a7b8c9d0e1";
    let r = report(&imported(&flat(json!([
        {"id": HOOK, "type": "webhook", "name": "Send to CRM",
            "attributes": {"method": "POST", "url": "crm.example.com/hooks/lead"}}
    ]))));
    let issue = finding(&r, "webhook-invalid-url", HOOK, "Send to CRM");
    assert_eq!(issue.severity, Severity::Critical);
}

#[test]
fn a_secret_in_a_webhook_url_alone_and_one_in_a_body_alone_are_each_found() {
    const IN_URL: &str = "7d8e9f0a-1b2c-4d34-e5f6-a7b8c9d0e1f2";
    const IN_BODY: &str = "8e9f0a1b-2c3d-4e45-f6a7-b8c9d0e1f2a3";
    let r = report(&imported(&flat(json!([
        {"id": IN_URL, "type": "webhook", "name": "Ping billing",
            "attributes": {"method": "GET", "url": "https://billing.example.com/ping?api_key=9f8e7d6c5b4a3921"}, "next": IN_BODY},
        {"id": IN_BODY, "type": "webhook", "name": "Post lead",
            "attributes": {"method": "POST", "url": "https://crm.example.com/leads",
                "customData": [{"key": "email", "value": "{{contact.email}}"}, {"key": "password", "value": "hunter22x"}]}}
    ]))));
    let issue = finding(&r, "hardcoded-secret", IN_URL, "Ping billing");
    assert!(
        issue.message.contains("URL query parameter \"api_key\""),
        "{}",
        issue.message
    );
    assert!(!issue.message.contains("body"), "{}", issue.message);
    let issue = finding(&r, "hardcoded-secret", IN_BODY, "Post lead");
    assert!(issue.message.contains("body field"), "{}", issue.message);
    assert!(!issue.message.contains("URL"), "{}", issue.message);
}
