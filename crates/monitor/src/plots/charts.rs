//! The monitor's charts, drawn from the report as it is written to
//! `reports/monitor.json` (its JSON form), so a chart shows exactly what the
//! file says. Every chart draws a placeholder when the run has nothing for
//! it.

use std::path::Path;

use anyhow::Result;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};
use serde_json::Value;

use super::canvas::{
    ALERT, Area, BASELINE, ESTIMATED, FONT, REALISED, legend, placeholder, plot_err, psi_label, render_png,
    short, thousands,
};

/// The chart files, in the page's reading order.
pub const DRIFT_HEATMAP: &str = "drift_heatmap.png";
pub const PREDICTION_DRIFT: &str = "prediction_drift.png";
pub const PERFORMANCE: &str = "performance.png";
pub const VALUE: &str = "value.png";
pub const COST: &str = "cost.png";

const NO_WINDOWS: &str = "no feature-layer rows in the monitored days: no window to plot";

fn windows(r: &Value) -> &[Value] {
    r["windows"].as_array().map_or(&[], Vec::as_slice)
}

/// A window's name on an axis.
fn window_names(r: &Value) -> Vec<String> {
    windows(r)
        .iter()
        .map(|w| w["window"].as_str().unwrap_or("?").to_owned())
        .collect()
}

/// A segmented axis' label: the name of the segment it centres on.
fn segment_label(names: &[String], v: &SegmentValue<usize>) -> String {
    match v {
        SegmentValue::CenterOf(i) => names.get(*i).cloned().unwrap_or_default(),
        _ => String::new(),
    }
}

/// The (low, high) of a value axis over `values`, padded by a tenth of the
/// spread (or of the value when they are all equal), `[0, 1]` when empty.
fn value_range(values: impl IntoIterator<Item = f64>) -> (f64, f64) {
    let (lo, hi) = values
        .into_iter()
        .filter(|v| v.is_finite())
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| {
            (lo.min(v), hi.max(v))
        });
    if lo > hi {
        return (0.0, 1.0);
    }
    let pad = if hi > lo {
        0.1 * (hi - lo)
    } else {
        0.1 * hi.abs().max(1e-3)
    };
    (lo - pad, hi + pad)
}

// ---------------------------------------------------------------- drift

/// A feature's drift in one window, as the heat-map colours it.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct HeatCell {
    pub psi: f64,
    /// `stable`, `warn` or `alarm`.
    pub level: String,
    /// Whether the feature had a drift test (else it is greyed).
    pub tested: bool,
    pub drifted: bool,
}

/// The heat-map: features (rows, in the report's order, any feature new in
/// a later window appended) by windows (columns).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Heat {
    pub windows: Vec<String>,
    /// Rows per window, and whether the window was tested.
    pub window_rows: Vec<(u64, bool)>,
    pub features: Vec<String>,
    /// `cells[feature][window]`; `None` when the window has no figure for
    /// the feature (an untested window).
    pub cells: Vec<Vec<Option<HeatCell>>>,
}

pub(crate) fn heat_of(r: &Value) -> Heat {
    let ws = windows(r);
    let mut features: Vec<String> = Vec::new();
    for w in ws {
        for f in w["features"].as_array().into_iter().flatten() {
            if let Some(name) = f["feature"].as_str()
                && !features.iter().any(|n| n == name)
            {
                features.push(name.to_owned());
            }
        }
    }
    let cells = features
        .iter()
        .map(|name| {
            ws.iter()
                .map(|w| {
                    w["features"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .find(|f| f["feature"].as_str() == Some(name))
                        .map(|f| HeatCell {
                            psi: f["psi"].as_f64().unwrap_or(f64::NAN),
                            level: f["psi_level"].as_str().unwrap_or("stable").to_owned(),
                            tested: !f["test"].is_null(),
                            drifted: f["drifted"] == true,
                        })
                })
                .collect()
        })
        .collect();
    Heat {
        windows: window_names(r),
        window_rows: ws
            .iter()
            .map(|w| (w["rows"].as_u64().unwrap_or(0), w["tested"] == true))
            .collect(),
        features,
        cells,
    }
}

/// The heat-map's geometry in pixels, from its size in cells: wide enough
/// for a PSI in every cell, tall enough for 25 features.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct HeatLayout {
    pub label_width: i32,
    pub cell_width: i32,
    pub cell_height: i32,
    pub top: i32,
    pub width: u32,
    pub height: u32,
}

