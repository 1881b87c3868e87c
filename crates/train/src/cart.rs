//! CART trees: fitting with smartcore and converting the fitted tree into
//! core's own [`CartTree`], the type the artifact carries.
//!
//! smartcore 0.7 keeps a tree's nodes private; its serde form is their only
//! public view, so the conversion goes through it (serde_json), in
//! [`from_smartcore`]. The mirror types below deny unknown fields, so a
//! smartcore release that changes the layout fails the conversion (and its
//! tests) instead of producing a different model.

use anyhow::{Context, Result, anyhow, bail};
use revspend_core::model::{CartNode, CartTree, FeatureMatrix};
use serde::Deserialize;
use serde::de::IgnoredAny;
use smartcore::linalg::basic::matrix::DenseMatrix;
use smartcore::tree::decision_tree_classifier::{
    DecisionTreeClassifier, DecisionTreeClassifierParameters, SplitCriterion,
};

/// A smartcore CART tree over `f64` features with 0/1 labels.
pub type SmartcoreTree = DecisionTreeClassifier<f64, u32, DenseMatrix<f64>, Vec<u32>>;

/// What a CART tree is grown with.
#[derive(Debug, Clone, Copy)]
pub struct Growth {
    pub max_depth: u16,
    pub min_samples_leaf: usize,
    pub seed: u64,
}

/// Grows a Gini CART tree on the rows `rows` and columns `cols` of `x` with
/// the 0/1 `labels` of those rows, and converts it. The tree's features
/// index `cols`.
pub fn fit(
    x: &FeatureMatrix,
    rows: &[usize],
    cols: &[usize],
    labels: &[u32],
    growth: Growth,
) -> Result<CartTree> {
    let params = DecisionTreeClassifierParameters {
        criterion: SplitCriterion::Gini,
        max_depth: Some(growth.max_depth),
        min_samples_leaf: growth.min_samples_leaf,
        min_samples_split: 2 * growth.min_samples_leaf,
        seed: Some(growth.seed),
    };
    let tree =
        SmartcoreTree::fit(&gather(x, rows, cols)?, &labels.to_vec(), params).map_err(|e| anyhow!("{e}"))?;
    from_smartcore(&tree)
}

/// The rows `rows` of `x` restricted to the columns `cols`, as a smartcore
/// matrix.
pub fn gather(x: &FeatureMatrix, rows: &[usize], cols: &[usize]) -> Result<DenseMatrix<f64>> {
    let mut values = Vec::with_capacity(rows.len() * cols.len());
    for &r in rows {
        let row = x.row(r);
        values.extend(cols.iter().map(|&c| row[c]));
    }
    DenseMatrix::new(rows.len(), cols.len(), values, false).map_err(|e| anyhow!("{e}"))
}

/// The fields of smartcore 0.7's `DecisionTreeClassifier` this conversion
/// reads (the rest are ignored).
#[derive(Deserialize)]
struct Mirror {
    nodes: Vec<MirrorNode>,
    classes: Vec<u32>,
}

/// smartcore 0.7's private `Node`, field for field.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct MirrorNode {
    output: usize,
    #[serde(rename = "n_node_samples")]
    _n_node_samples: IgnoredAny,
    split_feature: usize,
    split_value: Option<f64>,
    #[serde(rename = "split_score")]
    _split_score: IgnoredAny,
    true_child: Option<usize>,
    false_child: Option<usize>,
    #[serde(rename = "impurity")]
    _impurity: IgnoredAny,
}

/// Converts a fitted smartcore tree into core's [`CartTree`], routing every
/// row to a leaf of the same probability as smartcore's `predict_proba`
/// (positive column) for a tree of both classes, and as its `predict` for a
/// tree of one class.
///
/// smartcore routes `x <= split_value` to the true child and everything
/// else (NaN, or a split without a value) to the false child; its leaf
/// probability is one-hot on `output`, an index into the sorted labels.
pub fn from_smartcore(tree: &SmartcoreTree) -> Result<CartTree> {
    let json = serde_json::to_value(tree).context("serialising a smartcore tree")?;
    let mirror: Mirror =
        serde_json::from_value(json).context("reading a smartcore tree: has smartcore's layout changed?")?;
    convert(&mirror)
}

