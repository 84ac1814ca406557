//! `Stack`: an N-D microscopy image with named axes, a pixel type, a physical voxel size and
//! channel names.
//!
//! Layout: the buffer is always in the canonical order **T, C, Z, Y, X** (the OME-NGFF order),
//! with absent axes of size 1. Each (t, c) volume is therefore one contiguous Z×Y×X block and
//! each (t, c, z) plane one contiguous Y×X slice, so algorithms view them without copying.
//! Loaders reorder from the file's order (ImageJ writes TZCYX) once, on read.
//! The buffer sits behind an `Arc`: cloning a stack never copies pixels.

use std::fmt;
use std::sync::Arc;

use ndarray::{ArrayView3, ArrayView5};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

/// One of the five axes a stack can have.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Axis {
    T,
    C,
    Z,
    Y,
    X,
}

impl Axis {
    pub const ALL: [Axis; 5] = [Axis::T, Axis::C, Axis::Z, Axis::Y, Axis::X];

    /// Position in the canonical T, C, Z, Y, X order.
    pub fn index(self) -> usize {
        self as usize
    }

    pub fn letter(self) -> char {
        match self {
            Axis::T => 'T',
            Axis::C => 'C',
            Axis::Z => 'Z',
            Axis::Y => 'Y',
            Axis::X => 'X',
        }
    }

    pub fn from_letter(c: char) -> Option<Axis> {
        match c.to_ascii_uppercase() {
            'T' => Some(Axis::T),
            'C' => Some(Axis::C),
            'Z' => Some(Axis::Z),
            'Y' => Some(Axis::Y),
            'X' => Some(Axis::X),
            _ => None,
        }
    }
}

/// Pixel type of a stack's buffer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DType {
    U8,
    U16,
    U32,
    F32,
}

impl DType {
    pub fn size(self) -> usize {
        match self {
            DType::U8 => 1,
            DType::U16 => 2,
            DType::U32 | DType::F32 => 4,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            DType::U8 => "u8",
            DType::U16 => "u16",
            DType::U32 => "u32",
            DType::F32 => "f32",
        }
    }

    pub fn is_integer(self) -> bool {
        !matches!(self, DType::F32)
    }
}

impl fmt::Display for DType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The pixels, shared. Cloning a `Buffer` clones an `Arc`.
#[derive(Clone, Debug)]
pub enum Buffer {
    U8(Arc<Vec<u8>>),
    U16(Arc<Vec<u16>>),
    U32(Arc<Vec<u32>>),
    F32(Arc<Vec<f32>>),
}

impl Buffer {
    pub fn dtype(&self) -> DType {
        match self {
            Buffer::U8(_) => DType::U8,
            Buffer::U16(_) => DType::U16,
            Buffer::U32(_) => DType::U32,
            Buffer::F32(_) => DType::F32,
        }
    }

