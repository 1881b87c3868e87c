//! The staged layer brought up to date with the raw files: which files to
//! parse, staging each one (parse, pseudonymise, partition by month), and
//! reading back what earlier runs staged.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, Result, bail};
use polars::prelude::*;
use rayon::prelude::*;
use revspend_core::artifact::{self};
use revspend_core::contract::{COLUMNS, ValueRanges};
use revspend_core::pseudonym::Pseudonymiser;
use revspend_core::schema;
use revspend_table::QuarantinedRow;

use crate::ingest::Staged;
use crate::layers::{Month, StagedFile, StagedManifest};
use crate::{Duplicate, LayerReport, Mode, Outputs, in_order, ingest, layers};

/// The raw files matching `pattern`, sorted by path so runs are deterministic.
/// File names must be unique: a row's lineage is (file name, line).
///
/// Content decides how a file is read, not its name: a gzip file named
/// `.csv` is decompressed. The default `data/raw/*.csv` does not match
/// `.csv.gz` names; a glob such as `data/raw/*.csv*` takes both.
pub fn raw_files(pattern: &str) -> Result<Vec<PathBuf>> {
    let mut files: Vec<PathBuf> = glob::glob(pattern)
        .with_context(|| format!("invalid raw_glob {pattern:?}"))?
        .collect::<Result<_, _>>()
        .with_context(|| format!("listing files for {pattern:?}"))?;
    files.retain(|p| p.is_file());
    files.sort();
    if files.is_empty() {
        bail!("no raw files match build_features.raw_glob {pattern:?}");
    }
    let mut names: HashMap<String, &PathBuf> = HashMap::new();
    for f in &files {
        if let Some(other) = names.insert(ingest::file_name(f), f) {
            bail!(
                "two raw files are named {:?} ({} and {}): file names identify rows' lineage and must be unique",
                ingest::file_name(f),
                other.display(),
                f.display()
            );
        }
    }
    Ok(files)
}

