//! The staged and feature layers on disk: parquet partitions by year and
//! month, and a manifest per layer recording what went into them.
//!
//! ```text
//! <staged>/_layer.json                          marker: {"layer": "staged"}
//! <staged>/_manifest.json                       raw file (name, SHA-256) → partitions
//! <staged>/year=2020/month=01/<file>-<hash>.parquet   one per raw file and month
//! <staged>/quarantine/<file>-<hash>.csv          the file's rejected rows
//! <features>/_layer.json                        marker: {"layer": "features"}
//! <features>/_manifest.json                     month → the staged partitions it was built from
//! <features>/year=2020/month=01/part.parquet    every candidate feature and the target
//! ```
//!
//! A raw file is staged once: its content hash is in the manifest, so the
//! same file again (under any name) changes nothing and a new daily file
//! adds only its own partitions. A feature month is rebuilt when the staged
//! partitions of that month or of any earlier month changed (history
//! features carry earlier months forward), or when the target rule, the
//! feature definitions or the pseudonymisation key changed. Partitions are
//! written before their manifest, and the manifest atomically, so an
//! interrupted run leaves the previous manifest describing files that exist;
//! files no manifest lists are removed at the end of a run.
//!
//! Every partition's SHA-256 is in its manifest and checked whenever a
//! later run reads the partition back: a staged partition that does not
//! match is staged again from its raw file, a feature month rebuilt from
//! the staged rows. Files are deleted only inside a directory carrying the
//! layer's marker and only when their path follows the layer's naming
//! scheme ([`check_layer_dir`]): a directory flag pointed at the wrong
//! folder is refused, never cleaned.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use chrono::{Datelike, NaiveDate};
use polars::prelude::*;
use revspend_core::artifact;
use revspend_core::contract::Sex;
use revspend_core::features::Feature;
use revspend_core::schema::{self, ColumnDef, ColumnType};
use serde::{Deserialize, Serialize};

mod dirs;
pub use dirs::{LayerDir, LayerKind, MARKER, check_layer_dir, remove_temp_files, remove_unlisted};

use crate::ingest::{
    CIDADE, CIDADE_ESTABELECIMENTO, Dict, ESTADO, GRUPO, PAIS, SourceFormat, Staged, TEXT_COLUMNS,
};

/// Layout version of the staged layer; a change rebuilds it from raw.
/// 3: encoding detection, value ranges and known merchant groups, rejected
/// files, pseudonymised quarantine (issue 12).
pub const STAGED_LAYER_VERSION: u32 = 3;
// The feature layer's manifest is read by the monitor too: its types and
// layout version live in revspend-table, the one owner of the format.
pub use revspend_table::layer::{FEATURE_LAYER_VERSION, FeatureManifest, FeatureMonth};
pub const MANIFEST: &str = "_manifest.json";

/// A calendar month, written `YYYY-MM` in manifests.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Month {
    pub year: i32,
    pub month: u32,
}

impl Month {
    pub fn of(date: NaiveDate) -> Month {
        Month {
            year: date.year(),
            month: date.month(),
        }
    }

    pub fn key(self) -> String {
        format!("{:04}-{:02}", self.year, self.month)
    }

    pub fn parse(key: &str) -> Option<Month> {
        let (y, m) = key.split_once('-')?;
        let month = m.parse().ok().filter(|m| (1..=12).contains(m))?;
        Some(Month {
            year: y.parse().ok()?,
            month,
        })
    }

    /// `year=YYYY/month=MM`, the Hive-style directory of the partition.
    pub fn dir(self) -> PathBuf {
        PathBuf::from(format!("year={:04}", self.year)).join(format!("month={:02}", self.month))
    }

    pub fn first_day(self) -> NaiveDate {
        NaiveDate::from_ymd_opt(self.year, self.month, 1).unwrap_or(NaiveDate::MIN)
    }
}

/// One staged partition: rows of one raw file in one month.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Partition {
    /// Relative to the staged directory.
    pub path: String,
    pub rows: u64,
    pub sha256: String,
}

