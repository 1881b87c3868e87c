//! `generate.scenarios` turned into what the simulation needs: per
//! customer, the limit shocks that hit them; for everyone, the merchant-group
//! weights by day; the cohorts of new customers. What each scenario does is
//! documented in the crate doc.
//!
//! Every scenario draws from random streams of its own (same seed, another
//! ChaCha stream), and a customer the scenarios change switches to a stream
//! of their own on the first day they apply: the plain run's stream is
//! consumed exactly as without scenarios, so every row dated before a
//! scenario's `from` is the row the plain run writes.

use anyhow::{Result, bail};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use revspend_core::contract::{decode_cp1252, normalise_group};
use revspend_core::params::{GenerateParams, MAX_SCENARIOS, Scenario};

use crate::GROUPS;

/// A weight per merchant group, in the order of [`GROUPS`].
pub(crate) type Weights = [f64; GROUPS.len()];

/// The plain mix.
pub(crate) const BASE_WEIGHTS: Weights = {
    let mut w = [0.0; GROUPS.len()];
    let mut i = 0;
    while i < GROUPS.len() {
        w[i] = GROUPS[i].weight;
        i += 1;
    }
    w
};

/// ChaCha streams of the run's seed; the plain run uses stream 0. Which
/// customers a limit shock hits: `SELECT + scenario index` (params allow
/// [`MAX_SCENARIOS`], far below `NEW`).
const STREAM_SELECT: u64 = 1;
/// A cohort of new customers: `NEW + scenario index`.
const STREAM_NEW: u64 = 1 << 16;
// The streams of two scenarios never meet.
const _: () = assert!(STREAM_SELECT + MAX_SCENARIOS as u64 <= STREAM_NEW);
/// A changed customer's draws from the first changed day: `AFTER + customer
/// index`. Independent of which scenarios are active, so a customer hit by a
/// shock draws the same stream with or without a new mix.
const STREAM_AFTER: u64 = 1 << 32;

fn stream(seed: u64, stream: u64) -> ChaCha8Rng {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    rng.set_stream(stream);
    rng
}

/// The stream a changed customer draws from once the scenarios apply.
pub(crate) fn after_stream(seed: u64, customer: usize) -> ChaCha8Rng {
    stream(seed, STREAM_AFTER + customer as u64)
}

/// The stream a cohort of new customers draws everything from.
pub(crate) fn cohort_stream(seed: u64, cohort: &Cohort) -> ChaCha8Rng {
    stream(seed, STREAM_NEW + cohort.scenario as u64)
}

/// A cut of a customer's available limit from `day` on.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Shock {
    pub day: u32,
    pub cut: f64,
}

/// New customers who start buying on `first_day`.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Cohort {
    /// Index in `generate.scenarios` (names the cohort's stream).
    pub scenario: usize,
    pub first_day: u32,
    pub count: u64,
    /// Purchases of the whole cohort: the plain customers' rate per
    /// customer and day, over the days left.
    pub rows: u64,
    pub min_age: u16,
    pub max_age: u16,
}

/// How one customer's life differs from the plain run.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Life<'a> {
    /// First day they may buy: 0, or a new customer's first day.
    pub first_day: u32,
    /// A new account starts with its whole limit available; an old one with
    /// the balance its payer type leaves.
    pub new_account: bool,
    /// Cuts of their limit, in day order.
    pub shocks: &'a [Shock],
    /// The merchant mix from each day on, in day order (the last one whose
    /// day has come applies).
    pub mixes: &'a [(u32, Weights)],
}

impl Life<'_> {
    /// The plain generator's customer.
    pub(crate) const PLAIN: Life<'static> = Life {
        first_day: 0,
        new_account: false,
        shocks: &[],
        mixes: &[],
    };

    /// The first day this life differs from the plain one, if any.
    pub(crate) fn changes_from(&self) -> Option<u32> {
        let shock = self.shocks.first().map(|s| s.day);
        let mix = self.mixes.first().map(|m| m.0);
        match (shock, mix) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// The merchant mix on `day`.
    pub(crate) fn weights(&self, day: u32) -> &Weights {
        self.mixes
            .iter()
            .rev()
            .find(|(from, _)| *from <= day)
            .map_or(&BASE_WEIGHTS, |(_, w)| w)
    }
}

