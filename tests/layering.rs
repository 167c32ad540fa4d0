//! The layers import one way only (docs/architecture.md): config and domain → cache →
//! repository → services → state → health → http → startup → cli/main. This test reads the
//! sources and fails on an import that goes up a layer, on actix-web named outside the web
//! layer, and on SQL outside `repository/postgres/`. The reading is a small lexer, not a
//! parser: comments are skipped, string literals are set apart, and `crate::` paths (and,
//! in the binary, `ghl_workflow_debugger::` paths) are read, groups (`crate::{a, b}`) included.
//! The checker's own tests are at the end, on small strings.
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

/// Same-layer imports that are allowed (importer, imported): the binary dispatches to the
/// command line's subcommands.
const SAME_LAYER: &[(&str, &str)] = &[("main", "cli")];

/// Imports that the layer order would allow but that are kept out: the command line runs
/// without a web server, and the binary reaches the web layer only through `startup`
/// (`startup::openapi_text` for the `openapi` subcommand).
const FORBIDDEN: &[(&str, &str)] = &[("cli", "http"), ("cli", "startup"), ("main", "http")];

/// Modules that import nothing else of the crate.
const LEAVES: &[&str] = &["config", "domain", "telemetry"];

/// How code names the crate's own modules: `crate::` in the library, the crate's name in
/// the binary (`src/main.rs`).
const CRATE_PREFIXES: &[&str] = &["crate::", "ghl_workflow_debugger::"];

