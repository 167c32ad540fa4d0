//! The ids the service accepts from outside, checked the way the database's constraints
//! check them (`migrations/`), so a bad id is a 4xx before it reaches Postgres.

/// A GoHighLevel location id: 1–64 letters, digits, `_` or `-`.
pub fn is_valid_location_id(id: &str) -> bool {
    (1..=64).contains(&id.len())
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-'))
}

/// A workflow id: 1–128 letters, digits, `_`, `-`, `.` or `:` (GoHighLevel's UUIDs and
/// our own ids alike).
pub fn is_valid_workflow_id(id: &str) -> bool {
    (1..=128).contains(&id.len())
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | ':'))
}