    pub fn len(&self) -> usize {
        match self {
            Buffer::U8(v) => v.len(),
            Buffer::U16(v) => v.len(),
            Buffer::U32(v) => v.len(),
            Buffer::F32(v) => v.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether two buffers share the same allocation (a clone, not a copy).
    pub fn ptr_eq(&self, other: &Buffer) -> bool {
        match (self, other) {
            (Buffer::U8(a), Buffer::U8(b)) => Arc::ptr_eq(a, b),
            (Buffer::U16(a), Buffer::U16(b)) => Arc::ptr_eq(a, b),
            (Buffer::U32(a), Buffer::U32(b)) => Arc::ptr_eq(a, b),
            (Buffer::F32(a), Buffer::F32(b)) => Arc::ptr_eq(a, b),
            _ => false,
        }
    }

    /// Every value as f64 (a copy), whatever the pixel type.
    pub fn to_f64_vec(&self) -> Vec<f64> {
        match self {
            Buffer::U8(v) => v.iter().map(|&x| x as f64).collect(),
            Buffer::U16(v) => v.iter().map(|&x| x as f64).collect(),
            Buffer::U32(v) => v.iter().map(|&x| x as f64).collect(),
            Buffer::F32(v) => v.iter().map(|&x| x as f64).collect(),
        }
    }

    /// Every value as f32 (a copy unless already f32).
    pub fn to_f32(&self) -> Arc<Vec<f32>> {
        match self {
            Buffer::U8(v) => Arc::new(v.iter().map(|&x| x as f32).collect()),
            Buffer::U16(v) => Arc::new(v.iter().map(|&x| x as f32).collect()),
            Buffer::U32(v) => Arc::new(v.iter().map(|&x| x as f32).collect()),
            Buffer::F32(v) => v.clone(),
        }
    }
}

/// Runs `$body` with `$s` bound to the buffer's pixels as a typed slice.
///
/// ```ignore
/// let max = with_pixels!(stack.buffer(), s => s.iter().fold(0.0f64, |m, &v| m.max(v.to_f64())));
/// ```
#[macro_export]
macro_rules! with_pixels {
    ($buf:expr, $s:ident => $body:expr) => {
        match $buf {
            $crate::Buffer::U8(__v) => {
                let $s: &[u8] = &__v[..];
                $body
            }
            $crate::Buffer::U16(__v) => {
                let $s: &[u16] = &__v[..];
                $body
            }
            $crate::Buffer::U32(__v) => {
                let $s: &[u32] = &__v[..];
                $body
            }
            $crate::Buffer::F32(__v) => {
                let $s: &[f32] = &__v[..];
                $body
            }
        }
    };
}

/// A pixel type a stack can hold.
pub trait Pixel: Copy + Send + Sync + Default + PartialOrd + PartialEq + fmt::Debug + 'static {
    const DTYPE: DType;
    fn to_f64(self) -> f64;
    fn to_f32(self) -> f32;
    /// Rounds to nearest and saturates for integer types; plain cast for f32.
    fn from_f64(v: f64) -> Self;
    fn slice(buf: &Buffer) -> Option<&[Self]>;
    fn into_buffer(v: Vec<Self>) -> Buffer;
}

macro_rules! int_pixel {
    ($t:ty, $variant:ident) => {
        impl Pixel for $t {
            const DTYPE: DType = DType::$variant;
            #[inline]
            fn to_f64(self) -> f64 {
                self as f64
            }
            #[inline]
            fn to_f32(self) -> f32 {
                self as f32
            }
            #[inline]
            fn from_f64(v: f64) -> Self {
                // `as` saturates and maps NaN to 0, which is what we want for pixels.
                v.round() as $t
            }
            fn slice(buf: &Buffer) -> Option<&[Self]> {
                match buf {
                    Buffer::$variant(v) => Some(&v[..]),
                    _ => None,
                }
            }
            fn into_buffer(v: Vec<Self>) -> Buffer {
                Buffer::$variant(Arc::new(v))
            }
        }
    };
}
int_pixel!(u8, U8);
int_pixel!(u16, U16);
int_pixel!(u32, U32);

impl Pixel for f32 {
    const DTYPE: DType = DType::F32;
    #[inline]
    fn to_f64(self) -> f64 {
        self as f64
    }
    #[inline]
    fn to_f32(self) -> f32 {
        self
    }
    #[inline]
    fn from_f64(v: f64) -> Self {
        v as f32
    }
    fn slice(buf: &Buffer) -> Option<&[Self]> {
        match buf {
            Buffer::F32(v) => Some(&v[..]),
            _ => None,
        }
    }
    fn into_buffer(v: Vec<Self>) -> Buffer {
        Buffer::F32(Arc::new(v))
    }
}

/// Physical size of one voxel. Axes without calibration have size 1 and unit "pixel".
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct VoxelSize {
    pub z: f64,
    pub y: f64,
    pub x: f64,
    /// Spatial unit, e.g. "micron"; "pixel" when uncalibrated.
    pub unit: String,
    /// Time between frames, if known.
    pub t: Option<f64>,
    pub t_unit: Option<String>,
}

impl Default for VoxelSize {
    fn default() -> Self {
        VoxelSize { z: 1.0, y: 1.0, x: 1.0, unit: "pixel".into(), t: None, t_unit: None }
    }
}

impl VoxelSize {
    /// Spacing of the spatial axes, in Z, Y, X order.
    pub fn zyx(&self) -> [f64; 3] {
        [self.z, self.y, self.x]
    }
}

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum StackError {
    #[error("buffer holds {got} values but the shape {shape} needs {want}")]
    SizeMismatch { got: usize, want: usize, shape: String },
    #[error("a stack needs at least one pixel, got shape {0}")]
    Empty(String),
    #[error("{0} channel names given for {1} channels")]
    ChannelNames(usize, usize),
    #[error("the shape {0} is too large to address")]
    TooLarge(String),
}

/// An N-D image. See the module docs for the memory layout.
#[derive(Clone, Debug)]
pub struct Stack {
    /// Sizes in T, C, Z, Y, X order; absent axes have size 1.
    dims: [usize; 5],
    /// Which axes are meaningful (an axis may be present with size 1, e.g. a one-slice Z stack).
    present: [bool; 5],
    data: Buffer,
    voxel: VoxelSize,
    channels: Vec<String>,
}

impl Stack {
    /// A stack from a buffer in T, C, Z, Y, X order. `axes` lists the meaningful axes
    /// (Y and X are always added); `dims` gives sizes in canonical order.
    pub fn new(dims: [usize; 5], axes: &[Axis], data: Buffer) -> Result<Stack, StackError> {
        let want = dims
            .iter()
            .try_fold(1usize, |acc, &d| acc.checked_mul(d))
            .ok_or_else(|| StackError::TooLarge(format!("{dims:?}")))?;
        if want == 0 {
            return Err(StackError::Empty(format!("{dims:?}")));
        }
        if data.len() != want {
            return Err(StackError::SizeMismatch { got: data.len(), want, shape: format!("{dims:?}") });
        }
        let mut present = [false, false, false, true, true];
        for a in axes {
            present[a.index()] = true;
        }
        for (i, &d) in dims.iter().enumerate() {
            if d > 1 {
                present[i] = true;
            }
        }
        Ok(Stack { dims, present, data, voxel: VoxelSize::default(), channels: Vec::new() })
    }

