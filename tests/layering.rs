//! The layers import one way only (docs/architecture.md): config and domain → cache →
//! repository → services → state → health → http → startup → cli/main. This test reads the
//! sources and fails on an import that goes up a layer, on actix-web named outside the web
//! layer, and on SQL outside `repository/postgres/`.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};

/// Top-level modules of `src/` by layer; a module may import from any lower layer, and from
/// its own layer only where `SAME_LAYER` says so.
const LAYERS: &[&[&str]] = &[
    &["config", "domain", "telemetry"],
    &["cache"],
    &["repository"],
    &["services", "metrics"],
    &["state"],
    &["health"],
    &["http"],
    &["startup"],
    &["cli", "main", "lib"],
];

/// Same-layer imports that are allowed (importer, imported); none today.
const SAME_LAYER: &[(&str, &str)] = &[];

/// Imports that the layer order would allow but that are kept out: the command line runs
/// without a web server.
const FORBIDDEN: &[(&str, &str)] = &[("cli", "http"), ("cli", "startup")];

/// Modules that import nothing else of the crate.
const LEAVES: &[&str] = &["config", "domain", "telemetry"];

/// Where actix-web may be named: the web layer, the server's assembly and the HTTP metrics
/// middleware.
fn may_name_actix(path: &str) -> bool {
    path.starts_with("src/http/")
        || path.starts_with("src/metrics/")
        || path == "src/startup.rs"
        || path == "src/main.rs"
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The top-level module a file of `src/` belongs to.
fn module_of(path: &str) -> String {
    let rest = path.trim_start_matches("src/");
    rest.split('/')
        .next()
        .unwrap()
        .trim_end_matches(".rs")
        .to_owned()
}

fn layer_of(module: &str) -> usize {
    LAYERS
        .iter()
        .position(|layer| layer.contains(&module))
        .unwrap_or_else(|| panic!("module `{module}` is in no layer of tests/layering.rs"))
}

/// `crate::x` paths named in code (comments and doc comments skipped).
fn crate_imports(source: &str) -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    for line in source.lines() {
        let code = line.split("//").next().unwrap_or("");
        let mut rest = code;
        while let Some(at) = rest.find("crate::") {
            let after = &rest[at + "crate::".len()..];
            let name: String = after
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            if !name.is_empty() {
                found.insert(name);
            }
            rest = after;
        }
    }
    found
}

/// The part of a file before its `#[cfg(test)] mod tests` (tests may reach anywhere).
fn non_test_part(source: &str) -> &str {
    source
        .find("#[cfg(test)]\nmod tests")
        .map_or(source, |at| &source[..at])
}

fn sources() -> Vec<(String, String)> {
    let mut files = Vec::new();
    rust_files(Path::new("src"), &mut files);
    files
        .into_iter()
        .map(|path| {
            let text = fs::read_to_string(&path).unwrap();
            (path.to_string_lossy().replace('\\', "/"), text)
        })
        .collect()
}

#[test]
fn no_module_imports_from_a_higher_layer() {
    let mut violations = Vec::new();
    for (path, text) in sources() {
        let module = module_of(&path);
        let own = layer_of(&module);
        for imported in crate_imports(non_test_part(&text)) {
            if imported == module || imported == "self" {
                continue;
            }
            let leaf = LEAVES.contains(&module.as_str());
            let theirs = layer_of(&imported);
            let pair = (module.as_str(), imported.as_str());
            let allowed =
                !leaf && !FORBIDDEN.contains(&pair) && (theirs < own || SAME_LAYER.contains(&pair));
            if !allowed {
                violations.push(format!("{path}: `{module}` imports `crate::{imported}`"));
            }
        }
    }
    assert!(violations.is_empty(), "{}", violations.join("\n"));
}

#[test]
fn actix_web_is_named_only_in_the_web_layer() {
    let named: Vec<String> = sources()
        .into_iter()
        .filter(|(path, text)| !may_name_actix(path) && text.contains("actix_web"))
        .map(|(path, _)| path)
        .collect();
    assert!(named.is_empty(), "actix_web outside http/: {named:?}");
}

#[test]
fn sql_lives_in_the_postgres_repositories() {
    let statements = [
        "sqlx::query",
        "sqlx::query_as",
        "sqlx::query_scalar",
        "query!(",
        "query_as!(",
        "query_scalar!(",
    ];
    let outside: Vec<String> = sources()
        .into_iter()
        .filter(|(path, _)| !path.starts_with("src/repository/postgres/"))
        .filter(|(_, text)| statements.iter().any(|s| non_test_part(text).contains(s)))
        .map(|(path, _)| path)
        .collect();
    assert!(
        outside.is_empty(),
        "SQL outside repository/postgres/: {outside:?}"
    );
}
