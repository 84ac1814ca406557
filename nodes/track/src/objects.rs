//! Per-frame objects: one pass over each frame of a label time-lapse gives every object's
//! pixel count, centroid (pixel indices and physical position), optional class and mean
//! intensity. Frames are independent and measured in parallel; integer sums make the result
//! independent of scheduling.

use petri_api::{NodeError, Pixel, Stack, with_pixels};
use rayon::prelude::*;
use rustc_hash::FxHashMap;

/// One labelled object in one frame.
#[derive(Clone, Debug, PartialEq)]
pub struct Obj {
    /// Its id in the input labels of that frame.
    pub label: u32,
    pub area: u64,
    /// Mean pixel index (z, y, x).
    pub centroid: [f64; 3],
    /// Centroid in physical units (centroid × voxel size).
    pub pos: [f64; 3],
    /// Most frequent class id under the object (0 without a class map).
    pub class: u32,
    /// Mean intensity of the first channel, if an image was given.
    pub intensity: Option<f64>,
}

#[derive(Default)]
struct Acc {
    n: u64,
    s: [u64; 3],
    isum: f64,
    classes: Vec<(u32, u64)>,
}

/// The objects of every frame, each frame sorted by label.
pub fn frame_objects(
    labels: &Stack,
    image: Option<&Stack>,
    classes: Option<&Stack>,
) -> Result<Vec<Vec<Obj>>, NodeError> {
    let lab = labels.pixels::<u32>().ok_or_else(|| NodeError::input("labels", "expected u32 labels"))?;
    if labels.c() != 1 {
        return Err(NodeError::input("labels", format!("labels have {} channels; track one channel", labels.c())));
    }
    let same = |s: &Stack| s.t() == labels.t() && s.zyx() == labels.zyx();
    if let Some(img) = image {
        if !same(img) {
            return Err(NodeError::input(
                "image",
                format!("image is {} but labels are {}: T, Z, Y and X must agree", img.describe(), labels.describe()),
            ));
        }
        img.check_finite().map_err(|e| NodeError::input("image", e))?;
    }
    let cls = match classes {
        Some(c) => {
            if !same(c) || c.c() != 1 {
                return Err(NodeError::input(
                    "classes",
                    format!(
                        "class map is {} but labels are {}: it must have the same shape",
                        c.describe(),
                        labels.describe()
                    ),
                ));
            }
            Some(c.pixels::<u32>().ok_or_else(|| NodeError::input("classes", "expected u32 labels"))?)
        }
        None => None,
    };
    let [_, ny, nx] = labels.zyx();
    let vlen = labels.volume_len();
    let vs = labels.voxel_size().zyx();
    let nc = image.map_or(1, |i| i.c());
    let objs = (0..labels.t())
        .into_par_iter()
        .map(|t| {
            let l = &lab[t * vlen..(t + 1) * vlen];
            let c = cls.map(|c| &c[t * vlen..(t + 1) * vlen]);
            match image {
                None => measure_frame::<u8>(l, None, c, ny, nx, vs),
                Some(img) => with_pixels!(img.buffer(), px => {
                    // First channel of frame t.
                    let o = t * nc * vlen;
                    measure_frame(l, Some(&px[o..o + vlen]), c, ny, nx, vs)
                }),
            }
        })
        .collect();
    Ok(objs)
}

