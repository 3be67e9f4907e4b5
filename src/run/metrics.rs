//! The metrics log of a run: `metrics.jsonl` grows by one JSON object per
//! logged record as training goes (so a crash keeps everything logged so
//! far), and `metrics.csv` is written from the same records at the end for
//! spreadsheet and pandas users.
//!
//! Non-finite floats appear as the strings `"nan"`, `"inf"`, `"-inf"` in the
//! JSONL (JSON has no NaN) and as `nan`, `inf`, `-inf` in the CSV.

use std::collections::HashMap;
use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};

use super::atomic::write_atomic;
use super::record::Record;
use crate::error::{Error, Result};

pub struct MetricsLog {
    jsonl_path: PathBuf,
    csv_path: PathBuf,
    jsonl: File,
    records: Vec<Record>,
}

impl MetricsLog {
    /// Creates (or truncates) `dir/metrics.jsonl`; `dir` must exist.
    pub fn create(dir: &Path) -> Result<Self> {
        let jsonl_path = dir.join("metrics.jsonl");
        let jsonl = File::create(&jsonl_path).map_err(|e| Error::io(&jsonl_path, e))?;
        Ok(MetricsLog {
            jsonl_path,
            csv_path: dir.join("metrics.csv"),
            jsonl,
            records: Vec::new(),
        })
    }

    /// Appends `record` as one line. The line goes to the OS in a single
    /// unbuffered write, so a killed process loses nothing already logged;
    /// no fsync per record, which would dominate the cost of a fast step.
    pub fn log(&mut self, record: &Record) -> Result<()> {
        let mut line = serde_json::to_vec(record)
            .map_err(|e| Error::msg(format!("{}: {e}", self.jsonl_path.display())))?;
        line.push(b'\n');
        self.jsonl
            .write_all(&line)
            .map_err(|e| Error::io(&self.jsonl_path, e))?;
        self.records.push(record.clone());
        Ok(())
    }

    pub fn records(&self) -> &[Record] {
        &self.records
    }

    /// `(step, value)` of every record holding a finite numeric `key`, for
    /// plotting.
    pub fn series(&self, key: &str) -> Vec<(f64, f64)> {
        self.records
            .iter()
            .filter_map(|r| {
                let step = r.get("step")?.as_f64()?;
                let value = r.get(key)?.as_f64()?;
                (step.is_finite() && value.is_finite()).then_some((step, value))
            })
            .collect()
    }

    /// Writes `metrics.csv` atomically: columns are every key seen, in
    /// first-seen order with `step` first; a record lacking a key gets an
    /// empty cell (e.g. test metrics logged only every few steps).
    pub fn write_csv(&self) -> Result<()> {
        let mut columns: Vec<&str> = vec!["step"];
        let mut index: HashMap<&str, usize> = HashMap::from([("step", 0)]);
        for record in &self.records {
            for (key, _) in record.iter() {
                index.entry(key).or_insert_with(|| {
                    columns.push(key);
                    columns.len() - 1
                });
            }
        }

        let mut out = String::new();
        push_row(&mut out, columns.iter().map(|c| c.to_string()));
        for record in &self.records {
            let mut cells = vec![String::new(); columns.len()];
            for (key, value) in record.iter() {
                cells[index[key]] = value.to_string();
            }
            push_row(&mut out, cells.into_iter());
        }
        write_atomic(&self.csv_path, out.as_bytes())
    }
}

/// Appends one CSV line, quoting cells as RFC 4180 requires.
pub(crate) fn push_row(out: &mut String, cells: impl Iterator<Item = String>) {
    for (i, cell) in cells.enumerate() {
        if i > 0 {
            out.push(',');
        }
        if cell.contains([',', '"', '\n', '\r']) {
            out.push('"');
            out.push_str(&cell.replace('"', "\"\""));
            out.push('"');
        } else {
            out.push_str(&cell);
        }
    }
    out.push('\n');
}
