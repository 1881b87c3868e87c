//! evaluate as a real process on the fixture model and holdout.

use std::path::Path;
use std::process::{Command, Output};

use revspend_core::artifact;

use crate::fixture;

fn evaluate(dir: &Path, model: &str, holdout: &str) -> Output {
    Command::new(env!("CARGO_BIN_EXE_evaluate"))
        .current_dir(dir)
        .args(["--params", "params.yaml"])
        .args(["--model", model])
        .args(["--holdout", holdout])
        .args(["--metrics", "reports/metrics.json"])
        .args(["--plots-dir", "reports/plots"])
        .output()
        .expect("run evaluate")
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn metrics_plots_and_plot_data_are_written() {
    let dir = tempfile::tempdir().expect("tempdir");
    fixture::write(dir.path());
    let out = evaluate(dir.path(), "models/model.bin", "data/splits/holdout.parquet");
    assert!(out.status.success(), "{}", stderr(&out));

    let metrics: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("reports/metrics.json")).expect("metrics"))
            .expect("json");
    let model_pr = metrics["model"]["pr_auc"].as_f64().expect("pr_auc");
    let prior_pr = metrics["baseline_prior"]["pr_auc"]
        .as_f64()
        .expect("prior pr_auc");
    assert!(model_pr > prior_pr, "model {model_pr} vs prior {prior_pr}");
    assert_eq!(metrics["baseline_prior"]["roc_auc"].as_f64(), Some(0.5));
    let prevalence = metrics["prevalence"].as_f64().expect("prevalence");
    assert!((prior_pr - prevalence).abs() < 1e-12);
    for key in [
        "roc_auc",
        "brier",
        "ece",
        "log_loss",
        "precision",
        "recall",
        "f1",
        "threshold",
    ] {
        assert!(metrics["model"][key].is_number(), "{key} missing");
    }

    let plots = dir.path().join("reports/plots");
    assert!(metrics["model_uncalibrated"]["ece"].is_number());
    let reliability: serde_json::Value = serde_json::from_slice(
        &std::fs::read(dir.path().join("reports/plots/reliability.json")).expect("reliability.json"),
    )
    .expect("json");
    let points = reliability["reliability"].as_array().expect("points");
    assert!(!points.is_empty());
    assert!(
        points
            .iter()
            .all(|p| p["mean_predicted"].is_number() && p["observed_rate"].is_number())
    );
    for png in [
        "roc.png",
        "pr.png",
        "gain.png",
        "threshold.png",
        "confusion.png",
        "reliability.png",
        "importance.png",
    ] {
        let bytes = std::fs::read(plots.join(png)).expect(png);
        assert!(bytes.starts_with(b"\x89PNG\r\n\x1a\n"), "{png} is not a PNG");
    }
    let roc: serde_json::Value =
        serde_json::from_slice(&std::fs::read(plots.join("roc.json")).expect("roc.json")).expect("json");
    let points = roc["roc"].as_array().expect("points");
    assert_eq!(points[0]["fpr"], 0.0);
    assert_eq!(points[points.len() - 1]["tpr"], 1.0);
    // Issue 14: the importance table, in the report and for `dvc plots`
    // (its list first); a logistic model has no gain importance.
    let importance: serde_json::Value =
        serde_json::from_slice(&std::fs::read(plots.join("importance.json")).expect("importance.json"))
            .expect("json");
    assert_eq!(importance, metrics["importance"]);
    assert_eq!(importance["shuffle"], "rows");
    let rows = importance["features"].as_array().expect("rows");
    assert_eq!(rows.len(), fixture::model().features.len());
    for row in rows {
        assert!(
            row["feature"].is_string() && row["permutation_mean"].is_number(),
            "{row}"
        );
        assert!(row["gain"].is_null() && row["gain_share"].is_null(), "{row}");
    }
    let confusion = std::fs::read_to_string(plots.join("confusion.csv")).expect("confusion.csv");
    assert_eq!(
        confusion.lines().count() as u64 - 1,
        metrics["rows"].as_u64().expect("rows")
    );

    // Same inputs, same bytes.
    let first = std::fs::read(dir.path().join("reports/metrics.json")).expect("metrics");
    let again = evaluate(dir.path(), "models/model.bin", "data/splits/holdout.parquet");
    assert!(again.status.success());
    assert_eq!(
        first,
        std::fs::read(dir.path().join("reports/metrics.json")).expect("metrics")
    );
}

