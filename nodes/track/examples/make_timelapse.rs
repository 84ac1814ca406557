//! Generates Petri's bundled synthetic time-lapse: moving, growing, dividing, noisy nuclei
//! with exact tracking ground truth (CTC data may not be redistributed, so the example graph
//! runs on this instead).
//!
//! ```text
//! cargo run --release -p petri-track --example make_timelapse -- [OUT_DIR]   # default assets/samples
//! ```
//! Writes, deterministically (seeded ChaCha8, no dependence on threads or platform):
//! * `timelapse.tif` — T×Y×X 30×256×256 u16 fluorescence-like images (ImageJ hyperstack);
//! * `timelapse_labels.tif` — the same shape, u16, each pixel value a track id (like the CTC's
//!   man_trackNNN.tif, one page per frame);
//! * `timelapse_tracks.txt` — `id begin end parent` per track (the CTC's man_track.txt).

use std::io::Cursor;
use std::path::PathBuf;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Normal};
use tiff::encoder::{Compression, TiffEncoder, colortype};
use tiff::tags::Tag;

const T: usize = 30;
const H: usize = 256;
const W: usize = 256;
const SEED: u64 = 20_240_611;

#[derive(Clone, Debug)]
struct Cell {
    id: u32,
    y: f64,
    x: f64,
    vy: f64,
    vx: f64,
    /// Semi-axes (a along `angle`, b across) and orientation.
    a: f64,
    b: f64,
    angle: f64,
    brightness: f64,
    /// Frames until it divides.
    cycle: i32,
}

impl Cell {
    /// Normalised elliptic distance of (y, x) from the centre (≤ 1 inside).
    fn d2(&self, y: f64, x: f64) -> f64 {
        let (dy, dx) = (y - self.y, x - self.x);
        let (s, c) = self.angle.sin_cos();
        let u = dx * c + dy * s;
        let v = -dx * s + dy * c;
        (u / self.a).powi(2) + (v / self.b).powi(2)
    }
    fn radius(&self) -> f64 {
        self.a.max(self.b)
    }
}

fn overlaps(c: &Cell, others: &[Cell], skip: &[u32], margin: f64) -> bool {
    others.iter().any(|o| !skip.contains(&o.id) && ((c.y - o.y).hypot(c.x - o.x) < c.radius() + o.radius() + margin))
}

fn inside(c: &Cell) -> bool {
    let r = c.radius() + 2.0;
    c.y > r && c.y < H as f64 - r && c.x > r && c.x < W as f64 - r
}

