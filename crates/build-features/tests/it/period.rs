//! The training period's end (`build_features.split.until`) and the
//! monitor's retrain request that can move it: rows after the end are live
//! traffic, kept in the feature layer and the online snapshot but in no
//! split, so the profile (and the checks, training, evaluation) never see
//! them.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use chrono::NaiveDate;
use polars::prelude::DataFrame;
use revspend_core::artifact::{self, RetrainRequest};

use crate::support::{Project, RETRAIN_REQUEST, stderr};

fn ok(out: std::process::Output) -> std::process::Output {
    assert!(out.status.success(), "{}", stderr(&out));
    out
}

fn date(s: &str) -> NaiveDate {
    s.parse().expect("date")
}

/// A project with the fixture's generated data (2020-01-01 on, 180 days).
fn generated() -> Project {
    let p = Project::new();
    p.generate();
    p
}

fn set_until(p: &Project, until: &str) {
    p.edit_params("    until: null\n", &format!("    until: {until}\n"));
}

fn request(until: &str) -> RetrainRequest {
    RetrainRequest {
        until: date(until),
        alarm: "dataset_drift".into(),
        window: "2020-05".into(),
        reason: "drift share 0.62 >= 0.5".into(),
        requested_at: "2020-06-01T00:00:00Z".into(),
        requested_by: "monitor".into(),
    }
}

fn write_request(p: &Project, r: Option<&RetrainRequest>) {
    artifact::write_retrain_request(&p.path(RETRAIN_REQUEST), r).expect("retrain request");
}

/// Every date of a table's `date` column.
fn dates(frame: &DataFrame) -> Vec<NaiveDate> {
    frame
        .column("date")
        .expect("date column")
        .date()
        .expect("dates")
        .as_date_iter()
        .map(|d| d.expect("no null date"))
        .collect()
}

/// The whole feature layer (every month's part file).
fn feature_layer(p: &Project) -> DataFrame {
    let mut parts: Vec<PathBuf> = Vec::new();
    let mut stack = vec![p.out().features_dir];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).expect("read dir") {
            let path = e.expect("entry").path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|x| x == "parquet") {
                parts.push(path);
            }
        }
    }
    parts.sort();
    let mut layer: Option<DataFrame> = None;
    for path in parts {
        let part = revspend_table::read_table(&path, &[]).expect("feature month");
        match &mut layer {
            Some(l) => {
                l.vstack_mut(&part).expect("same schema");
            }
            None => layer = Some(part),
        }
    }
    layer.expect("a feature month")
}

/// Each customer's split, from the split files.
fn split_of(p: &Project) -> BTreeMap<String, String> {
    let master = p.master();
    let customers = master
        .column("customer")
        .expect("customer")
        .str()
        .expect("text")
        .clone();
    let splits = master
        .column("split")
        .expect("split")
        .str()
        .expect("text")
        .clone();
    customers
        .iter()
        .zip(splits.iter())
        .map(|(c, s)| (c.expect("customer").to_owned(), s.expect("split").to_owned()))
        .collect()
}

/// The SHA-256 of the files that say what the model is trained and checked
/// on: the four split files and the train profile, by file name.
fn split_and_profile_bytes(p: &Project) -> Vec<(String, String)> {
    let out = p.out();
    let mut files: Vec<PathBuf> = build_features::SPLITS
        .iter()
        .map(|s| out.splits_dir.join(format!("{s}.parquet")))
        .collect();
    files.push(out.profile.clone());
    files
        .into_iter()
        .map(|f| {
            let name = f.file_name().expect("file name").to_string_lossy().into_owned();
            (name, artifact::file_sha256(&f).expect("output"))
        })
        .collect()
}

