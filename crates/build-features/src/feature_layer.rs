//! The feature layer: every customer's purchases walked in point-in-time
//! order with `revspend_core::features::compute`, rebuilt from the first
//! month whose staged rows changed, earlier months reused.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use anyhow::{Context, Result, bail};
use chrono::NaiveDate;
use polars::prelude::*;
use rayon::prelude::*;
use revspend_core::artifact::{self};
use revspend_core::contract::Transaction;
use revspend_core::features::{self, Feature, History};
use revspend_core::pseudonym::Pseudonymiser;
use revspend_core::target::TargetRule;

use crate::ingest::Staged;
use crate::layers::{FeatureManifest, FeatureMonth, FeatureRows, Month, StagedManifest};
use crate::{LayerReport, Mode, Outputs, in_order, layers};

/// The feature layer's tables in month order, and every customer's
/// history after their last purchase.
pub(crate) struct FeatureLayer {
    pub(crate) frames: Vec<DataFrame>,
    pub(crate) final_history: BTreeMap<String, History>,
    /// Whether each customer (in `final_history` order) ever spends in
    /// revenge.
    pub(crate) ever_positive: Vec<bool>,
}

/// Rebuilds the feature layer from the first month whose staged inputs
/// changed (or from the backfill's first month), reusing earlier months.
#[allow(clippy::too_many_arguments)]
pub(crate) fn update_features(
    all: &Staged,
    staged: &StagedManifest,
    rule: &TargetRule,
    out: &Outputs,
    pseudo: &Pseudonymiser,
    mode: Mode,
    report: &mut LayerReport,
) -> Result<FeatureLayer> {
    let names: Vec<&str> = Feature::ALL.iter().map(|f| f.name()).collect();
    let fingerprint = artifact::sha256_hex(
        serde_json::to_string(&(
            layers::FEATURE_LAYER_VERSION,
            rule,
            &names,
            pseudo.key_fingerprint(),
        ))?
        .as_bytes(),
    );
    let previous = layers::read_manifest::<FeatureManifest>(&out.features_dir)?
        .filter(|m| m.version == layers::FEATURE_LAYER_VERSION && m.fingerprint == fingerprint);
    let inputs = staged.months();
    // The first month whose inputs differ from what its partition was
    // built from; history carries into later months, so they follow.
    let mut from: Option<Month> = match &previous {
        None => inputs.keys().next().and_then(|m| Month::parse(m)),
        Some(prev) => {
            let keys: BTreeSet<&String> = inputs.keys().chain(prev.months.keys()).collect();
            keys.into_iter()
                .find(|k| prev.months.get(*k).map(|m| &m.built_from) != inputs.get(*k))
                .and_then(|k| Month::parse(k))
        }
    };
    if let Mode::Backfill { from: day, .. } = mode {
        let m = Month::of(day);
        from = Some(from.map_or(m, |f| f.min(m)));
    }
    let started = std::time::Instant::now();
    let computed = compute_features(all, rule, &|m| from.is_some_and(|f| m >= f))?;
    log::debug!("features computed in {:.3} s", started.elapsed().as_secs_f64());
    let mut manifest = FeatureManifest {
        version: layers::FEATURE_LAYER_VERSION,
        fingerprint,
        months: BTreeMap::new(),
    };
    let mut months = computed.months;
    let lineage_text = &layers::LineageText::new(all);
    let mut jobs = Vec::new();
    for (key, built_from) in &inputs {
        let Some(month) = Month::parse(key) else {
            bail!("staged manifest has a malformed month {key:?}");
        };
        let rel = month.dir().join("part.parquet");
        let path = out.features_dir.join(&rel);
        let reused = previous
            .as_ref()
            .and_then(|p| p.months.get(key))
            .filter(|_| from.is_none_or(|f| month < f))
            .cloned();
        // A reused month whose bytes are not those its manifest records
        // comes back as `None`: it is rebuilt below.
        type Job<'a> = Box<dyn FnOnce() -> Result<Option<(DataFrame, FeatureMonth)>> + Send + 'a>;
        let job: Job<'_> = match reused {
            Some(prev) => {
                report.feature_months_reused.push(key.clone());
                Box::new(move || {
                    match revspend_table::read_table_verified(&path, &layers::feature_schema(), &prev.sha256)
                    {
                        Ok(df) => Ok(Some((df, prev))),
                        Err(revspend_table::TableError::Checksum { .. }) => {
                            log::warn!(
                                "feature-layer partition {} ({key}) does not match the SHA-256 its manifest \
                                 records: rebuilding it from the staged rows",
                                path.display()
                            );
                            Ok(None)
                        }
                        // The staged rows are all there: a lost month is
                        // rebuilt like a corrupt one.
                        Err(revspend_table::TableError::Io { source, .. })
                            if source.kind() == std::io::ErrorKind::NotFound =>
                        {
                            log::warn!(
                                "feature-layer partition {} ({key}) is missing: rebuilding it from the staged rows",
                                path.display()
                            );
                            Ok(None)
                        }
                        Err(e) => Err(e).with_context(|| format!("reading feature month {key}")),
                    }
                })
            }
            None => {
                report.feature_months_rebuilt.push(key.clone());
                let rows = months.remove(&month).unwrap_or_default();
                Box::new(move || write_month(rows, all, lineage_text, key, rel, &path, built_from).map(Some))
            }
        };
        jobs.push(job);
    }
    let done = in_order(jobs.into_par_iter().map(|job| job()).collect())?;
    drop(months);
    let corrupt: BTreeSet<Month> = done
        .iter()
        .zip(inputs.keys())
        .filter(|(d, _)| d.is_none())
        .filter_map(|(_, k)| Month::parse(k))
        .collect();
    let mut repaired = if corrupt.is_empty() {
        BTreeMap::new()
    } else {
        // Only the corrupt months are computed again (history still
        // walks every earlier row): the result is the month a clean run
        // writes, whatever else this run reused.
        compute_features(all, rule, &|m| corrupt.contains(&m))?.months
    };
    let mut frames = Vec::new();
    for (d, (key, built_from)) in done.into_iter().zip(&inputs) {
        let (df, entry) = match d {
            Some(done) => done,
            None => {
                let month = Month::parse(key).unwrap_or(Month { year: 0, month: 1 });
                let rel = month.dir().join("part.parquet");
                let path = out.features_dir.join(&rel);
                let rows = repaired.remove(&month).unwrap_or_default();
                report.feature_months_reused.retain(|k| k != key);
                report.feature_months_repaired.push(key.clone());
                write_month(rows, all, lineage_text, key, rel, &path, built_from)?
            }
        };
        manifest.months.insert(key.clone(), entry);
        frames.push(df);
    }
    if previous.as_ref() != Some(&manifest) {
        artifact::write_json(&out.features_dir.join(layers::MANIFEST), &manifest)?;
    }
    let keep = manifest.months.values().map(|m| m.path.clone()).collect();
    layers::remove_unlisted(&out.features_dir, layers::LayerKind::Features, &keep)?;
    if !report.feature_months_rebuilt.is_empty() {
        log::info!(
            "feature layer: rebuilt {}; reused {}",
            report.feature_months_rebuilt.join(", "),
            if report.feature_months_reused.is_empty() {
                "none".to_owned()
            } else {
                report.feature_months_reused.join(", ")
            }
        );
    }
    Ok(FeatureLayer {
        frames,
        final_history: computed.final_history,
        ever_positive: computed.ever_positive,
    })
}

