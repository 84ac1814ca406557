//! `Table`: named, typed columns (measurements, metrics, tracks).

use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum ColumnData {
    F64(Vec<f64>),
    I64(Vec<i64>),
    Str(Vec<String>),
}

impl ColumnData {
    pub fn len(&self) -> usize {
        match self {
            ColumnData::F64(v) => v.len(),
            ColumnData::I64(v) => v.len(),
            ColumnData::Str(v) => v.len(),
        }
    }
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The cell at `row` as text, formatted deterministically (shortest round-trip float form).
    pub fn cell(&self, row: usize) -> String {
        match self {
            ColumnData::F64(v) => format_f64(v[row]),
            ColumnData::I64(v) => v[row].to_string(),
            ColumnData::Str(v) => v[row].clone(),
        }
    }

    /// The cell at `row` as a number, if numeric.
    pub fn number(&self, row: usize) -> Option<f64> {
        match self {
            ColumnData::F64(v) => v.get(row).copied(),
            ColumnData::I64(v) => v.get(row).map(|&x| x as f64),
            ColumnData::Str(_) => None,
        }
    }
}

/// Shortest representation that reads back to the same f64 (Rust's `Display`), with "nan",
/// "inf" and "-inf" spelled the way pandas and numpy read them.
pub fn format_f64(x: f64) -> String {
    if x.is_nan() {
        "nan".into()
    } else if x.is_infinite() {
        if x > 0.0 { "inf".into() } else { "-inf".into() }
    } else {
        format!("{x}")
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Column {
    pub name: String,
    pub data: ColumnData,
}

/// Columns in a fixed order; every column has the same number of rows.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Table {
    columns: Vec<Column>,
}

impl Table {
    pub fn new() -> Table {
        Table::default()
    }

    /// Adds a column. Errors if its length differs from the others or the name is taken.
    pub fn push(&mut self, name: impl Into<String>, data: ColumnData) -> Result<(), String> {
        let name = name.into();
        if self.columns.iter().any(|c| c.name == name) {
            return Err(format!("duplicate column '{name}'"));
        }
        if let Some(first) = self.columns.first() {
            if first.data.len() != data.len() {
                return Err(format!(
                    "column '{name}' has {} rows but '{}' has {}",
                    data.len(),
                    first.name,
                    first.data.len()
                ));
            }
        }
        self.columns.push(Column { name, data });
        Ok(())
    }

    /// Builder form of [`Table::push`] for code that knows its columns line up.
    pub fn with(mut self, name: impl Into<String>, data: ColumnData) -> Result<Table, String> {
        self.push(name, data)?;
        Ok(self)
    }

    pub fn columns(&self) -> &[Column] {
        &self.columns
    }

    pub fn column(&self, name: &str) -> Option<&ColumnData> {
        self.columns.iter().find(|c| c.name == name).map(|c| &c.data)
    }

    pub fn n_rows(&self) -> usize {
        self.columns.first().map_or(0, |c| c.data.len())
    }

    pub fn n_cols(&self) -> usize {
        self.columns.len()
    }

    /// Approximate heap size, for the cache's byte budget.
    pub fn byte_size(&self) -> usize {
        self.columns
            .iter()
            .map(|c| match &c.data {
                ColumnData::F64(v) => v.len() * 8,
                ColumnData::I64(v) => v.len() * 8,
                ColumnData::Str(v) => v.iter().map(|s| s.len() + 24).sum(),
            })
            .sum()
    }
}
