//! The command line: `petri run | validate | fmt | nodes`.
//!
//! Exit codes: 0 success, 1 a node failed (or the run was cancelled), 2 invalid input (a bad
//! graph file, a bad `--set`, a missing file). A user error never prints a Rust panic.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use clap::{Parser, Subcommand};
use petri_api::{Device, ParamKind, ParamValue, Registry};
use petri_engine::{
    Compiled, Diagnostic, Engine, Event, FailureKind, GraphDoc, NodeStatus, PathContext, RunOptions, RunReport,
    compile, format, load_graph, raw,
};

pub const EXIT_OK: u8 = 0;
pub const EXIT_FAILED: u8 = 1;
pub const EXIT_INVALID: u8 = 2;

#[derive(Parser, Debug)]
#[command(name = "petri", version, about = "Build, run and share deep-learning segmentation workflows for microscopy.")]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run a graph headless (exactly what the editor runs).
    Run(RunArgs),
    /// Check a graph file without running it.
    Validate { graph: PathBuf },
    /// Rewrite a graph file in canonical form (and upgrade old node versions).
    Fmt {
        graph: PathBuf,
        /// Only check: exit 1 if the file is not in canonical form.
        #[arg(long)]
        check: bool,
    },
    /// Open a graph in the editor (`petri` alone opens it on a bundled example).
    Edit { graph: Option<PathBuf> },
    /// List every node type.
    Nodes {
        /// Machine-readable JSON.
        #[arg(long, conflicts_with = "markdown")]
        json: bool,
        /// The Markdown of docs/nodes.md.
        #[arg(long)]
        markdown: bool,
    },
}

#[derive(clap::Args, Debug, Default)]
pub struct RunArgs {
    pub graph: PathBuf,
    /// Override a parameter: NODE.PARAM=VALUE (a RON literal, or a bare string for text and paths).
    #[arg(long = "set", value_name = "NODE.PARAM=VALUE")]
    pub set: Vec<String>,
    /// Run only what this node needs (repeatable).
    #[arg(long = "target", value_name = "NODE")]
    pub target: Vec<String>,
    /// Keep every node's results in this folder; a second run reuses them.
    #[arg(long, value_name = "DIR")]
    pub cache: Option<PathBuf>,
    /// Size limit of the cache folder in GB (least recently used entries go first).
    #[arg(long, value_name = "GB", default_value_t = 20.0)]
    pub cache_size: f64,
    /// Nodes running at once (default: the number of cores).
    #[arg(long, value_name = "N")]
    pub jobs: Option<usize>,
    /// Output folder for relative output paths (default: `out/` beside the graph file).
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// cpu, cuda or cuda:N (CUDA needs a build with `--features cuda`).
    #[arg(long, default_value = "cpu")]
    pub device: String,
    /// Write a JSON report of the run.
    #[arg(long, value_name = "FILE")]
    pub report: Option<PathBuf>,
    /// Plain progress lines even on a terminal.
    #[arg(long)]
    pub plain: bool,
}

/// An error for the user, with its exit code.
#[derive(Debug)]
pub struct CliError {
    pub code: u8,
    pub message: String,
}

impl CliError {
    pub fn invalid(message: impl Into<String>) -> CliError {
        CliError { code: EXIT_INVALID, message: message.into() }
    }
}

fn registry_or_err() -> Result<Registry, CliError> {
    crate::registry().map_err(|e| CliError { code: EXIT_FAILED, message: format!("internal error: {e}") })
}

fn load(path: &Path, registry: &Registry) -> Result<(GraphDoc, Vec<Diagnostic>), CliError> {
    load_graph(path, registry).map_err(|e| CliError::invalid(e.to_string()))
}

fn diag_list(path: &Path, diags: &[Diagnostic]) -> String {
    let mut s = format!("{}: {} problem{}:", path.display(), diags.len(), if diags.len() == 1 { "" } else { "s" });
    for d in diags {
        s.push_str(&format!("\n  - {d}"));
    }
    s
}