#[test]
fn a_corrupted_or_foreign_model_is_refused_naming_the_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    fixture::write(dir.path());
    let mut bytes = std::fs::read(dir.path().join("models/model.bin")).expect("model");
    let last = bytes.len() - 1;
    bytes[last] ^= 0xff;
    std::fs::write(dir.path().join("models/corrupt.bin"), &bytes).expect("write");
    let out = evaluate(dir.path(), "models/corrupt.bin", "data/splits/holdout.parquet");
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("models/corrupt.bin") && stderr(&out).contains("checksum"),
        "{}",
        stderr(&out)
    );

    let mut future = std::fs::read(dir.path().join("models/model.bin")).expect("model");
    future[8..12].copy_from_slice(&99u32.to_le_bytes());
    std::fs::write(dir.path().join("models/future.bin"), &future).expect("write");
    let out = evaluate(dir.path(), "models/future.bin", "data/splits/holdout.parquet");
    assert!(!out.status.success());
    assert!(stderr(&out).contains("format version 99"), "{}", stderr(&out));
}

#[test]
fn a_holdout_without_a_model_feature_is_refused_naming_the_column() {
    let dir = tempfile::tempdir().expect("tempdir");
    fixture::write(dir.path());
    let holdout = dir.path().join("data/splits/holdout.parquet");
    let mut df = revspend_table::read_table(&holdout, &[]).expect("holdout");
    let _ = df.drop_in_place("prev_utilisation").expect("column present");
    revspend_table::write_table(&dir.path().join("data/short.parquet"), &mut df).expect("write");
    let out = evaluate(dir.path(), "models/model.bin", "data/short.parquet");
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("short.parquet") && stderr(&out).contains("`prev_utilisation`"),
        "{}",
        stderr(&out)
    );
}

/// Issue 12: a holdout of another build-features run than the feature
/// list's, or a model trained on another run's train split, is refused.
#[test]
fn a_holdout_or_a_model_of_another_run_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    fixture::write(dir.path());
    let holdout = dir.path().join("data/splits/holdout.parquet");
    revspend_table::write_table(&holdout, &mut fixture::holdout(120)).expect("another run's holdout");
    let out = evaluate(dir.path(), "models/model.bin", "data/splits/holdout.parquet");
    assert!(!out.status.success(), "a holdout of another run was scored");
    let err = stderr(&out);
    assert!(
        err.contains("holdout.parquet") && err.contains("two runs") && err.contains("rerun build-features"),
        "{err}"
    );
    assert!(!dir.path().join("reports/metrics.json").exists());

    fixture::write(dir.path());
    let mut model = fixture::model();
    model.data_hash = "c".repeat(64);
    artifact::write_model(&dir.path().join("models/other.bin"), &model).expect("model");
    let out = evaluate(dir.path(), "models/other.bin", "data/splits/holdout.parquet");
    assert!(!out.status.success(), "a model of another run was scored");
    let err = stderr(&out);
    assert!(
        err.contains("models/other.bin") && err.contains("rerun train"),
        "{err}"
    );
}

/// Issue 12: the `.tmp-` files an evaluate run killed mid-write left in
/// reports/ and reports/plots/ are removed by the next run; other files stay.
#[test]
fn temporary_files_of_a_killed_run_are_removed_by_the_next_run() {
    let dir = tempfile::tempdir().expect("tempdir");
    fixture::write(dir.path());
    let planted = ["reports/.tmp-AbC123", "reports/plots/.tmp-XyZ789"];
    for p in planted.iter().chain(&["reports/plots/keep.txt"]) {
        let path = dir.path().join(p);
        std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
        std::fs::write(&path, b"half a file").expect("plant");
    }
    let out = evaluate(dir.path(), "models/model.bin", "data/splits/holdout.parquet");
    assert!(out.status.success(), "{}", stderr(&out));
    for p in planted {
        assert!(!dir.path().join(p).exists(), "{p} survived the run");
    }
    assert!(dir.path().join("reports/plots/keep.txt").exists());
}

/// A variant of the fixture model: its own version name and coefficients.
fn variant(name: &str, coefficients: [f64; 3]) -> revspend_core::model::ModelArtifact {
    let mut m = fixture::model();
    m.model_version = name.into();
    m.classifier = revspend_core::model::Classifier::Logistic(revspend_core::model::Logistic {
        mean: vec![0.0; 3],
        scale: vec![1.0; 3],
        coefficients: coefficients.to_vec(),
        intercept: -coefficients[0] * 0.6 - 1.5,
    });
    m
}

