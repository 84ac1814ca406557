//! Seeing results: stacks rendered to RGBA planes (channel, Z and T choice, automatic or
//! manual contrast, labels in distinct colours, overlays with opacity), the pixel value under
//! the cursor, an image canvas with zoom and pan, and live training curves.

use std::collections::BTreeMap;

use iced::mouse::{self, Cursor};
use iced::widget::canvas::{self, Action, Event, Frame, Geometry, Path, Program, Stroke, Text};
use iced::widget::image::{FilterMethod, Handle};
use iced::{Color, Pixels, Point, Rectangle, Renderer, Size, Theme};
use petri_api::{Pixel, Stack, with_pixels};

// ------------------------------------------------------------------------------ rendering

/// Which plane of a stack to show, and how.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct PlaneSel {
    pub t: usize,
    pub c: usize,
    pub z: usize,
}

/// The value range mapped to black..white: the 0.5 and 99.5 percentiles of the plane.
pub fn auto_contrast(stack: &Stack, sel: PlaneSel) -> (f64, f64) {
    let mut v: Vec<f64> = with_pixels!(stack.buffer(), px => {
        let n = stack.plane_len();
        let start = ((sel.t * stack.c() + sel.c) * stack.z() + sel.z) * n;
        let plane = px.get(start..start + n).unwrap_or(&[]);
        // A strided sample keeps this fast on large planes.
        let step = (plane.len() / 65536).max(1);
        plane.iter().step_by(step).map(|p| p.to_f64()).filter(|x| x.is_finite()).collect()
    });
    if v.is_empty() {
        return (0.0, 1.0);
    }
    v.sort_by(f64::total_cmp);
    let at = |q: f64| v[((v.len() - 1) as f64 * q).round() as usize];
    let (lo, hi) = (at(0.005), at(0.995));
    if hi > lo { (lo, hi) } else { (v[0], v[v.len() - 1].max(v[0] + 1.0)) }
}

fn plane_values(stack: &Stack, sel: PlaneSel) -> Vec<f64> {
    let n = stack.plane_len();
    let start = ((sel.t * stack.c() + sel.c) * stack.z() + sel.z) * n;
    with_pixels!(stack.buffer(), px => px.get(start..start + n).map(|p| p.iter().map(|v| v.to_f64()).collect()).unwrap_or_default())
}

/// A grey plane as RGBA, `lo..hi` mapped to 0..255.
pub fn render_gray(stack: &Stack, sel: PlaneSel, lo: f64, hi: f64) -> Vec<u8> {
    let scale = if hi > lo { 255.0 / (hi - lo) } else { 1.0 };
    let mut out = Vec::with_capacity(stack.plane_len() * 4);
    for v in plane_values(stack, sel) {
        let g = ((v - lo) * scale).clamp(0.0, 255.0) as u8;
        out.extend_from_slice(&[g, g, g, 255]);
    }
    out
}

/// A distinct, stable colour per label (golden-ratio hues; neighbours differ clearly).
pub fn label_color(id: u32) -> [u8; 3] {
    let h = (id as f64 * 0.618_033_988_749_895).fract();
    let (s, v) = (0.75, 0.95);
    let i = (h * 6.0).floor();
    let f = h * 6.0 - i;
    let (p, q, t) = (v * (1.0 - s), v * (1.0 - f * s), v * (1.0 - (1.0 - f) * s));
    let (r, g, b) = match i as u32 % 6 {
        0 => (v, t, p),
        1 => (q, v, p),
        2 => (p, v, t),
        3 => (p, q, v),
        4 => (t, p, v),
        _ => (v, p, q),
    };
    [(r * 255.0) as u8, (g * 255.0) as u8, (b * 255.0) as u8]
}

/// Labels (or a mask) as RGBA: background transparent, each label its colour.
pub fn render_labels(stack: &Stack, sel: PlaneSel) -> Vec<u8> {
    let mut out = Vec::with_capacity(stack.plane_len() * 4);
    for v in plane_values(stack, sel) {
        let id = v.max(0.0) as u32;
        if id == 0 {
            out.extend_from_slice(&[0, 0, 0, 0]);
        } else {
            let [r, g, b] = label_color(id);
            out.extend_from_slice(&[r, g, b, 255]);
        }
    }
    out
}

