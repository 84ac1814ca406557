//! OME-XML (the ImageDescription of OME-TIFF files): parsed with `roxmltree`, written by hand
//! (a fixed, small document).
//!
//! What Petri uses: per `Image`, the `Pixels` sizes, `DimensionOrder`, physical sizes and units,
//! time increment, channel names and the `TiffData` blocks that map planes to IFDs.
//! [`parse`] never allocates per declared plane (a 1 kB document may declare 10^12 planes);
//! [`image_pages`] checks the plane count against the file's page count before building the
//! plane → IFD table.

use std::fmt::Write;

use petri_api::Axis;

/// One `TiffData` element.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct TiffData {
    pub ifd: Option<u64>,
    pub first_c: u64,
    pub first_z: u64,
    pub first_t: u64,
    pub plane_count: Option<u64>,
    /// `UUID/@FileName`: planes stored in another file of a multi-file dataset.
    pub file_name: Option<String>,
}

/// One OME `Image` (a series).
#[derive(Clone, Debug, PartialEq)]
pub struct OmeImage {
    pub name: String,
    /// The non-spatial axes from slowest to fastest (DimensionOrder XYCZT → [T, Z, C]).
    pub order: [Axis; 3],
    pub size_x: u64,
    pub size_y: u64,
    pub size_c: u64,
    pub size_z: u64,
    pub size_t: u64,
    /// Samples per pixel of the channels (3 for RGB images stored as one plane).
    pub samples: u64,
    /// Physical sizes (value, unit) of X, Y, Z.
    pub physical: [Option<(f64, String)>; 3],
    pub time_increment: Option<(f64, String)>,
    pub channel_names: Vec<String>,
    pub tiff_data: Vec<TiffData>,
}

impl OmeImage {
    /// Stored channel planes (SizeC counts samples: an RGB image has SizeC 3 in one plane).
    pub fn plane_channels(&self) -> u64 {
        (self.size_c / self.samples.max(1)).max(1)
    }

    /// Number of planes, or None on overflow.
    pub fn planes(&self) -> Option<u64> {
        self.plane_channels().checked_mul(self.size_z)?.checked_mul(self.size_t)
    }

    /// Size of a non-spatial axis in stored planes.
    pub fn size_of(&self, a: Axis) -> u64 {
        match a {
            Axis::C => self.plane_channels(),
            Axis::Z => self.size_z,
            Axis::T => self.size_t,
            _ => 1,
        }
    }

    /// Linear plane index of (c, z, t) in DimensionOrder.
    fn plane_index(&self, c: u64, z: u64, t: u64) -> Option<u64> {
        let mut idx = 0u64;
        for a in self.order {
            let i = match a {
                Axis::C => c,
                Axis::Z => z,
                _ => t,
            };
            idx = idx.checked_mul(self.size_of(a))?.checked_add(i)?;
        }
        Some(idx)
    }
}

/// Whether a description looks like OME-XML.
pub fn is_ome(desc: &str) -> bool {
    let d = desc.trim_start();
    (d.starts_with("<?xml") || d.starts_with("<OME")) && d.contains("<OME")
}

fn attr_u64(n: &roxmltree::Node, name: &str, default: u64) -> Result<u64, String> {
    match n.attribute(name) {
        None => Ok(default),
        Some(v) => v.trim().parse::<u64>().map_err(|_| format!("OME-XML: invalid {name}=\"{v}\"")),
    }
}

fn attr_size(n: &roxmltree::Node, name: &str) -> Result<u64, String> {
    let v = attr_u64(n, name, 1)?;
    if v == 0 {
        return Err(format!("OME-XML: {name} is 0"));
    }
    Ok(v)
}

fn physical(n: &roxmltree::Node, name: &str, default_unit: &str) -> Option<(f64, String)> {
    let v = n.attribute(name)?.trim().parse::<f64>().ok().filter(|x| x.is_finite() && *x > 0.0)?;
    let unit = n.attribute(format!("{name}Unit").as_str()).unwrap_or(default_unit).to_string();
    Some((v, unit))
}

