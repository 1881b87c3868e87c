//! The model registry and the experiment log, in one directory
//! (`models/registry/` by default; not a DVC output, so it accumulates
//! across runs):
//!
//! ```text
//! index.json                 versions, aliases and the alias log (one atomic file)
//! versions/<id>/model.bin    each registered artifact, byte-for-byte
//! versions/<id>/evaluation/  what `evaluate` wrote for it (metrics, gate, plots)
//! experiments.jsonl          one JSON line per training run
//! monitor-actions.jsonl      one JSON line per action the monitor's alarms took
//! .lock                      flock()ed while the index is read-modified-written
//! ```
//!
//! Aliases and their log live in the same file as the versions, so an alias
//! change and its log entry land together or not at all (the index is
//! replaced by an atomic rename). Rollback walks the alias log: every
//! change except a rollback pushes the new version on the alias's history,
//! a rollback pops it, so repeated rollbacks step further back.
//!
//! The lock is a kernel lock (`flock`) on `.lock`, not the file's existence:
//! the kernel releases it when its process ends, however it ends, so a file
//! left by a killed process never blocks anyone. The file itself stays.
//!
//! What the index records is checked before it is trusted: an artifact path
//! must stay inside the registry directory (no `..`, no absolute path, no
//! symlink out of it), and the file must have the SHA-256 and the model
//! version the index recorded ([`Registry::load`]); `promote` and `rollback`
//! check their target the same way and leave the alias alone if it fails.
//!
//! Each alias change records who claimed to make it (`REVSPEND_USER`) and
//! the operating-system user that actually ran the command (`os_user`).
//! Neither is authentication: the registry's integrity rests on who may
//! write its directory (file permissions).

use std::collections::BTreeMap;
use std::fs::{File, TryLockError};
use std::io::Write;
use std::path::{Component, Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::artifact::{self, ArtifactError};
use crate::metrics::BinaryMetrics;
use crate::model::ModelArtifact;

mod identity;
pub use identity::{current_user, now_rfc3339, os_user};

/// Version of the `index.json` layout.
pub const INDEX_FORMAT: u32 = 1;
/// The alias every new version gets.
pub const CANDIDATE: &str = "candidate";
/// The alias `serve` loads by default.
pub const PRODUCTION: &str = "production";

/// Why a registry operation failed.
#[derive(Debug, Error)]
pub enum RegistryError {
    #[error(transparent)]
    Artifact(#[from] ArtifactError),
    #[error("{path}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: registry index format {got}, this build reads {expected}")]
    Format { path: PathBuf, expected: u32, got: u32 },
    #[error("no version or alias {name:?} in the registry at {dir} (versions: {known})")]
    Unknown {
        name: String,
        dir: PathBuf,
        known: String,
    },
    #[error("alias {alias:?} has no earlier version to roll back to")]
    NoPrevious { alias: String },
    #[error("invalid alias {alias:?}: use letters, digits, `-` and `_`, not starting with `v` and a digit")]
    BadAlias { alias: String },
    #[error(
        "{path} is locked by a running train or registry command{}; try again when it \
         has finished (the lock is released when its process ends)",
        .holder.as_deref().map(|p| format!(" (process {p})")).unwrap_or_default()
    )]
    Locked { path: PathBuf, holder: Option<String> },
    #[error(
        "registry {dir}: version {version} has artifact path {artifact:?}, which {reason}; \
         artifact paths must stay inside the registry directory"
    )]
    ArtifactOutside {
        dir: PathBuf,
        version: String,
        artifact: String,
        reason: &'static str,
    },
    #[error("registry version {version}: cannot read its artifact {path}")]
    ArtifactMissing {
        version: String,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "registry version {version}: {path} has SHA-256 {got}, but the registry recorded \
         {recorded}: the file was replaced or corrupted after registration"
    )]
    ArtifactSha256 {
        version: String,
        path: PathBuf,
        recorded: String,
        got: String,
    },
    #[error("registry version {version}: the artifact is not a usable model")]
    ArtifactInvalid {
        version: String,
        // Boxed: the artifact error is large, and every registry call
        // returns this enum.
        #[source]
        source: Box<ArtifactError>,
    },
    #[error(
        "registry version {version}: {path} holds model {got}, but the registry recorded \
         model {recorded}"
    )]
    ModelVersion {
        version: String,
        path: PathBuf,
        recorded: String,
        got: String,
    },
    #[error("cannot point {alias:?} at {version}: the version fails its checks")]
    Unverified {
        alias: String,
        version: String,
        #[source]
        source: Box<RegistryError>,
    },
    #[error("{path}: line {line} is not valid JSON")]
    Log {
        path: PathBuf,
        line: usize,
        #[source]
        source: serde_json::Error,
    },
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> RegistryError + '_ {
    move |source| RegistryError::Io {
        path: path.to_owned(),
        source,
    }
}

