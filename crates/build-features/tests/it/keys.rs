//! The pseudonymisation key (issue 12): required unless params opt into the
//! public development key, and recorded with what it pseudonymised.

use revspend_core::artifact::{self, FeatureList};
use revspend_core::pseudonym::Pseudonymiser;

use crate::support::{Project, stderr};

/// Issue 12 item 10: without REVSPEND_PSEUDONYM_KEY the stage stops with a
/// message saying how to set it or opt in, instead of using the public key
/// with a warning; opted in, the report, the snapshot and the feature list
/// record which key was used.
#[test]
fn without_a_key_the_stage_stops_unless_params_opt_into_the_development_key() {
    let p = Project::new();
    p.generate();
    let out = p.build_features_with_key("");
    assert!(!out.status.success(), "ran without a key");
    let message = stderr(&out);
    assert!(
        message.contains("REVSPEND_PSEUDONYM_KEY is not set")
            && message.contains("build_features.allow_development_key: true"),
        "{message}"
    );
    assert!(!p.out().snapshot.exists(), "wrote a snapshot without a key");

    p.edit_params("allow_development_key: false", "allow_development_key: true");
    for (key, source, pseudo) in [
        ("", "development default", Pseudonymiser::development()),
        (
            "bank-secret",
            "from environment",
            Pseudonymiser::new(b"bank-secret"),
        ),
    ] {
        let out = p.build_features_with_key(key);
        assert!(out.status.success(), "{}", stderr(&out));
        let report: serde_json::Value = artifact::read_json(&p.out().report).expect("report");
        assert_eq!(report["pseudonym_key"], source);
        let snapshot = artifact::read_snapshot(&p.out().snapshot).expect("snapshot");
        assert_eq!(snapshot.key_fingerprint, pseudo.key_fingerprint(), "{source}");
        let list: FeatureList = artifact::read_json(&p.out().feature_list).expect("feature list");
        assert_eq!(list.key_fingerprint, pseudo.key_fingerprint(), "{source}");
    }
}