/// A raw file in the staged layer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StagedFile {
    pub name: String,
    pub sha256: String,
    pub rows_in: u64,
    pub rows_out: u64,
    pub rows_quarantined: u64,
    /// The header as read (for the `columns_in_order` expectation).
    pub header: Vec<String>,
    /// Month (`YYYY-MM`) → partition.
    pub partitions: BTreeMap<String, Partition>,
    /// The rejected rows (CSV, relative to the staged directory).
    pub quarantine: String,
    /// How the file was read (encoding, byte-order mark, gzip).
    #[serde(default)]
    pub format: SourceFormat,
    /// Why the whole file could not be read (its rows are all counted as
    /// quarantined, and it has no partitions); `None` when it was read.
    #[serde(default)]
    pub rejected: Option<String>,
}

impl StagedFile {
    /// `<file stem>-<first 12 hex digits of its hash>`: unique per content.
    pub fn stem(name: &str, sha256: &str) -> String {
        let stem = Path::new(name)
            .file_stem()
            .map_or_else(|| name.to_owned(), |s| s.to_string_lossy().into_owned());
        format!("{stem}-{}", &sha256[..12.min(sha256.len())])
    }
}

/// What the staged layer holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StagedManifest {
    pub version: u32,
    /// `Pseudonymiser::key_fingerprint` of the key the customers were
    /// pseudonymised with.
    pub key_fingerprint: String,
    /// `ValueRanges::describe` of the ranges rows were checked against.
    #[serde(default)]
    pub value_ranges: String,
    /// By file name.
    pub files: BTreeMap<String, StagedFile>,
}

impl StagedManifest {
    pub fn empty(key_fingerprint: String, value_ranges: String) -> StagedManifest {
        StagedManifest {
            version: STAGED_LAYER_VERSION,
            key_fingerprint,
            value_ranges,
            files: BTreeMap::new(),
        }
    }

    /// Month → (partition path → hash), over every file.
    pub fn months(&self) -> BTreeMap<String, BTreeMap<String, String>> {
        let mut out: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
        for f in self.files.values() {
            for (month, p) in &f.partitions {
                out.entry(month.clone())
                    .or_default()
                    .insert(p.path.clone(), p.sha256.clone());
            }
        }
        out
    }
}

/// Reads a manifest, or `None` when there is none yet.
pub fn read_manifest<T: serde::de::DeserializeOwned>(dir: &Path) -> Result<Option<T>> {
    let path = dir.join(MANIFEST);
    if !path.exists() {
        return Ok(None);
    }
    Ok(Some(artifact::read_json(&path).with_context(|| {
        format!(
            "reading the layer manifest {} (delete the directory to rebuild the layer)",
            path.display()
        )
    })?))
}

pub(crate) fn epoch_offset() -> i32 {
    NaiveDate::from_ymd_opt(1970, 1, 1).map_or(719_163, |d| d.num_days_from_ce())
}

/// The staged table schema: raw column names, typed, with lineage. Text
/// columns but the customer (String here) are stored as Enums; see
/// [`staged_frame`].
pub fn staged_schema() -> Vec<(&'static str, DataType)> {
    typed(&schema::STAGED)
}

/// Rows `rows` of `staged` as a typed table (raw column names, customer
/// pseudonyms): a staged partition. Text columns other than the customer
/// are Enums over the values the partition uses, in order of first use:
/// parquet then writes each column's dictionary as it is, instead of
/// hashing every row's text to build one (about half the cost of writing a
/// partition). The customer stays String: an Enum's categories are also
/// written into the file's schema metadata, which for hundreds of thousands
/// of pseudonyms would add a fifth to a third to the file.
pub fn staged_frame(staged: &Staged, text: &LineageText, rows: &[usize]) -> Result<DataFrame> {
    typed_frame(staged, rows, TextAs::Enum(text))
}

