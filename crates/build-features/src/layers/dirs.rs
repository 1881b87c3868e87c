//! Which directories are a layer's, and what in them is the layer's own:
//! the marker a layer directory carries, the layer's naming scheme, the
//! check a directory flag must pass before anything is written, and the
//! clean-ups (unlisted partitions, temporary files, empty directories) that
//! delete only files of that scheme inside a marked directory.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use revspend_core::artifact;
use serde::{Deserialize, Serialize};

use super::MANIFEST;

/// The marker file a layer directory carries: `{"layer": "<kind>"}`. The
/// stage writes it when it first uses a directory as a layer, and deletes
/// files only inside a directory that carries it (see [`check_layer_dir`]).
pub const MARKER: &str = "_layer.json";

/// Which layer a directory holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LayerKind {
    Staged,
    Features,
}

/// The marker file's content.
#[derive(Debug, Serialize, Deserialize)]
struct Marker {
    layer: String,
}

impl LayerKind {
    /// The name written in the marker.
    pub fn name(self) -> &'static str {
        match self {
            LayerKind::Staged => "staged",
            LayerKind::Features => "features",
        }
    }

    /// The layer, for messages.
    pub fn describe(self) -> &'static str {
        match self {
            LayerKind::Staged => "staged layer",
            LayerKind::Features => "feature layer",
        }
    }

    /// The flag that names the directory, for messages.
    pub fn flag(self) -> &'static str {
        match self {
            LayerKind::Staged => "--staged-dir",
            LayerKind::Features => "--features-dir",
        }
    }

    /// Whether the directory `rel` (components relative to the layer's
    /// root; empty for the root) is one the layer writes.
    fn owns_dir(self, rel: &[&str]) -> bool {
        match rel {
            [] => true,
            [year] => is_year_dir(year) || (self == LayerKind::Staged && *year == "quarantine"),
            [year, month] => is_year_dir(year) && is_month_dir(month),
            _ => false,
        }
    }

    /// Whether the file `rel` (components relative to the layer's root)
    /// follows the layer's naming scheme: the manifest and marker at the
    /// root, partitions (`year=YYYY/month=MM/…parquet`), staged quarantine
    /// files, and the `.tmp-` files an interrupted atomic write leaves in
    /// any of these directories.
    fn owns_file(self, rel: &[&str]) -> bool {
        let Some((name, dir)) = rel.split_last() else {
            return false;
        };
        if !self.owns_dir(dir) {
            return false;
        }
        if artifact::is_temp_name(name) {
            return true;
        }
        match (self, dir) {
            (_, []) => *name == MANIFEST || *name == MARKER,
            (LayerKind::Staged, ["quarantine"]) => is_staged_stem(name, ".csv"),
            (LayerKind::Staged, [_, _]) => is_staged_stem(name, ".parquet"),
            (LayerKind::Features, [_, _]) => *name == "part.parquet",
            _ => false,
        }
    }
}

fn is_year_dir(name: &str) -> bool {
    name.strip_prefix("year=")
        .is_some_and(|y| y.len() == 4 && y.bytes().all(|b| b.is_ascii_digit()))
}

fn is_month_dir(name: &str) -> bool {
    name.strip_prefix("month=")
        .is_some_and(|m| m.len() == 2 && m.bytes().all(|b| b.is_ascii_digit()))
}

/// `<stem>-<12 hex digits><ext>`, the [`StagedFile::stem`] of a raw file.
fn is_staged_stem(name: &str, ext: &str) -> bool {
    name.strip_suffix(ext)
        .and_then(|stem| {
            let at = stem
                .len()
                .checked_sub(13)
                .filter(|&at| stem.is_char_boundary(at))?;
            Some(stem.split_at(at))
        })
        .is_some_and(|(head, tail)| {
            !head.is_empty()
                && tail.starts_with('-')
                && tail[1..]
                    .bytes()
                    .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        })
}

/// A layer directory checked by [`check_layer_dir`], whose marker
/// [`LayerDir::mark`] writes when it is missing.
#[derive(Debug)]
#[must_use]
pub struct LayerDir {
    dir: PathBuf,
    kind: LayerKind,
    marked: bool,
}

impl LayerDir {
    /// Writes the marker if the directory does not carry it yet (a new
    /// directory, or a layer of the previous release, adopted).
    pub fn mark(self) -> Result<()> {
        if !self.marked {
            artifact::write_json(
                &self.dir.join(MARKER),
                &Marker {
                    layer: self.kind.name().to_owned(),
                },
            )?;
        }
        Ok(())
    }
}

