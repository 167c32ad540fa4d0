//! Helpers shared by several rules: config access, durations, URLs, merge fields, secrets.

use serde_json::{Map, Value};
use std::net::{Ipv4Addr, Ipv6Addr};
use url::{Host, Url};

/// The first of `keys` holding a non-null value that is not a blank string.
pub fn get_present<'a>(config: &'a Map<String, Value>, keys: &[&str]) -> Option<&'a Value> {
    keys.iter().find_map(|k| match config.get(*k) {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) if s.trim().is_empty() => None,
        Some(v) => Some(v),
    })
}

pub fn get_str<'a>(config: &'a Map<String, Value>, keys: &[&str]) -> Option<&'a str> {
    get_present(config, keys).and_then(Value::as_str)
}

/// Seconds of a duration: `"30s"`, `"15m"`, `"2h"`, `"3d"`, `"1w"`, combinations such as
/// `"1d 2h"`, or a bare number (JSON number or numeric string) meaning seconds.
/// Units may be spelled out (`"2 hours"`, `"3 days"`). `None` when unparseable.
pub fn parse_duration(value: &Value) -> Option<u64> {
    match value {
        Value::Number(n) => n.as_u64(),
        Value::String(s) => parse_duration_str(s),
        _ => None,
    }
}

fn parse_duration_str(s: &str) -> Option<u64> {
    let s = s.trim().to_ascii_lowercase();
    if s.is_empty() {
        return None;
    }
    if let Ok(n) = s.parse::<u64>() {
        return Some(n);
    }
    let mut total: u64 = 0;
    let mut rest = s.as_str();
    let mut any = false;
    while !rest.is_empty() {
        rest = rest.trim_start_matches([' ', ',']);
        if rest.is_empty() {
            break;
        }
        let digits = rest
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(rest.len());
        if digits == 0 {
            return None;
        }
        let n: u64 = rest[..digits].parse().ok()?;
        rest = rest[digits..].trim_start();
        let unit_len = rest
            .find(|c: char| !c.is_ascii_alphabetic())
            .unwrap_or(rest.len());
        let unit = &rest[..unit_len];
        rest = &rest[unit_len..];
        let mult: u64 = match unit {
            "s" | "sec" | "secs" | "second" | "seconds" => 1,
            "m" | "min" | "mins" | "minute" | "minutes" => 60,
            "h" | "hr" | "hrs" | "hour" | "hours" => 3_600,
            "d" | "day" | "days" => 86_400,
            "w" | "week" | "weeks" => 604_800,
            _ => return None,
        };
        total = total.saturating_add(n.saturating_mul(mult));
        any = true;
    }
    any.then_some(total)
}

/// Parses `until`: RFC 3339, or `YYYY-MM-DDTHH:MM:SS` / `YYYY-MM-DD` read as UTC.
pub fn parse_until(s: &str) -> Option<chrono::DateTime<chrono::Utc>> {
    use chrono::{NaiveDate, NaiveDateTime, TimeZone, Utc};
    let s = s.trim();
    if let Ok(d) = chrono::DateTime::parse_from_rfc3339(s) {
        return Some(d.with_timezone(&Utc));
    }
    if let Ok(d) = NaiveDateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S") {
        return Some(Utc.from_utc_datetime(&d));
    }
    NaiveDate::parse_from_str(s, "%Y-%m-%d")
        .ok()
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .map(|d| Utc.from_utc_datetime(&d))
}

/// Result of looking at a webhook URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UrlCheck {
    /// Built entirely from a merge field (`{{custom_values.hook}}`): cannot be judged.
    Dynamic,
    Invalid(String),
    Ok {
        url: Url,
        private: bool,
        insecure: bool,
    },
}

