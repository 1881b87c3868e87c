//! The learning curve (issue 14): the model's configuration refitted on
//! growing shares of the train split's customers ([`train::learning`]),
//! training and validation score with their spread and the fit time, so a
//! person sees whether more data would help.
//!
//! Reads the train split the model was trained on (its SHA-256 must be the
//! model's `data_hash`), writes `learning_curve.json` (one row per share,
//! for `dvc plots`) and `learning_curve.png` (scores against the rows each
//! fit trained on, above the fit time), and returns the table for
//! `metrics.json`. The fit times are wall times: they are in the plot and
//! its data, not in the report, which stays identical across reruns.

use std::path::Path;

use anyhow::{Context, Result, bail};
use plotters::prelude::*;
use revspend_core::artifact;
use revspend_core::model::ModelArtifact;
use revspend_core::params::EvaluateParams;
use serde::Serialize;
use train::learning::{Chosen, Point};

use crate::plot::{self, Area, FONT, plot_err};

/// The curve in `metrics.json`.
#[derive(Debug, Clone, Serialize)]
pub struct LearningCurve {
    /// The selection metric the scores are in (the model's `train.cv.metric`).
    pub metric: &'static str,
    pub folds: usize,
    pub seed: u64,
    pub train_rows: usize,
    /// One row per share, smallest first.
    pub points: Vec<Point>,
}

/// A row of `learning_curve.json`: the point and its fit times.
#[derive(Debug, Serialize)]
struct PlotRow<'a> {
    #[serde(flatten)]
    point: &'a Point,
    fit_seconds_mean: f64,
    fit_seconds_std: f64,
}

/// Draws the learning curve of `model` (read from `model_path`) on the
/// train split at `train_path` into `plots_dir` (`evaluate.learning_curve`,
/// seeded by `evaluate.seed`); `None`, with nothing written, when its
/// shares are empty.
pub fn run(
    evaluate: &EvaluateParams,
    model: &ModelArtifact,
    model_path: &Path,
    train_path: &Path,
    plots_dir: &Path,
) -> Result<Option<LearningCurve>> {
    let (params, seed) = (&evaluate.learning_curve, evaluate.seed);
    if params.shares.is_empty() {
        log::info!("learning curve: skipped (evaluate.learning_curve.shares is empty)");
        return Ok(None);
    }
    let chosen = Chosen::from_model(model)
        .with_context(|| format!("the learning curve of {}", model_path.display()))?;
    let (split, sha256) = revspend_table::read_labelled_hashed(train_path, &model.features)
        .context("reading the train split for the learning curve")?;
    if sha256 != model.data_hash {
        bail!(
            "{} has SHA-256 {sha256}, but {} was trained on a train split with SHA-256 {}: the learning curve \
             refits on the rows the model was trained on; pass that train split (--train) or rerun train",
            train_path.display(),
            model_path.display(),
            model.data_hash
        );
    }
    let groups = train::cv::group_ids(&split.customers);
    let data = train::fit::Data {
        x: &split.x,
        y: &split.y,
        groups: &groups,
    };
    let started = std::time::Instant::now();
    let points = train::learning::curve(&chosen, data, &params.shares, params.folds, seed)?;
    log::info!(
        "learning curve: {} shares x {} folds of {} in {:.1} s\n{}",
        points.len(),
        params.folds,
        model.algorithm,
        started.elapsed().as_secs_f64(),
        table(chosen.metric.name(), &points)
    );
    let curve = LearningCurve {
        metric: chosen.metric.name(),
        folds: params.folds,
        seed,
        train_rows: split.y.len(),
        points,
    };
    let rows: Vec<PlotRow<'_>> = curve
        .points
        .iter()
        .map(|point| PlotRow {
            point,
            fit_seconds_mean: point.fit_seconds.mean,
            fit_seconds_std: point.fit_seconds.std,
        })
        .collect();
    artifact::write_json(
        &plots_dir.join("learning_curve.json"),
        &serde_json::json!({ "learning_curve": rows }),
    )?;
    plot::register_font()?;
    let title = format!("train split, model {}", model.model_version);
    plot::render_png(&plots_dir.join("learning_curve.png"), |area| {
        draw(area, &curve, &title)
    })?;
    Ok(Some(curve))
}

/// The curve as a text table for the log.
fn table(metric: &str, points: &[Point]) -> String {
    let mut lines = vec![format!(
        "  share  customers       rows  fit rows  train {metric:<10}  validation {metric:<10}  fit seconds"
    )];
    for p in points {
        lines.push(format!(
            "  {:>5.2}  {:>9}  {:>9}  {:>8.0}  {:.4} ± {:.4}    {:.4} ± {:.4}         {:.2} ± {:.2}",
            p.share,
            p.customers,
            p.rows,
            p.fit_rows,
            p.train_mean,
            p.train_std,
            p.validation_mean,
            p.validation_std,
            p.fit_seconds.mean,
            p.fit_seconds.std
        ));
    }
    lines.join("\n")
}

/// Mean ± std of one quantity of a point.
type Band = fn(&Point) -> (f64, f64);

