//! Parameters: their untyped values (as saved in graph files), their declared kinds, and the
//! single check that every entry point (file loader, `--set`, GUI inspector) goes through.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::{Serialize, Serializer};

use crate::node::NodeError;

/// An untyped parameter value, as written in a graph file. Rich enough to hold anything a
/// future Petri may write, so a node of unknown type is saved back unchanged.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(untagged)]
pub enum ParamValue {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
    List(Vec<ParamValue>),
    Map(BTreeMap<String, ParamValue>),
}

impl ParamValue {
    /// Short description of what this value is, for error messages.
    pub fn kind_name(&self) -> &'static str {
        match self {
            ParamValue::Null => "nothing",
            ParamValue::Bool(_) => "a boolean",
            ParamValue::Int(_) => "an integer",
            ParamValue::Float(_) => "a number",
            ParamValue::Str(_) => "a string",
            ParamValue::List(_) => "a list",
            ParamValue::Map(_) => "a map",
        }
    }

    fn as_number(&self) -> Option<f64> {
        match self {
            ParamValue::Int(i) => Some(*i as f64),
            ParamValue::Float(f) => Some(*f),
            _ => None,
        }
    }

    /// Feeds a canonical, type-tagged byte form into a hasher (for cache keys).
    /// Map keys are sorted (BTreeMap), floats hashed by bit pattern.
    pub fn hash_into(&self, h: &mut blake3::Hasher) {
        match self {
            ParamValue::Null => {
                h.update(b"n");
            }
            ParamValue::Bool(b) => {
                h.update(if *b { b"bT" } else { b"bF" });
            }
            ParamValue::Int(i) => {
                h.update(b"i");
                h.update(&i.to_le_bytes());
            }
            ParamValue::Float(f) => {
                h.update(b"f");
                h.update(&f.to_bits().to_le_bytes());
            }
            ParamValue::Str(s) => {
                h.update(b"s");
                h.update(&(s.len() as u64).to_le_bytes());
                h.update(s.as_bytes());
            }
            ParamValue::List(v) => {
                h.update(b"l");
                h.update(&(v.len() as u64).to_le_bytes());
                for x in v {
                    x.hash_into(h);
                }
            }
            ParamValue::Map(m) => {
                h.update(b"m");
                h.update(&(m.len() as u64).to_le_bytes());
                for (k, v) in m {
                    h.update(&(k.len() as u64).to_le_bytes());
                    h.update(k.as_bytes());
                    v.hash_into(h);
                }
            }
        }
    }
}

impl std::fmt::Display for ParamValue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ParamValue::Null => f.write_str("None"),
            ParamValue::Bool(b) => write!(f, "{b}"),
            ParamValue::Int(i) => write!(f, "{i}"),
            ParamValue::Float(x) => write!(f, "{x:?}"),
            ParamValue::Str(s) => write!(f, "{s:?}"),
            ParamValue::List(v) => {
                f.write_str("[")?;
                for (i, x) in v.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    write!(f, "{x}")?;
                }
                f.write_str("]")
            }
            ParamValue::Map(m) => {
                f.write_str("{")?;
                for (i, (k, v)) in m.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    write!(f, "{k:?}: {v}")?;
                }
                f.write_str("}")
            }
        }
    }
}

/// Whether a path parameter is read or written, which decides how the engine resolves it
/// (written paths may not leave the output folder the user chose).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum PathMode {
    /// An existing file (or folder, if `folder` is true).
    Read {
        folder: bool,
    },
    Write,
}

#[derive(Clone, Debug, PartialEq)]
pub enum ParamKind {
    Bool,
    Int {
        min: Option<i64>,
        max: Option<i64>,
    },
    /// `min_exclusive`: the value must be strictly greater than `min` (e.g. sigma > 0).
    Float {
        min: Option<f64>,
        max: Option<f64>,
        min_exclusive: bool,
    },
    /// One number, or one per spatial axis in Z, Y, X order (at most `max_len`).
    Floats {
        min: Option<f64>,
        max: Option<f64>,
        min_exclusive: bool,
        max_len: usize,
    },
    Str,
    Choice(Vec<String>),
    /// `filters`: file extensions offered by file pickers (without the dot).
    Path {
        mode: PathMode,
        filters: Vec<String>,
    },
}

