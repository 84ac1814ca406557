//! Read/write throughput of petri-io against tifffile, side by side in one run, plus peak
//! memory while reading. Not a test: run by hand, results in docs/benchmarks/io.md.
//!
//! ```text
//! cargo run --release -p petri-io --example bench_io -- \
//!     [--python PY] [--cells3d PATH] [--synthetic-mb 2048] [--repeats 3] [--tmp DIR]
//! ```
//! PY needs tifffile and imagecodecs. The synthetic stack (16-bit, 1024×1024 planes, smooth
//! structures plus noise) is written to a temporary folder, uncompressed and LZW, and deleted.
//! Peak memory is measured in a separate process per reader (this program re-run as
//! `bench_io read FILE` and the Python peer), as the process's maximum resident set size.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use petri_api::{NodeCtx, Stack};
use petri_io::{Compression, LoadOptions, StackKind, load_stack, save_tiff};

/// A field of /proc/self/status in bytes (`VmHWM` = peak resident set, `VmRSS` = current).
fn vm_status(field: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| s.lines().find(|l| l.starts_with(field)).map(|l| l.to_string()))
        .and_then(|l| l.split_whitespace().nth(1).and_then(|v| v.parse::<u64>().ok()))
        .map(|kb| kb * 1024)
        .unwrap_or(0)
}

fn synthetic(mb: usize) -> Stack {
    let (h, w) = (1024usize, 1024usize);
    let z = (mb * (1 << 20) / (h * w * 2)).max(1);
    let mut v = vec![0u16; z * h * w];
    let mut seed = 0x9E3779B97F4A7C15u64;
    let row_pattern: Vec<f64> = (0..w).map(|x| (x as f64 / 37.0).sin()).collect();
    for (i, plane) in v.chunks_mut(h * w).enumerate() {
        for y in 0..h {
            let cy = ((y as f64 + i as f64 * 3.0) / 53.0).cos();
            for x in 0..w {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                let signal = 1500.0 + 1200.0 * row_pattern[x] * cy;
                plane[y * w + x] = (signal + (seed % 64) as f64) as u16;
            }
        }
    }
    Stack::from_3d(z, h, w, v).unwrap()
}

struct Row {
    what: String,
    petri: f64,
    peer: f64,
    mb: f64,
    /// 1-minute load average when the measurement started.
    load: String,
}

/// The 1-minute load average (other programs competing for the 2 cores).
fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|s| s.split_whitespace().next().map(str::to_string))
        .unwrap_or_else(|| "?".into())
}

/// Flushes every dirty page to disk, so a timed write does not pay for an earlier one.
fn settle() {
    #[cfg(target_os = "linux")]
    // SAFETY: sync(2) takes no arguments and cannot fail.
    unsafe {
        libc::sync()
    };
}

fn peer(python: &str, args: &[&str]) -> Vec<String> {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/bench_peer.py");
    let out = Command::new(python).arg(script).args(args).output().expect("cannot run the Python peer");
    if !out.status.success() {
        panic!("peer failed: {}", String::from_utf8_lossy(&out.stderr));
    }
    String::from_utf8_lossy(&out.stdout).split_whitespace().map(str::to_string).collect()
}

/// Reads `file` in `repeats` fresh processes (Petri, then tifffile, alternating): best time and
/// largest peak RSS of each. A fresh process per read is what opening a file costs a user, and
/// keeps the allocator from recycling the previous read's (already faulted-in) buffer.
/// The peak RSS is reported with the resident set just before the read began (the program,
/// its libraries and, for Python, numpy and tifffile), so that the memory the read itself adds
/// can be compared with the decoded size.
fn fresh_reads(python: &str, file: &Path, repeats: usize) -> (Read, Read) {
    let exe = std::env::current_exe().unwrap();
    // Both readers are timed on a warm page cache: whichever read first would otherwise pay for
    // the disk if the file (just written) had been evicted, and warm the cache for the other
    // (the 2 GB read of an earlier run measured the disk, 0.06x and 0.17x, that way).
    if let Ok(mut f) = std::fs::File::open(file) {
        let _ = std::io::copy(&mut f, &mut std::io::sink());
    }
    let (mut p, mut t) = (Read::default(), Read::default());
    for _ in 0..repeats {
        let out = Command::new(&exe).arg("read").arg(file).output().unwrap();
        let v: Vec<String> = String::from_utf8_lossy(&out.stdout).split_whitespace().map(str::to_string).collect();
        p.add(&v);
        t.add(&peer(python, &["read", &file.to_string_lossy(), "1"]));
    }
    (p, t)
}

