//! Result caches. A key is a blake3 digest of what determines a node's outputs (see
//! `exec::node_key`): never node ids or positions, so renaming or moving a node reuses its
//! results.
//!
//! - [`MemoryCache`]: in-process, with a byte budget. When over budget it evicts what is
//!   cheapest to recompute per byte first (compute seconds / bytes), then the least recently
//!   used; never an entry produced or used by the run in progress.
//! - [`DiskCache`]: one folder per key with a manifest listing each output's blake3; entries
//!   are verified on read (a corrupt entry is deleted and recomputed, never trusted), written
//!   atomically (temp folder + rename), and the folder is kept under a size limit by LRU.

use std::collections::{BTreeMap, HashMap};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::SystemTime;

use petri_api::Value;
use serde::{Deserialize, Serialize};

pub type Key = [u8; 32];
pub type OutputMap = Arc<BTreeMap<String, Value>>;

pub fn key_hex(k: &Key) -> String {
    k.iter().map(|b| format!("{b:02x}")).collect()
}

struct MemEntry {
    outputs: OutputMap,
    bytes: usize,
    cost_secs: f64,
    last_used: u64,
    run: u64,
}

pub struct MemoryCache {
    budget: usize,
    used: usize,
    tick: u64,
    current_run: u64,
    entries: HashMap<Key, MemEntry>,
}

impl MemoryCache {
    pub fn new(budget: usize) -> MemoryCache {
        MemoryCache { budget, used: 0, tick: 0, current_run: 0, entries: HashMap::new() }
    }

    /// A quarter of the machine's RAM (at least 256 MiB).
    pub fn default_budget() -> usize {
        let mut sys = sysinfo::System::new();
        sys.refresh_memory();
        ((sys.total_memory() / 4) as usize).max(256 << 20)
    }

    pub fn budget(&self) -> usize {
        self.budget
    }

    pub fn used(&self) -> usize {
        self.used
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Marks the start of a run: its entries are protected from eviction until the next one.
    pub fn begin_run(&mut self, run: u64) {
        self.current_run = run;
    }

    pub fn contains(&self, key: &Key) -> bool {
        self.entries.contains_key(key)
    }

    pub fn get(&mut self, key: &Key) -> Option<OutputMap> {
        self.tick += 1;
        let (tick, run) = (self.tick, self.current_run);
        self.entries.get_mut(key).map(|e| {
            e.last_used = tick;
            e.run = run;
            e.outputs.clone()
        })
    }

    /// Looks without touching recency (previews).
    pub fn peek(&self, key: &Key) -> Option<OutputMap> {
        self.entries.get(key).map(|e| e.outputs.clone())
    }

    pub fn insert(&mut self, key: Key, outputs: OutputMap, cost_secs: f64) {
        self.tick += 1;
        let bytes: usize = outputs.values().map(Value::byte_size).sum::<usize>() + 256;
        if let Some(old) = self
            .entries
            .insert(key, MemEntry { outputs, bytes, cost_secs, last_used: self.tick, run: self.current_run })
        {
            self.used -= old.bytes;
        }
        self.used += bytes;
        self.evict();
    }

    pub fn remove(&mut self, key: &Key) {
        if let Some(e) = self.entries.remove(key) {
            self.used -= e.bytes;
        }
    }

    fn evict(&mut self) {
        if self.used <= self.budget {
            return;
        }
        let mut candidates: Vec<(Key, f64, u64, usize)> = self
            .entries
            .iter()
            .filter(|(_, e)| e.run != self.current_run)
            .map(|(k, e)| (*k, e.cost_secs / e.bytes.max(1) as f64, e.last_used, e.bytes))
            .collect();
        // Cheapest to recompute per byte first, then least recently used, then key (determinism).
        candidates.sort_by(|a, b| a.1.total_cmp(&b.1).then(a.2.cmp(&b.2)).then(a.0.cmp(&b.0)));
        for (k, _, _, bytes) in candidates {
            if self.used <= self.budget {
                break;
            }
            self.entries.remove(&k);
            self.used -= bytes;
        }
    }
}

#[derive(Serialize, Deserialize)]
struct Manifest {
    #[serde(rename = "type")]
    type_id: String,
    seconds: f64,
    outputs: BTreeMap<String, ManifestOutput>,
}

#[derive(Serialize, Deserialize)]
struct ManifestOutput {
    file: String,
    blake3: String,
    bytes: u64,
}

/// Why a disk-cache entry could not be used.
#[derive(Debug, thiserror::Error)]
pub enum DiskCacheError {
    #[error("cache entry {key} is corrupt ({reason}); it was removed and will be recomputed")]
    Corrupt { key: String, reason: String },
    #[error("cache folder {}: {message}", path.display())]
    Io { path: PathBuf, message: String },
}

#[derive(Clone, Debug)]
pub struct DiskCache {
    root: PathBuf,
    limit: u64,
}

const LAYOUT: &str = "v1";

impl DiskCache {
    /// Opens (creating) a cache folder kept under `limit` bytes.
    pub fn open(root: &Path, limit: u64) -> Result<DiskCache, DiskCacheError> {
        let io = |e: std::io::Error| DiskCacheError::Io { path: root.to_path_buf(), message: e.to_string() };
        std::fs::create_dir_all(root.join(LAYOUT)).map_err(io)?;
        std::fs::create_dir_all(root.join("tmp")).map_err(io)?;
        Ok(DiskCache { root: root.to_path_buf(), limit })
    }