/// Draws `top` over `base` (both RGBA of one size) with `opacity` times each top pixel's alpha.
pub fn blend(base: &mut [u8], top: &[u8], opacity: f32) {
    for (b, t) in base.chunks_exact_mut(4).zip(top.chunks_exact(4)) {
        let a = opacity.clamp(0.0, 1.0) * t[3] as f32 / 255.0;
        for k in 0..3 {
            b[k] = (b[k] as f32 * (1.0 - a) + t[k] as f32 * a).round() as u8;
        }
    }
}

/// The value at (x, y) of the chosen plane.
pub fn value_at(stack: &Stack, sel: PlaneSel, x: usize, y: usize) -> Option<f64> {
    if x >= stack.x() || y >= stack.y() {
        return None;
    }
    let i = ((sel.t * stack.c() + sel.c) * stack.z() + sel.z) * stack.plane_len() + y * stack.x() + x;
    Some(with_pixels!(stack.buffer(), px => px.get(i)?.to_f64()))
}

pub fn handle(w: usize, h: usize, rgba: Vec<u8>) -> Handle {
    Handle::from_rgba(w as u32, h as u32, rgba)
}

// ------------------------------------------------------------------------------ image canvas

#[derive(Clone, Debug, PartialEq)]
pub enum ImageMsg {
    Hover(Option<(usize, usize)>),
    /// Zoom at (x, y) in a view area of `area` (width, height).
    Zoom {
        factor: f32,
        x: f32,
        y: f32,
        area: (f32, f32),
    },
    Pan {
        dx: f32,
        dy: f32,
        area: (f32, f32),
    },
}

/// Zoom and pan of the image view: `screen = pixel * zoom + offset` (zoom 0 = fit).
#[derive(Clone, Copy, Debug, PartialEq, Default)]
pub struct ImageView {
    pub zoom: f32,
    pub offset: (f32, f32),
}

impl ImageView {
    /// The effective transform for an image of `w`×`h` in `bounds` (zoom 0 means fit).
    pub fn resolve(&self, w: usize, h: usize, bounds: Size) -> (f32, (f32, f32)) {
        if self.zoom > 0.0 {
            return (self.zoom, self.offset);
        }
        let z = (bounds.width / w.max(1) as f32).min(bounds.height / h.max(1) as f32);
        (z, ((bounds.width - w as f32 * z) / 2.0, (bounds.height - h as f32 * z) / 2.0))
    }
}

pub struct ImageCanvas<'a> {
    pub handle: &'a Handle,
    pub w: usize,
    pub h: usize,
    pub view: ImageView,
}

#[derive(Default)]
pub struct ImageState {
    pan: Option<Point>,
}

impl Program<ImageMsg> for ImageCanvas<'_> {
    type State = ImageState;

    fn update(
        &self,
        state: &mut ImageState,
        event: &Event,
        bounds: Rectangle,
        cursor: Cursor,
    ) -> Option<Action<ImageMsg>> {
        let (z, (ox, oy)) = self.view.resolve(self.w, self.h, bounds.size());
        match event {
            Event::Mouse(mouse::Event::ButtonPressed(mouse::Button::Left | mouse::Button::Middle)) => {
                state.pan = Some(cursor.position_in(bounds)?);
                Some(Action::capture())
            }
            Event::Mouse(mouse::Event::ButtonReleased(_)) => {
                state.pan = None;
                None
            }
            Event::Mouse(mouse::Event::CursorMoved { .. }) => {
                if let (Some(last), Some(p)) =
                    (state.pan, cursor.position().map(|c| Point::new(c.x - bounds.x, c.y - bounds.y)))
                {
                    state.pan = Some(p);
                    return Some(Action::publish(ImageMsg::Pan {
                        dx: p.x - last.x,
                        dy: p.y - last.y,
                        area: (bounds.width, bounds.height),
                    }));
                }
                let hover = cursor.position_in(bounds).and_then(|p| {
                    let (x, y) = ((p.x - ox) / z, (p.y - oy) / z);
                    (x >= 0.0 && y >= 0.0 && (x as usize) < self.w && (y as usize) < self.h)
                        .then_some((x as usize, y as usize))
                });
                Some(Action::publish(ImageMsg::Hover(hover)))
            }
            Event::Mouse(mouse::Event::WheelScrolled { delta }) => {
                let p = cursor.position_in(bounds)?;
                let y = match delta {
                    mouse::ScrollDelta::Lines { y, .. } => *y,
                    mouse::ScrollDelta::Pixels { y, .. } => *y / 40.0,
                };
                Some(
                    Action::publish(ImageMsg::Zoom {
                        factor: 1.2f32.powf(y.clamp(-5.0, 5.0)),
                        x: p.x,
                        y: p.y,
                        area: (bounds.width, bounds.height),
                    })
                    .and_capture(),
                )
            }
            Event::Mouse(mouse::Event::CursorLeft) => Some(Action::publish(ImageMsg::Hover(None))),
            _ => None,
        }
    }

    fn draw(&self, _: &ImageState, renderer: &Renderer, _: &Theme, bounds: Rectangle, _: Cursor) -> Vec<Geometry> {
        let mut f = Frame::new(renderer, bounds.size());
        f.fill_rectangle(Point::ORIGIN, bounds.size(), Color::from_rgb(0.08, 0.08, 0.09));
        let (z, (ox, oy)) = self.view.resolve(self.w, self.h, bounds.size());
        let r = Rectangle::new(Point::new(ox, oy), Size::new(self.w as f32 * z, self.h as f32 * z));
        f.draw_image(r, canvas::Image::new(self.handle.clone()).filter_method(FilterMethod::Nearest));
        vec![f.into_geometry()]
    }
}