/// Writes a month of computed feature rows as its feature-layer partition
/// (`rel` in the layer, at `path`); returns the table and its manifest entry.
fn write_month(
    rows: FeatureRows,
    all: &Staged,
    lineage_text: &layers::LineageText,
    key: &str,
    rel: std::path::PathBuf,
    path: &std::path::Path,
    built_from: &BTreeMap<String, String>,
) -> Result<(DataFrame, FeatureMonth)> {
    let mut df = rows.into_frame(all, lineage_text)?;
    let sha256 =
        revspend_table::write_table(path, &mut df).with_context(|| format!("writing feature month {key}"))?;
    let entry = FeatureMonth {
        path: rel.to_string_lossy().into_owned(),
        rows: df.height() as u64,
        sha256,
        built_from: built_from.clone(),
    };
    Ok((df, entry))
}

/// Computed features of the months `wanted` selects, final histories, and
/// whether each customer (in `final_history` order) ever spends in revenge.
pub(crate) struct Computed {
    months: BTreeMap<Month, FeatureRows>,
    final_history: BTreeMap<String, History>,
    ever_positive: Vec<bool>,
}

/// Walks every customer's purchases in point-in-time order (date, then
/// file name, then line): rows of months `wanted` does not select only
/// update the history; rows of the others get their features computed by the same
/// `revspend_core::features::compute` the server calls. Customers are
/// shared out over the pool's threads; the result does not depend on
/// their number.
pub(crate) fn compute_features(all: &Staged, rule: &TargetRule, wanted: &Wanted<'_>) -> Result<Computed> {
    let customer_rank = ranks(&all.customers.values);
    let file_rank = ranks(&all.files.values);
    // One contiguous range of whole customers (by rank) per pool thread,
    // about equal in rows.
    let threads = rayon::current_num_threads().clamp(1, 64);
    let mut rows_per_rank = vec![0usize; customer_rank.len()];
    for &c in &all.customer {
        rows_per_rank[customer_rank[c as usize] as usize] += 1;
    }
    let mut cuts = vec![0u32];
    let mut seen = 0;
    for (rank, n) in rows_per_rank.iter().enumerate() {
        seen += n;
        if cuts.len() < threads && seen * threads >= all.len() * cuts.len() {
            cuts.push(rank as u32 + 1);
        }
    }
    while cuts.len() <= threads {
        cuts.push(customer_rank.len() as u32);
    }
    drop(rows_per_rank);
    // Each range's rows in point-in-time order, sorted on its own thread.
    // Sort keys sit side by side with the row: comparing through the
    // columns would chase four arrays per comparison, which at ten million
    // rows is mostly cache misses. Months are counted from the sorted keys.
    let sort_range = |w: &[u32]| {
        let (lo, hi) = (w[0], w[1]);
        let mut keyed: Vec<((u32, i32, u32, u64), usize)> = (0..all.len())
            .filter_map(|r| {
                let rank = customer_rank[all.customer[r] as usize];
                (lo..hi).contains(&rank).then(|| {
                    let key = (rank, all.day[r], file_rank[all.file[r] as usize], all.line[r]);
                    (key, r)
                })
            })
            .collect();
        keyed.sort_unstable_by_key(|(key, _)| *key);
        let mut months: BTreeMap<Month, usize> = BTreeMap::new();
        let mut last_day = None;
        let mut month = None;
        for ((_, day, _, _), _) in &keyed {
            if last_day != Some(*day) {
                last_day = Some(*day);
                month = Some(Month::of(
                    NaiveDate::from_num_days_from_ce_opt(*day).unwrap_or(NaiveDate::MIN),
                ));
            }
            if let Some(m) = month.filter(|m| wanted(*m)) {
                *months.entry(m).or_default() += 1;
            }
        }
        let order: Vec<usize> = keyed.into_iter().map(|(_, r)| r).collect();
        (order, months)
    };
    let started = std::time::Instant::now();
    let (orders, counts): (Vec<Vec<usize>>, Vec<BTreeMap<Month, usize>>) =
        cuts.par_windows(2).map(sort_range).unzip();
    log::debug!(
        "features: rows sorted in {:.3} s",
        started.elapsed().as_secs_f64()
    );
    let ranges: Vec<&[usize]> = orders.iter().map(Vec::as_slice).collect();
    let mut totals: BTreeMap<Month, usize> = BTreeMap::new();
    for c in &counts {
        for (m, n) in c {
            *totals.entry(*m).or_default() += n;
        }
    }
    let mut months: BTreeMap<Month, FeatureRows> = totals
        .into_iter()
        .map(|(m, n)| (m, FeatureRows::zeroed(n)))
        .collect();
    let mut slots: Vec<BTreeMap<Month, Slot<'_>>> = (0..ranges.len()).map(|_| BTreeMap::new()).collect();
    for (month, rows) in &mut months {
        let mut rest = Slot {
            rows: rows.rows.as_mut_slice(),
            values: rows.values.iter_mut().map(Vec::as_mut_slice).collect(),
            target: rows.target.as_mut_slice(),
            at: 0,
        };
        for (c, slot) in counts.iter().zip(&mut slots) {
            let n = c.get(month).copied().unwrap_or(0);
            slot.insert(*month, rest.split_off_front(n));
        }
    }
    let started = std::time::Instant::now();
    let histories: Vec<_> = ranges
        .into_par_iter()
        .zip(slots)
        .map(|(range, slots)| compute_range(all, rule, wanted, range, slots))
        .collect();
    log::debug!(
        "features: customers walked in {:.3} s",
        started.elapsed().as_secs_f64()
    );
    // Ranges are whole customers in rank (name) order, so their flags in
    // range order follow the histories' map order.
    let mut final_history = BTreeMap::new();
    let mut ever_positive = Vec::new();
    for (h, positive) in histories {
        final_history.extend(h);
        ever_positive.extend(positive);
    }
    Ok(Computed {
        months,
        final_history,
        ever_positive,
    })
}

