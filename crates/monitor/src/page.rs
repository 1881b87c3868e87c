//! `reports/monitor.html`: the monitoring page, in the look of the evaluate
//! stage's `reports/index.html` (same style sheet, same fonts in the
//! plots). Static and self-contained: the charts are embedded as `data:`
//! URIs, there is no script and no external reference besides the link to
//! the evaluation page beside it.
//!
//! It is built from the report's JSON form (what `reports/monitor.json`
//! holds, so the page shows exactly what the file says) and the charts in
//! the plots directory. Every text from the report is escaped.

use std::fmt::Write as _;
use std::path::Path;

use anyhow::{Context, Result};
use revspend_core::artifact;
use serde_json::Value;

use crate::plots::CHARTS;
use crate::report::MonitorReport;

/// Writes the page, atomically.
pub fn write(report: &MonitorReport, plots_dir: &Path, page: &Path) -> Result<()> {
    let json = serde_json::to_value(report).context("the report as JSON, for the page")?;
    let html = render(&json, plots_dir)?;
    artifact::write_atomic(page, html.as_bytes()).with_context(|| format!("writing {}", page.display()))?;
    Ok(())
}

/// Evaluate's style sheet, and the monitor's few additions (severities,
/// outcomes, the navigation line).
const STYLE: &str = "body{font-family:DejaVu Sans,Helvetica,Arial,sans-serif;margin:24px auto;max-width:1180px;\
color:#1d1d1f;line-height:1.4}h1{font-size:24px;margin-bottom:4px}h2{font-size:19px;margin-top:32px;\
border-bottom:1px solid #ccc;padding-bottom:4px}table{border-collapse:collapse;margin:8px 0;font-size:13px}\
th,td{border:1px solid #d0d0d0;padding:3px 8px;text-align:right}th{background:#f2f2f2}\
td.l,th.l{text-align:left}.pass{color:#11752f;font-weight:bold}.fail{color:#b3001b;font-weight:bold}\
.decision{font-size:18px;padding:10px 14px;border-radius:6px;display:inline-block;margin:8px 0}\
.promote{background:#e3f5e8;border:1px solid #11752f}.keep{background:#fdf1e0;border:1px solid #b36b00}\
figure{display:inline-block;margin:8px;vertical-align:top}figcaption{font-size:13px;color:#444}\
img{max-width:560px;border:1px solid #ddd}.muted{color:#666;font-size:13px}\
img.wide{max-width:1160px}td:not(.l){white-space:nowrap}.warn{color:#b36b00;font-weight:bold}nav{font-size:13px;margin-bottom:8px}";

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// A JSON value as a table cell: numbers to 4 decimals (integers as they
/// are), null as a dash, text escaped.
fn cell(v: &Value) -> String {
    match v {
        Value::Null => "–".into(),
        Value::Number(n) if n.is_f64() => n.as_f64().map_or_else(String::new, |f| format!("{f:.4}")),
        Value::Number(n) => n.to_string(),
        Value::String(s) => esc(s),
        Value::Bool(b) => if *b { "yes" } else { "no" }.into(),
        Value::Array(a) => esc(&a
            .iter()
            .map(|v| v.as_str().map_or_else(|| v.to_string(), str::to_owned))
            .collect::<Vec<_>>()
            .join(", ")),
        Value::Object(_) => esc(&v.to_string()),
    }
}

/// A share as a percentage cell.
fn pct(v: &Value) -> String {
    v.as_f64()
        .map_or_else(|| "–".into(), |f| format!("{:.2} %", 100.0 * f))
}

/// An amount: whole units with thousands separated.
fn amount(v: &Value) -> String {
    v.as_f64().map_or_else(|| "–".into(), crate::plots::thousands)
}

/// A number as the charts print it (no trailing zeros).
fn number(v: &Value) -> String {
    v.as_f64().map_or_else(|| "–".into(), crate::plots::short)
}

fn arr(v: &Value) -> &[Value] {
    v.as_array().map_or(&[], Vec::as_slice)
}

