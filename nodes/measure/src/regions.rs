//! `measure.regions`: one row per labelled object (and per time point), with the columns of
//! scikit-image's `regionprops_table`.
//!
//! Conventions (scikit-image 0.26): coordinates are pixel indices in array axis order
//! (2-D: `centroid-0` = y, `centroid-1` = x; 3-D: z, y, x); `bbox-0..` are the minima
//! (inclusive) then the maxima (exclusive); `area` is the pixel (voxel) count; lengths
//! (`equivalent_diameter_area`, `axis_*_length`) are in pixels. See docs/algorithms/measure.md.

use petri_api::{
    ColumnData, Inputs, Node, NodeCtx, NodeError, NodeSpec, Outputs, Params, PortType, Stack, Table, Value, with_pixels,
};

use rayon::prelude::*;

use crate::accum::{VolumeStats, accumulate};
use crate::shape::{axis_lengths, convex_area_2d, eccentricity, inertia_eigvals};

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

    let three_d = labels.is_3d();
    let ndim = if three_d { 3 } else { 2 };
    let frames: Vec<VolumeStats> = (0..nt)
        .map(|t| {
            let l = &lab[t * vlen..(t + 1) * vlen];
            match image {
                None => accumulate::<u8>(l, shape, &[], !three_d),
                Some(img) => with_pixels!(img.buffer(), px => {
                    let chans: Vec<_> = (0..nc).map(|c| { let o = (t * nc + c) * vlen; &px[o..o + vlen] }).collect();
                    accumulate(l, shape, &chans, !three_d)
                }),
            }
        })
        .collect();

    // Per-object shape descriptors (eigenvalues, convex hull), in parallel over objects.
    let shapes: Vec<Vec<Shape>> = frames
        .iter()
        .map(|f| {
            (0..f.ids.len())
                .into_par_iter()
                .map(|k| {
                    let ev = inertia_eigvals(&f.acc[k], ndim);
                    let (major, minor) = axis_lengths(&ev);
                    let n = f.acc[k].n as f64;
                    Shape {
                        major,
                        minor,
                        eccentricity: if three_d { 0.0 } else { eccentricity(&ev) },
                        solidity: if three_d { 0.0 } else { n / convex_area_2d(&f.spans[k]) as f64 },
                    }
                })
                .collect()
        })
        .collect();

    let vs = labels.voxel_size();
    let (unit_area, area_unit) =
        if three_d { (vs.z * vs.y * vs.x, format!("{}^3", vs.unit)) } else { (vs.y * vs.x, format!("{}^2", vs.unit)) };
    let axes: &[usize] = if three_d { &[0, 1, 2] } else { &[1, 2] };
    let rows: usize = frames.iter().map(|f| f.ids.len()).sum();
    let mut t = Table::new();
    let push = |t: &mut Table, name: String, d: ColumnData| t.push(name, d).map_err(NodeError::failed);
    let each = |f: &dyn Fn(usize, &VolumeStats, usize) -> f64| -> ColumnData {
        let mut v = Vec::with_capacity(rows);
        for (i, fr) in frames.iter().enumerate() {
            for k in 0..fr.ids.len() {
                v.push(f(i, fr, k));
            }
        }
        ColumnData::F64(v)
    };
    let each_i = |f: &dyn Fn(usize, &VolumeStats, usize) -> i64| -> ColumnData {
        let mut v = Vec::with_capacity(rows);
        for (i, fr) in frames.iter().enumerate() {
            for k in 0..fr.ids.len() {
                v.push(f(i, fr, k));
            }
        }
        ColumnData::I64(v)
    };

    if nt > 1 {
        push(&mut t, "frame".into(), each_i(&|i, _, _| i as i64))?;
    }
    push(&mut t, "label".into(), each_i(&|_, f, k| f.ids[k] as i64))?;
    push(&mut t, "area".into(), each(&|_, f, k| f.acc[k].n as f64))?;
    push(&mut t, "area_physical".into(), each(&|_, f, k| f.acc[k].n as f64 * unit_area))?;
    push(&mut t, "area_unit".into(), ColumnData::Str(vec![area_unit; rows]))?;
    for (i, &a) in axes.iter().enumerate() {
        push(&mut t, format!("centroid-{i}"), each(&|_, f, k| f.acc[k].centroid()[a]))?;
    }
    for (i, &a) in axes.iter().enumerate() {
        push(&mut t, format!("bbox-{i}"), each_i(&|_, f, k| f.acc[k].lo[a] as i64))?;
    }
    for (i, &a) in axes.iter().enumerate() {
        push(&mut t, format!("bbox-{}", i + axes.len()), each_i(&|_, f, k| f.acc[k].hi[a] as i64 + 1))?;
    }
    let d = ndim as f64;
    push(
        &mut t,
        "equivalent_diameter_area".into(),
        each(&|_, f, k| (2.0 * d * f.acc[k].n as f64 / std::f64::consts::PI).powf(1.0 / d)),
    )?;
    push(&mut t, "axis_major_length".into(), each(&|i, _, k| shapes[i][k].major))?;
    push(&mut t, "axis_minor_length".into(), each(&|i, _, k| shapes[i][k].minor))?;
    if !three_d {
        push(&mut t, "eccentricity".into(), each(&|i, _, k| shapes[i][k].eccentricity))?;
        push(&mut t, "solidity".into(), each(&|i, _, k| shapes[i][k].solidity))?;
    }
    for c in 0..nc {
        let sfx = if nc == 1 { String::new() } else { format!("-{c}") };
        push(&mut t, format!("intensity_mean{sfx}"), each(&|_, f, k| f.intensity[c][k].sum / f.acc[k].n as f64))?;
        push(&mut t, format!("intensity_min{sfx}"), each(&|_, f, k| f.intensity[c][k].min))?;
        push(&mut t, format!("intensity_max{sfx}"), each(&|_, f, k| f.intensity[c][k].max))?;
        push(&mut t, format!("intensity_sum{sfx}"), each(&|_, f, k| f.intensity[c][k].sum))?;
    }
    Ok(t)
}

