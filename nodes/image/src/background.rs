//! `image.background`: estimates a smooth background and subtracts it — scikit-image's
//! `restoration.rolling_ball`, or a white top-hat (`morphology.white_tophat` with a disk/ball).

use petri_api::{
    Buffer, Inputs, Node, NodeCtx, NodeError, NodeSpec, Outputs, ParamSpec, Params, Pixel, PortType, Stack, Value,
};
use rayon::prelude::*;

use crate::morph;

/// Rolling-ball work (pixels × ball offsets) above which the node refuses to start: about an
/// hour at the measured ~0.3 ns per pixel-offset on two cores.
pub const MAX_BALL_WORK: f64 = 1.0e13;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BackgroundMethod {
    RollingBall,
    TopHat,
}

/// scikit-image's rolling-ball background of one Z×Y×X volume (`dims[0] == 1` for 2-D):
/// `bg(p) = min over offsets k in the ball of img(p + k) + (r − √(r² − |k|²))`, offsets outside
/// the image ignored (scikit-image pads with +∞), computed in f64. This is the surface traced by
/// the top of a ball of radius `r` (intensity units = pixels) rolled under the image.
pub fn rolling_ball_f64(vol: &[f64], dims: [usize; 3], r: f64) -> Vec<f64> {
    let [nz, ny, nx] = dims;
    let c = r.ceil() as isize;
    let center = (r * r).max(0.0).sqrt();
    // The kernel exactly as `ball_kernel`: offsets with √(|k|²) ≤ r, weight center − √(r² − |k|²).
    let zr = if nz > 1 { c } else { 0 };
    // (dz, dy, [(dx, weight)]): the kernel row by row.
    type KernelRow = (isize, isize, Vec<(isize, f64)>);
    let mut rows: Vec<KernelRow> = Vec::new();
    for dz in -zr..=zr {
        for dy in -c..=c {
            let mut ks = Vec::new();
            for dx in -c..=c {
                let ss = (dz * dz + dy * dy + dx * dx) as f64;
                if ss.sqrt() > r {
                    continue;
                }
                ks.push((dx, center - (r * r - ss).max(0.0).sqrt()));
            }
            if !ks.is_empty() {
                rows.push((dz, dy, ks));
            }
        }
    }
    let avx2 = crate::sep::has_avx2();
    let mut out = vec![0f64; vol.len()];
    out.par_chunks_mut(nx).enumerate().for_each(|(row, o)| {
        let (z, y) = ((row / ny) as isize, (row % ny) as isize);
        o.fill(f64::INFINITY);
        for (dz, dy, ks) in &rows {
            let (sz, sy) = (z + dz, y + dy);
            if sz < 0 || sz >= nz as isize || sy < 0 || sy >= ny as isize {
                continue;
            }
            let s = &vol[(sz as usize * ny + sy as usize) * nx..][..nx];
            ball_row(avx2, o, s, ks);
        }
    });
    out
}