/// Applies `--set NODE.PARAM=VALUE` overrides to the document, checking each against the
/// parameter's kind and range. Returns the (node, param) pairs that are paths set by the user.
pub fn apply_overrides(
    doc: &mut GraphDoc,
    registry: &Registry,
    sets: &[String],
) -> Result<Vec<(String, String)>, CliError> {
    let mut user_paths = Vec::new();
    for s in sets {
        let (lhs, text) =
            s.split_once('=').ok_or_else(|| CliError::invalid(format!("--set {s}: expected NODE.PARAM=VALUE")))?;
        let (node, param) = lhs
            .split_once('.')
            .ok_or_else(|| CliError::invalid(format!("--set {s}: expected NODE.PARAM=VALUE (no '.' in '{lhs}')")))?;
        let n = doc
            .nodes
            .get(node)
            .ok_or_else(|| CliError::invalid(format!("--set {s}: the graph has no node '{node}'")))?;
        let spec = registry
            .spec(&n.type_id)
            .ok_or_else(|| CliError::invalid(format!("--set {s}: node '{node}' has unknown type '{}'", n.type_id)))?;
        let p = spec.param_spec(param).ok_or_else(|| {
            let known: Vec<&str> = spec.params.iter().map(|p| p.name.as_str()).collect();
            CliError::invalid(format!(
                "--set {s}: {} has no parameter '{param}' (it has: {})",
                n.type_id,
                known.join(", ")
            ))
        })?;
        let textual = matches!(p.kind, ParamKind::Str | ParamKind::Choice(_) | ParamKind::Path { .. });
        let parsed = raw::parse(text).ok().and_then(|r| r.to_param().ok());
        let value = match (parsed, textual) {
            (Some(v @ ParamValue::Str(_)), _) => v,
            (Some(ParamValue::Null), _) if text.trim() == "None" => ParamValue::Null,
            (_, true) => ParamValue::Str(text.to_string()),
            (Some(v), false) => v,
            (None, false) => {
                return Err(CliError::invalid(format!(
                    "--set {s}: cannot read '{text}' as a value (expected {})",
                    p.kind.name()
                )));
            }
        };
        let value = p
            .check(&value)
            .map_err(|e| CliError::invalid(format!("--set {s}: node '{node}', parameter '{param}': {e}")))?;
        if matches!(p.kind, ParamKind::Path { .. }) {
            user_paths.push((node.to_string(), param.to_string()));
        }
        doc.nodes.get_mut(node).map(|n| n.params.insert(param.to_string(), value));
    }
    Ok(user_paths)
}

/// Loads, overrides and compiles a graph for running.
pub fn prepare(
    graph: &Path,
    sets: &[String],
    out: Option<&Path>,
    registry: &Registry,
) -> Result<(GraphDoc, Compiled, Vec<Diagnostic>), CliError> {
    let (mut doc, diags) = load(graph, registry)?;
    if !diags.is_empty() {
        return Err(CliError::invalid(diag_list(graph, &diags)));
    }
    let user_paths = apply_overrides(&mut doc, registry, sets)?;
    let mut paths = PathContext::for_graph(graph, out);
    paths.user_set.extend(user_paths);
    let compiled = compile(&doc, registry, &paths).map_err(|d| CliError::invalid(diag_list(graph, &d)))?;
    let warnings = compiled.warnings.clone();
    Ok((doc, compiled, warnings))
}

/// `petri run`.
pub fn run(args: &RunArgs, cancel: Arc<AtomicBool>) -> Result<u8, CliError> {
    let registry = registry_or_err()?;
    let (_, compiled, warnings) = prepare(&args.graph, &args.set, args.out.as_deref(), &registry)?;
    for t in &args.target {
        if !compiled.nodes.contains_key(t) {
            return Err(CliError::invalid(format!("--target {t}: the graph has no node '{t}'")));
        }
    }
    let device: Device = args.device.parse().map_err(|e: String| CliError::invalid(format!("--device: {e}")))?;
    if let Some(j) = args.jobs {
        if j == 0 {
            return Err(CliError::invalid("--jobs must be at least 1"));
        }
    }
    if !(args.cache_size > 0.0) {
        return Err(CliError::invalid("--cache-size must be a positive number of GB"));
    }
    for w in &warnings {
        eprintln!("warning: {w}");
    }
    let mut opts = RunOptions { targets: args.target.clone(), device, cancel, ..RunOptions::default() };
    if let Some(j) = args.jobs {
        opts.jobs = j;
    }
    opts.cache_dir = args.cache.clone();
    opts.cache_limit = (args.cache_size * 1e9) as u64;

    let engine = Engine::new(registry);
    let fancy = std::io::stderr().is_terminal() && !args.plain;
    let mut progress = Progress::new(fancy);
    let report = engine.run(&compiled, &opts, &mut |e| progress.on(e));
    progress.finish(&report);

    if let Some(path) = &args.report {
        let json = report_json(&args.graph, &report);
        let text = serde_json::to_string_pretty(&json).unwrap_or_default();
        if let Err(e) = format::write_atomic(path, text.as_bytes()) {
            eprintln!("error: cannot write the report {}: {e}", path.display());
            return Ok(EXIT_FAILED);
        }
    }
    Ok(exit_code(&report))
}