impl ParamKind {
    pub fn name(&self) -> &'static str {
        match self {
            ParamKind::Bool => "bool",
            ParamKind::Int { .. } => "int",
            ParamKind::Float { .. } => "float",
            ParamKind::Floats { .. } => "floats",
            ParamKind::Str => "string",
            ParamKind::Choice(_) => "choice",
            ParamKind::Path { mode: PathMode::Read { .. }, .. } => "path",
            ParamKind::Path { mode: PathMode::Write, .. } => "output_path",
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct ParamSpec {
    pub name: String,
    pub kind: ParamKind,
    pub default: ParamValue,
    /// May be left empty (`None` in the file).
    pub nullable: bool,
    /// Tooltip in the GUI and the line in docs/nodes.md.
    pub doc: String,
}

impl Serialize for ParamSpec {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let (min, max) = match &self.kind {
            ParamKind::Int { min, max } => (min.map(|v| v as f64), max.map(|v| v as f64)),
            ParamKind::Float { min, max, .. } | ParamKind::Floats { min, max, .. } => (*min, *max),
            _ => (None, None),
        };
        let choices = match &self.kind {
            ParamKind::Choice(c) => Some(c.clone()),
            _ => None,
        };
        let mut m = s.serialize_map(Some(7))?;
        m.serialize_entry("name", &self.name)?;
        m.serialize_entry("kind", self.kind.name())?;
        m.serialize_entry("default", &self.default)?;
        m.serialize_entry("min", &min)?;
        m.serialize_entry("max", &max)?;
        m.serialize_entry("choices", &choices)?;
        m.serialize_entry("doc", &self.doc)?;
        m.end()
    }
}

impl ParamSpec {
    fn make(name: &str, kind: ParamKind, default: ParamValue, doc: &str) -> ParamSpec {
        ParamSpec { name: name.into(), kind, default, nullable: false, doc: doc.into() }
    }

    pub fn bool(name: &str, default: bool, doc: &str) -> ParamSpec {
        Self::make(name, ParamKind::Bool, ParamValue::Bool(default), doc)
    }

    pub fn int(name: &str, default: i64, doc: &str) -> ParamSpec {
        Self::make(name, ParamKind::Int { min: None, max: None }, ParamValue::Int(default), doc)
    }

    pub fn float(name: &str, default: f64, doc: &str) -> ParamSpec {
        Self::make(
            name,
            ParamKind::Float { min: None, max: None, min_exclusive: false },
            ParamValue::Float(default),
            doc,
        )
    }

    /// One number or one per axis (Z, Y, X), at most `max_len` of them.
    pub fn floats(name: &str, default: f64, max_len: usize, doc: &str) -> ParamSpec {
        Self::make(
            name,
            ParamKind::Floats { min: None, max: None, min_exclusive: false, max_len },
            ParamValue::Float(default),
            doc,
        )
    }

    pub fn string(name: &str, default: &str, doc: &str) -> ParamSpec {
        Self::make(name, ParamKind::Str, ParamValue::Str(default.into()), doc)
    }

    pub fn choice(name: &str, choices: &[&str], default: &str, doc: &str) -> ParamSpec {
        Self::make(
            name,
            ParamKind::Choice(choices.iter().map(|s| s.to_string()).collect()),
            ParamValue::Str(default.into()),
            doc,
        )
    }

    /// A file (or folder) the node reads; relative paths resolve against the graph file's folder.
    pub fn input_path(name: &str, default: &str, filters: &[&str], doc: &str) -> ParamSpec {
        Self::make(
            name,
            ParamKind::Path {
                mode: PathMode::Read { folder: false },
                filters: filters.iter().map(|s| s.to_string()).collect(),
            },
            ParamValue::Str(default.into()),
            doc,
        )
    }

    /// A file the node writes; relative paths resolve against the run's output folder.
    pub fn output_path(name: &str, default: &str, filters: &[&str], doc: &str) -> ParamSpec {
        Self::make(
            name,
            ParamKind::Path { mode: PathMode::Write, filters: filters.iter().map(|s| s.to_string()).collect() },
            ParamValue::Str(default.into()),
            doc,
        )
    }

