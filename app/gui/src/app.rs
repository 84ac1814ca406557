//! The editor's state, its messages and `update`: the Elm shape. Views live in `view.rs`.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use iced::widget::canvas;
use iced::{Task, keyboard};
use petri_api::{ParamKind, ParamValue, PathMode, Registry, Value};
use petri_engine::{DiagKind, Edge, Engine, GraphDoc, Key, Pos};

use crate::canvas::CanvasMsg;
use crate::files::{self, Dropped};
use crate::layout::{self, CardGeom, PortEnd, Pt, Viewport};
use crate::model::{self, Clip, History};
use crate::run::{self, NodeState, RunMsg};
use crate::viewer::{self, ImageMsg, ImageView, PlaneSel};

#[derive(Clone, Debug)]
pub enum Message {
    Canvas(CanvasMsg),
    Finder(FinderMsg),
    Param {
        node: String,
        name: String,
        edit: ParamEdit,
    },
    /// Open a file dialog for a path parameter.
    Browse {
        node: String,
        name: String,
    },
    Picked {
        node: String,
        name: String,
        path: Option<PathBuf>,
    },
    RenameInput(String),
    RenameSubmit,
    Run {
        to_selected: bool,
    },
    Cancel,
    RunMsg(RunMsg),
    File(FileMsg),
    Edit(EditMsg),
    Panel(Panel),
    Viewer(ViewerMsg),
    Image(ImageMsg),
    FileDropped(PathBuf),
    CloseRequested(iced::window::Id),
    Tick,
    Noop,
}

#[derive(Clone, Debug)]
pub enum FinderMsg {
    Query(String),
    Pick(String),
    /// Move the highlighted result up or down (arrow keys).
    Move(i32),
    /// Add the highlighted result (Enter).
    Submit,
    Close,
}

#[derive(Clone, Debug)]
pub enum ParamEdit {
    /// Typed text, parsed and checked against the parameter's kind.
    Text(String),
    /// A value from a checkbox, dropdown or slider.
    Value(ParamValue),
}

#[derive(Clone, Debug)]
pub enum FileMsg {
    New,
    Open,
    OpenPath(PathBuf),
    /// Open an example as an unsaved copy (saving asks where).
    OpenExample(PathBuf),
    Save,
    SaveAs,
    SaveAsPicked(Option<PathBuf>),
    OpenPicked(Option<PathBuf>),
    /// The answer to "unsaved changes": save, discard, or keep editing.
    Confirm(Confirm),
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Confirm {
    Save,
    Discard,
    Cancel,
}

#[derive(Clone, Debug, PartialEq)]
pub enum EditMsg {
    Undo,
    Redo,
    Copy,
    Paste,
    Duplicate,
    Delete,
    SelectAll,
    Fit,
    Escape,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Panel {
    #[default]
    Output,
    Log,
    Curves,
}

#[derive(Clone, Debug)]
pub enum ViewerMsg {
    Port(String),
    Source(Source),
    T(usize),
    Z(usize),
    C(usize),
    Auto(bool),
    Lo(f64),
    Hi(f64),
    Opacity(f32),
    /// Fit the image in the view again.
    FitImage,
}

/// What the image viewer shows for the selected node.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Source {
    #[default]
    Output,
    /// The image feeding the node's first image input (compare before/after).
    Input,
    /// The output (labels or mask) in colour over the input image.
    Overlay,
}

/// Something waiting for an answer about unsaved changes.
#[derive(Clone, Debug, PartialEq)]
pub enum Pending {
    New,
    Open,
    OpenPath(PathBuf),
    OpenExample(PathBuf),
    Quit,
}

pub struct Finder {
    pub query: String,
    /// The result Enter adds (moved with the arrow keys).
    pub highlight: usize,
    pub world: Pt,
    pub screen: (f32, f32),
}

pub struct ActiveRun {
    pub run: u64,
    pub cancel: Arc<AtomicBool>,
}

/// A rendered image for the viewer and the stack it shows (for the value under the cursor).
pub struct Rendered {
    pub handle: iced::widget::image::Handle,
    pub w: usize,
    pub h: usize,
    pub values: Option<petri_api::Stack>,
    pub data_range: (f64, f64),
}

#[derive(Default)]
pub struct ViewerState {
    pub port: Option<String>,
    pub source: Source,
    pub sel: Option<PlaneSel>,
    pub auto: bool,
    pub lo: f64,
    pub hi: f64,
    pub opacity: f32,
    pub view: ImageView,
    pub hover: Option<(usize, usize)>,
    pub rendered: Option<Rendered>,
    /// The value range of the last stack shown, by buffer address and length: moving the Z
    /// or T slider of a large stack does not scan the whole stack again.
    pub range_cache: Option<((usize, usize), (f64, f64))>,
}

pub struct App {
    pub engine: Arc<Engine>,
    pub doc: GraphDoc,
    /// The graph file, once saved or opened.
    pub path: Option<PathBuf>,
    /// The folder relative paths resolve against while the graph has no file.
    pub base_dir: PathBuf,
    pub name_hint: String,
    pub dirty: bool,
    pub history: History,
    drag_before: Option<GraphDoc>,
    pub selection: BTreeSet<String>,
    pub selected_wire: Option<Edge>,
    pub cards: BTreeMap<String, CardGeom>,
    pub view: Viewport,
    pub canvas_size: (f32, f32),
    pub canvas_origin: (f32, f32),
    pub grid_cache: canvas::Cache,
    pub graph_cache: canvas::Cache,
    /// World-space geometry of the graph layer: cleared when the graph, states or selection
    /// change, kept across pans and zooms.
    pub scene: crate::canvas::SceneCache,
    pub states: BTreeMap<String, NodeState>,
    pub problems: BTreeMap<String, Vec<String>>,
    pub param_problems: BTreeMap<(String, String), String>,
    /// Text being typed into parameter fields (kept even while invalid).
    pub typing: BTreeMap<(String, String), String>,
    pub rename: Option<(String, String)>,
    pub keys: BTreeMap<String, Key>,
    pub metrics: BTreeMap<String, BTreeMap<String, Vec<(u64, f64)>>>,
    pub log: Vec<String>,
    pub active: Option<ActiveRun>,
    /// The id the next run gets, taken at the latest edit that made something stale: a run
    /// with a smaller id started before that edit.
    pub edit_mark: u64,
    /// Per node, the same mark taken when an edit last made it stale: events about a node
    /// from a run started before that are ignored (they describe the graph as it was), while
    /// the same run's events about nodes the edit did not touch still count (a training
    /// node keeps its live curves while you edit a branch after it).
    pub stale_since: BTreeMap<String, u64>,
    /// Events of runs with a smaller id than this are ignored altogether (another graph was
    /// opened since they started).
    pub run_floor: u64,
    pub finder: Option<Finder>,
    pub clipboard: Option<Clip>,
    /// Where the mouse is over the canvas (canvas-local screen coordinates), or None when it
    /// is elsewhere: Paste drops the nodes there. The canvas writes it as the mouse moves
    /// (a `Cell`, not a message: a message per mouse move would rebuild the whole view).
    pub hover: std::cell::Cell<Option<(f32, f32)>>,
    pub status: String,
    pub panel: Panel,
    pub viewer: ViewerState,
    pub confirm: Option<Pending>,
    pub recent: Vec<PathBuf>,
    pub examples: Vec<PathBuf>,
    /// Headless tests and the benchmark turn off side effects on the user's files (recent list).
    pub remember_recent: bool,
    pub ticks: u64,
    pub automation: crate::Automation,
    /// Overrides the engine's default disk cache folder (tests).
    pub disk_cache_dir: Option<PathBuf>,
}

pub const FINDER_INPUT: &str = "finder-input";
/// How many results the node finder lists.
pub const FINDER_SHOWN: usize = 12;
const LOG_MAX: usize = 2000;

impl App {
    /// An editor on `doc`, saved at `path` (or not yet saved; relative paths then resolve
    /// against `base_dir`).
    pub fn new(registry: Registry, doc: GraphDoc, path: Option<PathBuf>, base_dir: PathBuf, name_hint: &str) -> App {
        let engine = Arc::new(Engine::new(registry));
        let mut app = App {
            engine,
            doc,
            path,
            base_dir,
            name_hint: name_hint.to_string(),
            dirty: false,
            history: History::default(),
            drag_before: None,
            selection: BTreeSet::new(),
            selected_wire: None,
            cards: BTreeMap::new(),
            view: Viewport::default(),
            canvas_size: (1000.0, 600.0),
            canvas_origin: (0.0, 0.0),
            grid_cache: canvas::Cache::new(),
            graph_cache: canvas::Cache::new(),
            scene: crate::canvas::SceneCache::default(),
            states: BTreeMap::new(),
            problems: BTreeMap::new(),
            param_problems: BTreeMap::new(),
            typing: BTreeMap::new(),
            rename: None,
            keys: BTreeMap::new(),
            metrics: BTreeMap::new(),
            log: Vec::new(),
            active: None,
            edit_mark: 0,
            stale_since: BTreeMap::new(),
            run_floor: 0,
            finder: None,
            clipboard: None,
            hover: std::cell::Cell::new(None),
            status: String::new(),
            panel: Panel::Output,
            viewer: ViewerState { auto: true, opacity: 0.5, ..ViewerState::default() },
            confirm: None,
            recent: Vec::new(),
            examples: files::examples_dir().map(|d| files::list_examples(&d)).unwrap_or_default(),
            remember_recent: false,
            ticks: 0,
            automation: crate::Automation::default(),
            disk_cache_dir: None,
        };
        app.edit_mark = app.engine.next_run_id();
        app.run_floor = app.edit_mark;
        app.graph_changed();
        app.fit();
        app
    }