/// Brings the staged layer up to date with the raw files: stages new and
/// changed files, drops removed ones, skips content already staged, and in
/// backfill mode re-stages the months in the range. Returns the manifest,
/// the rows parsed by this run (file name and rows, pseudonymised) and
/// what changed.
pub(crate) fn update_staged(
    files: &[PathBuf],
    out: &Outputs,
    pseudo: &Pseudonymiser,
    ranges: &ValueRanges,
    mode: Mode,
) -> Result<(StagedManifest, Vec<ParsedFile>, LayerReport)> {
    let key = pseudo.key_fingerprint();
    let value_ranges = ranges.describe();
    let original = layers::read_manifest::<StagedManifest>(&out.staged_dir)?;
    let mut manifest = match original.clone() {
        Some(m)
            if m.version == layers::STAGED_LAYER_VERSION
                && m.key_fingerprint == key
                && m.value_ranges == value_ranges =>
        {
            m
        }
        Some(_) => {
            log::warn!(
                "the staged layer in {} was written with another layout version, pseudonymisation key or \
                 value ranges: restaging every raw file",
                out.staged_dir.display()
            );
            StagedManifest::empty(key, value_ranges)
        }
        None => StagedManifest::empty(key, value_ranges),
    };
    let mut report = LayerReport::default();
    let range = match mode {
        Mode::Update => None,
        Mode::Backfill { from, to } => {
            report.backfill = Some(format!("{from}..={to}"));
            Some((Month::of(from), Month::of(to)))
        }
    };
    let names: BTreeSet<String> = files.iter().map(|p| ingest::file_name(p)).collect();
    let removed: Vec<String> = manifest
        .files
        .keys()
        .filter(|n| !names.contains(*n))
        .cloned()
        .collect();
    for name in removed {
        log::info!("{name}: no longer in the raw folder; its staged rows are removed");
        manifest.files.remove(&name);
        report.files_removed.push(name);
    }

    let mut fresh = Vec::new();
    // Content already staged under a name still present wins over a copy.
    let mut staged_hashes: HashMap<String, String> = manifest
        .files
        .values()
        .map(|f| (f.sha256.clone(), f.name.clone()))
        .collect();
    // Files staged before under the same name are hashed first (in
    // parallel) to see whether they changed; a new name is staged, and
    // hashed from the bytes it is parsed from, without reading it twice.
    let hashes = in_order(
        files
            .par_iter()
            .map(|path| -> Result<Option<String>> {
                Ok(if manifest.files.contains_key(&ingest::file_name(path)) {
                    Some(artifact::file_sha256(path)?)
                } else {
                    None
                })
            })
            .collect(),
    )?;
    let mut work: Vec<Staging> = Vec::new();
    for (path, sha) in files.iter().zip(hashes) {
        let name = ingest::file_name(path);
        let existing = sha
            .as_ref()
            .and_then(|sha| manifest.files.get(&name).filter(|f| f.sha256 == *sha))
            .cloned();
        let backfilled: Vec<String> = match (&existing, range) {
            (Some(f), Some((lo, hi))) => f
                .partitions
                .keys()
                .filter(|m| Month::parse(m).is_some_and(|m| lo <= m && m <= hi))
                .cloned()
                .collect(),
            _ => Vec::new(),
        };
        if existing.is_some() && backfilled.is_empty() {
            report.files_unchanged.push(name);
            continue;
        }
        work.push(Staging {
            path: path.clone(),
            name,
            sha,
            existing,
            backfilled,
        });
    }

    // Stage the files in parallel (whole files each, so every core is busy
    // parsing and writing); a file is parsed in as many chunks as the pool
    // has threads per file, so a lone file gets every thread.
    let chunks = (rayon::current_num_threads() / work.len().max(1)).max(1);
    // Daily files share most of their customers: each id is keyed once.
    // A file's ids are looked up, and its new ones added, under one lock
    // each (a lock per id had the two file threads contending).
    // Ids and pseudonyms are shared with the files' own tables, not copied.
    let pseudonyms = std::sync::Mutex::new(PlHashMap::<Arc<str>, Arc<str>>::new());
    let pseudonymise = |ids: &[Arc<str>]| -> Vec<Arc<str>> {
        let mut out: Vec<Option<Arc<str>>> = {
            let known = pseudonyms.lock().unwrap_or_else(|e| e.into_inner());
            ids.iter().map(|id| known.get(&**id).cloned()).collect()
        };
        let new: Vec<usize> = (0..ids.len()).filter(|&i| out[i].is_none()).collect();
        for &i in &new {
            out[i] = Some(Arc::from(pseudo.pseudonym(&ids[i])));
        }
        let mut known = pseudonyms.lock().unwrap_or_else(|e| e.into_inner());
        for &i in &new {
            if let Some(p) = &out[i] {
                known.insert(Arc::clone(&ids[i]), Arc::clone(p));
            }
        }
        out.into_iter()
            .map(|p| p.unwrap_or_else(|| Arc::from("")))
            .collect()
    };
    let staged = in_order(
        work.par_iter()
            .map(|w| stage_file(w, out, &pseudonymise, ranges, chunks))
            .collect(),
    )?;
    // In name order: content already staged (before, or by a file earlier
    // in this run) under another name is a copy, left out; its partitions
    // are removed with the rest of what the manifest does not list.
    for (w, (entry, rows)) in work.into_iter().zip(staged) {
        if w.existing.is_none()
            && let Some(other) = staged_hashes.get(&entry.sha256).filter(|o| **o != w.name)
        {
            log::warn!("{}: same content as the staged file {other}; skipped", w.name);
            report.duplicates_skipped.push(Duplicate {
                file: w.name,
                same_content_as: other.clone(),
            });
            continue;
        }
        staged_hashes.insert(entry.sha256.clone(), w.name.clone());
        if let Some(reason) = &entry.rejected {
            log::warn!(
                "{}: the whole file is rejected ({} rows counted as quarantined), the other files go on: {reason}",
                w.name,
                entry.rows_quarantined
            );
            report.files_rejected.push(w.name.clone());
        } else if w.backfilled.is_empty() {
            log::info!(
                "{}: staged {} rows in {} month partitions, {} quarantined",
                w.name,
                rows.len(),
                entry.partitions.len(),
                entry.rows_quarantined
            );
            report.files_staged.push(w.name.clone());
        } else {
            log::info!("{}: backfilled months {}", w.name, w.backfilled.join(", "));
            report.files_unchanged.push(w.name.clone());
        }
        manifest.files.insert(w.name.clone(), entry);
        fresh.push((w.name, rows));
    }
    if original.as_ref() != Some(&manifest) {
        artifact::write_json(&out.staged_dir.join(layers::MANIFEST), &manifest)?;
    }
    let mut keep = BTreeSet::new();
    for f in manifest.files.values() {
        keep.insert(f.quarantine.clone());
        keep.extend(f.partitions.values().map(|p| p.path.clone()));
    }
    layers::remove_unlisted(&out.staged_dir, layers::LayerKind::Staged, &keep)?;
    Ok((manifest, fresh, report))
}

