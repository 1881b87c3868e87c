//! The prediction log: every prediction `serve` makes, every score a shadow
//! model gives off the request path and every feedback that comes back, as
//! JSON lines that `monitor` and the experiment report read.
//!
//! Layout, partitioned by the UTC hour the records were written in:
//!
//! ```text
//! <dir>/date=2026-12-01/hour=14/part-<opened unix ms>-<pid>-<seq>.jsonl
//! ```
//!
//! A file being written ends in `.jsonl.partial`; it is renamed to `.jsonl`
//! when it is closed (on the hour, past the size limit, at shutdown). The
//! first line of every file is a [`Header`] with the format version,
//! checked on read. What every prediction of a model shares (its feature
//! names, threshold and registry version) is written once per file, in a
//! [`ModelRecord`] before the model's first prediction there; a prediction
//! line holds its feature values as an array in that order, and readers
//! hand out [`PredictionRecord`]s with the names put back. Why JSON lines and not parquet: the server builds
//! without the data stack (no arrow, no polars), a record is appended as one
//! line the moment it is written, a crash leaves at most one torn last line
//! (which [`LogWriter::open`] cuts off and counts), and a person can `grep`
//! it; the `date=`/`hour=` directories let a reader take one window without
//! listing the rest, and polars reads the files as NDJSON.

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, BufWriter, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use chrono::{DateTime, NaiveDate, Timelike, Utc};
use serde::{Deserialize, Serialize, Serializer};
use thiserror::Error;

/// The `format` of every log file's header.
pub const LOG_FORMAT: &str = "revspend-prediction-log";

/// Version of the log's line format, written in every file's header and
/// checked on read. Bump it when a record changes shape.
pub const LOG_FORMAT_VERSION: u32 = 1;

/// Suffix of a closed log file.
const CLOSED: &str = ".jsonl";
/// Suffix of a log file being written.
const OPEN: &str = ".jsonl.partial";

/// What can go wrong reading or writing the log; each names the file.
#[derive(Debug, Error)]
pub enum LogError {
    #[error("{path}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: not a revspend prediction log file (its first line is not a log header)")]
    NoHeader { path: PathBuf },
    #[error(
        "{path}: prediction log format version {got}, this build reads version {expected}: \
         read it with the release that wrote it"
    )]
    Version { path: PathBuf, expected: u32, got: u32 },
    #[error("cannot encode a log record: {0}")]
    Encode(#[from] serde_json::Error),
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> LogError + '_ {
    move |source| LogError::Io {
        path: path.to_owned(),
        source,
    }
}

/// A record as readers get it ([`read_records`]).
#[derive(Debug, Clone, PartialEq)]
pub enum Record {
    Prediction(PredictionRecord),
    Shadow(ShadowRecord),
    Feedback(FeedbackRecord),
}

/// A line as the writer writes it (predictions: [`PredictionLine`]).
#[derive(Debug, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum LogLine<'a> {
    Header(&'a Header),
    Model(&'a ModelRecord),
    Shadow(&'a ShadowRecord),
    Feedback(&'a FeedbackRecord),
}

/// The first line of every file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Header {
    /// [`LOG_FORMAT`].
    pub format: String,
    /// [`LOG_FORMAT_VERSION`] of the writer.
    pub version: u32,
    /// The program that wrote the file (`serve 0.1.0`).
    pub writer: String,
    /// When the file was opened (RFC 3339, UTC, milliseconds).
    pub opened: String,
}

/// A prediction as the client got it.
#[derive(Debug, Clone, PartialEq)]
pub struct PredictionRecord {
    /// When it was made (RFC 3339, UTC, milliseconds).
    pub time: String,
    pub prediction_id: String,
    /// The customer's pseudonym (never the raw id).
    pub pseudonym: String,
    /// The routing config's experiment id.
    pub experiment: String,
    /// The variant that answered, and its model.
    pub variant: String,
    pub model_version: String,
    pub registry_version: Option<String>,
    /// The route the request came in on (`/predict`, `/predict/batch`, ...).
    pub route: String,
    /// The model's input, by feature name; `null` for a missing value.
    pub features: BTreeMap<String, Option<f64>>,
    pub probability: f64,
    pub threshold: f64,
    /// `probability >= threshold`: flagged as revenge spending.
    pub decision: bool,
    pub cold_start: bool,
    /// Time spent on the request until the prediction, in microseconds.
    pub latency_us: u64,
}

/// What all predictions of one model in a file share, written once per
/// file before the first of them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelRecord {
    pub model_version: String,
    pub registry_version: Option<String>,
    pub threshold: f64,
    /// The names of a prediction line's `features`, in order.
    pub features: Vec<String>,
}

/// A prediction line as the server writes it, borrowing from its state:
/// the features as an array in the order of the file's [`ModelRecord`] for
/// `model_version`, a value that is not finite as `null`.
#[derive(Debug, Serialize)]
pub struct PredictionLine<'a> {
    /// Always `prediction`.
    pub kind: &'static str,
    pub time: &'a str,
    pub prediction_id: &'a str,
    pub pseudonym: &'a str,
    pub experiment: &'a str,
    pub variant: &'a str,
    pub model_version: &'a str,
    pub route: &'a str,
    pub features: FeatureValues<'a>,
    pub probability: f64,
    pub decision: bool,
    pub cold_start: bool,
    pub latency_us: u64,
}