pub fn exit_code(report: &RunReport) -> u8 {
    if report.ok {
        EXIT_OK
    } else if report.nodes.iter().any(|n| n.failure == Some(FailureKind::Input)) {
        EXIT_INVALID
    } else {
        EXIT_FAILED
    }
}

/// The `--report` JSON.
pub fn report_json(graph: &Path, r: &RunReport) -> serde_json::Value {
    serde_json::json!({
        "graph": graph.display().to_string(),
        "ok": r.ok,
        "cancelled": r.cancelled,
        "seconds": r.seconds,
        "nodes": r.nodes.iter().map(|n| serde_json::json!({
            "id": n.id,
            "type": n.type_id,
            "status": n.status.name(),
            "seconds": n.seconds,
            "error": n.error,
        })).collect::<Vec<_>>(),
    })
}

/// Progress on the terminal: a bar per running node (indicatif) or plain lines.
struct Progress {
    multi: Option<indicatif::MultiProgress>,
    bars: std::collections::BTreeMap<String, indicatif::ProgressBar>,
}

impl Progress {
    fn new(fancy: bool) -> Progress {
        Progress { multi: fancy.then(indicatif::MultiProgress::new), bars: Default::default() }
    }

    fn line(&self, s: String) {
        match &self.multi {
            Some(m) => {
                let _ = m.println(s);
            }
            None => eprintln!("{s}"),
        }
    }

    fn on(&mut self, e: Event) {
        match e {
            Event::RunStarted { to_run, cached, blocked, .. } => self.line(format!(
                "running {} node{}, {} cached{}",
                to_run.len(),
                if to_run.len() == 1 { "" } else { "s" },
                cached.len(),
                if blocked.is_empty() { String::new() } else { format!(", {} blocked", blocked.len()) }
            )),
            Event::NodeStarted { node, .. } => {
                if let Some(m) = &self.multi {
                    let bar = m.add(indicatif::ProgressBar::new(1000));
                    bar.set_style(
                        indicatif::ProgressStyle::with_template(
                            "{prefix:>16.bold} [{bar:30}] {percent:>3}% {elapsed:>4} {msg}",
                        )
                        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
                        .progress_chars("=> "),
                    );
                    bar.set_prefix(node.clone());
                    bar.enable_steady_tick(std::time::Duration::from_millis(200));
                    self.bars.insert(node, bar);
                } else {
                    eprintln!("{node}: started");
                }
            }
            Event::NodeProgress { node, fraction, message, .. } => {
                if let Some(b) = self.bars.get(&node) {
                    b.set_position((fraction * 1000.0) as u64);
                    b.set_message(message);
                }
            }
            Event::NodeMetric { node, name, step, value, .. } => {
                if self.multi.is_none() {
                    eprintln!("{node}: {name}[{step}] = {value:.6}");
                } else if let Some(b) = self.bars.get(&node) {
                    b.set_message(format!("{name} {value:.4}"));
                }
            }
            Event::NodeLog { node, message, .. } => self.line(format!("{node}: {message}")),
            Event::NodeFinished { node, seconds, .. } => {
                if let Some(b) = self.bars.remove(&node) {
                    b.finish_and_clear();
                }
                self.line(format!("{node}: done in {seconds:.2} s"));
            }
            Event::NodeCached { node, .. } => self.line(format!("{node}: cached")),
            Event::NodeFailed { node, error, .. } => {
                if let Some(b) = self.bars.remove(&node) {
                    b.finish_and_clear();
                }
                self.line(format!("{node}: FAILED: {error}"));
            }
            Event::NodeSkipped { node, reason, .. } => self.line(format!("{node}: skipped ({reason})")),
            Event::RunFinished { .. } => {}
        }
    }

    fn finish(&mut self, r: &RunReport) {
        for (_, b) in std::mem::take(&mut self.bars) {
            b.finish_and_clear();
        }
        let count = |s| r.nodes.iter().filter(|n| n.status == s).count();
        let verdict = if r.ok {
            "ok"
        } else if r.cancelled {
            "cancelled"
        } else {
            "FAILED"
        };
        self.line(format!(
            "{verdict}: {} executed, {} cached, {} failed, {} skipped in {:.2} s",
            count(NodeStatus::Executed),
            count(NodeStatus::Cached),
            count(NodeStatus::Failed),
            count(NodeStatus::Skipped),
            r.seconds
        ));
    }
}

