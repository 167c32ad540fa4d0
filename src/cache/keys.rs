//! Typed cache keys (the original service's `CacheKeys`), every one scoped by location.
//!
//! Format: `{prefix}:v{FORMAT}:{kind}:{{locationId}}:{id…}` — the location id sits inside a
//! Redis Cluster hash tag so that a location's keys share a slot. Each component is escaped
//! (`%`, `:`, `{`, `}`, whitespace and control characters become `%XX`), so no id can
//! forge another location's key.

use std::fmt::Write as _;

use super::wire::FORMAT_VERSION;

/// `:v{FORMAT_VERSION}:`, the segment after the prefix (a test keeps the two equal).
const VERSION_SEGMENT: &str = ":v3:";

/// What a key caches; also the `resource` metric label.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Resource {
    Workflows,
    Workflow,
    Analysis,
    Subscription,
    Location,
    ApiKey,
}

impl Resource {
    pub const ALL: [Resource; 6] = [
        Resource::Workflows,
        Resource::Workflow,
        Resource::Analysis,
        Resource::Subscription,
        Resource::Location,
        Resource::ApiKey,
    ];

    /// Metric label value and the `{kind}` key segment.
    pub fn as_str(self) -> &'static str {
        match self {
            Resource::Workflows => "workflows",
            Resource::Workflow => "workflow",
            Resource::Analysis => "analysis",
            Resource::Subscription => "subscription",
            Resource::Location => "location",
            Resource::ApiKey => "api_key",
        }
    }

    pub(crate) fn index(self) -> usize {
        self as usize
    }
}

/// A full cache key: its resource and the Redis key (every kind but `api_key` names its
/// location in a hash tag).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct CacheKey {
    resource: Resource,
    key: String,
}

impl CacheKey {
    pub fn resource(&self) -> Resource {
        self.resource
    }
    /// The full Redis key (also the L1 key).
    pub fn as_str(&self) -> &str {
        &self.key
    }
}

impl std::fmt::Display for CacheKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.key)
    }
}

/// Key builders bound to a namespace prefix (`CACHE_PREFIX`).
#[derive(Debug, Clone, Copy)]
pub struct CacheKeys<'a> {
    prefix: &'a str,
}

impl<'a> CacheKeys<'a> {
    pub fn new(prefix: &'a str) -> Self {
        CacheKeys { prefix }
    }

    fn build(&self, resource: Resource, tag: &str, ids: &[&str]) -> CacheKey {
        // Built on every request: plain pushes, no formatting machinery.
        let resource_name = resource.as_str();
        let ids_len: usize = ids.iter().map(|id| id.len() + 1).sum();
        let mut key = String::with_capacity(
            self.prefix.len()
                + VERSION_SEGMENT.len()
                + resource_name.len()
                + tag.len()
                + ids_len
                + 4,
        );
        key.push_str(self.prefix);
        key.push_str(VERSION_SEGMENT);
        key.push_str(resource_name);
        key.push_str(":{");
        escape_into(&mut key, tag);
        key.push('}');
        for id in ids {
            key.push(':');
            escape_into(&mut key, id);
        }
        CacheKey { resource, key }
    }

    /// One workflow with its full definition.
    pub fn workflow(&self, location_id: &str, workflow_id: &str) -> CacheKey {
        self.build(Resource::Workflow, location_id, &[workflow_id])
    }
    /// The GoHighLevel JSON an imported workflow came from (`?format=ghl`). A second segment
    /// after the workflow id, so it never meets [`Self::workflow`] (ids escape `:`).
    pub fn workflow_original(&self, location_id: &str, workflow_id: &str) -> CacheKey {
        self.build(Resource::Workflow, location_id, &[workflow_id, "ghl"])
    }
    /// The location's whole workflow summary list (one key).
    pub fn workflows(&self, location_id: &str) -> CacheKey {
        self.build(Resource::Workflows, location_id, &[])
    }
    /// The location's overview (every workflow with its analysis head, `GET /api/workflows`
    /// with `include=analysis` or a sort/filter on it, and `GET /api/summary`) under one rules
    /// version. Dropped by every write that drops [`Self::workflows`] and by every finished
    /// analysis of the location. The list key has no segment after the location, so this one
    /// never meets it.
    pub fn overview(&self, location_id: &str, rules_version: &str) -> CacheKey {
        self.build(
            Resource::Workflows,
            location_id,
            &["overview", rules_version],
        )
    }
    /// Analysis of one workflow version under one rules version.
    pub fn analysis(
        &self,
        location_id: &str,
        workflow_id: &str,
        workflow_version: i64,
        rules_version: &str,
    ) -> CacheKey {
        let mut ver = itoa::Buffer::new();
        let ver = ver.format(workflow_version);
        self.build(
            Resource::Analysis,
            location_id,
            &[workflow_id, ver, rules_version],
        )
    }
    /// The location-wide (cross-workflow) analysis under one rules version; `*` cannot be a
    /// workflow id, so it never meets a workflow's analysis key.
    pub fn location_analysis(&self, location_id: &str, rules_version: &str) -> CacheKey {
        self.build(Resource::Analysis, location_id, &["*", rules_version])
    }
    pub fn subscription(&self, location_id: &str) -> CacheKey {
        self.build(Resource::Subscription, location_id, &[])
    }
    /// The location/user record (the original's `CacheKeys.user`).
    pub fn location(&self, location_id: &str) -> CacheKey {
        self.build(Resource::Location, location_id, &[])
    }
    /// Api key lookup by key hash; the only key not scoped by location (its value names it).
    pub fn api_key(&self, key_hash: &str) -> CacheKey {
        self.build(Resource::ApiKey, key_hash, &[])
    }
    /// A rate-limit counter (not a cached value, so a plain Redis key rather than a
    /// [`CacheKey`]): `{prefix}:v{FORMAT}:ratelimit:{{locationId}}:{window}`.
    pub fn rate_limit(&self, location_id: &str, window: &str) -> String {
        let mut key = String::with_capacity(48);
        let _ = write!(key, "{}:v{}:ratelimit:{{", self.prefix, FORMAT_VERSION);
        escape_into(&mut key, location_id);
        key.push_str("}:");
        escape_into(&mut key, window);
        key
    }
}