/// The random streams of one customer's simulation: the run's (or their
/// cohort's) stream, and from `day` on, if the scenarios change them, a
/// stream of their own.
pub(crate) struct Draws<'a> {
    main: &'a mut ChaCha8Rng,
    after: Option<(u32, ChaCha8Rng)>,
}

impl<'a> Draws<'a> {
    pub(crate) fn plain(main: &'a mut ChaCha8Rng) -> Draws<'a> {
        Draws { main, after: None }
    }

    pub(crate) fn switching(main: &'a mut ChaCha8Rng, day: u32, after: ChaCha8Rng) -> Draws<'a> {
        Draws {
            main,
            after: Some((day, after)),
        }
    }

    /// The stream of what is drawn before the first day (purchase days,
    /// opening balance): always the main one.
    pub(crate) fn main(&mut self) -> &mut ChaCha8Rng {
        self.main
    }

    /// The stream of a draw made on `day`.
    pub(crate) fn at(&mut self, day: u32) -> &mut ChaCha8Rng {
        match &mut self.after {
            Some((from, rng)) if day >= *from => rng,
            _ => self.main,
        }
    }
}

/// The scenarios of a run, resolved to days, customers and weights.
#[derive(Debug, Default)]
pub(crate) struct Plan {
    /// Per plain customer (empty when no limit shock is active).
    shocks: Vec<Vec<Shock>>,
    mixes: Vec<(u32, Weights)>,
    cohorts: Vec<Cohort>,
}

impl Plan {
    pub(crate) fn new(params: &GenerateParams) -> Result<Plan> {
        let mut plan = Plan::default();
        let customers = usize::try_from(params.customers)?;
        // In day order (ties in list order), so each customer's shocks and
        // the mixes are sorted, and a later mix builds on an earlier one.
        let mut order: Vec<usize> = (0..params.scenarios.len()).collect();
        order.sort_by_key(|&k| params.scenarios[k].from());
        let mut weights = BASE_WEIGHTS;
        for k in order {
            let scenario = &params.scenarios[k];
            let day = params.day_of(scenario.from());
            match scenario {
                Scenario::LimitShock(s) => {
                    if plan.shocks.is_empty() {
                        plan.shocks = vec![Vec::new(); customers];
                    }
                    let amount = (s.share * customers as f64).round() as usize;
                    let mut rng = stream(params.seed, STREAM_SELECT + k as u64);
                    for i in rand::seq::index::sample(&mut rng, customers, amount.min(customers)) {
                        plan.shocks[i].push(Shock { day, cut: s.cut });
                    }
                }
                Scenario::MerchantMix(m) => {
                    for (w, g) in weights.iter_mut().zip(&GROUPS) {
                        if !g.vital {
                            *w *= m.factor;
                        }
                    }
                    for (name, &w) in &m.weights {
                        weights[group_index(name)?] = w;
                    }
                    plan.mixes.push((day, weights));
                }
                Scenario::NewCustomers(n) => {
                    let per_customer_day =
                        params.rows as f64 / (params.customers as f64 * f64::from(params.days));
                    let rows =
                        (n.count as f64 * per_customer_day * f64::from(params.days - day)).round() as u64;
                    plan.cohorts.push(Cohort {
                        scenario: k,
                        first_day: day,
                        count: n.count,
                        rows: rows.max(n.count),
                        min_age: n.min_age,
                        max_age: n.max_age,
                    });
                }
            }
        }
        // Cohorts in list order, so their customers' indices (and ids) do
        // not depend on the dates.
        plan.cohorts.sort_by_key(|c| c.scenario);
        Ok(plan)
    }

    /// A plain customer's life under the scenarios.
    pub(crate) fn life(&self, customer: usize) -> Life<'_> {
        Life {
            first_day: 0,
            new_account: false,
            shocks: self.shocks.get(customer).map_or(&[], Vec::as_slice),
            mixes: &self.mixes,
        }
    }

    /// A new customer's life: a new account, buying from the cohort's day
    /// in the mix of the day.
    pub(crate) fn new_life(&self, cohort: &Cohort) -> Life<'_> {
        Life {
            first_day: cohort.first_day,
            new_account: true,
            shocks: &[],
            mixes: &self.mixes,
        }
    }