/// The same table for the quality suite, with every text column
/// Categorical: a code per row, not a copy of the text (at ten million rows
/// the text alone takes gigabytes, and the suite checks each distinct value
/// once).
pub fn quality_frame(staged: &Staged, rows: &[usize]) -> Result<DataFrame> {
    typed_frame(staged, rows, TextAs::Categorical)
}

/// How [`typed_frame`] builds text columns.
#[derive(Debug, Clone, Copy)]
enum TextAs<'a> {
    /// Categorical over the staged dictionary (shared mapping per column).
    Categorical,
    /// An Enum of just the values used, in order of first use: the same
    /// rows always give the same categories, so the file is deterministic.
    /// The customer is String, gathered from `LineageText`.
    Enum(&'a LineageText),
}

/// A text column from a dictionary and a code per row.
fn text_column<S: AsRef<str>>(
    name: &str,
    values: &[S],
    codes: impl Iterator<Item = Option<u32>>,
    how: TextAs,
) -> Result<Column> {
    match how {
        TextAs::Categorical => {
            let categories =
                Categories::new(name.into(), "revspend-quality".into(), CategoricalPhysical::U32);
            let mapping = categories.mapping();
            let ids = values
                .iter()
                .map(|v| mapping.insert_cat(v.as_ref()))
                .collect::<PolarsResult<Vec<u32>>>()?;
            let codes: Vec<u32> = codes.map(|c| c.map_or(NULL_CODE, |c| ids[c as usize])).collect();
            let codes = code_column::<UInt32Type>(name.into(), &codes, |c| c);
            Ok(
                Categorical32Chunked::from_cats_and_dtype(codes, DataType::Categorical(categories, mapping))
                    .into_column(),
            )
        }
        TextAs::Enum(_) => {
            let mut id = vec![u32::MAX; values.len()];
            let mut used: Vec<&str> = Vec::new();
            let codes: Vec<u32> = codes
                .map(|c| {
                    c.map_or(NULL_CODE, |c| {
                        let slot = &mut id[c as usize];
                        if *slot == u32::MAX {
                            *slot = used.len() as u32;
                            used.push(values[c as usize].as_ref());
                        }
                        *slot
                    })
                })
                .collect();
            let frozen = FrozenCategories::new(used.iter().copied())?;
            let dtype = DataType::from_frozen_categories(frozen.clone());
            let name: PlSmallStr = name.into();
            Ok(match frozen.physical() {
                CategoricalPhysical::U8 => Categorical8Chunked::from_cats_and_dtype(
                    code_column::<UInt8Type>(name, &codes, |c| c as u8),
                    dtype,
                )
                .into_column(),
                CategoricalPhysical::U16 => Categorical16Chunked::from_cats_and_dtype(
                    code_column::<UInt16Type>(name, &codes, |c| c as u16),
                    dtype,
                )
                .into_column(),
                CategoricalPhysical::U32 => Categorical32Chunked::from_cats_and_dtype(
                    code_column::<UInt32Type>(name, &codes, |c| c),
                    dtype,
                )
                .into_column(),
            })
        }
    }
}

/// A null among the codes [`code_column`] takes (no category reaches it).
const NULL_CODE: u32 = u32::MAX;

/// Category codes as a column of `T`, [`NULL_CODE`] standing for null: one
/// plain buffer when there is no null, which is the usual case (a validity
/// bitmap built row by row cost more than the codes).
fn code_column<T: PolarsNumericType>(
    name: PlSmallStr,
    codes: &[u32],
    to: impl Fn(u32) -> T::Native,
) -> ChunkedArray<T> {
    if codes.contains(&NULL_CODE) {
        ChunkedArray::from_iter_options(name, codes.iter().map(|&c| (c != NULL_CODE).then(|| to(c))))
    } else {
        ChunkedArray::from_vec(name, codes.iter().map(|&c| to(c)).collect())
    }
}

