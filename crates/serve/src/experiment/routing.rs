//! The routing file (`config/routing.yaml`): which models answer and how
//! requests are shared among them. Read strictly (an unknown key is an
//! error), then checked once into a [`Routing`], the only form the server
//! uses; every error names the YAML key.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::Context;
use serde::Deserialize;

/// The routing file as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRouting {
    experiment: String,
    variants: Vec<RawVariant>,
    policy: RawPolicy,
    #[serde(default)]
    reward: Option<RawReward>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawVariant {
    name: String,
    model: String,
}

/// The policy as written: its `kind` and the settings of that kind (a
/// setting of another kind is an error, not ignored).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPolicy {
    kind: RawKind,
    #[serde(default)]
    weights: Option<BTreeMap<String, f64>>,
    #[serde(default)]
    variant: Option<String>,
    #[serde(default)]
    percent: Option<f64>,
    #[serde(default)]
    variants: Option<Vec<String>>,
    #[serde(default)]
    fraction: Option<f64>,
    #[serde(default)]
    algorithm: Option<RawAlgorithm>,
    #[serde(default)]
    epsilon: Option<f64>,
    #[serde(default)]
    seed: Option<u64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
enum RawKind {
    Plain,
    Ab,
    Canary,
    Shadow,
    Bandit,
}

impl RawKind {
    fn name(self) -> &'static str {
        match self {
            RawKind::Plain => "plain",
            RawKind::Ab => "ab",
            RawKind::Canary => "canary",
            RawKind::Shadow => "shadow",
            RawKind::Bandit => "bandit",
        }
    }
}

#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(rename_all = "snake_case")]
enum RawAlgorithm {
    Thompson,
    EpsilonGreedy,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawReward {
    true_positive: f64,
    false_positive: f64,
    false_negative: f64,
    true_negative: f64,
}

/// The checked routing: who answers, and how requests are shared.
#[derive(Debug, Clone, PartialEq)]
pub struct Routing {
    /// The experiment id: A/B and canary assignment is a hash of it and the
    /// customer, so a new id reshuffles customers; the bandit's state and
    /// the prediction log are kept per id.
    pub experiment: String,
    /// The variants, the first being the control (production).
    pub variants: Vec<Variant>,
    pub policy: Policy,
    /// The reward a feedback with an outcome earns the variant.
    pub reward: RewardTable,
}

/// One variant: a name, and the registry alias or version of its model.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Variant {
    pub name: String,
    pub model: String,
}

/// How requests are shared among the variants.
#[derive(Debug, Clone, PartialEq)]
pub enum Policy {
    /// Every request to the first variant.
    Plain,
    /// A sticky split: customer shares by variant (summing to 1, in
    /// variant order).
    Ab { shares: Vec<f64> },
    /// `percent` of the customers to `variant`, the rest to the first; a
    /// customer stays where it is as long as the percentage does not cross
    /// its position.
    Canary { variant: usize, percent: f64 },
    /// The first variant answers; a `fraction` of requests is also scored
    /// by each of `variants`, off the request path.
    Shadow { variants: Vec<usize>, fraction: f64 },
    /// A multi-armed bandit over all variants, rewarded by feedback.
    Bandit { algorithm: Algorithm, seed: Option<u64> },
}

/// A bandit's way of choosing an arm.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Algorithm {
    /// Beta-Bernoulli Thompson sampling, prior α = β = 1.
    Thompson,
    /// The arm of highest posterior mean reward, a random one with
    /// probability `epsilon`.
    EpsilonGreedy { epsilon: f64 },
}

impl Algorithm {
    /// Its name in the routing file and the bandit state.
    pub fn name(self) -> &'static str {
        match self {
            Algorithm::Thompson => "thompson",
            Algorithm::EpsilonGreedy { .. } => "epsilon_greedy",
        }
    }
}

/// Reward by decision and outcome, each in [0, 1]. The default rewards a
/// correct decision: 1 for a true positive or true negative, 0 otherwise.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RewardTable {
    pub true_positive: f64,
    pub false_positive: f64,
    pub false_negative: f64,
    pub true_negative: f64,
}

impl Default for RewardTable {
    fn default() -> RewardTable {
        RewardTable {
            true_positive: 1.0,
            false_positive: 0.0,
            false_negative: 0.0,
            true_negative: 1.0,
        }
    }
}

impl RewardTable {
    /// The reward of a prediction with `decision` whose purchase turned out
    /// to be revenge spending or not.
    pub fn reward(&self, decision: bool, outcome: bool) -> f64 {
        match (decision, outcome) {
            (true, true) => self.true_positive,
            (true, false) => self.false_positive,
            (false, true) => self.false_negative,
            (false, false) => self.true_negative,
        }
    }
}

