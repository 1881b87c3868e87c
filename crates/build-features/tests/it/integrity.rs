//! Issue 12: the layers' checksums are verified on read (items 1), a wrong
//! directory flag never deletes files that are not the pipeline's (2), and
//! a killed run leaves neither temporary files nor a mixed set of outputs
//! behind (6).

use std::path::{Path, PathBuf};
use std::process::Output;

use build_features::Outputs;
use revspend_core::artifact::{self, FeatureList, run_output};

use crate::support::{Project, stderr};

fn ok(out: Output) -> Output {
    assert!(out.status.success(), "{}", stderr(&out));
    out
}

/// Every file below `dir`, sorted, with its bytes.
fn tree(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).expect("read dir") {
            let path = e.expect("entry").path();
            if path.is_dir() {
                stack.push(path);
            } else {
                let bytes = std::fs::read(&path).expect("read");
                out.push((path, bytes));
            }
        }
    }
    out.sort();
    out
}

fn raw_files(p: &Project) -> Vec<PathBuf> {
    let mut files: Vec<_> = std::fs::read_dir(p.path("raw"))
        .expect("raw")
        .map(|e| e.expect("entry").path())
        .collect();
    files.sort();
    files
}

/// Flips one bit in the middle of `path`.
fn flip_a_byte(path: &Path) {
    let mut bytes = std::fs::read(path).expect("read");
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x01;
    std::fs::write(path, bytes).expect("write");
}

/// The splits and the snapshot, which a clean run and a repaired run must
/// write alike.
fn tables(out: &Outputs) -> Vec<Vec<u8>> {
    let mut files: Vec<PathBuf> = build_features::SPLITS
        .iter()
        .map(|s| out.splits_dir.join(format!("{s}.parquet")))
        .collect();
    files.push(out.snapshot.clone());
    files.iter().map(|f| std::fs::read(f).expect("output")).collect()
}

/// The tables of a project that sees `files` all at once, from scratch.
fn clean_run(files: &[PathBuf]) -> Vec<Vec<u8>> {
    let full = Project::new();
    for f in files {
        std::fs::copy(f, full.path("raw").join(f.file_name().expect("name"))).expect("copy");
    }
    ok(full.build_features());
    tables(&full.out())
}

/// A project built from its first raw file only; returns the held-back
/// second file's path and bytes.
fn built_without_the_second_file(p: &Project) -> (PathBuf, Vec<u8>) {
    p.generate();
    let second = raw_files(p).remove(1);
    let later = std::fs::read(&second).expect("second file");
    std::fs::remove_file(&second).expect("hold back");
    ok(p.build_features());
    (second, later)
}

fn strings(v: &serde_json::Value) -> Vec<String> {
    v.as_array()
        .expect("array")
        .iter()
        .map(|s| s.as_str().expect("string").to_owned())
        .collect()
}

#[test]
fn a_flipped_byte_in_a_staged_partition_is_restaged_from_its_raw_file() {
    let p = Project::new();
    let (second, later) = built_without_the_second_file(&p);
    let manifest = p.json_at(&p.out().staged_dir.join("_manifest.json"));
    let first = raw_files(&p).remove(0);
    let name = first.file_name().expect("name").to_str().expect("utf-8");
    let rel = manifest["files"][name]["partitions"]["2020-01"]["path"]
        .as_str()
        .expect("january partition")
        .to_owned();
    let partition = p.out().staged_dir.join(&rel);
    flip_a_byte(&partition);
    // And the feature month built from it, which the run reuses too.
    flip_a_byte(&p.out().features_dir.join("year=2020/month=01/part.parquet"));

    // A new daily file arrives: the corrupt partitions are reused by the
    // run, so they must be caught, rebuilt, said, and not change a row.
    std::fs::write(&second, &later).expect("the new file arrives");
    let run = ok(p.build_features());
    let err = stderr(&run);
    assert!(err.contains(&rel) && err.contains("SHA-256"), "{err}");
    let layers = &p.report()["layers"];
    assert_eq!(strings(&layers["partitions_restaged"]), vec![rel.clone()]);
    assert_eq!(strings(&layers["feature_months_repaired"]), vec!["2020-01"]);
    assert!(
        tables(&p.out()) == clean_run(&raw_files(&p)),
        "the splits differ from a clean run's"
    );

    // The repaired layer reads clean on the next run.
    ok(p.build_features());
    assert_eq!(
        strings(&p.report()["layers"]["partitions_restaged"]),
        Vec::<String>::new()
    );
}

#[test]
fn a_flipped_byte_in_a_feature_layer_partition_is_rebuilt_from_the_staged_rows() {
    let p = Project::new();
    let (second, later) = built_without_the_second_file(&p);
    // January comes before the new file's first month: it is reused.
    flip_a_byte(&p.out().features_dir.join("year=2020/month=01/part.parquet"));

    std::fs::write(&second, &later).expect("the new file arrives");
    let run = ok(p.build_features());
    let err = stderr(&run);
    assert!(
        err.contains("month=01/part.parquet") && err.contains("SHA-256"),
        "{err}"
    );
    let layers = &p.report()["layers"];
    assert_eq!(strings(&layers["feature_months_repaired"]), vec!["2020-01"]);
    assert!(!strings(&layers["feature_months_reused"]).contains(&"2020-01".to_owned()));
    assert!(
        tables(&p.out()) == clean_run(&raw_files(&p)),
        "the splits differ from a clean run's"
    );
}

