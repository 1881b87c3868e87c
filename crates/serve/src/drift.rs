//! Live drift gauges: how far the requests of the last few minutes have
//! moved from the training reference, per feature of the serving model.
//!
//! The reference is the training split's profile (`data/profile/train.json`,
//! written by build-features): each numeric feature's histogram edges and
//! counts. Served rows are counted into the same bins as they arrive, in a
//! ring of [`BUCKETS`] time buckets spanning the window (a bucket is a tenth
//! of it); a bucket older than the window is emptied when its slot comes
//! round again, so the window slides without keeping a single row. PSI is
//! computed only when `/metrics` is scraped, with the definition the
//! monitor uses ([`revspend_core::profile::psi_merged_counts`], values binned
//! by [`revspend_core::profile::bin_of`]: beyond the reference range into
//! the outer bins, NaN and infinities left out).
//!
//! The binning runs off the request path: on the prediction log's writer
//! thread, which receives every prediction's feature vector anyway (with
//! `--no-prediction-log` the same thread runs without writing files, see
//! [`crate::prediction_log`]). Records the log's queue drops under overload
//! are not counted here either: the window is then a sample of the traffic.
//!
//! Features are those of the primary variant's model (re-planned, and the
//! window emptied, when a reload changes them); a row any variant scored
//! counts for the features its model computed (a feature's value does not
//! depend on the model that reads it). When a reload swaps in another
//! primary model the profile file is read again (a retrained model comes
//! with its own training profile); a changed reference empties the window,
//! and a profile that cannot be read leaves the one in use.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::gauge::ConstGauge;
use revspend_core::features::Feature;
use revspend_core::profile::{self, NumericProfile, Profile};

/// Time buckets in the ring: the window slides a tenth of itself at a time.
pub const BUCKETS: usize = 10;

/// Default window: the last ten minutes of requests.
pub const DEFAULT_DRIFT_WINDOW: Duration = Duration::from_secs(600);

/// A PSI at or above this is worth a look (the monitor's `PSI_WARN`).
pub const PSI_WARN: f64 = 0.1;
/// A PSI at or above this is a significant shift (the monitor's `PSI_ALARM`).
pub const PSI_ALARM: f64 = 0.25;

type NumericProfiles = std::collections::BTreeMap<String, NumericProfile>;

/// One tracked feature's reference histogram.
#[derive(Debug, Clone, PartialEq)]
struct Reference {
    feature: Feature,
    edges: Vec<f64>,
    counts: Vec<u64>,
}

/// One time bucket of the ring: the rows served in it, binned per tracked
/// feature.
#[derive(Debug, Clone)]
struct Bucket {
    /// Which bucket of time this is (milliseconds since the epoch divided
    /// by the bucket width); `i64::MIN`: never used.
    epoch: i64,
    requests: u64,
    counts: Vec<Vec<u64>>,
}

#[derive(Debug)]
struct Window {
    references: Vec<Reference>,
    /// The tracked position of each feature, by [`Feature::index`].
    slots: Vec<Option<usize>>,
    ring: Vec<Bucket>,
}

impl Window {
    fn new(references: Vec<Reference>) -> Window {
        let mut slots = vec![None; Feature::ALL.len()];
        for (i, r) in references.iter().enumerate() {
            slots[r.feature.index()] = Some(i);
        }
        let empty = Bucket {
            epoch: i64::MIN,
            requests: 0,
            counts: references.iter().map(|r| vec![0; r.counts.len()]).collect(),
        };
        Window {
            references,
            slots,
            ring: vec![empty; BUCKETS],
        }
    }
}

/// The gauges' state: the reference profile, the window's width and the
/// ring of bin counts.
#[derive(Debug)]
pub struct DriftWindow {
    numeric: Mutex<NumericProfiles>,
    source: PathBuf,
    window: Duration,
    bucket_ms: i64,
    inner: Mutex<Window>,
}

/// The window as a scrape reads it.
#[derive(Debug, Clone, PartialEq)]
pub struct DriftReading {
    /// Rows served in the window.
    pub requests: u64,
    /// Each tracked feature, in the model's order: its name, PSI (NaN when
    /// the window holds none of its values) and finite values in the window.
    pub features: Vec<(&'static str, f64, u64)>,
}

impl DriftReading {
    /// The largest defined PSI.
    pub fn max(&self) -> Option<f64> {
        self.features
            .iter()
            .map(|&(_, psi, _)| psi)
            .filter(|p| !p.is_nan())
            .fold(None, |m, p| Some(m.map_or(p, |m: f64| m.max(p))))
    }
}

impl DriftWindow {
    /// Reads the reference profile at `path` (a `Profile` JSON file);
    /// `window` is at least [`BUCKETS`] milliseconds.
    pub fn load(path: &Path, window: Duration) -> anyhow::Result<DriftWindow> {
        DriftWindow::new(read_profile(path)?, path.to_owned(), window)
    }