/// Every staged row: the files this run parsed (`fresh`), the rest read
/// back from the staged layer, in manifest (file name) order.
///
/// Each partition read back is checked against the SHA-256 its manifest
/// records (hashed from the bytes it is parsed from, not read twice). One
/// that does not match is staged again from its raw file (`files`), which
/// `update_staged` found unchanged, and read back; the manifest is updated
/// and the partition named in a warning and in `report`. A partition that
/// cannot be restored fails the stage naming it and the backfill.
pub(crate) fn load_staged_rows(
    manifest: &mut StagedManifest,
    fresh: Vec<ParsedFile>,
    files: &[PathBuf],
    out: &Outputs,
    pseudo: &Pseudonymiser,
    ranges: &ValueRanges,
    report: &mut LayerReport,
) -> Result<Staged> {
    let parsed: BTreeSet<String> = fresh.iter().map(|(name, _)| name.clone()).collect();
    let mut fresh = fresh.into_iter().map(|(_, rows)| rows);
    // The first file parsed becomes the table itself (no copy).
    let mut all = fresh.next().unwrap_or_default();
    let total: u64 = manifest.files.values().map(|f| f.rows_out).sum();
    all.reserve(usize::try_from(total).unwrap_or(0).saturating_sub(all.len()));
    for f in fresh {
        all.append(&f);
    }
    let raw: HashMap<String, &PathBuf> = files.iter().map(|p| (ingest::file_name(p), p)).collect();
    let mut restaged = false;
    for f in manifest.files.values_mut() {
        if parsed.contains(&f.name) {
            continue;
        }
        let mut corrupt = Vec::new();
        for (month, p) in &f.partitions {
            let path = out.staged_dir.join(&p.path);
            match layers::read_staged(&path, &p.sha256) {
                Ok(part) => all.append(&part),
                Err(e) if is_checksum_mismatch(&e) => {
                    log::warn!(
                        "staged partition {} ({} for {month}) does not match the SHA-256 its manifest \
                         records: staging it again from the raw file",
                        path.display(),
                        f.name
                    );
                    corrupt.push(month.clone());
                }
                Err(e) => return Err(e).with_context(|| lost_partition(&f.name, month)),
            }
        }
        if corrupt.is_empty() {
            continue;
        }
        let named = || {
            corrupt
                .iter()
                .filter_map(|m| f.partitions.get(m))
                .map(|p| out.staged_dir.join(&p.path).display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        };
        let Some(path) = raw.get(&f.name) else {
            bail!(
                "the staged partitions {} do not match the SHA-256 their manifest records and their raw file \
                 {} is gone: restore it and run {}",
                named(),
                f.name,
                backfill_command(&corrupt)
            );
        };
        let work = Staging {
            path: (*path).clone(),
            name: f.name.clone(),
            sha: Some(f.sha256.clone()),
            existing: Some(f.clone()),
            backfilled: corrupt.clone(),
        };
        // A repair is rare and small: each id is keyed again, uncached.
        let pseudonymise = |ids: &[Arc<str>]| -> Vec<Arc<str>> {
            ids.iter().map(|id| Arc::from(pseudo.pseudonym(id))).collect()
        };
        let (entry, _) = stage_file(&work, out, &pseudonymise, ranges, rayon::current_num_threads()).with_context(|| {
            format!(
                "the staged partitions {} do not match the SHA-256 their manifest records and could not be \
                 staged again from {}; restore that raw file and run {}",
                named(),
                path.display(),
                backfill_command(&corrupt)
            )
        })?;
        for month in &corrupt {
            let Some(p) = entry.partitions.get(month) else {
                continue;
            };
            let part = layers::read_staged(&out.staged_dir.join(&p.path), &p.sha256)
                .with_context(|| lost_partition(&f.name, month))?;
            all.append(&part);
            report.partitions_restaged.push(p.path.clone());
        }
        *f = entry;
        restaged = true;
    }
    if restaged {
        artifact::write_json(&out.staged_dir.join(layers::MANIFEST), &*manifest)?;
    }
    Ok(all)
}

/// Whether `e` is a file whose bytes are not those its manifest records.
fn is_checksum_mismatch(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<revspend_table::TableError>()
            .is_some_and(|t| matches!(t, revspend_table::TableError::Checksum { .. }))
    })
}