pub(crate) fn heat_layout(features: usize, windows: usize) -> HeatLayout {
    let label_width = 190;
    let cell_width = (880 / windows.max(1) as i32).clamp(72, 150);
    let cell_height = if features > 30 { 18 } else { 24 };
    let top = 92;
    let legend = 96;
    let width = (label_width + cell_width * windows.max(1) as i32 + 24).max(760);
    let height = top + cell_height * features.max(1) as i32 + legend;
    HeatLayout {
        label_width,
        cell_width,
        cell_height,
        top,
        width: width as u32,
        height: height as u32,
    }
}

/// The heat-map's small centred text.
fn small(colour: &RGBColor) -> TextStyle<'_> {
    TextStyle::from((FONT, 12).into_font())
        .color(colour)
        .pos(Pos::new(HPos::Center, VPos::Center))
}

fn level_colour(cell: &HeatCell) -> RGBColor {
    if !cell.tested {
        return RGBColor(228, 228, 228);
    }
    match cell.level.as_str() {
        "alarm" => RGBColor(236, 112, 99),
        "warn" => RGBColor(253, 208, 130),
        _ => RGBColor(222, 241, 226),
    }
}

pub(crate) fn drift_heatmap(path: &Path, r: &Value) -> Result<()> {
    let heat = heat_of(r);
    let title = "Feature drift by window";
    if heat.windows.is_empty() {
        return placeholder(path, title, NO_WINDOWS);
    }
    if heat.features.is_empty() {
        return placeholder(
            path,
            title,
            "no window had enough rows to be tested: no feature was compared",
        );
    }
    let g = heat_layout(heat.features.len(), heat.windows.len());
    render_png(path, (g.width, g.height), |area| {
        area.draw(&Text::new(title, (16, 12), (FONT, 18).into_font()))
            .map_err(plot_err)?;
        area.draw(&Text::new(
            "cell: PSI against the training reference, coloured by its level; framed: drifted by the \
             feature's test",
            (16, 40),
            (FONT, 13).into_font().color(&BLACK.mix(0.7)),
        ))
        .map_err(plot_err)?;
        let centre = Pos::new(HPos::Center, VPos::Center);
        for (j, (name, (rows, _))) in heat.windows.iter().zip(&heat.window_rows).enumerate() {
            let x = g.label_width + g.cell_width * j as i32 + g.cell_width / 2;
            area.draw(&Text::new(
                name.clone(),
                (x, g.top - 30),
                TextStyle::from((FONT, 13).into_font()).pos(centre),
            ))
            .map_err(plot_err)?;
            // An untested window says so in its cells: the header has no
            // room for it when the windows are many.
            let note = format!("{} rows", thousands(*rows as f64));
            area.draw(&Text::new(note, (x, g.top - 13), small(&RGBColor(90, 90, 90))))
                .map_err(plot_err)?;
        }
        let name_style = TextStyle::from((FONT, 13).into_font()).pos(Pos::new(HPos::Right, VPos::Center));
        for (i, name) in heat.features.iter().enumerate() {
            let y0 = g.top + g.cell_height * i as i32;
            let untested = heat.cells[i].iter().flatten().all(|c| !c.tested);
            let label = if untested {
                format!("{name} (no test)")
            } else {
                name.clone()
            };
            area.draw(&Text::new(
                label,
                (g.label_width - 8, y0 + g.cell_height / 2),
                name_style
                    .clone()
                    .color(if untested { &BASELINE } else { &BLACK }),
            ))
            .map_err(plot_err)?;
            for (j, cell) in heat.cells[i].iter().enumerate() {
                let x0 = g.label_width + g.cell_width * j as i32;
                let corners = [(x0, y0), (x0 + g.cell_width, y0 + g.cell_height)];
                let Some(cell) = cell else {
                    area.draw(&Rectangle::new(corners, WHITE.filled()))
                        .map_err(plot_err)?;
                    area.draw(&Rectangle::new(corners, BLACK.mix(0.15)))
                        .map_err(plot_err)?;
                    area.draw(&Text::new(
                        "untested",
                        (x0 + g.cell_width / 2, y0 + g.cell_height / 2),
                        small(&BASELINE),
                    ))
                    .map_err(plot_err)?;
                    continue;
                };
                area.draw(&Rectangle::new(corners, level_colour(cell).filled()))
                    .map_err(plot_err)?;
                area.draw(&Rectangle::new(corners, WHITE.stroke_width(1)))
                    .map_err(plot_err)?;
                if cell.drifted {
                    let inner = [(x0 + 2, y0 + 2), (x0 + g.cell_width - 2, y0 + g.cell_height - 2)];
                    area.draw(&Rectangle::new(inner, ALERT.stroke_width(3)))
                        .map_err(plot_err)?;
                }
                let ink = if cell.tested { BLACK } else { BASELINE };
                let text = psi_label(cell.psi);
                area.draw(&Text::new(
                    text,
                    (x0 + g.cell_width / 2, y0 + g.cell_height / 2),
                    small(&ink),
                ))
                .map_err(plot_err)?;
            }
        }
        // The legend, under the grid.
        let y = g.top + g.cell_height * heat.features.len() as i32 + 22;
        let swatches: [(&str, RGBColor, bool); 5] = [
            ("PSI stable", RGBColor(222, 241, 226), false),
            ("PSI warn", RGBColor(253, 208, 130), false),
            ("PSI alarm", RGBColor(236, 112, 99), false),
            ("no drift test (PSI only)", RGBColor(228, 228, 228), false),
            ("drifted by its test", WHITE, true),
        ];
        let mut x = 16;
        for (label, colour, framed) in swatches {
            let corners = [(x, y - 8), (x + 22, y + 8)];
            area.draw(&Rectangle::new(corners, colour.filled()))
                .map_err(plot_err)?;
            let border = if framed {
                ALERT.stroke_width(3)
            } else {
                BLACK.mix(0.3).stroke_width(1)
            };
            area.draw(&Rectangle::new(corners, border)).map_err(plot_err)?;
            area.draw(&Text::new(
                label,
                (x + 28, y),
                TextStyle::from((FONT, 13).into_font()).pos(Pos::new(HPos::Left, VPos::Center)),
            ))
            .map_err(plot_err)?;
            x += 40 + 8 * label.len() as i32;
        }
        area.draw(&Text::new(
            "levels: the stage's psi_warn and psi_alarm; \"untested\": the window had fewer rows than min_rows",
            (16, y + 26),
            (FONT, 12).into_font().color(&BLACK.mix(0.6)),
        ))
        .map_err(plot_err)?;
        Ok(())
    })
}

