//! Successive halving over the candidate configurations (as scikit-learn's
//! `HalvingRandomSearchCV`, the resource being rows of whole customers).
//!
//! Rung 0 scores every candidate by grouped, stratified K-fold CV on a small
//! stratified sample of the train split's customers. After each rung the
//! best `1/factor` of the candidates still running go on to a sample
//! `factor` times larger (the samples are nested: a rung's customers include
//! the previous rung's), until the finalists are scored on the last rung:
//! `final_share` of the train split, at most `final_max_rows` rows. A
//! candidate more than `drop_below_std` of the rung leader's fold standard
//! deviations below the leader stops at once, whatever its rank: it cannot
//! win at this budget, and a model family far below the best (the prior, a
//! single tree) is not fitted again on more rows. When one candidate is left
//! it goes straight to the last rung: the finalists' scores come from the
//! most rows the params allow.
//!
//! Every (candidate, fold) fit of a rung runs in parallel; each fit depends
//! only on its rows, its spec and its seed, so the trials, the statuses and
//! the choice do not depend on the thread count. Boosted candidates split
//! at the train split's bin edges ([`SharedBins`]), computed once.

use std::time::Instant;

use anyhow::{Context, Result, bail};
use rayon::prelude::*;
use revspend_core::model::{Classifier, FeatureMatrix};
use revspend_core::params::{ModelSpec, SelectionMetric, TrainParams};
use serde::Serialize;

use crate::cv;
use crate::fit::{self, Data, sub_seed};
use crate::gbm::{self, Bins};
use crate::search::score;

/// The train split's features binned once per `max_bins` value the boosted
/// candidates use.
#[derive(Debug)]
pub struct SharedBins {
    by_max_bins: Vec<Bins>,
}

impl SharedBins {
    /// Bins `x` for every distinct `max_bins` among the boosted `specs`.
    pub fn new(x: &FeatureMatrix, specs: &[ModelSpec]) -> SharedBins {
        let mut wanted: Vec<u16> = specs
            .iter()
            .filter_map(|s| match s {
                ModelSpec::Gbm(c) => Some(c.max_bins),
                _ => None,
            })
            .collect();
        wanted.sort_unstable();
        wanted.dedup();
        SharedBins {
            by_max_bins: wanted.into_iter().map(|m| Bins::new(x, m)).collect(),
        }
    }

    fn get(&self, max_bins: u16) -> Option<&Bins> {
        self.by_max_bins.iter().find(|b| b.max_bins() == max_bins)
    }

    /// Hands over the bins for `max_bins` (for the final fit).
    pub fn take(&mut self, max_bins: u16) -> Option<Bins> {
        let i = self.by_max_bins.iter().position(|b| b.max_bins() == max_bins)?;
        Some(self.by_max_bins.swap_remove(i))
    }
}

/// One candidate scored at one rung.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Trial {
    /// The candidate's index in the candidate list (stable across rungs).
    pub candidate: usize,
    pub rung: usize,
    pub algorithm: &'static str,
    pub spec: ModelSpec,
    /// Rows and customers of the rung's sample.
    pub rows: usize,
    pub customers: usize,
    pub fold_scores: Vec<f64>,
    pub mean: f64,
    pub std: f64,
    /// Boosting rounds each fold kept (early stopping), boosted models only.
    pub rounds: Option<Vec<usize>>,
    /// What became of the candidate after this rung.
    pub status: String,
    /// Wall time of its folds, summed (not deterministic; kept out of the
    /// model and the reports).
    #[serde(skip)]
    pub fit_seconds: f64,
}

/// One rung of the search.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Rung {
    pub rung: usize,
    pub rows: usize,
    pub customers: usize,
    pub candidates: usize,
    /// Candidates that went on (0 at the last rung).
    pub promoted: usize,
    pub best_mean: f64,
}

/// What the search found.
#[derive(Debug, Clone)]
pub struct Outcome {
    pub trials: Vec<Trial>,
    pub rungs: Vec<Rung>,
    /// Index in `trials` of the chosen candidate's last-rung trial.
    pub chosen: usize,
}

impl Outcome {
    pub fn chosen(&self) -> &Trial {
        &self.trials[self.chosen]
    }
}