    /// A 2-D image (Y, X).
    pub fn from_2d<P: Pixel>(h: usize, w: usize, data: Vec<P>) -> Result<Stack, StackError> {
        Stack::new([1, 1, 1, h, w], &[Axis::Y, Axis::X], P::into_buffer(data))
    }

    /// A 3-D volume (Z, Y, X).
    pub fn from_3d<P: Pixel>(d: usize, h: usize, w: usize, data: Vec<P>) -> Result<Stack, StackError> {
        Stack::new([1, 1, d, h, w], &[Axis::Z, Axis::Y, Axis::X], P::into_buffer(data))
    }

    /// A new stack with the same shape, axes, calibration and channel names but other pixels.
    pub fn with_data(&self, data: Buffer) -> Result<Stack, StackError> {
        let mut s = Stack::new(self.dims, &self.axes(), data)?;
        s.voxel = self.voxel.clone();
        s.channels = self.channels.clone();
        Ok(s)
    }

    /// Like [`Stack::with_data`] from a typed vector.
    pub fn with_pixels<P: Pixel>(&self, data: Vec<P>) -> Result<Stack, StackError> {
        self.with_data(P::into_buffer(data))
    }

    pub fn with_voxel_size(mut self, voxel: VoxelSize) -> Stack {
        self.voxel = voxel;
        self
    }

    pub fn with_channel_names(mut self, names: Vec<String>) -> Result<Stack, StackError> {
        if !names.is_empty() && names.len() != self.c() {
            return Err(StackError::ChannelNames(names.len(), self.c()));
        }
        self.channels = names;
        Ok(self)
    }

    /// Sizes in T, C, Z, Y, X order.
    pub fn dims(&self) -> [usize; 5] {
        self.dims
    }
    pub fn t(&self) -> usize {
        self.dims[0]
    }
    pub fn c(&self) -> usize {
        self.dims[1]
    }
    pub fn z(&self) -> usize {
        self.dims[2]
    }
    pub fn y(&self) -> usize {
        self.dims[3]
    }
    pub fn x(&self) -> usize {
        self.dims[4]
    }
    pub fn len(&self) -> usize {
        self.data.len()
    }
    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }
    /// Pixels in one Z×Y×X volume.
    pub fn volume_len(&self) -> usize {
        self.dims[2] * self.dims[3] * self.dims[4]
    }
    pub fn plane_len(&self) -> usize {
        self.dims[3] * self.dims[4]
    }
    /// Spatial shape (Z, Y, X) of one volume.
    pub fn zyx(&self) -> [usize; 3] {
        [self.dims[2], self.dims[3], self.dims[4]]
    }
    /// Whether the spatial data is 3-D (has a Z axis with more than one slice, or was declared Z).
    pub fn is_3d(&self) -> bool {
        self.present[Axis::Z.index()] && self.dims[2] > 1
    }

    pub fn has_axis(&self, a: Axis) -> bool {
        self.present[a.index()]
    }