/// `petri validate`.
pub fn validate(graph: &Path) -> Result<u8, CliError> {
    let registry = registry_or_err()?;
    let (doc, mut diags) = load(graph, &registry)?;
    let paths = PathContext::for_graph(graph, None);
    match compile(&doc, &registry, &paths) {
        Ok(c) => diags.extend(c.warnings),
        Err(d) => diags.extend(d),
    }
    if diags.is_empty() {
        println!("{}: ok ({} nodes, {} wires)", graph.display(), doc.nodes.len(), doc.edges.len());
        Ok(EXIT_OK)
    } else {
        Err(CliError::invalid(diag_list(graph, &diags)))
    }
}

/// `petri fmt`.
pub fn fmt(graph: &Path, check: bool) -> Result<u8, CliError> {
    let registry = registry_or_err()?;
    let (doc, diags) = load(graph, &registry)?;
    if !diags.is_empty() {
        return Err(CliError::invalid(diag_list(graph, &diags)));
    }
    let text = format::to_text(&doc);
    let old = std::fs::read_to_string(graph).unwrap_or_default();
    if check {
        if old == text {
            Ok(EXIT_OK)
        } else {
            eprintln!("{}: not in canonical form (run `petri fmt {}`)", graph.display(), graph.display());
            Ok(EXIT_FAILED)
        }
    } else {
        if old != text {
            format::write_atomic(graph, text.as_bytes()).map_err(|e| CliError {
                code: EXIT_FAILED,
                message: format!("{}: cannot write: {e}", graph.display()),
            })?;
        }
        Ok(EXIT_OK)
    }
}

/// `petri nodes`.
pub fn nodes(json: bool, markdown: bool) -> Result<u8, CliError> {
    let registry = registry_or_err()?;
    if json {
        println!("{}", serde_json::to_string_pretty(&crate::nodes_doc::json(&registry)).unwrap_or_default());
    } else if markdown {
        print!("{}", crate::nodes_doc::markdown(&registry));
    } else {
        for s in registry.specs() {
            println!("{:<28} {:<10} {}", s.type_id, s.category, s.doc);
        }
    }
    Ok(EXIT_OK)
}

/// `petri edit` / `petri` alone: the editor.
#[cfg(feature = "gui")]
pub fn edit(graph: Option<PathBuf>) -> Result<u8, CliError> {
    if let Some(g) = &graph {
        if !g.is_file() {
            return Err(CliError::invalid(format!("{}: cannot read: no such file", g.display())));
        }
    }
    let registry = registry_or_err()?;
    petri_gui::run(graph, registry).map_err(|e| CliError { code: EXIT_FAILED, message: e })?;
    Ok(EXIT_OK)
}

/// A headless build (`--no-default-features`, for servers and clusters) has no editor: say so
/// and what to do instead, and fail (exit code 2) so scripts notice.
#[cfg(not(feature = "gui"))]
pub fn edit(_graph: Option<PathBuf>) -> Result<u8, CliError> {
    Err(CliError::invalid(
        "this petri is a headless build (built with --no-default-features): it has no editor. \
         Run graphs with `petri run GRAPH` (`petri --help` lists the commands), or build with the \
         default features for the editor.",
    ))
}

/// Dispatches a parsed command line; returns the exit code.
pub fn main_with(cli: Cli) -> u8 {
    let cancel = Arc::new(AtomicBool::new(false));
    {
        let cancel = cancel.clone();
        // First Ctrl-C: cancel cooperatively (running nodes stop at their next check).
        // Second: leave at once.
        let _ = ctrlc::set_handler(move || {
            if cancel.swap(true, Ordering::SeqCst) {
                std::process::exit(130);
            }
            eprintln!("cancelling… (Ctrl-C again to quit at once)");
        });
    }
    let result = match cli.command {
        Some(Command::Run(args)) => run(&args, cancel),
        Some(Command::Validate { graph }) => validate(&graph),
        Some(Command::Fmt { graph, check }) => fmt(&graph, check),
        Some(Command::Nodes { json, markdown }) => nodes(json, markdown),
        Some(Command::Edit { graph }) => edit(graph),
        None => edit(None),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {}", e.message);
            e.code
        }
    }
}
