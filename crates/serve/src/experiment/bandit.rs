//! Multi-armed bandits over the variants: Beta-Bernoulli Thompson sampling
//! (prior α = β = 1) and epsilon-greedy, learning from rewards that arrive
//! through feedback seconds or days after the prediction. The learned
//! state is written atomically after every feedback it takes (before the
//! feedback is acknowledged) and restored at start, one file per
//! experiment id, so neither a restart nor a kill forgets what was learned.

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use anyhow::Context;
use rand::rngs::SmallRng;
use rand::{Rng, RngExt, SeedableRng};
use rand_distr::{Beta, Distribution};
use revspend_core::artifact;
use revspend_core::experiment::{ArmState, BANDIT_STATE_VERSION, BanditState};

use super::routing::Algorithm;

/// Chooses an arm given what each has earned. Ties (every arm at the start
/// of epsilon-greedy) are broken at random, never by position.
pub fn choose_arm<R: Rng + ?Sized>(algorithm: Algorithm, arms: &[ArmState], rng: &mut R) -> usize {
    let scores: Vec<f64> = match algorithm {
        Algorithm::Thompson => arms
            .iter()
            .map(|arm| {
                let (alpha, beta) = arm.beta_posterior();
                // α, β >= 1 always: Beta::new cannot fail.
                Beta::new(alpha, beta).map_or(0.5, |d| d.sample(rng))
            })
            .collect(),
        Algorithm::EpsilonGreedy { epsilon } => {
            if rng.random::<f64>() < epsilon {
                return rng.random_range(0..arms.len());
            }
            arms.iter()
                .map(|arm| {
                    let (alpha, beta) = arm.beta_posterior();
                    alpha / (alpha + beta)
                })
                .collect()
        }
    };
    let best = scores.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let tied: Vec<usize> = (0..scores.len()).filter(|&i| scores[i] >= best).collect();
    match tied.len() {
        0 => 0,
        1 => tied[0],
        n => tied[rng.random_range(0..n)],
    }
}

/// A bandit in service: its arms' state and its random numbers behind a
/// lock held for a few operations per request, and the file it is
/// persisted to.
#[derive(Debug)]
pub struct Bandit {
    experiment: String,
    algorithm: Algorithm,
    arms: Mutex<Arms>,
    path: Option<PathBuf>,
    /// One state write at a time, in the order the credits were taken.
    writing: Mutex<()>,
}

#[derive(Debug)]
struct Arms {
    arms: Vec<ArmState>,
    rng: SmallRng,
}

impl Bandit {
    /// The state file of an experiment in `dir`.
    pub fn state_path(dir: &Path, experiment: &str) -> PathBuf {
        dir.join(format!("bandit-{experiment}.json"))
    }