// ---------------------------------------------------------------- prediction drift

/// A reference score bin's label: where it starts (the first bin is open).
fn bin_label(from: &Value) -> String {
    match from.as_f64() {
        None => "lowest".into(),
        // Reference deciles of a sharp model start close together: two
        // significant digits more than `short` keeps them apart.
        Some(f) if f.abs() < 0.01 && f != 0.0 => format!("≥ {f:.2e}"),
        Some(f) => format!("≥ {}", short(f)),
    }
}

pub(crate) fn prediction_drift(path: &Path, r: &Value) -> Result<()> {
    let title = "Prediction drift";
    let newest = windows(r).iter().rev().find(|w| w["prediction"].is_object());
    let Some(w) = newest else {
        let why = if windows(r).is_empty() {
            NO_WINDOWS
        } else {
            "no window had enough rows to compare its scores"
        };
        return placeholder(path, title, why);
    };
    let p = &w["prediction"];
    let bins = p["bins"].as_array().map_or(&[][..], Vec::as_slice);
    if bins.is_empty() {
        return placeholder(path, title, "the newest window's prediction drift has no bins");
    }
    let names: Vec<String> = bins.iter().map(|b| bin_label(&b["from"])).collect();
    let shares = |key: &str| -> Vec<f64> { bins.iter().map(|b| b[key].as_f64().unwrap_or(0.0)).collect() };
    let (reference, window) = (shares("reference_share"), shares("window_share"));
    let top = reference
        .iter()
        .chain(&window)
        .fold(0.0, |a: f64, &b| a.max(b))
        .max(0.01)
        * 1.25;
    let n = bins.len();
    render_png(path, (960, 540), |area| {
        let mut chart = ChartBuilder::on(area)
            .caption(
                format!(
                    "Score distribution of {} against the reference (test split), by reference bin",
                    w["window"].as_str().unwrap_or("?")
                ),
                (FONT, 17),
            )
            .margin(16)
            .x_label_area_size(60)
            .y_label_area_size(60)
            .build_cartesian_2d((0..n - 1).into_segmented(), 0f64..top)
            .map_err(plot_err)?;
        chart
            .configure_mesh()
            .disable_x_mesh()
            .x_labels(n)
            .x_label_formatter(&|v| segment_label(&names, v))
            .x_desc("reference score bin (production's calibrated probability from)")
            .y_desc("share of the purchases")
            .label_style((FONT, 13))
            .draw()
            .map_err(plot_err)?;
        let pale = BASELINE.mix(0.35);
        chart
            .draw_series(reference.iter().enumerate().map(|(i, &v)| {
                let mut bar = Rectangle::new(
                    [(SegmentValue::Exact(i), 0.0), (SegmentValue::Exact(i + 1), v)],
                    pale.filled(),
                );
                bar.set_margin(0, 0, 4, 4);
                bar
            }))
            .map_err(plot_err)?
            .label("reference (test split) share")
            .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 14, y + 5)], pale.filled()));
        let bar_colour = REALISED.mix(0.75);
        chart
            .draw_series(window.iter().enumerate().map(|(i, &v)| {
                let mut bar = Rectangle::new(
                    [(SegmentValue::Exact(i), 0.0), (SegmentValue::Exact(i + 1), v)],
                    bar_colour.filled(),
                );
                bar.set_margin(0, 0, 18, 18);
                bar
            }))
            .map_err(plot_err)?
            .label(format!(
                "window share; PSI {} ({}), JS {}",
                p["psi"].as_f64().map_or_else(|| "n/a".into(), short),
                p["psi_level"].as_str().unwrap_or("?"),
                p["js"].as_f64().map_or_else(|| "n/a".into(), short),
            ))
            .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 14, y + 5)], bar_colour.filled()));
        let rate = |key: &str| {
            p[key]
                .as_f64()
                .map_or_else(|| "n/a".into(), |v| format!("{:.1} %", 100.0 * v))
        };
        let note = format!(
            "flagged: {} (reference {}); mean score {} (reference {})",
            rate("decision_rate"),
            rate("reference_decision_rate"),
            p["mean_score"].as_f64().map_or_else(|| "n/a".into(), short),
            p["reference_mean_score"]
                .as_f64()
                .map_or_else(|| "n/a".into(), short),
        );
        chart
            .draw_series(std::iter::once(PathElement::new(
                Vec::<(SegmentValue<usize>, f64)>::new(),
                WHITE,
            )))
            .map_err(plot_err)?
            .label(note)
            .legend(|(x, y)| PathElement::new(vec![(x, y)], WHITE));
        legend(&mut chart, SeriesLabelPosition::UpperLeft)
    })
}

