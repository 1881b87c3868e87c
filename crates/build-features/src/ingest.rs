//! Raw CSV files → staged rows: columnar, typed, text interned.
//!
//! A file is split at line boundaries into chunks (as many as the stage
//! asks for: the pool's threads per file); each chunk is decoded and parsed
//! in parallel with the `core` contract parsers, and the chunks are joined
//! in file order, so the result (and every line number) does not depend on
//! the chunk count. Text fields are interned: a file of a million rows
//! holds a few thousand distinct cities, states, groups and countries, so
//! each distinct value is normalised and stored once.

use std::borrow::Cow;
use std::path::Path;
use std::sync::Arc;

use chrono::{Datelike, NaiveDate};
use rayon::prelude::*;
// polars' hash map (a fast non-cryptographic hasher): interning hashes
// every text field of every row, and SipHash showed up in profiles.
use polars::prelude::{InitHashMaps, PlHashMap};
use revspend_core::contract::rules::KNOWN_MERCHANT_GROUP;
use revspend_core::contract::{self, COLUMNS, FieldError, Group, Sex, TextField, ValueRanges};
use serde::{Deserialize, Serialize};

/// The text columns of the contract, in the order of [`Staged::text`].
pub const TEXT_COLUMNS: [&str; 5] = [
    TextField::ALL[0].column(),
    TextField::ALL[1].column(),
    TextField::ALL[2].column(),
    TextField::ALL[3].column(),
    TextField::ALL[4].column(),
];
pub const CIDADE: usize = 0;
pub const ESTADO: usize = 1;
pub const GRUPO: usize = 2;
pub const CIDADE_ESTABELECIMENTO: usize = 3;
pub const PAIS: usize = 4;

/// Distinct strings, each with a stable code (its position). Each string
/// is allocated once and shared by the list and the index: a ten-million
/// row run interns hundreds of thousands of ids and pseudonyms per file.
#[derive(Debug, Clone, Default)]
pub struct Dict {
    pub values: Vec<Arc<str>>,
    index: PlHashMap<Arc<str>, u32>,
}

impl Dict {
    /// Room for `n` strings.
    pub fn with_capacity(n: usize) -> Dict {
        Dict {
            values: Vec::with_capacity(n),
            index: PlHashMap::with_capacity(n),
        }
    }

    /// The code of `value`, adding it when new.
    pub fn code(&mut self, value: &str) -> u32 {
        match self.index.get(value) {
            Some(&c) => c,
            None => self.add(Arc::from(value)),
        }
    }

    /// The code of `value`, sharing it when new.
    pub fn code_shared(&mut self, value: &Arc<str>) -> u32 {
        match self.index.get(&**value) {
            Some(&c) => c,
            None => self.add(Arc::clone(value)),
        }
    }

    fn add(&mut self, value: Arc<str>) -> u32 {
        let c = u32::try_from(self.values.len())
            .unwrap_or_else(|_| unreachable!("fewer than 2^32 distinct strings"));
        self.values.push(Arc::clone(&value));
        self.index.insert(value, c);
        c
    }

    pub fn get(&self, code: u32) -> &str {
        &self.values[code as usize]
    }
}

/// Staged rows, one vector per column. `customer` codes index
/// `customers` (raw ids while parsing, pseudonyms once staged); `text` codes
/// index `strings`, already normalised.
#[derive(Debug, Clone, Default)]
pub struct Staged {
    /// File names (not paths): a row's lineage is `(file name, line)`.
    pub files: Dict,
    pub file: Vec<u32>,
    pub line: Vec<u64>,
    pub customers: Dict,
    pub customer: Vec<u32>,
    pub safra_abertura: Vec<Option<u32>>,
    pub idade: Vec<Option<u16>>,
    pub sexo: Vec<Option<Sex>>,
    pub limite_total: Vec<f64>,
    pub limite_disp: Vec<f64>,
    /// Days since 0001-01-01 (chrono's `num_days_from_ce`).
    pub day: Vec<i32>,
    pub valor: Vec<Option<f64>>,
    pub strings: Dict,
    pub text: [Vec<u32>; 5],
}

impl Staged {
    pub fn len(&self) -> usize {
        self.line.len()
    }

    pub fn is_empty(&self) -> bool {
        self.line.is_empty()
    }

