//! Issue 12, item 5: one bad file must not stop the daily run. A UTF-8
//! byte-order mark is stripped, a gzip file is read whatever its name, and a
//! file that cannot be read at all is rejected as a whole (its reason in the
//! report and the manifest, its rows counted as quarantined) while the other
//! files go on.

use std::io::Write;

use revspend_table::read_quarantine;

use crate::support::{Project, stderr};

const HEADER: &str = "id;safra_abertura;cidade;estado;idade;sexo;limite_total;limite_disp;data; valor ;grupo_estabelecimento;cidade_estabelecimento;pais_estabelecimento";

fn rows(first_id: u64, n: u64) -> String {
    (0..n)
        .map(|i| {
            format!(
                "{};201405;RECIFE;PE;34;F;4700.0;{}.0;{:02}.07.2020; 52,00 ;VAREJO;RECIFE;BR\n",
                first_id + i,
                300 + 700 * (i % 5),
                1 + i % 28
            )
        })
        .collect()
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    enc.write_all(bytes).expect("gzip");
    enc.finish().expect("gzip")
}

#[test]
fn an_unreadable_file_is_rejected_and_the_other_files_go_on() {
    let p = Project::new();
    p.generate();
    let first = p.build_features();
    assert!(first.status.success(), "{}", stderr(&first));
    // The generated files break no check: nothing quarantined.
    assert_eq!(p.report()["rows_quarantined"], 0);
    let generated = p.report()["rows_out"].as_u64().expect("rows");
    // Excel's UTF-8 export: a byte-order mark before the header.
    p.write_raw(
        "excel.csv",
        format!("\u{feff}{HEADER}\r\n{}", rows(90_000_000_000, 4)).as_bytes(),
    );
    // A bank's gzip file under the `.csv` name.
    p.write_raw(
        "zipped.csv",
        &gzip(format!("{HEADER}\n{}", rows(91_000_000_000, 5)).as_bytes()),
    );
    // Cannot be read at all.
    p.write_raw(
        "wrong-header.csv",
        format!(
            "{}\n{}",
            HEADER.replace(" valor ", "valor"),
            rows(92_000_000_000, 3)
        )
        .as_bytes(),
    );
    p.write_raw("zero.csv", b"");
    p.write_raw("blank.csv", b"\n\r\n  \n");
    p.write_raw(
        "binary.csv",
        b"\x00\x01\x02PK\x03\x04\xff\xfe\x00garbage\n\x00\x00more\n",
    );
    p.write_raw(
        "broken-gzip.csv",
        &gzip(format!("{HEADER}\n{}", rows(93_000_000_000, 50)).as_bytes())[..40],
    );

    let out = p.build_features();
    assert!(out.status.success(), "build-features failed: {}", stderr(&out));
    let report = p.report();
    let files = report["files"].as_array().expect("files");
    let by_name = |name: &str| {
        files
            .iter()
            .find(|f| f["path"].as_str().is_some_and(|p| p.ends_with(name)))
            .unwrap_or_else(|| panic!("{name} not in the report: {report}"))
    };
    let excel = by_name("excel.csv");
    assert_eq!(excel["rows_out"], 4);
    assert_eq!(excel["format"]["bom"], true);
    let zipped = by_name("zipped.csv");
    assert_eq!(zipped["rows_out"], 5);
    assert_eq!(zipped["format"]["gzip"], true);
    let mut rejected_rows = 0;
    for (name, rows, reason) in [
        ("wrong-header.csv", Some(3), "\" valor \""),
        ("zero.csv", Some(0), "empty file"),
        ("blank.csv", Some(0), "blank lines"),
        ("binary.csv", Some(1), "header"),
        // Whatever lines decompressed before the stream broke.
        ("broken-gzip.csv", None, "gzip"),
    ] {
        let f = by_name(name);
        assert_eq!(f["rows_out"], 0, "{name}");
        if let Some(rows) = rows {
            assert_eq!(f["rows_in"], rows, "{name}: {f}");
        }
        assert_eq!(f["rows_quarantined"], f["rows_in"], "{name}");
        rejected_rows += f["rows_in"].as_u64().expect("rows");
        let why = f["rejected"]
            .as_str()
            .unwrap_or_else(|| panic!("{name} not rejected: {f}"));
        assert!(why.contains(reason), "{name}: {why}");
    }
    assert_eq!(report["files_rejected"], 5);
    assert_eq!(report["quarantine_reasons"]["file"], rejected_rows);
    assert_eq!(report["rows_out"].as_u64(), Some(generated + 9));
    let total = |k: &str| report[k].as_u64().expect("count");
    assert_eq!(total("rows_in"), total("rows_out") + total("rows_quarantined"));

    // The manifest records the reason too; the quarantine has one entry per
    // rejected file (line 0), with nothing of the file's content.
    let manifest = p.json_at(&p.out().staged_dir.join("_manifest.json"));
    let staged = &manifest["files"]["wrong-header.csv"];
    assert!(
        staged["rejected"].as_str().is_some_and(|r| r.contains("header")),
        "{staged}"
    );
    assert_eq!(manifest["files"]["excel.csv"]["format"]["bom"], true);
    let q = read_quarantine(&p.out().quarantine).expect("quarantine");
    let whole: Vec<&str> = q
        .iter()
        .filter(|r| r.field == "file")
        .map(|r| r.file.rsplit('/').next().unwrap_or(""))
        .collect();
    assert_eq!(whole.len(), 5, "{whole:?}");
    assert!(
        q.iter()
            .filter(|r| r.field == "file")
            .all(|r| r.line == 0 && r.raw.is_empty())
    );

    // Unchanged, the rejected files stay rejected and nothing is restaged.
    let again = p.build_features();
    assert!(again.status.success(), "{}", stderr(&again));
    assert_eq!(p.report()["files_rejected"], 5);
}