// ---------------------------------------------------------------- performance

/// One metric's series over the windows: (window, value) pairs.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct MetricSeries {
    pub estimated: Vec<(usize, f64)>,
    pub realised: Vec<(usize, f64)>,
    /// (window, lower, upper) of the estimate's alert band.
    pub band: Vec<(usize, f64, f64)>,
}

pub(crate) fn metric_series(r: &Value, metric: &str) -> MetricSeries {
    let mut s = MetricSeries::default();
    for (i, w) in windows(r).iter().enumerate() {
        let perf = &w["performance"];
        if let Some(v) = perf["estimated"][metric].as_f64() {
            s.estimated.push((i, v));
        }
        if let Some(v) = perf["realised"][metric].as_f64() {
            s.realised.push((i, v));
        }
        let band = &perf["bands"][metric];
        if let (Some(lo), Some(hi)) = (band["lower"].as_f64(), band["upper"].as_f64()) {
            s.band.push((i, lo, hi));
        }
    }
    s
}

fn metric_panel(
    area: &Area<'_>,
    names: &[String],
    s: &MetricSeries,
    title: &str,
    reference: Option<(f64, String)>,
) -> Result<()> {
    let n = names.len();
    let (lo, hi) = value_range(
        s.estimated
            .iter()
            .chain(&s.realised)
            .map(|p| p.1)
            .chain(s.band.iter().flat_map(|b| [b.1, b.2]))
            .chain(reference.as_ref().map(|r| r.0)),
    );
    let (lo, hi) = (lo.max(0.0), hi.min(1.0).max(lo.max(0.0) + 0.01));
    let mut chart = ChartBuilder::on(area)
        .caption(title, (FONT, 17))
        .margin(16)
        .x_label_area_size(44)
        .y_label_area_size(56)
        .build_cartesian_2d((0..n - 1).into_segmented(), lo..hi * 1.04 - lo * 0.04)
        .map_err(plot_err)?;
    chart
        .configure_mesh()
        .disable_x_mesh()
        .x_labels(n)
        .x_label_formatter(&|v| segment_label(names, v))
        .x_desc("window")
        .label_style((FONT, 13))
        .draw()
        .map_err(plot_err)?;
    let shade = ESTIMATED.mix(0.15);
    chart
        .draw_series(s.band.iter().map(|&(i, lo, hi)| {
            let mut r = Rectangle::new(
                [(SegmentValue::Exact(i), lo), (SegmentValue::Exact(i + 1), hi)],
                shade.filled(),
            );
            r.set_margin(0, 0, 6, 6);
            r
        }))
        .map_err(plot_err)?
        .label("alert band of the estimate")
        .legend(move |(x, y)| Rectangle::new([(x, y - 6), (x + 20, y + 6)], shade.filled()));
    if let Some((value, label)) = reference {
        chart
            .draw_series(LineSeries::new(
                [(SegmentValue::Exact(0), value), (SegmentValue::Last, value)],
                BASELINE.stroke_width(1),
            ))
            .map_err(plot_err)?
            .label(label)
            .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], BASELINE.stroke_width(1)));
    }
    for (points, colour, label) in [
        (&s.estimated, ESTIMATED, "estimated (CBPE, no labels)"),
        (&s.realised, REALISED, "realised (labels)"),
    ] {
        let pts: Vec<(SegmentValue<usize>, f64)> = points
            .iter()
            .map(|&(i, v)| (SegmentValue::CenterOf(i), v))
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
    // Windows whose realised value left the band, circled in the alert red.
    let outside: Vec<(SegmentValue<usize>, f64)> = s
        .realised
        .iter()
        .filter(|&&(i, v)| s.band.iter().any(|&(j, lo, hi)| j == i && (v < lo || v > hi)))
        .map(|&(i, v)| (SegmentValue::CenterOf(i), v))
        .collect();
    chart
        .draw_series(
            outside
                .into_iter()
                .map(|p| Circle::new(p, 8, ALERT.stroke_width(2))),
        )
        .map_err(plot_err)?;
    legend(&mut chart, SeriesLabelPosition::LowerLeft)
}

