//! The prediction log's writer. A request hands its records to a bounded
//! queue and goes on: when the queue is full the record is dropped and
//! counted (`revspend_prediction_log_dropped_total`), never waited for. One
//! background thread serialises the records and appends them
//! ([`revspend_core::artifact::prediction_log`]: JSON lines by date and
//! hour), hands them to the operating system whenever the queue runs empty
//! and syncs them to disk every second. At shutdown (SIGTERM) the server
//! stops taking requests, finishes those in flight, then [`PredictionLog::close`]
//! writes everything queued and closes the file: nothing a client was
//! answered for is lost.
//!
//! Feedback is not dropped: it waits (up to a second) for room in the
//! queue, and is acknowledged only once written and handed to the
//! operating system; otherwise the client gets a 503 and retries.
//!
//! The same thread bins each prediction's features into the live drift
//! window ([`crate::drift`]), so the request path pays nothing for the
//! drift gauges. Without a log directory but with the gauges on, the thread
//! runs for them alone ([`PredictionLog::drift_only`]): predictions are
//! queued and binned, nothing is written, and shadow scores and feedback
//! are not queued.

use std::path::Path;
use std::sync::Mutex;
use std::sync::mpsc::{self, Receiver, SyncSender, TrySendError};
use std::time::{Duration, Instant};

use std::sync::Arc;

use anyhow::Context;
use chrono::{DateTime, Utc};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use revspend_core::artifact::prediction_log::{
    self as format, FeatureValues, FeedbackRecord, LogLine, LogWriter, ModelRecord, PredictionLine,
    ShadowRecord, timestamp,
};

use crate::Serving;
use crate::drift::DriftWindow;

/// How often the writer syncs to disk when records keep coming.
const SYNC_EVERY: Duration = Duration::from_secs(1);
/// Most records written between two flushes under sustained load.
const DRAIN_BATCH: usize = 4_096;
/// How long the writer pauses once the queue is empty: how late, at most, a
/// record reaches the file (and feedback its acknowledgement) while records
/// keep coming.
const PAUSE: Duration = Duration::from_millis(5);
/// The longest pause of an idle writer: each empty look doubles the pause
/// up to this, so an idle server wakes 20 times a second, not 200.
const IDLE_PAUSE: Duration = Duration::from_millis(50);
/// How long feedback waits for room in a full queue.
const FEEDBACK_WAIT: Duration = Duration::from_secs(1);

/// A prediction as the request path hands it over: the serving model is
/// shared, not copied, so its feature names cost nothing.
#[derive(Debug)]
pub struct PredictionEntry {
    pub time: DateTime<Utc>,
    /// The prediction id (a UUID), formatted by the writer.
    pub prediction_id: u128,
    pub pseudonym: String,
    pub experiment: Arc<str>,
    pub variant: Arc<str>,
    pub serving: Arc<Serving>,
    pub route: &'static str,
    pub features: Vec<f64>,
    pub probability: f64,
    pub decision: bool,
    pub cold_start: bool,
    pub latency_us: u64,
}

enum Entry {
    Prediction(Box<PredictionEntry>),
    Shadow(Box<ShadowRecord>),
    /// Feedback records, and where to say they are written.
    Feedback(Vec<FeedbackRecord>, SyncSender<bool>),
    /// Write everything before this, close the file and stop.
    Stop,
}

/// The counters the log keeps (registered in [`crate::metrics::Metrics`]).
#[derive(Debug, Clone, Default)]
pub struct LogCounters {
    pub predictions: Counter,
    pub shadows: Counter,
    pub feedbacks: Counter,
    pub dropped: Counter,
    pub errors: Counter,
    pub depth: Gauge,
}

/// The queue into the log, and its writer thread.
#[derive(Debug)]
pub struct PredictionLog {
    sender: Option<SyncSender<Entry>>,
    /// Whether records are written to files (false: the thread only feeds
    /// the drift window).
    writes: bool,
    counters: LogCounters,
    thread: Mutex<Option<std::thread::JoinHandle<()>>>,
}

impl PredictionLog {
    /// No log (the server was started without `--prediction-log`): records
    /// go nowhere and are not counted.
    pub fn disabled(counters: LogCounters) -> PredictionLog {
        PredictionLog {
            sender: None,
            writes: false,
            counters,
            thread: Mutex::new(None),
        }
    }

    /// No log, but the drift gauges on: a queue of `capacity` predictions
    /// and a thread that bins them into `drift`, writing nothing.
    pub fn drift_only(
        capacity: usize,
        counters: LogCounters,
        drift: Arc<DriftWindow>,
    ) -> anyhow::Result<PredictionLog> {
        let (sender, receiver) = mpsc::sync_channel(capacity.max(1));
        let thread_counters = counters.clone();
        let thread = std::thread::Builder::new()
            .name("drift-window".into())
            .spawn(move || write_loop(None, receiver, thread_counters, Some(drift)))
            .context("cannot start the drift window's thread")?;
        Ok(PredictionLog {
            sender: Some(sender),
            writes: false,
            counters,
            thread: Mutex::new(Some(thread)),
        })
    }