/// One registered model version.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VersionEntry {
    /// `v0001`, `v0002`, … in registration order.
    pub version: String,
    /// The artifact's own version (`<algorithm>-<lineage hash>`).
    pub model_version: String,
    /// RFC 3339, UTC.
    pub created: String,
    pub algorithm: String,
    /// The chosen hyper-parameters.
    pub hyperparameters: serde_json::Value,
    pub calibration: String,
    pub threshold: f64,
    pub params_hash: String,
    pub data_hash: String,
    /// `git rev-parse HEAD` of the code that trained it, when known.
    pub git_commit: Option<String>,
    /// Calibrated metrics on the test split.
    pub test_metrics: BinaryMetrics,
    /// Path of the artifact, relative to the registry directory.
    pub artifact: String,
    pub artifact_sha256: String,
}

/// A version read through [`Registry::load`]: its entry, the artifact's
/// path and the model, all checked against each other.
#[derive(Debug)]
pub struct LoadedVersion {
    pub entry: VersionEntry,
    pub path: PathBuf,
    pub model: ModelArtifact,
}

/// What a caller supplies to register a version (the rest is assigned).
#[derive(Debug, Clone, PartialEq)]
pub struct NewVersion {
    pub model_version: String,
    pub algorithm: String,
    pub hyperparameters: serde_json::Value,
    pub calibration: String,
    pub threshold: f64,
    pub params_hash: String,
    pub data_hash: String,
    pub git_commit: Option<String>,
    pub test_metrics: BinaryMetrics,
}

/// One alias change.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AliasChange {
    pub time: String,
    /// Who the caller said they are (`REVSPEND_USER`, else `USER`): a claim.
    pub who: String,
    /// The operating-system user that ran the command: the name of the real
    /// uid with the uid, e.g. `alice (uid 1000)` ([`os_user`]). Absent in
    /// entries written before it was recorded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub os_user: Option<String>,
    pub alias: String,
    pub from: Option<String>,
    pub to: String,
    /// `register`, `bootstrap`, `promote` or `rollback` (or the promotion
    /// gate's verdict). [`Index::alias_history`] reads it: a `rollback`
    /// pops the alias's history, anything else pushes.
    pub reason: String,
    /// Why, in words, when something other than a person asked for the
    /// change (e.g. the monitor's alarm, window and metric). Optional, so
    /// an index written before it existed reads unchanged and the index
    /// format needs no new version.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

/// One action the monitor's alarms took (or tried to take): a line of
/// `monitor-actions.jsonl`. The monitor reads them back so that an alarm
/// never acts twice on the same window.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MonitorAction {
    /// RFC 3339, UTC.
    pub time: String,
    /// Who ran the monitor (`REVSPEND_USER`, else `USER`): a claim.
    pub who: String,
    /// The operating-system user that ran it ([`os_user`]).
    pub os_user: String,
    /// The alarm's name in the alarm file.
    pub alarm: String,
    /// The window the action answered (the newest one the alarm fired on).
    pub window: String,
    /// Every window whose firing this action answered, `window` included.
    #[serde(default)]
    pub covers: Vec<String>,
    /// `notify`, `retrain`, `rollback` or `promote`.
    pub action: String,
    /// `done` or `failed`.
    pub outcome: String,
    /// What was done (the alias change, the request written) or the error.
    pub detail: String,
}

