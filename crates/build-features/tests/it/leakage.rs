//! Issue 3: the leakage check and feature selection on generated data.

use crate::support::{Project, stderr};

#[test]
fn the_default_feature_set_passes_and_selection_explains_drops() {
    let p = Project::new();
    p.generate();
    let out = p.build_features();
    assert!(out.status.success(), "{}", stderr(&out));
    let leakage = p.json_at(&p.out().leakage_report);
    assert_eq!(leakage["flagged_in_feature_set"], serde_json::json!([]));
    let entry = |name: &str| {
        leakage["entries"]
            .as_array()
            .expect("entries")
            .iter()
            .find(|e| e["feature"] == name)
            .cloned()
            .expect("entry")
    };
    // Same-row label inputs are flagged even though the model does not use them.
    assert_eq!(entry("limite_disp")["flagged"], true);
    assert_eq!(entry("available_pct")["label_input"], true);
    assert_eq!(entry("prev_utilisation")["flagged"], false);
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
        leakage["flagged_in_feature_set"],
        serde_json::json!(["limite_disp"])
    );
    assert!(
        stderr(&out).contains("allowed by params for comparison"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn a_feature_that_alone_separates_the_target_fails_the_stage() {
    let p = Project::new();
    p.generate();
    // With a strict bound, the strongest honest feature counts as leaky.
    p.edit_params("max_single_feature_auc: 0.95", "max_single_feature_auc: 0.55");
    let out = p.build_features();
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(
        err.contains("leakage check failed") && err.contains("leakage.json"),
        "{err}"
    );
    let leakage = p.json_at(&p.out().leakage_report);
    assert!(
        !leakage["flagged_in_feature_set"]
            .as_array()
            .expect("flagged")
            .is_empty()
    );
}