/// Feature values written as a JSON array, a value that is not finite as
/// `null`.
#[derive(Debug, Clone, Copy)]
pub struct FeatureValues<'a>(pub &'a [f64]);

impl Serialize for FeatureValues<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_seq(self.0.iter().map(|v| v.is_finite().then_some(*v)))
    }
}

/// A prediction line as read, before its feature names are put back.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PredictionLineRead {
    time: String,
    prediction_id: String,
    pseudonym: String,
    experiment: String,
    variant: String,
    model_version: String,
    route: String,
    features: Vec<Option<f64>>,
    probability: f64,
    decision: bool,
    cold_start: bool,
    latency_us: u64,
}

/// Every line as read.
#[derive(Debug, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
enum Line {
    Header(Header),
    Model(ModelRecord),
    Prediction(PredictionLineRead),
    Shadow(ShadowRecord),
    Feedback(FeedbackRecord),
}

/// A shadow model's score of a prediction's row, made off the request path.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ShadowRecord {
    pub time: String,
    /// The prediction the client got.
    pub prediction_id: String,
    pub experiment: String,
    /// The shadow variant and its model.
    pub variant: String,
    pub model_version: String,
    pub registry_version: Option<String>,
    pub probability: f64,
    pub threshold: f64,
    pub decision: bool,
    /// Time the shadow model took, in microseconds.
    pub latency_us: u64,
}

/// What happened after a prediction: the outcome and the reward it earned
/// the variant that made it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FeedbackRecord {
    pub time: String,
    pub prediction_id: String,
    pub experiment: String,
    /// The variant and model of the prediction.
    pub variant: String,
    pub model_version: String,
    /// The prediction's decision, for realised precision and recall.
    pub decision: bool,
    /// Whether the purchase was revenge spending, when the client said.
    pub outcome: Option<bool>,
    /// The reward credited to the variant.
    pub reward: f64,
}

/// `time` as the log writes it: RFC 3339, UTC, milliseconds.
pub fn timestamp(time: DateTime<Utc>) -> String {
    time.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// The current time.
pub fn now() -> DateTime<Utc> {
    let since = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    DateTime::from_timestamp(
        i64::try_from(since.as_secs()).unwrap_or(i64::MAX),
        since.subsec_nanos(),
    )
    .unwrap_or_default()
}

/// The partition directory of records written at `time`.
pub fn partition_dir(dir: &Path, time: DateTime<Utc>) -> PathBuf {
    dir.join(format!("date={}", time.date_naive().format("%Y-%m-%d")))
        .join(format!("hour={:02}", time.hour()))
}

/// The start of the UTC hour a partition directory (`date=…/hour=…`,
/// relative to the log directory) holds.
fn partition_hour(date: &str, hour: &str) -> Option<DateTime<Utc>> {
    let date = NaiveDate::parse_from_str(date.strip_prefix("date=")?, "%Y-%m-%d").ok()?;
    let hour: u32 = hour.strip_prefix("hour=")?.parse().ok()?;
    Some(date.and_hms_opt(hour, 0, 0)?.and_utc())
}

/// The start of `time`'s hour, as a number that changes on the hour.
fn hour_of(time: DateTime<Utc>) -> i64 {
    time.timestamp().div_euclid(3600)
}

/// What [`LogWriter::open`] found left by a writer that did not close its
/// file (killed, or the machine stopped): the file, now closed, and the
/// bytes of a torn last line it cut off.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recovered {
    pub path: PathBuf,
    pub torn_bytes: u64,
}

