//! What every layer needs to report a failure in a log line (no layer below the web layer
//! may import the web layer's error type for it).

/// `a: b: c` for an error and its sources, logged once at the boundary.
pub fn error_chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
