//! `measure.regions`: one row per labelled object (and per time point), with the columns of
//! scikit-image's `regionprops_table`.
//!
//! Conventions (scikit-image 0.26): coordinates are pixel indices in array axis order
//! (2-D: `centroid-0` = y, `centroid-1` = x; 3-D: z, y, x); `bbox-0..` are the minima
//! (inclusive) then the maxima (exclusive); `area` is the pixel (voxel) count.

use petri_api::{
    ColumnData, Inputs, Node, NodeCtx, NodeError, NodeSpec, Outputs, Params, PortType, Stack, Table, Value, with_pixels,
};

use crate::accum::{VolumeStats, accumulate};

/// Measures every labelled object of every time point.
///
/// `labels` is T×Z×Y×X (one channel); `image`, if given, must have the same T, Z, Y and X and
/// may have several channels (columns are then suffixed `-0`, `-1`, ... as in scikit-image).
/// All-zero labels give a table with the usual columns and no rows.
pub fn regions(labels: &Stack, image: Option<&Stack>) -> Result<Table, NodeError> {
    let lab = labels.pixels::<u32>().ok_or_else(|| NodeError::input("labels", "expected u32 labels"))?;
    if labels.c() != 1 {
        return Err(NodeError::input(
            "labels",
            format!("labels have {} channels; measure one channel at a time", labels.c()),
        ));
    }
    if let Some(img) = image {
        let (li, ii) = (labels.dims(), img.dims());
        if li[0] != ii[0] || li[2..] != ii[2..] {
            return Err(NodeError::input(
                "image",
                format!(
                    "image is {} but labels are {}: they must have the same T, Z, Y and X",
                    img.describe(),
                    labels.describe()
                ),
            ));
        }
        img.check_finite().map_err(|e| NodeError::input("image", e))?;
    }
    let shape = labels.zyx();
    let nt = labels.t();
    let vlen = labels.volume_len();
    let nc = image.map_or(0, |i| i.c());

    let frames: Vec<VolumeStats> = (0..nt)
        .map(|t| {
            let l = &lab[t * vlen..(t + 1) * vlen];
            match image {
                None => accumulate::<u8>(l, shape, &[]),
                Some(img) => with_pixels!(img.buffer(), px => {
                    let chans: Vec<_> = (0..nc).map(|c| { let o = (t * nc + c) * vlen; &px[o..o + vlen] }).collect();
                    accumulate(l, shape, &chans)
                }),
            }
        })
        .collect();

    let three_d = labels.is_3d();
    let axes: &[usize] = if three_d { &[0, 1, 2] } else { &[1, 2] };
    let rows: usize = frames.iter().map(|f| f.ids.len()).sum();
    let mut t = Table::new();
    let push = |t: &mut Table, name: String, d: ColumnData| t.push(name, d).map_err(NodeError::failed);

    if nt > 1 {
        let col = frames.iter().enumerate().flat_map(|(i, f)| std::iter::repeat_n(i as i64, f.ids.len())).collect();
        push(&mut t, "frame".into(), ColumnData::I64(col))?;
    }
    let each = |f: &dyn Fn(&VolumeStats, usize) -> f64| -> Vec<f64> {
        let mut v = Vec::with_capacity(rows);
        for fr in &frames {
            for k in 0..fr.ids.len() {
                v.push(f(fr, k));
            }
        }
        v
    };
    let each_i = |f: &dyn Fn(&VolumeStats, usize) -> i64| -> Vec<i64> {
        let mut v = Vec::with_capacity(rows);
        for fr in &frames {
            for k in 0..fr.ids.len() {
                v.push(f(fr, k));
            }
        }
        v
    };
    push(&mut t, "label".into(), ColumnData::I64(each_i(&|f, k| f.ids[k] as i64)))?;
    push(&mut t, "area".into(), ColumnData::F64(each(&|f, k| f.acc[k].n as f64)))?;
    for (i, &a) in axes.iter().enumerate() {
        push(&mut t, format!("centroid-{i}"), ColumnData::F64(each(&|f, k| f.acc[k].centroid()[a])))?;
    }
    for c in 0..nc {
        let name = if nc == 1 { "intensity_mean".to_string() } else { format!("intensity_mean-{c}") };
        push(&mut t, name, ColumnData::F64(each(&|f, k| f.intensity[c][k].sum / f.acc[k].n as f64)))?;
    }
    for (i, &a) in axes.iter().enumerate() {
        push(&mut t, format!("bbox-{i}"), ColumnData::I64(each_i(&|f, k| f.acc[k].lo[a] as i64)))?;
    }
    for (i, &a) in axes.iter().enumerate() {
        push(&mut t, format!("bbox-{}", i + axes.len()), ColumnData::I64(each_i(&|f, k| f.acc[k].hi[a] as i64 + 1)))?;
    }
    Ok(t)
}

pub struct Regions;

impl Node for Regions {
    fn spec(&self) -> NodeSpec {
        NodeSpec::new(
            "measure.regions",
            1,
            "measure",
            "Measures every labelled object (per time point): size, centre, bounding box and intensity, \
             with scikit-image's regionprops column names.",
        )
        .input("labels", PortType::Labels, "Objects to measure (0 = background), 2-D or 3-D, optionally over time.")
        .optional_input(
            "image",
            PortType::Image,
            "Intensity image of the same size; adds the mean intensity of each object (one column per channel).",
        )
        .output(
            "table",
            PortType::Table,
            "One row per object (and time point): frame (time-lapse only), label, area, centroid-*, \
             intensity_mean, bbox-*.",
        )
    }

