//! The graph canvas: node cards, ports, bezier wires, and every mouse gesture on them.
//!
//! Two cached layers (the grid; wires and cards) are redrawn only when the App clears their
//! caches (graph, status, selection or view changed); what follows the cursor (a wire being
//! drawn, compatible ports lighting up, the selection box) is an uncached overlay.
//! Gestures become [`CanvasMsg`]s; the App applies them to the document.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use iced::mouse::{self, Cursor};
use iced::widget::canvas::{self, Action, Event, Frame, Geometry, Path, Program, Stroke, Text};
use iced::{Color, Pixels, Point, Rectangle, Renderer, Size, Theme, keyboard};
use petri_api::{PortType, Registry};
use petri_engine::{Edge, GraphDoc};

use crate::layout::{self, CardGeom, Hit, PortEnd, Pt, Rect, Viewport};
use crate::run::NodeState;

#[derive(Clone, Debug, PartialEq)]
pub enum CanvasMsg {
    /// A press on a card (`additive`: with Shift).
    PressNode {
        id: String,
        additive: bool,
    },
    SelectWire(Edge),
    ClearSelection,
    BoxSelect {
        ids: BTreeSet<String>,
        additive: bool,
    },
    /// Selected cards dragged by a world-space delta.
    DragBy {
        dx: f32,
        dy: f32,
    },
    DragEnd,
    TryConnect {
        a: PortEnd,
        b: PortEnd,
    },
    Refused(String),
    Pan {
        dx: f32,
        dy: f32,
    },
    Zoom {
        factor: f32,
        x: f32,
        y: f32,
    },
    /// Open the node finder; `world` is where the new node goes, `screen` where the finder shows.
    OpenFinder {
        world: (f32, f32),
        screen: (f32, f32),
    },
    /// The canvas moved or changed size (fit-to-view and the finder need it).
    Resized {
        x: f32,
        y: f32,
        w: f32,
        h: f32,
    },
}

/// Everything the canvas shows; borrowed from the App for one frame.
pub struct GraphCanvas<'a> {
    pub doc: &'a GraphDoc,
    pub registry: &'a Registry,
    pub cards: &'a BTreeMap<String, CardGeom>,
    pub states: &'a BTreeMap<String, NodeState>,
    /// Problems per node (validation), shown as a red outline and on hover in the inspector.
    pub problems: &'a BTreeMap<String, Vec<String>>,
    pub selection: &'a BTreeSet<String>,
    pub selected_wire: Option<&'a Edge>,
    pub view: Viewport,
    pub grid_cache: &'a canvas::Cache,
    pub graph_cache: &'a canvas::Cache,
    /// Where the App thinks the canvas is (x, y, w, h), to notice changes.
    pub known_bounds: (f32, f32, f32, f32),
    /// The wires-and-cards geometry in world space, reused across pans and zooms.
    pub scene: &'a SceneCache,
    /// The App's record of where the mouse is over the canvas (for Paste), kept up to date here.
    pub hover: &'a std::cell::Cell<Option<(f32, f32)>>,
}

#[derive(Default)]
pub struct Interaction {
    mode: Mode,
    space: bool,
    shift: bool,
    last_click: Option<(Instant, Point)>,
}

#[derive(Default, Clone, Debug)]
enum Mode {
    #[default]
    Idle,
    Drag {
        last: Pt,
        moved: bool,
    },
    Wire {
        from: PortEnd,
        at: Point,
    },
    Pan {
        last: Point,
    },
    Box {
        start: Point,
        now: Point,
        additive: bool,
    },
}

const DOUBLE_CLICK: Duration = Duration::from_millis(400);

fn pt(p: Point) -> Pt {
    Pt::new(p.x, p.y)
}
fn point(p: Pt) -> Point {
    Point::new(p.x, p.y)
}

pub fn category_color(category: &str) -> Color {
    match category {
        "io" => Color::from_rgb8(0x3a, 0x6e, 0xa5),
        "image" => Color::from_rgb8(0x2e, 0x8b, 0x57),
        "label" => Color::from_rgb8(0xb0, 0x6a, 0x1e),
        "measure" => Color::from_rgb8(0x7b, 0x4f, 0xa0),
        "track" => Color::from_rgb8(0x1f, 0x8a, 0x8a),
        "learn" => Color::from_rgb8(0xa8, 0x3a, 0x4a),
        other => {
            // Any other category: a stable colour from its name.
            let h = other.bytes().fold(7u32, |h, b| h.wrapping_mul(31).wrapping_add(b as u32));
            Color::from_rgb8(60 + (h % 120) as u8, 60 + ((h / 120) % 120) as u8, 60 + ((h / 14400) % 120) as u8)
        }
    }
}