/// Where actix-web may be named: the web layer, the server's assembly and the HTTP metrics
/// middleware.
fn may_name_actix(path: &str) -> bool {
    path.starts_with("src/http/") || path == "src/metrics/http.rs" || path == "src/startup.rs"
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

/// A source split by the lexer: the code with comments dropped and every string literal
/// emptied (`""`), and the literals' contents.
struct Lexed {
    code: String,
    literals: Vec<String>,
}

fn is_ident(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

/// Splits `source` into code and string literals; comments (line, doc and nested block
/// comments) are dropped, char literals and lifetimes stay code.
fn lex(source: &str) -> Lexed {
    let chars: Vec<char> = source.chars().collect();
    let mut lexed = Lexed {
        code: String::with_capacity(source.len()),
        literals: Vec::new(),
    };
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let next = chars.get(i + 1).copied();
        let after_ident = i > 0 && is_ident(chars[i - 1]);
        if c == '/' && next == Some('/') {
            while i < chars.len() && chars[i] != '\n' {
                i += 1;
            }
        } else if c == '/' && next == Some('*') {
            i = skip_block_comment(&chars, i);
            lexed.code.push(' ');
        } else if let Some(start) = raw_string_start(&chars, i, after_ident) {
            i = read_raw_string(&chars, start, &mut lexed);
        } else if c == '"' || (c == 'b' && next == Some('"') && !after_ident) {
            i = read_string(&chars, if c == 'b' { i + 1 } else { i }, &mut lexed);
        } else if c == '\'' {
            i = read_char_or_lifetime(&chars, i, &mut lexed.code);
        } else {
            lexed.code.push(c);
            i += 1;
        }
    }
    lexed
}

/// The index after the block comment opening at `i` (block comments nest in Rust).
fn skip_block_comment(chars: &[char], mut i: usize) -> usize {
    let mut depth = 0;
    while i < chars.len() {
        if chars[i] == '/' && chars.get(i + 1) == Some(&'*') {
            depth += 1;
            i += 2;
        } else if chars[i] == '*' && chars.get(i + 1) == Some(&'/') {
            depth -= 1;
            i += 2;
            if depth == 0 {
                return i;
            }
        } else {
            i += 1;
        }
    }
    i
}

/// Where the `r` of a raw string (`r"…"`, `r#"…"#`, `br#"…"#`) starting at `i` is.
fn raw_string_start(chars: &[char], i: usize, after_ident: bool) -> Option<usize> {
    if after_ident {
        return None;
    }
    let r = if chars[i] == 'b' { i + 1 } else { i };
    if chars.get(r) != Some(&'r') {
        return None;
    }
    let mut j = r + 1;
    while chars.get(j) == Some(&'#') {
        j += 1;
    }
    (chars.get(j) == Some(&'"')).then_some(r)
}

/// Reads the raw string whose `r` is at `r`; returns the index after it.
fn read_raw_string(chars: &[char], r: usize, lexed: &mut Lexed) -> usize {
    let mut i = r + 1;
    let mut hashes = 0;
    while chars[i] == '#' {
        hashes += 1;
        i += 1;
    }
    i += 1;
    let start = i;
    while i < chars.len() {
        let closes = chars[i] == '"' && (1..=hashes).all(|k| chars.get(i + k) == Some(&'#'));
        if closes {
            break;
        }
        i += 1;
    }
    lexed
        .literals
        .push(chars[start..i.min(chars.len())].iter().collect());
    lexed.code.push_str("\"\"");
    i + 1 + hashes
}

/// Reads the string whose opening quote is at `quote`; returns the index after it.
fn read_string(chars: &[char], quote: usize, lexed: &mut Lexed) -> usize {
    let mut i = quote + 1;
    let mut text = String::new();
    while i < chars.len() && chars[i] != '"' {
        if chars[i] == '\\' {
            i += 1;
        }
        if let Some(&c) = chars.get(i) {
            text.push(c);
        }
        i += 1;
    }
    lexed.literals.push(text);
    lexed.code.push_str("\"\"");
    i + 1
}

/// A char literal (`'a'`, `'\n'`, `'"'`) is copied as `' '`; a lifetime (`'a`) as itself.
fn read_char_or_lifetime(chars: &[char], i: usize, code: &mut String) -> usize {
    let end = if chars.get(i + 1) == Some(&'\\') {
        (i + 2..chars.len()).find(|&j| chars[j] == '\'')
    } else if chars.get(i + 2) == Some(&'\'') {
        Some(i + 2)
    } else {
        None
    };
    match end {
        Some(end) => {
            code.push_str("' '");
            end + 1
        }
        None => {
            code.push('\'');
            i + 1
        }
    }
}

/// The crate's top-level modules that `code` names through [`CRATE_PREFIXES`], groups
/// (`crate::{a::X, b}`) read item by item.
fn crate_imports(code: &str) -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    for prefix in CRATE_PREFIXES {
        let mut from = 0;
        while let Some(at) = code[from..].find(prefix).map(|at| from + at) {
            from = at + prefix.len();
            if code[..at].chars().next_back().is_some_and(is_ident) {
                continue;
            }
            let after = code[from..].trim_start();
            let names = match after.strip_prefix('{') {
                Some(group) => group_items(group),
                None => vec![leading_ident(after)],
            };
            found.extend(names.into_iter().filter(|n| !n.is_empty() && n != "self"));
        }
    }
    found
}

fn leading_ident(text: &str) -> String {
    text.trim_start()
        .chars()
        .take_while(|c| is_ident(*c))
        .collect()
}

/// The first name of each item of a `{…}` group, `group` starting after its `{`.
fn group_items(group: &str) -> Vec<String> {
    let mut items = vec![leading_ident(group)];
    let mut depth = 0;
    for (at, c) in group.char_indices() {
        match c {
            '{' => depth += 1,
            '}' if depth == 0 => break,
            '}' => depth -= 1,
            ',' if depth == 0 => items.push(leading_ident(&group[at + 1..])),
            _ => {}
        }
    }
    items
}

/// The part of a file before its `#[cfg(test)] mod tests` (tests may reach anywhere).
fn non_test_part(source: &str) -> &str {
    source
        .find("#[cfg(test)]\nmod tests")
        .map_or(source, |at| &source[..at])
}