    pub fn registry(&self) -> &Registry {
        self.engine.registry()
    }

    pub fn title(&self) -> String {
        let name = files::display_name(self.path.as_deref(), &self.name_hint);
        format!("{}{name} — Petri", if self.dirty { "• " } else { "" })
    }

    /// The graph's folder (for relative paths), saved or not.
    pub fn graph_dir(&self) -> PathBuf {
        match &self.path {
            Some(p) => run::path_context(Some(p), &self.base_dir).graph_dir,
            None => self.base_dir.clone(),
        }
    }

    fn redraw(&mut self) {
        self.scene.clear();
        self.graph_cache.clear();
    }

    fn view_changed(&mut self) {
        self.grid_cache.clear();
        self.graph_cache.clear();
    }

    /// Recomputes what depends on the document: card geometry, validation messages.
    fn graph_changed(&mut self) {
        self.cards = layout::cards(&self.doc, self.registry());
        self.selection.retain(|id| self.doc.nodes.contains_key(id));
        if self.selected_wire.as_ref().is_some_and(|e| !self.doc.edges.contains(e)) {
            self.selected_wire = None;
        }
        self.validate();
        self.redraw();
    }

    /// Compiles the graph as a run would and files every problem under its node and field.
    fn validate(&mut self) {
        self.problems.clear();
        self.param_problems.retain(|(n, p), _| self.typing.contains_key(&(n.clone(), p.clone())));
        let ctx = run::path_context(self.path.as_deref(), &self.base_dir);
        let diags = match run::compile_doc(&self.doc, self.registry(), &ctx) {
            Ok(c) => c.warnings,
            Err(d) => d,
        };
        for d in diags {
            // A missing required input is normal while building a graph: shown on the port
            // (ring) and in the inspector, but the card is not outlined in red for it.
            let Some(node) = d.node.clone() else { continue };
            let is_param = d.field.as_ref().is_some_and(|f| {
                self.doc
                    .nodes
                    .get(&node)
                    .and_then(|n| self.registry().spec(&n.type_id))
                    .is_some_and(|s| s.param_spec(f).is_some())
            });
            if is_param {
                if let Some(f) = &d.field {
                    self.param_problems.entry((node.clone(), f.clone())).or_insert(d.message.clone());
                }
            }
            let entry = self.problems.entry(node).or_default();
            if d.kind != DiagKind::MissingInput {
                entry.push(d.message);
            }
        }
        self.problems.retain(|_, v| !v.is_empty());
        // Problem cards are outlined in red.
        self.redraw();
    }

    /// Every change of the document goes through here: undo snapshot, staleness, dirty flag.
    pub fn apply_edit(&mut self, coalesce: Option<String>, f: impl FnOnce(&mut GraphDoc)) {
        let before = self.doc.clone();
        f(&mut self.doc);
        if self.doc == before {
            return;
        }
        self.history.record(before.clone(), coalesce);
        self.after_doc_change(&before);
    }