/// The command that stages `months` (`YYYY-MM`, sorted) again.
fn backfill_command(months: &[String]) -> String {
    let first = months.first().map_or("", String::as_str);
    let last = months.last().map_or("", String::as_str);
    format!("`build-features backfill --from {first}-01 --to {last}-01`")
}

/// What to say when a staged partition cannot be read.
fn lost_partition(file: &str, month: &str) -> String {
    format!(
        "reading the staged rows of {file} for {month}; `build-features backfill --from {month}-01 --to \
         {month}-01` rebuilds them from the raw file"
    )
}

/// Raw customer ids → their pseudonyms, in order.
pub(crate) type Pseudonymise<'a> = dyn Fn(&[Arc<str>]) -> Vec<Arc<str>> + Sync + 'a;

/// A raw file's name and the rows this run parsed from it.
pub(crate) type ParsedFile = (String, Staged);

/// A raw file this run parses: new or changed, or backfilled months.
pub(crate) struct Staging {
    path: PathBuf,
    name: String,
    /// Its content hash when already read (a name staged before); a new
    /// name is hashed from the bytes it is parsed from.
    sha: Option<String>,
    /// Its manifest entry when the content is already staged (backfill).
    existing: Option<StagedFile>,
    /// Months (`YYYY-MM`) to re-stage; empty for a new file (all months).
    backfilled: Vec<String>,
}

