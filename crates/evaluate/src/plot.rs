//! The stage's charts: plotters on a bitmap with a vendored font (no system
//! fonts needed), each PNG written atomically. Every chart shares the
//! unit-square layout and legend here.

use std::path::Path;

use anyhow::{Context, Result, anyhow};
use plotters::prelude::*;
use plotters::style::FontStyle;
use revspend_core::artifact;
use revspend_core::metrics::{Confusion, EvaluationReport, ReliabilityBin};

use crate::{PrPoint, RocPoint, lift, threshold};

pub(crate) const FONT: &str = "sans-serif";
static FONT_BYTES: &[u8] = include_bytes!("../assets/DejaVuSans.ttf");

pub(crate) fn register_font() -> Result<()> {
    plotters::style::register_font(FONT, FontStyle::Normal, FONT_BYTES)
        .map_err(|_| anyhow!("the vendored plot font is not a valid TrueType font"))
}

pub(crate) type Area<'a> = DrawingArea<BitMapBackend<'a>, plotters::coord::Shift>;
pub(crate) type UnitChart<'a, 'b> = ChartContext<
    'a,
    BitMapBackend<'b>,
    Cartesian2d<plotters::coord::types::RangedCoordf64, plotters::coord::types::RangedCoordf64>,
>;

/// A chart over the unit square (probabilities, rates, shares), with the
/// layout every plot of the stage shares.
pub(crate) fn unit_chart<'a, 'b>(
    area: &'a Area<'b>,
    caption: impl AsRef<str>,
    x_desc: &str,
    y_desc: &str,
) -> Result<UnitChart<'a, 'b>> {
    let mut chart = ChartBuilder::on(area)
        .caption(caption.as_ref(), (FONT, 18))
        .margin(16)
        .x_label_area_size(44)
        .y_label_area_size(52)
        .build_cartesian_2d(0f64..1f64, 0f64..1.02f64)
        .map_err(plot_err)?;
    chart
        .configure_mesh()
        .x_desc(x_desc)
        .y_desc(y_desc)
        .label_style((FONT, 14))
        .draw()
        .map_err(plot_err)?;
    Ok(chart)
}

/// The legend of the series drawn, boxed, at `position`.
pub(crate) fn legend<'a, 'b: 'a>(chart: &mut UnitChart<'a, 'b>, position: SeriesLabelPosition) -> Result<()> {
    chart
        .configure_series_labels()
        .position(position)
        .label_font((FONT, 14))
        .background_style(WHITE.mix(0.9))
        .border_style(BLACK)
        .draw()
        .map_err(plot_err)?;
    Ok(())
}

/// Draws a PNG into a scratch file (plotters' encoder writes to a path),
/// then writes its bytes to `path` atomically.
pub(crate) fn render_png(path: &Path, draw: impl FnOnce(&Area<'_>) -> Result<()>) -> Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let scratch = tempfile::Builder::new()
        .prefix(".plot-")
        .suffix(".png")
        .tempfile_in(dir)
        .with_context(|| format!("creating a scratch file in {}", dir.display()))?;
    {
        let area = BitMapBackend::new(scratch.path(), (720, 540)).into_drawing_area();
        area.fill(&WHITE).map_err(plot_err)?;
        draw(&area).with_context(|| format!("drawing {}", path.display()))?;
        area.present().map_err(plot_err)?;
    }
    let png = std::fs::read(scratch.path())
        .with_context(|| format!("reading back {}", scratch.path().display()))?;
    artifact::write_atomic(path, &png)?;
    Ok(())
}

pub(crate) fn plot_err<E: std::fmt::Debug>(e: E) -> anyhow::Error {
    anyhow!("plotting failed: {e:?}")
}

/// What one line chart shows: the model's curve against the baseline's.
pub(crate) struct CurveChart<'a> {
    caption: String,
    x_desc: &'a str,
    y_desc: &'a str,
    model: Vec<(f64, f64)>,
    model_label: String,
    model_colour: RGBColor,
    baseline: [(f64, f64); 2],
    baseline_label: String,
    legend: SeriesLabelPosition,
}

