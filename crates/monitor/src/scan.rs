//! Reads the feature layer one month partition at a time, keeps the rows of
//! the monitored days, scores them with every model the run compares, and
//! streams each row into its window: the features into the reference bins,
//! the scores and labels into vectors (the performance metrics need them
//! sorted). No more than one partition's table is held at once.

use std::collections::BTreeMap;

use anyhow::{Context, Result, bail};
use revspend_core::features::Feature;
use revspend_core::model::{FeatureMatrix, ModelArtifact};
use revspend_core::params::Period;
use revspend_core::profile::Profile;
use revspend_table::layer::{FeatureLayer, read_month};

use crate::window::NumericWindow;
use crate::windows::{Selection, WindowKey, window_of};

/// A model scored on every window: production first.
pub struct Scorer<'a> {
    pub label: String,
    pub model: &'a ModelArtifact,
}

/// Everything one window accumulated.
pub struct WindowRows {
    pub key: WindowKey,
    /// Days with rows.
    pub first_day: chrono::NaiveDate,
    pub last_day: chrono::NaiveDate,
    /// One per drift feature, in `features` order.
    pub features: Vec<NumericWindow>,
    /// One vector per scorer, in scorer order.
    pub scores: Vec<Vec<f64>>,
    pub labels: Vec<bool>,
}

impl WindowRows {
    pub fn rows(&self) -> usize {
        self.labels.len()
    }
}

/// What the scan read.
pub struct Scanned {
    pub windows: Vec<WindowRows>,
    /// Partitions read and rows in them (before the date filter).
    pub partitions: usize,
    pub rows_read: u64,
}

/// Scans the layer's months that overlap the selection.
pub fn scan(
    layer: &FeatureLayer,
    period: Period,
    selection: &Selection,
    features: &[Feature],
    profile: &Profile,
    scorers: &[Scorer<'_>],
) -> Result<Scanned> {
    // The columns read: the drift features, then whatever else a scorer needs.
    let mut columns: Vec<Feature> = features.to_vec();
    for s in scorers {
        for f in &s.model.features {
            if !columns.contains(f) {
                columns.push(*f);
            }
        }
    }
    let references = features
        .iter()
        .map(|f| {
            profile.numeric.get(f.name()).with_context(|| {
                format!(
                    "the reference profile has no column `{}`, which the production model uses: rerun \
                     build-features",
                    f.name()
                )
            })
        })
        .collect::<Result<Vec<_>>>()?;
    let positions: Vec<Vec<usize>> = scorers
        .iter()
        .map(|s| {
            s.model
                .features
                .iter()
                .map(|f| columns.iter().position(|c| c == f).unwrap_or_default())
                .collect()
        })
        .collect();

    let months: Vec<_> = match selection.last {
        // Enough months to hold the last windows (a week or day window
        // never spans more than two months).
        Some(n) => {
            let months_needed = match period {
                Period::Month => n,
                Period::Week => n.div_ceil(4) + 1,
                Period::Day => n.div_ceil(28) + 1,
            };
            let skip = layer.months.len().saturating_sub(months_needed);
            layer.months.iter().skip(skip).collect()
        }
        None => layer
            .months
            .iter()
            .filter(|m| {
                let end = window_of(Period::Month, m.first_day).end;
                selection.from.is_none_or(|from| end >= from)
                    && selection.to.is_none_or(|to| m.first_day <= to)
            })
            .collect(),
    };

    let mut windows: BTreeMap<WindowKey, WindowRows> = BTreeMap::new();
    let mut rows_read = 0u64;
    for month in &months {
        let rows = read_month(month, &columns)
            .with_context(|| format!("reading feature-layer month {}", month.key))?;
        rows_read += rows.labels.len() as u64;
        let keep: Vec<usize> = (0..rows.dates.len())
            .filter(|&i| {
                let d = rows.dates[i];
                selection.from.is_none_or(|from| d >= from) && selection.to.is_none_or(|to| d <= to)
            })
            .collect();
        if keep.is_empty() {
            continue;
        }
        // Copies only when needed: a month inside the monitored days keeps
        // every row, and production reads the columns in their order.
        let x = if keep.len() == rows.dates.len() {
            std::borrow::Cow::Borrowed(&rows.x)
        } else {
            std::borrow::Cow::Owned(rows.x.select_rows(&keep))
        };
        let mut scores = Vec::with_capacity(scorers.len());
        for (s, pos) in scorers.iter().zip(&positions) {
            let identity = pos.len() == x.cols && pos.iter().enumerate().all(|(i, &j)| i == j);
            let own = if identity {
                std::borrow::Cow::Borrowed(x.as_ref())
            } else {
                std::borrow::Cow::Owned(select_columns(&x, pos))
            };
            let p = s
                .model
                .predict_proba(&own)
                .with_context(|| format!("scoring month {} with {}", month.key, s.label))?;
            if let Some(bad) = p.iter().position(|v| !(0.0..=1.0).contains(v)) {
                bail!(
                    "{} gave probability {} on row {bad} of month {}",
                    s.label,
                    p[bad],
                    month.key
                );
            }
            scores.push(p);
        }
        for (r, &i) in keep.iter().enumerate() {
            let date = rows.dates[i];
            let key = window_of(period, date);
            let w = match windows.entry(key.clone()) {
                std::collections::btree_map::Entry::Occupied(e) => e.into_mut(),
                std::collections::btree_map::Entry::Vacant(e) => e.insert(WindowRows {
                    key,
                    first_day: date,
                    last_day: date,
                    features: references
                        .iter()
                        .map(|p| NumericWindow::new(p))
                        .collect::<Result<Vec<_>, _>>()
                        .context("the reference profile's histogram")?,
                    scores: vec![Vec::new(); scorers.len()],
                    labels: Vec::new(),
                }),
            };
            w.first_day = w.first_day.min(date);
            w.last_day = w.last_day.max(date);
            let row = x.row(r);
            for (j, acc) in w.features.iter_mut().enumerate() {
                acc.push(row[j]);
            }
            for (k, s) in scores.iter().enumerate() {
                w.scores[k].push(s[r]);
            }
            w.labels.push(rows.labels[i]);
        }
    }
    let mut windows: Vec<WindowRows> = windows.into_values().collect();
    if let Some(n) = selection.last {
        let skip = windows.len().saturating_sub(n);
        windows.drain(..skip);
    }
    Ok(Scanned {
        windows,
        partitions: months.len(),
        rows_read,
    })
}

fn select_columns(x: &FeatureMatrix, positions: &[usize]) -> FeatureMatrix {
    let rows = x.rows;
    let mut values = Vec::with_capacity(rows * positions.len());
    for i in 0..rows {
        let row = x.row(i);
        values.extend(positions.iter().map(|&j| row[j]));
    }
    FeatureMatrix::new(rows, positions.len(), values)
}