    /// Also accept folders for an input path.
    pub fn folder_ok(mut self) -> ParamSpec {
        if let ParamKind::Path { mode: PathMode::Read { folder }, .. } = &mut self.kind {
            *folder = true;
        }
        self
    }

    /// Inclusive range for numbers.
    pub fn range(mut self, lo: f64, hi: f64) -> ParamSpec {
        match &mut self.kind {
            ParamKind::Int { min, max } => {
                *min = Some(lo as i64);
                *max = Some(hi as i64);
            }
            ParamKind::Float { min, max, .. } | ParamKind::Floats { min, max, .. } => {
                *min = Some(lo);
                *max = Some(hi);
            }
            _ => {}
        }
        self
    }

    pub fn min(mut self, lo: f64) -> ParamSpec {
        match &mut self.kind {
            ParamKind::Int { min, .. } => *min = Some(lo as i64),
            ParamKind::Float { min, .. } | ParamKind::Floats { min, .. } => *min = Some(lo),
            _ => {}
        }
        self
    }

    /// The value must be strictly greater than `lo`.
    pub fn greater_than(mut self, lo: f64) -> ParamSpec {
        match &mut self.kind {
            ParamKind::Float { min, min_exclusive, .. } | ParamKind::Floats { min, min_exclusive, .. } => {
                *min = Some(lo);
                *min_exclusive = true;
            }
            ParamKind::Int { min, .. } => *min = Some(lo as i64 + 1),
            _ => {}
        }
        self
    }

    pub fn nullable(mut self) -> ParamSpec {
        self.nullable = true;
        self
    }

    pub fn default_null(mut self) -> ParamSpec {
        self.nullable = true;
        self.default = ParamValue::Null;
        self
    }

    /// Like [`ParamSpec::check`], telling a value of the wrong kind from one out of range.
    pub fn check_kind(&self, v: &ParamValue) -> Result<ParamValue, ParamError> {
        self.check(v).map_err(|message| {
            let kind = if message.starts_with("expected") || message.starts_with("item") && message.contains("expected")
            {
                ParamErrorKind::WrongKind
            } else if message.contains("NaN") || message.contains("infinite") {
                ParamErrorKind::NotFinite
            } else if message.starts_with("a value is required") {
                ParamErrorKind::Required
            } else {
                ParamErrorKind::OutOfRange
            };
            ParamError { kind, message }
        })
    }

