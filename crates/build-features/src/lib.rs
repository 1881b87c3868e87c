//! `build-features`: raw CSV files → master table, splits, online snapshot.
//!
//! Reads every file matching `build_features.raw_glob`, decodes cp1252,
//! parses each row against the data contract (rows that fail go to the
//! quarantine file with file, line and reason), pseudonymises customer ids,
//! builds the target, computes point-in-time features with
//! `revspend_core::features::compute`, splits customers into
//! train/test/holdout/calibration (grouped and stratified), and writes:
//!
//! - the master table (parquet: customer pseudonym, date, lineage, split,
//!   every candidate feature, target) and one parquet file per split;
//! - the ordered feature list the model uses (JSON);
//! - the online snapshot (each customer's history after the last purchase);
//! - the quarantine CSV and a JSON report (rows in = out + quarantined).

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use chrono::{Datelike, NaiveDate};
use polars::prelude::*;
use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;
use revspend_core::artifact::{
    self, CUSTOMER_COLUMN, FeatureList, QuarantinedRow, SPLIT_COLUMN, TARGET_COLUMN,
};
use revspend_core::contract::{self, COLUMNS, Transaction};
use revspend_core::features::{self, Feature, History, OnlineSnapshot};
use revspend_core::params::{BuildFeaturesParams, Checked};
use revspend_core::pseudonym::Pseudonymiser;
use revspend_core::target::TargetRule;
use serde::Serialize;

pub mod leakage;
pub mod quality;
pub mod selection;

/// Histogram bins of the reference profile.
pub const PROFILE_BINS: usize = 20;

/// The split names, in the order their fractions are laid out.
pub const SPLITS: [&str; 4] = ["train", "test", "holdout", "calibration"];

/// Where the stage writes; every path is a CLI flag.
#[derive(Debug, Clone)]
pub struct Outputs {
    pub master: PathBuf,
    pub splits_dir: PathBuf,
    pub feature_list: PathBuf,
    pub snapshot: PathBuf,
    pub quarantine: PathBuf,
    pub report: PathBuf,
    pub leakage_report: PathBuf,
    pub selection_report: PathBuf,
    /// Reference distribution profile of the train split (for drift checks).
    pub profile: PathBuf,
    pub quality_report: PathBuf,
}

/// Per-file row accounting.
#[derive(Debug, Clone, Serialize)]
pub struct FileReport {
    pub path: String,
    pub sha256: String,
    pub rows_in: u64,
    pub rows_out: u64,
    pub rows_quarantined: u64,
}

/// Per-split counts.
#[derive(Debug, Clone, Default, Serialize)]
pub struct SplitReport {
    pub customers: u64,
    pub rows: u64,
    pub positives: u64,
    pub target_rate: f64,
}

/// The stage report (`reports/build_features.json`).
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub rows_in: u64,
    pub rows_out: u64,
    pub rows_quarantined: u64,
    pub customers: u64,
    pub positives: u64,
    pub target_rate: f64,
    pub date_min: Option<NaiveDate>,
    pub date_max: Option<NaiveDate>,
    pub files: Vec<FileReport>,
    /// Quarantined rows per offending field (`row` for a wrong field count).
    pub quarantine_reasons: BTreeMap<String, u64>,
    /// Empty or missing values per raw column, over the rows kept.
    pub raw_nulls: BTreeMap<String, u64>,
    /// Null values per master-table column.
    pub master_nulls: BTreeMap<String, u64>,
    pub splits: BTreeMap<String, SplitReport>,
    pub features: Vec<String>,
    pub pseudonym_key: &'static str,
}

/// A parsed row with where it came from.
struct Parsed {
    file: usize,
    line: u64,
    txn: Transaction,
}