    /// `$PETRI_CACHE_DIR`, else the user's cache folder (`~/.cache/petri`).
    pub fn default_root() -> PathBuf {
        if let Some(d) = std::env::var_os("PETRI_CACHE_DIR") {
            return PathBuf::from(d);
        }
        if let Some(d) = std::env::var_os("XDG_CACHE_HOME") {
            return PathBuf::from(d).join("petri");
        }
        match std::env::var_os("HOME") {
            Some(h) => PathBuf::from(h).join(".cache").join("petri"),
            None => std::env::temp_dir().join("petri-cache"),
        }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    fn entry_dir(&self, key: &Key) -> PathBuf {
        let hex = key_hex(key);
        self.root.join(LAYOUT).join(&hex[..2]).join(hex)
    }

    pub fn contains(&self, key: &Key) -> bool {
        self.entry_dir(key).join("manifest.json").is_file()
    }

    /// Loads and verifies an entry. `Ok(None)` if absent; a corrupt entry is removed and
    /// reported as an error (the caller recomputes).
    pub fn load(&self, key: &Key) -> Result<Option<BTreeMap<String, Value>>, DiskCacheError> {
        let dir = self.entry_dir(key);
        let manifest_path = dir.join("manifest.json");
        let text = match std::fs::read(&manifest_path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(DiskCacheError::Io { path: manifest_path, message: e.to_string() }),
        };
        let corrupt = |reason: String| {
            let _ = std::fs::remove_dir_all(&dir);
            DiskCacheError::Corrupt { key: key_hex(key), reason }
        };
        let manifest: Manifest = serde_json::from_slice(&text).map_err(|e| corrupt(format!("bad manifest: {e}")))?;
        let mut out = BTreeMap::new();
        for (port, o) in &manifest.outputs {
            if o.file.contains('/') || o.file.contains('\\') || o.file.starts_with('.') {
                return Err(corrupt(format!("bad file name {:?}", o.file)));
            }
            let bytes = std::fs::read(dir.join(&o.file)).map_err(|e| corrupt(format!("{}: {e}", o.file)))?;
            if bytes.len() as u64 != o.bytes || blake3::hash(&bytes).to_hex().as_str() != o.blake3 {
                return Err(corrupt(format!("{} does not match its recorded hash", o.file)));
            }
            let v = Value::decode(&bytes).map_err(|e| corrupt(format!("{}: {e}", o.file)))?;
            out.insert(port.clone(), v);
        }
        // Recency for LRU eviction: the manifest's modification time.
        if let Ok(f) = std::fs::File::options().append(true).open(&manifest_path) {
            let _ = f.set_modified(SystemTime::now());
        }
        Ok(Some(out))
    }

    /// Stores an entry atomically (a temp folder renamed into place).
    pub fn store(
        &self,
        key: &Key,
        type_id: &str,
        outputs: &BTreeMap<String, Value>,
        seconds: f64,
    ) -> Result<(), DiskCacheError> {
        let final_dir = self.entry_dir(key);
        if final_dir.join("manifest.json").is_file() {
            return Ok(());
        }
        let nanos = SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0);
        let tmp = self.root.join("tmp").join(format!("{}-{}-{nanos}", key_hex(key), std::process::id()));
        let io = |p: &Path, e: std::io::Error| DiskCacheError::Io { path: p.to_path_buf(), message: e.to_string() };
        let result = (|| {
            std::fs::create_dir_all(&tmp).map_err(|e| io(&tmp, e))?;
            let mut manifest = Manifest { type_id: type_id.into(), seconds, outputs: BTreeMap::new() };
            for (i, (port, v)) in outputs.iter().enumerate() {
                let bytes = v.encode();
                let file = format!("{i}.bin");
                let p = tmp.join(&file);
                let mut f = std::fs::File::create(&p).map_err(|e| io(&p, e))?;
                f.write_all(&bytes).map_err(|e| io(&p, e))?;
                f.sync_all().map_err(|e| io(&p, e))?;
                manifest.outputs.insert(
                    port.clone(),
                    ManifestOutput {
                        file,
                        blake3: blake3::hash(&bytes).to_hex().to_string(),
                        bytes: bytes.len() as u64,
                    },
                );
            }
            let mp = tmp.join("manifest.json");
            let text = serde_json::to_vec_pretty(&manifest).map_err(|e| io(&mp, std::io::Error::other(e)))?;
            let mut f = std::fs::File::create(&mp).map_err(|e| io(&mp, e))?;
            f.write_all(&text).map_err(|e| io(&mp, e))?;
            f.sync_all().map_err(|e| io(&mp, e))?;
            if let Some(parent) = final_dir.parent() {
                std::fs::create_dir_all(parent).map_err(|e| io(parent, e))?;
            }
            match std::fs::rename(&tmp, &final_dir) {
                Ok(()) => Ok(()),
                // Another process stored the same key first: theirs is as good as ours.
                Err(_) if final_dir.join("manifest.json").is_file() => Ok(()),
                Err(e) => Err(io(&final_dir, e)),
            }
        })();
        let _ = std::fs::remove_dir_all(&tmp);
        result
    }