/// Parses a webhook URL. Merge fields inside it are replaced by a neutral placeholder first,
/// so `https://api.example.com/{{contact.id}}` is judged by its fixed parts.
pub fn check_url(raw: &str) -> UrlCheck {
    let trimmed = raw.trim();
    if trimmed.starts_with("{{") {
        return UrlCheck::Dynamic;
    }
    let replaced = replace_merge_fields(trimmed, "mergefield");
    let url = match Url::parse(&replaced) {
        Ok(u) => u,
        Err(e) => return UrlCheck::Invalid(e.to_string()),
    };
    if url.scheme() != "http" && url.scheme() != "https" {
        return UrlCheck::Invalid(format!("scheme \"{}\" is not http or https", url.scheme()));
    }
    let Some(host) = url.host() else {
        return UrlCheck::Invalid("no host".into());
    };
    let private = is_private_host(&host);
    let insecure = url.scheme() == "http";
    UrlCheck::Ok {
        url,
        private,
        insecure,
    }
}

fn replace_merge_fields(s: &str, placeholder: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(open) = rest.find("{{") {
        let Some(close) = rest[open..].find("}}") else {
            break;
        };
        out.push_str(&rest[..open]);
        out.push_str(placeholder);
        rest = &rest[open + close + 2..];
    }
    out.push_str(rest);
    out
}

pub fn is_private_v4(ip: Ipv4Addr) -> bool {
    let [a, b, ..] = ip.octets();
    a == 127
        || a == 10
        || a == 0
        || (a == 172 && (16..=31).contains(&b))
        || (a == 192 && b == 168)
        || (a == 169 && b == 254)
}

pub fn is_private_v6(ip: Ipv6Addr) -> bool {
    if let Some(v4) = ip.to_ipv4_mapped() {
        return is_private_v4(v4);
    }
    let first = ip.segments()[0];
    ip.is_loopback()
        || ip.is_unspecified()
        || (first & 0xfe00) == 0xfc00 // unique local fc00::/7
        || (first & 0xffc0) == 0xfe80 // link local fe80::/10
}

pub fn is_private_host(host: &Host<&str>) -> bool {
    match host {
        Host::Ipv4(ip) => is_private_v4(*ip),
        Host::Ipv6(ip) => is_private_v6(*ip),
        Host::Domain(d) => {
            let d = d.trim_end_matches('.').to_ascii_lowercase();
            d == "localhost"
                || d.ends_with(".localhost")
                || d.ends_with(".local")
                || d.ends_with(".internal")
        }
    }
}

#[derive(Clone, Copy)]
enum Seg<'a> {
    Key(&'a str),
    Idx(usize),
}

enum Frame<'a> {
    Enter(Seg<'a>, &'a Value),
    Exit,
}

/// Calls `f(text, key, path)` for every string inside `root` (iteratively, so deep nesting
/// is safe). `key` is the object key holding the string (None inside arrays); `path()`
/// renders its JSON path below `base` (e.g. `config.body.auth.password`) only when asked,
/// so the walk allocates nothing for strings that are not reported.
pub fn visit_strings<'a>(
    root: &'a Map<String, Value>,
    base: &str,
    mut f: impl FnMut(&'a str, Option<&'a str>, &dyn Fn() -> String),
) {
    // Fast path: top-level strings need no stack (most configs are flat).
    let mut has_nested = false;
    for (k, v) in root {
        match v {
            Value::String(text) => f(text, Some(k), &|| format!("{base}.{k}")),
            Value::Array(_) | Value::Object(_) => has_nested = true,
            _ => {}
        }
    }
    if !has_nested {
        return;
    }
    // Then each container in key order, depth first (the order one walk over all of them
    // takes). One holding only scalars (a tag list, a wait's `startAfter`: most of them
    // in real configs) needs no stack either.
    let is_scalar = |v: &Value| !matches!(v, Value::Array(_) | Value::Object(_));
    for (k, v) in root {
        match v {
            Value::Object(m) if m.values().all(is_scalar) => {
                for (k2, v2) in m {
                    if let Value::String(text) = v2 {
                        f(text, Some(k2), &|| format!("{base}.{k}.{k2}"));
                    }
                }
            }
            Value::Array(items) if items.iter().all(is_scalar) => {
                for (i, item) in items.iter().enumerate() {
                    if let Value::String(text) = item {
                        f(text, None, &|| format!("{base}.{k}[{i}]"));
                    }
                }
            }
            Value::Array(_) | Value::Object(_) => {
                visit(vec![Frame::Enter(Seg::Key(k), v)], base, &mut f)
            }
            _ => {}
        }
    }
}

