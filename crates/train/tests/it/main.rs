//! train as a real process on a small generated dataset.

use std::path::Path;
use std::process::{Command, Output};

use revspend_core::artifact;

fn train(dir: &Path, threads: &str, model: &str) -> Output {
    Command::new(env!("CARGO_BIN_EXE_train"))
        .current_dir(dir)
        .args(["--params", "params.yaml"])
        .args(["--train", "data/splits/train.parquet"])
        .args(["--test", "data/splits/test.parquet"])
        .args(["--feature-list", "data/features.json"])
        .args(["--model", model])
        .args(["--report", "reports/train.json"])
        .args(["--threads", threads])
        .output()
        .expect("run train")
}

#[test]
fn the_model_is_deterministic_whatever_the_thread_count() {
    let dir = tempfile::tempdir().expect("tempdir");
    build_features::testing::build(dir.path()).expect("fixture");
    let one = train(dir.path(), "1", "models/one.bin");
    assert!(one.status.success(), "{}", String::from_utf8_lossy(&one.stderr));
    let two = train(dir.path(), "2", "models/two.bin");
    assert!(two.status.success(), "{}", String::from_utf8_lossy(&two.stderr));
    let a = std::fs::read(dir.path().join("models/one.bin")).expect("model one");
    let b = std::fs::read(dir.path().join("models/two.bin")).expect("model two");
    assert!(a == b, "models differ between 1 and 2 threads");
}

#[test]
fn the_artifact_carries_schema_lineage_and_beats_the_prior() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (outputs, params) = build_features::testing::build(dir.path()).expect("fixture");
    let out = train(dir.path(), "2", "models/model.bin");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));

    let model = artifact::read_model(&dir.path().join("models/model.bin")).expect("model reads back");
    let list: artifact::FeatureList = artifact::read_json(&outputs.feature_list).expect("feature list");
    let names: Vec<&str> = model.features.iter().map(|f| f.name()).collect();
    assert_eq!(names, list.features);
    assert!(model.features.iter().all(|f| !f.is_label_input()));
    assert_eq!(model.train_params, params.train);
    assert_eq!(
        model.data_hash,
        artifact::file_sha256(&outputs.splits_dir.join("train.parquet")).expect("hash")
    );
    assert!(model.model_version.starts_with("forest-"));
    assert!(model.threshold > 0.0 && model.threshold < 1.0);

    let test =
        artifact::read_labelled(&outputs.splits_dir.join("test.parquet"), &model.features).expect("test");
    let scores = model.predict_proba(&test.x).expect("predict");
    assert!(scores.iter().all(|s| (0.0..=1.0).contains(s)));
    let prevalence = test.y.iter().filter(|y| **y).count() as f64 / test.y.len() as f64;
    assert!(
        model.test_metrics.pr_auc > prevalence + 0.2,
        "PR-AUC {} does not beat the prior {prevalence}",
        model.test_metrics.pr_auc
    );
}

#[test]
fn bad_params_are_refused_naming_the_field() {
    let dir = tempfile::tempdir().expect("tempdir");
    build_features::testing::build(dir.path()).expect("fixture");
    let params = std::fs::read_to_string(dir.path().join("params.yaml")).expect("params");
    let params = params.replace("feature_fraction: 0.7", "feature_fraction: 1.5");
    std::fs::write(dir.path().join("params.yaml"), params).expect("write params");
    let out = train(dir.path(), "1", "models/model.bin");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("train.feature_fraction"));
    assert!(!dir.path().join("models/model.bin").exists());
}