    fn after_doc_change(&mut self, before: &GraphDoc) {
        let stale = model::stale_after(before, &self.doc);
        if !stale.is_empty() {
            // Results of runs started before this edit no longer describe the graph.
            self.edit_mark = self.engine.next_run_id();
            for id in &stale {
                self.states.insert(id.clone(), NodeState::Stale);
                self.keys.remove(id);
                self.stale_since.insert(id.clone(), self.edit_mark);
            }
        }
        self.states.retain(|id, _| self.doc.nodes.contains_key(id));
        self.stale_since.retain(|id, _| self.doc.nodes.contains_key(id));
        self.dirty = true;
        self.graph_changed();
        self.refresh_image();
    }

    fn set_doc(&mut self, doc: GraphDoc) {
        let before = std::mem::replace(&mut self.doc, doc);
        self.after_doc_change(&before);
    }

    pub fn fit(&mut self) {
        self.view = layout::fit(&self.cards, self.canvas_size.0, self.canvas_size.1);
        self.view_changed();
    }

    fn say(&mut self, s: impl Into<String>) {
        let s = s.into();
        self.push_log(s.clone());
        self.status = s;
    }

    fn push_log(&mut self, s: String) {
        self.log.push(s);
        if self.log.len() > LOG_MAX {
            self.log.drain(..self.log.len() - LOG_MAX);
        }
    }

    // ------------------------------------------------------------------------------ update

    pub fn update(&mut self, message: Message) -> Task<Message> {
        match message {
            Message::Canvas(m) => return self.on_canvas(m),
            Message::Finder(m) => return self.on_finder(m),
            Message::Param { node, name, edit } => self.on_param(node, name, edit),
            Message::Browse { node, name } => return self.browse(node, name),
            Message::Picked { node, name, path } => {
                if let Some(p) = path {
                    let dir = self.path.as_ref().map(|_| self.graph_dir());
                    let stored = model::stored_path(&p, dir.as_deref());
                    self.typing.remove(&(node.clone(), name.clone()));
                    self.on_param(node, name, ParamEdit::Value(ParamValue::Str(stored)));
                }
            }
            Message::RenameInput(s) => {
                if let Some(id) = self.single_selected() {
                    self.rename = Some((id, s));
                }
            }
            Message::RenameSubmit => self.rename_submit(),
            Message::Run { to_selected } => return self.start_run(to_selected),
            Message::Cancel => {
                if let Some(a) = &self.active {
                    a.cancel.store(true, Ordering::SeqCst);
                    self.say("cancelling…");
                }
            }
            Message::RunMsg(m) => self.on_run_msg(m),
            Message::File(m) => return self.on_file(m),
            Message::Edit(m) => self.on_edit(m),
            Message::Panel(p) => self.panel = p,
            Message::Viewer(m) => self.on_viewer(m),
            Message::Image(m) => {
                if let ImageMsg::Hover(h) = m {
                    self.viewer.hover = h;
                } else if let Some(r) = &self.viewer.rendered {
                    viewer::apply_image_msg(&mut self.viewer.view, &m, r.w, r.h);
                }
            }
            Message::FileDropped(p) => return self.on_drop(p),
            Message::CloseRequested(id) => {
                if self.dirty {
                    self.confirm = Some(Pending::Quit);
                } else {
                    return iced::window::close(id);
                }
            }
            Message::Tick => return self.on_tick(),
            Message::Noop => {}
        }
        Task::none()
    }

    fn single_selected(&self) -> Option<String> {
        (self.selection.len() == 1).then(|| self.selection.iter().next().cloned()).flatten()
    }

    fn on_canvas(&mut self, m: CanvasMsg) -> Task<Message> {
        match m {
            CanvasMsg::PressNode { id, additive } => {
                self.selected_wire = None;
                if additive {
                    if !self.selection.remove(&id) {
                        self.selection.insert(id);
                    }
                } else if !self.selection.contains(&id) {
                    self.selection = [id].into();
                }
                self.selection_changed();
            }
            CanvasMsg::SelectWire(e) => {
                self.selection.clear();
                self.selected_wire = Some(e);
                self.selection_changed();
            }
            CanvasMsg::ClearSelection => {
                self.selection.clear();
                self.selected_wire = None;
                self.selection_changed();
            }
            CanvasMsg::BoxSelect { ids, additive } => {
                if !additive {
                    self.selection.clear();
                }
                self.selection.extend(ids);
                self.selected_wire = None;
                self.selection_changed();
            }
            CanvasMsg::DragBy { dx, dy } => {
                if self.drag_before.is_none() {
                    self.drag_before = Some(self.doc.clone());
                }
                for id in &self.selection {
                    if let Some(p) = self.doc.layout.get_mut(id) {
                        p.x += dx as f64;
                        p.y += dy as f64;
                    }
                }
                self.cards = layout::cards(&self.doc, self.registry());
                self.redraw();
            }
            CanvasMsg::DragEnd => {
                // Snap to the grid, and make the whole drag one undo step.
                for id in &self.selection {
                    if let Some(p) = self.doc.layout.get_mut(id) {
                        *p = Pos { x: layout::snap(p.x), y: layout::snap(p.y) };
                    }
                }
                if let Some(before) = self.drag_before.take() {
                    if before != self.doc {
                        self.history.record(before.clone(), None);
                        self.after_doc_change(&before);
                    }
                }
            }
            CanvasMsg::TryConnect { a, b } => self.connect(&a, &b),
            CanvasMsg::Refused(reason) => self.say(format!("Cannot connect: {reason}")),
            CanvasMsg::Pan { dx, dy } => {
                self.view = self.view.panned(dx, dy);
                self.view_changed();
            }
            CanvasMsg::Zoom { factor, x, y } => {
                self.view = self.view.zoom_at(factor, Pt::new(x, y));
                self.view_changed();
            }
            CanvasMsg::OpenFinder { world, screen } => {
                self.finder =
                    Some(Finder { query: String::new(), highlight: 0, world: Pt::new(world.0, world.1), screen });
                return iced::widget::operation::focus(FINDER_INPUT);
            }
            CanvasMsg::Resized { x, y, w, h } => {
                let first = self.canvas_size == (1000.0, 600.0);
                self.canvas_size = (w, h);
                self.canvas_origin = (x, y);
                if first {
                    self.fit();
                }
                self.view_changed();
            }
        }
        Task::none()
    }