    /// Reads the profile file again (for the next [`DriftWindow::follow`]);
    /// on error the profile in use stays.
    pub fn reread(&self) -> anyhow::Result<()> {
        let profile = read_profile(&self.source)?;
        check_numeric(&profile, &self.source)?;
        if let Ok(mut numeric) = self.numeric.lock() {
            *numeric = profile.numeric;
        }
        Ok(())
    }

    /// Gauges over an already read `profile` (named `source` in `/version`).
    pub fn new(profile: Profile, source: PathBuf, window: Duration) -> anyhow::Result<DriftWindow> {
        let bucket_ms = i64::try_from(window.as_millis() / BUCKETS as u128).unwrap_or(i64::MAX);
        anyhow::ensure!(
            bucket_ms >= 1,
            "the drift window must be at least {BUCKETS} ms, not {window:?}"
        );
        check_numeric(&profile, &source)?;
        Ok(DriftWindow {
            numeric: Mutex::new(profile.numeric),
            source,
            window,
            bucket_ms,
            inner: Mutex::new(Window::new(Vec::new())),
        })
    }

    /// The reference profile's path.
    pub fn source(&self) -> &Path {
        &self.source
    }

    /// The window's length.
    pub fn window(&self) -> Duration {
        self.window
    }

    /// Tracks `features` (the primary model's): a change of features or
    /// of their reference empties the window. Returns the features the
    /// profile has no histogram for (they get no gauge).
    pub fn follow(&self, features: &[Feature]) -> Vec<&'static str> {
        let mut missing = Vec::new();
        let Ok(numeric) = self.numeric.lock() else {
            return missing;
        };
        let references: Vec<Reference> = features
            .iter()
            .filter_map(|&feature| {
                let histogram = numeric
                    .get(feature.name())
                    .map(|p| &p.histogram)
                    .filter(|h| h.edges.len() >= 2 && h.edges.len() == h.counts.len() + 1);
                if histogram.is_none() {
                    missing.push(feature.name());
                }
                histogram.map(|h| Reference {
                    feature,
                    edges: h.edges.clone(),
                    counts: h.counts.clone(),
                })
            })
            .collect();
        drop(numeric);
        let Ok(mut window) = self.inner.lock() else {
            return missing;
        };
        if window.references != references {
            *window = Window::new(references);
        }
        missing
    }

    /// The features tracked now.
    pub fn features(&self) -> Vec<&'static str> {
        self.inner.lock().map_or_else(
            |_| Vec::new(),
            |w| w.references.iter().map(|r| r.feature.name()).collect(),
        )
    }

    /// Counts one served row, made at `time_ms` (milliseconds since the
    /// epoch) by a model of `features` with input `values` (same order).
    pub fn record(&self, time_ms: i64, features: &[Feature], values: &[f64]) {
        let epoch = time_ms.div_euclid(self.bucket_ms);
        let Ok(mut guard) = self.inner.lock() else {
            return;
        };
        let window = &mut *guard;
        // rem_euclid of a positive modulus: in 0..BUCKETS.
        let slot = epoch.rem_euclid(BUCKETS as i64) as usize;
        let bucket = &mut window.ring[slot];
        if bucket.epoch > epoch {
            // Older than the bucket that now holds its slot: out of the
            // window already.
            return;
        }
        if bucket.epoch < epoch {
            bucket.epoch = epoch;
            bucket.requests = 0;
            bucket.counts.iter_mut().for_each(|c| c.fill(0));
        }
        bucket.requests += 1;
        for (feature, &x) in features.iter().zip(values) {
            let Some(tracked) = window.slots[feature.index()] else {
                continue;
            };
            if let Some(bin) = profile::bin_of(&window.references[tracked].edges, x) {
                bucket.counts[tracked][bin] += 1;
            }
        }
    }

    /// The window ending at `now_ms`: the buckets that started less than a
    /// window before.
    pub fn read(&self, now_ms: i64) -> DriftReading {
        let now = now_ms.div_euclid(self.bucket_ms);
        let Ok(window) = self.inner.lock() else {
            return DriftReading {
                requests: 0,
                features: Vec::new(),
            };
        };
        let live: Vec<&Bucket> = window
            .ring
            .iter()
            .filter(|b| b.epoch <= now && b.epoch > now - BUCKETS as i64)
            .collect();
        let requests = live.iter().map(|b| b.requests).sum();
        let features = window
            .references
            .iter()
            .enumerate()
            .map(|(i, r)| {
                let mut counts = vec![0u64; r.counts.len()];
                for b in &live {
                    counts.iter_mut().zip(&b.counts[i]).for_each(|(c, n)| *c += n);
                }
                let values = counts.iter().sum();
                (
                    r.feature.name(),
                    profile::psi_merged_counts(&r.counts, &counts, profile::PSI_MIN_BIN_SHARE),
                    values,
                )
            })
            .collect();
        DriftReading { requests, features }
    }
}