/// Registers `model` (the first becomes production, later ones candidate)
/// and makes it the stage's `models/model.bin`.
fn register(dir: &Path, model: &revspend_core::model::ModelArtifact) {
    let bytes = artifact::encode_model(model).expect("encode");
    revspend_core::registry::Registry::new(dir.join("models/registry"))
        .register(
            &bytes,
            revspend_core::registry::NewVersion {
                model_version: model.model_version.clone(),
                algorithm: model.algorithm.clone(),
                hyperparameters: serde_json::json!({}),
                calibration: model.calibrator.name().into(),
                threshold: model.threshold,
                params_hash: model.params_hash.clone(),
                data_hash: model.data_hash.clone(),
                git_commit: None,
                test_metrics: model.test_metrics.clone(),
            },
            "tester",
        )
        .expect("register");
    artifact::write_atomic(&dir.join("models/model.bin"), &bytes).expect("model.bin");
}

fn promotion(dir: &Path) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(dir.join("reports/promotion.json")).expect("promotion.json"))
        .expect("json")
}

/// Issue 14: with `promotion: auto`, a crippled candidate is rejected by
/// the gate, naming the failed checks, and production stays; a better one
/// is promoted, and the alias log says why. Both runs succeed. The
/// champion is scored on the same holdout rows.
#[test]
fn issue_14_the_gate_rejects_a_worse_candidate_and_promotes_a_better_one() {
    let dir = tempfile::tempdir().expect("tempdir");
    fixture::write(dir.path());
    let params = std::fs::read_to_string(dir.path().join("params.yaml")).expect("params");
    std::fs::write(
        dir.path().join("params.yaml"),
        params.replace("promotion: manual", "promotion: auto"),
    )
    .expect("params");
    let registry = revspend_core::registry::Registry::new(dir.path().join("models/registry"));
    // Production: a weaker model than the truth.
    register(dir.path(), &variant("logistic-champion00", [3.0, 1.0, 0.0]));

    // A crippled candidate: it ignores every feature.
    register(dir.path(), &variant("logistic-crippled00", [0.0, 0.0, 0.0]));
    let out = evaluate(dir.path(), "models/model.bin", "data/splits/holdout.parquet");
    assert!(
        out.status.success(),
        "a rejection is not a failure: {}",
        stderr(&out)
    );
    let p = promotion(dir.path());
    assert_eq!(p["decision"], "keep", "{p:#}");
    assert_eq!(p["promoted"], false);
    assert_eq!(p["champion"]["model_version"], "logistic-champion00");
    let failed: Vec<&str> = p["checks"]
        .as_array()
        .expect("checks")
        .iter()
        .filter(|c| c["passed"] == false)
        .filter_map(|c| c["check"].as_str())
        .collect();
    assert!(failed.contains(&"pr_auc threshold"), "{failed:?}");
    assert!(failed.contains(&"pr_auc min_relative_change"), "{failed:?}");
    assert!(
        p["reason"]
            .as_str()
            .is_some_and(|r| r.contains("pr_auc threshold")),
        "{p:#}"
    );
    let index = registry.index().expect("index");
    assert_eq!(index.aliases["production"], "v0001");
    assert_eq!(index.aliases["candidate"], "v0002");
    // The champion was scored on the candidate's rows.
    let metrics: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("reports/metrics.json")).expect("metrics"))
            .expect("json");
    assert_eq!(metrics["champion"]["version"], "v0001");
    assert!(
        metrics["champion"]["metrics"]["pr_auc"]
            .as_f64()
            .is_some_and(|v| v > 0.5)
    );
    assert_eq!(metrics["intervals"]["customers"], 150);
    let champion_ci = &metrics["intervals"]["champion"]["pr_auc"];
    let champion_pr = metrics["champion"]["metrics"]["pr_auc"].as_f64();
    assert!(
        champion_ci["low"].as_f64() <= champion_pr && champion_pr <= champion_ci["high"].as_f64(),
        "{champion_ci}"
    );
    let ci = &metrics["intervals"]["model"]["pr_auc"];
    assert!(ci["low"].as_f64() <= metrics["model"]["pr_auc"].as_f64(), "{ci}");

    // The true model beats the champion: promoted, with the reason logged.
    register(dir.path(), &variant("logistic-better0000", [7.0, 2.5, 0.0]));
    let out = evaluate(dir.path(), "models/model.bin", "data/splits/holdout.parquet");
    assert!(out.status.success(), "{}", stderr(&out));
    let p = promotion(dir.path());
    assert_eq!(p["decision"], "promote", "{p:#}");
    assert_eq!(p["promoted"], true);
    let index = registry.index().expect("index");
    assert_eq!(index.aliases["production"], "v0003");
    let last = index.alias_log.last().expect("a change");
    assert_eq!((last.alias.as_str(), last.to.as_str()), ("production", "v0003"));
    assert!(
        last.reason.starts_with("promote: evaluate gate, all"),
        "{}",
        last.reason
    );

    // The evaluation is stored with the version.
    let stored = registry.evaluation_files("v0003").expect("files");
    for f in [
        "competition.json",
        "metrics.json",
        "plots/roc.png",
        "promotion.json",
    ] {
        assert!(stored.iter().any(|s| s == f), "{f} missing from {stored:?}");
    }
    let stored_dir = registry.evaluation_dir("v0003").expect("dir");
    assert_eq!(
        std::fs::read(stored_dir.join("promotion.json")).expect("stored"),
        std::fs::read(dir.path().join("reports/promotion.json")).expect("report")
    );

    // The competition: every version on the same rows; the candidate's
    // metrics are the stage's own; identical scoring for the champion.
    let competition: serde_json::Value = serde_json::from_slice(
        &std::fs::read(dir.path().join("reports/competition.json")).expect("competition.json"),
    )
    .expect("json");
    let versions = competition["versions"].as_array().expect("versions");
    assert_eq!(versions.len(), 3);
    assert_eq!(competition["holdout_rows"], 1500);
    let metrics: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("reports/metrics.json")).expect("metrics"))
            .expect("json");
    assert_eq!(versions[2]["is_candidate"], true);
    assert_eq!(versions[2]["metrics"]["pr_auc"], metrics["model"]["pr_auc"]);
    let pr = |v: &serde_json::Value| v["metrics"]["pr_auc"].as_f64().expect("scored");
    assert!(pr(&versions[2]) > pr(&versions[0]) && pr(&versions[0]) > pr(&versions[1]));
    // The aliases as they were when the versions were scored, before the
    // promotion.
    assert_eq!(versions[2]["aliases"], serde_json::json!(["candidate"]));
    assert_eq!(versions[0]["aliases"], serde_json::json!(["production"]));

    // Evaluated again, the candidate is production already: kept, no change.
    let out = evaluate(dir.path(), "models/model.bin", "data/splits/holdout.parquet");
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        promotion(dir.path())["reason"],
        "the candidate is already production"
    );
    assert_eq!(
        registry.index().expect("index").alias_log.len(),
        index.alias_log.len()
    );
}