/// Shape descriptors of one object.
struct Shape {
    major: f64,
    minor: f64,
    eccentricity: f64,
    solidity: f64,
}

pub struct Regions;

impl Node for Regions {
    fn spec(&self) -> NodeSpec {
        NodeSpec::new(
            "measure.regions",
            1,
            "measure",
            "Measures every labelled object (per time point): size, shape, centre, bounding box and intensity, \
             with scikit-image's regionprops column names.",
        )
        .input("labels", PortType::Labels, "Objects to measure (0 = background), 2-D or 3-D, optionally over time.")
        .optional_input(
            "image",
            PortType::Image,
            "Intensity image of the same size; adds each object's mean, minimum, maximum and summed intensity \
             (one set of columns per channel).",
        )
        .output(
            "table",
            PortType::Table,
            "One row per object (and time point): frame (time-lapse only), label, area (pixels or voxels), \
             area_physical and area_unit (from the voxel size), centroid-*, bbox-* (min, then max + 1), \
             equivalent_diameter_area, axis_major_length, axis_minor_length, eccentricity and solidity (2-D), \
             intensity_mean/min/max/sum (with an image). Lengths are in pixels, as in scikit-image.",
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

    /// Shape and intensity columns against scikit-image (generated by
    /// tests/fixtures/measure/make_regionprops_extra.py).
    #[test]
    fn shape_and_intensity_columns_match_skimage() {
        let f = petri_testkit::fixtures().join("measure");
        let cases = [
            ("dsb2018_gt", sample("nuclei2d_labels.tif"), sample("nuclei2d.tif")),
            ("dsb2018_watershed", reference("nuclei2d_dsb2018", "watershed.tif"), sample("nuclei2d.tif")),
            ("synthetic3d_gt", sample("nuclei3d_synthetic_labels.tif"), sample("nuclei3d_synthetic.tif")),
            (
                "synthetic3d_watershed",
                reference("nuclei3d_synthetic_stardist", "watershed.tif"),
                sample("nuclei3d_synthetic.tif"),
            ),
        ];
        for (name, lab, img) in cases {
            let t = regions(&read_stack::<u32>(&lab), Some(&read_stack::<u16>(&img))).unwrap();
            check_against(&t, &f.join(format!("regionprops_extra_{name}.csv")));
        }
        let em = f.join("em_cremi_c_z4");
        let t =
            regions(&read_stack::<u32>(&em.join("cc_conn8.tif")), Some(&read_stack::<u8>(&em.join("image_z4.tif"))))
                .unwrap();
        check_against(&t, &f.join("regionprops_extra_em_cc.csv"));
    }

    #[test]
    fn physical_area_uses_the_voxel_size() {
        use petri_api::VoxelSize;
        let l = Stack::from_2d::<u32>(2, 2, vec![1, 1, 0, 2]).unwrap().with_voxel_size(VoxelSize {
            y: 0.5,
            x: 0.25,
            unit: "micron".into(),
            ..VoxelSize::default()
        });
        let t = regions(&l, None).unwrap();
        assert_eq!(t.column("area_physical").unwrap(), &ColumnData::F64(vec![0.25, 0.125]));
        assert_eq!(t.column("area_unit").unwrap().cell(0), "micron^2");
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
