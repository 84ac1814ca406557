//! OME-Zarr (NGFF 0.4 on Zarr v2, 0.5 on Zarr v3) through `zarrs`: level 0 of a multiscale
//! image with its axes and scale, whole or as a sub-region read without loading the rest
//! ([`ZarrImage::read_region`], the streaming entry point for later nodes), and writing with an
//! optional 2× pyramid.
//!
//! The NGFF `multiscales` metadata is a few JSON fields; it is read with `serde_json` directly.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use petri_api::{Axis, Buffer, DType, NodeError, Pixel, Stack, VoxelSize};
use serde_json::{Value as Json, json};
use zarrs::array::{Array, ArraySubset, data_type};
use zarrs::filesystem::FilesystemStore;
use zarrs::storage::ReadableStorageTraits;

use crate::util::try_zeroed_vec;

/// Whether `path` is an OME-Zarr (or plain Zarr) folder.
pub fn is_zarr(path: &Path) -> bool {
    path.is_dir()
        && (path.join(".zattrs").is_file() || path.join("zarr.json").is_file() || path.join(".zgroup").is_file())
}

/// An opened OME-Zarr image: level 0 and how its dimensions map to Petri's axes.
pub struct ZarrImage {
    pub path: PathBuf,
    array: Array<FilesystemStore>,
    store: Arc<FilesystemStore>,
    /// For each array dimension, its axis.
    axes: Vec<Axis>,
    /// Array shape.
    pub shape: Vec<u64>,
    pub dtype: DType,
    pub voxel: VoxelSize,
}

fn err(path: &Path, m: impl std::fmt::Display) -> NodeError {
    NodeError::io(path, m)
}

fn read_json(p: &Path) -> Option<Json> {
    serde_json::from_str(&std::fs::read_to_string(p).ok()?).ok()
}

fn unit_to_micron(u: &str) -> Option<f64> {
    Some(match u {
        "micrometer" | "micron" | "um" | "µm" => 1.0,
        "nanometer" | "nm" => 1e-3,
        "millimeter" | "mm" => 1e3,
        "centimeter" | "cm" => 1e4,
        "meter" | "m" => 1e6,
        "angstrom" => 1e-4,
        _ => return None,
    })
}