/// Checks that `dir` may be used as the `kind` layer, writing nothing: it
/// does not exist or is empty, or carries the layer's marker, or holds the
/// layer's manifest (a layer of the previous release, which had no marker;
/// adopted); and every file in it follows the layer's naming scheme. A
/// wrong directory flag (`--staged-dir data`) is refused here, before the
/// end-of-run clean-up could delete files that are not the pipeline's.
pub fn check_layer_dir(dir: &Path, kind: LayerKind) -> Result<LayerDir> {
    let refuse = |why: String| {
        anyhow::anyhow!(
            "{} {} cannot be the {}: {why}; nothing was written or deleted. Point {} at the layer's own \
             directory (or at a new or empty one), or move the file out",
            kind.flag(),
            dir.display(),
            kind.describe(),
            kind.flag()
        )
    };
    let marker = dir.join(MARKER);
    let marked = if marker.exists() {
        let m: Marker = artifact::read_json(&marker).map_err(|e| refuse(format!("{e}")))?;
        if m.layer != kind.name() {
            return Err(refuse(format!(
                "its marker {} says it holds the {:?} layer",
                marker.display(),
                m.layer
            )));
        }
        true
    } else {
        false
    };
    if !marked && let Some(first) = first_file(dir)? {
        let manifest = dir.join(MANIFEST);
        let key = match kind {
            LayerKind::Staged => "files",
            LayerKind::Features => "months",
        };
        let adoptable = manifest.exists()
            && artifact::read_json::<serde_json::Value>(&manifest)
                .is_ok_and(|m| m.get("version").is_some() && m.get(key).is_some_and(|v| v.is_object()));
        if !adoptable {
            return Err(refuse(format!(
                "it is not empty and carries neither the layer's marker {MARKER} nor its manifest (it holds {})",
                first.display()
            )));
        }
        log::info!(
            "{}: a {} of the previous release (a manifest, no marker): adopted",
            dir.display(),
            kind.describe()
        );
    }
    // Only a directory that is the layer's (marked, adopted or empty) is
    // walked whole: a flag pointed at `/` or a home directory is refused
    // after its first file, not after listing everything below it.
    let mut files = Vec::new();
    walk(dir, &mut Vec::new(), &mut |rel, path| {
        files.push((rel.join("/"), path.to_owned()));
    })?;
    // Sorted, so that the file a refusal names is the same every time.
    files.sort();
    for (rel, path) in &files {
        let parts: Vec<&str> = rel.split('/').collect();
        if !kind.owns_file(&parts) {
            return Err(refuse(format!(
                "it holds {}, which is not a file of the {}",
                path.display(),
                kind.describe()
            )));
        }
    }
    Ok(LayerDir {
        dir: dir.to_owned(),
        kind,
        marked,
    })
}

/// The first file below `dir` in name order (depth first, directories
/// entered in name order, symbolic links not followed), or `None` when it
/// holds no file; stops at that file.
fn first_file(dir: &Path) -> Result<Option<PathBuf>> {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e).with_context(|| format!("listing {}", dir.display())),
    };
    let mut entries: Vec<std::fs::DirEntry> = entries
        .collect::<std::io::Result<_>>()
        .with_context(|| format!("listing {}", dir.display()))?;
    entries.sort_by_key(std::fs::DirEntry::file_name);
    for entry in entries {
        let is_dir = entry
            .file_type()
            .with_context(|| format!("listing {}", dir.display()))?
            .is_dir();
        if !is_dir {
            return Ok(Some(entry.path()));
        }
        if let Some(found) = first_file(&entry.path())? {
            return Ok(Some(found));
        }
    }
    Ok(None)
}

/// Calls `visit` with every file below `dir` (its components relative to
/// the root, and its path), in no particular order. A missing `dir` has
/// no files.
fn walk(dir: &Path, rel: &mut Vec<String>, visit: &mut dyn FnMut(&[String], &Path)) -> Result<()> {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && rel.is_empty() => return Ok(()),
        Err(e) => return Err(e).with_context(|| format!("listing {}", dir.display())),
    };
    for entry in entries {
        let entry = entry.with_context(|| format!("listing {}", dir.display()))?;
        let path = entry.path();
        rel.push(entry.file_name().to_string_lossy().into_owned());
        // Not followed: a symbolic link is judged by its own name.
        let is_dir = entry
            .file_type()
            .with_context(|| format!("listing {}", dir.display()))?
            .is_dir();
        if is_dir {
            walk(&path, rel, visit)?;
        } else {
            visit(rel, &path);
        }
        rel.pop();
    }
    Ok(())
}