/// Like [`visit_strings`] for the single value stored under `key`.
pub fn visit_value_strings<'a>(
    key: &'a str,
    value: &'a Value,
    base: &str,
    f: impl FnMut(&'a str, Option<&'a str>, &dyn Fn() -> String),
) {
    visit(vec![Frame::Enter(Seg::Key(key), value)], base, f);
}

fn visit<'a>(
    mut stack: Vec<Frame<'a>>,
    base: &str,
    mut f: impl FnMut(&'a str, Option<&'a str>, &dyn Fn() -> String),
) {
    let mut path: Vec<Seg<'a>> = Vec::new();
    while let Some(frame) = stack.pop() {
        let (seg, v) = match frame {
            Frame::Exit => {
                path.pop();
                continue;
            }
            Frame::Enter(seg, v) => (seg, v),
        };
        path.push(seg);
        match v {
            Value::String(text) => {
                let key = match seg {
                    Seg::Key(k) => Some(k),
                    Seg::Idx(_) => None,
                };
                let render = || {
                    let mut out = base.to_string();
                    for s in &path {
                        match s {
                            Seg::Key(k) => {
                                out.push('.');
                                out.push_str(k);
                            }
                            Seg::Idx(i) => out.push_str(&format!("[{i}]")),
                        }
                    }
                    out
                };
                f(text, key, &render);
                path.pop();
            }
            Value::Array(items) => {
                stack.push(Frame::Exit);
                stack.extend(
                    items
                        .iter()
                        .enumerate()
                        .rev()
                        .map(|(i, it)| Frame::Enter(Seg::Idx(i), it)),
                );
            }
            Value::Object(m) => {
                stack.push(Frame::Exit);
                stack.extend(m.iter().rev().map(|(k, it)| Frame::Enter(Seg::Key(k), it)));
            }
            _ => {
                path.pop();
            }
        }
    }
}

pub const MERGE_NAMESPACES: &[&str] = &[
    "contact",
    "user",
    "location",
    "custom_values",
    "appointment",
    "opportunity",
    "trigger_link",
    "message",
    "right_now",
    "workflow",
];

/// Position of the first `pair` (two equal ASCII bytes) in `bytes[from..]`, as an index
/// into `bytes`. A plain byte loop: cheaper than a substring searcher for short texts.
fn find_pair(bytes: &[u8], from: usize, pair: u8) -> Option<usize> {
    let mut i = from;
    while i + 1 < bytes.len() {
        let p = bytes[i..].iter().position(|&b| b == pair)? + i;
        if bytes.get(p + 1) == Some(&pair) {
            return Some(p);
        }
        i = p + 1;
    }
    None
}