pub fn port_color(t: Option<PortType>) -> Color {
    match t {
        Some(PortType::Image) => Color::from_rgb8(0x5d, 0xa9, 0xe9),
        Some(PortType::Mask) => Color::from_rgb8(0xf2, 0xd3, 0x4f),
        Some(PortType::Labels) => Color::from_rgb8(0xe8, 0x6a, 0xd0),
        Some(PortType::Table) => Color::from_rgb8(0x6c, 0xd0, 0x7a),
        Some(PortType::File) => Color::from_rgb8(0xb0, 0xb0, 0xb0),
        Some(PortType::Stack) => Color::from_rgb8(0x8f, 0xd8, 0xd8),
        Some(PortType::Tracks) => Color::from_rgb8(0xf0, 0x9a, 0x3e),
        Some(PortType::Dataset) => Color::from_rgb8(0xa7, 0x8b, 0xfa),
        Some(PortType::Model) => Color::from_rgb8(0xef, 0x53, 0x50),
        None => Color::from_rgb8(0x80, 0x80, 0x80),
    }
}

pub fn state_color(s: Option<&NodeState>) -> Color {
    match s {
        None | Some(NodeState::Stale) => Color::from_rgb8(0x8a, 0x8a, 0x8a),
        Some(NodeState::Queued) => Color::from_rgb8(0x9e, 0xc5, 0xfe),
        Some(NodeState::Running { .. }) => Color::from_rgb8(0x3d, 0x8b, 0xfd),
        Some(NodeState::Cached) => Color::from_rgb8(0x20, 0xc9, 0x97),
        Some(NodeState::Done { .. }) => Color::from_rgb8(0x4c, 0xc2, 0x4c),
        Some(NodeState::Failed(_)) => Color::from_rgb8(0xf0, 0x3e, 0x3e),
        Some(NodeState::Skipped(_)) => Color::from_rgb8(0xd0, 0x90, 0x40),
    }
}

pub const BACKGROUND: Color = Color { r: 0.13, g: 0.14, b: 0.16, a: 1.0 };
const CARD_BODY: Color = Color { r: 0.22, g: 0.23, b: 0.26, a: 1.0 };
const TEXT: Color = Color { r: 0.93, g: 0.93, b: 0.93, a: 1.0 };
const DIM_TEXT: Color = Color { r: 0.7, g: 0.72, b: 0.75, a: 1.0 };
const SELECT: Color = Color { r: 1.0, g: 0.78, b: 0.25, a: 1.0 };

impl GraphCanvas<'_> {
    fn tol(&self) -> f32 {
        4.0 / self.view.zoom
    }
}

/// Draws the grid.
pub fn draw_grid(frame: &mut Frame, view: &Viewport, size: Size) {
    frame.fill_rectangle(Point::ORIGIN, size, BACKGROUND);
    let step = layout::GRID * 5.0 * view.zoom;
    if step < 8.0 {
        return;
    }
    let color = Color { r: 0.2, g: 0.21, b: 0.24, a: 1.0 };
    let path = Path::new(|b| {
        let mut x = view.offset.x.rem_euclid(step);
        while x < size.width {
            b.move_to(Point::new(x, 0.0));
            b.line_to(Point::new(x, size.height));
            x += step;
        }
        let mut y = view.offset.y.rem_euclid(step);
        while y < size.height {
            b.move_to(Point::new(0.0, y));
            b.line_to(Point::new(size.width, y));
            y += step;
        }
    });
    frame.stroke(&path, Stroke::default().with_color(color).with_width(1.0));
}

fn wire_path(a: Pt, b: Pt) -> Path {
    let (c1, c2) = layout::wire_controls(a, b);
    Path::new(|p| {
        p.move_to(point(a));
        p.bezier_curve_to(point(c1), point(c2), point(b));
    })
}

// ------------------------------------------------------------------------------ scene

/// The wires-and-cards layer as world-space geometry, batched by colour and cut into chunks.
///
/// Built once after the graph, the node states or the selection change, and reused for every
/// pan and zoom: a frame then only culls chunks and hands the cached paths to the renderer
/// with the view's transform (tiny-skia copies and transforms them; nothing is flattened or
/// rebuilt). One path per colour per chunk instead of one per shape: the 500-node benchmark
/// went from ~4000 fills and strokes to ~100.
pub struct Scene {
    chunks: Vec<Chunk>,
    /// World positions of required inputs with nothing connected (ringed on screen; the
    /// ring's size does not scale with zoom, so it is drawn per frame).
    rings: Vec<Pt>,
}

/// The content of one area of the world (or one card drawn on its own, see `Scene::build`).
struct Chunk {
    /// World rectangle holding everything in the chunk (wires included), for culling.
    bounds: Rect,
    /// Wires by colour; `true` for the selected (thicker) wire.
    wires: Vec<(Color, bool, Path)>,
    /// Card shapes in drawing order.
    cards: Vec<Op>,
}

