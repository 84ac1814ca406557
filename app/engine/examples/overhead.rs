//! Engine overhead benchmark: a chain of 100 trivial nodes, cold (everything executes) and
//! fully cached (nothing executes), in memory and with a disk cache.
//!
//!     cargo run --release -p petri-engine --example overhead
//!
//! The nodes do almost nothing (add 1 to a 16-pixel image), so the times are the engine's own:
//! keys, planning, scheduling, events, caching. Prints a Markdown table (median of 20 runs).

use std::time::Instant;

use petri_api::{
    Inputs, Node, NodeCtx, NodeError, NodeSpec, Outputs, ParamSpec, Params, PortType, Registry, Stack, Value,
};
use petri_engine::{Engine, GraphDoc, NodeDoc, PathContext, PortRef, Pos, RunOptions, compile};

struct Source;
impl Node for Source {
    fn spec(&self) -> NodeSpec {
        NodeSpec::new("bench.source", 1, "bench", "A tiny image.")
            .output("image", PortType::Image, "Out.")
            .param(ParamSpec::int("seed", 0, "Changes the key."))
    }
    fn run(&self, _: &NodeCtx, p: &Params, _: &Inputs) -> Result<Outputs, NodeError> {
        let v = p.i64("seed")? as f32;
        let s = Stack::from_2d(4, 4, vec![v; 16]).map_err(|e| NodeError::failed(e.to_string()))?;
        Ok(Outputs::new().with("image", Value::Image(s)))
    }
}

struct Inc;
impl Node for Inc {
    fn spec(&self) -> NodeSpec {
        NodeSpec::new("bench.inc", 1, "bench", "Adds one.").input("image", PortType::Image, "In.").output(
            "image",
            PortType::Image,
            "Out.",
        )
    }
    fn run(&self, _: &NodeCtx, _: &Params, i: &Inputs) -> Result<Outputs, NodeError> {
        let s = i.image("image")?;
        let px: Vec<f32> = s.pixels::<f32>().unwrap_or(&[]).iter().map(|v| v + 1.0).collect();
        Ok(Outputs::new().with("image", Value::Image(s.with_pixels(px).map_err(|e| NodeError::failed(e.to_string()))?)))
    }
}

fn chain(n: usize, seed: i64) -> GraphDoc {
    let mut g = GraphDoc::default();
    g.add_node("n0", NodeDoc::new("bench.source", 1).with("seed", petri_api::ParamValue::Int(seed)), Pos::default())
        .unwrap();
    for i in 1..n {
        g.add_node(&format!("n{i}"), NodeDoc::new("bench.inc", 1), Pos::default()).unwrap();
        g.connect(PortRef::new(&format!("n{}", i - 1), "image"), PortRef::new(&format!("n{i}"), "image"));
    }
    g
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    let mut r = Registry::new();
    r.register(Source).unwrap();
    r.register(Inc).unwrap();
    let engine = Engine::new(r);
    let dir = std::env::temp_dir().join(format!("petri-overhead-{}", std::process::id()));
    let ctx = PathContext {
        graph_dir: dir.clone(),
        out_dir: dir.join("out"),
        cwd: dir.clone(),
        user_set: Default::default(),
    };
    let n = 100;
    let reps = 20;
    let mut rows = Vec::new();
    for (label, disk) in [("memory cache", false), ("disk cache", true)] {
        let opts = RunOptions {
            cache_dir: disk.then(|| dir.join("cache")),
            default_cache_dir: dir.join("default-cache"),
            ..RunOptions::default()
        };
        let (mut cold, mut warm, mut compile_t) = (Vec::new(), Vec::new(), Vec::new());
        for rep in 0..reps {
            let doc = chain(n, rep as i64 + if disk { 1000 } else { 0 });
            let t = Instant::now();
            let c = compile(&doc, engine.registry(), &ctx).unwrap();
            compile_t.push(t.elapsed().as_secs_f64());
            let t = Instant::now();
            let a = engine.run(&c, &opts, &mut |_| {});
            cold.push(t.elapsed().as_secs_f64());
            assert!(a.ok && a.nodes.iter().all(|x| x.status == petri_engine::NodeStatus::Executed));
            if disk {
                engine.clear_memory(); // force the cached run to come from disk
            }
            let t = Instant::now();
            let b = engine.run(&c, &opts, &mut |_| {});
            warm.push(t.elapsed().as_secs_f64());
            assert!(b.ok && b.nodes.iter().all(|x| x.status == petri_engine::NodeStatus::Cached));
        }
        rows.push((label, median(compile_t), median(cold), median(warm)));
    }
    println!("| cache | compile 100 nodes | cold run (100 executed) | fully cached run (0 executed) | per node cold |");
    println!("|---|---:|---:|---:|---:|");
    for (label, c, cold, warm) in rows {
        println!(
            "| {label} | {:.2} ms | {:.2} ms | {:.2} ms | {:.1} µs |",
            c * 1e3,
            cold * 1e3,
            warm * 1e3,
            cold * 1e6 / n as f64
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}