    /// The meaningful axes, in canonical order.
    pub fn axes(&self) -> Vec<Axis> {
        Axis::ALL.into_iter().filter(|a| self.present[a.index()]).collect()
    }

    /// The meaningful axes as letters, e.g. "TZYX".
    pub fn axes_string(&self) -> String {
        self.axes().into_iter().map(Axis::letter).collect()
    }

    /// Shape of the meaningful axes, in canonical order.
    pub fn shape(&self) -> Vec<usize> {
        self.axes().into_iter().map(|a| self.dims[a.index()]).collect()
    }

    /// "TZYX 65×690×628 u16"-style summary for messages and previews.
    pub fn describe(&self) -> String {
        let shape: Vec<String> = self.shape().iter().map(|d| d.to_string()).collect();
        format!("{} {} {}", self.axes_string(), shape.join("×"), self.dtype())
    }

    pub fn dtype(&self) -> DType {
        self.data.dtype()
    }
    pub fn buffer(&self) -> &Buffer {
        &self.data
    }
    pub fn voxel_size(&self) -> &VoxelSize {
        &self.voxel
    }
    pub fn channel_names(&self) -> &[String] {
        &self.channels
    }

    /// All pixels as a typed slice, or `None` if the stack holds another type.
    pub fn pixels<P: Pixel>(&self) -> Option<&[P]> {
        P::slice(&self.data)
    }

    /// Index of the first pixel of volume (t, c).
    fn volume_offset(&self, t: usize, c: usize) -> usize {
        (t * self.dims[1] + c) * self.volume_len()
    }

    /// The Z×Y×X volume at (t, c), without copying. `None` if out of range or of another type.
    pub fn volume<P: Pixel>(&self, t: usize, c: usize) -> Option<&[P]> {
        if t >= self.t() || c >= self.c() {
            return None;
        }
        let o = self.volume_offset(t, c);
        self.pixels::<P>().map(|s| &s[o..o + self.volume_len()])
    }

