//! Petri's node editor: an iced canvas to build, run and inspect workflows.
//!
//! The Elm shape: [`app::App`] is the state, [`app::Message`] the messages, `App::update`
//! and `App::view` (in `view.rs`). Pure logic lives apart and is unit-tested without a window:
//! geometry and hit-testing (`layout`), undo, staleness, clipboard and search (`model`),
//! rendering of planes and curves (`viewer`), running (`run`), files (`files`).
//! Graphs run through the same engine calls as `petri run` (compile with the graph's path
//! context, then `Engine::run_with_id` on a background thread).

pub mod app;
pub mod canvas;
pub mod files;
pub mod layout;
pub mod model;
pub mod run;
#[doc(hidden)]
pub mod testing;
pub mod view;
pub mod viewer;

use std::path::{Path, PathBuf};

use iced::futures::Stream;
use iced::futures::channel::mpsc;
use iced::{Subscription, Task, Theme, keyboard, window};
use petri_api::Registry;
use petri_engine::GraphDoc;

pub use app::{App, Message};

/// What the editor opens on: a graph file, or the bundled example.
pub struct Start {
    pub doc: GraphDoc,
    pub path: Option<PathBuf>,
    pub base_dir: PathBuf,
    pub hint: String,
    pub problems: Vec<String>,
}

/// `petri edit GRAPH` opens GRAPH; `petri` alone opens the bundled example as an unsaved copy
/// (its relative paths still resolve in the examples folder).
pub fn start(graph: Option<&Path>, registry: &Registry) -> Result<Start, String> {
    match graph {
        Some(p) => {
            let (doc, diags) = petri_engine::load_graph(p, registry).map_err(|e| e.to_string())?;
            let base_dir = run::path_context(Some(p), Path::new(".")).graph_dir;
            Ok(Start {
                doc,
                path: Some(p.to_path_buf()),
                base_dir,
                hint: String::new(),
                problems: diags.iter().map(|d| d.to_string()).collect(),
            })
        }
        None => {
            let hint = format!("{} (example)", files::BUNDLED_NAME);
            if let Some(p) = files::examples_dir().map(|d| d.join(files::BUNDLED_NAME)).filter(|p| p.is_file()) {
                if let Ok((doc, diags)) = petri_engine::load_graph(&p, registry) {
                    let base_dir = run::path_context(Some(&p), Path::new(".")).graph_dir;
                    return Ok(Start {
                        doc,
                        path: None,
                        base_dir,
                        hint,
                        problems: diags.iter().map(|d| d.to_string()).collect(),
                    });
                }
            }
            let doc = petri_engine::parse_doc(files::BUNDLED_EXAMPLE).map_err(|e| e.to_string())?;
            Ok(Start { doc, path: None, base_dir: run::scratch_dir(), hint, problems: Vec::new() })
        }
    }
}

/// Opens the editor on `graph` (or a bundled example) and returns when the window closes.
pub fn run(graph: Option<PathBuf>, registry: Registry) -> Result<(), String> {
    let s = start(graph.as_deref(), &registry)?;
    let automation = Automation::from_env();
    let positioned = !automation.is_off();
    let boot = move || {
        let mut app = App::new(registry.clone(), s.doc.clone(), s.path.clone(), s.base_dir.clone(), &s.hint);
        app.remember_recent = automation.is_off();
        app.recent = files::load_recent();
        if let (true, Some(p)) = (app.remember_recent, &s.path) {
            files::push_recent(&mut app.recent, p);
        }
        for p in &s.problems {
            app.log.push(p.clone());
        }
        app.automation = automation.clone();
        app
    };
    let mut window = window::Settings { size: iced::Size::new(1280.0, 800.0), ..window::Settings::default() };
    if positioned {
        window.position = window::Position::Specific(iced::Point::ORIGIN);
    }
    iced::application(boot, App::update, App::view)
        .title(App::title)
        .subscription(App::subscription)
        .theme(|_: &App| Theme::Dark)
        .window(window)
        .exit_on_close_request(false)
        .run()
        .map_err(|e| format!("cannot open the editor window: {e}"))
}

impl App {
    pub fn subscription(&self) -> Subscription<Message> {
        let mut subs = vec![iced::event::listen_with(on_event), window::close_requests().map(Message::CloseRequested)];
        if !self.automation.is_off() {
            subs.push(Subscription::run(ticker));
        }
        Subscription::batch(subs)
    }
}

fn on_event(event: iced::Event, status: iced::event::Status, _window: window::Id) -> Option<Message> {
    match event {
        // Esc closes the node finder (or the unsaved-changes prompt) even though the finder's
        // search field, which has the focus, also takes it.
        iced::Event::Keyboard(keyboard::Event::KeyPressed {
            key: keyboard::Key::Named(keyboard::key::Named::Escape),
            ..
        }) => Some(Message::Edit(app::EditMsg::Escape)),
        iced::Event::Keyboard(keyboard::Event::KeyPressed { key, modifiers, .. })
            if status == iced::event::Status::Ignored =>
        {
            app::shortcut(&key, modifiers)
        }
        iced::Event::Window(window::Event::FileDropped(p)) => Some(Message::FileDropped(p)),
        _ => None,
    }
}

/// Half-second ticks for scripted sessions (the real-window test, screenshots). iced's
/// thread-pool executor has no timer, so a thread provides one.
fn ticker() -> impl Stream<Item = Message> {
    let (tx, rx) = mpsc::unbounded();
    let _ = std::thread::Builder::new().name("petri-gui-ticker".into()).spawn(move || {
        loop {
            std::thread::sleep(std::time::Duration::from_millis(500));
            if tx.unbounded_send(Message::Tick).is_err() {
                break;
            }
        }
    });
    rx
}