    /// Connects two ports if the wire is allowed; otherwise says why not.
    pub fn connect(&mut self, a: &PortEnd, b: &PortEnd) {
        match layout::check_connection(&self.doc, self.registry(), a, b) {
            Ok((from, to)) => {
                let msg = format!("Connected {from} → {to}");
                self.apply_edit(None, |d| d.connect(from, to));
                self.status = msg;
            }
            Err(reason) => self.say(format!("Cannot connect: {reason}")),
        }
    }

    fn selection_changed(&mut self) {
        self.rename = None;
        self.viewer.port = None;
        self.viewer.source = Source::Output;
        self.viewer.sel = None;
        self.viewer.hover = None;
        self.history.seal();
        self.redraw();
        self.refresh_image();
    }

    fn on_finder(&mut self, m: FinderMsg) -> Task<Message> {
        match m {
            FinderMsg::Query(q) => {
                if let Some(f) = &mut self.finder {
                    f.query = q;
                    f.highlight = 0;
                }
            }
            FinderMsg::Pick(type_id) => self.add_node_from_finder(&type_id),
            FinderMsg::Move(d) => {
                if let Some(f) = &self.finder {
                    let n = model::search(self.registry(), &f.query).len().min(FINDER_SHOWN);
                    let h = (f.highlight as i64 + d as i64).clamp(0, n.saturating_sub(1) as i64) as usize;
                    if let Some(f) = &mut self.finder {
                        f.highlight = h;
                    }
                }
            }
            FinderMsg::Submit => {
                let chosen = self.finder.as_ref().and_then(|f| {
                    let results = model::search(self.registry(), &f.query);
                    results.get(f.highlight).or(results.first()).map(|s| s.type_id.clone())
                });
                if let Some(t) = chosen {
                    self.add_node_from_finder(&t);
                }
            }
            FinderMsg::Close => self.finder = None,
        }
        Task::none()
    }

    /// Adds a node of `type_id` where the finder was opened, and selects it.
    pub fn add_node_from_finder(&mut self, type_id: &str) {
        let Some(spec) = self.registry().spec(type_id).cloned() else { return };
        let at = self.finder.take().map(|f| f.world).unwrap_or_else(|| self.view.to_world(Pt::new(200.0, 150.0)));
        let pos = Pos { x: layout::snap(at.x as f64), y: layout::snap(at.y as f64) };
        let mut new_id = String::new();
        self.apply_edit(None, |d| new_id = model::new_node(d, &spec, pos));
        self.selection = [new_id.clone()].into();
        self.selected_wire = None;
        self.selection_changed();
        self.say(format!("Added '{new_id}' ({type_id})"));
    }

    fn on_param(&mut self, node: String, name: String, edit: ParamEdit) {
        let Some(spec) = self.doc.nodes.get(&node).and_then(|n| self.registry().spec(&n.type_id)).cloned() else {
            return;
        };
        let Some(p) = spec.param_spec(&name).cloned() else { return };
        let key = (node.clone(), name.clone());
        let parsed = match edit {
            ParamEdit::Text(t) => {
                let r = model::parse_param(&p, &t);
                self.typing.insert(key.clone(), t);
                r
            }
            ParamEdit::Value(v) => {
                self.typing.remove(&key);
                p.check(&v)
            }
        };
        match parsed {
            Ok(v) => {
                self.param_problems.remove(&key);
                let tag = format!("{node}.{name}");
                self.apply_edit(Some(tag), |d| {
                    let _ = d.set_param(&node, &name, v);
                });
                self.redraw();
            }
            Err(e) => {
                self.param_problems.insert(key, e);
            }
        }
    }

    fn browse(&mut self, node: String, name: String) -> Task<Message> {
        let Some(p) = self
            .doc
            .nodes
            .get(&node)
            .and_then(|n| self.registry().spec(&n.type_id))
            .and_then(|s| s.param_spec(&name))
            .cloned()
        else {
            return Task::none();
        };
        let ParamKind::Path { mode, filters } = &p.kind else { return Task::none() };
        let mut dialog =
            rfd::AsyncFileDialog::new().set_title(format!("{node}: {name}")).set_directory(self.graph_dir());
        if !filters.is_empty() {
            dialog = dialog.add_filter(filters.join(", "), filters.as_slice());
        }
        let (n2, p2) = (node.clone(), name.clone());
        match mode {
            PathMode::Read { folder: true } => {
                Task::perform(async move { dialog.pick_folder().await.map(|h| h.path().to_path_buf()) }, move |path| {
                    Message::Picked { node: n2.clone(), name: p2.clone(), path }
                })
            }
            PathMode::Read { folder: false } => {
                Task::perform(async move { dialog.pick_file().await.map(|h| h.path().to_path_buf()) }, move |path| {
                    Message::Picked { node: n2.clone(), name: p2.clone(), path }
                })
            }
            PathMode::Write => {
                Task::perform(async move { dialog.save_file().await.map(|h| h.path().to_path_buf()) }, move |path| {
                    Message::Picked { node: n2.clone(), name: p2.clone(), path }
                })
            }
        }
    }

    fn rename_submit(&mut self) {
        let Some((old, new)) = self.rename.take() else { return };
        let new = new.trim().to_string();
        if new == old {
            return;
        }
        // A rename re-runs nothing (cache keys never contain ids): states and results follow.
        let before = self.doc.clone();
        match self.doc.rename_node(&old, &new) {
            Ok(()) => {
                self.history.record(before, None);
                if let Some(s) = self.states.remove(&old) {
                    self.states.insert(new.clone(), s);
                }
                if let Some(k) = self.keys.remove(&old) {
                    self.keys.insert(new.clone(), k);
                }
                if let Some(m) = self.metrics.remove(&old) {
                    self.metrics.insert(new.clone(), m);
                }
                // A run going on knows the node by its old name: what it says about it is
                // not applied to the renamed node.
                self.stale_since.remove(&old);
                if self.active.is_some() {
                    let mark = self.engine.next_run_id();
                    self.stale_since.insert(new.clone(), mark);
                    if self.states.get(&new).is_some_and(|s| matches!(s, NodeState::Queued | NodeState::Running { .. }))
                    {
                        self.states.insert(new.clone(), NodeState::Stale);
                    }
                }
                self.selection = [new.clone()].into();
                self.dirty = true;
                self.graph_changed();
                self.refresh_image();
                self.say(format!("Renamed '{old}' to '{new}'"));
            }
            Err(e) => self.say(format!("Cannot rename: {e}")),
        }
    }

