//! Reading just what the analysis service needs out of cached JSON, without parsing the
//! rest: a stored workflow's top-level `version`, and whether a report names a workflow.

/// Whether the serialized `json` holds `id` as a JSON string anywhere (as serde_json writes it).
pub(super) fn mentions(json: &[u8], id: &str) -> Result<bool, serde_json::Error> {
    let needle = serde_json::to_vec(id)?;
    Ok(memchr::memmem::find(json, &needle).is_some())
}

/// The top-level `"version"` of a serialized workflow, found without parsing the rest: it
/// comes before the definition, which is most of the bytes. `None` when the bytes are not an
/// object holding an integer `version` as expected; the caller then parses them.
pub(super) fn scan_version(json: &[u8]) -> Option<i64> {
    let mut i = skip_ws(json, 0);
    if *json.get(i)? != b'{' {
        return None;
    }
    i += 1;
    loop {
        i = skip_ws(json, i);
        let key_end = skip_string(json, i)?;
        let key = json.get(i..key_end)?;
        i = skip_ws(json, key_end);
        if *json.get(i)? != b':' {
            return None;
        }
        i = skip_ws(json, i + 1);
        if key == b"\"version\"" {
            let digits = json.get(i..)?;
            let end = digits
                .iter()
                .position(|b| !(b.is_ascii_digit() || *b == b'-'))
                .unwrap_or(digits.len());
            // An integer, ended by a delimiter (not `1.5`, not `1e3`).
            if digits
                .get(end)
                .is_some_and(|b| !matches!(b, b',' | b'}') && !b.is_ascii_whitespace())
            {
                return None;
            }
            return std::str::from_utf8(digits.get(..end)?).ok()?.parse().ok();
        }
        i = skip_ws(json, skip_value(json, i)?);
        if *json.get(i)? != b',' {
            return None;
        }
        i += 1;
    }
}

fn skip_ws(json: &[u8], mut i: usize) -> usize {
    while json.get(i).is_some_and(u8::is_ascii_whitespace) {
        i += 1;
    }
    i
}

/// The index after the string starting at `i`.
fn skip_string(json: &[u8], i: usize) -> Option<usize> {
    if *json.get(i)? != b'"' {
        return None;
    }
    let mut j = i + 1;
    loop {
        match *json.get(j)? {
            b'\\' => j += 2,
            b'"' => return Some(j + 1),
            _ => j += 1,
        }
    }
}

/// The index after the value starting at `i`.
fn skip_value(json: &[u8], i: usize) -> Option<usize> {
    match *json.get(i)? {
        b'"' => skip_string(json, i),
        b'{' | b'[' => {
            let (mut depth, mut j) = (0usize, i);
            loop {
                match *json.get(j)? {
                    b'"' => {
                        j = skip_string(json, j)?;
                        continue;
                    }
                    b'{' | b'[' => depth += 1,
                    b'}' | b']' => {
                        depth -= 1;
                        if depth == 0 {
                            return Some(j + 1);
                        }
                    }
                    _ => {}
                }
                j += 1;
            }
        }
        _ => {
            let rest = json.get(i..)?;
            let end = rest
                .iter()
                .position(|b| matches!(b, b',' | b'}' | b']') || b.is_ascii_whitespace())
                .unwrap_or(rest.len());
            Some(i + end)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::repository::StoredWorkflow;
    use chrono::Utc;

    #[derive(serde::Deserialize)]
    struct WorkflowHead {
        version: i64,
    }

    fn parsed(json: &[u8]) -> Option<i64> {
        serde_json::from_slice::<WorkflowHead>(json)
            .ok()
            .map(|head| head.version)
    }

    #[test]
    fn scan_version_agrees_with_serde_on_stored_workflows() {
        let stored = StoredWorkflow {
            id: "wf-\"1\\".to_owned(),
            name: "a \"version\": 9, name".to_owned(),
            status: "published".to_owned(),
            version: 42,
            step_count: 1,
            trigger_count: 1,
            created_at: Utc::now(),
            updated_at: Utc::now(),
            source_version: Some(5),
            source_format: Some("ghl".to_owned()),
            definition: serde_json::json!({"version": 7, "steps": [{"id": "s1"}]}),
        };
        let json = serde_json::to_vec(&stored).expect("serializes");
        assert_eq!(scan_version(&json), Some(42));
        assert_eq!(scan_version(&json), parsed(&json));
    }

    #[test]
    fn scan_version_skips_nested_values_and_odd_spacing() {
        let json = br#" { "a" : {"version": 1, "b": ["}", "\"", {"c": []}]} , "n": null, "t": true,
            "x": -1.5e3, "version" : 3 } "#;
        assert_eq!(scan_version(json), Some(3));
        assert_eq!(scan_version(json), parsed(json));
    }

    #[test]
    fn scan_version_gives_up_rather_than_guess() {
        for json in [
            &b"{}"[..],
            b"[]",
            b"",
            b"{\"a\": {\"version\": 1}}",
            b"{\"version\": 1.5}",
            b"{\"version\": \"1\"}",
            b"{\"a\": \"unterminated",
            b"{\"a\": [1, 2",
        ] {
            assert_eq!(
                scan_version(json),
                None,
                "{}",
                String::from_utf8_lossy(json)
            );
        }
    }

    #[test]
    fn mentions_matches_the_serialized_id_only() {
        let report = br#"{"issues":[{"workflowIds":["wf-1","wf-\"q"]}]}"#;
        assert!(mentions(report, "wf-1").expect("serializes"));
        assert!(mentions(report, "wf-\"q").expect("serializes"));
        assert!(!mentions(report, "wf-").expect("serializes"));
        assert!(!mentions(report, "wf-2").expect("serializes"));
    }
}
