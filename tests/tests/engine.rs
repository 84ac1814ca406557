//! Cache and scheduler behaviour, watched through what executed.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use petri_api::ParamValue;
use petri_engine::{Engine, Event, GraphDoc, NodeDoc, NodeStatus, PortRef, Pos, RunOptions};
use petri_tests::*;

fn f(v: f64) -> ParamValue {
    ParamValue::Float(v)
}
fn s(v: &str) -> ParamValue {
    ParamValue::Str(v.into())
}
fn i(v: i64) -> ParamValue {
    ParamValue::Int(v)
}

/// src → a → b, and src → c (a side branch).
fn chain(tag: &str) -> GraphDoc {
    let mut g = GraphDoc::default();
    g.add_node("src", NodeDoc::new("test.source", 1).with("tag", s(&format!("{tag}-src"))), Pos::default()).unwrap();
    g.add_node(
        "a",
        NodeDoc::new("test.add", 1).with("tag", s(&format!("{tag}-a"))).with("amount", f(1.0)),
        Pos::default(),
    )
    .unwrap();
    g.add_node(
        "b",
        NodeDoc::new("test.add", 1).with("tag", s(&format!("{tag}-b"))).with("amount", f(2.0)),
        Pos::default(),
    )
    .unwrap();
    g.add_node(
        "c",
        NodeDoc::new("test.add", 1).with("tag", s(&format!("{tag}-c"))).with("amount", f(3.0)),
        Pos::default(),
    )
    .unwrap();
    g.connect(PortRef::new("src", "image"), PortRef::new("a", "image"));
    g.connect(PortRef::new("a", "image"), PortRef::new("b", "image"));
    g.connect(PortRef::new("src", "image"), PortRef::new("c", "image"));
    g
}

fn executed(r: &petri_engine::RunReport) -> Vec<String> {
    r.with_status(NodeStatus::Executed)
}

#[test]
fn memory_cache_reruns_exactly_what_changed() {
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::new(test_registry());
    let mut g = chain("mem");
    let o = opts(dir.path());

    let r1 = run_doc(&engine, &g, dir.path(), &o);
    assert!(r1.ok);
    assert_eq!(executed(&r1), ["src", "a", "b", "c"]);

    let r2 = run_doc(&engine, &g, dir.path(), &o);
    assert!(executed(&r2).is_empty(), "second identical run executed {:?}", executed(&r2));
    assert_eq!(runs_of("mem-b"), 1);

    // Editing a's parameter re-runs a and its descendant b, nothing else.
    g.set_param("a", "amount", f(5.0)).unwrap();
    let r3 = run_doc(&engine, &g, dir.path(), &o);
    assert_eq!(executed(&r3), ["a", "b"]);

    // Renaming and moving nodes re-runs nothing.
    g.rename_node("a", "renamed").unwrap();
    g.layout.insert("b".into(), Pos { x: 500.0, y: -20.0 });
    let r4 = run_doc(&engine, &g, dir.path(), &o);
    assert!(executed(&r4).is_empty(), "rename/move executed {:?}", executed(&r4));

    // Setting a parameter back to an earlier value finds the earlier result.
    g.set_param("renamed", "amount", f(1.0)).unwrap();
    let r5 = run_doc(&engine, &g, dir.path(), &o);
    assert!(executed(&r5).is_empty(), "{:?}", executed(&r5));
}

#[test]
fn disk_cache_survives_a_new_engine_and_changed_input_files_rerun() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("input.txt");
    std::fs::write(&input, "one").unwrap();
    let mut g = chain("disk");
    g.set_param("src", "watch", s("input.txt")).unwrap();
    let o = RunOptions { cache_dir: Some(dir.path().join("cache")), ..opts(dir.path()) };

    let r1 = run_doc(&Engine::new(test_registry()), &g, dir.path(), &o);
    assert_eq!(executed(&r1).len(), 4);
    // A fresh engine (a new process, in effect) finds everything on disk.
    let r2 = run_doc(&Engine::new(test_registry()), &g, dir.path(), &o);
    assert!(executed(&r2).is_empty(), "{:?}", executed(&r2));
    assert_eq!(r2.with_status(NodeStatus::Cached).len(), 4);

    // Changing the watched file's bytes re-runs the reader and everything after it.
    std::fs::write(&input, "two").unwrap();
    let r3 = run_doc(&Engine::new(test_registry()), &g, dir.path(), &o);
    assert_eq!(executed(&r3), ["src", "a", "b", "c"]);

    // Only b changes: a is loaded from disk to feed it, and not executed.
    g.set_param("b", "amount", f(9.0)).unwrap();
    let before = runs_of("disk-a");
    let r4 = run_doc(&Engine::new(test_registry()), &g, dir.path(), &o);
    assert_eq!(executed(&r4), ["b"]);
    assert_eq!(runs_of("disk-a"), before);
}