impl MonitorAction {
    /// Whether this record is a done action that answered `window`.
    pub fn acted_on(&self, window: &str) -> bool {
        self.outcome == "done" && (self.window == window || self.covers.iter().any(|w| w == window))
    }
}

/// The registry index.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Index {
    pub format: u32,
    pub versions: Vec<VersionEntry>,
    pub aliases: BTreeMap<String, String>,
    pub alias_log: Vec<AliasChange>,
}

impl Default for Index {
    fn default() -> Index {
        Index {
            format: INDEX_FORMAT,
            versions: Vec::new(),
            aliases: BTreeMap::new(),
            alias_log: Vec::new(),
        }
    }
}

impl Index {
    /// The version named by a version id or an alias.
    pub fn resolve(&self, name: &str) -> Option<&VersionEntry> {
        let id = self.aliases.get(name).map_or(name, String::as_str);
        self.versions.iter().find(|v| v.version == id)
    }

    /// Aliases pointing at `version`.
    pub fn aliases_of(&self, version: &str) -> Vec<&str> {
        self.aliases
            .iter()
            .filter(|(_, v)| v.as_str() == version)
            .map(|(a, _)| a.as_str())
            .collect()
    }

    /// The versions `alias` has pointed at, oldest first, with rolled-back
    /// ones removed: the last is the current one.
    pub fn alias_history(&self, alias: &str) -> Vec<&str> {
        let mut stack: Vec<&str> = Vec::new();
        for change in self.alias_log.iter().filter(|c| c.alias == alias) {
            if change.reason == "rollback" {
                stack.pop();
            } else {
                stack.push(&change.to);
            }
        }
        stack
    }

    fn set_alias(&mut self, alias: &str, to: &str, reason: &str, who: &str, time: &str) {
        self.set_alias_noted(alias, to, reason, who, time, None);
    }

    fn set_alias_noted(
        &mut self,
        alias: &str,
        to: &str,
        reason: &str,
        who: &str,
        time: &str,
        note: Option<&str>,
    ) {
        let from = self.aliases.insert(alias.to_owned(), to.to_owned());
        self.alias_log.push(AliasChange {
            time: time.to_owned(),
            who: who.to_owned(),
            os_user: Some(os_user()),
            alias: alias.to_owned(),
            from,
            to: to.to_owned(),
            reason: reason.to_owned(),
            note: note.map(str::to_owned),
        });
    }
}

/// A registry directory.
#[derive(Debug, Clone)]
pub struct Registry {
    dir: PathBuf,
}

/// Held while the index is being changed: the open lock file, whose kernel
/// lock is released when this is dropped or the process ends. The file is
/// never removed (removing it while another process waits on it would let
/// two processes hold "the" lock at once).
#[derive(Debug)]
struct LockGuard {
    _file: File,
}

