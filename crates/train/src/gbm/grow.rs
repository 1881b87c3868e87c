//! Growing one tree leaf-wise: best gain first, up to `max_leaves`.
//!
//! A split partitions the leaf's row ids in place (stable, so every leaf's
//! rows stay in ascending order and histogram reads go forward through
//! memory); only the smaller child's histogram is built, the larger one is
//! the parent's minus it, in the parent's buffer. A feature whose rows all
//! fall in one bin of a node cannot split it or any of its descendants, so
//! its histogram is no longer built below that node.

use std::time::Instant;

use rayon::prelude::*;
use revspend_core::model::{GbmNode, GbmTree};
use revspend_core::params::GbmConfig;

use super::PhaseTimes;
use super::binning::Binned;
use super::hist::{CHUNK_ROWS, GradPair, Hist, Totals};

/// Smallest hessian sum a leaf may have.
const MIN_LEAF_HESSIAN: f64 = 1e-3;
/// Nodes of this many rows or more have their histograms summed in chunks
/// of rows (each row fetched by one thread), smaller ones by groups of
/// features (both threads busy however small the node). Two chunks already
/// beat every thread fetching every scattered row (a few percent of a round
/// at 2 threads, measured from 4 chunks down; one chunk gained nothing).
const CHUNKED_FROM: usize = 2 * CHUNK_ROWS;
/// Rows per block of a parallel partition: fixed, though the result would
/// not depend on it (a stable partition has one answer).
const PART_BLOCK: usize = 16_384;

#[derive(Debug, Clone, Copy)]
struct Split {
    feature: usize,
    bin: u8,
    gain: f64,
}

struct Leaf {
    node: usize,
    start: usize,
    end: usize,
    /// The early-stopping rows routed here: `val_rows[vstart..vend]`.
    vstart: usize,
    vend: usize,
    depth: u16,
    /// Only kept while the leaf can still split.
    hist: Option<Hist>,
    /// Features that may still split this leaf.
    active: Vec<bool>,
    total: Totals,
    split: Option<Split>,
}

/// One leaf of a grown tree: its rows `rows[start..end]`, its early-stopping
/// rows `val_rows[vstart..vend]` and its value.
pub(super) struct GrownLeaf {
    pub start: usize,
    pub end: usize,
    pub vstart: usize,
    pub vend: usize,
    pub value: f64,
}

pub(super) struct Grower<'a> {
    pub cfg: &'a GbmConfig,
    pub binned: &'a Binned,
    pub n_bins: &'a [usize],
    pub gh: &'a [GradPair],
    /// Histogram buffers to reuse (a fresh one is 120 KiB of page faults).
    pub pool: &'a mut Vec<Hist>,
    pub times: &'a mut PhaseTimes,
}

