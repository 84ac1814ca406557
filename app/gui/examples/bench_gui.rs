//! Editor benchmarks (results in docs/benchmarks/gui.md):
//!
//! 1. Building the canvas frame (the cached static layer: wires and cards) for 500 nodes and
//!    600 wires, median of N builds, with the tiny-skia renderer the editor uses; also the
//!    whole window laid out and rasterised headless (for scale), and hit-testing.
//! 2. Responsiveness: a 50-node graph whose training node runs for a few seconds in the
//!    background; the UI loop (drain events, update, build the view and the canvas frame)
//!    runs every 16 ms on this thread and its longest iteration is reported.
//!
//! `cargo run --release -p petri-gui --example bench_gui [N]`

use std::time::{Duration, Instant};

use iced::advanced::renderer::Headless;
use iced::widget::canvas::Frame;
use iced::{Font, Pixels, Size};
use petri_api::ParamValue;
use petri_engine::{NodeDoc, PortRef, Pos};
use petri_gui::App;
use petri_gui::app::Message;
use petri_gui::canvas::{GraphCanvas, draw_graph};
use petri_gui::run::RunMsg;
use petri_gui::testing::{big_doc, registry};

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn renderer() -> iced::Renderer {
    iced::futures::executor::block_on(<iced::Renderer as Headless>::new(Font::DEFAULT, Pixels(16.0), Some("tiny-skia")))
        .expect("headless tiny-skia renderer")
}

/// Time to build the wires-and-cards frame. `cold`: the world-space scene is rebuilt too (after
/// an edit, a node state change or a selection); otherwise it is reused (pan and zoom).
fn frame_ms(app: &App, r: &iced::Renderer, size: Size, cold: bool) -> f64 {
    if cold {
        app.scene.clear();
    }
    let g = GraphCanvas {
        doc: &app.doc,
        registry: app.registry(),
        cards: &app.cards,
        states: &app.states,
        problems: &app.problems,
        selection: &app.selection,
        selected_wire: None,
        view: app.view,
        grid_cache: &app.grid_cache,
        graph_cache: &app.graph_cache,
        scene: &app.scene,
        known_bounds: (0.0, 0.0, size.width, size.height),
        hover: &app.hover,
    };
    let t = Instant::now();
    let mut f = Frame::new(r, size);
    draw_graph(&mut f, &g, size);
    let geometry = f.into_geometry();
    let ms = t.elapsed().as_secs_f64() * 1e3;
    drop(geometry);
    ms
}

