//! What every chart shares: the vendored font (no system fonts needed),
//! evaluate's sizes and colours, PNGs written atomically, and the
//! placeholder drawn when there is nothing to plot.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

use anyhow::{Context, Result, anyhow};
use plotters::prelude::*;
use plotters::style::FontStyle;
use plotters::style::text_anchor::{HPos, Pos, VPos};
use revspend_core::artifact;

pub(crate) const FONT: &str = "sans-serif";
// The evaluate stage's font, so both pages' plots read alike.
static FONT_BYTES: &[u8] = include_bytes!("../../../evaluate/assets/DejaVuSans.ttf");

/// The page's "failed" red, for drift frames and out-of-band marks.
pub(crate) const ALERT: RGBColor = RGBColor(179, 0, 27);
/// Estimates (CBPE) in blue, realised in red, baselines in grey: as the
/// evaluate stage draws the model, its errors and its baseline.
pub(crate) const ESTIMATED: RGBColor = BLUE;
pub(crate) const REALISED: RGBColor = RED;
pub(crate) const BASELINE: RGBColor = RGBColor(110, 110, 110);

pub(crate) fn register_font() -> Result<()> {
    plotters::style::register_font(FONT, FontStyle::Normal, FONT_BYTES)
        .map_err(|_| anyhow!("the vendored plot font is not a valid TrueType font"))
}

pub(crate) type Area<'a> = DrawingArea<BitMapBackend<'a>, plotters::coord::Shift>;

pub(crate) fn plot_err<E: std::fmt::Debug>(e: E) -> anyhow::Error {
    anyhow!("plotting failed: {e:?}")
}

/// A scratch file per drawing: plotters' encoder writes to a path and
/// picks the format by its extension, so the name ends in `.png`; it lives
/// outside the plots directory so an interrupted run leaves nothing there.
struct Scratch(PathBuf);

impl Scratch {
    fn new(name: &str) -> Scratch {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        Scratch(std::env::temp_dir().join(format!("revspend-monitor-{}-{n}-{name}", std::process::id())))
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        // Best effort: a scratch file left in the temporary directory is
        // harmless.
        let _ = std::fs::remove_file(&self.0);
    }
}

/// Draws a PNG of `size` pixels (width, height) into a scratch file, then
/// writes its bytes to `path` atomically.
pub(crate) fn render_png(
    path: &Path,
    size: (u32, u32),
    draw: impl FnOnce(&Area<'_>) -> Result<()>,
) -> Result<()> {
    let name = path
        .file_name()
        .map_or_else(|| "plot.png".to_owned(), |n| n.to_string_lossy().into_owned());
    let scratch = Scratch::new(&name);
    {
        let area = BitMapBackend::new(&scratch.0, size).into_drawing_area();
        area.fill(&WHITE).map_err(plot_err)?;
        draw(&area).with_context(|| format!("drawing {}", path.display()))?;
        area.present().map_err(plot_err)?;
    }
    let png = std::fs::read(&scratch.0).with_context(|| format!("reading back {}", scratch.0.display()))?;
    artifact::write_atomic(path, &png).with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}

/// A small image saying why there is no chart, so every plot file exists
/// whatever the run found.
pub(crate) fn placeholder(path: &Path, title: &str, why: &str) -> Result<()> {
    render_png(path, (720, 200), |area| {
        area.draw(&Text::new(title.to_owned(), (16, 16), (FONT, 18).into_font()))
            .map_err(plot_err)?;
        let (w, h) = area.dim_in_pixel();
        let grey = BLACK.mix(0.6);
        let style = TextStyle::from((FONT, 15).into_font())
            .color(&grey)
            .pos(Pos::new(HPos::Center, VPos::Center));
        area.draw(&Text::new(
            why.to_owned(),
            (w as i32 / 2, h as i32 / 2 + 10),
            style,
        ))
        .map_err(plot_err)?;
        Ok(())
    })
}

/// The legend of the series drawn, boxed, at `position` (as evaluate's).
pub(crate) fn legend<'a, 'b: 'a, C: CoordTranslate>(
    chart: &mut ChartContext<'a, BitMapBackend<'b>, C>,
    position: SeriesLabelPosition,
) -> Result<()> {
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

/// A number in a chart's labels: up to three decimals (trailing zeros
/// dropped) for shares, scores and seconds, scientific for tiny ones,
/// thousands separated for large ones.
pub(crate) fn short(v: f64) -> String {
    let a = v.abs();
    if a == 0.0 {
        "0".into()
    } else if a >= 1000.0 {
        thousands(v)
    } else if a >= 0.01 {
        let text = format!("{v:.3}");
        text.trim_end_matches('0').trim_end_matches('.').to_owned()
    } else {
        format!("{v:.1e}")
    }
}

/// A PSI in a heat-map cell: three decimals, below a thousandth shown as
/// such (so small a PSI is no shift at all).
pub(crate) fn psi_label(psi: f64) -> String {
    if !psi.is_finite() {
        "n/a".into()
    } else if psi == 0.0 {
        "0".into()
    } else if psi < 0.001 {
        "< 0.001".into()
    } else {
        format!("{psi:.3}")
    }
}

/// `v` rounded to a whole number with thousands separated by commas.
pub(crate) fn thousands(v: f64) -> String {
    let digits = format!("{:.0}", v.abs());
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    if v < 0.0 && digits != "0" {
        out.insert(0, '-');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_read_at_every_scale() {
        assert_eq!(thousands(14238.8), "14,239");
        assert_eq!(thousands(-8486.8), "-8,487");
        assert_eq!(thousands(999.0), "999");
        assert_eq!(thousands(-0.2), "0");
        assert_eq!(short(0.0), "0");
        assert_eq!(short(0.12345), "0.123");
        assert_eq!(short(120.0), "120");
        assert_eq!(short(0.06), "0.06");
        assert_eq!(psi_label(0.0076), "0.008");
        assert_eq!(psi_label(5.8e-5), "< 0.001");
        assert_eq!(psi_label(11.4653), "11.465");
        assert_eq!(psi_label(f64::NAN), "n/a");
        assert_eq!(short(0.00026), "2.6e-4");
        assert_eq!(short(1_234_567.0), "1,234,567");
    }

    #[test]
    fn a_placeholder_is_a_png() {
        let dir = tempfile::tempdir().expect("a temporary directory");
        register_font().expect("the vendored font");
        let path = dir.path().join("empty.png");
        placeholder(&path, "A chart", "nothing to plot").expect("the placeholder is drawn");
        let bytes = std::fs::read(&path).expect("the placeholder was written");
        assert_eq!(&bytes[1..4], b"PNG");
        let left: Vec<_> = std::fs::read_dir(dir.path())
            .expect("listing the directory")
            .map(|e| e.expect("an entry").file_name())
            .collect();
        assert_eq!(left, ["empty.png"], "no scratch file is left beside the plot");
    }
}
