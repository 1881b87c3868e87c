//! Issue 12: `train` reads only splits of the run the feature list records
//! (the list is `build-features`' commit record, written last).

use std::path::Path;
use std::process::{Command, Output};

use revspend_core::artifact::{self, FeatureList};

use crate::fixture;

fn train(dir: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_train"))
        .current_dir(dir)
        .args(["--params", "params.yaml"])
        .args(["--train", "data/splits/train.parquet"])
        .args(["--test", "data/splits/test.parquet"])
        .args(["--calibration", "data/splits/calibration.parquet"])
        .args(["--feature-list", "data/features.json"])
        .args(["--model", "models/model.bin"])
        .args(["--report", "reports/train.json"])
        .args(["--search-report", "reports/search.csv"])
        .args(["--threads", "2", "--no-register"])
        .output()
        .expect("run train")
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// A split replaced by another run's (a run killed after writing one
/// split, or a file copied in) is refused, naming the file and what to do.
#[test]
fn a_split_of_another_run_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    fixture::build(dir.path());
    let test = dir.path().join("data/splits/test.parquet");
    revspend_table::write_table(&test, &mut fixture::split_table("test", 40, 999))
        .expect("another run's split");
    let out = train(dir.path());
    assert!(!out.status.success(), "a split of another run was trained on");
    let err = stderr(&out);
    assert!(
        err.contains("test.parquet") && err.contains("two runs") && err.contains("rerun build-features"),
        "{err}"
    );
    assert!(!dir.path().join("models/model.bin").exists());
}

/// A run killed before its last write (the feature list) leaves its new
/// splits beside the previous run's feature list: refused.
#[test]
fn splits_beside_the_previous_runs_feature_list_are_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    fixture::build(dir.path());
    let list_path = dir.path().join("data/features.json");
    // The next run writes every split, then is killed before the list.
    let splits = dir.path().join("data/splits");
    for (k, (name, customers)) in [("train", 150), ("test", 40), ("holdout", 40), ("calibration", 25)]
        .into_iter()
        .enumerate()
    {
        let mut df = fixture::split_table(name, customers, 500 + k as u64);
        revspend_table::write_table(&splits.join(format!("{name}.parquet")), &mut df).expect("split");
    }
    let out = train(dir.path());
    assert!(!out.status.success(), "a mixed set of outputs was trained on");
    let err = stderr(&out);
    assert!(err.contains("train.parquet") && err.contains("two runs"), "{err}");

    // A list of the previous release (no record) is refused as such.
    let mut list: FeatureList = artifact::read_json(&list_path).expect("list");
    list.version = 1;
    list.run_outputs.clear();
    artifact::write_json(&list_path, &list).expect("old list");
    let out = train(dir.path());
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("feature list version 1"),
        "{}",
        stderr(&out)
    );
}

/// Issue 12: what a train run killed during an atomic write left beside
/// its outputs (a `.tmp-` file in models/ or reports/) is removed by the
/// next run; other files stay.
#[test]
fn temporary_files_of_a_killed_run_are_removed_by_the_next_run() {
    let dir = tempfile::tempdir().expect("tempdir");
    fixture::build(dir.path());
    let planted = ["models/.tmp-AbC123", "reports/.tmp-XyZ789"];
    for p in planted.iter().chain(&["reports/.tmp-notes.txt"]) {
        let path = dir.path().join(p);
        std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
        std::fs::write(&path, b"half a file").expect("plant");
    }
    let out = train(dir.path());
    assert!(out.status.success(), "{}", stderr(&out));
    for p in planted {
        assert!(!dir.path().join(p).exists(), "{p} survived the run");
    }
    assert!(dir.path().join("reports/.tmp-notes.txt").exists());
    assert!(dir.path().join("models/model.bin").exists());
}