pub(crate) fn performance(path: &Path, r: &Value) -> Result<()> {
    let title = "Performance by window, estimated against realised";
    let names = window_names(r);
    if names.is_empty() {
        return placeholder(path, title, NO_WINDOWS);
    }
    let pr_auc = metric_series(r, "pr_auc");
    let f1 = metric_series(r, "f1");
    let test = r["reference"]["test_pr_auc"]
        .as_f64()
        .map(|v| (v, format!("test split at training {v:.3}")));
    render_png(path, (1200, 520), |area| {
        let (left, right) = area.split_horizontally(600);
        metric_panel(&left, &names, &pr_auc, "PR-AUC by window", test)?;
        metric_panel(&right, &names, &f1, "F1 at the model's threshold by window", None)
    })
}

// ---------------------------------------------------------------- value

pub(crate) fn value(path: &Path, r: &Value) -> Result<()> {
    let title = "Value per 1,000 purchases";
    let currency = r["value_currency"]
        .as_str()
        .unwrap_or("monitor.value's currency")
        .to_owned();
    let names = window_names(r);
    if names.is_empty() {
        return placeholder(path, title, NO_WINDOWS);
    }
    let n = names.len();
    let series = |f: &dyn Fn(&Value) -> Option<f64>| -> Vec<(usize, f64)> {
        windows(r)
            .iter()
            .enumerate()
            .filter_map(|(i, w)| f(&w["value"]).map(|v| (i, v)))
            .collect()
    };
    let estimated = series(&|v| v["estimated"]["per_1000"].as_f64());
    let realised = series(&|v| v["realised"]["per_1000"].as_f64());
    // The no-model baseline on the rows whose value is shown: realised when
    // the labels are known, else estimated.
    let baseline = series(&|v| {
        v["realised"]["baseline_per_1000"]
            .as_f64()
            .or_else(|| v["estimated"]["baseline_per_1000"].as_f64())
    });
    let (lo, hi) = value_range(estimated.iter().chain(&realised).chain(&baseline).map(|p| p.1));
    let rates = windows(r)
        .iter()
        .find_map(|w| w["value"]["rates"].as_object())
        .map_or_else(String::new, |rates| {
            let g = |k: &str| {
                rates
                    .get(k)
                    .and_then(Value::as_f64)
                    .map_or_else(|| "?".into(), short)
            };
            format!(
                " (per purchase: caught {}, false alarm {}, missed {})",
                g("true_positive"),
                g("false_positive"),
                g("false_negative")
            )
        });
    render_png(path, (960, 540), |area| {
        let mut chart = ChartBuilder::on(area)
            .caption(format!("{title}, by window{rates}"), (FONT, 16))
            .margin(16)
            .x_label_area_size(44)
            .y_label_area_size(76)
            .build_cartesian_2d((0..n - 1).into_segmented(), lo..hi)
            .map_err(plot_err)?;
        chart
            .configure_mesh()
            .disable_x_mesh()
            .x_labels(n)
            .x_label_formatter(&|v| segment_label(&names, v))
            .y_label_formatter(&|v| thousands(*v))
            .x_desc("window")
            .y_desc(format!("value per 1,000 purchases ({currency})"))
            .label_style((FONT, 13))
            .draw()
            .map_err(plot_err)?;
        chart
            .draw_series(LineSeries::new(
                [(SegmentValue::Exact(0), 0.0), (SegmentValue::Last, 0.0)],
                BLACK.mix(0.3),
            ))
            .map_err(plot_err)?;
        for (points, colour, label) in [
            (&estimated, ESTIMATED, "model, estimated (CBPE)"),
            (&realised, REALISED, "model, realised"),
            (&baseline, BASELINE, "no model (flag nothing)"),
        ] {
            let pts: Vec<(SegmentValue<usize>, f64)> = points
                .iter()
                .map(|&(i, v)| (SegmentValue::CenterOf(i), v))
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
        legend(&mut chart, SeriesLabelPosition::MiddleRight)
    })
}

// ---------------------------------------------------------------- cost

/// A stage's last run as the cost chart shows it.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct StageBar {
    pub stage: String,
    pub seconds: f64,
    /// Whether `seconds` is CPU time (else wall time: CPU was not recorded).
    pub cpu: bool,
    pub peak_mb: Option<f64>,
}