/// Core's tree from smartcore's nodes, checking that they form a tree.
fn convert(mirror: &Mirror) -> Result<CartTree> {
    if mirror.nodes.is_empty() {
        bail!("the smartcore tree has no nodes (never fitted)");
    }
    if mirror.classes.is_empty() || mirror.classes.iter().any(|&c| c > 1) || !mirror.classes.is_sorted() {
        bail!("tree labels {:?}: expected sorted 0/1 labels", mirror.classes);
    }
    let index = |i: usize, what: &str, child: usize| {
        // smartcore appends children after their parent: never node 0, and
        // so never a cycle.
        if child <= i || child >= mirror.nodes.len() {
            bail!("node {i}: {what} child {child} is not a later node");
        }
        u32::try_from(child).with_context(|| format!("node {i}: child index {child}"))
    };
    mirror
        .nodes
        .iter()
        .enumerate()
        .map(|(i, n)| {
            let Some(&label) = mirror.classes.get(n.output) else {
                bail!("node {i}: output {} is not a class", n.output);
            };
            let (left, right) = match (n.true_child, n.false_child) {
                (None, None) => (0, 0),
                (Some(t), Some(f)) => (index(i, "true", t)?, index(i, "false", f)?),
                _ => bail!("node {i} has one child"),
            };
            if left != 0 && n.split_value.is_none_or(|v| !v.is_finite()) {
                // serde_json writes NaN and ±inf as null, so a split written
                // as null could be an infinite threshold. smartcore never
                // makes one from finite features; refuse rather than guess.
                bail!("node {i}: split without a finite threshold");
            }
            Ok(CartNode {
                feature: u32::try_from(n.split_feature).with_context(|| format!("node {i}: feature"))?,
                threshold: n.split_value.unwrap_or(f64::NAN),
                left,
                right,
                positive: if left == 0 { f64::from(label) } else { 0.0 },
            })
        })
        .collect::<Result<Vec<_>>>()
        .map(|nodes| CartTree { nodes })
}

#[cfg(test)]
mod tests {
    use smartcore::linalg::basic::arrays::Array;

    use super::*;

    /// The probability the tree gave before the conversion existed: the
    /// positive column of smartcore's `predict_proba`, or its `predict` for
    /// a tree of one class.
    fn smartcore_positive(tree: &SmartcoreTree, x: &DenseMatrix<f64>) -> Vec<f64> {
        let proba = tree.predict_proba(x).expect("predict_proba");
        let (n, classes) = proba.shape();
        if classes == 2 {
            return (0..n).map(|i| *proba.get((i, 1))).collect();
        }
        tree.predict(x)
            .expect("predict")
            .into_iter()
            .map(f64::from)
            .collect()
    }

    fn converted(tree: &CartTree, x: &FeatureMatrix) -> Vec<f64> {
        (0..x.rows)
            .map(|r| tree.positive_proba(|f| x.row(r)[f]).expect("a leaf"))
            .collect()
    }

    /// Three features with many ties (few distinct values), labels a noisy
    /// rule of them; with `nan`, feature 1 is NaN in some rows (only to
    /// predict on: smartcore's sort of a column with NaN indexes out of
    /// bounds while fitting).
    fn data(n: usize, salt: usize, nan: bool) -> (FeatureMatrix, Vec<u32>) {
        let mut values = Vec::with_capacity(3 * n);
        let mut y = Vec::with_capacity(n);
        for i in 0..n {
            let k = i * 7 + salt;
            let a = (k % 5) as f64;
            let b = if nan && k.is_multiple_of(11) {
                f64::NAN
            } else {
                ((k / 3) % 4) as f64 * 0.5
            };
            let c = ((k * 13) % 17) as f64;
            values.extend([a, b, c]);
            y.push(u32::from((a >= 2.0 && b != 1.0) ^ k.is_multiple_of(9)));
        }
        (FeatureMatrix::new(n, 3, values), y)
    }

    #[test]
    fn converted_trees_predict_bit_identically_to_smartcore() {
        let (x, y) = data(400, 0, false);
        let (probe, _) = data(300, 5, true);
        let rows: Vec<usize> = (0..x.rows).collect();
        let cols = [0, 1, 2];
        for (max_depth, min_samples_leaf) in [(1, 1), (2, 1), (3, 5), (12, 1), (8, 20)] {
            let params = DecisionTreeClassifierParameters {
                criterion: SplitCriterion::Gini,
                max_depth: Some(max_depth),
                min_samples_leaf,
                min_samples_split: 2 * min_samples_leaf,
                seed: Some(3),
            };
            let tree =
                SmartcoreTree::fit(&gather(&x, &rows, &cols).expect("matrix"), &y, params).expect("fit");
            let ours = from_smartcore(&tree).expect("convert");
            // smartcore counts the root as level 1: depth 1 is a single leaf.
            assert_eq!(ours.nodes.len() > 1, max_depth > 1, "depth {max_depth}");
            for m in [&x, &probe] {
                let want = smartcore_positive(
                    &tree,
                    &gather(m, &(0..m.rows).collect::<Vec<_>>(), &cols).expect("m"),
                );
                let got = converted(&ours, m);
                let bits = |v: &[f64]| v.iter().map(|p| p.to_bits()).collect::<Vec<_>>();
                assert_eq!(
                    bits(&got),
                    bits(&want),
                    "depth {max_depth}, leaf {min_samples_leaf}"
                );
            }
        }
    }

