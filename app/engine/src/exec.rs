//! The executor: decides what must run, runs it on a worker pool, caches what it made.
//!
//! 1. Keys: in topological order, each node's key hashes its type, version, parameters, a
//!    fingerprint of what it reads from outside, and its inputs' keys with port names.
//! 2. Plan: walking backwards from the targets, a node is needed if it is a target or feeds a
//!    node that must run; a needed node with a cached result is reused (loaded only if a node
//!    that runs consumes it), otherwise it runs. Placeholders block their downstream branch.
//! 3. Run: Kahn scheduling over a crossbeam worker pool; independent branches run at once; a
//!    failure (or panic) skips only its descendants; cancel stops dispatching and tells the
//!    running nodes through their context.
//!
//! All events reach the caller from the thread that called [`Engine::run`], in order.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use crossbeam::channel::{Receiver, Sender, unbounded};
use petri_api::{CachePolicy, Device, Inputs, NodeCtx, NodeError, NodeEvent, Outputs, PortType, Registry, Value};

use crate::cache::{DiskCache, Key, MemoryCache, OutputMap};
use crate::validate::{Compiled, CompiledNode};

/// What happened to a node in a run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NodeStatus {
    Executed,
    Cached,
    Failed,
    Skipped,
}

impl NodeStatus {
    pub fn name(self) -> &'static str {
        match self {
            NodeStatus::Executed => "executed",
            NodeStatus::Cached => "cached",
            NodeStatus::Failed => "failed",
            NodeStatus::Skipped => "skipped",
        }
    }
}

/// Why a node failed: bad input from the user (a missing or unreadable file...) or a failure
/// while computing. The CLI maps the first to exit code 2.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FailureKind {
    Input,
    Runtime,
    Panic,
    Cancelled,
}

#[derive(Clone, Debug, PartialEq)]
pub enum Event {
    RunStarted { run: u64, to_run: Vec<String>, cached: Vec<String>, blocked: Vec<String> },
    NodeStarted { run: u64, node: String },
    NodeProgress { run: u64, node: String, fraction: f64, message: String },
    NodeMetric { run: u64, node: String, name: String, step: u64, value: f64 },
    NodeLog { run: u64, node: String, message: String },
    NodeFinished { run: u64, node: String, seconds: f64 },
    NodeCached { run: u64, node: String },
    NodeFailed { run: u64, node: String, error: String, kind: FailureKind },
    NodeSkipped { run: u64, node: String, reason: String },
    RunFinished { run: u64, ok: bool, cancelled: bool, seconds: f64 },
}

impl Event {
    pub fn run(&self) -> u64 {
        match self {
            Event::RunStarted { run, .. }
            | Event::NodeStarted { run, .. }
            | Event::NodeProgress { run, .. }
            | Event::NodeMetric { run, .. }
            | Event::NodeLog { run, .. }
            | Event::NodeFinished { run, .. }
            | Event::NodeCached { run, .. }
            | Event::NodeFailed { run, .. }
            | Event::NodeSkipped { run, .. }
            | Event::RunFinished { run, .. } => *run,
        }
    }
}

#[derive(Clone, Debug)]
pub struct NodeReport {
    pub id: String,
    pub type_id: String,
    pub status: NodeStatus,
    pub seconds: f64,
    pub error: Option<String>,
    pub failure: Option<FailureKind>,
}

#[derive(Clone, Debug)]
pub struct RunReport {
    pub run: u64,
    pub ok: bool,
    pub cancelled: bool,
    pub seconds: f64,
    /// Nodes that took part, in topological order.
    pub nodes: Vec<NodeReport>,
    /// Cache keys of the nodes that took part (for looking results up afterwards).
    pub keys: BTreeMap<String, Key>,
}

impl RunReport {
    pub fn node(&self, id: &str) -> Option<&NodeReport> {
        self.nodes.iter().find(|n| n.id == id)
    }

