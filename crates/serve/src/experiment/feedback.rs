//! Which predictions can still take feedback, and which already did: an
//! index of the most recent predictions by id (bounded: the oldest are
//! forgotten first, and their feedback is then refused as unknown), sharded
//! so the request path takes a lock no other worker is likely to hold. At
//! start it is rebuilt from the prediction log, so feedback that arrives
//! days later, across restarts, still finds its prediction, and a
//! duplicate is still refused.

use std::collections::{HashMap, VecDeque};
use std::path::Path;
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Utc};
use revspend_core::artifact::prediction_log::{self, Record, Window};

const SHARDS: usize = 16;

/// What feedback needs to know of a prediction.
#[derive(Debug, Clone, PartialEq)]
pub struct Pending {
    pub experiment: Arc<str>,
    pub variant: Arc<str>,
    pub model_version: Arc<str>,
    pub decision: bool,
}

/// Why feedback was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// Never made here, or older than what the index keeps.
    Unknown,
    /// Feedback for it was already taken.
    Duplicate,
}

#[derive(Debug, Default)]
struct Shard {
    entries: HashMap<u128, (Pending, bool)>,
    /// Ids in insertion order, oldest first, for eviction.
    order: VecDeque<u128>,
}

/// The index.
#[derive(Debug)]
pub struct PendingIndex {
    shards: Vec<Mutex<Shard>>,
    per_shard: usize,
}

impl PendingIndex {
    /// An index keeping at most about `capacity` predictions.
    pub fn new(capacity: usize) -> PendingIndex {
        PendingIndex {
            shards: (0..SHARDS).map(|_| Mutex::new(Shard::default())).collect(),
            per_shard: capacity.div_ceil(SHARDS).max(1),
        }
    }

    fn shard(&self, id: u128) -> Option<std::sync::MutexGuard<'_, Shard>> {
        // UUID v7: the low bits are random.
        self.shards[(id as usize) % SHARDS].lock().ok()
    }

    /// Records a prediction that can take feedback.
    pub fn insert(&self, id: u128, pending: Pending) {
        self.put(id, pending, false);
    }

    fn put(&self, id: u128, pending: Pending, answered: bool) {
        let Some(mut shard) = self.shard(id) else { return };
        if shard.entries.insert(id, (pending, answered)).is_none() {
            shard.order.push_back(id);
        }
        while shard.order.len() > self.per_shard {
            if let Some(old) = shard.order.pop_front() {
                shard.entries.remove(&old);
            }
        }
    }

    /// Takes the feedback of a prediction: its details, or why not. Taken
    /// feedback is marked, so a second one is a duplicate;
    /// [`PendingIndex::give_back`] undoes it when the feedback could not be
    /// recorded.
    pub fn take(&self, id: u128) -> Result<Pending, Refusal> {
        let mut shard = self.shard(id).ok_or(Refusal::Unknown)?;
        match shard.entries.get_mut(&id) {
            None => Err(Refusal::Unknown),
            Some((_, true)) => Err(Refusal::Duplicate),
            Some((pending, answered)) => {
                *answered = true;
                Ok(pending.clone())
            }
        }
    }

    /// Un-marks feedback taken with [`PendingIndex::take`].
    pub fn give_back(&self, id: u128) {
        if let Some(mut shard) = self.shard(id)
            && let Some((_, answered)) = shard.entries.get_mut(&id)
        {
            *answered = false;
        }
    }

    /// Predictions held.
    pub fn len(&self) -> usize {
        self.shards
            .iter()
            .filter_map(|s| s.lock().ok().map(|s| s.entries.len()))
            .sum()
    }

    /// Whether it holds none.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Rebuilds the index from the log's predictions since `since`, and
    /// marks those that already have feedback. Returns the predictions and
    /// feedbacks read.
    pub fn rebuild(&self, dir: &Path, since: DateTime<Utc>) -> anyhow::Result<(u64, u64)> {
        let window = Window {
            from: Some(since),
            until: None,
            include_open: true,
        };
        let mut interned: HashMap<String, Arc<str>> = HashMap::new();
        let mut intern = |s: &str| -> Arc<str> {
            interned
                .entry(s.to_owned())
                .or_insert_with(|| Arc::from(s))
                .clone()
        };
        let (mut predictions, mut feedbacks) = (0u64, 0u64);
        let mut answered: Vec<u128> = Vec::new();
        let stats = prediction_log::read_records(dir, window, |record| match record {
            Record::Prediction(p) => {
                if let Ok(id) = uuid::Uuid::parse_str(&p.prediction_id) {
                    predictions += 1;
                    let pending = Pending {
                        experiment: intern(&p.experiment),
                        variant: intern(&p.variant),
                        model_version: intern(&p.model_version),
                        decision: p.decision,
                    };
                    self.put(id.as_u128(), pending, false);
                }
            }
            Record::Feedback(f) => {
                if let Ok(id) = uuid::Uuid::parse_str(&f.prediction_id) {
                    feedbacks += 1;
                    answered.push(id.as_u128());
                }
            }
            Record::Shadow(_) | Record::Header(_) => {}
        })?;
        for id in answered {
            if let Some(mut shard) = self.shard(id)
                && let Some((_, done)) = shard.entries.get_mut(&id)
            {
                *done = true;
            }
        }
        if stats.bad_lines > 0 {
            log::warn!(
                "prediction log: {} unreadable lines while rebuilding the feedback index, e.g. {}",
                stats.bad_lines,
                stats.bad_examples.join("; ")
            );
        }
        Ok((predictions, feedbacks))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pending(variant: &str) -> Pending {
        Pending {
            experiment: Arc::from("e"),
            variant: Arc::from(variant),
            model_version: Arc::from("m"),
            decision: true,
        }
    }

    #[test]
    fn feedback_is_taken_once_and_unknown_ids_are_refused() {
        let index = PendingIndex::new(100);
        index.insert(7, pending("a"));
        assert_eq!(index.take(8), Err(Refusal::Unknown));
        assert_eq!(index.take(7), Ok(pending("a")));
        assert_eq!(index.take(7), Err(Refusal::Duplicate));
        index.give_back(7);
        assert_eq!(index.take(7), Ok(pending("a")));
    }

    #[test]
    fn the_oldest_are_forgotten_first() {
        let index = PendingIndex::new(SHARDS * 2);
        // Three ids in one shard: the first is evicted.
        for id in [0u128, SHARDS as u128, 2 * SHARDS as u128] {
            index.insert(id, pending("a"));
        }
        assert_eq!(index.take(0), Err(Refusal::Unknown));
        assert!(index.take(SHARDS as u128).is_ok());
        assert!(index.take(2 * SHARDS as u128).is_ok());
        assert_eq!(index.len(), 2);
    }
}