/// Problems with `{{…}}` merge fields in a text: unbalanced braces, unknown namespaces.
/// Text that merely looks like JSON (`{"a":{"b":1}}`) is not reported. Linear in the text.
pub fn merge_field_problems(text: &str) -> Vec<String> {
    const MAX_PROBLEMS: usize = 20;
    let mut problems = Vec::new();
    let bytes = text.as_bytes();
    // Cached position of the next "}}" at or after some offset (None: there is none).
    let mut next_close: Option<Option<usize>> = None;
    let mut i = 0;
    while i + 1 < bytes.len() && problems.len() < MAX_PROBLEMS {
        if bytes[i] == b'{' && bytes[i + 1] == b'{' {
            let body_start = i + 2;
            let close = match next_close {
                Some(Some(c)) if c >= body_start => Some(c),
                Some(None) => None,
                _ => {
                    let found = find_pair(bytes, body_start, b'}');
                    next_close = Some(found);
                    found
                }
            };
            // Only the stretch up to the close matters; stop searching there.
            let limit = close.unwrap_or(text.len());
            let reopen = find_pair(&bytes[..limit], body_start, b'{');
            match (close, reopen) {
                (Some(c), None) => {
                    if let Some(p) = check_merge_expression(&text[body_start..c]) {
                        problems.push(p);
                    }
                    i = c + 2;
                }
                _ => {
                    let rest = &text[body_start..reopen.unwrap_or(text.len())];
                    if looks_like_path(rest.trim_start()) {
                        let snippet: String = rest.chars().take(40).collect();
                        problems.push(format!("\"{{{{{snippet}\" has no closing \"}}}}\""));
                    }
                    i = body_start;
                }
            }
            continue;
        }
        if bytes[i] == b'}' && bytes[i + 1] == b'}' {
            // A stray closing pair: flag `{contact.first_name}}` (single opening brace).
            let before = &text[..i];
            let mut word_start = before.len();
            for (p, c) in before.char_indices().rev().take(200) {
                if c.is_ascii_alphanumeric() || c == '_' || c == '.' || c == ' ' {
                    word_start = p;
                } else {
                    break;
                }
            }
            let word = before[word_start..].trim();
            if word_start > 0 && before.as_bytes()[word_start - 1] == b'{' && word.contains('.') {
                problems.push(format!("\"{{{word}}}}}\" is missing an opening brace"));
            }
            i += 2;
            continue;
        }
        i += 1;
    }
    problems
}

fn looks_like_path(s: &str) -> bool {
    let token: String = s
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == '_' || *c == '.')
        .collect();
    token.contains('.')
        && token
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic())
}

fn check_merge_expression(inner: &str) -> Option<String> {
    let trimmed = inner.trim();
    if trimmed.is_empty() {
        return Some("\"{{}}\" is an empty merge field".into());
    }
    let token = trimmed
        .split(|c: char| c.is_whitespace() || c == '|')
        .next()
        .unwrap_or("");
    let is_path = token.chars().all(|c| {
        c.is_ascii_alphanumeric() || c == '_' || c == '.' || c == '-' || c == '[' || c == ']'
    });
    if !is_path || token.is_empty() {
        // JSON or template logic, not a merge field.
        return None;
    }
    let (ns, rest) = token.split_once('.').unwrap_or((token, ""));
    if !MERGE_NAMESPACES.contains(&ns.to_ascii_lowercase().as_str()) || rest.is_empty() {
        return Some(format!(
            "\"{{{{{trimmed}}}}}\" uses an unknown namespace \"{ns}\""
        ));
    }
    None
}

/// Names that mark a secret when used as a query parameter, header, JSON key or variable
/// (compared case-insensitively, with `-` and spaces read as `_`).
const SECRET_NAMES: &[&str] = &[
    "api_key",
    "apikey",
    "x_api_key",
    "access_token",
    "accesstoken",
    "auth_token",
    "authtoken",
    "token",
    "secret",
    "client_secret",
    "clientsecret",
    "password",
    "passwd",
    "pwd",
    "private_key",
    "privatekey",
];

const SECRET_SUFFIXES: &[&str] = &["_api_key", "_token", "_secret", "_password"];

/// Well-known literal credential prefixes.
const TOKEN_PREFIXES: &[&str] = &[
    "sk_live_",
    "sk_test_",
    "rk_live_",
    "ghp_",
    "github_pat_",
    "xoxb-",
    "xoxp-",
    "AKIA",
    "AIza",
    "pit-",
];

