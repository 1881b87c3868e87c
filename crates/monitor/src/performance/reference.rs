//! The reference a window's estimates are held against: the test split
//! cut into chunks, each chunk's realised metrics, the alert bands (mean ±
//! k standard deviations, as NannyML's `Metric.fit`) and the sampling
//! error components of NannyML's confidence bounds.

use super::*;

/// How the reference is cut into chunks for the alert bands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Chunking {
    /// Chunks of this many rows; a shorter remainder is kept as the last
    /// chunk (NannyML's `SizeBasedChunker(incomplete='keep')`, its default).
    Size(usize),
    /// About this many chunks: chunks of `rows / count` rows (rounded down),
    /// then as [`Chunking::Size`], so a remainder makes one more chunk
    /// (NannyML's `CountBasedChunker`, which does exactly this).
    Count(usize),
}

/// The row ranges of the chunks, in order.
pub fn chunk_ranges(rows: usize, chunking: Chunking) -> Result<Vec<Range<usize>>, PerformanceError> {
    let size = match chunking {
        Chunking::Size(size) => size,
        Chunking::Count(count) => rows.checked_div(count).unwrap_or(0),
    };
    if size == 0 || rows == 0 {
        return Err(PerformanceError::BadChunking { chunking, rows });
    }
    Ok((0..rows)
        .step_by(size)
        .map(|start| start..(start + size).min(rows))
        .collect())
}

/// An alert band of one metric learnt on the reference chunks.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Band {
    /// Chunks on which the metric was defined (the others are skipped, as
    /// NannyML's `np.nanmean`/`np.nanstd` skip NaN).
    pub chunks: usize,
    pub mean: f64,
    /// Population standard deviation (`np.nanstd`, `ddof = 0`).
    pub std: f64,
    /// `mean − k·std`, raised to 0 when it is at or below 0.
    pub lower: f64,
    /// `mean + k·std`, lowered to 1 when it is at or above 1.
    pub upper: f64,
}

impl Band {
    /// NannyML's `StandardDeviationThreshold.thresholds` then
    /// `calculate_threshold_values` with the metric's limits 0 and 1
    /// (`nannyml/thresholds.py`); `None` when no chunk has a value.
    pub fn from_values(values: &[f64], multiplier: f64) -> Option<Band> {
        if values.is_empty() {
            return None;
        }
        let n = values.len() as f64;
        let mean = values.iter().sum::<f64>() / n;
        let std = (values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / n).sqrt();
        let lower = mean - multiplier * std;
        let upper = mean + multiplier * std;
        Some(Band {
            chunks: values.len(),
            mean,
            std,
            lower: if lower <= 0.0 { 0.0 } else { lower },
            upper: if upper >= 1.0 { 1.0 } else { upper },
        })
    }

    /// NannyML's `Metric.alert`: strictly below the lower or above the upper
    /// value.
    pub fn out_of_band(&self, value: f64) -> bool {
        value < self.lower || value > self.upper
    }
}

/// One reference chunk's realised metrics.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ChunkScores {
    pub start: usize,
    pub rows: usize,
    #[serde(flatten)]
    pub scores: PerMetric<Option<f64>>,
}

/// NannyML's sampling-error components of one metric, fitted on the whole
/// reference: the sampling error of a window of `n` rows is
/// `std / sqrt(n · fraction)` (`_universal_sampling_error` in
/// `nannyml/sampling_error/binary_classification.py`).
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct SamplingComponents {
    pub std: f64,
    pub fraction: f64,
}

impl SamplingComponents {
    /// The sampling error of an estimate on `rows` rows (`None` when it
    /// would divide by 0).
    pub fn error(&self, rows: usize) -> Option<f64> {
        let effective = rows as f64 * self.fraction;
        (effective > 0.0).then(|| self.std / effective.sqrt())
    }
}

/// What the reference tells about a window's metrics: alert bands and
/// sampling-error components (NannyML's `Metric.fit`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Reference {
    pub rows: usize,
    pub threshold: f64,
    pub chunking: Chunking,
    pub std_multiplier: f64,
    pub chunks: Vec<ChunkScores>,
    pub bands: PerMetric<Option<Band>>,
    /// `None` for PR-AUC: NannyML bootstraps it with an unseeded RNG
    /// (`ap_sampling_error_components`), not reproduced here.
    pub sampling: PerMetric<Option<SamplingComponents>>,
}