/// Parses an OME-XML document.
pub fn parse(xml: &str) -> Result<Vec<OmeImage>, String> {
    let opts = roxmltree::ParsingOptions { allow_dtd: false, nodes_limit: 1 << 22 };
    let doc =
        roxmltree::Document::parse_with_options(xml, opts).map_err(|e| format!("OME-XML is not valid XML: {e}"))?;
    let root = doc.root_element();
    if root.tag_name().name() != "OME" {
        return Err("OME-XML: the root element is not <OME>".into());
    }
    let mut images = Vec::new();
    for img in root.children().filter(|n| n.tag_name().name() == "Image") {
        let Some(px) = img.children().find(|n| n.tag_name().name() == "Pixels") else {
            return Err("OME-XML: an <Image> has no <Pixels>".into());
        };
        let dim = px.attribute("DimensionOrder").unwrap_or("XYCZT");
        let letters: Vec<Axis> = dim.chars().filter_map(Axis::from_letter).collect();
        if letters.len() != 5 || !dim.starts_with("XY") {
            return Err(format!("OME-XML: invalid DimensionOrder \"{dim}\""));
        }
        let rest = &letters[2..];
        if !(rest.contains(&Axis::C) && rest.contains(&Axis::Z) && rest.contains(&Axis::T)) {
            return Err(format!("OME-XML: invalid DimensionOrder \"{dim}\""));
        }
        let channels: Vec<roxmltree::Node> = px.children().filter(|n| n.tag_name().name() == "Channel").collect();
        let samples = match channels.first() {
            Some(c) => attr_size(c, "SamplesPerPixel")?,
            None => 1,
        };
        let mut tiff_data = Vec::new();
        for td in px.children().filter(|n| n.tag_name().name() == "TiffData") {
            let uuid = td.children().find(|n| n.tag_name().name() == "UUID");
            tiff_data.push(TiffData {
                ifd: td.attribute("IFD").map(|_| attr_u64(&td, "IFD", 0)).transpose()?,
                first_c: attr_u64(&td, "FirstC", 0)?,
                first_z: attr_u64(&td, "FirstZ", 0)?,
                first_t: attr_u64(&td, "FirstT", 0)?,
                plane_count: td.attribute("PlaneCount").map(|_| attr_u64(&td, "PlaneCount", 0)).transpose()?,
                file_name: uuid.and_then(|u| u.attribute("FileName")).map(str::to_string),
            });
        }
        let mut names: Vec<String> = channels.iter().map(|c| c.attribute("Name").unwrap_or("").to_string()).collect();
        if names.iter().all(|n| n.is_empty()) {
            names.clear();
        }
        images.push(OmeImage {
            name: img.attribute("Name").unwrap_or("").to_string(),
            order: [rest[2], rest[1], rest[0]],
            size_x: attr_size(&px, "SizeX")?,
            size_y: attr_size(&px, "SizeY")?,
            size_c: attr_size(&px, "SizeC")?,
            size_z: attr_size(&px, "SizeZ")?,
            size_t: attr_size(&px, "SizeT")?,
            samples,
            physical: [
                physical(&px, "PhysicalSizeX", "µm"),
                physical(&px, "PhysicalSizeY", "µm"),
                physical(&px, "PhysicalSizeZ", "µm"),
            ],
            time_increment: physical(&px, "TimeIncrement", "s"),
            channel_names: names,
            tiff_data,
        });
    }
    if images.is_empty() {
        return Err("OME-XML describes no image".into());
    }
    Ok(images)
}

/// The IFD of every plane of `img`, in storage (DimensionOrder) order. `n_pages` is the number
/// of IFDs in the file; `file_name` this file's name (for multi-file datasets).
pub fn image_pages(img: &OmeImage, n_pages: usize, file_name: &str) -> Result<Vec<usize>, String> {
    let planes = img.planes().ok_or("OME-XML declares an impossible number of planes")?;
    if planes > n_pages as u64 {
        return Err(format!(
            "the OME metadata declares {planes} planes (C={} Z={} T={}) but the file has only {n_pages} pages",
            img.plane_channels(),
            img.size_z,
            img.size_t
        ));
    }
    let planes = planes as usize;
    let mut map: Vec<Option<usize>> = vec![None; planes];
    if img.tiff_data.is_empty() {
        // No TiffData: planes are the first IFDs in order.
        for (p, m) in map.iter_mut().enumerate() {
            *m = Some(p);
        }
    }
    let single = img.tiff_data.len() == 1;
    for td in &img.tiff_data {
        if let Some(f) = &td.file_name
            && f != file_name
        {
            return Err(format!(
                "multi-file OME-TIFF: planes are stored in '{f}'; open the dataset's files together is not supported"
            ));
        }
        let start = img
            .plane_index(td.first_c, td.first_z, td.first_t)
            .filter(|&i| i < planes as u64)
            .ok_or("OME-XML: a TiffData starts outside the image")?;
        let ifd = td.ifd.unwrap_or(0);
        // PlaneCount defaults to all remaining planes for a lone TiffData without IFD, else 1.
        let count = td.plane_count.unwrap_or(if single && td.ifd.is_none() { planes as u64 - start } else { 1 });
        for k in 0..count.min(planes as u64) {
            let p = start + k;
            let i = ifd + k;
            if p >= planes as u64 {
                break;
            }
            if i >= n_pages as u64 {
                return Err(format!("the OME metadata maps a plane to IFD {i} but the file has only {n_pages} pages"));
            }
            map[p as usize] = Some(i as usize);
        }
    }
    map.into_iter()
        .enumerate()
        .map(|(p, m)| m.ok_or_else(|| format!("the OME metadata stores no IFD for plane {p}")))
        .collect()
}