/// Best time, largest peak RSS and the resident set before reading, over the repeats.
struct Read {
    secs: f64,
    peak: u64,
    before: u64,
}

impl Default for Read {
    fn default() -> Read {
        Read { secs: f64::INFINITY, peak: 0, before: 0 }
    }
}

impl Read {
    /// Takes one "read SECONDS PEAK BEFORE ..." line, split on whitespace.
    fn add(&mut self, v: &[String]) {
        self.secs = self.secs.min(v[1].parse().unwrap());
        let peak: u64 = v[2].parse().unwrap();
        if peak > self.peak {
            self.peak = peak;
            self.before = v[3].parse().unwrap();
        }
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let ctx = NodeCtx::detached();
    if args.get(1).map(String::as_str) == Some("read") {
        let before = vm_status("VmRSS:");
        let t0 = Instant::now();
        let s = load_stack(Path::new(&args[2]), &LoadOptions::default(), &ctx).unwrap();
        println!("read {:.6} {} {before} {}", t0.elapsed().as_secs_f64(), vm_status("VmHWM:"), s.describe());
        return;
    }
    let opt = |name: &str, default: &str| -> String {
        args.iter().position(|a| a == name).and_then(|i| args.get(i + 1).cloned()).unwrap_or(default.to_string())
    };
    let python = opt("--python", "python3");
    let cells3d = PathBuf::from(opt("--cells3d", "../shared/data/nuclei3d_cells3d/image.tif"));
    let mb: usize = opt("--synthetic-mb", "2048").parse().unwrap();
    let repeats: usize = opt("--repeats", "3").parse().unwrap();
    let tmp = tempfile::tempdir_in(opt("--tmp", &std::env::temp_dir().to_string_lossy())).unwrap();
    println!("threads: {}, repeats: {repeats}, load average: {}", rayon::current_num_threads(), loadavg());

    let mut rows = Vec::new();
    let mut mem = Vec::new();
    // (name, file, its compression, an uncompressed file of the same pixels for the peer's writes)
    let mut inputs: Vec<(String, PathBuf, Compression, PathBuf)> = Vec::new();
    if cells3d.exists() {
        inputs.push((
            "cells3d 60×256×256 u16, uncompressed".into(),
            cells3d.clone(),
            Compression::None,
            cells3d.clone(),
        ));
        let lzw = tmp.path().join("cells3d_lzw.tif");
        let s = load_stack(&cells3d, &LoadOptions::default(), &ctx).unwrap();
        save_tiff(&s, StackKind::Image, &lzw, Compression::Lzw, &ctx).unwrap();
        inputs.push(("cells3d 60×256×256 u16, LZW".into(), lzw, Compression::Lzw, cells3d.clone()));
    } else {
        println!("cells3d not found at {} (skipped)", cells3d.display());
    }
    if mb > 0 {
        let t0 = Instant::now();
        let s = synthetic(mb);
        let desc = s.describe();
        let plain = tmp.path().join("synthetic_None.tif");
        for c in [Compression::None, Compression::Lzw] {
            let p = tmp.path().join(format!("synthetic_{c:?}.tif"));
            save_tiff(&s, StackKind::Image, &p, c, &ctx).unwrap();
            inputs.push((format!("synthetic {desc} ({} MB), {c:?}", (s.len() * 2) >> 20), p, c, plain.clone()));
        }
        println!("generated the synthetic stack in {:.1} s", t0.elapsed().as_secs_f64());
    }

    for (name, file, comp, plain) in &inputs {
        let s = load_stack(file, &LoadOptions::default(), &ctx).unwrap();
        let bytes = (s.len() * s.dtype().size()) as f64;
        let mbytes = bytes / 1e6;
        // Read, each in a fresh process.
        let load = loadavg();
        let (rp, rt) = fresh_reads(&python, file, repeats);
        rows.push(Row { what: format!("read {name}"), petri: rp.secs, peer: rt.secs, mb: mbytes, load });
        mem.push((name.clone(), bytes, rp, rt));
        // Writes (same compression as the input), alternating Petri and tifffile, each after a
        // `sync` so no one pays for the other's dirty pages.
        let out = tmp.path().join("petri_out.tif");
        let pout = tmp.path().join("peer_out.tif");
        let planes = petri_io::tiffwrite::imagej_planes::<u16>(&s).unwrap();
        let (desc, px) = petri_io::save_tiff::imagej_meta(&s);
        let meta = petri_io::tiffwrite::PageMeta { description: &desc, pixel_size: px };
        let cname = match comp {
            Compression::None => "none",
            Compression::Lzw => "lzw",
            _ => "deflate",
        };
        let peer_write = |fsync: bool| -> f64 {
            let mut a = vec!["write", &*plain.to_string_lossy(), &*pout.to_string_lossy(), cname, "1"]
                .into_iter()
                .map(str::to_string)
                .collect::<Vec<_>>();
            if fsync {
                a.push("fsync".into());
            }
            let a: Vec<&str> = a.iter().map(String::as_str).collect();
            peer(&python, &a)[1].parse().unwrap()
        };
        let load = loadavg();
        let (mut t_raw, mut t_w, mut t_wp, mut t_wpf) = (f64::INFINITY, f64::INFINITY, f64::INFINITY, f64::INFINITY);
        // Each output is measured and deleted at once: a 2 GB stack leaves little disk to spare.
        let mut sizes = (0u64, 0u64);
        let size_and_remove = |p: &Path| {
            let n = std::fs::metadata(p).map(|m| m.len()).unwrap_or(0);
            let _ = std::fs::remove_file(p);
            n
        };
        for _ in 0..repeats {
            // Plain write, no fsync (what tifffile.imwrite does) ...
            settle();
            let t0 = Instant::now();
            // (through the writer the atomic save uses, without its temporary file and fsync)
            let mut f = petri_api::fsutil::FileWriter::new(std::fs::File::create(&out).unwrap());
            petri_io::tiffwrite::write_planes(&mut f, &planes, s.y(), s.x(), *comp, &meta, &|| false).unwrap();
            drop(f.into_file().unwrap());
            t_raw = t_raw.min(t0.elapsed().as_secs_f64());
            sizes.0 = size_and_remove(&out);
            settle();
            t_wp = t_wp.min(peer_write(false));
            sizes.1 = size_and_remove(&pout);
            // ... and the node's atomic save (temporary file, fsync, rename) against tifffile
            // followed by an fsync of its file.
            settle();
            let t0 = Instant::now();
            save_tiff(&s, StackKind::Image, &out, *comp, &ctx).unwrap();
            t_w = t_w.min(t0.elapsed().as_secs_f64());
            size_and_remove(&out);
            settle();
            t_wpf = t_wpf.min(peer_write(true));
            size_and_remove(&pout);
        }
        drop(planes);
        drop(s);
        rows.push(Row {
            what: format!(
                "write {name}, no fsync (files: Petri {:.1} MB, tifffile {:.1} MB)",
                sizes.0 as f64 / 1e6,
                sizes.1 as f64 / 1e6
            ),
            petri: t_raw,
            peer: t_wp,
            mb: mbytes,
            load: load.clone(),
        });
        rows.push(Row {
            what: format!("write {name}: atomic save_tiff (temp file + fsync + rename) vs tifffile + fsync"),
            petri: t_w,
            peer: t_wpf,
            mb: mbytes,
            load: load.clone(),
        });
        rows.push(Row {
            what: format!("write {name}: atomic save_tiff vs tifffile without fsync"),
            petri: t_w,
            peer: t_wp,
            mb: mbytes,
            load,
        });
        let _ = std::fs::remove_file(&out);
        let _ = std::fs::remove_file(&pout);
    }

    println!(
        "\n| operation | Petri s | tifffile s | Petri MB/s | tifffile MB/s | speed-up (tifffile time / Petri time) | load |"
    );
    println!("|---|---|---|---|---|---|---|");
    for r in &rows {
        println!(
            "| {} | {:.4} | {:.4} | {:.0} | {:.0} | {:.2} | {} |",
            r.what,
            r.petri,
            r.peer,
            r.mb / r.petri,
            r.mb / r.peer,
            r.peer / r.petri,
            r.load
        );
    }
    println!(
        "\n| peak memory while reading | decoded MB | Petri max RSS MB (× decoded) | Petri RSS added by the read MB (× decoded) | tifffile max RSS MB (× decoded) | tifffile RSS added by the read MB (× decoded) |"
    );
    println!("|---|---|---|---|---|---|");
    let mb = |b: u64| b as f64 / 1e6;
    for (name, bytes, p, t) in mem {
        let (pa, ta) = (p.peak.saturating_sub(p.before), t.peak.saturating_sub(t.before));
        println!(
            "| {name} | {:.0} | {:.0} ({:.2}×) | {:.0} ({:.2}×) | {:.0} ({:.2}×) | {:.0} ({:.2}×) |",
            bytes / 1e6,
            mb(p.peak),
            p.peak as f64 / bytes,
            mb(pa),
            pa as f64 / bytes,
            mb(t.peak),
            t.peak as f64 / bytes,
            mb(ta),
            ta as f64 / bytes,
        );
    }
}