/// Parses (in `chunks` parallel chunks, quarantining rows that break the
/// contract or `ranges`), pseudonymises (with `pseudonymise`) and writes one
/// raw file's staged partitions and quarantine; returns its manifest entry
/// and rows. A file that cannot be read at all is recorded as rejected
/// (its reason in the manifest and a one-line quarantine, its rows counted
/// as quarantined) rather than failing the stage; only an I/O error does.
/// Nothing stored holds a raw customer id: quarantined rows go through
/// [`revspend_table::quarantine::quarantined_row`].
pub(crate) fn stage_file(
    w: &Staging,
    out: &Outputs,
    pseudonymise: &Pseudonymise<'_>,
    ranges: &ValueRanges,
    chunks: usize,
) -> Result<(StagedFile, Staged)> {
    thread_local! {
        /// The raw bytes of the file this thread is staging: one buffer
        /// reused file after file, rather than a fresh allocation whose
        /// every page is touched for the first time again (slow on these
        /// virtual machines).
        static RAW: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
    }
    let started = std::time::Instant::now();
    let (mut rows, read, sha) = RAW.with_borrow_mut(|bytes| -> Result<_> {
        use std::io::Read;
        bytes.clear();
        std::fs::File::open(&w.path)
            .and_then(|mut f| f.read_to_end(bytes))
            .with_context(|| format!("reading {}", w.path.display()))?;
        let sha = artifact::sha256_hex(bytes);
        if w.sha.as_ref().is_some_and(|expected| *expected != sha) {
            bail!("{} changed while it was being read; rerun", w.path.display());
        }
        let read = started.elapsed();
        Ok((ingest::parse_file(&w.path, bytes, chunks, ranges), read, sha))
    })?;
    let parsed = started.elapsed();
    // Once per distinct id.
    rows.rows.map_customers(pseudonymise);
    let pseudonym = |text: &str| -> String {
        pseudonymise(&[Arc::from(text)])
            .first()
            .map_or_else(String::new, |p| p.to_string())
    };
    // A file rejected as a whole is one entry standing for all its rows.
    let rejected = rows
        .rejected
        .as_deref()
        .map(|reason| revspend_table::quarantine::rejected_file(&rows.file, reason, &pseudonym));
    let quarantine: Vec<QuarantinedRow> = match &rejected {
        Some(whole) => vec![whole.clone()],
        None => rows
            .quarantine
            .iter()
            .map(|q| {
                revspend_table::quarantine::quarantined_row(&rows.file, q.line, &q.error, &q.raw, &pseudonym)
            })
            .collect(),
    };
    let rejected = rejected.map(|whole| whole.reason);
    log::debug!(
        "{}: read and hashed in {:.3} s, parsed in {:.3} s, pseudonymised in {:.3} s",
        w.name,
        read.as_secs_f64(),
        (parsed - read).as_secs_f64(),
        (started.elapsed() - parsed).as_secs_f64()
    );
    let stem = StagedFile::stem(&w.name, &sha);
    // Rows of a day come together (files are daily exports), so a row's
    // month is worked out again only when its day changes.
    let mut by_month: BTreeMap<Month, Vec<usize>> = BTreeMap::new();
    let mut last: Option<(i32, Month)> = None;
    for (r, &day) in rows.rows.day.iter().enumerate() {
        let month = match last {
            Some((d, m)) if d == day => m,
            _ => {
                let m = Month::of(rows.rows.date(r));
                last = Some((day, m));
                m
            }
        };
        by_month.entry(month).or_default().push(r);
    }
    let mut entry = w.existing.clone().unwrap_or_else(|| StagedFile {
        name: w.name.clone(),
        sha256: sha.clone(),
        rows_in: rows.rows_in,
        rows_out: rows.rows.len() as u64,
        // A rejected file's rows are all rejected, though its quarantine
        // holds one entry for the whole file.
        rows_quarantined: rows.rows_in - rows.rows.len() as u64,
        header: rows.header.clone(),
        partitions: BTreeMap::new(),
        quarantine: format!("quarantine/{stem}.csv"),
        format: rows.format,
        rejected,
    });
    let text = &layers::LineageText::new(&rows.rows);
    let months: Vec<(&Month, &Vec<usize>)> = by_month
        .iter()
        .filter(|(month, _)| w.backfilled.is_empty() || w.backfilled.contains(&month.key()))
        .collect();
    // In at most `chunks` pieces, like the parse: files staged side by side
    // each write their months in turn, so a worker waiting on a piece of
    // one file does not pick up a whole other file (and hold both in memory).
    let per_piece = months.len().div_ceil(chunks.max(1)).max(1);
    let written = in_order(
        months
            .into_par_iter()
            .with_min_len(per_piece)
            .map(|(month, idx)| -> Result<(String, layers::Partition)> {
                let rel = month.dir().join(format!("{stem}.parquet"));
                let mut df = layers::staged_frame(&rows.rows, text, idx)?;
                let sha256 = revspend_table::write_table(&out.staged_dir.join(&rel), &mut df)?;
                Ok((
                    month.key(),
                    layers::Partition {
                        path: rel.to_string_lossy().into_owned(),
                        rows: idx.len() as u64,
                        sha256,
                    },
                ))
            })
            .collect(),
    )
    .with_context(|| format!("writing the staged partitions of {}", w.name))?;
    entry.partitions.extend(written);
    revspend_table::write_quarantine(&out.staged_dir.join(&entry.quarantine), &quarantine)?;
    log::debug!(
        "{}: staged partitions written after {:.3} s",
        w.name,
        started.elapsed().as_secs_f64()
    );
    Ok((entry, rows.rows))
}

