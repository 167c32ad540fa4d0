//! `ghl-workflow-debugger analyze FILE.json|DIR [...] [--format text|json]` — offline
//! analysis, no database or cache. Argument parsing lives in the binary; this module does
//! the work so it can be tested with in-memory writers.
//!
//! - A file argument is analyzed on its own. A directory argument analyzes every `*.json`
//!   file directly inside it (sorted by name, not recursive) and also runs the
//!   location-wide rules across that directory's documents.
//! - Input format ([`InputFormat`]): each file is read as a CONTRACT §7 document or as
//!   GoHighLevel builder JSON (any wrapping of `../shared/ghl/FORMAT.md`, or an array of
//!   them), recognised by its shape (`auto`: `templates`/`workflowData`, or an array, means
//!   GoHighLevel) or forced with `--input-format native|ghl`. A file holding an array of
//!   several GoHighLevel workflows is analyzed as a location too, like a directory.
//! - Workflow id: the document's `id` field (string or number; `_id` too for GoHighLevel)
//!   when present, else the file name without `.json` (with `[i]` for the i-th element of
//!   an array). Version: the document's numeric `version` field, else 0. What the importer
//!   had to read around is printed as notes (text output) or to stderr (`--format json`).
//! - Exit code: 2 when any input cannot be read, is not valid JSON, is not a usable
//!   workflow document or breaks a document size limit of the API ([`limits`], with the
//!   default step limit); every such problem is written to `err`, naming the file, and
//!   nothing is analyzed. Otherwise 1 when any workflow or location has a critical
//!   finding, else 0.
//!
//! JSON output shape:
//! - exactly one file argument (and no directory): the CONTRACT §8 object for it;
//! - otherwise one object
//!   `{"results": [§8, …], "locations": [{"directory": "…", "rulesVersion": …,
//!   "workflows": n, "issuesSummary": {…}, "issues": [… with workflowIds …],
//!   "analyzedAt": …}, …]}` — `results` in argument order (directory files sorted),
//!   `locations` one entry per directory argument.

use crate::domain::analysis::{
    analyze_location, analyze_workflow, AnalysisReport, Issue, LocationReport, LocationWorkflow,
    Severity,
};
use crate::domain::ghl::{self, ImportNote};
use crate::domain::limits;
use crate::domain::workflow::WorkflowDocument;
use chrono::Utc;
use serde::Serialize;
use serde_json::Value;
use std::fmt::Write as _;
use std::io::Write;
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutputFormat {
    Text,
    Json,
}

/// How input files are read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum InputFormat {
    /// By shape: GoHighLevel builder JSON when it has `templates`/`workflowData` or is an
    /// array, else a §7 document.
    #[default]
    Auto,
    Native,
    Ghl,
}

struct Loaded {
    path: PathBuf,
    id: String,
    version: i64,
    doc: WorkflowDocument,
    notes: Vec<ImportNote>,
}

#[derive(Serialize)]
struct LocationOutput<'a> {
    directory: String,
    #[serde(flatten)]
    report: &'a LocationReport,
}

#[derive(Serialize)]
struct MultiOutput<'a> {
    results: &'a [AnalysisReport],
    locations: Vec<LocationOutput<'a>>,
}

fn json_files(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        let is_json = path
            .extension()
            .and_then(|e| e.to_str())
            .is_some_and(|e| e.eq_ignore_ascii_case("json"));
        if is_json && path.is_file() {
            files.push(path);
        }
    }
    files.sort();
    Ok(files)
}

