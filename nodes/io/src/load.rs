//! The loader behind `io.load_stack` and `io.load_labels`: one file (TIFF, PNG, JPEG, BMP) or a
//! folder of images, to a canonical [`Stack`].

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

use petri_api::{Axis, Buffer, DType, Fingerprint, NodeCtx, NodeError, Pixel, Stack, VoxelSize};

use crate::imagej;
use crate::layout::Series;
use crate::ome;
use crate::tiffread::{self, DecodeError, PageJob, TiffFile};
use crate::util::{natural_cmp, normalize_unit, try_zeroed_vec};

/// File extensions a folder scan picks up (case-insensitive).
pub const IMAGE_EXTENSIONS: &[&str] = &["tif", "tiff", "png", "jpg", "jpeg", "bmp"];

/// Loader parameters (the node's params, minus the path).
#[derive(Clone, Debug)]
pub struct LoadOptions {
    /// Glob on file names when the path is a folder.
    pub pattern: String,
    /// Which image series of a multi-series file.
    pub series: usize,
    /// Axes override in storage order ("" = from the file).
    pub axes: String,
    /// Voxel size override: 1 value (isotropic), 2 (Y, X) or 3 (Z, Y, X).
    pub voxel_size: Option<Vec<f64>>,
}

impl Default for LoadOptions {
    fn default() -> Self {
        LoadOptions { pattern: "*".into(), series: 0, axes: String::new(), voxel_size: None }
    }
}

/// What a path points at.
#[derive(Clone, Debug, PartialEq)]
pub enum Source {
    File(PathBuf),
    /// Image files of a folder, in natural order.
    Folder(Vec<PathBuf>),
    /// An OME-Zarr folder.
    Zarr(PathBuf),
}

impl Source {
    /// Every file the loader reads, in reading order.
    pub fn files(&self) -> Vec<PathBuf> {
        match self {
            Source::File(p) => vec![p.clone()],
            Source::Folder(v) => v.clone(),
            Source::Zarr(p) => zarr_files(p),
        }
    }
}

fn open_error(path: &Path, e: std::io::Error) -> NodeError {
    match e.kind() {
        std::io::ErrorKind::NotFound => NodeError::io(path, "no such file or folder"),
        std::io::ErrorKind::PermissionDenied => NodeError::io(path, "permission denied"),
        _ => NodeError::io(path, format!("cannot open: {e}")),
    }
}

fn has_image_extension(p: &Path) -> bool {
    p.extension().and_then(|e| e.to_str()).is_some_and(|e| IMAGE_EXTENSIONS.iter().any(|x| x.eq_ignore_ascii_case(e)))
}

/// Resolves a path (file or folder) and, for a folder, the image files matching `pattern`.
pub fn resolve(path: &Path, pattern: &str) -> Result<Source, NodeError> {
    let meta = std::fs::metadata(path).map_err(|e| open_error(path, e))?;
    if !meta.is_dir() {
        return Ok(Source::File(path.to_path_buf()));
    }
    if crate::zarr::is_zarr(path) {
        return Ok(Source::Zarr(path.to_path_buf()));
    }
    let pattern = if pattern.trim().is_empty() { "*" } else { pattern.trim() };
    let pat = glob::Pattern::new(pattern).map_err(|e| NodeError::param("pattern", format!("invalid pattern: {e}")))?;
    let opts = glob::MatchOptions {
        case_sensitive: false,
        require_literal_separator: true,
        require_literal_leading_dot: true,
    };
    let mut files: Vec<(String, PathBuf)> = Vec::new();
    for entry in std::fs::read_dir(path).map_err(|e| open_error(path, e))? {
        let entry = entry.map_err(|e| NodeError::io(path, format!("cannot list the folder: {e}")))?;
        let name = entry.file_name().to_string_lossy().to_string();
        let p = entry.path();
        if name.starts_with('.') || !p.is_file() || !has_image_extension(&p) || !pat.matches_with(&name, opts) {
            continue;
        }
        files.push((name, p));
    }
    if files.is_empty() {
        return Err(NodeError::io(
            path,
            format!(
                "the folder holds no image files matching '{pattern}' (looked for .tif, .tiff, .png, .jpg, .jpeg, .bmp)"
            ),
        ));
    }
    files.sort_by(|a, b| natural_cmp(&a.0, &b.0));
    Ok(Source::Folder(files.into_iter().map(|f| f.1).collect()))
}

