//! `reports/index.html`: the one page a person reads. Static and
//! self-contained: the plots are embedded as `data:` URIs, the style is
//! inline, there is no script and no external reference, so the page opens
//! from a mail attachment or an air-gapped share as it does from the repo.
//!
//! It is built from the reports the stage has just written (read back as
//! JSON, so the page shows exactly what the files say) and the PNGs in the
//! plots directory.

use std::fmt::Write as _;
use std::path::Path;

use anyhow::{Context, Result};
use base64::Engine as _;
use revspend_core::artifact;
use serde_json::Value;

use crate::Outputs;

/// The plots in reading order with their captions; any other PNG in the
/// directory follows under its file name.
const PLOTS: [(&str, &str); 13] = [
    ("roc.png", "ROC curve, candidate and champion on the same rows"),
    (
        "pr.png",
        "Precision-recall, candidate and champion on the same rows",
    ),
    ("confusion.png", "Confusion matrix at the model's threshold"),
    ("score_distribution.png", "Score distribution per class"),
    (
        "reliability.png",
        "Reliability before and after calibration, and on cold starts",
    ),
    ("gain.png", "Cumulative gain by decile"),
    (
        "threshold.png",
        "Precision, recall, F1 and cost against the threshold",
    ),
    ("slices.png", "PR-AUC by slice"),
    ("competition.png", "Model competition"),
    ("learning_curve.png", "Learning curve"),
    ("importance.png", "Feature importance"),
    ("gain_importance.png", "Gain importance"),
    ("permutation_importance.png", "Permutation importance"),
];

/// The headline metrics, in the order of the table.
const METRICS: [(&str, &str); 8] = [
    ("pr_auc", "PR-AUC"),
    ("roc_auc", "ROC-AUC"),
    ("brier", "Brier"),
    ("log_loss", "log loss"),
    ("ece", "ECE"),
    ("precision", "precision"),
    ("recall", "recall"),
    ("f1", "F1"),
];

const STYLE: &str = "body{font-family:DejaVu Sans,Helvetica,Arial,sans-serif;margin:24px auto;max-width:1180px;\
color:#1d1d1f;line-height:1.4}h1{font-size:24px;margin-bottom:4px}h2{font-size:19px;margin-top:32px;\
border-bottom:1px solid #ccc;padding-bottom:4px}table{border-collapse:collapse;margin:8px 0;font-size:13px}\
th,td{border:1px solid #d0d0d0;padding:3px 8px;text-align:right}th{background:#f2f2f2}\
td.l,th.l{text-align:left}.pass{color:#11752f;font-weight:bold}.fail{color:#b3001b;font-weight:bold}\
.decision{font-size:18px;padding:10px 14px;border-radius:6px;display:inline-block;margin:8px 0}\
.promote{background:#e3f5e8;border:1px solid #11752f}.keep{background:#fdf1e0;border:1px solid #b36b00}\
figure{display:inline-block;margin:8px;vertical-align:top}figcaption{font-size:13px;color:#444}\
img{max-width:560px;border:1px solid #ddd}.muted{color:#666;font-size:13px}";

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// A JSON value as a table cell: numbers to 4 decimals (integers as they
/// are), null as a dash.
fn cell(v: &Value) -> String {
    match v {
        Value::Null => "–".into(),
        Value::Number(n) if n.is_f64() => n.as_f64().map_or_else(String::new, |f| format!("{f:.4}")),
        Value::Number(n) => n.to_string(),
        Value::String(s) => esc(s),
        Value::Bool(b) => b.to_string(),
        Value::Array(a) => esc(&a
            .iter()
            .map(|v| v.as_str().map_or_else(|| v.to_string(), str::to_owned))
            .collect::<Vec<_>>()
            .join(", ")),
        Value::Object(_) => esc(&v.to_string()),
    }
}

/// An array of flat objects as a table, the columns those of the first row
/// (nested objects and arrays shown as text).
fn table(rows: &Value) -> String {
    let Some(rows) = rows.as_array().filter(|r| !r.is_empty()) else {
        return "<p class=\"muted\">none</p>".into();
    };
    let columns: Vec<&String> = rows[0]
        .as_object()
        .map(|o| o.keys().collect())
        .unwrap_or_default();
    let mut out = String::from("<table><tr>");
    for c in &columns {
        let _ = write!(out, "<th>{}</th>", esc(c));
    }
    out.push_str("</tr>");
    for r in rows {
        out.push_str("<tr>");
        for c in &columns {
            let v = &r[c.as_str()];
            let class = if v.is_string() { " class=\"l\"" } else { "" };
            let _ = write!(out, "<td{class}>{}</td>", cell(v));
        }
        out.push_str("</tr>");
    }
    out.push_str("</table>");
    out
}

