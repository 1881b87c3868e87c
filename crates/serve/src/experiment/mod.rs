//! Online experiments: the routing file's variants and policy (plain, A/B,
//! canary, shadow, bandit), sticky assignment, the bandits, shadow scoring
//! off the request path and the feedback that rewards them.
//!
//! A [`Deployment`] is what a request loads once and keeps to its end: the
//! routing in effect and a validated model per variant. A reload (a moved
//! alias, a new snapshot, an edited routing file) builds a new one and
//! swaps it in whole, so no request sees half a change.

use std::cell::RefCell;
use std::hash::{BuildHasher, Hasher};
use std::sync::Arc;

use rand::rngs::SmallRng;
use rand::{RngExt, SeedableRng};
use revspend_core::contract::ValueRanges;

use crate::Serving;

pub mod assign;
pub mod bandit;
pub mod feedback;
pub mod routing;
pub mod shadow;

use bandit::Bandit;
use feedback::{Context, PendingIndex};
use routing::{Policy, Routing};

/// The routing in effect and a model per variant.
#[derive(Debug)]
pub struct Deployment {
    pub routing: Arc<Routing>,
    /// One per routing variant, in order; the first is the primary.
    pub variants: Vec<Arc<Serving>>,
    /// The variant names, shared with the prediction log's records.
    pub names: Vec<Arc<str>>,
    pub experiment: Arc<str>,
    /// The bandit of a bandit policy (kept across reloads of the same
    /// experiment and variants).
    pub bandit: Option<Arc<Bandit>>,
    /// Each variant's context in the feedback index.
    pub contexts: Vec<u32>,
}

thread_local! {
    /// Shadow sampling's random numbers: seeded from the OS's randomness
    /// (std's hasher keys), one generator per worker thread.
    static RNG: RefCell<SmallRng> = RefCell::new(SmallRng::seed_from_u64(
        std::collections::hash_map::RandomState::new().build_hasher().finish(),
    ));
}

impl Deployment {
    /// A deployment of `variants` (one per routing variant, in order),
    /// its variants' contexts interned in the feedback index.
    pub fn new(
        routing: Arc<Routing>,
        variants: Vec<Arc<Serving>>,
        bandit: Option<Arc<Bandit>>,
        pending: &PendingIndex,
    ) -> Deployment {
        let names: Vec<Arc<str>> = routing
            .variants
            .iter()
            .map(|v| Arc::from(v.name.as_str()))
            .collect();
        let experiment: Arc<str> = Arc::from(routing.experiment.as_str());
        let contexts = names
            .iter()
            .zip(&variants)
            .map(|(name, serving)| {
                pending.context(Context {
                    experiment: experiment.clone(),
                    variant: name.clone(),
                    model_version: serving.version.clone(),
                })
            })
            .collect();
        Deployment {
            routing,
            variants,
            names,
            experiment,
            bandit,
            contexts,
        }
    }

    /// The primary variant's model (the control; what `/version` shows).
    pub fn primary(&self) -> &Arc<Serving> {
        &self.variants[0]
    }

    /// The value ranges requests are checked against (the snapshot's).
    pub fn ranges(&self) -> &ValueRanges {
        self.primary().ranges()
    }

    /// The variant that answers this customer's request.
    pub fn route(&self, pseudonym: &str) -> usize {
        match &self.routing.policy {
            Policy::Plain | Policy::Shadow { .. } => 0,
            Policy::Ab { shares } => assign::by_shares(shares, assign::position(&self.experiment, pseudonym)),
            Policy::Canary { variant, percent } => {
                assign::canary(*variant, *percent, assign::position(&self.experiment, pseudonym))
            }
            Policy::Bandit { .. } => self.bandit.as_ref().map_or(0, |b| b.choose()),
        }
    }

    /// The shadow variants, when the policy has some.
    pub fn shadows(&self) -> &[usize] {
        match &self.routing.policy {
            Policy::Shadow { variants, .. } => variants,
            _ => &[],
        }
    }

    /// Whether this request is also scored by the shadows.
    pub fn sample_shadow(&self) -> bool {
        match &self.routing.policy {
            Policy::Shadow { fraction, .. } => {
                *fraction >= 1.0 || RNG.with(|rng| rng.borrow_mut().random::<f64>() < *fraction)
            }
            _ => false,
        }
    }
}