    /// A bandit over `variants`, restored from its state file in `dir` when
    /// one exists for this experiment (arms matched by variant name; a new
    /// variant starts from the prior, a removed one is dropped). None: kept
    /// in memory only.
    /// `seed` seeds its choices (none: the OS's randomness): with one
    /// worker and the same requests, the same seed makes the same choices.
    pub fn restore(
        experiment: &str,
        algorithm: Algorithm,
        seed: Option<u64>,
        variants: &[&str],
        dir: Option<&Path>,
    ) -> anyhow::Result<Bandit> {
        let path = dir.map(|d| Bandit::state_path(d, experiment));
        let mut arms: Vec<ArmState> = variants.iter().map(|v| ArmState::new(v)).collect();
        if let Some(path) = path.as_deref().filter(|p| p.exists()) {
            let saved = artifact::read_bandit_state(path)
                .with_context(|| format!("cannot restore the bandit state {}", path.display()))?;
            anyhow::ensure!(
                saved.experiment == experiment,
                "{} holds the state of experiment {:?}, not {experiment:?}",
                path.display(),
                saved.experiment
            );
            if saved.algorithm != algorithm.name() {
                log::warn!(
                    "bandit: {} was learned with {}, continuing with {}",
                    path.display(),
                    saved.algorithm,
                    algorithm.name()
                );
            }
            for arm in &mut arms {
                if let Some(old) = saved.arms.iter().find(|a| a.variant == arm.variant) {
                    *arm = old.clone();
                }
            }
            for gone in saved
                .arms
                .iter()
                .filter(|a| !variants.contains(&a.variant.as_str()))
            {
                log::warn!(
                    "bandit: variant {} is no longer routed; its {} feedbacks are dropped from the state",
                    gone.variant,
                    gone.feedbacks
                );
            }
            log::info!(
                "bandit: restored {} ({} feedbacks)",
                path.display(),
                arms.iter().map(|a| a.feedbacks).sum::<u64>()
            );
        }
        let seed = seed.unwrap_or_else(|| {
            use std::hash::{BuildHasher, Hasher};
            std::collections::hash_map::RandomState::new()
                .build_hasher()
                .finish()
        });
        Ok(Bandit {
            experiment: experiment.to_owned(),
            algorithm,
            arms: Mutex::new(Arms {
                arms,
                rng: SmallRng::seed_from_u64(seed),
            }),
            path,
            writing: Mutex::new(()),
        })
    }

    pub fn experiment(&self) -> &str {
        &self.experiment
    }

    /// Chooses the arm for one request and counts the pull.
    pub fn choose(&self) -> usize {
        let Ok(mut guard) = self.arms.lock() else {
            return 0;
        };
        let Arms { arms, rng } = &mut *guard;
        let arm = choose_arm(self.algorithm, arms, rng);
        arms[arm].pulls += 1;
        arm
    }

    /// Credits rewards to the arms of the variants named (unknown names are
    /// skipped and counted), then persists the state; the caller
    /// acknowledges the feedback only after this returns Ok.
    pub fn credit(&self, rewards: &[(&str, f64)]) -> anyhow::Result<usize> {
        let _one_writer = self
            .writing
            .lock()
            .map_err(|_| anyhow::anyhow!("a bandit state write panicked earlier"))?;
        let mut skipped = 0;
        {
            let mut arms = self
                .arms
                .lock()
                .map_err(|_| anyhow::anyhow!("the bandit's lock was poisoned"))?;
            for (variant, reward) in rewards {
                match arms.arms.iter_mut().find(|a| a.variant == *variant) {
                    Some(arm) => arm.credit(*reward),
                    None => skipped += 1,
                }
            }
        }
        self.write_locked()?;
        Ok(skipped)
    }

    /// Writes the state now (at shutdown: the pulls since the last credit).
    pub fn persist(&self) -> anyhow::Result<()> {
        let _one_writer = self
            .writing
            .lock()
            .map_err(|_| anyhow::anyhow!("a bandit state write panicked earlier"))?;
        self.write_locked()
    }

    fn write_locked(&self) -> anyhow::Result<()> {
        let Some(path) = &self.path else {
            return Ok(());
        };
        let state = self.state();
        artifact::write_bandit_state(path, &state)
            .with_context(|| format!("cannot write the bandit state {}", path.display()))
    }