/// Loads a file or folder as one stack.
pub fn load_stack(path: &Path, opts: &LoadOptions, ctx: &NodeCtx) -> Result<Stack, NodeError> {
    let stack = match resolve(path, &opts.pattern)? {
        Source::File(p) => load_file(&p, opts.series, &opts.axes, ctx)?,
        Source::Folder(files) => load_folder(&files, opts, ctx)?,
        Source::Zarr(p) => {
            if opts.series != 0 {
                return Err(NodeError::param(
                    "series",
                    "an OME-Zarr image has one series here (level 0 of its first image)",
                ));
            }
            if !opts.axes.trim().is_empty() {
                return Err(NodeError::param("axes", "OME-Zarr names its axes itself; leave 'axes' empty"));
            }
            crate::zarr::ZarrImage::open(&p)?.read()?
        }
    };
    Ok(match &opts.voxel_size {
        Some(v) => apply_voxel_size(stack, v).map_err(|m| NodeError::param("voxel_size", m))?,
        None => stack,
    })
}

/// Replaces the calibration: 1 value = isotropic, 2 = (Y, X), 3 = (Z, Y, X). Values are in the
/// file's unit, or microns when the file had none.
pub fn apply_voxel_size(stack: Stack, v: &[f64]) -> Result<Stack, String> {
    if v.iter().any(|x| !(x.is_finite() && *x > 0.0)) {
        return Err(format!("voxel sizes must be positive numbers, got {v:?}"));
    }
    let mut vs = stack.voxel_size().clone();
    match v {
        [a] => (vs.z, vs.y, vs.x) = (*a, *a, *a),
        [y, x] => (vs.y, vs.x) = (*y, *x),
        [z, y, x] => (vs.z, vs.y, vs.x) = (*z, *y, *x),
        _ => return Err(format!("give 1, 2 (Y, X) or 3 (Z, Y, X) values, got {}", v.len())),
    }
    if vs.unit == "pixel" {
        vs.unit = "micron".into();
    }
    Ok(stack.with_voxel_size(vs))
}

/// Loads one file, whatever its format (detected from its first bytes, not its name).
pub fn load_file(path: &Path, series: usize, axes: &str, ctx: &NodeCtx) -> Result<Stack, NodeError> {
    use std::io::Read;
    let mut f = std::fs::File::open(path).map_err(|e| open_error(path, e))?;
    if f.metadata().map(|m| m.is_dir()).unwrap_or(false) {
        return Err(NodeError::io(path, "is a folder"));
    }
    let mut head = [0u8; 8];
    let n = f.read(&mut head).map_err(|e| NodeError::io(path, format!("cannot read: {e}")))?;
    drop(f);
    let head = &head[..n];
    if n == 0 {
        return Err(NodeError::io(path, "the file is empty"));
    }
    if tiffread::sniff(head).is_some() {
        return load_tiff(path, series, axes, ctx);
    }
    let raster =
        head.starts_with(&[0x89, b'P', b'N', b'G']) || head.starts_with(&[0xFF, 0xD8, 0xFF]) || head.starts_with(b"BM");
    if raster {
        return crate::raster::load_raster(path, series, axes);
    }
    let ext = path.extension().and_then(|e| e.to_str()).unwrap_or("").to_ascii_lowercase();
    if ext.starts_with("tif") {
        Err(NodeError::io(
            path,
            format!("not a TIFF file (wrong magic bytes {:02X?}, expected 'II*' or 'MM*')", &head[..n.min(4)]),
        ))
    } else {
        Err(NodeError::io(path, "unsupported file format (Petri reads TIFF, OME-TIFF, PNG, JPEG and BMP)"))
    }
}