/// Appends lines to the log, one open file at a time: a new file on the
/// hour and past `max_bytes`. Not shared between threads: the server gives
/// it to one background thread.
#[derive(Debug)]
pub struct LogWriter {
    dir: PathBuf,
    max_bytes: u64,
    writer: String,
    open: Option<OpenFile>,
    seq: u64,
}

#[derive(Debug)]
struct OpenFile {
    partial: PathBuf,
    hour: i64,
    file: BufWriter<File>,
    bytes: u64,
    /// The model versions this file has a [`ModelRecord`] of.
    described: Vec<String>,
}

impl LogWriter {
    /// A writer into `dir` (created if missing), first closing the files
    /// writers that are gone left open ([`Recovered`]). `writer` names the
    /// program in each file's header.
    pub fn open(dir: &Path, max_bytes: u64, writer: &str) -> Result<(LogWriter, Vec<Recovered>), LogError> {
        std::fs::create_dir_all(dir).map_err(io_err(dir))?;
        let recovered = recover(dir)?;
        let writer = LogWriter {
            dir: dir.to_owned(),
            max_bytes: max_bytes.max(1),
            writer: writer.to_owned(),
            open: None,
            seq: 0,
        };
        Ok((writer, recovered))
    }

    /// Appends one record's line (`line` holds no newline) written at
    /// `time`: into a new file when the hour changed or the open file is
    /// past the size limit. Buffered: [`LogWriter::flush`] hands it to the
    /// operating system.
    pub fn append(&mut self, time: DateTime<Utc>, line: &[u8]) -> Result<(), LogError> {
        let open = self.file_for(time)?;
        write_line(open, line)
    }

    /// Serialises a line and appends it.
    pub fn append_line(&mut self, time: DateTime<Utc>, line: &LogLine<'_>) -> Result<(), LogError> {
        let line = serde_json::to_vec(line)?;
        self.append(time, &line)
    }

    /// Appends a record as a reader gets it back (a prediction preceded by
    /// its model's record when the file has none yet: its feature names,
    /// threshold and registry version). The server writes predictions with
    /// [`LogWriter::append_prediction`], without building a record.
    pub fn append_record(&mut self, time: DateTime<Utc>, record: &Record) -> Result<(), LogError> {
        match record {
            Record::Prediction(p) => {
                let values: Vec<f64> = p.features.values().map(|v| v.unwrap_or(f64::NAN)).collect();
                let line = serde_json::to_vec(&PredictionLine {
                    kind: "prediction",
                    time: &p.time,
                    prediction_id: &p.prediction_id,
                    pseudonym: &p.pseudonym,
                    experiment: &p.experiment,
                    variant: &p.variant,
                    model_version: &p.model_version,
                    route: &p.route,
                    features: FeatureValues(&values),
                    probability: p.probability,
                    decision: p.decision,
                    cold_start: p.cold_start,
                    latency_us: p.latency_us,
                })?;
                let model = || ModelRecord {
                    model_version: p.model_version.clone(),
                    registry_version: p.registry_version.clone(),
                    threshold: p.threshold,
                    features: p.features.keys().cloned().collect(),
                };
                self.append_prediction(time, &p.model_version, model, &line)
            }
            Record::Shadow(r) => self.append_line(time, &LogLine::Shadow(r)),
            Record::Feedback(r) => self.append_line(time, &LogLine::Feedback(r)),
        }
    }

    /// Appends a prediction's line (a serialised [`PredictionLine`] of
    /// `model_version`), preceded by `model`'s record when the file has none
    /// of that model yet.
    pub fn append_prediction(
        &mut self,
        time: DateTime<Utc>,
        model_version: &str,
        model: impl FnOnce() -> ModelRecord,
        line: &[u8],
    ) -> Result<(), LogError> {
        let open = self.file_for(time)?;
        if !open.described.iter().any(|m| m == model_version) {
            let record = model();
            let model_line = serde_json::to_vec(&LogLine::Model(&record))?;
            write_line(open, &model_line)?;
            open.described.push(model_version.to_owned());
        }
        write_line(open, line)
    }

