//! The tables `train` reads, written directly: four small split tables of
//! whole customers with a known learnable signal, the feature list, and the
//! fixture params (`tests/it/params.yaml`, not the live one). No other
//! stage is compiled or run.

use std::path::{Path, PathBuf};

use polars::prelude::{Column, DataFrame};
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use revspend_core::artifact::{self, CUSTOMER_COLUMN, FeatureList, TARGET_COLUMN};
use revspend_core::features::Feature;
use revspend_core::params::Params;
use revspend_core::target::TargetRule;

/// The fixture params file.
pub fn params_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/it/params.yaml")
}

/// The fixture params.
pub fn params() -> Params {
    Params::load(&params_path()).expect("fixture params")
}

/// The model features of the fixture, in the feature list's order.
pub const FEATURES: [Feature; 5] = [
    Feature::PrevUtilisation,
    Feature::GroupNonVital,
    Feature::Valor,
    Feature::PurchasesBefore,
    Feature::NonVitalShare30d,
];

/// The key fingerprint the fixture's feature list records (train copies it
/// into the model).
pub const KEY_FINGERPRINT: &str = "0123456789abcdef0123456789abcdef";

/// Purchases per customer.
const ROWS_PER_CUSTOMER: usize = 20;

/// Where the fixture's files are.
#[derive(Debug, Clone)]
pub struct Layout {
    pub splits_dir: PathBuf,
    pub feature_list: PathBuf,
}

/// Writes `params.yaml`, `data/features.json` and
/// `data/splits/{train,test,holdout,calibration}.parquet` under `dir`;
/// returns where they are and the params.
pub fn build(dir: &Path) -> (Layout, Params) {
    std::fs::copy(params_path(), dir.join("params.yaml")).expect("copy params");
    let inputs = train::Inputs::under(dir);
    let layout = Layout {
        splits_dir: inputs.train.parent().expect("splits dir").to_owned(),
        feature_list: inputs.feature_list,
    };
    // Customers per split (60/15/15/10 of 250), each split its own seed.
    let mut run_outputs = std::collections::BTreeMap::new();
    for (k, (name, customers)) in [("train", 150), ("test", 40), ("holdout", 40), ("calibration", 25)]
        .into_iter()
        .enumerate()
    {
        let mut df = split_table(name, customers, 100 + k as u64);
        let sha256 = revspend_table::write_table(&layout.splits_dir.join(format!("{name}.parquet")), &mut df)
            .expect("split table");
        run_outputs.insert(artifact::run_output::split(name), sha256);
    }
    // Last, as build-features writes it: the record of the splits above.
    let list = FeatureList {
        version: artifact::FEATURE_LIST_VERSION,
        features: FEATURES.iter().map(|f| f.name().to_owned()).collect(),
        rule: TargetRule {
            threshold_pct: 20.0,
            vital_groups: vec!["SERVICO".into(), "SUPERMERCADOS".into()],
        },
        key_fingerprint: KEY_FINGERPRINT.into(),
        run_outputs,
    };
    artifact::write_json(&layout.feature_list, &list).expect("feature list");
    (layout, params())
}

/// `customers` customers of [`ROWS_PER_CUSTOMER`] purchases each. The
/// log-odds of revenge spending are `7·(u − 0.6) + 2.5·g − 1.5` for the
/// previous utilisation `u` (drawn around a per-customer level, so history
/// predicts) and the non-vital flag `g`; amount, purchase count and the
/// non-vital share are weak or no signal. About 15% positive.
pub fn split_table(name: &str, customers: usize, seed: u64) -> DataFrame {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let n = customers * ROWS_PER_CUSTOMER;
    let mut customer = Vec::with_capacity(n);
    let mut target = Vec::with_capacity(n);
    let mut values: [Vec<f64>; 5] = std::array::from_fn(|_| Vec::with_capacity(n));
    for c in 0..customers {
        let level: f64 = rng.random_range(0.0..1.0);
        let mut non_vital = 0.0;
        for k in 0..ROWS_PER_CUSTOMER {
            let u = (level + rng.random_range(-0.2..0.2)).clamp(0.0, 1.0);
            let g = f64::from(u8::from(rng.random_range(0.0..1.0) < 0.6));
            let z = 7.0 * (u - 0.6) + 2.5 * g - 1.5;
            let p = 1.0 / (1.0 + (-z).exp());
            customer.push(format!("{name}-{c:04}"));
            target.push(rng.random_range(0.0..1.0) < p);
            values[0].push(u);
            values[1].push(g);
            values[2].push((rng.random_range(1.0..500.0_f64) * 100.0).round() / 100.0);
            values[3].push(k as f64);
            values[4].push(if k == 0 { 0.0 } else { non_vital / k as f64 });
            non_vital += g;
        }
    }
    let mut columns = vec![
        Column::new(CUSTOMER_COLUMN.into(), customer),
        Column::new(TARGET_COLUMN.into(), target),
    ];
    for (f, v) in FEATURES.iter().zip(values) {
        columns.push(Column::new(f.name().into(), v));
    }
    DataFrame::new(n, columns).expect("split table")
}
