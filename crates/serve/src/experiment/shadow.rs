//! Shadow scoring off the request path: a request sampled for shadowing
//! puts its row on a bounded queue and is answered by the primary at once;
//! a background worker scores the row with each shadow model and logs the
//! scores next to the prediction. When the queue is full the shadow work is
//! dropped and counted, never the request slowed.

use std::sync::mpsc::{self, Receiver, SyncSender, TryRecvError, TrySendError};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use revspend_core::artifact::prediction_log::{self, ShadowRecord};
use revspend_core::contract::Transaction;

use super::Deployment;
use crate::prediction_log::PredictionLog;

/// How long the idle worker pauses before looking at the queue again.
const PAUSE: std::time::Duration = std::time::Duration::from_millis(5);
/// The longest pause of a worker that keeps finding the queue empty (the
/// pause doubles each time up to this).
const IDLE_PAUSE: std::time::Duration = std::time::Duration::from_millis(50);

/// One row to score with the shadow variants.
#[derive(Debug)]
pub struct ShadowJob {
    pub deployment: Arc<Deployment>,
    pub prediction_id: String,
    pub pseudonym: String,
    pub txn: Transaction,
}

enum Message {
    Job(Box<ShadowJob>),
    Stop,
}

/// The counters of shadow work (registered in [`crate::metrics::Metrics`]).
#[derive(Debug, Clone, Default)]
pub struct ShadowCounters {
    pub depth: Gauge,
    pub dropped: Counter,
    pub scored: Counter,
    pub failed: Counter,
}

/// The queue and its worker thread.
#[derive(Debug)]
pub struct ShadowPool {
    sender: SyncSender<Message>,
    counters: ShadowCounters,
    /// Held by the worker while it scores a job: whoever holds it instead
    /// stops the worker (tests show a stalled shadow never blocks a request).
    gate: Arc<Mutex<()>>,
    thread: Mutex<Option<std::thread::JoinHandle<()>>>,
}

impl ShadowPool {
    /// Starts the worker with a queue of `capacity` rows.
    pub fn start(capacity: usize, log: Arc<PredictionLog>, counters: ShadowCounters) -> ShadowPool {
        let (sender, receiver) = mpsc::sync_channel(capacity.max(1));
        let gate = Arc::new(Mutex::new(()));
        let worker_gate = gate.clone();
        let worker_counters = counters.clone();
        let thread = std::thread::Builder::new()
            .name("shadow".into())
            .spawn(move || work(receiver, log, worker_counters, worker_gate))
            .map_err(|e| log::error!("cannot start the shadow worker, shadow rows will be dropped: {e}"))
            .ok();
        ShadowPool {
            sender,
            counters,
            gate,
            thread: Mutex::new(thread),
        }
    }

    /// Queues a row; dropped and counted when the queue is full.
    pub fn offer(&self, job: ShadowJob) {
        match self.sender.try_send(Message::Job(Box::new(job))) {
            Ok(()) => {
                self.counters.depth.inc();
            }
            Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => {
                self.counters.dropped.inc();
            }
        }
    }

    /// Stops the worker until the guard is dropped.
    #[doc(hidden)]
    pub fn pause(&self) -> std::sync::MutexGuard<'_, ()> {
        self.gate
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Scores what is queued, then stops the worker (at shutdown, before
    /// the log closes).
    pub fn close(&self) {
        if self.sender.send(Message::Stop).is_err() {
            return;
        }
        let thread = self.thread.lock().ok().and_then(|mut t| t.take());
        if let Some(thread) = thread
            && thread.join().is_err()
        {
            log::error!("the shadow worker panicked");
        }
    }
}

fn work(
    receiver: Receiver<Message>,
    log: Arc<PredictionLog>,
    counters: ShadowCounters,
    gate: Arc<Mutex<()>>,
) {
    let mut pause = PAUSE;
    loop {
        // Polled rather than waited on, as the prediction log's writer does:
        // a request offering a row never has to wake the worker.
        let job = match receiver.try_recv() {
            Ok(Message::Job(job)) => job,
            Ok(Message::Stop) | Err(TryRecvError::Disconnected) => return,
            Err(TryRecvError::Empty) => {
                std::thread::sleep(pause);
                pause = (pause * 2).min(IDLE_PAUSE);
                continue;
            }
        };
        pause = PAUSE;
        counters.depth.dec();
        let _open = gate.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let deployment = &job.deployment;
        for &variant in deployment.shadows() {
            let Some(serving) = deployment.variants.get(variant) else {
                continue;
            };
            let started = Instant::now();
            let scored = serving.score(&[(job.pseudonym.as_str(), &job.txn)]);
            let latency_us = u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX);
            match scored.as_deref() {
                Ok([row]) => {
                    counters.scored.inc();
                    log.shadow(ShadowRecord {
                        time: prediction_log::timestamp(prediction_log::now()),
                        prediction_id: job.prediction_id.clone(),
                        experiment: deployment.experiment.to_string(),
                        variant: deployment.names[variant].to_string(),
                        model_version: serving.model_version().to_owned(),
                        registry_version: serving.origin.registry_version.clone(),
                        probability: row.probability,
                        threshold: serving.model.threshold,
                        decision: row.probability >= serving.model.threshold,
                        latency_us,
                    });
                }
                Ok(_) | Err(_) => {
                    counters.failed.inc();
                    log::warn!(
                        "shadow variant {} could not score prediction {}",
                        deployment.names[variant],
                        job.prediction_id
                    );
                }
            }
        }
    }
}