/// Target rows of each rung: the last is `final_share` of `train_rows` (at
/// most `final_max_rows`), each earlier one `factor` times smaller, as many
/// rungs as `candidates` need to come down to one and `min_rows` allows.
pub fn schedule(candidates: usize, train_rows: usize, params: &TrainParams) -> Vec<usize> {
    let h = &params.halving;
    let f = h.factor.max(2);
    let mut last = ((train_rows as f64 * h.final_share).round() as usize).clamp(1, train_rows.max(1));
    if let Some(max) = h.final_max_rows {
        last = last.min(max);
    }
    // Rungs needed: 1 + ceil(log_f(candidates)).
    let mut needed = 1;
    let mut left = candidates.max(1);
    while left > 1 {
        left = left.div_ceil(f);
        needed += 1;
    }
    let mut rungs = 1;
    while rungs < needed && last / f.pow(rungs as u32) >= h.min_rows {
        rungs += 1;
    }
    (0..rungs).map(|i| last / f.pow((rungs - 1 - i) as u32)).collect()
}

/// Whether score `a` ranks above `b` under `metric`.
fn better(metric: SelectionMetric, a: f64, b: f64) -> bool {
    if metric.maximise() { a > b } else { a < b }
}

/// What one (candidate, fold) fit scored.
struct FoldResult {
    score: f64,
    rounds: Option<usize>,
    seconds: f64,
}

/// A rung's fold: its training and scoring rows (indices into the train
/// split) with what every fit needs copied out once.
struct Fold {
    train_rows: Vec<usize>,
    /// Features of the training rows (only when a candidate that is not
    /// boosted needs them).
    x_train: Option<FeatureMatrix>,
    y_train: Vec<bool>,
    groups_train: Vec<u64>,
    x_test: FeatureMatrix,
    y_test: Vec<bool>,
}