pub(crate) fn draw_gain(area: &Area<'_>, table: &[lift::Decile], title: &str) -> Result<()> {
    let mut model = vec![(0.0, 0.0)];
    model.extend(table.iter().map(|d| (d.share, d.gain)));
    let first = table.first();
    draw_curve(
        area,
        CurveChart {
            caption: format!("Cumulative gain by decile ({title})"),
            x_desc: "share of purchases, highest scores first",
            y_desc: "share of revenge purchases caught",
            model,
            model_label: first.map_or_else(
                || "model".to_owned(),
                |d| {
                    format!(
                        "model, top 10 %: {:.0} % caught (lift {:.1})",
                        100.0 * d.gain,
                        d.lift
                    )
                },
            ),
            model_colour: BLUE,
            baseline: [(0.0, 0.0), (1.0, 1.0)],
            baseline_label: "random pick (lift 1)".into(),
            legend: SeriesLabelPosition::LowerRight,
        },
    )
}

/// One quantity of a threshold point, for a chart's series.
type PointValue = fn(&threshold::ThresholdPoint) -> f64;

/// Precision, recall, F1 and the cost (scaled to its largest value) against
/// the threshold, the model's threshold marked.
pub(crate) fn draw_threshold(
    area: &Area<'_>,
    sweep: &[threshold::ThresholdPoint],
    chosen: f64,
    (fp_cost, fn_cost): (f64, f64),
    title: &str,
) -> Result<()> {
    let mut chart = unit_chart(
        area,
        format!("Metrics against the threshold ({title})"),
        "decision threshold (calibrated probability)",
        "value (cost: share of its maximum)",
    )?;
    let max_cost = sweep
        .iter()
        .map(|p| p.cost)
        .fold(0.0, f64::max)
        .max(f64::MIN_POSITIVE);
    let series: [(String, RGBColor, PointValue); 4] = [
        ("precision".into(), BLUE, |p| p.precision),
        ("recall".into(), RED, |p| p.recall),
        ("F1".into(), GREEN, |p| p.f1),
        (format!("cost ({fp_cost} x FP + {fn_cost} x FN)"), BLACK, |p| {
            p.cost
        }),
    ];
    for (k, (label, colour, value)) in series.into_iter().enumerate() {
        // The cost (the last series) is drawn as a share of its maximum.
        let scale = if k == 3 { max_cost } else { 1.0 };
        let points: Vec<(f64, f64)> = sweep
            .iter()
            .filter(|p| p.threshold.is_finite())
            .map(|p| (p.threshold.clamp(0.0, 1.0), value(p) / scale))
            .collect();
        chart
            .draw_series(LineSeries::new(points, colour.stroke_width(2)))
            .map_err(plot_err)?
            .label(label)
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], colour.stroke_width(2)));
    }
    let marker = MAGENTA.mix(0.8);
    chart
        .draw_series(LineSeries::new(
            [(chosen, 0.0), (chosen, 1.02)],
            marker.stroke_width(1),
        ))
        .map_err(plot_err)?
        .label(format!("model threshold {chosen:.3}"))
        .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], marker.stroke_width(1)));
    legend(&mut chart, SeriesLabelPosition::MiddleMiddle)
}

pub(crate) fn draw_roc(
    area: &Area<'_>,
    roc: &[RocPoint],
    report: &EvaluationReport,
    title: &str,
) -> Result<()> {
    draw_curve(
        area,
        CurveChart {
            caption: format!("ROC curve ({title})"),
            x_desc: "false positive rate",
            y_desc: "true positive rate",
            model: roc.iter().map(|p| (p.fpr, p.tpr)).collect(),
            model_label: format!("model, AUC {:.3}", report.model.roc_auc),
            model_colour: BLUE,
            baseline: [(0.0, 0.0), (1.0, 1.0)],
            baseline_label: format!("training prior, AUC {:.3}", report.baseline_prior.roc_auc),
            legend: SeriesLabelPosition::LowerRight,
        },
    )
}

pub(crate) fn draw_pr(area: &Area<'_>, pr: &[PrPoint], report: &EvaluationReport, title: &str) -> Result<()> {
    draw_curve(
        area,
        CurveChart {
            caption: format!("Precision-recall ({title})"),
            x_desc: "recall",
            y_desc: "precision",
            model: pr.iter().map(|p| (p.recall, p.precision)).collect(),
            model_label: format!("model, PR-AUC {:.3}", report.model.pr_auc),
            model_colour: RED,
            baseline: [(0.0, report.prevalence), (1.0, report.prevalence)],
            baseline_label: format!("training prior, PR-AUC {:.3}", report.baseline_prior.pr_auc),
            legend: SeriesLabelPosition::LowerLeft,
        },
    )
}

