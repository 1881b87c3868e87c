//! Artifact encode → decode is the identity for every classifier and
//! calibrator, and predictions survive the trip.

use proptest::prelude::*;
use revspend_core::artifact::{decode_model, encode_model};
use revspend_core::calibration::Calibrator;
use revspend_core::features::Feature;
use revspend_core::metrics::BinaryMetrics;
use revspend_core::model::{Classifier, FeatureMatrix, Gbm, GbmNode, GbmTree, ModelArtifact, Reliability};
use revspend_core::params::{Algorithm, ModelSpec};
use revspend_core::target::TargetRule;
use std::path::Path;

use crate::fixture;
use crate::synthetic::problem;

fn artifact(classifier: Classifier, calibrator: Calibrator, spec: ModelSpec) -> ModelArtifact {
    let (train_params, params_hash) = fixture::params().train.json_and_hash();
    ModelArtifact {
        model_version: "x-000000000000".into(),
        algorithm: spec.algorithm().name().into(),
        hyperparameters: spec.params_json().to_string(),
        features: vec![Feature::Valor, Feature::Idade, Feature::Month, Feature::Weekday],
        rule: TargetRule {
            threshold_pct: 20.0,
            vital_groups: vec!["SERVICO".into()],
        },
        classifier,
        calibrator,
        threshold: 0.3,
        threshold_source: "max F1 on the test split".into(),
        training_prior: 0.12,
        train_params,
        params_hash,
        data_hash: "b".repeat(64),
        test_metrics: BinaryMetrics::compute(&[0.1, 0.9], &[false, true], 0.5),
        reliability: Reliability {
            before: Vec::new(),
            after: Vec::new(),
            ece_before: 0.1,
            ece_after: 0.01,
        },
        written_by: "test".into(),
        key_fingerprint: "0".repeat(32),
    }
}

#[test]
fn every_fitted_classifier_round_trips_with_identical_predictions() {
    let mut params = fixture::params().train;
    params.search.forest.n_trees = vec![5];
    params.search.gbm.max_iter = vec![20];
    let data = problem(2_000, 5);
    let calibrators = [
        Calibrator::Identity,
        Calibrator::Platt { a: 0.7, b: -0.2 },
        Calibrator::Isotonic {
            x: vec![0.1, 0.4, 0.9],
            y: vec![0.05, 0.3, 0.8],
        },
    ];
    let algorithms = [
        Algorithm::Prior,
        Algorithm::Logistic,
        Algorithm::NaiveBayes,
        Algorithm::Tree,
        Algorithm::Forest,
        Algorithm::Gbm,
    ];
    for (i, algorithm) in algorithms.into_iter().enumerate() {
        let spec = train::default_spec(&params, algorithm);
        let classifier = train::fit::fit(&spec, data.data(), params.class_weight, 3).expect("fit");
        let model = artifact(classifier, calibrators[i % 3].clone(), spec);
        let bytes = encode_model(&model).expect("encode");
        let back = decode_model(Path::new("m.bin"), &bytes).expect("decode");
        assert_eq!(
            encode_model(&back).expect("re-encode"),
            bytes,
            "{}",
            algorithm.name()
        );
        let (p, q) = (
            model.predict_proba(&data.x).expect("predict"),
            back.predict_proba(&data.x).expect("predict"),
        );
        assert_eq!(p, q, "{}", algorithm.name());
        assert!(p.iter().all(|v| (0.0..=1.0).contains(v)), "{}", algorithm.name());
        assert_eq!(back.hyperparameters, model.hyperparameters);
        assert_eq!(back.train_params, model.train_params);
        assert_eq!(back.calibrator, model.calibrator);
    }
}

/// A valid tree: node `i` has children `2i + 1` and `2i + 2` when they
/// exist (an odd node count, so every split has both), else it is a leaf.
fn tree() -> impl Strategy<Value = GbmTree> {
    (0usize..6)
        .prop_flat_map(|half| {
            prop::collection::vec((0u32..4, -1e6f64..1e6, any::<u8>(), -5f64..5.0), 2 * half + 1)
        })
        .prop_map(|raw| {
            let n = raw.len();
            let nodes = raw
                .into_iter()
                .enumerate()
                .map(|(i, (feature, threshold, bin, value))| {
                    let split = 2 * i + 2 < n;
                    GbmNode {
                        feature,
                        threshold,
                        bin,
                        left: if split { (2 * i + 1) as u32 } else { 0 },
                        right: if split { (2 * i + 2) as u32 } else { 0 },
                        value: if split { 0.0 } else { value },
                        gain: if split { value.abs() } else { 0.0 },
                    }
                })
                .collect();
            GbmTree { nodes }
        })
}

fn gbm() -> impl Strategy<Value = Gbm> {
    (
        -3f64..3.0,
        prop::collection::vec(tree(), 0..5),
        prop::collection::vec(prop::collection::vec(-1e3f64..1e3, 0..6), 4),
    )
        .prop_map(|(base_score, trees, bin_edges)| Gbm {
            base_score,
            trees,
            bin_edges,
        })
}

fn calibrator() -> impl Strategy<Value = Calibrator> {
    prop_oneof![
        Just(Calibrator::Identity),
        (-5f64..5.0, -5f64..5.0).prop_map(|(a, b)| Calibrator::Platt { a, b }),
        prop::collection::vec((0f64..1.0, 0f64..1.0), 0..20).prop_map(|pts| {
            let (x, y) = pts.into_iter().unzip();
            Calibrator::Isotonic { x, y }
        }),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn boosted_models_and_calibrators_round_trip(model in gbm(), cal in calibrator()) {
        let a = artifact(Classifier::Gbm(model.clone()), cal.clone(), ModelSpec::Prior);
        let bytes = encode_model(&a).expect("encode");
        let back = decode_model(Path::new("m.bin"), &bytes).expect("decode");
        let Classifier::Gbm(m) = &back.classifier else {
            panic!("variant changed");
        };
        prop_assert_eq!(m, &model);
        prop_assert_eq!(&back.calibrator, &cal);
        let x = FeatureMatrix::new(1, 4, vec![0.5, -2.0, 100.0, 3.0]);
        let (p, q) = (a.predict_uncalibrated(&x), back.predict_uncalibrated(&x));
        prop_assert_eq!(p.expect("p"), q.expect("q"));
    }
}
