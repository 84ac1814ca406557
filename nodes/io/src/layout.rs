//! From a file's storage order to Petri's canonical T, C, Z, Y, X stack.
//!
//! A file stores a sequence of 2-D planes (TIFF pages) in some order of the non-spatial axes
//! (ImageJ: T, Z, C with C fastest; OME: its DimensionOrder), each plane possibly holding
//! several samples per pixel (RGB), which become channels. A [`Series`] describes that storage
//! order; [`Series::plan`] maps every stored plane to its destination plane in the canonical
//! buffer, so decoders write each plane exactly once, in place.

use petri_api::{Axis, DType, VoxelSize};

/// One image series as stored: which pages, in which axis order, with which calibration.
#[derive(Clone, Debug)]
pub struct Series {
    /// Page (IFD) indices in storage order.
    pub pages: Vec<usize>,
    /// Non-spatial axes of the page sequence, slowest first; the product of sizes equals
    /// `pages.len()`.
    pub page_axes: Vec<(Axis, usize)>,
    /// Samples per pixel (RGB = 3); they become channels.
    pub samples: usize,
    pub height: usize,
    pub width: usize,
    pub dtype: DType,
    pub voxel: VoxelSize,
    pub channel_names: Vec<String>,
    /// Axes declared present although of size 1 (from an axes override).
    pub declared: Vec<Axis>,
}

/// Where each stored plane goes.
pub struct Plan {
    /// Canonical T, C, Z, Y, X sizes.
    pub dims: [usize; 5],
    /// Meaningful axes.
    pub axes: Vec<Axis>,
    /// For each entry of `Series::pages`, the destination plane index of each sample.
    pub dests: Vec<Vec<usize>>,
}

impl Series {
    /// Size of an axis in the page sequence (1 if absent).
    fn size(&self, a: Axis) -> usize {
        self.page_axes.iter().filter(|(b, _)| *b == a).map(|(_, n)| *n).product()
    }

    /// "ZYX 60×256×256"-style description of the stored dimensions.
    pub fn describe(&self) -> String {
        let mut letters = String::new();
        let mut sizes = Vec::new();
        for &(a, n) in &self.page_axes {
            if n > 1 {
                letters.push(a.letter());
                sizes.push(n.to_string());
            }
        }
        letters.push_str("YX");
        sizes.push(self.height.to_string());
        sizes.push(self.width.to_string());
        if self.samples > 1 {
            letters.push('S');
            sizes.push(self.samples.to_string());
        }
        format!("{letters} {}", sizes.join("×"))
    }

    /// Applies a user's axes override such as "TYX" or "CZYX": the letters name the file's
    /// dimensions of size > 1 in storage order, followed by "YX".
    pub fn relabel(&mut self, axes: &str) -> Result<(), String> {
        let letters: Vec<char> =
            axes.chars().filter(|c| !c.is_whitespace() && *c != ',').map(|c| c.to_ascii_uppercase()).collect();
        if letters.is_empty() {
            return Ok(());
        }
        let mut parsed = Vec::new();
        for &c in &letters {
            let a = Axis::from_letter(c).ok_or_else(|| format!("'{c}' is not an axis (use T, C, Z, Y and X)"))?;
            if parsed.contains(&a) {
                return Err(format!("axis '{c}' appears twice in '{axes}'"));
            }
            parsed.push(a);
        }
        let n = parsed.len();
        if n < 2 || parsed[n - 2] != Axis::Y || parsed[n - 1] != Axis::X {
            return Err(format!("'{axes}' must end with YX (the plane axes)"));
        }
        let lead = &parsed[..n - 2];
        if self.samples > 1 && lead.contains(&Axis::C) {
            return Err(format!(
                "the file's {} colour samples per pixel are already its channels; '{axes}' cannot name another C",
                self.samples
            ));
        }
        let stored: Vec<usize> = self.page_axes.iter().filter(|(_, n)| *n > 1).map(|(_, n)| *n).collect();
        if stored.is_empty() {
            self.page_axes.clear();
        } else if stored.len() == lead.len() {
            self.page_axes = lead.iter().copied().zip(stored).collect();
        } else {
            return Err(format!(
                "'{axes}' names {} axes before YX but the file has {} ({})",
                lead.len(),
                stored.len(),
                self.describe()
            ));
        }
        self.declared = lead.to_vec();
        Ok(())
    }