    pub fn date(&self, row: usize) -> NaiveDate {
        NaiveDate::from_num_days_from_ce_opt(self.day[row]).unwrap_or(NaiveDate::MIN)
    }

    pub fn text(&self, column: usize, row: usize) -> &str {
        self.strings.get(self.text[column][row])
    }

    /// Room for `additional` more rows in every column (appending file after
    /// file would otherwise double each column's buffer again and again).
    pub fn reserve(&mut self, additional: usize) {
        self.file.reserve(additional);
        self.line.reserve(additional);
        self.customer.reserve(additional);
        self.safra_abertura.reserve(additional);
        self.idade.reserve(additional);
        self.sexo.reserve(additional);
        self.limite_total.reserve(additional);
        self.limite_disp.reserve(additional);
        self.day.reserve(additional);
        self.valor.reserve(additional);
        for t in &mut self.text {
            t.reserve(additional);
        }
    }

    /// Appends all of `other`'s rows, re-coding its strings; column by
    /// column, so each column is one sequential copy, the columns in two
    /// halves joined on the pool.
    pub fn append(&mut self, other: &Staged) {
        let recode = |mine: &mut Dict, theirs: &Dict| -> Vec<u32> {
            theirs.values.iter().map(|v| mine.code_shared(v)).collect()
        };
        let extend = |dst: &mut Vec<u32>, src: &[u32], map: &[u32]| {
            dst.extend(src.iter().map(|c| map[*c as usize]));
        };
        let file = recode(&mut self.files, &other.files);
        let customer = recode(&mut self.customers, &other.customers);
        let strings = recode(&mut self.strings, &other.strings);
        // The columns in two groups of about equal bytes, in parallel.
        let Staged {
            file: ref mut my_file,
            ref mut line,
            customer: ref mut my_customer,
            ref mut safra_abertura,
            ref mut idade,
            ref mut sexo,
            ref mut limite_total,
            ref mut limite_disp,
            ref mut day,
            ref mut valor,
            ref mut text,
            ..
        } = *self;
        rayon::join(
            || {
                extend(my_file, &other.file, &file);
                line.extend_from_slice(&other.line);
                extend(my_customer, &other.customer, &customer);
                safra_abertura.extend_from_slice(&other.safra_abertura);
                idade.extend_from_slice(&other.idade);
                sexo.extend_from_slice(&other.sexo);
                valor.extend_from_slice(&other.valor);
            },
            || {
                limite_total.extend_from_slice(&other.limite_total);
                limite_disp.extend_from_slice(&other.limite_disp);
                day.extend_from_slice(&other.day);
                for (mine, theirs) in text.iter_mut().zip(&other.text) {
                    extend(mine, theirs, &strings);
                }
            },
        );
    }

    /// Replaces the customer strings with `f(all of them)` (raw ids →
    /// pseudonyms, one per id, in order), merging codes that map to the
    /// same result.
    pub fn map_customers(&mut self, f: impl FnOnce(&[Arc<str>]) -> Vec<Arc<str>>) {
        let results = f(&self.customers.values);
        let mut mapped = Dict::with_capacity(results.len());
        let recode: Vec<u32> = results.iter().map(|v| mapped.code_shared(v)).collect();
        for c in &mut self.customer {
            *c = recode[*c as usize];
        }
        self.customers = mapped;
    }

    /// `(year, month)` of a row.
    pub fn month(&self, row: usize) -> (i32, u32) {
        let d = self.date(row);
        (d.year(), d.month())
    }
}

/// The text encoding a raw file was decoded from.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum Encoding {
    /// The contract's encoding; also recorded for an all-ASCII file, which
    /// reads the same in either.
    #[default]
    #[serde(rename = "cp1252")]
    Cp1252,
    /// Valid UTF-8 with multi-byte sequences, or a UTF-8 byte-order mark.
    #[serde(rename = "utf-8")]
    Utf8,
}

/// How a raw file was read: recorded per file in the staged manifest and
/// the stage report.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SourceFormat {
    pub encoding: Encoding,
    /// It began with a UTF-8 byte-order mark (Excel writes one), stripped.
    #[serde(default)]
    pub bom: bool,
    /// It was gzip-compressed (magic bytes `1f 8b`, whatever its name).
    #[serde(default)]
    pub gzip: bool,
}

