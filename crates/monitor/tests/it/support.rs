//! A small world for the monitor stage: a feature layer of three months, a
//! test split, the train profile, the feature list that ties them, build-
//! features' and evaluate's reports, and a registry with a logistic model
//! that is calibrated on this data (labels are drawn from its own
//! probabilities), all in a temporary directory.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Output;

use polars::prelude::*;
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use revspend_core::artifact::{self, FEATURE_LIST_VERSION, FeatureList, run_output};
use revspend_core::calibration::Calibrator;
use revspend_core::features::Feature;
use revspend_core::metrics::BinaryMetrics;
use revspend_core::model::{Classifier, FeatureMatrix, Logistic, ModelArtifact, Reliability};
use revspend_core::profile::{Profile, numeric_from_values};
use revspend_core::registry::{NewVersion, Registry};
use revspend_core::target::TargetRule;
use revspend_table::write_table;

pub const FEATURES: [Feature; 3] = [Feature::Valor, Feature::PrevUtilisation, Feature::Idade];
const ROWS_PER_MONTH: usize = 2_000;

pub struct World {
    pub dir: tempfile::TempDir,
}

/// One month's rows: the three features and the label.
struct Rows {
    x: Vec<[f64; 3]>,
    y: Vec<bool>,
}

/// The model's weights: revenge spending rises with the previous
/// utilisation and falls with the amount.
fn good_model() -> Logistic {
    Logistic {
        mean: vec![200.0, 0.5, 45.0],
        scale: vec![100.0, 0.25, 15.0],
        coefficients: vec![-0.3, 2.0, -0.2],
        intercept: -2.0,
    }
}

fn probability(m: &Logistic, x: &[f64; 3]) -> f64 {
    let z: f64 = m.intercept
        + (0..3)
            .map(|j| m.coefficients[j] * (x[j] - m.mean[j]) / m.scale[j])
            .sum::<f64>();
    1.0 / (1.0 + (-z).exp())
}

fn rows(rng: &mut ChaCha8Rng, n: usize, valor_factor: f64) -> Rows {
    let m = good_model();
    let mut x = Vec::with_capacity(n);
    let mut y = Vec::with_capacity(n);
    for _ in 0..n {
        let row = [
            rng.random_range(20.0..400.0) * valor_factor,
            rng.random_range(0.0..1.0),
            rng.random_range(18.0..75.0),
        ];
        let p = probability(&m, &row);
        y.push(rng.random::<f64>() < p);
        x.push(row);
    }
    Rows { x, y }
}

fn frame(rows: &Rows, first_day: chrono::NaiveDate, with_dates: bool) -> DataFrame {
    let n = rows.y.len();
    let mut columns: Vec<Column> = vec![
        Column::new(
            "customer".into(),
            (0..n).map(|i| format!("c{i:05}")).collect::<Vec<_>>(),
        ),
        Column::new("is_revenge_spending".into(), rows.y.clone()),
    ];
    if with_dates {
        let epoch = chrono::NaiveDate::from_ymd_opt(1970, 1, 1).expect("epoch");
        let days: Vec<i32> = (0..n)
            .map(|i| {
                let d = first_day + chrono::Days::new((i % 28) as u64);
                i32::try_from((d - epoch).num_days()).expect("days")
            })
            .collect();
        columns.push(
            Column::new("date".into(), days)
                .cast(&DataType::Date)
                .expect("date column"),
        );
    }
    for (j, f) in FEATURES.iter().enumerate() {
        columns.push(Column::new(
            f.name().into(),
            rows.x.iter().map(|r| r[j]).collect::<Vec<f64>>(),
        ));
    }
    DataFrame::new(n, columns).expect("frame")
}

