//! `registry`: the command-line face of [`revspend_core::registry`]. Each
//! command returns the text it prints, so the tests read it directly.
//! [`experiment_report`] reads the server's prediction log instead.

pub mod experiment_report;

use anyhow::{Context, Result};
use revspend_core::registry::{Registry, current_user};
use serde_json::Value;

/// Left-aligned columns separated by two spaces.
pub fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut width: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (w, cell) in width.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |cells: Vec<String>| {
        let padded: Vec<String> = cells
            .iter()
            .zip(&width)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect();
        format!("{}\n", padded.join("  ").trim_end())
    };
    let mut out = line(header.iter().map(|h| (*h).to_owned()).collect());
    for row in rows {
        out.push_str(&line(row.clone()));
    }
    out
}

pub fn list(reg: &Registry) -> Result<String> {
    let index = reg.index()?;
    if index.versions.is_empty() {
        return Ok(format!("no versions registered in {}\n", reg.dir().display()));
    }
    let rows: Vec<Vec<String>> = index
        .versions
        .iter()
        .map(|v| {
            vec![
                v.version.clone(),
                index.aliases_of(&v.version).join(","),
                v.created.clone(),
                v.algorithm.clone(),
                v.calibration.clone(),
                format!("{:.4}", v.test_metrics.pr_auc),
                format!("{:.4}", v.test_metrics.roc_auc),
                format!("{:.5}", v.test_metrics.brier),
                format!("{:.4}", v.test_metrics.ece),
                v.model_version.clone(),
                v.git_commit
                    .as_deref()
                    .map_or("-", |c| &c[..c.len().min(10)])
                    .to_owned(),
            ]
        })
        .collect();
    Ok(table(
        &[
            "version",
            "aliases",
            "created",
            "algorithm",
            "calibration",
            "pr_auc",
            "roc_auc",
            "brier",
            "ece",
            "model_version",
            "commit",
        ],
        &rows,
    ))
}

pub fn show(reg: &Registry, name: &str) -> Result<String> {
    let entry = reg.resolve(name)?;
    let index = reg.index()?;
    let mut value = serde_json::to_value(&entry)?;
    if let Value::Object(map) = &mut value {
        map.insert(
            "aliases".into(),
            serde_json::json!(index.aliases_of(&entry.version)),
        );
        map.insert(
            "evaluation".into(),
            serde_json::json!({
                "dir": reg.evaluation_dir(&entry.version)?,
                "files": reg.evaluation_files(&entry.version)?,
            }),
        );
    }
    Ok(format!("{}\n", serde_json::to_string_pretty(&value)?))
}

pub fn promote(reg: &Registry, name: &str, alias: &str) -> Result<String> {
    let change = reg.promote(name, alias, &current_user())?;
    Ok(format!(
        "{}: {} -> {}\n",
        change.alias,
        change.from.as_deref().unwrap_or("(none)"),
        change.to
    ))
}

pub fn rollback(reg: &Registry, alias: &str) -> Result<String> {
    let change = reg.rollback(alias, &current_user())?;
    Ok(format!(
        "{} rolled back: {} -> {}\n",
        change.alias,
        change.from.as_deref().unwrap_or("(none)"),
        change.to
    ))
}

pub fn alias_log(reg: &Registry) -> Result<String> {
    let index = reg.index()?;
    let rows: Vec<Vec<String>> = index
        .alias_log
        .iter()
        .map(|c| {
            vec![
                c.time.clone(),
                c.who.clone(),
                c.os_user.clone().unwrap_or_else(|| "-".into()),
                c.alias.clone(),
                c.from.clone().unwrap_or_else(|| "-".into()),
                c.to.clone(),
                c.reason.clone(),
                c.note.clone().unwrap_or_else(|| "-".into()),
            ]
        })
        .collect();
    // `who` is what the caller claimed (REVSPEND_USER); `os_user` is the
    // account that ran the command; `note` says why (e.g. the monitor's alarm).
    Ok(table(
        &["time", "who", "os_user", "alias", "from", "to", "reason", "note"],
        &rows,
    ))
}

fn num(v: &Value, pointer: &str, digits: usize) -> String {
    v.pointer(pointer)
        .and_then(Value::as_f64)
        .map_or_else(|| "-".into(), |x| format!("{x:.digits$}"))
}

fn text(v: &Value, pointer: &str) -> String {
    match v.pointer(pointer) {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Null) | None => "-".into(),
        Some(other) => other.to_string(),
    }
}

pub fn experiments(reg: &Registry) -> Result<String> {
    let records = reg
        .experiments()
        .with_context(|| format!("reading {}", reg.experiments_path().display()))?;
    if records.is_empty() {
        return Ok(format!("no experiments logged in {}\n", reg.dir().display()));
    }
    let rows: Vec<Vec<String>> = records
        .iter()
        .map(|r| {
            vec![
                text(r, "/time"),
                text(r, "/version"),
                text(r, "/chosen/algorithm"),
                format!("{}={}", text(r, "/cv/metric"), num(r, "/chosen/cv_mean", 4)),
                r.pointer("/cv/trials")
                    .and_then(Value::as_array)
                    .map_or_else(|| "-".into(), |t| t.len().to_string()),
                text(r, "/calibration"),
                num(r, "/test/pr_auc", 4),
                num(r, "/test/roc_auc", 4),
                num(r, "/test/brier", 5),
                num(r, "/test/ece", 4),
                num(r, "/timings_s/total", 1),
                num(r, "/peak_rss_mb", 0),
                text(r, "/params_hash").chars().take(8).collect(),
                text(r, "/data_hash").chars().take(8).collect(),
            ]
        })
        .collect();
    Ok(table(
        &[
            "time", "version", "chosen", "cv", "trials", "calib", "pr_auc", "roc_auc", "brier", "ece",
            "total_s", "rss_mb", "params", "data",
        ],
        &rows,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_align_columns() {
        let t = table(&["a", "bbb"], &[vec!["xxxx".into(), "y".into()]]);
        assert_eq!(t, "a     bbb\nxxxx  y\n");
    }
}