    /// The volume at (t, c) as an ndarray view (Z, Y, X).
    pub fn volume_view<P: Pixel>(&self, t: usize, c: usize) -> Option<ArrayView3<'_, P>> {
        let [_, _, z, y, x] = self.dims;
        self.volume::<P>(t, c).and_then(|s| ArrayView3::from_shape((z, y, x), s).ok())
    }

    /// One Y×X plane at (t, c, z), without copying.
    pub fn plane<P: Pixel>(&self, t: usize, c: usize, z: usize) -> Option<&[P]> {
        if z >= self.z() {
            return None;
        }
        let n = self.plane_len();
        self.volume::<P>(t, c).map(|v| &v[z * n..(z + 1) * n])
    }

    /// One time point (C×Z×Y×X, contiguous), without copying.
    pub fn frame<P: Pixel>(&self, t: usize) -> Option<&[P]> {
        if t >= self.t() {
            return None;
        }
        let n = self.dims[1] * self.volume_len();
        self.pixels::<P>().map(|s| &s[t * n..(t + 1) * n])
    }

    /// The whole stack as a 5-D view in T, C, Z, Y, X order.
    pub fn view5<P: Pixel>(&self) -> Option<ArrayView5<'_, P>> {
        let [t, c, z, y, x] = self.dims;
        self.pixels::<P>().and_then(|s| ArrayView5::from_shape((t, c, z, y, x), s).ok())
    }

    /// Copies one time point into a new stack (shares nothing; T axis dropped).
    pub fn frame_stack(&self, t: usize) -> Option<Stack> {
        if t >= self.t() {
            return None;
        }
        let n = self.dims[1] * self.volume_len();
        let range = t * n..(t + 1) * n;
        let data = match &self.data {
            Buffer::U8(v) => Buffer::U8(Arc::new(v[range].to_vec())),
            Buffer::U16(v) => Buffer::U16(Arc::new(v[range].to_vec())),
            Buffer::U32(v) => Buffer::U32(Arc::new(v[range].to_vec())),
            Buffer::F32(v) => Buffer::F32(Arc::new(v[range].to_vec())),
        };
        let axes: Vec<Axis> = self.axes().into_iter().filter(|&a| a != Axis::T).collect();
        let mut dims = self.dims;
        dims[0] = 1;
        let mut s = Stack::new(dims, &axes, data).ok()?;
        s.present[0] = false;
        s.voxel = self.voxel.clone();
        s.channels = self.channels.clone();
        Some(s)
    }

    /// Same shape and axes (ignoring pixel type and calibration).
    pub fn same_shape(&self, other: &Stack) -> bool {
        self.dims == other.dims
    }

    /// A new stack of f32 with the same geometry.
    pub fn to_f32(&self) -> Stack {
        Stack { data: Buffer::F32(self.data.to_f32()), ..self.clone() }
    }

    /// Marks axes as present/absent (used by loaders that know the file's axes).
    pub fn set_axes(&mut self, axes: &[Axis]) {
        self.present = [false; 5];
        self.present[Axis::Y.index()] = true;
        self.present[Axis::X.index()] = true;
        for a in axes {
            self.present[a.index()] = true;
        }
        for (i, &d) in self.dims.iter().enumerate() {
            if d > 1 {
                self.present[i] = true;
            }
        }
    }

    /// Minimum and maximum over all pixels, ignoring NaN. `None` if every pixel is NaN.
    pub fn min_max(&self) -> Option<(f64, f64)> {
        with_pixels!(&self.data, s => {
            let mut lo = f64::INFINITY;
            let mut hi = f64::NEG_INFINITY;
            for &v in s {
                let v = v.to_f64();
                if v < lo { lo = v; }
                if v > hi { hi = v; }
            }
            if lo <= hi { Some((lo, hi)) } else { None }
        })
    }

    /// Checks a float stack holds only finite values; names the first bad pixel otherwise.
    pub fn check_finite(&self) -> Result<(), String> {
        if let Buffer::F32(v) = &self.data {
            // Hot: nodes check every float input. Blocks of 4096 are tested with a branch-free
            // fold (vectorised), in parallel; only a bad block is searched for its first pixel.
            const BLOCK: usize = 4096;
            let bad_block = v.par_chunks(BLOCK).position_first(|b| !b.iter().fold(true, |ok, x| ok & x.is_finite()));
            if let Some(i) =
                bad_block.and_then(|k| v[k * BLOCK..].iter().position(|x| !x.is_finite()).map(|j| k * BLOCK + j))
            {
                let w = self.x();
                let h = self.y();
                return Err(format!(
                    "the image holds a non-finite value ({}) at pixel y={}, x={} (flat index {i})",
                    v[i],
                    (i / w) % h,
                    i % w
                ));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn views_do_not_copy_and_index_canonically() {
        // T=2, C=1, Z=2, Y=2, X=3
        let data: Vec<u16> = (0..24).collect();
        let s = Stack::new([2, 1, 2, 2, 3], &[Axis::T, Axis::Z], u16::into_buffer(data)).unwrap();
        assert_eq!(s.axes_string(), "TZYX");
        assert_eq!(s.shape(), vec![2, 2, 2, 3]);
        assert_eq!(s.plane::<u16>(1, 0, 1).unwrap(), &[18, 19, 20, 21, 22, 23]);
        assert_eq!(s.frame::<u16>(1).unwrap()[0], 12);
        let v = s.volume_view::<u16>(0, 0).unwrap();
        assert_eq!(v[[1, 1, 2]], 11);
        let c = s.clone();
        assert!(c.buffer().ptr_eq(s.buffer()));
        assert!(s.plane::<f32>(0, 0, 0).is_none());
        assert!(s.plane::<u16>(2, 0, 0).is_none());
        let f = s.frame_stack(1).unwrap();
        assert_eq!(f.axes_string(), "ZYX");
        assert_eq!(f.pixels::<u16>().unwrap()[0], 12);
    }

    #[test]
    fn rejects_wrong_sizes() {
        assert!(matches!(
            Stack::new([1, 1, 1, 2, 2], &[], u8::into_buffer(vec![0; 3])),
            Err(StackError::SizeMismatch { .. })
        ));
        assert!(matches!(Stack::new([1, 1, 1, 0, 2], &[], u8::into_buffer(vec![])), Err(StackError::Empty(_))));
        assert!(matches!(
            Stack::new([usize::MAX, 2, 1, 2, 2], &[], u8::into_buffer(vec![])),
            Err(StackError::TooLarge(_))
        ));
    }

    #[test]
    fn pixel_conversion_rounds_and_saturates() {
        assert_eq!(u8::from_f64(300.0), 255);
        assert_eq!(u8::from_f64(-3.0), 0);
        assert_eq!(u16::from_f64(2.5), 3);
        assert_eq!(u16::from_f64(f64::NAN), 0);
    }
}
