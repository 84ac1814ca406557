//! `io.save_table`: writes a table as CSV.

use std::path::Path;
use std::sync::Arc;

use petri_api::{
    FileRef, Inputs, Node, NodeCtx, NodeError, NodeSpec, Outputs, ParamSpec, Params, PortType, Table, Value,
};

use crate::util::write_atomic;

/// Writes `table` as CSV: a header row of column names, then one row per table row, cells as
/// `ColumnData::cell` formats them, quoted where needed (RFC 4180). Atomic like every writer.
pub fn save_table(table: &Table, path: &Path) -> Result<(), NodeError> {
    write_atomic(path, |w| {
        let mut csv = csv::WriterBuilder::new().from_writer(w);
        let e = |e: csv::Error| format!("CSV write failed: {e}");
        csv.write_record(table.columns().iter().map(|c| c.name.as_str())).map_err(e)?;
        for row in 0..table.n_rows() {
            csv.write_record(table.columns().iter().map(|c| c.data.cell(row))).map_err(e)?;
        }
        csv.flush().map_err(|err| format!("CSV write failed: {err}"))
    })
}

pub struct SaveTable;

impl Node for SaveTable {
    fn spec(&self) -> NodeSpec {
        NodeSpec::new(
            "io.save_table",
            1,
            "io",
            "Saves a table (measurements, metrics, tracks) as a CSV file for Excel, R or Python.",
        )
        .input("table", PortType::Table, "The table to save.")
        .param(ParamSpec::output_path(
            "path",
            "table.csv",
            &["csv"],
            "CSV file to write. Relative paths are relative to the run's output folder.",
        ))
        .output("file", PortType::File, "The file written.")
    }

    fn run(&self, _ctx: &NodeCtx, params: &Params, inputs: &Inputs) -> Result<Outputs, NodeError> {
        let table = inputs.table("table")?;
        let path = params.path("path")?;
        save_table(table, &path)?;
        let f = FileRef::of(&path).map_err(|e| NodeError::io(&path, e))?;
        Ok(Outputs::new().with("file", Value::File(Arc::new(f))))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use petri_api::ColumnData;

    #[test]
    fn writes_quoted_csv() {
        let t = Table::new()
            .with("label", ColumnData::I64(vec![1, 2]))
            .unwrap()
            .with("area", ColumnData::F64(vec![1.5, f64::NAN]))
            .unwrap()
            .with("name", ColumnData::Str(vec!["a,b".into(), "say \"hi\"".into()]))
            .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("out/t.csv");
        save_table(&t, &p).unwrap();
        let s = std::fs::read_to_string(&p).unwrap();
        assert_eq!(s, "label,area,name\n1,1.5,\"a,b\"\n2,nan,\"say \"\"hi\"\"\"\n");
        let mut r = csv::Reader::from_path(&p).unwrap();
        let rows: Vec<csv::StringRecord> = r.records().map(|x| x.unwrap()).collect();
        assert_eq!(&rows[0][2], "a,b");
        assert_eq!(&rows[1][2], "say \"hi\"");
    }

    #[test]
    fn empty_table_and_bad_path() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("e.csv");
        save_table(&Table::new(), &p).unwrap();
        assert_eq!(std::fs::read_to_string(&p).unwrap(), "\"\"\n");
        let e = save_table(&Table::new(), dir.path()).unwrap_err();
        assert!(e.to_string().contains("folder"), "{e}");
    }
}
