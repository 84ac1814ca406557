//! Helpers shared by the label nodes: connectivity, per-volume iteration, parameter parsing.

use petri_api::{NodeError, Params, Pixel, Stack};

/// Which neighbours touch: `Face` = 4 in 2-D / 6 in 3-D (skimage `connectivity=1`),
/// `Full` = 8 / 26 (skimage `connectivity=ndim`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Connectivity {
    Face,
    Full,
}

impl Connectivity {
    /// Reads a `face`/`full` choice parameter.
    pub fn from_param(p: &Params, name: &str) -> Result<Connectivity, NodeError> {
        match p.str(name)? {
            "face" => Ok(Connectivity::Face),
            "full" => Ok(Connectivity::Full),
            other => Err(NodeError::param(name, format!("expected 'face' or 'full', got '{other}'"))),
        }
    }
}

/// Spatial shape of one volume, Z×Y×X (z = 1 for 2-D images).
pub type Shape3 = [usize; 3];

/// Runs `f` on every (t, c) volume of `stack` in order and concatenates the outputs into one
/// buffer of the stack's length (same T, C, Z, Y, X layout).
pub fn map_volumes<P: Pixel, O: Clone + Default>(
    stack: &Stack,
    port: &str,
    mut f: impl FnMut(&[P], Shape3) -> Result<Vec<O>, NodeError>,
) -> Result<Vec<O>, NodeError> {
    let shape = stack.zyx();
    let mut out = Vec::with_capacity(stack.len());
    for t in 0..stack.t() {
        for c in 0..stack.c() {
            let vol = stack.volume::<P>(t, c).ok_or_else(|| {
                NodeError::input(port, format!("expected {} pixels, got {}", P::DTYPE, stack.dtype()))
            })?;
            let v = f(vol, shape)?;
            debug_assert_eq!(v.len(), vol.len());
            out.extend(v);
        }
    }
    Ok(out)
}

/// Spacing (Z, Y, X) of a stack's voxels for distance computations: the calibrated voxel size
/// when `use_spacing`, else 1 per axis. Z is ignored (1) for 2-D images.
pub fn spacing_of(stack: &Stack, use_spacing: bool, param: &str) -> Result<[f64; 3], NodeError> {
    if !use_spacing {
        return Ok([1.0; 3]);
    }
    let v = stack.voxel_size();
    let sp = [if stack.z() > 1 { v.z } else { 1.0 }, v.y, v.x];
    if sp.iter().any(|s| !s.is_finite() || *s <= 0.0) {
        return Err(NodeError::param(
            param,
            format!("the image's voxel size {:?} is not usable (each axis needs a positive size)", sp),
        ));
    }
    Ok(sp)
}

/// Checks that an optional input has the same T, C, Z, Y, X shape as the main one.
pub fn check_same_shape(main: &Stack, main_port: &str, other: &Stack, port: &str) -> Result<(), NodeError> {
    if main.dims() != other.dims() {
        return Err(NodeError::input(
            port,
            format!("shape {} does not match input '{main_port}' ({})", other.describe(), main.describe()),
        ));
    }
    Ok(())
}

/// Index of the first pixel of volume (t, c) in a stack's buffer, for messages.
pub fn volume_name(stack: &Stack, t: usize, c: usize) -> String {
    match (stack.t() > 1, stack.c() > 1) {
        (true, true) => format!(" (time point {t}, channel {c})"),
        (true, false) => format!(" (time point {t})"),
        (false, true) => format!(" (channel {c})"),
        (false, false) => String::new(),
    }
}

/// Every (t, c) pair of a stack, in buffer order.
pub fn volumes(stack: &Stack) -> impl Iterator<Item = (usize, usize)> + use<> {
    let (nt, nc) = (stack.t(), stack.c());
    (0..nt).flat_map(move |t| (0..nc).map(move |c| (t, c)))
}

/// A stack's pixels as f64, checked finite (NaN/Inf are refused with the pixel named).
pub fn finite_f64(stack: &Stack, port: &str) -> Result<Vec<f64>, NodeError> {
    stack.check_finite().map_err(|m| NodeError::input(port, m))?;
    Ok(stack.buffer().to_f64_vec())
}
