//! Issue 3: the staged and feature layers are updated incrementally. The
//! same file twice changes nothing, a new daily file is processed on its
//! own and gives what a full rebuild gives, and a backfill rebuilds a
//! date range.

use std::path::PathBuf;
use std::time::SystemTime;

use polars::prelude::DataFrame;

use crate::support::{Project, stderr};

fn ok(out: std::process::Output) -> std::process::Output {
    assert!(out.status.success(), "{}", stderr(&out));
    out
}

fn master(p: &Project) -> DataFrame {
    p.master()
}

fn strings(v: &serde_json::Value) -> Vec<String> {
    v.as_array()
        .expect("array")
        .iter()
        .map(|s| s.as_str().expect("string").to_owned())
        .collect()
}

/// Every file under `dir` with its modification time.
/// Every file below `dir`, sorted.
fn files_under(dir: &std::path::Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).expect("read dir") {
            let path = e.expect("entry").path();
            if path.is_dir() {
                stack.push(path);
            } else {
                out.push(path);
            }
        }
    }
    out.sort();
    out
}

fn mtimes(dir: &std::path::Path) -> Vec<(PathBuf, SystemTime)> {
    files_under(dir)
        .into_iter()
        .map(|path| {
            let modified = path.metadata().expect("metadata").modified().expect("mtime");
            (path, modified)
        })
        .collect()
}

/// The months (`YYYY-MM`) the staged layer holds rows of `file` in.
fn staged_months(p: &Project, file: &str) -> Vec<String> {
    let manifest = p.json_at(&p.out().staged_dir.join("_manifest.json"));
    let parts = manifest["files"][file]["partitions"]
        .as_object()
        .expect("partitions");
    parts.keys().cloned().collect()
}

/// Months of the feature layer from `from` on, and those before it.
fn months_split_at(p: &Project, from: &str) -> (Vec<String>, Vec<String>) {
    let manifest = p.json_at(&p.out().features_dir.join("_manifest.json"));
    let months: Vec<String> = manifest["months"]
        .as_object()
        .expect("months")
        .keys()
        .cloned()
        .collect();
    let (before, after): (Vec<String>, Vec<String>) = months.into_iter().partition(|m| m.as_str() < from);
    (before, after)
}

fn raw_files(p: &Project) -> Vec<PathBuf> {
    let mut files: Vec<_> = std::fs::read_dir(p.path("raw"))
        .expect("raw")
        .map(|e| e.expect("entry").path())
        .collect();
    files.sort();
    files
}

/// Copies the first raw file to `raw/zz-copy.csv`, runs the stage and
/// checks that the report names the copy as skipped, a copy of the first
/// file; returns the report.
fn build_with_a_copy_of_the_first_file(p: &Project) -> serde_json::Value {
    let first = raw_files(p).remove(0);
    std::fs::copy(&first, p.path("raw/zz-copy.csv")).expect("copy");
    ok(p.build_features());
    let report = p.report();
    let dup = &report["layers"]["duplicates_skipped"][0];
    assert_eq!(dup["file"], "zz-copy.csv");
    assert_eq!(
        dup["same_content_as"],
        first.file_name().expect("name").to_str().expect("utf-8")
    );
    report
}

#[test]
fn the_same_file_twice_changes_nothing() {
    let p = Project::new();
    p.generate();
    ok(p.build_features());
    let before = master(&p);
    let staged = mtimes(&p.out().staged_dir);
    let features = mtimes(&p.out().features_dir);
    let rows_in = p.report()["rows_in"].clone();

    // The same folder again: nothing is parsed or rewritten in the layers.
    ok(p.build_features());
    let layers = &p.report()["layers"];
    assert_eq!(strings(&layers["files_staged"]), Vec::<String>::new());
    assert_eq!(strings(&layers["files_unchanged"]).len(), 2);
    assert_eq!(strings(&layers["feature_months_rebuilt"]), Vec::<String>::new());
    assert_eq!(mtimes(&p.out().staged_dir), staged);
    assert_eq!(mtimes(&p.out().features_dir), features);
    assert!(master(&p).equals_missing(&before));

    // The same content dropped again under another name is skipped and said.
    let report = build_with_a_copy_of_the_first_file(&p);
    assert_eq!(report["rows_in"], rows_in);
    assert_eq!(mtimes(&p.out().staged_dir), staged);
    assert!(master(&p).equals_missing(&before));
}

