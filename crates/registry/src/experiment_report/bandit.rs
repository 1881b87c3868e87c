//! The bandit section: what the server's bandit has learned, per arm, from
//! its state file, and how likely each arm is the best under it.

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Beta, Distribution};
use revspend_core::experiment::BanditState;
use serde::Serialize;

use super::ReportError;

/// Monte Carlo draws behind P(best arm): its standard error is at most
/// √(0.25 / 20 000) ≈ 0.0035, finer than the three decimals printed.
pub const P_BEST_DRAWS: usize = 20_000;

/// Seed of those draws: the same state prints the same P(best) every run.
pub const P_BEST_SEED: u64 = 20_261_201;

/// The bandit state as the report shows it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BanditReport {
    /// The state file read.
    pub path: String,
    pub algorithm: String,
    /// When the server wrote it.
    pub updated: String,
    pub draws: usize,
    pub seed: u64,
    pub arms: Vec<ArmReport>,
}

/// One arm.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ArmReport {
    pub variant: String,
    pub pulls: u64,
    /// Of all arms' pulls (none before the first).
    pub pull_share: Option<f64>,
    pub feedbacks: u64,
    pub mean_reward: Option<f64>,
    /// The Beta posterior under the prior α = β = 1.
    pub alpha: f64,
    pub beta: f64,
    /// α / (α + β).
    pub posterior_mean: f64,
    /// Share of the draws in which this arm's posterior sample was highest.
    pub p_best: f64,
}

/// The report of `state`, read from `path`; refused when it belongs to
/// another experiment than the report's (its counts would be of other
/// variants, or of the same names in another test).
pub fn bandit_report(path: &str, state: &BanditState, experiment: &str) -> Result<BanditReport, ReportError> {
    if state.experiment != experiment {
        return Err(ReportError::BanditExperiment {
            path: path.to_owned(),
            state: state.experiment.clone(),
            report: experiment.to_owned(),
        });
    }
    let posteriors: Vec<(f64, f64)> = state.arms.iter().map(|a| a.beta_posterior()).collect();
    let p_best = p_best(&posteriors, P_BEST_DRAWS, P_BEST_SEED).map_err(|arm| {
        let (alpha, beta) = posteriors[arm];
        ReportError::BadPosterior {
            path: path.to_owned(),
            variant: state.arms[arm].variant.clone(),
            alpha,
            beta,
        }
    })?;
    let total: u64 = state.arms.iter().map(|a| a.pulls).sum();
    let arms = state
        .arms
        .iter()
        .zip(posteriors)
        .zip(p_best)
        .map(|((arm, (alpha, beta)), p_best)| ArmReport {
            variant: arm.variant.clone(),
            pulls: arm.pulls,
            pull_share: (total > 0).then(|| arm.pulls as f64 / total as f64),
            feedbacks: arm.feedbacks,
            mean_reward: arm.mean_reward(),
            alpha,
            beta,
            posterior_mean: alpha / (alpha + beta),
            p_best,
        })
        .collect();
    Ok(BanditReport {
        path: path.to_owned(),
        algorithm: state.algorithm.clone(),
        updated: state.updated.clone(),
        draws: P_BEST_DRAWS,
        seed: P_BEST_SEED,
        arms,
    })
}

/// P(arm is best) for each Beta(α, β) posterior: the share of `draws` joint
/// samples in which it is the highest. Err is the index of a posterior
/// whose parameters are not a Beta distribution's.
pub fn p_best(posteriors: &[(f64, f64)], draws: usize, seed: u64) -> Result<Vec<f64>, usize> {
    let dists = posteriors
        .iter()
        .enumerate()
        .map(|(i, &(a, b))| Beta::new(a, b).map_err(|_| i))
        .collect::<Result<Vec<_>, _>>()?;
    let mut wins = vec![0u64; dists.len()];
    if dists.is_empty() || draws == 0 {
        return Ok(vec![0.0; dists.len()]);
    }
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    for _ in 0..draws {
        let mut best = (0, f64::NEG_INFINITY);
        for (i, d) in dists.iter().enumerate() {
            let x = d.sample(&mut rng);
            if x > best.1 {
                best = (i, x);
            }
        }
        wins[best.0] += 1;
    }
    Ok(wins.iter().map(|&w| w as f64 / draws as f64).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn equal_posteriors_share_p_best_and_the_draws_are_repeatable() {
        let p = p_best(&[(3.0, 3.0), (3.0, 3.0)], 20_000, 1).expect("p");
        assert!((p[0] - 0.5).abs() < 0.02, "{p:?}");
        assert!((p[0] + p[1] - 1.0).abs() < 1e-12);
        assert_eq!(p, p_best(&[(3.0, 3.0), (3.0, 3.0)], 20_000, 1).expect("p"));
        assert_eq!(p_best(&[(1.0, 1.0), (0.0, 1.0)], 10, 1), Err(1));
    }
}