fn read_json(path: &Path) -> Result<Value> {
    let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    serde_json::from_slice(&bytes).with_context(|| format!("parsing {}", path.display()))
}

/// `value [lo, hi]` for a metric with its interval, when there is one.
fn with_interval(value: &Value, interval: &Value) -> String {
    match (interval["low"].as_f64(), interval["high"].as_f64()) {
        (Some(lo), Some(hi)) => format!("{} <span class=\"muted\">[{lo:.4}, {hi:.4}]</span>", cell(value)),
        _ => cell(value),
    }
}

fn headline(m: &Value) -> String {
    let intervals = &m["intervals"];
    let champion = &m["champion"];
    let has_champion = champion["metrics"].is_object();
    let mut out = String::from("<table><tr><th class=\"l\">metric</th><th>model (calibrated)</th>");
    out.push_str("<th>before calibration</th><th>training prior</th>");
    if has_champion {
        let _ = write!(out, "<th>champion {}</th>", cell(&champion["version"]));
    }
    out.push_str("</tr>");
    for (key, name) in METRICS {
        let _ = write!(
            out,
            "<tr><td class=\"l\">{name}</td><td>{}</td><td>{}</td><td>{}</td>",
            with_interval(&m["model"][key], &intervals["model"][key]),
            cell(&m["model_uncalibrated"][key]),
            with_interval(&m["baseline_prior"][key], &intervals["baseline_prior"][key]),
        );
        if has_champion {
            let _ = write!(
                out,
                "<td>{}</td>",
                with_interval(&champion["metrics"][key], &intervals["champion"][key])
            );
        }
        out.push_str("</tr>");
    }
    out.push_str("</table>");
    let _ = write!(
        out,
        "<p class=\"muted\">Intervals: {} bootstrap resamples of the holdout's {} customers, {} % \
         percentile intervals.</p>",
        cell(&intervals["resamples"]),
        cell(&intervals["customers"]),
        intervals["confidence"].as_f64().map_or(0.0, |c| 100.0 * c)
    );
    out
}

fn decision(p: &Value) -> String {
    let d = p["decision"].as_str().unwrap_or("keep");
    let mut out = format!(
        "<div class=\"decision {}\"><b>{}</b> ({} mode{}): {}</div>",
        if d == "promote" { "promote" } else { "keep" },
        esc(d),
        cell(&p["mode"]),
        if p["promoted"] == true {
            ", production moved to the candidate"
        } else {
            ""
        },
        cell(&p["reason"])
    );
    out.push_str(
        "<table><tr><th class=\"l\">check</th><th>value</th><th></th><th>limit</th><th>champion</th>\
         <th>result</th><th class=\"l\">note</th></tr>",
    );
    for c in p["checks"].as_array().into_iter().flatten() {
        let passed = c["passed"] == true;
        let _ = write!(
            out,
            "<tr><td class=\"l\">{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td>\
             <td class=\"{}\">{}</td><td class=\"l\">{}</td></tr>",
            cell(&c["check"]),
            cell(&c["value"]),
            cell(&c["op"]),
            cell(&c["limit"]),
            cell(&c["champion"]),
            if passed { "pass" } else { "fail" },
            if passed { "pass" } else { "FAIL" },
            cell(&c["note"])
        );
    }
    out.push_str("</table>");
    out
}

fn competition(c: &Value) -> String {
    let rows: Vec<Value> = c["versions"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|v| {
            let m = &v["metrics"];
            serde_json::json!({
                "version": v["version"],
                "model version": v["model_version"],
                "created": v["created"],
                "aliases": v["aliases"],
                "this run": v["is_candidate"],
                "PR-AUC": m["pr_auc"],
                "ROC-AUC": m["roc_auc"],
                "Brier": m["brier"],
                "ECE": m["ece"],
                "F1": m["f1"],
                "not scored because": v["note"],
            })
        })
        .collect();
    format!(
        "<p>Every registered version on the same {} holdout rows; champion: {}.</p>{}",
        cell(&c["holdout_rows"]),
        cell(&c["champion"]),
        table(&Value::Array(rows))
    )
}

