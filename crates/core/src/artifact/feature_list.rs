//! The feature list: the features `build-features` selected, and the
//! commit record of its run (the outputs it wrote, with their hashes).

use std::path::Path;

use serde::{Deserialize, Serialize};

use super::{ArtifactError, read_json};
use crate::features::Feature;
use crate::target::TargetRule;

/// Version of the feature list ([`FeatureList`]).
///
/// 2: the list became the commit record of the `build-features` run that
/// wrote it (`version` and `run_outputs`, issue 12). A version 1 list (no
/// `version` field) records no outputs: the readers refuse it, and
/// rerunning `build-features` writes a version 2 list.
pub const FEATURE_LIST_VERSION: u32 = 2;

/// The roles of a `build-features` run's outputs in
/// [`FeatureList::run_outputs`].
pub mod run_output {
    pub const SNAPSHOT: &str = "snapshot";
    pub const PROFILE: &str = "profile";
    pub const QUARANTINE: &str = "quarantine";
    pub const QUALITY_REPORT: &str = "quality_report";
    pub const LEAKAGE_REPORT: &str = "leakage_report";
    pub const SELECTION_REPORT: &str = "selection_report";
    pub const REPORT: &str = "report";

    /// The master table's file of split `name` (`train`, `test`, …).
    pub fn split(name: &str) -> String {
        format!("split/{name}")
    }
}

/// The ordered feature list `build-features` chose and `train` reads, with
/// the rule the table was labelled with. It is also the run's commit
/// record: written last, it holds the SHA-256 of every other output of the
/// run, and a reader checks the files it reads against it
/// ([`FeatureList::verify_output`]), so that outputs of two runs (a run
/// killed half-way, or a file copied in) are never used together.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FeatureList {
    /// [`FEATURE_LIST_VERSION`] when written; lists before version 2 have
    /// no such field and read as 1.
    #[serde(default = "feature_list_v1")]
    pub version: u32,
    pub features: Vec<String>,
    pub rule: TargetRule,
    /// [`crate::pseudonym::Pseudonymiser::key_fingerprint`] of the key the
    /// tables' customers were pseudonymised with; `train` copies it into
    /// the model. Absent (empty) only in lists before version 2, which
    /// [`FeatureList::read`] refuses by their version.
    #[serde(default)]
    pub key_fingerprint: String,
    /// Role ([`run_output`]) → SHA-256 of that output of the run.
    #[serde(default)]
    pub run_outputs: std::collections::BTreeMap<String, String>,
}

fn feature_list_v1() -> u32 {
    1
}

impl FeatureList {
    /// Reads a feature list, refusing another version than this build's.
    pub fn read(path: &Path) -> Result<FeatureList, ArtifactError> {
        let list: FeatureList = read_json(path)?;
        if list.version != FEATURE_LIST_VERSION {
            return Err(ArtifactError::FeatureListVersion {
                path: path.to_owned(),
                expected: FEATURE_LIST_VERSION,
                got: list.version,
            });
        }
        Ok(list)
    }

    /// Checks that `path`, read as the output `role` and hashing to
    /// `sha256`, is the file this list's run wrote (`list` is where this
    /// list was read from, for the message).
    pub fn verify_output(
        &self,
        list: &Path,
        role: &str,
        path: &Path,
        sha256: &str,
    ) -> Result<(), ArtifactError> {
        let recorded = self.run_outputs.get(role);
        if recorded.map(String::as_str) == Some(sha256) {
            return Ok(());
        }
        Err(ArtifactError::OtherRun {
            list: list.to_owned(),
            role: role.to_owned(),
            path: path.to_owned(),
            recorded: recorded.cloned().unwrap_or_else(|| "nothing".to_owned()),
            got: sha256.to_owned(),
        })
    }

    /// The features, failing on a name this build does not know.
    pub fn resolve(&self, path: &Path) -> Result<Vec<Feature>, ArtifactError> {
        self.features
            .iter()
            .map(|n| {
                Feature::from_name(n).ok_or_else(|| ArtifactError::UnknownFeature {
                    path: path.to_owned(),
                    name: n.clone(),
                })
            })
            .collect()
    }
}