fn read(path: &Path) -> Vec<u8> {
    std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

#[test]
fn rows_after_until_are_in_no_split_but_in_the_feature_layer_and_the_snapshot() {
    // The whole history first: the reference for the layers and the snapshot.
    let p = generated();
    ok(p.build_features());
    let all_report = p.report();
    assert!(
        all_report.get("training_period").is_none(),
        "no end and no request: nothing to report, {all_report}"
    );
    let all_layer = feature_layer(&p);
    let all_snapshot = read(&p.out().snapshot);
    let all_splits = split_of(&p);
    let all_profile = p.json_at(&p.out().profile);

    set_until(&p, "\"2020-04-30\"");
    ok(p.build_features());
    let until = date("2020-04-30");
    let report = p.report();

    // The master table holds the training period alone.
    let master = p.master();
    let master_dates = dates(&master);
    assert!(!master_dates.is_empty());
    assert!(
        master_dates.iter().all(|d| *d <= until),
        "a split row after {until}"
    );

    // The feature layer still holds every row, the live ones included.
    let layer = feature_layer(&p);
    assert_eq!(layer.height(), all_layer.height(), "the feature layer lost rows");
    let live = dates(&layer).iter().filter(|d| **d > until).count() as u64;
    assert!(live > 0, "the fixture has rows after {until}");
    assert_eq!(master.height() as u64 + live, layer.height() as u64);

    // The report: the period's end, from params, and the live rows.
    let period = &report["training_period"];
    assert_eq!(period["until"], "2020-04-30", "{report}");
    assert_eq!(period["source"], "params");
    assert_eq!(period["params_until"], "2020-04-30");
    assert!(period["request"].is_null());
    assert_eq!(period["live_rows"], live);
    assert_eq!(
        report["rows_out"], all_report["rows_out"],
        "rows out counts every row"
    );
    let split_rows: u64 = report["splits"]
        .as_object()
        .expect("splits")
        .values()
        .map(|s| s["rows"].as_u64().expect("rows"))
        .sum();
    assert_eq!(split_rows, master.height() as u64);

    // The snapshot is the latest state of every customer: the live rows
    // are in it, as without an end.
    assert_eq!(read(&p.out().snapshot), all_snapshot, "the snapshot changed");
    let snapshot = artifact::read_snapshot(&p.out().snapshot).expect("snapshot");
    assert!(snapshot.as_of.is_some_and(|d| d > until), "{:?}", snapshot.as_of);

    // No customer moves to another split; the profile counts the train
    // split's rows of the period alone.
    for (customer, split) in split_of(&p) {
        assert_eq!(all_splits.get(&customer), Some(&split), "{customer} moved");
    }
    let profile = p.json_at(&p.out().profile);
    assert_eq!(profile["rows"], report["splits"]["train"]["rows"]);
    assert!(
        profile["rows"].as_u64() < all_profile["rows"].as_u64(),
        "the profile still counts live rows: {} vs {}",
        profile["rows"],
        all_profile["rows"]
    );
}

#[test]
fn a_later_request_extends_the_period_as_the_same_end_in_params_would() {
    // Reference: the end set in params.
    let reference = generated();
    set_until(&reference, "\"2020-04-30\"");
    ok(reference.build_features());

    let p = generated();
    set_until(&p, "\"2020-03-31\"");
    write_request(&p, Some(&request("2020-04-30")));
    ok(p.build_features());
    assert_eq!(split_and_profile_bytes(&p), split_and_profile_bytes(&reference));

    let report = p.report();
    let period = &report["training_period"];
    assert_eq!(period["until"], "2020-04-30", "{report}");
    assert_eq!(period["source"], "retrain_request");
    assert_eq!(period["params_until"], "2020-03-31");
    assert_eq!(period["request"]["alarm"], "dataset_drift");
    assert_eq!(period["request"]["window"], "2020-05");
    assert_eq!(period["request"]["until"], "2020-04-30");
    assert_eq!(period["request"]["applied"], true);
    assert_eq!(
        period["live_rows"],
        reference.report()["training_period"]["live_rows"]
    );

    // An earlier request never shortens the period.
    write_request(&p, Some(&request("2020-02-15")));
    p.edit_params("until: \"2020-03-31\"", "until: \"2020-04-30\"");
    ok(p.build_features());
    assert_eq!(split_and_profile_bytes(&p), split_and_profile_bytes(&reference));
    let period = &p.report()["training_period"];
    assert_eq!(period["until"], "2020-04-30");
    assert_eq!(period["source"], "params");
    assert_eq!(period["request"]["applied"], false);
}

#[test]
fn with_until_null_a_request_changes_nothing() {
    let p = generated();
    ok(p.build_features());
    let before = split_and_profile_bytes(&p);
    let snapshot = read(&p.out().snapshot);

    write_request(&p, Some(&request("2020-03-31")));
    ok(p.build_features());
    assert_eq!(split_and_profile_bytes(&p), before);
    assert_eq!(read(&p.out().snapshot), snapshot);
    let report = p.report();
    let period = &report["training_period"];
    assert!(period["until"].is_null(), "{report}");
    assert_eq!(period["source"], "params");
    assert_eq!(period["request"]["applied"], false);
    assert_eq!(period["request"]["alarm"], "dataset_drift");
    assert_eq!(period["live_rows"], 0);
}

#[test]
fn a_missing_or_malformed_request_file_fails_naming_it() {
    let p = generated();
    std::fs::remove_file(p.path(RETRAIN_REQUEST)).expect("remove");
    let out = p.build_features();
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(
        err.contains(RETRAIN_REQUEST) && err.contains("--retrain-request"),
        "{err}"
    );
    assert!(!p.out().report.exists(), "ran without its request file");

    for bad in [
        "{\"version\": 1, \"request\": {\"until\": \"2020-13-01\"}}",
        "{\"version\": 2, \"request\": null}",
        "not json",
    ] {
        std::fs::write(p.path(RETRAIN_REQUEST), bad).expect("write");
        let out = p.build_features();
        assert!(!out.status.success(), "{bad}");
        let err = stderr(&out);
        assert!(err.contains(RETRAIN_REQUEST), "{bad}: {err}");
        assert!(!p.out().report.exists(), "{bad}: ran on a malformed request");
    }
}

#[test]
fn a_bad_until_fails_naming_the_key() {
    let p = generated();
    set_until(&p, "\"2020-02-30\"");
    let out = p.build_features();
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(err.contains("build_features.split.until"), "{err}");
    assert!(err.contains("2020-02-30"), "{err}");
}

#[test]
fn an_end_before_every_purchase_fails_saying_so() {
    let p = generated();
    set_until(&p, "\"2019-12-31\"");
    let out = p.build_features();
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(err.contains("no rows in the train split"), "{err}");
    assert!(err.contains("build_features.split.until"), "{err}");
}