/// Loads one series of a TIFF (ImageJ hyperstack, or plain multi-page TIFF).
pub fn load_tiff(path: &Path, series: usize, axes: &str, ctx: &NodeCtx) -> Result<Stack, NodeError> {
    let file = tiffread::scan(path).map_err(|m| NodeError::io(path, m))?;
    let mut s = tiff_series(&file, series).map_err(|m| NodeError::io(path, m))?;
    s.relabel(axes).map_err(|m| NodeError::param("axes", m))?;
    decode_series(&file, &s, ctx)
}

/// Loads series `series` of a TIFF held in memory (fuzzing, embedded data).
pub fn load_tiff_bytes(bytes: &[u8], series: usize, axes: &str, ctx: &NodeCtx) -> Result<Stack, NodeError> {
    let path = Path::new("<memory>");
    let file = tiffread::scan_bytes(std::sync::Arc::from(bytes)).map_err(|m| NodeError::io(path, m))?;
    let mut s = tiff_series(&file, series).map_err(|m| NodeError::io(path, m))?;
    s.relabel(axes).map_err(|m| NodeError::param("axes", m))?;
    decode_series(&file, &s, ctx)
}

/// Calibration from the resolution tags when no ImageJ/OME metadata says otherwise:
/// only centimetre resolutions are taken (inch resolutions are print DPI, not microscopy).
fn resolution_voxel(file: &TiffFile) -> VoxelSize {
    let mut v = VoxelSize::default();
    if let (3, Some((xr, yr))) = (file.resolution_unit, file.resolution)
        && xr > 0.0
        && yr > 0.0
        && xr.is_finite()
        && yr.is_finite()
    {
        v.x = 1e4 / xr;
        v.y = 1e4 / yr;
        v.unit = "micron".into();
    }
    v
}

/// Describes series `series` of a scanned TIFF.
pub fn tiff_series(file: &TiffFile, series: usize) -> Result<Series, String> {
    let desc = file.description.as_deref().unwrap_or("");
    if ome::is_ome(desc) {
        // Invalid OME-XML: read the file as a plain TIFF, as tifffile and Bio-Formats do.
        if let Ok(images) = ome::parse(desc) {
            return ome_series(file, &images, series);
        }
    }
    if let Some(ij) = imagej::parse(desc)? {
        return imagej_series(file, &ij, series);
    }
    generic_series(file, series)
}

/// OME-TIFF: the planes of Image `series` in its DimensionOrder, calibration converted to microns.
fn ome_series(file: &TiffFile, images: &[ome::OmeImage], series: usize) -> Result<Series, String> {
    let Some(img) = images.get(series) else {
        let list: Vec<String> = images
            .iter()
            .enumerate()
            .map(|(k, i)| format!("{k}: {}×{} C={} Z={} T={}", i.size_y, i.size_x, i.size_c, i.size_z, i.size_t))
            .collect();
        return Err(format!(
            "series {series} does not exist; the OME metadata describes {} image(s) ({})",
            images.len(),
            list.join("; ")
        ));
    };
    let name = file.path.file_name().map(|n| n.to_string_lossy().to_string()).unwrap_or_default();
    let pages = ome::image_pages(img, file.pages.len(), &name)?;
    let p0 = &file.pages[pages[0]];
    if p0.width as u64 != img.size_x || p0.height as u64 != img.size_y {
        return Err(format!(
            "the OME metadata says {}×{} pixels but page {} is {}",
            img.size_y,
            img.size_x,
            pages[0],
            p0.describe()
        ));
    }
    for &p in &pages {
        if !file.pages[p].same_layout(p0) {
            return Err(format!(
                "page {p} is {} but page {} is {}: the planes of one OME image must have one size and type",
                file.pages[p].describe(),
                pages[0],
                p0.describe()
            ));
        }
    }
    let mut voxel = VoxelSize::default();
    let um = |k: usize| img.physical[k].as_ref().and_then(|(v, u)| ome::to_micron(*v, u));
    if let (Some(x), Some(y)) = (um(0), um(1)) {
        voxel.x = x;
        voxel.y = y;
        voxel.unit = "micron".into();
    }
    if let Some(z) = um(2) {
        voxel.z = z;
    }
    if let Some((t, u)) = &img.time_increment {
        voxel.t = Some(*t);
        voxel.t_unit = Some(u.clone());
    }
    let plane_channels = img.plane_channels() as usize;
    let names =
        if p0.samples == 1 && img.channel_names.len() == plane_channels { img.channel_names.clone() } else { vec![] };
    Ok(Series {
        pages,
        page_axes: img.order.iter().map(|&a| (a, img.size_of(a) as usize)).collect(),
        samples: p0.samples,
        height: p0.height,
        width: p0.width,
        dtype: p0.kind.dtype()?,
        voxel,
        channel_names: names,
        declared: vec![],
    })
}

