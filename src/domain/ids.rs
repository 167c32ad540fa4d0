//! The ids the service accepts from outside, checked the way the database's constraints
//! check them (`migrations/`), so a bad id is a 4xx before it reaches Postgres.

/// A GoHighLevel location id: 1–64 letters, digits, `_` or `-`.
pub fn is_valid_location_id(id: &str) -> bool {
    (1..=64).contains(&id.len())
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-'))
}

/// Ids that are the last segment of a fixed route under `/api/workflows/` (`POST
/// /api/workflows/import`): `/api/workflows/{id}` cannot reach a workflow stored under one,
/// so none is stored (PUT of such an id is that route's 405; the import refuses it).
pub const RESERVED_WORKFLOW_IDS: &[&str] = &["import"];

/// A workflow id: 1–128 letters, digits, `_`, `-`, `.` or `:` (GoHighLevel's UUIDs and
/// our own ids alike).
pub fn is_valid_workflow_id(id: &str) -> bool {
    (1..=128).contains(&id.len())
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | ':'))
}

/// [`is_valid_workflow_id`] as an ECMA-262 pattern (OpenAPI's `{id}` parameter).
pub const WORKFLOW_ID_PATTERN: &str = "^[A-Za-z0-9_.:-]{1,128}$";

/// [`is_valid_location_id`] as an ECMA-262 pattern.
pub const LOCATION_ID_PATTERN: &str = "^[A-Za-z0-9_-]{1,64}$";

#[cfg(test)]
mod tests {
    use super::*;

    fn matches(pattern: &str, text: &str) -> bool {
        let schema = serde_json::json!({ "type": "string", "pattern": pattern });
        jsonschema::is_valid(&schema, &serde_json::json!(text))
    }

    #[test]
    fn the_patterns_accept_exactly_the_valid_ids() {
        let long = "a".repeat(129);
        let samples = [
            "",
            "a",
            "wf-1",
            "a.b:c_d",
            "a b",
            "é",
            "a/b",
            "x\n",
            "%",
            &long[..64],
            &long[..65],
            &long[..128],
            &long,
        ];
        for id in samples {
            assert_eq!(
                matches(WORKFLOW_ID_PATTERN, id),
                is_valid_workflow_id(id),
                "{id:?}"
            );
            assert_eq!(
                matches(LOCATION_ID_PATTERN, id),
                is_valid_location_id(id),
                "{id:?}"
            );
        }
    }
}