/// Converts a length to microns when the unit is known.
pub fn to_micron(v: f64, unit: &str) -> Option<f64> {
    let f = match unit.trim() {
        "µm" | "μm" | "um" | "micron" | "microns" | "micrometer" => 1.0,
        "nm" => 1e-3,
        "pm" => 1e-6,
        "Å" | "angstrom" => 1e-4,
        "mm" => 1e3,
        "cm" => 1e4,
        "m" => 1e6,
        _ => return None,
    };
    Some(v * f)
}

fn esc(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => o.push_str("&amp;"),
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '"' => o.push_str("&quot;"),
            // The TIFF description must be ASCII: non-ASCII as character references.
            c if !c.is_ascii() => {
                let _ = write!(o, "&#{};", c as u32);
            }
            c if (c as u32) < 0x20 && c != '\t' && c != '\n' => {}
            c => o.push(c),
        }
    }
    o
}

/// What [`format`] writes.
pub struct OmeOut<'a> {
    /// T, C, Z, Y, X sizes.
    pub dims: [usize; 5],
    /// OME pixel type: uint8, uint16, uint32, float.
    pub pixel_type: &'a str,
    /// Z, Y, X in microns, or None when uncalibrated.
    pub voxel_um: Option<[f64; 3]>,
    /// Time between frames and its unit.
    pub time_increment: Option<(f64, &'a str)>,
    pub channel_names: &'a [String],
}