impl World {
    /// January and February are the training period; March is monitored,
    /// its amounts multiplied by `march_valor` (1: no drift).
    pub fn new(march_valor: f64) -> World {
        let dir = tempfile::tempdir().expect("temp dir");
        let root = dir.path().to_owned();
        let root = root.as_path();
        let mut rng = ChaCha8Rng::seed_from_u64(17);
        let train = rows(&mut rng, 6_000, 1.0);
        let test = rows(&mut rng, 3_000, 1.0);
        let date = |m: u32| chrono::NaiveDate::from_ymd_opt(2020, m, 1).expect("date");

        // The feature layer and its manifest.
        let mut months = BTreeMap::new();
        for (m, factor) in [(1, 1.0), (2, 1.0), (3, march_valor)] {
            let month = rows(&mut rng, ROWS_PER_MONTH, factor);
            let rel = format!("year=2020/month={m:02}/part.parquet");
            let path = root.join("features").join(&rel);
            std::fs::create_dir_all(path.parent().expect("dir")).expect("mkdir");
            let sha = write_table(&path, &mut frame(&month, date(m), true)).expect("month");
            months.insert(
                format!("2020-{m:02}"),
                serde_json::json!({"path": rel, "rows": ROWS_PER_MONTH, "sha256": sha, "built_from": {}}),
            );
        }
        let manifest = serde_json::json!({"version": 1, "fingerprint": "test", "months": months});
        artifact::write_json(&root.join("features/_manifest.json"), &manifest).expect("manifest");

        // The splits the feature list records, and the train profile.
        std::fs::create_dir_all(root.join("splits")).expect("mkdir");
        let train_sha = write_table(
            &root.join("splits/train.parquet"),
            &mut frame(&train, date(1), false),
        )
        .expect("train split");
        let test_sha = write_table(
            &root.join("splits/test.parquet"),
            &mut frame(&test, date(1), false),
        )
        .expect("test split");
        let profile = Profile {
            rows: train.y.len() as u64,
            numeric: FEATURES
                .iter()
                .enumerate()
                .map(|(j, f)| {
                    let values = train.x.iter().map(|r| r[j]).collect();
                    (f.name().to_owned(), numeric_from_values(values, 0, 0, 0, 20))
                })
                .collect(),
            categorical: BTreeMap::new(),
        };
        artifact::write_json(&root.join("profile.json"), &profile).expect("profile");
        let profile_sha = artifact::file_sha256(&root.join("profile.json")).expect("hash");
        let list = FeatureList {
            version: FEATURE_LIST_VERSION,
            features: FEATURES.iter().map(|f| f.name().to_owned()).collect(),
            rule: rule(),
            key_fingerprint: "0".repeat(32),
            run_outputs: [
                (run_output::PROFILE.to_owned(), profile_sha),
                (run_output::split("test"), test_sha),
                (run_output::split("train"), train_sha.clone()),
            ]
            .into_iter()
            .collect(),
        };
        artifact::write_json(&root.join("features.json"), &list).expect("feature list");
        std::fs::create_dir_all(root.join("reports")).expect("mkdir");
        artifact::write_json(
            &root.join("reports/build_features.json"),
            &serde_json::json!({"date_max": "2020-03-28", "training_period": {"until": "2020-02-29"}}),
        )
        .expect("build report");
        artifact::write_json(
            &root.join("reports/promotion.json"),
            &serde_json::json!({"candidate_version": "v0001", "candidate_model_version": "logistic-good",
                "decision": "keep", "reason": "the candidate is already production", "mode": "manual",
                "promoted": false}),
        )
        .expect("promotion");
        let world = World { dir };
        world.register("logistic-good", good_model(), &test, &train_sha);
        std::fs::create_dir_all(root.join("config")).expect("mkdir");
        artifact::write_retrain_request(&root.join("config/retrain.json"), None).expect("request");
        let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
        std::fs::copy(repo.join("params.yaml"), root.join("params.yaml")).expect("params");
        std::fs::copy(repo.join("config/alarms.yaml"), root.join("config/alarms.yaml")).expect("alarms");
        world
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    pub fn registry(&self) -> Registry {
        Registry::new(self.path("registry"))
    }

    /// Registers a logistic model, its test metrics computed on `test`.
    fn register(&self, model_version: &str, logistic: Logistic, test: &Rows, data_hash: &str) {
        let matrix = FeatureMatrix::new(test.y.len(), 3, test.x.iter().flatten().copied().collect());
        let train_params = "{}".to_owned();
        let mut model = ModelArtifact {
            model_version: model_version.into(),
            algorithm: "logistic".into(),
            hyperparameters: "{}".into(),
            features: FEATURES.to_vec(),
            rule: rule(),
            classifier: Classifier::Logistic(logistic),
            calibrator: Calibrator::Identity,
            threshold: 0.3,
            threshold_source: "params".into(),
            training_prior: 0.2,
            params_hash: artifact::sha256_hex(train_params.as_bytes()),
            train_params,
            data_hash: data_hash.into(),
            test_metrics: BinaryMetrics::compute(&[0.2, 0.8], &[false, true], 0.3),
            reliability: Reliability {
                before: Vec::new(),
                after: Vec::new(),
                ece_before: 0.0,
                ece_after: 0.0,
            },
            written_by: "monitor tests".into(),
            key_fingerprint: "0".repeat(32),
        };
        let p = model.predict_proba(&matrix).expect("score test split");
        model.test_metrics = BinaryMetrics::compute(&p, &test.y, model.threshold);
        let bytes = artifact::encode_model(&model).expect("encode");
        let new = NewVersion {
            model_version: model_version.into(),
            algorithm: "logistic".into(),
            hyperparameters: serde_json::json!({}),
            calibration: "identity".into(),
            threshold: model.threshold,
            params_hash: model.params_hash.clone(),
            data_hash: data_hash.into(),
            git_commit: None,
            test_metrics: model.test_metrics.clone(),
        };
        self.registry().register(&bytes, new, "test").expect("register");
    }

    /// Registers a model that ranks backwards and promotes it by hand.
    pub fn promote_a_worse_model(&self) {
        let mut test_rng = ChaCha8Rng::seed_from_u64(99);
        let test = rows(&mut test_rng, 1_000, 1.0);
        let mut worse = good_model();
        worse.coefficients = vec![0.3, -2.0, 0.2];
        let data_hash = FeatureList::read(&self.path("features.json"))
            .expect("feature list")
            .run_outputs[&run_output::split("train")]
            .clone();
        self.register("logistic-worse", worse, &test, &data_hash);
        self.registry()
            .promote("v0002", "production", "test")
            .expect("promote");
    }

    /// Runs the monitor binary here.
    pub fn monitor(&self, extra: &[&str]) -> Output {
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_monitor"));
        cmd.current_dir(self.dir.path())
            .env("RUST_LOG", "warn")
            .args([
                "--profile",
                "profile.json",
                "--features-dir",
                "features",
                "--test",
                "splits/test.parquet",
                "--feature-list",
                "features.json",
                "--registry",
                "registry",
                "--prediction-log",
                "none",
                "--stage-runs",
                "none",
            ])
            .args(extra);
        cmd.output().expect("run monitor")
    }

    pub fn report(&self) -> serde_json::Value {
        artifact::read_json(&self.path("reports/monitor.json")).expect("monitor.json")
    }
}

fn rule() -> TargetRule {
    TargetRule {
        threshold_pct: 20.0,
        vital_groups: vec!["SERVICO".into()],
    }
}