#[test]
fn corrupt_disk_entries_are_recomputed_not_trusted() {
    let dir = tempfile::tempdir().unwrap();
    let g = chain("corrupt");
    let cache = dir.path().join("cache");
    let o = RunOptions { cache_dir: Some(cache.clone()), ..opts(dir.path()) };
    let r1 = run_doc(&Engine::new(test_registry()), &g, dir.path(), &o);
    assert!(r1.ok);
    // Damage every payload file in the cache.
    let mut damaged = 0;
    for shard in std::fs::read_dir(cache.join("v1")).unwrap().flatten() {
        for entry in std::fs::read_dir(shard.path()).unwrap().flatten() {
            let p = entry.path().join("0.bin");
            if p.exists() {
                let mut b = std::fs::read(&p).unwrap();
                let n = b.len();
                b[n - 1] ^= 0x55;
                std::fs::write(&p, b).unwrap();
                damaged += 1;
            }
        }
    }
    assert!(damaged >= 4);
    // b changes, so a must be loaded to feed it: its damaged entry is refused (reported in
    // the log), and a is recomputed — and so is src, whose entry a then needs.
    let mut g2 = g.clone();
    g2.set_param("b", "amount", f(7.0)).unwrap();
    let mut events = Vec::new();
    let c = compile_in(&g2, &test_registry(), dir.path());
    let engine = Engine::new(test_registry());
    let r2 = engine.run(&c, &o, &mut |e| events.push(e));
    assert!(
        events
            .iter()
            .any(|e| matches!(e, Event::NodeLog { node, message, .. } if node == "a" && message.contains("corrupt"))),
        "{events:?}"
    );
    assert!(r2.ok, "{:?}", r2.nodes);
    assert_eq!(executed(&r2), ["src", "a", "b"]);
    // The recomputed values are right: b = src (1) + 1 + 7.
    let out = engine.cached(&r2.keys["b"]).unwrap();
    let px = out["image"].as_stack().unwrap().pixels::<f32>().unwrap().to_vec();
    assert_eq!(px, vec![9.0; 4]);
}

#[test]
fn independent_branches_run_concurrently() {
    let dir = tempfile::tempdir().unwrap();
    let mut g = GraphDoc::default();
    g.add_node("src", NodeDoc::new("test.source", 1).with("tag", s("par-src")), Pos::default()).unwrap();
    for b in ["left", "right"] {
        g.add_node(
            b,
            NodeDoc::new("test.add", 1).with("sleep_ms", i(800)).with("tag", s(&format!("par-{b}"))),
            Pos::default(),
        )
        .unwrap();
        g.connect(PortRef::new("src", "image"), PortRef::new(b, "image"));
    }
    let engine = Engine::new(test_registry());
    let o = RunOptions { jobs: 2, ..opts(dir.path()) };
    let t = Instant::now();
    let r = run_doc(&engine, &g, dir.path(), &o);
    let wall = t.elapsed();
    assert!(r.ok);
    // Sequential would take ≥ 1.6 s; two workers take ≈ 0.8 s.
    assert!(wall < Duration::from_millis(1350), "two 0.8 s branches took {wall:?}");

    // With one worker they run one after the other.
    let engine = Engine::new(test_registry());
    let mut g1 = g.clone();
    g1.set_param("left", "amount", f(2.0)).unwrap();
    g1.set_param("right", "amount", f(2.0)).unwrap();
    let t = Instant::now();
    let r = run_doc(&engine, &g1, dir.path(), &RunOptions { jobs: 1, ..opts(dir.path()) });
    assert!(r.ok);
    assert!(t.elapsed() >= Duration::from_millis(1550), "jobs=1 took only {:?}", t.elapsed());
}