impl Routing {
    /// One variant answering everything: the server without a routing file.
    pub fn single(model: &str) -> Routing {
        Routing {
            experiment: "default".into(),
            variants: vec![Variant {
                name: model.into(),
                model: model.into(),
            }],
            policy: Policy::Plain,
            reward: RewardTable::default(),
        }
    }

    /// Reads and checks a routing file; errors name the file and the key.
    pub fn read(path: &Path) -> anyhow::Result<Routing> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read the routing file {}", path.display()))?;
        Routing::parse(&text).with_context(|| format!("routing file {}", path.display()))
    }

    /// Parses and checks a routing file's text.
    pub fn parse(text: &str) -> anyhow::Result<Routing> {
        // serde_norway's errors name the key path (`policy.percent: ...`).
        let raw: RawRouting = serde_norway::from_str(text).map_err(|e| anyhow::anyhow!("{e}"))?;
        raw.check()
    }

    /// The index of the variant named `name`.
    pub fn variant_index(&self, name: &str) -> Option<usize> {
        self.variants.iter().position(|v| v.name == name)
    }

    /// The variant names, for messages.
    fn names(&self) -> String {
        self.variants
            .iter()
            .map(|v| v.name.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// An error naming the key it is about.
fn at(key: &str, message: impl std::fmt::Display) -> anyhow::Error {
    anyhow::anyhow!("{key}: {message}")
}

impl RawRouting {
    fn check(self) -> anyhow::Result<Routing> {
        let experiment = self.experiment.trim().to_owned();
        if experiment.is_empty()
            || !experiment
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        {
            return Err(at(
                "experiment",
                format!(
                    "{:?}: use letters, digits, `-`, `_` and `.` only",
                    self.experiment
                ),
            ));
        }
        if self.variants.is_empty() {
            return Err(at("variants", "name at least one variant"));
        }
        let mut variants: Vec<Variant> = Vec::with_capacity(self.variants.len());
        for (i, v) in self.variants.into_iter().enumerate() {
            let valid = !v.name.is_empty()
                && v.name.len() <= 64
                && v.name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_'));
            if !valid {
                return Err(at(
                    &format!("variants[{i}].name"),
                    format!("{:?}: 1 to 64 letters, digits, `-` or `_`", v.name),
                ));
            }
            if variants.iter().any(|seen| seen.name == v.name) {
                return Err(at(
                    &format!("variants[{i}].name"),
                    format!("`{}` is named twice", v.name),
                ));
            }
            if v.model.trim().is_empty() {
                return Err(at(
                    &format!("variants[{i}].model"),
                    "name a registry alias or version",
                ));
            }
            variants.push(Variant {
                name: v.name,
                model: v.model.trim().to_owned(),
            });
        }
        let mut routing = Routing {
            experiment,
            variants,
            policy: Policy::Plain,
            reward: RewardTable::default(),
        };
        routing.policy = check_policy(&routing, self.policy)?;
        if let Some(r) = self.reward {
            let table = RewardTable {
                true_positive: r.true_positive,
                false_positive: r.false_positive,
                false_negative: r.false_negative,
                true_negative: r.true_negative,
            };
            for (key, value) in [
                ("true_positive", table.true_positive),
                ("false_positive", table.false_positive),
                ("false_negative", table.false_negative),
                ("true_negative", table.true_negative),
            ] {
                if !(0.0..=1.0).contains(&value) {
                    return Err(at(
                        &format!("reward.{key}"),
                        format!("{value} is outside [0, 1] (a Beta-Bernoulli reward)"),
                    ));
                }
            }
            routing.reward = table;
        }
        Ok(routing)
    }
}

fn check_policy(routing: &Routing, raw: RawPolicy) -> anyhow::Result<Policy> {
    let index = |key: &str, name: &str| {
        routing.variant_index(name).ok_or_else(|| {
            at(
                key,
                format!("no variant named `{name}` (the variants: {})", routing.names()),
            )
        })
    };
    // Each setting belongs to one kind of policy.
    let settings: [(&str, bool, RawKind); 8] = [
        ("weights", raw.weights.is_some(), RawKind::Ab),
        ("variant", raw.variant.is_some(), RawKind::Canary),
        ("percent", raw.percent.is_some(), RawKind::Canary),
        ("variants", raw.variants.is_some(), RawKind::Shadow),
        ("fraction", raw.fraction.is_some(), RawKind::Shadow),
        ("algorithm", raw.algorithm.is_some(), RawKind::Bandit),
        ("epsilon", raw.epsilon.is_some(), RawKind::Bandit),
        ("seed", raw.seed.is_some(), RawKind::Bandit),
    ];
    for (key, given, kind) in settings {
        if given && kind != raw.kind {
            return Err(at(
                &format!("policy.{key}"),
                format!("not a setting of policy kind {}", raw.kind.name()),
            ));
        }
    }
    let required = |key: &str| {
        at(
            &format!("policy.{key}"),
            format!("required by policy kind {}", raw.kind.name()),
        )
    };
    let n = routing.variants.len();
    Ok(match raw.kind {
        RawKind::Plain => Policy::Plain,
        RawKind::Ab => {
            let weights = raw.weights.ok_or_else(|| required("weights"))?;
            let mut shares = vec![0.0; n];
            for (name, weight) in &weights {
                let key = format!("policy.weights.{name}");
                let i = index(&key, name)?;
                if !(weight.is_finite() && *weight >= 0.0) {
                    return Err(at(&key, format!("{weight} is not a weight >= 0")));
                }
                shares[i] = *weight;
            }
            if let Some(missing) = routing.variants.iter().find(|v| !weights.contains_key(&v.name)) {
                return Err(at(
                    "policy.weights",
                    format!(
                        "no weight for variant `{}` (give it 0 to leave it out)",
                        missing.name
                    ),
                ));
            }
            let total: f64 = shares.iter().sum();
            if total <= 0.0 {
                return Err(at("policy.weights", "the weights sum to 0"));
            }
            Policy::Ab {
                shares: shares.iter().map(|w| w / total).collect(),
            }
        }
        RawKind::Canary => {
            let variant = raw.variant.ok_or_else(|| required("variant"))?;
            let percent = raw.percent.ok_or_else(|| required("percent"))?;
            let i = index("policy.variant", &variant)?;
            if i == 0 {
                return Err(at(
                    "policy.variant",
                    format!("`{variant}` is the first variant (production): name the candidate"),
                ));
            }
            if !(0.0..=100.0).contains(&percent) {
                return Err(at("policy.percent", format!("{percent} is outside [0, 100]")));
            }
            Policy::Canary { variant: i, percent }
        }
        RawKind::Shadow => {
            let variants = raw.variants.ok_or_else(|| required("variants"))?;
            let fraction = raw.fraction.ok_or_else(|| required("fraction"))?;
            if variants.is_empty() {
                return Err(at("policy.variants", "name at least one shadow variant"));
            }
            let mut shadows = Vec::with_capacity(variants.len());
            for (k, name) in variants.iter().enumerate() {
                let key = format!("policy.variants[{k}]");
                let i = index(&key, name)?;
                if i == 0 {
                    return Err(at(&key, format!("`{name}` is the primary (the first variant)")));
                }
                if shadows.contains(&i) {
                    return Err(at(&key, format!("`{name}` is named twice")));
                }
                shadows.push(i);
            }
            if !(0.0..=1.0).contains(&fraction) {
                return Err(at("policy.fraction", format!("{fraction} is outside [0, 1]")));
            }
            Policy::Shadow {
                variants: shadows,
                fraction,
            }
        }
        RawKind::Bandit => {
            if n < 2 {
                return Err(at("policy.kind", "a bandit needs at least two variants"));
            }
            let algorithm = match (raw.algorithm.ok_or_else(|| required("algorithm"))?, raw.epsilon) {
                (RawAlgorithm::Thompson, None) => Algorithm::Thompson,
                (RawAlgorithm::Thompson, Some(_)) => {
                    return Err(at("policy.epsilon", "only for algorithm epsilon_greedy"));
                }
                (RawAlgorithm::EpsilonGreedy, None) => Algorithm::EpsilonGreedy { epsilon: 0.1 },
                (RawAlgorithm::EpsilonGreedy, Some(e)) if (0.0..=1.0).contains(&e) => {
                    Algorithm::EpsilonGreedy { epsilon: e }
                }
                (RawAlgorithm::EpsilonGreedy, Some(e)) => {
                    return Err(at("policy.epsilon", format!("{e} is outside [0, 1]")));
                }
            };
            Policy::Bandit {
                algorithm,
                seed: raw.seed,
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const AB: &str = "
experiment: exp-1
variants:
  - {name: production, model: production}
  - {name: candidate, model: v0002}
policy:
  kind: ab
  weights: {production: 3, candidate: 1}
";

    fn error(text: &str) -> String {
        format!("{:#}", Routing::parse(text).expect_err("refused"))
    }

    #[test]
    fn a_split_is_read_and_its_weights_normalised() {
        let routing = Routing::parse(AB).expect("valid");
        assert_eq!(routing.experiment, "exp-1");
        assert_eq!(routing.variants[1].model, "v0002");
        assert_eq!(
            routing.policy,
            Policy::Ab {
                shares: vec![0.75, 0.25]
            }
        );
        assert_eq!(routing.reward, RewardTable::default());
    }

    #[test]
    fn each_policy_reads() {
        let with = |policy: &str| {
            Routing::parse(&format!(
                "experiment: e\nvariants:\n  - {{name: a, model: production}}\n  - {{name: b, model: candidate}}\npolicy: {policy}\n"
            ))
            .expect("valid")
            .policy
        };
        assert_eq!(with("{kind: plain}"), Policy::Plain);
        assert_eq!(
            with("{kind: canary, variant: b, percent: 5}"),
            Policy::Canary {
                variant: 1,
                percent: 5.0
            }
        );
        assert_eq!(
            with("{kind: shadow, variants: [b], fraction: 0.1}"),
            Policy::Shadow {
                variants: vec![1],
                fraction: 0.1
            }
        );
        assert_eq!(
            with("{kind: bandit, algorithm: thompson, seed: 7}"),
            Policy::Bandit {
                algorithm: Algorithm::Thompson,
                seed: Some(7)
            }
        );
        assert_eq!(
            with("{kind: bandit, algorithm: epsilon_greedy}"),
            Policy::Bandit {
                algorithm: Algorithm::EpsilonGreedy { epsilon: 0.1 },
                seed: None
            }
        );
    }

    #[test]
    fn errors_name_the_key() {
        let policy = |text: &str| AB.replace("kind: ab\n  weights: {production: 3, candidate: 1}", text);
        let e = error(&AB.replace("candidate: 1", "candidat: 1"));
        assert!(
            e.contains("policy.weights.candidat: no variant named `candidat`"),
            "{e}"
        );
        let e = error(&AB.replace("weights", "wieghts"));
        assert!(e.contains("policy") && e.contains("wieghts"), "{e}");
        let e = error(&AB.replace("production: 3", "production: -3"));
        assert!(e.contains("policy.weights.production"), "{e}");
        let e = error(&AB.replace("experiment: exp-1", "experiment: exp 1"));
        assert!(e.contains("experiment:"), "{e}");
        let e = error(&AB.replace("name: candidate", "name: production"));
        assert!(e.contains("variants[1].name: `production` is named twice"), "{e}");
        let e = error(&policy("kind: canary\n  variant: candidate\n  percent: 150"));
        assert!(e.contains("policy.percent: 150"), "{e}");
        let e = error(&policy("kind: canary\n  variant: candidate\n  percent: five"));
        assert!(e.contains("policy.percent"), "{e}");
        let e = error(&policy("kind: canary\n  variant: candidate"));
        assert!(
            e.contains("policy.percent: required by policy kind canary"),
            "{e}"
        );
        let e = error(&policy(
            "kind: canary\n  variant: candidate\n  percent: 5\n  fraction: 0.1",
        ));
        assert!(
            e.contains("policy.fraction: not a setting of policy kind canary"),
            "{e}"
        );
        let e = error(&policy("kind: shadow\n  variants: [production]\n  fraction: 0.1"));
        assert!(
            e.contains("policy.variants[0]: `production` is the primary"),
            "{e}"
        );
        let e = error(&policy("kind: bandit\n  algorithm: thompson\n  epsilon: 0.2"));
        assert!(e.contains("policy.epsilon"), "{e}");
        let e = error(&policy("kind: lottery"));
        assert!(e.contains("policy.kind") && e.contains("lottery"), "{e}");
        let e = error(&format!(
            "{AB}reward: {{true_positive: 2, false_positive: 0, false_negative: 0, true_negative: 1}}\n"
        ));
        assert!(e.contains("reward.true_positive: 2 is outside [0, 1]"), "{e}");
        let e = error(&format!("{AB}extra: 1\n"));
        assert!(e.contains("extra"), "{e}");
        let e = error(&AB.replace("{production: 3, candidate: 1}", "{production: 3}"));
        assert!(e.contains("no weight for variant `candidate`"), "{e}");
    }

    #[test]
    fn the_shipped_routing_file_checks_and_each_documented_policy_too() {
        let shipped = include_str!("../../../../config/routing.yaml");
        let routing = Routing::parse(shipped).expect("config/routing.yaml");
        assert_eq!(routing.policy, Policy::Plain);
        assert_eq!(routing.variants.len(), 2);
        // The commented examples, each put in place of `kind: plain`.
        for example in [
            "kind: ab\n  weights: {production: 90, candidate: 10}",
            "kind: canary\n  variant: candidate\n  percent: 5",
            "kind: shadow\n  variants: [candidate]\n  fraction: 0.1",
            "kind: bandit\n  algorithm: thompson",
        ] {
            let text = shipped.replace("policy:\n  kind: plain", &format!("policy:\n  {example}"));
            assert_ne!(text, shipped);
            Routing::parse(&text).unwrap_or_else(|e| panic!("{example}: {e:#}"));
        }
    }

    #[test]
    fn the_default_reward_credits_correct_decisions() {
        let r = RewardTable::default();
        assert_eq!(r.reward(true, true), 1.0);
        assert_eq!(r.reward(false, false), 1.0);
        assert_eq!(r.reward(true, false), 0.0);
        assert_eq!(r.reward(false, true), 0.0);
    }
}