impl Registry {
    /// The registry in `dir` (created on the first registration).
    pub fn new(dir: impl Into<PathBuf>) -> Registry {
        Registry { dir: dir.into() }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn index_path(&self) -> PathBuf {
        self.dir.join("index.json")
    }

    pub fn experiments_path(&self) -> PathBuf {
        self.dir.join("experiments.jsonl")
    }

    /// The monitor's action log.
    pub fn monitor_actions_path(&self) -> PathBuf {
        self.dir.join("monitor-actions.jsonl")
    }

    /// The index; an empty one when nothing was registered yet.
    pub fn index(&self) -> Result<Index, RegistryError> {
        let path = self.index_path();
        if !path.exists() {
            return Ok(Index::default());
        }
        let index: Index = artifact::read_json(&path)?;
        if index.format != INDEX_FORMAT {
            return Err(RegistryError::Format {
                path,
                expected: INDEX_FORMAT,
                got: index.format,
            });
        }
        Ok(index)
    }

    /// The entry for a version id or alias.
    pub fn resolve(&self, name: &str) -> Result<VersionEntry, RegistryError> {
        let index = self.index()?;
        index
            .resolve(name)
            .cloned()
            .ok_or_else(|| self.unknown(&index, name))
    }

    /// The artifact file of a version id or alias, checked to lie inside
    /// the registry directory (see [`Registry::artifact_path`]).
    pub fn model_path(&self, name: &str) -> Result<PathBuf, RegistryError> {
        self.artifact_path(&self.resolve(name)?)
    }

    /// The directory holding the evaluation of version `name` (an id or an
    /// alias): `versions/<id>/evaluation/`, beside its artifact.
    pub fn evaluation_dir(&self, name: &str) -> Result<PathBuf, RegistryError> {
        let entry = self.resolve(name)?;
        let artifact = self.artifact_path(&entry)?;
        Ok(artifact
            .parent()
            .map_or_else(
                || self.dir.join("versions").join(&entry.version),
                Path::to_path_buf,
            )
            .join("evaluation"))
    }

    /// Stores the evaluation files of version `name` (relative names such
    /// as `metrics.json` or `plots/roc.png`, each written atomically; a
    /// name that is absolute or goes up is refused), replacing the files of
    /// the same names; returns the directory.
    pub fn store_evaluation(
        &self,
        name: &str,
        files: &[(String, Vec<u8>)],
    ) -> Result<PathBuf, RegistryError> {
        let dir = self.evaluation_dir(name)?;
        for (file, bytes) in files {
            let relative = Path::new(file);
            if file.is_empty() || !relative.components().all(|c| matches!(c, Component::Normal(_))) {
                return Err(RegistryError::Io {
                    path: dir.join(relative),
                    source: std::io::Error::new(
                        std::io::ErrorKind::InvalidInput,
                        format!(
                            "evaluation file name {file:?} must be relative and stay inside {}",
                            dir.display()
                        ),
                    ),
                });
            }
            let path = dir.join(relative);
            if let Some(parent) = path.parent() {
                std::fs::create_dir_all(parent).map_err(io_err(parent))?;
            }
            artifact::write_atomic(&path, bytes)?;
        }
        Ok(dir)
    }

    /// The evaluation files stored with version `name`, relative and sorted
    /// (empty when it was never evaluated).
    pub fn evaluation_files(&self, name: &str) -> Result<Vec<String>, RegistryError> {
        let dir = self.evaluation_dir(name)?;
        let mut out = Vec::new();
        let mut stack = vec![dir.clone()];
        while let Some(d) = stack.pop() {
            let Ok(entries) = std::fs::read_dir(&d) else {
                continue;
            };
            for e in entries {
                let path = e.map_err(io_err(&d))?.path();
                if path.is_dir() {
                    stack.push(path);
                } else if let Ok(rel) = path.strip_prefix(&dir)
                    && !rel
                        .file_name()
                        .is_some_and(|n| artifact::is_temp_name(&n.to_string_lossy()))
                {
                    out.push(rel.to_string_lossy().into_owned());
                }
            }
        }
        out.sort();
        Ok(out)
    }

    /// The artifact file of an entry. Its recorded path must be relative,
    /// without `..`, and must not lead out of the registry directory through
    /// a symlink: an index entry pointing elsewhere is refused, naming it.
    pub fn artifact_path(&self, entry: &VersionEntry) -> Result<PathBuf, RegistryError> {
        let outside = |reason| RegistryError::ArtifactOutside {
            dir: self.dir.clone(),
            version: entry.version.clone(),
            artifact: entry.artifact.clone(),
            reason,
        };
        let relative = Path::new(&entry.artifact);
        if entry.artifact.is_empty() {
            return Err(outside("is empty"));
        }
        for component in relative.components() {
            match component {
                Component::Normal(_) => {}
                Component::CurDir => {}
                Component::ParentDir => return Err(outside("goes up with `..`")),
                Component::RootDir | Component::Prefix(_) => return Err(outside("is absolute")),
            }
        }
        let path = self.dir.join(relative);
        // A symlink (the file or a directory on the way) may still lead out.
        // Only an existing file can be resolved; a missing one is reported
        // when it is read.
        if let Ok(real) = path.canonicalize() {
            let dir = self.dir.canonicalize().map_err(io_err(&self.dir))?;
            if !real.starts_with(&dir) {
                return Err(outside("leads out of the registry through a symlink"));
            }
        }
        Ok(path)
    }

    /// Reads and checks the model a version id or alias names: the path
    /// stays inside the registry, the file's SHA-256 is the one recorded at
    /// registration, the envelope and checksum are valid, and the model is
    /// the model version the index records.
    pub fn load(&self, name: &str) -> Result<LoadedVersion, RegistryError> {
        let entry = self.resolve(name)?;
        let (path, model) = self.verify(&entry)?;
        Ok(LoadedVersion { entry, path, model })
    }

    /// The checks of [`Registry::load`] on one entry.
    fn verify(&self, entry: &VersionEntry) -> Result<(PathBuf, ModelArtifact), RegistryError> {
        let path = self.artifact_path(entry)?;
        let bytes = std::fs::read(&path).map_err(|source| RegistryError::ArtifactMissing {
            version: entry.version.clone(),
            path: path.clone(),
            source,
        })?;
        let got = artifact::sha256_hex(&bytes);
        if got != entry.artifact_sha256 {
            return Err(RegistryError::ArtifactSha256 {
                version: entry.version.clone(),
                path,
                recorded: entry.artifact_sha256.clone(),
                got,
            });
        }
        let model =
            artifact::decode_model(&path, &bytes).map_err(|source| RegistryError::ArtifactInvalid {
                version: entry.version.clone(),
                source: Box::new(source),
            })?;
        if model.model_version != entry.model_version {
            return Err(RegistryError::ModelVersion {
                version: entry.version.clone(),
                path,
                recorded: entry.model_version.clone(),
                got: model.model_version,
            });
        }
        Ok((path, model))
    }

    /// [`Registry::verify`] for an alias change: the error says the alias
    /// was left alone.
    fn verify_target(&self, index: &Index, alias: &str, version: &str) -> Result<(), RegistryError> {
        let entry = index
            .resolve(version)
            .ok_or_else(|| self.unknown(index, version))?;
        self.verify(entry)
            .map(|_| ())
            .map_err(|source| RegistryError::Unverified {
                alias: alias.to_owned(),
                version: version.to_owned(),
                source: Box::new(source),
            })
    }

    fn unknown(&self, index: &Index, name: &str) -> RegistryError {
        let mut known: Vec<String> = index.versions.iter().map(|v| v.version.clone()).collect();
        known.extend(index.aliases.keys().cloned());
        RegistryError::Unknown {
            name: name.to_owned(),
            dir: self.dir.clone(),
            known: if known.is_empty() {
                "none".into()
            } else {
                known.join(", ")
            },
        }
    }

    fn lock(&self) -> Result<LockGuard, RegistryError> {
        std::fs::create_dir_all(&self.dir).map_err(io_err(&self.dir))?;
        let path = self.dir.join(".lock");
        let mut file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(io_err(&path))?;
        // Registrations take milliseconds; wait a little for another one.
        // Only a live process can hold the lock, so this waits only for one.
        for _ in 0..100 {
            match file.try_lock() {
                Ok(()) => {
                    // For a person looking at the file: who holds it now.
                    let _ = file.set_len(0);
                    let _ = writeln!(file, "{}", std::process::id());
                    // Holding the lock, no other writer is mid-write: a
                    // temporary file here is a killed writer's leftover.
                    for leftover in artifact::remove_temp_files(&self.dir)? {
                        log::info!(
                            "removed {}, left by an interrupted registry write",
                            leftover.display()
                        );
                    }
                    return Ok(LockGuard { _file: file });
                }
                Err(TryLockError::WouldBlock) => std::thread::sleep(Duration::from_millis(50)),
                Err(TryLockError::Error(e)) => return Err(io_err(&path)(e)),
            }
        }
        let holder = std::fs::read_to_string(&path)
            .ok()
            .map(|t| t.trim().to_owned())
            .filter(|t| !t.is_empty());
        Err(RegistryError::Locked { path, holder })
    }

    fn write_index(&self, index: &Index) -> Result<(), RegistryError> {
        Ok(artifact::write_json(&self.index_path(), index)?)
    }

    /// Registers a model file's bytes as a new version and points
    /// `candidate` at it. When no `production` alias exists yet, the new
    /// version also becomes `production` (reason `bootstrap`), so a fresh
    /// pipeline can be served at once.
    pub fn register(
        &self,
        model_bytes: &[u8],
        new: NewVersion,
        who: &str,
    ) -> Result<VersionEntry, RegistryError> {
        let _lock = self.lock()?;
        let mut index = self.index()?;
        let next = index
            .versions
            .iter()
            .filter_map(|v| v.version.strip_prefix('v')?.parse::<u64>().ok())
            .max()
            .unwrap_or(0)
            + 1;
        let version = format!("v{next:04}");
        let relative = format!("versions/{version}/model.bin");
        // A registration killed before its index write left this version's
        // folder (and perhaps a temporary file in it); it is reused.
        artifact::remove_temp_files(&self.dir.join("versions").join(&version))?;
        artifact::write_atomic(&self.dir.join(&relative), model_bytes)?;
        let time = now_rfc3339();
        let entry = VersionEntry {
            version: version.clone(),
            model_version: new.model_version,
            created: time.clone(),
            algorithm: new.algorithm,
            hyperparameters: new.hyperparameters,
            calibration: new.calibration,
            threshold: new.threshold,
            params_hash: new.params_hash,
            data_hash: new.data_hash,
            git_commit: new.git_commit,
            test_metrics: new.test_metrics,
            artifact: relative,
            artifact_sha256: artifact::sha256_hex(model_bytes),
        };
        index.versions.push(entry.clone());
        index.set_alias(CANDIDATE, &version, "register", who, &time);
        if !index.aliases.contains_key(PRODUCTION) {
            index.set_alias(PRODUCTION, &version, "bootstrap", who, &time);
        }
        self.write_index(&index)?;
        Ok(entry)
    }

    /// Points `alias` at the version `name` (a version id or an alias) and
    /// returns the change.
    pub fn promote(&self, name: &str, alias: &str, who: &str) -> Result<AliasChange, RegistryError> {
        self.promote_because(name, alias, who, "promote")
    }

    /// [`Registry::promote`], logging `reason` (e.g. the promotion gate's
    /// verdict) as the change's reason.
    pub fn promote_because(
        &self,
        name: &str,
        alias: &str,
        who: &str,
        reason: &str,
    ) -> Result<AliasChange, RegistryError> {
        self.promote_noted(name, alias, who, reason, None)
    }

    /// [`Registry::promote_because`], with a note saying why in words
    /// (e.g. the monitor's alarm) logged beside the reason.
    pub fn promote_noted(
        &self,
        name: &str,
        alias: &str,
        who: &str,
        reason: &str,
        note: Option<&str>,
    ) -> Result<AliasChange, RegistryError> {
        check_alias(alias)?;
        let _lock = self.lock()?;
        let mut index = self.index()?;
        let to = index
            .resolve(name)
            .map(|v| v.version.clone())
            .ok_or_else(|| self.unknown(&index, name))?;
        // A server restarted on a missing or garbage file would be down:
        // check the target first and leave the alias alone if it fails.
        self.verify_target(&index, alias, &to)?;
        index.set_alias_noted(alias, &to, reason, who, &now_rfc3339(), note);
        self.write_index(&index)?;
        Ok(index
            .alias_log
            .last()
            .cloned()
            .unwrap_or_else(|| unreachable!("just logged")))
    }

    /// Points `alias` back at the version it had before its current one.
    pub fn rollback(&self, alias: &str, who: &str) -> Result<AliasChange, RegistryError> {
        self.rollback_noted(alias, who, None)
    }

    /// [`Registry::rollback`], with a note saying why in words (e.g. the
    /// monitor's alarm). The reason stays `rollback`, which is what
    /// [`Index::alias_history`] pops on.
    pub fn rollback_noted(
        &self,
        alias: &str,
        who: &str,
        note: Option<&str>,
    ) -> Result<AliasChange, RegistryError> {
        let _lock = self.lock()?;
        let mut index = self.index()?;
        let history = index.alias_history(alias);
        let Some(&previous) = history.len().checked_sub(2).and_then(|i| history.get(i)) else {
            return Err(RegistryError::NoPrevious {
                alias: alias.to_owned(),
            });
        };
        let previous = previous.to_owned();
        self.verify_target(&index, alias, &previous)?;
        index.set_alias_noted(alias, &previous, "rollback", who, &now_rfc3339(), note);
        self.write_index(&index)?;
        Ok(index
            .alias_log
            .last()
            .cloned()
            .unwrap_or_else(|| unreachable!("just logged")))
    }

    /// Appends one record to the experiment log (one line, one `write`).
    pub fn append_experiment(&self, record: &serde_json::Value) -> Result<(), RegistryError> {
        self.append_line(&self.experiments_path(), record)
    }

    /// Appends one record to the monitor's action log, under the lock.
    pub fn append_monitor_action(&self, record: &MonitorAction) -> Result<(), RegistryError> {
        self.append_line(&self.monitor_actions_path(), record)
    }

    /// Every record of the monitor's action log, oldest first (none when
    /// the monitor never acted).
    pub fn monitor_actions(&self) -> Result<Vec<MonitorAction>, RegistryError> {
        read_lines(&self.monitor_actions_path())
    }

    /// Appends `record` as one JSON line, in one `write`, under the lock.
    fn append_line<T: Serialize>(&self, path: &Path, record: &T) -> Result<(), RegistryError> {
        let _lock = self.lock()?;
        let path = path.to_owned();
        let mut line = serde_json::to_vec(record).map_err(|source| ArtifactError::Json {
            path: path.clone(),
            source,
        })?;
        line.push(b'\n');
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(io_err(&path))?;
        f.write_all(&line).map_err(io_err(&path))?;
        f.sync_all().map_err(io_err(&path))?;
        Ok(())
    }

    /// Every record of the experiment log, oldest first.
    pub fn experiments(&self) -> Result<Vec<serde_json::Value>, RegistryError> {
        read_lines(&self.experiments_path())
    }
}

/// The records of a JSON-lines log, oldest first; none when it does not
/// exist. A bad line is an error naming it.
fn read_lines<T: serde::de::DeserializeOwned>(path: &Path) -> Result<Vec<T>, RegistryError> {
    if !path.exists() {
        return Ok(Vec::new());
    }
    let text = std::fs::read_to_string(path).map_err(io_err(path))?;
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, l)| {
            serde_json::from_str(l).map_err(|source| RegistryError::Log {
                path: path.to_owned(),
                line: i + 1,
                source,
            })
        })
        .collect()
}

