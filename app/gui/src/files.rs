//! Files and habits: the bundled example, the Examples menu, recent files, what a dropped
//! file means.

use std::path::{Path, PathBuf};

use petri_api::{ParamKind, PathMode, Registry};

/// The example `petri` opens with no arguments (also compiled in, for a binary far from its
/// source tree).
pub const BUNDLED_EXAMPLE: &str = include_str!("../../../graphs/examples/nuclei-threshold.ron");
pub const BUNDLED_NAME: &str = "nuclei-threshold.ron";

/// The folder of example graphs: `$PETRI_EXAMPLES_DIR`, else `graphs/examples` of the source
/// tree this binary was built from, else `graphs/examples` under the working directory.
pub fn examples_dir() -> Option<PathBuf> {
    if let Some(d) = std::env::var_os("PETRI_EXAMPLES_DIR") {
        return Some(PathBuf::from(d));
    }
    let built = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../graphs/examples");
    if built.is_dir() {
        return Some(petri_engine::validate::normalize(&built));
    }
    let cwd = std::env::current_dir().ok()?.join("graphs/examples");
    cwd.is_dir().then_some(cwd)
}

/// Example graphs, sorted by name.
pub fn list_examples(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(|e| e.ok().map(|e| e.path())).filter(|p| p.extension().is_some_and(|e| e == "ron")).collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

fn config_dir() -> PathBuf {
    if let Some(d) = std::env::var_os("PETRI_CONFIG_DIR") {
        return PathBuf::from(d);
    }
    if let Some(d) = std::env::var_os("XDG_CONFIG_HOME") {
        return PathBuf::from(d).join("petri");
    }
    match std::env::var_os("HOME") {
        Some(h) => PathBuf::from(h).join(".config").join("petri"),
        None => std::env::temp_dir().join("petri-config"),
    }
}

pub const RECENT_MAX: usize = 10;

/// Recently opened or saved graphs, most recent first (only those that still exist).
pub fn load_recent() -> Vec<PathBuf> {
    load_recent_in(&config_dir())
}

pub fn load_recent_in(dir: &Path) -> Vec<PathBuf> {
    std::fs::read_to_string(dir.join("recent.txt"))
        .map(|s| s.lines().map(PathBuf::from).filter(|p| p.is_file()).take(RECENT_MAX).collect())
        .unwrap_or_default()
}

/// Puts `path` first in the recent list and saves the list (best effort: a read-only home
/// folder only loses the list).
pub fn push_recent(recent: &mut Vec<PathBuf>, path: &Path) {
    push_recent_in(&config_dir(), recent, path)
}

pub fn push_recent_in(dir: &Path, recent: &mut Vec<PathBuf>, path: &Path) {
    let p = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
    recent.retain(|q| q != &p);
    recent.insert(0, p);
    recent.truncate(RECENT_MAX);
    let text: String = recent.iter().map(|p| format!("{}\n", p.display())).collect();
    let _ = petri_engine::format::write_atomic(&dir.join("recent.txt"), text.as_bytes());
}

/// What a file dropped on the window is.
#[derive(Debug, PartialEq)]
pub enum Dropped {
    Graph,
    /// An image: add this loader node type, setting this parameter to the file.
    Image {
        type_id: String,
        param: String,
    },
    Unknown,
}

/// Graph files open; image files add the loader whose path parameter accepts their
/// extension (`io.load_stack` preferred).
pub fn classify_drop(path: &Path, registry: &Registry) -> Dropped {
    let ext = path.extension().map(|e| e.to_string_lossy().to_lowercase()).unwrap_or_default();
    if ext == "ron" {
        return Dropped::Graph;
    }
    let mut best: Option<(bool, String, String)> = None;
    for s in registry.specs() {
        if !s.inputs.is_empty() {
            continue;
        }
        for p in &s.params {
            if let ParamKind::Path { mode: PathMode::Read { .. }, filters } = &p.kind {
                if filters.iter().any(|f| f.eq_ignore_ascii_case(&ext)) {
                    let preferred = s.type_id == "io.load_stack";
                    if best.as_ref().is_none_or(|b| preferred && !b.0) {
                        best = Some((preferred, s.type_id.clone(), p.name.clone()));
                    }
                }
            }
        }
    }
    match best {
        Some((_, type_id, param)) => Dropped::Image { type_id, param },
        None => Dropped::Unknown,
    }
}

/// A short name for the window title.
pub fn display_name(path: Option<&Path>, fallback: &str) -> String {
    path.and_then(|p| p.file_name()).map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| fallback.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::registry;

    #[test]
    fn dropped_files_are_classified() {
        let r = registry();
        assert_eq!(classify_drop(Path::new("/x/g.ron"), &r), Dropped::Graph);
        assert_eq!(
            classify_drop(Path::new("/x/cells.TIF"), &r),
            Dropped::Image { type_id: "test.source".into(), param: "path".into() }
        );
        assert_eq!(classify_drop(Path::new("/x/notes.txt"), &r), Dropped::Unknown);
    }

    #[test]
    fn the_bundled_example_parses_and_examples_are_listed() {
        let doc = petri_engine::parse_doc(BUNDLED_EXAMPLE).unwrap();
        assert!(doc.nodes.contains_key("load"));
        let dir = examples_dir().expect("examples folder in the source tree");
        assert!(list_examples(&dir).iter().any(|p| p.ends_with(BUNDLED_NAME)));
    }

    #[test]
    fn recent_files_are_most_recent_first_and_bounded() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = dir.path().join("config");
        let mut recent = Vec::new();
        for i in 0..12 {
            let f = dir.path().join(format!("g{i}.ron"));
            std::fs::write(&f, "x").unwrap();
            push_recent_in(&cfg, &mut recent, &f);
        }
        push_recent_in(&cfg, &mut recent, &dir.path().join("g5.ron"));
        assert_eq!(recent.len(), RECENT_MAX);
        assert!(recent[0].ends_with("g5.ron"));
        assert!(recent[1].ends_with("g11.ron"));
        std::fs::remove_file(dir.path().join("g11.ron")).unwrap();
        let back = load_recent_in(&cfg);
        assert_eq!(back.len(), RECENT_MAX - 1, "missing files drop out");
        assert!(back[0].ends_with("g5.ron"));
    }
}
