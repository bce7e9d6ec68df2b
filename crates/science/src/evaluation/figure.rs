//! Figures of the evaluation and the report, drawn with `plotters` into PNG files: grids of
//! complex images (amplitude row, phase row, one colour bar per panel) and line charts (loss
//! curves, FRC curves).
//!
//! Text uses the DejaVu Sans Mono font embedded in the binary (`assets/fonts`, its licence
//! beside it), so no system font or fontconfig is needed. Output is deterministic: the same data
//! give the same PNG bytes (no time chunks; the pixel drawing order is fixed).

use crate::error::{Error, Result};
use ndarray::Array2;
use num_complex::Complex64;
use plotters::prelude::*;
use std::path::Path;
use std::sync::Once;

/// Where a line chart puts its legend.
pub use plotters::chart::SeriesLabelPosition as LegendPosition;

static FONT: &[u8] = include_bytes!("../../assets/fonts/DejaVuSansMono.ttf");
static REGISTER: Once = Once::new();

fn register_fonts() {
    REGISTER.call_once(|| {
        for name in ["sans-serif", "serif", "monospace"] {
            // The embedded font is valid (checked by the tests); a failure leaves text undrawn.
            let _ = plotters::style::register_font(name, FontStyle::Normal, FONT);
            let _ = plotters::style::register_font(name, FontStyle::Bold, FONT);
        }
    });
}

fn draw_err(path: &Path, e: impl std::fmt::Debug) -> Error {
    Error::data(path, format!("could not draw the figure: {e:?}"))
}

/// Viridis, sampled at 9 anchors and linearly interpolated; `t` in [0, 1].
pub fn viridis(t: f64) -> RGBColor {
    const A: [(f64, f64, f64); 9] = [
        (68.0, 1.0, 84.0),
        (71.0, 44.0, 122.0),
        (59.0, 81.0, 139.0),
        (44.0, 113.0, 142.0),
        (33.0, 144.0, 141.0),
        (39.0, 173.0, 129.0),
        (92.0, 200.0, 99.0),
        (170.0, 220.0, 50.0),
        (253.0, 231.0, 37.0),
    ];
    let t = if t.is_finite() {
        t.clamp(0.0, 1.0)
    } else {
        0.0
    };
    let x = t * 8.0;
    let i = (x.floor() as usize).min(7);
    let f = x - i as f64;
    let (a, b) = (A[i], A[i + 1]);
    let mix = |p: f64, q: f64| (p + (q - p) * f).round() as u8;
    RGBColor(mix(a.0, b.0), mix(a.1, b.1), mix(a.2, b.2))
}

fn min_max(img: &Array2<f64>) -> (f64, f64) {
    let (lo, hi) = img
        .iter()
        .filter(|v| v.is_finite())
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(l, h), &v| {
            (l.min(v), h.max(v))
        });
    if lo.is_finite() && hi > lo {
        (lo, hi)
    } else if lo.is_finite() {
        (lo, lo + 1.0)
    } else {
        (0.0, 1.0)
    }
}

/// The colour range of a panel: with a covered region, its 1st to 99th percentile (linear
/// interpolation, as numpy's default) over the covered finite pixels, so that neither the holes
/// nor a few outliers set the scale; without one, min to max.
fn colour_range(img: &Array2<f64>, covered: Option<&Array2<bool>>) -> (f64, f64) {
    let Some(mask) = covered else {
        return min_max(img);
    };
    let mut v: Vec<f64> = img
        .iter()
        .zip(mask.iter())
        .filter(|(x, &m)| m && x.is_finite())
        .map(|(x, _)| *x)
        .collect();
    if v.is_empty() {
        return min_max(img);
    }
    v.sort_by(|a, b| a.total_cmp(b));
    let q = |p: f64| {
        let pos = p * (v.len() - 1) as f64;
        let (i, f) = (pos.floor() as usize, pos - pos.floor());
        let j = (i + 1).min(v.len() - 1);
        v[i] + (v[j] - v[i]) * f
    };
    let (lo, hi) = (q(0.01), q(0.99));
    if hi > lo {
        (lo, hi)
    } else {
        (lo, lo + 1.0)
    }
}