/// Applies a zoom or pan message to an image view.
pub fn apply_image_msg(view: &mut ImageView, msg: &ImageMsg, w: usize, h: usize) {
    let area = match msg {
        ImageMsg::Zoom { area, .. } | ImageMsg::Pan { area, .. } => Size::new(area.0, area.1),
        ImageMsg::Hover(_) => return,
    };
    let (z, (ox, oy)) = view.resolve(w, h, area);
    match msg {
        ImageMsg::Zoom { factor, x, y, .. } => {
            let nz = (z * factor).clamp(0.02, 64.0);
            let (px, py) = ((x - ox) / z, (y - oy) / z);
            *view = ImageView { zoom: nz, offset: (x - px * nz, y - py * nz) };
        }
        ImageMsg::Pan { dx, dy, .. } => *view = ImageView { zoom: z, offset: (ox + dx, oy + dy) },
        ImageMsg::Hover(_) => {}
    }
}

// ------------------------------------------------------------------------------ curves

/// Metric curves (name → (step, value) points) drawn with axes and a legend.
pub struct Curves<'a> {
    pub series: &'a BTreeMap<String, Vec<(u64, f64)>>,
}

pub fn curve_color(i: usize) -> Color {
    [
        Color::from_rgb8(0x5d, 0xa9, 0xe9),
        Color::from_rgb8(0xf0, 0x9a, 0x3e),
        Color::from_rgb8(0x6c, 0xd0, 0x7a),
        Color::from_rgb8(0xe8, 0x6a, 0xd0),
        Color::from_rgb8(0xf2, 0xd3, 0x4f),
    ][i % 5]
}