/// Which months' features [`compute_features`] computes.
pub(crate) type Wanted<'a> = dyn Fn(Month) -> bool + Sync + 'a;

/// One range's stretch of a month's feature columns, filled front to back.
pub(crate) struct Slot<'a> {
    rows: &'a mut [usize],
    values: Vec<&'a mut [f64]>,
    target: &'a mut [bool],
    at: usize,
}

impl<'a> Slot<'a> {
    /// Splits off the first `n` rows as a slot of their own.
    fn split_off_front(&mut self, n: usize) -> Slot<'a> {
        let (rows, rest) = std::mem::take(&mut self.rows).split_at_mut(n);
        self.rows = rest;
        let (target, rest) = std::mem::take(&mut self.target).split_at_mut(n);
        self.target = rest;
        let values = self
            .values
            .iter_mut()
            .map(|col| {
                let (head, rest) = std::mem::take(col).split_at_mut(n);
                *col = rest;
                head
            })
            .collect();
        Slot {
            rows,
            values,
            target,
            at: 0,
        }
    }

    fn push(&mut self, row: usize, values: [f64; Feature::ALL.len()], target: bool) {
        let at = self.at;
        self.rows[at] = row;
        for (col, v) in self.values.iter_mut().zip(values) {
            col[at] = v;
        }
        self.target[at] = target;
        self.at += 1;
    }
}

