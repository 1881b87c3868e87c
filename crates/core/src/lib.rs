//! `revspend-core`: everything two pipeline stages must agree on.
//!
//! - [`contract`]: the raw CSV data contract (cp1252, `;`, Brazilian amounts,
//!   `dd.mm.yyyy` dates, mis-encoded merchant groups) and its field parsers.
//! - [`target`]: the revenge-spending rule that defines the label.
//! - [`features`]: the feature definitions and the one function that computes
//!   them, used offline by `build-features` and online by `serve`.
//! - [`process`]: CPU time, page faults and peak memory of this process
//!   (the one `/proc` reader).
//! - [`schema`]: every table's columns, named once.
//! - [`pseudonym`]: keyed-hash pseudonymisation of customer ids.
//! - [`params`]: `params.yaml` sections, parsed strictly and validated once.
//! - [`model`]: fitted model types and their probability output.
//! - [`calibration`]: probability calibrators the model artifact applies.
//! - [`registry`]: the model registry (versions, aliases, alias log) and
//!   the experiment log under `models/registry/`.
//! - [`experiment`]: the online experiments' bandit state, which the
//!   server persists and the experiment report reads.
//! - [`metrics`]: metric report types shared by `train` and `evaluate`.
//! - [`profile`]: distribution profiles of tables (reference for drift).
//! - [`artifact`]: the only module that touches on-disk formats (parquet
//!   tables, JSON reports, the enveloped bincode model and snapshot files,
//!   the prediction log), always written atomically.
//!
//! It knows nothing of HTTP or command-line parsing.

pub mod artifact;
pub mod calibration;
pub mod contract;
pub mod experiment;
pub mod features;
pub mod metrics;
pub mod model;
pub mod params;
pub mod process;
pub mod profile;
pub mod pseudonym;
pub mod registry;
pub mod schema;
pub mod target;

/// Lower-case hex of `bytes` (hashes and pseudonyms; one allocation).
pub fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(char::from(DIGITS[usize::from(b >> 4)]));
        s.push(char::from(DIGITS[usize::from(b & 0xf)]));
    }
    s
}

#[cfg(test)]
mod tests {
    #[test]
    fn hex_is_lower_case_two_digits_per_byte() {
        assert_eq!(super::hex(&[0x00, 0x0f, 0xa5, 0xff]), "000fa5ff");
        assert_eq!(super::hex(&[]), "");
    }
}