/// A new name is hashed from the bytes it is staged from, so a copy that
/// arrives in the same run as its original is found only after both were
/// parsed: it must still be left out, with no partition of its own kept.
#[test]
fn a_copy_arriving_with_its_original_is_staged_once() {
    let p = Project::new();
    p.generate();
    ok(p.build_features());
    let before = master(&p);
    let rows_in = p.report()["rows_in"].clone();
    let staged = files_under(&p.out().staged_dir);

    // From scratch again, with a copy of the first file under a later name.
    std::fs::remove_dir_all(p.path("out")).expect("clean");
    let report = build_with_a_copy_of_the_first_file(&p);
    assert!(!strings(&report["layers"]["files_staged"]).contains(&"zz-copy.csv".to_owned()));
    assert_eq!(report["rows_in"], rows_in);
    assert_eq!(files_under(&p.out().staged_dir), staged);
    assert!(master(&p).equals_missing(&before));
}

#[test]
fn a_new_daily_file_is_staged_alone_and_equals_a_full_rebuild() {
    let p = Project::new();
    p.generate();
    let files = raw_files(&p);
    let later = std::fs::read(&files[1]).expect("later file");
    std::fs::remove_file(&files[1]).expect("hold back");
    ok(p.build_features());
    let first_month = mtimes(&p.out().features_dir.join("year=2020/month=01"));

    std::fs::write(&files[1], &later).expect("the new file arrives");
    ok(p.build_features());
    let layers = &p.report()["layers"];
    let name = files[1].file_name().expect("name").to_str().expect("utf-8");
    assert_eq!(strings(&layers["files_staged"]), vec![name]);
    assert_eq!(strings(&layers["files_unchanged"]).len(), 1);
    // Months before the new file's first month are reused as they were;
    // that month (which now has more rows) and later ones are rebuilt.
    let first = staged_months(&p, name).remove(0);
    let (before, after) = months_split_at(&p, &first);
    assert!(!before.is_empty() && !after.is_empty());
    assert_eq!(strings(&layers["feature_months_reused"]), before);
    assert_eq!(strings(&layers["feature_months_rebuilt"]), after);
    assert_eq!(
        mtimes(&p.out().features_dir.join("year=2020/month=01")),
        first_month
    );

    // A project that sees both files at once builds the same tables.
    let full = Project::new();
    for f in &files {
        std::fs::copy(f, full.path("raw").join(f.file_name().expect("name"))).expect("copy");
    }
    ok(full.build_features());
    assert!(master(&full).equals_missing(&master(&p)));
    for split in ["train", "test", "holdout", "calibration"] {
        let file = format!("{split}.parquet");
        assert_eq!(
            std::fs::read(full.out().splits_dir.join(&file)).expect("split"),
            std::fs::read(p.out().splits_dir.join(&file)).expect("split"),
            "{split}"
        );
    }
    assert_eq!(
        std::fs::read(full.out().snapshot).expect("snapshot"),
        std::fs::read(p.out().snapshot).expect("snapshot")
    );
}