    /// The file a line written at `time` goes to: the open one, or a new
    /// one on the hour or past the size limit.
    fn file_for(&mut self, time: DateTime<Utc>) -> Result<&mut OpenFile, LogError> {
        let hour = hour_of(time);
        let rotate = self
            .open
            .as_ref()
            .is_some_and(|o| o.hour != hour || o.bytes >= self.max_bytes);
        if rotate {
            self.close()?;
        }
        let open = match self.open.take() {
            Some(open) => open,
            None => self.new_file(time)?,
        };
        Ok(self.open.insert(open))
    }

    /// Hands buffered lines to the operating system (they survive the
    /// process being killed from here on).
    pub fn flush(&mut self) -> Result<(), LogError> {
        if let Some(open) = self.open.as_mut() {
            open.file.flush().map_err(io_err(&open.partial))?;
        }
        Ok(())
    }

    /// [`LogWriter::flush`], then to the disk (they survive the machine
    /// stopping from here on).
    pub fn sync(&mut self) -> Result<(), LogError> {
        self.flush()?;
        if let Some(open) = self.open.as_ref() {
            open.file.get_ref().sync_data().map_err(io_err(&open.partial))?;
        }
        Ok(())
    }

    /// Flushes, syncs and closes the open file (renamed to `.jsonl`).
    pub fn close(&mut self) -> Result<(), LogError> {
        if let Some(mut open) = self.open.take() {
            open.file.flush().map_err(io_err(&open.partial))?;
            open.file.get_ref().sync_all().map_err(io_err(&open.partial))?;
            finish(&open.partial)?;
        }
        Ok(())
    }

    /// The file being written, if any.
    pub fn open_file(&self) -> Option<&Path> {
        self.open.as_ref().map(|o| o.partial.as_path())
    }

    fn new_file(&mut self, time: DateTime<Utc>) -> Result<OpenFile, LogError> {
        let dir = partition_dir(&self.dir, time);
        std::fs::create_dir_all(&dir).map_err(io_err(&dir))?;
        self.seq += 1;
        let partial = dir.join(format!(
            "part-{}-{}-{:06}{OPEN}",
            time.timestamp_millis(),
            std::process::id(),
            self.seq
        ));
        let file = OpenOptions::new()
            .create_new(true)
            .append(true)
            .open(&partial)
            .map_err(io_err(&partial))?;
        let mut open = OpenFile {
            partial,
            hour: hour_of(time),
            file: BufWriter::with_capacity(256 * 1024, file),
            bytes: 0,
            described: Vec::new(),
        };
        let header = Header {
            format: LOG_FORMAT.into(),
            version: LOG_FORMAT_VERSION,
            writer: self.writer.clone(),
            opened: timestamp(time),
        };
        let line = serde_json::to_vec(&LogLine::Header(&header))?;
        write_line(&mut open, &line)?;
        Ok(open)
    }
}

impl Drop for LogWriter {
    /// Closes the open file; an error here has no one to go to but the log.
    fn drop(&mut self) {
        if let Err(e) = self.close() {
            log::error!("closing the prediction log: {e}");
        }
    }
}

/// Appends one line and its newline.
fn write_line(open: &mut OpenFile, line: &[u8]) -> Result<(), LogError> {
    open.file.write_all(line).map_err(io_err(&open.partial))?;
    open.file.write_all(b"\n").map_err(io_err(&open.partial))?;
    open.bytes += line.len() as u64 + 1;
    Ok(())
}

/// Renames a finished `.jsonl.partial` to `.jsonl` and syncs its directory.
fn finish(partial: &Path) -> Result<PathBuf, LogError> {
    let name = partial
        .file_name()
        .and_then(|n| n.to_str())
        .and_then(|n| n.strip_suffix(OPEN))
        .ok_or_else(|| LogError::NoHeader {
            path: partial.to_owned(),
        })?;
    let closed = partial.with_file_name(format!("{name}{CLOSED}"));
    std::fs::rename(partial, &closed).map_err(io_err(partial))?;
    if let Some(dir) = closed.parent()
        && let Ok(d) = File::open(dir)
    {
        let _ = d.sync_all();
    }
    Ok(closed)
}

