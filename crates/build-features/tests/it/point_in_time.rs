//! Issue 3: history features are point-in-time correct, and the online
//! snapshot gives the server exactly the features the offline table has.

use std::collections::HashMap;

use revspend_core::artifact;
use revspend_core::contract::{self, Transaction};
use revspend_core::features::{self, Feature};
use revspend_core::pseudonym::Pseudonymiser;

use crate::support::{Project, stderr};

/// Feature rows of a master table keyed by (source file, line).
fn features_by_row(p: &Project) -> HashMap<(String, u64), Vec<f64>> {
    let df = p.master();
    let files = df.column("source_file").expect("file").str().expect("str");
    let lines = df.column("source_line").expect("line").u64().expect("u64");
    let columns: Vec<Vec<f64>> = Feature::ALL
        .iter()
        .map(|f| {
            df.column(f.name())
                .expect("feature")
                .f64()
                .expect("f64")
                .into_no_null_iter()
                .collect()
        })
        .collect();
    (0..df.height())
        .map(|r| {
            let key = (
                files.get(r).expect("file").to_owned(),
                lines.get(r).expect("line"),
            );
            (key, columns.iter().map(|c| c[r]).collect())
        })
        .collect()
}

/// A project with two generated files, the second holding the later days.
fn two_files() -> (Project, Vec<std::path::PathBuf>) {
    let p = Project::new();
    p.generate();
    let mut files: Vec<_> = std::fs::read_dir(p.path("raw"))
        .expect("raw")
        .map(|e| e.expect("entry").path())
        .collect();
    files.sort();
    assert_eq!(files.len(), 2);
    (p, files)
}

#[test]
fn appending_later_files_never_changes_earlier_rows_features() {
    let (p, files) = two_files();
    let later = std::fs::read(&files[1]).expect("later file");
    std::fs::remove_file(&files[1]).expect("hold back");
    let out = p.build_features();
    assert!(out.status.success(), "{}", stderr(&out));
    let before = features_by_row(&p);

    std::fs::write(&files[1], later).expect("append the later file");
    let out = p.build_features();
    assert!(out.status.success(), "{}", stderr(&out));
    let after = features_by_row(&p);

    assert!(after.len() > before.len());
    for (row, values) in &before {
        assert_eq!(after.get(row), Some(values), "features of {row:?} changed");
    }
}

#[test]
fn online_features_from_the_snapshot_equal_the_offline_features() {
    let (p, files) = two_files();
    let later = std::fs::read(&files[1]).expect("later file");
    std::fs::remove_file(&files[1]).expect("hold back");
    let out = p.build_features();
    assert!(out.status.success(), "{}", stderr(&out));
    let snapshot = artifact::read_snapshot(&p.out().snapshot).expect("snapshot");

    std::fs::write(&files[1], &later).expect("restore");
    let out = p.build_features();
    assert!(out.status.success(), "{}", stderr(&out));
    let offline = features_by_row(&p);

    // Each customer's first purchase in the later file, scored online with
    // the history the earlier run left in the snapshot.
    let pseudo = Pseudonymiser::new(b"test-key");
    let name = files[1].file_name().expect("name").to_string_lossy().into_owned();
    let text = contract::decode_cp1252(&later);
    let mut seen = std::collections::HashSet::new();
    let mut compared = 0;
    let mut warm = 0;
    for (i, line) in text.lines().enumerate().skip(1) {
        let fields: Vec<&str> = line.split(';').collect();
        let txn: Transaction = contract::parse_fields(&fields).expect("generated rows parse");
        if !seen.insert(txn.id.clone()) {
            continue;
        }
        let customer = pseudo.pseudonym(&txn.id);
        let history = snapshot.history(&customer).cloned().unwrap_or_default();
        warm += usize::from(history.purchases_before > 0);
        let online = features::compute(&history, &txn, &snapshot.rule);
        let row = (name.clone(), i as u64 + 1);
        assert_eq!(
            offline.get(&row).map(Vec::as_slice),
            Some(&online[..]),
            "row {row:?}"
        );
        compared += 1;
    }
    assert!(compared > 100 && warm > 100, "compared {compared}, warm {warm}");
}
