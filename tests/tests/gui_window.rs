//! The editor in a real window: `petri` (no arguments: the bundled example) under Xvfb runs
//! its graph, then a screenshot of the X screen is checked: not blank, and every node card's
//! header is drawn in its category colour exactly where the editor's layout puts it.
//! The PNG stays in `target/gui-window/` for people to look at.
//!
//! Needs `Xvfb` and ImageMagick (`import`, `convert`); `.ci/run` installs them. Without them
//! the test says it is skipped, unless PETRI_REQUIRE_XVFB=1 (then it fails).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use petri_tests::{petri_bin, root};

const SCREEN_W: usize = 1280;
const SCREEN_H: usize = 800;

fn have(tool: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {tool}")])
        .stdout(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false)
}

/// Kills the processes it holds when dropped (also when an assertion fails).
struct Killer(Vec<Child>);

impl Drop for Killer {
    fn drop(&mut self) {
        for c in self.0.iter_mut().rev() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn free_display() -> u32 {
    (90..140)
        .find(|n| {
            !Path::new(&format!("/tmp/.X{n}-lock")).exists() && !Path::new(&format!("/tmp/.X11-unix/X{n}")).exists()
        })
        .expect("a free X display number")
}

fn wait_for(what: &str, timeout: Duration, mut ok: impl FnMut() -> bool) {
    let t = Instant::now();
    while !ok() {
        assert!(t.elapsed() < timeout, "timed out after {timeout:?} waiting for {what}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn the_editor_draws_the_example_graph_in_a_real_window() {
    let required = std::env::var("PETRI_REQUIRE_XVFB").is_ok_and(|v| v == "1");
    let missing: Vec<&str> = ["Xvfb", "import", "convert"].into_iter().filter(|t| !have(t)).collect();
    if !missing.is_empty() {
        let msg =
            format!("gui_window: SKIPPED: {} not installed (apt-get install xvfb imagemagick)", missing.join(", "));
        assert!(!required, "{msg}, and PETRI_REQUIRE_XVFB=1");
        println!("{msg}");
        return;
    }
    let bin = petri_bin();
    let work = tempfile::tempdir().unwrap();
    let w = work.path();
    let keep: PathBuf = root().join("target/gui-window");
    std::fs::create_dir_all(&keep).unwrap();
    let png = keep.join("petri-editor.png");
    let _ = std::fs::remove_file(&png);
    let layout = w.join("layout.json");

    let display = free_display();
    let mut procs = Killer(Vec::new());
    procs.0.push(
        Command::new("Xvfb")
            .args([&format!(":{display}"), "-screen", "0", &format!("{SCREEN_W}x{SCREEN_H}x24"), "-nolisten", "tcp"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start Xvfb"),
    );
    wait_for("Xvfb", Duration::from_secs(20), || Path::new(&format!("/tmp/.X11-unix/X{display}")).exists());

    let log = std::fs::File::create(w.join("petri.log")).unwrap();
    procs.0.push(
        Command::new(&bin)
            .current_dir(w)
            .env("DISPLAY", format!(":{display}"))
            .env_remove("WAYLAND_DISPLAY")
            .env("PETRI_CACHE_DIR", w.join("cache"))
            .env("PETRI_CONFIG_DIR", w.join("config"))
            .env("PETRI_GUI_RUN", "1")
            .env("PETRI_GUI_SELECT", "label")
            .env("PETRI_GUI_LAYOUT", &layout)
            .env("PETRI_GUI_EXIT_AFTER", "240")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start petri"),
    );
    let petri_log = || std::fs::read_to_string(w.join("petri.log")).unwrap_or_default();
    wait_for("the editor to draw the example and run it", Duration::from_secs(200), || {
        if let Some(c) = procs.0.get_mut(1) {
            if let Ok(Some(status)) = c.try_wait() {
                panic!("petri exited early ({status}):\n{}", petri_log());
            }
        }
        layout.exists()
    });
    // Let the frame showing the finished run reach the screen.
    std::thread::sleep(Duration::from_millis(2000));
    let st = Command::new("import")
        .args(["-display", &format!(":{display}"), "-window", "root"])
        .arg(&png)
        .status()
        .unwrap();
    assert!(st.success(), "import failed");
    let out = Command::new("convert").arg(&png).args(["-depth", "8", "ppm:-"]).output().unwrap();
    assert!(out.status.success(), "convert failed: {}", String::from_utf8_lossy(&out.stderr));
    drop(procs);

    let (sw, sh, rgb) = parse_ppm(&out.stdout);
    assert_eq!((sw, sh), (SCREEN_W, SCREEN_H), "screenshot size");
    let px = |x: usize, y: usize| -> [u8; 3] {
        let i = (y.min(SCREEN_H - 1) * SCREEN_W + x.min(SCREEN_W - 1)) * 3;
        [rgb[i], rgb[i + 1], rgb[i + 2]]
    };

    // Not blank: many colours, and no single colour covers almost everything.
    let mut counts = std::collections::HashMap::new();
    for c in rgb.chunks_exact(3) {
        *counts.entry([c[0], c[1], c[2]]).or_insert(0usize) += 1;
    }
    let top = counts.values().copied().max().unwrap_or(0);
    assert!(counts.len() > 50, "only {} colours on screen: blank window? see {}", counts.len(), png.display());
    assert!(top < SCREEN_W * SCREEN_H * 9 / 10, "one colour covers {top} pixels: blank window? see {}", png.display());

    // Every card's header is drawn in its category colour where the layout puts it.
    let json: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&layout).unwrap()).unwrap();
    let cards = json["cards"].as_object().expect("cards");
    assert_eq!(cards.len(), 7, "the example has 7 nodes");
    for (id, c) in cards {
        let f = |k: &str| c[k].as_f64().unwrap() as f32;
        let (x, y, hh) = (f("x"), f("y"), f("header_h"));
        let want: Vec<u8> = c["header_rgb"].as_array().unwrap().iter().map(|v| v.as_u64().unwrap() as u8).collect();
        let got = px((x + 4.0) as usize, (y + hh * 0.5) as usize);
        let close = got.iter().zip(&want).all(|(a, b)| (*a as i32 - *b as i32).abs() <= 16);
        assert!(close, "card '{id}': header colour {got:?} at ({x}, {y}), expected {want:?}; see {}", png.display());
        // Just above the card is canvas, not header.
        let above = px((x + 4.0) as usize, (y - 6.0).max(0.0) as usize);
        assert!(
            above.iter().zip(&want).any(|(a, b)| (*a as i32 - *b as i32).abs() > 16),
            "card '{id}' is not where the layout says"
        );
    }
    let log = petri_log();
    assert!(!log.contains("panicked"), "petri printed a panic:\n{log}");
    println!("gui_window: screenshot kept at {}", png.display());
}

/// A binary PPM (P6, 8-bit): width, height, RGB bytes.
fn parse_ppm(b: &[u8]) -> (usize, usize, Vec<u8>) {
    let mut fields = Vec::new();
    let mut i = 0;
    while fields.len() < 4 {
        while i < b.len() && b[i].is_ascii_whitespace() {
            i += 1;
        }
        if i < b.len() && b[i] == b'#' {
            while i < b.len() && b[i] != b'\n' {
                i += 1;
            }
            continue;
        }
        let start = i;
        while i < b.len() && !b[i].is_ascii_whitespace() {
            i += 1;
        }
        assert!(i > start, "truncated PPM header");
        fields.push(String::from_utf8_lossy(&b[start..i]).into_owned());
    }
    assert_eq!(fields[0], "P6", "not a binary PPM");
    assert_eq!(fields[3], "255", "not 8-bit");
    let (w, h): (usize, usize) = (fields[1].parse().unwrap(), fields[2].parse().unwrap());
    let data = b[i + 1..].to_vec();
    assert_eq!(data.len(), w * h * 3, "PPM data size");
    (w, h, data)
}
