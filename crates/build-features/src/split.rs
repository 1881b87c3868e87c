//! Split assignment: customers to train/test/holdout/calibration (grouped
//! and stratified, seeded), each master-table row's split (none for a row
//! after the training period), and the train rows read in place for the
//! checks.

use std::collections::BTreeMap;

use anyhow::{Context, Result, bail};
use chrono::{Datelike, NaiveDate};
use polars::prelude::*;
use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;
use revspend_core::artifact::{CUSTOMER_COLUMN, TARGET_COLUMN};
use revspend_core::features::{Feature, History};
use revspend_core::schema::DATE;

use crate::{in_order, stats};

pub use revspend_core::schema::SPLITS;

/// The split code of a row after the training period: in no split (not an
/// index into [`SPLITS`]).
pub(crate) const NO_SPLIT: u8 = u8::MAX;

/// What split assignment gives the rest of the stage.
pub(crate) struct Assigned {
    /// Every customer's split, live-only customers included (the
    /// assignment does not depend on the training period).
    pub(crate) split_of: BTreeMap<String, &'static str>,
    /// Customers whose every row is after the training period: in no
    /// split's rows.
    pub(crate) live_only: std::collections::BTreeSet<String>,
    /// Rows after the training period.
    pub(crate) live_rows: u64,
    /// Positive rows of the feature layer (live rows included, like the
    /// report's `rows_out`).
    pub(crate) positives: u64,
    /// Per month table, each row's split (an index into [`SPLITS`], or
    /// [`NO_SPLIT`]).
    pub(crate) codes: Vec<Vec<u8>>,
    /// Per month table, the train rows' indices.
    pub(crate) train_rows: Vec<Vec<u32>>,
    /// The train rows' targets, month after month.
    pub(crate) y_train: Vec<bool>,
}