enum Op {
    Fill(Color, Path),
    Stroke(Color, f32, Path),
}

/// The scene, kept between frames; the App clears it when what it shows changes (not on pan
/// or zoom).
#[derive(Default)]
pub struct SceneCache(std::cell::RefCell<Option<std::sync::Arc<Scene>>>);

impl SceneCache {
    pub fn clear(&self) {
        self.0.borrow_mut().take();
    }
    fn get_or_build(&self, build: impl FnOnce() -> Scene) -> std::sync::Arc<Scene> {
        self.0.borrow_mut().get_or_insert_with(|| std::sync::Arc::new(build())).clone()
    }
}

/// World size of a chunk: small enough that a zoomed-in view skips most of a large graph,
/// large enough that a zoomed-out view draws few paths.
const CHUNK: f32 = 1500.0;

/// Paths of one colour being built.
struct Batch {
    color: Color,
    builder: canvas::path::Builder,
}

fn batch(batches: &mut Vec<Batch>, color: Color) -> &mut canvas::path::Builder {
    let i = match batches.iter().position(|b| b.color == color) {
        Some(i) => i,
        None => {
            batches.push(Batch { color, builder: canvas::path::Builder::new() });
            batches.len() - 1
        }
    };
    &mut batches[i].builder
}

/// A circle as four cubic arcs (the usual 0.5523 control distance, within 0.03 % of a true
/// circle): no trigonometry, unlike the builder's arc-to-quadratics conversion.
fn add_circle(b: &mut canvas::path::Builder, c: Pt, r: f32) {
    let k = 0.552_284_8 * r;
    b.move_to(Point::new(c.x + r, c.y));
    b.bezier_curve_to(Point::new(c.x + r, c.y + k), Point::new(c.x + k, c.y + r), Point::new(c.x, c.y + r));
    b.bezier_curve_to(Point::new(c.x - k, c.y + r), Point::new(c.x - r, c.y + k), Point::new(c.x - r, c.y));
    b.bezier_curve_to(Point::new(c.x - r, c.y - k), Point::new(c.x - k, c.y - r), Point::new(c.x, c.y - r));
    b.bezier_curve_to(Point::new(c.x + k, c.y - r), Point::new(c.x + r, c.y - k), Point::new(c.x + r, c.y));
    b.close();
}

/// A rectangle with top corners of radius `top` and bottom corners of radius `bottom`.
fn add_rounded_rect(b: &mut canvas::path::Builder, r: &Rect, top: f32, bottom: f32) {
    let k = 1.0 - 0.552_284_8;
    let (x0, y0, x1, y1) = (r.x, r.y, r.x + r.w, r.y + r.h);
    b.move_to(Point::new(x0 + top, y0));
    b.line_to(Point::new(x1 - top, y0));
    if top > 0.0 {
        b.bezier_curve_to(Point::new(x1 - top * k, y0), Point::new(x1, y0 + top * k), Point::new(x1, y0 + top));
    }
    b.line_to(Point::new(x1, y1 - bottom));
    if bottom > 0.0 {
        b.bezier_curve_to(
            Point::new(x1, y1 - bottom * k),
            Point::new(x1 - bottom * k, y1),
            Point::new(x1 - bottom, y1),
        );
    }
    b.line_to(Point::new(x0 + bottom, y1));
    if bottom > 0.0 {
        b.bezier_curve_to(
            Point::new(x0 + bottom * k, y1),
            Point::new(x0, y1 - bottom * k),
            Point::new(x0, y1 - bottom),
        );
    }
    b.line_to(Point::new(x0, y0 + top));
    if top > 0.0 {
        b.bezier_curve_to(Point::new(x0, y0 + top * k), Point::new(x0 + top * k, y0), Point::new(x0 + top, y0));
    }
    b.close();
}

fn union(a: Option<Rect>, b: Rect) -> Rect {
    match a {
        None => b,
        Some(a) => {
            let (x0, y0) = (a.x.min(b.x), a.y.min(b.y));
            let (x1, y1) = ((a.x + a.w).max(b.x + b.w), (a.y + a.h).max(b.y + b.h));
            Rect { x: x0, y: y0, w: x1 - x0, h: y1 - y0 }
        }
    }
}

/// Card shapes of one chunk being built, by drawing stage (each stage batched by colour).
#[derive(Default)]
struct CardBatches {
    body: Vec<Batch>,
    header: Vec<Batch>,
    /// Outlines: selection (3 px) and failure (2 px).
    selected: Vec<Batch>,
    failed: Vec<Batch>,
    badge: Vec<Batch>,
    port: Vec<Batch>,
    progress: Vec<Batch>,
}