    /// Destination plane (in canonical order) of every stored plane and sample.
    pub fn plan(&self) -> Result<Plan, String> {
        let t = self.size(Axis::T);
        let cp = self.size(Axis::C);
        let z = self.size(Axis::Z);
        let c = cp * self.samples;
        let total: usize = self.page_axes.iter().map(|(_, n)| *n).product();
        if total != self.pages.len() {
            return Err(format!(
                "the metadata describes {total} planes ({}) but the series has {} pages",
                self.describe(),
                self.pages.len()
            ));
        }
        let mut dests = Vec::with_capacity(self.pages.len());
        for k in 0..self.pages.len() {
            // Mixed-radix decomposition of k, last axis fastest.
            let (mut ti, mut ci, mut zi) = (0, 0, 0);
            let mut rem = k;
            for &(a, n) in self.page_axes.iter().rev() {
                let i = rem % n;
                rem /= n;
                match a {
                    Axis::T => ti = ti * n + i,
                    Axis::C => ci = ci * n + i,
                    Axis::Z => zi = zi * n + i,
                    _ => return Err("Y and X cannot be page axes".into()),
                }
            }
            dests.push((0..self.samples).map(|s| (ti * c + ci * self.samples + s) * z + zi).collect());
        }
        let mut axes: Vec<Axis> = self.page_axes.iter().filter(|(_, n)| *n > 1).map(|(a, _)| *a).collect();
        axes.extend(self.declared.iter().copied());
        if self.samples > 1 {
            axes.push(Axis::C);
        }
        axes.push(Axis::Y);
        axes.push(Axis::X);
        axes.sort();
        axes.dedup();
        Ok(Plan { dims: [t, c, z, self.height, self.width], axes, dests })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn series(page_axes: Vec<(Axis, usize)>, samples: usize) -> Series {
        let n = page_axes.iter().map(|p| p.1).product();
        Series {
            pages: (0..n).collect(),
            page_axes,
            samples,
            height: 2,
            width: 2,
            dtype: DType::U8,
            voxel: VoxelSize::default(),
            channel_names: vec![],
            declared: vec![],
        }
    }

    #[test]
    fn imagej_order_maps_to_canonical() {
        // ImageJ TZC, C fastest: page k = (t*Z + z)*C + c.
        let s = series(vec![(Axis::T, 2), (Axis::Z, 3), (Axis::C, 2)], 1);
        let p = s.plan().unwrap();
        assert_eq!(p.dims, [2, 2, 3, 2, 2]);
        // page 1 = t0 z0 c1 → canonical (t*C + c)*Z + z = (0*2+1)*3+0 = 3
        assert_eq!(p.dests[1], vec![3]);
        // page 7 = t1 z0 c1 → (1*2+1)*3+0 = 9
        assert_eq!(p.dests[7], vec![9]);
        let mut all: Vec<usize> = p.dests.iter().flatten().copied().collect();
        all.sort();
        assert_eq!(all, (0..12).collect::<Vec<_>>());
        assert_eq!(p.axes, vec![Axis::T, Axis::C, Axis::Z, Axis::Y, Axis::X]);
    }

    #[test]
    fn samples_become_channels() {
        let s = series(vec![(Axis::Z, 2)], 3);
        let p = s.plan().unwrap();
        assert_eq!(p.dims, [1, 3, 2, 2, 2]);
        assert_eq!(p.dests[1], vec![1, 3, 5]);
    }

    #[test]
    fn relabel_renames_stored_axes() {
        let mut s = series(vec![(Axis::Z, 5)], 1);
        s.relabel("tyx").unwrap();
        assert_eq!(s.plan().unwrap().dims, [5, 1, 1, 2, 2]);
        // Size-1 axes are skipped: the two stored axes become C (4, slow) and Z (2, fast).
        let mut s = series(vec![(Axis::T, 1), (Axis::Z, 4), (Axis::C, 2)], 1);
        s.relabel("CZYX").unwrap();
        let p = s.plan().unwrap();
        assert_eq!(p.dims, [1, 4, 2, 2, 2]);
        // page 1 = c0 z1 → (0)*2 + 1
        assert_eq!(p.dests[1], vec![1]);
        let mut s = series(vec![(Axis::Z, 4), (Axis::C, 2)], 1);
        s.relabel("CZYX").unwrap();
        assert_eq!(s.plan().unwrap().dims, [1, 4, 2, 2, 2]);
        assert!(s.clone().relabel("ZYX").unwrap_err().contains("names 1 axes"));
        assert!(series(vec![], 1).relabel("ZXY").is_err());
        assert!(series(vec![], 1).relabel("ZZYX").is_err());
        assert!(series(vec![], 1).relabel("QYX").is_err());
        let mut s = series(vec![], 1);
        s.relabel("ZYX").unwrap();
        assert_eq!(s.plan().unwrap().axes, vec![Axis::Z, Axis::Y, Axis::X]);
    }
}