fn typed_frame(staged: &Staged, rows: &[usize], how: TextAs) -> Result<DataFrame> {
    let epoch = epoch_offset();
    let text = |col: usize| -> Result<Column> {
        text_column(
            TEXT_COLUMNS[col],
            &staged.strings.values,
            rows.iter().map(|&r| Some(staged.text[col][r])),
            how,
        )
    };
    let columns = vec![
        text_column(
            schema::FILE,
            &staged.files.values,
            rows.iter().map(|&r| Some(staged.file[r])),
            how,
        )?,
        UInt64Chunked::from_vec(
            schema::LINE.into(),
            rows.iter().map(|&r| staged.line[r]).collect(),
        )
        .into_column(),
        match how {
            TextAs::Enum(text) => text.customers(staged, rows)?,
            TextAs::Categorical => text_column(
                schema::CUSTOMER,
                &staged.customers.values,
                rows.iter().map(|&r| Some(staged.customer[r])),
                how,
            )?,
        },
        Int32Chunked::from_iter_options(
            schema::SAFRA_ABERTURA.into(),
            rows.iter().map(|&r| staged.safra_abertura[r].map(|v| v as i32)),
        )
        .into_column(),
        text(CIDADE)?,
        text(ESTADO)?,
        Int32Chunked::from_iter_options(
            schema::IDADE.into(),
            rows.iter().map(|&r| staged.idade[r].map(i32::from)),
        )
        .into_column(),
        text_column(
            schema::SEXO,
            &["F", "M"],
            rows.iter().map(|&r| {
                staged.sexo[r].map(|s| match s {
                    Sex::F => 0,
                    Sex::M => 1,
                })
            }),
            how,
        )?,
        Float64Chunked::from_vec(
            schema::LIMITE_TOTAL.into(),
            rows.iter().map(|&r| staged.limite_total[r]).collect(),
        )
        .into_column(),
        Float64Chunked::from_vec(
            schema::LIMITE_DISP.into(),
            rows.iter().map(|&r| staged.limite_disp[r]).collect(),
        )
        .into_column(),
        Int32Chunked::from_vec(
            schema::DATA.into(),
            rows.iter().map(|&r| staged.day[r] - epoch).collect(),
        )
        .into_date()
        .into_column(),
        Float64Chunked::from_iter_options(schema::VALOR.into(), rows.iter().map(|&r| staged.valor[r]))
            .into_column(),
        text(GRUPO)?,
        text(CIDADE_ESTABELECIMENTO)?,
        text(PAIS)?,
    ];
    Ok(DataFrame::new(rows.len(), columns)?)
}

/// Reads a staged partition back into rows, refusing it (with
/// `TableError::Checksum`) when its bytes do not hash to `sha256`, the hash
/// its manifest records.
pub fn read_staged(path: &Path, sha256: &str) -> Result<Staged> {
    // Text columns are Enums (each partition its own categories): checked
    // below, as text of any categories.
    let typed: Vec<(&str, DataType)> = schema::STAGED
        .iter()
        .filter(|c| c.ty != ColumnType::Text)
        .map(|c| (c.name, dtype(c.ty)))
        .collect();
    let df = revspend_table::read_table_verified(path, &typed, sha256)?;
    let ctx = || format!("reading staged partition {}", path.display());
    let mut s = Staged::default();
    s.file = text_codes(&df, schema::FILE, &mut s.files).with_context(ctx)?;
    s.customer = text_codes(&df, schema::CUSTOMER, &mut s.customers).with_context(ctx)?;
    s.line = df
        .column(schema::LINE)?
        .u64()?
        .iter()
        .map(|v| v.unwrap_or(0))
        .collect();
    s.safra_abertura = df
        .column(schema::SAFRA_ABERTURA)?
        .i32()?
        .iter()
        .map(|v| v.map(|v| v as u32))
        .collect();
    s.idade = df
        .column(schema::IDADE)?
        .i32()?
        .iter()
        .map(|v| v.and_then(|v| u16::try_from(v).ok()))
        .collect();
    let mut sexes = Dict::default();
    let sexo = text_codes(&df, schema::SEXO, &mut sexes).with_context(ctx)?;
    let sex_of: Vec<Option<Sex>> = sexes
        .values
        .iter()
        .map(|v| match &**v {
            "F" => Some(Sex::F),
            "M" => Some(Sex::M),
            _ => None,
        })
        .collect();
    s.sexo = sexo.iter().map(|c| sex_of[*c as usize]).collect();
    s.limite_total = df
        .column(schema::LIMITE_TOTAL)?
        .f64()?
        .iter()
        .map(|v| v.unwrap_or(0.0))
        .collect();
    s.limite_disp = df
        .column(schema::LIMITE_DISP)?
        .f64()?
        .iter()
        .map(|v| v.unwrap_or(0.0))
        .collect();
    let epoch = epoch_offset();
    s.day = df
        .column(schema::DATA)?
        .date()?
        .physical()
        .iter()
        .map(|v| v.unwrap_or(0) + epoch)
        .collect();
    s.valor = df.column(schema::VALOR)?.f64()?.iter().collect();
    for (i, name) in TEXT_COLUMNS.iter().enumerate() {
        s.text[i] = text_codes(&df, name, &mut s.strings).with_context(ctx)?;
    }
    Ok(s)
}