/// Runs the search over `specs` on the train split (`x`, `y`, customer
/// `groups`).
pub fn run(
    specs: &[ModelSpec],
    x: &FeatureMatrix,
    y: &[bool],
    groups: &[u64],
    bins: &SharedBins,
    params: &TrainParams,
) -> Result<Outcome> {
    if specs.is_empty() {
        bail!("no candidate configuration to search");
    }
    let metric = params.cv.metric;
    let k = params.cv.folds;
    let factor = params.halving.factor.max(2);
    let plan = schedule(specs.len(), y.len(), params);
    let last_rung = plan.len() - 1;
    let mut alive: Vec<usize> = (0..specs.len()).collect();
    let mut trials: Vec<Trial> = Vec::new();
    let mut rungs: Vec<Rung> = Vec::new();
    let sampler = cv::GroupSampler::new(groups, y, params.seed);
    let mut rung = 0;
    loop {
        let sample = sampler.sample(plan[rung]);
        let sy: Vec<bool> = sample.iter().map(|&r| y[r]).collect();
        let sg: Vec<u64> = sample.iter().map(|&r| groups[r]).collect();
        let customers = distinct(&sg);
        let fold_of = cv::grouped_stratified_folds(&sg, &sy, k, sub_seed(params.seed, 7));
        let needs_raw = alive.iter().any(|&c| !matches!(specs[c], ModelSpec::Gbm(_)));
        let folds: Vec<Fold> = (0..k)
            .map(|f| {
                let (mut train_rows, mut test_rows) = (Vec::new(), Vec::new());
                for (i, &r) in sample.iter().enumerate() {
                    if fold_of[i] == f {
                        test_rows.push(r);
                    } else {
                        train_rows.push(r);
                    }
                }
                Fold {
                    x_train: needs_raw.then(|| x.select_rows(&train_rows)),
                    y_train: train_rows.iter().map(|&r| y[r]).collect(),
                    groups_train: train_rows.iter().map(|&r| groups[r]).collect(),
                    x_test: x.select_rows(&test_rows),
                    y_test: test_rows.iter().map(|&r| y[r]).collect(),
                    train_rows,
                }
            })
            .collect();
        log::info!(
            "search rung {rung}: {} candidates x {k} folds on {} rows ({customers} customers)",
            alive.len(),
            sample.len()
        );
        let jobs: Vec<(usize, usize)> = alive.iter().flat_map(|&c| (0..k).map(move |f| (c, f))).collect();
        let results: Vec<FoldResult> = jobs
            .par_iter()
            .map(|&(c, f)| {
                fit_and_score(
                    &specs[c],
                    &folds[f],
                    bins,
                    params,
                    sub_seed(params.seed, f as u64),
                )
                .with_context(|| {
                    format!(
                        "search rung {rung}, candidate {c} ({}), fold {f}",
                        specs[c].algorithm().name()
                    )
                })
            })
            .collect::<Result<_>>()?;
        let first = trials.len();
        for (i, &c) in alive.iter().enumerate() {
            let folds = &results[i * k..(i + 1) * k];
            let fold_scores: Vec<f64> = folds.iter().map(|r| r.score).collect();
            let n = fold_scores.len() as f64;
            let mean = fold_scores.iter().sum::<f64>() / n;
            let std = (fold_scores.iter().map(|s| (s - mean).powi(2)).sum::<f64>() / n).sqrt();
            let rounds: Option<Vec<usize>> = folds.iter().map(|r| r.rounds).collect();
            trials.push(Trial {
                candidate: c,
                rung,
                algorithm: specs[c].algorithm().name(),
                spec: specs[c].clone(),
                rows: sample.len(),
                customers,
                fold_scores,
                mean,
                std,
                rounds,
                status: String::new(),
                fit_seconds: folds.iter().map(|r| r.seconds).sum(),
            });
        }
        // Rank this rung's trials: best mean first, ties to the earlier
        // candidate; scores that are not finite last.
        let mut order: Vec<usize> = (first..trials.len()).collect();
        order.sort_by(|&a, &b| {
            let (ta, tb) = (&trials[a], &trials[b]);
            match (ta.mean.is_finite(), tb.mean.is_finite()) {
                (true, false) => std::cmp::Ordering::Less,
                (false, true) => std::cmp::Ordering::Greater,
                (false, false) => ta.candidate.cmp(&tb.candidate),
                (true, true) if better(metric, ta.mean, tb.mean) => std::cmp::Ordering::Less,
                (true, true) if better(metric, tb.mean, ta.mean) => std::cmp::Ordering::Greater,
                _ => ta.candidate.cmp(&tb.candidate),
            }
        });
        let leader = order[0];
        if !trials[leader].mean.is_finite() {
            bail!(
                "search rung {rung}: no candidate produced a finite {} on {} rows ({customers} customers); \
                 raise train.halving.min_rows or use more data",
                metric.name(),
                sample.len()
            );
        }
        let (lead_mean, lead_std) = (trials[leader].mean, trials[leader].std);
        let n_here = order.len();
        let is_last = rung == last_rung;
        let keep = if is_last { 0 } else { n_here.div_ceil(factor) };
        let sigma = params.halving.drop_below_std;
        let mut promoted = Vec::new();
        for (rank, &t) in order.iter().enumerate() {
            let trial = &trials[t];
            let gap = if metric.maximise() {
                lead_mean - trial.mean
            } else {
                trial.mean - lead_mean
            };
            let status = if is_last {
                if rank == 0 {
                    "chosen".to_owned()
                } else {
                    format!("finalist, rank {} of {n_here}", rank + 1)
                }
            } else if !trial.mean.is_finite() {
                format!("stopped: its {} is not a number", metric.name())
            } else if rank > 0 && gap > sigma * lead_std {
                format!(
                    "stopped: {:.4} is {gap:.4} from the leader's {lead_mean:.4}, more than {sigma} of its fold std ({lead_std:.4})",
                    trial.mean
                )
            } else if rank >= keep {
                format!("stopped: rank {} of {n_here}, not in the best {keep}", rank + 1)
            } else {
                promoted.push(trial.candidate);
                String::new()
            };
            trials[t].status = status;
        }
        // One survivor skips the rungs in between: they could not change the
        // choice.
        let next = if promoted.len() == 1 { last_rung } else { rung + 1 };
        for &t in &order {
            if trials[t].status.is_empty() {
                trials[t].status = if next == last_rung && rung + 1 < last_rung {
                    format!("promoted (alone) to rung {next}")
                } else {
                    format!("promoted to rung {next}")
                };
            }
        }
        rungs.push(Rung {
            rung,
            rows: sample.len(),
            customers,
            candidates: n_here,
            promoted: promoted.len(),
            best_mean: lead_mean,
        });
        for &t in &order {
            let trial = &trials[t];
            log::info!(
                "  {:>2} {:<11} {} = {:.4} ± {:.4} ({:.1} s) {} {}",
                trial.candidate,
                trial.algorithm,
                metric.name(),
                trial.mean,
                trial.std,
                trial.fit_seconds,
                trial.status,
                trial.spec.params_json()
            );
        }
        if is_last {
            return Ok(Outcome {
                trials,
                rungs,
                chosen: leader,
            });
        }
        promoted.sort_unstable();
        alive = promoted;
        rung = next;
    }
}

