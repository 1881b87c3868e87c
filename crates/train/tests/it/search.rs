//! Search: the candidate list, the successive halving and its choice are a
//! function of the data, the params and the seed.

use revspend_core::params::{Algorithm, GbmConfig, ModelSpec, Strategy, TrainParams};
use train::{halving, search};

use crate::fixture;
use crate::synthetic::{Problem, problem};

/// The fixture params' train section.
fn fixture_train() -> TrainParams {
    fixture::params().train
}

/// Quick spaces: few trees, small grids.
fn quick() -> TrainParams {
    let mut p = fixture_train();
    p.n_trees = 20;
    p.search.forest.n_trees = vec![8];
    p.search.gbm.max_iter = vec![40];
    p.cv.folds = 3;
    p
}

#[test]
fn random_search_is_seeded_and_grid_search_is_exhaustive() {
    let mut p = quick();
    p.search.gbm.strategy = Strategy::Random;
    p.search.gbm.draws = 3;
    let a = search::candidates(&p);
    assert_eq!(a, search::candidates(&p), "same seed, same candidates");
    let gbm = |c: &[ModelSpec]| c.iter().filter(|s| s.algorithm() == Algorithm::Gbm).count();
    assert_eq!(gbm(&a), 3);
    p.seed += 1;
    let b = search::candidates(&p);
    assert_eq!(gbm(&b), 3);

    p.search.gbm.strategy = Strategy::Grid;
    let s = &p.search.gbm;
    let size = s.learning_rate.len()
        * s.max_iter.len()
        * s.max_leaves.len()
        * s.max_depth.len()
        * s.min_samples_leaf.len()
        * s.l2.len()
        * s.max_bins.len();
    assert_eq!(gbm(&search::candidates(&p)), size);
}

#[test]
fn budgets_cap_the_spaces() {
    let mut p = quick();
    p.n_trees = 5;
    p.max_depth = 3;
    for spec in search::candidates(&p) {
        match spec {
            ModelSpec::Forest(f) => assert!(f.n_trees <= 5 && f.max_depth <= 3),
            ModelSpec::Gbm(g) => assert!(g.max_iter <= 5 && g.max_depth.is_some_and(|d| d <= 3)),
            ModelSpec::Tree { max_depth, .. } => assert!(max_depth <= 3),
            _ => {}
        }
    }
}

/// Runs the search on `threads` threads.
fn halving(specs: &[ModelSpec], data: &Problem, p: &TrainParams, threads: usize) -> halving::Outcome {
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .expect("pool");
    pool.install(|| {
        let bins = halving::SharedBins::new(&data.x, specs);
        halving::run(specs, &data.x, &data.y, &data.groups, &bins, p).expect("search")
    })
}

fn gbm(learning_rate: f64, max_iter: u32, max_leaves: u32) -> ModelSpec {
    ModelSpec::Gbm(GbmConfig {
        learning_rate,
        max_iter,
        max_leaves,
        max_depth: None,
        min_samples_leaf: 20,
        l2: 1.0,
        max_bins: 64,
        subsample: 1.0,
        validation_fraction: 0.1,
        patience: 10,
    })
}