/// Two panels against the rows each fit trained on: training and
/// validation score, each a line with a ±1 std band (above); the fit time
/// with ±1 std error bars (below).
fn draw(area: &Area<'_>, curve: &LearningCurve, title: &str) -> Result<()> {
    let (top, bottom) = area.split_vertically(360);
    let points = &curve.points;
    let x_max = points.iter().map(|p| p.fit_rows).fold(1.0, f64::max) * 1.05;
    let metric = curve.metric;
    // The scores' own range, with room below for the share labels and the
    // legend: differences of a few hundredths must be visible.
    let edges: Vec<f64> = points
        .iter()
        .flat_map(|p| {
            [
                p.train_mean + p.train_std,
                p.train_mean - p.train_std,
                p.validation_mean + p.validation_std,
                p.validation_mean - p.validation_std,
            ]
        })
        .filter(|v| v.is_finite())
        .collect();
    let (lo, hi) = edges
        .iter()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), &v| {
            (lo.min(v), hi.max(v))
        });
    let (lo, hi) = if lo <= hi { (lo, hi) } else { (0.0, 1.0) };
    let span = (hi - lo).max(0.05);
    let (y_min, y_max) = ((lo - 0.8 * span).max(0.0), hi + 0.15 * span);

    let mut chart = ChartBuilder::on(&top)
        .caption(format!("Learning curve ({title})"), (FONT, 18))
        .margin(16)
        .margin_bottom(4)
        .x_label_area_size(24)
        .y_label_area_size(58)
        .build_cartesian_2d(0f64..x_max, y_min..y_max)
        .map_err(plot_err)?;
    chart
        .configure_mesh()
        .y_desc(format!("{metric}, mean ± 1 std over {} folds", curve.folds))
        .x_label_formatter(&|v| rows_label(*v))
        .label_style((FONT, 13))
        .draw()
        .map_err(plot_err)?;
    let series: [(&str, RGBColor, Band); 2] = [
        ("training folds", RED, |p| (p.train_mean, p.train_std)),
        ("held-out fold", BLUE, |p| (p.validation_mean, p.validation_std)),
    ];
    for (name, colour, band) in series {
        let line: Vec<(f64, f64)> = points.iter().map(|p| (p.fit_rows, band(p).0)).collect();
        let mut outline: Vec<(f64, f64)> = points
            .iter()
            .map(|p| (p.fit_rows, band(p).0 + band(p).1))
            .collect();
        outline.extend(points.iter().rev().map(|p| (p.fit_rows, band(p).0 - band(p).1)));
        chart
            .draw_series(std::iter::once(Polygon::new(outline, colour.mix(0.18))))
            .map_err(plot_err)?;
        let last = points.last().map_or((f64::NAN, f64::NAN), band);
        chart
            .draw_series(LineSeries::new(line.clone(), colour.stroke_width(2)))
            .map_err(plot_err)?
            .label(format!(
                "{name}: {:.3} ± {:.3} at the largest share",
                last.0, last.1
            ))
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], colour.stroke_width(2)));
        chart
            .draw_series(line.into_iter().map(|p| Circle::new(p, 3, colour.filled())))
            .map_err(plot_err)?;
    }
    let small = TextStyle::from((FONT, 12).into_font()).color(&BLUE);
    chart
        .draw_series(points.iter().map(|p| {
            let below = p.validation_mean - p.validation_std;
            Text::new(
                format!("{:.0} %", 100.0 * p.share),
                (p.fit_rows, below - 0.06 * span),
                small.clone(),
            )
        }))
        .map_err(plot_err)?;
    plot::legend(&mut chart, SeriesLabelPosition::LowerRight)?;

    let seconds_max = points
        .iter()
        .map(|p| p.fit_seconds.mean + p.fit_seconds.std)
        .fold(0.0, f64::max)
        .max(1e-3)
        * 1.15;
    let mut chart = ChartBuilder::on(&bottom)
        .margin(16)
        .margin_top(4)
        .x_label_area_size(40)
        .y_label_area_size(58)
        .build_cartesian_2d(0f64..x_max, 0f64..seconds_max)
        .map_err(plot_err)?;
    chart
        .configure_mesh()
        .x_desc("rows each fit trained on (share of the train split's customers, less the held-out fold)")
        .y_desc("fit seconds")
        .x_label_formatter(&|v| rows_label(*v))
        .y_labels(4)
        .label_style((FONT, 13))
        .draw()
        .map_err(plot_err)?;
    let grey = BLACK.mix(0.75);
    chart
        .draw_series(LineSeries::new(
            points.iter().map(|p| (p.fit_rows, p.fit_seconds.mean)),
            grey.stroke_width(2),
        ))
        .map_err(plot_err)?
        .label("fit time, mean ± 1 std (wall clock, folds fitted side by side)")
        .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], grey.stroke_width(2)));
    let cap = x_max / 150.0;
    chart
        .draw_series(points.iter().flat_map(|p| {
            let (x, m, s) = (p.fit_rows, p.fit_seconds.mean, p.fit_seconds.std);
            [
                PathElement::new(vec![(x, (m - s).max(0.0)), (x, m + s)], grey),
                PathElement::new(vec![(x - cap, m + s), (x + cap, m + s)], grey),
                PathElement::new(
                    vec![(x - cap, (m - s).max(0.0)), (x + cap, (m - s).max(0.0))],
                    grey,
                ),
            ]
        }))
        .map_err(plot_err)?;
    plot::legend(&mut chart, SeriesLabelPosition::UpperLeft)
}

/// An axis label in rows: 800, 2.5k, 12k, 1.2M.
fn rows_label(v: f64) -> String {
    let short = |v: f64, unit: &str| format!("{}{unit}", format!("{v:.1}").trim_end_matches(".0"));
    if v >= 1e6 {
        short(v / 1e6, "M")
    } else if v >= 1e4 {
        format!("{:.0}k", v / 1e3)
    } else if v >= 1e3 {
        short(v / 1e3, "k")
    } else {
        format!("{v:.0}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn row_labels_stay_short() {
        assert_eq!(rows_label(800.0), "800");
        assert_eq!(rows_label(1500.0), "1.5k");
        assert_eq!(rows_label(5000.0), "5k");
        assert_eq!(rows_label(12_345.0), "12k");
        assert_eq!(rows_label(1_234_567.0), "1.2M");
        assert_eq!(rows_label(2_000_000.0), "2M");
    }
}