/// Fits `spec` on a fold's training rows and scores its test rows.
fn fit_and_score(
    spec: &ModelSpec,
    fold: &Fold,
    bins: &SharedBins,
    params: &TrainParams,
    seed: u64,
) -> Result<FoldResult> {
    let started = Instant::now();
    let (model, rounds) = match spec {
        ModelSpec::Gbm(cfg) => {
            let shared = bins
                .get(cfg.max_bins)
                .with_context(|| format!("no bins for max_bins {}", cfg.max_bins))?;
            let (model, stats) = gbm::fit_binned(
                shared.select(&fold.train_rows),
                &fold.y_train,
                &fold.groups_train,
                cfg,
                params.class_weight,
                seed,
            );
            (Classifier::Gbm(model), Some(stats.rounds))
        }
        _ => {
            let Some(x) = &fold.x_train else {
                bail!("the fold's features were not kept");
            };
            let data = Data {
                x,
                y: &fold.y_train,
                groups: &fold.groups_train,
            };
            (fit::fit(spec, data, params.class_weight, seed)?, None)
        }
    };
    let p = fit::predict(&model, &fold.x_test)?;
    Ok(FoldResult {
        score: score(params.cv.metric, &p, &fold.y_test),
        rounds,
        seconds: started.elapsed().as_secs_f64(),
    })
}

pub(crate) fn distinct(groups: &[u64]) -> usize {
    let mut g = groups.to_vec();
    g.sort_unstable();
    g.dedup();
    g.len()
}

/// `reports/search.csv`: one line per candidate per rung, rung by rung,
/// best first within a rung. Wall times are left out so the file (a DVC
/// output) is identical across reruns; they are in the experiment log.
pub fn to_csv(outcome: &Outcome, metric: SelectionMetric, folds: usize) -> String {
    let mut out = String::from("rung,rows,customers,candidate,algorithm,metric,mean,std");
    for f in 0..folds {
        out.push_str(&format!(",fold_{f}"));
    }
    out.push_str(",rounds,status,params\n");
    let mut order: Vec<usize> = (0..outcome.trials.len()).collect();
    // Stable: within a rung, the order the rung ranked them in is by score.
    order.sort_by(|&a, &b| {
        let (ta, tb) = (&outcome.trials[a], &outcome.trials[b]);
        ta.rung.cmp(&tb.rung).then_with(|| {
            if ta.mean.is_finite() && tb.mean.is_finite() && ta.mean != tb.mean {
                if better(metric, ta.mean, tb.mean) {
                    std::cmp::Ordering::Less
                } else {
                    std::cmp::Ordering::Greater
                }
            } else {
                tb.mean
                    .is_finite()
                    .cmp(&ta.mean.is_finite())
                    .then(ta.candidate.cmp(&tb.candidate))
            }
        })
    });
    let quote = |s: &str| format!("\"{}\"", s.replace('"', "\"\""));
    for i in order {
        let t = &outcome.trials[i];
        out.push_str(&format!(
            "{},{},{},{},{},{},{:.6},{:.6}",
            t.rung,
            t.rows,
            t.customers,
            t.candidate,
            t.algorithm,
            metric.name(),
            t.mean,
            t.std
        ));
        for s in &t.fold_scores {
            out.push_str(&format!(",{s:.6}"));
        }
        let rounds = t.rounds.as_ref().map_or(String::new(), |r| {
            r.iter().map(ToString::to_string).collect::<Vec<_>>().join(" ")
        });
        out.push_str(&format!(
            ",{},{},{}\n",
            rounds,
            quote(&t.status),
            quote(&t.spec.params_json().to_string())
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(factor: usize, min_rows: usize, share: f64, max: Option<usize>) -> TrainParams {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/it/params.yaml");
        let mut p = revspend_core::params::Params::load(&path)
            .expect("fixture params")
            .train;
        p.halving.factor = factor;
        p.halving.min_rows = min_rows;
        p.halving.final_share = share;
        p.halving.final_max_rows = max;
        p
    }

    #[test]
    fn the_schedule_ends_at_the_final_rows_and_grows_by_the_factor() {
        let p = params(3, 3_000, 1.0, Some(200_000));
        // 25 candidates need 4 rungs (25 → 9 → 3 → 1).
        assert_eq!(schedule(25, 600_000, &p), vec![7_407, 22_222, 66_666, 200_000]);
        // Small data: as many rungs as min_rows allows.
        assert_eq!(schedule(25, 36_000, &p), vec![4_000, 12_000, 36_000]);
        assert_eq!(schedule(25, 2_000, &p), vec![2_000]);
        // One candidate: one rung.
        assert_eq!(schedule(1, 600_000, &p), vec![200_000]);
        let p = params(3, 3_000, 0.5, None);
        assert_eq!(schedule(9, 600_000, &p), vec![33_333, 100_000, 300_000]);
    }
}