/// Issue 14: a registered version whose features the holdout does not
/// have is listed in the competition with the reason, not scored, and the
/// stage still succeeds.
#[test]
fn issue_14_a_version_that_cannot_be_scored_is_listed_with_the_reason() {
    let dir = tempfile::tempdir().expect("tempdir");
    fixture::write(dir.path());
    let mut foreign = variant("logistic-foreign000", [7.0, 2.5, 0.0]);
    foreign.features = vec![
        revspend_core::features::Feature::Count7d,
        fixture::FEATURES[1],
        fixture::FEATURES[2],
    ];
    register(dir.path(), &foreign);
    register(dir.path(), &fixture::model());
    let out = evaluate(dir.path(), "models/model.bin", "data/splits/holdout.parquet");
    assert!(out.status.success(), "{}", stderr(&out));
    let competition: serde_json::Value = serde_json::from_slice(
        &std::fs::read(dir.path().join("reports/competition.json")).expect("competition.json"),
    )
    .expect("json");
    let first = &competition["versions"][0];
    assert!(first["metrics"].is_null());
    assert!(
        first["note"].as_str().is_some_and(|n| n.contains("count_7d")),
        "{first}"
    );
    // The champion could not be scored: its change limits are skipped and
    // say so, the thresholds still apply.
    let p = promotion(dir.path());
    assert_eq!(p["champion"]["version"], "v0001");
    assert!(
        p["champion"]["note"]
            .as_str()
            .is_some_and(|n| n.contains("cannot be read")),
        "{p:#}"
    );
    assert_eq!(p["decision"], "promote", "{p:#}");
    assert_eq!(p["promoted"], false, "manual mode records only");
}