    // ------------------------------------------------------------------------------ running

    /// Compiles the document as `petri run` does and starts it in the background.
    pub fn start_run(&mut self, to_selected: bool) -> Task<Message> {
        match self.start_run_stream(to_selected) {
            Some(rx) => Task::run(rx, Message::RunMsg),
            None => Task::none(),
        }
    }

    /// Starts a run; its events arrive on the returned stream (None: nothing started, and
    /// the reason is in the status bar and the log).
    pub fn start_run_stream(
        &mut self,
        to_selected: bool,
    ) -> Option<iced::futures::channel::mpsc::UnboundedReceiver<RunMsg>> {
        if self.active.is_some() {
            self.say("A run is already going on (Cancel stops it).");
            return None;
        }
        let targets: Vec<String> = if to_selected { self.selection.iter().cloned().collect() } else { Vec::new() };
        if to_selected && targets.is_empty() {
            self.say("Select the node to run to first.");
            return None;
        }
        let ctx = run::path_context(self.path.as_deref(), &self.base_dir);
        let compiled = match run::compile_doc(&self.doc, self.registry(), &ctx) {
            Ok(c) => c,
            Err(diags) => {
                self.validate();
                let n = diags.len();
                for d in diags {
                    self.push_log(format!("cannot run: {d}"));
                }
                self.status = format!(
                    "Cannot run: {n} problem{} (red cards; details in the inspector and the log)",
                    if n == 1 { "" } else { "s" }
                );
                self.panel = Panel::Log;
                return None;
            }
        };
        for w in &compiled.warnings {
            self.push_log(format!("warning: {w}"));
        }
        let cancel = Arc::new(AtomicBool::new(false));
        let runid = self.engine.next_run_id();
        let mut opts = run::options(targets, cancel.clone());
        if let Some(d) = &self.disk_cache_dir {
            opts.default_cache_dir = d.clone();
        }
        self.active = Some(ActiveRun { run: runid, cancel });
        self.status = "Running…".into();
        self.history.seal();
        Some(run::spawn(self.engine.clone(), compiled, opts, runid))
    }

    /// Whether what run `run` says about `node` still describes the graph.
    fn current_for(&self, run: u64, node: &str) -> bool {
        run >= self.run_floor
            && self.doc.nodes.contains_key(node)
            && self.stale_since.get(node).is_none_or(|&m| run >= m)
    }

    pub fn on_run_msg(&mut self, m: RunMsg) {
        match m {
            RunMsg::Event(ev) => {
                let run = ev.run();
                if run < self.run_floor {
                    return; // a run of a graph that is no longer open
                }
                use petri_engine::Event as E;
                let ev = match ev {
                    // Only the nodes no edit has touched since the run started.
                    E::RunStarted { run, to_run, cached, blocked } => {
                        let keep =
                            |v: Vec<String>| v.into_iter().filter(|n| self.current_for(run, n)).collect::<Vec<_>>();
                        E::RunStarted { run, to_run: keep(to_run), cached: keep(cached), blocked: keep(blocked) }
                    }
                    E::RunFinished { .. } => ev,
                    E::NodeLog { ref node, .. } if node.is_empty() => ev,
                    E::NodeStarted { ref node, .. }
                    | E::NodeProgress { ref node, .. }
                    | E::NodeMetric { ref node, .. }
                    | E::NodeLog { ref node, .. }
                    | E::NodeFinished { ref node, .. }
                    | E::NodeCached { ref node, .. }
                    | E::NodeFailed { ref node, .. }
                    | E::NodeSkipped { ref node, .. } => {
                        if !self.current_for(run, node) {
                            return; // older than the latest edit of this node: another graph
                        }
                        ev
                    }
                };
                if let E::NodeMetric { node, name, step, value, .. } = &ev {
                    self.metrics
                        .entry(node.clone())
                        .or_default()
                        .entry(name.clone())
                        .or_default()
                        .push((*step, *value));
                }
                if let E::NodeStarted { node, .. } = &ev {
                    // A node starting again starts fresh curves.
                    self.metrics.remove(node);
                }
                if let Some(line) = run::apply_event(&mut self.states, &ev) {
                    self.push_log(line);
                }
                // Metrics and log lines change no card: the cached canvas layer stays.
                if !matches!(ev, E::NodeMetric { .. } | E::NodeLog { .. }) {
                    self.redraw();
                }
            }
            RunMsg::Done(report) => {
                if self.active.as_ref().is_some_and(|a| a.run == report.run) {
                    self.active = None;
                }
                if report.run < self.run_floor {
                    return;
                }
                if report.cancelled {
                    // Nodes a cancelled run stopped or never reached (also those skipped
                    // because a cancelled node is their input) simply have no result yet.
                    for n in &report.nodes {
                        let stopped = n.status == petri_engine::NodeStatus::Skipped
                            || n.failure == Some(petri_engine::FailureKind::Cancelled);
                        if stopped && self.current_for(report.run, &n.id) {
                            self.states.insert(n.id.clone(), NodeState::Stale);
                        }
                    }
                }
                for (id, k) in &report.keys {
                    if self.current_for(report.run, id) && self.states.get(id).is_some_and(NodeState::has_result) {
                        self.keys.insert(id.clone(), *k);
                    }
                }
                self.status = if report.run < self.edit_mark {
                    "The graph changed during the run: the nodes you edited (and what follows them) are stale; run again to bring them up to date.".into()
                } else if report.ok {
                    format!("Run finished in {:.2} s", report.seconds)
                } else if report.cancelled {
                    "Run cancelled".into()
                } else {
                    let failed: Vec<&str> = report
                        .nodes
                        .iter()
                        .filter(|n| n.status == petri_engine::NodeStatus::Failed)
                        .map(|n| n.id.as_str())
                        .collect();
                    format!("Run failed: {} (see the log)", failed.join(", "))
                };
                self.redraw();
                self.refresh_image();
            }
        }
    }