fn slices(s: &Value) -> String {
    let below: Vec<String> = s["below_floor"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|v| v.as_str().map(esc))
        .collect();
    let mut out = if below.is_empty() {
        format!(
            "<p>No slice held to the floor has a PR-AUC below {}.</p>",
            cell(&s["pr_auc_floor"])
        )
    } else {
        format!(
            "<p class=\"fail\">Below the PR-AUC floor {}: {}</p>",
            cell(&s["pr_auc_floor"]),
            below.join(", ")
        )
    };
    let _ = write!(
        out,
        "<p class=\"muted\">Slices with fewer than {} rows or {} positives (or one class only) are \
         shown but not held to the floor.</p>",
        cell(&s["min_rows"]),
        cell(&s["min_positives"])
    );
    out.push_str(&table(&s["slices"]));
    out
}

fn figures(plots_dir: &Path) -> Result<String> {
    let mut names: Vec<String> = std::fs::read_dir(plots_dir)
        .with_context(|| format!("listing {}", plots_dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.file_name().to_string_lossy().into_owned()))
        .filter(|n| n.ends_with(".png") && !artifact::is_temp_name(n))
        .collect();
    names.sort_by_key(|n| {
        (
            PLOTS.iter().position(|(p, _)| p == n).unwrap_or(PLOTS.len()),
            n.clone(),
        )
    });
    let mut out = String::new();
    for name in names {
        let path = plots_dir.join(&name);
        let png = std::fs::read(&path).with_context(|| format!("reading {}", path.display()))?;
        let caption = PLOTS
            .iter()
            .find(|(p, _)| *p == name)
            .map_or(name.as_str(), |(_, c)| c);
        let _ = write!(
            out,
            "<figure><img alt=\"{}\" src=\"data:image/png;base64,{}\"><figcaption>{} \
             (<code>plots/{}</code>)</figcaption></figure>",
            esc(caption),
            base64::engine::general_purpose::STANDARD.encode(&png),
            esc(caption),
            esc(&name)
        );
    }
    Ok(out)
}

/// Writes the page next to the metrics (`index.html` in their directory,
/// or `path`), atomically, from the reports and plots already written.
pub fn write(path: &Path, outputs: &Outputs) -> Result<()> {
    let m = read_json(&outputs.metrics)?;
    let p = read_json(&outputs.promotion)?;
    let c = read_json(&outputs.competition)?;
    let mut html = String::with_capacity(1 << 20);
    let _ = write!(
        html,
        "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <title>revspend evaluation: {model}</title><style>{STYLE}</style></head><body>\
         <nav class=\"muted\">Evaluation · <a href=\"monitor.html\">Monitoring</a> (written beside \
         this page once the monitor stage has run)</nav>\
         <h1>Evaluation of {model}</h1><p class=\"muted\">{algorithm}, {calibration} calibration; \
         holdout: {rows} purchases, {positives} revenge purchases (prevalence {prevalence}); threshold \
         {threshold}.</p>",
        model = cell(&m["model_version"]),
        algorithm = cell(&m["algorithm"]),
        calibration = cell(&m["calibration"]),
        rows = cell(&m["rows"]),
        positives = cell(&m["positives"]),
        prevalence = cell(&m["prevalence"]),
        threshold = cell(&m["model"]["threshold"]),
    );
    let sections: [(&str, String); 8] = [
        ("Promotion decision", decision(&p)),
        ("Headline metrics against the baselines", headline(&m)),
        ("Model competition", competition(&c)),
        ("Metrics by slice", slices(&m["slices"])),
        ("Cumulative gain and lift by decile", table(&m["gain_lift"])),
        (
            "Learning curve",
            table(
                m["learning_curve"]
                    .get("points")
                    .or_else(|| m["learning_curve"].get("rows"))
                    .unwrap_or(&m["learning_curve"]),
            ),
        ),
        (
            "Feature importance",
            table(
                m["importance"]
                    .get("features")
                    .or_else(|| m["importance"].get("rows"))
                    .unwrap_or(&m["importance"]),
            ),
        ),
        ("Plots", figures(&outputs.plots_dir)?),
    ];
    for (title, body) in sections {
        let _ = write!(html, "<h2>{title}</h2>{body}");
    }
    html.push_str("</body></html>\n");
    artifact::write_atomic(path, html.as_bytes()).with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_escape_and_format_cells() {
        let rows = serde_json::json!([{"name": "<b>&", "value": 0.123456, "n": 3, "missing": null}]);
        let html = table(&rows);
        assert!(html.contains("&lt;b&gt;&amp;"), "{html}");
        assert!(html.contains("<td>0.1235</td>"), "{html}");
        assert!(html.contains("<td>3</td>"), "{html}");
        assert!(html.contains("<td>–</td>"), "{html}");
        assert_eq!(table(&serde_json::json!([])), "<p class=\"muted\">none</p>");
    }
}