fn main() {
    let n: usize = std::env::args().nth(1).and_then(|s| s.parse().ok()).unwrap_or(50);
    let dir = std::env::temp_dir().join(format!("petri-gui-bench-{}", std::process::id()));
    let _ = std::fs::create_dir_all(&dir);

    // 1. Frame building, 500 nodes / 600 wires.
    let doc = big_doc(500, 600);
    assert_eq!((doc.nodes.len(), doc.edges.len()), (500, 600));
    let mut app = App::new(registry(), doc, None, dir.clone(), "bench");
    let r = renderer();
    let size = Size::new(1280.0, 700.0);
    app.canvas_size = (size.width, size.height);
    // Everything in view (zoomed out: every card and wire is drawn, text hidden below 35 %).
    app.fit();
    let cold: Vec<f64> = (0..n).map(|_| frame_ms(&app, &r, size, true)).collect();
    let warm: Vec<f64> = (0..n).map(|_| frame_ms(&app, &r, size, false)).collect();
    // Zoomed in at 100 %: text drawn, off-screen chunks culled.
    app.view = petri_gui::layout::Viewport::default();
    let zoomed_cold: Vec<f64> = (0..n).map(|_| frame_ms(&app, &r, size, true)).collect();
    let zoomed: Vec<f64> = (0..n).map(|_| frame_ms(&app, &r, size, false)).collect();
    let stats = |v: &[f64]| {
        format!(
            "median {:.2} ms (min {:.2}, max {:.2})",
            median(v.to_vec()),
            v.iter().copied().fold(f64::MAX, f64::min),
            v.iter().copied().fold(0.0, f64::max)
        )
    };
    let fit_zoom = {
        let mut a = App::new(registry(), app.doc.clone(), None, dir.clone(), "bench");
        a.canvas_size = (size.width, size.height);
        a.fit();
        a.view.zoom
    };
    println!("frame build, 500 nodes / 600 wires, fit to view (all visible, zoom {fit_zoom:.2}) [{n} builds each]:");
    println!("  scene rebuilt (after an edit, a state change, a selection): {}", stats(&cold));
    println!("  scene reused (pan, zoom):                                   {}", stats(&warm));
    println!("frame build, 100 % zoom (text drawn, off-screen chunks culled):");
    println!("  scene rebuilt: {}; scene reused: {}", stats(&zoomed_cold), stats(&zoomed));
    // For scale: the whole window (layout, every widget, the canvas layers) rasterised by
    // tiny-skia into pixels, as iced_test's headless snapshot does it.
    app.fit();
    app.graph_cache.clear();
    let window: Vec<f64> = (0..5)
        .map(|_| {
            app.graph_cache.clear();
            app.grid_cache.clear();
            let t = Instant::now();
            let mut ui =
                iced_test::Simulator::with_size(iced::Settings::default(), Size::new(1280.0, 800.0), app.view());
            let snap = ui.snapshot(&iced::Theme::Dark).expect("snapshot");
            std::hint::black_box(&snap);
            t.elapsed().as_secs_f64() * 1e3
        })
        .collect();
    println!(
        "whole 1280×800 window rasterised (tiny-skia, fit to view, 500 nodes): median {:.1} ms [5 renders]",
        median(window)
    );
    // Hit-testing the whole graph (every mouse move over the canvas does one).
    let t = Instant::now();
    let reps = 1000;
    for i in 0..reps {
        let p = petri_gui::layout::Pt::new((i * 37 % 6000) as f32, (i * 53 % 2800) as f32);
        std::hint::black_box(petri_gui::layout::hit(&app.cards, &app.doc.edges, p, 4.0));
    }
    println!(
        "hit test, 500 nodes / 600 wires: {:.3} ms per mouse position",
        t.elapsed().as_secs_f64() * 1e3 / reps as f64
    );

    // 2. Responsiveness while a training node runs.
    let mut doc = big_doc(49, 60);
    doc.add_node("train", NodeDoc::new("test.train", 1), Pos { x: 0.0, y: -200.0 }).unwrap();
    doc.set_param("train", "steps", ParamValue::Int(200)).unwrap();
    doc.set_param("train", "step_ms", ParamValue::Int(15)).unwrap();
    doc.connect(PortRef::new("n0", "image"), PortRef::new("train", "image"));
    let mut app = App::new(registry(), doc, None, dir.clone(), "bench");
    app.disk_cache_dir = Some(dir.join("cache"));
    app.canvas_size = (size.width, size.height);
    app.fit();
    let _ =
        app.update(Message::Canvas(petri_gui::canvas::CanvasMsg::PressNode { id: "train".into(), additive: false }));
    app.panel = petri_gui::app::Panel::Curves;
    let mut rx = app.start_run_stream(false).expect("run");
    let t0 = Instant::now();
    let (mut frames, mut events, mut worst, mut busy) = (0usize, 0usize, 0.0f64, Vec::new());
    let mut done = false;
    while !done {
        let frame_start = Instant::now();
        // Drain what the executor sent (never waiting for it).
        while let Ok(Some(m)) = rx.try_recv().map(Some) {
            events += 1;
            if matches!(m, RunMsg::Done(_)) {
                done = true;
            }
            let _ = app.update(Message::RunMsg(m));
        }
        let view = app.view();
        drop(view);
        app.graph_cache.clear();
        let f = frame_ms(&app, &r, size, false);
        let ms = frame_start.elapsed().as_secs_f64() * 1e3;
        let _ = f;
        busy.push(ms);
        worst = worst.max(ms);
        frames += 1;
        let left = Duration::from_millis(16).saturating_sub(frame_start.elapsed());
        std::thread::sleep(left);
        if t0.elapsed() > Duration::from_secs(60) {
            panic!("the run did not finish in 60 s");
        }
    }
    let total = t0.elapsed().as_secs_f64();
    let curves = app.metrics.get("train").map(|m| m.values().map(Vec::len).sum::<usize>()).unwrap_or(0);
    busy.sort_by(f64::total_cmp);
    let p99 = busy[(busy.len() * 99 / 100).min(busy.len() - 1)];
    println!(
        "responsiveness, 50 nodes with a training node running {total:.2} s: {frames} UI frames ({:.0} per s), {events} events, \
         UI work per frame median {:.2} ms, p99 {p99:.2} ms, max {worst:.2} ms; {curves} curve points shown",
        frames as f64 / total,
        median(busy.clone())
    );
    assert!(curves >= 200, "live curves received");
    let _ = std::fs::remove_dir_all(&dir);
}
