//! Each kind of GoHighLevel wait (`attributes.type`) is read as what it is: a delay, a
//! wait that ends on its own at a worked-out time, or a wait for an event.

use super::*;

/// A one-wait workflow whose wait has these attributes, then an SMS.
fn wait_doc(attributes: Value) -> Value {
    flat(json!([
        {"id": "w", "type": "wait", "name": "Hold", "attributes": attributes, "next": "s"},
        {"id": "s", "type": "sms", "attributes": {"body": "Hi"}}
    ]))
}

const WAIT_RULES: [&str; 4] = [
    "event-wait-without-timeout",
    "missing-required-field",
    "wait-until-past",
    "excessive-wait",
];

fn wait_findings(r: &AnalysisReport) -> Vec<&str> {
    rules(r)
        .into_iter()
        .filter(|rule| WAIT_RULES.contains(rule))
        .collect()
}

#[test]
fn date_schedule_and_appointment_waits_end_on_their_own_and_are_not_event_waits() {
    for kind in [
        "specific_date",
        "recurring_schedule",
        "appointment",
        "Specific-Date",
    ] {
        let w = imported(&wait_doc(json!({"type": kind})));
        let c = &step(&w, "w").config;
        assert_eq!(step(&w, "w").step_type, StepType::Wait, "{kind}");
        assert!(
            c["schedule"].as_str().is_some_and(|s| !s.is_empty()),
            "{kind}: {c:?}"
        );
        for key in ["event", "duration", "until", "timeout"] {
            assert!(!c.contains_key(key), "{kind}: {key} in {c:?}");
        }
        assert!(w.notes.is_empty(), "{kind}: {:?}", w.notes);
        // Ends on its own (no "waits forever"), is complete, and its date is not read: no
        // finding about the wait at all.
        let r = report(&w);
        assert_eq!(wait_findings(&r), Vec::<&str>::new(), "{kind}");
    }
}

#[test]
fn a_specific_date_wait_keeps_its_attributes_but_no_date_is_read_from_them() {
    // FORMAT.md names no date field: whatever the builder stores stays in the config
    // verbatim, and `wait-until-past` (which reads `until`) is not fed a guess.
    let w = imported(&wait_doc(
        json!({"type": "specific_date", "date": "2020-01-01T00:00:00Z"}),
    ));
    let c = &step(&w, "w").config;
    assert_eq!(c["date"], "2020-01-01T00:00:00Z");
    assert!(!c.contains_key("until"));
    assert!(!rules(&report(&w)).contains(&"wait-until-past"));
}

#[test]
fn link_clicked_and_condition_waits_are_event_waits_reported_without_a_timeout() {
    for kind in ["link_clicked", "condition"] {
        let w = imported(&wait_doc(json!({"type": kind})));
        assert_eq!(step(&w, "w").config["event"], kind);
        assert!(w.notes.is_empty(), "{kind}: {:?}", w.notes);
        let r = report(&w);
        assert_eq!(
            wait_findings(&r),
            vec!["event-wait-without-timeout"],
            "{kind}"
        );

        let w = imported(&wait_doc(
            json!({"type": kind, "timeout": {"type": "days", "value": 3}}),
        ));
        assert_eq!(step(&w, "w").config["timeout"], "3d");
        assert_eq!(wait_findings(&report(&w)), Vec::<&str>::new(), "{kind}");
    }
}

#[test]
fn an_unknown_kind_of_wait_is_noted_and_judged_as_an_event_wait() {
    let w = imported(&wait_doc(json!({"type": "email_opened"})));
    assert_eq!(step(&w, "w").config["event"], "email_opened");
    assert!(
        w.notes
            .iter()
            .any(|n| n.path == "templates[0].attributes.type"
                && n.message
                    .contains("\"email_opened\" is not a known kind of wait")),
        "{:?}",
        w.notes
    );
    assert_eq!(
        wait_findings(&report(&w)),
        vec!["event-wait-without-timeout"]
    );
}

#[test]
fn a_wait_without_a_kind_is_a_time_delay() {
    for attributes in [
        json!({"startAfter": {"type": "hours", "value": 1}}),
        json!({"type": "", "startAfter": {"type": "hours", "value": 1}}),
        json!({"type": 5, "startAfter": {"type": "hours", "value": 1}}),
    ] {
        let w = imported(&wait_doc(attributes.clone()));
        assert_eq!(step(&w, "w").config["duration"], "1h", "{attributes}");
        assert!(!step(&w, "w").config.contains_key("event"));
        assert_eq!(wait_findings(&report(&w)), Vec::<&str>::new());
    }
}
