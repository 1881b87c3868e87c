//! Server settings from flags and environment, and where the model comes
//! from.

use std::path::PathBuf;

use anyhow::Context;
use revspend_core::artifact;
use revspend_core::model::ModelArtifact;

/// Default request body limit: a transaction is a few hundred bytes.
pub const DEFAULT_MAX_BODY_BYTES: usize = 64 * 1024;

/// Default time a request body may take to arrive after its head.
pub const DEFAULT_BODY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// Default row limit of `POST /predict/batch`.
pub const DEFAULT_MAX_BATCH_ROWS: usize = 10_000;

/// Default body limit of `POST /predict/batch`: room for the row limit at
/// about 400 bytes a row.
pub const DEFAULT_MAX_BATCH_BODY_BYTES: usize = 8 * 1024 * 1024;

/// Default prediction log queue, in records: about a second of full load.
pub const DEFAULT_LOG_QUEUE: usize = 65_536;

/// Default size at which a prediction log file is closed and a new one
/// opened (besides on the hour).
pub const DEFAULT_LOG_FILE_MAX_BYTES: u64 = 128 * 1024 * 1024;

/// Default shadow queue, in rows.
pub const DEFAULT_SHADOW_QUEUE: usize = 1_024;

/// Default number of recent predictions that can take feedback (about 70
/// bytes each in memory, measured: some 18 MB full). Size it to the
/// predictions made between a prediction and its latest feedback.
pub const DEFAULT_FEEDBACK_CAPACITY: usize = 250_000;

/// Default age, in hours, of the predictions read back from the log at
/// start so their feedback is still taken (30 days).
pub const DEFAULT_FEEDBACK_WINDOW_HOURS: i64 = 720;

/// The reference profile the drift gauges read when no path is given and
/// the file exists (build-features writes it there).
pub const DEFAULT_DRIFT_PROFILE: &str = "data/profile/train.json";

/// Server settings, from flags and environment (never `params.yaml`).
#[derive(Debug, Clone)]
pub struct Config {
    /// Address to listen on; port 0 picks a free port.
    pub bind: String,
    /// Where the model artifact comes from.
    pub model: ModelSource,
    /// Online snapshot file; `None` serves every request as a cold start.
    pub snapshot: Option<PathBuf>,
    /// HTTP worker threads, >= 1.
    pub workers: usize,
    /// Largest accepted request body, in bytes.
    pub max_body_bytes: usize,
    /// The limits of `POST /predict/batch`.
    pub batch: crate::BatchLimits,
    /// How long a request body may take to arrive (then 408).
    pub body_timeout: std::time::Duration,
    /// The bearer token of `/admin/*`; none disables those routes.
    pub admin_token: Option<AdminToken>,
    /// How often the server checks whether the registry alias moved or the
    /// snapshot file changed; none: only `POST /admin/reload` reloads.
    pub reload_interval: Option<std::time::Duration>,
    /// Watch the registry and snapshot directories, reloading as soon as
    /// the alias moves or the snapshot is replaced.
    pub file_watch: bool,
    /// Use the public development pseudonymisation key when
    /// `REVSPEND_PSEUDONYM_KEY` is unset (otherwise that is a start-up error).
    pub allow_development_key: bool,
    /// Access-log one request in this many (besides every 5xx); 0: none.
    pub access_log_every: u64,
    /// The routing file (`config/routing.yaml`); none: one variant, the
    /// followed alias, for everyone.
    pub routing: Option<PathBuf>,
    /// Where bandit states are persisted; none: kept in memory only.
    pub state_dir: Option<PathBuf>,
    /// The prediction log's directory; none: nothing is logged.
    pub prediction_log: Option<PathBuf>,
    /// The prediction log's queue, in records (full: dropped and counted).
    pub log_queue: usize,
    /// Size at which a log file is closed and a new one opened.
    pub log_file_max_bytes: u64,
    /// The shadow queue, in rows (full: shadow work dropped and counted).
    pub shadow_queue: usize,
    /// Recent predictions that can take feedback.
    pub feedback_capacity: usize,
    /// Hours of predictions read back from the log at start for feedback.
    pub feedback_window_hours: i64,
    /// The training profile the drift gauges compare requests to; none:
    /// the gauges are off.
    pub drift_profile: Option<PathBuf>,
    /// How far back the drift gauges look (at least 10 ms).
    pub drift_window: std::time::Duration,
}

/// Where the server's model comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ModelSource {
    /// A model artifact file.
    File(PathBuf),
    /// The version `alias` points to in the registry at `dir`.
    Registry { dir: PathBuf, alias: String },
}

impl ModelSource {
    /// Reads the model, with the path it came from and, from a registry,
    /// the version the alias points to. From a registry, the file is
    /// checked against the alias's index entry (path inside the registry,
    /// SHA-256, model version) before it is used.
    pub fn load(&self) -> anyhow::Result<(PathBuf, ModelArtifact, Option<String>)> {
        match self {
            ModelSource::File(path) => {
                let model = artifact::read_model(path).context("cannot load the model")?;
                Ok((path.clone(), model, None))
            }
            ModelSource::Registry { dir, alias } => {
                let registry = revspend_core::registry::Registry::new(dir);
                let loaded = registry
                    .load(alias)
                    .with_context(|| format!("cannot load the model of registry alias {alias:?}"))?;
                log::info!(
                    "registry {}: {alias} -> {} ({}, SHA-256 as registered)",
                    dir.display(),
                    loaded.entry.version,
                    loaded.entry.model_version
                );
                Ok((loaded.path, loaded.model, Some(loaded.entry.version)))
            }
        }
    }
}

/// The admin routes' bearer token. Never printed: `Debug` shows its length
/// only, so a logged `Config` holds no secret.
#[derive(Clone, PartialEq, Eq)]
pub struct AdminToken(String);

impl AdminToken {
    /// A token of at least 16 characters (a short one is guessable).
    pub fn new(token: String) -> anyhow::Result<AdminToken> {
        anyhow::ensure!(
            token.chars().count() >= 16,
            "REVSPEND_ADMIN_TOKEN is too short ({} characters): use at least 16",
            token.chars().count()
        );
        Ok(AdminToken(token))
    }

    /// Compares in time that depends on the lengths only, never on where
    /// the first differing byte is.
    pub fn matches(&self, given: &[u8]) -> bool {
        let want = self.0.as_bytes();
        let mut diff = u8::from(want.len() != given.len());
        for (i, w) in want.iter().enumerate() {
            diff |= w ^ given.get(i).copied().unwrap_or(0);
        }
        diff == 0
    }
}

impl std::fmt::Debug for AdminToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "AdminToken(<{} characters>)", self.0.chars().count())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_matches_itself_only_and_never_prints() {
        let t = AdminToken::new("0123456789abcdef".into()).expect("token");
        assert!(t.matches(b"0123456789abcdef"));
        assert!(!t.matches(b"0123456789abcdeF"));
        assert!(!t.matches(b"0123456789abcde"));
        assert!(!t.matches(b"0123456789abcdef0"));
        assert!(!t.matches(b""));
        assert!(!format!("{t:?}").contains("0123"));
        assert!(AdminToken::new("short".into()).is_err());
    }
}