/// Why `source` holds SQL, if it does: a sqlx statement (by path, macro or an imported
/// function) or a string literal that starts as a statement does.
fn sql_in(source: &str) -> Option<String> {
    let lexed = lex(non_test_part(source));
    let statements = [
        "sqlx::query",
        "sqlx::raw_sql",
        "raw_sql(",
        "query!(",
        "query_as!(",
        "query_scalar!(",
    ];
    if let Some(s) = statements.iter().find(|s| lexed.code.contains(*s)) {
        return Some(format!("names `{s}`"));
    }
    if let Some(name) = sqlx_statement_imports(&lexed.code) {
        return Some(format!("imports `sqlx::{name}`"));
    }
    lexed
        .literals
        .iter()
        .find(|literal| looks_like_sql(literal))
        .map(|literal| format!("has the SQL string {:?}", literal.trim()))
}

/// A statement function imported from sqlx (`use sqlx::{query, …}`), to be called bare.
fn sqlx_statement_imports(code: &str) -> Option<String> {
    let mut from = 0;
    while let Some(at) = code[from..].find("use sqlx::").map(|at| from + at) {
        let end = code[at..].find(';').map_or(code.len(), |end| at + end);
        let names = code[at + "use sqlx::".len()..end]
            .split(|c: char| !is_ident(c))
            .filter(|n| !n.is_empty());
        for name in names {
            if name.starts_with("query") || name == "raw_sql" {
                return Some(name.to_owned());
            }
        }
        from = end;
    }
    None
}

/// A literal that starts as a SQL statement does (`select … from`, `select 1`, `insert into`,
/// `update t set`, `delete from`, `with x as (`, DDL). Only the start is read, so prose that
/// mentions a statement ("could not select a node") is not one.
fn looks_like_sql(literal: &str) -> bool {
    let text = literal.trim_start().to_ascii_lowercase();
    let words: Vec<&str> = text.split_whitespace().take(4).collect();
    match words.as_slice() {
        // `select … from`, or a bare `select 1` / `select pg_function()`.
        ["select", second, ..] => {
            text.contains(" from ") || second.parse::<f64>().is_ok() || second.contains('(')
        }
        ["insert", "into", ..] | ["delete", "from", ..] | ["truncate", "table", ..] => true,
        ["update", _, "set", ..] => true,
        ["with", _, "as", ..] => text.contains("as ("),
        ["create" | "alter" | "drop", "table" | "index" | "function" | "trigger", ..] => true,
        _ => false,
    }
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

/// Why `module` may not import `imported`, if it may not.
fn import_violation(module: &str, imported: &str) -> Option<&'static str> {
    if imported == module {
        return None;
    }
    let pair = (module, imported);
    if LEAVES.contains(&module) {
        Some("a leaf imports nothing else of the crate")
    } else if FORBIDDEN.contains(&pair) {
        Some("kept out (FORBIDDEN)")
    } else if layer_of(imported) < layer_of(module) || SAME_LAYER.contains(&pair) {
        None
    } else {
        Some("goes up (or across) a layer")
    }
}

#[test]
fn no_module_imports_from_a_higher_layer() {
    let mut violations = Vec::new();
    for (path, text) in sources() {
        let module = module_of(&path);
        // Every file's module must be in a layer, importing or not.
        layer_of(&module);
        for imported in crate_imports(&lex(non_test_part(&text)).code) {
            if let Some(why) = import_violation(&module, &imported) {
                violations.push(format!("{path}: `{module}` imports `{imported}`: {why}"));
            }
        }
    }
    assert!(violations.is_empty(), "{}", violations.join("\n"));
}

#[test]
fn actix_web_is_named_only_in_the_web_layer() {
    let named: Vec<String> = sources()
        .into_iter()
        .filter(|(path, text)| !may_name_actix(path) && lex(text).code.contains("actix_"))
        .map(|(path, _)| path)
        .collect();
    assert!(named.is_empty(), "actix outside the web layer: {named:?}");
}

