//! Byte form of a `Value`, for the engine's disk cache.
//!
//! Layout: the magic `PETRIV01`, a little-endian u64 header length, a JSON header (kind,
//! geometry, calibration, column names), then raw little-endian payload. Written by hand
//! rather than with a generic serializer so pixels are copied once, without per-element
//! overhead, and so a stored entry is readable without Petri's Rust types.

use std::path::PathBuf;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::stack::{Axis, Buffer, DType, Stack, VoxelSize};
use crate::table::{ColumnData, Table};
use crate::value::{Dataset, FileRef, Model, Value};

const MAGIC: &[u8; 8] = b"PETRIV01";

#[derive(Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
enum Header {
    Image(StackHeader),
    Mask(StackHeader),
    Labels(StackHeader),
    Table { columns: Vec<ColumnHeader> },
    File { path: PathBuf, blake3: String, bytes: u64 },
    Tracks { columns: Vec<ColumnHeader> },
    Dataset { spec: String, images: Vec<StackHeader>, targets: Vec<StackHeader> },
    Model { config: String, weights: usize },
}

#[derive(Serialize, Deserialize)]
struct StackHeader {
    dims: [usize; 5],
    axes: Vec<Axis>,
    dtype: DType,
    voxel: VoxelSize,
    channels: Vec<String>,
}

#[derive(Serialize, Deserialize)]
struct ColumnHeader {
    name: String,
    /// "f64" or "i64" (payload: rows × 8 bytes) or "str" (values in `strings`).
    ty: String,
    rows: usize,
    #[serde(default)]
    strings: Vec<String>,
}

impl Value {
    /// Serialises the value (see the module docs for the layout).
    pub fn encode(&self) -> Vec<u8> {
        let mut payload: Vec<u8> = Vec::new();
        let header = match self {
            Value::Image(s) => Header::Image(stack_header(s, &mut payload)),
            Value::Mask(s) => Header::Mask(stack_header(s, &mut payload)),
            Value::Labels(s) => Header::Labels(stack_header(s, &mut payload)),
            Value::Table(t) => Header::Table { columns: table_header(t, &mut payload) },
            Value::Tracks(t) => Header::Tracks { columns: table_header(t, &mut payload) },
            Value::Dataset(d) => Header::Dataset {
                spec: d.spec.clone(),
                images: d.images.iter().map(|s| stack_header(s, &mut payload)).collect(),
                targets: d.targets.iter().map(|s| stack_header(s, &mut payload)).collect(),
            },
            Value::Model(m) => {
                payload.extend_from_slice(&m.weights);
                Header::Model { config: m.config.clone(), weights: m.weights.len() }
            }
            Value::File(f) => Header::File { path: f.path.clone(), blake3: f.blake3.clone(), bytes: f.bytes },
        };
        // Serialising plain data structs to JSON cannot fail.
        let h = serde_json::to_vec(&header).unwrap_or_default();
        let mut out = Vec::with_capacity(16 + h.len() + payload.len());
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&(h.len() as u64).to_le_bytes());
        out.extend_from_slice(&h);
        out.extend_from_slice(&payload);
        out
    }
}

fn table_header(t: &Table, payload: &mut Vec<u8>) -> Vec<ColumnHeader> {
    t.columns()
        .iter()
        .map(|c| match &c.data {
            ColumnData::F64(v) => {
                v.iter().for_each(|x| payload.extend_from_slice(&x.to_le_bytes()));
                ColumnHeader { name: c.name.clone(), ty: "f64".into(), rows: v.len(), strings: vec![] }
            }
            ColumnData::I64(v) => {
                v.iter().for_each(|x| payload.extend_from_slice(&x.to_le_bytes()));
                ColumnHeader { name: c.name.clone(), ty: "i64".into(), rows: v.len(), strings: vec![] }
            }
            ColumnData::Str(v) => {
                ColumnHeader { name: c.name.clone(), ty: "str".into(), rows: v.len(), strings: v.clone() }
            }
        })
        .collect()
}