/// Removes every file of the `kind` layer's naming scheme under `dir` that
/// is neither the manifest, the marker nor in `keep` (relative paths), then
/// the layer's empty partition directories: leftovers of an interrupted run
/// (temporary files among them) or of partitions that were replaced. A file
/// outside the naming scheme is never deleted (the directory was checked by
/// [`check_layer_dir`] at the start of the run; one that appeared since is
/// left where it is, with a warning).
pub fn remove_unlisted(dir: &Path, kind: LayerKind, keep: &BTreeSet<String>) -> Result<()> {
    if !carries_marker(dir) {
        return Ok(());
    }
    let mut doomed = Vec::new();
    walk(dir, &mut Vec::new(), &mut |rel, path| {
        let parts: Vec<&str> = rel.iter().map(String::as_str).collect();
        let joined = rel.join("/");
        if !kind.owns_file(&parts) {
            log::warn!(
                "{} is not a file of the {}; left in place",
                path.display(),
                kind.describe()
            );
        } else if parts != [MANIFEST] && parts != [MARKER] && !keep.contains(&joined) {
            doomed.push(path.to_owned());
        }
    })?;
    for path in &doomed {
        std::fs::remove_file(path).with_context(|| format!("removing {}", path.display()))?;
    }
    remove_empty_dirs(dir, kind, &mut Vec::new())?;
    Ok(())
}

/// Removes the temporary files (`.tmp-…`) an interrupted run left in the
/// `kind` layer under `dir`; only the layer's own directories are searched.
pub fn remove_temp_files(dir: &Path, kind: LayerKind) -> Result<()> {
    if !carries_marker(dir) {
        return Ok(());
    }
    let mut doomed = Vec::new();
    walk(dir, &mut Vec::new(), &mut |rel, path| {
        let parts: Vec<&str> = rel.iter().map(String::as_str).collect();
        if parts.last().is_some_and(|n| artifact::is_temp_name(n)) && kind.owns_file(&parts) {
            doomed.push(path.to_owned());
        }
    })?;
    for path in &doomed {
        log::info!("removing {}, left by an interrupted run", path.display());
        std::fs::remove_file(path).with_context(|| format!("removing {}", path.display()))?;
    }
    Ok(())
}

/// Whether `dir` carries a layer marker: nothing is ever deleted from a
/// directory that does not (the run checked and marked both layers first).
fn carries_marker(dir: &Path) -> bool {
    let marked = dir.join(MARKER).is_file();
    if !marked {
        log::warn!(
            "{} carries no layer marker {MARKER}: nothing removed from it",
            dir.display()
        );
    }
    marked
}