#[test]
fn sql_lives_in_the_postgres_repositories() {
    let outside: Vec<String> = sources()
        .into_iter()
        .filter(|(path, _)| !path.starts_with("src/repository/postgres/"))
        .filter_map(|(path, text)| sql_in(&text).map(|why| format!("{path}: {why}")))
        .collect();
    assert!(
        outside.is_empty(),
        "SQL outside repository/postgres/:\n{}",
        outside.join("\n")
    );
}

fn names(list: &[&str]) -> BTreeSet<String> {
    list.iter().map(|s| (*s).to_owned()).collect()
}

fn imports_of(source: &str) -> BTreeSet<String> {
    crate_imports(&lex(source).code)
}

#[test]
fn the_checker_reads_plain_grouped_and_nested_crate_paths() {
    let source = "use crate::cache::Cache;\n\
                  use crate::{config::Settings, repository::{a, b}, self};\n\
                  use crate::{\n    services::x,\n    state,\n};\n\
                  fn f() { crate::http::go(); }";
    assert_eq!(
        imports_of(source),
        names(&["cache", "config", "http", "repository", "services", "state"])
    );
}

#[test]
fn the_checker_reads_the_binarys_crate_name_paths() {
    let source = "use ghl_workflow_debugger::startup::{self, Application};\n\
                  let t = ghl_workflow_debugger::http::openapi::to_text(&d);";
    assert_eq!(imports_of(source), names(&["http", "startup"]));
    assert_eq!(
        import_violation("main", "http"),
        Some("kept out (FORBIDDEN)")
    );
    assert_eq!(import_violation("main", "startup"), None);
    assert_eq!(import_violation("main", "cli"), None);
    assert!(import_violation("cli", "startup").is_some());
    assert!(import_violation("cache", "services").is_some());
    assert!(import_violation("config", "cache").is_some());
}

#[test]
fn the_checker_skips_comments_strings_and_other_crates() {
    let source = "// use crate::http;\n\
                  /// [`crate::startup`]\n\
                  /* crate::state /* nested */ crate::health */\n\
                  let s = \"crate::http\";\n\
                  let r = r#\"crate::cli \"quoted\"\"#;\n\
                  use some_crate::http::X;\n\
                  fn f<'a>(c: char) -> bool { c == '\"' || c == '{' }\n\
                  use crate::cache;";
    assert_eq!(imports_of(source), names(&["cache"]));
}

#[test]
fn the_checker_finds_sql_by_statement_import_and_string() {
    for source in [
        "let n = sqlx::query_scalar!(\"x\");",
        "sqlx::raw_sql(\"vacuum\").execute(&db).await?;",
        "use sqlx::{query, PgPool};\nquery(\"x\").execute(&db);",
        "use sqlx::query_as;",
        "conn.execute(\"select 1\").await?;",
        "const Q: &str = r#\"\n    insert into t (a) values ($1)\"#;",
        "let q = \"UPDATE workflows SET name = $1\";",
        "let q = \"delete from api_keys where id = $1\";",
        "let q = r\"with w as (select 1) select * from w\";",
        "let q = \"create table t (id int)\";",
    ] {
        assert!(sql_in(source).is_some(), "not seen as SQL: {source}");
    }
}

#[test]
fn the_checker_lets_prose_errors_and_tests_through() {
    for source in [
        "log::warn!(\"could not select a node; insert into the pool later\");",
        "Err(\"select: must be one of a, b\")",
        "let e: sqlx::Error = sqlx::Error::RowNotFound;\nuse sqlx::PgPool;",
        "// sqlx::query(\"select 1\")",
        "fn f() {}\n#[cfg(test)]\nmod tests {\n    const Q: &str = \"select 1\";\n}",
        "let help = \"Updates the name\"; let w = \"with care\";",
    ] {
        assert_eq!(sql_in(source), None, "seen as SQL: {source}");
    }
}