/// Issue 14: metrics by slice reach the report, the cold-start slice (each
/// customer's first purchase) has its own metrics and reliability, and the
/// gate has a line for it and for the slice floor.
#[test]
fn issue_14_slices_and_the_cold_start_line_are_reported() {
    let dir = tempfile::tempdir().expect("tempdir");
    fixture::write(dir.path());
    let out = evaluate(dir.path(), "models/model.bin", "data/splits/holdout.parquet");
    assert!(out.status.success(), "{}", stderr(&out));
    let metrics: serde_json::Value = serde_json::from_slice(
        &std::fs::read(dir.path().join("reports/metrics.json")).expect("metrics.json"),
    )
    .expect("json");
    let slices = metrics["slices"]["slices"].as_array().expect("slices");
    let dimensions: std::collections::BTreeSet<&str> =
        slices.iter().filter_map(|s| s["dimension"].as_str()).collect();
    assert_eq!(
        dimensions.into_iter().collect::<Vec<_>>(),
        ["age_band", "customer_history", "merchant_group", "month", "sex"]
    );
    for dimension in ["month", "sex", "customer_history"] {
        let rows: u64 = slices
            .iter()
            .filter(|s| s["dimension"] == dimension)
            .filter_map(|s| s["rows"].as_u64())
            .sum();
        assert_eq!(rows, 1500, "{dimension} slices cover every holdout row once");
    }
    let cold = slices
        .iter()
        .find(|s| s["slice"] == "cold_start")
        .expect("cold-start slice");
    assert_eq!(cold["rows"], 150, "one first purchase per customer");
    assert!(cold["roc_auc"].as_f64().is_some_and(|v| v > 0.6), "{cold}");
    let bins = metrics["slices"]["cold_start_reliability"]
        .as_array()
        .expect("cold-start reliability");
    assert_eq!(bins.iter().filter_map(|b| b["count"].as_u64()).sum::<u64>(), 150);
    let checks = promotion(dir.path())["checks"].clone();
    let check = |name: &str| {
        checks
            .as_array()
            .and_then(|c| c.iter().find(|c| c["check"] == name).cloned())
            .unwrap_or_else(|| panic!("no {name} check in {checks}"))
    };
    assert_eq!(check("cold_start roc_auc")["passed"], true);
    assert_eq!(check("slices below the pr_auc floor")["passed"], true);
    for plot in ["slices.png", "slices.json", "reliability_cold_start.json"] {
        assert!(dir.path().join("reports/plots").join(plot).is_file(), "{plot}");
    }
}

/// Issue 14: `reports/index.html` is one self-contained page: every plot
/// the stage drew is embedded as a PNG, nothing refers outside the file,
/// there is no script, and the decision and headline table are on it.
#[test]
fn issue_14_the_report_page_embeds_every_plot_and_needs_nothing_else() {
    let dir = tempfile::tempdir().expect("tempdir");
    fixture::write(dir.path());
    let out = evaluate(dir.path(), "models/model.bin", "data/splits/holdout.parquet");
    assert!(out.status.success(), "{}", stderr(&out));
    let html = std::fs::read_to_string(dir.path().join("reports/index.html")).expect("index.html");
    let pngs = std::fs::read_dir(dir.path().join("reports/plots"))
        .expect("plots")
        .filter(|e| {
            e.as_ref()
                .is_ok_and(|e| e.path().extension().is_some_and(|x| x == "png"))
        })
        .count();
    assert!(pngs >= 9, "{pngs} plots");
    // "iVBORw0KGgo" is the PNG signature in base64.
    assert_eq!(
        html.matches("src=\"data:image/png;base64,iVBORw0KGgo").count(),
        pngs
    );
    for outside in ["http:", "https:", "src=\"//", "href=\"//", "file:", "<script"] {
        assert!(!html.contains(outside), "the page contains {outside}");
    }
    for section in [
        "Promotion decision",
        "Headline metrics",
        "Model competition",
        "Metrics by slice",
    ] {
        assert!(html.contains(section), "no {section} section");
    }
    let decision = promotion(dir.path())["decision"]
        .as_str()
        .expect("decision")
        .to_owned();
    assert!(html.contains(&format!("<b>{decision}</b>")));
}
