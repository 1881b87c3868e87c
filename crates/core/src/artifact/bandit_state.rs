//! A bandit's learned state ([`BanditState`]), as the server persists it:
//! pretty JSON written atomically, its version checked on read.

use std::path::Path;

use serde::Deserialize;

use super::{ArtifactError, read_json, write_json};
use crate::experiment::{BANDIT_STATE_VERSION, BanditState};

/// Writes a bandit's state (JSON), atomically.
pub fn write_bandit_state(path: &Path, state: &BanditState) -> Result<(), ArtifactError> {
    write_json(path, state)
}

/// Reads a bandit's state, refusing a file of another version.
pub fn read_bandit_state(path: &Path) -> Result<BanditState, ArtifactError> {
    #[derive(Deserialize)]
    struct Versioned {
        version: u32,
    }
    let Versioned { version } = read_json(path)?;
    if version != BANDIT_STATE_VERSION {
        return Err(ArtifactError::StateVersion {
            path: path.to_owned(),
            expected: BANDIT_STATE_VERSION,
            got: version,
        });
    }
    read_json(path)
}
