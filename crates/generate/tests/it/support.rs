//! Runs of the generator into temporary directories, read back.

use std::collections::BTreeMap;

use chrono::NaiveDate;
use revspend_core::contract::{Transaction, decode_cp1252, parse_fields};
use revspend_core::params::{Check, Checked, GenerateParams};

/// 400 customers over 210 days in 7 files of 30 days (the seventh starts
/// on 2020-06-29, the 181st day); `scenarios` is YAML list items, or empty.
pub fn params(scenarios: &str) -> Checked<GenerateParams> {
    let mut text = String::from(
        "seed: 42\ncustomers: 400\nrows: 14000\nstart_date: \"2020-01-01\"\ndays: 210\nfiles: 7\n",
    );
    if !scenarios.is_empty() {
        text.push_str("scenarios:\n");
        text.push_str(scenarios);
    }
    let p: GenerateParams = serde_norway::from_str(&text).expect("test params parse");
    p.check().expect("test params are valid")
}

/// The 181st day of the test window, where the seventh file starts.
pub fn day_181() -> NaiveDate {
    NaiveDate::from_ymd_opt(2020, 6, 29).expect("date")
}

/// What a run wrote: each file's name and bytes, and every data line with
/// its parsed transaction, in file order.
pub struct Run {
    pub files: Vec<(String, Vec<u8>)>,
    pub lines: Vec<(Vec<u8>, Transaction)>,
}

impl Run {
    /// The data lines dated before `date`, as written.
    pub fn lines_before(&self, date: NaiveDate) -> Vec<&[u8]> {
        self.lines
            .iter()
            .filter(|(_, t)| t.date < date)
            .map(|(l, _)| l.as_slice())
            .collect()
    }

    /// Each customer's transactions dated on or after `date`, in file order.
    pub fn by_customer_from(&self, date: NaiveDate) -> BTreeMap<String, Vec<&Transaction>> {
        let mut out: BTreeMap<String, Vec<&Transaction>> = BTreeMap::new();
        for (_, t) in self.lines.iter().filter(|(_, t)| t.date >= date) {
            out.entry(t.id.clone()).or_default().push(t);
        }
        out
    }

    pub fn ids(&self) -> std::collections::BTreeSet<&str> {
        self.lines.iter().map(|(_, t)| t.id.as_str()).collect()
    }
}

pub fn generate(params: &Checked<GenerateParams>) -> Run {
    let dir = tempfile::tempdir().expect("temp dir");
    let summary = generate::run(params, dir.path()).expect("generate");
    let mut files = Vec::new();
    let mut lines = Vec::new();
    for path in &summary.files {
        let bytes = std::fs::read(path).expect("read a written file");
        for line in bytes.split(|&b| b == b'\n').skip(1).filter(|l| !l.is_empty()) {
            let text = decode_cp1252(line);
            let fields: Vec<&str> = text.split(';').collect();
            let t = parse_fields(&fields).expect("a generated row follows the contract");
            lines.push((line.to_vec(), t));
        }
        let name = path
            .file_name()
            .expect("file name")
            .to_string_lossy()
            .into_owned();
        files.push((name, bytes));
    }
    assert_eq!(lines.len() as u64, summary.rows);
    Run { files, lines }
}

/// Share of the limit in use at a purchase.
pub fn utilisation(t: &Transaction) -> f64 {
    1.0 - t.limite_disp / t.limite_total
}

pub fn mean(values: impl IntoIterator<Item = f64>) -> f64 {
    let (sum, n) = values.into_iter().fold((0.0, 0usize), |(s, n), v| (s + v, n + 1));
    sum / n as f64
}