    /// The outputs of a node from the last run, if still up to date.
    pub fn outputs_of(&self, id: &str) -> Option<Arc<BTreeMap<String, Value>>> {
        if !self.states.get(id).is_some_and(NodeState::has_result) {
            return None;
        }
        self.engine.cached(self.keys.get(id)?)
    }

    /// The value feeding `id`'s first stack-like input, if computed.
    pub fn input_of(&self, id: &str) -> Option<Value> {
        let n = self.doc.nodes.get(id)?;
        let spec = self.registry().spec(&n.type_id)?;
        for p in &spec.inputs {
            if let Some(src) = self.doc.source_of(&petri_engine::PortRef::new(id, &p.name)) {
                if let Some(v) = self.outputs_of(&src.node).and_then(|o| o.get(&src.port).cloned()) {
                    if v.as_stack().is_some() {
                        return Some(v);
                    }
                }
            }
        }
        None
    }

    // ------------------------------------------------------------------------------ viewer

    fn on_viewer(&mut self, m: ViewerMsg) {
        let v = &mut self.viewer;
        match m {
            ViewerMsg::Port(p) => {
                v.port = Some(p);
                v.sel = None;
                v.source = Source::Output;
            }
            ViewerMsg::Source(s) => v.source = s,
            ViewerMsg::T(t) => v.sel.get_or_insert(PlaneSel { t: 0, c: 0, z: 0 }).t = t,
            ViewerMsg::Z(z) => v.sel.get_or_insert(PlaneSel { t: 0, c: 0, z: 0 }).z = z,
            ViewerMsg::C(c) => v.sel.get_or_insert(PlaneSel { t: 0, c: 0, z: 0 }).c = c,
            ViewerMsg::Auto(a) => v.auto = a,
            ViewerMsg::Lo(x) => {
                v.auto = false;
                v.lo = x;
            }
            ViewerMsg::Hi(x) => {
                v.auto = false;
                v.hi = x;
            }
            ViewerMsg::Opacity(o) => v.opacity = o,
            ViewerMsg::FitImage => {
                v.view = ImageView::default();
                return;
            }
        }
        self.render_view();
    }

    /// The output port the viewer shows for the selected node.
    pub fn viewer_port(&self, outputs: &BTreeMap<String, Value>) -> Option<String> {
        if let Some(p) = &self.viewer.port {
            if outputs.contains_key(p) {
                return Some(p.clone());
            }
        }
        outputs.iter().find(|(_, v)| v.as_stack().is_some()).or_else(|| outputs.iter().next()).map(|(k, _)| k.clone())
    }

    /// Renders the plane the viewer shows (only when something it depends on changed).
    pub fn refresh_image(&mut self) {
        // The results may have changed: a new stack may even reuse the old one's memory.
        self.viewer.range_cache = None;
        self.render_view();
    }

    /// Renders again after a change of plane, channel, contrast or opacity (same stacks).
    fn render_view(&mut self) {
        self.viewer.rendered = None;
        let Some(id) = self.single_selected() else { return };
        let Some(outputs) = self.outputs_of(&id) else { return };
        let Some(port) = self.viewer_port(&outputs) else { return };
        let Some(out) = outputs.get(&port) else { return };
        let Some(out_stack) = out.as_stack() else { return };
        let input = self.input_of(&id);
        let in_stack =
            input.as_ref().and_then(|v| v.as_stack()).filter(|s| s.y() == out_stack.y() && s.x() == out_stack.x());
        let is_labels = matches!(out, Value::Labels(_) | Value::Mask(_));
        let source = match self.viewer.source {
            Source::Input if in_stack.is_none() => Source::Output,
            Source::Overlay if in_stack.is_none() || !is_labels => Source::Output,
            s => s,
        };
        let shown = if source == Source::Input { in_stack.unwrap_or(out_stack) } else { out_stack };
        let mut sel = self.viewer.sel.unwrap_or(PlaneSel { t: 0, c: 0, z: shown.z() / 2 });
        sel.t = sel.t.min(shown.t() - 1);
        sel.c = sel.c.min(shown.c() - 1);
        sel.z = sel.z.min(shown.z() - 1);
        self.viewer.sel = Some(sel);
        let id_of = |s: &petri_api::Stack| petri_api::with_pixels!(s.buffer(), px => (px.as_ptr() as usize, px.len()));
        let range = match self.viewer.range_cache {
            Some((k, r)) if k == id_of(shown) => r,
            _ => {
                let r = shown.min_max().unwrap_or((0.0, 1.0));
                self.viewer.range_cache = Some((id_of(shown), r));
                r
            }
        };
        let (w, h) = (shown.x(), shown.y());
        let rgba = match (source, is_labels) {
            (Source::Overlay, _) => {
                let base = in_stack.unwrap_or(out_stack);
                let bsel =
                    PlaneSel { t: sel.t.min(base.t() - 1), c: sel.c.min(base.c() - 1), z: sel.z.min(base.z() - 1) };
                let (lo, hi) = self.contrast(base, bsel);
                let mut img = viewer::render_gray(base, bsel, lo, hi);
                let top = viewer::render_labels(
                    out_stack,
                    PlaneSel { t: sel.t.min(out_stack.t() - 1), c: 0, z: sel.z.min(out_stack.z() - 1) },
                );
                viewer::blend(&mut img, &top, self.viewer.opacity);
                img
            }
            (Source::Output, true) => {
                let mut img = vec![0u8; w * h * 4];
                for px in img.chunks_exact_mut(4) {
                    px[3] = 255;
                }
                viewer::blend(&mut img, &viewer::render_labels(shown, sel), 1.0);
                img
            }
            _ => {
                let (lo, hi) = self.contrast(shown, sel);
                viewer::render_gray(shown, sel, lo, hi)
            }
        };
        self.viewer.rendered =
            Some(Rendered { handle: viewer::handle(w, h, rgba), w, h, values: Some(shown.clone()), data_range: range });
    }

    fn contrast(&mut self, s: &petri_api::Stack, sel: PlaneSel) -> (f64, f64) {
        if self.viewer.auto {
            let (lo, hi) = viewer::auto_contrast(s, sel);
            self.viewer.lo = lo;
            self.viewer.hi = hi;
        }
        (self.viewer.lo, self.viewer.hi)
    }