/// The colour of uncovered pixels.
const MASKED: RGBColor = RGBColor(128, 128, 128);

const PANEL_W: i32 = 300;
const PANEL_H: i32 = 250;
const IMG: i32 = 200;

/// Draw one image panel (title, nearest-neighbour scaled image, colour bar with its range; see
/// [`colour_range`]); pixels outside `covered` are drawn grey.
fn panel<DB: DrawingBackend>(
    area: &DrawingArea<DB, plotters::coord::Shift>,
    title: &str,
    img: &Array2<f64>,
    covered: Option<&Array2<bool>>,
) -> std::result::Result<(), DrawingAreaErrorKind<DB::ErrorType>> {
    let style = TextStyle::from(("sans-serif", 14).into_font()).color(&BLACK);
    area.draw_text(title, &style, (8, 4))?;
    let (h, w) = img.dim();
    if h == 0 || w == 0 {
        return Ok(());
    }
    let covered = covered.filter(|m| m.dim() == img.dim());
    let (lo, hi) = colour_range(img, covered);
    let scale = (IMG as f64 / h.max(w) as f64).max(1e-9);
    let (dh, dw) = ((h as f64 * scale) as i32, (w as f64 * scale) as i32);
    let (x0, y0) = (8, 26);
    for y in 0..dh {
        let r = ((y as f64 / scale) as usize).min(h - 1);
        for x in 0..dw {
            let c = ((x as f64 / scale) as usize).min(w - 1);
            let col = match covered {
                Some(m) if !m[[r, c]] => MASKED,
                _ => viridis(((img[[r, c]] - lo) / (hi - lo)).clamp(0.0, 1.0)),
            };
            area.draw_pixel((x0 + x, y0 + y), &col)?;
        }
    }
    // Colour bar.
    let bx = x0 + IMG + 12;
    for y in 0..IMG {
        let col = viridis(1.0 - y as f64 / (IMG - 1) as f64);
        for x in 0..12 {
            area.draw_pixel((bx + x, y0 + y), &col)?;
        }
    }
    let small = TextStyle::from(("sans-serif", 11).into_font()).color(&BLACK);
    area.draw_text(&format!("{hi:.3}"), &small, (bx + 15, y0))?;
    area.draw_text(
        &format!("{:.3}", 0.5 * (lo + hi)),
        &small,
        (bx + 15, y0 + IMG / 2 - 6),
    )?;
    area.draw_text(&format!("{lo:.3}"), &small, (bx + 15, y0 + IMG - 12))?;
    Ok(())
}

/// A grid of complex images: one column per `(label, image)`, amplitude in the first row and
/// phase (radians, `arg`) in the second, each panel with its own colour bar.
pub fn complex_grid(
    path: &Path,
    title: &str,
    columns: &[(&str, &Array2<Complex64>)],
) -> Result<()> {
    let cols: Vec<_> = columns.iter().map(|&(l, a)| (l, a, None)).collect();
    complex_grid_masked(path, title, &cols)
}

/// One column of [`complex_grid_masked`]: its label, the image, and its covered region if any.
pub type MaskedColumn<'a> = (&'a str, &'a Array2<Complex64>, Option<&'a Array2<bool>>);

/// [`complex_grid`] with an optional covered region per column: colour ranges from it (1-99%),
/// the pixels outside it grey.
pub fn complex_grid_masked(path: &Path, title: &str, columns: &[MaskedColumn]) -> Result<()> {
    register_fonts();
    let ncol = columns.len().max(1) as i32;
    let (w, h) = ((PANEL_W * ncol) as u32, (PANEL_H * 2 + 30) as u32);
    {
        let root = BitMapBackend::new(path, (w, h)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| draw_err(path, e))?;
        let style = TextStyle::from(("sans-serif", 16).into_font()).color(&BLACK);
        root.draw_text(title, &style, (8, 6))
            .map_err(|e| draw_err(path, e))?;
        let body = root.margin(30, 0, 0, 0);
        let rows = body.split_evenly((2, columns.len().max(1)));
        for (k, (label, img, covered)) in columns.iter().enumerate() {
            let amp = img.mapv(|z| z.norm());
            let ph = img.mapv(|z| z.arg());
            panel(&rows[k], &format!("{label}: amplitude"), &amp, *covered)
                .map_err(|e| draw_err(path, e))?;
            panel(
                &rows[columns.len() + k],
                &format!("{label}: phase (rad)"),
                &ph,
                *covered,
            )
            .map_err(|e| draw_err(path, e))?;
        }
        root.present().map_err(|e| draw_err(path, e))?;
    }
    Ok(())
}