impl CardBatches {
    fn finish(self) -> Vec<Op> {
        let fills = |v: Vec<Batch>| v.into_iter().map(|b| Op::Fill(b.color, b.builder.build())).collect::<Vec<_>>();
        let strokes = |v: Vec<Batch>, w: f32| {
            v.into_iter().map(|b| Op::Stroke(b.color, w, b.builder.build())).collect::<Vec<_>>()
        };
        let mut ops = fills(self.body);
        ops.extend(fills(self.header));
        ops.extend(strokes(self.selected, 3.0));
        ops.extend(strokes(self.failed, 2.0));
        ops.extend(fills(self.badge));
        ops.extend(fills(self.port));
        ops.extend(fills(self.progress));
        ops
    }
}

impl Scene {
    /// Builds the scene of `g` in world coordinates.
    ///
    /// Batching draws all shapes of one colour together, which would change which card is on
    /// top where cards overlap; so cards that touch another card (ports and outline included)
    /// are each drawn on their own, after the others, in the order they always were.
    pub fn build(g: &GraphCanvas<'_>) -> Scene {
        let cards: Vec<&CardGeom> = g.cards.values().collect();
        // Reach of a card's drawing beyond its rectangle: port circles and the outline.
        let reach = layout::PORT_R + 3.0;
        let grown: Vec<Rect> = cards
            .iter()
            .map(|c| Rect {
                x: c.rect.x - reach,
                y: c.rect.y - reach,
                w: c.rect.w + 2.0 * reach,
                h: c.rect.h + 2.0 * reach,
            })
            .collect();
        let mut alone = vec![false; cards.len()];
        // Sweep along x: a card can only overlap the cards that start before it ends.
        let mut by_x: Vec<usize> = (0..cards.len()).collect();
        by_x.sort_by(|&a, &b| grown[a].x.total_cmp(&grown[b].x));
        for (k, &i) in by_x.iter().enumerate() {
            for &j in &by_x[k + 1..] {
                if grown[j].x >= grown[i].x + grown[i].w {
                    break;
                }
                if grown[i].intersects(&grown[j]) {
                    alone[i] = true;
                    alone[j] = true;
                }
            }
        }
        let key = |p: Pt| ((p.x / CHUNK).floor() as i32, (p.y / CHUNK).floor() as i32);
        struct Building {
            bounds: Option<Rect>,
            wires: Vec<(Color, bool, canvas::path::Builder)>,
            cards: CardBatches,
        }
        let new_building = || Building { bounds: None, wires: Vec::new(), cards: CardBatches::default() };
        let mut chunks: BTreeMap<(i32, i32), Building> = BTreeMap::new();
        for e in &g.doc.edges {
            let Some((a, b)) = layout::wire_ends(g.cards, e) else { continue };
            let (c1, c2) = layout::wire_controls(a, b);
            let ty = g
                .doc
                .nodes
                .get(&e.from.node)
                .and_then(|n| g.registry.spec(&n.type_id))
                .and_then(|s| s.output_spec(&e.from.port))
                .map(|p| p.ty);
            let selected = g.selected_wire == Some(e);
            let color = if selected { SELECT } else { port_color(ty) };
            let ch = chunks.entry(key(a)).or_insert_with(new_building);
            // A bezier lies inside the hull of its control points.
            let hull = [a, c1, c2, b];
            let (x0, x1) = hull.iter().fold((f32::MAX, f32::MIN), |(lo, hi), p| (lo.min(p.x), hi.max(p.x)));
            let (y0, y1) = hull.iter().fold((f32::MAX, f32::MIN), |(lo, hi), p| (lo.min(p.y), hi.max(p.y)));
            ch.bounds = Some(union(ch.bounds, Rect { x: x0, y: y0, w: x1 - x0, h: y1 - y0 }));
            let i = match ch.wires.iter().position(|w| w.0 == color && w.1 == selected) {
                Some(i) => i,
                None => {
                    ch.wires.push((color, selected, canvas::path::Builder::new()));
                    ch.wires.len() - 1
                }
            };
            let p = &mut ch.wires[i].2;
            p.move_to(point(a));
            p.bezier_curve_to(point(c1), point(c2), point(b));
        }
        // Connected inputs, once (not a scan of every wire per port).
        let connected: std::collections::HashSet<(&str, &str)> =
            g.doc.edges.iter().map(|e| (e.to.node.as_str(), e.to.port.as_str())).collect();
        let mut rings = Vec::new();
        let mut singles = Vec::new();
        let failed_color = state_color(Some(&NodeState::Failed(String::new())));
        for (i, c) in cards.iter().enumerate() {
            let mut own = CardBatches::default();
            let target = if alone[i] {
                &mut own
            } else {
                &mut chunks.entry(key(Pt::new(c.rect.x, c.rect.y))).or_insert_with(new_building).cards
            };
            let r = c.rect;
            let state = g.states.get(&c.id);
            add_rounded_rect(batch(&mut target.body, CARD_BODY), &r, 6.0, 6.0);
            let category =
                g.doc.nodes.get(&c.id).and_then(|n| g.registry.spec(&n.type_id)).map(|s| s.category.as_str());
            let header = Rect { h: layout::HEADER_H, ..r };
            add_rounded_rect(batch(&mut target.header, category_color(category.unwrap_or(""))), &header, 6.0, 0.0);
            // Outline: selection, else problems/failure in red.
            let failed =
                matches!(state, Some(NodeState::Failed(_))) || g.problems.get(&c.id).is_some_and(|p| !p.is_empty());
            if g.selection.contains(&c.id) {
                add_rounded_rect(batch(&mut target.selected, SELECT), &r, 6.0, 6.0);
            } else if failed {
                add_rounded_rect(batch(&mut target.failed, failed_color), &r, 6.0, 6.0);
            }
            add_circle(
                batch(&mut target.badge, state_color(state)),
                Pt::new(r.x + r.w - 10.0, r.y + layout::HEADER_H / 2.0),
                5.0,
            );
            for p in c.inputs.iter().chain(&c.outputs) {
                add_circle(batch(&mut target.port, port_color(p.ty)), p.pos, layout::PORT_R);
                if p.required && !p.output && !connected.contains(&(c.id.as_str(), p.name.as_str())) {
                    rings.push(p.pos);
                }
            }
            // Progress bar at the bottom while running.
            if let Some(NodeState::Running { fraction, .. }) = state {
                let y = r.y + r.h - 8.0;
                let w = r.w - 16.0;
                let track = Rect { x: r.x + 8.0, y, w, h: 4.0 };
                add_rounded_rect(batch(&mut target.progress, Color::from_rgb(0.35, 0.35, 0.4)), &track, 0.0, 0.0);
                let done = Rect { w: w * (*fraction as f32).clamp(0.0, 1.0), ..track };
                if done.w > 0.0 {
                    add_rounded_rect(batch(&mut target.progress, state_color(state)), &done, 0.0, 0.0);
                }
            }
            if alone[i] {
                singles.push(Chunk { bounds: grown[i], wires: Vec::new(), cards: own.finish() });
            } else if let Some(ch) = chunks.get_mut(&key(Pt::new(c.rect.x, c.rect.y))) {
                ch.bounds = Some(union(ch.bounds, grown[i]));
            }
        }
        let mut out: Vec<Chunk> = chunks
            .into_values()
            .filter_map(|b| {
                Some(Chunk {
                    bounds: b.bounds?,
                    wires: b.wires.into_iter().map(|(c, s, p)| (c, s, p.build())).collect(),
                    cards: b.cards.finish(),
                })
            })
            .collect();
        out.extend(singles);
        Scene { chunks: out, rings }
    }
}