fn needs_escape(c: char) -> bool {
    matches!(c, '%' | ':' | '{' | '}' | '*' | '?' | '[' | ']' | '\\')
        || c.is_whitespace()
        || c.is_control()
}

/// `needs_escape` for an ASCII byte; any non-ASCII byte sends the id to the char-wise path.
const fn plain_ascii_rule(b: u8) -> bool {
    b.is_ascii()
        && !b.is_ascii_control()
        && !matches!(
            b,
            b' ' | b'%' | b':' | b'{' | b'}' | b'*' | b'?' | b'[' | b']' | b'\\'
        )
}

/// [`plain_ascii_rule`] for every byte: the fast path runs over every id of every key built
/// per request (a 64-character key hash among them), and a table lookup is a few
/// instructions where the rule is a dozen.
const PLAIN_ASCII: [bool; 256] = {
    let mut table = [false; 256];
    let mut byte = 0;
    while byte < 256 {
        table[byte] = plain_ascii_rule(byte as u8);
        byte += 1;
    }
    table
};

fn plain_ascii(b: u8) -> bool {
    PLAIN_ASCII[usize::from(b)]
}

fn escape_into(out: &mut String, s: &str) {
    // Ids are almost always plain: copy them whole (keys are built on every request).
    if s.bytes().all(plain_ascii) {
        out.push_str(s);
        return;
    }
    for c in s.chars() {
        if needs_escape(c) {
            let mut buf = [0u8; 4];
            for b in c.encode_utf8(&mut buf).bytes() {
                let _ = write!(out, "%{b:02X}");
            }
        } else {
            out.push(c);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_version_segment_follows_the_wire_format_version() {
        assert_eq!(VERSION_SEGMENT, format!(":v{FORMAT_VERSION}:"));
    }

    #[test]
    fn the_ascii_fast_path_agrees_with_the_char_rules() {
        for b in 0u8..128 {
            assert_eq!(plain_ascii(b), !needs_escape(char::from(b)), "byte {b}");
        }
        // A byte of a multi-byte character is never plain: such ids take the char-wise path.
        assert!((128u8..=255).all(|b| !plain_ascii(b)));
    }

    #[test]
    fn key_formats_put_the_location_in_a_hash_tag() {
        let k = CacheKeys::new("gwd");
        assert_eq!(
            k.workflow("loc1", "wf9").as_str(),
            "gwd:v3:workflow:{loc1}:wf9"
        );
        assert_eq!(k.workflows("loc1").as_str(), "gwd:v3:workflows:{loc1}");
        assert_eq!(
            k.overview("loc1", "r3").as_str(),
            "gwd:v3:workflows:{loc1}:overview:r3"
        );
        assert_ne!(k.overview("locA", "r3"), k.overview("locB", "r3"));
        assert_eq!(
            k.analysis("loc1", "wf9", 7, "r3").as_str(),
            "gwd:v3:analysis:{loc1}:wf9:7:r3"
        );
        assert_eq!(
            k.subscription("loc1").as_str(),
            "gwd:v3:subscription:{loc1}"
        );
        assert_eq!(k.location("loc1").as_str(), "gwd:v3:location:{loc1}");
        assert_eq!(k.api_key("abc").as_str(), "gwd:v3:api_key:{abc}");
        assert_eq!(
            k.rate_limit("loc1", "minute"),
            "gwd:v3:ratelimit:{loc1}:minute"
        );
        assert_eq!(
            k.rate_limit("a}:b", "hour"),
            "gwd:v3:ratelimit:{a%7D%3Ab}:hour"
        );
        assert_eq!(k.analysis("l", "w", 1, "r").resource(), Resource::Analysis);
    }

    #[test]
    fn keys_are_scoped_by_location_and_cannot_be_forged() {
        let k = CacheKeys::new("gwd");
        assert_ne!(k.workflow("locA", "wf1"), k.workflow("locB", "wf1"));
        assert_ne!(
            k.analysis("locA", "wf1", 1, "r"),
            k.analysis("locB", "wf1", 1, "r")
        );
        // A crafted id cannot produce another location's key.
        let forged = k.workflow("a}:wf1:{b", "x");
        assert_ne!(forged, k.workflow("a", "wf1"));
        assert_eq!(forged.as_str(), "gwd:v3:workflow:{a%7D%3Awf1%3A%7Bb}:x");
        assert_eq!(k.workflow("a:b", "c"), k.workflow("a:b", "c"));
        assert_ne!(
            k.workflow("a:b", "c").as_str(),
            k.workflow("a", "b:c").as_str()
        );
        // Glob characters are escaped so SCAN MATCH patterns stay literal.
        assert_eq!(k.location("*").as_str(), "gwd:v3:location:{%2A}");
        assert_eq!(k.location("a b").as_str(), "gwd:v3:location:{a%20b}");
    }

    #[test]
    fn resource_labels() {
        let labels: Vec<_> = Resource::ALL.iter().map(|r| r.as_str()).collect();
        assert_eq!(
            labels,
            [
                "workflows",
                "workflow",
                "analysis",
                "subscription",
                "location",
                "api_key"
            ]
        );
    }
}