/// Runs the stage; `suite` is the data-quality suite the parsed rows must meet.
pub fn run(
    params: &Checked<BuildFeaturesParams>,
    suite: &quality::Suite,
    out: &Outputs,
    pseudo: &Pseudonymiser,
) -> Result<Report> {
    let files = raw_files(&params.raw_glob)?;
    let mut parsed = Vec::new();
    let mut quarantine = Vec::new();
    let mut file_reports = Vec::new();
    let mut headers = Vec::new();
    for (i, path) in files.iter().enumerate() {
        let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
        let before = (parsed.len(), quarantine.len());
        let (rows_in, header) = parse_file(i, path, &bytes, &mut parsed, &mut quarantine)?;
        headers.push(quality::FileHeader {
            file: file_name(path),
            columns: header,
        });
        file_reports.push(FileReport {
            path: path.display().to_string(),
            sha256: artifact::sha256_hex(&bytes),
            rows_in,
            rows_out: (parsed.len() - before.0) as u64,
            rows_quarantined: (quarantine.len() - before.1) as u64,
        });
    }
    let rows_in: u64 = file_reports.iter().map(|f| f.rows_in).sum();
    if rows_in != parsed.len() as u64 + quarantine.len() as u64 {
        bail!(
            "row accounting broken: {rows_in} rows read, {} kept + {} quarantined",
            parsed.len(),
            quarantine.len()
        );
    }
    log::info!(
        "{} files: {rows_in} rows read, {} parsed, {} quarantined",
        files.len(),
        parsed.len(),
        quarantine.len()
    );

    let rule = params.rule();
    let feature_set = params.feature_set();
    let raw_nulls = raw_nulls(&parsed);

    // Pseudonymise once per distinct id.
    let mut pseudonyms: HashMap<&str, String> = HashMap::new();
    for p in &parsed {
        pseudonyms
            .entry(p.txn.id.as_str())
            .or_insert_with(|| pseudo.pseudonym(&p.txn.id));
    }
    let customer_of: Vec<&str> = parsed
        .iter()
        .map(|p| pseudonyms[p.txn.id.as_str()].as_str())
        .collect();

    // Every expectation runs and is reported before an error fails the stage.
    let staged = staged_frame(&parsed, &files, &customer_of)?;
    let quality = quality::run_suite(suite, &staged, &headers).context("running the quality suite")?;
    artifact::write_json(&out.quality_report, &quality)?;
    quality.ensure_success()?;
    drop(staged);

    // Point-in-time order: per customer, by date, then file, then line.
    let mut order: Vec<usize> = (0..parsed.len()).collect();
    order.sort_by(|&a, &b| {
        (customer_of[a], parsed[a].txn.date, parsed[a].file, parsed[a].line).cmp(&(
            customer_of[b],
            parsed[b].txn.date,
            parsed[b].file,
            parsed[b].line,
        ))
    });

    let table = compute_features(&parsed, &customer_of, &order, &rule);
    let split_of = assign_splits(&table.customer_positive, &params.split)?;

    // Leakage check and feature selection look at the train split only.
    let n = Feature::ALL.len();
    let train_rows: Vec<usize> = (0..order.len())
        .filter(|&r| split_of[customer_of[order[r]]] == "train")
        .collect();
    let columns: Vec<Vec<f64>> = Feature::ALL
        .iter()
        .map(|f| {
            train_rows
                .iter()
                .map(|&r| table.values[r * n + f.index()])
                .collect()
        })
        .collect();
    let y_train: Vec<bool> = train_rows.iter().map(|&r| table.target[r]).collect();
    let leaks = leakage::check(
        &columns,
        &y_train,
        &feature_set,
        &rule,
        &params.leakage,
        params.allow_leaky_features,
    );
    artifact::write_json(&out.leakage_report, &leaks)?;
    if !leaks.flagged_in_feature_set.is_empty() {
        let names = leaks.flagged_in_feature_set.join(", ");
        if params.allow_leaky_features {
            log::warn!(
                "leaky features in the model's feature set, allowed by params for comparison: {names} \
                 (the target rule rebuilt from candidates scores ROC-AUC {:.4})",
                leaks.rule_reconstruction_auc
            );
        } else {
            bail!(
                "leakage check failed: {names} flagged in the feature set (see {}); remove them, or set \
                 build_features.allow_leaky_features: true to compare",
                out.leakage_report.display()
            );
        }
    }
    let (feature_set, selection) = selection::select(&columns, &feature_set, &params.selection);
    artifact::write_json(&out.selection_report, &selection)?;
    if feature_set.is_empty() {
        bail!(
            "feature selection dropped every feature (see {})",
            out.selection_report.display()
        );
    }
    for d in &selection.dropped {
        log::info!("feature {} dropped: {}", d.feature, d.reason);
    }

    let mut df = master_frame(&parsed, &files, &customer_of, &order, &table, &split_of)?;
    artifact::write_table(&out.master, &mut df).context("writing the master table")?;
    let mut splits = BTreeMap::new();
    let split_col: Vec<&str> = order.iter().map(|&i| split_of[customer_of[i]]).collect();
    for name in SPLITS {
        let mask = BooleanChunked::from_slice(
            "mask".into(),
            &split_col.iter().map(|s| *s == name).collect::<Vec<_>>(),
        );
        let mut part = df.filter(&mask)?;
        let path = out.splits_dir.join(format!("{name}.parquet"));
        artifact::write_table(&path, &mut part).with_context(|| format!("writing split {name}"))?;
        if name == "train" {
            let mut numeric: Vec<&str> = Feature::ALL.iter().map(|f| f.name()).collect();
            numeric.push(TARGET_COLUMN);
            let profile = revspend_core::profile::profile(&part, &numeric, &[], PROFILE_BINS)?;
            artifact::write_json(&out.profile, &profile).context("writing the train profile")?;
        }
        let rows = part.height() as u64;
        let positives = part.column(TARGET_COLUMN)?.bool()?.sum().unwrap_or(0) as u64;
        splits.insert(
            name.to_owned(),
            SplitReport {
                customers: split_of.values().filter(|s| **s == name).count() as u64,
                rows,
                positives,
                target_rate: ratio(positives, rows),
            },
        );
    }

    artifact::write_json(
        &out.feature_list,
        &FeatureList {
            features: feature_set.iter().map(|f| f.name().to_owned()).collect(),
            rule: rule.clone(),
        },
    )?;
    artifact::write_snapshot(
        &out.snapshot,
        &OnlineSnapshot {
            as_of: parsed.iter().map(|p| p.txn.date).max(),
            rule: rule.clone(),
            customers: table.final_history,
        },
    )?;
    artifact::write_quarantine(&out.quarantine, &quarantine)?;

    let mut quarantine_reasons = BTreeMap::new();
    for q in &quarantine {
        *quarantine_reasons.entry(q.field.clone()).or_insert(0) += 1;
    }
    let master_nulls = df
        .columns()
        .iter()
        .map(|c| (c.name().to_string(), c.null_count() as u64))
        .collect();
    let positives = table.target.iter().filter(|t| **t).count() as u64;
    let report = Report {
        rows_in,
        rows_out: parsed.len() as u64,
        rows_quarantined: quarantine.len() as u64,
        customers: split_of.len() as u64,
        positives,
        target_rate: ratio(positives, parsed.len() as u64),
        date_min: parsed.iter().map(|p| p.txn.date).min(),
        date_max: parsed.iter().map(|p| p.txn.date).max(),
        files: file_reports,
        quarantine_reasons,
        raw_nulls,
        master_nulls,
        splits,
        features: feature_set.iter().map(|f| f.name().to_owned()).collect(),
        pseudonym_key: if pseudo.is_development_key() {
            "development default"
        } else {
            "from environment"
        },
    };
    artifact::write_json(&out.report, &report)?;
    Ok(report)
}