fn main() {
    let out = std::env::args()
        .nth(1)
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../assets/samples"));
    let mut rng = ChaCha8Rng::seed_from_u64(SEED);
    let mut next_id = 1u32;
    let mut cells: Vec<Cell> = Vec::new();
    // Initial nuclei at random, non-overlapping positions.
    while cells.len() < 12 {
        let a = rng.random_range(8.0..11.0);
        let c = Cell {
            id: next_id,
            y: rng.random_range(20.0..236.0),
            x: rng.random_range(20.0..236.0),
            vy: rng.random_range(-1.5..1.5),
            vx: rng.random_range(-1.5..1.5),
            a,
            b: a * rng.random_range(0.7..0.95),
            angle: rng.random_range(0.0..std::f64::consts::PI),
            brightness: rng.random_range(700.0..1400.0),
            cycle: rng.random_range(4..26),
        };
        if inside(&c) && !overlaps(&c, &cells, &[], 6.0) {
            cells.push(c);
            next_id += 1;
        }
    }
    let mut tracks: Vec<(u32, usize, usize, u32)> = cells.iter().map(|c| (c.id, 0, 0, 0)).collect();
    let noise = Normal::new(0.0, 60.0).expect("valid normal");
    let mut images: Vec<u16> = Vec::with_capacity(T * H * W);
    let mut labels: Vec<u16> = Vec::with_capacity(T * H * W);

    for t in 0..T {
        if t > 0 {
            // Divisions first: a mother ends at t - 1, two daughters begin at t.
            let mut born: Vec<Cell> = Vec::new();
            let mut gone: Vec<u32> = Vec::new();
            for c in &cells {
                if c.cycle > 0 {
                    continue;
                }
                let axis = rng.random_range(0.0..std::f64::consts::PI);
                let r = c.a * 0.85;
                let area_scale = std::f64::consts::FRAC_1_SQRT_2 * 1.05;
                let mk = |sign: f64, id: u32, rng: &mut ChaCha8Rng| Cell {
                    id,
                    y: c.y + sign * r * axis.sin(),
                    x: c.x + sign * r * axis.cos(),
                    vy: sign * 1.2 * axis.sin() + rng.random_range(-0.5..0.5),
                    vx: sign * 1.2 * axis.cos() + rng.random_range(-0.5..0.5),
                    a: c.a * area_scale,
                    b: c.b * area_scale,
                    angle: axis + std::f64::consts::FRAC_PI_2,
                    brightness: c.brightness * rng.random_range(0.9..1.1),
                    cycle: rng.random_range(14..22),
                };
                let d1 = mk(1.0, next_id, &mut rng);
                let d2 = mk(-1.0, next_id + 1, &mut rng);
                let others: Vec<Cell> = cells.iter().chain(&born).cloned().collect();
                if inside(&d1)
                    && inside(&d2)
                    && !overlaps(&d1, &others, &[c.id], 2.0)
                    && !overlaps(&d2, &others, &[c.id], 2.0)
                {
                    gone.push(c.id);
                    tracks.push((d1.id, t, t, c.id));
                    tracks.push((d2.id, t, t, c.id));
                    next_id += 2;
                    born.push(d1);
                    born.push(d2);
                }
            }
            cells.retain(|c| !gone.contains(&c.id));
            cells.extend(born);
            // Movement: persistent random walk; a move that would collide or leave the field
            // is replaced by a reversal.
            for i in 0..cells.len() {
                let mut c = cells[i].clone();
                c.vy = 0.8 * c.vy + rng.random_range(-1.2..1.2);
                c.vx = 0.8 * c.vx + rng.random_range(-1.2..1.2);
                c.y += c.vy;
                c.x += c.vx;
                c.angle += rng.random_range(-0.1..0.1);
                // Slow growth until division.
                c.a *= 1.012;
                c.b *= 1.012;
                c.cycle -= 1;
                let others: Vec<Cell> = cells.iter().filter(|o| o.id != c.id).cloned().collect();
                if inside(&c) && !overlaps(&c, &others, &[], 2.0) {
                    cells[i] = c;
                } else {
                    cells[i].vy = -cells[i].vy;
                    cells[i].vx = -cells[i].vx;
                    cells[i].cycle -= 1;
                }
            }
        }
        for c in &cells {
            if let Some(tr) = tracks.iter_mut().find(|tr| tr.0 == c.id) {
                tr.2 = t;
            }
        }
        // Render: soft-edged nuclei with internal texture, a smooth background gradient and
        // Gaussian noise; labels are the ellipses' interiors.
        let mut img = vec![0f64; H * W];
        let mut lab = vec![0u16; H * W];
        for (i, v) in img.iter_mut().enumerate() {
            let (y, x) = ((i / W) as f64, (i % W) as f64);
            *v = 120.0 + 40.0 * (x / W as f64) + 25.0 * (y / H as f64);
        }
        for c in &cells {
            let r = c.radius() + 3.0;
            let (y0, y1) = ((c.y - r).floor().max(0.0) as usize, ((c.y + r).ceil() as usize).min(H - 1));
            let (x0, x1) = ((c.x - r).floor().max(0.0) as usize, ((c.x + r).ceil() as usize).min(W - 1));
            for y in y0..=y1 {
                for x in x0..=x1 {
                    let d2 = c.d2(y as f64, x as f64);
                    let edge = 1.0 / (1.0 + ((d2.sqrt() - 1.0) * 9.0).exp());
                    let texture = 1.0 + 0.08 * ((x as f64 * 0.7 + c.id as f64).sin() * (y as f64 * 0.5).cos());
                    img[y * W + x] += c.brightness * edge * texture * (1.0 - 0.25 * d2.min(1.0));
                    if d2 <= 1.0 {
                        lab[y * W + x] = c.id as u16;
                    }
                }
            }
        }
        images.extend(img.iter().map(|&v| (v + noise.sample(&mut rng)).round().clamp(0.0, 65535.0) as u16));
        labels.extend(lab);
    }

    std::fs::create_dir_all(&out).expect("output folder");
    let desc = format!("ImageJ=1.54f\nimages={T}\nframes={T}\nhyperstack=true\nmode=grayscale\nloop=false\n");
    write_stack(&out.join("timelapse.tif"), &images, &desc);
    write_stack(&out.join("timelapse_labels.tif"), &labels, &desc);
    tracks.sort();
    let txt: String = tracks.iter().map(|(l, b, e, p)| format!("{l} {b} {e} {p}\n")).collect();
    std::fs::write(out.join("timelapse_tracks.txt"), txt).expect("write tracks");
    let divisions = tracks.iter().filter(|t| t.3 != 0).count() / 2;
    eprintln!("{} tracks, {divisions} divisions, {} nuclei in the last frame", tracks.len(), cells.len());
}

/// A T-page ImageJ stack, Deflate-compressed (read by tifffile, Fiji and Petri's loaders).
fn write_stack(path: &std::path::Path, data: &[u16], desc: &str) {
    let mut buf = Cursor::new(Vec::new());
    {
        let mut enc = TiffEncoder::new(&mut buf)
            .expect("encoder")
            .with_compression(Compression::Deflate(tiff::encoder::DeflateLevel::Balanced));
        for t in 0..T {
            let mut img = enc.new_image::<colortype::Gray16>(W as u32, H as u32).expect("page");
            if t == 0 {
                img.encoder().write_tag(Tag::ImageDescription, desc).expect("description");
            }
            img.write_data(&data[t * H * W..(t + 1) * H * W]).expect("pixels");
        }
    }
    std::fs::write(path, buf.into_inner()).expect("write TIFF");
}