/// Draws wires and cards (the static layer). Public so the benchmark times exactly this.
pub fn draw_graph(frame: &mut Frame, g: &GraphCanvas<'_>, size: Size) {
    let scene = g.scene.get_or_build(|| Scene::build(g));
    let v = &g.view;
    let z = v.zoom;
    let screen = Rect { x: -50.0, y: -50.0, w: size.width + 100.0, h: size.height + 100.0 };
    let world = Rect::from_corners(
        v.to_world(Pt::new(screen.x, screen.y)),
        v.to_world(Pt::new(screen.x + screen.w, screen.y + screen.h)),
    );
    let visible: Vec<&Chunk> = scene.chunks.iter().filter(|c| c.bounds.intersects(&world)).collect();
    frame.with_save(|f| {
        // World to screen: `screen = world * zoom + offset`. Stroke widths stay in pixels.
        f.translate(iced::Vector::new(v.offset.x, v.offset.y));
        f.scale(z);
        // Wires first, under the cards.
        for c in &visible {
            for (color, selected, path) in &c.wires {
                let w = if *selected { 4.0 } else { 2.0 } * z.max(0.5);
                f.stroke(path, Stroke::default().with_color(*color).with_width(w));
            }
        }
        for c in &visible {
            for op in &c.cards {
                match op {
                    Op::Fill(color, path) => f.fill(path, *color),
                    Op::Stroke(color, w, path) => f.stroke(path, Stroke::default().with_color(*color).with_width(*w)),
                }
            }
        }
    });
    // What does not scale with zoom, in screen space: rings on unconnected required inputs.
    if !scene.rings.is_empty() {
        let rings = Path::new(|b| {
            for p in &scene.rings {
                let s = v.to_screen(*p);
                if screen.contains(s) {
                    add_circle(b, s, layout::PORT_R * z + 2.0);
                }
            }
        });
        frame.stroke(&rings, Stroke::default().with_color(SELECT).with_width(1.5));
    }
    // Text only where it is readable, and only on cards in view.
    if z < 0.35 {
        return;
    }
    for c in g.cards.values() {
        let r = v.rect_to_screen(&c.rect);
        if !screen.intersects(&r) {
            continue;
        }
        let state = g.states.get(&c.id);
        frame.fill_text(Text {
            content: c.id.clone(),
            position: Point::new(r.x + 8.0 * z, r.y + 5.0 * z),
            color: TEXT,
            size: Pixels(14.0 * z),
            max_width: r.w - 80.0 * z,
            ..Text::default()
        });
        let label = state.map(NodeState::label).unwrap_or_else(|| "stale".into());
        frame.fill_text(Text {
            content: label,
            position: Point::new(r.x + r.w - 18.0 * z, r.y + 7.0 * z),
            color: TEXT,
            size: Pixels(11.0 * z),
            align_x: iced::alignment::Horizontal::Right.into(),
            ..Text::default()
        });
        for p in c.inputs.iter().chain(&c.outputs) {
            let s = v.to_screen(p.pos);
            let (x, align) = if p.output {
                (s.x - 10.0 * z, iced::alignment::Horizontal::Right)
            } else {
                (s.x + 10.0 * z, iced::alignment::Horizontal::Left)
            };
            frame.fill_text(Text {
                content: p.name.clone(),
                position: Point::new(x, s.y - 7.0 * z),
                color: DIM_TEXT,
                size: Pixels(12.0 * z),
                align_x: align.into(),
                ..Text::default()
            });
        }
    }
}