pub(crate) fn stage_bars(r: &Value) -> Vec<StageBar> {
    r["cost"]["stages"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|s| {
            let last = s["last"].as_object()?;
            let cpu = last.get("cpu_seconds").and_then(Value::as_f64);
            let wall = last.get("wall_seconds").and_then(Value::as_f64);
            Some(StageBar {
                stage: s["stage"].as_str().unwrap_or("?").to_owned(),
                seconds: cpu.or(wall)?,
                cpu: cpu.is_some(),
                peak_mb: last.get("peak_rss_mb").and_then(Value::as_f64),
            })
        })
        .collect()
}

fn bar_panel(
    area: &Area<'_>,
    caption: &str,
    names: &[String],
    x_desc: &str,
    bars: &[(f64, RGBAColor, String)],
) -> Result<()> {
    let n = names.len();
    let top = bars.iter().map(|b| b.0).fold(0.0, f64::max).max(1e-6) * 1.3;
    let mut chart = ChartBuilder::on(area)
        .caption(caption, (FONT, 16))
        .margin(16)
        .x_label_area_size(44)
        .y_label_area_size(130)
        .build_cartesian_2d(0f64..top, (0..n - 1).into_segmented())
        .map_err(plot_err)?;
    chart
        .configure_mesh()
        .disable_y_mesh()
        .y_labels(n)
        .y_label_formatter(&|v| segment_label(names, v))
        .x_labels(5)
        .x_label_formatter(&|v| short(*v))
        .x_desc(x_desc)
        .label_style((FONT, 13))
        .draw()
        .map_err(plot_err)?;
    chart
        .draw_series(bars.iter().enumerate().map(|(i, (v, colour, _))| {
            let mut bar = Rectangle::new(
                [(0.0, SegmentValue::Exact(i)), (*v, SegmentValue::Exact(i + 1))],
                colour.filled(),
            );
            bar.set_margin(4, 4, 0, 0);
            bar
        }))
        .map_err(plot_err)?;
    chart
        .draw_series(bars.iter().enumerate().map(|(i, (v, _, text))| {
            Text::new(
                text.clone(),
                (*v + top * 0.01, SegmentValue::CenterOf(i)),
                TextStyle::from((FONT, 12).into_font()).pos(Pos::new(HPos::Left, VPos::Center)),
            )
        }))
        .map_err(plot_err)?;
    Ok(())
}