impl Value {
    /// Reads what [`Value::encode`] wrote. Never trusts sizes: every length is checked against
    /// the bytes actually present before anything is allocated.
    pub fn decode(bytes: &[u8]) -> Result<Value, String> {
        if bytes.len() < 16 || &bytes[..8] != MAGIC {
            return Err("not a Petri value (bad magic)".into());
        }
        let hlen = u64::from_le_bytes(bytes[8..16].try_into().map_err(|_| "short header")?) as usize;
        let rest = &bytes[16..];
        if hlen > rest.len() {
            return Err("truncated header".into());
        }
        let header: Header = serde_json::from_slice(&rest[..hlen]).map_err(|e| format!("bad header: {e}"))?;
        let mut cur = Cursor { bytes: &rest[hlen..], off: 0 };
        let v = match header {
            Header::Image(h) => Value::Image(read_stack(h, &mut cur)?),
            Header::Mask(h) => Value::Mask(read_stack(h, &mut cur)?),
            Header::Labels(h) => Value::Labels(read_stack(h, &mut cur)?),
            Header::Table { columns } => Value::Table(Arc::new(read_table(columns, &mut cur)?)),
            Header::Tracks { columns } => Value::Tracks(Arc::new(read_table(columns, &mut cur)?)),
            Header::Dataset { spec, images, targets } => {
                let images = images.into_iter().map(|h| read_stack(h, &mut cur)).collect::<Result<Vec<_>, _>>()?;
                let targets = targets.into_iter().map(|h| read_stack(h, &mut cur)).collect::<Result<Vec<_>, _>>()?;
                Value::Dataset(Arc::new(Dataset { spec, images, targets }))
            }
            Header::Model { config, weights } => {
                Value::Model(Arc::new(Model { config, weights: Arc::new(cur.take(weights)?.to_vec()) }))
            }
            Header::File { path, blake3, bytes } => Value::File(Arc::new(FileRef { path, blake3, bytes })),
        };
        if cur.off != cur.bytes.len() {
            return Err(format!("{} trailing bytes", cur.bytes.len() - cur.off));
        }
        Ok(v)
    }
}

/// Reads consecutive payload sections, checking each length before slicing.
struct Cursor<'a> {
    bytes: &'a [u8],
    off: usize,
}

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], String> {
        let end = self.off.checked_add(n).ok_or("length overflows")?;
        let s = self
            .bytes
            .get(self.off..end)
            .ok_or_else(|| format!("truncated: {n} bytes wanted at offset {}", self.off))?;
        self.off = end;
        Ok(s)
    }
}

fn words<const N: usize>(p: &[u8]) -> impl Iterator<Item = [u8; N]> + '_ {
    p.chunks_exact(N).map(|b| {
        let mut a = [0u8; N];
        a.copy_from_slice(b);
        a
    })
}

fn read_table(columns: Vec<ColumnHeader>, cur: &mut Cursor) -> Result<Table, String> {
    let mut t = Table::new();
    for c in columns {
        let data = match c.ty.as_str() {
            "f64" => ColumnData::F64(
                words::<8>(cur.take(c.rows.checked_mul(8).ok_or("column too long")?)?)
                    .map(f64::from_le_bytes)
                    .collect(),
            ),
            "i64" => ColumnData::I64(
                words::<8>(cur.take(c.rows.checked_mul(8).ok_or("column too long")?)?)
                    .map(i64::from_le_bytes)
                    .collect(),
            ),
            "str" if c.strings.len() == c.rows => ColumnData::Str(c.strings),
            other => return Err(format!("bad column type '{other}'")),
        };
        t.push(c.name, data)?;
    }
    Ok(t)
}

fn stack_header(s: &Stack, payload: &mut Vec<u8>) -> StackHeader {
    payload.reserve(s.len() * s.dtype().size());
    match s.buffer() {
        Buffer::U8(v) => payload.extend_from_slice(v),
        Buffer::U16(v) => v.iter().for_each(|x| payload.extend_from_slice(&x.to_le_bytes())),
        Buffer::U32(v) => v.iter().for_each(|x| payload.extend_from_slice(&x.to_le_bytes())),
        Buffer::F32(v) => v.iter().for_each(|x| payload.extend_from_slice(&x.to_le_bytes())),
    }
    StackHeader {
        dims: s.dims(),
        axes: s.axes(),
        dtype: s.dtype(),
        voxel: s.voxel_size().clone(),
        channels: s.channel_names().to_vec(),
    }
}