#[test]
fn backfill_rebuilds_a_lost_month_from_the_raw_files() {
    let p = Project::new();
    p.generate();
    ok(p.build_features());
    let original = master(&p);
    let january = mtimes(&p.out().staged_dir.join("year=2020/month=01"));

    // A staged partition is lost: an ordinary run names it and the fix.
    let february = p.out().staged_dir.join("year=2020/month=02");
    let lost = mtimes(&february).remove(0).0;
    std::fs::remove_file(&lost).expect("lose a partition");
    let out = p.build_features();
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(err.contains("2020-02") && err.contains("backfill"), "{err}");

    let out = ok(p.backfill("2020-02-10", "2020-02-20"));
    assert!(
        stderr(&out).contains("backfilled months 2020-02"),
        "{}",
        stderr(&out)
    );
    let layers = &p.report()["layers"];
    assert_eq!(layers["backfill"], "2020-02-10..=2020-02-20");
    let (before, after) = months_split_at(&p, "2020-02");
    assert_eq!(strings(&layers["feature_months_reused"]), before);
    assert_eq!(strings(&layers["feature_months_rebuilt"]), after);
    assert!(lost.exists(), "the lost partition is written again");
    assert_eq!(mtimes(&p.out().staged_dir.join("year=2020/month=01")), january);
    assert!(master(&p).equals_missing(&original));

    let out = p.backfill("2020-03-01", "2020-02-01");
    assert!(!out.status.success());
    assert!(stderr(&out).contains("after"), "{}", stderr(&out));
}

#[test]
fn a_removed_file_takes_its_rows_out_and_another_key_restages_everything() {
    let p = Project::new();
    p.generate();
    ok(p.build_features());
    let both = p.report()["rows_in"].as_u64().expect("rows");
    let files = raw_files(&p);
    std::fs::remove_file(&files[1]).expect("remove");
    ok(p.build_features());
    let report = p.report();
    let name = files[1].file_name().expect("name").to_str().expect("utf-8");
    assert_eq!(strings(&report["layers"]["files_removed"]), vec![name]);
    assert!(report["rows_in"].as_u64().expect("rows") < both);
    let staged: Vec<PathBuf> = mtimes(&p.out().staged_dir).into_iter().map(|(f, _)| f).collect();
    assert!(
        !staged
            .iter()
            .any(|f| f.to_string_lossy().contains(name.trim_end_matches(".csv")))
    );

    let before = master(&p);
    ok(p.build_features_with_key("another-key"));
    assert_eq!(strings(&p.report()["layers"]["files_staged"]).len(), 1);
    let after = master(&p);
    assert_eq!(after.height(), before.height());
    assert!(
        !after
            .column("customer")
            .expect("customer")
            .equals(before.column("customer").expect("customer"))
    );
}

/// Every file the stage writes under `out/`, with its bytes (the report,
/// which holds paths, aside, and its hash left out of the feature list).
fn outputs(p: &Project) -> Vec<(PathBuf, Vec<u8>)> {
    let out = p.path("out");
    // The stage report names the raw files by their (temporary) paths.
    let report = p.out().report;
    let list = p.out().feature_list;
    files_under(&out)
        .into_iter()
        .filter(|path| *path != report)
        .map(|path| {
            let mut bytes = std::fs::read(&path).expect("output");
            if path == list {
                let mut json: serde_json::Value = serde_json::from_slice(&bytes).expect("feature list");
                json["run_outputs"]
                    .as_object_mut()
                    .expect("run record")
                    .remove("report")
                    .expect("the report's hash");
                bytes = serde_json::to_vec(&json).expect("json");
            }
            (path.strip_prefix(&out).expect("under out").to_owned(), bytes)
        })
        .collect()
}

#[test]
fn outputs_are_byte_identical_on_one_two_or_three_threads() {
    // The stage computes customers in per-thread ranges written in place,
    // runs the quality suite beside the feature layer and the checks beside
    // the master table: none of that may show in what it writes.
    let mut runs = Vec::new();
    for threads in [1, 2, 3] {
        let p = Project::new();
        p.generate();
        ok(p.build_features_on_threads(threads));
        runs.push(outputs(&p));
    }
    let names = |run: &[(PathBuf, Vec<u8>)]| run.iter().map(|(n, _)| n.clone()).collect::<Vec<_>>();
    assert!(names(&runs[0]).iter().any(|n| n.ends_with("train.parquet")));
    for run in &runs[1..] {
        assert_eq!(names(run), names(&runs[0]));
        for ((name, a), (_, b)) in runs[0].iter().zip(run) {
            assert!(a == b, "{} differs between thread counts", name.display());
        }
    }
}