/// Issue 13: on a problem whose answer is known, successive halving carries
/// the truly better configuration through every rung and chooses it; the
/// ones that cannot win stop at the first rung and say why.
#[test]
fn issue_13_successive_halving_promotes_the_truly_better_configuration() {
    let mut p = quick();
    p.halving.factor = 3;
    p.halving.min_rows = 1_000;
    p.halving.final_share = 1.0;
    p.halving.final_max_rows = None;
    // The log-odds need x0, x1 and x2: a boosted model of enough rounds
    // learns them; one round of a stump, the prior and boosting with a
    // vanishing learning rate cannot, however the folds fall.
    let good = gbm(0.2, 200, 15);
    let mut specs = vec![ModelSpec::Prior, gbm(0.2, 1, 2), gbm(1e-4, 3, 2)];
    for leaves in [2, 3] {
        for rounds in [2, 4] {
            specs.push(gbm(0.05, rounds, leaves));
        }
    }
    specs.push(good.clone());
    specs.push(gbm(0.01, 2, 4));
    assert_eq!(specs.len(), 9);
    let data = problem(27_000, 5);
    // Halving by rank alone first: the best third of each rung goes on.
    p.halving.drop_below_std = 1e9;
    let out = halving(&specs, &data, &p, 2);

    // 9 candidates, factor 3: rungs of 3,000, 9,000 and 27,000 rows (whole
    // customers of 20 rows), nested and growing by the factor.
    let rows: Vec<usize> = out.rungs.iter().map(|r| r.rows).collect();
    assert_eq!(out.rungs.len(), 3, "{:?}", out.rungs);
    assert!(rows.iter().all(|r| r % 20 == 0), "{rows:?}");
    assert!((2_900..=3_100).contains(&rows[0]), "{rows:?}");
    assert!((8_900..=9_100).contains(&rows[1]), "{rows:?}");
    assert_eq!(rows[2], 27_000);
    assert_eq!(out.rungs[0].candidates, 9);
    assert!(out.rungs[0].promoted <= 3);

    let chosen = out.chosen();
    assert_eq!(chosen.spec, good, "chose {:?}", chosen.spec);
    assert_eq!(chosen.rung, 2);
    assert_eq!(chosen.status, "chosen");
    let good_id = specs.iter().position(|s| *s == good).expect("in the list");
    for rung in 0..2 {
        let t = out
            .trials
            .iter()
            .find(|t| t.candidate == good_id && t.rung == rung)
            .expect("the good candidate at every rung");
        assert!(t.status.starts_with("promoted to rung"), "{}", t.status);
    }
    let prior: Vec<_> = out.trials.iter().filter(|t| t.candidate == 0).collect();
    assert_eq!(prior.len(), 1);
    assert_eq!(prior[0].status, "stopped: rank 9 of 9, not in the best 3");
    // Boosted trials record each fold's rounds.
    assert!(
        chosen
            .rounds
            .as_ref()
            .is_some_and(|r| r.len() == 3 && r.iter().all(|&n| n >= 1))
    );

    // With the default cut, the candidates that cannot win stop at the first
    // rung, saying so, and the one left goes straight to the last rung.
    p.halving.drop_below_std = 3.0;
    let cut = halving(&specs, &data, &p, 2);
    assert_eq!(cut.chosen().spec, good);
    let rungs: Vec<(usize, usize)> = cut.rungs.iter().map(|r| (r.rung, r.candidates)).collect();
    assert_eq!(rungs, vec![(0, 9), (2, 1)]);
    for t in cut.trials.iter().filter(|t| t.rung == 0 && t.spec != good) {
        assert!(t.status.contains("fold std"), "{}", t.status);
    }
    let first = cut
        .trials
        .iter()
        .find(|t| t.rung == 0 && t.spec == good)
        .expect("good at rung 0");
    assert_eq!(first.status, "promoted (alone) to rung 2");

    let csv = halving::to_csv(&out, p.cv.metric, p.cv.folds);
    assert_eq!(csv.lines().count(), out.trials.len() + 1);
    assert!(csv.starts_with(
        "rung,rows,customers,candidate,algorithm,metric,mean,std,fold_0,fold_1,fold_2,rounds,status,params"
    ));
    assert!(
        csv.lines()
            .any(|l| l.starts_with("2,27000,1350,") && l.contains("\"chosen\"")),
        "{csv}"
    );
}

/// Issue 13: the search is a function of the data, the params and the seed,
/// not of the thread count; another seed draws other customers.
#[test]
fn issue_13_the_search_is_deterministic_for_a_seed() {
    let mut p = quick();
    p.halving.min_rows = 1_000;
    p.halving.final_max_rows = Some(6_000);
    let data = problem(12_000, 11);
    let specs = search::candidates(&p);
    let a = halving(&specs, &data, &p, 1);
    let b = halving(&specs, &data, &p, 2);
    let c = halving(&specs, &data, &p, 3);
    // Everything but the wall times.
    let timeless = |o: &halving::Outcome| {
        let mut t = o.trials.clone();
        t.iter_mut().for_each(|t| t.fit_seconds = 0.0);
        t
    };
    assert_eq!(timeless(&a), timeless(&b));
    assert_eq!(timeless(&a), timeless(&c));
    assert_eq!(a.rungs, b.rungs);
    let csv = halving::to_csv(&a, p.cv.metric, p.cv.folds);
    assert_eq!(csv, halving::to_csv(&c, p.cv.metric, p.cv.folds));
    assert!(a.rungs.len() >= 2, "{:?}", a.rungs);
    // Whole customers of 20 rows from each stratum: 6,000 rows or just over.
    assert!(
        a.rungs.last().is_some_and(|r| (6_000..=6_040).contains(&r.rows)),
        "{:?}",
        a.rungs
    );
    // The prior baseline cannot win on a learnable problem.
    assert_ne!(a.chosen().algorithm, "prior");

    p.seed += 1;
    let d = halving(&specs, &data, &p, 2);
    assert_ne!(
        a.trials[0].fold_scores, d.trials[0].fold_scores,
        "another seed samples other customers"
    );
}