/// Alert bands and sampling-error components from the labelled reference
/// (probabilities and labels of the rows the model was checked on).
///
/// As NannyML's `Metric.fit` (`confidence_based/metrics.py`) does, the bands
/// are over the **realised** metric of each reference chunk (the estimate is
/// only checked against them); the mean ± `std_multiplier` standard
/// deviations, clipped to [0, 1] ([`Band::from_values`]). Chunks where a
/// metric is undefined are skipped for that metric (see [`realise`] for
/// when that differs from NannyML).
pub fn fit_reference(
    probabilities: &[f64],
    labels: &[bool],
    threshold: f64,
    chunking: Chunking,
    std_multiplier: f64,
) -> Result<Reference, PerformanceError> {
    if !(std_multiplier.is_finite() && std_multiplier >= 0.0) {
        return Err(PerformanceError::BadMultiplier(std_multiplier));
    }
    check_threshold(threshold)?;
    check_labels(probabilities, labels)?;
    check_probabilities(probabilities)?;
    let chunks = chunk_ranges(probabilities.len(), chunking)?
        .into_iter()
        .map(|r| {
            let realised = realise(&probabilities[r.clone()], &labels[r.clone()], threshold)?;
            Ok(ChunkScores {
                start: r.start,
                rows: r.len(),
                scores: realised.scores,
            })
        })
        .collect::<Result<Vec<_>, PerformanceError>>()?;
    let bands = PerMetric::from_fn(|m| {
        let values: Vec<f64> = chunks.iter().filter_map(|c| *c.scores.get(m)).collect();
        Band::from_values(&values, std_multiplier)
    });
    let confusion = Confusion::at(probabilities, labels, threshold);
    Ok(Reference {
        rows: probabilities.len(),
        threshold,
        chunking,
        std_multiplier,
        chunks,
        bands,
        sampling: PerMetric {
            precision: precision_components(confusion),
            recall: recall_components(confusion),
            f1: f1_components(confusion),
            pr_auc: None,
            roc_auc: roc_auc_components(probabilities, labels),
        },
    })
}

fn rows_of(c: Confusion) -> f64 {
    (c.tp + c.fp + c.tn + c.fn_) as f64
}

/// Population std of `a` ones and `b` zeros.
fn bernoulli_std(ones: u64, zeros: u64) -> Option<f64> {
    let q = share(ones as f64, (ones + zeros) as f64)?;
    Some((q * (1.0 - q)).sqrt())
}

/// `precision_sampling_error_components`: the std of 1 per TP and 0 per FP,
/// over the share of rows flagged.
fn precision_components(c: Confusion) -> Option<SamplingComponents> {
    Some(SamplingComponents {
        std: bernoulli_std(c.tp, c.fp)?,
        fraction: share((c.tp + c.fp) as f64, rows_of(c))?,
    })
}

/// `recall_sampling_error_components`: the std of 1 per TP and 0 per FN,
/// over the share of positives.
fn recall_components(c: Confusion) -> Option<SamplingComponents> {
    Some(SamplingComponents {
        std: bernoulli_std(c.tp, c.fn_)?,
        fraction: share((c.tp + c.fn_) as f64, rows_of(c))?,
    })
}

/// `f1_sampling_error_components`: TPs count `c = (TP+FP+FN) / (TP +
/// (FP+FN)/2)`, FPs and FNs 0; the std of those, over the share of rows
/// that are TP, FP or FN.
fn f1_components(c: Confusion) -> Option<SamplingComponents> {
    let relevant = c.tp + c.fp + c.fn_;
    let factor = share(relevant as f64, c.tp as f64 + 0.5 * (c.fp + c.fn_) as f64)?;
    Some(SamplingComponents {
        std: factor * bernoulli_std(c.tp, c.fp + c.fn_)?,
        fraction: share(relevant as f64, rows_of(c))?,
    })
}