fn file_stem(path: &Path) -> String {
    path.file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// The workflows of one file (several for an array of GoHighLevel documents).
fn load(path: &Path, input: InputFormat) -> Result<Vec<Loaded>, Vec<String>> {
    let shown = path.display();
    let text = std::fs::read_to_string(path)
        .map_err(|e| vec![format!("{shown}: cannot read file: {e}")])?;
    let raw: Value =
        serde_json::from_str(&text).map_err(|e| vec![format!("{shown}: invalid JSON: {e}")])?;
    let is_ghl = match input {
        InputFormat::Auto => ghl::is_ghl_document(&raw),
        InputFormat::Native => false,
        InputFormat::Ghl => true,
    };
    if is_ghl {
        return load_ghl(path, raw);
    }
    load_native(path, &raw).map(|l| vec![l])
}

fn load_ghl(path: &Path, raw: Value) -> Result<Vec<Loaded>, Vec<String>> {
    let shown = path.display();
    let in_array = raw.is_array();
    let all = ghl::import_all_value(raw)
        .map_err(|e| vec![format!("{shown}: not a GoHighLevel workflow: {e}")])?;
    let mut loaded = Vec::with_capacity(all.len());
    let mut problems = Vec::new();
    for (i, result) in all.into_iter().enumerate() {
        let at = if in_array {
            format!("[{i}]")
        } else {
            String::new()
        };
        match result {
            Ok(w) => loaded.push(Loaded {
                path: path.to_path_buf(),
                id: w
                    .ghl_id
                    .unwrap_or_else(|| format!("{}{at}", file_stem(path))),
                version: w.source_version.unwrap_or(0),
                doc: w.document,
                notes: w.notes,
            }),
            Err(e) => problems.push(format!("{shown}{at}: not a GoHighLevel workflow: {e}")),
        }
    }
    if problems.is_empty() {
        Ok(loaded)
    } else {
        Err(problems)
    }
}

fn load_native(path: &Path, raw: &Value) -> Result<Loaded, Vec<String>> {
    let shown = path.display();
    let doc = WorkflowDocument::from_json(raw).map_err(|errs| {
        errs.iter()
            .map(|e| {
                format!(
                    "{shown}: not a usable workflow document: {}: {}",
                    e.field, e.message
                )
            })
            .collect::<Vec<_>>()
    })?;
    let over_limits = limits::check_document_limits(&doc, limits::DEFAULT_MAX_STEPS);
    if !over_limits.is_empty() {
        return Err(over_limits
            .iter()
            .map(|e| format!("{shown}: over a size limit: {}: {}", e.field, e.message))
            .collect());
    }
    let id = match raw.get("id") {
        Some(Value::String(s)) if !s.trim().is_empty() => s.trim().to_string(),
        Some(Value::Number(n)) => n.to_string(),
        _ => file_stem(path),
    };
    let version = raw.get("version").and_then(Value::as_i64).unwrap_or(0);
    Ok(Loaded {
        path: path.to_path_buf(),
        id,
        version,
        doc,
        notes: Vec::new(),
    })
}

/// Runs the offline analysis; returns the process exit code (0, 1 or 2).
pub fn run_analyze(
    paths: &[PathBuf],
    format: OutputFormat,
    input: InputFormat,
    color: bool,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> i32 {
    let Inputs { loaded, groups } = match load_all(paths, input) {
        Ok(inputs) => inputs,
        Err(problems) => {
            let mut text = String::new();
            for p in &problems {
                let _ = writeln!(text, "error: {p}");
            }
            let _ = err.write_all(text.as_bytes());
            return 2;
        }
    };
    if format == OutputFormat::Json {
        write_notes(&loaded, err);
    }

    let now = Utc::now();
    let reports: Vec<AnalysisReport> = loaded
        .iter()
        .map(|l| analyze_workflow(&l.id, l.version, &l.doc, now))
        .collect();
    let locations = analyze_locations(&loaded, &groups, now);

    let rendered = match format {
        OutputFormat::Json => {
            let single = paths.len() == 1 && groups.is_empty() && reports.len() == 1;
            match render_json(single, &reports, &locations) {
                Ok(s) => s,
                Err(e) => {
                    let _ = writeln!(err, "error: cannot serialize the result: {e}");
                    return 2;
                }
            }
        }
        OutputFormat::Text => render_text(&loaded, &reports, &locations, color),
    };
    if let Err(e) = out
        .write_all(rendered.as_bytes())
        .and_then(|()| out.flush())
    {
        let _ = writeln!(err, "error: cannot write output: {e}");
        return 2;
    }
    let critical = reports.iter().any(AnalysisReport::has_critical)
        || locations.iter().any(|(_, r)| r.has_critical());
    i32::from(critical)
}

/// What the arguments hold: every workflow, and which of them form a location.
struct Inputs {
    loaded: Vec<Loaded>,
    /// (directory or array file, range of `loaded` indices)
    groups: Vec<(PathBuf, std::ops::Range<usize>)>,
}

/// Loads every argument; on any problem, all the problems (nothing is analyzed then).
fn load_all(paths: &[PathBuf], input: InputFormat) -> Result<Inputs, Vec<String>> {
    let mut problems: Vec<String> = Vec::new();
    let mut inputs = Inputs {
        loaded: Vec::new(),
        groups: Vec::new(),
    };
    if paths.is_empty() {
        problems.push("no input files given".to_string());
    }
    for path in paths {
        let start = inputs.loaded.len();
        if path.is_dir() {
            if load_dir(path, input, &mut inputs.loaded, &mut problems) {
                inputs
                    .groups
                    .push((path.clone(), start..inputs.loaded.len()));
            }
        } else {
            match load(path, input) {
                Ok(mut l) => inputs.loaded.append(&mut l),
                Err(mut e) => problems.append(&mut e),
            }
            // An array of several workflows is one location's export.
            if inputs.loaded.len() - start > 1 {
                inputs
                    .groups
                    .push((path.clone(), start..inputs.loaded.len()));
            }
        }
    }
    if problems.is_empty() {
        Ok(inputs)
    } else {
        Err(problems)
    }
}

/// Loads a directory's `*.json` files into `loaded`; whether it forms a location (it had
/// files to read).
fn load_dir(
    dir: &Path,
    input: InputFormat,
    loaded: &mut Vec<Loaded>,
    problems: &mut Vec<String>,
) -> bool {
    match json_files(dir) {
        Err(e) => problems.push(format!("{}: cannot read directory: {e}", dir.display())),
        Ok(files) if files.is_empty() => problems.push(format!(
            "{}: directory contains no .json files",
            dir.display()
        )),
        Ok(files) => {
            for f in files {
                match load(&f, input) {
                    Ok(mut l) => loaded.append(&mut l),
                    Err(mut e) => problems.append(&mut e),
                }
            }
            return true;
        }
    }
    false
}

/// The importer's notes, on `err` so that `out` stays one JSON document.
fn write_notes(loaded: &[Loaded], err: &mut dyn Write) {
    let mut text = String::new();
    for l in loaded {
        for n in &l.notes {
            let _ = writeln!(
                text,
                "note: {} ({}): {}: {}",
                l.path.display(),
                l.id,
                n.path,
                n.message
            );
        }
    }
    let _ = err.write_all(text.as_bytes());
}

fn analyze_locations(
    loaded: &[Loaded],
    groups: &[(PathBuf, std::ops::Range<usize>)],
    now: chrono::DateTime<Utc>,
) -> Vec<(PathBuf, LocationReport)> {
    groups
        .iter()
        .map(|(dir, range)| {
            let ws: Vec<LocationWorkflow<'_>> = loaded[range.clone()]
                .iter()
                .map(|l| LocationWorkflow {
                    id: &l.id,
                    doc: &l.doc,
                })
                .collect();
            (dir.clone(), analyze_location(&ws, now))
        })
        .collect()
}

/// `single`: one file argument with one workflow, printed as its bare §8 object.
fn render_json(
    single: bool,
    reports: &[AnalysisReport],
    locations: &[(PathBuf, LocationReport)],
) -> serde_json::Result<String> {
    let mut s = if single {
        serde_json::to_string_pretty(&reports[0])
    } else {
        serde_json::to_string_pretty(&MultiOutput {
            results: reports,
            locations: locations
                .iter()
                .map(|(d, r)| LocationOutput {
                    directory: d.display().to_string(),
                    report: r,
                })
                .collect(),
        })
    }?;
    s.push('\n');
    Ok(s)
}

struct Paint {
    on: bool,
}

impl Paint {
    fn wrap(&self, code: &str, text: &str) -> String {
        if self.on {
            format!("\x1b[{code}m{text}\x1b[0m")
        } else {
            text.to_string()
        }
    }
    fn severity(&self, s: Severity) -> String {
        let code = match s {
            Severity::Critical => "1;31",
            Severity::High => "31",
            Severity::Medium => "33",
            Severity::Low => "36",
        };
        self.wrap(code, &format!("{:<8}", s.as_str().to_uppercase()))
    }
}

fn render_issue(text: &mut String, p: &Paint, issue: &Issue) {
    let _ = writeln!(
        text,
        "  {} {}  {}",
        p.severity(issue.severity),
        p.wrap("1", &issue.rule),
        issue.title
    );
    if !issue.workflow_ids.is_empty() {
        let _ = writeln!(
            text,
            "           workflows: {}",
            issue.workflow_ids.join(", ")
        );
    }
    if !issue.step_ids.is_empty() {
        let shown: Vec<&str> = issue.step_ids.iter().take(20).map(String::as_str).collect();
        let more = issue.step_ids.len().saturating_sub(shown.len());
        let suffix = if more > 0 {
            format!(" (+{more} more)")
        } else {
            String::new()
        };
        let _ = writeln!(text, "           steps: {}{suffix}", shown.join(", "));
    }
    let _ = writeln!(text, "           {}", issue.message);
    let _ = writeln!(text, "           {} {}", p.wrap("32", "fix:"), issue.fix);
}

fn render_text(
    loaded: &[Loaded],
    reports: &[AnalysisReport],
    locations: &[(PathBuf, LocationReport)],
    color: bool,
) -> String {
    let p = Paint { on: color };
    let mut text = String::new();
    for (l, r) in loaded.iter().zip(reports) {
        let s = &r.issues_summary;
        let _ = writeln!(
            text,
            "{} {} ({})",
            p.wrap("1", &format!("Workflow \"{}\"", r.workflow_id)),
            r.workflow_name,
            l.path.display()
        );
        let _ = writeln!(
            text,
            "  health {}/100 ({}) · {} issue{}: {} critical, {} high, {} medium, {} low · {} steps, longest wait {}s, complexity {}",
            r.health_score,
            r.grade,
            s.total,
            if s.total == 1 { "" } else { "s" },
            s.critical,
            s.high,
            s.medium,
            s.low,
            r.performance.steps,
            r.performance.max_path_wait_seconds,
            r.performance.complexity
        );
        if !l.notes.is_empty() {
            let _ = writeln!(text, "  import notes:");
            for n in &l.notes {
                let _ = writeln!(text, "    - {}: {}", n.path, n.message);
            }
        }
        for issue in &r.issues {
            render_issue(&mut text, &p, issue);
        }
        if !r.recommendations.is_empty() {
            let _ = writeln!(text, "  recommendations:");
            for rec in &r.recommendations {
                let _ = writeln!(text, "    - {rec}");
            }
        }
        text.push('\n');
    }
    for (dir, r) in locations {
        let _ = writeln!(
            text,
            "{} ({} workflows): {} cross-workflow issue{}",
            p.wrap("1", &format!("Location {}", dir.display())),
            r.workflows,
            r.issues_summary.total,
            if r.issues_summary.total == 1 { "" } else { "s" }
        );
        for issue in &r.issues {
            render_issue(&mut text, &p, issue);
        }
        text.push('\n');
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use std::sync::atomic::{AtomicUsize, Ordering};

    static COUNTER: AtomicUsize = AtomicUsize::new(0);

    /// A fresh, empty directory under the system temp dir.
    fn temp_dir() -> PathBuf {
        let n = COUNTER.fetch_add(1, Ordering::SeqCst);
        let dir =
            std::env::temp_dir().join(format!("analysis-cli-test-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("create temp dir");
        dir
    }

    fn healthy(id: Option<&str>) -> Value {
        let mut v = json!({
            "name": "Fine", "status": "published", "version": 4,
            "settings": {"timeWindow": {"start": "08:00", "end": "20:00"}},
            "triggers": [{"id": "t1", "type": "form_submitted", "filters": {}}],
            "start": "s1",
            "steps": [{"id": "s1", "type": "add_tag", "config": {"tag": "done"}, "next": "s2"}, {"id": "s2", "type": "end"}]
        });
        if let Some(id) = id {
            v["id"] = json!(id);
        }
        v
    }

    fn write(dir: &Path, name: &str, v: &Value) -> PathBuf {
        let p = dir.join(name);
        std::fs::write(&p, serde_json::to_vec_pretty(v).expect("json")).expect("write");
        p
    }

    fn run(paths: &[PathBuf], format: OutputFormat) -> (i32, String, String) {
        let mut out = Vec::new();
        let mut err = Vec::new();
        let code = run_analyze(paths, format, InputFormat::Auto, false, &mut out, &mut err);
        (
            code,
            String::from_utf8_lossy(&out).into_owned(),
            String::from_utf8_lossy(&err).into_owned(),
        )
    }

    #[test]
    fn healthy_file_exits_0_with_contract_json() {
        let dir = temp_dir();
        let p = write(&dir, "lead.json", &healthy(None));
        let (code, out, err) = run(&[p], OutputFormat::Json);
        assert_eq!(code, 0, "{err}");
        let v: Value = serde_json::from_str(&out).expect("json output");
        assert_eq!(v["workflowId"], "lead");
        assert_eq!(v["version"], 4);
        assert_eq!(v["healthScore"], 100);
        assert!(v["issues"].as_array().is_some_and(Vec::is_empty));
    }

    #[test]
    fn critical_finding_exits_1_and_text_names_rule_and_fix() {
        let dir = temp_dir();
        let mut v = healthy(Some("wf-9"));
        v["start"] = json!("missing");
        let p = write(&dir, "a.json", &v);
        let (code, out, _) = run(std::slice::from_ref(&p), OutputFormat::Text);
        assert_eq!(code, 1);
        assert!(
            out.contains("missing-start") && out.contains("fix:") && out.contains("wf-9"),
            "{out}"
        );
        assert!(!out.contains('\x1b'));
        let mut o = Vec::new();
        let mut e = Vec::new();
        run_analyze(
            &[p],
            OutputFormat::Text,
            InputFormat::Auto,
            true,
            &mut o,
            &mut e,
        );
        assert!(String::from_utf8_lossy(&o).contains("\x1b[1;31m"));
    }

    #[test]
    fn unreadable_or_invalid_input_exits_2_naming_the_file() {
        let dir = temp_dir();
        let bad = dir.join("bad.json");
        std::fs::write(&bad, "{not json").expect("write");
        let (code, out, err) = run(&[bad], OutputFormat::Json);
        assert_eq!(code, 2);
        assert!(out.is_empty());
        assert!(
            err.contains("bad.json") && err.contains("invalid JSON"),
            "{err}"
        );
        let (code, _, err) = run(&[dir.join("nope.json")], OutputFormat::Text);
        assert_eq!(code, 2);
        assert!(err.contains("nope.json"));
        let arr = write(&dir, "arr.json", &json!([1, 2]));
        let (code, _, err) = run(&[arr], OutputFormat::Text);
        assert_eq!(code, 2);
        assert!(err.contains("arr.json"));
    }

    #[test]
    fn a_document_over_a_size_limit_exits_2_naming_the_field() {
        let dir = temp_dir();
        let mut v = healthy(None);
        v["triggers"] = (0..=limits::MAX_TRIGGERS)
            .map(|i| json!({"id": format!("t{i}"), "type": "form_submitted"}))
            .collect();
        let p = write(&dir, "big.json", &v);
        let (code, out, err) = run(&[p], OutputFormat::Json);
        assert_eq!(code, 2);
        assert!(out.is_empty());
        assert!(
            err.contains(
                "big.json: over a size limit: triggers: has 101 triggers; the maximum is 100"
            ),
            "{err}"
        );
    }

    #[test]
    fn directory_runs_location_rules_and_outputs_results_and_locations() {
        let dir = temp_dir();
        let mk = |trigger: &str, adds: &str| {
            let mut v = healthy(None);
            v["triggers"] =
                json!([{"id": "t1", "type": "contact_tag_added", "filters": {"tag": trigger}}]);
            v["steps"][0]["config"]["tag"] = json!(adds);
            v
        };
        write(&dir, "b.json", &mk("y", "x"));
        write(&dir, "a.json", &mk("x", "y"));
        std::fs::write(dir.join("notes.txt"), "ignored").expect("write");
        let (code, out, err) = run(std::slice::from_ref(&dir), OutputFormat::Json);
        assert_eq!(code, 1, "{err}");
        let v: Value = serde_json::from_str(&out).expect("json output");
        let results = v["results"].as_array().expect("results");
        assert_eq!(results.len(), 2);
        assert_eq!(results[0]["workflowId"], "a");
        let loc = &v["locations"][0];
        assert_eq!(loc["workflows"], 2);
        assert_eq!(loc["issues"][0]["rule"], "workflow-cascade-loop");
        assert_eq!(loc["issues"][0]["workflowIds"], json!(["a", "b"]));
        assert!(loc["directory"].as_str().is_some());
        let (_, text, _) = run(&[dir], OutputFormat::Text);
        assert!(text.contains("workflows: a, b"), "{text}");
    }

    /// GoHighLevel builder JSON: detection, forcing, folders (`analyze/tests/ghl.rs`).
    mod ghl;

    #[test]
    fn empty_directory_exits_2() {
        let dir = temp_dir();
        let (code, _, err) = run(&[dir], OutputFormat::Text);
        assert_eq!(code, 2);
        assert!(err.contains("no .json files"));
    }
}