fn measure_frame<P: Pixel>(
    lab: &[u32],
    img: Option<&[P]>,
    cls: Option<&[u32]>,
    ny: usize,
    nx: usize,
    vs: [f64; 3],
) -> Vec<Obj> {
    // Small ids (the usual case) index a table directly; others go through a hash map.
    let max = lab.iter().copied().max().unwrap_or(0) as usize;
    let dense = max < (1 << 16);
    let mut table: Vec<Acc> = if dense { (0..=max).map(|_| Acc::default()).collect() } else { Vec::new() };
    let mut map: FxHashMap<u32, Acc> = FxHashMap::default();
    for (r, row) in lab.chunks_exact(nx).enumerate() {
        let z = (r / ny) as u64;
        let y = (r % ny) as u64;
        let base = r * nx;
        let mut x0 = 0;
        while x0 < nx {
            let v = row[x0];
            let mut x1 = x0 + 1;
            while x1 < nx && row[x1] == v {
                x1 += 1;
            }
            if v != 0 {
                let a = if dense { &mut table[v as usize] } else { map.entry(v).or_default() };
                let len = (x1 - x0) as u64;
                a.n += len;
                a.s[0] += z * len;
                a.s[1] += y * len;
                a.s[2] += (x0 as u64 + x1 as u64 - 1) * len / 2;
                if let Some(img) = img {
                    a.isum += img[base + x0..base + x1].iter().map(|p| p.to_f64()).sum::<f64>();
                }
                if let Some(c) = cls {
                    for &k in &c[base + x0..base + x1] {
                        match a.classes.iter_mut().find(|e| e.0 == k) {
                            Some(e) => e.1 += 1,
                            None => a.classes.push((k, 1)),
                        }
                    }
                }
            }
            x0 = x1;
        }
    }
    let acc: Vec<(u32, Acc)> = if dense {
        table.into_iter().enumerate().filter(|(_, a)| a.n > 0).map(|(l, a)| (l as u32, a)).collect()
    } else {
        map.into_iter().collect()
    };
    let mut out: Vec<Obj> = acc
        .into_iter()
        .map(|(label, a)| {
            let n = a.n as f64;
            let centroid = [a.s[0] as f64 / n, a.s[1] as f64 / n, a.s[2] as f64 / n];
            // Majority class; ties go to the smaller class id.
            let class = a.classes.iter().max_by(|p, q| p.1.cmp(&q.1).then(q.0.cmp(&p.0))).map_or(0, |e| e.0);
            Obj {
                label,
                area: a.n,
                centroid,
                pos: [centroid[0] * vs[0], centroid[1] * vs[1], centroid[2] * vs[2]],
                class,
                intensity: img.map(|_| a.isum / n),
            }
        })
        .collect();
    out.sort_unstable_by_key(|o| o.label);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use petri_api::{Axis, VoxelSize};

    #[test]
    fn centroids_areas_classes() {
        // T=2 of 2×4: frame 0 has objects 3 (3 px) and 9 (1 px).
        let lab: Vec<u32> = vec![3, 3, 0, 9, 3, 0, 0, 0, 0, 0, 0, 0, 0, 0, 5, 5];
        let s = Stack::new([2, 1, 1, 2, 4], &[Axis::T], u32::into_buffer(lab)).unwrap().with_voxel_size(VoxelSize {
            y: 2.0,
            x: 0.5,
            ..VoxelSize::default()
        });
        let cls: Vec<u32> = vec![1, 2, 0, 4, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 7, 7];
        let c = s.with_pixels(cls).unwrap();
        let o = frame_objects(&s, None, Some(&c)).unwrap();
        assert_eq!(o[0].len(), 2);
        assert_eq!((o[0][0].label, o[0][0].area, o[0][0].class), (3, 3, 2));
        assert_eq!(o[0][0].centroid, [0.0, 1.0 / 3.0, 1.0 / 3.0]);
        assert_eq!(o[0][0].pos, [0.0, 2.0 / 3.0, 0.5 / 3.0]);
        assert_eq!((o[0][1].label, o[0][1].class), (9, 4));
        assert_eq!((o[1][0].label, o[1][0].centroid[2], o[1][0].class), (5, 2.5, 7));
        let bad = Stack::from_2d::<u32>(2, 4, vec![0; 8]).unwrap();
        assert!(frame_objects(&s, None, Some(&bad)).unwrap_err().to_string().contains("input 'classes'"));
    }
}