    /// Checks `v` against this parameter's kind and range, and returns it in canonical form
    /// (an integer where a float is expected becomes a float). The message does not name the
    /// parameter: callers add the node and parameter names.
    pub fn check(&self, v: &ParamValue) -> Result<ParamValue, String> {
        if *v == ParamValue::Null {
            return if self.nullable { Ok(ParamValue::Null) } else { Err("a value is required".into()) };
        }
        match &self.kind {
            ParamKind::Bool => match v {
                ParamValue::Bool(_) => Ok(v.clone()),
                _ => Err(format!("expected true or false, got {} ({v})", v.kind_name())),
            },
            ParamKind::Int { min, max } => match v {
                ParamValue::Int(i) => {
                    if let Some(lo) = min {
                        if i < lo {
                            return Err(format!("must be at least {lo}, got {i}"));
                        }
                    }
                    if let Some(hi) = max {
                        if i > hi {
                            return Err(format!("must be at most {hi}, got {i}"));
                        }
                    }
                    Ok(v.clone())
                }
                ParamValue::Float(f) if f.fract() == 0.0 && f.is_finite() && f.abs() < 9e15 => {
                    self.check(&ParamValue::Int(*f as i64))
                }
                _ => Err(format!("expected an integer, got {} ({v})", v.kind_name())),
            },
            ParamKind::Float { min, max, min_exclusive } => {
                let x = v.as_number().ok_or_else(|| format!("expected a number, got {} ({v})", v.kind_name()))?;
                check_number(x, *min, *max, *min_exclusive)?;
                Ok(ParamValue::Float(x))
            }
            ParamKind::Floats { min, max, min_exclusive, max_len } => match v {
                ParamValue::List(items) => {
                    if items.is_empty() || items.len() > *max_len {
                        return Err(format!(
                            "expected one number or a list of 1 to {max_len} numbers, got {} items",
                            items.len()
                        ));
                    }
                    let mut out = Vec::with_capacity(items.len());
                    for (i, it) in items.iter().enumerate() {
                        let x = it
                            .as_number()
                            .ok_or_else(|| format!("item {i}: expected a number, got {} ({it})", it.kind_name()))?;
                        check_number(x, *min, *max, *min_exclusive).map_err(|e| format!("item {i}: {e}"))?;
                        out.push(ParamValue::Float(x));
                    }
                    Ok(ParamValue::List(out))
                }
                _ => {
                    let x = v.as_number().ok_or_else(|| {
                        format!("expected a number or a list of numbers, got {} ({v})", v.kind_name())
                    })?;
                    check_number(x, *min, *max, *min_exclusive)?;
                    Ok(ParamValue::Float(x))
                }
            },
            ParamKind::Str => match v {
                ParamValue::Str(_) => Ok(v.clone()),
                _ => Err(format!("expected a string, got {} ({v})", v.kind_name())),
            },
            ParamKind::Choice(choices) => match v {
                ParamValue::Str(s) if choices.iter().any(|c| c == s) => Ok(v.clone()),
                ParamValue::Str(s) => Err(format!("must be one of {}, got {s:?}", choices.join(", "))),
                _ => Err(format!("expected one of {}, got {} ({v})", choices.join(", "), v.kind_name())),
            },
            ParamKind::Path { .. } => match v {
                ParamValue::Str(s) if s.contains('\0') => Err("a path may not contain a NUL character".into()),
                ParamValue::Str(_) => Ok(v.clone()),
                _ => Err(format!("expected a path (a string), got {} ({v})", v.kind_name())),
            },
        }
    }
}

/// What is wrong with a parameter value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ParamErrorKind {
    WrongKind,
    OutOfRange,
    NotFinite,
    Required,
}

#[derive(Clone, Debug, PartialEq)]
pub struct ParamError {
    pub kind: ParamErrorKind,
    pub message: String,
}

fn check_number(x: f64, min: Option<f64>, max: Option<f64>, min_exclusive: bool) -> Result<(), String> {
    if x.is_nan() {
        return Err("NaN is not allowed".into());
    }
    if x.is_infinite() {
        return Err("an infinite value is not allowed".into());
    }
    if let Some(lo) = min {
        if min_exclusive && x <= lo {
            return Err(format!("must be greater than {lo}, got {x}"));
        }
        if !min_exclusive && x < lo {
            return Err(format!("must be at least {lo}, got {x}"));
        }
    }
    if let Some(hi) = max {
        if x > hi {
            return Err(format!("must be at most {hi}, got {x}"));
        }
    }
    Ok(())
}

/// The checked parameters a node runs with: every declared parameter is present (defaults
/// filled in), values are in canonical form, and path parameters are already resolved.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Params {
    values: BTreeMap<String, ParamValue>,
}

impl Params {
    pub fn new(values: BTreeMap<String, ParamValue>) -> Params {
        Params { values }
    }

    pub fn values(&self) -> &BTreeMap<String, ParamValue> {
        &self.values
    }

    pub fn set(&mut self, name: &str, v: ParamValue) {
        self.values.insert(name.into(), v);
    }

    pub fn get(&self, name: &str) -> Result<&ParamValue, NodeError> {
        self.values.get(name).ok_or_else(|| NodeError::param(name, "missing"))
    }

    pub fn is_null(&self, name: &str) -> bool {
        matches!(self.values.get(name), None | Some(ParamValue::Null))
    }

    pub fn bool(&self, name: &str) -> Result<bool, NodeError> {
        match self.get(name)? {
            ParamValue::Bool(b) => Ok(*b),
            v => Err(NodeError::param(name, format!("expected a boolean, got {v}"))),
        }
    }

    pub fn i64(&self, name: &str) -> Result<i64, NodeError> {
        match self.get(name)? {
            ParamValue::Int(i) => Ok(*i),
            v => Err(NodeError::param(name, format!("expected an integer, got {v}"))),
        }
    }