impl Grower<'_> {
    fn take_hist(&mut self) -> Hist {
        self.pool.pop().unwrap_or_else(|| Hist::new(self.binned.p))
    }

    fn build(&mut self, rows: &[u32], active: &[bool]) -> Hist {
        let started = Instant::now();
        let mut hist = self.take_hist();
        let (bins, p) = (&self.binned.bins, self.binned.p);
        if rows.len() >= CHUNKED_FROM {
            hist.build_chunked(rows, bins, p, self.gh, active, self.n_bins, self.pool);
        } else {
            hist.build(rows, bins, p, self.gh, active, self.n_bins);
        }
        self.times.histograms += started.elapsed();
        hist
    }

    /// A leaf (its training and early-stopping row ranges) from its
    /// histogram (built on `built` features): its totals,
    /// the features that can still split it and its best split.
    fn leaf(
        &mut self,
        node: usize,
        [range, vrange]: [(usize, usize); 2],
        depth: u16,
        hist: Hist,
        built: &[bool],
        total: Totals,
    ) -> Leaf {
        let started = Instant::now();
        let active: Vec<bool> = built
            .iter()
            .zip(&hist.features)
            .map(|(&on, h)| on && h.splittable())
            .collect();
        let split = self.best_split(&hist, &active, &total, depth);
        let hist = if split.is_some() {
            Some(hist)
        } else {
            self.pool.push(hist);
            None
        };
        self.times.splits += started.elapsed();
        Leaf {
            node,
            start: range.0,
            end: range.1,
            vstart: vrange.0,
            vend: vrange.1,
            depth,
            hist,
            active,
            total,
            split,
        }
    }

    fn best_split(&self, hist: &Hist, active: &[bool], total: &Totals, depth: u16) -> Option<Split> {
        let cfg = self.cfg;
        if cfg.max_depth.is_some_and(|d| depth >= d) {
            return None;
        }
        let min_n = cfg.min_samples_leaf as u64;
        if total.n < 2 * min_n {
            return None;
        }
        let score = |g: f64, h: f64| g * g / (h + cfg.l2);
        let parent = score(total.g, total.h);
        let mut best: Option<Split> = None;
        for (f, ((feature, &n_bins), _)) in hist
            .features
            .iter()
            .zip(self.n_bins)
            .zip(active)
            .enumerate()
            .filter(|(_, (_, on))| **on)
        {
            let (mut gl, mut hl, mut nl) = (0.0, 0.0, 0u64);
            // The last bin cannot be a left side: nothing would go right.
            let cells = feature.gh.iter().zip(&feature.n).take(n_bins.saturating_sub(1));
            for (b, (gh, &n)) in cells.enumerate() {
                gl += gh[0];
                hl += gh[1];
                nl += u64::from(n);
                if nl < min_n || hl < MIN_LEAF_HESSIAN {
                    continue;
                }
                let (gr, hr, nr) = (total.g - gl, total.h - hl, total.n - nl);
                if nr < min_n || hr < MIN_LEAF_HESSIAN {
                    break;
                }
                let gain = score(gl, hl) + score(gr, hr) - parent;
                if gain > 1e-12 && best.is_none_or(|s| gain > s.gain) {
                    best = Some(Split {
                        feature: f,
                        bin: u8::try_from(b).unwrap_or(u8::MAX),
                        gain,
                    });
                }
            }
        }
        best
    }

    /// Grows one tree on `rows` (reordered in place into leaves); returns
    /// the tree and its leaves.
    pub fn grow(
        &mut self,
        rows: &mut [u32],
        val_rows: &mut [u32],
        edges: &[Vec<f64>],
        scratch: &mut Vec<u32>,
    ) -> (GbmTree, Vec<GrownLeaf>) {
        let cfg = self.cfg;
        let leaf_node = GbmNode {
            feature: 0,
            threshold: 0.0,
            bin: 0,
            left: 0,
            right: 0,
            value: 0.0,
            gain: 0.0,
        };
        let mut nodes = vec![leaf_node.clone()];
        let usable: Vec<bool> = self.n_bins.iter().map(|&b| b > 1).collect();
        let Some(first) = usable.iter().position(|&on| on) else {
            // Every feature is constant: no tree to grow.
            return (GbmTree { nodes }, Vec::new());
        };
        let root_hist = self.build(rows, &usable);
        let root_total = root_hist.features[first].totals();
        let all = ((0, rows.len()), (0, val_rows.len()));
        let root = self.leaf(0, [all.0, all.1], 0, root_hist, &usable, root_total);
        let mut open = vec![root];
        let mut done: Vec<Leaf> = Vec::new();
        while open.len() + done.len() < cfg.max_leaves as usize {
            // Best gain first; ties go to the earliest leaf (deterministic).
            let Some(k) = open
                .iter()
                .enumerate()
                .filter_map(|(k, l)| l.split.map(|s| (k, s.gain)))
                .fold(None, |best: Option<(usize, f64)>, (k, g)| match best {
                    Some((_, bg)) if bg >= g => best,
                    _ => Some((k, g)),
                })
                .map(|(k, _)| k)
            else {
                break;
            };
            let mut leaf = open.swap_remove(k);
            let (Some(split), Some(mut parent_hist)) = (leaf.split, leaf.hist.take()) else {
                break;
            };
            let started = Instant::now();
            let n = self.binned.n;
            let column = &self.binned.columns[split.feature * n..(split.feature + 1) * n];
            let w = partition(&mut rows[leaf.start..leaf.end], column, split.bin, scratch);
            // Routed as the fitted tree routes them (bin <= split bin: left).
            let val_here = &mut val_rows[leaf.vstart..leaf.vend];
            let vmid = leaf.vstart + partition(val_here, column, split.bin, scratch);
            self.times.partition += started.elapsed();
            let mid = leaf.start + w;
            let (left_id, right_id) = (nodes.len(), nodes.len() + 1);
            nodes.push(leaf_node.clone());
            nodes.push(leaf_node.clone());
            nodes[leaf.node] = GbmNode {
                feature: u32::try_from(split.feature).unwrap_or(u32::MAX),
                threshold: edges[split.feature][split.bin as usize],
                bin: split.bin,
                left: u32::try_from(left_id).unwrap_or(u32::MAX),
                right: u32::try_from(right_id).unwrap_or(u32::MAX),
                value: 0.0,
                gain: split.gain,
            };
            let depth = leaf.depth + 1;
            let (lv, rv) = ((leaf.vstart, vmid), (vmid, leaf.vend));
            // After this split the tree has all its leaves (or the children
            // are as deep as allowed): neither child will be split, so only
            // their totals are needed, and the parent's histogram has them.
            let last = open.len() + done.len() + 2 >= cfg.max_leaves as usize;
            if last || cfg.max_depth.is_some_and(|d| depth >= d) {
                let cells = &parent_hist.features[split.feature];
                let mut lt = Totals::default();
                for (gh, &n) in cells.gh.iter().zip(&cells.n).take(split.bin as usize + 1) {
                    lt.g += gh[0];
                    lt.h += gh[1];
                    lt.n += u64::from(n);
                }
                let rt = leaf.total.sub(&lt);
                self.pool.push(parent_hist);
                for (node, (start, end), (vstart, vend), total) in [
                    (left_id, (leaf.start, mid), lv, lt),
                    (right_id, (mid, leaf.end), rv, rt),
                ] {
                    done.push(Leaf {
                        node,
                        start,
                        end,
                        vstart,
                        vend,
                        depth,
                        hist: None,
                        active: Vec::new(),
                        total,
                        split: None,
                    });
                }
                continue;
            }
            let left_small = w <= leaf.end - leaf.start - w;
            let small_rows = if left_small {
                &rows[leaf.start..mid]
            } else {
                &rows[mid..leaf.end]
            };
            let small_hist = self.build(small_rows, &leaf.active);
            let started = Instant::now();
            parent_hist.subtract(&small_hist, &leaf.active, self.n_bins);
            // The split feature was splittable, so `active` has a first.
            let first = leaf.active.iter().position(|&on| on).unwrap_or(split.feature);
            let small_total = small_hist.features[first].totals();
            let large_total = leaf.total.sub(&small_total);
            self.times.histograms += started.elapsed();
            let ((lh, lt), (rh, rt)) = if left_small {
                ((small_hist, small_total), (parent_hist, large_total))
            } else {
                ((parent_hist, large_total), (small_hist, small_total))
            };
            let left = self.leaf(left_id, [(leaf.start, mid), lv], depth, lh, &leaf.active, lt);
            let right = self.leaf(right_id, [(mid, leaf.end), rv], depth, rh, &leaf.active, rt);
            for child in [left, right] {
                if child.split.is_some() {
                    open.push(child);
                } else {
                    done.push(child);
                }
            }
        }
        done.extend(open);
        let mut leaves = Vec::with_capacity(done.len());
        for mut l in done {
            if let Some(h) = l.hist.take() {
                self.pool.push(h);
            }
            let value = -cfg.learning_rate * l.total.g / (l.total.h + cfg.l2);
            nodes[l.node].value = value;
            leaves.push(GrownLeaf {
                start: l.start,
                end: l.end,
                vstart: l.vstart,
                vend: l.vend,
                value,
            });
        }
        (GbmTree { nodes }, leaves)
    }
}

