//! What `evaluate` reads, written directly: a logistic model with fixed
//! coefficients (built in code, written with the real artifact writer), a
//! synthetic holdout table whose labels follow that model, the train split
//! the model is recorded as trained on (same law, other customers), and the
//! fixture params (`tests/it/params.yaml`, not the live one).

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use polars::prelude::{Column, DataFrame, DataType};
use revspend_core::artifact::{self, CUSTOMER_COLUMN, TARGET_COLUMN};
use revspend_core::calibration::Calibrator;
use revspend_core::features::Feature;
use revspend_core::metrics::BinaryMetrics;
use revspend_core::model::{Classifier, Logistic, ModelArtifact, Reliability};
use revspend_core::params::Params;
use revspend_core::schema::DATE;
use revspend_core::target::TargetRule;

/// The fixture params file.
pub fn params_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/it/params.yaml")
}

/// The model's features, in its order.
pub const FEATURES: [Feature; 3] = [Feature::PrevUtilisation, Feature::GroupNonVital, Feature::Valor];

/// Customers of the train split.
pub const TRAIN_CUSTOMERS: usize = 300;

/// Purchases per customer in the holdout and the train split.
const ROWS_PER_CUSTOMER: usize = 10;

/// The log-odds of the holdout's labels and of the model alike:
/// `7·(u − 0.6) + 2.5·g − 1.5` (the amount carries no signal).
fn log_odds(u: f64, g: f64) -> f64 {
    7.0 * (u - 0.6) + 2.5 * g - 1.5
}

/// A logistic model of [`log_odds`] on standardised features (mean 0,
/// scale 1, so the coefficients are the raw ones), Platt-calibrated, with
/// a threshold of 0.3.
pub fn model() -> ModelArtifact {
    let params = Params::load(&params_path()).expect("fixture params");
    let (train_params, params_hash) = params.train.json_and_hash();
    ModelArtifact {
        model_version: "logistic-000000000000".into(),
        algorithm: "logistic".into(),
        hyperparameters: r#"{"alpha":1.0}"#.into(),
        features: FEATURES.to_vec(),
        rule: TargetRule {
            threshold_pct: 20.0,
            vital_groups: vec!["SERVICO".into(), "SUPERMERCADOS".into()],
        },
        classifier: Classifier::Logistic(Logistic {
            mean: vec![0.0; 3],
            scale: vec![1.0; 3],
            coefficients: vec![7.0, 2.5, 0.0],
            intercept: -7.0 * 0.6 - 1.5,
        }),
        calibrator: Calibrator::Platt { a: 0.9, b: -0.1 },
        threshold: 0.3,
        threshold_source: "params".into(),
        training_prior: 0.15,
        train_params,
        params_hash,
        data_hash: train_sha256(),
        test_metrics: BinaryMetrics::compute(&[0.1, 0.9], &[false, true], 0.3),
        reliability: Reliability {
            before: Vec::new(),
            after: Vec::new(),
            ece_before: 0.05,
            ece_after: 0.01,
        },
        written_by: "evaluate tests".into(),
        key_fingerprint: "0".repeat(32),
    }
}

/// `customers` customers of the holdout.
pub fn holdout(customers: usize) -> DataFrame {
    split("h", 0, customers)
}

/// The train split: customers `t-…`, drawn after 100,000 holdout rows.
pub fn train(customers: usize) -> DataFrame {
    split("t", 100_000, customers)
}

/// The SHA-256 of the train split's file, as [`write`] writes it: what the
/// model records as its `data_hash`.
pub fn train_sha256() -> String {
    static SHA: OnceLock<String> = OnceLock::new();
    SHA.get_or_init(|| {
        let dir = tempfile::tempdir().expect("tempdir");
        revspend_table::write_table(&dir.path().join("train.parquet"), &mut train(TRAIN_CUSTOMERS))
            .expect("write train split")
    })
    .clone()
}