fn ratio(a: u64, b: u64) -> f64 {
    if b == 0 { 0.0 } else { a as f64 / b as f64 }
}

/// The raw files matching `pattern`, sorted by path so runs are deterministic.
pub fn raw_files(pattern: &str) -> Result<Vec<PathBuf>> {
    let mut files: Vec<PathBuf> = glob::glob(pattern)
        .with_context(|| format!("invalid raw_glob {pattern:?}"))?
        .collect::<Result<_, _>>()
        .with_context(|| format!("listing files for {pattern:?}"))?;
    files.retain(|p| p.is_file());
    files.sort();
    if files.is_empty() {
        bail!("no raw files match build_features.raw_glob {pattern:?}");
    }
    Ok(files)
}

/// Parses one raw file. Returns the number of data rows read; each becomes
/// either a parsed row or a quarantined one. Blank lines are not rows and are
/// skipped. A header that breaks the contract fails the whole file.
///
/// Lines are split by hand rather than with a CSV reader: the contract has
/// no quoting, and the line number of every row must be exact for LF and
/// CRLF files alike (the `csv` crate miscounts lines after a CRLF header).
fn parse_file(
    file: usize,
    path: &Path,
    bytes: &[u8],
    parsed: &mut Vec<Parsed>,
    quarantine: &mut Vec<QuarantinedRow>,
) -> Result<(u64, Vec<String>)> {
    let mut lines = bytes
        .split(|b| *b == b'\n')
        .map(|l| l.strip_suffix(b"\r").unwrap_or(l));
    let header = lines.next().unwrap_or_default();
    if header.is_empty() {
        bail!("{}: empty file (no header)", path.display());
    }
    let header = check_header(path, header)?;
    let mut rows_in = 0u64;
    for (i, raw) in lines.enumerate() {
        let line = i as u64 + 2;
        if raw.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        rows_in += 1;
        let text = contract::decode_cp1252(raw);
        let fields: Vec<&str> = text.split(';').collect();
        match contract::parse_fields(&fields) {
            Ok(txn) => parsed.push(Parsed { file, line, txn }),
            Err(e) => quarantine.push(QuarantinedRow {
                file: path.display().to_string(),
                line,
                field: e.field.trim().to_owned(),
                reason: e.to_string(),
                raw: text.into_owned(),
            }),
        }
    }
    Ok((rows_in, header))
}