    /// A non-negative integer as usize.
    pub fn usize(&self, name: &str) -> Result<usize, NodeError> {
        let i = self.i64(name)?;
        usize::try_from(i).map_err(|_| NodeError::param(name, format!("must not be negative, got {i}")))
    }

    pub fn f64(&self, name: &str) -> Result<f64, NodeError> {
        match self.get(name)? {
            ParamValue::Float(x) => Ok(*x),
            ParamValue::Int(i) => Ok(*i as f64),
            v => Err(NodeError::param(name, format!("expected a number, got {v}"))),
        }
    }

    /// A `floats` parameter: one value, or one per axis.
    pub fn floats(&self, name: &str) -> Result<Vec<f64>, NodeError> {
        match self.get(name)? {
            ParamValue::Float(x) => Ok(vec![*x]),
            ParamValue::Int(i) => Ok(vec![*i as f64]),
            ParamValue::List(items) => items
                .iter()
                .map(|v| v.as_number().ok_or_else(|| NodeError::param(name, format!("expected numbers, got {v}"))))
                .collect(),
            v => Err(NodeError::param(name, format!("expected numbers, got {v}"))),
        }
    }

    /// A `floats` parameter expanded to `n` axes: a single value is repeated; a list must
    /// have exactly `n` items.
    pub fn floats_n(&self, name: &str, n: usize) -> Result<Vec<f64>, NodeError> {
        let v = self.floats(name)?;
        match v.len() {
            1 => Ok(vec![v[0]; n]),
            k if k == n => Ok(v),
            k => Err(NodeError::param(name, format!("gives {k} values but the image has {n} spatial axes"))),
        }
    }

    pub fn str(&self, name: &str) -> Result<&str, NodeError> {
        match self.get(name)? {
            ParamValue::Str(s) => Ok(s),
            v => Err(NodeError::param(name, format!("expected a string, got {v}"))),
        }
    }

    /// A path parameter, already resolved by the engine.
    pub fn path(&self, name: &str) -> Result<PathBuf, NodeError> {
        let s = self.str(name)?;
        if s.is_empty() {
            return Err(NodeError::param(name, "no path given"));
        }
        Ok(PathBuf::from(s))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn check_coerces_and_rejects() {
        let sigma = ParamSpec::floats("sigma", 1.0, 3, "").greater_than(0.0);
        assert_eq!(sigma.check(&ParamValue::Int(2)), Ok(ParamValue::Float(2.0)));
        assert!(sigma.check(&ParamValue::Float(0.0)).unwrap_err().contains("greater than 0"));
        assert!(sigma.check(&ParamValue::Float(f64::NAN)).unwrap_err().contains("NaN"));
        assert!(sigma.check(&ParamValue::Str("x".into())).is_err());
        assert!(sigma.check(&ParamValue::List(vec![ParamValue::Float(1.0); 4])).is_err());
        assert!(sigma.check(&ParamValue::Null).is_err());
        let m = ParamSpec::choice("method", &["otsu", "manual"], "otsu", "");
        assert!(m.check(&ParamValue::Str("li".into())).unwrap_err().contains("otsu, manual"));
        let n = ParamSpec::int("n", 3, "").range(1.0, 5.0);
        assert_eq!(n.check(&ParamValue::Float(4.0)), Ok(ParamValue::Int(4)));
        assert!(n.check(&ParamValue::Float(4.5)).is_err());
        assert!(n.check(&ParamValue::Int(9)).unwrap_err().contains("at most 5"));
    }

    #[test]
    fn hashing_distinguishes_types_and_order() {
        let h = |v: &ParamValue| {
            let mut h = blake3::Hasher::new();
            v.hash_into(&mut h);
            h.finalize()
        };
        assert_ne!(h(&ParamValue::Int(1)), h(&ParamValue::Float(1.0)));
        assert_ne!(
            h(&ParamValue::List(vec![ParamValue::Int(1), ParamValue::Int(2)])),
            h(&ParamValue::List(vec![ParamValue::Int(2), ParamValue::Int(1)]))
        );
        assert_eq!(h(&ParamValue::Str("a".into())), h(&ParamValue::Str("a".into())));
    }
}
