//! Pure geometry of the canvas: card sizes, port positions, wires as bezier curves, the
//! viewport (pan and zoom), hit-testing, box selection, snapping and fit-to-view.
//!
//! Everything here works in plain numbers with no window, so it is unit-tested directly and
//! shared by the canvas drawing code, the canvas interaction code and the real-window test.

use std::collections::{BTreeMap, BTreeSet};

use petri_api::{PortType, Registry};
use petri_engine::{Edge, GraphDoc, PortRef};

pub const CARD_W: f32 = 180.0;
pub const HEADER_H: f32 = 26.0;
pub const ROW_H: f32 = 20.0;
pub const FOOTER_H: f32 = 14.0;
pub const PORT_R: f32 = 6.0;
pub const GRID: f32 = 20.0;

#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Pt {
    pub x: f32,
    pub y: f32,
}

impl Pt {
    pub fn new(x: f32, y: f32) -> Pt {
        Pt { x, y }
    }
    pub fn dist(self, o: Pt) -> f32 {
        ((self.x - o.x).powi(2) + (self.y - o.y).powi(2)).sqrt()
    }
}

#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Rect {
    pub x: f32,
    pub y: f32,
    pub w: f32,
    pub h: f32,
}

impl Rect {
    pub fn contains(&self, p: Pt) -> bool {
        p.x >= self.x && p.x <= self.x + self.w && p.y >= self.y && p.y <= self.y + self.h
    }
    pub fn intersects(&self, o: &Rect) -> bool {
        self.x < o.x + o.w && o.x < self.x + self.w && self.y < o.y + o.h && o.y < self.y + self.h
    }
    /// The rectangle spanned by two corners, in any order.
    pub fn from_corners(a: Pt, b: Pt) -> Rect {
        Rect { x: a.x.min(b.x), y: a.y.min(b.y), w: (a.x - b.x).abs(), h: (a.y - b.y).abs() }
    }
    pub fn center(&self) -> Pt {
        Pt::new(self.x + self.w / 2.0, self.y + self.h / 2.0)
    }
}

/// A port on a card as drawn.
#[derive(Clone, Debug, PartialEq)]
pub struct PortGeom {
    pub name: String,
    pub ty: Option<PortType>,
    pub output: bool,
    pub required: bool,
    pub pos: Pt,
}

/// A node card as drawn: where it is, and its ports.
#[derive(Clone, Debug, PartialEq)]
pub struct CardGeom {
    pub id: String,
    pub rect: Rect,
    pub inputs: Vec<PortGeom>,
    pub outputs: Vec<PortGeom>,
}

impl CardGeom {
    pub fn port(&self, name: &str, output: bool) -> Option<&PortGeom> {
        if output { self.outputs.iter().find(|p| p.name == name) } else { self.inputs.iter().find(|p| p.name == name) }
    }
}

/// Card geometry of every node, in world coordinates (the graph file's layout). Nodes of an
/// unknown type (placeholders) get ports from the wires that name them, untyped.
pub fn cards(doc: &GraphDoc, registry: &Registry) -> BTreeMap<String, CardGeom> {
    doc.nodes.iter().map(|(id, n)| (id.clone(), card(doc, registry, id, &n.type_id))).collect()
}

fn card(doc: &GraphDoc, registry: &Registry, id: &str, type_id: &str) -> CardGeom {
    let pos = doc.layout.get(id).copied().unwrap_or_default();
    let (x, y) = (pos.x as f32, pos.y as f32);
    let (ins, outs): (Vec<(String, Option<PortType>, bool)>, Vec<(String, Option<PortType>, bool)>) =
        match registry.spec(type_id) {
            Some(s) => (
                s.inputs.iter().map(|p| (p.name.clone(), Some(p.ty), p.required)).collect(),
                s.outputs.iter().map(|p| (p.name.clone(), Some(p.ty), true)).collect(),
            ),
            None => {
                let ins: BTreeSet<&str> =
                    doc.edges.iter().filter(|e| e.to.node == id).map(|e| e.to.port.as_str()).collect();
                let outs: BTreeSet<&str> =
                    doc.edges.iter().filter(|e| e.from.node == id).map(|e| e.from.port.as_str()).collect();
                (
                    ins.into_iter().map(|p| (p.to_string(), None, false)).collect(),
                    outs.into_iter().map(|p| (p.to_string(), None, true)).collect(),
                )
            }
        };
    let rows = ins.len().max(outs.len()).max(1) as f32;
    let rect = Rect { x, y, w: CARD_W, h: HEADER_H + rows * ROW_H + FOOTER_H };
    let port_y = |i: usize| y + HEADER_H + ROW_H * (i as f32 + 0.5);
    let inputs = ins
        .into_iter()
        .enumerate()
        .map(|(i, (name, ty, required))| PortGeom { name, ty, output: false, required, pos: Pt::new(x, port_y(i)) })
        .collect();
    let outputs = outs
        .into_iter()
        .enumerate()
        .map(|(i, (name, ty, required))| PortGeom {
            name,
            ty,
            output: true,
            required,
            pos: Pt::new(x + CARD_W, port_y(i)),
        })
        .collect();
    CardGeom { id: id.to_string(), rect, inputs, outputs }
}