/// A text column's values as codes in `dict` (null as the empty string):
/// an Enum or Categorical column is looked up once per category.
fn text_codes(df: &DataFrame, name: &str, dict: &mut Dict) -> Result<Vec<u32>> {
    let col = df.column(name)?;
    match col.dtype() {
        DataType::Enum(_, mapping) | DataType::Categorical(_, mapping) => {
            let mapping = mapping.clone();
            // Through the typed arrays: polars is built without 8- and
            // 16-bit integer Series, which small Enums use for their ids.
            let s = col.as_materialized_series();
            let ids: Box<dyn Iterator<Item = Option<u32>>> = match col.dtype().cat_physical()? {
                CategoricalPhysical::U8 => Box::new(s.cat8()?.physical().iter().map(|v| v.map(u32::from))),
                CategoricalPhysical::U16 => Box::new(s.cat16()?.physical().iter().map(|v| v.map(u32::from))),
                CategoricalPhysical::U32 => Box::new(s.cat32()?.physical().iter()),
            };
            let mut code = vec![u32::MAX; mapping.num_cats_upper_bound()];
            Ok(ids
                .map(|id| match id {
                    None => dict.code(""),
                    Some(id) => {
                        let slot = &mut code[id as usize];
                        if *slot == u32::MAX {
                            *slot = dict.code(mapping.cat_to_str(id).unwrap_or(""));
                        }
                        *slot
                    }
                })
                .collect())
        }
        DataType::String => Ok(col.str()?.iter().map(|v| dict.code(v.unwrap_or(""))).collect()),
        dt => anyhow::bail!("column `{name}` is {dt}, not text"),
    }
}

/// The feature-layer (and master-table) schema before the split column.
pub fn feature_schema() -> Vec<(&'static str, DataType)> {
    typed(&schema::feature_layer())
}

/// The master table's schema (each split file).
pub fn master_schema() -> Vec<(&'static str, DataType)> {
    typed(&schema::master())
}

/// Columns with the polars type each [`ColumnType`] is stored as.
pub fn typed(columns: &[ColumnDef]) -> Vec<(&'static str, DataType)> {
    columns.iter().map(|c| (c.name, dtype(c.ty))).collect()
}

/// The polars type a column of type `ty` is stored as.
pub fn dtype(ty: ColumnType) -> DataType {
    match ty {
        ColumnType::Boolean => DataType::Boolean,
        ColumnType::UInt64 => DataType::UInt64,
        ColumnType::Int32 => DataType::Int32,
        ColumnType::Float64 => DataType::Float64,
        ColumnType::Date => DataType::Date,
        ColumnType::Text => DataType::String,
    }
}