/// Walks the customers of `order` (whole customers, in point-in-time
/// order), writing the rows of the `wanted` months into `slots`; returns each
/// customer's history after their last purchase.
///
/// The staged rows are read in blocks: each column of a block is gathered
/// in a loop of its own, whose loads do not wait on each other, and the
/// walk then reads the block in order. Reading each row's fields where the
/// walk needs them waits on a cache miss per field (staged rows are in file
/// order, the walk is in customer order), which at ten million rows was
/// most of the walk.
pub(crate) fn compute_range(
    all: &Staged,
    rule: &TargetRule,
    wanted: &Wanted<'_>,
    order: &[usize],
    mut slots: BTreeMap<Month, Slot<'_>>,
) -> (BTreeMap<String, History>, Vec<bool>) {
    const BLOCK: usize = 4096;
    let mut final_history = BTreeMap::new();
    let mut ever_positive = Vec::new();
    let mut positive = false;
    let mut txn = Transaction {
        id: String::new(),
        safra_abertura: None,
        cidade: String::new(),
        estado: String::new(),
        idade: None,
        sexo: None,
        limite_total: 0.0,
        limite_disp: 0.0,
        date: NaiveDate::MIN,
        valor: None,
        grupo: String::new(),
        cidade_estabelecimento: String::new(),
        pais_estabelecimento: String::new(),
    };
    let mut codes = [u32::MAX; 5];
    let mut block = Block::default();
    let mut current: Option<u32> = None;
    let mut history = History::default();
    for rows in order.chunks(BLOCK) {
        block.gather(all, rows);
        for (i, &r) in rows.iter().enumerate() {
            let customer = block.customer[i];
            if current != Some(customer) {
                if let Some(done) = current {
                    final_history.insert(all.customers.get(done).to_owned(), std::mem::take(&mut history));
                    ever_positive.push(std::mem::take(&mut positive));
                }
                current = Some(customer);
            }
            block.fill(&mut txn, &mut codes, all, i);
            let revenge = rule.is_revenge(&txn);
            positive |= revenge;
            let month = Month::of(txn.date);
            if wanted(month)
                && let Some(slot) = slots.get_mut(&month)
            {
                slot.push(r, features::compute(&history, &txn, rule), revenge);
            }
            history.record(&txn, rule);
        }
    }
    if let Some(done) = current {
        final_history.insert(all.customers.get(done).to_owned(), history);
        ever_positive.push(positive);
    }
    (final_history, ever_positive)
}