impl ZarrImage {
    /// Opens level 0 of the first multiscale image (NGFF 0.4 or 0.5), or a bare array.
    pub fn open(path: &Path) -> Result<ZarrImage, NodeError> {
        let attrs = read_json(&path.join("zarr.json"))
            .and_then(|j| j.get("attributes").cloned())
            .map(|a| a.get("ome").cloned().unwrap_or(a))
            .or_else(|| read_json(&path.join(".zattrs")))
            .unwrap_or(Json::Null);
        let ms = attrs.get("multiscales").and_then(|m| m.get(0)).cloned();
        let store =
            Arc::new(FilesystemStore::new(path).map_err(|e| err(path, format!("cannot open the Zarr store: {e}")))?);
        let (array_path, names, scale, units) = match &ms {
            Some(ms) => {
                let axes = ms.get("axes").and_then(Json::as_array).cloned().unwrap_or_default();
                let names: Vec<String> = axes
                    .iter()
                    .map(|a| a.get("name").and_then(Json::as_str).or_else(|| a.as_str()).unwrap_or("").to_lowercase())
                    .collect();
                let units: Vec<Option<String>> =
                    axes.iter().map(|a| a.get("unit").and_then(Json::as_str).map(str::to_string)).collect();
                let ds = ms
                    .get("datasets")
                    .and_then(|d| d.get(0))
                    .ok_or_else(|| err(path, "OME-Zarr metadata lists no datasets"))?;
                let p = ds.get("path").and_then(Json::as_str).ok_or_else(|| err(path, "dataset without a path"))?;
                let mut scale = vec![1.0f64; names.len()];
                let mut apply = |t: Option<&Json>| {
                    for tr in t.and_then(Json::as_array).into_iter().flatten() {
                        if tr.get("type").and_then(Json::as_str) == Some("scale")
                            && let Some(s) = tr.get("scale").and_then(Json::as_array)
                            && s.len() == scale.len()
                        {
                            for (k, v) in s.iter().enumerate() {
                                scale[k] *= v.as_f64().unwrap_or(1.0);
                            }
                        }
                    }
                };
                apply(ds.get("coordinateTransformations"));
                apply(ms.get("coordinateTransformations"));
                (format!("/{}", p.trim_matches('/')), names, scale, units)
            }
            None => ("/".to_string(), vec![], vec![], vec![]),
        };
        let array = Array::open(store.clone(), &array_path)
            .map_err(|e| err(path, format!("cannot open the Zarr array '{array_path}': {e}")))?;
        let shape = array.shape().to_vec();
        let nd = shape.len();
        let names = if names.len() == nd {
            names
        } else {
            // Bare array: the last dimensions are Z, Y, X, then C and T before them.
            ["t", "c", "z", "y", "x"][5usize.saturating_sub(nd)..].iter().map(|s| s.to_string()).collect()
        };
        if nd > 5 || names.len() != nd {
            return Err(err(path, format!("unsupported Zarr array with {nd} dimensions")));
        }
        let mut axes = Vec::with_capacity(nd);
        for n in &names {
            let a = Axis::from_letter(n.chars().next().unwrap_or('?'))
                .filter(|_| n.len() == 1)
                .ok_or_else(|| err(path, format!("unsupported axis name '{n}' (expected t, c, z, y, x)")))?;
            if axes.contains(&a) {
                return Err(err(path, format!("axis '{n}' appears twice")));
            }
            axes.push(a);
        }
        let dt = array.data_type();
        let dtype = if *dt == data_type::uint8() {
            DType::U8
        } else if *dt == data_type::uint16() {
            DType::U16
        } else if *dt == data_type::uint32() {
            DType::U32
        } else if *dt == data_type::float32() {
            DType::F32
        } else {
            return Err(err(
                path,
                format!("unsupported Zarr data type {dt:?} (Petri reads uint8, uint16, uint32, float32)"),
            ));
        };
        let mut voxel = VoxelSize::default();
        for (k, a) in axes.iter().enumerate() {
            let s = scale.get(k).copied().unwrap_or(1.0);
            let u = units.get(k).cloned().flatten();
            let f = u.as_deref().and_then(unit_to_micron);
            let v = f.map(|f| s * f).unwrap_or(s);
            match a {
                Axis::X => voxel.x = v,
                Axis::Y => voxel.y = v,
                Axis::Z => voxel.z = v,
                Axis::T => {
                    if u.is_some() || s != 1.0 {
                        voxel.t = Some(s);
                        voxel.t_unit = u.clone();
                    }
                }
                Axis::C => {}
            }
            if matches!(a, Axis::X | Axis::Y) && f.is_some() {
                voxel.unit = "micron".into();
            }
        }
        Ok(ZarrImage { path: path.to_path_buf(), array, store, axes, shape, dtype, voxel })
    }

    /// Reads the whole of level 0.
    pub fn read(&self) -> Result<Stack, NodeError> {
        let ranges: Vec<std::ops::Range<u64>> = self.shape.iter().map(|&n| 0..n).collect();
        self.read_region(&ranges)
    }