/// `customers` customers named `<prefix>-…`, rows `skip + 1…` of the
/// draws. Draws are low-discrepancy sequences, so the table is
/// deterministic without an RNG.
fn split(prefix: &str, skip: usize, customers: usize) -> DataFrame {
    let n = customers * ROWS_PER_CUSTOMER;
    let draw = |i: usize, a: f64| ((i + skip) as f64 * a).fract();
    let (mut customer, mut target) = (Vec::with_capacity(n), Vec::with_capacity(n));
    let mut values: [Vec<f64>; 3] = std::array::from_fn(|_| Vec::with_capacity(n));
    for i in 0..n {
        let u = draw(i + 1, 0.618_033_988_749_895);
        let g = f64::from(u8::from(draw(i + 1, 0.754_877_666_246_693) < 0.6));
        let p = 1.0 / (1.0 + (-log_odds(u, g)).exp());
        customer.push(format!("{prefix}-{:04}", i / ROWS_PER_CUSTOMER));
        target.push(draw(i + 1, 0.569_840_290_998_053) < p);
        values[0].push(u);
        values[1].push(g);
        values[2].push(1.0 + 499.0 * draw(i + 1, 0.412_454_033_640_107));
    }
    let mut columns = vec![
        Column::new(CUSTOMER_COLUMN.into(), customer),
        Column::new(TARGET_COLUMN.into(), target),
    ];
    for (f, v) in FEATURES.iter().zip(values) {
        columns.push(Column::new(f.name().into(), v));
    }
    // What the slices are cut by: two months, every merchant group code,
    // ages 20..70, both sexes, and each customer's first row a cold start.
    let days: Vec<i32> = (0..n).map(|i| 18_262 + (i % 60) as i32).collect();
    columns.push(
        Column::new(DATE.into(), days)
            .cast(&DataType::Date)
            .expect("date column"),
    );
    let described = [
        (
            Feature::GroupCode,
            (0..n).map(|i| (i % 22) as f64).collect::<Vec<_>>(),
        ),
        (
            Feature::Idade,
            (0..n)
                .map(|i| 20.0 + (i / ROWS_PER_CUSTOMER % 50) as f64)
                .collect(),
        ),
        (
            Feature::SexoM,
            (0..n).map(|i| (i / ROWS_PER_CUSTOMER % 2) as f64).collect(),
        ),
        (
            Feature::PurchasesBefore,
            (0..n).map(|i| (i % ROWS_PER_CUSTOMER) as f64).collect(),
        ),
    ];
    for (f, v) in described {
        columns.push(Column::new(f.name().into(), v));
    }
    DataFrame::new(n, columns).expect("split table")
}

/// Writes `params.yaml`, `models/model.bin`,
/// `data/splits/holdout.parquet`, `data/splits/train.parquet` (the model's
/// data hash) and `data/features.json` (recording both splits' hashes)
/// under `dir`.
pub fn write(dir: &Path) {
    std::fs::copy(params_path(), dir.join("params.yaml")).expect("copy params");
    let model = model();
    artifact::write_model(&dir.join("models/model.bin"), &model).expect("write model");
    let holdout_sha =
        revspend_table::write_table(&dir.join("data/splits/holdout.parquet"), &mut holdout(150))
            .expect("write holdout");
    let train_sha = revspend_table::write_table(
        &dir.join("data/splits/train.parquet"),
        &mut train(TRAIN_CUSTOMERS),
    )
    .expect("write train split");
    assert_eq!(
        train_sha, model.data_hash,
        "the train split is written byte for byte alike"
    );
    let list = artifact::FeatureList {
        version: artifact::FEATURE_LIST_VERSION,
        features: FEATURES.iter().map(|f| f.name().to_owned()).collect(),
        rule: model.rule.clone(),
        key_fingerprint: model.key_fingerprint.clone(),
        run_outputs: [
            (artifact::run_output::split("holdout"), holdout_sha),
            (artifact::run_output::split("train"), train_sha),
        ]
        .into_iter()
        .collect(),
    };
    artifact::write_json(&dir.join("data/features.json"), &list).expect("write feature list");
}
