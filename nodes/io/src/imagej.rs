//! ImageJ's TIFF ImageDescription: `key=value` lines such as
//! `ImageJ=1.54f\nimages=120\nchannels=2\nslices=20\nframes=3\nhyperstack=true\nunit=micron\nspacing=0.3\n`.
//! Pages are stored in T, Z, C order (C fastest).

use std::fmt::Write;

/// What Petri uses from an ImageJ description.
#[derive(Clone, Debug, PartialEq)]
pub struct ImageJMeta {
    pub images: usize,
    pub channels: usize,
    pub slices: usize,
    pub frames: usize,
    pub spacing: Option<f64>,
    pub unit: Option<String>,
    pub finterval: Option<f64>,
    pub tunit: Option<String>,
}

/// Whether a description is ImageJ's.
pub fn is_imagej(desc: &str) -> bool {
    desc.trim_start().starts_with("ImageJ=")
}

fn count(key: &str, v: &str) -> Result<usize, String> {
    match v.trim().parse::<usize>() {
        Ok(n) if n > 0 => Ok(n),
        _ => Err(format!("the ImageJ description has an invalid '{key}={v}'")),
    }
}

/// ImageJ escapes non-ASCII characters as `\uXXXX`.
fn unescape(s: &str) -> String {
    let mut out = String::new();
    let mut rest = s;
    while let Some(i) = rest.find("\\u") {
        out.push_str(&rest[..i]);
        let hex = rest.get(i + 2..i + 6);
        match hex.and_then(|h| u32::from_str_radix(h, 16).ok()).and_then(char::from_u32) {
            Some(c) => {
                out.push(c);
                rest = &rest[i + 6..];
            }
            None => {
                out.push_str("\\u");
                rest = &rest[i + 2..];
            }
        }
    }
    out.push_str(rest);
    out
}

/// Parses an ImageJ description. `Ok(None)` if it is not one.
pub fn parse(desc: &str) -> Result<Option<ImageJMeta>, String> {
    if !is_imagej(desc) {
        return Ok(None);
    }
    let mut m = ImageJMeta {
        images: 0,
        channels: 1,
        slices: 1,
        frames: 1,
        spacing: None,
        unit: None,
        finterval: None,
        tunit: None,
    };
    let mut images = None;
    for line in desc.lines() {
        let Some((k, v)) = line.split_once('=') else { continue };
        let (k, v) = (k.trim(), v.trim());
        match k {
            "images" => images = Some(count(k, v)?),
            "channels" => m.channels = count(k, v)?,
            "slices" => m.slices = count(k, v)?,
            "frames" => m.frames = count(k, v)?,
            "spacing" => m.spacing = v.parse::<f64>().ok().filter(|x| x.is_finite() && *x > 0.0),
            "unit" => m.unit = Some(unescape(v)),
            "finterval" => m.finterval = v.parse::<f64>().ok().filter(|x| x.is_finite() && *x > 0.0),
            "tunit" => m.tunit = Some(unescape(v)),
            _ => {}
        }
    }
    let product = m
        .channels
        .checked_mul(m.slices)
        .and_then(|p| p.checked_mul(m.frames))
        .ok_or("the ImageJ description declares an impossible number of images")?;
    m.images = images.unwrap_or(product);
    if m.images != product {
        return Err(format!(
            "the ImageJ description contradicts itself: images={} but channels×slices×frames = {}×{}×{} = {product}",
            m.images, m.channels, m.slices, m.frames
        ));
    }
    Ok(Some(m))
}

/// An ImageJ description as Fiji and tifffile write it. `unit` is None when uncalibrated.
pub fn format(
    channels: usize,
    slices: usize,
    frames: usize,
    unit: Option<&str>,
    spacing: Option<f64>,
    finterval: Option<f64>,
    range: Option<(f64, f64)>,
) -> String {
    let mut s = String::from("ImageJ=1.11a\n");
    let _ = writeln!(s, "images={}", channels * slices * frames);
    if channels > 1 {
        let _ = writeln!(s, "channels={channels}");
    }
    if slices > 1 {
        let _ = writeln!(s, "slices={slices}");
    }
    if frames > 1 {
        let _ = writeln!(s, "frames={frames}");
    }
    s.push_str("hyperstack=true\n");
    s.push_str(if channels > 1 { "mode=composite\n" } else { "mode=grayscale\n" });
    if let Some(u) = unit {
        // The description must be ASCII: escape like ImageJ does.
        let esc: String =
            u.chars().map(|c| if c.is_ascii() { c.to_string() } else { format!("\\u{:04X}", c as u32) }).collect();
        let _ = writeln!(s, "unit={esc}");
    }
    if let Some(z) = spacing {
        let _ = writeln!(s, "spacing={z}");
    }
    if let Some(t) = finterval {
        let _ = writeln!(s, "finterval={t}");
    }
    s.push_str("loop=false\n");
    if let Some((lo, hi)) = range {
        let _ = writeln!(s, "min={lo}\nmax={hi}");
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_hyperstacks() {
        let d = "ImageJ=1.11a\nimages=60\nslices=60\nhyperstack=true\nmode=grayscale\nspacing=0.29\nunit=micron\n";
        let m = parse(d).unwrap().unwrap();
        assert_eq!((m.images, m.channels, m.slices, m.frames), (60, 1, 60, 1));
        assert_eq!(m.spacing, Some(0.29));
        assert_eq!(m.unit.as_deref(), Some("micron"));
        let m = parse("ImageJ=1.54f\nimages=12\nchannels=2\nslices=3\nframes=2\nunit=\\u00B5m\n").unwrap().unwrap();
        assert_eq!((m.channels, m.slices, m.frames), (2, 3, 2));
        assert_eq!(m.unit.as_deref(), Some("µm"));
        assert!(parse("not imagej").unwrap().is_none());
    }

    #[test]
    fn rejects_contradictions() {
        let e = parse("ImageJ=1.11a\nimages=10\nchannels=2\nslices=3\n").unwrap_err();
        assert!(e.contains("images=10"), "{e}");
        assert!(parse("ImageJ=\nslices=0\n").is_err());
        assert!(parse("ImageJ=\nslices=99999999999\nframes=99999999999\nchannels=999999999\n").is_err());
    }

    #[test]
    fn formats_what_it_parses() {
        let d = format(2, 5, 3, Some("µm"), Some(0.5), Some(2.0), None);
        let m = parse(&d).unwrap().unwrap();
        assert_eq!((m.images, m.channels, m.slices, m.frames), (30, 2, 5, 3));
        assert_eq!(m.unit.as_deref(), Some("µm"));
        assert!(d.is_ascii());
        assert_eq!(m.finterval, Some(2.0));
    }
}
