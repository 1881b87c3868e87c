//! The scenario sections shipped for the end-to-end monitoring run
//! (config/scenarios): the default population over 210 days, clean and
//! drifted from the 181st day.

use std::path::{Path, PathBuf};

use revspend_core::params::{Check, GenerateParams, Scenario};

use crate::support::generate;

fn repo(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").join(rel)
}

#[test]
fn clean_and_drift_share_their_first_six_files() {
    let default = GenerateParams::load(&repo("params.yaml")).expect("params.yaml");
    let clean = GenerateParams::load(&repo("config/scenarios/clean.yaml")).expect("clean.yaml");
    let drift = GenerateParams::load(&repo("config/scenarios/drift.yaml")).expect("drift.yaml");
    assert!(clean.scenarios.is_empty());
    assert_eq!((clean.seed, clean.customers), (default.seed, default.customers));
    assert_eq!(clean.start_date, default.start_date);
    assert_eq!((clean.days, clean.files), (210, 7));
    assert_eq!(
        clean.rows * u64::from(default.days),
        default.rows * u64::from(clean.days),
        "the default's purchases per day"
    );
    let mut without = drift.clone();
    without.scenarios.clear();
    assert_eq!(without, clean, "drift.yaml is clean.yaml plus scenarios");
    let kinds: Vec<&str> = drift.scenarios.iter().map(Scenario::kind).collect();
    assert_eq!(kinds, ["limit_shock", "merchant_mix"]);
    assert!(drift.scenarios.iter().all(|s| drift.day_of(s.from()) == 180));

    let clean = generate(&clean.check().expect("clean.yaml is valid"));
    let drift = generate(&drift.check().expect("drift.yaml is valid"));
    assert_eq!(clean.files.len(), 7);
    assert!(clean.files[..6] == drift.files[..6]);
    assert_eq!(drift.files[6].0, "mibolsillo_20200629_20200728.csv");
    assert!(clean.files[6] != drift.files[6]);
}