/// The pid a log file's name says wrote it.
fn writer_pid(name: &str) -> Option<u32> {
    name.strip_prefix("part-")?.split('-').nth(1)?.parse().ok()
}

/// Whether a process with this pid runs now (and is not this one: a
/// restarted container has the pid its previous run had).
fn alive(pid: u32) -> bool {
    pid != std::process::id() && Path::new("/proc").join(pid.to_string()).exists()
}

/// Closes every `.jsonl.partial` under `dir` whose writer is gone: cuts a
/// torn last line (what a killed writer leaves half-written) and renames
/// the file to `.jsonl`.
fn recover(dir: &Path) -> Result<Vec<Recovered>, LogError> {
    let mut recovered = Vec::new();
    for path in files_under(dir)? {
        let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
            continue;
        };
        if !name.ends_with(OPEN) || writer_pid(name).is_some_and(alive) {
            continue;
        }
        let torn_bytes = cut_torn_line(&path)?;
        let path = finish(&path)?;
        log::warn!(
            "prediction log: closed {} left open by a writer that is gone{}",
            path.display(),
            if torn_bytes > 0 {
                format!(" (cut a torn last line of {torn_bytes} bytes)")
            } else {
                String::new()
            }
        );
        recovered.push(Recovered { path, torn_bytes });
    }
    Ok(recovered)
}

/// Truncates a file after its last newline; returns the bytes cut.
fn cut_torn_line(path: &Path) -> Result<u64, LogError> {
    let mut file = OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .map_err(io_err(path))?;
    let len = file.metadata().map_err(io_err(path))?.len();
    // Read back from the end in blocks until a newline.
    let mut end = len;
    let mut block = vec![0u8; 64 * 1024];
    let keep = loop {
        if end == 0 {
            break 0;
        }
        let start = end.saturating_sub(block.len() as u64);
        let n = usize::try_from(end - start).unwrap_or(block.len());
        file.seek(SeekFrom::Start(start)).map_err(io_err(path))?;
        file.read_exact(&mut block[..n]).map_err(io_err(path))?;
        if let Some(i) = block[..n].iter().rposition(|&b| b == b'\n') {
            break start + i as u64 + 1;
        }
        end = start;
    };
    if keep < len {
        file.set_len(keep).map_err(io_err(path))?;
        file.sync_all().map_err(io_err(path))?;
    }
    Ok(len - keep)
}

/// Every file under `dir` (recursively), sorted by path.
fn files_under(dir: &Path) -> Result<Vec<PathBuf>, LogError> {
    let mut files = Vec::new();
    let mut pending = vec![dir.to_owned()];
    while let Some(d) = pending.pop() {
        let entries = match std::fs::read_dir(&d) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(io_err(&d)(e)),
        };
        for entry in entries {
            let entry = entry.map_err(io_err(&d))?;
            let kind = entry.file_type().map_err(io_err(&entry.path()))?;
            if kind.is_dir() {
                pending.push(entry.path());
            } else if kind.is_file() {
                files.push(entry.path());
            }
        }
    }
    files.sort();
    Ok(files)
}

/// Which files a reader takes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Window {
    /// Partitions from this hour on (none: from the first).
    pub from: Option<DateTime<Utc>>,
    /// Partitions before this hour (none: to the last).
    pub until: Option<DateTime<Utc>>,
    /// Also the files still being written (a running server's).
    pub include_open: bool,
}

/// The log files in `window`, in time order.
pub fn log_files(dir: &Path, window: Window) -> Result<Vec<PathBuf>, LogError> {
    let mut files = Vec::new();
    for path in files_under(dir)? {
        let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
            continue;
        };
        let wanted = name.ends_with(CLOSED) || (window.include_open && name.ends_with(OPEN));
        if !wanted || !name.starts_with("part-") {
            continue;
        }
        let hour = path
            .parent()
            .and_then(|h| Some((h.parent()?.file_name()?.to_str()?, h.file_name()?.to_str()?)))
            .and_then(|(date, hour)| partition_hour(date, hour));
        let Some(hour) = hour else { continue };
        let after_start = window
            .from
            .is_none_or(|from| hour + chrono::Duration::hours(1) > from);
        let before_end = window.until.is_none_or(|until| hour < until);
        if after_start && before_end {
            files.push((hour, path));
        }
    }
    files.sort();
    Ok(files.into_iter().map(|(_, p)| p).collect())
}

