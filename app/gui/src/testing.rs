//! Small node types for the editor's own tests and benchmarks (never registered by `petri`):
//! they cover every port and parameter kind the inspector and canvas must handle, without
//! pulling every node crate into the editor's tests.

use std::time::{Duration, Instant};

use petri_api::{
    ColumnData, Inputs, Node, NodeCtx, NodeError, NodeSpec, Outputs, ParamSpec, Params, PortType, Registry, Stack,
    Table, Value,
};
use petri_engine::{GraphDoc, NodeDoc, PortRef, Pos};

/// `test.source`: a `n`×`n` image with a bright square.
pub struct Source;
impl Node for Source {
    fn spec(&self) -> NodeSpec {
        NodeSpec::new("test.source", 1, "io", "A synthetic image with a bright square (for tests).")
            .output("image", PortType::Image, "The image.")
            .param(ParamSpec::float("value", 100.0, "Brightness of the square."))
            .param(ParamSpec::int("n", 64, "Image width and height in pixels.").range(4.0, 4096.0))
            .param(
                ParamSpec::input_path("path", "", &["tif", "tiff", "png"], "An optional file (unused).").default_null(),
            )
    }
    fn run(&self, _: &NodeCtx, p: &Params, _: &Inputs) -> Result<Outputs, NodeError> {
        let n = p.usize("n")?;
        let v = p.f64("value")? as f32;
        let px: Vec<f32> = (0..n * n)
            .map(|i| {
                let (y, x) = (i / n, i % n);
                if (n / 4..3 * n / 4).contains(&y) && (n / 4..3 * n / 4).contains(&x) { v } else { (x % 7) as f32 }
            })
            .collect();
        let s = Stack::from_2d(n, n, px).map_err(|e| NodeError::failed(e.to_string()))?;
        Ok(Outputs::new().with("image", Value::Image(s)))
    }
}

/// `test.add`: adds `amount`, optionally after working `sleep_ms` (with progress, cancellable).
pub struct Add;
impl Node for Add {
    fn spec(&self) -> NodeSpec {
        NodeSpec::new("test.add", 1, "image", "Adds a number to every pixel (for tests).")
            .input("image", PortType::Image, "Input image.")
            .output("image", PortType::Image, "Image plus the amount.")
            .param(ParamSpec::float("amount", 1.0, "What to add to every pixel.").range(-10.0, 10.0))
            .param(ParamSpec::int("sleep_ms", 0, "Pretend work time in milliseconds.").range(0.0, 600000.0))
    }
    fn run(&self, ctx: &NodeCtx, p: &Params, inputs: &Inputs) -> Result<Outputs, NodeError> {
        let ms = p.i64("sleep_ms")? as u64;
        let t = Instant::now();
        while t.elapsed() < Duration::from_millis(ms) {
            ctx.check_cancel()?;
            ctx.progress(t.elapsed().as_millis() as f64 / ms as f64, "working");
            std::thread::sleep(Duration::from_millis(5));
        }
        let s = inputs.image("image")?.to_f32();
        let a = p.f64("amount")? as f32;
        let px: Vec<f32> = s.pixels::<f32>().unwrap_or(&[]).iter().map(|v| v + a).collect();
        let out = s.with_pixels(px).map_err(|e| NodeError::failed(e.to_string()))?;
        Ok(Outputs::new().with("image", Value::Image(out)))
    }
}

/// `test.threshold`: a mask and labels (one object per connected run of rows, simplified).
pub struct Threshold;
impl Node for Threshold {
    fn spec(&self) -> NodeSpec {
        NodeSpec::new("test.threshold", 1, "label", "Pixels above a level become foreground (for tests).")
            .input("image", PortType::Image, "Input image.")
            .output("mask", PortType::Mask, "Foreground pixels.")
            .output("labels", PortType::Labels, "Foreground split into left and right halves.")
            .param(ParamSpec::choice("method", &["mean", "fixed"], "mean", "How the level is chosen."))
            .param(ParamSpec::float("level", 50.0, "The level when method is fixed.").min(0.0))
            .param(ParamSpec::bool("invert", false, "Keep pixels below the level instead."))
    }
    fn run(&self, _: &NodeCtx, p: &Params, inputs: &Inputs) -> Result<Outputs, NodeError> {
        let s = inputs.image("image")?.to_f32();
        let px = s.pixels::<f32>().unwrap_or(&[]);
        let level = if p.str("method")? == "mean" {
            px.iter().map(|&v| v as f64).sum::<f64>() / px.len().max(1) as f64
        } else {
            p.f64("level")?
        };
        let inv = p.bool("invert")?;
        let mask: Vec<u8> = px.iter().map(|&v| (((v as f64) > level) != inv) as u8).collect();
        let w = s.x();
        let labels: Vec<u32> =
            mask.iter().enumerate().map(|(i, &m)| if m == 0 { 0 } else { 1 + ((i % w) * 2 / w) as u32 }).collect();
        let m = s.with_pixels(mask).map_err(|e| NodeError::failed(e.to_string()))?;
        let l = s.with_pixels(labels).map_err(|e| NodeError::failed(e.to_string()))?;
        Ok(Outputs::new().with("mask", Value::Mask(m)).with("labels", Value::Labels(l)))
    }
}