    // ------------------------------------------------------------------------------ edits

    /// Where Paste puts the top-left of the copied group: at the mouse, snapped to the grid,
    /// when the mouse is over the canvas; otherwise None (the copy lands beside the original).
    pub fn paste_position(&self) -> Option<Pos> {
        let (x, y) = self.hover.get()?;
        let w = self.view.to_world(Pt::new(x, y));
        Some(Pos { x: layout::snap(w.x as f64), y: layout::snap(w.y as f64) })
    }

    fn on_edit(&mut self, m: EditMsg) {
        match m {
            EditMsg::Undo => {
                if let Some(d) = self.history.undo(&self.doc) {
                    self.set_doc(d);
                    self.status = "Undone".into();
                }
            }
            EditMsg::Redo => {
                if let Some(d) = self.history.redo(&self.doc) {
                    self.set_doc(d);
                    self.status = "Redone".into();
                }
            }
            EditMsg::Copy => {
                if !self.selection.is_empty() {
                    self.clipboard = Some(model::copy(&self.doc, &self.selection));
                    self.status = format!(
                        "Copied {} node{}",
                        self.selection.len(),
                        if self.selection.len() == 1 { "" } else { "s" }
                    );
                }
            }
            EditMsg::Paste => {
                if let Some(clip) = self.clipboard.clone() {
                    let at = self.paste_position();
                    let mut ids = BTreeSet::new();
                    self.apply_edit(None, |d| ids = model::paste(d, &clip, at));
                    // Paste again further along, not on top of the first copy.
                    if let Some(c) = &mut self.clipboard {
                        for p in c.doc.layout.values_mut() {
                            p.x += 40.0;
                            p.y += 40.0;
                        }
                    }
                    self.selection = ids;
                    self.selection_changed();
                }
            }
            EditMsg::Duplicate => {
                if !self.selection.is_empty() {
                    let clip = model::copy(&self.doc, &self.selection);
                    let mut ids = BTreeSet::new();
                    self.apply_edit(None, |d| ids = model::paste(d, &clip, None));
                    self.selection = ids;
                    self.selection_changed();
                }
            }
            EditMsg::Delete => {
                if let Some(e) = self.selected_wire.take() {
                    self.apply_edit(None, |d| {
                        d.disconnect(&e.to);
                    });
                    self.status = format!("Removed the wire {} → {}", e.from, e.to);
                } else if !self.selection.is_empty() {
                    let ids = std::mem::take(&mut self.selection);
                    self.apply_edit(None, |d| {
                        for id in &ids {
                            let _ = d.remove_node(id);
                        }
                    });
                    self.selection_changed();
                }
            }
            EditMsg::SelectAll => {
                self.selection = self.doc.nodes.keys().cloned().collect();
                self.selection_changed();
            }
            EditMsg::Fit => self.fit(),
            EditMsg::Escape => {
                if self.finder.take().is_none() {
                    self.confirm = None;
                }
            }
        }
    }

    // ------------------------------------------------------------------------------ files

    fn on_file(&mut self, m: FileMsg) -> Task<Message> {
        match m {
            FileMsg::New => return self.guard(Pending::New),
            FileMsg::Open => return self.guard(Pending::Open),
            FileMsg::OpenPath(p) => return self.guard(Pending::OpenPath(p)),
            FileMsg::OpenExample(p) => return self.guard(Pending::OpenExample(p)),
            FileMsg::OpenPicked(Some(p)) => self.open_path(&p),
            FileMsg::OpenPicked(None) | FileMsg::SaveAsPicked(None) => {}
            FileMsg::Save => match self.path.clone() {
                Some(p) => {
                    self.save_to(&p);
                }
                None => return self.save_as_dialog(),
            },
            FileMsg::SaveAs => return self.save_as_dialog(),
            FileMsg::SaveAsPicked(Some(p)) => {
                let p = if p.extension().is_none() { p.with_extension("ron") } else { p };
                if self.save_to(&p) {
                    if let Some(pending) = self.confirm.take() {
                        return self.perform(pending);
                    }
                }
            }
            FileMsg::Confirm(c) => {
                let Some(pending) = self.confirm.clone() else { return Task::none() };
                match c {
                    Confirm::Cancel => self.confirm = None,
                    Confirm::Discard => {
                        self.confirm = None;
                        return self.perform(pending);
                    }
                    Confirm::Save => match self.path.clone() {
                        Some(p) => {
                            if self.save_to(&p) {
                                self.confirm = None;
                                return self.perform(pending);
                            }
                        }
                        // Keep `confirm` so the action goes on once saved.
                        None => return self.save_as_dialog(),
                    },
                }
            }
        }
        Task::none()
    }

    /// Asks before an action that would lose unsaved changes.
    fn guard(&mut self, p: Pending) -> Task<Message> {
        if self.dirty {
            self.confirm = Some(p);
            Task::none()
        } else {
            self.perform(p)
        }
    }

    fn perform(&mut self, p: Pending) -> Task<Message> {
        match p {
            Pending::New => {
                self.replace_doc(GraphDoc::default(), None, run::scratch_dir(), "untitled");
                self.say("New graph: press Tab or double-click the canvas to add a node.");
            }
            Pending::Open => {
                let dialog =
                    rfd::AsyncFileDialog::new().add_filter("Petri graph", &["ron"]).set_directory(self.graph_dir());
                return Task::perform(async move { dialog.pick_file().await.map(|h| h.path().to_path_buf()) }, |p| {
                    Message::File(FileMsg::OpenPicked(p))
                });
            }
            Pending::OpenPath(p) => self.open_path(&p),
            Pending::OpenExample(p) => self.open_example(&p),
            Pending::Quit => return iced::exit(),
        }
        Task::none()
    }

    fn replace_doc(&mut self, doc: GraphDoc, path: Option<PathBuf>, base_dir: PathBuf, hint: &str) {
        if let Some(a) = &self.active {
            a.cancel.store(true, Ordering::SeqCst);
        }
        self.doc = doc;
        self.path = path;
        self.base_dir = base_dir;
        self.name_hint = hint.to_string();
        self.dirty = false;
        self.history.clear();
        self.selection.clear();
        self.selected_wire = None;
        self.states.clear();
        self.keys.clear();
        self.metrics.clear();
        self.typing.clear();
        self.param_problems.clear();
        self.finder = None;
        self.edit_mark = self.engine.next_run_id();
        self.run_floor = self.edit_mark;
        self.stale_since.clear();
        self.graph_changed();
        self.refresh_image();
        self.fit();
    }

