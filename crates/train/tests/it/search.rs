//! Search: the candidate list and the trials are a function of the seed.

use revspend_core::params::{Algorithm, ModelSpec, Strategy, TrainParams};
use train::search;

use crate::fixture;
use crate::synthetic::problem;

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

#[test]
fn the_same_seed_gives_the_same_trials_and_choice() {
    let p = quick();
    let data = problem(3_000, 11);
    let folds = train::cv::grouped_stratified_folds(&data.groups, &data.y, p.cv.folds, p.seed);
    let specs = search::candidates(&p);
    let run = || {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(2)
            .build()
            .expect("pool");
        pool.install(|| search::run(&specs, data.data(), &folds, p.cv.folds, &p).expect("search"))
    };
    let (a, b) = (run(), run());
    assert_eq!(a.len(), specs.len());
    for (x, y) in a.iter().zip(&b) {
        assert_eq!(
            (x.algorithm, &x.spec, &x.fold_scores),
            (y.algorithm, &y.spec, &y.fold_scores)
        );
    }
    let best = search::best(&a, p.cv.metric).expect("a best trial");
    assert_eq!(Some(best), search::best(&b, p.cv.metric));
    // The prior baseline cannot win on a learnable problem.
    assert_ne!(a[best].algorithm, "prior");
    let prior = a.iter().find(|t| t.algorithm == "prior").expect("prior trial");
    assert!(a[best].mean > prior.mean + 0.1);
    let csv = search::to_csv(&a, p.cv.metric);
    assert_eq!(csv.lines().count(), a.len() + 1);
    assert!(csv.starts_with("trial,algorithm,metric,mean,std,fold_0,fold_1,fold_2,params"));
}
