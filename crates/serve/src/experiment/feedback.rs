//! Which predictions can still take feedback, and which already did: an
//! index of the most recent predictions by id (bounded: the oldest are
//! forgotten first, and their feedback is then refused as unknown), sharded
//! so the request path takes a lock no other worker is likely to hold. An
//! entry is the id, a number standing for its experiment, variant and model
//! (interned: a handful per server) and two flags, about 40 bytes. At
//! start it is rebuilt from the prediction log, so feedback that arrives
//! days later, across restarts, still finds its prediction, and a
//! duplicate is still refused.

use std::collections::{HashMap, VecDeque};
use std::path::Path;
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Utc};
use revspend_core::artifact::prediction_log::{self, Record, Window};

const SHARDS: usize = 16;

/// Where a prediction was made: its experiment, variant and model.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Context {
    pub experiment: Arc<str>,
    pub variant: Arc<str>,
    pub model_version: Arc<str>,
}

/// What feedback needs to know of a prediction.
#[derive(Debug, Clone, PartialEq)]
pub struct Pending {
    pub experiment: Arc<str>,
    pub variant: Arc<str>,
    pub model_version: Arc<str>,
    pub decision: bool,
}

/// One prediction in the index.
#[derive(Debug, Clone, Copy)]
struct Slot {
    context: u32,
    decision: bool,
    answered: bool,
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
    entries: HashMap<u128, Slot>,
    /// Ids in insertion order, oldest first, for eviction.
    order: VecDeque<u128>,
}

/// The index.
#[derive(Debug)]
pub struct PendingIndex {
    shards: Vec<Mutex<Shard>>,
    per_shard: usize,
    contexts: std::sync::RwLock<Vec<Context>>,
}

impl PendingIndex {
    /// An index keeping at most about `capacity` predictions.
    pub fn new(capacity: usize) -> PendingIndex {
        PendingIndex {
            shards: (0..SHARDS).map(|_| Mutex::new(Shard::default())).collect(),
            per_shard: capacity.div_ceil(SHARDS).max(1),
            contexts: std::sync::RwLock::new(Vec::new()),
        }
    }

    /// The number standing for a context (the same number for an equal
    /// context, whenever asked).
    pub fn context(&self, context: Context) -> u32 {
        if let Ok(known) = self.contexts.read()
            && let Some(i) = known.iter().position(|c| *c == context)
        {
            return i as u32;
        }
        let Ok(mut known) = self.contexts.write() else {
            return u32::MAX;
        };
        if let Some(i) = known.iter().position(|c| *c == context) {
            return i as u32;
        }
        known.push(context);
        (known.len() - 1) as u32
    }

    fn shard(&self, id: u128) -> Option<std::sync::MutexGuard<'_, Shard>> {
        // UUID v7: the low bits are random.
        self.shards[(id as usize) % SHARDS].lock().ok()
    }

    /// Records a prediction that can take feedback: its id, its
    /// [`PendingIndex::context`] and its decision.
    pub fn insert(&self, id: u128, context: u32, decision: bool) {
        self.put(id, context, decision, false);
    }

    fn put(&self, id: u128, context: u32, decision: bool, answered: bool) {
        let Some(mut shard) = self.shard(id) else { return };
        let slot = Slot {
            context,
            decision,
            answered,
        };
        if shard.entries.insert(id, slot).is_none() {
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
        let slot = {
            let mut shard = self.shard(id).ok_or(Refusal::Unknown)?;
            let slot = shard.entries.get_mut(&id).ok_or(Refusal::Unknown)?;
            if slot.answered {
                return Err(Refusal::Duplicate);
            }
            slot.answered = true;
            *slot
        };
        let contexts = self.contexts.read().map_err(|_| Refusal::Unknown)?;
        let context = contexts.get(slot.context as usize).ok_or(Refusal::Unknown)?;
        Ok(Pending {
            experiment: context.experiment.clone(),
            variant: context.variant.clone(),
            model_version: context.model_version.clone(),
            decision: slot.decision,
        })
    }

    /// Un-marks feedback taken with [`PendingIndex::take`].
    pub fn give_back(&self, id: u128) {
        if let Some(mut shard) = self.shard(id)
            && let Some(slot) = shard.entries.get_mut(&id)
        {
            slot.answered = false;
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
        let mut contexts: HashMap<(String, String, String), u32> = HashMap::new();
        let (mut predictions, mut feedbacks) = (0u64, 0u64);
        let mut answered: Vec<u128> = Vec::new();
        let stats = prediction_log::read_records(dir, window, |record| match record {
            Record::Prediction(p) => {
                if let Ok(id) = uuid::Uuid::parse_str(&p.prediction_id) {
                    predictions += 1;
                    let key = (p.experiment, p.variant, p.model_version);
                    let context = match contexts.get(&key) {
                        Some(c) => *c,
                        None => {
                            let c = self.context(Context {
                                experiment: Arc::from(key.0.as_str()),
                                variant: Arc::from(key.1.as_str()),
                                model_version: Arc::from(key.2.as_str()),
                            });
                            contexts.insert(key, c);
                            c
                        }
                    };
                    self.put(id.as_u128(), context, p.decision, false);
                }
            }
            Record::Feedback(f) => {
                if let Ok(id) = uuid::Uuid::parse_str(&f.prediction_id) {
                    feedbacks += 1;
                    answered.push(id.as_u128());
                }
            }
            Record::Shadow(_) => {}
        })?;
        for id in answered {
            if let Some(mut shard) = self.shard(id)
                && let Some(slot) = shard.entries.get_mut(&id)
            {
                slot.answered = true;
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

    fn context(index: &PendingIndex, variant: &str) -> u32 {
        index.context(Context {
            experiment: Arc::from("e"),
            variant: Arc::from(variant),
            model_version: Arc::from("m"),
        })
    }

    #[test]
    fn feedback_is_taken_once_and_unknown_ids_are_refused() {
        let index = PendingIndex::new(100);
        let a = context(&index, "a");
        assert_eq!(context(&index, "a"), a);
        assert_ne!(context(&index, "b"), a);
        index.insert(7, a, true);
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
        let a = context(&index, "a");
        for id in [0u128, SHARDS as u128, 2 * SHARDS as u128] {
            index.insert(id, a, true);
        }
        assert_eq!(index.take(0), Err(Refusal::Unknown));
        assert!(index.take(SHARDS as u128).is_ok());
        assert!(index.take(2 * SHARDS as u128).is_ok());
        assert_eq!(index.len(), 2);
    }
}
