//! Sticky assignment of customers to variants: a customer's position in
//! [0, 1) is a keyed hash of its pseudonym, the key being the experiment
//! id, so the same customer always sees the same variant within an
//! experiment and a new experiment id reshuffles everyone. SHA-256 rather
//! than Rust's `DefaultHasher`, whose output may change between releases:
//! assignments must survive a server upgrade.

use sha2::{Digest, Sha256};

/// The customer's position in [0, 1) for `experiment`.
pub fn position(experiment: &str, pseudonym: &str) -> f64 {
    let mut hash = Sha256::new();
    hash.update((experiment.len() as u64).to_le_bytes());
    hash.update(experiment.as_bytes());
    hash.update(pseudonym.as_bytes());
    let digest = hash.finalize();
    let mut top = [0u8; 8];
    top.copy_from_slice(&digest[..8]);
    // 53 bits: every value is an exact f64 in [0, 1).
    (u64::from_le_bytes(top) >> 11) as f64 / (1u64 << 53) as f64
}

/// The variant whose share holds `position` (shares sum to 1, in variant
/// order); the last variant with a share takes what rounding leaves.
pub fn by_shares(shares: &[f64], position: f64) -> usize {
    let mut upto = 0.0;
    let mut last = 0;
    for (i, share) in shares.iter().enumerate() {
        if *share <= 0.0 {
            continue;
        }
        upto += share;
        last = i;
        if position < upto {
            return i;
        }
    }
    last
}

/// Canary: the candidate for customers below `percent`, the first variant
/// (production) for the rest. Raising the percentage moves exactly the
/// customers between the old and the new one to the candidate, and no one
/// back.
pub fn canary(candidate: usize, percent: f64, position: f64) -> usize {
    if position * 100.0 < percent { candidate } else { 0 }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn customers(n: usize) -> Vec<String> {
        (0..n).map(|i| format!("{:064x}", i * 7919)).collect()
    }

    #[test]
    fn a_customer_always_sees_the_same_variant_and_a_new_experiment_reshuffles() {
        let shares = [0.5, 0.5];
        let all = customers(10_000);
        let first: Vec<usize> = all
            .iter()
            .map(|c| by_shares(&shares, position("exp-1", c)))
            .collect();
        let again: Vec<usize> = all
            .iter()
            .map(|c| by_shares(&shares, position("exp-1", c)))
            .collect();
        assert_eq!(first, again);
        let other: Vec<usize> = all
            .iter()
            .map(|c| by_shares(&shares, position("exp-2", c)))
            .collect();
        let moved = first.iter().zip(&other).filter(|(a, b)| a != b).count();
        // Independent halves: about half the customers change side.
        assert!((4_500..5_500).contains(&moved), "{moved}");
    }

    #[test]
    fn the_observed_split_over_100k_customers_is_within_1_percent_of_the_weights() {
        let shares = [0.7, 0.2, 0.1];
        let mut counts = [0usize; 3];
        for c in customers(100_000) {
            counts[by_shares(&shares, position("split-test", &c))] += 1;
        }
        for (count, share) in counts.iter().zip(shares) {
            let observed = *count as f64 / 100_000.0;
            assert!((observed - share).abs() < 0.01, "{counts:?}");
        }
    }

    #[test]
    fn a_zero_share_gets_no_one() {
        let shares = [0.0, 1.0, 0.0];
        for c in customers(1_000) {
            assert_eq!(by_shares(&shares, position("e", &c)), 1);
        }
        assert_eq!(by_shares(&[0.5, 0.5], 0.999_999_999_999), 1);
    }

    #[test]
    fn raising_the_canary_moves_only_the_customers_it_must() {
        let all = customers(100_000);
        let at = |percent: f64| -> Vec<usize> {
            all.iter()
                .map(|c| canary(1, percent, position("canary", c)))
                .collect()
        };
        let five = at(5.0);
        let ten = at(10.0);
        let moved: Vec<usize> = (0..all.len()).filter(|&i| five[i] != ten[i]).collect();
        // Only production -> candidate, never back.
        assert!(moved.iter().all(|&i| five[i] == 0 && ten[i] == 1));
        // About 5 % of the customers, and exactly those between 5 and 10.
        let share = moved.len() as f64 / all.len() as f64;
        assert!((share - 0.05).abs() < 0.005, "{share}");
        for &i in &moved {
            let p = position("canary", &all[i]) * 100.0;
            assert!((5.0..10.0).contains(&p), "{p}");
        }
        let candidate = ten.iter().filter(|&&v| v == 1).count() as f64 / all.len() as f64;
        assert!((candidate - 0.10).abs() < 0.01, "{candidate}");
        // Lowering it back moves the same customers back.
        assert_eq!(at(5.0), five);
    }
}
