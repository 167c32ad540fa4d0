//! GoHighLevel webhook events, parsed from their JSON body.

use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::Value;

use crate::domain::plan::{Plan, SubscriptionStatus};
use crate::domain::workflow::FieldError;

#[derive(Debug, Clone, PartialEq)]
pub struct WebhookEvent {
    pub id: String,
    pub type_name: String,
    pub location_id: String,
    pub kind: EventKind,
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
    #[serde(default)]
    data: Value,
}

impl WebhookEvent {
    pub fn parse(body: &[u8]) -> Result<Self, Vec<FieldError>> {
        let raw: RawEvent = serde_json::from_slice(body).map_err(|e| {
            vec![FieldError::new(
                "body",
                format!("is not a webhook event: {e}"),
            )]
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
        if errors.is_empty() {
            Ok(Self {
                id,
                type_name,
                location_id,
                kind,
            })
        } else {
            Err(errors)
        }
    }
}

fn required(value: Option<String>, field: &str, errors: &mut Vec<FieldError>) -> String {
    match value
        .map(|v| v.trim().to_owned())
        .filter(|v| !v.is_empty() && v.len() <= 200)
    {
        Some(value) => value,
        None => {
            errors.push(FieldError::new(field, "is required (1-200 characters)"));
            String::new()
        }
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
        Some(id) if !id.is_empty() => id.to_owned(),
        _ => {
            errors.push(FieldError::new("data.workflowId", "is required"));
            String::new()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subscription_events_parse_plan_status_and_period() {
        let body = br#"{"id":"evt_1","type":"SubscriptionUpdated","locationId":"loc1",
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
    }

    #[test]
    fn unknown_types_are_kept_as_unknown() {
        let body = br#"{"id":"evt_2","type":"ContactCreated","locationId":"loc1","data":{}}"#;
        assert_eq!(WebhookEvent::parse(body).unwrap().kind, EventKind::Unknown);
    }

    #[test]
    fn missing_fields_are_all_reported() {
        let errors = WebhookEvent::parse(br#"{"data":{}}"#).unwrap_err();
        let fields: Vec<_> = errors.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(fields, ["id", "type", "locationId"]);
        let bad_plan =
            br#"{"id":"e","type":"SubscriptionCreated","locationId":"l","data":{"plan":"gold"}}"#;
        assert_eq!(
            WebhookEvent::parse(bad_plan).unwrap_err()[0].field,
            "data.plan"
        );
    }
}