    /// Total bytes stored.
    pub fn size(&self) -> u64 {
        self.entries().iter().map(|e| e.2).sum()
    }

    fn entries(&self) -> Vec<(PathBuf, SystemTime, u64)> {
        let mut out = Vec::new();
        let Ok(shards) = std::fs::read_dir(self.root.join(LAYOUT)) else { return out };
        for shard in shards.flatten() {
            let Ok(items) = std::fs::read_dir(shard.path()) else { continue };
            for item in items.flatten() {
                let dir = item.path();
                let used = std::fs::metadata(dir.join("manifest.json"))
                    .and_then(|m| m.modified())
                    .unwrap_or(SystemTime::UNIX_EPOCH);
                let size: u64 = std::fs::read_dir(&dir)
                    .map(|it| it.flatten().filter_map(|f| f.metadata().ok()).map(|m| m.len()).sum())
                    .unwrap_or(0);
                out.push((dir, used, size));
            }
        }
        out
    }

    /// Removes least recently used entries until the folder is under its limit. Returns the
    /// number of entries removed.
    pub fn evict_to_limit(&self) -> usize {
        let mut entries = self.entries();
        let mut total: u64 = entries.iter().map(|e| e.2).sum();
        if total <= self.limit {
            return 0;
        }
        entries.sort_by(|a, b| a.1.cmp(&b.1).then(a.0.cmp(&b.0)));
        let mut removed = 0;
        for (dir, _, size) in entries {
            if total <= self.limit {
                break;
            }
            if std::fs::remove_dir_all(&dir).is_ok() {
                total = total.saturating_sub(size);
                removed += 1;
            }
        }
        removed
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use petri_api::Stack;

    fn outputs(n: usize) -> OutputMap {
        let s = Stack::from_2d(1, n, vec![7u8; n]).unwrap();
        Arc::new([("image".to_string(), Value::Image(s))].into())
    }

    #[test]
    fn memory_cache_evicts_cheap_bytes_first_but_not_the_current_run() {
        let mut m = MemoryCache::new(3000);
        m.begin_run(1);
        m.insert([1; 32], outputs(1000), 10.0); // expensive
        m.insert([2; 32], outputs(1000), 0.001); // cheap
        m.begin_run(2);
        m.insert([3; 32], outputs(1000), 1.0);
        assert!(m.contains(&[1; 32]) && !m.contains(&[2; 32]) && m.contains(&[3; 32]));
        // Entries of the run in progress stay even over budget.
        m.insert([4; 32], outputs(5000), 0.0);
        assert!(m.contains(&[3; 32]) && m.contains(&[4; 32]));
        assert!(!m.contains(&[1; 32]));
    }

    #[test]
    fn disk_cache_round_trips_detects_corruption_and_evicts() {
        let d = tempfile::tempdir().unwrap();
        let c = DiskCache::open(d.path(), 1 << 30).unwrap();
        let k = [9u8; 32];
        assert!(c.load(&k).unwrap().is_none());
        c.store(&k, "t.x", &outputs(100), 0.5).unwrap();
        let back = c.load(&k).unwrap().unwrap();
        assert_eq!(back["image"].as_stack().unwrap().pixels::<u8>().unwrap(), &[7u8; 100][..]);
        // Flip a byte of the payload: the entry is refused and removed.
        let f = c.entry_dir(&k).join("0.bin");
        let mut bytes = std::fs::read(&f).unwrap();
        let n = bytes.len();
        bytes[n - 1] ^= 0xff;
        std::fs::write(&f, bytes).unwrap();
        assert!(matches!(c.load(&k), Err(DiskCacheError::Corrupt { .. })));
        assert!(!c.contains(&k));
        // LRU eviction under a small limit keeps the most recently used.
        let small = DiskCache::open(d.path(), 900).unwrap();
        for i in 0..3u8 {
            small.store(&[i; 32], "t.x", &outputs(300), 0.1).unwrap();
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        assert!(small.evict_to_limit() >= 1);
        assert!(small.contains(&[2; 32]) && !small.contains(&[0; 32]));
        assert!(small.size() <= 900);
    }
}