/// Plain TIFF: consecutive pages of one size and type form a series (as tifffile groups them);
/// a multi-page series is a Z stack.
fn generic_series(file: &TiffFile, series: usize) -> Result<Series, String> {
    let mut runs: Vec<(usize, usize)> = Vec::new();
    for (i, p) in file.pages.iter().enumerate() {
        match runs.last_mut() {
            Some((s, n)) if file.pages[*s].same_layout(p) => *n += 1,
            _ => runs.push((i, 1)),
        }
    }
    let Some(&(start, len)) = runs.get(series) else {
        let list: Vec<String> = runs
            .iter()
            .enumerate()
            .map(|(k, (s, n))| format!("{k}: {n} page(s) of {}", file.pages[*s].describe()))
            .collect();
        return Err(format!(
            "series {series} does not exist; the file holds {} series ({})",
            runs.len(),
            list.join("; ")
        ));
    };
    let p0 = &file.pages[start];
    Ok(Series {
        pages: (start..start + len).collect(),
        page_axes: if len > 1 { vec![(Axis::Z, len)] } else { vec![] },
        samples: p0.samples,
        height: p0.height,
        width: p0.width,
        dtype: p0.kind.dtype()?,
        voxel: if start == 0 { resolution_voxel(file) } else { VoxelSize::default() },
        channel_names: vec![],
        declared: vec![],
    })
}

/// ImageJ hyperstack: pages in T, Z, C order; calibration from the description and the
/// resolution tags.
fn imagej_series(file: &TiffFile, ij: &imagej::ImageJMeta, series: usize) -> Result<Series, String> {
    if series != 0 {
        return Err(format!("an ImageJ file holds a single series; series {series} does not exist"));
    }
    let p0 = &file.pages[0];
    for (i, p) in file.pages.iter().enumerate() {
        if !p.same_layout(p0) {
            return Err(format!(
                "page {i} is {} but page 0 is {}: the pages of an ImageJ file must all have one size and type",
                p.describe(),
                p0.describe()
            ));
        }
    }
    if p0.samples > 1 && ij.channels > 1 {
        return Err(format!("unsupported ImageJ file: {} channels of {}-sample (RGB) pages", ij.channels, p0.samples));
    }
    let n = file.pages.len();
    if n != ij.images {
        return Err(format!(
            "the ImageJ description declares {} images (channels={} slices={} frames={}) but the file holds {n} pages",
            ij.images, ij.channels, ij.slices, ij.frames
        ));
    }
    let mut voxel = resolution_voxel(file);
    if let Some(unit) = ij.unit.as_deref().map(normalize_unit).filter(|u| u != "pixel") {
        voxel.unit = unit;
        if let Some((xr, yr)) = file.resolution
            && xr > 0.0
            && yr > 0.0
            && xr.is_finite()
            && yr.is_finite()
        {
            voxel.x = 1.0 / xr;
            voxel.y = 1.0 / yr;
        }
    }
    if let Some(z) = ij.spacing {
        voxel.z = z;
    }
    if let Some(t) = ij.finterval {
        voxel.t = Some(t);
        voxel.t_unit = Some(ij.tunit.clone().unwrap_or_else(|| "sec".into()));
    }
    Ok(Series {
        pages: (0..n).collect(),
        page_axes: vec![(Axis::T, ij.frames), (Axis::Z, ij.slices), (Axis::C, ij.channels)],
        samples: p0.samples,
        height: p0.height,
        width: p0.width,
        dtype: p0.kind.dtype()?,
        voxel,
        channel_names: vec![],
        declared: vec![],
    })
}