/// Assigns customers to splits: each month table row's split, and the
/// train rows. Rows dated after `until` (the training period's last day)
/// get [`NO_SPLIT`]; their customers keep the split they would have, so
/// moving the end never moves a customer between splits.
pub(crate) fn assign_split_rows(
    frames: &mut [DataFrame],
    final_history: &BTreeMap<String, History>,
    ever_positive: &[bool],
    split: &revspend_core::params::SplitParams,
    until: Option<NaiveDate>,
) -> Result<Assigned> {
    // A month's rows come grouped by customer (the order they were computed
    // in), so each customer's split is looked up once per run of rows, not
    // per row. Each month's customer runs and targets, months in parallel.
    let started = std::time::Instant::now();
    let (runs, targets): (Vec<_>, Vec<Vec<bool>>) = in_order(
        frames
            .par_iter()
            .map(|f| -> Result<(Runs<'_>, Vec<bool>)> {
                let runs = customer_runs(f.column(CUSTOMER_COLUMN)?.str()?);
                let targets = f
                    .column(TARGET_COLUMN)?
                    .bool()?
                    .iter()
                    .map(|t| t.unwrap_or(false))
                    .collect();
                Ok((runs, targets))
            })
            .collect(),
    )?
    .into_iter()
    .unzip();
    log::debug!(
        "splits: customer runs found in {:.3} s",
        started.elapsed().as_secs_f64()
    );
    let positives = targets.iter().flatten().filter(|t| **t).count() as u64;
    // Customers are stratified by whether they ever spend in revenge, which
    // the feature walk noted (every staged row, reused months included),
    // in name order.
    if final_history.len() != ever_positive.len() {
        bail!(
            "internal: {} customers walked but {} revenge flags",
            final_history.len(),
            ever_positive.len()
        );
    }
    let customer_positive: Vec<(&str, bool)> = final_history
        .keys()
        .map(String::as_str)
        .zip(ever_positive.iter().copied())
        .collect();
    let split_of = assign_splits(&customer_positive, split)?;
    drop(customer_positive);
    log::debug!(
        "splits: customers assigned after {:.3} s",
        started.elapsed().as_secs_f64()
    );
    // Each row's split, as an index into SPLITS.
    let split_index: PlHashMap<&str, u8> = split_of
        .iter()
        .map(|(c, s)| (c.as_str(), SPLITS.iter().position(|n| n == s).unwrap_or(0) as u8))
        .collect();
    let until_day = until.map(epoch_day);
    let codes: Vec<Vec<u8>> = in_order(
        runs.par_iter()
            .zip(frames.par_iter())
            .map(|(runs, frame)| -> Result<Vec<u8>> {
                let mut codes = Vec::with_capacity(frame.height());
                for (c, rows) in runs {
                    codes.extend(std::iter::repeat_n(
                        split_index.get(c).copied().unwrap_or(0),
                        rows.len(),
                    ));
                }
                if let Some(last) = until_day {
                    let days = frame.column(DATE)?.date()?.physical();
                    for (code, day) in codes.iter_mut().zip(days.iter()) {
                        // A row without a date cannot be placed in the
                        // period: the layers never hold one.
                        if day.is_none_or(|d| d > last) {
                            *code = NO_SPLIT;
                        }
                    }
                }
                Ok(codes)
            })
            .collect(),
    )?;
    let live_rows = codes.iter().flatten().filter(|&&c| c == NO_SPLIT).count() as u64;
    // Customers with no row in the period: every run of theirs is live.
    let mut in_period = std::collections::BTreeSet::new();
    let mut seen = std::collections::BTreeSet::new();
    if until_day.is_some() {
        for (runs, codes) in runs.iter().zip(&codes) {
            for (c, rows) in runs {
                seen.insert(*c);
                if codes[rows.clone()].iter().any(|&code| code != NO_SPLIT) {
                    in_period.insert(*c);
                }
            }
        }
    }
    let live_only = seen.difference(&in_period).map(|c| (*c).to_owned()).collect();
    drop(runs);
    drop(split_index);
    log::debug!(
        "splits: rows coded after {:.3} s",
        started.elapsed().as_secs_f64()
    );
    // The train rows feed the leakage check, feature selection and the
    // profile, which read them in place (see `MonthTrainRows`).
    const TRAIN: u8 = 0;
    let (train_rows, y_train): (Vec<Vec<u32>>, Vec<Vec<bool>>) = in_order(
        codes
            .par_iter()
            .zip(targets.par_iter())
            .map(|(codes, targets)| -> Result<(Vec<u32>, Vec<bool>)> {
                let n = u32::try_from(codes.len()).context("a month of more than 2^32 rows")?;
                let rows: Vec<u32> = (0..n).filter(|&r| codes[r as usize] == TRAIN).collect();
                let y = rows.iter().map(|&r| targets[r as usize]).collect();
                Ok((rows, y))
            })
            .collect(),
    )?
    .into_iter()
    .unzip();
    let y_train: Vec<bool> = y_train.concat();
    drop(targets);
    for frame in frames.iter_mut() {
        // One chunk per column, for `MonthTrainRows` to read as slices
        // (a reused month read back from its file may come in several).
        frame.rechunk_mut_par();
    }
    Ok(Assigned {
        split_of,
        live_only,
        live_rows,
        positives,
        codes,
        train_rows,
        y_train,
    })
}

/// Days from 1970-01-01, as the feature layer stores a date.
fn epoch_day(date: NaiveDate) -> i32 {
    date.num_days_from_ce() - crate::layers::epoch_offset()
}

/// The train rows of the month tables, read in place through their
/// indices.
pub(crate) struct MonthTrainRows<'a> {
    /// Per month, one column per `Feature::ALL` entry.
    columns: Vec<Vec<&'a [f64]>>,
    /// Per month, the train rows' indices in its table.
    rows: &'a [Vec<u32>],
    /// Train rows before each month, then the total.
    starts: Vec<usize>,
}

impl<'a> MonthTrainRows<'a> {
    pub(crate) fn new(frames: &'a [DataFrame], rows: &'a [Vec<u32>]) -> Result<MonthTrainRows<'a>> {
        let columns = frames
            .iter()
            .map(|frame| {
                Feature::ALL
                    .iter()
                    .map(|f| {
                        let slice = frame.column(f.name())?.f64()?.cont_slice();
                        anyhow::Context::with_context(slice, || {
                            format!("feature {} of the master table", f.name())
                        })
                    })
                    .collect::<Result<Vec<&[f64]>>>()
            })
            .collect::<Result<Vec<_>>>()?;
        let mut starts = vec![0];
        for r in rows {
            starts.push(starts.last().copied().unwrap_or(0) + r.len());
        }
        Ok(MonthTrainRows {
            columns,
            rows,
            starts,
        })
    }
}