#[test]
fn a_staged_dir_pointed_at_the_raw_folder_is_refused_and_nothing_is_deleted() {
    let p = Project::new();
    p.generate();
    let before = tree(&p.path("raw"));
    let mut out = p.out();
    out.staged_dir = p.path("raw");
    let run = p.build_features_into(&out);
    assert!(
        !run.status.success(),
        "the raw folder was taken as the staged layer"
    );
    let err = stderr(&run);
    let raw_file = before[0].0.file_name().expect("name").to_str().expect("utf-8");
    assert!(
        err.contains("--staged-dir") && err.contains(&p.path("raw").display().to_string()),
        "{err}"
    );
    assert!(err.contains(raw_file) || err.contains(".csv"), "{err}");
    assert!(tree(&p.path("raw")) == before, "the raw folder changed");
    assert!(
        !p.path("out").exists(),
        "something was written before the refusal"
    );
}

#[test]
fn a_features_dir_holding_an_unrelated_file_is_refused_and_nothing_is_deleted() {
    let p = Project::new();
    p.generate();
    ok(p.build_features());
    let shared = p.path("shared");
    std::fs::create_dir_all(&shared).expect("shared dir");
    std::fs::write(shared.join("notes.txt"), b"not the pipeline's").expect("unrelated file");
    let before = tree(&p.path("out"));
    let mut out = p.out();
    out.features_dir = shared.clone();
    let run = p.build_features_into(&out);
    assert!(
        !run.status.success(),
        "an unrelated folder was taken as the feature layer"
    );
    let err = stderr(&run);
    assert!(
        err.contains("--features-dir") && err.contains("notes.txt"),
        "{err}"
    );
    assert_eq!(
        tree(&shared),
        vec![(shared.join("notes.txt"), b"not the pipeline's".to_vec())]
    );
    assert!(
        tree(&p.path("out")) == before,
        "outputs changed before the refusal"
    );
}

/// Layers written by the previous release carry a manifest but no marker:
/// they are adopted, not refused or rebuilt.
#[test]
fn layers_of_the_previous_release_are_adopted() {
    let p = Project::new();
    p.generate();
    ok(p.build_features());
    for dir in [p.out().staged_dir, p.out().features_dir] {
        std::fs::remove_file(dir.join("_layer.json")).expect("no marker in the previous release");
    }
    ok(p.build_features());
    let layers = &p.report()["layers"];
    assert_eq!(strings(&layers["files_staged"]), Vec::<String>::new());
    assert_eq!(strings(&layers["feature_months_rebuilt"]), Vec::<String>::new());
    assert!(p.out().staged_dir.join("_layer.json").exists());
    assert!(p.out().features_dir.join("_layer.json").exists());
}

#[test]
fn temporary_files_of_a_killed_run_are_removed_by_the_next_run() {
    let p = Project::new();
    p.generate();
    ok(p.build_features());
    let out = p.out();
    // What a kill -9 during each atomic write leaves.
    let planted = [
        out.splits_dir.join(".tmp-k1lLeD"),
        out.snapshot.with_file_name(".tmp-snap01"),
        out.profile.with_file_name(".tmp-prof01"),
        out.report.with_file_name(".tmp-report"),
        out.feature_list.with_file_name(".tmp-list01"),
        out.staged_dir.join("year=2020/month=01/.tmp-part01"),
        out.features_dir.join("year=2020/month=01/.tmp-part02"),
    ];
    for path in &planted {
        std::fs::write(path, b"PAR1 half a file").expect("plant");
    }
    let kept = out.splits_dir.join("notes.txt");
    std::fs::write(&kept, b"not a temporary file").expect("plant");
    ok(p.build_features());
    for path in &planted {
        assert!(!path.exists(), "{} survived the rerun", path.display());
    }
    assert!(kept.exists(), "a file that is not a temporary file was removed");
}

/// The feature list is the run's commit record: the SHA-256 of each other
/// output, which is what the readers check.
#[test]
fn the_feature_list_records_every_output_of_the_run() {
    let p = Project::new();
    p.generate();
    ok(p.build_features());
    let out = p.out();
    let list = FeatureList::read(&out.feature_list).expect("a current feature list");
    let mut expected = vec![
        (run_output::SNAPSHOT.to_owned(), out.snapshot.clone()),
        (run_output::PROFILE.to_owned(), out.profile.clone()),
        (run_output::QUARANTINE.to_owned(), out.quarantine.clone()),
        (run_output::QUALITY_REPORT.to_owned(), out.quality_report.clone()),
        (run_output::LEAKAGE_REPORT.to_owned(), out.leakage_report.clone()),
        (
            run_output::SELECTION_REPORT.to_owned(),
            out.selection_report.clone(),
        ),
        (run_output::REPORT.to_owned(), out.report.clone()),
    ];
    for s in build_features::SPLITS {
        expected.push((run_output::split(s), out.splits_dir.join(format!("{s}.parquet"))));
    }
    assert_eq!(
        list.run_outputs.len(),
        expected.len(),
        "{:?}",
        list.run_outputs.keys()
    );
    for (role, path) in expected {
        let sha = artifact::file_sha256(&path).expect("output");
        list.verify_output(&out.feature_list, &role, &path, &sha)
            .unwrap_or_else(|e| panic!("{role}: {e}"));
    }
}

/// A lost feature-layer month is rebuilt from the staged rows, like a
/// corrupt one (the staged rows are all there).
#[test]
fn a_lost_feature_layer_partition_is_rebuilt_from_the_staged_rows() {
    let p = Project::new();
    p.generate();
    ok(p.build_features());
    let before = tables(&p.out());
    std::fs::remove_file(p.out().features_dir.join("year=2020/month=01/part.parquet")).expect("lose it");
    ok(p.build_features());
    assert_eq!(
        strings(&p.report()["layers"]["feature_months_repaired"]),
        vec!["2020-01"]
    );
    assert!(tables(&p.out()) == before, "the splits changed");
}
