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