pub fn is_secret_name(name: &str) -> bool {
    fn norm(b: u8) -> u8 {
        match b {
            b'-' | b' ' => b'_',
            _ => b.to_ascii_lowercase(),
        }
    }
    let n = name.trim().as_bytes();
    let same = |cand: &[u8], part: &[u8]| {
        cand.len() == part.len() && cand.iter().zip(part).all(|(c, &b)| *c == norm(b))
    };
    SECRET_NAMES.iter().any(|s| same(s.as_bytes(), n))
        || SECRET_SUFFIXES
            .iter()
            .any(|s| n.len() > s.len() && same(s.as_bytes(), &n[n.len() - s.len()..]))
}

/// A literal (not a merge-field reference, not empty) that could be a credential.
pub fn is_literal_secret_value(value: &str) -> bool {
    let v = value.trim().trim_matches(['"', '\'']);
    !v.is_empty() && !v.contains("{{") && !v.starts_with("process.env") && !v.starts_with("env.")
}

/// `Bearer <literal>` / `Basic <literal>` anywhere in a text.
pub fn has_literal_auth_scheme(text: &str) -> bool {
    let lower = text.to_ascii_lowercase();
    for scheme in ["bearer ", "basic "] {
        let mut from = 0;
        while let Some(p) = lower[from..].find(scheme) {
            let start = from + p + scheme.len();
            let token: String = text[start..]
                .chars()
                .take_while(|c| !c.is_whitespace() && *c != '"' && *c != '\'' && *c != '`')
                .collect();
            if token.len() >= 8
                && !token.contains("{{")
                && !token.contains("${")
                && !token.contains('+')
            {
                return true;
            }
            from = start;
        }
    }
    false
}

/// Finds `name = "value"`, `name: 'value'`, `"name": "value"` or `name=value` assignments of a
/// secret-looking name to a literal in free text (code, bodies). Returns the names.
///
/// Linear in the text: every byte is looked at a bounded number of times. Unquoted values
/// (`a=b&c=d`) run to the next delimiter, so `pwd=pwd=pwd=…` gives every name the same long
/// value; the facts the verdict needs about a value (where it ends, whether it holds a byte
/// outside the token alphabet, whether it holds a digit) are answered by forward searches
/// whose results are reused while the start position has not passed them. Bytes, not
/// chars: every delimiter is ASCII and UTF-8 never reuses ASCII bytes inside a character.
pub fn secret_assignments(text: &str) -> Vec<String> {
    let b = text.as_bytes();
    let len = b.len();
    let mut found = Vec::new();
    let mut value_end = NextMatch::new(|c| b"& ,;\n)}".contains(&c));
    let mut outside_token = NextMatch::new(|c| !is_token_byte(c));
    let mut digit = NextMatch::new(|c: u8| c.is_ascii_digit());
    let mut i = 0;
    while i < len {
        let c = b[i];
        if !(c.is_ascii_alphabetic() || c == b'_') {
            i += 1;
            continue;
        }
        let mut j = i;
        while j < len && (b[j].is_ascii_alphanumeric() || b[j] == b'_' || b[j] == b'-') {
            j += 1;
        }
        let name = &text[i..j];
        if is_secret_name(name) {
            let mut k = j;
            // Skip a closing quote of a JSON key, whitespace, then ':' or '='.
            while k < len && matches!(b[k], b'"' | b'\'' | b' ' | b'\t') {
                k += 1;
            }
            if k < len && matches!(b[k], b':' | b'=') {
                k += 1;
                while k < len && matches!(b[k], b' ' | b'\t') {
                    k += 1;
                }
                if k < len && matches!(b[k], b'"' | b'\'' | b'`') {
                    let q = b[k];
                    let m = b[k + 1..]
                        .iter()
                        .position(|&x| x == q)
                        .map_or(len, |p| k + 1 + p);
                    let value = &text[k + 1..m];
                    if value.len() >= 4 && is_literal_secret_value(value) && !value.contains("${") {
                        found.push(name.to_string());
                    }
                    // The quoted value is consumed: nothing inside it is a name.
                    i = m;
                    continue;
                } else if k < len && b[k] != b'=' {
                    // Unquoted: only `name=value` query-string style with a literal token:
                    // ≥ 4 bytes, all of the token alphabet (so no spaces, quotes or braces:
                    // what `is_literal_secret_value` would refuse reduces to the prefixes),
                    // with a digit.
                    let end = value_end.find(b, k);
                    let value = &text[k..end];
                    if end - k >= 4
                        && outside_token.find(b, k) >= end
                        && digit.find(b, k) < end
                        && !value.starts_with("process.env")
                        && !value.starts_with("env.")
                    {
                        found.push(name.to_string());
                    }
                }
            }
        }
        i = j.max(i + 1);
    }
    found
}

