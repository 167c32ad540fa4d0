//! GoHighLevel webhook events, parsed from their JSON body.

use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::Value;

use crate::domain::plan::{Plan, SubscriptionStatus};
use crate::domain::workflow::FieldError;

/// Longest `id`, `type`, `locationId` and data string an event may carry (characters).
pub const MAX_FIELD_CHARS: usize = 200;

#[derive(Debug, Clone, PartialEq)]
pub struct WebhookEvent {
    pub id: String,
    pub type_name: String,
    pub location_id: String,
    /// When GoHighLevel says the event happened (the body's signed `timestamp`).
    pub timestamp: DateTime<Utc>,
    pub kind: EventKind,
}

/// Why an event was refused before anything was recorded.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum WebhookEventError {
    /// Missing, malformed, NUL-bearing or over-long fields (each named).
    #[error("invalid webhook event fields")]
    Fields(Vec<FieldError>),
    /// `timestamp` missing or not RFC 3339.
    #[error("timestamp is required: an RFC 3339 date-time, e.g. 2026-12-04T15:00:00Z")]
    MissingTimestamp,
    /// Signed too long ago or too far ahead: a replay of an old delivery, or a skewed clock.
    #[error("timestamp {timestamp} is {off_by_secs} s away from this server's clock; events are accepted within {tolerance_secs} s")]
    OutsideWindow {
        timestamp: String,
        off_by_secs: i64,
        tolerance_secs: u64,
    },
}

#[derive(Debug, Clone, PartialEq)]
pub enum EventKind {
    /// Created, updated or canceled; `plan: None` keeps the stored plan.
    Subscription {
        plan: Option<Plan>,
        status: SubscriptionStatus,
        current_period_end: Option<DateTime<Utc>>,
    },
    WorkflowUpdated {
        workflow_id: String,
    },
    WorkflowDeleted {
        workflow_id: String,
    },
    AppUninstall,
    /// Acknowledged and logged; changes nothing.
    Unknown,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawEvent {
    id: Option<String>,
    #[serde(rename = "type")]
    type_name: Option<String>,
    location_id: Option<String>,
    // Any JSON value, so a number or an object is reported as a bad timestamp, not a bad body.
    #[serde(default)]
    timestamp: Value,
    #[serde(default)]
    data: Value,
}

impl WebhookEvent {
    pub fn parse(body: &[u8]) -> Result<Self, WebhookEventError> {
        let raw: RawEvent = serde_json::from_slice(body).map_err(|e| {
            WebhookEventError::Fields(vec![FieldError::new(
                "body",
                format!("is not a webhook event: {e}"),
            )])
        })?;
        let mut errors = Vec::new();
        let id = required(raw.id, "id", &mut errors);
        let type_name = required(raw.type_name, "type", &mut errors);
        let location_id = required(raw.location_id, "locationId", &mut errors);
        let kind = if errors.is_empty() {
            parse_kind(&type_name, &raw.data, &mut errors)
        } else {
            EventKind::Unknown
        };
        if !errors.is_empty() {
            return Err(WebhookEventError::Fields(errors));
        }
        let timestamp = raw
            .timestamp
            .as_str()
            .and_then(|text| DateTime::parse_from_rfc3339(text.trim()).ok())
            .ok_or(WebhookEventError::MissingTimestamp)?
            .with_timezone(&Utc);
        Ok(Self {
            id,
            type_name,
            location_id,
            timestamp,
            kind,
        })
    }

    /// Refuses an event signed more than `tolerance` before or after `now`: a captured
    /// delivery cannot be replayed later (its signed timestamp cannot be changed), and the
    /// idempotency record of an id only needs to outlive that window.
    pub fn check_window(
        &self,
        now: DateTime<Utc>,
        tolerance: std::time::Duration,
    ) -> Result<(), WebhookEventError> {
        let off_by = now.signed_duration_since(self.timestamp);
        let tolerance_secs = tolerance.as_secs();
        let within = chrono::Duration::from_std(tolerance)
            .map(|tolerance| off_by.abs() <= tolerance)
            .unwrap_or(true);
        if within {
            Ok(())
        } else {
            Err(WebhookEventError::OutsideWindow {
                timestamp: self
                    .timestamp
                    .to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                off_by_secs: off_by.num_seconds(),
                tolerance_secs,
            })
        }
    }
}

/// A trimmed, non-empty string Postgres can store (`text` refuses NUL) within the bound.
fn required(value: Option<String>, field: &str, errors: &mut Vec<FieldError>) -> String {
    match value.map(|v| v.trim().to_owned()) {
        Some(value) if value.is_empty() => {
            errors.push(FieldError::new(field, "is required (1-200 characters)"));
            String::new()
        }
        Some(value) => match text_problem(&value) {
            Some(problem) => {
                errors.push(FieldError::new(field, problem));
                String::new()
            }
            None => value,
        },
        None => {
            errors.push(FieldError::new(field, "is required (1-200 characters)"));
            String::new()
        }
    }
}

/// What is wrong with a string the service would store or query with, if anything.
fn text_problem(value: &str) -> Option<&'static str> {
    if value.chars().count() > MAX_FIELD_CHARS {
        Some("must be at most 200 characters")
    } else if value.chars().any(char::is_control) {
        Some("must not contain control characters (NUL, line breaks, …)")
    } else {
        None
    }
}

