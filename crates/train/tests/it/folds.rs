//! Grouped, stratified folds and samples.

use std::collections::{HashMap, HashSet};

use train::cv::{group_ids, grouped_stratified_folds, stratified_group_sample};

/// Groups of uneven size, a third of them with positives.
fn data() -> (Vec<u64>, Vec<bool>) {
    let mut groups = Vec::new();
    let mut y = Vec::new();
    for g in 0..300u64 {
        let size = 1 + (g * 7 % 23) as usize;
        for k in 0..size {
            groups.push(g);
            y.push(g % 3 == 0 && k % 4 == 0);
        }
    }
    (groups, y)
}

#[test]
fn no_customer_is_in_two_folds() {
    let (groups, y) = data();
    for k in [2, 4, 5] {
        let folds = grouped_stratified_folds(&groups, &y, k, 1);
        let mut fold_of: HashMap<u64, usize> = HashMap::new();
        for (g, f) in groups.iter().zip(&folds) {
            assert!(*f < k);
            assert_eq!(*fold_of.entry(*g).or_insert(*f), *f, "customer {g} in two folds");
        }
        assert_eq!(
            fold_of.values().collect::<HashSet<_>>().len(),
            k,
            "every fold used"
        );
    }
}

#[test]
fn folds_are_stratified_by_customers_with_positives() {
    let (groups, y) = data();
    let k = 4;
    let folds = grouped_stratified_folds(&groups, &y, k, 3);
    let mut with_pos = vec![HashSet::new(); k];
    let mut rows = vec![0usize; k];
    let mut positives = vec![0usize; k];
    for ((g, f), label) in groups.iter().zip(&folds).zip(&y) {
        rows[*f] += 1;
        if *label {
            positives[*f] += 1;
            with_pos[*f].insert(*g);
        }
    }
    let counts: Vec<usize> = with_pos.iter().map(HashSet::len).collect();
    let (lo, hi) = (counts.iter().min().copied(), counts.iter().max().copied());
    // 100 customers with positives over 4 folds: 25 each, give or take one.
    assert!(hi.unwrap_or(0) - lo.unwrap_or(0) <= 1, "{counts:?}");
    let mean = groups.len() as f64 / k as f64;
    for r in &rows {
        assert!((*r as f64 - mean).abs() / mean < 0.1, "fold sizes {rows:?}");
    }
    let rate: Vec<f64> = positives
        .iter()
        .zip(&rows)
        .map(|(p, r)| *p as f64 / *r as f64)
        .collect();
    let overall = y.iter().filter(|v| **v).count() as f64 / y.len() as f64;
    for r in &rate {
        assert!(
            (r - overall).abs() < 0.5 * overall,
            "fold rates {rate:?} vs {overall}"
        );
    }
    // Same seed, same folds.
    assert_eq!(folds, grouped_stratified_folds(&groups, &y, k, 3));
}

#[test]
fn the_sample_takes_whole_customers_in_proportion() {
    let (groups, y) = data();
    let rows = stratified_group_sample(&groups, &y, groups.len() / 3, 9);
    let picked: HashSet<u64> = rows.iter().map(|&r| groups[r]).collect();
    let whole = groups
        .iter()
        .zip(0..)
        .all(|(g, r)| picked.contains(g) == rows.contains(&r));
    assert!(whole, "a customer was split by the sample");
    let share = rows.len() as f64 / groups.len() as f64;
    assert!((share - 1.0 / 3.0).abs() < 0.05, "sampled {share}");
    let rate = |rs: &[usize]| rs.iter().filter(|&&r| y[r]).count() as f64 / rs.len() as f64;
    let all: Vec<usize> = (0..y.len()).collect();
    assert!((rate(&rows) - rate(&all)).abs() < 0.3 * rate(&all));
    assert_eq!(stratified_group_sample(&groups, &y, 10 * groups.len(), 9), all);
}

#[test]
fn group_ids_are_dense_and_shared_by_a_customer() {
    let ids = group_ids(&["c".into(), "a".into(), "c".into(), "b".into()]);
    assert_eq!(ids, vec![2, 0, 2, 1]);
}