/// `o[x] = min(o[x], s[x + dx] + d)` for every (dx, d) of one kernel row, over the x where
/// x + dx is inside the row.
#[inline(always)]
fn ball_row_impl(o: &mut [f64], s: &[f64], ks: &[(isize, f64)]) {
    let nx = o.len() as isize;
    for &(dx, d) in ks {
        let (x0, x1) = ((-dx).max(0), (nx - dx).min(nx));
        if x0 >= x1 {
            continue;
        }
        let src = &s[(x0 + dx) as usize..(x1 + dx) as usize];
        for (a, &b) in o[x0 as usize..x1 as usize].iter_mut().zip(src) {
            let v = b + d;
            *a = if v < *a { v } else { *a };
        }
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
fn ball_row_avx2(o: &mut [f64], s: &[f64], ks: &[(isize, f64)]) {
    ball_row_impl(o, s, ks)
}

fn ball_row(avx2: bool, o: &mut [f64], s: &[f64], ks: &[(isize, f64)]) {
    #[cfg(target_arch = "x86_64")]
    if avx2 {
        // SAFETY: only called when the CPU reports AVX2.
        return unsafe { ball_row_avx2(o, s, ks) };
    }
    let _ = avx2;
    ball_row_impl(o, s, ks)
}

fn background_typed<P: Pixel>(s: &Stack, px: &[P], method: BackgroundMethod, r: f64) -> (Vec<P>, Vec<P>) {
    let n = s.volume_len();
    let mut sub = Vec::with_capacity(px.len());
    let mut bgs = Vec::with_capacity(px.len());
    for vol in px.chunks(n) {
        let bg: Vec<P> = match method {
            BackgroundMethod::RollingBall => {
                let v: Vec<f64> = vol.par_iter().map(|x| x.to_f64()).collect();
                let b = rolling_ball_f64(&v, s.zyx(), r);
                // `astype(image.dtype)`: integer types truncate.
                let int = P::DTYPE.is_integer();
                b.par_iter().map(|&x| P::from_f64(if int { x.trunc() } else { x })).collect()
            }
            BackgroundMethod::TopHat => {
                let e = morph::flat(vol, s.zyx(), r, false);
                morph::flat(&e, s.zyx(), r, true)
            }
        };
        sub.extend(vol.iter().zip(&bg).map(|(&v, &b)| P::from_f64(v.to_f64() - b.to_f64())));
        bgs.extend(bg);
    }
    (sub, bgs)
}

/// Background-subtracted image and the background, both in the input's pixel type, per (t, c)
/// volume (3-D ball when the stack has several slices). `radius` in pixels.
pub fn background(s: &Stack, method: BackgroundMethod, radius: f64) -> Result<(Stack, Stack), NodeError> {
    if !(radius > 0.0 && radius.is_finite()) {
        return Err(NodeError::param("radius", format!("must be greater than 0, got {radius}")));
    }
    if radius > 1000.0 {
        return Err(NodeError::param("radius", format!("must be at most 1000 pixels, got {radius}")));
    }
    if method == BackgroundMethod::RollingBall {
        // The rolling ball visits every ball offset for every pixel; refuse runs of many hours.
        let d = 2.0 * radius.ceil() + 1.0;
        let offsets = if s.z() > 1 { d * d * d * 0.53 } else { d * d * 0.79 };
        let work = offsets * s.len() as f64;
        if work > MAX_BALL_WORK {
            return Err(NodeError::param(
                "radius",
                format!(
                    "a rolling ball of radius {radius} on this {} image needs about {:.0e} operations (hours); \
                     use method 'tophat', which is fast for large radii, or a smaller radius",
                    s.describe(),
                    work
                ),
            ));
        }
    }
    crate::util::check_finite(s, "image")?;
    let (a, b) = match s.buffer() {
        Buffer::U8(v) => {
            let (a, b) = background_typed(s, v, method, radius);
            (u8::into_buffer(a), u8::into_buffer(b))
        }
        Buffer::U16(v) => {
            let (a, b) = background_typed(s, v, method, radius);
            (u16::into_buffer(a), u16::into_buffer(b))
        }
        Buffer::U32(v) => {
            let (a, b) = background_typed(s, v, method, radius);
            (u32::into_buffer(a), u32::into_buffer(b))
        }
        Buffer::F32(v) => {
            let (a, b) = background_typed(s, v, method, radius);
            (f32::into_buffer(a), f32::into_buffer(b))
        }
    };
    let e = |e: petri_api::StackError| NodeError::failed(e.to_string());
    Ok((s.with_data(a).map_err(e)?, s.with_data(b).map_err(e)?))
}

pub struct Background;

impl Node for Background {
    fn spec(&self) -> NodeSpec {
        NodeSpec::new(
            "image.background",
            1,
            "image",
            "Removes uneven background (illumination, haze) by subtracting a smooth background estimate.",
        )
        .input(
            "image",
            PortType::Image,
            "Image with dark background (2-D or 3-D; time points and channels separately).",
        )
        .output("image", PortType::Image, "Image minus its background, same pixel type.")
        .output("background", PortType::Image, "The estimated background, same pixel type.")
        .param(ParamSpec::choice(
            "method",
            &["rolling_ball", "tophat"],
            "rolling_ball",
            "rolling_ball: the background is traced by a ball rolled under the intensity surface \
             (scikit-image's rolling_ball). tophat: the background is the morphological opening with a \
             disk (2-D) or ball (3-D), much faster for large radii.",
        ))
        .param(
            ParamSpec::float(
                "radius",
                50.0,
                "Radius in pixels of the ball or disk; make it larger than the largest object you want to keep.",
            )
            .range(0.0, 1000.0)
            .greater_than(0.0),
        )
    }

    fn run(&self, ctx: &NodeCtx, p: &Params, inputs: &Inputs) -> Result<Outputs, NodeError> {
        let method = match p.str("method")? {
            "tophat" => BackgroundMethod::TopHat,
            _ => BackgroundMethod::RollingBall,
        };
        let radius = p.f64("radius")?;
        let mut v = crate::util::by_frames(ctx, inputs.image("image")?, "background", |f| {
            background(f, method, radius).map(|(a, b)| vec![a, b])
        })?;
        let (bg, img) = (v.pop(), v.pop());
        let (Some(img), Some(bg)) = (img, bg) else { return Err(NodeError::failed("background: missing output")) };
        Ok(Outputs::new().with("image", Value::Image(img)).with("background", Value::Image(bg)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::util::{diff_fixture, fixture};
    use petri_testkit::{read_stack, sample};

    #[test]
    fn rolling_ball_matches_skimage() {
        let crop = read_stack::<u16>(&fixture("nuclei2d_crop.tif"));
        let n3d = read_stack::<u16>(&sample("nuclei3d_synthetic.tif"));
        let em = read_stack::<u8>(&fixture("em_crop_u8.tif"));
        for (img, r, file) in [
            (&crop, 10.0, "rollingball_r10_crop.tif"),
            (&n3d, 3.0, "rollingball_r3_3d.tif"),
            (&em, 5.0, "rollingball_r5_em.tif"),
        ] {
            let (sub, bg) = background(img, BackgroundMethod::RollingBall, r).unwrap();
            assert_eq!(diff_fixture(&bg, file).0, 0, "{file}");
            // image − background, in the input type.
            let want: Vec<f64> =
                img.buffer().to_f64_vec().iter().zip(bg.buffer().to_f64_vec()).map(|(a, b)| a - b).collect();
            assert_eq!(sub.buffer().to_f64_vec(), want);
        }
    }

    #[test]
    fn tophat_matches_skimage() {
        let crop = read_stack::<u16>(&fixture("nuclei2d_crop.tif"));
        let n3d = read_stack::<u16>(&sample("nuclei3d_synthetic.tif"));
        for (img, r, file) in [(&crop, 10.0, "tophat_r10_crop.tif"), (&n3d, 3.0, "tophat_r3_3d.tif")] {
            let (sub, _) = background(img, BackgroundMethod::TopHat, r).unwrap();
            assert_eq!(diff_fixture(&sub, file).0, 0, "{file}");
        }
    }

    #[test]
    fn rejects_bad_radius_and_nan() {
        let s = Stack::from_2d(1, 2, vec![1u8, 2]).unwrap();
        assert!(background(&s, BackgroundMethod::TopHat, 0.0).unwrap_err().to_string().contains("radius"));
        let big = Stack::from_3d(64, 256, 256, vec![0u16; 64 * 256 * 256]).unwrap();
        let e = background(&big, BackgroundMethod::RollingBall, 200.0).unwrap_err().to_string();
        assert!(e.contains("radius") && e.contains("tophat"), "{e}");
        let f = Stack::from_2d(1, 2, vec![1.0f32, f32::NAN]).unwrap();
        assert!(background(&f, BackgroundMethod::RollingBall, 3.0).unwrap_err().to_string().contains("input 'image'"));
    }
}