/// `auroc_sampling_error_components` (the Mann–Whitney form of the AUC): for
/// each row of the minority class (the positives, or the negatives with
/// scores mirrored when positives are more than half, as NannyML flips
/// them), the share of the other class ranked below it; the std of those
/// shares, over the minority's share of rows.
///
/// NannyML orders ties as `np.argsort` leaves them and drops a minority row
/// ranked first (its `np.unique(y · rank)[1:]` takes rank 0 for a zero);
/// here a tied row of the other class counts one half and no row is dropped,
/// so that the mean of the shares is exactly the realised ROC-AUC.
fn roc_auc_components(probabilities: &[f64], labels: &[bool]) -> Option<SamplingComponents> {
    let rows = labels.len();
    let positives = labels.iter().filter(|&&y| y).count();
    let flip = 2 * positives > rows;
    let minority = if flip { rows - positives } else { positives };
    let others = rows - minority;
    if minority == 0 || others == 0 {
        return None;
    }
    // (key, is_minority), ascending key: the minority ranks high.
    let mut ranked: Vec<(f64, bool)> = probabilities
        .iter()
        .zip(labels)
        .map(|(&p, &y)| if flip { (-p, !y) } else { (p, y) })
        .collect();
    ranked.sort_unstable_by(|a, b| a.0.total_cmp(&b.0));
    let mut shares = Vec::with_capacity(minority);
    let mut others_below = 0usize;
    let mut start = 0;
    while start < ranked.len() {
        let key = ranked[start].0;
        let end = start + ranked[start..].iter().take_while(|r| r.0 == key).count();
        let tie = &ranked[start..end];
        let others_tied = tie.iter().filter(|r| !r.1).count();
        let placement = (others_below as f64 + 0.5 * others_tied as f64) / others as f64;
        shares.extend(tie.iter().filter(|r| r.1).map(|_| placement));
        others_below += others_tied;
        start = end;
    }
    let n = shares.len() as f64;
    let mean = shares.iter().sum::<f64>() / n;
    let var = shares.iter().map(|s| (s - mean).powi(2)).sum::<f64>() / n;
    Some(SamplingComponents {
        std: var.sqrt(),
        fraction: minority as f64 / rows as f64,
    })
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;

    #[test]
    fn chunks_keep_the_remainder_as_nannyml() {
        assert_eq!(
            chunk_ranges(10, Chunking::Size(4)).expect("valid"),
            vec![0..4, 4..8, 8..10]
        );
        // CountBasedChunker(3) on 10 rows: size 3, so 4 chunks.
        assert_eq!(
            chunk_ranges(10, Chunking::Count(3)).expect("valid"),
            vec![0..3, 3..6, 6..9, 9..10]
        );
        for (rows, chunking) in [
            (10, Chunking::Size(0)),
            (10, Chunking::Count(0)),
            (10, Chunking::Count(11)),
            (0, Chunking::Size(4)),
        ] {
            assert_eq!(
                chunk_ranges(rows, chunking),
                Err(PerformanceError::BadChunking { chunking, rows })
            );
        }
    }

    #[test]
    fn band_is_mean_plus_minus_k_population_std_clipped() {
        // mean .75, population std √(.0125) = .1118…; .75 + 3σ > 1 → 1.
        let b = Band::from_values(&[0.6, 0.7, 0.8, 0.9], 3.0).expect("values");
        assert!((b.mean - 0.75).abs() < 1e-12);
        assert!((b.std - 0.0125f64.sqrt()).abs() < 1e-12);
        assert!((b.lower - (0.75 - 3.0 * 0.0125f64.sqrt())).abs() < 1e-12);
        assert_eq!(b.upper, 1.0);
        assert!(b.out_of_band(0.4) && !b.out_of_band(b.lower) && !b.out_of_band(1.0));
        assert_eq!(Band::from_values(&[], 3.0), None);
    }

    // Reference chunks of 4 rows: one ranked perfectly, two half right.
    pub(crate) const C1: ([f64; 4], [bool; 4]) = ([0.9, 0.8, 0.2, 0.1], [true, true, false, false]);
    pub(crate) const C2: ([f64; 4], [bool; 4]) = ([0.9, 0.8, 0.2, 0.1], [true, false, true, false]);

    pub(crate) fn reference_rows(chunks: &[([f64; 4], [bool; 4])]) -> (Vec<f64>, Vec<bool>) {
        let p = chunks.iter().flat_map(|c| c.0).collect();
        let y = chunks.iter().flat_map(|c| c.1).collect();
        (p, y)
    }

    #[test]
    fn constant_chunks_give_a_zero_width_band() {
        let (p, y) = reference_rows(&[C2; 5]);
        let r = fit_reference(&p, &y, 0.5, Chunking::Size(4), 3.0).expect("valid");
        for m in Metric::ALL {
            let b = r.bands.get(m).expect("band");
            assert_eq!((b.chunks, b.std), (5, 0.0), "{m:?}");
            assert_eq!((b.lower, b.upper), (b.mean, b.mean), "{m:?}");
        }
        assert_eq!(r.bands.precision.map(|b| b.mean), Some(0.5));
    }

    #[test]
    fn bands_match_nannyml_fit() {
        let (p, y) = reference_rows(&[C1, C2, C2]);
        // Precision, recall and F1 per chunk: 1, .5, .5: mean 2/3, population
        // std √(1/18); with k = 1: 2/3 ∓ .2357.
        let r = fit_reference(&p, &y, 0.5, Chunking::Size(4), 1.0).expect("valid");
        let want = |m: Metric, lower: f64, upper: f64| {
            let b = r.bands.get(m).expect("band");
            assert!((b.lower - lower).abs() < 1e-12, "{m:?} lower {}", b.lower);
            assert!((b.upper - upper).abs() < 1e-12, "{m:?} upper {}", b.upper);
        };
        for m in [Metric::Precision, Metric::Recall, Metric::F1] {
            want(m, 0.4309644062711508, 0.9023689270621824); // NannyML
        }
        want(Metric::PrAuc, 0.8103214687570501, 0.9674563090207275); // NannyML
        want(Metric::RocAuc, 0.7154822031355754, 0.9511844635310913); // NannyML
        // The default k = 3: clipped to the metric's range.
        let r = fit_reference(&p, &y, 0.5, Chunking::Size(4), DEFAULT_STD_MULTIPLIER).expect("valid");
        let band = |m: Metric| r.bands.get(m).expect("band");
        assert_eq!((band(Metric::F1).lower, band(Metric::F1).upper), (0.0, 1.0)); // NannyML 0, 1
        assert!((band(Metric::PrAuc).lower - 0.653186628493373).abs() < 1e-12); // NannyML
        assert!((band(Metric::RocAuc).lower - 0.47977994274005964).abs() < 1e-12); // NannyML
        assert_eq!(band(Metric::RocAuc).upper, 1.0);
    }

    #[test]
    fn sampling_errors_match_nannyml() {
        let (p, y) = reference_rows(&[C1, C2, C2]);
        let r = fit_reference(&p, &y, 0.5, Chunking::Size(4), 3.0).expect("valid");
        let s = |m: Metric| r.sampling.get(m).expect("components");
        // Precision: 4 TP, 2 FP of 6 flagged of 12 rows: std √(2/9), fraction
        // 1/2; for 100 rows √(2/9) / √50 = 1/15. Recall alike (4 TP, 2 FN).
        for m in [Metric::Precision, Metric::Recall] {
            assert!((s(m).std - 0.4714045207910317).abs() < 1e-12); // NannyML
            assert_eq!(s(m).fraction, 0.5);
            assert!((s(m).error(100).expect("rows") - 0.06666666666666667).abs() < 1e-12);
        }
        // F1: 4 TP worth 8/6, 4 FP+FN worth 0: std 2/3, fraction 8/12.
        assert!((s(Metric::F1).std - 2.0 / 3.0).abs() < 1e-12); // NannyML
        assert!((s(Metric::F1).error(100).expect("rows") - 0.08164965809277261).abs() < 1e-12);
        assert_eq!(r.sampling.pr_auc, None);
        // ROC: positives' shares of the 6 negatives below them, ties half:
        // 1, 1, 1, 5/6, 3.5/6, 3.5/6 (mean 5/6, the AUC); std .186339
        // (the script's Mann–Whitney check). NannyML's argsort order of the
        // ties gives 0.22395160411940415 here.
        assert!((s(Metric::RocAuc).std - 0.18633899812498245).abs() < 1e-12);
        // Without ties the two agree (NannyML 0.1767766952966369, 0.5).
        let p = [0.95, 0.85, 0.75, 0.65, 0.55, 0.45, 0.35, 0.25];
        let y = [true, false, true, true, false, true, false, false];
        let c = roc_auc_components(&p, &y).expect("both classes");
        assert!((c.std - 0.1767766952966369).abs() < 1e-12);
        assert_eq!(c.fraction, 0.5);
        // Mostly positives (5 of 8): the classes swap, so the numbers are
        // those of the mirrored problem (labels inverted, scores 1 − p),
        // where the 3 negatives are the positives (NannyML
        // 0.32659863237109044, 0.375 for both).
        let y = [true, false, true, true, false, true, true, false];
        let c = roc_auc_components(&p, &y).expect("both classes");
        let mirrored: Vec<f64> = p.iter().map(|p| 1.0 - p).collect();
        let inverted: Vec<bool> = y.iter().map(|y| !y).collect();
        let m = roc_auc_components(&mirrored, &inverted).expect("both classes");
        assert_eq!(c, m);
        assert_eq!(c.fraction, 0.375);
        assert!((c.std - 0.32659863237109044).abs() < 1e-12, "{}", c.std);
    }
}