/// Decodes a series into a canonical stack.
pub fn decode_series(file: &TiffFile, s: &Series, ctx: &NodeCtx) -> Result<Stack, NodeError> {
    match s.dtype {
        DType::U8 => decode_typed::<u8>(file, s, ctx),
        DType::U16 => decode_typed::<u16>(file, s, ctx),
        DType::U32 => decode_typed::<u32>(file, s, ctx),
        DType::F32 => decode_typed::<f32>(file, s, ctx),
    }
}

fn decode_typed<P: Pixel + bytemuck::Pod>(file: &TiffFile, s: &Series, ctx: &NodeCtx) -> Result<Stack, NodeError> {
    let path = &file.path;
    let plan = s.plan().map_err(|m| NodeError::io(path, m))?;
    let plane_len = s.height.checked_mul(s.width).ok_or_else(|| NodeError::io(path, "image too large"))?;
    let n_planes = plan.dims[0] * plan.dims[1] * plan.dims[2];
    let total = plane_len.checked_mul(n_planes).ok_or_else(|| NodeError::io(path, "image too large"))?;
    let mut buf: Vec<P> = try_zeroed_vec(total).map_err(|m| NodeError::io(path, m))?;
    // Pages stored in plane order as one uncompressed run of the file: one read.
    let in_order = s.pages.len() == n_planes && plan.dests.iter().enumerate().all(|(k, d)| d[..] == [k]);
    if in_order && tiffread::read_contiguous(file, &s.pages, &mut buf).map_err(|m| NodeError::io(path, m))? {
        ctx.progress(1.0, format!("read {n_planes} planes"));
    } else {
        let mut planes: Vec<Option<&mut [P]>> = buf.chunks_mut(plane_len).map(Some).collect();
        let mut jobs = Vec::with_capacity(s.pages.len());
        for (k, &page) in s.pages.iter().enumerate() {
            let mut dests = Vec::with_capacity(plan.dests[k].len());
            for &d in &plan.dests[k] {
                let plane = planes.get_mut(d).and_then(Option::take);
                dests.push(plane.ok_or_else(|| NodeError::failed("internal error: a plane is mapped twice"))?);
            }
            jobs.push(PageJob { page, dests });
        }
        let n = jobs.len();
        let count = AtomicUsize::new(0);
        let step = (n / 50).max(1);
        let done = || {
            let k = count.fetch_add(1, Ordering::Relaxed) + 1;
            if k.is_multiple_of(step) || k == n {
                ctx.progress(k as f64 / n as f64, format!("reading plane {k}/{n}"));
            }
        };
        tiffread::decode_pages(file, jobs, &done, &|| ctx.is_cancelled()).map_err(|e| match e {
            DecodeError::Cancelled => NodeError::Cancelled,
            DecodeError::Failed(m) => NodeError::io(path, m),
        })?;
    }
    let stack =
        Stack::new(plan.dims, &plan.axes, P::into_buffer(buf)).map_err(|e| NodeError::io(path, e.to_string()))?;
    let stack = stack.with_voxel_size(s.voxel.clone());
    if s.channel_names.len() == stack.c() {
        stack.with_channel_names(s.channel_names.clone()).map_err(|e| NodeError::io(path, e.to_string()))
    } else {
        Ok(stack)
    }
}