/// The staged columns the walk reads, for a block of rows.
#[derive(Default)]
pub(crate) struct Block {
    customer: Vec<u32>,
    safra_abertura: Vec<Option<u32>>,
    idade: Vec<Option<u16>>,
    sexo: Vec<Option<revspend_core::contract::Sex>>,
    limite_total: Vec<f64>,
    limite_disp: Vec<f64>,
    day: Vec<i32>,
    valor: Vec<Option<f64>>,
    text: [Vec<u32>; 5],
}

impl Block {
    fn gather(&mut self, all: &Staged, rows: &[usize]) {
        fn column<T: Copy>(dst: &mut Vec<T>, src: &[T], rows: &[usize]) {
            dst.clear();
            dst.extend(rows.iter().map(|&r| src[r]));
        }
        column(&mut self.customer, &all.customer, rows);
        column(&mut self.safra_abertura, &all.safra_abertura, rows);
        column(&mut self.idade, &all.idade, rows);
        column(&mut self.sexo, &all.sexo, rows);
        column(&mut self.limite_total, &all.limite_total, rows);
        column(&mut self.limite_disp, &all.limite_disp, rows);
        column(&mut self.day, &all.day, rows);
        column(&mut self.valor, &all.valor, rows);
        for (dst, src) in self.text.iter_mut().zip(&all.text) {
            column(dst, src, rows);
        }
    }

    /// Copies row `i` of the block into `txn`, reusing its string buffers;
    /// `codes` holds the text codes already in `txn` (a customer's city and
    /// state repeat row after row), so unchanged text is not copied again.
    fn fill(&self, txn: &mut Transaction, codes: &mut [u32; 5], all: &Staged, i: usize) {
        txn.safra_abertura = self.safra_abertura[i];
        txn.idade = self.idade[i];
        txn.sexo = self.sexo[i];
        txn.limite_total = self.limite_total[i];
        txn.limite_disp = self.limite_disp[i];
        txn.date = NaiveDate::from_num_days_from_ce_opt(self.day[i]).unwrap_or(NaiveDate::MIN);
        txn.valor = self.valor[i];
        let fields: [&mut String; 5] = [
            &mut txn.cidade,
            &mut txn.estado,
            &mut txn.grupo,
            &mut txn.cidade_estabelecimento,
            &mut txn.pais_estabelecimento,
        ];
        for (col, (field, code)) in fields.into_iter().zip(codes.iter_mut()).enumerate() {
            let c = self.text[col][i];
            if *code != c {
                *code = c;
                field.clear();
                field.push_str(all.strings.get(c));
            }
        }
    }
}

/// Row indices in lineage order (file name, then line). Rows are usually
/// in that order already (files are parsed and read back in name order),
/// which one pass checks before any sort.
pub(crate) fn lineage_order(all: &Staged) -> Vec<usize> {
    let file_rank = ranks(&all.files.values);
    let key = |r: usize| (file_rank[all.file[r] as usize], all.line[r]);
    if (1..all.len()).all(|r| key(r - 1) <= key(r)) {
        return (0..all.len()).collect();
    }
    let mut keyed: Vec<((u32, u64), usize)> = (0..all.len()).map(|r| (key(r), r)).collect();
    keyed.sort_unstable_by_key(|(k, _)| *k);
    keyed.into_iter().map(|(_, r)| r).collect()
}