/// A table from a header and rows of cells already formatted (and
/// escaped); the first column and the columns in `left` (text) are
/// left-aligned.
fn table(header: &[&str], left: &[usize], rows: &[Vec<String>]) -> String {
    if rows.is_empty() {
        return "<p class=\"muted\">none</p>".into();
    }
    let class = |i: usize| {
        if i == 0 || left.contains(&i) {
            " class=\"l\""
        } else {
            ""
        }
    };
    let mut out = String::from("<table><tr>");
    for (i, h) in header.iter().enumerate() {
        let _ = write!(out, "<th{}>{}</th>", class(i), esc(h));
    }
    out.push_str("</tr>");
    for r in rows {
        out.push_str("<tr>");
        for (i, c) in r.iter().enumerate() {
            let class = class(i);
            let _ = write!(out, "<td{class}>{c}</td>");
        }
        out.push_str("</tr>");
    }
    out.push_str("</table>");
    out
}

/// Standard base64 (RFC 4648, padded), for the embedded PNGs.
fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [chunk[0], *chunk.get(1).unwrap_or(&0), *chunk.get(2).unwrap_or(&0)];
        let n = u32::from(b[0]) << 16 | u32::from(b[1]) << 8 | u32::from(b[2]);
        for k in 0..4 {
            if k <= chunk.len() {
                out.push(char::from(ALPHABET[(n >> (18 - 6 * k)) as usize & 63]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// One chart of the plots directory, embedded; a note when it is missing.
fn figure(plots_dir: &Path, name: &str, wide: bool) -> Result<String> {
    let caption = CHARTS.iter().find(|(n, _)| *n == name).map_or(name, |(_, c)| c);
    let path = plots_dir.join(name);
    if !path.exists() {
        return Ok(format!(
            "<p class=\"muted\">{} is missing from {}.</p>",
            esc(name),
            esc(&plots_dir.display().to_string())
        ));
    }
    let png = std::fs::read(&path).with_context(|| format!("reading {}", path.display()))?;
    Ok(format!(
        "<figure><img{} alt=\"{}\" src=\"data:image/png;base64,{}\"><figcaption>{} (<code>{}</code>)\
         </figcaption></figure>",
        if wide { " class=\"wide\"" } else { "" },
        esc(caption),
        base64(&png),
        esc(caption),
        esc(name)
    ))
}

fn header(r: &Value) -> String {
    let windows = arr(&r["windows"]);
    let names: Vec<&str> = windows.iter().filter_map(|w| w["window"].as_str()).collect();
    let span = match (names.first(), names.last()) {
        (Some(a), Some(b)) if a == b => esc(a),
        (Some(a), Some(b)) => format!("{} to {}", esc(a), esc(b)),
        _ => "none".into(),
    };
    let p = &r["production"];
    let reference = &r["reference"];
    let mut out = format!(
        "<nav><a href=\"index.html\">Evaluation</a> · Monitoring</nav>\
         <h1>Monitoring of {} ({})</h1>\
         <p class=\"muted\">The <b>{}</b> alias; {} windows: {} ({} windows, {} rows read from {} \
         partitions); training period ends {}.</p><p>Why these windows: {}</p>\
         <p class=\"muted\">Reference: the train split's profile ({} rows) for feature drift, the test \
         split ({} rows, {} revenge purchases, PR-AUC {} at training) scored by production for prediction \
         drift and the performance bands; threshold {}.</p>",
        cell(&p["version"]),
        cell(&p["model_version"]),
        cell(&r["alias"]),
        cell(&r["period"]),
        span,
        windows.len(),
        amount(&r["rows_read"]),
        cell(&r["partitions_read"]),
        cell(&r["training_end"]),
        cell(&r["selection"]["reason"]),
        amount(&reference["profile_rows"]),
        amount(&reference["test_rows"]),
        pct(&reference["test_positive_rate"]),
        cell(&reference["test_pr_auc"]),
        cell(&reference["threshold"]),
    );
    if let Some(note) = reference["note"].as_str() {
        let _ = write!(out, "<p class=\"warn\">{}</p>", esc(note));
    }
    let others = arr(&r["others"]);
    if !others.is_empty() {
        let list: Vec<String> = others
            .iter()
            .map(|o| {
                format!(
                    "{} {} ({})",
                    cell(&o["role"]),
                    cell(&o["version"]),
                    cell(&o["model_version"])
                )
            })
            .collect();
        let _ = write!(
            out,
            "<p class=\"muted\">Also scored on the windows: {}.</p>",
            list.join("; ")
        );
    }
    out
}

fn severity(v: &Value) -> String {
    let s = v.as_str().unwrap_or("");
    let class = match s {
        "critical" => "fail",
        "warning" => "warn",
        _ => "muted",
    };
    format!("<span class=\"{class}\">{}</span>", esc(s))
}

/// An action's outcome in words, and its detail.
fn outcome(a: &Value) -> (String, String) {
    let text = |k: &str| cell(&a[k]);
    match a["outcome"].as_str().unwrap_or("") {
        "dry_run" => ("dry run".into(), format!("would: {}", text("would"))),
        "done" => {
            let mut detail = text("detail");
            if let Some(u) = a["unrecorded"].as_str() {
                let _ = write!(
                    detail,
                    " <span class=\"fail\">not recorded in the action log: {}</span>",
                    esc(u)
                );
            }
            ("<span class=\"pass\">done</span>".into(), detail)
        }
        "cooled_down" => ("cooled down".into(), text("reason")),
        "superseded" => ("superseded".into(), format!("by {}", text("by"))),
        "failed" => ("<span class=\"fail\">failed</span>".into(), text("error")),
        other => (esc(other), String::new()),
    }
}

fn alarms(r: &Value) -> String {
    let findings = arr(&r["alarms"]["findings"]);
    let mut out = if findings.is_empty() {
        "<div class=\"decision promote\"><b>No alarm</b> fired on these windows.</div>".to_owned()
    } else {
        let worst = findings
            .iter()
            .filter_map(|f| f["severity"].as_str())
            .max_by_key(|s| match *s {
                "critical" => 2,
                "warning" => 1,
                _ => 0,
            })
            .unwrap_or("info");
        format!(
            "<div class=\"decision keep\"><b>{} finding{}</b>, the worst {}.</div>",
            findings.len(),
            if findings.len() == 1 { "" } else { "s" },
            esc(worst)
        )
    };
    let rows: Vec<Vec<String>> = findings
        .iter()
        .map(|f| {
            let op = if f["comparison"] == "below" { "≤" } else { "≥" };
            vec![
                cell(&f["alarm"]),
                severity(&f["severity"]),
                cell(&f["window"]),
                cell(&f["metric"]),
                format!("{} {op} {}", cell(&f["value"]), cell(&f["threshold"])),
                cell(&f["action"]),
                cell(&f["message"]),
            ]
        })
        .collect();
    if !rows.is_empty() {
        out.push_str(&table(
            &[
                "alarm",
                "severity",
                "window",
                "metric",
                "value against threshold",
                "action",
                "message",
            ],
            &[3, 6],
            &rows,
        ));
    }
    let actions = arr(&r["actions"]["actions"]);
    let mode = match r["actions"]["mode"].as_str() {
        Some("act") => "acting (<code>--act</code>)",
        _ => "dry run: nothing was changed (<code>--act</code> takes the actions)",
    };
    if actions.is_empty() {
        let _ = write!(out, "<p class=\"muted\">No action; {mode}.</p>");
    } else {
        let _ = write!(out, "<h3>Actions</h3><p class=\"muted\">Mode: {mode}.</p>");
        let rows: Vec<Vec<String>> = actions
            .iter()
            .map(|a| {
                let (what, detail) = outcome(a);
                vec![
                    cell(&a["alarm"]),
                    cell(&a["action"]),
                    severity(&a["severity"]),
                    cell(&a["window"]),
                    cell(&a["covers"]),
                    cell(&a["metrics"]),
                    what,
                    detail,
                ]
            })
            .collect();
        out.push_str(&table(
            &[
                "alarm", "action", "severity", "window", "covers", "metrics", "outcome", "detail",
            ],
            &[4, 5, 7],
            &rows,
        ));
    }
    out
}

fn drift(r: &Value, plots_dir: &Path) -> Result<String> {
    let windows = arr(&r["windows"]);
    let mut out = figure(plots_dir, crate::plots::charts::DRIFT_HEATMAP, true)?;
    let rows: Vec<Vec<String>> = windows
        .iter()
        .map(|w| {
            let d = &w["dataset"];
            vec![
                cell(&w["window"]),
                format!("{} to {}", cell(&w["first_day"]), cell(&w["last_day"])),
                amount(&w["rows"]),
                cell(&w["tested"]),
                if d.is_object() {
                    format!("{} of {}", cell(&d["drifted_columns"]), cell(&d["columns"]))
                } else {
                    "–".into()
                },
                if d.is_object() {
                    let class = if d["drifted"] == true { "fail" } else { "pass" };
                    format!(
                        "<span class=\"{class}\">{}</span> (share {} against {})",
                        if d["drifted"] == true { "drift" } else { "no drift" },
                        pct(&d["share"]),
                        pct(&d["threshold"])
                    )
                } else {
                    "not tested".into()
                },
                cell(&w["drifted_features"]),
                pct(&w["label_rate"]),
            ]
        })
        .collect();
    out.push_str(&table(
        &[
            "window",
            "days",
            "rows",
            "tested",
            "drifted features",
            "dataset drift",
            "which",
            "label rate",
        ],
        &[6],
        &rows,
    ));
    match windows.iter().rev().find(|w| !arr(&w["features"]).is_empty()) {
        None => out.push_str("<p class=\"muted\">No window had enough rows to be tested.</p>"),
        Some(w) => {
            let _ = write!(out, "<h3>Features in {}</h3>", cell(&w["window"]));
            let rows: Vec<Vec<String>> = arr(&w["features"])
                .iter()
                .map(|f| {
                    let drifted = if f["test"].is_null() {
                        "no test".into()
                    } else if f["drifted"] == true {
                        "<span class=\"fail\">drift</span>".into()
                    } else {
                        "no".into()
                    };
                    let level = match f["psi_level"].as_str() {
                        // A feature left out of the tests is shown, not judged.
                        _ if f["test"].is_null() => cell(&f["psi_level"]),
                        Some("alarm") => "<span class=\"fail\">alarm</span>".into(),
                        Some("warn") => "<span class=\"warn\">warn</span>".into(),
                        _ => cell(&f["psi_level"]),
                    };
                    vec![
                        cell(&f["feature"]),
                        cell(&f["test"]).replace('_', "\u{a0}"),
                        cell(&f["score"]),
                        cell(&f["threshold"]),
                        cell(&f["psi"]),
                        level,
                        drifted,
                        format!("{} → {}", cell(&f["reference_mean"]), cell(&f["window_mean"])),
                        cell(&f["override_reason"]),
                    ]
                })
                .collect();
            out.push_str(&table(
                &[
                    "feature",
                    "test",
                    "score",
                    "threshold",
                    "PSI",
                    "PSI level",
                    "drifted",
                    "mean: reference → window",
                    "override reason",
                ],
                &[1, 8],
                &rows,
            ));
            out.push_str(
                "<p class=\"muted\">Score: the test's p-value (drift below the threshold) or distance (drift \
                 at or above it). Features without a test are compared by PSI only.</p>",
            );
        }
    }
    Ok(out)
}

fn prediction(r: &Value, plots_dir: &Path) -> Result<String> {
    let mut out = figure(plots_dir, crate::plots::charts::PREDICTION_DRIFT, true)?;
    let rows: Vec<Vec<String>> = arr(&r["windows"])
        .iter()
        .filter(|w| w["prediction"].is_object())
        .map(|w| {
            let p = &w["prediction"];
            vec![
                cell(&w["window"]),
                cell(&p["psi"]),
                cell(&p["psi_level"]),
                cell(&p["js"]),
                format!(
                    "{} ({})",
                    cell(&p["mean_score"]),
                    cell(&p["reference_mean_score"])
                ),
                format!(
                    "{} ({})",
                    pct(&p["decision_rate"]),
                    pct(&p["reference_decision_rate"])
                ),
            ]
        })
        .collect();
    out.push_str(&table(
        &[
            "window",
            "PSI",
            "PSI level",
            "Jensen–Shannon",
            "mean score (reference)",
            "flagged (reference)",
        ],
        &[2],
        &rows,
    ));
    Ok(out)
}

/// The metrics of the performance table, with their names.
const METRICS: [(&str, &str); 5] = [
    ("pr_auc", "PR-AUC"),
    ("f1", "F1"),
    ("precision", "precision"),
    ("recall", "recall"),
    ("roc_auc", "ROC-AUC"),
];

/// A metric of one window: realised (red when outside the band), then
/// the estimate and its band.
fn performance_cell(p: &Value, key: &str) -> String {
    let band = &p["bands"][key];
    let realised = &p["realised"][key];
    let outside = match (realised.as_f64(), band["lower"].as_f64(), band["upper"].as_f64()) {
        (Some(v), Some(lo), Some(hi)) => v < lo || v > hi,
        _ => false,
    };
    let realised = if outside {
        format!("<span class=\"fail\">{}</span>", cell(realised))
    } else {
        cell(realised)
    };
    let estimate_class = if band["out_of_band"] == true {
        "fail"
    } else {
        "muted"
    };
    let band = if band.is_object() {
        format!(" in [{}, {}]", cell(&band["lower"]), cell(&band["upper"]))
    } else {
        String::new()
    };
    format!(
        "{realised}<br><span class=\"{estimate_class}\">est. {}{band}</span>",
        cell(&p["estimated"][key])
    )
}

fn performance(r: &Value, plots_dir: &Path) -> Result<String> {
    let mut out = figure(plots_dir, crate::plots::charts::PERFORMANCE, true)?;
    out.push_str(
        "<p class=\"muted\">Estimated: CBPE from the calibrated scores alone, as if the labels were not \
         yet known; band: the estimate's alert band from the test split's chunks; realised: from the \
         labels. Each cell: realised, then the estimate and its band; a realised value outside the \
         band is in red, an estimate outside it too.</p>",
    );
    // One row per window, one column per metric: realised first (what
    // happened), then the estimate and its band (what was expected).
    let rows: Vec<Vec<String>> = arr(&r["windows"])
        .iter()
        .map(|w| {
            let p = &w["performance"];
            let mut row = vec![cell(&w["window"])];
            row.extend(METRICS.iter().map(|(key, _)| performance_cell(p, key)));
            row
        })
        .collect();
    let mut header = vec!["window"];
    header.extend(METRICS.iter().map(|(_, name)| *name));
    out.push_str(&table(&header, &[], &rows));
    let others: Vec<Vec<String>> = arr(&r["windows"])
        .iter()
        .flat_map(|w| {
            arr(&w["others"]).iter().map(move |o| {
                vec![
                    cell(&w["window"]),
                    format!("{} {}", cell(&o["role"]), cell(&o["version"])),
                    cell(&o["realised"]["pr_auc"]),
                    cell(&o["realised"]["f1"]),
                    cell(&w["performance"]["realised"]["pr_auc"]),
                ]
            })
        })
        .collect();
    if !others.is_empty() {
        out.push_str("<h3>Other models on the same rows</h3>");
        out.push_str(&table(
            &[
                "window",
                "model",
                "realised PR-AUC",
                "realised F1",
                "production's PR-AUC",
            ],
            &[1],
            &others,
        ));
    }
    Ok(out)
}

fn value(r: &Value, plots_dir: &Path) -> Result<String> {
    let mut out = figure(plots_dir, crate::plots::charts::VALUE, true)?;
    if let Some(rates) = arr(&r["windows"])
        .iter()
        .map(|w| &w["value"]["rates"])
        .find(|v| v.is_object())
    {
        let _ = write!(
            out,
            "<p class=\"muted\">Per purchase, in {}: a revenge purchase \
             caught {}, a false alarm {}, a revenge purchase missed {}. The baseline flags nothing.</p>",
            cell(&r["value_currency"]),
            number(&rates["true_positive"]),
            number(&rates["false_positive"]),
            number(&rates["false_negative"])
        );
    }
    let rows: Vec<Vec<String>> = arr(&r["windows"])
        .iter()
        .map(|w| {
            let v = &w["value"];
            vec![
                cell(&w["window"]),
                amount(&v["estimated"]["per_1000"]),
                amount(&v["realised"]["per_1000"]),
                amount(&v["realised"]["baseline_per_1000"]),
                amount(&v["realised"]["uplift_per_1000"]),
                amount(&v["realised"]["total"]),
            ]
        })
        .collect();
    out.push_str(&table(
        &[
            "window",
            "estimated per 1,000",
            "realised per 1,000",
            "no model per 1,000",
            "uplift per 1,000",
            "realised total",
        ],
        &[],
        &rows,
    ));
    Ok(out)
}

fn serving(s: &Value) -> String {
    let mut out = format!(
        "<p>{} records in {} log files; {} lines were not a record.</p>",
        amount(&s["records"]),
        cell(&s["files"]),
        amount(&s["bad_lines"])
    );
    let bad = arr(&s["bad_examples"]);
    if !bad.is_empty() {
        let list: Vec<String> = bad
            .iter()
            .map(|b| format!("<li><code>{}</code></li>", cell(b)))
            .collect();
        let _ = write!(out, "<ul class=\"muted\">{}</ul>", list.concat());
    }
    let rows: Vec<Vec<String>> = arr(&s["windows"])
        .iter()
        .flat_map(|w| {
            arr(&w["groups"]).iter().map(move |g| {
                let rate = if g["prediction"].is_object() {
                    &g["prediction"]["decision_rate"]
                } else {
                    &g["performance"]["decision_rate"]
                };
                vec![
                    cell(&w["window"]),
                    format!("{} ({})", cell(&g["variant"]), cell(&g["model_version"])),
                    amount(&g["predictions"]),
                    amount(&g["cold_starts"]),
                    pct(rate),
                    cell(&g["prediction"]["psi"]),
                    cell(&g["performance"]["estimated"]["f1"]),
                    amount(&g["value"]["estimated"]["per_1000"]),
                    amount(&g["with_outcome"]),
                    cell(&g["realised"]["f1"]),
                    amount(&g["value"]["realised"]["per_1000"]),
                    g["mean_latency_us"]
                        .as_f64()
                        .map_or_else(|| "–".into(), |v| format!("{v:.0} µs")),
                ]
            })
        })
        .collect();
    out.push_str(&table(
        &[
            "window",
            "variant (model)",
            "predictions",
            "cold starts",
            "flagged",
            "PSI",
            "estimated F1",
            "estimated value per 1,000",
            "with feedback",
            "realised F1",
            "realised value per 1,000",
            "mean latency",
        ],
        &[1],
        &rows,
    ));
    out.push_str(
        "<p class=\"muted\">PSI against production's reference, for production's model version only; \
         realised: the predictions whose outcome came back.</p>",
    );
    out
}

fn cost(c: &Value, plots_dir: &Path) -> Result<String> {
    let currency = cell(&c["currency"]);
    let mut out = figure(plots_dir, crate::plots::charts::COST, true)?;
    let _ = write!(
        out,
        "<p class=\"muted\">Priced at {} {currency} per CPU-hour and {} {currency} per GB-hour of memory.</p>",
        cell(&c["cpu_hour"]),
        cell(&c["gb_hour"])
    );
    let rows: Vec<Vec<String>> = arr(&c["stages"])
        .iter()
        .map(|s| {
            let l = &s["last"];
            vec![
                cell(&s["stage"]),
                cell(&s["runs"]),
                cell(&l["time"]),
                cell(&l["wall_seconds"]),
                cell(&l["cpu_seconds"]),
                cell(&l["peak_rss_mb"]),
                amount(&l["rows"]),
                cell(&l["cpu_seconds_per_million_rows"]),
                l["cost"]
                    .as_f64()
                    .map_or_else(|| "–".into(), |v| format!("{v:.6} {currency}")),
            ]
        })
        .collect();
    out.push_str(&table(
        &[
            "stage",
            "runs",
            "last run",
            "wall s",
            "CPU s",
            "peak MB",
            "rows",
            "CPU s per million rows",
            "cost of the last run",
        ],
        &[2],
        &rows,
    ));
    let sv = &c["serving"];
    if sv.is_object() {
        let _ = write!(
            out,
            "<p>Serving: {} CPU seconds for {} predictions; {} {currency} per million predictions.</p>",
            cell(&sv["cpu_seconds"]),
            amount(&sv["predictions"]),
            cell(&sv["cost_per_million_predictions"])
        );
    }
    let bad = arr(&c["bad_lines"]);
    if !bad.is_empty() {
        let list: Vec<String> = bad
            .iter()
            .map(|b| format!("<li><code>{}</code></li>", cell(b)))
            .collect();
        let _ = write!(
            out,
            "<p class=\"muted\">Lines of the run logs that were not read:</p><ul class=\"muted\">{}</ul>",
            list.concat()
        );
    }
    Ok(out)
}

fn not_evaluated(r: &Value) -> String {
    let rows: Vec<Vec<String>> = arr(&r["alarms"]["not_evaluated"])
        .iter()
        .map(|n| vec![cell(&n["alarm"]), cell(&n["window"]), cell(&n["reason"])])
        .collect();
    if rows.is_empty() {
        return "<p class=\"muted\">Every alarm was evaluated on every window it looks at.</p>".into();
    }
    table(&["alarm", "window", "reason"], &[2], &rows)
}

/// The page from the report's JSON form and the charts in `plots_dir`.
pub(crate) fn render(r: &Value, plots_dir: &Path) -> Result<String> {
    let mut html = String::with_capacity(1 << 20);
    let _ = write!(
        html,
        "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <title>revspend monitoring: {}</title><style>{STYLE}</style></head><body>{}",
        cell(&r["production"]["version"]),
        header(r)
    );
    let no_windows = arr(&r["windows"]).is_empty();
    // Each section has an id, so a link (or a chat message) can point at it.
    let mut sections: Vec<(&str, &str, String)> = vec![("alarms", "Alarms and actions", alarms(r))];
    if no_windows {
        sections.push((
            "windows",
            "Windows",
            format!(
                "<p class=\"fail\">No feature-layer rows in the monitored days ({}): nothing was compared.</p>",
                cell(&r["selection"]["reason"])
            ),
        ));
    } else {
        sections.push(("drift", "Feature drift", drift(r, plots_dir)?));
        sections.push(("prediction", "Prediction drift", prediction(r, plots_dir)?));
        sections.push((
            "performance",
            "Performance, estimated and realised",
            performance(r, plots_dir)?,
        ));
        sections.push(("value", "Business value", value(r, plots_dir)?));
    }
    if r["serving"].is_object() {
        sections.push(("serving", "Serving (prediction log)", serving(&r["serving"])));
    }
    sections.push(("cost", "Compute cost", cost(&r["cost"], plots_dir)?));
    sections.push(("not-evaluated", "Alarms not evaluated", not_evaluated(r)));
    for (id, title, body) in sections {
        let _ = write!(html, "<h2 id=\"{id}\">{title}</h2>{body}");
    }
    html.push_str("</body></html>\n");
    Ok(html)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn base64_matches_the_standard() {
        assert_eq!(base64(b""), "");
        assert_eq!(base64(b"f"), "Zg==");
        assert_eq!(base64(b"fo"), "Zm8=");
        assert_eq!(base64(b"foo"), "Zm9v");
        assert_eq!(base64(b"foobar"), "Zm9vYmFy");
        assert_eq!(base64(&[0xff, 0xfe, 0x00]), "//4A");
    }

    fn report_with(feature: &str, message: &str) -> Value {
        json!({
            "alias": "production",
            "production": {"role": "production", "version": "v0001", "model_version": "gbm-1"},
            "others": [],
            "reference": {"test_pr_auc": 0.95, "threshold": 0.5, "note": null},
            "period": "month",
            "selection": {"reason": "the last 1 windows"},
            "training_end": "2020-06-28",
            "windows": [{
                "window": "2020-06", "rows": 900, "tested": true,
                "features": [{"feature": feature, "test": "chi_squared", "score": 0.001, "threshold": 0.05,
                              "drifted": true, "psi": 0.3, "psi_level": "alarm", "override_reason": message}],
                "dataset": {"columns": 1, "drifted_columns": 1, "share": 1.0, "threshold": 0.5, "drifted": true},
                "drifted_features": [feature],
                "performance": {"estimated": {}, "realised": null, "bands": {}},
                "value": {"estimated": {}, "realised": null},
                "others": [],
            }],
            "serving": null,
            "cost": {"currency": "USD", "stages": [], "bad_lines": []},
            "alarms": {
                "findings": [{"alarm": message, "window": "2020-06", "metric": format!("psi.{feature}"),
                              "value": 0.3, "threshold": 0.25, "comparison": "above",
                              "severity": "critical", "action": "retrain", "message": message}],
                "not_evaluated": [{"alarm": "a", "window": null, "reason": message}],
            },
            "actions": {"mode": "dry_run", "actions": [{
                "alarm": message, "action": "retrain", "severity": "critical", "window": "2020-06",
                "covers": ["2020-06"], "metrics": [format!("psi.{feature}")], "reason": message,
                "outcome": "dry_run", "would": message}]},
        })
    }

    #[test]
    fn every_text_from_the_report_is_escaped() {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let html = render(
            &report_with("<script>f</script>", "<script>alert(1)</script> & \"x\""),
            dir.path(),
        )
        .expect("the page");
        assert!(!html.contains("<script"), "unescaped text in the page");
        assert!(html.contains("&lt;script&gt;alert(1)&lt;/script&gt; &amp; &quot;x&quot;"));
        assert!(html.contains("&lt;script&gt;f&lt;/script&gt;"));
        // The finding, its action (a dry run) and the feature's row are shown.
        assert!(html.contains("1 finding</b>, the worst critical"), "{html}");
        assert!(html.contains("<td>dry run</td>"), "{html}");
        assert!(html.contains("psi.&lt;script&gt;f&lt;/script&gt;"));
    }

    #[test]
    fn a_report_without_alarms_says_so_and_missing_charts_are_named() {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let mut r = report_with("valor", "m");
        r["alarms"] = json!({"findings": [], "not_evaluated": []});
        r["actions"] = json!({"mode": "dry_run", "actions": []});
        let html = render(&r, dir.path()).expect("the page");
        assert!(html.contains("<b>No alarm</b> fired"));
        assert!(html.contains("No action; dry run"));
        assert!(html.contains("drift_heatmap.png is missing from"));
        assert!(html.contains("Every alarm was evaluated"));
        assert!(html.contains("href=\"index.html\""));
    }

    #[test]
    fn an_empty_report_writes_the_page_and_every_chart() {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let r = json!({
            "alias": "production", "production": {"version": "v0001", "model_version": "gbm-1"},
            "reference": {}, "selection": {"reason": "no rows after 2020-06-28"}, "windows": [],
            "serving": null, "cost": {"currency": "USD", "stages": []},
            "alarms": {"findings": [], "not_evaluated": []}, "actions": {"mode": "dry_run", "actions": []},
        });
        crate::plots::write_charts(&r, dir.path()).expect("the charts");
        let html = render(&r, dir.path()).expect("the page");
        assert!(html.contains("No feature-layer rows in the monitored days"));
        assert!(html.contains("no rows after 2020-06-28"));
        // The cost chart (a placeholder) is embedded even with no stage.
        assert!(html.contains("data:image/png;base64,"));
        assert!(!html.contains("is missing from"));
    }

    #[test]
    fn the_serving_section_lists_every_variant_of_every_window() {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let mut r = report_with("valor", "m");
        let group = |variant: &str, psi: Value| {
            json!({"variant": variant, "model_version": "gbm-1", "predictions": 1200, "cold_starts": 3,
                   "mean_latency_us": 412.4, "prediction": {"psi": psi, "decision_rate": 0.12},
                   "performance": {"estimated": {"f1": 0.9}}, "value": {"estimated": {"per_1000": 14000.0}},
                   "with_outcome": 100, "realised": {"f1": 0.8}})
        };
        r["serving"] = json!({"files": 2, "records": 2400, "bad_lines": 0, "bad_examples": [],
            "windows": [{"window": "2020-07", "groups": [group("control", json!(0.02)), group("<b>", json!(null))]}]});
        let html = render(&r, dir.path()).expect("the page");
        let section = &html[html.find("id=\"serving\"").expect("a serving section")..];
        assert!(section.contains("control (gbm-1)"));
        assert!(section.contains("&lt;b&gt; (gbm-1)"));
        assert!(section.contains("12.00 %"));
        assert!(section.contains("412 µs"));
        assert_eq!(section.matches("<td class=\"l\">2020-07</td>").count(), 2);
        let without = render(&report_with("valor", "m"), dir.path()).expect("the page");
        assert!(!without.contains("id=\"serving\""));
    }
}