/// Loads every file of a folder and stacks them along a new axis: Z if the files have none,
/// else T. Memory: the result plus one file at a time.
fn load_folder(files: &[PathBuf], opts: &LoadOptions, ctx: &NodeCtx) -> Result<Stack, NodeError> {
    let n = files.len();
    let quiet = NodeCtx::new(
        std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false)),
        std::sync::Arc::new(|_| {}),
        ctx.device,
        ctx.scratch_dir.clone(),
    );
    let first = load_file(&files[0], opts.series, "", &quiet)?;
    let file_lead: Vec<Axis> = first.axes().into_iter().filter(|a| !matches!(a, Axis::Y | Axis::X)).collect();
    let mut axis = if !first.has_axis(Axis::Z) {
        Axis::Z
    } else if !first.has_axis(Axis::T) {
        Axis::T
    } else {
        return Err(NodeError::io(&files[0], "the folder's images already have T and Z axes: cannot stack them"));
    };
    if !opts.axes.trim().is_empty() {
        let letters: Vec<Axis> = opts
            .axes
            .chars()
            .filter(|c| !c.is_whitespace() && *c != ',')
            .map(|c| Axis::from_letter(c).ok_or_else(|| NodeError::param("axes", format!("'{c}' is not an axis"))))
            .collect::<Result<_, _>>()?;
        let mut expect = vec![letters.first().copied().unwrap_or(Axis::Z)];
        expect.extend(file_lead.iter().copied());
        expect.extend([Axis::Y, Axis::X]);
        if letters != expect || file_lead.contains(&letters[0]) {
            let have: String = file_lead.iter().map(|a| a.letter()).collect();
            return Err(NodeError::param(
                "axes",
                format!(
                    "for a folder, name the axis the {n} files are stacked along followed by the files' own axes ({have}YX), e.g. 'T{have}YX'"
                ),
            ));
        }
        axis = letters[0];
    }
    let mut dims = first.dims();
    dims[axis.index()] = n;
    let mut axes = first.axes();
    axes.push(axis);
    let out = match first.dtype() {
        DType::U8 => {
            Buffer::U8(std::sync::Arc::new(stack_files::<u8>(files, first.clone(), axis, dims, opts, &quiet, ctx)?))
        }
        DType::U16 => {
            Buffer::U16(std::sync::Arc::new(stack_files::<u16>(files, first.clone(), axis, dims, opts, &quiet, ctx)?))
        }
        DType::U32 => {
            Buffer::U32(std::sync::Arc::new(stack_files::<u32>(files, first.clone(), axis, dims, opts, &quiet, ctx)?))
        }
        DType::F32 => {
            Buffer::F32(std::sync::Arc::new(stack_files::<f32>(files, first.clone(), axis, dims, opts, &quiet, ctx)?))
        }
    };
    let s = Stack::new(dims, &axes, out).map_err(|e| NodeError::failed(e.to_string()))?;
    let s = s.with_voxel_size(first.voxel_size().clone());
    if first.channel_names().len() == s.c() {
        s.with_channel_names(first.channel_names().to_vec()).map_err(|e| NodeError::failed(e.to_string()))
    } else {
        Ok(s)
    }
}