    /// The state now.
    pub fn state(&self) -> BanditState {
        let arms = self.arms.lock().map(|a| a.arms.clone()).unwrap_or_default();
        BanditState {
            version: BANDIT_STATE_VERSION,
            experiment: self.experiment.clone(),
            algorithm: self.algorithm.name().into(),
            updated: revspend_core::registry::now_rfc3339(),
            arms,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Plays `rounds` requests against arms paying 1 with probabilities
    /// `p`, feedback arriving `delay` rounds later; returns the share of
    /// the last 1,000 pulls each arm got.
    fn simulate(algorithm: Algorithm, p: &[f64], rounds: usize, delay: usize, seed: u64) -> Vec<f64> {
        let mut rng = SmallRng::seed_from_u64(seed);
        let mut world = SmallRng::seed_from_u64(seed ^ 0xfeed);
        let names: Vec<String> = (0..p.len()).map(|i| format!("arm{i}")).collect();
        let mut arms: Vec<ArmState> = names.iter().map(|n| ArmState::new(n)).collect();
        let mut pending: std::collections::VecDeque<(usize, f64)> = Default::default();
        let mut last = vec![0usize; p.len()];
        for round in 0..rounds {
            let arm = choose_arm(algorithm, &arms, &mut rng);
            arms[arm].pulls += 1;
            let reward = if world.random::<f64>() < p[arm] { 1.0 } else { 0.0 };
            pending.push_back((arm, reward));
            if pending.len() > delay
                && let Some((a, r)) = pending.pop_front()
            {
                arms[a].credit(r);
            }
            if round >= rounds - 1_000 {
                last[arm] += 1;
            }
        }
        last.iter().map(|&n| n as f64 / 1_000.0).collect()
    }

    #[test]
    fn thompson_sampling_converges_to_the_better_arm_with_late_feedback() {
        for seed in [1, 2, 3] {
            let shares = simulate(Algorithm::Thompson, &[0.60, 0.70], 6_000, 200, seed);
            assert!(shares[1] > 0.9, "seed {seed}: {shares:?}");
        }
    }

    #[test]
    fn epsilon_greedy_exploits_the_better_arm_and_keeps_exploring() {
        let shares = simulate(
            Algorithm::EpsilonGreedy { epsilon: 0.1 },
            &[0.60, 0.70],
            6_000,
            200,
            4,
        );
        // 90 % greedy on the better arm plus half of the 10 % explored.
        assert!(shares[1] > 0.85 && shares[0] > 0.02, "{shares:?}");
    }

    #[test]
    fn the_same_seed_makes_the_same_choices() {
        let a = simulate(Algorithm::Thompson, &[0.5, 0.55, 0.6], 2_000, 10, 9);
        let b = simulate(Algorithm::Thompson, &[0.5, 0.55, 0.6], 2_000, 10, 9);
        assert_eq!(a, b);
    }

    #[test]
    fn what_was_learned_survives_a_restart_and_a_new_experiment_starts_fresh() {
        let dir = tempfile::tempdir().expect("tempdir");
        let bandit = Bandit::restore(
            "exp-1",
            Algorithm::Thompson,
            Some(1),
            &["a", "b"],
            Some(dir.path()),
        )
        .expect("new");
        for _ in 0..10 {
            bandit.choose();
        }
        assert_eq!(
            bandit
                .credit(&[("b", 1.0), ("b", 1.0), ("a", 0.0), ("gone", 1.0)])
                .expect("credit"),
            1
        );
        bandit.persist().expect("persist");
        let before = bandit.state();
        drop(bandit);

        let again = Bandit::restore(
            "exp-1",
            Algorithm::Thompson,
            None,
            &["a", "b", "c"],
            Some(dir.path()),
        )
        .expect("restore");
        let after = again.state();
        assert_eq!(after.arms[..2], before.arms[..]);
        assert_eq!(after.arms[1].beta_posterior(), (3.0, 1.0));
        assert_eq!(after.arms[2], ArmState::new("c"));
        assert_eq!(after.arms.iter().map(|a| a.pulls).sum::<u64>(), 10);

        let fresh = Bandit::restore("exp-2", Algorithm::Thompson, None, &["a", "b"], Some(dir.path()))
            .expect("fresh");
        assert!(fresh.state().arms.iter().all(|a| a.feedbacks == 0));
        // A file of one experiment is never read as another's.
        std::fs::copy(
            Bandit::state_path(dir.path(), "exp-1"),
            Bandit::state_path(dir.path(), "exp-3"),
        )
        .expect("copy");
        let err = Bandit::restore("exp-3", Algorithm::Thompson, None, &["a"], Some(dir.path()))
            .expect_err("another experiment's state");
        assert!(err.to_string().contains("exp-1"), "{err}");
    }
}