/// Removes the layer's empty directories below `dir`; returns whether
/// `dir` itself is now empty.
fn remove_empty_dirs(dir: &Path, kind: LayerKind, rel: &mut Vec<String>) -> Result<bool> {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(true),
        Err(e) => return Err(e).with_context(|| format!("listing {}", dir.display())),
    };
    let mut empty = true;
    for entry in entries {
        let entry = entry.with_context(|| format!("listing {}", dir.display()))?;
        let path = entry.path();
        let is_dir = entry
            .file_type()
            .with_context(|| format!("listing {}", dir.display()))?
            .is_dir();
        rel.push(entry.file_name().to_string_lossy().into_owned());
        let parts: Vec<&str> = rel.iter().map(String::as_str).collect();
        if is_dir && kind.owns_dir(&parts) && remove_empty_dirs(&path, kind, rel)? {
            std::fs::remove_dir(&path).with_context(|| format!("removing {}", path.display()))?;
        } else {
            empty = false;
        }
        rel.pop();
    }
    Ok(empty)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unlisted_files_are_removed() {
        let dir = tempfile::tempdir().expect("tempdir");
        let keep = dir.path().join("year=2020/month=01/part.parquet");
        let stale = dir.path().join("year=2020/month=02/part.parquet");
        for p in [&keep, &stale] {
            std::fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
            std::fs::write(p, b"x").expect("write");
        }
        std::fs::write(dir.path().join(MANIFEST), b"{}").expect("manifest");
        std::fs::write(dir.path().join(MARKER), br#"{"layer":"features"}"#).expect("marker");
        let listed = BTreeSet::from(["year=2020/month=01/part.parquet".to_owned()]);
        remove_unlisted(dir.path(), LayerKind::Features, &listed).expect("clean");
        assert!(keep.exists());
        assert!(!stale.exists());
        assert!(!dir.path().join("year=2020/month=02").exists());
        assert!(dir.path().join(MANIFEST).exists());
    }

    fn owns(kind: LayerKind, rel: &str) -> bool {
        kind.owns_file(&rel.split('/').collect::<Vec<_>>())
    }

    /// Issue 12: the clean-up's naming scheme is the layers' own files.
    #[test]
    fn the_naming_scheme_is_the_layers_own_files() {
        use LayerKind::{Features, Staged};
        for rel in [
            "_manifest.json",
            "_layer.json",
            ".tmp-a1B2c3",
            "year=2020/month=01/day-01-abcdef012345.parquet",
            "year=2020/month=01/.tmp-x1Y2z3",
            "quarantine/day-01-abcdef012345.csv",
            "quarantine/.tmp-Q9w8E7",
        ] {
            assert!(owns(Staged, rel), "{rel}");
        }
        for rel in [
            "day-01.csv",
            "raw/day-01.csv",
            "year=2020/month=01/day-01.parquet",
            "year=2020/month=01/part.parquet",
            "year=2020/notes.txt",
            "year=20/month=01/day-01-abcdef012345.parquet",
            "quarantine/day-01.csv",
            "raw/.tmp-x",
        ] {
            assert!(!owns(Staged, rel), "{rel}");
        }
        assert!(owns(Features, "year=2020/month=01/part.parquet"));
        assert!(owns(Features, "year=2020/month=01/.tmp-Ab12Cd"));
        assert!(!owns(Features, "year=2020/month=01/day-01-abcdef012345.parquet"));
        assert!(!owns(Features, "quarantine/day-01-abcdef012345.csv"));
        assert!(!owns(Features, "notes.txt"));
    }

    /// Issue 12: `--staged-dir data` deleted the raw files. A directory
    /// that is neither new, empty nor marked (or adoptable) is refused
    /// naming a file and the flag; a marked one holding a foreign file is
    /// refused too, and the clean-up never deletes such a file.
    #[test]
    fn a_directory_that_is_not_the_layers_is_refused_and_left_alone() {
        let dir = tempfile::tempdir().expect("tempdir");
        let raw = dir.path().join("raw/day-01.csv");
        std::fs::create_dir_all(raw.parent().expect("parent")).expect("mkdir");
        std::fs::write(&raw, b"id;...").expect("raw");
        let err = check_layer_dir(dir.path(), LayerKind::Staged).expect_err("not a layer");
        let msg = err.to_string();
        assert!(
            msg.contains("day-01.csv") && msg.contains("--staged-dir"),
            "{msg}"
        );
        assert!(!dir.path().join(MARKER).exists());

        // New or empty: taken, and marked.
        let layer = dir.path().join("staged");
        check_layer_dir(&layer, LayerKind::Staged)
            .expect("new")
            .mark()
            .expect("mark");
        assert!(layer.join(MARKER).exists());
        let err = check_layer_dir(&layer, LayerKind::Features).expect_err("another kind");
        assert!(err.to_string().contains("--features-dir"), "{err}");

        // Marked, with a foreign file: refused, and never cleaned up.
        let foreign = layer.join("year=2020/notes.txt");
        std::fs::create_dir_all(foreign.parent().expect("parent")).expect("mkdir");
        std::fs::write(&foreign, b"mine").expect("foreign");
        let err = check_layer_dir(&layer, LayerKind::Staged).expect_err("foreign file");
        assert!(err.to_string().contains("notes.txt"), "{err}");
        remove_unlisted(&layer, LayerKind::Staged, &BTreeSet::new()).expect("clean");
        assert!(foreign.exists() && layer.join(MARKER).exists());

        // A layer of the previous release (manifest, no marker) is adopted.
        let old = dir.path().join("features");
        std::fs::create_dir_all(old.join("year=2020/month=01")).expect("mkdir");
        std::fs::write(old.join("year=2020/month=01/part.parquet"), b"x").expect("part");
        std::fs::write(
            old.join(MANIFEST),
            br#"{"version":1,"fingerprint":"f","months":{}}"#,
        )
        .expect("manifest");
        check_layer_dir(&old, LayerKind::Features)
            .expect("adopted")
            .mark()
            .expect("mark");
        assert!(old.join(MARKER).exists());
        assert!(
            check_layer_dir(&old, LayerKind::Staged).is_err(),
            "a feature layer as the staged one"
        );
    }
}
