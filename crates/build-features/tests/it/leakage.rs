//! Issue 3: the leakage check and feature selection on generated data.

use crate::support::{Project, stderr};

#[test]
fn the_default_feature_set_passes_and_selection_explains_drops() {
    let p = Project::new();
    p.generate();
    let out = p.build_features();
    assert!(out.status.success(), "{}", stderr(&out));
    let leakage = p.json_at(&p.out().leakage_report);
    assert_eq!(leakage["leaks_in_feature_set"], serde_json::json!([]));
    assert_eq!(leakage["warnings"], serde_json::json!([]));
    let entry = |name: &str| {
        leakage["entries"]
            .as_array()
            .expect("entries")
            .iter()
            .find(|e| e["feature"] == name)
            .cloned()
            .expect("entry")
    };
    // Same-row label inputs are leaks even though the model does not use them.
    assert_eq!(entry("limite_disp")["verdict"], "leak");
    assert_eq!(entry("available_pct")["label_input"], true);
    assert_eq!(entry("prev_utilisation")["verdict"], "clean");
    // The rule rebuilt from the leaky candidates is perfect: that is the trap.
    assert!(leakage["rule_reconstruction_auc"].as_f64().expect("auc") > 0.999);

    // The reference profile describes every candidate feature of the train split.
    let profile = p.json_at(&p.out().profile);
    let train_rows = p.report()["splits"]["train"]["rows"].as_u64().expect("rows");
    assert_eq!(profile["rows"].as_u64(), Some(train_rows));
    let prev = &profile["numeric"]["prev_utilisation"];
    assert_eq!(prev["count"].as_u64(), Some(train_rows));
    let bins: u64 = prev["histogram"]["counts"]
        .as_array()
        .expect("counts")
        .iter()
        .map(|c| c.as_u64().expect("n"))
        .sum();
    assert_eq!(bins, train_rows);
    let rate = profile["numeric"]["is_revenge_spending"]["mean"]
        .as_f64()
        .expect("mean");
    assert!(
        (rate
            - p.report()["splits"]["train"]["target_rate"]
                .as_f64()
                .expect("rate"))
        .abs()
            < 1e-9
    );

    let selection = p.json_at(&p.out().selection_report);
    let selected: Vec<String> = serde_json::from_value(selection["selected"].clone()).expect("selected");
    let features: serde_json::Value = p.json_at(&p.out().feature_list);
    assert_eq!(features["features"], selection["selected"]);
    for dropped in selection["dropped"].as_array().expect("dropped") {
        assert!(!selected.contains(&dropped["feature"].as_str().expect("name").to_owned()));
        assert!(!dropped["reason"].as_str().expect("reason").is_empty());
    }
}

#[test]
fn switching_limite_disp_back_on_is_caught_unless_explicitly_allowed() {
    let p = Project::new();
    p.generate();
    p.edit_params("    - idade\n", "    - idade\n    - limite_disp\n");
    let out = p.build_features();
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("limite_disp") && stderr(&out).contains("leakage"),
        "{}",
        stderr(&out)
    );
    // The master table is written while the checks run, but put in place
    // only once they pass: a failed check leaves no split file behind.
    let splits: Vec<_> = std::fs::read_dir(p.out().splits_dir)
        .map(|d| d.filter_map(Result::ok).map(|e| e.file_name()).collect())
        .unwrap_or_default();
    assert!(splits.is_empty(), "{splits:?}");

    p.edit_params("allow_leaky_features: false", "allow_leaky_features: true");
    let out = p.build_features();
    assert!(out.status.success(), "{}", stderr(&out));
    let leakage = p.json_at(&p.out().leakage_report);
    assert_eq!(
        leakage["leaks_in_feature_set"],
        serde_json::json!(["limite_disp"])
    );
    assert!(
        stderr(&out).contains("allowed by params for comparison"),
        "{}",
        stderr(&out)
    );
}

/// Issue 12: a high single-feature AUC is a reason to look, not proof of a
/// leak. A point-in-time feature above the bound warns (report and log) and
/// the stage goes on; a person acknowledges it in params with a reason.
#[test]
fn a_strong_feature_of_clean_lineage_warns_until_acknowledged_instead_of_failing_the_stage() {
    let p = Project::new();
    p.generate();
    // With a strict bound, the strongest honest features pass it.
    p.edit_params("max_single_feature_auc: 0.95", "max_single_feature_auc: 0.55");
    let out = p.build_features();
    let err = stderr(&out);
    assert!(out.status.success(), "{err}");
    let leakage = p.json_at(&p.out().leakage_report);
    assert_eq!(leakage["leaks_in_feature_set"], serde_json::json!([]));
    let warned: Vec<String> = serde_json::from_value(leakage["warnings"].clone()).expect("warnings");
    assert!(!warned.is_empty(), "{leakage}");
    for name in &warned {
        let entry = leakage["entries"]
            .as_array()
            .expect("entries")
            .iter()
            .find(|e| e["feature"] == name.as_str())
            .expect("entry");
        assert_eq!(entry["verdict"], "suspicious");
        assert_eq!(entry["label_input"], false);
        assert!(
            err.contains(&format!("{name} alone reaches ROC-AUC")) && err.contains("not a proven leak"),
            "{err}"
        );
    }

    // Acknowledged with a reason: the warnings go, the reasons are reported.
    let acks: String = warned
        .iter()
        .map(|n| format!("\n      - feature: {n}\n        reason: reviewed, known before authorisation"))
        .collect();
    p.edit_params(
        "max_single_feature_auc: 0.55",
        &format!("max_single_feature_auc: 0.55\n    acknowledged:{acks}"),
    );
    let out = p.build_features();
    let err = stderr(&out);
    assert!(out.status.success(), "{err}");
    assert!(!err.contains("not a proven leak"), "{err}");
    let leakage = p.json_at(&p.out().leakage_report);
    assert_eq!(leakage["warnings"], serde_json::json!([]));
    let acknowledged = leakage["entries"]
        .as_array()
        .expect("entries")
        .iter()
        .filter(|e| e["verdict"] == "acknowledged")
        .count();
    assert_eq!(acknowledged, warned.len());
}

/// Issue 12: an acknowledgement cannot silence a leak by lineage.
#[test]
fn acknowledging_a_label_input_is_refused_by_the_params_check() {
    let p = Project::new();
    p.generate();
    p.edit_params(
        "max_single_feature_auc: 0.95",
        "max_single_feature_auc: 0.95\n    acknowledged:\n      - feature: limite_disp\n        reason: trust me",
    );
    let out = p.build_features();
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(
        err.contains("build_features.leakage.acknowledged[0].feature") && err.contains("leak by lineage"),
        "{err}"
    );
}
