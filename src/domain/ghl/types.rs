//! GoHighLevel type names: which of our step and trigger types each one maps to, and which
//! GoHighLevel types are known but have no counterpart in our model.
//!
//! A known type without a counterpart is kept under its GoHighLevel name (an `Unknown(..)`
//! step or trigger type) and is *not* reported by `unknown-step-type`/`unknown-trigger-type`:
//! those rules exist to catch typos and types nobody knows, not the builder's own actions.

use crate::domain::workflow::{normalize_type_name, StepType, TriggerType};

/// The step type the importer gives an if/else branch node (`branch-yes`/`branch-no`): a
/// pass-through whose `next` starts the branch. Not a GoHighLevel type name (the builder
/// calls both nodes `if_else`), so it cannot be confused with one.
pub const IF_ELSE_BRANCH: &str = "if_else_branch";
/// Multi-path paths (`cat: "transition"`): pass-throughs like branch nodes.
pub const TRANSITION: &str = "transition";
/// `remove_from_workflow` with `allWorkflows: true`, and the builder's own action of that name.
pub const REMOVE_FROM_ALL_WORKFLOWS: &str = "remove_from_all_workflows";
/// A/B split whose weights the importer could not read (kept unjudged rather than reported
/// as a split without percentages).
pub const WORKFLOW_SPLIT: &str = "workflow_split";

/// GoHighLevel step types that are kept under their own name (no analyzer semantics).
const OPAQUE_STEP_TYPES: &[&str] = &[
    IF_ELSE_BRANCH,
    TRANSITION,
    REMOVE_FROM_ALL_WORKFLOWS,
    WORKFLOW_SPLIT,
    "math_operation",
    "task_notification",
    "google_sheets",
    "find_opportunity",
    "remove_opportunity",
    "add_notes",
    "update_appointment_status",
    "facebook_conversion_api",
    "ivr_say",
    "dnd_contact",
    "create_update_contact",
    "manual_call",
    "ivr_collect_voicemail",
    "ivr_connect_call",
    "ivr_gather",
    "ivr_hangup",
    "event_start_date",
    "call",
    "remove_assigned_user",
    "chatgpt",
    "voicemail",
    "messenger",
    "gmb",
    "slack_message",
    "review_request",
    "update_custom_value",
    "edit_conversation",
    "datetime_formatter",
    "number_formatter",
    "text_formatter",
    "array_functions",
    "membership_grant_offer",
    "membership_revoke_offer",
];

/// GoHighLevel trigger types kept under their own name (no counterpart in our model).
const OPAQUE_TRIGGER_TYPES: &[&str] = &[
    "call_status",
    "opportunity_created",
    "mailgun_email_event",
    "validation_error",
    "messaging_errors",
    "survey_submission",
    "trigger_link",
    "dnd_contact",
    "contact_dnd",
    "ivr_incoming_call",
    "two_step_form_submission",
    "order_submission",
    "offer_access_granted",
    "product_access_granted",
    "subscription",
    "invoice_paid",
    "note_added",
    "task_added",
    "facebook_lead_form_submitted",
    "tik_tok_form_submitted",
    "lesson_started",
    "lesson_completed",
    "user_log_in",
    "stale_lead",
    "manual",
];

/// Whether `raw` is a GoHighLevel step type the analyzer keeps as it is (see module docs).
pub fn is_known_step_type(raw: &str) -> bool {
    OPAQUE_STEP_TYPES.contains(&normalize_type_name(raw).as_ref())
}

/// Whether `raw` is a GoHighLevel trigger type the analyzer keeps as it is.
pub fn is_known_trigger_type(raw: &str) -> bool {
    OPAQUE_TRIGGER_TYPES.contains(&normalize_type_name(raw).as_ref())
}

/// Our step type for a GoHighLevel action type (if/else nodes, splits and
/// `remove_from_workflow` are refined by the step mapper, which sees their attributes).
pub fn step_type(ghl: &str) -> StepType {
    let ours = match normalize_type_name(ghl).as_ref() {
        "sms" => "send_sms",
        "email" => "send_email",
        "add_contact_tag" => "add_tag",
        "remove_contact_tag" => "remove_tag",
        "custom_webhook" => "webhook",
        "internal_create_opportunity" => "create_opportunity",
        "internal_update_opportunity" => "update_opportunity",
        "workflow_goal" => "goal_event",
        // Would read as our `split` (which needs percentages) or `end`: kept by name.
        "workflow_split" | "split" | "end" => return StepType::Unknown(ghl.to_string()),
        _ => ghl,
    };
    StepType::parse(ours)
}

/// Our trigger type for a GoHighLevel trigger type (`contact_tag` is refined by its
/// conditions: tags added or removed).
pub fn trigger_type(ghl: &str) -> TriggerType {
    let ours = match normalize_type_name(ghl).as_ref() {
        "contact_tag" => "contact_tag_added",
        "form_submission" => "form_submitted",
        "appointment" | "customer_appointment" => "appointment_status",
        "pipeline_stage_updated" => "pipeline_stage_changed",
        "opportunity_changed" => "opportunity_status_changed",
        "customer_reply" => "customer_replied",
        _ => ghl,
    };
    TriggerType::parse(ours)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builder_types_map_to_ours_and_the_rest_are_kept_by_name() {
        assert_eq!(step_type("sms"), StepType::SendSms);
        assert_eq!(step_type("email"), StepType::SendEmail);
        assert_eq!(step_type("add_contact_tag"), StepType::AddTag);
        assert_eq!(step_type("workflow_goal"), StepType::GoalEvent);
        assert_eq!(
            step_type("math_operation"),
            StepType::Unknown("math_operation".into())
        );
        assert_eq!(
            step_type("workflow_split"),
            StepType::Unknown("workflow_split".into())
        );
        assert!(is_known_step_type("task-notification"));
        assert!(is_known_step_type(IF_ELSE_BRANCH));
        assert!(!is_known_step_type("teleport"));
        assert_eq!(trigger_type("contact_tag"), TriggerType::ContactTagAdded);
        assert_eq!(trigger_type("form_submission"), TriggerType::FormSubmitted);
        assert!(trigger_type("call_status").is_unknown());
        assert!(is_known_trigger_type("call_status"));
        assert!(!is_known_trigger_type("moon_phase"));
    }
}
