//! Bar charts: PR-AUC by slice, the competition of registered versions,
//! and the score distribution per class.

use anyhow::Result;
use plotters::prelude::*;

use super::{Area, FONT, legend, plot_err};
use crate::competition::Competition;
use crate::distribution::ScoreBin;
use crate::slices::SliceReport;

/// PR-AUC by slice as horizontal bars, the floor marked; slices too small
/// to be held to the floor are drawn pale.
pub(crate) fn draw_slices(area: &Area<'_>, slices: &SliceReport, title: &str) -> Result<()> {
    let bars: Vec<(String, f64, bool, bool)> = slices
        .slices
        .iter()
        .filter_map(|s| {
            s.pr_auc.map(|v| {
                (
                    format!("{} ({} rows)", s.name(), s.rows),
                    v,
                    s.held_to_floor,
                    s.below_floor,
                )
            })
        })
        .collect();
    let names: Vec<String> = bars.iter().map(|b| b.0.clone()).collect();
    let mut chart = bar_chart(
        area,
        format!("PR-AUC by slice ({title})"),
        &names,
        "PR-AUC of the calibrated model (pale: too few rows or positives to be judged)",
    )?;
    chart
        .draw_series(bars.iter().enumerate().map(|(i, (_, v, held, below))| {
            let colour = match (held, below) {
                (_, true) => RED.mix(0.85),
                (true, false) => BLUE.mix(0.75),
                (false, _) => BLUE.mix(0.25),
            };
            let mut bar = Rectangle::new(
                [(0.0, SegmentValue::Exact(i)), (*v, SegmentValue::Exact(i + 1))],
                colour.filled(),
            );
            bar.set_margin(2, 2, 0, 0);
            bar
        }))
        .map_err(plot_err)?;
    let floor = slices.pr_auc_floor;
    chart
        .draw_series(LineSeries::new(
            [
                (floor, SegmentValue::Exact(0)),
                (floor, SegmentValue::Exact(names.len())),
            ],
            RED.stroke_width(2),
        ))
        .map_err(plot_err)?
        .label(format!("floor {floor} (below: red)"))
        .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], RED.stroke_width(2)));
    legend(&mut chart, SeriesLabelPosition::LowerLeft)
}

/// Horizontal bars over [0, 1], one row per name (labelled on the left).
type BarChart<'a, 'b> = ChartContext<
    'a,
    BitMapBackend<'b>,
    Cartesian2d<
        plotters::coord::types::RangedCoordf64,
        plotters::coord::ranged1d::SegmentedCoord<plotters::coord::types::RangedCoordusize>,
    >,
>;

/// The horizontal bar layout both bar charts share.
fn bar_chart<'a, 'b>(
    area: &'a Area<'b>,
    caption: String,
    names: &[String],
    x_desc: &str,
) -> Result<BarChart<'a, 'b>> {
    let n = names.len().max(1);
    let mut chart = ChartBuilder::on(area)
        .caption(caption, (FONT, 17))
        .margin(16)
        .x_label_area_size(40)
        .y_label_area_size(260)
        .build_cartesian_2d(0f64..1f64, (0..n - 1).into_segmented())
        .map_err(plot_err)?;
    chart
        .configure_mesh()
        .disable_y_mesh()
        .y_labels(n)
        .y_label_formatter(&|v| match v {
            SegmentValue::CenterOf(i) => names.get(*i).cloned().unwrap_or_default(),
            _ => String::new(),
        })
        .x_desc(x_desc)
        .label_style((FONT, if n > 30 { 10 } else { 12 }))
        .draw()
        .map_err(plot_err)?;
    Ok(chart)
}