fn is_token_byte(c: u8) -> bool {
    c.is_ascii_alphanumeric() || b"-_.~+/=".contains(&c)
}

/// The first position at or after a start where a byte predicate holds, remembering the
/// last answer: a query from inside an already searched stretch is answered without
/// searching again, so a series of queries with non-decreasing starts costs one pass.
struct NextMatch<F: Fn(u8) -> bool> {
    is_match: F,
    /// `(from, at)`: no match in `from..at`; `at` is a match or the end of the text.
    last: Option<(usize, usize)>,
}

impl<F: Fn(u8) -> bool> NextMatch<F> {
    fn new(is_match: F) -> Self {
        NextMatch {
            is_match,
            last: None,
        }
    }

    fn find(&mut self, bytes: &[u8], from: usize) -> usize {
        if let Some((start, at)) = self.last {
            if start <= from && from <= at {
                return at;
            }
        }
        let at = bytes[from.min(bytes.len())..]
            .iter()
            .position(|&c| (self.is_match)(c))
            .map_or(bytes.len(), |p| from + p);
        self.last = Some((from, at));
        at
    }
}

/// A literal token with a well-known credential prefix (one pass over the text).
pub fn has_known_token_prefix(text: &str) -> bool {
    let bytes = text.as_bytes();
    for (idx, &b) in bytes.iter().enumerate() {
        if !matches!(b, b's' | b'r' | b'g' | b'x' | b'A' | b'p') {
            continue;
        }
        if idx > 0 && bytes[idx - 1].is_ascii_alphanumeric() {
            continue;
        }
        for p in TOKEN_PREFIXES {
            if bytes[idx..].starts_with(p.as_bytes()) {
                let tail = bytes[idx + p.len()..]
                    .iter()
                    .take_while(|c| c.is_ascii_alphanumeric() || **c == b'_' || **c == b'-')
                    .count();
                if tail >= 12 {
                    return true;
                }
            }
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn durations() {
        assert_eq!(parse_duration(&json!("30s")), Some(30));
        assert_eq!(parse_duration(&json!("15m")), Some(900));
        assert_eq!(parse_duration(&json!("2h")), Some(7200));
        assert_eq!(parse_duration(&json!("3d")), Some(259_200));
        assert_eq!(parse_duration(&json!("1w")), Some(604_800));
        assert_eq!(parse_duration(&json!("1d 2h")), Some(93_600));
        assert_eq!(parse_duration(&json!("2 days")), Some(172_800));
        assert_eq!(parse_duration(&json!(60)), Some(60));
        assert_eq!(parse_duration(&json!("soon")), None);
        assert_eq!(parse_duration(&json!("3x")), None);
        assert_eq!(parse_duration(&json!("")), None);
    }

    #[test]
    fn private_hosts() {
        for u in [
            "http://localhost/x",
            "http://127.0.0.1/",
            "http://127.9.9.9/",
            "http://2130706433/",
            "http://10.1.2.3/",
            "http://172.16.0.1/",
            "http://172.31.255.1/",
            "http://192.168.1.1/",
            "http://169.254.169.254/latest",
            "http://0.0.0.0/",
            "http://[::1]/",
            "http://[::ffff:10.0.0.1]/",
            "https://printer.local/",
            "https://api.corp.internal/",
            "https://LOCALHOST./",
        ] {
            assert!(
                matches!(check_url(u), UrlCheck::Ok { private: true, .. }),
                "{u}"
            );
        }
        for u in [
            "https://172.32.0.1/",
            "https://hooks.example.com/a",
            "https://8.8.8.8/",
            "https://local.example.com/",
        ] {
            assert!(
                matches!(check_url(u), UrlCheck::Ok { private: false, .. }),
                "{u}"
            );
        }
        assert!(matches!(check_url("ftp://x.com"), UrlCheck::Invalid(_)));
        assert!(matches!(
            check_url("example.com/hook"),
            UrlCheck::Invalid(_)
        ));
        assert_eq!(check_url("{{custom_values.hook}}"), UrlCheck::Dynamic);
        assert!(matches!(
            check_url("https://api.example.com/c/{{contact.id}}"),
            UrlCheck::Ok {
                private: false,
                insecure: false,
                ..
            }
        ));
    }

    #[test]
    fn merge_fields() {
        assert!(merge_field_problems("Hi {{ contact.first_name }}!").is_empty());
        assert!(merge_field_problems("{{custom_values.api_key | default: 'x'}}").is_empty());
        assert!(merge_field_problems(r#"{"a":{"b":{{contact.id}}}}"#).is_empty());
        assert_eq!(merge_field_problems("Hi {{contact.first_name").len(), 1);
        assert_eq!(merge_field_problems("Hi {contact.first_name}}").len(), 1);
        assert_eq!(merge_field_problems("Hi {{first_name}}").len(), 1);
        assert_eq!(merge_field_problems("Hi {{ foo.bar }}").len(), 1);
        assert_eq!(merge_field_problems("{{}}").len(), 1);
        assert!(merge_field_problems("é}}é{{é").is_empty());
        assert_eq!(
            merge_field_problems("{{contact.ééééééééééééééééééééééééééééééééééééééééééé").len(),
            1
        );
        assert_eq!(find_pair(b"a}}", 0, b'}'), Some(1));
        assert_eq!(find_pair(b"}}", 0, b'}'), Some(0));
        assert_eq!(find_pair(b"}a}}", 1, b'}'), Some(2));
        assert_eq!(find_pair(b"}a}b}", 0, b'}'), None);
        assert_eq!(find_pair(b"{{{", 1, b'{'), Some(1));
        assert_eq!(find_pair(b"x{", 0, b'{'), None);
        let huge = "{{".repeat(200_000) + &"a".repeat(100_000);
        assert!(merge_field_problems(&huge).len() <= 20);
    }

    #[test]
    fn secrets() {
        assert!(has_literal_auth_scheme("Bearer abcdef123456"));
        for name in [
            "API-Key",
            "x-api-key",
            "apiKey",
            "Stripe_Secret",
            "my password",
            "token",
        ] {
            assert!(is_secret_name(name), "{name}");
        }
        for name in ["tokens", "key", "_token_x", "monkey", "Content-Type"] {
            assert!(!is_secret_name(name), "{name}");
        }
        assert!(!has_literal_auth_scheme("Bearer {{custom_values.token}}"));
        assert_eq!(
            secret_assignments(r#"const apiKey = "abc123xyz";"#),
            vec!["apiKey"]
        );
        assert!(secret_assignments(r#"const apiKey = process.env.KEY;"#).is_empty());
        assert_eq!(
            secret_assignments(r#"const api_key = "abc123xyz";"#),
            vec!["api_key"]
        );
        assert_eq!(
            secret_assignments(r#"{"password": "hunter22"}"#),
            vec!["password"]
        );
        assert!(secret_assignments(r#"{"password": "{{custom_values.pw}}"}"#).is_empty());
        assert!(has_known_token_prefix("key sk_live_abcdefghijklmnop"));
        assert!(!has_known_token_prefix("task_live_x"));
        for p in TOKEN_PREFIXES {
            let token = format!("{p}abcdefghijklmnop");
            assert!(has_known_token_prefix(&token), "{p} must be detected");
        }
    }
}
