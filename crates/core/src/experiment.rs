//! What the server's online experiments and the experiment report agree on:
//! the bandit's learned state, which `serve` persists and restores and the
//! report reads (the predictions and feedback themselves are in the
//! prediction log, [`crate::artifact::prediction_log`]).

use serde::{Deserialize, Serialize};

/// Version of the bandit state file, checked on read.
pub const BANDIT_STATE_VERSION: u32 = 1;

/// A bandit's learned state: what each arm (variant) was credited so far.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BanditState {
    /// [`BANDIT_STATE_VERSION`].
    pub version: u32,
    /// The routing config's experiment id: a state is restored only into
    /// the same experiment (a new id starts from the prior).
    pub experiment: String,
    /// `thompson` or `epsilon_greedy`.
    pub algorithm: String,
    /// When it was written (RFC 3339, UTC).
    pub updated: String,
    pub arms: Vec<ArmState>,
}

/// One arm's counts. Thompson sampling's Beta posterior follows from them
/// with the prior α = β = 1: α = 1 + `reward_sum`, β = 1 + `feedbacks` −
/// `reward_sum` (rewards in [0, 1]: a reward r adds r to α and 1 − r to β).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ArmState {
    /// The variant's name in the routing config.
    pub variant: String,
    /// Requests the bandit sent to it.
    pub pulls: u64,
    /// Feedbacks received for its predictions.
    pub feedbacks: u64,
    /// Sum of their rewards, and of their squares (for the variance).
    pub reward_sum: f64,
    pub reward_sq_sum: f64,
}

impl ArmState {
    /// An arm nothing is known of.
    pub fn new(variant: &str) -> ArmState {
        ArmState {
            variant: variant.to_owned(),
            pulls: 0,
            feedbacks: 0,
            reward_sum: 0.0,
            reward_sq_sum: 0.0,
        }
    }

    /// The Beta posterior's parameters under the prior α = β = 1.
    pub fn beta_posterior(&self) -> (f64, f64) {
        let alpha = 1.0 + self.reward_sum;
        let beta = 1.0 + (self.feedbacks as f64 - self.reward_sum).max(0.0);
        (alpha, beta)
    }

    /// Mean reward so far (none before the first feedback).
    pub fn mean_reward(&self) -> Option<f64> {
        (self.feedbacks > 0).then(|| self.reward_sum / self.feedbacks as f64)
    }

    /// Credits one reward.
    pub fn credit(&mut self, reward: f64) {
        self.feedbacks += 1;
        self.reward_sum += reward;
        self.reward_sq_sum += reward * reward;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_posterior_starts_at_the_uniform_prior_and_counts_rewards() {
        let mut arm = ArmState::new("a");
        assert_eq!(arm.beta_posterior(), (1.0, 1.0));
        assert_eq!(arm.mean_reward(), None);
        arm.credit(1.0);
        arm.credit(0.0);
        arm.credit(0.5);
        assert_eq!(arm.beta_posterior(), (2.5, 2.5));
        assert_eq!(arm.mean_reward(), Some(0.5));
        assert_eq!(arm.reward_sq_sum, 1.25);
    }

    #[test]
    fn the_state_file_round_trips_and_another_version_is_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("bandit.json");
        let mut state = BanditState {
            version: BANDIT_STATE_VERSION,
            experiment: "exp-1".into(),
            algorithm: "thompson".into(),
            updated: "2026-12-01T00:00:00Z".into(),
            arms: vec![ArmState::new("a"), ArmState::new("b")],
        };
        state.arms[1].credit(1.0);
        crate::artifact::write_bandit_state(&path, &state).expect("write");
        assert_eq!(crate::artifact::read_bandit_state(&path).expect("read"), state);
        state.version = 99;
        crate::artifact::write_bandit_state(&path, &state).expect("write");
        let err = crate::artifact::read_bandit_state(&path).expect_err("version");
        assert!(err.to_string().contains("bandit state version 99"), "{err}");
    }
}