fn parse_kind(type_name: &str, data: &Value, errors: &mut Vec<FieldError>) -> EventKind {
    match type_name {
        "SubscriptionCreated" | "SubscriptionUpdated" => subscription(data, false, errors),
        "SubscriptionCanceled" => subscription(data, true, errors),
        "WorkflowUpdated" => EventKind::WorkflowUpdated {
            workflow_id: workflow_id(data, errors),
        },
        "WorkflowDeleted" => EventKind::WorkflowDeleted {
            workflow_id: workflow_id(data, errors),
        },
        "AppUninstall" => EventKind::AppUninstall,
        _ => EventKind::Unknown,
    }
}

fn subscription(data: &Value, canceled: bool, errors: &mut Vec<FieldError>) -> EventKind {
    let text = |field: &str| data.get(field).and_then(Value::as_str);
    for field in ["plan", "status", "currentPeriodEnd"] {
        if let Some(problem) = text(field).and_then(text_problem) {
            errors.push(FieldError::new(format!("data.{field}"), problem));
            return EventKind::Unknown;
        }
    }
    let plan = match text("plan") {
        Some(plan) => Plan::parse(plan).or_else(|| {
            errors.push(FieldError::new(
                "data.plan",
                "must be free, starter, pro or agency",
            ));
            None
        }),
        None if canceled => None,
        None => {
            errors.push(FieldError::new("data.plan", "is required"));
            None
        }
    };
    let status = if canceled {
        SubscriptionStatus::Canceled
    } else {
        match text("status") {
            None => SubscriptionStatus::Active,
            Some(status) => SubscriptionStatus::parse(status).unwrap_or_else(|| {
                errors.push(FieldError::new(
                    "data.status",
                    "must be active, trialing, past_due or canceled",
                ));
                SubscriptionStatus::Active
            }),
        }
    };
    let current_period_end = match text("currentPeriodEnd") {
        None => None,
        Some(date) => match DateTime::parse_from_rfc3339(date) {
            Ok(date) => Some(date.with_timezone(&Utc)),
            Err(_) => {
                errors.push(FieldError::new(
                    "data.currentPeriodEnd",
                    "must be an RFC 3339 date",
                ));
                None
            }
        },
    };
    EventKind::Subscription {
        plan,
        status,
        current_period_end,
    }
}