    pub(crate) fn cohorts(&self) -> &[Cohort] {
        &self.cohorts
    }
}

/// The position in [`GROUPS`] of a clean group name (as params checks them).
fn group_index(clean: &str) -> Result<usize> {
    match GROUPS
        .iter()
        .position(|g| normalise_group(&decode_cp1252(g.label)) == clean)
    {
        Some(i) => Ok(i),
        None => bail!("the generator has no merchant group {clean}"),
    }
}

#[cfg(test)]
mod tests {
    use revspend_core::contract::KNOWN_GROUPS;
    use revspend_core::params::Check;

    use super::*;

    fn params(scenarios: &str) -> GenerateParams {
        let text = format!(
            "seed: 5\ncustomers: 1000\nrows: 20000\nstart_date: \"2020-01-01\"\ndays: 210\nfiles: 7\nscenarios:\n{scenarios}"
        );
        let p: GenerateParams = serde_norway::from_str(&text).expect("parse");
        (*p.check().expect("valid")).clone()
    }

    #[test]
    fn the_generator_weighs_every_group_of_the_contract() {
        for g in KNOWN_GROUPS {
            group_index(g).expect(g);
        }
    }

    #[test]
    fn a_shock_hits_the_share_asked_for_from_its_day() {
        let plan = Plan::new(&params(
            "  - {kind: limit_shock, from: \"2020-06-29\", share: 0.25, cut: 0.5}\n",
        ))
        .expect("plan");
        let hit: Vec<&Vec<Shock>> = plan.shocks.iter().filter(|s| !s.is_empty()).collect();
        assert_eq!(hit.len(), 250);
        assert!(hit.iter().all(|s| s.as_slice() == [Shock { day: 180, cut: 0.5 }]));
        assert_eq!(plan.life(0).mixes.len(), 0);
    }

    #[test]
    fn mixes_build_on_each_other_in_day_order() {
        let plan = Plan::new(&params(
            "  - {kind: merchant_mix, from: \"2020-06-01\", weights: {RESTAURANTE: 30}}\n  - {kind: merchant_mix, from: \"2020-05-01\", factor: 2}\n",
        ))
        .expect("plan");
        let life = plan.life(3);
        let restaurant = group_index("RESTAURANTE").expect("group");
        let clothes = group_index("VESTUARIO").expect("group");
        let food = group_index("SUPERMERCADOS").expect("group");
        assert_eq!(life.changes_from(), Some(121));
        assert_eq!(life.weights(120), &BASE_WEIGHTS);
        assert_eq!(life.weights(121)[restaurant], 20.0);
        assert_eq!(life.weights(121)[clothes], 16.0);
        assert_eq!(life.weights(152)[restaurant], 30.0);
        assert_eq!(life.weights(152)[clothes], 16.0);
        assert_eq!(life.weights(209)[food], 22.0, "vital groups keep their weight");
    }

    #[test]
    fn a_cohort_buys_at_the_plain_rate_over_the_days_left() {
        let plan = Plan::new(&params(
            "  - {kind: new_customers, from: \"2020-06-29\", count: 100}\n",
        ))
        .expect("plan");
        // 20 rows per customer over 210 days; 100 customers over 30 days.
        assert_eq!(plan.cohorts()[0].rows, 286);
        assert_eq!(plan.cohorts()[0].first_day, 180);
        assert_eq!(plan.life(0).changes_from(), None, "plain customers are untouched");
    }
}