fn read_stack(h: StackHeader, cur: &mut Cursor) -> Result<Stack, String> {
    let n = h.dims.iter().try_fold(1usize, |a, &d| a.checked_mul(d)).ok_or("shape overflows")?;
    let nbytes = n.checked_mul(h.dtype.size()).ok_or("shape overflows")?;
    let payload = cur.take(nbytes).map_err(|_| format!("payload too short for shape {:?} {}", h.dims, h.dtype))?;
    let data = match h.dtype {
        DType::U8 => Buffer::U8(Arc::new(payload.to_vec())),
        DType::U16 => Buffer::U16(Arc::new(words::<2>(payload).map(u16::from_le_bytes).collect())),
        DType::U32 => Buffer::U32(Arc::new(words::<4>(payload).map(u32::from_le_bytes).collect())),
        DType::F32 => Buffer::F32(Arc::new(words::<4>(payload).map(f32::from_le_bytes).collect())),
    };
    let s = Stack::new(h.dims, &h.axes, data).map_err(|e| e.to_string())?.with_voxel_size(h.voxel);
    s.with_channel_names(h.channels).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stack::Pixel;

    #[test]
    fn values_round_trip() {
        let s =
            Stack::new([1, 2, 1, 2, 2], &[Axis::C], f32::into_buffer(vec![0.5, -1.0, f32::NAN, 3.0, 1., 2., 3., 4.]))
                .unwrap()
                .with_voxel_size(VoxelSize { z: 2.0, y: 0.5, x: 0.5, unit: "micron".into(), t: None, t_unit: None })
                .with_channel_names(vec!["dapi".into(), "gfp".into()])
                .unwrap();
        let back = Value::decode(&Value::Image(s.clone()).encode()).unwrap();
        let Value::Image(b) = back else { panic!("kind changed") };
        assert_eq!(b.dims(), s.dims());
        assert_eq!(b.axes_string(), "CYX");
        assert_eq!(b.voxel_size(), s.voxel_size());
        assert_eq!(b.channel_names(), s.channel_names());
        let (x, y) = (b.pixels::<f32>().unwrap(), s.pixels::<f32>().unwrap());
        assert!(x.iter().zip(y).all(|(a, b)| a.to_bits() == b.to_bits()));

        let mut t = Table::new();
        t.push("label", ColumnData::I64(vec![1, 2])).unwrap();
        t.push("area", ColumnData::F64(vec![3.5, f64::NAN])).unwrap();
        t.push("name", ColumnData::Str(vec!["a".into(), "b,c".into()])).unwrap();
        let Value::Table(tb) = Value::decode(&Value::Table(Arc::new(t.clone())).encode()).unwrap() else { panic!() };
        assert_eq!(tb.column("label"), t.column("label"));
        assert_eq!(tb.column("name"), t.column("name"));
        assert!(matches!(tb.column("area"), Some(ColumnData::F64(v)) if v[0] == 3.5 && v[1].is_nan()));
    }

    #[test]
    fn datasets_and_models_round_trip() {
        let a = Stack::from_2d(2, 2, vec![1u16, 2, 3, 4]).unwrap();
        let b = a.with_pixels(vec![0u32, 1, 1, 0]).unwrap();
        let d = Value::Dataset(Arc::new(Dataset {
            spec: "(patch: 2)".into(),
            images: vec![a.clone(), a],
            targets: vec![b.clone(), b],
        }));
        let Value::Dataset(back) = Value::decode(&d.encode()).unwrap() else { panic!() };
        assert_eq!(back.spec, "(patch: 2)");
        assert_eq!(back.targets[1].pixels::<u32>().unwrap(), &[0, 1, 1, 0]);
        let m = Value::Model(Arc::new(Model { config: "()".into(), weights: Arc::new(vec![7; 10]) }));
        let Value::Model(back) = Value::decode(&m.encode()).unwrap() else { panic!() };
        assert_eq!(*back.weights, vec![7; 10]);
    }

    #[test]
    fn corrupt_bytes_are_refused() {
        let s = Stack::from_2d(2, 2, vec![1u16, 2, 3, 4]).unwrap();
        let mut enc = Value::Labels(s.with_pixels(vec![1u32, 2, 3, 4]).unwrap()).encode();
        assert!(Value::decode(&enc[..enc.len() - 1]).is_err());
        assert!(Value::decode(&enc[..10]).is_err());
        enc[0] = b'X';
        assert!(Value::decode(&enc).is_err());
        // A header that claims a huge shape must not allocate.
        let h = br#"{"kind":"image","dims":[100000,100000,100000,1,1],"axes":[],"dtype":"f32","voxel":{"z":1,"y":1,"x":1,"unit":"p","t":null,"t_unit":null},"channels":[]}"#;
        let mut b = MAGIC.to_vec();
        b.extend_from_slice(&(h.len() as u64).to_le_bytes());
        b.extend_from_slice(h);
        assert!(Value::decode(&b).is_err());
    }
}