    /// Opens the log in `dir` (closing files a killed writer left open)
    /// and starts the writer thread with a queue of `capacity` records.
    pub fn start(
        dir: &Path,
        max_file_bytes: u64,
        capacity: usize,
        counters: LogCounters,
        drift: Option<Arc<DriftWindow>>,
    ) -> anyhow::Result<PredictionLog> {
        let writer_name = format!("serve {}", env!("CARGO_PKG_VERSION"));
        let (writer, recovered) = LogWriter::open(dir, max_file_bytes, &writer_name)
            .with_context(|| format!("cannot open the prediction log {}", dir.display()))?;
        if !recovered.is_empty() {
            log::warn!(
                "prediction log: closed {} file(s) a previous run left open",
                recovered.len()
            );
        }
        let (sender, receiver) = mpsc::sync_channel(capacity.max(1));
        let thread_counters = counters.clone();
        let thread = std::thread::Builder::new()
            .name("prediction-log".into())
            .spawn(move || write_loop(Some(writer), receiver, thread_counters, drift))
            .context("cannot start the prediction log's writer thread")?;
        log::info!(
            "prediction log: {} (queue {capacity} records, files up to {max_file_bytes} bytes)",
            dir.display()
        );
        Ok(PredictionLog {
            sender: Some(sender),
            writes: true,
            counters,
            thread: Mutex::new(Some(thread)),
        })
    }

    /// Whether predictions go anywhere (a file, or the drift window).
    pub fn enabled(&self) -> bool {
        self.sender.is_some()
    }

    /// Whether records are written to the log's files.
    pub fn writes(&self) -> bool {
        self.writes
    }

    fn offer(&self, entry: Entry) {
        let Some(sender) = &self.sender else { return };
        match sender.try_send(entry) {
            Ok(()) => {
                self.counters.depth.inc();
            }
            Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => {
                self.counters.dropped.inc();
            }
        }
    }

    /// Queues a prediction; dropped and counted when the queue is full.
    pub fn prediction(&self, entry: PredictionEntry) {
        self.offer(Entry::Prediction(Box::new(entry)));
    }

    /// Queues a shadow score; dropped and counted when the queue is full.
    pub fn shadow(&self, record: ShadowRecord) {
        if !self.writes {
            return;
        }
        self.offer(Entry::Shadow(Box::new(record)));
    }

    /// Writes feedback records and waits until they are handed to the
    /// operating system. False when they could not be (queue full for a
    /// second, a write error, the log closing): nothing was acknowledged.
    pub fn feedback(&self, records: Vec<FeedbackRecord>) -> bool {
        let Some(sender) = self.sender.as_ref().filter(|_| self.writes) else {
            return true;
        };
        let (ack, acked) = mpsc::sync_channel(1);
        let deadline = Instant::now() + FEEDBACK_WAIT;
        let mut entry = Entry::Feedback(records, ack);
        loop {
            match sender.try_send(entry) {
                Ok(()) => {
                    self.counters.depth.inc();
                    break;
                }
                Err(TrySendError::Full(back)) if Instant::now() < deadline => {
                    entry = back;
                    std::thread::sleep(Duration::from_millis(2));
                }
                Err(_) => return false,
            }
        }
        acked.recv_timeout(FEEDBACK_WAIT * 5).unwrap_or(false)
    }

    /// Writes everything queued, closes the open file and stops the writer
    /// (at shutdown, after the last request).
    pub fn close(&self) {
        let Some(sender) = &self.sender else { return };
        // A blocking send: the stop must not be dropped for a full queue.
        if sender.send(Entry::Stop).is_err() {
            return;
        }
        let thread = self.thread.lock().ok().and_then(|mut t| t.take());
        if let Some(thread) = thread
            && thread.join().is_err()
        {
            log::error!("prediction log: the writer thread panicked");
        }
    }
}