/// Checks a header against the contract and returns its decoded columns.
fn check_header(path: &Path, header: &[u8]) -> Result<Vec<String>> {
    let text = contract::decode_cp1252(header);
    let got: Vec<&str> = text.split(';').collect();
    if got.len() != COLUMNS.len() {
        bail!(
            "{}: line 1: header has {} columns, the data contract has {}: expected {:?}, got {:?}",
            path.display(),
            got.len(),
            COLUMNS.len(),
            COLUMNS.join(";"),
            text
        );
    }
    for (i, (g, e)) in got.iter().zip(COLUMNS).enumerate() {
        if *g != e {
            bail!(
                "{}: line 1: header column {} is {g:?}, the data contract says {e:?}",
                path.display(),
                i + 1
            );
        }
    }
    Ok(got.iter().map(|c| (*c).to_owned()).collect())
}

fn file_name(path: &Path) -> String {
    path.file_name().map_or_else(
        || path.display().to_string(),
        |n| n.to_string_lossy().into_owned(),
    )
}

fn raw_nulls(parsed: &[Parsed]) -> BTreeMap<String, u64> {
    let mut counts: BTreeMap<String, u64> = COLUMNS.iter().map(|c| (c.trim().to_owned(), 0)).collect();
    let mut bump = |name: &str, missing: bool| {
        if missing {
            *counts.entry(name.to_owned()).or_insert(0) += 1;
        }
    };
    for p in parsed {
        let t = &p.txn;
        bump("safra_abertura", t.safra_abertura.is_none());
        bump("cidade", t.cidade.is_empty());
        bump("estado", t.estado.is_empty());
        bump("idade", t.idade.is_none());
        bump("sexo", t.sexo.is_none());
        bump("valor", t.valor.is_none());
        bump("grupo_estabelecimento", t.grupo.is_empty());
        bump("cidade_estabelecimento", t.cidade_estabelecimento.is_empty());
        bump("pais_estabelecimento", t.pais_estabelecimento.is_empty());
    }
    counts
}

/// Features and targets in `order`, plus per-customer results.
struct FeatureTable {
    /// Row-major, `Feature::ALL.len()` values per row, in `order`.
    values: Vec<f64>,
    target: Vec<bool>,
    customer_positive: BTreeMap<String, bool>,
    final_history: BTreeMap<String, History>,
}

fn compute_features(
    parsed: &[Parsed],
    customer_of: &[&str],
    order: &[usize],
    rule: &TargetRule,
) -> FeatureTable {
    let n = Feature::ALL.len();
    let mut values = Vec::with_capacity(order.len() * n);
    let mut target = Vec::with_capacity(order.len());
    let mut customer_positive = BTreeMap::new();
    let mut final_history = BTreeMap::new();
    let mut start = 0;
    while start < order.len() {
        let customer = customer_of[order[start]];
        let end = start + order[start..].partition_point(|&i| customer_of[i] == customer);
        let mut history = History::default();
        let mut any_positive = false;
        for &i in &order[start..end] {
            let txn = &parsed[i].txn;
            values.extend_from_slice(&features::compute(&history, txn, rule));
            let y = rule.is_revenge(txn);
            any_positive |= y;
            target.push(y);
            history.record(txn, rule);
        }
        customer_positive.insert(customer.to_owned(), any_positive);
        final_history.insert(customer.to_owned(), history);
        start = end;
    }
    FeatureTable {
        values,
        target,
        customer_positive,
        final_history,
    }
}