/// Stable partition of `rows`: those whose bin in `column` is `<= bin`
/// first; returns how many. Large ranges are partitioned in blocks on the
/// worker threads, then the blocks' left and right parts are concatenated
/// in order (the same answer as one pass), also on the worker threads:
/// the copies of a root-sized node are as long as the partition itself.
fn partition(rows: &mut [u32], column: &[u8], bin: u8, scratch: &mut Vec<u32>) -> usize {
    if rows.len() <= PART_BLOCK {
        return partition_block(rows, column, bin, scratch);
    }
    let lefts: Vec<usize> = rows
        .par_chunks_mut(PART_BLOCK)
        .map_init(Vec::new, |buf, block| partition_block(block, column, bin, buf))
        .collect();
    let total_left: usize = lefts.iter().sum();
    if scratch.len() < rows.len() {
        scratch.resize(rows.len(), 0);
    }
    // Each block's left part goes after the earlier blocks' left parts, its
    // right part after all left parts and the earlier right parts: cut the
    // scratch into those disjoint pieces, one (left, right) pair per block.
    let (mut to_left, mut to_right) = scratch[..rows.len()].split_at_mut(total_left);
    let mut pieces: Vec<(&[u32], &mut [u32], &mut [u32])> = Vec::with_capacity(lefts.len());
    for (block, &l) in rows.chunks(PART_BLOCK).zip(&lefts) {
        let (left, rest) = std::mem::take(&mut to_left).split_at_mut(l);
        let (right, rest_right) = std::mem::take(&mut to_right).split_at_mut(block.len() - l);
        to_left = rest;
        to_right = rest_right;
        pieces.push((block, left, right));
    }
    pieces.into_par_iter().for_each(|(block, left, right)| {
        let (l, r) = block.split_at(left.len());
        left.copy_from_slice(l);
        right.copy_from_slice(r);
    });
    let len = rows.len();
    rows.par_chunks_mut(PART_BLOCK)
        .zip(scratch[..len].par_chunks(PART_BLOCK))
        .for_each(|(out, sorted)| out.copy_from_slice(sorted));
    total_left
}

