//! The dependency audit (issue 12): what `make test` runs and what the
//! accepted advisories rest on.

use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn read(path: &str) -> String {
    std::fs::read_to_string(root().join(path)).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// quick-xml (RUSTSEC-2026-0194/0195) came in through polars' `lazy`
/// feature (polars-stream → polars-io cloud → object_store). The audit
/// accepts those advisories only because the crate is not compiled, so the
/// workspace's polars must not ask for `lazy` (or the cloud features).
#[test]
fn polars_is_built_without_the_features_that_compile_quick_xml() {
    let manifest = read("Cargo.toml");
    let line = manifest
        .lines()
        .find(|l| l.starts_with("polars = "))
        .expect("the workspace's polars dependency");
    let list = line
        .split_once("features = [")
        .and_then(|(_, rest)| rest.split_once(']'))
        .expect("polars features")
        .0;
    let features: Vec<&str> = list.split(',').map(|f| f.trim().trim_matches('"')).collect();
    assert!(features.contains(&"parquet"), "{features:?}");
    for banned in [
        "lazy",
        "cloud",
        "http",
        "aws",
        "azure",
        "gcp",
        "async",
        "streaming",
    ] {
        assert!(
            !features.contains(&banned),
            "polars feature {banned:?} compiles object_store/quick-xml: {features:?}"
        );
    }
}

/// `make test` runs the audit, and every accepted advisory says why.
#[test]
fn the_audit_runs_in_make_test_and_every_accepted_advisory_has_a_reason() {
    let makefile = read("Makefile");
    let test_target = makefile
        .lines()
        .find(|l| l.starts_with("test:"))
        .expect("a test target");
    assert!(
        test_target.split_whitespace().any(|w| w == "audit"),
        "{test_target}"
    );
    assert!(makefile.contains("scripts/audit.sh"));

    let config = read(".cargo/audit.toml");
    let lines: Vec<&str> = config.lines().collect();
    let ignored: Vec<(usize, &str)> = lines
        .iter()
        .enumerate()
        .filter(|(_, l)| l.trim_start().starts_with("\"RUSTSEC-"))
        .map(|(i, l)| (i, l.trim().trim_end_matches(',')))
        .collect();
    assert!(!ignored.is_empty());
    for (at, id) in ignored {
        // The reason is the comment block right above the id (or above the
        // id it is grouped with).
        let above = lines[..at]
            .iter()
            .rev()
            .take_while(|l| l.trim_start().starts_with('#') || l.trim_start().starts_with("\"RUSTSEC"))
            .filter(|l| l.trim_start().starts_with('#'))
            .count();
        assert!(above >= 2, "{id} has no reason above it in .cargo/audit.toml");
    }
    let deny = lines
        .iter()
        .find(|l| l.starts_with("deny = "))
        .expect("[output] deny");
    assert!(deny.contains("\"unmaintained\""), "{deny}");
}