/// Assigns each customer to a split: customers with and without any revenge
/// purchase are shuffled separately (seeded) and cut by the fractions, so
/// every split gets its share of both and no customer is in two splits.
fn assign_splits(
    customer_positive: &BTreeMap<String, bool>,
    split: &revspend_core::params::SplitParams,
) -> Result<BTreeMap<String, &'static str>> {
    let fractions = [split.train, split.test, split.holdout, split.calibration];
    let mut rng = ChaCha8Rng::seed_from_u64(split.seed);
    let mut out = BTreeMap::new();
    for stratum in [true, false] {
        let mut members: Vec<&String> = customer_positive
            .iter()
            .filter(|(_, p)| **p == stratum)
            .map(|(c, _)| c)
            .collect();
        members.shuffle(&mut rng);
        let n = members.len() as f64;
        let mut bounds = [0usize; 4];
        let mut cum = 0.0;
        for (b, f) in bounds.iter_mut().zip(fractions) {
            cum += f;
            *b = (cum * n).round() as usize;
        }
        for (k, c) in members.into_iter().enumerate() {
            let s = bounds.iter().position(|&b| k < b).unwrap_or(SPLITS.len() - 1);
            out.insert(c.clone(), SPLITS[s]);
        }
    }
    Ok(out)
}

/// The parsed rows as a typed table (raw column names, pseudonymised
/// customer), in file/line order: what the quality suite checks.
pub(crate) fn staged_frame(parsed: &[Parsed], files: &[PathBuf], customer_of: &[&str]) -> Result<DataFrame> {
    let epoch = NaiveDate::from_ymd_opt(1970, 1, 1).map_or(719_163, |d| d.num_days_from_ce());
    let file_names: Vec<String> = files
        .iter()
        .map(|f| {
            f.file_name()
                .map_or_else(String::new, |n| n.to_string_lossy().into_owned())
        })
        .collect();
    let strings = |get: &dyn Fn(&Transaction) -> &str| -> Vec<String> {
        parsed.iter().map(|p| get(&p.txn).to_owned()).collect()
    };
    let columns = vec![
        Column::new(
            "file".into(),
            parsed
                .iter()
                .map(|p| file_names[p.file].as_str())
                .collect::<Vec<_>>(),
        ),
        Column::new("line".into(), parsed.iter().map(|p| p.line).collect::<Vec<u64>>()),
        Column::new(CUSTOMER_COLUMN.into(), customer_of.to_vec()),
        Column::new(
            "safra_abertura".into(),
            parsed
                .iter()
                .map(|p| p.txn.safra_abertura.map(|v| v as i32))
                .collect::<Vec<Option<i32>>>(),
        ),
        Column::new("cidade".into(), strings(&|t| &t.cidade)),
        Column::new("estado".into(), strings(&|t| &t.estado)),
        Column::new(
            "idade".into(),
            parsed
                .iter()
                .map(|p| p.txn.idade.map(i32::from))
                .collect::<Vec<Option<i32>>>(),
        ),
        Column::new(
            "sexo".into(),
            parsed
                .iter()
                .map(|p| {
                    p.txn.sexo.map(|s| match s {
                        contract::Sex::F => "F",
                        contract::Sex::M => "M",
                    })
                })
                .collect::<Vec<Option<&str>>>(),
        ),
        Column::new(
            "limite_total".into(),
            parsed.iter().map(|p| p.txn.limite_total).collect::<Vec<f64>>(),
        ),
        Column::new(
            "limite_disp".into(),
            parsed.iter().map(|p| p.txn.limite_disp).collect::<Vec<f64>>(),
        ),
        Column::new(
            "data".into(),
            parsed
                .iter()
                .map(|p| p.txn.date.num_days_from_ce() - epoch)
                .collect::<Vec<i32>>(),
        )
        .cast(&DataType::Date)?,
        Column::new(
            "valor".into(),
            parsed.iter().map(|p| p.txn.valor).collect::<Vec<Option<f64>>>(),
        ),
        Column::new("grupo_estabelecimento".into(), strings(&|t| &t.grupo)),
        Column::new(
            "cidade_estabelecimento".into(),
            strings(&|t| &t.cidade_estabelecimento),
        ),
        Column::new(
            "pais_estabelecimento".into(),
            strings(&|t| &t.pais_estabelecimento),
        ),
    ];
    Ok(DataFrame::new(parsed.len(), columns)?)
}