    fn run(&self, _ctx: &NodeCtx, _params: &Params, inputs: &Inputs) -> Result<Outputs, NodeError> {
        let labels = inputs.labels("labels")?;
        let image = inputs.opt("image", Inputs::image)?;
        let t = regions(labels, image)?;
        Ok(Outputs::new().with("table", Value::Table(std::sync::Arc::new(t))))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use petri_testkit::{read_csv, read_stack, reference, sample};
    use std::path::Path;

    /// Compares our table with a scikit-image regionprops CSV, label by label.
    fn check_against(t: &Table, csv: &Path) {
        let want = read_csv(csv);
        assert_eq!(t.n_rows(), want.len(), "{}: row count", csv.display());
        let mut worst = 0.0f64;
        for (row, w) in want.iter().enumerate() {
            for (name, &v) in w {
                let col = t.column(name).unwrap_or_else(|| panic!("missing column {name}"));
                let got = col.number(row).unwrap();
                let d = (got - v).abs();
                worst = worst.max(d);
                assert!(
                    d < 1e-9,
                    "{}: row {row} (label {}) column {name}: got {got}, want {v}",
                    csv.display(),
                    w["label"]
                );
            }
        }
        eprintln!("{}: {} rows, max abs diff {worst:e}", csv.display(), want.len());
    }

    #[test]
    fn matches_skimage_2d() {
        let img = read_stack::<u16>(&sample("nuclei2d.tif"));
        for (lab, csv) in [("cc_conn8.tif", "regionprops_cc.csv"), ("watershed.tif", "regionprops_watershed.csv")] {
            let l = read_stack::<u32>(&reference("nuclei2d_dsb2018", lab));
            check_against(&regions(&l, Some(&img)).unwrap(), &reference("nuclei2d_dsb2018", csv));
        }
        let gt = read_stack::<u32>(&sample("nuclei2d_labels.tif"));
        check_against(&regions(&gt, Some(&img)).unwrap(), &reference("nuclei2d_dsb2018", "regionprops_gt.csv"));
    }

    #[test]
    fn matches_skimage_3d() {
        let img = read_stack::<u16>(&sample("nuclei3d_synthetic.tif"));
        for (lab, csv) in [("cc_conn26.tif", "regionprops_cc.csv"), ("watershed.tif", "regionprops_watershed.csv")] {
            let l = read_stack::<u32>(&reference("nuclei3d_synthetic_stardist", lab));
            check_against(&regions(&l, Some(&img)).unwrap(), &reference("nuclei3d_synthetic_stardist", csv));
        }
        let gt = read_stack::<u32>(&sample("nuclei3d_synthetic_labels.tif"));
        check_against(
            &regions(&gt, Some(&img)).unwrap(),
            &reference("nuclei3d_synthetic_stardist", "regionprops_gt.csv"),
        );
    }

    #[test]
    fn matches_skimage_em_u8() {
        let f = petri_testkit::fixtures().join("measure/em_cremi_c_z4");
        let img = read_stack::<u8>(&f.join("image_z4.tif"));
        let l = read_stack::<u32>(&f.join("cc_conn8.tif"));
        check_against(&regions(&l, Some(&img)).unwrap(), &reference("em_cremi_c_z4", "regionprops_cc.csv"));
    }

    #[test]
    fn time_lapse_gets_a_frame_column() {
        use petri_api::{Axis, Pixel};
        // T=2, 1×3×3: label 5 moves one pixel right.
        let lab: Vec<u32> = vec![5, 0, 0, 0, 0, 0, 0, 0, 0, 0, 5, 0, 0, 0, 0, 0, 0, 0];
        let s = Stack::new([2, 1, 1, 3, 3], &[Axis::T], u32::into_buffer(lab)).unwrap();
        let t = regions(&s, None).unwrap();
        assert_eq!(t.columns()[0].name, "frame");
        assert_eq!(t.column("frame").unwrap(), &ColumnData::I64(vec![0, 1]));
        assert_eq!(t.column("centroid-1").unwrap(), &ColumnData::F64(vec![0.0, 1.0]));
        assert!(t.column("intensity_mean").is_none());
    }

    #[test]
    fn bad_inputs_give_clear_errors() {
        let l = Stack::from_2d::<u32>(2, 2, vec![0; 4]).unwrap();
        let t = regions(&l, None).unwrap();
        assert_eq!(t.n_rows(), 0);
        assert!(t.column("area").is_some());
        let img = Stack::from_2d::<u16>(2, 3, vec![0; 6]).unwrap();
        let e = regions(&l, Some(&img)).unwrap_err().to_string();
        assert!(e.contains("input 'image'") && e.contains("same T, Z, Y and X"), "{e}");
        let nan = Stack::from_2d::<f32>(2, 2, vec![0.0, f32::NAN, 0.0, 0.0]).unwrap();
        assert!(regions(&l, Some(&nan)).unwrap_err().to_string().contains("non-finite"));
    }
}
