//! Headless tests of the editor with `iced_test`: the real views and canvas, driven by
//! simulated mouse and keyboard events, with no window and no GPU (tiny-skia renderer).

use std::collections::BTreeMap;
use std::path::Path;

use iced::keyboard::key::Named;
use iced::mouse;
use iced::{Event, Point, Settings, Size};
use iced_test::Simulator;
use petri_api::ParamValue;
use petri_engine::{GraphDoc, PortRef};
use petri_gui::app::{EditMsg, Message};
use petri_gui::layout::Pt;
use petri_gui::run::{NodeState, RunMsg};
use petri_gui::testing::{doc_chain, registry};
use petri_gui::{App, layout};

const W: f32 = 1280.0;
const H: f32 = 800.0;

fn app_with(doc: GraphDoc) -> (App, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let mut app = App::new(registry(), doc, None, dir.path().to_path_buf(), "test");
    app.disk_cache_dir = Some(dir.path().join("cache"));
    // Let the canvas report where it is, as it does on its first event in a window.
    interact(&mut app, |ui| {
        ui.point_at(Point::new(5.0, 5.0));
        let _ = ui.simulate([Event::Mouse(mouse::Event::CursorMoved { position: Point::new(5.0, 5.0) })]);
    });
    (app, dir)
}

/// Shows the app's current view in a simulator, lets `f` act on it, then feeds the messages
/// the interface produced back into `update` (as the runtime does).
fn interact(app: &mut App, f: impl FnOnce(&mut Simulator<'_, Message>)) {
    let messages: Vec<Message> = {
        let mut ui = Simulator::with_size(Settings::default(), Size::new(W, H), app.view());
        f(&mut ui);
        ui.into_messages().collect()
    };
    for m in messages {
        let _ = app.update(m);
    }
}

/// Window position of a world point on the canvas.
fn screen(app: &App, p: Pt) -> Point {
    let s = app.view.to_screen(p);
    Point::new(app.canvas_origin.0 + s.x, app.canvas_origin.1 + s.y)
}

fn port(app: &App, node: &str, name: &str, output: bool) -> Point {
    screen(app, app.cards[node].port(name, output).expect("port").pos)
}

fn drag(app: &mut App, from: Point, to: Point) {
    interact(app, |ui| {
        ui.point_at(from);
        let _ = ui.simulate([Event::Mouse(mouse::Event::ButtonPressed(mouse::Button::Left))]);
        let mid = Point::new((from.x + to.x) / 2.0, (from.y + to.y) / 2.0);
        for p in [mid, to] {
            ui.point_at(p);
            let _ = ui.simulate([Event::Mouse(mouse::Event::CursorMoved { position: p })]);
        }
        let _ = ui.simulate([Event::Mouse(mouse::Event::ButtonReleased(mouse::Button::Left))]);
    });
}

fn click_at(app: &mut App, p: Point) {
    interact(app, |ui| {
        ui.point_at(p);
        let _ = ui.simulate(iced_test::simulator::click());
    });
}

/// Runs the whole graph in the background as the editor does, waiting for it here.
fn run_all(app: &mut App) {
    let rx = app.start_run_stream(false).expect("run starts");
    for m in iced::futures::executor::block_on_stream(rx) {
        let done = matches!(m, RunMsg::Done(_));
        let _ = app.update(Message::RunMsg(m));
        if done {
            break;
        }
    }
}

#[test]
fn a_node_is_added_from_the_finder_where_the_cursor_is() {
    let (mut app, _d) = app_with(doc_chain());
    let (cx, cy) = (600.0, app.canvas_size.1 - 30.0);
    let at = Point::new(app.canvas_origin.0 + cx, app.canvas_origin.1 + cy);
    let world = app.view.to_world(Pt::new(cx, cy));
    // Tab over the canvas opens the finder.
    interact(&mut app, |ui| {
        ui.point_at(at);
        let _ = ui.simulate(iced_test::simulator::tap_key(Named::Tab, None));
    });
    assert!(app.finder.is_some(), "Tab opens the finder");
    // Typing searches; clicking a result adds that node.
    interact(&mut app, |ui| {
        ui.click(iced::widget::Id::new(petri_gui::app::FINDER_INPUT)).expect("finder input");
        let _ = ui.typewrite("thresh");
    });
    assert_eq!(app.finder.as_ref().unwrap().query, "thresh");
    interact(&mut app, |ui| {
        ui.click("test.threshold").expect("search result");
    });
    assert!(app.finder.is_none());
    let n = &app.doc.nodes["threshold"];
    assert_eq!(n.type_id, "test.threshold");
    let p = app.doc.layout["threshold"];
    assert_eq!(
        (p.x, p.y),
        (layout::snap(world.x as f64), layout::snap(world.y as f64)),
        "dropped at the cursor, snapped"
    );
    assert_eq!(app.selection, ["threshold".to_string()].into());
    assert_eq!(app.states.get("threshold"), Some(&NodeState::Stale));
}

#[test]
fn dragging_from_a_port_to_a_compatible_port_connects_them() {
    let mut doc = doc_chain();
    doc.disconnect(&PortRef::new("add2", "image"));
    let (mut app, _d) = app_with(doc);
    let from = port(&app, "src2", "image", true);
    let to = port(&app, "add2", "image", false);
    drag(&mut app, from, to);
    assert_eq!(
        app.doc.source_of(&PortRef::new("add2", "image")),
        Some(&PortRef::new("src2", "image")),
        "{}",
        app.status
    );
    assert!(app.dirty);
    // Dropping on a card (not on a port) picks its first compatible input.
    let mut doc = doc_chain();
    doc.disconnect(&PortRef::new("add2", "image"));
    let (mut app, _d) = app_with(doc);
    let from = port(&app, "add", "image", true);
    let card = screen(&app, app.cards["add2"].rect.center());
    drag(&mut app, from, card);
    assert_eq!(app.doc.source_of(&PortRef::new("add2", "image")), Some(&PortRef::new("add", "image")));
}

#[test]
fn an_incompatible_connection_is_refused_with_the_reason() {
    let (mut app, _d) = app_with(doc_chain());
    let before = app.doc.clone();
    let from = port(&app, "table", "table", true);
    let to = port(&app, "add2", "image", false);
    drag(&mut app, from, to);
    assert_eq!(app.doc, before, "nothing changed");
    assert!(app.status.contains("takes an image") && app.status.contains("gives a table"), "{}", app.status);
    assert!(!app.history.can_undo());
    // A wire that would make a loop is refused too.
    let from = port(&app, "add2", "image", true);
    let to = port(&app, "add", "image", false);
    drag(&mut app, from, to);
    assert_eq!(app.doc, before);
    assert!(app.status.contains("loop"), "{}", app.status);
}

#[test]
fn editing_a_parameter_makes_the_node_and_its_descendants_stale() {
    let (mut app, _d) = app_with(doc_chain());
    run_all(&mut app);
    for id in ["src", "add", "add2", "src2", "table"] {
        assert!(matches!(app.states[id], NodeState::Done { .. }), "{id}: {:?}", app.states[id]);
    }
    // The result of a node is shown when it is selected.
    let at = screen(&app, app.cards["add"].rect.center());
    click_at(&mut app, at);
    assert_eq!(app.selection, ["add".to_string()].into());
    assert!(app.viewer.rendered.is_some(), "the output image is shown");
    // Type a new amount into the inspector: first out of range (refused inline), then valid.
    let field = iced::widget::Id::from("param-add-amount".to_string());
    interact(&mut app, |ui| {
        ui.click(field.clone()).expect("amount field");
        let _ = ui.simulate(iced_test::simulator::tap_key(Named::End, None));
        let _ = ui.typewrite("5");
    });
    assert!(app.param_problems[&("add".to_string(), "amount".to_string())].contains("at most 10"));
    assert!(matches!(app.states["add"], NodeState::Done { .. }), "an invalid value changes nothing");
    interact(&mut app, |ui| {
        ui.click(field.clone()).expect("amount field");
        let _ = ui.simulate(iced_test::simulator::tap_key(Named::End, None));
        let _ = ui.simulate(iced_test::simulator::tap_key(Named::Backspace, None));
        let _ = ui.simulate(iced_test::simulator::tap_key(Named::Backspace, None));
        let _ = ui.typewrite("4");
    });
    assert_eq!(app.doc.nodes["add"].params["amount"], ParamValue::Float(4.0));
    assert!(!app.param_problems.contains_key(&("add".to_string(), "amount".to_string())));
    assert_eq!(app.states["add"], NodeState::Stale);
    assert_eq!(app.states["add2"], NodeState::Stale);
    for id in ["src", "src2", "table"] {
        assert!(matches!(app.states[id], NodeState::Done { .. }), "{id} is not downstream");
    }
    assert!(app.viewer.rendered.is_none(), "no stale preview");
    // Running again re-runs only the stale part (the rest comes from the session's cache).
    run_all(&mut app);
    assert!(matches!(app.states["add"], NodeState::Done { .. }));
    assert!(matches!(app.states["src"], NodeState::Cached));
}

#[test]
fn events_of_a_run_older_than_the_latest_edit_are_ignored() {
    let (mut app, dir) = app_with(doc_chain());
    let rx = app.start_run_stream(false).unwrap();
    let msgs: Vec<RunMsg> = iced::futures::executor::block_on_stream(rx).collect();
    // The user edits 'add' before the run's events arrive.
    let _ = app.update(Message::Param {
        node: "add".into(),
        name: "amount".into(),
        edit: petri_gui::app::ParamEdit::Value(ParamValue::Float(2.0)),
    });
    for m in msgs {
        let _ = app.update(Message::RunMsg(m));
    }
    // What the run says about 'add' and what follows it describes the graph before the edit.
    assert_eq!(app.states["add"], NodeState::Stale);
    assert_eq!(app.states["add2"], NodeState::Stale);
    assert!(app.outputs_of("add").is_none() && app.outputs_of("add2").is_none(), "no stale result shown");
    // The nodes the edit did not touch keep what the run computed for them.
    for id in ["src", "src2", "table"] {
        assert!(matches!(app.states[id], NodeState::Done { .. }), "{id}: {:?}", app.states[id]);
    }
    assert!(app.outputs_of("table").is_some());
    assert!(app.active.is_none(), "the run is over");
    assert!(app.status.contains("changed during the run"), "{}", app.status);
    // After opening another graph, nothing a run of the previous one says is applied.
    let rx = app.start_run_stream(false).unwrap();
    let msgs: Vec<RunMsg> = iced::futures::executor::block_on_stream(rx).collect();
    let other = dir.path().join("other.ron");
    petri_engine::save_file(&other, &doc_chain()).unwrap();
    app.open_path(&other);
    for m in msgs {
        let _ = app.update(Message::RunMsg(m));
    }
    assert!(app.states.is_empty(), "{:?}", app.states);
    assert!(app.active.is_none());
}

#[test]
fn a_training_node_keeps_its_live_curves_while_another_branch_is_edited() {
    let mut doc = doc_chain();
    doc.add_node("train", petri_engine::NodeDoc::new("test.train", 1), petri_engine::Pos { x: 480.0, y: 200.0 })
        .unwrap();
    doc.set_param("train", "steps", ParamValue::Int(30)).unwrap();
    doc.set_param("train", "step_ms", ParamValue::Int(10)).unwrap();
    doc.connect(PortRef::new("src2", "image"), PortRef::new("train", "image"));
    let (mut app, _d) = app_with(doc);
    let rx = app.start_run_stream(false).unwrap();
    let mut edited = false;
    for m in iced::futures::executor::block_on_stream(rx) {
        let metric = matches!(&m, RunMsg::Event(petri_engine::Event::NodeMetric { .. }));
        let done = matches!(m, RunMsg::Done(_));
        let _ = app.update(Message::RunMsg(m));
        if metric && !edited {
            // Mid-training, the user changes a node on another branch.
            edited = true;
            let _ = app.update(Message::Param {
                node: "add2".into(),
                name: "amount".into(),
                edit: petri_gui::app::ParamEdit::Value(ParamValue::Float(3.0)),
            });
            assert_eq!(app.states["add2"], NodeState::Stale);
        }
        if done {
            break;
        }
    }
    assert!(edited);
    assert_eq!(app.metrics["train"]["train_loss"].len(), 30, "every training step reached the curves");
    assert_eq!(app.metrics["train"]["val_loss"].len(), 6);
    assert!(matches!(app.states["train"], NodeState::Done { .. }), "{:?}", app.states["train"]);
    assert_eq!(app.states["add2"], NodeState::Stale);
    assert!(app.outputs_of("train").is_some());
}

#[test]
fn cancelling_a_run_leaves_unfinished_nodes_stale() {
    let mut doc = doc_chain();
    doc.set_param("add", "sleep_ms", ParamValue::Int(20000)).unwrap();
    let (mut app, _d) = app_with(doc);
    let rx = app.start_run_stream(false).unwrap();
    let mut cancelled_at = None;
    for m in iced::futures::executor::block_on_stream(rx) {
        let done = matches!(m, RunMsg::Done(_));
        let _ = app.update(Message::RunMsg(m));
        if cancelled_at.is_none()
            && matches!(app.states.get("add"), Some(NodeState::Running { fraction, .. }) if *fraction > 0.0)
        {
            // The card shows the progress; the toolbar's Cancel stops the run.
            interact(&mut app, |ui| {
                ui.click("Cancel").expect("Cancel button");
            });
            cancelled_at = Some(std::time::Instant::now());
        }
        if done {
            break;
        }
    }
    let t = cancelled_at.expect("add ran").elapsed();
    assert!(t < std::time::Duration::from_secs(5), "stopped promptly ({t:?})");
    assert!(app.active.is_none());
    assert_eq!(app.status, "Run cancelled");
    assert_eq!(app.states["add"], NodeState::Stale, "cancelled is not failed");
    assert_eq!(app.states["add2"], NodeState::Stale);
    assert!(matches!(app.states["src"], NodeState::Done { .. }));
    assert!(app.log.iter().any(|l| l == "add: cancelled"), "{:?}", app.log);
}

#[test]
fn delete_undo_and_redo_from_the_edit_menu() {
    let (mut app, _d) = app_with(doc_chain());
    let original = app.doc.clone();
    let at = screen(&app, app.cards["add"].rect.center());
    click_at(&mut app, at);
    interact(&mut app, |ui| {
        ui.click("Edit").expect("Edit menu");
        ui.click("Delete").expect("Delete in the Edit menu");
    });
    assert!(!app.doc.nodes.contains_key("add"));
    assert!(app.doc.edges.iter().all(|e| e.from.node != "add" && e.to.node != "add"), "its wires go too");
    let deleted = app.doc.clone();
    interact(&mut app, |ui| {
        ui.click("Edit").expect("Edit menu");
        ui.click("Undo").expect("Undo in the Edit menu");
    });
    assert_eq!(app.doc, original);
    interact(&mut app, |ui| {
        ui.click("Edit").expect("Edit menu");
        ui.click("Redo").expect("Redo in the Edit menu");
    });
    assert_eq!(app.doc, deleted);
    // Moving a node is one undo step, snapped to the grid.
    let (mut app, _d) = app_with(doc_chain());
    let c = screen(&app, app.cards["src2"].rect.center());
    drag(&mut app, c, Point::new(c.x + 57.0, c.y + 33.0));
    let p = app.doc.layout["src2"];
    assert_eq!((p.x % 20.0, p.y % 20.0), (0.0, 0.0), "snapped: {p:?}");
    assert_ne!(p, original.layout["src2"]);
    let _ = app.update(Message::Edit(EditMsg::Undo));
    assert_eq!(app.doc, original);
}

#[test]
fn a_wire_is_selected_by_clicking_it_and_deleted() {
    let (mut app, _d) = app_with(doc_chain());
    let (a, b) =
        layout::wire_ends(&app.cards, &app.doc.edges.iter().find(|e| e.to.node == "table").unwrap().clone()).unwrap();
    let (c1, c2) = layout::wire_controls(a, b);
    let mid = layout::bezier(a, c1, c2, b, 0.5);
    let at = screen(&app, mid);
    click_at(&mut app, at);
    assert_eq!(app.selected_wire.as_ref().map(|e| e.to.clone()), Some(PortRef::new("table", "image")));
    let _ = app.update(Message::Edit(EditMsg::Delete));
    assert!(app.doc.source_of(&PortRef::new("table", "image")).is_none());
}

#[test]
fn box_selection_copy_paste_and_duplicate() {
    let (mut app, _d) = app_with(doc_chain());
    // A box around the two top-left cards only.
    let a = screen(&app, Pt::new(-20.0, -20.0));
    let b = screen(&app, Pt::new(430.0, 60.0));
    drag(&mut app, a, b);
    assert_eq!(app.selection, ["add".to_string(), "src".to_string()].into());
    let _ = app.update(Message::Edit(EditMsg::Copy));
    let _ = app.update(Message::Edit(EditMsg::Paste));
    assert_eq!(app.selection, ["add_2".to_string(), "src_2".to_string()].into());
    assert_eq!(app.doc.source_of(&PortRef::new("add_2", "image")), Some(&PortRef::new("src_2", "image")));
    let _ = app.update(Message::Edit(EditMsg::Duplicate));
    assert_eq!(app.doc.nodes.len(), 9);
    let _ = app.update(Message::Edit(EditMsg::Undo));
    let _ = app.update(Message::Edit(EditMsg::Undo));
    assert_eq!(app.doc, doc_chain());
}

/// Top-left corner of the layout positions of `ids`.
fn top_left(app: &App, ids: &std::collections::BTreeSet<String>) -> (f64, f64) {
    let ps: Vec<_> = ids.iter().map(|id| app.doc.layout[id]).collect();
    (ps.iter().map(|p| p.x).fold(f64::MAX, f64::min), ps.iter().map(|p| p.y).fold(f64::MAX, f64::min))
}

fn move_mouse(app: &mut App, p: Point) {
    interact(app, |ui| {
        ui.point_at(p);
        let _ = ui.simulate([Event::Mouse(mouse::Event::CursorMoved { position: p })]);
    });
}

#[test]
fn paste_puts_the_copied_group_at_the_mouse_snapped_to_the_grid() {
    let (mut app, _d) = app_with(doc_chain());
    app.selection = ["add".to_string(), "table".to_string()].into();
    let _ = app.update(Message::Edit(EditMsg::Copy));
    // The mouse over the canvas at a point that is off the grid in world coordinates.
    let target = Pt::new(413.0, 227.0);
    let at = screen(&app, target);
    move_mouse(&mut app, at);
    assert!(app.hover.get().is_some(), "the canvas noticed the mouse");
    let _ = app.update(Message::Edit(EditMsg::Paste));
    assert_eq!(app.selection, ["add_2".to_string(), "table_2".to_string()].into());
    assert_eq!(top_left(&app, &app.selection), (420.0, 220.0), "top-left at the mouse, snapped");
    // The group keeps its shape: table stays 200 below add.
    assert_eq!(app.doc.layout["table_2"].y - app.doc.layout["add_2"].y, 200.0);
    // Pasting again at another mouse position.
    let at = screen(&app, Pt::new(-53.0, 71.0));
    move_mouse(&mut app, at);
    assert!(app.hover.get().is_some());
    let _ = app.update(Message::Edit(EditMsg::Paste));
    assert_eq!(top_left(&app, &app.selection), (-60.0, 80.0));
    // The mouse away from the canvas (over the inspector): the copy lands beside the original,
    // one step further than the last paste-beside.
    move_mouse(&mut app, Point::new(W - 100.0, 200.0));
    assert_eq!(app.hover.get(), None);
    let _ = app.update(Message::Edit(EditMsg::Paste));
    // The clip moved 40 further after each paste: original (240, 0) + 2 × 40 + 40.
    assert_eq!(top_left(&app, &app.selection), (360.0, 120.0));
    // Duplicate keeps its offset from the original, wherever the mouse is.
    move_mouse(&mut app, at);
    app.selection = ["src".to_string()].into();
    let _ = app.update(Message::Edit(EditMsg::Duplicate));
    assert_eq!(top_left(&app, &app.selection), (40.0, 40.0));
}

/// The messages clicking through `path` (a menu title, then an entry) produces.
fn menu_messages(app: &App, path: &[&str]) -> Vec<Message> {
    let mut ui = Simulator::with_size(Settings::default(), Size::new(W, H), app.view());
    for entry in path {
        ui.click(*entry).unwrap_or_else(|e| panic!("menu entry {entry:?}: {e:?}"));
    }
    ui.into_messages().collect()
}

#[test]
fn the_menus_run_open_examples_and_fit() {
    let (mut app, _d) = app_with(doc_chain());
    let m = menu_messages(&app, &["Run", "Run all"]);
    assert!(m.iter().any(|m| matches!(m, Message::Run { to_selected: false })), "{m:?}");
    // Run to selected needs a selection: greyed out (no message) without one.
    let m = menu_messages(&app, &["Run", "Run to selected"]);
    assert!(!m.iter().any(|m| matches!(m, Message::Run { .. })), "{m:?}");
    app.selection = ["add".to_string()].into();
    let m = menu_messages(&app, &["Run", "Run to selected"]);
    assert!(m.iter().any(|m| matches!(m, Message::Run { to_selected: true })), "{m:?}");
    // The Examples menu lists graphs/examples; choosing one opens it as an unsaved copy.
    let example = app.examples.first().cloned().expect("graphs/examples is found");
    let name = petri_gui::files::display_name(Some(&example), "example");
    let m = menu_messages(&app, &["Examples", &name]);
    assert!(
        m.iter().any(|m| matches!(m, Message::File(petri_gui::app::FileMsg::OpenExample(p)) if *p == example)),
        "{m:?}"
    );
    // Recent files are listed in the File menu.
    let recent = std::path::PathBuf::from("/data/lab/segment.ron");
    app.recent = vec![recent.clone()];
    let m = menu_messages(&app, &["File", "/data/lab/segment.ron"]);
    assert!(
        m.iter().any(|m| matches!(m, Message::File(petri_gui::app::FileMsg::OpenPath(p)) if *p == recent)),
        "{m:?}"
    );
    // View → Fit.
    app.view = petri_gui::layout::Viewport { zoom: 2.5, offset: Pt::new(-900.0, -700.0) };
    let m = menu_messages(&app, &["View", "Fit"]);
    for msg in m {
        let _ = app.update(msg);
    }
    let fitted = layout::fit(&app.cards, app.canvas_size.0, app.canvas_size.1);
    assert_eq!(app.view, fitted);
}

#[test]
fn save_then_open_gives_an_equal_graph() {
    let (mut app, dir) = app_with(doc_chain());
    let _ = app.update(Message::Param {
        node: "add".into(),
        name: "amount".into(),
        edit: petri_gui::app::ParamEdit::Text("2.5".into()),
    });
    let _ = app.update(Message::Param {
        node: "src".into(),
        name: "path".into(),
        edit: petri_gui::app::ParamEdit::Text("data/a.tif".into()),
    });
    let edited = app.doc.clone();
    let path = dir.path().join("graphs/mine.ron");
    assert!(app.save_to(&path), "{}", app.status);
    assert!(!app.dirty);
    assert_eq!(app.title(), "mine.ron — Petri");
    // The input path followed the graph into its folder.
    assert_eq!(app.doc.nodes["src"].params["path"], ParamValue::Str("../data/a.tif".into()));
    let saved = app.doc.clone();
    let (mut other, _d2) = app_with(GraphDoc::default());
    other.open_path(&path);
    assert_eq!(other.doc, saved);
    assert_eq!(other.path.as_deref(), Some(path.as_path()));
    let (loaded, diags) = petri_engine::load_graph(&path, &registry()).unwrap();
    assert_eq!(loaded, saved);
    assert!(diags.is_empty());
    assert_eq!(edited.nodes["add"], saved.nodes["add"]);
    // Save from the File menu writes the same file again (canonical form).
    let before = std::fs::read_to_string(&path).unwrap();
    interact(&mut other, |ui| {
        ui.click("File").expect("File menu");
        ui.click("Save").expect("Save in the File menu");
    });
    assert_eq!(std::fs::read_to_string(&path).unwrap(), before);
}

#[test]
fn unsaved_changes_are_not_lost_without_asking() {
    let (mut app, dir) = app_with(doc_chain());
    let _ = app.update(Message::Edit(EditMsg::SelectAll));
    let _ = app.update(Message::Edit(EditMsg::Delete));
    assert!(app.dirty);
    let other = dir.path().join("other.ron");
    petri_engine::save_file(&other, &doc_chain()).unwrap();
    let _ = app.update(Message::File(petri_gui::app::FileMsg::OpenPath(other.clone())));
    assert!(app.confirm.is_some(), "asks first");
    assert!(app.doc.nodes.is_empty(), "nothing replaced yet");
    interact(&mut app, |ui| {
        ui.click("Keep editing").expect("prompt");
    });
    assert!(app.confirm.is_none() && app.doc.nodes.is_empty());
    let _ = app.update(Message::File(petri_gui::app::FileMsg::OpenPath(other.clone())));
    interact(&mut app, |ui| {
        ui.click("Discard").expect("prompt");
    });
    assert_eq!(app.doc, doc_chain());
    assert!(!app.dirty);
}

#[test]
fn dropping_an_image_adds_a_loader_node_reading_it() {
    let (mut app, dir) = app_with(GraphDoc::default());
    let img = dir.path().join("cells.tif");
    std::fs::write(&img, b"not really a tiff").unwrap();
    let _ = app.update(Message::FileDropped(img.clone()));
    let (id, n) = app.doc.nodes.iter().next().expect("a node");
    assert_eq!(n.type_id, "test.source");
    assert_eq!(n.params["path"], ParamValue::Str(img.to_string_lossy().into_owned()), "unsaved graph: absolute");
    assert_eq!(app.selection, [id.clone()].into());
}

#[test]
fn shortcuts_map_to_editor_actions() {
    use iced::keyboard::{Key, Modifiers};
    let c = |s: &str| Key::Character(s.into());
    let ctrl = Modifiers::CTRL;
    let m = |k: Key, mods| petri_gui::app::shortcut(&k, mods).map(|m| format!("{m:?}"));
    assert_eq!(m(c("z"), ctrl).unwrap(), "Edit(Undo)");
    assert_eq!(m(c("Z"), ctrl | Modifiers::SHIFT).unwrap(), "Edit(Redo)");
    assert_eq!(m(c("s"), ctrl).unwrap(), "File(Save)");
    assert_eq!(m(c("o"), ctrl).unwrap(), "File(Open)");
    assert_eq!(m(c("c"), ctrl).unwrap(), "Edit(Copy)");
    assert_eq!(m(c("v"), ctrl).unwrap(), "Edit(Paste)");
    assert_eq!(m(c("d"), ctrl).unwrap(), "Edit(Duplicate)");
    assert_eq!(m(c("f"), Modifiers::empty()).unwrap(), "Edit(Fit)");
    assert_eq!(m(Key::Named(Named::Delete), Modifiers::empty()).unwrap(), "Edit(Delete)");
    assert_eq!(m(Key::Named(Named::Enter), ctrl).unwrap(), "Run { to_selected: false }");
    assert_eq!(m(Key::Named(Named::ArrowDown), Modifiers::empty()).unwrap(), "Finder(Move(1))");
    assert!(m(c("q"), Modifiers::empty()).is_none());
}

#[test]
fn the_finder_is_driven_from_the_keyboard() {
    use petri_gui::app::FinderMsg;
    let (mut app, _d) = app_with(doc_chain());
    let at = Point::new(app.canvas_origin.0 + 300.0, app.canvas_origin.1 + app.canvas_size.1 - 40.0);
    interact(&mut app, |ui| {
        ui.point_at(at);
        let _ = ui.simulate(iced_test::simulator::tap_key(Named::Tab, None));
    });
    let _ = app.update(Message::Finder(FinderMsg::Query("test".into())));
    let results: Vec<String> =
        petri_gui::model::search(app.registry(), "test").iter().map(|s| s.type_id.clone()).collect();
    assert!(results.len() > 2);
    // Down twice, up once: the second result; Enter adds it.
    for d in [1, 1, -1] {
        let _ = app.update(Message::Finder(FinderMsg::Move(d)));
    }
    assert_eq!(app.finder.as_ref().unwrap().highlight, 1);
    // Up past the top stays on the first.
    let _ = app.update(Message::Finder(FinderMsg::Move(-5)));
    let _ = app.update(Message::Finder(FinderMsg::Move(1)));
    let _ = app.update(Message::Finder(FinderMsg::Submit));
    assert!(app.finder.is_none());
    let added = app.selection.iter().next().expect("the new node is selected").clone();
    assert_eq!(app.doc.nodes[&added].type_id, results[1]);
    assert!(!doc_chain().nodes.contains_key(&added));
}

/// The canvas as drawn (tiny-skia, headless): every card's header shows its category colour
/// where the layout puts it.
#[test]
fn cards_are_drawn_where_the_layout_puts_them() {
    let (mut app, dir) = app_with(doc_chain());
    let _ = app.update(Message::Edit(EditMsg::Fit));
    let png_path = dir.path().join("canvas.png");
    {
        let mut ui = Simulator::with_size(Settings::default(), Size::new(W, H), app.view());
        let snap = ui.snapshot(&iced::Theme::Dark).unwrap();
        assert!(snap.matches_image(&png_path).unwrap());
    }
    let file = std::fs::read_dir(dir.path()).unwrap().filter_map(|e| e.ok()).map(|e| e.path()).find(|p| {
        p.file_name().is_some_and(|n| n.to_string_lossy().starts_with("canvas"))
            && p.extension().is_some_and(|e| e == "png")
    });
    let file = file.expect("snapshot written");
    let (w, h, rgba) = read_png(&file);
    let scale = w as f32 / W;
    assert_eq!(h as f32 / H, scale);
    let json = petri_gui::layout_json(&app);
    let cards: BTreeMap<String, [f32; 4]> = app
        .cards
        .keys()
        .map(|id| {
            let r = app.view.rect_to_screen(&app.cards[id].rect);
            (id.clone(), [app.canvas_origin.0 + r.x, app.canvas_origin.1 + r.y, r.w, r.h])
        })
        .collect();
    assert!(json.contains("\"src\""));
    for (id, [x, y, w_, _]) in cards {
        let cat = &registry().spec(&app.doc.nodes[&id].type_id).unwrap().category.clone();
        let want = petri_gui::canvas::category_color(cat).into_rgba8();
        // A point in the header, left of the title text.
        let (px, py) = (((x + 4.0) * scale) as usize, ((y + layout::HEADER_H * app.view.zoom * 0.5) * scale) as usize);
        let _ = w_;
        let i = (py * w as usize + px) * 4;
        let got = &rgba[i..i + 3];
        let close = got.iter().zip(&want[..3]).all(|(a, b)| (*a as i32 - *b as i32).abs() <= 12);
        assert!(close, "{id}: header colour {got:?}, expected {:?} at ({px},{py})", &want[..3]);
    }
}

fn read_png(path: &Path) -> (u32, u32, Vec<u8>) {
    let decoder = png::Decoder::new(std::io::BufReader::new(std::fs::File::open(path).unwrap()));
    let mut reader = decoder.read_info().unwrap();
    let mut buf = vec![0; reader.output_buffer_size().unwrap()];
    let info = reader.next_frame(&mut buf).unwrap();
    buf.truncate(info.buffer_size());
    assert_eq!(info.color_type, png::ColorType::Rgba);
    (info.width, info.height, buf)
}