/// The rank of each string in sorted order.
pub(crate) fn ranks(values: &[Arc<str>]) -> Vec<u32> {
    let mut idx: Vec<usize> = (0..values.len()).collect();
    idx.sort_unstable_by(|&a, &b| values[a].cmp(&values[b]));
    let mut rank = vec![0u32; values.len()];
    for (k, i) in idx.into_iter().enumerate() {
        rank[i] = k as u32;
    }
    rank
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use chrono::Datelike;
    use proptest::collection::vec;
    use proptest::prelude::*;

    use super::*;

    /// (customer, day, file, amount, group, available limit) of one row.
    type RowSpec = (u8, i32, u8, u16, u8, u16);

    const GROUPS: [&str; 4] = ["SUPERMERCADOS", "VAREJO", "VESTUARIO", ""];

    fn staged(rows: &[(RowSpec, &str, u64)]) -> Staged {
        let mut s = Staged::default();
        let base = NaiveDate::from_ymd_opt(2020, 1, 1).map_or(0, |d| d.num_days_from_ce());
        for &((customer, day, _, amount, group, available), file, line) in rows {
            s.file.push(s.files.code(file));
            s.line.push(line);
            s.customer.push(s.customers.code(&format!("c{customer}")));
            s.safra_abertura.push(Some(201_901));
            s.idade.push(Some(30));
            s.sexo.push(None);
            s.limite_total.push(1000.0);
            s.limite_disp.push(f64::from(available));
            s.day.push(base + day);
            s.valor.push((amount > 0).then_some(f64::from(amount)));
            let texts = ["CITY", "SP", GROUPS[group as usize % GROUPS.len()], "CITY", "BR"];
            for (col, t) in texts.into_iter().enumerate() {
                s.text[col].push(s.strings.code(t));
            }
        }
        s
    }

    /// Feature values by (file, line).
    fn features_by_row(s: &Staged, threads: usize) -> HashMap<(String, u64), Vec<f64>> {
        let rule = TargetRule {
            threshold_pct: 20.0,
            vital_groups: vec!["SUPERMERCADOS".into()],
        };
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .expect("thread pool");
        let computed = pool
            .install(|| compute_features(s, &rule, &|_| true))
            .expect("features");
        let mut out = HashMap::new();
        for rows in computed.months.values() {
            for (k, &r) in rows.rows.iter().enumerate() {
                let values = rows.values.iter().map(|c| c[k]).collect();
                out.insert((s.files.get(s.file[r]).to_owned(), s.line[r]), values);
            }
        }
        out
    }

    fn spec() -> impl Strategy<Value = RowSpec> {
        (0u8..6, 0i32..90, 0u8..3, 0u16..500, 0u8..4, 0u16..1200)
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        /// Issue 3: appending rows dated after every existing row never
        /// changes any earlier row's features, whatever files they come in
        /// and however the work is shared out over threads.
        #[test]
        fn appending_future_rows_never_changes_earlier_features(
            past in vec(spec(), 1..80),
            future in vec(spec(), 1..40),
            threads in 1usize..4,
        ) {
            let last = past.iter().map(|r| r.1).max().unwrap_or(0);
            let file = |f: u8| ["a.csv", "b.csv", "c.csv"][f as usize];
            let mut rows: Vec<(RowSpec, &str, u64)> =
                past.iter().enumerate().map(|(i, r)| (*r, file(r.2), i as u64 + 2)).collect();
            let before = features_by_row(&staged(&rows), threads);
            prop_assert_eq!(before.len(), past.len());
            rows.extend(future.iter().enumerate().map(|(i, r)| {
                let mut r = *r;
                r.1 += last + 1;
                (r, "later.csv", i as u64 + 2)
            }));
            let after = features_by_row(&staged(&rows), 1);
            prop_assert_eq!(after.len(), past.len() + future.len());
            for (row, values) in &before {
                prop_assert_eq!(after.get(row), Some(values), "features of {:?} changed", row);
                prop_assert!(values.iter().all(|v| v.is_finite()));
            }
        }
    }
}