/// A single-image OME-XML document, planes in XYZCT order (Z fastest, as Petri stores them:
/// canonical T, C, Z order).
pub fn format(o: &OmeOut) -> String {
    let [t, c, z, y, x] = o.dims;
    let mut s = String::from(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?><OME xmlns=\"http://www.openmicroscopy.org/Schemas/OME/2016-06\" \
         xmlns:xsi=\"http://www.w3.org/2001/XMLSchema-instance\" xsi:schemaLocation=\"http://www.openmicroscopy.org/Schemas/OME/2016-06 \
         http://www.openmicroscopy.org/Schemas/OME/2016-06/ome.xsd\" Creator=\"Petri\">",
    );
    let _ = write!(
        s,
        "<Image ID=\"Image:0\" Name=\"Image0\"><Pixels ID=\"Pixels:0\" DimensionOrder=\"XYZCT\" Type=\"{}\" \
         SizeX=\"{x}\" SizeY=\"{y}\" SizeZ=\"{z}\" SizeC=\"{c}\" SizeT=\"{t}\"",
        o.pixel_type
    );
    if let Some([vz, vy, vx]) = o.voxel_um {
        let _ = write!(
            s,
            " PhysicalSizeX=\"{vx}\" PhysicalSizeXUnit=\"&#181;m\" PhysicalSizeY=\"{vy}\" PhysicalSizeYUnit=\"&#181;m\""
        );
        if z > 1 {
            let _ = write!(s, " PhysicalSizeZ=\"{vz}\" PhysicalSizeZUnit=\"&#181;m\"");
        }
    }
    if let Some((ti, unit)) = o.time_increment {
        let _ = write!(s, " TimeIncrement=\"{ti}\" TimeIncrementUnit=\"{}\"", esc(unit));
    }
    s.push('>');
    for k in 0..c {
        let _ = write!(s, "<Channel ID=\"Channel:0:{k}\" SamplesPerPixel=\"1\"");
        if let Some(n) = o.channel_names.get(k) {
            let _ = write!(s, " Name=\"{}\"", esc(n));
        }
        s.push_str("/>");
    }
    let _ = write!(s, "<TiffData IFD=\"0\" PlaneCount=\"{}\"/></Pixels></Image></OME>", t * c * z);
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    const TWO: &str = r#"<?xml version="1.0" encoding="UTF-8"?><OME xmlns="http://www.openmicroscopy.org/Schemas/OME/2016-06"><Image ID="Image:0" Name="Image0"><Pixels ID="Pixels:0" DimensionOrder="XYZCT" Type="uint16" SizeX="12" SizeY="10" SizeZ="3" SizeC="2" SizeT="2" PhysicalSizeX="0.25" PhysicalSizeXUnit="µm" PhysicalSizeY="0.5" PhysicalSizeZ="200" PhysicalSizeZUnit="nm" TimeIncrement="30.0"><Channel ID="Channel:0:0" SamplesPerPixel="1" Name="DAPI"/><Channel ID="Channel:0:1" Name="GFP"/><TiffData IFD="0" PlaneCount="12"/></Pixels></Image><Image ID="Image:1"><Pixels DimensionOrder="XYCZT" SizeX="9" SizeY="8" SizeT="3"><TiffData IFD="12" PlaneCount="3"/></Pixels></Image></OME>"#;

    #[test]
    fn parses_images_and_maps_planes() {
        let imgs = parse(TWO).unwrap();
        assert_eq!(imgs.len(), 2);
        let a = &imgs[0];
        assert_eq!(a.order, [Axis::T, Axis::C, Axis::Z]);
        assert_eq!((a.size_x, a.size_y, a.size_c, a.size_z, a.size_t), (12, 10, 2, 3, 2));
        assert_eq!(a.channel_names, vec!["DAPI", "GFP"]);
        assert_eq!(a.physical[2], Some((200.0, "nm".to_string())));
        assert_eq!(a.physical[1], Some((0.5, "µm".to_string())));
        assert_eq!(a.time_increment, Some((30.0, "s".to_string())));
        assert_eq!(image_pages(a, 15, "f.tif").unwrap(), (0..12).collect::<Vec<_>>());
        assert_eq!(image_pages(&imgs[1], 15, "f.tif").unwrap(), vec![12, 13, 14]);
        assert!(image_pages(&imgs[1], 14, "f.tif").unwrap_err().contains("only 14 pages"));
        assert_eq!(to_micron(200.0, "nm"), Some(0.2));
    }

    #[test]
    fn per_plane_tiffdata_and_bad_documents() {
        let xml = r#"<OME><Image><Pixels DimensionOrder="XYCZT" SizeX="2" SizeY="2" SizeC="2" SizeZ="1" SizeT="1"><TiffData IFD="1" FirstC="0"/><TiffData IFD="0" FirstC="1"/></Pixels></Image></OME>"#;
        let imgs = parse(xml).unwrap();
        assert_eq!(image_pages(&imgs[0], 2, "x").unwrap(), vec![1, 0]);
        let huge = r#"<OME><Image><Pixels SizeX="2" SizeY="2" SizeC="1000000" SizeZ="1000000" SizeT="1000000"/></Image></OME>"#;
        let imgs = parse(huge).unwrap();
        assert!(image_pages(&imgs[0], 3, "x").unwrap_err().contains("only 3 pages"));
        let overflow = r#"<OME><Image><Pixels SizeX="2" SizeY="2" SizeC="18446744073709551615" SizeZ="3" SizeT="1"/></Image></OME>"#;
        assert!(image_pages(&parse(overflow).unwrap()[0], 3, "x").is_err());
        assert!(parse("<OME>").is_err());
        assert!(parse("<OME/>").is_err());
        assert!(parse(r#"<OME><Image><Pixels DimensionOrder="XYZZT"/></Image></OME>"#).is_err());
        assert!(parse(r#"<OME><Image><Pixels SizeX="-1"/></Image></OME>"#).is_err());
        let multi = r#"<OME><Image><Pixels SizeX="2" SizeY="2"><TiffData><UUID FileName="other.ome.tif">urn:x</UUID></TiffData></Pixels></Image></OME>"#;
        assert!(image_pages(&parse(multi).unwrap()[0], 1, "this.ome.tif").unwrap_err().contains("multi-file"));
    }

    #[test]
    fn formats_what_it_parses() {
        let names = vec!["DAPI & <x>".to_string(), "GFP µ".to_string()];
        let xml = format(&OmeOut {
            dims: [2, 2, 3, 10, 12],
            pixel_type: "uint16",
            voxel_um: Some([2.0, 0.5, 0.25]),
            time_increment: Some((5.0, "s")),
            channel_names: &names,
        });
        assert!(xml.is_ascii());
        let imgs = parse(&xml).unwrap();
        let a = &imgs[0];
        assert_eq!(a.order, [Axis::T, Axis::C, Axis::Z]);
        assert_eq!(a.channel_names, names);
        assert_eq!(a.physical[0], Some((0.25, "µm".to_string())));
        assert_eq!(image_pages(a, 12, "x").unwrap().len(), 12);
    }
}