/// A data row that failed the contract, with its raw customer id still in
/// it: staging pseudonymises it into a `QuarantinedRow` before storing it.
#[derive(Debug, Clone, PartialEq)]
pub struct RowError {
    pub line: u64,
    pub error: FieldError,
    /// The row as decoded, fields joined by `;`.
    pub raw: String,
}

/// One raw file read into staged rows (customer codes are raw ids).
#[derive(Debug, Default)]
pub struct FileRows {
    /// The path as given, for quarantine entries.
    pub file: String,
    pub rows: Staged,
    pub quarantine: Vec<RowError>,
    /// Data rows read (blank lines are not rows): kept + quarantined. For a
    /// rejected file, its non-blank lines after the first, all rejected.
    pub rows_in: u64,
    /// The header as decoded (empty for a rejected file).
    pub header: Vec<String>,
    pub format: SourceFormat,
    /// Why the whole file could not be read (no rows are kept then); may
    /// quote the file's first line, so it is pseudonymised before storing.
    pub rejected: Option<String>,
}

const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];
const UTF8_BOM: &[u8] = b"\xef\xbb\xbf";
/// A rejected header is quoted up to this many characters (a binary file
/// may have no newline for megabytes).
const QUOTED_HEADER_CHARS: usize = 200;

/// Parses one raw file in `chunks` pieces, in parallel. A gzip file is
/// decompressed and a UTF-8 byte-order mark stripped; the encoding is
/// detected per file ([`detect_encoding`]). A file that cannot be read at
/// all (empty, blank lines only, a header that breaks the contract, UTF-16,
/// a broken gzip stream) comes back with [`FileRows::rejected`] set and
/// every line counted as rejected, so the other files go on; a bad row is
/// quarantined with its line. Rows whose values lie outside `ranges`, or
/// whose merchant group the contract does not know, are quarantined too.
///
/// Lines are split by hand rather than with a CSV reader: the contract has
/// no quoting, and the line number of every row must be exact for LF and
/// CRLF files alike (the `csv` crate miscounts lines after a CRLF header).
pub fn parse_file(path: &Path, bytes: &[u8], chunks: usize, ranges: &ValueRanges) -> FileRows {
    let name = file_name(path);
    let display = path.display().to_string();
    let mut format = SourceFormat::default();
    let inflated;
    let mut bytes = bytes;
    if bytes.starts_with(&GZIP_MAGIC) {
        format.gzip = true;
        match gunzip(bytes, gzip_limit(bytes.len())) {
            Ok(text) => {
                inflated = text;
                bytes = &inflated;
            }
            Err((partial, e)) => {
                return rejected(
                    display,
                    &partial,
                    format,
                    format!("not a readable gzip file: {e}"),
                );
            }
        }
    }
    if let Some(rest) = bytes.strip_prefix(UTF8_BOM) {
        format.bom = true;
        bytes = rest;
    }
    if bytes.starts_with(b"\xff\xfe") || bytes.starts_with(b"\xfe\xff") {
        return rejected(
            display,
            bytes,
            format,
            "UTF-16 text (a byte-order mark FF FE or FE FF): save it as UTF-8 or cp1252".into(),
        );
    }
    if bytes.iter().all(u8::is_ascii_whitespace) {
        let reason = if bytes.is_empty() {
            "empty file (no header)"
        } else {
            "only blank lines (no header)"
        };
        return rejected(display, bytes, format, reason.into());
    }
    let header_end = memchr::memchr(b'\n', bytes).unwrap_or(bytes.len());
    let header = match check_header(strip_cr(&bytes[..header_end])) {
        Ok(h) => h,
        Err(reason) => return rejected(display, bytes, format, reason),
    };
    let body = bytes.get(header_end + 1..).unwrap_or_default();

    // Cut the body into chunks that end at a newline; the first line number
    // of each chunk is known from the newlines before it.
    let pieces = chunks.clamp(1, 64);
    let mut bounds = vec![0usize];
    for k in 1..pieces {
        let target = (body.len() * k / pieces).max(*bounds.last().unwrap_or(&0));
        let cut = memchr::memchr(b'\n', &body[target..]).map_or(body.len(), |p| target + p + 1);
        bounds.push(cut);
    }
    bounds.push(body.len());
    bounds.dedup();
    let mut first_lines = vec![2u64];
    for w in bounds.windows(2).take(bounds.len().saturating_sub(2)) {
        let newlines = memchr::memchr_iter(b'\n', &body[w[0]..w[1]]).count() as u64;
        first_lines.push(first_lines.last().copied().unwrap_or(2) + newlines);
    }
    format.encoding = detect_encoding(body, &bounds, format.bom);
    // A last line without its newline may be cut short: the chunk holding
    // it checks it harder.
    let unterminated = !body.is_empty() && !body.ends_with(b"\n");
    let last_chunk = bounds.len().saturating_sub(2);
    let chunks: Vec<Chunk> = bounds
        .par_windows(2)
        .zip(first_lines.par_iter())
        .enumerate()
        .map(|(k, (w, &first))| {
            let input = ChunkInput {
                encoding: format.encoding,
                ranges,
                cut_last_line: unterminated && k == last_chunk,
            };
            parse_chunk(&input, &body[w[0]..w[1]], first)
        })
        .collect();

    let mut out = FileRows {
        file: display,
        header,
        format,
        ..FileRows::default()
    };
    let file_code = out.rows.files.code(&name);
    let total: usize = chunks.iter().map(|c| c.rows.len()).sum();
    for chunk in chunks {
        out.rows_in += chunk.rows_in;
        out.quarantine.extend(chunk.quarantine);
        let start = out.rows.len();
        // Normalise each distinct raw text once, then re-code.
        let mut rows = chunk.rows;
        let normalised: Vec<String> = chunk
            .raw_text
            .iter()
            .map(|(column, raw)| normalise(*column, raw))
            .collect();
        // Equal normalised values (` sp` and `SP`) share one code.
        rows.strings = Dict::default();
        let recode: Vec<u32> = normalised.iter().map(|v| rows.strings.code(v)).collect();
        for col in &mut rows.text {
            for c in col.iter_mut() {
                *c = recode[*c as usize];
            }
        }
        rows.files = Dict::default();
        rows.files.code(&name);
        rows.file = vec![0; rows.line.len()];
        if out.rows.is_empty() {
            // The first chunk becomes the file's rows (no copy).
            out.rows = rows;
            out.rows.reserve(total - out.rows.len());
        } else {
            out.rows.append(&rows);
        }
        debug_assert!(out.rows.file[start..].iter().all(|f| *f == file_code));
    }
    out
}

