//! Running graphs in the background, exactly as `petri run` does: compile with the graph's
//! path context, then `Engine::run_with_id` on a worker thread. Events come back to the UI as
//! a stream of messages; the UI thread never waits for the executor.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use iced::futures::channel::mpsc;
use petri_api::Registry;
use petri_engine::{Compiled, Diagnostic, Engine, Event, GraphDoc, PathContext, RunOptions, RunReport, compile};

/// What a background run sends to the UI.
#[derive(Clone, Debug)]
pub enum RunMsg {
    Event(Event),
    Done(Arc<RunReport>),
}

/// The folder relative input paths resolve against and the path context of a graph that is
/// at `path` (saved) or not saved yet (then `base_dir` stands in for its folder; outputs go
/// to `base_dir/out`).
pub fn path_context(path: Option<&Path>, base_dir: &Path) -> PathContext {
    match path {
        Some(p) => PathContext::for_graph(p, None),
        None => PathContext::for_graph(&base_dir.join("unsaved.ron"), None),
    }
}

/// Compiles as the CLI does (`petri::cli::prepare` without `--set`).
pub fn compile_doc(doc: &GraphDoc, registry: &Registry, ctx: &PathContext) -> Result<Compiled, Vec<Diagnostic>> {
    compile(doc, registry, ctx)
}

/// Where a GUI session keeps results on disk for nodes that always cache on disk (the
/// engine's default), and its run options.
pub fn options(targets: Vec<String>, cancel: Arc<AtomicBool>) -> RunOptions {
    RunOptions { targets, cancel, ..RunOptions::default() }
}

/// Starts a run on a new thread; returns the stream of its events, ending with `Done`.
pub fn spawn(engine: Arc<Engine>, compiled: Compiled, opts: RunOptions, run: u64) -> mpsc::UnboundedReceiver<RunMsg> {
    let (tx, rx) = mpsc::unbounded();
    let spawned = std::thread::Builder::new().name(format!("petri-run-{run}")).spawn(move || {
        let report = engine.run_with_id(run, &compiled, &opts, &mut |ev| {
            let _ = tx.unbounded_send(RunMsg::Event(ev));
        });
        let _ = tx.unbounded_send(RunMsg::Done(Arc::new(report)));
    });
    if let Err(e) = spawned {
        // No thread: report a failed, empty run so the UI does not wait forever.
        let (tx, rx2) = mpsc::unbounded();
        let _ = tx.unbounded_send(RunMsg::Event(Event::NodeLog {
            run,
            node: String::new(),
            message: format!("cannot start a run: {e}"),
        }));
        let _ = tx.unbounded_send(RunMsg::Done(Arc::new(RunReport {
            run,
            ok: false,
            cancelled: false,
            seconds: 0.0,
            nodes: Vec::new(),
            keys: BTreeMap::new(),
        })));
        return rx2;
    }
    rx
}

/// A node's state as shown on its card.
#[derive(Clone, Debug, PartialEq)]
pub enum NodeState {
    /// Not run since its last change.
    Stale,
    Queued,
    Running {
        fraction: f64,
        message: String,
    },
    Cached,
    Done {
        seconds: f64,
    },
    Failed(String),
    Skipped(String),
}

impl NodeState {
    pub fn label(&self) -> String {
        match self {
            NodeState::Stale => "stale".into(),
            NodeState::Queued => "queued".into(),
            NodeState::Running { fraction, .. } => format!("{:.0}%", fraction * 100.0),
            NodeState::Cached => "cached".into(),
            NodeState::Done { seconds } => format!("done {}", short_secs(*seconds)),
            NodeState::Failed(_) => "failed".into(),
            NodeState::Skipped(_) => "skipped".into(),
        }
    }

    /// Whether the node's results are up to date (a preview may be shown).
    pub fn has_result(&self) -> bool {
        matches!(self, NodeState::Cached | NodeState::Done { .. })
    }
}

fn short_secs(s: f64) -> String {
    if s < 1.0 { format!("{:.0} ms", s * 1000.0) } else { format!("{s:.1} s") }
}