#[test]
fn a_failure_or_panic_skips_only_its_descendants() {
    let dir = tempfile::tempdir().unwrap();
    for panic in [false, true] {
        let mut g = chain(&format!("fail{panic}"));
        g.add_node("bad", NodeDoc::new("test.fail", 1).with("panic", ParamValue::Bool(panic)), Pos::default()).unwrap();
        g.add_node("after", NodeDoc::new("test.add", 1), Pos::default()).unwrap();
        g.connect(PortRef::new("src", "image"), PortRef::new("bad", "image"));
        g.connect(PortRef::new("bad", "image"), PortRef::new("after", "image"));
        let r = run_doc(&Engine::new(test_registry()), &g, dir.path(), &opts(dir.path()));
        assert!(!r.ok);
        assert_eq!(r.node("bad").unwrap().status, NodeStatus::Failed);
        let err = r.node("bad").unwrap().error.clone().unwrap();
        assert!(err.contains("deliberate test"), "{err}");
        assert_eq!(r.node("after").unwrap().status, NodeStatus::Skipped);
        for ok in ["src", "a", "b", "c"] {
            assert_eq!(r.node(ok).unwrap().status, NodeStatus::Executed, "{ok} should not be affected");
        }
    }
}

#[test]
fn cancel_stops_the_run_and_the_running_node() {
    let dir = tempfile::tempdir().unwrap();
    let mut g = GraphDoc::default();
    g.add_node("src", NodeDoc::new("test.source", 1), Pos::default()).unwrap();
    g.add_node("slow", NodeDoc::new("test.add", 1).with("sleep_ms", i(20000)), Pos::default()).unwrap();
    g.add_node("next", NodeDoc::new("test.add", 1), Pos::default()).unwrap();
    g.connect(PortRef::new("src", "image"), PortRef::new("slow", "image"));
    g.connect(PortRef::new("slow", "image"), PortRef::new("next", "image"));
    let o = opts(dir.path());
    let cancel = o.cancel.clone();
    let engine = Engine::new(test_registry());
    let c = compile_in(&g, engine.registry(), dir.path());
    let t = Instant::now();
    let r = engine.run(&c, &o, &mut |e| {
        if let Event::NodeProgress { node, .. } = &e {
            if node == "slow" {
                cancel.store(true, Ordering::SeqCst);
            }
        }
    });
    assert!(t.elapsed() < Duration::from_secs(5), "cancel took {:?}", t.elapsed());
    assert!(r.cancelled && !r.ok);
    assert_eq!(r.node("slow").unwrap().status, NodeStatus::Failed);
    assert_eq!(r.node("next").unwrap().status, NodeStatus::Skipped);
    // A cancelled node leaves nothing in the cache: the next run executes it.
    let o2 = opts(dir.path());
    let mut g2 = g.clone();
    g2.set_param("slow", "sleep_ms", i(20000)).unwrap();
    let c2 = compile_in(&g2, engine.registry(), dir.path());
    let cancel2 = o2.cancel.clone();
    let r2 = engine.run(&c2, &o2, &mut |e| {
        if matches!(&e, Event::NodeStarted { node, .. } if node == "slow") {
            cancel2.store(true, Ordering::SeqCst);
        }
    });
    assert_eq!(r2.node("slow").unwrap().status, NodeStatus::Failed);
}

#[test]
fn run_to_target_runs_only_its_ancestors() {
    let dir = tempfile::tempdir().unwrap();
    let g = chain("target");
    let engine = Engine::new(test_registry());
    let o = RunOptions { targets: vec!["a".into()], ..opts(dir.path()) };
    let r = run_doc(&engine, &g, dir.path(), &o);
    assert!(r.ok);
    assert_eq!(executed(&r), ["src", "a"]);
    assert!(r.node("b").is_none() && r.node("c").is_none());
    // Then running everything reuses src and a.
    let r2 = run_doc(&engine, &g, dir.path(), &opts(dir.path()));
    assert_eq!(executed(&r2), ["b", "c"]);
}

#[test]
fn events_arrive_in_a_sensible_order() {
    let dir = tempfile::tempdir().unwrap();
    let g = chain("events");
    let engine = Engine::new(test_registry());
    let c = compile_in(&g, engine.registry(), dir.path());
    let mut events = Vec::new();
    let r = engine.run(&c, &opts(dir.path()), &mut |e| events.push(e));
    assert!(matches!(events.first(), Some(Event::RunStarted { to_run, .. }) if to_run.len() == 4));
    assert!(matches!(events.last(), Some(Event::RunFinished { ok: true, .. })));
    let pos = |pred: &dyn Fn(&Event) -> bool| events.iter().position(pred).unwrap();
    let a_done = pos(&|e| matches!(e, Event::NodeFinished { node, .. } if node == "a"));
    let b_start = pos(&|e| matches!(e, Event::NodeStarted { node, .. } if node == "b"));
    assert!(a_done < b_start);
    assert!(events.iter().all(|e| e.run() == r.run));
    let _ = Arc::new(());
}
