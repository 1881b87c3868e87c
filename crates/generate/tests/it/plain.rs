//! The plain generator (no scenarios): what it wrote before scenarios
//! existed, it still writes.

use revspend_core::params::{Check, GenerateParams};
use sha2::{Digest, Sha256};

use crate::support::generate;

/// The SHA-256 of the six files the default `generate` section (seed
/// 20200101, 2,000 customers, 60,000 rows from 2020-01-01 over 180 days)
/// wrote before drift scenarios were added. A change of the generator that
/// moves them changes every stage's data: update them on purpose.
const DEFAULT_FILES: [(&str, &str); 6] = [
    (
        "mibolsillo_20200101_20200130.csv",
        "5ff61cacf7b4d3666e70ba95ae2a3222ff0127b8b6c91861fa5204d8bf71e08f",
    ),
    (
        "mibolsillo_20200131_20200229.csv",
        "a61f70b98c1d05371133364b6b6ddc2042c4c801f8daa853e479059623557910",
    ),
    (
        "mibolsillo_20200301_20200330.csv",
        "050103aefbb89b55985810e78479dc6722f48ccd2a09d17a9ddc17b0bf47a0e1",
    ),
    (
        "mibolsillo_20200331_20200429.csv",
        "a554897454239bbc3e69fb8d29da609ea0f6233a130f6e33432d993f2d68ac79",
    ),
    (
        "mibolsillo_20200430_20200529.csv",
        "3855c27507bc89bc2bca27e96c7d70d6169fb7253394870a7cba32b1a0dd95a2",
    ),
    (
        "mibolsillo_20200530_20200628.csv",
        "0252c2b5d9c8ff75f1a10962efe173baae351df068e7f5b91f39db10590418b8",
    ),
];

#[test]
fn the_default_section_writes_the_files_it_always_wrote() {
    let p: GenerateParams = serde_norway::from_str(
        "seed: 20200101\ncustomers: 2000\nrows: 60000\nstart_date: \"2020-01-01\"\ndays: 180\nfiles: 6\n",
    )
    .expect("parse");
    let run = generate(&p.check().expect("valid"));
    let got: Vec<(String, String)> = run
        .files
        .iter()
        .map(|(name, bytes)| {
            let hash: String = Sha256::digest(bytes).iter().map(|b| format!("{b:02x}")).collect();
            (name.clone(), hash)
        })
        .collect();
    let want: Vec<(String, String)> = DEFAULT_FILES
        .iter()
        .map(|(n, h)| ((*n).to_owned(), (*h).to_owned()))
        .collect();
    assert_eq!(got, want);
}