    /// Opens a graph file (problems with its nodes are shown, not refused).
    pub fn open_path(&mut self, p: &Path) {
        match petri_engine::load_graph(p, self.registry()) {
            Ok((doc, diags)) => {
                let dir = run::path_context(Some(p), Path::new(".")).graph_dir;
                self.replace_doc(doc, Some(p.to_path_buf()), dir, "");
                if self.remember_recent {
                    files::push_recent(&mut self.recent, p);
                }
                for d in &diags {
                    self.push_log(format!("{d}"));
                }
                self.say(format!("Opened {}", p.display()));
            }
            Err(e) => self.say(format!("Cannot open: {e}")),
        }
    }

    /// Opens an example as an unsaved copy whose relative paths still resolve in its folder.
    pub fn open_example(&mut self, p: &Path) {
        match petri_engine::load_graph(p, self.registry()) {
            Ok((doc, _)) => {
                let dir = run::path_context(Some(p), Path::new(".")).graph_dir;
                let hint = format!("{} (example)", files::display_name(Some(p), "example"));
                self.replace_doc(doc, None, dir, &hint);
                self.say(format!("Opened the example {} (Save As to keep your changes)", p.display()));
            }
            Err(e) => self.say(format!("Cannot open: {e}")),
        }
    }

    fn save_as_dialog(&mut self) -> Task<Message> {
        let name = files::display_name(self.path.as_deref(), &self.name_hint.replace(" (example)", ""));
        let name = if name.ends_with(".ron") { name } else { format!("{name}.ron") };
        let dialog = rfd::AsyncFileDialog::new()
            .add_filter("Petri graph", &["ron"])
            .set_file_name(name)
            .set_directory(self.graph_dir());
        Task::perform(async move { dialog.save_file().await.map(|h| h.path().to_path_buf()) }, |p| {
            Message::File(FileMsg::SaveAsPicked(p))
        })
    }

    /// Saves (atomically) to `p`; input paths are rewritten relative to the new folder.
    pub fn save_to(&mut self, p: &Path) -> bool {
        let new_dir = run::path_context(Some(p), Path::new(".")).graph_dir;
        let old_dir = self.graph_dir();
        let mut doc = self.doc.clone();
        model::rebase_input_paths(&mut doc, self.registry(), &old_dir, &new_dir);
        match petri_engine::save_file(p, &doc) {
            Ok(()) => {
                if doc != self.doc {
                    // The rebased paths name the same files: not an edit that re-runs anything.
                    self.doc = doc;
                }
                self.path = Some(p.to_path_buf());
                self.base_dir = new_dir;
                self.dirty = false;
                if self.remember_recent {
                    files::push_recent(&mut self.recent, p);
                }
                self.validate();
                self.say(format!("Saved {}", p.display()));
                true
            }
            Err(e) => {
                self.say(format!("Cannot save {}: {e}", p.display()));
                false
            }
        }
    }

    fn on_drop(&mut self, p: PathBuf) -> Task<Message> {
        match files::classify_drop(&p, self.registry()) {
            Dropped::Graph => return self.guard(Pending::OpenPath(p)),
            Dropped::Image { type_id, param } => {
                let Some(spec) = self.registry().spec(&type_id).cloned() else { return Task::none() };
                let at = self.view.to_world(Pt::new(self.canvas_size.0 / 2.0, self.canvas_size.1 / 2.0));
                let dir = self.path.as_ref().map(|_| self.graph_dir());
                let stored = model::stored_path(&p, dir.as_deref());
                let mut id = String::new();
                self.apply_edit(None, |d| {
                    id = model::new_node(d, &spec, Pos { x: layout::snap(at.x as f64), y: layout::snap(at.y as f64) });
                    let _ = d.set_param(&id, &param, ParamValue::Str(stored));
                });
                self.selection = [id.clone()].into();
                self.selection_changed();
                self.say(format!("Added '{id}' reading {}", p.display()));
            }
            Dropped::Unknown => self.say(format!("{}: not a graph or an image Petri reads", p.display())),
        }
        Task::none()
    }

    fn on_tick(&mut self) -> Task<Message> {
        self.ticks += 1;
        crate::automation_tick(self)
    }
}

/// Keyboard shortcuts (events no widget used).
pub fn shortcut(key: &keyboard::Key, m: keyboard::Modifiers) -> Option<Message> {
    use keyboard::Key;
    use keyboard::key::Named;
    let ctrl = m.command();
    let msg = match key.as_ref() {
        Key::Character(c) if ctrl => match (c.to_lowercase().as_str(), m.shift()) {
            ("s", false) => Message::File(FileMsg::Save),
            ("s", true) => Message::File(FileMsg::SaveAs),
            ("o", _) => Message::File(FileMsg::Open),
            ("n", _) => Message::File(FileMsg::New),
            ("z", false) => Message::Edit(EditMsg::Undo),
            ("z", true) | ("y", _) => Message::Edit(EditMsg::Redo),
            ("c", _) => Message::Edit(EditMsg::Copy),
            ("v", _) => Message::Edit(EditMsg::Paste),
            ("d", _) => Message::Edit(EditMsg::Duplicate),
            ("a", _) => Message::Edit(EditMsg::SelectAll),
            _ => return None,
        },
        Key::Character(c) if !ctrl && !m.alt() && c.eq_ignore_ascii_case("f") => Message::Edit(EditMsg::Fit),
        Key::Named(Named::Enter) if ctrl => Message::Run { to_selected: m.shift() },
        Key::Named(Named::Delete | Named::Backspace) if !ctrl => Message::Edit(EditMsg::Delete),
        Key::Named(Named::Escape) => Message::Edit(EditMsg::Escape),
        // Move through the node finder's results (ignored when it is closed).
        Key::Named(Named::ArrowDown) if !ctrl => Message::Finder(FinderMsg::Move(1)),
        Key::Named(Named::ArrowUp) if !ctrl => Message::Finder(FinderMsg::Move(-1)),
        _ => return None,
    };
    Some(msg)
}