/// A file that cannot be read at all: no rows kept, and every non-blank
/// line after the first (what would have been its data rows) rejected.
fn rejected(file: String, bytes: &[u8], format: SourceFormat, reason: String) -> FileRows {
    let body = memchr::memchr(b'\n', bytes).map_or(&[][..], |end| &bytes[end + 1..]);
    let rows_in = body
        .split(|b| *b == b'\n')
        .filter(|line| !line.iter().all(u8::is_ascii_whitespace))
        .count() as u64;
    FileRows {
        file,
        rows_in,
        format,
        rejected: Some(reason),
        ..FileRows::default()
    }
}

/// Most a gzip file may expand: CSV compresses 5 to 15 times, a
/// decompression bomb a thousand times and more. A file is always allowed
/// [`GZIP_FLOOR`] bytes, so small files of repetitive rows are read.
const GZIP_MAX_RATIO: usize = 100;
const GZIP_FLOOR: usize = 256 << 20;

/// The most `compressed` bytes of gzip may decompress to.
fn gzip_limit(compressed: usize) -> usize {
    compressed.saturating_mul(GZIP_MAX_RATIO).max(GZIP_FLOOR)
}

/// Decompresses a gzip file (every member, as `gzip -d` does) up to `limit`
/// bytes; on failure (a broken stream, or more than `limit` bytes: a
/// decompression bomb is refused before it fills memory), what was
/// decompressed before it and the error.
fn gunzip(bytes: &[u8], limit: usize) -> Result<Vec<u8>, (Vec<u8>, std::io::Error)> {
    use std::io::Read;
    let mut out = Vec::with_capacity(bytes.len().saturating_mul(4).min(limit));
    let read = flate2::read::MultiGzDecoder::new(bytes)
        .take(limit as u64 + 1)
        .read_to_end(&mut out);
    match read {
        Ok(n) if n > limit => {
            out.clear();
            Err((
                out,
                std::io::Error::other(format!(
                    "it decompresses to more than {limit} bytes ({GZIP_MAX_RATIO} times its size, at least \
                     {GZIP_FLOOR}): refused as a likely decompression bomb"
                )),
            ))
        }
        Ok(_) => Ok(out),
        Err(e) => Err((out, e)),
    }
}