pub(crate) fn draw_curve(area: &Area<'_>, c: CurveChart<'_>) -> Result<()> {
    let mut chart = unit_chart(area, c.caption, c.x_desc, c.y_desc)?;
    let colour = c.model_colour;
    chart
        .draw_series(LineSeries::new(c.model, colour.stroke_width(2)))
        .map_err(plot_err)?
        .label(c.model_label)
        .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], colour.stroke_width(2)));
    chart
        .draw_series(LineSeries::new(c.baseline, BLACK.mix(0.5)))
        .map_err(plot_err)?
        .label(c.baseline_label)
        .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], BLACK.mix(0.5)));
    legend(&mut chart, c.legend)
}

pub(crate) fn draw_reliability(
    area: &Area<'_>,
    before: &[ReliabilityBin],
    after: &[ReliabilityBin],
    report: &EvaluationReport,
    title: &str,
) -> Result<()> {
    let mut chart = unit_chart(
        area,
        format!("Reliability ({title})"),
        "mean predicted probability",
        "observed share of revenge spending",
    )?;
    chart
        .draw_series(LineSeries::new([(0.0, 0.0), (1.0, 1.0)], BLACK.mix(0.5)))
        .map_err(plot_err)?
        .label("perfect calibration")
        .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], BLACK.mix(0.5)));
    let series = [
        (
            before,
            RED,
            format!("before, ECE {:.4}", report.model_uncalibrated.ece),
        ),
        (
            after,
            BLUE,
            format!("after ({}), ECE {:.4}", report.calibration, report.model.ece),
        ),
    ];
    for (bins, colour, label) in series {
        let pts: Vec<(f64, f64)> = bins
            .iter()
            .filter(|b| b.count > 0)
            .map(|b| (b.mean_predicted, b.observed_rate))
            .collect();
        chart
            .draw_series(LineSeries::new(pts.clone(), colour.stroke_width(2)))
            .map_err(plot_err)?
            .label(label)
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], colour.stroke_width(2)));
        chart
            .draw_series(pts.into_iter().map(|p| Circle::new(p, 4, colour.filled())))
            .map_err(plot_err)?;
    }
    legend(&mut chart, SeriesLabelPosition::UpperLeft)
}

pub(crate) fn draw_confusion(area: &Area<'_>, c: &Confusion, threshold: f64, title: &str) -> Result<()> {
    let (top, body) = area.split_vertically(70);
    top.draw(&Text::new(
        format!("Confusion matrix ({title})"),
        (16, 12),
        (FONT, 18).into_font(),
    ))
    .map_err(plot_err)?;
    top.draw(&Text::new(
        format!(
            "threshold {threshold:.3}: precision {:.3}, recall {:.3}, F1 {:.3}",
            c.precision(),
            c.recall(),
            c.f1()
        ),
        (16, 40),
        (FONT, 15).into_font(),
    ))
    .map_err(plot_err)?;
    let body = body.margin(10, 30, 130, 130);
    let cells = body.split_evenly((2, 2));
    let max = [c.tn, c.fp, c.fn_, c.tp].into_iter().max().unwrap_or(1).max(1) as f64;
    // Rows: actual negative, actual positive; columns: predicted negative, positive.
    let entries = [
        ("actual 0, predicted 0", c.tn),
        ("actual 0, predicted 1", c.fp),
        ("actual 1, predicted 0", c.fn_),
        ("actual 1, predicted 1", c.tp),
    ];
    for (cell, (label, count)) in cells.iter().zip(entries) {
        let shade = 0.15 + 0.75 * (count as f64 / max);
        cell.fill(&BLUE.mix(shade)).map_err(plot_err)?;
        let (w, h) = cell.dim_in_pixel();
        let ink = if shade > 0.5 { &WHITE } else { &BLACK };
        let style = TextStyle::from((FONT, 28).into_font()).color(ink);
        cell.draw(&Text::new(
            count.to_string(),
            (w as i32 / 2 - 30, h as i32 / 2 - 20),
            style,
        ))
        .map_err(plot_err)?;
        let small = TextStyle::from((FONT, 14).into_font()).color(ink);
        cell.draw(&Text::new(label.to_string(), (8, 8), small))
            .map_err(plot_err)?;
    }
    Ok(())
}