/// Every registered version's holdout PR-AUC on the same rows, the
/// candidate and the champion marked; versions that could not be scored
/// are named with a zero-length bar and the reason cut short.
pub(crate) fn draw_competition(area: &Area<'_>, c: &Competition, title: &str) -> Result<()> {
    let label = |e: &crate::competition::Entry| {
        let mut roles: Vec<&str> = e.aliases.iter().map(String::as_str).collect();
        if e.is_candidate && !roles.contains(&"candidate") {
            roles.insert(0, "this run");
        }
        let roles = if roles.is_empty() {
            String::new()
        } else {
            format!(" [{}]", roles.join(", "))
        };
        format!("{} {}{roles}", e.version, e.algorithm)
    };
    let names: Vec<String> = c.versions.iter().map(label).collect();
    let mut chart = bar_chart(
        area,
        format!(
            "Model competition: PR-AUC on the same {} rows ({title})",
            c.holdout_rows
        ),
        &names,
        "holdout PR-AUC (calibrated)",
    )?;
    let champion = c.champion.as_deref();
    chart
        .draw_series(c.versions.iter().enumerate().map(|(i, e)| {
            let colour = if e.is_candidate {
                BLUE.mix(0.8)
            } else if Some(e.version.as_str()) == champion {
                RGBColor(230, 140, 0).mix(0.9)
            } else {
                BLACK.mix(0.35)
            };
            let v = e.metrics.as_ref().map_or(0.0, |m| m.pr_auc);
            let mut bar = Rectangle::new(
                [(0.0, SegmentValue::Exact(i)), (v, SegmentValue::Exact(i + 1))],
                colour.filled(),
            );
            bar.set_margin(3, 3, 0, 0);
            bar
        }))
        .map_err(plot_err)?;
    chart
        .draw_series(c.versions.iter().enumerate().map(|(i, e)| {
            let text = match (&e.metrics, &e.note) {
                (Some(m), _) => format!("{:.4}", m.pr_auc),
                (None, Some(why)) => format!("not scored: {}", why.chars().take(60).collect::<String>()),
                (None, None) => "not scored".to_owned(),
            };
            let x = e.metrics.as_ref().map_or(0.01, |m| (m.pr_auc - 0.12).max(0.01));
            Text::new(
                text,
                (x, SegmentValue::CenterOf(i)),
                (FONT, 12).into_font().color(&WHITE.mix(1.0)),
            )
        }))
        .map_err(plot_err)?;
    Ok(())
}

/// One class's rows in a bin and their share of the class.
type BinShare = fn(&ScoreBin) -> (u64, f64);

/// The calibrated score's distribution per actual class (each class's rows
/// as shares of that class), with the threshold marked.
pub(crate) fn draw_score_distribution(
    area: &Area<'_>,
    bins: &[ScoreBin],
    threshold: f64,
    title: &str,
) -> Result<()> {
    let top = bins
        .iter()
        .map(|b| b.negative_share.max(b.positive_share))
        .fold(0.0, f64::max)
        .max(0.01);
    let mut chart = ChartBuilder::on(area)
        .caption(format!("Score distribution per class ({title})"), (FONT, 18))
        .margin(16)
        .x_label_area_size(44)
        .y_label_area_size(60)
        .build_cartesian_2d(0f64..1f64, 0f64..top * 1.08)
        .map_err(plot_err)?;
    chart
        .configure_mesh()
        .x_desc("calibrated probability")
        .y_desc("share of the class's purchases")
        .label_style((FONT, 14))
        .draw()
        .map_err(plot_err)?;
    let classes: [(&str, RGBColor, BinShare, f64); 2] = [
        ("other purchases", BLUE, |b| (b.negatives, b.negative_share), 0.0),
        ("revenge purchases", RED, |b| (b.positives, b.positive_share), 0.5),
    ];
    for (label, colour, class, offset) in classes {
        let rows: u64 = bins.iter().map(|b| class(b).0).sum();
        chart
            .draw_series(bins.iter().map(|b| {
                // Negatives in the left half of the bin, positives in the right.
                let w = (b.upper - b.lower) / 2.0;
                let x0 = b.lower + offset * 2.0 * w;
                Rectangle::new([(x0, 0.0), (x0 + w, class(b).1)], colour.mix(0.75).filled())
            }))
            .map_err(plot_err)?
            .label(format!("{label} ({rows})"))
            .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 14, y + 5)], colour.mix(0.75).filled()));
    }
    let marker = MAGENTA.mix(0.8);
    chart
        .draw_series(LineSeries::new(
            [(threshold, 0.0), (threshold, top * 1.08)],
            marker.stroke_width(2),
        ))
        .map_err(plot_err)?
        .label(format!("threshold {threshold:.3}"))
        .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], marker.stroke_width(2)));
    legend(&mut chart, SeriesLabelPosition::UpperMiddle)
}