/// The encoding of a file's body (after its header): UTF-8 when it had a
/// byte-order mark or holds multi-byte UTF-8 sequences and no invalid one;
/// cp1252 otherwise, as the contract says (the real file's `SERVI\x82O` is
/// invalid UTF-8). The chunks are checked in parallel: each ends at a
/// newline, which never falls inside a multi-byte sequence.
pub fn detect_encoding(body: &[u8], bounds: &[usize], bom: bool) -> Encoding {
    let (valid, ascii) = bounds
        .par_windows(2)
        .map(|w| {
            let piece = &body[w[0]..w[1]];
            let ascii = piece.is_ascii();
            (ascii || std::str::from_utf8(piece).is_ok(), ascii)
        })
        .reduce(|| (true, true), |a, b| (a.0 && b.0, a.1 && b.1));
    if valid && (bom || !ascii) {
        Encoding::Utf8
    } else {
        Encoding::Cp1252
    }
}

/// A raw value of text column `column` (an index into [`TEXT_COLUMNS`]),
/// normalised as the contract maps that column.
fn normalise(column: usize, raw: &str) -> String {
    TextField::ALL[column].normalise(raw)
}

/// What every chunk of a file is parsed with.
struct ChunkInput<'a> {
    encoding: Encoding,
    ranges: &'a ValueRanges,
    /// The chunk ends with the file's last line, which has no newline.
    cut_last_line: bool,
}

/// Rows of one chunk; text codes index `raw_text` (column, raw value).
struct Chunk {
    rows: Staged,
    raw_text: Vec<(usize, String)>,
    quarantine: Vec<RowError>,
    rows_in: u64,
}

fn parse_chunk(input: &ChunkInput<'_>, text: &[u8], first_line: u64) -> Chunk {
    let mut rows = Staged::default();
    let mut raw_index: [PlHashMap<String, u32>; 5] = std::array::from_fn(|_| PlHashMap::new());
    // Customer ids are digits: looked up as integers, which is cheaper than
    // hashing and comparing the text (one lookup per row).
    let mut numeric_ids: PlHashMap<u64, u32> = PlHashMap::new();
    // Raw merchant groups the contract refused (the known ones are interned).
    let mut unknown_groups: PlHashMap<String, FieldError> = PlHashMap::new();
    let mut raw_text = Vec::new();
    let mut quarantine = Vec::new();
    let mut rows_in = 0;
    // Each line ends at a newline, the last one (if unterminated) at the end.
    let line_ends = memchr::memchr_iter(b'\n', text).chain(std::iter::once(text.len()));
    let n_lines = memchr::memchr_iter(b'\n', text).count() + usize::from(!text.ends_with(b"\n"));
    // Sized once: growing by doubling copies and touches fresh memory again
    // and again.
    rows.reserve(n_lines);
    let mut line_start = 0;
    for (i, end) in line_ends.take(n_lines).enumerate() {
        let raw = strip_cr(&text[line_start..end]);
        line_start = end + 1;
        let line = first_line + i as u64;
        if raw.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        rows_in += 1;
        let decoded = match input.encoding {
            // Validated for the whole file already.
            Encoding::Utf8 => {
                std::str::from_utf8(raw).map_or_else(|_| contract::decode_cp1252(raw), Cow::Borrowed)
            }
            Encoding::Cp1252 => contract::decode_cp1252(raw),
        };
        // The separators found in one pass (`split(';')` searches afresh
        // for each of the thirteen fields); `;` is ASCII, so every cut is
        // at a character boundary.
        let mut fields = [""; 13];
        let mut count = 0;
        let mut start = 0;
        let ends = memchr::memchr_iter(b';', decoded.as_bytes()).chain(std::iter::once(decoded.len()));
        for end in ends {
            if count < fields.len() {
                fields[count] = &decoded[start..end];
            }
            count += 1;
            start = end + 1;
        }
        let parsed = if count == COLUMNS.len() {
            contract::parse_row(&fields)
        } else {
            let all: Vec<&str> = decoded.split(';').collect();
            contract::parse_row(&all)
        };
        let last_line = input.cut_last_line && i + 1 == n_lines;
        let checked = parsed.and_then(|row| {
            // Only rows that pass are interned, so a group already interned
            // is known (its code is kept: one lookup per row); a new one is
            // checked once (and interned below), and a refused one remembered.
            let group_code = raw_index[GRUPO].get(row.grupo).copied();
            if group_code.is_none()
                && let Some(refused) = unknown_groups.get(row.grupo)
            {
                return Err(FieldError::clone(refused));
            }
            let group = if group_code.is_some() {
                Group::Checked
            } else {
                Group::Unchecked
            };
            if let Err(violation) = contract::check_row(input.ranges, &row, &fields, group) {
                let refused = FieldError::from(violation.clone());
                if violation.rule == KNOWN_MERCHANT_GROUP {
                    unknown_groups.insert(row.grupo.to_owned(), refused.clone());
                }
                return Err(refused);
            }
            if last_line && row.pais_estabelecimento.trim().is_empty() {
                return Err(FieldError {
                    field: "pais_estabelecimento",
                    value: String::new(),
                    reason: "empty on the file's last line, which has no newline: the line may be cut short"
                        .into(),
                });
            }
            Ok((row, group_code))
        });
        match checked {
            Ok((row, group_code)) => {
                rows.line.push(line);
                let customer = match numeric_id(row.id) {
                    Some(n) => *numeric_ids
                        .entry(n)
                        .or_insert_with(|| rows.customers.code(row.id)),
                    None => rows.customers.code(row.id),
                };
                rows.customer.push(customer);
                rows.safra_abertura.push(row.safra_abertura);
                rows.idade.push(row.idade);
                rows.sexo.push(row.sexo);
                rows.limite_total.push(row.limite_total);
                rows.limite_disp.push(row.limite_disp);
                rows.day.push(row.date.num_days_from_ce());
                rows.valor.push(row.valor);
                let texts = [
                    row.cidade,
                    row.estado,
                    row.grupo,
                    row.cidade_estabelecimento,
                    row.pais_estabelecimento,
                ];
                for (column, value) in texts.into_iter().enumerate() {
                    // Look up by the borrowed value: almost every value repeats,
                    // so only a new one is copied.
                    let known = if column == GRUPO {
                        group_code
                    } else {
                        raw_index[column].get(value).copied()
                    };
                    let code = match known {
                        Some(c) => c,
                        None => {
                            let c = raw_text.len() as u32;
                            raw_text.push((column, value.to_owned()));
                            raw_index[column].insert(value.to_owned(), c);
                            c
                        }
                    };
                    rows.text[column].push(code);
                }
            }
            Err(error) => quarantine.push(RowError {
                line,
                error,
                raw: decoded.into_owned(),
            }),
        }
    }
    Chunk {
        rows,
        raw_text,
        quarantine,
        rows_in,
    }
}