/// The thread's loop: `writer` none when nothing is written (the drift
/// window alone), `drift` none when the gauges are off.
fn write_loop(
    mut writer: Option<LogWriter>,
    receiver: Receiver<Entry>,
    counters: LogCounters,
    drift: Option<Arc<DriftWindow>>,
) {
    let mut last_sync = Instant::now();
    let mut unsynced = false;
    let mut pause = PAUSE;
    loop {
        // The writer polls rather than waits on the queue: a request handing
        // over a record never has to wake it (a futex call and a context
        // switch per record at full load), and records are written in
        // batches of whatever a pause gathered.
        let first = match receiver.try_recv() {
            Ok(entry) => Some(entry),
            Err(mpsc::TryRecvError::Empty) => None,
            Err(mpsc::TryRecvError::Disconnected) => Some(Entry::Stop),
        };
        let mut acks: Vec<SyncSender<bool>> = Vec::new();
        let mut stop = false;
        let mut ok = true;
        let mut next = first;
        let mut taken = 0;
        while let Some(entry) = next.take() {
            if !matches!(entry, Entry::Stop) {
                counters.depth.dec();
            }
            match entry {
                Entry::Stop => stop = true,
                Entry::Prediction(p) => {
                    if let Some(drift) = &drift {
                        drift.record(p.time.timestamp_millis(), &p.serving.model.features, &p.features);
                    }
                    if let Some(writer) = writer.as_mut() {
                        ok &= write_prediction(writer, &p, &counters.errors);
                        counters.predictions.inc();
                    }
                }
                Entry::Shadow(s) => {
                    if let Some(writer) = writer.as_mut() {
                        ok &= write(writer, format::now(), &LogLine::Shadow(&s), &counters.errors);
                        counters.shadows.inc();
                    }
                }
                Entry::Feedback(records, ack) => {
                    if let Some(writer) = writer.as_mut() {
                        let time = format::now();
                        for r in &records {
                            ok &= write(writer, time, &LogLine::Feedback(r), &counters.errors);
                            counters.feedbacks.inc();
                        }
                    }
                    acks.push(ack);
                }
            }
            taken += 1;
            if stop || taken >= DRAIN_BATCH {
                break;
            }
            next = receiver.try_recv().ok();
        }
        if taken > 0
            && let Some(writer) = writer.as_mut()
        {
            unsynced = true;
            if let Err(e) = writer.flush() {
                counters.errors.inc();
                log::error!("prediction log: {e}");
                ok = false;
            }
        }
        for ack in acks {
            let _ = ack.send(ok);
        }
        if stop {
            if let Some(writer) = writer.as_mut()
                && let Err(e) = writer.close()
            {
                log::error!("prediction log: closing: {e}");
            }
            return;
        }
        if unsynced
            && last_sync.elapsed() >= SYNC_EVERY
            && let Some(writer) = writer.as_mut()
        {
            if let Err(e) = writer.sync() {
                counters.errors.inc();
                log::error!("prediction log: {e}");
            }
            last_sync = Instant::now();
            unsynced = false;
        }
        pause = if taken == 0 {
            (pause * 2).min(IDLE_PAUSE)
        } else {
            PAUSE
        };
        if taken < DRAIN_BATCH {
            std::thread::sleep(pause);
        }
    }
}

/// Appends a queued prediction: its line, and its model's record first when
/// the file has none yet.
fn write_prediction(writer: &mut LogWriter, p: &PredictionEntry, errors: &Counter) -> bool {
    let model = &p.serving.model;
    let time = timestamp(p.time);
    let mut id = [0u8; uuid::fmt::Hyphenated::LENGTH];
    let id = uuid::Uuid::from_u128(p.prediction_id)
        .hyphenated()
        .encode_lower(&mut id);
    let line = PredictionLine {
        kind: "prediction",
        time: &time,
        prediction_id: id,
        pseudonym: &p.pseudonym,
        experiment: &p.experiment,
        variant: &p.variant,
        model_version: &model.model_version,
        route: p.route,
        features: FeatureValues(&p.features),
        probability: p.probability,
        decision: p.decision,
        cold_start: p.cold_start,
        latency_us: p.latency_us,
    };
    let describe = || ModelRecord {
        model_version: model.model_version.clone(),
        registry_version: p.serving.origin.registry_version.clone(),
        threshold: model.threshold,
        features: p.serving.feature_names.clone(),
    };
    let appended = serde_json::to_vec(&line)
        .map_err(format::LogError::from)
        .and_then(|line| writer.append_prediction(p.time, &model.model_version, describe, &line));
    failed(appended, errors)
}

/// Appends one line (a full disk fails every record).
fn write(writer: &mut LogWriter, time: DateTime<Utc>, line: &LogLine<'_>, errors: &Counter) -> bool {
    failed(writer.append_line(time, line), errors)
}

/// Whether an append worked; a failure is counted, and logged the 1st, 2nd,
/// 4th, 8th... time.
fn failed(appended: Result<(), format::LogError>, errors: &Counter) -> bool {
    match appended {
        Ok(()) => true,
        Err(e) => {
            let n = errors.inc() + 1;
            if n.is_power_of_two() {
                log::error!("prediction log: {e} ({n} write errors so far)");
            }
            false
        }
    }
}