    /// Reads a sub-region (one range per array dimension, in the array's order) as a stack;
    /// only the chunks it touches are read. Every touched chunk must exist: a missing chunk is
    /// an error, not silently the fill value.
    pub fn read_region(&self, ranges: &[std::ops::Range<u64>]) -> Result<Stack, NodeError> {
        let path = &self.path;
        if ranges.len() != self.shape.len()
            || ranges.iter().zip(&self.shape).any(|(r, &n)| r.start >= r.end || r.end > n)
        {
            return Err(err(path, format!("region {ranges:?} is outside the array of shape {:?}", self.shape)));
        }
        let subset = ArraySubset::new_with_ranges(ranges);
        let chunks = self
            .array
            .chunks_in_array_subset(&subset)
            .map_err(|e| err(path, e))?
            .ok_or_else(|| err(path, "cannot determine the chunks"))?;
        let n_chunks = chunks.num_elements();
        if n_chunks > 10_000_000 {
            return Err(err(path, format!("the region spans {n_chunks} chunks: too many")));
        }
        for idx in chunks.indices().iter() {
            let key = self.array.chunk_key(&idx);
            match self.store.size_key(&key) {
                Ok(Some(_)) => {}
                Ok(None) => return Err(err(path, format!("missing chunk '{key}' (the Zarr is incomplete)"))),
                Err(e) => return Err(err(path, format!("cannot read chunk '{key}': {e}"))),
            }
        }
        let shape: Vec<usize> = ranges.iter().map(|r| (r.end - r.start) as usize).collect();
        let mut dims = [1usize; 5];
        for (k, a) in self.axes.iter().enumerate() {
            dims[a.index()] = shape[k];
        }
        fn get<P: Pixel + bytemuck::Pod + zarrs::array::ElementOwned>(
            img: &ZarrImage,
            subset: &ArraySubset,
            shape: &[usize],
            dims: [usize; 5],
        ) -> Result<Vec<P>, NodeError> {
            let raw: Vec<P> = img.array.retrieve_array_subset(subset).map_err(|e| err(&img.path, e))?;
            // Reorder the array's dimension order to T, C, Z, Y, X.
            let total: usize = shape.iter().product();
            let mut out: Vec<P> = try_zeroed_vec(total).map_err(|m| err(&img.path, m))?;
            let strides_out =
                [dims[1] * dims[2] * dims[3] * dims[4], dims[2] * dims[3] * dims[4], dims[3] * dims[4], dims[4], 1];
            let nd = shape.len();
            let mut idx = vec![0usize; nd];
            for &v in raw.iter() {
                let mut o = 0;
                for k in 0..nd {
                    o += idx[k] * strides_out[img.axes[k].index()];
                }
                out[o] = v;
                for k in (0..nd).rev() {
                    idx[k] += 1;
                    if idx[k] < shape[k] {
                        break;
                    }
                    idx[k] = 0;
                }
            }
            Ok(out)
        }
        let buf = match self.dtype {
            DType::U8 => u8::into_buffer(get::<u8>(self, &subset, &shape, dims)?),
            DType::U16 => u16::into_buffer(get::<u16>(self, &subset, &shape, dims)?),
            DType::U32 => u32::into_buffer(get::<u32>(self, &subset, &shape, dims)?),
            DType::F32 => f32::into_buffer(get::<f32>(self, &subset, &shape, dims)?),
        };
        let s = Stack::new(dims, &self.axes, buf).map_err(|e| err(path, e))?;
        Ok(s.with_voxel_size(self.voxel.clone()))
    }
}

/// Writes `stack` as OME-Zarr (NGFF 0.5, Zarr v3, zstd-compressed chunks) with `levels`
/// resolution levels (each halves Y and X: mean for images, every other pixel for labels and
/// masks). Written into a temporary folder beside `path`, then renamed into place.
pub fn save_zarr(stack: &Stack, path: &Path, levels: usize, nearest: bool) -> Result<(), NodeError> {
    let parent = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    std::fs::create_dir_all(parent).map_err(|e| err(path, format!("cannot create the folder: {e}")))?;
    let name = path.file_name().map(|n| n.to_string_lossy().to_string()).unwrap_or_default();
    let tmp = tempfile::Builder::new()
        .prefix(&format!(".{name}."))
        .tempdir_in(parent)
        .map_err(|e| err(path, format!("cannot create a temporary folder: {e}")))?;
    write_zarr(stack, tmp.path(), levels.max(1), nearest).map_err(|m| err(path, m))?;
    if path.exists() {
        if !is_zarr(path) {
            return Err(err(path, "exists and is not a Zarr folder; not overwriting it"));
        }
        std::fs::remove_dir_all(path).map_err(|e| err(path, format!("cannot replace the old Zarr: {e}")))?;
    }
    let tmp_path = tmp.keep();
    std::fs::rename(&tmp_path, path).map_err(|e| {
        let _ = std::fs::remove_dir_all(&tmp_path);
        err(path, format!("cannot move the Zarr into place: {e}"))
    })
}

fn downsample<P: Pixel>(v: &[P], dims: [usize; 5], nearest: bool) -> (Vec<P>, [usize; 5]) {
    let [t, c, z, y, x] = dims;
    let (y2, x2) = (y.div_ceil(2), x.div_ceil(2));
    let mut out = Vec::with_capacity(t * c * z * y2 * x2);
    for plane in v.chunks(y * x) {
        for yy in 0..y2 {
            for xx in 0..x2 {
                if nearest {
                    out.push(plane[2 * yy * x + 2 * xx]);
                } else {
                    let mut s = 0.0;
                    let mut n = 0.0;
                    for dy in 0..2 {
                        for dx in 0..2 {
                            let (py, px) = (2 * yy + dy, 2 * xx + dx);
                            if py < y && px < x {
                                s += plane[py * x + px].to_f64();
                                n += 1.0;
                            }
                        }
                    }
                    out.push(P::from_f64(s / n));
                }
            }
        }
    }
    (out, [t, c, z, y2, x2])
}