/// Pan and zoom: `screen = world * zoom + offset`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Viewport {
    pub zoom: f32,
    pub offset: Pt,
}

impl Default for Viewport {
    fn default() -> Self {
        Viewport { zoom: 1.0, offset: Pt::new(40.0, 40.0) }
    }
}

pub const MIN_ZOOM: f32 = 0.15;
pub const MAX_ZOOM: f32 = 3.0;

impl Viewport {
    pub fn to_screen(&self, p: Pt) -> Pt {
        Pt::new(p.x * self.zoom + self.offset.x, p.y * self.zoom + self.offset.y)
    }
    pub fn to_world(&self, p: Pt) -> Pt {
        Pt::new((p.x - self.offset.x) / self.zoom, (p.y - self.offset.y) / self.zoom)
    }
    pub fn rect_to_screen(&self, r: &Rect) -> Rect {
        let a = self.to_screen(Pt::new(r.x, r.y));
        Rect { x: a.x, y: a.y, w: r.w * self.zoom, h: r.h * self.zoom }
    }
    /// Zooms by `factor` keeping the world point under `anchor` (screen) in place.
    pub fn zoom_at(&self, factor: f32, anchor: Pt) -> Viewport {
        let zoom = (self.zoom * factor).clamp(MIN_ZOOM, MAX_ZOOM);
        let w = self.to_world(anchor);
        Viewport { zoom, offset: Pt::new(anchor.x - w.x * zoom, anchor.y - w.y * zoom) }
    }
    pub fn panned(&self, dx: f32, dy: f32) -> Viewport {
        Viewport { zoom: self.zoom, offset: Pt::new(self.offset.x + dx, self.offset.y + dy) }
    }
}

/// The viewport showing every card inside a `w`×`h` screen area with a margin (zoom capped
/// at 1 so a small graph is not blown up).
pub fn fit(cards: &BTreeMap<String, CardGeom>, w: f32, h: f32) -> Viewport {
    let Some(b) = bounds(cards.values().map(|c| c.rect)) else { return Viewport::default() };
    let margin = 40.0;
    let zx = (w - 2.0 * margin).max(10.0) / b.w.max(1.0);
    let zy = (h - 2.0 * margin).max(10.0) / b.h.max(1.0);
    let zoom = zx.min(zy).clamp(MIN_ZOOM, 1.0);
    let c = b.center();
    Viewport { zoom, offset: Pt::new(w / 2.0 - c.x * zoom, h / 2.0 - c.y * zoom) }
}

pub fn bounds(rects: impl Iterator<Item = Rect>) -> Option<Rect> {
    let mut it = rects.peekable();
    it.peek()?;
    let (mut x0, mut y0, mut x1, mut y1) = (f32::MAX, f32::MAX, f32::MIN, f32::MIN);
    for r in it {
        x0 = x0.min(r.x);
        y0 = y0.min(r.y);
        x1 = x1.max(r.x + r.w);
        y1 = y1.max(r.y + r.h);
    }
    Some(Rect { x: x0, y: y0, w: x1 - x0, h: y1 - y0 })
}

pub fn snap(v: f64) -> f64 {
    (v / GRID as f64).round() * GRID as f64
}

/// The two control points of a wire's cubic bezier from an output at `a` to an input at `b`.
pub fn wire_controls(a: Pt, b: Pt) -> (Pt, Pt) {
    let dx = ((b.x - a.x).abs() * 0.5).max(40.0);
    (Pt::new(a.x + dx, a.y), Pt::new(b.x - dx, b.y))
}

pub fn bezier(a: Pt, c1: Pt, c2: Pt, b: Pt, t: f32) -> Pt {
    let u = 1.0 - t;
    let (w0, w1, w2, w3) = (u * u * u, 3.0 * u * u * t, 3.0 * u * t * t, t * t * t);
    Pt::new(w0 * a.x + w1 * c1.x + w2 * c2.x + w3 * b.x, w0 * a.y + w1 * c1.y + w2 * c2.y + w3 * b.y)
}