pub(crate) fn cost(path: &Path, r: &Value) -> Result<()> {
    let title = "Compute cost of the stages' last runs";
    let bars = stage_bars(r);
    if bars.is_empty() {
        return placeholder(path, title, "no stage run was recorded");
    }
    let names: Vec<String> = bars.iter().map(|b| b.stage.clone()).collect();
    let height = (160 + 34 * bars.len()).max(300) as u32;
    render_png(path, (1200, height), |area| {
        let (left, right) = area.split_horizontally(600);
        let time: Vec<(f64, RGBAColor, String)> = bars
            .iter()
            .map(|b| {
                if b.cpu {
                    (
                        b.seconds,
                        ESTIMATED.mix(0.75),
                        format!("{} s CPU", short(b.seconds)),
                    )
                } else {
                    (
                        b.seconds,
                        BASELINE.mix(0.5),
                        format!("{} s wall", short(b.seconds)),
                    )
                }
            })
            .collect();
        bar_panel(
            &left,
            "CPU seconds (grey: wall, CPU not recorded)",
            &names,
            "seconds",
            &time,
        )?;
        let memory: Vec<(f64, RGBAColor, String)> = bars
            .iter()
            .map(|b| match b.peak_mb {
                Some(mb) => (mb, RGBColor(230, 140, 0).mix(0.9), format!("{} MB", short(mb))),
                None => (0.0, BASELINE.mix(0.5), "not recorded".to_owned()),
            })
            .collect();
        bar_panel(&right, "Peak memory (resident set)", &names, "megabytes", &memory)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn feature(name: &str, test: Option<&str>, psi: f64, drifted: bool) -> Value {
        json!({"feature": name, "test": test, "score": 0.01, "threshold": 0.1, "drifted": drifted,
               "psi": psi, "psi_level": if psi >= 0.25 { "alarm" } else { "stable" }, "override_reason": null})
    }

    #[test]
    fn the_heat_map_of_one_window_has_one_column_and_greys_untested_features() {
        let r = json!({"windows": [{"window": "2020-06", "rows": 9365, "tested": true, "features": [
            feature("valor", Some("wasserstein_norm"), 0.3, true),
            feature("month", None, 0.02, false),
        ]}]});
        let heat = heat_of(&r);
        assert_eq!(heat.windows, ["2020-06"]);
        assert_eq!(heat.window_rows, [(9365, true)]);
        assert_eq!(heat.features, ["valor", "month"]);
        let valor = heat.cells[0][0].as_ref().expect("valor has a cell");
        assert!(valor.tested && valor.drifted);
        assert_eq!(valor.level, "alarm");
        let month = heat.cells[1][0].as_ref().expect("month has a cell");
        assert!(!month.tested && !month.drifted);
        assert_eq!(level_colour(month), RGBColor(228, 228, 228));
    }

    #[test]
    fn an_untested_window_is_a_column_without_cells() {
        let r = json!({"windows": [
            {"window": "a", "rows": 10, "tested": false, "features": []},
            {"window": "b", "rows": 900, "tested": true, "features": [feature("x", Some("chi_squared"), 0.0, false)]},
        ]});
        let heat = heat_of(&r);
        assert_eq!(heat.cells, [vec![None, heat.cells[0][1].clone()]]);
        assert!(heat.cells[0][1].is_some());
    }

    #[test]
    fn the_heat_map_fits_its_cells() {
        let one = heat_layout(18, 1);
        assert_eq!(one.cell_width, 150);
        assert!(one.width >= 760);
        let many = heat_layout(25, 12);
        assert_eq!(many.cell_width, 73);
        assert_eq!(many.width as i32, many.label_width + 12 * 73 + 24);
        assert_eq!(many.height as i32, many.top + 25 * many.cell_height + 96);
    }

    #[test]
    fn series_skip_missing_values_and_keep_bands() {
        let r = json!({"windows": [
            {"performance": {"estimated": {"f1": 0.9}, "realised": null, "bands": {"f1": {"lower": 0.8, "upper": 0.95}}}},
            {"performance": {"estimated": {"f1": null}, "realised": {"f1": 0.7}, "bands": {"f1": null}}},
        ]});
        let s = metric_series(&r, "f1");
        assert_eq!(s.estimated, [(0, 0.9)]);
        assert_eq!(s.realised, [(1, 0.7)]);
        assert_eq!(s.band, [(0, 0.8, 0.95)]);
    }

    #[test]
    fn stage_bars_fall_back_to_wall_time_and_skip_stages_never_run() {
        let r = json!({"cost": {"stages": [
            {"stage": "train", "last": {"wall_seconds": 2.3, "cpu_seconds": null, "peak_rss_mb": 62.8}},
            {"stage": "evaluate", "last": {"wall_seconds": 9.0, "cpu_seconds": 7.5, "peak_rss_mb": null}},
            {"stage": "monitor", "last": null},
        ]}});
        let bars = stage_bars(&r);
        assert_eq!(bars.len(), 2);
        assert_eq!(
            (bars[0].seconds, bars[0].cpu, bars[0].peak_mb),
            (2.3, false, Some(62.8))
        );
        assert_eq!((bars[1].seconds, bars[1].cpu, bars[1].peak_mb), (7.5, true, None));
    }

    #[test]
    fn value_ranges_pad_and_survive_no_values() {
        assert_eq!(value_range([]), (0.0, 1.0));
        let (lo, hi) = value_range([1.0, 3.0, f64::NAN]);
        assert!((lo - 0.8).abs() < 1e-12 && (hi - 3.2).abs() < 1e-12);
        let (lo, hi) = value_range([5.0]);
        assert!(lo < 5.0 && hi > 5.0);
    }

    #[test]
    fn bins_are_labelled_by_their_start() {
        assert_eq!(bin_label(&Value::Null), "lowest");
        assert_eq!(bin_label(&json!(0.7275)), "≥ 0.728");
        assert_eq!(bin_label(&json!(0.000_257_9)), "≥ 2.58e-4");
    }
}