impl GraphCanvas<'_> {
    fn draw_overlay(&self, state: &Interaction, frame: &mut Frame) {
        let v = &self.view;
        match &state.mode {
            Mode::Wire { from, at } => {
                let Some(c) = self.cards.get(&from.node) else { return };
                let Some(p) = c.port(&from.port, from.output) else { return };
                let s = v.to_screen(p.pos);
                let (a, b) = if from.output { (s, pt(*at)) } else { (pt(*at), s) };
                frame.stroke(&wire_path(a, b), Stroke::default().with_color(port_color(p.ty)).with_width(2.5));
                // Compatible ports light up; incompatible ones are dimmed.
                for c in self.cards.values() {
                    for q in c.inputs.iter().chain(&c.outputs) {
                        if q.output == from.output {
                            continue;
                        }
                        let end = PortEnd { node: c.id.clone(), port: q.name.clone(), output: q.output };
                        let ok = layout::check_connection(self.doc, self.registry, from, &end).is_ok();
                        let s = v.to_screen(q.pos);
                        if ok {
                            frame.stroke(
                                &Path::circle(point(s), layout::PORT_R * v.zoom + 4.0),
                                Stroke::default().with_color(Color::from_rgb8(0x7c, 0xfc, 0x7c)).with_width(3.0),
                            );
                        } else {
                            frame.fill(
                                &Path::circle(point(s), layout::PORT_R * v.zoom + 1.0),
                                Color { a: 0.6, ..BACKGROUND },
                            );
                        }
                    }
                }
                // Over a port or card that cannot take this wire: say why, beside the cursor.
                let h = layout::hit(self.cards, &self.doc.edges, v.to_world(pt(*at)), self.tol());
                let elsewhere = match &h {
                    Hit::Port { node, .. } | Hit::Node(node) => *node != from.node,
                    _ => false,
                };
                let verdict = self
                    .drop_target(from, &h)
                    .and_then(|to| layout::check_connection(self.doc, self.registry, from, &to).map(|_| ()));
                if let (true, Err(reason)) = (elsewhere, verdict) {
                    if !reason.is_empty() {
                        let text = format!("✗ {reason}");
                        let w = (text.chars().count() as f32 * 6.6 + 14.0).min(520.0);
                        let (x, y) = (at.x + 14.0, at.y + 12.0);
                        frame.fill_rectangle(
                            Point::new(x, y),
                            Size::new(w, 22.0),
                            Color::from_rgba(0.35, 0.08, 0.08, 0.92),
                        );
                        frame.fill_text(Text {
                            content: text,
                            position: Point::new(x + 7.0, y + 4.0),
                            color: TEXT,
                            size: Pixels(12.0),
                            ..Text::default()
                        });
                    }
                }
            }
            Mode::Box { start, now, .. } => {
                let r = Rect::from_corners(pt(*start), pt(*now));
                frame.fill_rectangle(Point::new(r.x, r.y), Size::new(r.w, r.h), Color { a: 0.12, ..SELECT });
                frame.stroke(
                    &Path::rectangle(Point::new(r.x, r.y), Size::new(r.w, r.h)),
                    Stroke::default().with_color(SELECT).with_width(1.0),
                );
            }
            _ => {}
        }
    }

    /// The port a wire dropped on `hit` connects to: the port itself, or on a card, its first
    /// port that accepts the wire.
    fn drop_target(&self, from: &PortEnd, hit: &Hit) -> Result<PortEnd, String> {
        match hit {
            Hit::Port { node, port, output } => Ok(PortEnd { node: node.clone(), port: port.clone(), output: *output }),
            Hit::Node(id) => {
                let c = self.cards.get(id).ok_or("no such node")?;
                let ports = if from.output { &c.inputs } else { &c.outputs };
                let mut first_err = None;
                for p in ports {
                    let end = PortEnd { node: id.clone(), port: p.name.clone(), output: p.output };
                    match layout::check_connection(self.doc, self.registry, from, &end) {
                        Ok(_) => return Ok(end),
                        Err(e) => {
                            first_err.get_or_insert(e);
                        }
                    }
                }
                Err(first_err
                    .unwrap_or_else(|| format!("'{id}' has no {}", if from.output { "inputs" } else { "outputs" })))
            }
            _ => Err(String::new()),
        }
    }
}