/// Distance from `p` to a segment.
fn seg_dist(p: Pt, a: Pt, b: Pt) -> f32 {
    let (dx, dy) = (b.x - a.x, b.y - a.y);
    let len2 = dx * dx + dy * dy;
    let t = if len2 == 0.0 { 0.0 } else { (((p.x - a.x) * dx + (p.y - a.y) * dy) / len2).clamp(0.0, 1.0) };
    p.dist(Pt::new(a.x + t * dx, a.y + t * dy))
}

/// Distance from `p` to a wire from `a` to `b` (the curve sampled in 24 segments).
pub fn wire_dist(p: Pt, a: Pt, b: Pt) -> f32 {
    let (c1, c2) = wire_controls(a, b);
    let mut prev = a;
    let mut best = f32::MAX;
    for i in 1..=24 {
        let q = bezier(a, c1, c2, b, i as f32 / 24.0);
        best = best.min(seg_dist(p, prev, q));
        prev = q;
    }
    best
}

/// End points (output, input) of a wire, if both cards are known.
pub fn wire_ends(cards: &BTreeMap<String, CardGeom>, e: &Edge) -> Option<(Pt, Pt)> {
    let a = cards.get(&e.from.node)?.port(&e.from.port, true)?.pos;
    let b = cards.get(&e.to.node)?.port(&e.to.port, false)?.pos;
    Some((a, b))
}

/// What is under a world point.
#[derive(Clone, Debug, PartialEq)]
pub enum Hit {
    Port { node: String, port: String, output: bool },
    Node(String),
    Wire(Edge),
    Empty,
}

/// Hit-testing in world coordinates; `tol` is the pick tolerance in world units (pass
/// screen pixels / zoom). Ports win over cards (they overlap the card edge), cards over wires;
/// the last-drawn card (highest id) wins among overlapping cards.
pub fn hit(cards: &BTreeMap<String, CardGeom>, edges: &[Edge], p: Pt, tol: f32) -> Hit {
    let port_tol = PORT_R + tol;
    for c in cards.values().rev() {
        for pg in c.inputs.iter().chain(&c.outputs) {
            if pg.pos.dist(p) <= port_tol {
                return Hit::Port { node: c.id.clone(), port: pg.name.clone(), output: pg.output };
            }
        }
    }
    if let Some(c) = cards.values().rev().find(|c| c.rect.contains(p)) {
        return Hit::Node(c.id.clone());
    }
    let mut best: Option<(f32, &Edge)> = None;
    for e in edges {
        if let Some((a, b)) = wire_ends(cards, e) {
            let d = wire_dist(p, a, b);
            if d <= tol.max(4.0) && best.is_none_or(|(bd, _)| d < bd) {
                best = Some((d, e));
            }
        }
    }
    match best {
        Some((_, e)) => Hit::Wire(e.clone()),
        None => Hit::Empty,
    }
}

/// Ids of the cards touching a world rectangle (box selection).
pub fn in_box(cards: &BTreeMap<String, CardGeom>, r: &Rect) -> BTreeSet<String> {
    cards.values().filter(|c| c.rect.intersects(r)).map(|c| c.id.clone()).collect()
}

/// One end of a wire being drawn.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PortEnd {
    pub node: String,
    pub port: String,
    pub output: bool,
}

/// Whether a wire may join two ports (in either order of dragging). Returns the wire as
/// (from output, to input), or the reason it is refused, in words for the user.
pub fn check_connection(
    doc: &GraphDoc,
    registry: &Registry,
    a: &PortEnd,
    b: &PortEnd,
) -> Result<(PortRef, PortRef), String> {
    let (out, inp) = match (a.output, b.output) {
        (true, false) => (a, b),
        (false, true) => (b, a),
        (true, true) => return Err("both ends are outputs: drag from an output to an input".into()),
        (false, false) => return Err("both ends are inputs: drag from an output to an input".into()),
    };
    if out.node == inp.node {
        return Err(format!("'{}' cannot feed itself", out.node));
    }
    let ty = |node: &str, port: &str, output: bool| -> Result<Option<PortType>, String> {
        let n = doc.nodes.get(node).ok_or_else(|| format!("there is no node '{node}'"))?;
        let Some(spec) = registry.spec(&n.type_id) else { return Ok(None) };
        let p = if output { spec.output_spec(port) } else { spec.input_spec(port) };
        p.map(|p| Some(p.ty))
            .ok_or_else(|| format!("{} has no {} '{port}'", n.type_id, if output { "output" } else { "input" }))
    };
    let (o, i) = (ty(&out.node, &out.port, true)?, ty(&inp.node, &inp.port, false)?);
    if let (Some(o), Some(i)) = (o, i) {
        if !i.accepts(o) {
            return Err(format!(
                "input '{}' of '{}' takes {} but '{}.{}' gives {}",
                inp.port,
                inp.node,
                describe(i),
                out.node,
                out.port,
                describe(o)
            ));
        }
    }
    if doc.descendants(&inp.node).contains(&out.node) {
        return Err(format!("'{}' already depends on '{}': this wire would make a loop", out.node, inp.node));
    }
    Ok((PortRef::new(&out.node, &out.port), PortRef::new(&inp.node, &inp.port)))
}