    #[test]
    fn a_tree_of_one_class_predicts_its_label() {
        // smartcore refuses to fit on one class; such a tree only exists
        // through its serde form, which is what this builds on.
        for label in [0u32, 1] {
            let json = serde_json::json!({
                "nodes": [{
                    "output": 0, "n_node_samples": 3, "split_feature": 0,
                    "split_value": null, "split_score": null,
                    "true_child": null, "false_child": null, "impurity": 0.0
                }],
                "parameters": null, "num_classes": 1, "classes": [label],
                "depth": 0, "num_features": 1,
                "_phantom_tx": null, "_phantom_x": null, "_phantom_y": null
            });
            let tree: SmartcoreTree = serde_json::from_value(json).expect("a smartcore tree");
            let ours = from_smartcore(&tree).expect("convert");
            let x = FeatureMatrix::new(3, 1, vec![0.0, f64::NAN, 5.0]);
            let m = gather(&x, &[0, 1, 2], &[0]).expect("matrix");
            assert_eq!(converted(&ours, &x), smartcore_positive(&tree, &m));
            assert_eq!(converted(&ours, &x), vec![f64::from(label); 3]);
        }
    }

    #[test]
    fn the_layout_this_conversion_reads_is_smartcores() {
        // Guards the serde mirror: every field of smartcore's node is known
        // (deny_unknown_fields) and the ones read are present.
        let (x, y) = data(100, 1, false);
        let m = gather(&x, &(0..x.rows).collect::<Vec<_>>(), &[0, 1, 2]).expect("matrix");
        let tree = SmartcoreTree::fit(&m, &y, DecisionTreeClassifierParameters::default()).expect("fit");
        let json = serde_json::to_value(&tree).expect("json");
        let node = &json["nodes"][0];
        let mut fields: Vec<&str> = node
            .as_object()
            .expect("node object")
            .keys()
            .map(String::as_str)
            .collect();
        fields.sort_unstable();
        assert_eq!(
            fields,
            [
                "false_child",
                "impurity",
                "n_node_samples",
                "output",
                "split_feature",
                "split_score",
                "split_value",
                "true_child"
            ]
        );
        assert_eq!(json["classes"], serde_json::json!([0, 1]));
        assert!(from_smartcore(&tree).is_ok());
    }

    #[test]
    fn malformed_trees_are_refused() {
        let node = |t: Option<usize>, f: Option<usize>| MirrorNode {
            output: 0,
            _n_node_samples: IgnoredAny,
            split_feature: 0,
            split_value: Some(0.5),
            _split_score: IgnoredAny,
            true_child: t,
            false_child: f,
            _impurity: IgnoredAny,
        };
        let tree = |nodes: Vec<MirrorNode>, classes: Vec<u32>| convert(&Mirror { nodes, classes });
        let leaves = || vec![node(None, None), node(None, None)];
        let mut ok = vec![node(Some(1), Some(2))];
        ok.extend(leaves());
        assert!(tree(ok, vec![0, 1]).is_ok());
        let mut cycle = vec![node(Some(1), Some(2)), node(Some(0), Some(2))];
        cycle.push(node(None, None));
        assert!(tree(cycle, vec![0, 1]).is_err(), "a cycle");
        assert!(
            tree(vec![node(Some(1), Some(9)), node(None, None)], vec![0, 1]).is_err(),
            "out of range"
        );
        assert!(
            tree(vec![node(Some(1), None), node(None, None)], vec![0, 1]).is_err(),
            "one child"
        );
        let mut no_value = vec![node(Some(1), Some(2))];
        no_value[0].split_value = None;
        no_value.extend(leaves());
        assert!(tree(no_value, vec![0, 1]).is_err(), "a split without a threshold");
        assert!(
            tree(vec![node(None, None)], vec![0, 2]).is_err(),
            "labels other than 0/1"
        );
        assert!(
            tree(vec![node(None, None)], vec![1, 0]).is_err(),
            "unsorted labels"
        );
        assert!(tree(Vec::new(), vec![0, 1]).is_err(), "never fitted");
        // A layout that does not match smartcore 0.7's is refused.
        let bad = serde_json::json!({"nodes": [{"output": 0, "extra": 1}], "classes": [0, 1]});
        assert!(serde_json::from_value::<Mirror>(bad).is_err());
    }
}