/// `test.measure`: a table of simple statistics.
pub struct Measure;
impl Node for Measure {
    fn spec(&self) -> NodeSpec {
        NodeSpec::new("test.measure", 1, "measure", "Mean and maximum of an image (for tests).")
            .input("image", PortType::Image, "Input image.")
            .output("table", PortType::Table, "One row of statistics.")
    }
    fn run(&self, _: &NodeCtx, _: &Params, inputs: &Inputs) -> Result<Outputs, NodeError> {
        let s = inputs.image("image")?.to_f32();
        let px = s.pixels::<f32>().unwrap_or(&[]);
        let mean = px.iter().map(|&v| v as f64).sum::<f64>() / px.len().max(1) as f64;
        let max = px.iter().fold(f64::MIN, |m, &v| m.max(v as f64));
        let t = Table::new()
            .with("mean", ColumnData::F64(vec![mean]))
            .and_then(|t| t.with("max", ColumnData::F64(vec![max])))
            .map_err(NodeError::failed)?;
        Ok(Outputs::new().with("table", Value::Table(std::sync::Arc::new(t))))
    }
}

/// `test.train`: pretends to train: reports falling losses every `step_ms` for `steps` steps.
pub struct Train;
impl Node for Train {
    fn spec(&self) -> NodeSpec {
        NodeSpec::new("test.train", 1, "learn", "Pretend training with live loss curves (for tests).")
            .input("image", PortType::Image, "Training image.")
            .output("history", PortType::Table, "Loss per step.")
            .param(ParamSpec::int("steps", 50, "Training steps.").range(1.0, 100000.0))
            .param(ParamSpec::int("step_ms", 20, "Time per step in milliseconds.").range(0.0, 10000.0))
    }
    fn run(&self, ctx: &NodeCtx, p: &Params, _: &Inputs) -> Result<Outputs, NodeError> {
        let steps = p.usize("steps")?;
        let ms = p.i64("step_ms")? as u64;
        let mut losses = Vec::with_capacity(steps);
        for s in 0..steps {
            ctx.check_cancel()?;
            std::thread::sleep(Duration::from_millis(ms));
            let loss = 1.0 / (1.0 + s as f64 * 0.1);
            ctx.metric("train_loss", s as u64, loss);
            if s % 5 == 4 {
                ctx.metric("val_loss", s as u64, loss * 1.1);
            }
            ctx.progress((s + 1) as f64 / steps as f64, format!("step {}/{steps}", s + 1));
            losses.push(loss);
        }
        let t = Table::new().with("train_loss", ColumnData::F64(losses)).map_err(NodeError::failed)?;
        Ok(Outputs::new().with("history", Value::Table(std::sync::Arc::new(t))))
    }
}

/// `test.combine`: the sum of two images (the second optional).
pub struct Combine;
impl Node for Combine {
    fn spec(&self) -> NodeSpec {
        NodeSpec::new("test.combine", 1, "image", "Adds two images (for tests).")
            .input("a", PortType::Image, "First image.")
            .optional_input("b", PortType::Image, "Second image.")
            .output("image", PortType::Image, "The sum.")
    }
    fn run(&self, _: &NodeCtx, _: &Params, inputs: &Inputs) -> Result<Outputs, NodeError> {
        let a = inputs.image("a")?.to_f32();
        let mut px: Vec<f32> = a.pixels::<f32>().unwrap_or(&[]).to_vec();
        if let Some(Value::Image(b)) = inputs.get("b") {
            for (p, q) in px.iter_mut().zip(b.to_f32().pixels::<f32>().unwrap_or(&[])) {
                *p += q;
            }
        }
        let out = a.with_pixels(px).map_err(|e| NodeError::failed(e.to_string()))?;
        Ok(Outputs::new().with("image", Value::Image(out)))
    }
}

pub fn registry() -> Registry {
    let mut r = Registry::new();
    for res in [
        r.register(Source),
        r.register(Add),
        r.register(Threshold),
        r.register(Measure),
        r.register(Train),
        r.register(Combine),
    ] {
        res.expect("test nodes register");
    }
    r
}

/// `src → add → add2`, and `src2 → table`.
pub fn doc_chain() -> GraphDoc {
    let mut d = GraphDoc::default();
    let add = |d: &mut GraphDoc, id: &str, t: &str, x: f64, y: f64| {
        d.add_node(id, NodeDoc::new(t, 1), Pos { x, y }).expect("add");
    };
    add(&mut d, "src", "test.source", 0.0, 0.0);
    add(&mut d, "add", "test.add", 240.0, 0.0);
    add(&mut d, "add2", "test.add", 480.0, 0.0);
    add(&mut d, "src2", "test.source", 0.0, 200.0);
    add(&mut d, "table", "test.measure", 240.0, 200.0);
    d.connect(PortRef::new("src", "image"), PortRef::new("add", "image"));
    d.connect(PortRef::new("add", "image"), PortRef::new("add2", "image"));
    d.connect(PortRef::new("src2", "image"), PortRef::new("table", "image"));
    d
}

/// A graph of `n` nodes in rows of 25 with `wires` wires (for the canvas benchmark): a chain
/// along each row, plus second inputs fed from the row above.
pub fn big_doc(n: usize, wires: usize) -> GraphDoc {
    let mut d = GraphDoc::default();
    let cols = 25;
    for i in 0..n {
        let t = if i % cols == 0 { "test.source" } else { "test.combine" };
        let pos = Pos { x: (i % cols) as f64 * 240.0, y: (i / cols) as f64 * 140.0 };
        d.add_node(&format!("n{i}"), NodeDoc::new(t, 1), pos).expect("add");
    }
    for i in (0..n).filter(|i| i % cols != 0) {
        d.connect(PortRef::new(&format!("n{}", i - 1), "image"), PortRef::new(&format!("n{i}"), "a"));
    }
    for i in (cols..n).filter(|i| i % cols != 0) {
        if d.edges.len() >= wires {
            break;
        }
        d.connect(PortRef::new(&format!("n{}", i - cols), "image"), PortRef::new(&format!("n{i}"), "b"));
    }
    d
}