pub fn describe(t: PortType) -> &'static str {
    match t {
        PortType::Image => "an image",
        PortType::Mask => "a mask",
        PortType::Labels => "labels",
        PortType::Table => "a table",
        PortType::File => "a file",
        PortType::Stack => "an image, mask or labels",
        PortType::Tracks => "tracks",
        PortType::Dataset => "a dataset",
        PortType::Model => "a model",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{doc_chain, registry};

    #[test]
    fn viewport_round_trips_and_zooms_at_the_cursor() {
        let v = Viewport { zoom: 1.5, offset: Pt::new(10.0, -20.0) };
        let p = Pt::new(33.0, 44.0);
        let q = v.to_world(v.to_screen(p));
        assert!(p.dist(q) < 1e-4);
        let anchor = Pt::new(200.0, 100.0);
        let before = v.to_world(anchor);
        let z = v.zoom_at(1.25, anchor);
        assert!((z.zoom - 1.875).abs() < 1e-6);
        assert!(z.to_world(anchor).dist(before) < 1e-3, "the point under the cursor stays put");
        assert_eq!(v.zoom_at(100.0, anchor).zoom, MAX_ZOOM);
    }

    #[test]
    fn ports_nodes_and_wires_are_hit() {
        let r = registry();
        let doc = doc_chain();
        let cards = cards(&doc, &r);
        let src = &cards["src"];
        let out = src.port("image", true).unwrap().pos;
        assert_eq!(
            hit(&cards, &doc.edges, out, 1.0),
            Hit::Port { node: "src".into(), port: "image".into(), output: true }
        );
        assert_eq!(hit(&cards, &doc.edges, src.rect.center(), 1.0), Hit::Node("src".into()));
        let e = &doc.edges[0];
        let (a, b) = wire_ends(&cards, e).unwrap();
        let (c1, c2) = wire_controls(a, b);
        let mid = bezier(a, c1, c2, b, 0.5);
        assert_eq!(hit(&cards, &doc.edges, mid, 2.0), Hit::Wire(e.clone()));
        assert_eq!(hit(&cards, &doc.edges, Pt::new(-500.0, -500.0), 2.0), Hit::Empty);
    }

    #[test]
    fn box_selection_and_fit() {
        let r = registry();
        let doc = doc_chain();
        let cards = cards(&doc, &r);
        let all = in_box(&cards, &Rect::from_corners(Pt::new(-10.0, -10.0), Pt::new(2000.0, 2000.0)));
        assert_eq!(all.len(), doc.nodes.len());
        let first = in_box(&cards, &Rect::from_corners(Pt::new(-10.0, -10.0), Pt::new(20.0, 20.0)));
        assert_eq!(first, ["src".to_string()].into());
        let v = fit(&cards, 800.0, 600.0);
        for c in cards.values() {
            let s = v.rect_to_screen(&c.rect);
            assert!(s.x >= 0.0 && s.y >= 0.0 && s.x + s.w <= 800.0 && s.y + s.h <= 600.0, "{s:?}");
        }
        assert_eq!(snap(29.0), 20.0);
        assert_eq!(snap(31.0), 40.0);
    }

    #[test]
    fn connections_are_checked_with_reasons() {
        let r = registry();
        let doc = doc_chain();
        let pe = |n: &str, p: &str, o: bool| PortEnd { node: n.into(), port: p.into(), output: o };
        // image → image: fine, whichever end the drag started from.
        let ok = check_connection(&doc, &r, &pe("add", "image", false), &pe("src", "image", true)).unwrap();
        assert_eq!(ok, (PortRef::new("src", "image"), PortRef::new("add", "image")));
        // a table into an image input is refused, naming both types.
        let e = check_connection(&doc, &r, &pe("table", "table", true), &pe("add", "image", false)).unwrap_err();
        assert!(e.contains("takes an image") && e.contains("gives a table"), "{e}");
        // loops, self-wires and output-to-output are refused.
        assert!(check_connection(&doc, &r, &pe("add", "image", true), &pe("src2", "image", false)).is_err());
        let e = check_connection(&doc, &r, &pe("add2", "image", true), &pe("add", "image", false)).unwrap_err();
        assert!(e.contains("loop"), "{e}");
        assert!(check_connection(&doc, &r, &pe("add", "image", true), &pe("add", "image", false)).is_err());
        assert!(check_connection(&doc, &r, &pe("src", "image", true), &pe("add", "image", true)).is_err());
    }
}