/// What a read found besides the records.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReadStats {
    pub files: usize,
    pub records: u64,
    /// Lines that are not a record (corrupt, or of a kind this build does
    /// not know), and the first few of them as `file:line: reason`.
    pub bad_lines: u64,
    pub bad_examples: Vec<String>,
    /// A last line without its newline in a file still being written (the
    /// writer is in the middle of it): not read.
    pub unfinished_lines: u64,
}

/// How many bad lines [`ReadStats`] names.
const BAD_EXAMPLES: usize = 10;

/// Reads every record in the window's files, in order, handing each to
/// `each` (headers are checked and not handed on). A bad line is counted
/// and named in the stats, never silently skipped; a file of another
/// format version is an error.
pub fn read_records(dir: &Path, window: Window, mut each: impl FnMut(Record)) -> Result<ReadStats, LogError> {
    let mut stats = ReadStats::default();
    for path in log_files(dir, window)? {
        stats.files += 1;
        let open = path.to_string_lossy().ends_with(OPEN);
        let file = File::open(&path).map_err(io_err(&path))?;
        let mut reader = BufReader::new(file);
        let mut models: Vec<ModelRecord> = Vec::new();
        let mut line = Vec::new();
        let mut number = 0u64;
        loop {
            line.clear();
            let n = reader.read_until(b'\n', &mut line).map_err(io_err(&path))?;
            if n == 0 {
                break;
            }
            number += 1;
            if line.last() != Some(&b'\n') && open {
                stats.unfinished_lines += 1;
                break;
            }
            let parsed = serde_json::from_slice::<Line>(&line);
            let record = match (number, parsed) {
                (1, Ok(Line::Header(h))) if h.format == LOG_FORMAT => {
                    if h.version != LOG_FORMAT_VERSION {
                        return Err(LogError::Version {
                            path,
                            expected: LOG_FORMAT_VERSION,
                            got: h.version,
                        });
                    }
                    continue;
                }
                (1, _) => return Err(LogError::NoHeader { path }),
                (_, Ok(Line::Header(_))) => Err("a second header".to_owned()),
                (_, Ok(Line::Model(m))) => {
                    models.retain(|known| known.model_version != m.model_version);
                    models.push(m);
                    continue;
                }
                (_, Ok(Line::Prediction(p))) => prediction(p, &models),
                (_, Ok(Line::Shadow(s))) => Ok(Record::Shadow(s)),
                (_, Ok(Line::Feedback(f))) => Ok(Record::Feedback(f)),
                (_, Err(e)) => Err(e.to_string()),
            };
            match record {
                Ok(record) => {
                    stats.records += 1;
                    each(record);
                }
                Err(reason) => bad(&mut stats, &path, number, &reason),
            }
        }
    }
    Ok(stats)
}

/// A prediction line with its model's feature names and threshold put back.
fn prediction(p: PredictionLineRead, models: &[ModelRecord]) -> Result<Record, String> {
    let model = models
        .iter()
        .find(|m| m.model_version == p.model_version)
        .ok_or_else(|| format!("no model record for {} before this prediction", p.model_version))?;
    if model.features.len() != p.features.len() {
        return Err(format!(
            "{} feature values, the model record of {} names {}",
            p.features.len(),
            p.model_version,
            model.features.len()
        ));
    }
    Ok(Record::Prediction(PredictionRecord {
        time: p.time,
        prediction_id: p.prediction_id,
        pseudonym: p.pseudonym,
        experiment: p.experiment,
        variant: p.variant,
        model_version: p.model_version,
        registry_version: model.registry_version.clone(),
        route: p.route,
        features: model.features.iter().cloned().zip(p.features).collect(),
        probability: p.probability,
        threshold: model.threshold,
        decision: p.decision,
        cold_start: p.cold_start,
        latency_us: p.latency_us,
    }))
}