/// A scripted session, from environment variables (for the real-window test and the user
/// guide's screenshots; a person never needs them):
/// - `PETRI_GUI_RUN=1`: Run all once the window is up;
/// - `PETRI_GUI_SELECT=NODE`: select a node; `PETRI_GUI_PANEL=log|curves|output`;
/// - `PETRI_GUI_FINDER=QUERY`: open the node finder with a query;
/// - `PETRI_GUI_VIEW=input|overlay`: what the viewer shows of the selected node;
/// - `PETRI_GUI_LAYOUT=FILE.json`: once drawn (and the run, if any, finished), write the
///   window position of every card (and its header colour) to FILE;
/// - `PETRI_GUI_EXIT_AFTER=SECONDS`: quit after that long, whatever happens.
#[derive(Clone, Debug, Default)]
pub struct Automation {
    pub run: bool,
    pub select: Option<String>,
    pub panel: Option<String>,
    pub finder: Option<String>,
    pub viewer: Option<String>,
    pub layout: Option<PathBuf>,
    pub exit_after: Option<f64>,
    started_run: bool,
    wrote_layout: bool,
}

impl Automation {
    pub fn from_env() -> Automation {
        let var = |k: &str| std::env::var(k).ok().filter(|s| !s.is_empty());
        Automation {
            run: var("PETRI_GUI_RUN").is_some_and(|v| v == "1"),
            select: var("PETRI_GUI_SELECT"),
            panel: var("PETRI_GUI_PANEL"),
            finder: var("PETRI_GUI_FINDER"),
            viewer: var("PETRI_GUI_VIEW"),
            layout: var("PETRI_GUI_LAYOUT").map(PathBuf::from),
            exit_after: var("PETRI_GUI_EXIT_AFTER").and_then(|v| v.parse().ok()),
            started_run: false,
            wrote_layout: false,
        }
    }

    pub fn is_off(&self) -> bool {
        !self.run
            && self.select.is_none()
            && self.panel.is_none()
            && self.finder.is_none()
            && self.viewer.is_none()
            && self.layout.is_none()
            && self.exit_after.is_none()
    }
}

/// One step of a scripted session (called every half second).
pub fn automation_tick(app: &mut App) -> Task<Message> {
    let mut a = app.automation.clone();
    let mut tasks = Vec::new();
    if let Some(secs) = a.exit_after {
        if app.ticks as f64 * 0.5 >= secs {
            return iced::exit();
        }
    }
    if app.ticks == 2 {
        if let Some(id) = a.select.clone() {
            if app.doc.nodes.contains_key(&id) {
                tasks.push(app.update(Message::Canvas(canvas::CanvasMsg::PressNode { id, additive: false })));
            }
        }
        match a.viewer.as_deref() {
            Some("input") => app.viewer.source = app::Source::Input,
            Some("overlay") => app.viewer.source = app::Source::Overlay,
            _ => {}
        }
        match a.panel.as_deref() {
            Some("log") => app.panel = app::Panel::Log,
            Some("curves") => app.panel = app::Panel::Curves,
            Some("output") => app.panel = app::Panel::Output,
            _ => {}
        }
        if let Some(q) = a.finder.clone() {
            let (w, h) = app.canvas_size;
            let world = app.view.to_world(layout::Pt::new(w * 0.55, h * 0.35));
            tasks.push(app.update(Message::Canvas(canvas::CanvasMsg::OpenFinder {
                world: (world.x, world.y),
                screen: (w * 0.55, h * 0.35),
            })));
            tasks.push(app.update(Message::Finder(app::FinderMsg::Query(q))));
        }
    }
    if a.run && !a.started_run && app.ticks >= 2 {
        a.started_run = true;
        tasks.push(app.start_run(false));
    }
    let run_over = !a.run || (a.started_run && app.active.is_none());
    if let (Some(path), false, true) = (a.layout.clone(), a.wrote_layout, run_over) {
        if app.ticks >= 3 {
            a.wrote_layout = true;
            if let Err(e) = write_layout(app, &path) {
                eprintln!("petri: cannot write {}: {e}", path.display());
            }
        }
    }
    app.automation = a;
    Task::batch(tasks)
}

/// The window position of every card and its header colour, as JSON.
pub fn layout_json(app: &App) -> String {
    let (ox, oy) = app.canvas_origin;
    let mut s = String::from("{\n");
    s.push_str(&format!(
        "  \"canvas\": [{}, {}, {}, {}],\n  \"cards\": {{\n",
        ox, oy, app.canvas_size.0, app.canvas_size.1
    ));
    let rects = canvas::screen_rects(&app.cards, &app.view);
    let n = rects.len();
    for (i, (id, r)) in rects.iter().enumerate() {
        let cat = app
            .doc
            .nodes
            .get(id)
            .and_then(|n| app.registry().spec(&n.type_id))
            .map(|s| s.category.clone())
            .unwrap_or_default();
        let c = canvas::category_color(&cat).into_rgba8();
        s.push_str(&format!(
            "    {}: {{\"x\": {:.1}, \"y\": {:.1}, \"w\": {:.1}, \"h\": {:.1}, \"header_h\": {:.1}, \"header_rgb\": [{}, {}, {}]}}{}\n",
            petri_engine::format::quote(id),
            ox + r.x,
            oy + r.y,
            r.w,
            r.h,
            layout::HEADER_H * app.view.zoom,
            c[0],
            c[1],
            c[2],
            if i + 1 < n { "," } else { "" }
        ));
    }
    s.push_str("  }\n}\n");
    s
}

fn write_layout(app: &App, path: &Path) -> std::io::Result<()> {
    petri_engine::format::write_atomic(path, layout_json(app).as_bytes())
}