fn read_profile(path: &Path) -> anyhow::Result<Profile> {
    revspend_core::artifact::read_json(path)
        .with_context(|| format!("cannot read the drift reference profile {}", path.display()))
}

fn check_numeric(profile: &Profile, source: &Path) -> anyhow::Result<()> {
    anyhow::ensure!(
        !profile.numeric.is_empty(),
        "the drift reference profile {} has no numeric column",
        source.display()
    );
    Ok(())
}

/// The gauges, computed from the window at each scrape.
#[derive(Debug)]
pub struct DriftGauges(pub Arc<DriftWindow>);

fn now_ms() -> i64 {
    revspend_core::artifact::prediction_log::now().timestamp_millis()
}

impl Collector for DriftGauges {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let reading = self.0.read(now_ms());
        let mut psi = encoder.encode_descriptor(
            "feature_psi",
            "PSI of each feature's values in the drift window against the training profile's \
             bins (0.1: warn, 0.25: alarm; absent while the window holds none of its values)",
            None,
            MetricType::Gauge,
        )?;
        for &(feature, value, _) in &reading.features {
            if !value.is_nan() {
                ConstGauge::new(value).encode(psi.encode_family(&[("feature", feature)])?)?;
            }
        }
        let mut values = encoder.encode_descriptor(
            "feature_window_values",
            "Finite values of each feature in the drift window",
            None,
            MetricType::Gauge,
        )?;
        for &(feature, _, n) in &reading.features {
            ConstGauge::new(n).encode(values.encode_family(&[("feature", feature)])?)?;
        }
        if let Some(max) = reading.max() {
            ConstGauge::new(max).encode(encoder.encode_descriptor(
                "feature_psi_max",
                "The largest feature PSI in the drift window",
                None,
                MetricType::Gauge,
            )?)?;
        }
        ConstGauge::new(reading.requests).encode(encoder.encode_descriptor(
            "drift_window_requests",
            "Predictions counted in the drift window",
            None,
            MetricType::Gauge,
        )?)?;
        ConstGauge::new(self.0.window().as_secs_f64()).encode(encoder.encode_descriptor(
            "drift_window_seconds",
            "The drift window's length",
            None,
            MetricType::Gauge,
        )?)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use revspend_core::profile::numeric_from_values;

    use super::*;

    /// A profile of `valor` uniform on 0..100 and `idade` uniform on 20..60.
    fn profile() -> Profile {
        let valor: Vec<f64> = (0..1000).map(|i| f64::from(i % 100)).collect();
        let idade: Vec<f64> = (0..1000).map(|i| 20.0 + f64::from(i % 40)).collect();
        Profile {
            rows: 1000,
            numeric: BTreeMap::from([
                ("valor".to_owned(), numeric_from_values(valor, 0, 0, 0, 10)),
                ("idade".to_owned(), numeric_from_values(idade, 0, 0, 0, 10)),
            ]),
            categorical: BTreeMap::new(),
        }
    }

    const FEATURES: [Feature; 3] = [Feature::Valor, Feature::Idade, Feature::PurchasesBefore];

    fn window(seconds: u64) -> DriftWindow {
        let w =
            DriftWindow::new(profile(), "train.json".into(), Duration::from_secs(seconds)).expect("window");
        assert_eq!(w.follow(&FEATURES), ["purchases_before"]);
        w
    }

    fn psi(reading: &DriftReading, name: &str) -> f64 {
        reading
            .features
            .iter()
            .find(|f| f.0 == name)
            .map_or(f64::NAN, |f| f.1)
    }

    #[test]
    fn a_shifted_feature_scores_high_and_an_unshifted_one_low() {
        let w = window(60);
        for i in 0..1000 {
            let x = f64::from(i % 100);
            let age = 20.0 + f64::from(i % 40);
            // valor moved up by 60: most of it piles in the top bins and
            // beyond the reference range, in the last bin.
            w.record(1_000 + i64::from(i), &FEATURES, &[x + 60.0, age, 3.0]);
        }
        let r = w.read(2_000);
        assert_eq!(r.requests, 1000);
        assert_eq!(r.features.len(), 2, "purchases_before has no reference");
        assert!(psi(&r, "valor") > PSI_ALARM, "{r:?}");
        assert!(psi(&r, "idade") < 0.01, "{r:?}");
        assert_eq!(r.max(), Some(psi(&r, "valor")));
        // Equal to the batch PSI of the same values.
        let shifted: Vec<f64> = (0..1000).map(|i| f64::from(i % 100) + 60.0).collect();
        let batch = profile::psi(&profile().numeric["valor"], &shifted);
        assert!((psi(&r, "valor") - batch).abs() < 1e-12);
    }

