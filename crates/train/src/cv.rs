//! Customer-grouped, stratified sampling and K-fold assignment.
//!
//! A customer's purchases share history features, so a customer on both
//! sides of a fold boundary would leak: every row of a customer goes to the
//! same fold. Customers are stratified by whether they have any positive
//! purchase, so each fold gets its share of the customers who carry the
//! positives (as far as whole customers allow).

use std::collections::HashMap;

use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;

/// Dense group ids: the rank of each row's customer among the distinct
/// customers in sorted order (independent of the row order). Hashes each
/// row once and sorts only the distinct customers.
pub fn group_ids(customers: &[String]) -> Vec<u64> {
    let mut first: HashMap<&str, u64> = HashMap::new();
    let provisional: Vec<u64> = customers
        .iter()
        .map(|c| {
            let next = first.len() as u64;
            *first.entry(c.as_str()).or_insert(next)
        })
        .collect();
    let mut distinct: Vec<(&str, u64)> = first.into_iter().collect();
    distinct.sort_unstable_by(|a, b| a.0.cmp(b.0));
    let mut rank = vec![0u64; distinct.len()];
    for (r, (_, p)) in distinct.iter().enumerate() {
        rank[*p as usize] = r as u64;
    }
    provisional.into_iter().map(|p| rank[p as usize]).collect()
}

/// Each group's rows (ascending) and whether any of them is positive,
/// groups in id order.
fn groups_of(groups: &[u64], y: &[bool]) -> Vec<(u64, Vec<usize>, bool)> {
    let Some(&max) = groups.iter().max() else {
        return Vec::new();
    };
    if max as usize <= 4 * groups.len() {
        // Dense ids (as `group_ids` makes them): one bucket per id.
        let mut buckets: Vec<(Vec<usize>, bool)> = vec![(Vec::new(), false); max as usize + 1];
        for (r, (&g, &label)) in groups.iter().zip(y).enumerate() {
            let b = &mut buckets[g as usize];
            b.0.push(r);
            b.1 |= label;
        }
        return buckets
            .into_iter()
            .enumerate()
            .filter(|(_, (rows, _))| !rows.is_empty())
            .map(|(g, (rows, pos))| (g as u64, rows, pos))
            .collect();
    }
    let mut by: std::collections::BTreeMap<u64, (Vec<usize>, bool)> = Default::default();
    for (r, (&g, &label)) in groups.iter().zip(y).enumerate() {
        let e = by.entry(g).or_default();
        e.0.push(r);
        e.1 |= label;
    }
    by.into_iter().map(|(g, (rows, pos))| (g, rows, pos)).collect()
}

/// The two strata (groups with a positive, groups without), each shuffled.
fn strata(groups: &[u64], y: &[bool], seed: u64) -> [Vec<(u64, Vec<usize>)>; 2] {
    let mut with = Vec::new();
    let mut without = Vec::new();
    for (g, rows, pos) in groups_of(groups, y) {
        if pos {
            with.push((g, rows));
        } else {
            without.push((g, rows));
        }
    }
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    with.shuffle(&mut rng);
    without.shuffle(&mut rng);
    [with, without]
}

/// The customers of a split in a seeded, stratified order, from which
/// samples of any size are drawn: each sample takes the same leading
/// customers of each stratum, so a smaller sample is part of a larger one.
#[derive(Debug, Clone)]
pub struct GroupSampler {
    strata: [Vec<(u64, Vec<usize>)>; 2],
    rows: usize,
}

impl GroupSampler {
    pub fn new(groups: &[u64], y: &[bool], seed: u64) -> GroupSampler {
        GroupSampler {
            strata: strata(groups, y, seed),
            rows: y.len(),
        }
    }

    /// Rows of whole customers, about `target_rows` of them, drawn from
    /// each stratum in proportion; sorted. All rows when there are no more.
    pub fn sample(&self, target_rows: usize) -> Vec<usize> {
        if target_rows >= self.rows {
            return (0..self.rows).collect();
        }
        let share = target_rows as f64 / self.rows as f64;
        let mut rows = Vec::with_capacity(target_rows + 1024);
        for stratum in &self.strata {
            let total: usize = stratum.iter().map(|(_, r)| r.len()).sum();
            let want = (total as f64 * share).round() as usize;
            let mut taken = 0;
            for (_, group_rows) in stratum {
                if taken >= want {
                    break;
                }
                taken += group_rows.len();
                rows.extend(group_rows);
            }
        }
        rows.sort_unstable();
        rows
    }

    /// Rows of `share` of the customers of each stratum (rounded, at least
    /// one of a stratum that has any), the same leading customers as every
    /// other sample; sorted. All rows when `share` is 1 or more.
    pub fn customer_share(&self, share: f64) -> Vec<usize> {
        if share >= 1.0 {
            return (0..self.rows).collect();
        }
        let mut rows = Vec::new();
        for stratum in &self.strata {
            let want = ((stratum.len() as f64 * share).round() as usize).clamp(1, stratum.len().max(1));
            for (_, group_rows) in stratum.iter().take(want) {
                rows.extend(group_rows);
            }
        }
        rows.sort_unstable();
        rows
    }
}

/// Rows of whole customers, about `target_rows` of them, drawn from each
/// stratum in proportion; sorted. All rows when there are no more.
pub fn stratified_group_sample(groups: &[u64], y: &[bool], target_rows: usize, seed: u64) -> Vec<usize> {
    if target_rows >= y.len() {
        return (0..y.len()).collect();
    }
    GroupSampler::new(groups, y, seed).sample(target_rows)
}

/// The fold (0..k) of every row: within each stratum, customers (largest
/// first, ties in shuffled order) go to the fold with the fewest rows of
/// that stratum so far.
pub fn grouped_stratified_folds(groups: &[u64], y: &[bool], k: usize, seed: u64) -> Vec<usize> {
    let k = k.max(1);
    let mut fold = vec![0usize; y.len()];
    for mut stratum in strata(groups, y, seed) {
        // Stable sort keeps the shuffled order among equal sizes.
        stratum.sort_by_key(|(_, rows)| std::cmp::Reverse(rows.len()));
        let mut load = vec![0usize; k];
        for (_, rows) in stratum {
            let f = (0..k).min_by_key(|&f| (load[f], f)).unwrap_or(0);
            load[f] += rows.len();
            for r in rows {
                fold[r] = f;
            }
        }
    }
    fold
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn group_ids_ignore_row_order() {
        let a = group_ids(&["b".into(), "a".into(), "b".into()]);
        assert_eq!(a, vec![1, 0, 1]);
    }
}
