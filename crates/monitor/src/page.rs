//! The monitoring page: a self-contained HTML summary of the report.

use std::fmt::Write as _;
use std::path::Path;

use anyhow::Result;
use revspend_core::artifact;

use crate::report::MonitorReport;

/// Writes the page.
pub fn write(report: &MonitorReport, _plots_dir: &Path, page: &Path) -> Result<()> {
    let mut html = String::from(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>revspend monitoring</title></head><body>",
    );
    let _ = write!(
        html,
        "<h1>Monitoring: {} ({})</h1>",
        esc(&report.production.version),
        esc(&report.alias)
    );
    let _ = write!(
        html,
        "<p>Windows: {}</p><table><tr><th>window</th><th>rows</th><th>drifted features</th></tr>",
        esc(&report.selection.reason)
    );
    for w in &report.windows {
        let _ = write!(
            html,
            "<tr><td>{}</td><td>{}</td><td>{}</td></tr>",
            esc(&w.window),
            w.rows,
            esc(&w.drifted_features.join(", "))
        );
    }
    html.push_str("</table><h2>Alarms</h2><ul>");
    for f in &report.alarms.findings {
        let _ = write!(html, "<li>{}</li>", esc(&f.message));
    }
    html.push_str("</ul></body></html>\n");
    artifact::write_atomic(page, html.as_bytes())?;
    Ok(())
}

fn esc(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}