fn workflow_id(data: &Value, errors: &mut Vec<FieldError>) -> String {
    match data.get("workflowId").and_then(Value::as_str) {
        Some(id) if !id.is_empty() => match text_problem(id) {
            Some(problem) => {
                errors.push(FieldError::new("data.workflowId", problem));
                String::new()
            }
            None => id.to_owned(),
        },
        _ => {
            errors.push(FieldError::new("data.workflowId", "is required"));
            String::new()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn fields(error: WebhookEventError) -> Vec<FieldError> {
        match error {
            WebhookEventError::Fields(errors) => errors,
            other => panic!("expected field errors, got {other:?}"),
        }
    }

    #[test]
    fn subscription_events_parse_plan_status_and_period() {
        let body = br#"{"id":"evt_1","type":"SubscriptionUpdated","locationId":"loc1","timestamp":"2026-12-04T10:00:00Z",
            "data":{"plan":"pro","status":"trialing","currentPeriodEnd":"2027-01-01T00:00:00Z"}}"#;
        let event = WebhookEvent::parse(body).unwrap();
        assert_eq!(
            event.kind,
            EventKind::Subscription {
                plan: Some(Plan::Pro),
                status: SubscriptionStatus::Trialing,
                current_period_end: Some("2027-01-01T00:00:00Z".parse().unwrap()),
            }
        );
        assert_eq!(
            event.timestamp,
            "2026-12-04T10:00:00Z".parse::<DateTime<Utc>>().unwrap()
        );
    }

    #[test]
    fn unknown_types_are_kept_as_unknown() {
        let body = br#"{"id":"evt_2","type":"ContactCreated","locationId":"loc1","timestamp":"2026-12-04T10:00:00+01:00","data":{}}"#;
        assert_eq!(WebhookEvent::parse(body).unwrap().kind, EventKind::Unknown);
    }

    #[test]
    fn missing_fields_are_all_reported() {
        let errors = fields(WebhookEvent::parse(br#"{"data":{}}"#).unwrap_err());
        let names: Vec<_> = errors.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(names, ["id", "type", "locationId"]);
        let bad_plan = br#"{"id":"e","type":"SubscriptionCreated","locationId":"l","timestamp":"2026-12-04T10:00:00Z","data":{"plan":"gold"}}"#;
        assert_eq!(
            fields(WebhookEvent::parse(bad_plan).unwrap_err())[0].field,
            "data.plan"
        );
    }

    #[test]
    fn nul_and_over_long_strings_are_named_fields() {
        let long = "x".repeat(MAX_FIELD_CHARS + 1);
        let cases = [
            (
                serde_json::json!({"id": "e\u{0}", "type": "T", "locationId": "l"}),
                "id",
            ),
            (
                serde_json::json!({"id": "e", "type": long, "locationId": "l"}),
                "type",
            ),
            (
                serde_json::json!({"id": "e", "type": "T", "locationId": "l\u{0}x"}),
                "locationId",
            ),
            (
                serde_json::json!({"id": "e", "type": "WorkflowDeleted", "locationId": "l", "data": {"workflowId": "w\u{0}"}}),
                "data.workflowId",
            ),
            (
                serde_json::json!({"id": "e", "type": "SubscriptionUpdated", "locationId": "l", "data": {"plan": "pro", "currentPeriodEnd": long}}),
                "data.currentPeriodEnd",
            ),
        ];
        for (mut body, field) in cases {
            body["timestamp"] = "2026-12-04T10:00:00Z".into();
            let raw = serde_json::to_vec(&body).unwrap();
            let errors = fields(WebhookEvent::parse(&raw).unwrap_err());
            assert_eq!(errors[0].field, field, "{body}");
        }
        let exact = serde_json::json!({"id": "x".repeat(MAX_FIELD_CHARS), "type": "T", "locationId": "l", "timestamp": "2026-12-04T10:00:00Z"});
        assert!(WebhookEvent::parse(&serde_json::to_vec(&exact).unwrap()).is_ok());
    }

    #[test]
    fn the_timestamp_is_required_and_checked_against_the_window() {
        for timestamp in [serde_json::Value::Null, 5.into(), "yesterday".into()] {
            let body = serde_json::json!({"id": "e", "type": "T", "locationId": "l", "timestamp": timestamp});
            assert_eq!(
                WebhookEvent::parse(&serde_json::to_vec(&body).unwrap()).unwrap_err(),
                WebhookEventError::MissingTimestamp
            );
        }
        let event = WebhookEvent::parse(
            br#"{"id":"e","type":"T","locationId":"l","timestamp":"2026-12-04T10:00:00Z"}"#,
        )
        .unwrap();
        let at = |text: &str| text.parse::<DateTime<Utc>>().unwrap();
        let window = Duration::from_secs(300);
        assert!(event
            .check_window(at("2026-12-04T10:05:00Z"), window)
            .is_ok());
        assert!(event
            .check_window(at("2026-12-04T09:55:00Z"), window)
            .is_ok());
        let late = event
            .check_window(at("2026-12-04T10:05:01Z"), window)
            .unwrap_err();
        assert!(matches!(
            late,
            WebhookEventError::OutsideWindow {
                off_by_secs: 301,
                ..
            }
        ));
        let early = event
            .check_window(at("2026-12-04T09:54:59Z"), window)
            .unwrap_err();
        assert!(matches!(
            early,
            WebhookEventError::OutsideWindow {
                off_by_secs: -301,
                ..
            }
        ));
        assert!(early.to_string().contains("within 300 s"), "{early}");
    }
}