fn stack_files<P: Pixel + bytemuck::Pod>(
    files: &[PathBuf],
    first: Stack,
    axis: Axis,
    dims: [usize; 5],
    opts: &LoadOptions,
    quiet: &NodeCtx,
    ctx: &NodeCtx,
) -> Result<Vec<P>, NodeError> {
    let total: usize = dims.iter().product();
    let mut out: Vec<P> = try_zeroed_vec(total).map_err(|m| NodeError::io(&files[0], m))?;
    let plane = dims[3] * dims[4];
    let fd = first.dims();
    let n = files.len();
    let mut cur = Some(first);
    for (k, f) in files.iter().enumerate() {
        ctx.check_cancel()?;
        let s = match cur.take() {
            Some(s) => s,
            None => load_file(f, opts.series, "", quiet)?,
        };
        if s.dims() != fd || s.dtype() != P::DTYPE {
            return Err(NodeError::io(
                f,
                format!(
                    "is {} but {} is {}: all images of a folder must have the same shape and pixel type",
                    s.describe(),
                    files[0].file_name().map(|n| n.to_string_lossy().to_string()).unwrap_or_default(),
                    describe_dims(fd, P::DTYPE)
                ),
            ));
        }
        let px = s.pixels::<P>().ok_or_else(|| NodeError::failed("internal error: pixel type"))?;
        for t in 0..fd[0] {
            for c in 0..fd[1] {
                for z in 0..fd[2] {
                    let src = ((t * fd[1] + c) * fd[2] + z) * plane;
                    let (mut t2, mut c2, mut z2) = (t, c, z);
                    match axis {
                        Axis::T => t2 = k,
                        Axis::C => c2 = k,
                        _ => z2 = k,
                    }
                    let dst = ((t2 * dims[1] + c2) * dims[2] + z2) * plane;
                    out[dst..dst + plane].copy_from_slice(&px[src..src + plane]);
                }
            }
        }
        ctx.progress((k + 1) as f64 / n as f64, format!("read file {}/{n}", k + 1));
    }
    Ok(out)
}

fn describe_dims(d: [usize; 5], dt: DType) -> String {
    format!("T×C×Z×Y×X {}×{}×{}×{}×{} {dt}", d[0], d[1], d[2], d[3], d[4])
}

/// Every file of a Zarr folder, sorted (metadata and chunks).
fn zarr_files(root: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(d) = stack.pop() {
        if let Ok(rd) = std::fs::read_dir(&d) {
            for e in rd.flatten() {
                let p = e.path();
                if p.is_dir() {
                    stack.push(p);
                } else {
                    out.push(p);
                }
            }
        }
    }
    out.sort();
    out
}

/// Cache fingerprint of what the loader reads: blake3 over, for each file in reading order, its
/// name and the blake3 of its full content (streamed). Any edit, rename, addition or removal of
/// a matching file changes it.
pub fn fingerprint(path: &Path, pattern: &str) -> Result<Fingerprint, NodeError> {
    let src = resolve(path, pattern)?;
    let mut h = blake3::Hasher::new();
    h.update(b"petri-io/fingerprint/v1\0");
    let zarr = matches!(src, Source::Zarr(_));
    for f in src.files() {
        let name = f.file_name().map(|n| n.to_string_lossy().to_string()).unwrap_or_default();
        let name = if zarr { f.to_string_lossy().to_string() } else { name };
        h.update(&(name.len() as u64).to_le_bytes());
        h.update(name.as_bytes());
        let is_meta = name.ends_with(".json")
            || name.ends_with(".zattrs")
            || name.ends_with(".zarray")
            || name.ends_with(".zgroup");
        if zarr && !is_meta {
            // Zarr chunks (possibly millions, terabytes): size and modification time.
            let m = std::fs::metadata(&f).map_err(|e| open_error(&f, e))?;
            let mtime = m
                .modified()
                .ok()
                .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                .map(|d| d.as_nanos())
                .unwrap_or(0);
            h.update(&m.len().to_le_bytes());
            h.update(&mtime.to_le_bytes());
            continue;
        }
        let (hex, len) = petri_api::hash_file(&f).map_err(|e| open_error(&f, e))?;
        h.update(hex.as_bytes());
        h.update(&len.to_le_bytes());
    }
    Ok(*h.finalize().as_bytes())
}
