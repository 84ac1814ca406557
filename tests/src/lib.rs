//! Shared helpers for the end-to-end tests: test-only node types (never shipped), paths, and
//! running the `petri` binary.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use petri_api::{
    Fingerprint, Inputs, Node, NodeCtx, NodeError, NodeSpec, Outputs, ParamSpec, Params, PortType, Registry, Stack,
    Value,
};
use petri_engine::{Compiled, Engine, GraphDoc, PathContext, RunOptions, RunReport, compile};

pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..").canonicalize().expect("workspace root")
}

/// The `petri` binary built for this test run (cargo builds it for app/petri's own
/// integration tests, in the same target folder).
pub fn petri_bin() -> PathBuf {
    let exe = std::env::current_exe().expect("test exe");
    let dir = exe.parent().and_then(|d| d.parent()).expect("target dir");
    let bin = dir.join(format!("petri{}", std::env::consts::EXE_SUFFIX));
    if !bin.exists() {
        let status = Command::new(env!("CARGO"))
            .args(["build", "-p", "petri", "--bin", "petri"])
            .current_dir(root())
            .status()
            .expect("cargo build");
        assert!(status.success(), "could not build the petri binary");
    }
    bin
}

pub struct Output {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

/// Runs `petri ARGS` in `cwd`.
pub fn petri(args: &[&str], cwd: &Path) -> Output {
    let out = Command::new(petri_bin())
        .args(args)
        .current_dir(cwd)
        .env_remove("PETRI_DEBUG")
        .env("PETRI_CACHE_DIR", cwd.join(".petri-default-cache"))
        .output()
        .expect("run petri");
    let o = Output {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    };
    assert!(
        !o.stderr.contains("panicked") && !o.stderr.contains("RUST_BACKTRACE"),
        "petri printed a Rust panic for {args:?}:\n{}",
        o.stderr
    );
    o
}

// ----------------------------------------------------------------------------- test nodes

/// How many times each `test.*` node body ran, by its `tag` param (tests use unique tags).
static RUNS: std::sync::Mutex<BTreeMap<String, usize>> = std::sync::Mutex::new(BTreeMap::new());
static SLEEPING: AtomicUsize = AtomicUsize::new(0);

pub fn runs_of(tag: &str) -> usize {
    RUNS.lock().map(|m| m.get(tag).copied().unwrap_or(0)).unwrap_or(0)
}

fn count(p: &Params) {
    if let Ok(tag) = p.str("tag") {
        if let Ok(mut m) = RUNS.lock() {
            *m.entry(tag.to_string()).or_default() += 1;
        }
    }
}

fn tag() -> ParamSpec {
    ParamSpec::string("tag", "", "Test bookkeeping label.")
}

/// `test.source`: a 1×n image filled with `value`; optionally fingerprints a file.
pub struct Source;
impl Node for Source {
    fn spec(&self) -> NodeSpec {
        NodeSpec::new("test.source", 1, "test", "A constant image.")
            .output("image", PortType::Image, "The image.")
            .param(ParamSpec::float("value", 1.0, "Pixel value."))
            .param(ParamSpec::int("n", 4, "Pixels.").range(1.0, 1e6))
            .param(ParamSpec::input_path("watch", "", &[], "A file whose content is part of the key.").nullable())
            .param(tag())
    }
    fn fingerprint(&self, p: &Params) -> Result<Option<Fingerprint>, NodeError> {
        if p.is_null("watch") || p.str("watch").map(str::is_empty).unwrap_or(true) {
            return Ok(None);
        }
        let path = p.path("watch")?;
        let bytes = std::fs::read(&path).map_err(|e| NodeError::io(&path, e))?;
        Ok(Some(*blake3::hash(&bytes).as_bytes()))
    }
    fn run(&self, _: &NodeCtx, p: &Params, _: &Inputs) -> Result<Outputs, NodeError> {
        count(p);
        let n = p.usize("n")?;
        let s = Stack::from_2d(1, n, vec![p.f64("value")? as f32; n]).map_err(|e| NodeError::failed(e.to_string()))?;
        Ok(Outputs::new().with("image", Value::Image(s)))
    }
}

/// `test.add`: adds `amount` to every pixel, after sleeping `sleep_ms` (checking cancel).
pub struct Add;
impl Node for Add {
    fn spec(&self) -> NodeSpec {
        NodeSpec::new("test.add", 1, "test", "Adds a number.")
            .input("image", PortType::Image, "Input.")
            .output("image", PortType::Image, "Output.")
            .param(ParamSpec::float("amount", 1.0, "What to add."))
            .param(ParamSpec::int("sleep_ms", 0, "Work time.").range(0.0, 60000.0))
            .param(tag())
    }
    fn run(&self, ctx: &NodeCtx, p: &Params, inputs: &Inputs) -> Result<Outputs, NodeError> {
        count(p);
        let ms = p.i64("sleep_ms")? as u64;
        if ms > 0 {
            SLEEPING.fetch_add(1, Ordering::SeqCst);
            let t = std::time::Instant::now();
            while t.elapsed() < Duration::from_millis(ms) {
                if ctx.is_cancelled() {
                    SLEEPING.fetch_sub(1, Ordering::SeqCst);
                    return Err(NodeError::Cancelled);
                }
                ctx.progress(t.elapsed().as_millis() as f64 / ms as f64, "working");
                std::thread::sleep(Duration::from_millis(5));
            }
            SLEEPING.fetch_sub(1, Ordering::SeqCst);
        }
        let s = inputs.image("image")?;
        let a = p.f64("amount")? as f32;
        let px: Vec<f32> = s.to_f32().pixels::<f32>().unwrap_or(&[]).iter().map(|v| v + a).collect();
        let out = s.with_pixels(px).map_err(|e| NodeError::failed(e.to_string()))?;
        Ok(Outputs::new().with("image", Value::Image(out)))
    }
}

/// `test.fail`: fails (or panics) when it runs.
pub struct Fail;
impl Node for Fail {
    fn spec(&self) -> NodeSpec {
        NodeSpec::new("test.fail", 1, "test", "Always fails.")
            .input("image", PortType::Image, "Input.")
            .output("image", PortType::Image, "Never produced.")
            .param(ParamSpec::bool("panic", false, "Panic instead of returning an error."))
            .param(tag())
    }
    fn run(&self, _: &NodeCtx, p: &Params, _: &Inputs) -> Result<Outputs, NodeError> {
        count(p);
        if p.bool("panic")? {
            panic!("deliberate test panic");
        }
        Err(NodeError::failed("deliberate test failure"))
    }
}

/// The shipped registry plus the test nodes.
pub fn test_registry() -> Registry {
    let mut r = petri::registry().expect("registry");
    r.register(Source).expect("register");
    r.register(Add).expect("register");
    r.register(Fail).expect("register");
    r
}

/// Compiles a document against `registry` with paths relative to `dir`.
pub fn compile_in(doc: &GraphDoc, registry: &Registry, dir: &Path) -> Compiled {
    let ctx =
        PathContext { graph_dir: dir.into(), out_dir: dir.join("out"), cwd: dir.into(), user_set: Default::default() };
    match compile(doc, registry, &ctx) {
        Ok(c) => c,
        Err(d) => panic!("graph does not compile: {d:?}"),
    }
}

/// Runs a document and returns the report.
pub fn run_doc(engine: &Engine, doc: &GraphDoc, dir: &Path, opts: &RunOptions) -> RunReport {
    let c = compile_in(doc, engine.registry(), dir);
    engine.run(&c, opts, &mut |_| {})
}

/// Options with a private default disk cache.
pub fn opts(dir: &Path) -> RunOptions {
    RunOptions { default_cache_dir: dir.join(".default-cache"), ..RunOptions::default() }
}
