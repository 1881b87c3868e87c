//! The monitor stage as a real process on a small world (`support`): a
//! clean month, a drifted one, acting on the registry, and bad inputs.

mod support;

use support::World;

fn stderr(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn alarms(report: &serde_json::Value) -> Vec<(String, String)> {
    report["alarms"]["findings"]
        .as_array()
        .expect("findings")
        .iter()
        .map(|f| {
            (
                f["alarm"].as_str().expect("alarm").to_owned(),
                f["metric"].as_str().expect("metric").to_owned(),
            )
        })
        .collect()
}

#[test]
fn a_clean_month_after_training_raises_no_alarm_and_every_report_is_written() {
    let world = World::new(1.0);
    let out = world.monitor(&[]);
    assert!(out.status.success(), "{}", stderr(&out));
    let report = world.report();
    let windows = report["windows"].as_array().expect("windows");
    // Training ends on 2020-02-29: March alone is monitored.
    assert_eq!(windows.len(), 1);
    assert_eq!(windows[0]["window"], "2020-03");
    assert_eq!(windows[0]["drifted_features"], serde_json::json!([]));
    assert_eq!(alarms(&report), Vec::<(String, String)>::new());
    // The model is calibrated on this data: the estimate holds.
    let m = &windows[0]["metrics"];
    let (est, real) = (
        m["estimated.f1"].as_f64().expect("est"),
        m["realised.f1"].as_f64().expect("real"),
    );
    assert!((est - real).abs() < 0.05, "estimated F1 {est}, realised {real}");
    for f in [
        "reports/monitor.prom",
        "reports/monitor.html",
        "reports/monitor/drift.json",
        "reports/monitor/drift_heatmap.png",
        "reports/monitor/performance.png",
    ] {
        assert!(
            world.path(f).metadata().is_ok_and(|m| m.len() > 0),
            "{f} not written"
        );
    }
    let prom = std::fs::read_to_string(world.path("reports/monitor.prom")).expect("prom");
    assert!(
        prom.contains("revspend_monitor_psi{window=\"2020-03\",feature=\"valor\"}"),
        "{prom}"
    );
}

#[test]
fn a_shifted_feature_is_named_alone_and_a_dry_run_changes_nothing() {
    let world = World::new(3.0);
    let request_before = std::fs::read(world.path("config/retrain.json")).expect("request");
    let index_before = std::fs::read(world.path("registry/index.json")).expect("index");
    let out = world.monitor(&[]);
    assert!(out.status.success(), "{}", stderr(&out));
    let report = world.report();
    assert_eq!(
        report["windows"][0]["drifted_features"],
        serde_json::json!(["valor"])
    );
    let fired = alarms(&report);
    assert!(
        fired.contains(&("feature_psi".into(), "psi.valor".into())),
        "{fired:?}"
    );
    assert!(
        fired.contains(&("feature_drift_share".into(), "drift.share".into())),
        "{fired:?}"
    );
    assert!(
        !fired
            .iter()
            .any(|(_, m)| m == "psi.idade" || m == "psi.prev_utilisation"),
        "{fired:?}"
    );
    assert_eq!(report["actions"]["mode"], "dry_run");
    assert_eq!(
        std::fs::read(world.path("config/retrain.json")).expect("request"),
        request_before
    );
    assert_eq!(
        std::fs::read(world.path("registry/index.json")).expect("index"),
        index_before
    );
}

#[test]
fn acting_rolls_a_worse_version_back_and_asks_for_a_retrain_once() {
    let world = World::new(3.0);
    world.promote_a_worse_model();
    let out = world.monitor(&["--act"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let registry = world.registry();
    assert_eq!(
        registry.resolve("production").expect("production").version,
        "v0001"
    );
    let last = registry
        .index()
        .expect("index")
        .alias_log
        .pop()
        .expect("a change");
    assert_eq!(last.reason, "rollback");
    assert!(
        last.note
            .as_deref()
            .is_some_and(|n| n.contains("previous_version_better")),
        "{last:?}"
    );
    let request = revspend_core::artifact::read_retrain_request(&world.path("config/retrain.json"))
        .expect("request")
        .expect("a request");
    assert_eq!(request.until.to_string(), "2020-03-28");
    assert_eq!(request.alarm, "feature_drift_share");
    // Again on the same window: nothing more is done.
    let changes = registry.index().expect("index").alias_log.len();
    let out = world.monitor(&["--act"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(registry.index().expect("index").alias_log.len(), changes);
    let request_again = revspend_core::artifact::read_retrain_request(&world.path("config/retrain.json"))
        .expect("request")
        .expect("a request");
    assert_eq!(request_again, request, "the request was written again");
    let report = world.report();
    let outcome = |alarm: &str| {
        report["actions"]["actions"]
            .as_array()
            .expect("actions")
            .iter()
            .find(|a| a["alarm"] == alarm)
            .map(|a| a["outcome"].as_str().unwrap_or_default().to_owned())
    };
    // What acted on this window the first time is cooled down now.
    assert_eq!(outcome("feature_drift_share").as_deref(), Some("cooled_down"));
    assert_eq!(outcome("feature_psi").as_deref(), Some("cooled_down"));
}

#[test]
fn a_flipped_byte_in_a_month_partition_is_refused_naming_the_file() {
    let world = World::new(1.0);
    let path = world.path("features/year=2020/month=03/part.parquet");
    let mut bytes = std::fs::read(&path).expect("partition");
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x01;
    std::fs::write(&path, bytes).expect("write");
    let out = world.monitor(&[]);
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(
        err.contains("month=03/part.parquet") && err.contains("SHA-256"),
        "{err}"
    );
}

#[test]
fn a_bad_alarm_file_is_refused_naming_the_key() {
    let world = World::new(1.0);
    let path = world.path("config/alarms.yaml");
    let text = std::fs::read_to_string(&path).expect("alarms");
    std::fs::write(&path, text.replacen("    above: 0.2\n", "    above: lots\n", 1)).expect("write");
    let out = world.monitor(&[]);
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(
        err.contains("alarms[0].above") && err.contains("alarms.yaml"),
        "{err}"
    );
}