/// Computed feature rows of one month, column-major.
#[derive(Debug)]
pub struct FeatureRows {
    /// Staged row indices, in (customer, date, file, line) order.
    pub rows: Vec<usize>,
    /// One vector per `Feature::ALL` entry.
    pub values: Vec<Vec<f64>>,
    pub target: Vec<bool>,
}

impl Default for FeatureRows {
    /// No rows, one empty column per feature.
    fn default() -> FeatureRows {
        FeatureRows {
            rows: Vec::new(),
            values: vec![Vec::new(); Feature::ALL.len()],
            target: Vec::new(),
        }
    }
}

impl FeatureRows {
    /// `rows` rows of zeros, to be filled in place (zeroed memory comes
    /// straight from the allocator: no page is touched twice).
    pub fn zeroed(rows: usize) -> FeatureRows {
        FeatureRows {
            rows: vec![0; rows],
            values: (0..Feature::ALL.len()).map(|_| vec![0.0; rows]).collect(),
            target: vec![false; rows],
        }
    }

    /// The feature-layer table of these rows.
    pub fn into_frame(self, staged: &Staged, text: &LineageText) -> Result<DataFrame> {
        let epoch = epoch_offset();
        let rows = &self.rows;
        let mut columns = vec![
            text.customers(staged, rows)?,
            Int32Chunked::from_vec(
                schema::DATE.into(),
                rows.iter().map(|&r| staged.day[r] - epoch).collect(),
            )
            .into_date()
            .into_column(),
            gather(&text.files, &staged.file, rows, schema::SOURCE_FILE)?,
            UInt64Chunked::from_vec(
                schema::SOURCE_LINE.into(),
                rows.iter().map(|&r| staged.line[r]).collect(),
            )
            .into_column(),
        ];
        for (f, values) in Feature::ALL.iter().zip(self.values) {
            columns.push(Float64Chunked::from_vec(f.name().into(), values).into_column());
        }
        columns.push(Column::new(schema::TARGET.into(), self.target));
        Ok(DataFrame::new(rows.len(), columns)?)
    }
}

/// The values of `rows` as a column `name`: `values[codes[row]]`.
fn gather(values: &StringChunked, codes: &[u32], rows: &[usize], name: &str) -> Result<Column> {
    let idx = IdxCa::from_vec("".into(), rows.iter().map(|&r| codes[r] as IdxSize).collect());
    Ok(values.take(&idx)?.with_name(name.into()).into_column())
}

/// The staged customers and file names as string columns, each distinct
/// value once. Month tables and staged partitions gather their rows' values
/// from these, which gives each row a 16-byte view into one shared buffer
/// instead of its own copy of a 32-character pseudonym and file name (about
/// 1 GB at ten million rows for the month tables). Parquet pages come out
/// the same: polars sizes them by the values' lengths, not the buffers'.
#[derive(Debug)]
pub struct LineageText {
    customers: StringChunked,
    files: StringChunked,
}

impl LineageText {
    /// The customer column of `rows`.
    fn customers(&self, staged: &Staged, rows: &[usize]) -> Result<Column> {
        gather(&self.customers, &staged.customer, rows, schema::CUSTOMER)
    }

    pub fn new(staged: &Staged) -> LineageText {
        LineageText {
            customers: StringChunked::from_iter_values(
                "".into(),
                staged.customers.values.iter().map(|v| &**v),
            ),
            files: StringChunked::from_iter_values("".into(), staged.files.values.iter().map(|v| &**v)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn months_round_trip_and_sort() {
        let m = Month { year: 2020, month: 3 };
        assert_eq!(m.key(), "2020-03");
        assert_eq!(Month::parse("2020-03"), Some(m));
        assert_eq!(Month::parse("2020-13"), None);
        assert_eq!(m.dir(), PathBuf::from("year=2020/month=03"));
        assert!(
            Month {
                year: 2019,
                month: 12
            } < m
        );
    }

    #[test]
    fn stems_carry_the_content_hash() {
        assert_eq!(
            StagedFile::stem("day-01.csv", "abcdef0123456789"),
            "day-01-abcdef012345"
        );
    }
}