/// `id` as an integer when that identifies it exactly: 1 to 19 digits, no
/// leading zero (`07` and `7` are different ids).
fn numeric_id(id: &str) -> Option<u64> {
    let b = id.as_bytes();
    if b.is_empty() || b.len() > 19 || b[0] == b'0' || !b.iter().all(u8::is_ascii_digit) {
        return None;
    }
    id.parse().ok()
}

fn strip_cr(line: &[u8]) -> &[u8] {
    line.strip_suffix(b"\r").unwrap_or(line)
}

/// Checks a header against the contract and returns its decoded columns;
/// the error says what is wrong (quoting at most [`QUOTED_HEADER_CHARS`]).
fn check_header(header: &[u8]) -> Result<Vec<String>, String> {
    let text = contract::decode_cp1252(header);
    let quoted = |t: &str| -> String {
        let cut: String = t.chars().take(QUOTED_HEADER_CHARS).collect();
        if cut.len() < t.len() {
            format!("{cut:?}…")
        } else {
            format!("{cut:?}")
        }
    };
    let got: Vec<&str> = text.split(';').collect();
    if got.len() != COLUMNS.len() {
        return Err(format!(
            "line 1: header has {} columns, the data contract has {}: expected {:?}, got {}",
            got.len(),
            COLUMNS.len(),
            COLUMNS.join(";"),
            quoted(&text)
        ));
    }
    for (i, (g, e)) in got.iter().zip(COLUMNS).enumerate() {
        if *g != e {
            return Err(format!(
                "line 1: header column {} is {}, the data contract says {e:?}",
                i + 1,
                quoted(g)
            ));
        }
    }
    Ok(got.iter().map(|c| (*c).to_owned()).collect())
}