    /// Ids with the given status, in topological order.
    pub fn with_status(&self, s: NodeStatus) -> Vec<String> {
        self.nodes.iter().filter(|n| n.status == s).map(|n| n.id.clone()).collect()
    }
}

#[derive(Clone, Debug)]
pub struct RunOptions {
    /// Nodes to bring up to date; empty means every node.
    pub targets: Vec<String>,
    /// Worker threads (nodes running at once).
    pub jobs: usize,
    pub device: Device,
    /// `--cache DIR`: every node's outputs are stored here.
    pub cache_dir: Option<PathBuf>,
    /// Size limit of the disk cache, in bytes.
    pub cache_limit: u64,
    /// Where nodes with [`CachePolicy::Disk`] keep results when no `cache_dir` is given.
    pub default_cache_dir: PathBuf,
    pub cancel: Arc<AtomicBool>,
}

impl Default for RunOptions {
    fn default() -> Self {
        RunOptions {
            targets: Vec::new(),
            jobs: std::thread::available_parallelism().map(|n| n.get()).unwrap_or(2),
            device: Device::Cpu,
            cache_dir: None,
            cache_limit: 20 << 30,
            default_cache_dir: DiskCache::default_root(),
            cancel: Arc::new(AtomicBool::new(false)),
        }
    }
}

/// The engine: the registry and the in-memory cache, shared by every run of a session.
pub struct Engine {
    registry: Arc<Registry>,
    memory: Mutex<MemoryCache>,
    next_run: AtomicU64,
}

struct Job {
    id: String,
    key: Option<Key>,
    inputs: Inputs,
}

struct JobResult {
    id: String,
    result: Result<(OutputMap, f64), (String, FailureKind)>,
    log: Vec<String>,
}

/// The disk caches of a run: its own (`--cache`), and the default one used by nodes that
/// always keep results on disk.
struct Disks {
    run: Option<DiskCache>,
    default: Option<DiskCache>,
}

impl Disks {
    fn for_node(&self, n: &CompiledNode) -> Option<&DiskCache> {
        match n.entry.as_ref()?.spec.cache {
            CachePolicy::Never => None,
            CachePolicy::Normal => self.run.as_ref(),
            CachePolicy::Disk => self.run.as_ref().or(self.default.as_ref()),
        }
    }
}

/// The cache key of a node (see the module docs). Node ids never enter it.
pub fn node_key(node: &CompiledNode, fingerprint: Option<&[u8; 32]>, inputs: &[(String, Key, String)]) -> Key {
    let mut h = blake3::Hasher::new();
    let s = |h: &mut blake3::Hasher, t: &str| {
        h.update(&(t.len() as u64).to_le_bytes());
        h.update(t.as_bytes());
    };
    h.update(b"petri-node-key/1\0");
    s(&mut h, &node.type_id);
    let version = node.entry.as_ref().map_or(0, |e| e.spec.version);
    h.update(&version.to_le_bytes());
    let skip_paths = fingerprint.is_some();
    let params: Vec<_> =
        node.key_params.iter().filter(|(k, _)| !(skip_paths && node.read_paths.contains(*k))).collect();
    h.update(&(params.len() as u64).to_le_bytes());
    for (k, v) in params {
        s(&mut h, k);
        v.hash_into(&mut h);
    }
    match fingerprint {
        Some(f) => {
            h.update(&[1]);
            h.update(f);
        }
        None => {
            h.update(&[0]);
        }
    }
    h.update(&(inputs.len() as u64).to_le_bytes());
    for (port, key, src_port) in inputs {
        s(&mut h, port);
        h.update(key);
        s(&mut h, src_port);
    }
    *h.finalize().as_bytes()
}

impl Engine {
    pub fn new(registry: Registry) -> Engine {
        Engine::with_memory_budget(registry, MemoryCache::default_budget())
    }

    pub fn with_memory_budget(registry: Registry, budget: usize) -> Engine {
        Engine {
            registry: Arc::new(registry),
            memory: Mutex::new(MemoryCache::new(budget)),
            next_run: AtomicU64::new(1),
        }
    }

    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// Results in memory for a key (previews in the GUI).
    pub fn cached(&self, key: &Key) -> Option<OutputMap> {
        self.memory.lock().ok()?.peek(key)
    }