/// The evaluation's `comparison.png`: ground truth beside each model (aligned images, each with
/// its covered region; the ground truth drawn over the first model's).
pub fn comparison_figure(
    path: &Path,
    gt: &Array2<Complex64>,
    models: &[(&str, &Array2<Complex64>, &Array2<bool>)],
) -> Result<()> {
    let mut cols = vec![("ground truth", gt, models.first().map(|m| m.2))];
    cols.extend(models.iter().map(|&(l, a, m)| (l, a, Some(m))));
    complex_grid_masked(
        path,
        "Reconstructions against ground truth (registered)",
        &cols,
    )
}

/// One line of a line chart.
pub struct Series {
    pub label: String,
    pub points: Vec<(f64, f64)>,
    /// Dashed lines are drawn as points every other sample (e.g. validation curves).
    pub dashed: bool,
}

const PALETTE: [RGBColor; 8] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(127, 127, 127),
];

/// Titles and options of a line chart.
pub struct ChartSpec<'a> {
    pub title: &'a str,
    pub xlabel: &'a str,
    pub ylabel: &'a str,
    pub legend: LegendPosition,
    /// Plot log10 of positive values.
    pub log_y: bool,
}

/// A line chart of `series` (pairs of lines may share a colour: `colour_of[k]` picks the palette
/// entry of series k), with axis labels and a legend.
pub fn line_chart(
    path: &Path,
    spec: &ChartSpec,
    series: &[Series],
    colour_of: &[usize],
) -> Result<()> {
    let (title, xlabel, ylabel, legend, log_y) = (
        spec.title,
        spec.xlabel,
        spec.ylabel,
        spec.legend.clone(),
        spec.log_y,
    );
    register_fonts();
    let tr = |v: f64| if log_y { v.max(1e-300).log10() } else { v };
    let pts = || {
        series
            .iter()
            .flat_map(|s| s.points.iter())
            .filter(|(x, y)| x.is_finite() && y.is_finite() && (!log_y || *y > 0.0))
    };
    let (mut x0, mut x1, mut y0, mut y1) = (
        f64::INFINITY,
        f64::NEG_INFINITY,
        f64::INFINITY,
        f64::NEG_INFINITY,
    );
    for &(x, y) in pts() {
        x0 = x0.min(x);
        x1 = x1.max(x);
        y0 = y0.min(tr(y));
        y1 = y1.max(tr(y));
    }
    if !x0.is_finite() {
        (x0, x1, y0, y1) = (0.0, 1.0, 0.0, 1.0);
    }
    if x1 <= x0 {
        x1 = x0 + 1.0;
    }
    if y1 <= y0 {
        y1 = y0 + 1.0;
    }
    let pad = 0.05 * (y1 - y0);
    {
        let root = BitMapBackend::new(path, (820, 520)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| draw_err(path, e))?;
        let mut chart = ChartBuilder::on(&root)
            .caption(title, ("sans-serif", 18))
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(70)
            .build_cartesian_2d(x0..x1, (y0 - pad)..(y1 + pad))
            .map_err(|e| draw_err(path, e))?;
        let ylab = if log_y {
            format!("log10 {ylabel}")
        } else {
            ylabel.to_string()
        };
        chart
            .configure_mesh()
            .x_desc(xlabel)
            .y_desc(ylab)
            .label_style(("sans-serif", 12))
            .draw()
            .map_err(|e| draw_err(path, e))?;
        for (k, s) in series.iter().enumerate() {
            let col = PALETTE[colour_of.get(k).copied().unwrap_or(k) % PALETTE.len()];
            let data: Vec<(f64, f64)> = s
                .points
                .iter()
                .filter(|(x, y)| x.is_finite() && y.is_finite() && (!log_y || *y > 0.0))
                .map(|&(x, y)| (x, tr(y)))
                .collect();
            let style = if s.dashed {
                col.stroke_width(1)
            } else {
                col.stroke_width(2)
            };
            let drawn = if s.dashed {
                // Dashes: every other segment.
                let segs: Vec<Vec<(f64, f64)>> = data
                    .windows(2)
                    .enumerate()
                    .filter(|(i, _)| i % 2 == 0)
                    .map(|(_, w)| w.to_vec())
                    .collect();
                let mut first = true;
                for seg in segs {
                    let a = chart
                        .draw_series(LineSeries::new(seg, style))
                        .map_err(|e| draw_err(path, e))?;
                    if first {
                        a.label(s.label.as_str()).legend(move |(x, y)| {
                            PathElement::new(vec![(x, y), (x + 8, y)], style)
                        });
                        first = false;
                    }
                }
                !first
            } else {
                chart
                    .draw_series(LineSeries::new(data.clone(), style))
                    .map_err(|e| draw_err(path, e))?
                    .label(s.label.as_str())
                    .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], style));
                true
            };
            let _ = drawn;
        }
        chart
            .configure_series_labels()
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK)
            .label_font(("sans-serif", 12))
            .position(legend)
            .draw()
            .map_err(|e| draw_err(path, e))?;
        root.present().map_err(|e| draw_err(path, e))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_embedded_font_parses_and_figures_are_deterministic() {
        assert!(plotters::style::register_font("test-font", FontStyle::Normal, FONT).is_ok());
        let img = Array2::from_shape_fn((30, 40), |(r, c)| {
            Complex64::from_polar(1.0 + 0.01 * (r * c) as f64, 0.1 * c as f64)
        });
        let d = tempfile::tempdir().unwrap();
        let a = d.path().join("a.png");
        let b = d.path().join("b.png");
        let covered = Array2::from_shape_fn((30, 40), |(r, _)| r > 3);
        comparison_figure(&a, &img, &[("model", &img, &covered)]).unwrap();
        comparison_figure(&b, &img, &[("model", &img, &covered)]).unwrap();
        let (ba, bb) = (std::fs::read(&a).unwrap(), std::fs::read(&b).unwrap());
        assert_eq!(&ba[1..4], b"PNG");
        assert_eq!(ba, bb);
        let s = [Series {
            label: "train".into(),
            points: (1..20).map(|e| (e as f64, 1.0 / e as f64)).collect(),
            dashed: false,
        }];
        line_chart(
            &d.path().join("c.png"),
            &ChartSpec {
                title: "loss",
                xlabel: "epoch",
                ylabel: "loss",
                legend: LegendPosition::UpperRight,
                log_y: true,
            },
            &s,
            &[0],
        )
        .unwrap();
    }

    #[test]
    fn colour_ranges_come_from_the_covered_region() {
        // 0..99 covered, one huge value outside: the range is the covered 1st..99th percentile.
        let mut img = Array2::from_shape_fn((10, 11), |(r, c)| (r * 11 + c) as f64);
        img[[9, 10]] = 1e6;
        let covered = Array2::from_shape_fn((10, 11), |(r, c)| r * 11 + c < 100);
        let (lo, hi) = colour_range(&img, Some(&covered));
        assert!(
            (lo - 0.99).abs() < 1e-12 && (hi - 98.01).abs() < 1e-12,
            "{lo} {hi}"
        );
        assert_eq!(colour_range(&img, None), (0.0, 1e6));
    }

    #[test]
    fn viridis_ends() {
        assert_eq!(viridis(0.0), RGBColor(68, 1, 84));
        assert_eq!(viridis(1.0), RGBColor(253, 231, 37));
    }
}