pub fn file_name(path: &Path) -> String {
    path.file_name().map_or_else(
        || path.display().to_string(),
        |n| n.to_string_lossy().into_owned(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numeric_ids_only_where_the_integer_is_the_id() {
        assert_eq!(numeric_id("35466972063"), Some(35_466_972_063));
        assert_eq!(numeric_id("9999999999999999999"), Some(9_999_999_999_999_999_999));
        for text in ["", "0", "07", "12a", " 12", "99999999999999999999"] {
            assert_eq!(numeric_id(text), None, "{text:?}");
        }
    }

    const HEADER: &str = "id;safra_abertura;cidade;estado;idade;sexo;limite_total;limite_disp;data; valor ;grupo_estabelecimento;cidade_estabelecimento;pais_estabelecimento";

    fn file(rows: usize, crlf: bool) -> Vec<u8> {
        let nl = if crlf { "\r\n" } else { "\n" };
        let mut s = format!("{HEADER}{nl}");
        for i in 0..rows {
            if i % 7 == 3 {
                s.push_str(&format!(
                    "{i};bad;X;SP;30;F;100;50;01.01.2020; 1,00 ;VAREJO;X;BR{nl}"
                ));
            } else if i % 11 == 5 {
                s.push_str(nl);
            } else {
                s.push_str(&format!(
                    "{};201901; sao paulo ;sp;30;F;1.000,00;500;{:02}.01.2020; {},50 ;SERVI\u{201a}O;SAO PAULO;br{nl}",
                    i % 13,
                    1 + i % 28,
                    i
                ));
            }
        }
        contract::encode_cp1252(&s)
    }

    fn parse(bytes: &[u8]) -> FileRows {
        parse_file(Path::new("a.csv"), bytes, 3, &ValueRanges::default())
    }

    /// Issue 15: the row rules the server answers 422 by quarantine the
    /// same rows offline, the rule named in the reason.
    #[test]
    fn rows_that_break_a_row_rule_are_quarantined_naming_it() {
        let good = "1;201901;SAO PAULO;SP;30;F;1000;500;01.01.2020; 1,00 ;VAREJO;SAO PAULO;BR";
        let rows = [
            (good.replace("01.01.2020", "31.12.9999"), "ranges.data", "data"),
            (
                good.replace(";SAO PAULO;SP", ";SAO\u{0}PAULO;SP"),
                "no_control_characters",
                "cidade",
            ),
            (
                good.replace(";1000;", ";0;"),
                "ranges.limite_total",
                "limite_total",
            ),
            (
                good.replace("201901", "202003"),
                "account_opened_before_purchase",
                "safra_abertura",
            ),
            (
                good.replace("VAREJO", "PADARIA"),
                "known_merchant_group",
                "grupo_estabelecimento",
            ),
        ];
        let mut text = format!("{HEADER}\n{good}\n");
        for (row, _, _) in &rows {
            text.push_str(row);
            text.push('\n');
        }
        let parsed = parse(text.as_bytes());
        assert_eq!((parsed.rows.len(), parsed.quarantine.len()), (1, rows.len()));
        for (q, (_, rule, field)) in parsed.quarantine.iter().zip(rows) {
            assert_eq!(q.error.field, field);
            assert!(
                q.error.reason.starts_with(&format!("rule `{rule}`: ")),
                "{}",
                q.error.reason
            );
        }
    }

    /// Issue 12: the encoding is detected per file, a byte-order mark
    /// stripped and gzip read.
    #[test]
    fn encoding_byte_order_mark_and_gzip_are_recognised() {
        let text =
            format!("{HEADER}\n1;201901;SÃO PAULO;SP;30;F;1000;500;01.01.2020; 1,00 ;SERVIÇO;SÃO PAULO;BR\n");
        let utf8 = parse(text.as_bytes());
        assert_eq!(
            utf8.format,
            SourceFormat {
                encoding: Encoding::Utf8,
                bom: false,
                gzip: false
            }
        );
        assert_eq!(utf8.rows.text(GRUPO, 0), "SERVICO");
        assert_eq!(utf8.rows.text(CIDADE, 0), "SÃO PAULO");
        let cp1252 = parse(&contract::encode_cp1252(&text));
        assert_eq!(cp1252.format.encoding, Encoding::Cp1252);
        assert_eq!(cp1252.rows.text(CIDADE, 0), "SÃO PAULO");

        let ascii = text.replace('Ã', "A").replace('Ç', "C");
        assert_eq!(parse(ascii.as_bytes()).format.encoding, Encoding::Cp1252);
        let bom = parse(format!("\u{feff}{ascii}").as_bytes());
        assert_eq!(
            bom.format,
            SourceFormat {
                encoding: Encoding::Utf8,
                bom: true,
                gzip: false
            }
        );
        assert_eq!((bom.rows.len(), bom.rejected.as_deref()), (1, None));

        use std::io::Write;
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(&contract::encode_cp1252(&text)).expect("gzip");
        let zipped = parse(&gz.finish().expect("gzip"));
        assert_eq!(
            zipped.format,
            SourceFormat {
                encoding: Encoding::Cp1252,
                bom: false,
                gzip: true
            }
        );
        assert_eq!(zipped.rows.len(), 1);
    }

    /// Issue 12: a file that cannot be read is rejected with its rows
    /// counted, rather than failing the stage.
    #[test]
    fn an_unreadable_file_is_rejected_with_its_rows_counted() {
        let wrong = format!("{}\nx\n\ny\n", HEADER.replace(" valor ", "valor"));
        for (bytes, rows, reason) in [
            (&b""[..], 0, "empty file"),
            (b" \r\n\n", 0, "only blank lines"),
            (wrong.as_bytes(), 2, "header column 10 is \"valor\""),
            (b"\xff\xfei\x00d\x00\n", 0, "UTF-16"),
            (b"\x1f\x8b\x08\x00garbage", 0, "gzip"),
        ] {
            let f = parse(bytes);
            let why = f.rejected.unwrap_or_default();
            assert!(why.contains(reason), "{why}");
            assert_eq!(
                (f.rows_in, f.rows.len(), f.quarantine.len()),
                (rows, 0, 0),
                "{why}"
            );
        }
    }

    /// Issue 12: a gzip file that expands beyond its limit is refused as a
    /// whole (and nothing past the limit is held in memory).
    #[test]
    fn a_gzip_bomb_is_refused_before_it_fills_memory() {
        use std::io::Write;
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        gz.write_all(&vec![b'0'; 1 << 20]).expect("gzip");
        let bomb = gz.finish().expect("gzip");
        assert!(bomb.len() * GZIP_MAX_RATIO < 1 << 20, "{}", bomb.len());
        let (partial, e) = gunzip(&bomb, bomb.len() * GZIP_MAX_RATIO).expect_err("refused");
        assert!(partial.is_empty());
        assert!(e.to_string().contains("decompression bomb"), "{e}");
        assert_eq!(gunzip(&bomb, 1 << 20).map(|v| v.len()).ok(), Some(1 << 20));
        assert_eq!(gzip_limit(1), GZIP_FLOOR);
        assert_eq!(gzip_limit(10 << 20), 1000 << 20);
    }

    /// The result, line numbers included, does not depend on the number of
    /// chunks the file is cut into.
    #[test]
    fn chunking_does_not_change_rows_or_lines() {
        for crlf in [false, true] {
            let bytes = file(200, crlf);
            let one = parse_file(Path::new("a.csv"), &bytes, 1, &ValueRanges::default());
            for threads in [2, 3, 7] {
                let many = parse_file(Path::new("a.csv"), &bytes, threads, &ValueRanges::default());
                assert_eq!(many.rows_in, one.rows_in);
                assert_eq!(many.rows.line, one.rows.line);
                assert_eq!(many.rows.valor, one.rows.valor);
                assert_eq!(many.quarantine, one.quarantine);
                let texts = |f: &FileRows| -> Vec<String> {
                    (0..f.rows.len())
                        .map(|r| f.rows.text(GRUPO, r).to_owned())
                        .collect()
                };
                assert_eq!(texts(&many), texts(&one));
            }
            assert_eq!(one.rows_in, one.rows.len() as u64 + one.quarantine.len() as u64);
            assert!(one.quarantine.iter().all(|q| q.error.field == "safra_abertura"));
            assert_eq!(one.format.encoding, Encoding::Cp1252);
            assert_eq!(one.rows.text(GRUPO, 0), "SERVICO");
            assert_eq!(one.rows.text(ESTADO, 0), "SP");
            assert_eq!(one.rows.text(CIDADE, 0), "sao paulo");
        }
    }
}