fn write_zarr(stack: &Stack, dir: &Path, levels: usize, nearest: bool) -> Result<(), String> {
    let store = Arc::new(FilesystemStore::new(dir).map_err(|e| e.to_string())?);
    let axes = stack.axes();
    let vs = stack.voxel_size();
    let calibrated = vs.unit != "pixel";
    let axes_json: Vec<Json> = axes
        .iter()
        .map(|a| match a {
            Axis::T => json!({"name": "t", "type": "time"}),
            Axis::C => json!({"name": "c", "type": "channel"}),
            a => {
                let n = a.letter().to_ascii_lowercase().to_string();
                if calibrated {
                    json!({"name": n, "type": "space", "unit": "micrometer"})
                } else {
                    json!({"name": n, "type": "space"})
                }
            }
        })
        .collect();
    let scale_of = |a: Axis, f: f64| match a {
        Axis::X => vs.x * f,
        Axis::Y => vs.y * f,
        Axis::Z => vs.z,
        Axis::T => vs.t.unwrap_or(1.0),
        Axis::C => 1.0,
    };
    let mut datasets = Vec::new();
    for l in 0..levels {
        let f = (1u64 << l) as f64;
        datasets.push(json!({"path": l.to_string(), "coordinateTransformations": [
            {"type": "scale", "scale": axes.iter().map(|&a| scale_of(a, f)).collect::<Vec<_>>()}]}));
    }
    let attrs =
        json!({"ome": {"version": "0.5", "multiscales": [{"name": "image", "axes": axes_json, "datasets": datasets}]}});
    let mut group = zarrs::group::GroupBuilder::new().build(store.clone(), "/").map_err(|e| e.to_string())?;
    if let Json::Object(m) = attrs {
        *group.attributes_mut() = m;
    }
    group.store_metadata().map_err(|e| e.to_string())?;
    fn level<P: Pixel + bytemuck::Pod + zarrs::array::Element>(
        store: &Arc<FilesystemStore>,
        l: usize,
        axes: &[Axis],
        data: &[P],
        dims: [usize; 5],
        dt: zarrs::array::DataType,
        fill: zarrs::array::FillValue,
    ) -> Result<(), String> {
        let shape: Vec<u64> = axes.iter().map(|a| dims[a.index()] as u64).collect();
        let chunk: Vec<u64> = axes
            .iter()
            .map(|a| match a {
                Axis::Y | Axis::X => (dims[a.index()] as u64).clamp(1, 512),
                Axis::Z => (dims[a.index()] as u64).clamp(1, 16),
                _ => 1,
            })
            .collect();
        let names: Vec<String> = axes.iter().map(|a| a.letter().to_ascii_lowercase().to_string()).collect();
        let array = zarrs::array::ArrayBuilder::new(shape.clone(), chunk, dt, fill)
            .bytes_to_bytes_codecs(vec![Arc::new(zarrs::array::codec::ZstdCodec::new(3, false))])
            .dimension_names(Some(names))
            .build(store.clone(), &format!("/{l}"))
            .map_err(|e| e.to_string())?;
        array.store_metadata().map_err(|e| e.to_string())?;
        let subset = ArraySubset::new_with_shape(shape);
        array.store_array_subset(&subset, data).map_err(|e| e.to_string())
    }
    let mut dims = stack.dims();
    macro_rules! go {
        ($t:ty, $dt:expr, $fill:expr) => {{
            let mut data: Vec<$t> = stack.pixels::<$t>().ok_or("pixel type")?.to_vec();
            for l in 0..levels {
                level::<$t>(&store, l, &axes, &data, dims, $dt, $fill)?;
                if l + 1 < levels {
                    let (d, nd) = downsample(&data, dims, nearest);
                    data = d;
                    dims = nd;
                }
            }
        }};
    }
    match stack.buffer() {
        Buffer::U8(_) => go!(u8, data_type::uint8(), zarrs::array::FillValue::from(0u8)),
        Buffer::U16(_) => go!(u16, data_type::uint16(), zarrs::array::FillValue::from(0u16)),
        Buffer::U32(_) => go!(u32, data_type::uint32(), zarrs::array::FillValue::from(0u32)),
        Buffer::F32(_) => go!(f32, data_type::float32(), zarrs::array::FillValue::from(0f32)),
    }
    Ok(())
}