impl<M> Program<M> for Curves<'_> {
    type State = ();

    fn draw(&self, _: &(), renderer: &Renderer, _: &Theme, bounds: Rectangle, _: Cursor) -> Vec<Geometry> {
        let mut f = Frame::new(renderer, bounds.size());
        let (w, h) = (bounds.width, bounds.height);
        f.fill_rectangle(Point::ORIGIN, bounds.size(), Color::from_rgb(0.1, 0.1, 0.12));
        let pts = self.series.values().flatten();
        let (mut x0, mut x1, mut y0, mut y1) = (u64::MAX, 0u64, f64::MAX, f64::MIN);
        for &(s, v) in pts {
            if v.is_finite() {
                x0 = x0.min(s);
                x1 = x1.max(s);
                y0 = y0.min(v);
                y1 = y1.max(v);
            }
        }
        let text = |f: &mut Frame, s: String, x: f32, y: f32, c: Color| {
            f.fill_text(Text {
                content: s,
                position: Point::new(x, y),
                color: c,
                size: Pixels(12.0),
                ..Text::default()
            })
        };
        if x0 > x1 {
            text(
                &mut f,
                "No metrics yet: they appear here while a training node runs.".into(),
                10.0,
                10.0,
                Color::WHITE,
            );
            return vec![f.into_geometry()];
        }
        if y1 <= y0 {
            y1 = y0 + 1.0;
        }
        let (l, r, t, b) = (56.0, 12.0, 12.0, 24.0);
        let pw = (w - l - r).max(10.0);
        let ph = (h - t - b).max(10.0);
        let sx = |s: u64| l + if x1 > x0 { (s - x0) as f32 / (x1 - x0) as f32 * pw } else { pw / 2.0 };
        let sy = |v: f64| t + ph - ((v - y0) / (y1 - y0)) as f32 * ph;
        let axis = Color::from_rgb(0.5, 0.5, 0.55);
        f.stroke(
            &Path::new(|p| {
                p.move_to(Point::new(l, t));
                p.line_to(Point::new(l, t + ph));
                p.line_to(Point::new(l + pw, t + ph));
            }),
            Stroke::default().with_color(axis).with_width(1.0),
        );
        text(&mut f, format!("{y1:.4}"), 2.0, t - 6.0, axis);
        text(&mut f, format!("{y0:.4}"), 2.0, t + ph - 8.0, axis);
        text(&mut f, format!("step {x0}"), l, t + ph + 4.0, axis);
        text(&mut f, format!("{x1}"), l + pw - 30.0, t + ph + 4.0, axis);
        for (i, (name, pts)) in self.series.iter().enumerate() {
            let c = curve_color(i);
            let mut it = pts.iter().filter(|(_, v)| v.is_finite());
            if let Some(&(s, v)) = it.next() {
                let path = Path::new(|p| {
                    p.move_to(Point::new(sx(s), sy(v)));
                    for &(s, v) in it {
                        p.line_to(Point::new(sx(s), sy(v)));
                    }
                });
                f.stroke(&path, Stroke::default().with_color(c).with_width(2.0));
            }
            let last = pts.last().map(|p| p.1).unwrap_or(f64::NAN);
            text(&mut f, format!("{name}: {last:.4}"), l + pw - 160.0, t + 4.0 + 16.0 * i as f32, c);
        }
        vec![f.into_geometry()]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stack() -> Stack {
        // 2 z-planes of 2×3, values 0..12.
        Stack::from_3d(2, 2, 3, (0..12).map(|v| v as u16).collect()).unwrap()
    }

    #[test]
    fn planes_values_and_contrast() {
        let s = stack();
        let sel = PlaneSel { t: 0, c: 0, z: 1 };
        assert_eq!(value_at(&s, sel, 2, 1), Some(11.0));
        assert_eq!(value_at(&s, sel, 3, 0), None);
        let (lo, hi) = auto_contrast(&s, sel);
        assert_eq!((lo, hi), (6.0, 11.0));
        let rgba = render_gray(&s, sel, lo, hi);
        assert_eq!(rgba.len(), 6 * 4);
        assert_eq!(&rgba[..4], &[0, 0, 0, 255]);
        assert_eq!(&rgba[20..24], &[255, 255, 255, 255]);
    }

    #[test]
    fn labels_get_distinct_colours_and_blend_with_opacity() {
        let l = Stack::from_2d(1, 3, vec![0u32, 1, 2]).unwrap();
        let sel = PlaneSel { t: 0, c: 0, z: 0 };
        let rgba = render_labels(&l, sel);
        assert_eq!(rgba[3], 0, "background is transparent");
        assert_ne!(&rgba[4..7], &rgba[8..11], "neighbouring labels differ");
        let colours: std::collections::BTreeSet<[u8; 3]> = (1..50).map(label_color).collect();
        assert_eq!(colours.len(), 49);
        let mut base = vec![100u8, 100, 100, 255, 100, 100, 100, 255, 100, 100, 100, 255];
        blend(&mut base, &rgba, 0.5);
        assert_eq!(&base[..3], &[100, 100, 100], "transparent top leaves the base");
        let [r, ..] = label_color(1);
        assert_eq!(base[4], ((100.0 + r as f32) / 2.0).round() as u8);
    }

    #[test]
    fn zoom_keeps_the_pixel_under_the_cursor() {
        let mut v = ImageView::default();
        let b = Size::new(200.0, 100.0);
        let (z, (ox, oy)) = v.resolve(100, 100, b);
        assert_eq!(z, 1.0);
        assert_eq!((ox, oy), (50.0, 0.0));
        apply_image_msg(&mut v, &ImageMsg::Zoom { factor: 2.0, x: 100.0, y: 50.0, area: (200.0, 100.0) }, 100, 100);
        let (z2, (ox2, oy2)) = v.resolve(100, 100, b);
        assert_eq!(z2, 2.0);
        assert_eq!(((100.0 - ox2) / z2, (50.0 - oy2) / z2), (50.0, 50.0));
    }
}