/// Every staged file's quarantined rows, in file order.
pub(crate) fn read_quarantine(manifest: &StagedManifest, dir: &Path) -> Result<Vec<QuarantinedRow>> {
    let mut rows = Vec::new();
    for f in manifest.files.values() {
        rows.extend(revspend_table::read_quarantine(&dir.join(&f.quarantine))?);
    }
    Ok(rows)
}

pub(crate) fn raw_nulls(all: &Staged) -> BTreeMap<String, u64> {
    let mut counts: BTreeMap<String, u64> = COLUMNS.iter().map(|c| (c.trim().to_owned(), 0)).collect();
    let mut set = |name: &str, n: usize| {
        counts.insert(name.to_owned(), n as u64);
    };
    set(
        schema::SAFRA_ABERTURA,
        all.safra_abertura.iter().filter(|v| v.is_none()).count(),
    );
    set(schema::IDADE, all.idade.iter().filter(|v| v.is_none()).count());
    set(schema::SEXO, all.sexo.iter().filter(|v| v.is_none()).count());
    set(schema::VALOR, all.valor.iter().filter(|v| v.is_none()).count());
    let empty: Vec<bool> = all.strings.values.iter().map(|v| v.is_empty()).collect();
    for (i, name) in ingest::TEXT_COLUMNS.iter().enumerate() {
        set(name, all.text[i].iter().filter(|c| empty[**c as usize]).count());
    }
    counts
}

#[cfg(test)]
mod tests {
    use super::*;

    const RAW: &[u8] = b"id;safra_abertura;cidade;estado;idade;sexo;limite_total;limite_disp;data; valor ;\
grupo_estabelecimento;cidade_estabelecimento;pais_estabelecimento\r\n\
35466972063;201405;RECIFE;PE;34;F;4700.0;612.0;02.07.2020; 1.234,56 ;VAREJO;RECIFE;BR\r\n\
81234567890123;201811;RECIFE;PE;52;M;10000.0;600.0;04.08.2020; 2.500,00 ;JOALHERIA;RECIFE;BR\r\n";

    /// Issue 12: a staged partition whose bytes changed, whose raw file is
    /// gone, fails the stage naming the partition and the backfill (its
    /// rows cannot be trusted nor restored).
    #[test]
    fn a_corrupt_staged_partition_without_its_raw_file_fails_naming_it_and_backfill() {
        let dir = tempfile::tempdir().expect("tempdir");
        let raw = dir.path().join("day-01.csv");
        std::fs::write(&raw, RAW).expect("raw file");
        let out = Outputs::under(dir.path());
        let pseudo = Pseudonymiser::new(b"test-key");
        let files = vec![raw];
        let (mut manifest, _, _) =
            update_staged(&files, &out, &pseudo, &ValueRanges::default(), Mode::Update).expect("staged");
        let part = &manifest.files["day-01.csv"].partitions["2020-08"];
        let path = out.staged_dir.join(&part.path);
        let mut bytes = std::fs::read(&path).expect("partition");
        let middle = bytes.len() / 2;
        bytes[middle] ^= 0x01;
        std::fs::write(&path, &bytes).expect("flip a byte");

        // The raw file still there: the partition is staged again.
        let mut report = LayerReport::default();
        let all = load_staged_rows(
            &mut manifest.clone(),
            Vec::new(),
            &files,
            &out,
            &pseudo,
            &ValueRanges::default(),
            &mut report,
        )
        .expect("restaged");
        assert_eq!(all.len(), 2);
        assert_eq!(report.partitions_restaged, vec![part.path.clone()]);
        assert_ne!(std::fs::read(&path).expect("partition"), bytes);

        // Gone: an error naming the partition and the backfill.
        std::fs::write(&path, &bytes).expect("flip a byte");
        let err = load_staged_rows(
            &mut manifest,
            Vec::new(),
            &[],
            &out,
            &pseudo,
            &ValueRanges::default(),
            &mut report,
        )
        .expect_err("nothing to restage from");
        let msg = format!("{err:#}");
        assert!(msg.contains(&path.display().to_string()), "{msg}");
        assert!(
            msg.contains("build-features backfill --from 2020-08-01 --to 2020-08-01"),
            "{msg}"
        );
    }
}