    #[test]
    fn old_buckets_leave_the_window() {
        // 10 s window: 1 s buckets.
        let w = window(10);
        w.record(0, &FEATURES, &[1.0, 30.0, 0.0]);
        w.record(4_500, &FEATURES, &[2.0, 30.0, 0.0]);
        w.record(9_999, &FEATURES, &[3.0, 30.0, 0.0]);
        assert_eq!(w.read(9_999).requests, 3);
        // At 10 s the first bucket (0..1 s) is a window old.
        assert_eq!(w.read(10_000).requests, 2);
        assert_eq!(w.read(14_999).requests, 1);
        let empty = w.read(20_000);
        assert_eq!(empty.requests, 0);
        assert!(psi(&empty, "valor").is_nan());
        assert_eq!(empty.max(), None);
        // A record at 10.5 s takes slot 0 from the bucket 0..1 s; a late
        // record of 0.5 s, whose slot a newer bucket holds, is dropped.
        w.record(10_500, &FEATURES, &[1.0, 30.0, 0.0]);
        w.record(500, &FEATURES, &[1.0, 30.0, 0.0]);
        assert_eq!(w.read(10_999).requests, 3, "4.5 s, 9.999 s and 10.5 s");
    }

    #[test]
    fn other_features_empty_the_window_and_values_outside_bins_are_skipped() {
        let w = window(60);
        w.record(0, &FEATURES, &[f64::NAN, f64::INFINITY, 1.0]);
        let r = w.read(0);
        assert_eq!(r.requests, 1);
        assert!(r.features.iter().all(|f| f.2 == 0), "{r:?}");
        w.record(0, &FEATURES, &[5.0, 30.0, 1.0]);
        assert_eq!(w.follow(&FEATURES), ["purchases_before"]);
        assert_eq!(w.read(0).requests, 2, "same features: kept");
        assert!(w.follow(&[Feature::Idade]).is_empty());
        assert_eq!(w.features(), ["idade"]);
        assert_eq!(w.read(0).requests, 0, "new features: emptied");
        // A row of a model that lacks the tracked feature counts as a
        // request but adds no value.
        w.record(0, &[Feature::Valor], &[5.0]);
        let r = w.read(0);
        assert_eq!((r.requests, r.features[0].2), (1, 0));
    }

    #[test]
    fn a_new_profile_read_again_empties_the_window_and_a_bad_one_is_ignored() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("train.json");
        revspend_core::artifact::write_json(&path, &profile()).expect("write");
        let w = DriftWindow::load(&path, Duration::from_secs(60)).expect("load");
        w.follow(&FEATURES);
        w.record(0, &FEATURES, &[5.0, 30.0, 0.0]);
        w.reread().expect("same file");
        w.follow(&FEATURES);
        assert_eq!(w.read(0).requests, 1, "same reference: kept");

        std::fs::write(&path, "{not json").expect("write");
        let err = w.reread().expect_err("bad JSON");
        assert!(format!("{err:#}").contains("train.json"), "{err:#}");
        w.follow(&FEATURES);
        assert_eq!(w.read(0).requests, 1, "the profile in use stays");

        let mut other = profile();
        other.numeric.insert(
            "valor".to_owned(),
            numeric_from_values((0..100).map(f64::from).map(|v| v * 3.0).collect(), 0, 0, 0, 10),
        );
        revspend_core::artifact::write_json(&path, &other).expect("write");
        w.reread().expect("new profile");
        w.follow(&FEATURES);
        assert_eq!(w.read(0).requests, 0, "new reference: emptied");
    }

    #[test]
    fn a_window_shorter_than_its_buckets_or_a_profile_without_numbers_is_refused() {
        assert!(DriftWindow::new(profile(), "p".into(), Duration::from_millis(5)).is_err());
        let empty = Profile {
            rows: 0,
            numeric: BTreeMap::new(),
            categorical: BTreeMap::new(),
        };
        let err = DriftWindow::new(empty, "p.json".into(), DEFAULT_DRIFT_WINDOW).expect_err("no columns");
        assert!(err.to_string().contains("p.json"), "{err}");
    }
}