#[test]
fn every_file_rejected_fails_the_stage_naming_each() {
    let p = Project::new();
    p.write_raw("zero.csv", b"");
    p.write_raw(
        "wrong-header.csv",
        format!(
            "{}\n{}",
            HEADER.replace(" valor ", "valor"),
            rows(92_000_000_000, 3)
        )
        .as_bytes(),
    );
    let out = p.build_features();
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(err.contains("no rows"), "{err}");
    assert!(err.contains("zero.csv: empty file"), "{err}");
    assert!(
        err.contains("wrong-header.csv: line 1: header column 10"),
        "{err}"
    );
}

#[test]
fn an_error_expectation_still_fails_the_stage_beside_a_rejected_file() {
    let p = Project::new();
    p.write_raw(
        "good.csv",
        format!("{HEADER}\n{}", rows(90_000_000_000, 10)).as_bytes(),
    );
    p.write_raw("zero.csv", b"");
    let suite = p.path("suite.yaml");
    std::fs::write(
        &suite,
        "expectations:\n  - {expect: row_count_between, min: 1000}\n",
    )
    .expect("suite");
    let out = p.build_features_with_suite(&suite);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("row_count_between"), "{}", stderr(&out));
}

/// A `.csv.gz` name is read when `raw_glob` takes it (the default
/// `data/raw/*.csv` does not).
#[test]
fn a_csv_gz_file_is_read_when_the_glob_takes_it() {
    let p = Project::new();
    p.write_raw(
        "day.csv.gz",
        &gzip(format!("{HEADER}\n{}", rows(90_000_000_000, 10)).as_bytes()),
    );
    p.write_raw(
        "day2.csv",
        format!("{HEADER}\n{}", rows(91_000_000_000, 10)).as_bytes(),
    );
    p.edit_params("raw/*.csv\n", "raw/*.csv*\n");
    let out = p.build_features();
    assert!(out.status.success(), "{}", stderr(&out));
    let report = p.report();
    assert_eq!(report["rows_out"], 20, "{report}");
    assert_eq!(report["files"][0]["format"]["gzip"], true);
}

/// Issue 12, item 4: the ranges are recorded with the staged layer, so
/// editing them restages the files rather than keeping rows checked
/// against the old ones.
#[test]
fn editing_the_value_ranges_restages_every_file() {
    let p = Project::new();
    let mut text = format!("{HEADER}\n{}", rows(90_000_000_000, 10));
    text.push_str(&rows(91_000_000_000, 1).replace(" 52,00 ", " 2.500.000,00 "));
    p.write_raw("day.csv", text.as_bytes());
    let out = p.build_features();
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(p.report()["quarantine_out_of_range"]["valor"], 1);

    let shipped = std::fs::read_to_string(crate::support::shipped_suite()).expect("suite");
    let wider = shipped.replace("valor: {min: 0, max: 1000000}", "valor: {min: 0, max: 5000000}");
    assert_ne!(wider, shipped, "the shipped valor range moved");
    let suite = p.path("suite.yaml");
    std::fs::write(&suite, wider).expect("suite");
    let out = p.build_features_with_suite(&suite);
    assert!(out.status.success(), "{}", stderr(&out));
    let report = p.report();
    assert_eq!(report["rows_out"], 11, "{report}");
    assert_eq!(report["layers"]["files_staged"][0], "day.csv");
}