fn check_alias(alias: &str) -> Result<(), RegistryError> {
    let looks_like_version = alias.starts_with('v') && alias[1..].starts_with(|c: char| c.is_ascii_digit());
    let ok = !alias.is_empty()
        && !looks_like_version
        && alias
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    if ok {
        Ok(())
    } else {
        Err(RegistryError::BadAlias {
            alias: alias.to_owned(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aliases_must_not_look_like_versions() {
        assert!(check_alias("production").is_ok());
        assert!(check_alias("shadow-2").is_ok());
        assert!(check_alias("v2").is_err());
        assert!(check_alias("").is_err());
        assert!(check_alias("a b").is_err());
    }

    #[test]
    fn rollbacks_pop_the_alias_history() {
        let mut index = Index::default();
        for (to, reason) in [("v0001", "bootstrap"), ("v0002", "promote"), ("v0003", "promote")] {
            index.set_alias(PRODUCTION, to, reason, "t", "now");
        }
        assert_eq!(index.alias_history(PRODUCTION), ["v0001", "v0002", "v0003"]);
        index.set_alias(PRODUCTION, "v0002", "rollback", "t", "now");
        assert_eq!(index.alias_history(PRODUCTION), ["v0001", "v0002"]);
    }

    /// An index written before alias changes had a note reads unchanged,
    /// and a change without a note is written as before (no format bump).
    #[test]
    fn the_note_is_optional_in_the_index() {
        let old = r#"{"format": 1, "versions": [], "aliases": {"production": "v0001"},
            "alias_log": [{"time": "t", "who": "w", "alias": "production", "from": null,
                           "to": "v0001", "reason": "bootstrap"}]}"#;
        let index: Index = serde_json::from_str(old).expect("an old index reads");
        assert_eq!(index.alias_log[0].note, None);
        let written = serde_json::to_string(&index).expect("serialise");
        assert!(!written.contains("note"), "{written}");

        let mut index = Index::default();
        index.set_alias(PRODUCTION, "v0001", "bootstrap", "t", "now");
        index.set_alias(PRODUCTION, "v0002", "promote", "t", "now");
        index.set_alias_noted(PRODUCTION, "v0001", "rollback", "t", "now", Some("alarm x"));
        assert_eq!(
            index.alias_history(PRODUCTION),
            ["v0001"],
            "a noted rollback still pops"
        );
        let back: Index =
            serde_json::from_str(&serde_json::to_string(&index).expect("serialise")).expect("read");
        assert_eq!(back.alias_log[2].note.as_deref(), Some("alarm x"));
    }

    #[test]
    fn the_monitor_action_log_appends_and_reads_back() {
        let dir = tempfile::tempdir().expect("temp dir");
        let reg = Registry::new(dir.path().join("registry"));
        assert!(reg.monitor_actions().expect("no log yet").is_empty());
        let record = |window: &str, outcome: &str| MonitorAction {
            time: "2020-08-01T00:00:00Z".into(),
            who: "monitor".into(),
            os_user: os_user(),
            alarm: "dataset_drift".into(),
            window: window.into(),
            covers: vec!["2020-06".into(), window.into()],
            action: "retrain".into(),
            outcome: outcome.into(),
            detail: "wrote the request".into(),
        };
        reg.append_monitor_action(&record("2020-07", "done"))
            .expect("append");
        reg.append_monitor_action(&record("2020-08", "failed"))
            .expect("append");
        let log = reg.monitor_actions().expect("read");
        assert_eq!(log, [record("2020-07", "done"), record("2020-08", "failed")]);
        assert!(log[0].acted_on("2020-07") && log[0].acted_on("2020-06"));
        assert!(!log[0].acted_on("2020-08"));
        assert!(!log[1].acted_on("2020-08"), "a failed action did not act");

        std::fs::write(reg.monitor_actions_path(), "{\"time\": 1}\n").expect("write");
        let err = reg.monitor_actions().expect_err("a bad line").to_string();
        assert!(err.contains("line 1"), "{err}");
    }
}
