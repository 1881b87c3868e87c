//! Issue 14: the learning curve of the model's configuration on the train
//! split it was trained on.

use std::path::Path;
use std::process::{Command, Output};

use crate::fixture;

fn evaluate(dir: &Path, extra: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_evaluate"))
        .current_dir(dir)
        .args(["--params", "params.yaml", "--registry", "none"])
        .args(extra)
        .output()
        .expect("run evaluate")
}

fn json(path: &Path) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display())))
        .expect("json")
}

fn number(v: &serde_json::Value, key: &str) -> f64 {
    v[key].as_f64().unwrap_or_else(|| panic!("{key} missing in {v}"))
}

/// The fields of a curve row that must not change between runs.
const SCORES: [&str; 9] = [
    "share",
    "customers",
    "rows",
    "positives",
    "fit_rows",
    "train_mean",
    "train_std",
    "validation_mean",
    "validation_std",
];

#[test]
fn issue_14_the_learning_curve_has_a_row_per_share_growing_with_the_share() {
    let dir = tempfile::tempdir().expect("tempdir");
    fixture::write(dir.path());
    let out = evaluate(dir.path(), &[]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));

    let plots = dir.path().join("reports/plots");
    let png = std::fs::read(plots.join("learning_curve.png")).expect("learning_curve.png");
    assert!(png.starts_with(b"\x89PNG\r\n\x1a\n"));
    let data = json(&plots.join("learning_curve.json"));
    let rows = data["learning_curve"].as_array().expect("rows");
    let shares: Vec<f64> = rows.iter().map(|r| number(r, "share")).collect();
    assert_eq!(shares, [0.1, 0.25, 0.5, 0.75, 1.0]);
    for pair in rows.windows(2) {
        for key in ["customers", "rows", "positives", "fit_rows"] {
            assert!(
                number(&pair[0], key) < number(&pair[1], key),
                "{key} does not grow: {pair:?}"
            );
        }
    }
    let last = rows.last().expect("a row");
    let split_rows = (fixture::TRAIN_CUSTOMERS * 10) as f64;
    assert_eq!(number(last, "rows"), split_rows);
    assert_eq!(number(last, "customers"), fixture::TRAIN_CUSTOMERS as f64);
    // Three folds: each fit trains on about two thirds of the sample.
    assert!(
        (number(last, "fit_rows") / split_rows - 2.0 / 3.0).abs() < 0.02,
        "{last}"
    );
    let prevalence = number(last, "positives") / split_rows;
    for r in rows {
        // The labels follow a logistic law the model's family can learn:
        // far above the prevalence (the prior's PR-AUC) on held-out folds.
        let (train, validation) = (number(r, "train_mean"), number(r, "validation_mean"));
        assert!(validation > prevalence + 0.2 && validation <= 1.0, "{r}");
        assert!(train > prevalence + 0.2 && train <= 1.0, "{r}");
        assert!(number(r, "validation_std") >= 0.0 && number(r, "fit_seconds_mean") >= 0.0);
    }

    // The report carries the same table, without the (wall-clock) fit times.
    let metrics = json(&dir.path().join("reports/metrics.json"));
    let curve = &metrics["learning_curve"];
    assert_eq!(curve["metric"], "pr_auc");
    assert_eq!(curve["folds"], 3);
    assert_eq!(number(curve, "train_rows"), split_rows);
    let points = curve["points"].as_array().expect("points");
    assert_eq!(points.len(), rows.len());
    for (p, r) in points.iter().zip(rows) {
        assert!(p.get("fit_seconds_mean").is_none(), "{p}");
        for key in SCORES {
            assert_eq!(p[key], r[key], "{key}");
        }
    }

    // Deterministic: the same scores again.
    let out = evaluate(dir.path(), &[]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let again = json(&plots.join("learning_curve.json"));
    for (a, b) in rows.iter().zip(again["learning_curve"].as_array().expect("rows")) {
        for key in SCORES {
            assert_eq!(a[key], b[key], "{key} changed between runs");
        }
    }
}

#[test]
fn issue_14_a_train_split_the_model_was_not_trained_on_is_refused_naming_the_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    fixture::write(dir.path());
    revspend_table::write_table(
        &dir.path().join("data/other-train.parquet"),
        &mut fixture::train(fixture::TRAIN_CUSTOMERS - 20),
    )
    .expect("another train split");
    let out = evaluate(dir.path(), &["--train", "data/other-train.parquet"]);
    assert!(!out.status.success(), "a foreign train split was refitted on");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("data/other-train.parquet")
            && err.contains("models/model.bin")
            && err.contains("SHA-256"),
        "{err}"
    );
    assert!(!dir.path().join("reports/metrics.json").exists());
}

#[test]
fn issue_14_no_shares_no_learning_curve() {
    let dir = tempfile::tempdir().expect("tempdir");
    fixture::write(dir.path());
    let params = std::fs::read_to_string(dir.path().join("params.yaml")).expect("params");
    let edited = params.replace("shares: [0.1, 0.25, 0.5, 0.75, 1.0]", "shares: []");
    assert_ne!(edited, params, "the fixture params list the shares");
    std::fs::write(dir.path().join("params.yaml"), edited).expect("params");
    let out = evaluate(dir.path(), &[]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let metrics = json(&dir.path().join("reports/metrics.json"));
    assert!(
        metrics["learning_curve"].is_null(),
        "{}",
        metrics["learning_curve"]
    );
    assert!(!dir.path().join("reports/plots/learning_curve.json").exists());
    assert!(!dir.path().join("reports/plots/learning_curve.png").exists());
}