/// Applies one engine event to the node states. Returns a log line for the event, if any.
pub fn apply_event(states: &mut BTreeMap<String, NodeState>, ev: &Event) -> Option<String> {
    match ev {
        Event::RunStarted { to_run, cached, blocked, .. } => {
            for n in to_run {
                states.insert(n.clone(), NodeState::Queued);
            }
            for n in cached {
                states.insert(n.clone(), NodeState::Cached);
            }
            Some(format!(
                "run started: {} to run, {} cached{}",
                to_run.len(),
                cached.len(),
                if blocked.is_empty() { String::new() } else { format!(", {} blocked", blocked.len()) }
            ))
        }
        Event::NodeStarted { node, .. } => {
            states.insert(node.clone(), NodeState::Running { fraction: 0.0, message: String::new() });
            Some(format!("{node}: started"))
        }
        Event::NodeProgress { node, fraction, message, .. } => {
            states.insert(
                node.clone(),
                NodeState::Running { fraction: fraction.clamp(0.0, 1.0), message: message.clone() },
            );
            None
        }
        Event::NodeMetric { .. } => None,
        Event::NodeLog { node, message, .. } => {
            Some(if node.is_empty() { message.clone() } else { format!("{node}: {message}") })
        }
        Event::NodeFinished { node, seconds, .. } => {
            states.insert(node.clone(), NodeState::Done { seconds: *seconds });
            Some(format!("{node}: done in {}", short_secs(*seconds)))
        }
        Event::NodeCached { node, .. } => {
            states.insert(node.clone(), NodeState::Cached);
            Some(format!("{node}: cached"))
        }
        // A cancelled node did not fail: it simply has no result yet.
        Event::NodeFailed { node, kind: petri_engine::FailureKind::Cancelled, .. } => {
            states.insert(node.clone(), NodeState::Stale);
            Some(format!("{node}: cancelled"))
        }
        Event::NodeFailed { node, error, .. } => {
            states.insert(node.clone(), NodeState::Failed(error.clone()));
            Some(format!("{node}: FAILED: {error}"))
        }
        Event::NodeSkipped { node, reason, .. } if reason == "cancelled" => {
            states.insert(node.clone(), NodeState::Stale);
            Some(format!("{node}: not run (cancelled)"))
        }
        Event::NodeSkipped { node, reason, .. } => {
            states.insert(node.clone(), NodeState::Skipped(reason.clone()));
            Some(format!("{node}: skipped ({reason})"))
        }
        Event::RunFinished { ok, cancelled, seconds, .. } => Some(format!(
            "run {} in {seconds:.2} s",
            if *ok {
                "finished"
            } else if *cancelled {
                "cancelled"
            } else {
                "FAILED"
            }
        )),
    }
}

/// A folder for graphs that have not been saved yet: their relative paths and outputs live
/// here until they are.
pub fn scratch_dir() -> PathBuf {
    let d = std::env::temp_dir().join(format!("petri-unsaved-{}", std::process::id()));
    let _ = std::fs::create_dir_all(&d);
    d
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{doc_chain, registry};

    #[test]
    fn a_background_run_streams_events_and_ends_with_its_report() {
        let dir = tempfile::tempdir().unwrap();
        let engine = Arc::new(Engine::new(registry()));
        let doc = doc_chain();
        let ctx = path_context(None, dir.path());
        let compiled = compile_doc(&doc, engine.registry(), &ctx).unwrap();
        let mut opts = options(vec!["add2".into()], Arc::new(AtomicBool::new(false)));
        opts.default_cache_dir = dir.path().join("cache");
        let run = engine.next_run_id();
        let rx = spawn(engine.clone(), compiled, opts, run);
        let msgs: Vec<RunMsg> = iced::futures::executor::block_on_stream(rx).collect();
        let mut states = BTreeMap::new();
        let mut report = None;
        for m in &msgs {
            match m {
                RunMsg::Event(e) => {
                    assert_eq!(e.run(), run);
                    apply_event(&mut states, e);
                }
                RunMsg::Done(r) => report = Some(r.clone()),
            }
        }
        let report = report.expect("done");
        assert!(report.ok);
        assert!(matches!(states["add2"], NodeState::Done { .. }));
        assert!(!states.contains_key("table"), "run to selected runs only what add2 needs");
        let out = engine.cached(&report.keys["add2"]).expect("result in memory");
        let px = out["image"].as_stack().unwrap().to_f32();
        // value 100 square + 1 + 1.
        assert_eq!(px.pixels::<f32>().unwrap()[32 * 64 + 32], 102.0);
    }
}