fn bad(stats: &mut ReadStats, path: &Path, line: u64, reason: &str) {
    stats.bad_lines += 1;
    if stats.bad_examples.len() < BAD_EXAMPLES {
        stats
            .bad_examples
            .push(format!("{}:{line}: {reason}", path.display()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text)
            .expect("time")
            .with_timezone(&Utc)
    }

    /// The record [`write_prediction`] writes, as a reader gets it.
    fn prediction(id: &str) -> PredictionRecord {
        PredictionRecord {
            time: "2026-12-01T14:05:00.123Z".into(),
            prediction_id: id.into(),
            pseudonym: "ab12".into(),
            experiment: "exp-1".into(),
            variant: "production".into(),
            model_version: "gbm-1".into(),
            registry_version: Some("v0001".into()),
            route: "/predict".into(),
            features: BTreeMap::from([("days_since_prev".into(), None), ("valor".into(), Some(45.9))]),
            probability: 0.25,
            threshold: 0.5,
            decision: false,
            cold_start: true,
            latency_us: 120,
        }
    }

    fn model() -> ModelRecord {
        ModelRecord {
            model_version: "gbm-1".into(),
            registry_version: Some("v0001".into()),
            threshold: 0.5,
            features: vec!["valor".into(), "days_since_prev".into()],
        }
    }

    /// One prediction's line as the server writes it.
    fn line(id: &str) -> Vec<u8> {
        let values = [45.9, f64::NAN];
        serde_json::to_vec(&PredictionLine {
            kind: "prediction",
            time: "2026-12-01T14:05:00.123Z",
            prediction_id: id,
            pseudonym: "ab12",
            experiment: "exp-1",
            variant: "production",
            model_version: "gbm-1",
            route: "/predict",
            features: FeatureValues(&values),
            probability: 0.25,
            decision: false,
            cold_start: true,
            latency_us: 120,
        })
        .expect("encode")
    }

    fn write_prediction(writer: &mut LogWriter, time: &str, id: &str) {
        writer
            .append_prediction(at(time), "gbm-1", model, &line(id))
            .expect("append");
    }

    fn all(dir: &Path, window: Window) -> (Vec<Record>, ReadStats) {
        let mut records = Vec::new();
        let stats = read_records(dir, window, |r| records.push(r)).expect("read");
        (records, stats)
    }

    #[test]
    fn a_prediction_line_reads_back_with_its_model_record_once_per_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (mut writer, _) = LogWriter::open(dir.path(), 1 << 20, "test").expect("open");
        write_prediction(&mut writer, "2026-12-01T14:05:00Z", "p1");
        write_prediction(&mut writer, "2026-12-01T14:05:01Z", "p2");
        writer.close().expect("close");
        let (records, stats) = all(dir.path(), Window::default());
        assert_eq!(
            records,
            vec![
                Record::Prediction(prediction("p1")),
                Record::Prediction(prediction("p2"))
            ]
        );
        assert_eq!(stats.bad_lines, 0);
        let files = log_files(dir.path(), Window::default()).expect("files");
        let text = std::fs::read_to_string(&files[0]).expect("text");
        assert_eq!(text.matches("\"kind\":\"model\"").count(), 1, "{text}");
        assert!(text.contains("\"features\":[45.9,null]"), "{text}");
    }

    #[test]
    fn files_rotate_on_the_hour_and_by_size_and_read_back_in_order() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (mut writer, recovered) = LogWriter::open(dir.path(), 300, "test").expect("open");
        assert!(recovered.is_empty());
        let times = [
            "2026-12-01T14:05:00Z",
            "2026-12-01T14:06:00Z",
            "2026-12-01T14:07:00Z",
            "2026-12-01T15:00:00Z",
        ];
        for (i, time) in times.iter().enumerate() {
            write_prediction(&mut writer, time, &format!("p{i}"));
        }
        writer.close().expect("close");
        let files = log_files(dir.path(), Window::default()).expect("files");
        // A file is full after its first prediction (300 bytes): three in
        // hour 14, each with its own model record.
        assert_eq!(files.len(), 4, "{files:?}");
        assert!(files[3].to_string_lossy().contains("date=2026-12-01/hour=15/"));
        let (records, stats) = all(dir.path(), Window::default());
        let ids: Vec<&str> = records
            .iter()
            .map(|r| match r {
                Record::Prediction(p) => p.prediction_id.as_str(),
                _ => "",
            })
            .collect();
        assert_eq!(ids, ["p0", "p1", "p2", "p3"]);
        assert_eq!((stats.files, stats.records, stats.bad_lines), (4, 4, 0));

        let window = Window {
            from: Some(at("2026-12-01T15:00:00Z")),
            ..Window::default()
        };
        assert_eq!(all(dir.path(), window).1.records, 1);
        let window = Window {
            until: Some(at("2026-12-01T15:00:00Z")),
            ..Window::default()
        };
        assert_eq!(all(dir.path(), window).1.records, 3);
    }

    #[test]
    fn a_killed_writer_leaves_a_file_the_next_one_closes_cutting_the_torn_line() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (mut writer, _) = LogWriter::open(dir.path(), 1 << 20, "test").expect("open");
        write_prediction(&mut writer, "2026-12-01T14:05:00Z", "p1");
        writer.flush().expect("flush");
        let partial = writer.open_file().expect("open file").to_owned();
        // As if killed mid-write: half a line after the flushed one, and no
        // close (forget skips Drop).
        let mut file = OpenOptions::new().append(true).open(&partial).expect("file");
        file.write_all(br#"{"kind":"prediction","time":"2026-12"#)
            .expect("torn");
        std::mem::forget(writer);

        // A running server's file is read up to its unfinished line.
        let open = Window {
            include_open: true,
            ..Window::default()
        };
        let (_, stats) = all(dir.path(), open);
        assert_eq!((stats.records, stats.unfinished_lines), (1, 1));
        assert_eq!(all(dir.path(), Window::default()).1.records, 0);

        let (_writer, recovered) = LogWriter::open(dir.path(), 1 << 20, "test").expect("reopen");
        assert_eq!(recovered.len(), 1);
        assert_eq!(recovered[0].torn_bytes, 36);
        let (records, stats) = all(dir.path(), Window::default());
        assert_eq!(records, vec![Record::Prediction(prediction("p1"))]);
        assert_eq!(stats.bad_lines, 0);
    }

    #[test]
    fn bad_lines_are_counted_and_named_and_another_version_is_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let part = partition_dir(dir.path(), at("2026-12-01T14:00:00Z"));
        std::fs::create_dir_all(&part).expect("dir");
        let header = |version: u32| {
            serde_json::to_string(&LogLine::Header(&Header {
                format: LOG_FORMAT.into(),
                version,
                writer: "test".into(),
                opened: "2026-12-01T14:00:00.000Z".into(),
            }))
            .expect("header")
        };
        let model = serde_json::to_string(&LogLine::Model(&model())).expect("model");
        let good = String::from_utf8(line("p1")).expect("utf-8");
        // Line 3 comes before any model record; lines 5 and 6 are broken.
        let text = format!(
            "{}\n{good}\n{model}\n{good}\nnot json\n{{\"kind\":\"mystery\"}}\n",
            header(1)
        );
        std::fs::write(part.join("part-1-1-000001.jsonl"), text).expect("write");
        let (records, stats) = all(dir.path(), Window::default());
        assert_eq!(records.len(), 1);
        assert_eq!(stats.bad_lines, 3);
        assert!(
            stats.bad_examples[0].contains("part-1-1-000001.jsonl:2: no model record for gbm-1"),
            "{:?}",
            stats.bad_examples
        );
        assert!(
            stats.bad_examples[1].contains("part-1-1-000001.jsonl:5:"),
            "{:?}",
            stats.bad_examples
        );

        std::fs::write(
            part.join("part-2-1-000001.jsonl"),
            format!("{}\n{good}\n", header(99)),
        )
        .expect("write");
        let err = read_records(dir.path(), Window::default(), |_| {}).expect_err("version");
        assert!(matches!(err, LogError::Version { got: 99, .. }), "{err}");
        std::fs::write(part.join("part-2-1-000001.jsonl"), format!("{good}\n")).expect("write");
        let err = read_records(dir.path(), Window::default(), |_| {}).expect_err("no header");
        assert!(matches!(err, LogError::NoHeader { .. }), "{err}");
    }
}