    /// Drops every in-memory result.
    pub fn clear_memory(&self) {
        if let Ok(mut m) = self.memory.lock() {
            let budget = m.budget();
            *m = MemoryCache::new(budget);
        }
    }

    /// Reserves a run id (so a GUI can tag a run before it starts).
    pub fn next_run_id(&self) -> u64 {
        self.next_run.fetch_add(1, Ordering::Relaxed)
    }

    /// Runs a compiled graph. Events go to `on_event` from this thread, in order.
    pub fn run(&self, compiled: &Compiled, opts: &RunOptions, on_event: &mut dyn FnMut(Event)) -> RunReport {
        let run = self.next_run_id();
        self.run_with_id(run, compiled, opts, on_event)
    }

    pub fn run_with_id(
        &self,
        run: u64,
        compiled: &Compiled,
        opts: &RunOptions,
        on_event: &mut dyn FnMut(Event),
    ) -> RunReport {
        let t0 = Instant::now();
        if let Ok(mut m) = self.memory.lock() {
            m.begin_run(run);
        }
        let topo_index: HashMap<&str, usize> =
            compiled.order.iter().enumerate().map(|(i, id)| (id.as_str(), i)).collect();
        let consumers: BTreeMap<&str, BTreeSet<&str>> = {
            let mut c: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
            for n in compiled.nodes.values() {
                for src in n.inputs.values() {
                    c.entry(src.node.as_str()).or_default().insert(n.id.as_str());
                }
            }
            c
        };

        // Disk caches: the run's own, and the default one for nodes that always use disk.
        let disks = Disks {
            run: opts.cache_dir.as_ref().and_then(|d| DiskCache::open(d, opts.cache_limit).ok()),
            default: DiskCache::open(&opts.default_cache_dir, opts.cache_limit).ok(),
        };
        let disk_for = |n: &CompiledNode| disks.for_node(n);

        // Targets and everything upstream of them.
        let targets: BTreeSet<&str> = if opts.targets.is_empty() {
            compiled.order.iter().map(String::as_str).collect()
        } else {
            opts.targets.iter().map(String::as_str).filter(|t| compiled.nodes.contains_key(*t)).collect()
        };
        let mut involved: BTreeSet<&str> = BTreeSet::new();
        let mut stack: Vec<&str> = targets.iter().copied().collect();
        while let Some(n) = stack.pop() {
            if involved.insert(n) {
                if let Some(cn) = compiled.nodes.get(n) {
                    stack.extend(cn.inputs.values().map(|p| p.node.as_str()));
                }
            }
        }

        let mut status: BTreeMap<String, (NodeStatus, f64, Option<String>, Option<FailureKind>)> = BTreeMap::new();
        let mut keys: BTreeMap<String, Key> = BTreeMap::new();
        let mut blocked: Vec<String> = Vec::new();

        // 1. Keys, in topological order. Placeholders and failed fingerprints have none, and
        //    neither has anything downstream of them.
        for id in compiled.order.iter().filter(|id| involved.contains(id.as_str())) {
            let n = &compiled.nodes[id];
            let Some(entry) = &n.entry else {
                status.insert(
                    id.clone(),
                    (NodeStatus::Skipped, 0.0, Some(format!("unknown node type '{}'", n.type_id)), None),
                );
                blocked.push(id.clone());
                continue;
            };
            let mut in_keys = Vec::new();
            let mut missing_upstream = None;
            for (port, src) in &n.inputs {
                match keys.get(&src.node) {
                    Some(k) => in_keys.push((port.clone(), *k, src.port.clone())),
                    None => missing_upstream = Some(src.node.clone()),
                }
            }
            if let Some(up) = missing_upstream {
                let reason = match status.get(&up) {
                    Some((NodeStatus::Failed, ..)) => format!("input node '{up}' failed"),
                    _ => format!("input node '{up}' cannot run"),
                };
                status.insert(id.clone(), (NodeStatus::Skipped, 0.0, Some(reason), None));
                blocked.push(id.clone());
                continue;
            }
            let fp = catch_unwind(AssertUnwindSafe(|| entry.node.fingerprint(&n.params))).unwrap_or_else(|p| {
                Err(NodeError::failed(format!("panicked while fingerprinting: {}", panic_text(&p))))
            });
            match fp {
                Ok(fp) => {
                    keys.insert(id.clone(), node_key(n, fp.as_ref(), &in_keys));
                }
                Err(e) => {
                    status.insert(id.clone(), (NodeStatus::Failed, 0.0, Some(e.to_string()), Some(FailureKind::Input)));
                }
            }
        }

        // 2. Plan, backwards from the targets. Cached values that a running node needs are
        //    loaded now; an entry that turns out corrupt (or vanished) becomes a miss and the
        //    plan is made again, so bad cache entries are recomputed, never trusted.
        let mut forced_miss: BTreeSet<String> = BTreeSet::new();
        let mut values: HashMap<String, OutputMap> = HashMap::new();
        let mut cache_notes: Vec<(String, String)> = Vec::new();
        let (to_run, cached) = loop {
            let mut to_run: BTreeSet<&str> = BTreeSet::new();
            let mut cached: BTreeSet<&str> = BTreeSet::new();
            for id in compiled.order.iter().rev().filter(|id| involved.contains(id.as_str())) {
                let Some(key) = keys.get(id) else { continue };
                let needed = targets.contains(id.as_str())
                    || consumers.get(id.as_str()).is_some_and(|cs| cs.iter().any(|c| to_run.contains(c)));
                if !needed {
                    continue;
                }
                let n = &compiled.nodes[id];
                let Some(entry) = &n.entry else { continue };
                let hit = !forced_miss.contains(id)
                    && entry.spec.cache != CachePolicy::Never
                    && (values.contains_key(id)
                        || self.memory.lock().map(|m| m.contains(key)).unwrap_or(false)
                        || disk_for(n).is_some_and(|d| d.contains(key)));
                if hit {
                    cached.insert(id.as_str());
                } else {
                    to_run.insert(id.as_str());
                }
            }
            // Values to load: inputs of running nodes, and results that are files (which must
            // still be on disk, unchanged, for the cached result to stand).
            let mut wanted: BTreeSet<&str> = BTreeSet::new();
            for id in &to_run {
                for src in compiled.nodes[*id].inputs.values() {
                    if cached.contains(src.node.as_str()) {
                        wanted.insert(src.node.as_str());
                    }
                }
            }
            for id in &cached {
                if writes_files(&compiled.nodes[*id]) {
                    wanted.insert(id);
                }
            }
            let mut replan = false;
            for id in wanted {
                let n = &compiled.nodes[id];
                let key = keys[id];
                if !values.contains_key(id) {
                    let mut got = self.memory.lock().ok().and_then(|mut m| m.get(&key));
                    if got.is_none() {
                        match disk_for(n).map(|d| d.load(&key)) {
                            Some(Ok(Some(v))) => {
                                let v = Arc::new(v);
                                if let Ok(mut m) = self.memory.lock() {
                                    m.insert(key, v.clone(), 0.0);
                                }
                                got = Some(v);
                            }
                            Some(Err(e)) => cache_notes.push((id.to_string(), e.to_string())),
                            _ => {}
                        }
                    }
                    match got {
                        Some(v) => {
                            values.insert(id.to_string(), v);
                        }
                        None => {
                            forced_miss.insert(id.to_string());
                            replan = true;
                            continue;
                        }
                    }
                }
                if let (Some(entry), Some(v)) = (&n.entry, values.get(id)) {
                    if writes_files(n) && !entry.node.outputs_fresh(&n.params, &Outputs::from((**v).clone())) {
                        values.remove(id);
                        forced_miss.insert(id.to_string());
                        replan = true;
                    }
                }
            }
            if !replan {
                break (to_run, cached);
            }
        };

        let sorted = |s: &BTreeSet<&str>| {
            let mut v: Vec<String> = s.iter().map(|x| x.to_string()).collect();
            v.sort_by_key(|x| topo_index.get(x.as_str()).copied().unwrap_or(usize::MAX));
            v
        };
        on_event(Event::RunStarted { run, to_run: sorted(&to_run), cached: sorted(&cached), blocked: blocked.clone() });
        for id in compiled.order.iter().filter(|id| involved.contains(id.as_str())) {
            match status.get(id) {
                Some((NodeStatus::Skipped, _, Some(reason), _)) => {
                    on_event(Event::NodeSkipped { run, node: id.clone(), reason: reason.clone() })
                }
                Some((NodeStatus::Failed, _, Some(err), Some(kind))) => {
                    on_event(Event::NodeFailed { run, node: id.clone(), error: err.clone(), kind: *kind })
                }
                _ => {}
            }
        }
        for id in sorted(&cached) {
            on_event(Event::NodeCached { run, node: id.clone() });
            status.insert(id, (NodeStatus::Cached, 0.0, None, None));
        }

        for (node, message) in cache_notes {
            on_event(Event::NodeLog { run, node, message });
        }

        // 3. Execute.
        let mut waiting: BTreeMap<&str, usize> = BTreeMap::new();
        for id in &to_run {
            let srcs: BTreeSet<&str> = compiled.nodes[*id].inputs.values().map(|p| p.node.as_str()).collect();
            let n = srcs.iter().filter(|s| to_run.contains(*s)).count();
            waiting.insert(id, n);
        }
        let mut ready: BTreeSet<(usize, &str)> =
            waiting.iter().filter(|(_, n)| **n == 0).map(|(id, _)| (topo_index[id], *id)).collect();
        let mut remaining: BTreeSet<&str> = to_run.clone();
        let mut cancelled = false;

        let (job_tx, job_rx) = unbounded::<Job>();
        let (res_tx, res_rx) = unbounded::<JobResult>();
        let (ev_tx, ev_rx) = unbounded::<Event>();
        let jobs = opts.jobs.max(1);
        let scratch_root = std::env::temp_dir().join(format!("petri-{}-run{run}", std::process::id()));

        std::thread::scope(|scope| {
            for _ in 0..jobs.min(remaining.len().max(1)) {
                let job_rx: Receiver<Job> = job_rx.clone();
                let res_tx: Sender<JobResult> = res_tx.clone();
                let ev_tx = ev_tx.clone();
                let scratch_root = scratch_root.clone();
                let disks = &disks;
                let cancel = opts.cancel.clone();
                let device = opts.device;
                scope.spawn(move || {
                    while let Ok(job) = job_rx.recv() {
                        let r = self.work(run, compiled, job, disks, &ev_tx, &cancel, device, &scratch_root);
                        if res_tx.send(r).is_err() {
                            break;
                        }
                    }
                });
            }
            drop(res_tx);
            let mut in_flight = 0usize;
            loop {
                if opts.cancel.load(Ordering::Relaxed) {
                    cancelled = true;
                }
                // Dispatch.
                while !cancelled && in_flight < jobs {
                    let Some((_, id)) = ready.pop_first() else { break };
                    let n = &compiled.nodes[id];
                    let kind = {
                        let mut inputs = BTreeMap::new();
                        let spec = n.entry.as_ref().map(|e| e.spec.clone());
                        for (port, src) in &n.inputs {
                            let v = values.get(&src.node).and_then(|m| m.get(&src.port)).cloned();
                            let want = spec.as_ref().and_then(|s| s.input_spec(port)).map(|p| p.ty);
                            if let (Some(v), Some(want)) = (v, want) {
                                if let Some(v) = v.coerce(want) {
                                    inputs.insert(port.clone(), v);
                                }
                            }
                        }
                        on_event(Event::NodeStarted { run, node: id.to_string() });
                        Inputs::new(inputs)
                    };
                    let job = Job { id: id.to_string(), key: keys.get(id).copied(), inputs: kind };
                    if job_tx.send(job).is_err() {
                        break;
                    }
                    in_flight += 1;
                }
                if in_flight == 0 {
                    break;
                }
                crossbeam::select! {
                    recv(ev_rx) -> ev => if let Ok(ev) = ev { on_event(ev) },
                    recv(res_rx) -> r => {
                        let Ok(r) = r else { break };
                        in_flight -= 1;
                        while let Ok(ev) = ev_rx.try_recv() {
                            on_event(ev);
                        }
                        let id = r.id.clone();
                        let id_ref: &str = remaining.get(id.as_str()).copied().unwrap_or("");
                        remaining.remove(id.as_str());
                        for message in r.log {
                            on_event(Event::NodeLog { run, node: id.clone(), message });
                        }
                        match r.result {
                            Ok((outputs, secs)) => {
                                values.insert(id.clone(), outputs);
                                on_event(Event::NodeFinished { run, node: id.clone(), seconds: secs });
                                status.insert(id.clone(), (NodeStatus::Executed, secs, None, None));
                                for c in consumers.get(id_ref).into_iter().flatten() {
                                    if let Some(w) = waiting.get_mut(c) {
                                        *w -= 1;
                                        if *w == 0 && remaining.contains(c) {
                                            ready.insert((topo_index[c], *c));
                                        }
                                    }
                                }
                            }
                            Err((err, kind)) => {
                                if kind == FailureKind::Cancelled {
                                    cancelled = true;
                                }
                                status.insert(id.clone(), (NodeStatus::Failed, 0.0, Some(err.clone()), Some(kind)));
                                on_event(Event::NodeFailed { run, node: id.clone(), error: err, kind });
                                // Skip everything downstream that was going to run.
                                let mut stack = vec![id_ref];
                                while let Some(x) = stack.pop() {
                                    for c in consumers.get(x).into_iter().flatten() {
                                        if remaining.remove(c) {
                                            let reason = format!("input node '{id}' failed");
                                            on_event(Event::NodeSkipped { run, node: c.to_string(), reason: reason.clone() });
                                            status.insert(c.to_string(), (NodeStatus::Skipped, 0.0, Some(reason), None));
                                            stack.push(c);
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
            }
            drop(job_tx);
            while let Ok(ev) = ev_rx.try_recv() {
                on_event(ev);
            }
        });
        let _ = std::fs::remove_dir_all(&scratch_root);

        for id in &remaining {
            let reason = if cancelled { "cancelled".to_string() } else { "not reached".to_string() };
            on_event(Event::NodeSkipped { run, node: id.to_string(), reason: reason.clone() });
            status.insert(id.to_string(), (NodeStatus::Skipped, 0.0, Some(reason), None));
        }
        if let Some(d) = &disks.run {
            d.evict_to_limit();
        }

        let nodes: Vec<NodeReport> = compiled
            .order
            .iter()
            .filter(|id| involved.contains(id.as_str()))
            .filter_map(|id| {
                let (s, secs, err, kind) = status.get(id)?.clone();
                Some(NodeReport {
                    id: id.clone(),
                    type_id: compiled.nodes[id].type_id.clone(),
                    status: s,
                    seconds: secs,
                    error: err,
                    failure: kind,
                })
            })
            .collect();
        let ok = !cancelled && nodes.iter().all(|n| matches!(n.status, NodeStatus::Executed | NodeStatus::Cached));
        let seconds = t0.elapsed().as_secs_f64();
        on_event(Event::RunFinished { run, ok, cancelled, seconds });
        RunReport { run, ok, cancelled, seconds, nodes, keys }
    }

    #[allow(clippy::too_many_arguments)]
    fn work(
        &self,
        run: u64,
        compiled: &Compiled,
        job: Job,
        disks: &Disks,
        ev_tx: &Sender<Event>,
        cancel: &Arc<AtomicBool>,
        device: Device,
        scratch_root: &std::path::Path,
    ) -> JobResult {
        let n = &compiled.nodes[&job.id];
        let disk_for = |n: &CompiledNode| disks.for_node(n);
        let mut log = Vec::new();
        let Some(entry) = &n.entry else {
            return JobResult { id: job.id, result: Err(("unknown node type".into(), FailureKind::Input)), log };
        };
        let scratch = scratch_root.join(&job.id);
        let _ = std::fs::create_dir_all(&scratch);
        let (tx, node) = (ev_tx.clone(), job.id.clone());
        let sink = Arc::new(move |e: NodeEvent| {
            let ev = match e {
                NodeEvent::Progress { fraction, message } => {
                    Event::NodeProgress { run, node: node.clone(), fraction, message }
                }
                NodeEvent::Metric { name, step, value } => {
                    Event::NodeMetric { run, node: node.clone(), name, step, value }
                }
                NodeEvent::Log(message) => Event::NodeLog { run, node: node.clone(), message },
            };
            let _ = tx.send(ev);
        });
        let ctx = NodeCtx::new(cancel.clone(), sink, device, scratch);
        let t = Instant::now();
        let out = catch_unwind(AssertUnwindSafe(|| entry.node.run(&ctx, &n.params, &job.inputs)));
        let secs = t.elapsed().as_secs_f64();
        let result = match out {
            Err(p) => Err((format!("internal error (panic): {}", panic_text(&p)), FailureKind::Panic)),
            Ok(Err(NodeError::Cancelled)) => Err(("cancelled".into(), FailureKind::Cancelled)),
            Ok(Err(e)) => {
                let kind = match &e {
                    NodeError::Io { .. } | NodeError::Param { .. } => FailureKind::Input,
                    _ => FailureKind::Runtime,
                };
                Err((e.to_string(), kind))
            }
            Ok(Ok(outputs)) => match check_outputs(&entry.spec, outputs) {
                Err(e) => Err((e, FailureKind::Runtime)),
                Ok(values) => {
                    let values = Arc::new(values);
                    if let Some(k) = job.key {
                        if entry.spec.cache != CachePolicy::Never {
                            if let Ok(mut m) = self.memory.lock() {
                                m.insert(k, values.clone(), secs);
                            }
                            if let Some(d) = disk_for(n) {
                                if let Err(e) = d.store(&k, &n.type_id, &values, secs) {
                                    log.push(format!("could not store the result in the disk cache: {e}"));
                                }
                            }
                        }
                    }
                    Ok((values, secs))
                }
            },
        };
        JobResult { id: job.id, result, log }
    }
}

/// Whether a node's results are files it wrote (checked for freshness before reuse).
fn writes_files(n: &CompiledNode) -> bool {
    n.entry.as_ref().is_some_and(|e| e.spec.outputs.iter().any(|p| p.ty == PortType::File))
}

/// Every declared output must be present with its declared type; nothing undeclared.
fn check_outputs(spec: &petri_api::NodeSpec, outputs: Outputs) -> Result<BTreeMap<String, Value>, String> {
    let values = outputs.into_values();
    for p in &spec.outputs {
        match values.get(&p.name) {
            None => return Err(format!("internal error: the node produced no '{}' output", p.name)),
            Some(v) if v.port_type() != p.ty => {
                return Err(format!("internal error: output '{}' should be {} but is {}", p.name, p.ty, v.port_type()));
            }
            _ => {}
        }
    }
    if let Some(extra) = values.keys().find(|k| spec.output_spec(k).is_none()) {
        return Err(format!("internal error: undeclared output '{extra}'"));
    }
    Ok(values)
}

fn panic_text(p: &Box<dyn std::any::Any + Send>) -> String {
    if let Some(s) = p.downcast_ref::<&str>() {
        s.to_string()
    } else if let Some(s) = p.downcast_ref::<String>() {
        s.clone()
    } else {
        "unknown panic".into()
    }
}
