//! The histogram gradient-boosted trees.

use revspend_core::metrics::Curve;
use revspend_core::model::Classifier;
use revspend_core::params::{ClassWeight, GbmConfig};

use crate::synthetic::problem;

fn config() -> GbmConfig {
    GbmConfig {
        learning_rate: 0.1,
        max_iter: 200,
        max_leaves: 15,
        max_depth: None,
        min_samples_leaf: 20,
        l2: 1.0,
        max_bins: 255,
        validation_fraction: 0.1,
        patience: 10,
    }
}

fn pool(threads: usize) -> rayon::ThreadPool {
    rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .expect("pool")
}

#[test]
fn boosting_learns_a_simple_problem_and_stops_early() {
    let train = problem(40_000, 1);
    let test = problem(10_000, 2);
    let (model, stats) = pool(2)
        .install(|| train::gbm::fit(&train.x, &train.y, &train.groups, &config(), ClassWeight::None, 5));
    assert!(stats.rounds > 10 && stats.rounds < 200, "{stats:?}");
    let c = Classifier::Gbm(model);
    let p = c.predict_proba(&test.x, 4).expect("predict");
    let curve = Curve::new(&p, &test.y);
    // The Bayes-optimal ROC-AUC of this problem is about 0.84.
    assert!(curve.roc_auc() > 0.80, "ROC-AUC {}", curve.roc_auc());
    // Unweighted log loss keeps probabilities near the truth on average.
    let mean_p = p.iter().sum::<f64>() / p.len() as f64;
    let rate = test.y.iter().filter(|v| **v).count() as f64 / test.y.len() as f64;
    assert!((mean_p - rate).abs() < 0.02, "mean p {mean_p} vs rate {rate}");
}

#[test]
fn boosting_is_identical_whatever_the_thread_count() {
    // Larger than one histogram chunk, so the parallel path runs.
    let train = problem(50_000, 3);
    let fit = |threads| {
        pool(threads).install(|| {
            train::gbm::fit(
                &train.x,
                &train.y,
                &train.groups,
                &config(),
                ClassWeight::Balanced,
                9,
            )
            .0
        })
    };
    let one = fit(1);
    assert!(!one.trees.is_empty());
    assert!(one == fit(2), "1 and 2 threads differ");
    assert!(one == fit(3), "1 and 3 threads differ");
}

#[test]
fn balanced_weights_raise_the_minority_scores() {
    let train = problem(20_000, 4);
    let mut cfg = config();
    cfg.validation_fraction = 0.0;
    cfg.max_iter = 30;
    let mean = |w| {
        let (m, _) = train::gbm::fit(&train.x, &train.y, &train.groups, &cfg, w, 1);
        let p = Classifier::Gbm(m).predict_proba(&train.x, 4).expect("predict");
        p.iter().sum::<f64>() / p.len() as f64
    };
    let (none, balanced) = (mean(ClassWeight::None), mean(ClassWeight::Balanced));
    assert!(balanced > none + 0.1, "balanced {balanced} vs none {none}");
}