impl Program<CanvasMsg> for GraphCanvas<'_> {
    type State = Interaction;

    fn update(
        &self,
        state: &mut Interaction,
        event: &Event,
        bounds: Rectangle,
        cursor: Cursor,
    ) -> Option<Action<CanvasMsg>> {
        if let Event::Mouse(mouse::Event::CursorMoved { .. } | mouse::Event::CursorLeft) = event {
            // `position_in` is None outside the canvas and under an overlay (a menu, the finder).
            self.hover.set(cursor.position_in(bounds).map(|p| (p.x, p.y)));
        }
        if (bounds.x, bounds.y, bounds.width, bounds.height) != self.known_bounds && bounds.width > 0.0 {
            // Tell the App where the canvas is once it changes (fit-to-view and the finder need it).
            if !matches!(event, Event::Mouse(mouse::Event::ButtonPressed(_))) {
                return Some(Action::publish(CanvasMsg::Resized {
                    x: bounds.x,
                    y: bounds.y,
                    w: bounds.width,
                    h: bounds.height,
                }));
            }
        }
        let pos = cursor.position_in(bounds);
        let v = self.view;
        match event {
            Event::Keyboard(keyboard::Event::ModifiersChanged(m)) => {
                state.shift = m.shift();
                None
            }
            Event::Keyboard(keyboard::Event::KeyPressed { key, .. }) => match key.as_ref() {
                keyboard::Key::Named(keyboard::key::Named::Space) if pos.is_some() => {
                    state.space = true;
                    None
                }
                keyboard::Key::Named(keyboard::key::Named::Tab) => {
                    let p = pos?;
                    let w = v.to_world(pt(p));
                    Some(Action::publish(CanvasMsg::OpenFinder { world: (w.x, w.y), screen: (p.x, p.y) }).and_capture())
                }
                _ => None,
            },
            Event::Keyboard(keyboard::Event::KeyReleased {
                key: keyboard::Key::Named(keyboard::key::Named::Space),
                ..
            }) => {
                state.space = false;
                None
            }
            Event::Mouse(mouse::Event::ButtonPressed(mouse::Button::Middle)) => {
                let p = pos?;
                state.mode = Mode::Pan { last: p };
                Some(Action::capture())
            }
            Event::Mouse(mouse::Event::ButtonPressed(mouse::Button::Left)) => {
                let p = pos?;
                if state.space {
                    state.mode = Mode::Pan { last: p };
                    return Some(Action::capture());
                }
                let double = state.last_click.is_some_and(|(t, q)| t.elapsed() < DOUBLE_CLICK && q.distance(p) < 6.0);
                state.last_click = Some((Instant::now(), p));
                let w = v.to_world(pt(p));
                match layout::hit(self.cards, &self.doc.edges, w, self.tol()) {
                    Hit::Port { node, port, output } => {
                        state.mode = Mode::Wire { from: PortEnd { node, port, output }, at: p };
                        Some(Action::request_redraw().and_capture())
                    }
                    Hit::Node(id) => {
                        state.mode = Mode::Drag { last: w, moved: false };
                        Some(Action::publish(CanvasMsg::PressNode { id, additive: state.shift }).and_capture())
                    }
                    Hit::Wire(e) => Some(Action::publish(CanvasMsg::SelectWire(e)).and_capture()),
                    Hit::Empty if double => {
                        state.mode = Mode::Idle;
                        Some(
                            Action::publish(CanvasMsg::OpenFinder { world: (w.x, w.y), screen: (p.x, p.y) })
                                .and_capture(),
                        )
                    }
                    Hit::Empty => {
                        state.mode = Mode::Box { start: p, now: p, additive: state.shift };
                        Some(Action::request_redraw().and_capture())
                    }
                }
            }
            Event::Mouse(mouse::Event::CursorMoved { .. }) => {
                let p = cursor.position().map(|c| Point::new(c.x - bounds.x, c.y - bounds.y))?;
                match &mut state.mode {
                    Mode::Idle => None,
                    Mode::Drag { last, moved } => {
                        let w = v.to_world(pt(p));
                        let (dx, dy) = (w.x - last.x, w.y - last.y);
                        *last = w;
                        *moved = true;
                        Some(Action::publish(CanvasMsg::DragBy { dx, dy }).and_capture())
                    }
                    Mode::Pan { last } => {
                        let (dx, dy) = (p.x - last.x, p.y - last.y);
                        *last = p;
                        Some(Action::publish(CanvasMsg::Pan { dx, dy }).and_capture())
                    }
                    Mode::Wire { at, .. } => {
                        *at = p;
                        Some(Action::request_redraw().and_capture())
                    }
                    Mode::Box { now, .. } => {
                        *now = p;
                        Some(Action::request_redraw().and_capture())
                    }
                }
            }
            Event::Mouse(mouse::Event::ButtonReleased(mouse::Button::Left | mouse::Button::Middle)) => {
                let mode = std::mem::take(&mut state.mode);
                let p = cursor.position().map(|c| Point::new(c.x - bounds.x, c.y - bounds.y));
                match mode {
                    Mode::Idle => None,
                    Mode::Pan { .. } => Some(Action::request_redraw()),
                    Mode::Drag { moved, .. } => moved.then(|| Action::publish(CanvasMsg::DragEnd)),
                    Mode::Wire { from, .. } => {
                        let p = p?;
                        let h = layout::hit(self.cards, &self.doc.edges, v.to_world(pt(p)), self.tol());
                        match self.drop_target(&from, &h) {
                            Ok(to) => Some(Action::publish(CanvasMsg::TryConnect { a: from, b: to })),
                            Err(e) if e.is_empty() => Some(Action::request_redraw()),
                            Err(e) => Some(Action::publish(CanvasMsg::Refused(e))),
                        }
                    }
                    Mode::Box { start, now, additive } => {
                        let r = Rect::from_corners(pt(start), pt(now));
                        if r.w < 4.0 && r.h < 4.0 {
                            return Some(if additive {
                                Action::request_redraw()
                            } else {
                                Action::publish(CanvasMsg::ClearSelection)
                            });
                        }
                        let world = Rect::from_corners(v.to_world(pt(start)), v.to_world(pt(now)));
                        Some(Action::publish(CanvasMsg::BoxSelect {
                            ids: layout::in_box(self.cards, &world),
                            additive,
                        }))
                    }
                }
            }
            Event::Mouse(mouse::Event::WheelScrolled { delta }) => {
                let p = pos?;
                let y = match delta {
                    mouse::ScrollDelta::Lines { y, .. } => *y,
                    mouse::ScrollDelta::Pixels { y, .. } => *y / 40.0,
                };
                let factor = 1.15f32.powf(y.clamp(-5.0, 5.0));
                Some(Action::publish(CanvasMsg::Zoom { factor, x: p.x, y: p.y }).and_capture())
            }
            _ => None,
        }
    }

    fn draw(
        &self,
        state: &Interaction,
        renderer: &Renderer,
        _theme: &Theme,
        bounds: Rectangle,
        _cursor: Cursor,
    ) -> Vec<Geometry> {
        let size = bounds.size();
        let grid = self.grid_cache.draw(renderer, size, |f| draw_grid(f, &self.view, size));
        let graph = self.graph_cache.draw(renderer, size, |f| draw_graph(f, self, size));
        let mut overlay = Frame::new(renderer, size);
        self.draw_overlay(state, &mut overlay);
        vec![grid, graph, overlay.into_geometry()]
    }

    fn mouse_interaction(&self, state: &Interaction, bounds: Rectangle, cursor: Cursor) -> mouse::Interaction {
        match &state.mode {
            Mode::Drag { .. } | Mode::Pan { .. } => mouse::Interaction::Grabbing,
            Mode::Wire { .. } => mouse::Interaction::Crosshair,
            Mode::Box { .. } => mouse::Interaction::Crosshair,
            Mode::Idle => {
                let Some(p) = cursor.position_in(bounds) else { return mouse::Interaction::default() };
                if state.space {
                    return mouse::Interaction::Grab;
                }
                match layout::hit(self.cards, &self.doc.edges, self.view.to_world(pt(p)), self.tol()) {
                    Hit::Port { .. } | Hit::Wire(_) => mouse::Interaction::Pointer,
                    Hit::Node(_) => mouse::Interaction::Grab,
                    Hit::Empty => mouse::Interaction::default(),
                }
            }
        }
    }
}

/// Screen rectangles of every card (for the real-window test and the screenshots).
pub fn screen_rects(cards: &BTreeMap<String, CardGeom>, view: &Viewport) -> BTreeMap<String, Rect> {
    cards.iter().map(|(id, c)| (id.clone(), view.rect_to_screen(&c.rect))).collect()
}