/// One pass, without branches on the data: every row is written to both
/// sides and only the side it belongs to advances.
fn partition_block(rows: &mut [u32], column: &[u8], bin: u8, right: &mut Vec<u32>) -> usize {
    // Every slot written below is written before it is read: growing the
    // buffer is enough, no need to zero it per call.
    if right.len() < rows.len() {
        right.resize(rows.len(), 0);
    }
    let (mut w, mut k) = (0, 0);
    for i in 0..rows.len() {
        let r = rows[i];
        let goes_left = column[r as usize] <= bin;
        // w <= i, so this never overwrites a row not yet read.
        rows[w] = r;
        right[k] = r;
        w += usize::from(goes_left);
        k += usize::from(!goes_left);
    }
    rows[w..].copy_from_slice(&right[..k]);
    w
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partition_is_stable_and_blockwise_equals_one_pass() {
        let n = 3 * PART_BLOCK + 123;
        let column: Vec<u8> = (0..n).map(|r| ((r * 7919) % 251) as u8).collect();
        let rows: Vec<u32> = (0..n as u32).filter(|r| r % 3 != 0).collect();
        for bin in [0u8, 17, 125, 250, 255] {
            let mut got = rows.clone();
            let mut scratch = Vec::new();
            let w = partition(&mut got, &column, bin, &mut scratch);
            let (left, right): (Vec<u32>, Vec<u32>) = rows.iter().partition(|&&r| column[r as usize] <= bin);
            assert_eq!(w, left.len(), "bin {bin}");
            assert_eq!(&got[..w], &left[..]);
            assert_eq!(&got[w..], &right[..]);
        }
    }
}