impl stats::TrainColumns for MonthTrainRows<'_> {
    fn rows(&self) -> usize {
        self.starts.last().copied().unwrap_or(0)
    }

    fn read(&self, f: Feature, range: std::ops::Range<usize>, out: &mut Vec<f64>) {
        // The month holding `range.start` (after any months without train rows).
        let mut m = self
            .starts
            .partition_point(|&s| s <= range.start)
            .saturating_sub(1);
        let mut at = range.start;
        while at < range.end && m < self.rows.len() {
            let lo = at - self.starts[m];
            let hi = (range.end - self.starts[m]).min(self.rows[m].len());
            let column = self.columns[m][f.index()];
            out.extend(self.rows[m][lo..hi].iter().map(|&r| column[r as usize]));
            at = self.starts[m] + hi;
            m += 1;
        }
    }
}

/// Runs of rows with the same customer: the customer and its rows.
pub(crate) type Runs<'a> = Vec<(&'a str, std::ops::Range<usize>)>;

/// Maximal runs of rows with the same customer, in row order.
pub(crate) fn customer_runs(customers: &StringChunked) -> Runs<'_> {
    let mut runs: Runs<'_> = Vec::new();
    for (i, c) in customers.iter().enumerate() {
        let c = c.unwrap_or("");
        match runs.last_mut() {
            Some((prev, rows)) if *prev == c => rows.end = i + 1,
            _ => runs.push((c, i..i + 1)),
        }
    }
    runs
}

/// Assigns each customer to a split: customers with and without any revenge
/// purchase are shuffled separately (seeded) and cut by the fractions, so
/// every split gets its share of both and no customer is in two splits.
pub(crate) fn assign_splits(
    customer_positive: &[(&str, bool)],
    split: &revspend_core::params::SplitParams,
) -> Result<BTreeMap<String, &'static str>> {
    // Sorted: the assignment must not depend on hash or thread order.
    if !customer_positive.is_sorted_by(|a, b| a.0 < b.0) {
        bail!("internal: customers to assign are not in name order");
    }
    let fractions = [split.train, split.test, split.holdout, split.calibration];
    let mut rng = ChaCha8Rng::seed_from_u64(split.seed);
    let mut out = Vec::with_capacity(customer_positive.len());
    for stratum in [true, false] {
        let mut members: Vec<&str> = customer_positive
            .iter()
            .filter(|(_, p)| *p == stratum)
            .map(|(c, _)| *c)
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
            out.push((c.to_owned(), SPLITS[s]));
        }
    }
    // Built from sorted pairs in bulk, not inserted in shuffled order.
    out.sort_unstable_by(|a, b| a.0.cmp(&b.0));
    Ok(out.into_iter().collect())
}

#[cfg(test)]
mod tests {
    use proptest::collection::vec;
    use proptest::prelude::*;

    use super::*;

    proptest! {
        /// The train rows read in place equal the copied train split, for
        /// any stretch of rows, across months (some without train rows).
        #[test]
        fn month_train_rows_read_like_the_copied_split(
            months in vec(vec(any::<bool>(), 0..40), 1..5),
            cut in (0usize..200, 0usize..200),
        ) {
            let tables: Vec<Vec<Vec<f64>>> = months
                .iter()
                .enumerate()
                .map(|(m, rows)| {
                    Feature::ALL
                        .iter()
                        .enumerate()
                        .map(|(f, _)| (0..rows.len()).map(|r| (m * 1000 + r * 10 + f) as f64).collect())
                        .collect()
                })
                .collect();
            let rows: Vec<Vec<u32>> = months
                .iter()
                .map(|m| (0..m.len() as u32).filter(|&r| m[r as usize]).collect())
                .collect();
            let mut starts = vec![0];
            for r in &rows {
                starts.push(starts.last().copied().unwrap_or(0) + r.len());
            }
            let train = MonthTrainRows {
                columns: tables.iter().map(|t| t.iter().map(Vec::as_slice).collect()).collect(),
                rows: &rows,
                starts,
            };
            let total = rows.iter().map(Vec::len).sum::<usize>();
            prop_assert_eq!(stats::TrainColumns::rows(&train), total);
            let (lo, hi) = (cut.0.min(cut.1).min(total), cut.0.max(cut.1).min(total));
            for f in [Feature::ALL[0], Feature::ALL[Feature::ALL.len() - 1]] {
                let copied: Vec<f64> = tables
                    .iter()
                    .zip(&rows)
                    .flat_map(|(t, r)| r.iter().map(|&i| t[f.index()][i as usize]))
                    .collect();
                let mut read = vec![-1.0];
                stats::TrainColumns::read(&train, f, lo..hi, &mut read);
                prop_assert_eq!(&read[1..], &copied[lo..hi]);
            }
        }
    }
}