fn master_frame(
    parsed: &[Parsed],
    files: &[PathBuf],
    customer_of: &[&str],
    order: &[usize],
    table: &FeatureTable,
    split_of: &BTreeMap<String, &'static str>,
) -> Result<DataFrame> {
    let epoch = NaiveDate::from_ymd_opt(1970, 1, 1).map_or(719_163, |d| d.num_days_from_ce());
    let n = Feature::ALL.len();
    let height = order.len();
    let mut columns = vec![
        Column::new(
            CUSTOMER_COLUMN.into(),
            order.iter().map(|&i| customer_of[i]).collect::<Vec<_>>(),
        ),
        Column::new(
            "date".into(),
            order
                .iter()
                .map(|&i| parsed[i].txn.date.num_days_from_ce() - epoch)
                .collect::<Vec<i32>>(),
        )
        .cast(&DataType::Date)?,
        Column::new(
            "source_file".into(),
            order
                .iter()
                .map(|&i| {
                    files[parsed[i].file]
                        .file_name()
                        .map_or_else(String::new, |f| f.to_string_lossy().into_owned())
                })
                .collect::<Vec<_>>(),
        ),
        Column::new(
            "source_line".into(),
            order.iter().map(|&i| parsed[i].line).collect::<Vec<u64>>(),
        ),
        Column::new(
            SPLIT_COLUMN.into(),
            order
                .iter()
                .map(|&i| split_of[customer_of[i]])
                .collect::<Vec<_>>(),
        ),
    ];
    for f in Feature::ALL {
        let k = f.index();
        let col: Vec<f64> = (0..height).map(|r| table.values[r * n + k]).collect();
        columns.push(Column::new(f.name().into(), col));
    }
    columns.push(Column::new(TARGET_COLUMN.into(), table.target.clone()));
    Ok(DataFrame::new(height, columns)?)
}

/// Small end-to-end fixtures for the other stages' tests: generated raw data
/// run through this stage into a temporary directory.
#[cfg(feature = "testing")]
pub mod testing {
    use std::path::{Path, PathBuf};

    use anyhow::Result;
    use revspend_core::params::{Check, Params};
    use revspend_core::pseudonym::Pseudonymiser;

    use crate::Outputs;

    /// Key the fixtures pseudonymise with.
    pub const KEY: &[u8] = b"fixture-key";

    /// The shipped `params.yaml`, with `build_features.raw_glob` pointing at
    /// `<dir>/raw/*.csv` and a small generated dataset.
    pub fn params(dir: &Path) -> Params {
        let mut p: Params = serde_norway::from_str(include_str!("../../../params.yaml"))
            .unwrap_or_else(|e| panic!("shipped params.yaml does not parse: {e}"));
        p.generate.customers = 300;
        p.generate.rows = 6_000;
        p.generate.days = 90;
        p.generate.files = 2;
        p.build_features.raw_glob = dir.join("raw/*.csv").display().to_string();
        p.train.n_trees = 12;
        p.train.max_depth = 8;
        p
    }

    /// Generates raw files and builds the tables under `dir`; returns the
    /// outputs and the params used (also written to `<dir>/params.yaml`).
    pub fn build(dir: &Path) -> Result<(Outputs, Params)> {
        let p = params(dir);
        std::fs::write(dir.join("params.yaml"), serde_norway::to_string(&p)?)?;
        generate_raw(&p, &dir.join("raw"))?;
        let outputs = Outputs {
            master: dir.join("data/master.parquet"),
            splits_dir: dir.join("data/splits"),
            feature_list: dir.join("data/features.json"),
            snapshot: dir.join("data/snapshot.bin"),
            quarantine: dir.join("data/quarantine.csv"),
            report: dir.join("reports/build_features.json"),
            leakage_report: dir.join("reports/leakage.json"),
            selection_report: dir.join("reports/feature_selection.json"),
            profile: dir.join("data/profile.json"),
            quality_report: dir.join("reports/quality.json"),
        };
        let suite = crate::quality::Suite::from_yaml(include_str!("../../../config/quality.yaml"))?;
        crate::run(
            &p.build_features.clone().check()?,
            &suite,
            &outputs,
            &Pseudonymiser::new(KEY),
        )?;
        Ok((outputs, p))
    }

    fn generate_raw(p: &Params, dir: &Path) -> Result<Vec<PathBuf>> {
        Ok(generate::run(&p.generate.clone().check()?, dir)?.files)
    }
}
