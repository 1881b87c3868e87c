//! Online experiments: the routing file's variants and policy (plain, A/B,
//! canary, shadow, bandit), sticky assignment, the bandits, shadow scoring
//! off the request path and the feedback that rewards them.

pub mod assign;
pub mod bandit;
pub mod routing;
